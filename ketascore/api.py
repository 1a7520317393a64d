"""The documented Python API: load scales, read answers, score them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketascore.core.issues import Issue, has_errors, severity_counts
from ketascore.core.library import ScaleSet, builtin_ids, load_builtin, resolve_scale
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.core.scale import Scale
from ketascore.engines.record import score_records
from ketascore.readers import DEFAULT_MAX_FILE_SIZE, ReadOptions, ReadResult, read_paths


def builtin_scales() -> list[str]:
    """Ids of the scales that ship with ketascore."""
    return builtin_ids()


def load_scale(id_or_path: str | Path) -> Scale:
    """A built-in scale by id (``"madrs"``) or a scale YAML file by path.

    Raises ``ScaleError`` (with every problem of the file) or ``UnknownScaleError``.
    """
    return resolve_scale(str(id_or_path))


def read_answers(
    paths: str | Path | Iterable[str | Path],
    *,
    input_format: str | None = None,
    scales: Iterable[Scale] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read answer records from files and folders. Problems are returned as issues.

    ``options`` carries what the clinical-format readers need (a column mapping, a sheet, a
    REDCap dictionary, FHIR Questionnaires, an SDTM category); build it with
    ``ketascore.readers.formats.load_read_options``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    scales = list(scales)
    ids = ScaleSet(scales).ids()
    options = options or ReadOptions()
    options = dataclasses.replace(options, scales=(*options.scales, *scales))
    read = read_paths(
        paths,
        input_format,
        ids,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=options,
    )
    drop_unscorable_tables(read, ScaleSet(scales), scales)
    return read


def held_scales(
    paths: str | Path | Iterable[str | Path],
    *,
    input_format: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    options: ReadOptions | None = None,
) -> dict[str, int | None]:
    """The built-in scales whose records the paths hold, in order of first appearance, with
    how many records name each. A large table of one scale (the table engine's) is known by
    its header, without reading its rows: its count is None. Records that name no scale or
    an unknown one are not counted."""
    from ketascore.readers import walk_files

    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [str(p) for p in paths]
    custom = options is not None and options != ReadOptions()
    files = table_candidates(list(walk_files(paths, include, exclude)), input_format, custom)
    found = table_sources(files, None, max_file_size=max_file_size) if files else None
    if found is not None:
        return {found[1].id: None}
    read = read_answers(
        paths,
        input_format=input_format,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=options,
    )
    known = ScaleSet()
    held: dict[str, int | None] = {}
    for record in read.records:
        scale = known.get(record.scale) if record.scale else None
        if scale is not None:
            held[scale.id] = (held.get(scale.id) or 0) + 1
    return held


def drop_unscorable_tables(read: ReadResult, known: ScaleSet, chosen: Iterable[Scale] = ()) -> None:
    """Leave out the ratings of a scale in a wide table that lacks the column of an item a
    score reads, and report each such table that holds ratings of it
    (``Scale.absent_columns_issue``): scored, every row would be prorated or empty. The
    tables looked at are taken off ``read.columns``; with ``chosen`` scales, only theirs."""
    only = {s.id.casefold() for s in chosen}
    found: dict[tuple[str, str], Issue] = {}
    for file, scales in read.columns.items():
        for scale_id in [s for s in scales if not only or s.casefold() in only]:
            keys = scales.pop(scale_id)
            scale = known.get(scale_id)
            issue = scale.absent_columns_issue(file, keys) if scale is not None else None
            if issue is not None:
                found[(file, scale_id.casefold())] = issue
    if not found:  # (the common case: no pass over the records)
        return
    kept, rated = [], set()
    for r in read.records:
        key = (r.source.file, str(r.scale).casefold())
        if key in found:
            rated.add(key)
        else:
            kept.append(r)
    read.records = kept
    # (a table without ratings of the scale, a header alone, is not reported)
    read.issues += [issue for key, issue in found.items() if key in rated]


def select_records(
    records: Iterable[AnswerRecord], scale: Scale | None
) -> tuple[list[AnswerRecord], int]:
    """With a scale chosen, records without a scale field take it and records of other
    scales are left out (``core.library.left_out``: a mistyped id of a known scale is kept,
    to be reported). Returns the records to score and how many were left out."""
    from ketascore.core.library import left_out

    if scale is None:
        return list(records), 0
    chosen: list[AnswerRecord] = []
    skipped = 0
    for record in records:
        if record.scale is None:
            chosen.append(record.model_copy(update={"scale": scale.id}))
        elif not left_out(record.scale, scale):
            chosen.append(record)
        else:
            skipped += 1
    return chosen, skipped


def score(
    records: Iterable[AnswerRecord],
    *,
    scale: Scale | None = None,
    scales: Iterable[Scale] = (),
    extra_missing: Iterable[Any] = (),
) -> list[ScoreResult]:
    """Score records. With ``scale``, only that scale's records are scored (records that name
    no scale are taken as that scale); otherwise each record's own ``scale`` field decides."""
    chosen, _ = select_records(records, scale)
    known = ScaleSet([*scales, *([scale] if scale else [])])
    return score_records(chosen, known.get, extra_missing=extra_missing)


# --------------------------------------------------------------------------------------
# Scoring paths: the library entry point of ``ketascore score``

TABLE_MIN_BYTES = int(os.environ.get("KETASCORE_TABLE_MIN_BYTES", 1 << 20))
ENGINES = ("auto", "record", "table")


@dataclass
class ScoreRun:
    """What scoring some paths gives, by either engine.

    ``results()`` gives the results in input order (all at once from the record engine;
    batch by batch from the table engine); ``issues`` the problems of whole files and of
    rows that make no record; ``write(fmt, path)`` writes CSV or Parquet straight from the
    table engine, when it scored the input. Close the run when done (``with`` does).

    The table engine scores when asked (``write`` in one streamed pass). Should DuckDB
    then fail to read the input as the readers do, the run becomes the record engine's
    (``table`` is None; ``write`` raises TableEngineError, having written nothing)."""

    scale: Scale | None
    files: list[str]
    hashes: dict[str, str]
    engine: str  # record | table
    table: Any = None  # the TableRun of the table engine
    _results: list[ScoreResult] | None = None
    _issues: list[Issue] = field(default_factory=list)
    _fallback: Callable[[], ScoreRun] | None = None  # the record engine's run of the input
    # why the record engine scored an input the table engine had taken (DuckDB's message)
    fell_back: str | None = None
    out_of_memory: bool = False  # ... because DuckDB ran out of memory, even on one thread

    def _table(self, use: Callable[[Any], Any]) -> Any:
        """``use(table)``; if DuckDB cannot read the input after all, the run becomes the
        record engine's, and TableEngineError is raised."""
        from ketascore.engines.table import TableEngineError, TableMemoryError

        try:
            return use(self.table)
        except TableEngineError as exc:
            if os.environ.get("KETASCORE_NO_FALLBACK") == "1":  # (the tests: a fault shows)
                raise RuntimeError(f"the table engine fell back: {exc}") from exc
            self.fell_back, self.out_of_memory = str(exc), isinstance(exc, TableMemoryError)
            self.table.close()
            assert self._fallback is not None
            record = self._fallback()
            self.table, self.engine = None, record.engine
            self._results, self._issues, self.files = record._results, record._issues, record.files
            raise

    def _scored(self) -> bool:
        """Whether the table engine holds the run (scored, or able to be scored)."""
        if self.table is None:
            return False
        from ketascore.engines.table import TableEngineError

        try:
            self._table(lambda t: t.issues)
        except TableEngineError:
            return False
        return True

    @property
    def issues(self) -> list[Issue]:
        return list(self.table.issues) if self._scored() else self._issues

    def results(self) -> Iterator[ScoreResult]:
        if self._scored():
            return self.table.results()  # type: ignore[no-any-return]
        return iter(self._results or [])

    def texts(self, render: Callable[[ScoreResult], str]) -> Iterator[str]:
        """``render(result)`` of each result, in order: the table engine's query writes
        most of them itself (``TableRun.texts``)."""
        if self._scored():
            return self.table.texts(render)  # type: ignore[no-any-return]
        return map(render, self._results or [])

    def problem_results(self, limit: int) -> list[ScoreResult]:
        """The first ``limit`` results with an issue."""
        if self._scored():
            return self.table.problem_results(limit)  # type: ignore[no-any-return]
        return [r for r in self._results or [] if r.issues][:limit]

    def issue_totals(self) -> tuple[int, int]:
        """How many issues there are, errors and warnings: of whole files and of rows that
        make no record (``issues``), and of the results (the table engine counts those as
        it scores, and hands over the first ones only: ``problem_results``)."""
        errors, warnings = severity_counts(self.issues)
        if self._scored():
            of_results = self.table.issue_totals
        else:
            of_results = severity_counts(i for r in self._results or [] for i in r.issues)
        return errors + of_results[0], warnings + of_results[1]

    def summary(self) -> dict[str, int]:
        if self._scored():
            return dict(self.table.summary())
        from ketascore.writers.tabular import score_summary

        return score_summary(self._results or [], self._issues, len(self.files))

    @property
    def ok(self) -> bool:
        summary = self.summary()
        return summary["with_problems"] == 0 and not has_errors(self.issues)

    def provenance(self, command: str = "ketascore score") -> dict[str, Any]:
        """Which scales (id, version, sha256) and which inputs (sha256) made these results."""
        from ketascore.core.provenance import build_provenance

        if self.scale is not None:
            scales = [self.scale]
        else:
            known = ScaleSet([])
            ids = sorted({r.scale for r in self._results or [] if r.scale})
            scales = [s for s in (known.get(i) for i in ids) if s is not None]
        return build_provenance(scales, self.hashes, command)

    def write(self, fmt: str, path: str | Path, *, escape_formulas: bool = True) -> None:
        """Write CSV or Parquet from the table engine (``table`` is set)."""
        if self.table is None:
            raise ValueError("only the table engine writes straight to a file")
        self._table(lambda t: t.write(fmt, path, escape_formulas=escape_formulas))

    def close(self) -> None:
        if self.table is not None:
            self.table.close()

    def __enter__(self) -> ScoreRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def table_candidates(
    walk: list[str | Issue], input_format: str | None, custom_options: bool
) -> list[str] | None:
    """The files walked (``readers.walk_files``), when the table engine may read them: no
    folder issue among them, no standard input, CSV or the format left to the extensions,
    and no clinical-format settings (which only the readers follow); else None.
    (``table_sources`` then looks at each file.)"""
    files = [w for w in walk if isinstance(w, str)]
    if custom_options or input_format not in (None, "csv") or "-" in files:
        return None
    return files if len(files) == len(walk) else None


def table_sources(
    files: list[str],
    scale: Scale | None,
    *,
    required: bool = False,
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
) -> tuple[list[Any], Scale] | None:
    """The files as sources of the table engine and the scale they hold (``scale``, or
    the one built-in scale whose items their columns name), or None when one of them is
    not a table it reads as the readers do (a CSV file with quotes, another layout, ...).
    Small files are left to the record engine unless ``required``."""
    tables = (".parquet", ".pq", ".csv", ".tsv", ".txt")
    if not files or not all(os.path.splitext(f)[1].lower() in tables for f in files):
        return None
    from ketascore.engines import table
    from ketascore.readers.delimited import WideLayout

    if not table.available():
        return None
    known = {*builtin_ids(), *([scale.id] if scale is not None else [])}
    sources = []
    for name in files:
        suffix = os.path.splitext(name)[1].lower()
        try:
            size = os.stat(name).st_size
        except OSError:
            return None
        if size > max_file_size:  # the readers report it
            return None
        if suffix in (".parquet", ".pq"):
            try:
                sources.append(table.parquet_source(name))
            except table.TableEngineError:
                return None
            continue
        if not required and size < TABLE_MIN_BYTES:
            return None
        if suffix not in (".csv", ".tsv", ".txt"):
            return None
        found = table.csv_source(name, known, scale)
        if found is None:
            return None
        sources.append(found)
    if scale is None:
        held = {s for source in sources for s in WideLayout.of(source.header, known).scales}
        if len(held) != 1:
            return None
        scale = load_builtin(held.pop())
    return sources, scale


def score_paths(
    paths: str | Path | Iterable[str | Path],
    *,
    scale: Scale | None = None,
    engine: str = "auto",
    input_format: str | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    jobs: int | None = None,
    options: ReadOptions | None = None,
    custom_options: bool = False,
    merge_duplicates: bool = True,
    duckdb_config: dict[str, Any] | None = None,
    progress: Any = None,
    walked: Any = None,
    rows: Any = None,
) -> ScoreRun:
    """Score files and folders (``-`` is standard input), as ``ketascore score`` does.

    ``engine``: ``record`` reads every file with the readers and scores each record in
    Python; ``table`` scores CSV and Parquet tables with the compiled SQL in DuckDB (files
    it cannot read as the readers do are read by the record readers); ``auto`` takes the
    table engine for one large CSV file or Parquet files of one scale when DuckDB is
    installed. Both give the same results. ``custom_options``: ``options`` carry a
    clinical format's settings (a mapping file, a sheet, ...), which only the readers
    follow. ``jobs``: worker processes for folders (record engine). ``progress``,
    ``walked`` and ``rows`` are the callbacks of a progress bar (``engines.batch.score_files``)."""
    from ketascore.engines.batch import Settings, default_jobs
    from ketascore.readers import walk_files

    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if isinstance(paths, str | Path):
        paths = [paths]
    paths = [str(p) for p in paths]
    walk = list(walk_files(paths, include, exclude))
    files = [w for w in walk if isinstance(w, str)]
    tabular = (
        engine != "record"
        and table_candidates(walk, input_format, custom_options) is not None
        and (engine == "table" or len(files) == 1)
    )
    known = ScaleSet([scale] if scale is not None else [])
    settings = Settings(
        fmt=input_format,
        scale_ids=tuple(known.ids()),
        max_file_size=max_file_size,
        chosen=scale,
        read_options=options,
    )
    jobs = 1 if "-" in files or custom_options else (jobs or default_jobs())
    found = (
        table_sources(files, scale, required=engine == "table", max_file_size=max_file_size)
        if tabular
        else None
    )
    if found is not None:
        from ketascore.core.provenance import file_digest
        from ketascore.engines import table

        sources, chosen = found
        try:
            run = table.score_tables(
                sources,
                chosen,
                merge_duplicates=merge_duplicates,
                known_scales=builtin_ids(),
                config=duckdb_config,
                lazy=True,
            )
        except table.TableEngineError:
            return _record_run(walk, settings, jobs, progress, walked, rows)
        hashes = {s.name: s.sha256 or file_digest(s.name) for s in sources}
        # (should DuckDB fail to read the input as the readers do, the records are scored)
        fallback = lambda: _record_run(walk, settings, jobs, None, None)  # noqa: E731
        return ScoreRun(chosen, files, hashes, "table", run, _fallback=fallback)
    return _record_run(walk, settings, jobs, progress, walked, rows)


def _record_run(
    walk: list[Any], settings: Any, jobs: int, progress: Any, walked: Any, rows: Any = None
) -> ScoreRun:
    """The record engine's run of the files and folders walked."""
    from ketascore.engines.batch import score_files

    batch = score_files(walk, settings, jobs=jobs, progress=progress, walked=walked, rows=rows)
    return ScoreRun(
        settings.chosen,
        batch.files,
        batch.extra.get("hashes", {}),
        "record",
        _results=batch.results,
        _issues=batch.issues,
    )
