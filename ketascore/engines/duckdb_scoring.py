"""How the DuckDB engine scores (``score_with_duckdb`` calls ``score``):
the input view, the checks, the scale's query, the output and the summary.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlglot import exp

from ketascore.core.issues import ISSUE_TYPES, Issue, make_issue
from ketascore.core.scale import Scale
from ketascore.engines.duckdb_engine import (
    OUTPUT_FORMATS,
    DuckDBEngineError,
    DuckDBOptions,
    DuckDBRun,
)
from ketascore.engines.duckdb_inputs import (
    CSV_SUFFIXES,
    NUMBER_TYPES,
    PARQUET_SUFFIXES,
    KeyChecks,
    KeyPlan,
    duckdb_config,
    find_input_files,
    key_checks,
    kind_of,
    repeats,
)
from ketascore.engines.sql import (
    ColumnMap,
    CompiledScale,
    TableLayout,
    compile_row_checks,
    compile_scale,
    plan_columns,
)

_INTERNAL = ("_ks_file", "_ks_order")
# How the scores are written to Parquet. Dictionary encoding is kept for columns of at most
# DICTIONARY_LIMIT distinct values in a row group (scores, bands, counts, flags, codes):
# columns with more (subjects, mostly) are written plain as soon as that shows, instead of
# after a dictionary of a fifth of the row group was built and thrown away. The statistics
# of every column come back from the COPY (for the summary).
DICTIONARY_LIMIT = 256
SCORES_PARQUET = (
    f"FORMAT parquet, COMPRESSION zstd, DICTIONARY_SIZE_LIMIT {DICTIONARY_LIMIT}, RETURN_STATS true"
)


# --------------------------------------------------------------------------------------
# Input files


@dataclass
class _CsvFile:
    path: str
    delimiter: str
    header: tuple[str, ...]
    encoding: str


def _check_encoding(path: str) -> int | None:
    """The line of the first byte that is not UTF-8, or None when the file is UTF-8."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return lines + chunk[: max(exc.start, 0)].count(b"\n") + 1
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return lines + 1
    return None


def _inspect_csv(path: str, issues: list[Issue]) -> _CsvFile | None:
    """Delimiter, header and encoding of a CSV file, as the Python reader finds them."""
    from ketascore.readers import repeated_columns, sniff_delimiter

    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        issues.append(make_issue("file-unreadable", file=path, reason=exc.strerror or str(exc)))
        return None
    if b"\x00" in head[:8192]:
        issues.append(make_issue("file-format", "binary", file=path, formats="CSV"))
        return None
    encoding = "utf-8"
    bad_line = _check_encoding(path)
    if bad_line is not None:
        issues.append(make_issue("encoding", "file", file=path, line=bad_line))
        encoding = "latin-1"
    text = head.decode(encoding, errors="replace").removeprefix("\ufeff")
    if not text.strip():
        issues.append(make_issue("file-empty", file=path))
        return None
    first = text.split("\n", 1)[0].rstrip("\r")
    delimiter = sniff_delimiter(first)
    header = tuple(c.strip() for c in next(csv.reader([first], delimiter=delimiter), []))
    folded = [h.casefold() for h in header]
    repeated = repeated_columns(header, path)
    if repeated is not None:
        issues.append(repeated)
        return None
    if {"item", "value", "scale"} <= set(folded):
        issues.append(make_issue("file-format", "long-layout", file=path))
        return None
    return _CsvFile(path, delimiter, header, encoding)


def _has_columns(
    columns: Sequence[str], needed: Sequence[str], path: str, issues: list[Issue]
) -> bool:
    folded = {c.casefold() for c in columns}
    for name in needed:
        if name.casefold() not in folded:
            issues.append(
                make_issue(
                    "csv-columns",
                    "missing",
                    file=path,
                    line=1,
                    column=name,
                    columns=list(columns)[:12],
                )
            )
            return False
    return True


def _arg(name: str, value: Any) -> exp.Expr:
    if isinstance(value, bool):
        literal: exp.Expr = exp.Boolean(this=value)
    elif isinstance(value, list | tuple):
        literal = exp.Array(expressions=[exp.Literal.string(str(v)) for v in value])
    else:
        literal = exp.Literal.string(str(value))
    return exp.EQ(this=exp.column(name), expression=literal)


def _table_function(name: str, files: Sequence[str], **options: Any) -> exp.Select:
    paths = exp.Array(expressions=[exp.Literal.string(f) for f in files])
    call = exp.Anonymous(this=name, expressions=[paths, *(_arg(k, v) for k, v in options.items())])
    return exp.select(exp.Star()).from_(exp.Table(this=call))


# --------------------------------------------------------------------------------------
# Output formatting


def _number_text(column: exp.Expr) -> exp.Expr:
    """A double as Python prints the engine's numbers: whole ones without a point."""
    whole = exp.and_(
        exp.EQ(this=column, expression=exp.Floor(this=column.copy())),
        exp.LT(this=exp.Abs(this=column.copy()), expression=exp.Literal.number(10**15)),
    )
    as_int = exp.cast(exp.cast(column.copy(), "bigint"), "varchar")
    return exp.Case(
        ifs=[exp.If(this=whole, true=as_int)], default=exp.cast(column.copy(), "varchar")
    )


def _error_pattern() -> str:
    codes = sorted(c for c, t in ISSUE_TYPES.items() if t.severity == "error")
    return "(^|;)(" + "|".join(codes) + ")(;|$)"


def _q(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name, quoted=True))


# --------------------------------------------------------------------------------------
# The run


def score(
    inputs: str | Path | Sequence[str | Path],
    scale: Scale | str,
    output: str | Path,
    fmt: str | None,
    options: DuckDBOptions,
    prepared: KeyChecks | None = None,
) -> DuckDBRun:
    """``ketascore.engines.duckdb_engine.score_with_duckdb`` (its arguments and result)."""
    started = time.perf_counter()
    columns, include, exclude = options.columns, options.include, options.exclude
    merge_duplicates, max_row_issues = options.merge_duplicates, options.max_row_issues
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    output = Path(output)
    fmt = fmt or OUTPUT_FORMATS.get(output.suffix.lower())
    if fmt not in ("csv", "jsonl", "parquet"):
        raise DuckDBEngineError(
            f"cannot tell the output format of {output}; give csv, jsonl or parquet"
        )
    cmap = columns or ColumnMap()
    files = find_input_files(inputs, include, exclude)
    target = output.resolve()
    for given in inputs:
        resolved = Path(given).resolve()
        if resolved == target or (resolved.is_dir() and resolved in target.parents):
            raise DuckDBEngineError(
                f"refusing to write {output}: it is an input (or inside an input folder)"
            )
    issues: list[Issue] = []
    for file in files:
        if not file.exists():
            raise DuckDBEngineError(f"{file}: no such file or folder")
    if not files:
        raise DuckDBEngineError("no CSV or Parquet files found in " + ", ".join(map(str, inputs)))

    config = duckdb_config(options.threads, options.memory_limit, options.temp_directory)
    # The database is opened, and the keys of Parquet files checked, in the background
    # while the scale is loaded and compiled.
    if prepared is not None and prepared.config != config:
        prepared.stop()
        prepared = None
    early = prepared or KeyChecks.for_files(
        files, config, cmap.subject, cmap.visit, merge_duplicates
    )
    try:
        import duckdb

        from ketascore.core.library import builtin_ids, resolve_scale

        if isinstance(scale, str):
            scale = resolve_scale(scale)
        con = early.connection() if early is not None else None
        if con is None:
            con = duckdb.connect(":memory:", config=config)
            # DuckDB's own progress bar would write to the terminal of a quiet command
            con.execute("SET enable_progress_bar = false")
    except BaseException:
        if early is not None:
            early.stop()
        raise
    try:
        run = DuckDBRun([str(f) for f in files], output, fmt)
        view = _input_view(con, files, cmap, issues)
        if view is None:
            raise DuckDBEngineError(
                "no input file could be read:\n" + "\n".join(i.message for i in issues)
            )
        names, types = view
        kinds = {name: kind_of(typ) for name, typ in zip(names, types, strict=True)}
        layout, mapped = plan_columns(scale, names, kinds, cmap, builtin_ids())
        parquet = [str(f) for f in files if f.suffix.lower() in PARQUET_SUFFIXES]
        chunks: dict[str, _Chunks] = {}
        if parquet and len(parquet) == len(run.files):
            candidates = _range_candidates(scale, mapped, types, names)
            chunks = _column_chunks(con, parquet, [*candidates, mapped.visit])
            layout = _trust_statistics(layout, mapped, candidates, chunks)
        if fmt == "jsonl":  # the file of each row, for the source of its issues
            layout = replace(layout, carry=[*layout.carry, "_ks_file"])
        table = "_ks_input"
        checked = layout
        # Subjects and visits in Parquet files are seldom blank or surrounded by spaces:
        # they are scored as they are while the checks make sure of it (else: again)
        plain: list[str] = []
        keys: str | None = None
        counted: Callable[[], tuple[int, int] | None] | None = None
        if parquet and len(parquet) == len(run.files):
            # the checks read the columns as they are (numbers as the doubles the query
            # makes of them), in every row: when those are plain and no pair repeats,
            # neither holds for the rows scored
            plan = KeyPlan.of(parquet, mapped.subject, mapped.visit, kinds, merge_duplicates)
            if early is not None and early.expect(plan):
                checking = early
                counted = lambda: checking.counts(plan)  # noqa: E731
            keys = plan.keys(table)
            plain = [mapped.subject if c == "subject" else mapped.visit for c in plan.plain]
            layout = replace(layout, kinds={**layout.kinds, **dict.fromkeys(plain, "plain")})
            if mapped.visit in plain:
                layout = replace(layout, visits=_few_values(con, mapped.visit, chunks))
        elif early is not None:
            early.stop()

        def compiled_for(duplicates: bool) -> CompiledScale:
            return compile_scale(
                scale,
                "duckdb",
                table="_ks_ordered" if duplicates else table,
                columns=mapped,
                layout=layout,
                duplicates=duplicates,
                order_by="_ks_order" if duplicates else None,
                details=fmt == "jsonl",
                enums=True,
            )

        compiled: CompiledScale | None = None
        if keys is None:
            compiled = compiled_for(False)
            keys = compiled.keys.sql("duckdb")
        folder = output.parent if str(output.parent) else Path(".")
        temps = [
            tempfile.mkstemp(prefix=f".{output.name}.", suffix=".part", dir=folder)
            for _ in range(2)
        ]
        for fd, _ in temps:
            os.close(fd)
        scores, final = (path for _, path in temps)
        try:
            for path in (scores, final):
                os.unlink(path)  # DuckDB creates the files itself
            # The checks of the input (rows the reader reports; plain and repeated subjects and
            # visits) run on a second connection while the first scores the rows.
            cursor = con.cursor()
            pool = ThreadPoolExecutor(max_workers=1)
            checks = pool.submit(
                _input_checks,
                cursor,
                lambda shape: _row_issues(
                    cursor, scale, mapped, shape, names, issues, max_row_issues
                ),
                checked,
                keys,
                merge_duplicates,
                ["subject" if c == mapped.subject else "visit" for c in plain],
                layout,
                counted,
            )
            # Score once into Parquet, as if every subject and visit appeared once; when the
            # checks find one that repeats (rare), score again, merging the rows as the
            # Python engine does.
            try:
                compiled = compiled or compiled_for(False)
                written = con.execute(_copy(compiled.query, scores, SCORES_PARQUET)).fetchall()
            except BaseException:
                cursor.interrupt()
                if early is not None:
                    early.stop()
                pool.shutdown(wait=True)
                cursor.close()
                raise
            pool.shutdown(wait=True)
            try:
                repeated, unplain = checks.result()
            finally:
                cursor.close()
            if unplain:  # (rare) some subject or visit needs stripping: score them again
                layout = checked
                compiled = compiled_for(False)
                repeated = merge_duplicates and repeats(con, compiled.keys.sql("duckdb"))
                if not repeated:
                    written = con.execute(_copy(compiled.query, scores, SCORES_PARQUET)).fetchall()
            if repeated:
                _order_rows(con, files)
                compiled = compiled_for(True)
                written = con.execute(_copy(compiled.query, scores, SCORES_PARQUET)).fetchall()
            _summarise(con, scale, scores, run, written, compiled.issue_texts)
            run.sql = compiled.sql(pretty=False)
            if fmt == "parquet":
                os.replace(scores, output)
            else:
                escape = options.escape_formulas
                con.execute(_write(compiled, scale, layout, scores, final, fmt, escape))
                os.replace(final, output)
        finally:
            for path in (scores, final):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        run.issues = issues
        run.seconds = time.perf_counter() - started
        return run
    except duckdb.Error as exc:
        raise DuckDBEngineError(f"DuckDB could not score the input: {exc}") from None
    finally:
        if early is not None:
            early.stop()
        con.close()


def _input_view(
    con: Any, files: list[Path], cmap: ColumnMap, issues: list[Issue]
) -> tuple[list[str], list[str]] | None:
    """Create the view _ks_input over every usable file; its column names and types."""
    import duckdb

    needed = [cmap.subject, cmap.visit]
    groups: dict[tuple[str, tuple[str, ...], str], list[str]] = {}
    parquet: list[str] = []
    for file in files:
        path = str(file)
        if file.suffix.lower() in PARQUET_SUFFIXES:
            try:
                described = con.execute(
                    _table_function("read_parquet", [path]).limit(0).sql("duckdb")
                ).description
            except duckdb.Error as exc:
                issues.append(make_issue("file-format", "parquet", file=path, error=str(exc)))
                continue
            if _has_columns([d[0] for d in described], needed, path, issues):
                parquet.append(path)
            continue
        if file.suffix.lower() not in CSV_SUFFIXES:
            issues.append(make_issue("file-format", "table-format", file=path))
            continue
        found = _inspect_csv(path, issues)
        if found is None or not _has_columns(found.header, needed, path, issues):
            continue
        groups.setdefault((found.delimiter, found.header, found.encoding), []).append(path)
    parts: list[exp.Select] = []
    for n, ((delimiter, header, encoding), paths) in enumerate(groups.items()):
        parts.append(
            _table_function(
                "read_csv",
                paths,
                names=list(header),
                header=True,
                delim=delimiter,
                quote='"',
                escape='"',
                all_varchar=True,
                encoding=encoding,
                filename="_ks_file",
                store_rejects=True,
                ignore_errors=True,
                rejects_table=f"_ks_rejects_{n}",
                rejects_scan=f"_ks_scans_{n}",
            )
        )
    if parquet:
        parts.append(
            _table_function("read_parquet", parquet, union_by_name=True, filename="_ks_file")
        )
    if not parts:
        return None
    union: exp.Query = parts[0]
    for part in parts[1:]:
        union = exp.Union(this=union, expression=part, distinct=False, by_name=True)
    create = exp.Create(this=exp.to_table("_ks_input"), kind="VIEW", expression=union, replace=True)
    con.execute(create.sql("duckdb"))
    described = con.execute("SELECT * FROM _ks_input LIMIT 0").description
    names = [d[0] for d in described]
    types = [str(row[1]) for row in con.execute("DESCRIBE _ks_input").fetchall()]
    return names, types


INTEGER_TYPES = NUMBER_TYPES[:10]
DOUBLE_TYPE = exp.DataType.build("double")


def _range_candidates(
    scale: Scale, mapped: ColumnMap, types: list[str], names: list[str]
) -> dict[str, tuple[float, float]]:
    """The integer item columns (casefolded) whose statistics could show that they hold
    only allowed values or NULL: the range of each."""
    type_of = {n.casefold(): t.split("(")[0].upper() for n, t in zip(names, types, strict=True)}
    codes = [c for c in mapped.missing_codes if not isinstance(c, str)]
    candidates: dict[str, tuple[float, float]] = {}
    for item_id, column in mapped.items.items():
        rule = scale.items[item_id]
        if rule.allowed is not None or type_of.get(column.casefold()) not in INTEGER_TYPES:
            continue
        if any(rule.lo <= c <= rule.hi for c in codes):
            continue
        candidates[column.casefold()] = (rule.lo, rule.hi)
    return candidates


# (every row group has statistics, the least minimum, the greatest maximum, bytes, values)
_Chunks = tuple[bool, float | None, float | None, int, int]


def _column_chunks(con: Any, files: list[str], columns: Iterable[str]) -> dict[str, _Chunks]:
    """What the Parquet metadata of ``files`` tells of each of ``columns`` (by casefolded
    name), read once for all of them."""
    wanted = sorted({c.casefold() for c in columns})
    if not wanted:
        return {}
    meta = exp.func("parquet_metadata", exp.Array(expressions=[_lit(f) for f in files]))
    path = exp.func("lower", exp.column("path_in_schema"))
    known = exp.or_(
        exp.Not(this=exp.Is(this=exp.column("stats_min_value"), expression=exp.Null())),
        exp.EQ(this=exp.column("stats_null_count"), expression=exp.column("num_values")),
    )
    query = (
        exp.select(
            path,
            exp.func("bool_and", known),
            exp.func("min", exp.TryCast(this=exp.column("stats_min_value"), to=DOUBLE_TYPE)),
            exp.func("max", exp.TryCast(this=exp.column("stats_max_value"), to=DOUBLE_TYPE)),
            exp.func("sum", exp.column("total_uncompressed_size")),
            exp.func("sum", exp.column("num_values")),
        )
        .from_(exp.Table(this=meta))
        .where(exp.In(this=path.copy(), expressions=[_lit(c) for c in wanted]))
        .group_by(path.copy())
    )
    found: dict[str, _Chunks] = {}
    for name, complete, low, high, size, count in con.execute(query.sql("duckdb")).fetchall():
        found[str(name)] = (bool(complete), low, high, int(size or 0), int(count or 0))
    return found


def _trust_statistics(
    layout: TableLayout,
    mapped: ColumnMap,
    candidates: dict[str, tuple[float, float]],
    chunks: dict[str, _Chunks],
) -> TableLayout:
    """Integer item columns whose Parquet statistics (every row group's minimum and maximum)
    lie within the item's range hold only allowed values or NULL: mark them so the query
    does not check each value (the checks could find nothing)."""
    kinds = dict(layout.kinds)
    for name, (lo, hi) in candidates.items():
        if name not in chunks:
            continue
        complete, low, high, _, _ = chunks[name]
        if complete and (low is None or low >= lo) and (high is None or high <= hi):
            actual = next(c for c in mapped.items.values() if c.casefold() == name)
            kinds[actual] = "allowed"
    return replace(layout, kinds=kinds)


def _few_values(con: Any, column: str, chunks: dict[str, _Chunks]) -> list[str]:
    """The distinct values of a text ``column`` of the Parquet input (NULL aside) when they
    are few (at most DICTIONARY_LIMIT), else none. They are looked for only where the files
    store the column in under a byte a value (dictionary codes, not texts: ``chunks``),
    which makes the search cheap."""
    _, _, _, size, count = chunks.get(column.casefold(), (False, None, None, 0, 0))
    if not count or size >= count:
        return []
    values = (
        exp.select(_q(column))
        .distinct()
        .from_("_ks_input")
        .where(exp.Not(this=exp.Is(this=_q(column), expression=exp.Null())))
        .limit(DICTIONARY_LIMIT + 1)
    )
    found = [str(row[0]) for row in con.execute(values.sql("duckdb")).fetchall()]
    return found if len(found) <= DICTIONARY_LIMIT else []


def _order_rows(con: Any, files: list[Path]) -> None:
    """Rows in the order the Python reader meets them (file by file, row by row), for
    merging duplicates: materialised once, since CSV rows have no row number."""
    temporary = exp.Properties(expressions=[exp.TemporaryProperty()])
    rows = exp.Create(
        this=exp.to_table("_ks_rows"),
        kind="TABLE",
        expression=exp.select(exp.Star()).from_("_ks_input"),
        replace=True,
        properties=temporary,
    )
    con.execute(rows.sql("duckdb"))
    values = exp.values(
        [(str(f), i) for i, f in enumerate(files)], alias="_ks_files", columns=["path", "idx"]
    )
    order = exp.Add(
        this=exp.Mul(this=exp.column("idx", "f"), expression=exp.Literal.number(1 << 40)),
        expression=exp.column("rowid", "r"),
    )
    ordered = (
        exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("r")))
        .select(exp.alias_(order, "_ks_order"))
        .from_(exp.alias_(exp.to_table("_ks_rows"), "r", table=True))
        .join(
            exp.alias_(exp.select(exp.Star()).from_(values).subquery(), "f", table=True),
            on=exp.EQ(this=exp.column("_ks_file", "r"), expression=exp.column("path", "f")),
        )
    )
    view = exp.Create(
        this=exp.to_table("_ks_ordered"), kind="VIEW", expression=ordered, replace=True
    )
    con.execute(view.sql("duckdb"))


_CELLS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _input_checks(
    con: Any,
    row_issues: Callable[[TableLayout], None],
    layout: TableLayout,
    keys: str,
    merge: bool,
    plain: list[str],
    assumed: TableLayout,
    counted: Callable[[], tuple[int, int] | None] | None = None,
) -> tuple[bool, bool]:
    """Over the subject and visit of the rows (the query ``keys``): whether some value of
    the ``plain`` columns is not plain (blank, or starting or ending with anything but
    visible ASCII) and, unless so, whether some pair repeats (when ``merge``). The counts
    of ``key_checks`` come from ``counted`` when it has them (the checks started early).
    Then the rows the reader reports (``row_issues``: ``_row_issues`` on the same cursor),
    with the ``assumed`` layout (plain subject and visit) when it holds. Returns (some pair
    repeats, some value is not plain)."""
    # one pass over the two columns: in file order (one thread) when looking for repeats
    found = counted() if counted is not None else None
    if found is None:
        found = key_checks(con, keys, merge, plain) if merge or plain else (0, 0)
    failures, unplain = found
    row_issues(layout if unplain else assumed)
    if unplain:
        return False, True
    return bool(merge and failures > 1 and repeats(con, keys, checked_order=True)), False


def _row_issues(
    con: Any,
    scale: Scale,
    mapped: ColumnMap,
    layout: TableLayout,
    names: list[str],
    issues: list[Issue],
    limit: int,
) -> None:
    """Rows the CSV reader reports: ragged or malformed CSV rows (with their line), rows
    with values but no subject or visit (skipped), unusable dates and days (left empty);
    the last three counted per file."""
    checks = compile_row_checks(
        scale,
        "duckdb",
        table="_ks_input",
        columns=mapped,
        layout=layout,
        all_columns=[n for n in names if n.casefold() not in _INTERNAL],
        group_by="_ks_file",
    )
    counts = con.execute(checks.sql("duckdb")).fetchall()  # (scans the CSV: rejects)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    rejected: dict[tuple[str, int], tuple[str, str]] = {}
    for name in sorted(t for t in tables if t.startswith("_ks_rejects_")):
        scans = name.replace("_ks_rejects_", "_ks_scans_")
        query = (
            exp.select("s.file_path", "e.line", "e.error_type", "e.error_message")
            .from_(exp.alias_(exp.to_table(name), "e", table=True))
            .join(exp.alias_(exp.to_table(scans), "s", table=True), using=["scan_id", "file_id"])
            .order_by("s.file_path", "e.line")
        )
        for path, line, error_type, message in con.execute(query.sql("duckdb")).fetchall():
            rejected.setdefault((str(path), int(line)), (str(error_type), str(message)))
    for (path, line), (error_type, message) in sorted(rejected.items())[:limit]:
        cells = _CELLS.search(message)
        if cells:
            issues.append(
                make_issue(
                    "csv-ragged-row",
                    file=path,
                    line=line,
                    cells=int(cells.group(2)),
                    columns=int(cells.group(1)),
                )
            )
        else:
            issues.append(
                make_issue(
                    "parse-error",
                    "csv-row",
                    file=path,
                    line=line,
                    kind=error_type.lower(),
                    error=message,
                )
            )
    if len(rejected) > limit:
        issues.append(make_issue("parse-error", "more-rows", count=len(rejected) - limit))
    for path, no_ids, bad_date, bad_day, _ in counts:
        if no_ids:
            issues.append(make_issue("missing-field", "rows", file=path, count=no_ids))
        for count, what in ((bad_date, "date"), (bad_day, "study day")):
            if count:
                issues.append(make_issue("bad-field", "rows", file=path, count=count, field=what))


def _copy(select: exp.Query, path: str, options: str) -> str:
    """COPY (select) TO path (options), built on sqlglot's tree of a COPY statement."""
    copy: exp.Expr = exp.maybe_parse(f"COPY (SELECT 1) TO 'out' ({options})", dialect="duckdb")
    assert isinstance(copy, exp.Copy)
    copy.set("this", select.subquery())
    copy.set("files", [exp.Literal.string(path)])
    return copy.sql("duckdb")


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_formula(column: exp.Expr) -> exp.Expr:
    """output.escape_formula in SQL: text a spreadsheet would run gets a leading quote."""
    first = exp.func("left", column, exp.Literal.number(1))
    risky = exp.In(this=first, expressions=[_lit(c) for c in FORMULA_START])
    quoted = exp.DPipe(this=_lit("'"), expression=column.copy())
    return exp.Case(ifs=[exp.If(this=risky, true=quoted)], default=column.copy())


def _write(
    compiled: CompiledScale,
    scale: Scale,
    layout: TableLayout,
    scores: str,
    path: str,
    fmt: str,
    escape_formulas: bool = True,
) -> str:
    """The COPY statement that writes the scores (a Parquet file) to ``path`` as CSV or
    JSON Lines."""
    from ketascore.writers.tabular import escape_formula

    scored = exp.Table(this=exp.func("read_parquet", _lit(scores)))
    shown = [c for c in compiled.columns if c not in ("not_applicable", "issue_items", "_ks_file")]
    numbers = {"day", *(r.id for r in scale.scores)}
    text = {"subject", "visit", "date", "scale", "scale_version", "flags", "issues"}
    text |= {f"{r.id}_band" for r in scale.scores}
    text |= {c for c in layout.carry if layout.kinds.get(c, "text") == "text"}
    if fmt == "csv":
        cols = []
        for c in shown:
            value = _number_text(_q(c)) if c in numbers else _q(c)
            name = c
            if escape_formulas:
                value = _escape_formula(value) if c in text else value
                name = escape_formula(c)
            cols.append(exp.alias_(value, name, quoted=True))
        select = exp.select(*cols).from_(scored)
        return _copy(
            select,
            path,
            "FORMAT csv, HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NULLSTR ''",
        )
    line = exp.alias_(_json_line(scale, layout), "line")
    select = exp.select(line).from_(scored)
    # each row is one finished JSON text: written as is, one per line
    return _copy(select, path, "FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01'")


def _lit(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def _json_object(pairs: list[tuple[str, exp.Expr]]) -> exp.Expr:
    args: list[exp.Expr] = []
    for key, value in pairs:
        args += [_lit(key), value]
    return exp.func("json_object", *args)


def _split(name: str) -> exp.Expr:
    parts = exp.func("string_split", _q(name), _lit(";"))
    return exp.func("coalesce", parts, exp.cast(exp.Array(expressions=[]), "varchar[]"))


def _json_line(scale: Scale, layout: TableLayout) -> exp.Expr:
    """One JSON object per row, shaped like ``ketascore score --format jsonl``."""

    def number(name: str) -> exp.Expr:
        return exp.cast(_number_text(_q(name)), "json")

    scores = [r.id for r in scale.scores]
    issues = exp.func(
        "list_transform",
        exp.func("range", exp.func("len", _split("issues"))),
        exp.Lambda(this=_issue_json(scale), expressions=[exp.to_identifier("i")]),
    )
    pairs: list[tuple[str, exp.Expr]] = [
        ("type", _lit("score")),
        ("subject", _q("subject")),
        ("visit", _q("visit")),
        ("date", _q("date")),
        ("day", number("day")),
        ("scale", _q("scale")),
        ("scale_version", _q("scale_version")),
        ("scores", _json_object([(s, number(s)) for s in scores])),
        ("bands", _json_object([(s, _q(f"{s}_band")) for s in scores])),
        ("items_answered", _json_object([(s, _q(f"{s}_items_answered")) for s in scores])),
        ("prorated", _json_object([(s, _q(f"{s}_prorated")) for s in scores])),
        ("flags", _split("flags")),
        ("classifications", _json_object([(c.id, _q(c.id)) for c in scale.classifications])),
        ("not_applicable", _split("not_applicable")),
        ("issues", issues),
        ("source", _json_object([("file", _q("_ks_file")), ("line", exp.Null())])),
    ]
    taken = {k for k, _ in pairs}
    pairs += [(c, _q(c)) for c in layout.carry if c != "_ks_file" and c not in taken]
    return exp.cast(_json_object(pairs), "varchar")


def _issue_json(scale: Scale) -> exp.Expr:
    """Issue i of a row as JSON: code, severity, the item, and a message built from the
    catalogue's title and hint (the Python engine's messages say more)."""

    def nth(name: str) -> exp.Expr:
        one = exp.Add(this=exp.column("i"), expression=exp.Literal.number(1))
        return exp.Bracket(this=_split(name), expressions=[one])

    code = nth("issues")
    item = exp.func("nullif", nth("issue_items"), _lit(""))

    def by_code(value: Any) -> exp.Expr:
        return exp.Case(
            ifs=[
                exp.If(this=exp.EQ(this=code.copy(), expression=_lit(c)), true=_lit(value(t)))
                for c, t in ISSUE_TYPES.items()
            ]
        )

    item_text = exp.func("coalesce", exp.func("concat", _lit(" item "), item.copy()), _lit(""))
    message = exp.func(
        "concat",
        _q("_ks_file"),
        _lit(": subject "),
        _q("subject"),
        _lit(", visit "),
        _q("visit"),
        _lit(", " + scale.id),
        item_text,
        _lit(": "),
        by_code(lambda t: t.title.lower()),
        _lit("; "),
        by_code(lambda t: t.hint),
    )
    return _json_object(
        [
            ("code", code),
            ("severity", by_code(lambda t: t.severity)),
            ("message", message),
            ("file", _q("_ks_file")),
            ("line", exp.Null()),
            ("subject", _q("subject")),
            ("visit", _q("visit")),
            ("scale", _lit(scale.id)),
            ("item", item),
            ("hint", by_code(lambda t: t.hint)),
        ]
    )


def _null_counts(written: list[tuple[Any, ...]]) -> tuple[int, dict[str, int]]:
    """Rows and NULLs per column of the Parquet file a COPY ... RETURN_STATS wrote."""
    ((_, rows, _, _, stats, *_),) = written
    nulls: dict[str, int] = {}
    for key, figures in stats.items():
        name = key[1:-1].replace('""', '"') if key.startswith('"') else key
        if "null_count" in figures:
            nulls[name] = int(figures["null_count"])
    return int(rows), nulls


def _summarise(
    con: Any,
    scale: Scale,
    path: str,
    run: DuckDBRun,
    written: list[tuple[Any, ...]],
    listed: Sequence[str] = (),
) -> None:
    """Records, scored and with-problems figures of the scores (a Parquet file). The
    statistics of the COPY that wrote it tell the records, and often the rest: rows are
    read (only the scores and the issues) when they do not. Issues ``listed`` in advance
    (an ENUM of a few texts) are counted per text."""
    records, nulls = _null_counts(written)
    values = [r.id for r in scale.scores]
    scored: int | None = None
    if any(nulls.get(v) == 0 for v in values):
        scored = records
    elif len(values) == 1 and values[0] in nulls:
        scored = records - nulls[values[0]]
    elif not values:
        scored = 0
    issues = _q("issues")
    problem = exp.and_(
        exp.Not(this=exp.Is(this=issues, expression=exp.Null())),
        exp.RegexpLike(this=issues.copy(), expression=_lit(_error_pattern())),
    )
    count = exp.func("count", exp.Star())
    source = exp.Table(this=exp.func("read_parquet", _lit(path)))
    problems: int | None = 0 if nulls.get("issues") == records else None
    if problems is None and listed:
        # a few texts known in advance (an ENUM): the rows of each, counted from the codes
        per_text = (
            exp.select(issues.copy(), count.copy())
            .from_(source.copy())
            .where(exp.Not(this=exp.Is(this=issues.copy(), expression=exp.Null())))
            .group_by(issues.copy())
        )
        error = re.compile(_error_pattern())
        counted = con.execute(per_text.sql("duckdb")).fetchall()
        problems = sum(int(n) for text, n in counted if error.search(str(text)))
    figures: list[exp.Expr] = []
    if scored is None:
        any_score = exp.or_(
            *[exp.Not(this=exp.Is(this=_q(v), expression=exp.Null())) for v in values]
        )
        figures.append(
            exp.Filter(this=count.copy(), expression=exp.Where(this=exp.paren(any_score)))
        )
    if problems is None:
        figures.append(exp.Filter(this=count.copy(), expression=exp.Where(this=exp.paren(problem))))
    found: list[int] = []
    if figures:
        query = exp.select(*figures).from_(source)
        found = [int(x) for x in con.execute(query.sql("duckdb")).fetchone()]
    run.records = records
    run.scored = found.pop(0) if scored is None else scored
    run.with_problems = found.pop(0) if problems is None else problems
