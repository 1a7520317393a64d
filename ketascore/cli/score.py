"""`ketascore score`: score answer files, folders (in worker processes) and big tables."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
    UsageError,
    check_output,
    console,
    emit,
    input_options,
    is_tty,
    load_scale_option,
    output_options,
    provenance_options,
    resolve_format,
    write_provenance,
)

# A single CSV file at least this large is read in columns (numpy); smaller ones, and every
# file of a folder, by the record readers. Both give the same output byte for byte.
COLUMNAR_MIN_BYTES = int(os.environ.get("KETASCORE_COLUMNAR_MIN_BYTES", 1 << 20))

# pydantic looks for plugins among the entry points of every installed distribution the
# first time a model is built: tens of milliseconds of a command that takes a few hundred.
# The command line has no use for them (set the variable yourself to decide otherwise).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _summary_line(summary: dict[str, int]) -> str:
    return (
        f"{summary['files']} file(s), {summary['records']} record(s), "
        f"{summary['scored']} scored, {summary['with_problems']} with problems"
        + (f", {summary['file_issues']} file issue(s)" if summary["file_issues"] else "")
    )


def _check_output(output: Path | None, inputs: list[str]) -> None:
    if output is not None:
        check_output(output, inputs)


def _write_bytes(chunks: Iterator[Any], output: Path | None, inputs: list[str]) -> None:
    """Write bytes-like chunks to ``output`` (atomically) or to standard output."""
    from ketascore.writers.tabular import atomic_writer, write_chunks

    _check_output(output, inputs)
    if output is None:
        stream = sys.stdout.buffer
        for chunk in chunks:
            stream.write(chunk)
        stream.flush()
        return
    with atomic_writer(output, binary=True) as fh:
        write_chunks(fh, chunks)


def _json_document(
    results: Iterator[Any], issues: list[Any], summary: Any, provenance: Any
) -> Iterator[str]:
    """``output.score_json`` written as it goes: the same bytes, results one at a time."""
    from ketascore import __version__

    def dumps(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)

    yield "{\n" + f'  "ketascore_version": {dumps(__version__)},\n  "results": '
    first = True
    for result in results:
        text = dumps(result.to_dict()).replace("\n", "\n    ")
        yield ("[\n    " if first else ",\n    ") + text
        first = False
    yield "[]" if first else "\n  ]"
    issues_text = dumps([i.as_dict() for i in issues]).replace("\n", "\n  ")
    summary_text = dumps(summary()).replace("\n", "\n  ")
    provenance_text = dumps(provenance()).replace("\n", "\n  ")
    yield (
        f',\n  "issues": {issues_text},\n  "summary": {summary_text},\n'
        f'  "provenance": {provenance_text}\n}}\n'
    )


def _format_options(chosen: Any) -> tuple[Any, bool]:
    """The clinical-format options (--map, --sheet, ...) as ReadOptions, and whether any
    was given (then every file goes through the record readers, in this process)."""
    from ketascore.cli.common import _READ_OPTIONS, read_options

    given = click.get_current_context().meta.get(_READ_OPTIONS, {})
    custom = any(bool(v) for v in given.values())
    return read_options([chosen] if chosen is not None else []), custom


class _Prefetch:
    """The one input file, read and its sha256 computed in a thread while the command
    imports and loads what it needs (both let go of the GIL): the columns then read it
    from memory. Only for a file the columns probably take (checked again by them)."""

    def __init__(self, path: str):
        import threading

        self.path = path
        self._data: bytes | None = None
        self._digest = ""
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="ketascore-read", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import hashlib

        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
        except OSError as exc:
            self._error = exc
            return
        self._digest = hashlib.sha256(data).hexdigest()
        self._data = data

    def data(self) -> bytes:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._data is not None
        return self._data

    def digest(self) -> str:
        self._thread.join()
        return self._digest

    def release(self) -> None:
        self._data = None

    @classmethod
    def start(
        cls, paths: tuple[str, ...], fmt: str, input_format: str | None, max_file_size: int
    ) -> _Prefetch | None:
        """Start reading when the command is one file that ``_columnar`` will probably
        read in memory."""
        import stat

        from ketascore.cli.common import _READ_OPTIONS

        if len(paths) != 1 or paths[0] == "-" or fmt in ("table", "fhir"):
            return None
        if any(bool(v) for v in click.get_current_context().meta.get(_READ_OPTIONS, {}).values()):
            return None
        if input_format not in (None, "csv") or (
            input_format is None and os.path.splitext(paths[0])[1].lower() not in _CSV_EXTENSIONS
        ):
            return None
        try:
            st = os.stat(paths[0])
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        if not COLUMNAR_MIN_BYTES <= st.st_size <= min(max_file_size, IN_MEMORY_BYTES):
            return None
        return cls(paths[0])


_CSV_EXTENSIONS = (".csv", ".tsv", ".txt")
IN_MEMORY_BYTES = 256 << 20  # columnar.read_wide_csv_file's in_memory: larger files stream


def _columnar(
    path: str,
    chosen: Any,
    input_format: str | None,
    max_file_size: int,
    prefetched: _Prefetch | None = None,
) -> Any:
    """A single big wide CSV file read and scored in columns, or None (the record path)."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None
    if size < COLUMNAR_MIN_BYTES or size > max_file_size:
        return None
    try:
        import numpy  # noqa: F401
    except ImportError:  # pragma: no cover - numpy is an optional extra
        return None
    from ketascore.core.library import ScaleSet
    from ketascore.engines.columnar import read_wide_csv_file

    known = ScaleSet([chosen] if chosen is not None else [])
    extra: dict[str, Any] = {}
    if prefetched is not None and prefetched.path == path:
        extra["prefetched"] = prefetched
    try:
        return read_wide_csv_file(
            path, known.get, known.ids(), chosen=chosen, fmt=input_format, **extra
        )
    except OSError:
        return None
    finally:
        if prefetched is not None:
            prefetched.release()  # the columns hold the pieces they need


@cli.command("score")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale",
    "scale_name",
    help="Built-in scale id or path of a scale YAML file (default: each record's scale field).",
)
@output_options(("table", "json", "jsonl", "csv", "fhir", "parquet"))
@input_options
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Worker processes for folders of many files (default: the number of cores).",
)
@click.option(
    "--engine",
    type=click.Choice(["python", "duckdb"]),
    default="python",
    show_default=True,
    help="duckdb: score CSV or Parquet files inside DuckDB (multi-threaded, larger than "
    "memory); needs --scale and -o FILE (.csv, .jsonl or .parquet).",
)
@provenance_options
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line on stderr.")
def score_cmd(
    paths: tuple[str, ...],
    scale_name: str | None,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
    jobs: int | None,
    engine: str,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    quiet: bool,
) -> None:
    """Score answer files (YAML, JSON, CSV), folders (recursively) or - (stdin).

    \b
    Folders are read in a stable sorted order (hidden files skipped) by --jobs worker
    processes; the output is the same whatever the number of jobs. A large wide CSV
    file is scored in columns. On a terminal a progress bar shows on stderr.
    """
    if engine == "duckdb":
        _score_duckdb(
            paths,
            scale_name,
            fmt,
            output,
            include,
            exclude,
            no_escape_formulas,
            quiet,
            provenance_file,
        )
        return
    if fmt == "parquet" or (output is not None and output.suffix.lower() == ".parquet"):
        raise UsageError("Parquet output is written by --engine duckdb")
    fmt = resolve_format(fmt, output)
    prefetch = _Prefetch.start(paths, fmt, input_format, max_file_size)
    chosen = load_scale_option(scale_name)
    escape = not no_escape_formulas
    inputs = list(paths)
    _check_output(output, inputs)
    options, custom = _format_options(chosen)
    from itertools import chain, islice

    from ketascore.readers import walk_files

    walk = walk_files(paths, include, exclude)
    first = list(islice(walk, 2))
    only = first[0] if len(first) == 1 else None
    if isinstance(only, str) and only != "-" and fmt not in ("table", "fhir") and not custom:
        table = _columnar(only, chosen, input_format, max_file_size, prefetch)
        if table is not None:
            _finish_columnar(table, fmt, output, inputs, escape, quiet, provenance_file)
            return
    if prefetch is not None:
        prefetch.release()
    _score_batch(
        chain(first, walk),
        chosen,
        fmt,
        output,
        inputs,
        input_format,
        max_file_size,
        1 if "-" in paths or custom else jobs,
        escape,
        quiet,
        options,
        provenance_file,
    )


def _score_duckdb(
    paths: tuple[str, ...],
    scale_name: str | None,
    fmt: str | None,
    output: Path | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    no_escape_formulas: bool,
    quiet: bool,
    provenance_file: Path | None,
) -> None:
    """`score --engine duckdb`: the scale compiled to SQL and run by DuckDB."""
    from ketascore.cli.common import _READ_OPTIONS

    if output is None or scale_name is None:
        raise UsageError("--engine duckdb needs --scale and -o FILE (.csv, .jsonl or .parquet)")
    if fmt is None:
        fmt = output.suffix.lower().lstrip(".")
    if fmt not in ("csv", "jsonl", "parquet"):
        raise UsageError("--engine duckdb writes csv, jsonl or parquet")
    given = click.get_current_context().meta.get(_READ_OPTIONS, {})
    if any(v for k, v in given.items() if k != "map"):
        raise UsageError("--engine duckdb reads CSV and Parquet tables: only --map applies")
    from ketascore.engines.duckdb_inputs import KeyChecks

    # first thing: open DuckDB and check the keys of Parquet inputs, in the background
    # (the subject and visit columns of a column map are known only once it is read)
    early = None if given.get("map") else KeyChecks.start(paths, include, exclude)
    try:
        try:
            from ketascore.engines.duckdb_engine import DuckDBEngineError, score_with_duckdb
            from ketascore.engines.sql import SqlError, read_column_map
        except ImportError:
            raise UsageError(
                "--engine duckdb needs DuckDB and sqlglot: pip install 'ketascore[duckdb]'"
            ) from None
        scale = load_scale_option(scale_name)
        check_output(output, list(paths))
        hashing = _HashInputs(paths, include, exclude)  # for the provenance, while scoring
        try:
            columns = read_column_map(given["map"]) if given.get("map") else None
            run = score_with_duckdb(
                list(paths),
                scale,
                output,
                fmt,
                columns=columns,
                include=include,
                exclude=exclude,
                escape_formulas=not no_escape_formulas,
                prepared=early,
            )
        except (DuckDBEngineError, SqlError) as exc:
            raise UsageError(str(exc)) from None
    finally:
        if early is not None:
            early.stop()
    if run.issues:
        from ketascore.present.render import print_issues

        print_issues(console(stderr=True), run.issues)
    hashes = hashing.result(run)
    write_provenance(_provenance([], scale, hashes), "csv", output, provenance_file, list(paths))
    if not quiet:
        click.echo(_summary_line(run.summary()), err=True)
    sys.exit(Exit.OK if run.ok else Exit.PROBLEMS)


def _file_digest(name: str) -> str | None:
    from ketascore.core.provenance import file_digest

    try:
        return file_digest(name)
    except OSError:  # the engine reports what it cannot read
        return None


class _HashInputs:
    """The sha256 of each input file of ``score --engine duckdb``, computed in a thread while
    DuckDB scores them (hashlib lets go of the GIL)."""

    def __init__(self, paths: tuple[str, ...], include: tuple[str, ...], exclude: tuple[str, ...]):
        import threading

        self._paths, self._include, self._exclude = paths, include, exclude
        self._hashes: dict[str, str] = {}
        self._thread = threading.Thread(target=self._run, name="ketascore-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from ketascore.engines.duckdb_inputs import find_input_files

        with contextlib.suppress(Exception):  # the engine reports what it cannot read
            for name in find_input_files(list(self._paths), self._include, self._exclude):
                digest = _file_digest(str(name))
                if digest is not None:
                    self._hashes[str(name)] = digest

    def result(self, run: Any) -> dict[str, str]:
        """The hashes of the files the run read (those hashed again if the walk differed)."""
        self._thread.join()
        out: dict[str, str] = {}
        for name in getattr(run, "files", []):
            digest = self._hashes.get(str(name)) or _file_digest(str(name))
            if digest is not None:
                out[str(name)] = digest
        return out


def _provenance(results: Any, chosen: Any, hashes: dict[str, str]) -> dict[str, Any]:
    """Which scales (id, version, sha256) and which inputs (sha256) made these results."""
    from ketascore.core.library import ScaleSet
    from ketascore.core.provenance import build_provenance

    known = ScaleSet([chosen] if chosen is not None else [])
    ids = {chosen.id} if chosen is not None else {r.scale for r in results if r.scale}
    scales = [s for s in (known.get(i) for i in sorted(ids)) if s is not None]
    return build_provenance(scales, hashes, "ketascore score")


def _finish_columnar(
    read: Any,
    fmt: str,
    output: Path | None,
    inputs: list[str],
    escape: bool,
    quiet: bool,
    provenance_file: Path | None,
) -> None:
    from ketascore.engines.columnar import csv_header, iter_csv
    from ketascore.writers import tabular as out

    counts = {"records": 0, "scored": 0, "with_problems": 0}

    def count(table: Any) -> tuple[int, int, int]:
        kept = table.kept()
        return (
            int(kept.shape[0]),
            int(table.scored_rows()[kept].sum()),
            int(table.problem_rows()[kept].sum()),
        )

    def add(numbers: tuple[int, int, int]) -> None:
        counts["records"] += numbers[0]
        counts["scored"] += numbers[1]
        counts["with_problems"] += numbers[2]

    def tables() -> Iterator[Any]:
        for table in read.tables():
            add(count(table))
            yield table

    def summary() -> dict[str, int]:
        return {"files": len(read.files), **counts, "file_issues": len(read.issues)}

    def results() -> Iterator[Any]:
        for table in tables():
            yield from table.results()

    def provenance() -> dict[str, Any]:
        return _provenance([], read.plan.scale, {read.file: read.digest})

    if fmt == "csv":

        def text_of(table: Any) -> tuple[list[Any], tuple[int, int, int]]:
            """A chunk's lines (bytes-like pieces) and counts, made in the thread that
            scored it."""
            return list(iter_csv(table, escape_formulas=escape)), count(table)

        def chunks() -> Iterator[Any]:
            header = None
            for table, (text, numbers) in read.scored(text_of, 2):
                add(numbers)
                if header is None and numbers[0]:
                    header = csv_header(table, escape_formulas=escape)
                    yield header.encode("utf-8")
                yield from text
            if header is None:
                yield out.score_csv([], [], escape_formulas=escape).encode("utf-8")

        _write_bytes(chunks(), output, inputs)
    elif fmt == "jsonl":
        emit(out.score_jsonl(results(), read.issues, provenance()), output, inputs)
    else:
        emit(_json_document(results(), read.issues, summary, provenance), output, inputs)
    write_provenance(provenance(), fmt, output, provenance_file, inputs)
    totals = summary()
    if not quiet:
        click.echo(_summary_line(totals), err=True)
    problems = totals["with_problems"] > 0 or any(i.severity == "error" for i in read.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)


def _score_batch(
    items: Iterator[Any],
    chosen: Any,
    fmt: str,
    output: Path | None,
    inputs: list[str],
    input_format: str | None,
    max_file_size: int,
    jobs: int | None,
    escape: bool,
    quiet: bool,
    options: Any = None,
    provenance_file: Path | None = None,
) -> None:
    from ketascore.core.library import ScaleSet
    from ketascore.engines.batch import Settings, default_jobs, score_files
    from ketascore.writers import tabular as out

    known = ScaleSet([chosen] if chosen is not None else [])
    settings = Settings(
        fmt=input_format,
        scale_ids=tuple(known.ids()),
        max_file_size=max_file_size,
        chosen=chosen,
        read_options=options,
    )
    show = not quiet and is_tty(sys.stderr)
    bar = _progress(show)
    with bar as progress:
        batch = score_files(
            items,
            settings,
            jobs=jobs or default_jobs(),
            progress=progress,
            walked=bar.set_total,
        )
    results, issues = batch.results, batch.issues
    files = len(batch.files)
    if fmt == "table":
        from ketascore.present.render import print_issues, score_tables

        out_console = console()
        for table in score_tables(results):
            out_console.print(table)
        print_issues(console(stderr=True), issues + [i for r in results for i in r.issues])
    provenance = _provenance(results, chosen, batch.extra.get("hashes", {}))
    if fmt == "json":
        emit(out.score_json(results, issues, files, {"provenance": provenance}), output, inputs)
    elif fmt == "jsonl":
        emit(out.score_jsonl(results, issues, provenance), output, inputs)
    elif fmt == "csv":
        emit(out.score_csv(results, issues, escape_formulas=escape), output, inputs)
    elif fmt == "fhir":
        from ketascore.writers.fhir import fhir_json

        emit(fhir_json(results, [s for s in [chosen] if s is not None]), output, inputs)
    if fmt != "table":
        write_provenance(provenance, fmt, output, provenance_file, inputs)
    summary = out.score_summary(results, issues, files)
    if not quiet:
        click.echo(_summary_line(summary), err=True)
    problems = any(i.severity == "error" for i in issues) or any(not r.ok for r in results)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)


class _progress:
    """A rich progress bar on stderr (files and records done, rate, time left), or nothing."""

    def __init__(self, show: bool):
        self.show = show
        self.bar: Any = None
        self.task: Any = None

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def __enter__(self) -> Any:
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[records]:,} records"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("score", total=None, records=0, rate="")

        def update(files_done: int, records_done: int) -> None:
            elapsed = self.bar.tasks[0].elapsed or 0.0
            rate = f"{files_done / elapsed:,.0f} files/s" if elapsed > 0 else ""
            self.bar.update(self.task, completed=files_done, records=records_done, rate=rate)

        return update

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()


def change_columnar(
    paths: tuple[str, ...],
    scale: Any,
    score_name: str,
    baseline: str | None,
    response_percent: float | None,
    remission_at_most: float | None,
    summary_only: bool,
    output: Path | None,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    input_format: str | None,
    max_file_size: int,
) -> bool:
    """`ketascore change --format csv` of one big wide CSV file, in columns: the same
    bytes as the record path. False when the file is not one the columns take."""
    if len(paths) != 1 or paths[0] == "-" or Path(paths[0]).is_dir():
        return False
    from ketascore.cli.common import _READ_OPTIONS

    if any(click.get_current_context().meta.get(_READ_OPTIONS, {}).values()):
        return False  # --map, --sheet ...: the record readers apply them
    read = _columnar(paths[0], scale, input_format, max_file_size)
    if read is None:
        return False
    from ketascore.cli.common import write_provenance
    from ketascore.core.provenance import build_provenance
    from ketascore.core.values import clean_number
    from ketascore.engines.columnar import change_csv_columnar

    made = change_csv_columnar(
        read,
        scale,
        score_name,
        baseline_visit=baseline,
        response_percent=clean_number(response_percent) if response_percent else None,
        remission_at_most=clean_number(remission_at_most)
        if remission_at_most is not None
        else None,
        summary=summary_only,
        escape_formulas=not no_escape_formulas,
    )
    if made is None:
        return False
    text, issues = made
    _write_bytes(iter([text]), output, list(paths))
    provenance = build_provenance([scale], {read.file: read.digest}, "ketascore change")
    write_provenance(provenance, "csv", output, provenance_file, list(paths))
    problems = (
        any(i.severity == "error" for i in read.issues)
        or any(i.severity == "error" for i in issues)
        or any(bool(t.problem_rows()[t.kept()].any()) for t in read.tables())
    )
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
