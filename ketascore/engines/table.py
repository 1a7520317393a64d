"""The table engine: tables (CSV and Parquet files, DataFrames) scored by the compiled SQL
of the scale, inside DuckDB (embedded, multi-threaded, larger than memory).

A run reads its sources as one table and scores every row with the query of
``ketascore.engines.sql`` into a temporary table. When a subject and visit repeat, it
scores again, merging the rows as the record engine merges records. The output is written
straight from DuckDB (CSV, Parquet), text by text by the query (JSON Lines and JSON:
``texts``) or handed over result by result.

The messages are the record path's own: the rows that carry an issue, and the rows the
readers report (ragged, without subject or visit, with an unusable date or day), are found
by the query, then read again by the reader of their source and scored by the record
engine, which write every message (so each names the file, line, subject, visit and item
exactly as ``ketascore score`` does on the record path).

A CSV file is taken only when DuckDB reads it exactly as the CSV reader does: UTF-8, no
quote characters or NUL bytes, one kind of line ending, a header the reader accepts for one
scale. ``csv_source`` returns None for anything else: the record readers read it.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import itertools
import os
import re
import signal
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ketascore.core.issues import ISSUE_TYPES, Issue, has_errors, make_issue, missing_id
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import Scale
from ketascore.core.values import (
    FLOAT_KINDS,
    NARROW_KINDS,
    Num,
    ascii_lower,
    clean_number,
    float_cell,
    sql_ascii_lower,
    sql_id,
    sql_is_nan,
    sql_strip,
    sql_text,
    strip,
)
from ketascore.engines import INTERRUPTS
from ketascore.engines.sql import ColumnMap, SqlError, compile_scale, plan_columns, quote

INTEGER_TYPES = (
    *("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"),
    *("UINTEGER", "UBIGINT"),
)
NUMBER_TYPES = ("FLOAT", "DOUBLE", "REAL")
FLOAT_TYPES = ("FLOAT", "REAL")  # (32-bit: an id of it is exact below 2^24 only)
CHUNK = 1 << 24


class TableEngineError(ValueError):
    """Sources the engine cannot score (nothing was written); the record path can."""


def available() -> bool:
    """Whether DuckDB is installed, 2.0 or later (before 2.0 its CSV writer quotes every
    text holding '#', whatever the COMMENT option: not the record engine's bytes)."""
    try:
        import duckdb
    except ImportError:
        return False
    major = str(getattr(duckdb, "__version__", "0")).split(".", 1)[0]
    return major.isdigit() and int(major) >= 2


def kind_of(duckdb_type: str) -> str:
    """How the compiler reads a column of this DuckDB type: integer, float (32-bit),
    number, decimal, boolean or text. (DuckDB reads a Parquet FLOAT16 column as a FLOAT,
    each value exactly: ``parquet_source`` makes its kind half.)"""
    base = duckdb_type.split("(")[0].upper()
    if base in INTEGER_TYPES:
        return "integer"
    if base in FLOAT_TYPES:
        return "float"
    if base in NUMBER_TYPES:
        return "number"
    if base == "DECIMAL":
        return "decimal"
    if base == "BOOLEAN":
        return "boolean"
    if base == '"NULL"':
        return "null"  # (no type: in a run of several files, the others' type is the column's)
    return "text"


# --------------------------------------------------------------------------------------
# Sources


@dataclass
class TableSource:
    """One table the engine reads: a file or a DataFrame (an Arrow table)."""

    name: str  # the file as given, or a label (<dataframe>)
    kind: str  # csv | parquet | arrow
    header: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    delimiter: str = ","
    newline: str = "\n"
    frame: Any = None
    sha256: str | None = None
    lines: int | None = None  # of a CSV file
    # whether a CSV file may repeat its header: it holds the word subject more than once
    headers: bool = True
    # columns read through an expression (a Parquet timestamp as the reader's ISO text)
    texts: dict[str, str] = field(default_factory=dict)

    def cells(self, text: str) -> list[str]:
        """The cells of a line of a CSV source: the texts between its delimiters (it holds
        no quote character, ``csv_source``, so the csv module reads them alike)."""
        return text.rstrip("\r\n").split(self.delimiter)

    def read_csv(self, options: str) -> str:
        """The read_csv call of a CSV source (its cells as text, as the CSV reader reads
        them), with ``options`` (what to do with a ragged row)."""
        columns = ", ".join(f"{sql_text(c)}: 'VARCHAR'" for c in self.header)
        newline = "'\\r\\n'" if self.newline == "\r\n" else "'\\n'"
        return (
            f"read_csv({sql_text(self.name)}, header = true, delim = {sql_text(self.delimiter)}, "
            f"quote = '', escape = '', new_line = {newline}, columns = {{{columns}}}, "
            f"auto_detect = false, null_padding = false, {options})"
        )

    def relation(
        self,
        index: int,
        ordered: bool = False,
        offset: int = 0,
        casts: dict[str, str] | None = None,
        ids: Collection[str] = (),
    ) -> str:
        """A SELECT of this source's columns, with its number (and, ``ordered``, each row's
        place in the run: ``offset`` plus its place in the source); the columns of ``casts``
        cast to its type (DOUBLE, VARCHAR), those of ``ids`` read as the id text of this
        source's type (``values.sql_id``)."""
        path = sql_text(self.name)
        place = "row_number() OVER () - 1"  # (each row's place in the source, if ``ordered``)
        if self.kind == "csv":
            read = self.read_csv(
                f"store_rejects = true, rejects_table = '_ks_rejects_{index}', "
                f"rejects_scan = '_ks_scans_{index}'"
            )
        elif self.kind == "parquet":
            read = f"read_parquet({path})"
            if ordered and "file_row_number" not in {c.casefold() for c in self.header}:
                # (the reader's row numbers: the window took 2.5 s more of 10M rows)
                read, place = f"read_parquet({path}, file_row_number = true)", "file_row_number"
        else:
            read = f"_ks_frame_{index}"
        repeats = self.kind == "csv" and self.headers
        where = f" WHERE NOT {sql_repeats_header(self.header)}" if repeats else ""
        read_as = {c: self.texts.get(c, quote(c)) for c in self.header}
        for c, to in (casts or {}).items():
            if c in read_as:
                read_as[c] = f"CAST({read_as[c]} AS {to})"
        for c in ids:
            if c in read_as:
                read_as[c] = sql_id(read_as[c], self.kinds.get(c, "text"))
        names = ", ".join(f"{e} AS {quote(c)}" if e != quote(c) else e for c, e in read_as.items())
        order = f", {offset} + {place} AS _ks_order" if ordered else ""
        return f"SELECT {names}, {index} AS _ks_file{order} FROM {read}{where}"


def sql_repeats_header(header: list[str]) -> str:
    """``readers.delimited.repeats_header`` in SQL: whether a row of a CSV source (its
    columns named by ``header``) repeats the header; such a row is no row of the table."""
    tests, quick = [], []
    for n, name in enumerate(header):
        key = sql_ascii_lower(sql_strip(f"coalesce({quote(name)}, '')"))
        want = [sql_text(ascii_lower(name))] + ([sql_text("\ufeff" + ascii_lower(name))] * (n == 0))
        tests.append(f"{key} IN ({', '.join(want)})")
        if name.casefold() in ("subject", "visit"):
            quick.append(f"contains(lower({quote(name)}), lower({sql_text(name)}))")
    # (TRIM with characters and TRANSLATE cost DuckDB 5 us a cell: 50 s on 2M rows. The
    # subject and visit cells of a row that repeats the header hold their names, which
    # CONTAINS finds in 0.1 s; only such rows are tested cell by cell.)
    return f"(CASE WHEN {' AND '.join(quick) or 'TRUE'} THEN {' AND '.join(tests)} ELSE FALSE END)"


class _Overfull:
    """Whether a line of a delimited file holds more cells than its header, the last of
    them empty (it ends with the delimiter): DuckDB's CSV reader drops a row's empty cells
    beyond the header's, where the CSV reader reports the row (``csv-ragged-row``) and
    skips it. Fed the file a chunk at a time; a line's delimiters are counted only where
    it ends with one (a line whose last cell is blank, or such a row)."""

    DENSE = 10  # (a chunk with more such lines than one per 2^DENSE bytes: ``_dense``)

    def __init__(self, delimiter: str, newline: str, columns: int) -> None:
        self.delimiter = delimiter.encode("utf-8")
        self.ending = self.delimiter + newline.encode("ascii")
        self.columns = columns
        self.found = False
        self.count = 0  # the delimiters of the line the last chunk ended in
        self.tail = b""  # and its last bytes

    def _line(self, count: int, before: bytes) -> None:
        """A line of ``count`` delimiters whose ``before`` ends where its newline starts."""
        if count >= self.columns and before.endswith(self.delimiter):
            self.found = True

    def feed(self, chunk: bytes) -> None:
        if self.found:
            return
        d, crlf = self.delimiter, len(self.ending) - len(self.delimiter) == 2
        first = chunk.find(b"\n")
        if first < 0:
            self.count += chunk.count(d)
            self.tail = (self.tail + chunk[-8:])[-8:]
            return
        # the line begun in an earlier chunk (its CR there, if the chunk starts with its LF),
        # then the chunk's own lines that end with a delimiter
        end = first - 1 if crlf else first
        if end < 0:
            self._line(self.count, self.tail[:-1])
        else:
            self._line(
                self.count + chunk.count(d, 0, end), self.tail + chunk[max(end - 8, 0) : end]
            )
        last = chunk.rfind(b"\n")
        if chunk.count(self.ending, first + 1, last + 1) > len(chunk) >> self.DENSE:
            self.found = self.found or self._dense(chunk, first, last, crlf)
        else:
            at = chunk.find(self.ending, first + 1)
            while at >= 0 and not self.found:
                start = chunk.rfind(b"\n", 0, at) + 1
                self._line(chunk.count(d, start, at + len(d)), d)
                at = chunk.find(self.ending, at + len(self.ending))
        self.count, self.tail = chunk.count(d, last + 1), chunk[last + 1 :][-8:]

    def _dense(self, chunk: bytes, first: int, last: int, crlf: bool) -> bool:
        """``feed``'s answer for the lines between the chunk's first and last newline when
        many end with a delimiter (a column mostly blank last: a line at a time, 0.5 s
        more on a million lines), by numpy over the chunk's bytes."""
        import numpy as np

        data = np.frombuffer(chunk, np.uint8, last + 1)
        newlines = np.flatnonzero(data == 10)
        delimiters = np.flatnonzero(data == self.delimiter[0])
        counts = np.diff(np.searchsorted(delimiters, newlines))  # (each line after the first)
        ends = data[newlines[1:] - (2 if crlf else 1)] == self.delimiter[0]
        return bool((ends & (counts >= self.columns)).any())

    def close(self) -> bool:
        """Whether the file has such a line (its last line too, without a newline)."""
        if not self.found and self.tail:
            self._line(self.count, self.tail)
        return self.found


def _scan(
    path: str, overfull: _Overfull | None = None
) -> tuple[str, bool, bool, int, int, int, int, int]:
    """One pass over a file: its sha256, whether it is UTF-8, whether it holds a NUL or a
    quote character, its counts of CR, LF and CRLF, its number of lines, and how often it
    holds the word subject, in any ASCII case (a header holds it); fed to ``overfull``."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8, odd = True, False
    cr = lf = crlf = subjects = 0
    last = tail = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if overfull is not None:
                overfull.feed(chunk)
            low = chunk.lower()  # (bytes.lower changes ASCII letters only)
            # (and the word across the chunks' border: six characters each side)
            subjects += low.count(b"subject") + (tail + low[:6]).count(b"subject")
            tail = low[-6:]
            digest.update(chunk)
            if utf8:
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError:
                    utf8 = False
            odd = odd or b"\x00" in chunk or b'"' in chunk
            cr += chunk.count(b"\r")
            lf += chunk.count(b"\n")
            crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    if utf8:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    lines = lf + (last not in (b"", b"\n"))
    return digest.hexdigest(), utf8, odd, cr, lf, crlf, lines, subjects


def _other_header(source: TableSource) -> bool:
    """Whether a line of a CSV source is a header other than its own (``OtherHeader``),
    where the CSV reader stops reading. Only lines that hold the word subject are read."""
    from ketascore.readers.delimited import OtherHeader

    other = OtherHeader(source.header)
    with open(source.name, "rb") as fh:
        next(fh, None)
        for data in fh:
            if b"subject" in data.lower():
                text = data.decode("utf-8").rstrip("\r\n")
                if text and other(source.cells(text)) is not None:
                    return True
    return False


def csv_source(
    path: str, scale_ids: Iterable[str], chosen: Scale | None = None
) -> TableSource | None:
    """The CSV file at ``path`` as a source, when DuckDB reads it as the CSV reader does: a
    wide table of one scale (``chosen``, if given) that no clinical format claims, UTF-8,
    without quote characters or NUL bytes, with one kind of line ending, and no row with
    empty cells beyond the header's (``_Overfull``). Else None: the record readers read it
    (and report what is wrong with it)."""
    from ketascore import readers
    from ketascore.readers.delimited import WideLayout, sniff_delimiter

    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if head.startswith(codecs.BOM_UTF8) or b"\n" not in head:
        return None
    text = head[: head.rindex(b"\n")].decode("utf-8", errors="replace")
    ids = {s.casefold() for s in scale_ids}
    if readers.claimed_by_format(path, head, text, ids):
        return None
    if readers.detect_format(path, text) != "csv" or readers.detect_format(".csv", text) != "csv":
        return None
    first = text.split("\n", 1)[0]
    newline = "\r\n" if first.endswith("\r") else "\n"
    first = first.rstrip("\r")
    delimiter = sniff_delimiter(first)
    header = [c.strip() for c in first.split(delimiter)]
    folded = [h.casefold() for h in header]
    if (
        readers.repeated_columns(header, path) is not None
        or "subject" not in folded
        or "visit" not in folded
    ):
        return None
    scales = WideLayout.of(header, ids).scales
    if chosen is not None:
        scales = [s for s in scales if s == chosen.id]
    if len(scales) != 1:
        return None
    overfull = _Overfull(delimiter, newline, len(header))
    digest, utf8, odd, cr, lf, crlf, lines, subjects = _scan(path, overfull)
    if not utf8 or odd or overfull.close():
        return None
    if (newline == "\n" and cr) or (newline == "\r\n" and not cr == lf == crlf):
        return None
    source = TableSource(
        path,
        "csv",
        header,
        {},
        delimiter,
        newline,
        sha256=digest,
        lines=lines,
        headers=subjects > 1,
    )
    if subjects > 1 and _other_header(source):
        return None  # (the CSV reader stops at that line, saying why)
    return source


def parquet_source(path: str) -> TableSource:
    """A Parquet file as a source (its columns typed as the file types them)."""
    import duckdb

    with duckdb.connect(":memory:") as con:
        try:
            query = f"DESCRIBE SELECT * FROM read_parquet({sql_text(path)})"
            described = con.execute(query).fetchall()
            halves = _half_floats(con, path)
        except duckdb.Error as exc:
            raise TableEngineError(f"{path}: cannot read the Parquet file: {exc}") from None
    header = [str(row[0]) for row in described]
    types = {str(row[0]): str(row[1]) for row in described}
    arrow = _arrow_types(path)
    if arrow and list(arrow) != header:  # (DuckDB names a column without a name C1, ...)
        raise TableEngineError(f"{path}: DuckDB names the columns otherwise than the reader")
    texts: dict[str, str] = {}
    for name, kind in types.items():
        if kind == "TIMESTAMP":
            texts[name] = _iso_text(quote(name))
        elif kind == "TIMESTAMP WITH TIME ZONE" and _utc(arrow.get(name)):
            # (the reader's datetime in UTC: ISO text with +00:00, whatever DuckDB's zone)
            in_utc = f"timezone('UTC', {quote(name)})"
            texts[name] = f"{_iso_text(in_utc)} || '+00:00'"
    odd = [f"{n} ({t})" for n, t in types.items() if n not in texts and not _plain_type(t)]
    odd += [f"{n} ({t})" for n, t in arrow.items() if _duration(t)]
    if texts and not odd:
        odd += _stamps_beyond_python(path, list(texts))
    if odd:
        raise TableEngineError(
            f"{path}: column(s) {', '.join(odd)} are not read as the Parquet reader reads them"
        )
    kinds = {name: "half" if name in halves else kind_of(t) for name, t in types.items()}
    return TableSource(path, "parquet", header, kinds, texts=texts)


def _half_floats(con: Any, path: str) -> set[str]:
    """The columns of a Parquet file that hold 16-bit floats (FLOAT16: a fixed-length byte
    array of 2 bytes), which DuckDB reads as FLOAT, each value exactly: their kind is half,
    as the reader's (an id of them is exact below 2^11 only), not float. Found in DuckDB's
    own schema of the file, so that no package is needed to know it; a nested column's
    fields are passed over (the reader reads no such column)."""
    query = (
        "SELECT name, type, type_length, duckdb_type, num_children "
        f"FROM parquet_schema({sql_text(path)})"
    )
    out: set[str] = set()
    inside = 0  # the fields of a nested column still to pass over
    for name, physical, length, read_as, children in con.execute(query).fetchall()[1:]:
        if inside:
            inside += (children or 0) - 1
            continue
        inside = children or 0
        if physical == "FIXED_LEN_BYTE_ARRAY" and str(length) == "2" and read_as == "FLOAT":
            out.add(str(name))
    return out


def _iso_text(column: str) -> str:
    """A timestamp (without a zone) as the Parquet reader writes it: Python's ISO text
    (``2024-01-01T13:05:00``, with six digits of the second's fraction when it has one)."""
    return (
        f"CASE WHEN strftime({column}, '%f') = '000000' "
        f"THEN strftime({column}, '%Y-%m-%dT%H:%M:%S') "
        f"ELSE strftime({column}, '%Y-%m-%dT%H:%M:%S.%f') END"
    )


def _arrow_types(path: str) -> dict[str, Any]:
    """The Arrow type of each column of a Parquet file (what the reader sees: a duration,
    which DuckDB reads as a plain integer; a timestamp's zone)."""
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]

        schema = pq.read_schema(path)
    except Exception:  # no pyarrow (then the reader cannot read the file either), or damage
        return {}
    return {f.name: f.type for f in schema}


def _duration(arrow_type: Any) -> bool:
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    return bool(pa.types.is_duration(arrow_type))


def _utc(arrow_type: Any) -> bool:
    """A timestamp in microseconds or coarser whose zone is UTC, which the reader writes
    as ISO text with +00:00 (another zone: its own offset, which the reader works out)."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    return (
        arrow_type is not None
        and pa.types.is_timestamp(arrow_type)
        and arrow_type.unit != "ns"
        and arrow_type.tz in ("UTC", "Etc/UTC", "+00:00")
    )


def _stamps_beyond_python(path: str, stamps: list[str]) -> list[str]:
    """The timestamp columns holding a value outside years 1 to 9999, which Python cannot
    hold: the reader then writes that whole column as pyarrow's text (not ISO text), so
    such a file is left to it. (The least and greatest value of a column: from the file's
    statistics where it has them.)"""
    import duckdb

    checks = ", ".join(
        f"coalesce(min({quote(c)}) < TIMESTAMP '0001-01-01' "
        f"OR max({quote(c)}) >= TIMESTAMP '10000-01-01', FALSE)"
        for c in stamps
    )
    with duckdb.connect(":memory:") as con:
        try:
            row = con.execute(f"SELECT {checks} FROM read_parquet({sql_text(path)})").fetchone()
        except duckdb.Error as exc:
            raise TableEngineError(f"{path}: cannot read the Parquet file: {exc}") from None
    return [
        f"{c} (a timestamp beyond year 9999)"
        for c, beyond in zip(stamps, row or (), strict=False)
        if beyond
    ]


def _plain_type(duckdb_type: str) -> bool:
    """Whether DuckDB gives a column of this type as the Parquet reader does: numbers,
    booleans, text, dates and NULL (a column of nothing but nulls) do, and timestamps
    without a zone when read through ``_iso_text``; timestamps with a zone (``+00``, which
    the date check does not read) or in nanoseconds, times, durations and nested or binary
    values (written in DuckDB's own notation) do not, and leave the file to the reader."""
    base = duckdb_type.split("(")[0].upper()
    plain = (*INTEGER_TYPES, *NUMBER_TYPES, "DECIMAL", "BOOLEAN", "VARCHAR", "DATE", "TIMESTAMP")
    return base in plain or kind_of(duckdb_type) == "null"


def arrow_source(table: Any, name: str = "<dataframe>") -> TableSource:
    """An Arrow table (a DataFrame's) as a source. DuckDB cannot scan a 16-bit float
    column: it is given to DuckDB as 32-bit floats (each value exactly), of kind half."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    from ketascore.readers.parquet import float_kind

    kinds: dict[str, str] = {}
    for i, f in enumerate(table.schema):
        t, narrow = f.type, float_kind(f.type)
        if pa.types.is_boolean(t):
            kinds[f.name] = "boolean"
        elif pa.types.is_integer(t):
            kinds[f.name] = "integer"
        elif narrow:
            kinds[f.name] = narrow
            if narrow == "half":
                table = table.set_column(i, f.name, table.column(i).cast(pa.float32()))
        elif pa.types.is_floating(t):
            kinds[f.name] = "number"
        elif pa.types.is_decimal(t):
            kinds[f.name] = "decimal"
        else:
            kinds[f.name] = "text"
    return TableSource(name, "arrow", [f.name for f in table.schema], kinds, frame=table)


# --------------------------------------------------------------------------------------
# A run


def score_tables(
    sources: Sequence[TableSource],
    scale: Scale,
    *,
    columns: ColumnMap | None = None,
    merge_duplicates: bool = True,
    known_scales: Iterable[str] = (),
    config: dict[str, Any] | None = None,
    lazy: bool = False,
) -> TableRun:
    """Score ``sources`` (in order, as one table) with ``scale``. Rows of the same subject
    and visit are merged as the record engine merges records, unless
    ``merge_duplicates`` is False. Raises TableEngineError for sources the engine cannot
    read as the readers do (the record path then reads them).

    ``lazy``: score nothing yet. A CSV or Parquet output is then written by one streamed
    pass (the query straight into the file, counted on the way), and the run is scored into
    a table only when it must be: for results one by one, for the rows of a subject and
    visit that repeat, for rows the readers report. TableEngineError can then come from
    ``write`` (nothing is written)."""
    import duckdb

    if not sources:
        raise TableEngineError("no table to score")
    con = duckdb.connect(":memory:", config=config or {})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("SET preserve_insertion_order = true")  # the output keeps input order
        if any(set(FLOAT_KINDS) & set(source.kinds.values()) for source in sources):
            # a Parquet file's statistics of a DOUBLE or FLOAT column leave NaN out, and
            # DuckDB folds each test for NaN to false by them (no value can be NaN): a NaN
            # answer was then not-a-number where the readers take a blank
            con.execute("SET disabled_optimizers = 'statistics_propagation'")
        for i, source in enumerate(sources):
            if source.kind == "arrow":
                con.register(f"_ks_frame_{i}", source.frame)
        run = TableRun(con, list(sources), scale, columns, known_scales, merge_duplicates)
        if not lazy:
            run.materialize()
        return run
    except SqlError as exc:  # a scale the query cannot score (rules across visits)
        con.close()
        raise TableEngineError(str(exc)) from None
    except BaseException:
        con.close()
        raise


def _one_kind(column: str, kinds: set[str]) -> str:
    """The kind of a column that sources type otherwise (``kinds``), read as one column
    without changing a value as the readers read each file: integers and DECIMALs as a
    DECIMAL (DuckDB's own union); doubles with other numbers as doubles (each source casts
    its own: DuckDB's union of an integer and a FLOAT is a FLOAT, which changes integers
    beyond 2^24); integers with texts (and dates) as texts (each source casts its own, to
    the digits the reader writes). Any other mix (a double or a DECIMAL with text, whose
    text is not the number the reader writes): TableEngineError."""
    if kinds <= {"integer", "decimal"}:
        return "decimal"
    if len(kinds) == 1 and kinds <= set(NARROW_KINDS):
        (kind,) = kinds
        return kind
    if kinds <= {*FLOAT_KINDS, "integer", "decimal"}:
        return "number"
    if kinds <= {"text", "integer"}:
        return "text"
    raise TableEngineError(
        f"column {column} is typed {' and '.join(sorted(kinds))} in different sources, which "
        "DuckDB cannot read as one column as the readers read each source"
    )


def _header_only(path: str) -> bool:
    """Whether the CSV file at ``path`` holds its header line and nothing else."""
    with open(path, "rb") as fh:
        fh.readline()
        return not fh.readline()


@contextlib.contextmanager
def _engine_errors() -> Iterator[None]:
    """DuckDB's errors as TableEngineError (the record path then reads the input)."""
    import duckdb

    try:
        yield
    except duckdb.OutOfMemoryException as exc:
        raise TableMemoryError(f"DuckDB ran out of memory: {exc}") from None
    except duckdb.Error as exc:
        if "while executing the UDF" in str(exc):  # our own function failed: a bug, not input
            raise
        raise TableEngineError(f"DuckDB could not read the input: {exc}") from None


@contextlib.contextmanager
def _interrupts_seen() -> Iterator[list[BaseException]]:
    """The interrupts raised in the block by Python handlers of SIGINT and SIGTERM (Ctrl-C;
    the command line's handler of SIGTERM), in the main thread. Python raises them in
    whatever Python code runs at the time, and during a pass that is the function DuckDB
    calls with each batch: DuckDB then reports an error of that function, and this tells
    which interrupt it was."""
    seen: list[BaseException] = []
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    handlers: dict[int, Any] = {
        sig: handler for sig in INTERRUPTS if callable(handler := signal.getsignal(sig))
    }

    def noted(signum: int, frame: Any) -> None:
        try:
            handlers[signum](signum, frame)
        except BaseException as exc:
            seen.append(exc)
            raise

    for sig in handlers:
        signal.signal(sig, noted)
    try:
        yield seen
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


class TableMemoryError(TableEngineError):
    """DuckDB ran out of memory under its limit."""


ERROR_CODES = sorted(c for c, t in ISSUE_TYPES.items() if t.severity == "error")
_ERROR_LIST = ", ".join(sql_text(c) for c in ERROR_CODES)
# (a row of the scored table whose issues include an error)
_SQL_HAS_ERROR = (
    f"(issues IS NOT NULL AND list_has_any(string_split(issues, ';'), [{_ERROR_LIST}]))"
)


def _values(array: Any, dtype: Any) -> Any:
    """The values of an Arrow (chunked) array of fixed width or of booleans, without NULLs,
    as a numpy array (``to_numpy`` would import pandas, and ``filter`` pyarrow.compute:
    0.3 s of a command's start)."""
    import numpy as np

    def part(chunk: Any) -> Any:
        data, n, at = chunk.buffers()[1], len(chunk), chunk.offset
        if not n:
            return np.zeros(0, dtype)
        if dtype is bool:  # (bits, the first the lowest of its byte)
            bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
            return bits[at : at + n].view(bool)
        return np.frombuffer(data, dtype, n, at * np.dtype(dtype).itemsize)

    parts = [part(chunk) for chunk in array.chunks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


class _Stopped(Exception):
    """A streamed pass stopped early (``_Tally.stop_early``)."""


class _Tally:
    """What a streamed pass hands over, counted on the way: a function of the query's WHERE
    clause that DuckDB calls with each batch of rows (from its threads, hence the lock). It
    is given whether each row is a record, a code of what else is true of it (``FACTS``, one
    bit each, plus 32 times the row's source) and a hash of its subject and visit; it counts
    the codes, keeps the hashes of the records, and passes the records on."""

    FACTS = ("kept", "scored", "problem", "flagged", "filled")

    def __init__(self, stop_early: bool = False, merging: bool = False) -> None:
        import numpy as np

        # (a streamed pass stops at the first batch that shows the run must be scored into
        # a table: a row the readers report, or, when ``merging``, a record that repeats
        # the one before it; the stream would be written for nothing. It keeps the hashes
        # of the records with an issue: ``TableRun.problem_results`` finds them by those)
        self.stop_early, self.merging, self.stopped = stop_early, merging, False
        self.lock = threading.Lock()
        self.keys: list[Any] = []  # the hashes of each batch's records (numpy arrays)
        self.listed: list[tuple[Any, Any]] = []  # of its records with an issue, and errors
        self.totals = np.zeros(0, dtype=np.int64)  # rows of each code
        self.unknown = False  # a row the query could not classify
        self.counts: dict[int, int] = {}  # code: rows
        self.repeated = False
        self.errors = self.warnings = 0  # the issues of the records, by severity

    def keep(self, kept: Any, code: Any, key: Any, errors: Any, issues: Any) -> Any:
        import numpy as np

        if kept.null_count or code.null_count or key.null_count or errors.null_count:
            self.unknown = True
            return kept
        keys = _values(key, np.uint64)[_values(kept, bool)]
        counts = np.bincount(_values(code, np.int32))
        if self.stop_early and (
            (counts[(np.arange(len(counts)) & (1 << self.FACTS.index("flagged"))) != 0] > 0).any()
            or (self.merging and bool((keys[1:] == keys[:-1]).any()))
        ):
            self.stopped = True
            raise _Stopped("the run is scored into a table")
        of_errors, of_issues = _values(errors, np.int32), _values(issues, np.int32)
        n_errors, n_issues = int(of_errors.sum()), int(of_issues.sum())
        listed = None
        if self.stop_early and n_issues:
            with_issues = of_issues > 0  # (records only: a row that is none has 0)
            listed = (_values(key, np.uint64)[with_issues], of_errors[with_issues] > 0)
        with self.lock:
            if listed is not None:
                self.listed.append(listed)
            self.errors += n_errors
            self.warnings += n_issues - n_errors
            if len(counts) > len(self.totals):
                counts[: len(self.totals)] += self.totals
                self.totals = counts
            else:
                self.totals[: len(counts)] += counts
            self.keys.append(keys)
        return kept

    @classmethod
    def code(cls, facts: dict[str, str]) -> str:
        """The SQL of a row's code, from the SQL of each fact."""
        bits = " + ".join(
            f"{1 << i} * CAST({facts[f]} AS INTEGER)" for i, f in enumerate(cls.FACTS)
        )
        return f"({bits} + 32 * {facts['file']})"

    def count(self) -> None:
        """Count the rows of each code, and find whether a subject and visit holds more than
        one record (by hash: a collision only costs a merge that finds nothing to merge)."""
        import numpy as np

        if self.unknown:
            raise TableEngineError("a counted pass could not classify every row")
        self.counts = {code: int(n) for code, n in enumerate(self.totals.tolist()) if n}
        keys = np.concatenate(self.keys) if self.keys else np.zeros(0, np.uint64)
        self.keys = []
        self.repeated = _repeats(keys)

    def problems(self) -> tuple[Any, Any]:
        """The hashes of the subject and visit of the records with an issue (numpy
        uint64), and whether each has an error (bool), in no order."""
        import numpy as np

        if not self.listed:
            return np.zeros(0, np.uint64), np.zeros(0, bool)
        keys, errors = zip(*self.listed, strict=True)
        return np.concatenate(keys), np.concatenate(errors)

    def rows(self, fact: str, file: int | None = None) -> int:
        """The rows (of one source) of which ``fact`` is true (all rows: ``fact`` "")."""
        bit = 1 << self.FACTS.index(fact) if fact else 0
        return sum(
            n
            for code, n in self.counts.items()
            if (code & bit or not bit) and (file is None or code >> 5 == file)
        )


def _repeats(keys: Any) -> bool:
    """Whether a value occurs twice in ``keys`` (uint64 hashes), by sorting. A large array
    is split by its highest bit (equal keys fall in the same half) and the halves sorted in
    two threads (numpy's sort lets go of the GIL): the pass after the query, where DuckDB's
    threads are done, takes about 0.55 s of 0.85 s on 10M keys."""
    import numpy as np

    def sorted_repeats(part: Any) -> bool:
        part.sort()
        return bool(len(part) > 1 and (part[1:] == part[:-1]).any())

    if len(keys) < 1 << 20 or (os.cpu_count() or 1) < 2:
        return sorted_repeats(keys)
    high = keys >= np.uint64(1 << 63)
    halves = [keys[~high], keys[high]]
    del keys, high
    with ThreadPoolExecutor(2) as pool:
        return any(list(pool.map(sorted_repeats, halves)))


class TableRun:
    """The scores of a run's sources, held by DuckDB until written or read. Close it.

    The run is planned when made (the sources' columns as the compiler reads them, the
    compiled query) and scored when asked: ``write`` streams the query into the file;
    ``results`` and the counts score it into a table first (``materialize``)."""

    def __init__(
        self,
        con: Any,
        sources: list[TableSource],
        scale: Scale,
        column_map: ColumnMap | None,
        known_scales: Iterable[str],
        merge_duplicates: bool,
    ):
        unnamed = [s.name for s in sources if any(not name for name in s.header)]
        if unnamed:  # (the record path carries such a column, under no name)
            raise TableEngineError(f"{unnamed[0]}: a column has no name, which DuckDB refuses")
        self.con, self.sources, self.scale = con, sources, scale
        self.merge_duplicates = merge_duplicates
        known = list(known_scales)
        self.scale_ids = {s.casefold() for s in [*known, scale.id]}  # the readers know
        header: dict[str, str] = {}
        typed: dict[str, set[str]] = {}  # the kinds the sources give each column
        for source in sources:
            for name in source.header:
                header.setdefault(name.casefold(), name)
                kind = source.kinds.get(name, "text")
                if kind != "null":
                    typed.setdefault(name, set()).add(kind)
        layout, self.mapped = plan_columns(
            scale, list(header.values()), {}, column_map, known, require=False
        )
        kinds: dict[str, str] = {}
        self.casts: dict[str, str] = {}  # columns each source reads as a double or text
        # a subject or visit typed otherwise by different sources: each source reads its own
        # as the id text its type gives (as the reader reads each file), so an integer of
        # 2^53 or more stays exact next to a DOUBLE, and a FLOAT keeps its own limit
        id_columns = {self.mapped.subject.casefold(), self.mapped.visit.casefold()}
        self.ids = [
            name
            for name, given in typed.items()
            if len(given) > 1 and name.casefold() in id_columns
        ]
        for name, given in typed.items():
            if name in self.ids:
                kinds[name] = "text"
            elif len(given) > 1:
                kinds[name] = _one_kind(name, given)
                if kinds[name] in ("number", "text"):
                    self.casts[name] = "DOUBLE" if kinds[name] == "number" else "VARCHAR"
            else:
                (kinds[name],) = given
        layout = replace(layout, kinds=kinds)
        if scale.absent_slots(i for i in scale.items if i not in layout.absent):
            # (the record path reports the table without the column of a scored item)
            raise TableEngineError("the table lacks the column of an item a score reads")
        self.layout = replace(layout, internal=["_ks_file"])
        self.mapping = (self.mapped, self.layout) if column_map is not None else None
        self.carried: Sequence[str] = self.layout.carry
        self.compiled = compile_scale(
            scale,
            "duckdb",
            relation=self.relation(),
            columns=self.mapped,
            layout=self.layout,
            row_checks=True,
        )
        self.columns: list[str] = list(self.compiled.columns)  # of ``score --format csv``
        self.sql: str = self.compiled.text
        self.table = ""  # the table that holds the scores, once scored into one
        self.merged = False
        self.offsets: list[int] = []  # each source's first row in the table
        self.sizes: list[int] = []  # and its number of rows
        self._issues: list[Issue] = []  # the readers', in order
        self.records = self.scored = self.with_problems = 0
        self.issue_totals = (0, 0)  # the records' issues: errors, warnings
        self.counted = False
        self._wide: dict[int, Any] = {}  # each wide source's WideLayout, once read
        # the records with an issue, found by a streamed pass (``_Tally.problems``)
        self._problems: tuple[Any, Any] | None = None

    def relation(self, ordered: bool = False, offsets: Sequence[int] = ()) -> str:
        parts = [
            s.relation(i, ordered, offsets[i] if ordered else 0, self.casts, self.ids)
            for i, s in enumerate(self.sources)
        ]
        return "(" + " UNION ALL BY NAME ".join(f"({p})" for p in parts) + ")"

    @property
    def files(self) -> list[str]:
        return [s.name for s in self.sources if s.kind != "arrow"]

    @property
    def issues(self) -> list[Issue]:
        """The readers' issues of the sources, in order."""
        if not self.counted:
            self.materialize()
        return self._issues

    def summary(self) -> dict[str, int]:
        issues = self.issues
        return {
            "files": len(self.files),
            "records": self.records,
            "scored": self.scored,
            "with_problems": self.with_problems,
            "file_issues": len(issues),
        }

    @property
    def ok(self) -> bool:
        return self.with_problems == 0 and not has_errors(self.issues)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> TableRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scoring ---------------------------------------------------------------------

    def _counted(self, query: str, into: str, keep: str, tally: _Tally | None = None) -> _Tally:
        """Run ``query`` into ``into`` (``COPY (...) TO ...`` or ``CREATE TABLE ... AS``),
        each row counted on the way by ``tally`` (a new _Tally by default); ``keep``: the
        rows kept (SQL)."""
        import duckdb

        tally = tally or _Tally()
        name = f"_ks_tally_{id(tally)}"
        integer = duckdb.type("INTEGER")
        self.con.create_function(
            name,
            tally.keep,
            [duckdb.type("BOOLEAN"), integer, duckdb.type("UBIGINT"), integer, integer],
            duckdb.type("BOOLEAN"),
            type="arrow",
            null_handling="special",  # (by default, a row with a NULL argument is not passed)
            side_effects=True,
        )
        scored = " OR ".join(f"{quote(r.id)} IS NOT NULL" for r in self.scale.scores)
        code = _Tally.code(
            {
                "file": "_ks_file",
                "kept": "_ks_kept",
                "scored": f"(_ks_kept AND ({scored}))",
                "problem": f"(_ks_kept AND {_SQL_HAS_ERROR})",
                "flagged": "(_ks_no_ids OR _ks_bad_date OR _ks_bad_day)",
                "filled": "((subject IS NOT NULL AND visit IS NOT NULL) OR _ks_no_ids)",
            }
        )
        key = "hash(subject, visit)"
        # the records' issues (one code each in the issues column), and those that are errors
        codes = "string_split(issues, ';')"
        errors = f"len(list_filter({codes}, lambda c: list_contains([{_ERROR_LIST}], c)))"
        listed = "_ks_kept AND issues IS NOT NULL"
        errors = f"CAST(CASE WHEN {listed} THEN {errors} ELSE 0 END AS INTEGER)"
        issues = f"CAST(CASE WHEN {listed} THEN len({codes}) ELSE 0 END AS INTEGER)"
        counted = f"({query}) WHERE {name}({keep}, {code}, {key}, {errors}, {issues})"
        interrupts: list[BaseException] = []
        try:
            with _interrupts_seen() as interrupts:
                self.con.execute(into.format(counted)).fetchall()
        except Exception:
            # (DuckDB's report of the interrupt, raised in tally.keep, or DuckDB's own
            # "Query interrupted" when it noticed the signal itself)
            if interrupts:
                raise interrupts[0] from None
            raise
        finally:
            self.con.remove_function(name)
        tally.count()
        return tally

    def _take(self, tally: _Tally, rows: _Tally, flagged: dict[int, list[int]]) -> None:
        """The counts of a scored run (``tally``, of its records; ``rows``, of the rows
        read), and the readers' issues (``flagged``: the rows of each source that the
        readers report)."""
        self.records, self.scored, self.with_problems = (
            tally.rows(fact) for fact in ("kept", "scored", "problem")
        )
        self.issue_totals = (tally.errors, tally.warnings)
        filled = [rows.rows("filled", i) > 0 for i in range(len(self.sources))]
        sizes = [rows.rows("", i) for i in range(len(self.sources))]
        self._issues = self._reader_issues(filled, flagged, sizes)
        self.counted = True

    def _place(self, rows: _Tally) -> None:
        """The number of rows of each source, and where each begins in the run."""
        self.sizes = [rows.rows("", i) for i in range(len(self.sources))]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(self.sizes))]

    def materialize(self) -> None:
        """Score the run into a table (merging repeated subjects and visits), count it and
        find the readers' issues."""
        if self.table:
            return

        def again() -> None:  # (what the first try made, dropped)
            self.table, self.merged = "", False
            self.con.execute("DROP TABLE IF EXISTS _ks_rows")
            self.con.execute("DROP TABLE IF EXISTS _ks_merged")
            self.con.execute("DROP TABLE IF EXISTS _ks_repeats")

        self._on_one_thread_if_need_be(self._materialized, again)

    def _materialized(self) -> None:
        with _engine_errors():
            self._materialize()

    def _on_one_thread_if_need_be(
        self, work: Callable[[], None], again: Callable[[], None]
    ) -> None:
        """``work()``; should DuckDB run out of memory, ``again()`` and ``work()`` once more
        on one thread. Two threads each hold a row group: a Parquet file of 1M-row groups
        (pyarrow's and pandas' default) needs more than 800 MiB so, and fell to the record
        engine, 40 times slower. One thread holds one."""
        try:
            work()
        except TableMemoryError:
            if int(self.con.execute("SELECT current_setting('threads')").fetchall()[0][0]) == 1:
                raise
            self.con.execute("SET threads = 1")
            again()
            work()

    def _materialize(self) -> None:
        con = self.con
        tally = rows = self._counted(self.sql, "CREATE TABLE _ks_rows AS SELECT * FROM {}", "TRUE")
        self.table = "_ks_rows"
        self._place(rows)
        if self.merge_duplicates and tally.repeated:
            # only the rows of a subject and visit that repeat are scored again, merged (the
            # others are the scored table's rows as they are): scoring every row again took
            # 6.8 s of a 1M-row CSV with 20,000 repeats
            con.execute(
                "CREATE TABLE _ks_repeats AS SELECT rowid AS r FROM _ks_rows WHERE _ks_kept "
                "AND (subject, visit) IN (SELECT subject, visit FROM _ks_rows WHERE _ks_kept "
                "GROUP BY subject, visit HAVING count(*) > 1)"
            )
            repeats = self.relation(True, self.offsets)
            repeats = f"(SELECT * FROM {repeats} WHERE _ks_order IN (SELECT r FROM _ks_repeats))"
            merged = compile_scale(
                self.scale,
                "duckdb",
                relation=repeats,
                columns=self.mapped,
                layout=replace(self.layout, order="_ks_order"),
                row_checks=True,
                duplicates=True,
            ).text
            merged = (
                f"SELECT * FROM ({merged}) UNION ALL BY NAME SELECT *, rowid AS _ks_order, "
                "1 AS _ks_copies FROM _ks_rows WHERE rowid NOT IN (SELECT r FROM _ks_repeats) "
                "ORDER BY _ks_order"
            )
            query = "CREATE TABLE _ks_merged AS SELECT * FROM {}"
            tally = self._counted(merged, query, "TRUE")
            self.table, self.merged = "_ks_merged", True
        flagged: dict[int, list[int]] = {}
        for file, rowid in con.execute(
            "SELECT _ks_file, rowid FROM _ks_rows WHERE _ks_no_ids OR _ks_bad_date OR _ks_bad_day "
            "ORDER BY rowid"
        ).fetchall():
            flagged.setdefault(int(file), []).append(int(rowid) - self.offsets[int(file)])
        self._take(tally, rows, flagged)

    def _reader_issues(
        self, filled: list[bool], flagged: dict[int, list[int]], sizes: list[int]
    ) -> list[Issue]:
        """What the readers report of the sources, in their order: a file with a header and
        no rows, ragged rows and rows that repeat the header (by line), rows without subject
        or visit, unusable dates and days (the rows at ``flagged`` positions of each source;
        ``sizes``: the rows read of each)."""
        out: list[Issue] = []
        for i, source in enumerate(self.sources):
            ragged, not_blank = self._rejected(i, source)
            if source.kind == "csv" and not not_blank and not filled[i]:
                out.append(make_issue("file-empty", "header-only", file=source.name))
            out += sorted(ragged + self._repeated_headers(i, sizes[i]), key=lambda x: x.line or 0)
            if flagged.get(i):
                issues: list[Issue] = []
                rows = _rows_at(self, i, flagged[i])
                for pos in sorted(rows):
                    line, cells = rows[pos]
                    self.records_of(i, pos, line, cells, issues)
                out += issues
        return out

    def _repeated_headers(self, file: int, size: int) -> list[Issue]:
        """The rows of a CSV source that repeat its header (``sql_repeats_header``), which
        are no rows of the table: looked for when the file has more lines than the header
        and the ``size`` rows read, counted by DuckDB, then found line by line."""
        source = self.sources[file]
        if source.kind != "csv" or source.lines == size + 1:
            return []
        read = source.read_csv("ignore_errors = true")
        query = f"SELECT count(*) FROM {read} WHERE {sql_repeats_header(source.header)}"
        (found,) = self.con.execute(query).fetchall()[0]
        if not found:
            return []
        return [
            make_issue("csv-repeated-header", file=source.name, line=line)
            for line, _, repeat in _csv_rows(source)
            if repeat
        ]

    def _rejected(self, file: int, source: TableSource) -> tuple[list[Issue], bool]:
        """The ragged rows DuckDB set aside, as the CSV reader reports them (a row of blank
        cells is no row); and whether any was not blank."""
        from ketascore.readers.fields import text_field

        if source.kind != "csv":
            return [], False
        try:
            found = self.con.execute(
                f"SELECT DISTINCT line, error_type, csv_line FROM _ks_rejects_{file} ORDER BY line"
            ).fetchall()
        except Exception:  # no rejects table: nothing was set aside
            return [], False
        out = []
        at = [h.casefold() for h in source.header].index("subject")
        for line, error, text in found:
            if error not in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
                raise TableEngineError(f"{source.name}:{line}: {error}")
            cells = source.cells(str(text))
            if not any(strip(c) for c in cells):
                continue
            subject = text_field(cells[at]) if len(cells) > at else None
            out.append(
                make_issue(
                    "csv-ragged-row",
                    file=source.name,
                    line=int(line),
                    subject=subject,
                    cells=len(cells),
                    columns=len(source.header),
                )
            )
        return out, bool(out)

    # -- writing ---------------------------------------------------------------------

    def write(self, fmt: str, path: str | Path, *, escape_formulas: bool = True) -> None:
        """Write the results as CSV (the bytes of ``ketascore score --format csv``) or
        Parquet (the same columns, typed), to a temporary file renamed into place."""
        target = Path(path)
        folder = target.parent if str(target.parent) else Path(".")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)
        os.close(fd)
        try:
            os.unlink(tmp)  # DuckDB creates it
            self.copy(fmt, tmp, escape_formulas=escape_formulas)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def copy(self, fmt: str, path: str, *, escape_formulas: bool = True) -> None:
        """COPY the results to ``path`` (csv or parquet). Unless the run is scored into a
        table already, the query streams into the file, counted on the way; when the count
        finds repeated subjects and visits or rows the readers report, the run is scored
        into a table and the file written again from it."""

        def again() -> None:
            with contextlib.suppress(OSError):
                os.unlink(path)

        self._on_one_thread_if_need_be(lambda: self._copy(fmt, path, escape_formulas), again)

    def _copy(self, fmt: str, path: str, escape_formulas: bool) -> None:
        if fmt == "csv":
            select = ", ".join(self._csv_cells(escape_formulas))
            # (COMMENT '': DuckDB quotes a text holding '#' otherwise, as its reader takes
            # '#' for a comment; the csv module, and so the record engine, does not)
            options = "HEADER true, DELIMITER ',', QUOTE '\"', ESCAPE '\"', NULL '', COMMENT ''"
        else:
            select = ", ".join(self._parquet_cells())
            options = "FORMAT parquet, COMPRESSION zstd"
        with _engine_errors():
            if self.table or not self._stream(select, path, options):
                self.materialize()
                with contextlib.suppress(OSError):
                    os.unlink(path)
                # (the table holds the rows in input order, and a scan keeps it: no ORDER BY)
                query = f"SELECT {select} FROM {self.table} WHERE _ks_kept"
                self.con.execute(f"COPY ({query}) TO {sql_text(path)} ({options})")
        if fmt == "csv" and _header_only(path):
            # no result: the header the CSV writer gives no result (it has no score to name)
            from ketascore.writers.tabular import score_csv

            header = score_csv([], [], escape_formulas=escape_formulas)
            Path(path).write_text(header, encoding="utf-8", newline="")

    def _stream(self, select: str, path: str, options: str) -> bool:
        """One pass of the query into ``path``, counted; whether that is the whole run."""
        import duckdb

        into = f"COPY (SELECT {select} FROM {{}}) TO {sql_text(path)} ({options})"
        tally = _Tally(stop_early=True, merging=self.merge_duplicates)
        try:
            self._counted(self.sql, into, "_ks_kept", tally)
        except duckdb.Error:
            if tally.stopped:  # (a 1M-row CSV with 20,000 repeats: 8.6 s -> 3.5-3.9 s)
                return False
            raise
        if (self.merge_duplicates and tally.repeated) or tally.rows("flagged"):
            return False
        self._take(tally, tally, {})
        self._place(tally)
        self._problems = tally.problems()
        return True

    def _parquet_cells(self) -> list[str]:
        """Each output column for Parquet: the columns of a few texts known before (the
        scale, its version, the bands) as ENUMs, which DuckDB writes as the texts they hold
        (a Parquet string column, as the writers write it) from their dictionary, without
        hashing each row's text."""
        scale = self.scale
        known: dict[str, list[str]] = {"scale": [scale.id], "scale_version": [scale.version]}
        known |= {f"{r.id}_band": [b.label for b in r.bands] for r in scale.scores if r.bands}
        out = []
        for n, name in enumerate(self.columns):
            texts = sorted(set(known.get(name, [])))
            if not texts:
                out.append(quote(name))
                continue
            enum = f"_ks_enum_{n}"
            values = ", ".join(sql_text(t) for t in texts)
            self.con.execute(f"CREATE TYPE IF NOT EXISTS {enum} AS ENUM ({values})")
            out.append(f"CAST({quote(name)} AS {enum}) AS {quote(name)}")
        return out

    def _csv_cells(self, escape: bool) -> list[str]:
        """Each output column as the CSV writer (``writers.tabular``) writes its cell.
        Counts and booleans are written by DuckDB as they are; a whole number has no
        decimal point; a text that could start a spreadsheet formula is escaped where one
        can occur (the ids, the date, carried texts, labels that start so)."""
        from ketascore.writers.tabular import escape_formula, needs_escape, sql_needs_escape

        scale = self.scale
        numbers = {"day", *(r.id for r in scale.scores)}
        plain = {"issues", *(c.id for c in scale.classifications)}  # codes and booleans
        plain |= {f"{r.id}{s}" for r in scale.scores for s in ("_items_answered", "_prorated")}
        constants: dict[str, list[str]] = {"scale": [scale.id], "scale_version": [scale.version]}
        constants |= {f"{r.id}_band": [b.label for b in r.bands] for r in scale.scores}
        constants["flags"] = [f.id for f in scale.flags]
        plain |= {
            name for name, texts in constants.items() if not any(needs_escape(t) for t in texts)
        }
        kinds = self.layout.kinds  # (of the sources together, as DuckDB reads them)
        out = []
        for name in self.columns:
            col = quote(name)
            kind = kinds.get(name, "text") if name in self.carried else "text"
            if kind == "integer":
                cell = f"CAST({col} AS VARCHAR)"
            elif kind in FLOAT_KINDS and name not in numbers:
                # a carried double: infinity as the text 'inf' (escaped '-inf')
                minus = sql_text(escape_formula("-inf") if escape else "-inf")
                cell = _float_text(col, "NULL", "'inf'", minus)
            elif name in numbers or kind == "decimal":
                if kind == "decimal":  # (the readers carry a DECIMAL as a number)
                    col = f"CAST({col} AS DOUBLE)"
                cell = _number_text(col)
            elif name in plain or kind == "boolean":
                cell = col
            elif not escape:
                cell = f"CAST({col} AS VARCHAR)"
            else:
                text = f"CAST({col} AS VARCHAR)"
                cell = f"CASE WHEN {sql_needs_escape(text)} THEN '''' || {text} ELSE {text} END"
            header = escape_formula(name) if escape else name
            out.append(f"{cell} AS {quote(header)}")
        return out

    # -- results, one by one ----------------------------------------------------------

    def results(self) -> Iterator[ScoreResult]:
        """The results in input order, as ``ketascore score`` gives them: the rows with an
        issue read again and scored by the record engine (with every message), the others
        taken from the table."""
        self.materialize()
        return self._results("_ks_kept")

    def texts(self, render: Callable[[ScoreResult], str]) -> Iterator[str]:
        """``render(result)`` of each result in input order (its line of JSON Lines, its
        text in the JSON output). The text of a row without an issue is written by the
        query itself (``_texts``); the rows with an issue, and the few whose text the query
        cannot write, become results and are rendered."""
        self.materialize()
        return self._results("_ks_kept", render=render)

    def _results(
        self,
        where: str,
        ordered: bool = False,
        render: Callable[[ScoreResult], Any] | None = None,
    ) -> Iterator[Any]:
        """The results of the scored table's rows that ``where`` (SQL) keeps, in order: a
        scan with a plain filter keeps the table's order; ``ordered``, for a ``where`` that
        joins (a subquery), sorts them (a parallel join does not keep it: the issues listed
        of a 1M-row CSV were out of order, the first at its 136,435th line, not its 8,331st).
        With ``render``, each result's ``render(result)`` instead."""
        names = [quote(c) for c in self.columns]
        na = [f"_ks_na_{n}" for n in range(len(self.scale.scores))]
        extra = ", _ks_order, _ks_copies" if self.merged else ""
        text = self._texts(render) if render is not None else None
        if text is not None:
            extra += f", {text} AS _ks_text"
        query = (
            f"SELECT rowid, _ks_file, {', '.join(names + na)}{extra} FROM {self.table} "
            f"WHERE {where}"
        )
        if ordered:
            query += f" ORDER BY {'_ks_order' if self.merged else 'rowid'}"
        reader = self.con.cursor().sql(query).to_arrow_reader(1 << 14)  # (others query on)
        rows = _SourceRows(self)
        make = _ResultMaker(self.scale, [c for c in self.carried if c in self.columns])
        with contextlib.closing(rows):
            made = self._made(reader, rows, make, render)
            if render is None:
                yield from made
            else:  # (the texts the query wrote, and the other results rendered)
                yield from (r if type(r) is str else render(r) for r in made)

    def _texts(self, render: Callable[[ScoreResult], str]) -> str | None:
        """The SQL of ``render``'s text of a row without an issue (NULL where the query
        cannot write it: a text holding a character JSON escapes in hexadecimal, which
        DuckDB writes in capitals), or None for a run whose texts Python writes (a source
        whose line numbers are known only by reading it; a ``render`` that writes a value
        otherwise than as it is).

        The keys, their order and every constant are ``render``'s own: it renders a result
        whose values are placeholders, and the query puts each column's JSON in place of
        its placeholder (a number as the CSV output writes it, which is Python's text of
        the number; a text by DuckDB's ``to_json``)."""
        shifts = _line_shifts(self)
        if None in shifts:
            return None
        kinds = self.layout.kinds
        carried = {c: _carried_json(quote(c), kinds.get(c) or "null") for c in self.carried}
        cells: list[str] = []

        def slot(sql: str) -> Any:
            cells.append(sql)
            return f"\x00{len(cells) - 1}\x00"

        def text(col: str) -> Any:
            return slot(f"COALESCE(CAST(to_json({col}) AS VARCHAR), 'null')")

        def number(col: str) -> Any:
            return slot(f"COALESCE({_number_text(col)}, 'null')")

        def listed(ids: Sequence[str]) -> str:
            return ", ".join(sql_text(i) for i in ids)

        scale = self.scale
        scores = [r.id for r in scale.scores]
        n_files = len(self.sources)
        at = "_ks_order" if self.merged else "rowid"
        file = f"[{listed([s.name for s in self.sources])}][_ks_file + 1]"
        line = (
            f"CAST({at} - [{', '.join(map(str, self.offsets[:n_files]))}][_ks_file + 1] "
            f"+ [{', '.join(str(s) for s in shifts)}][_ks_file + 1] AS VARCHAR)"
        )
        subject, visit, date, day = text("subject"), text("visit"), text("date"), number("day")
        values = {s: number(quote(s)) for s in scores}
        bands = {s: text(quote(f"{s}_band")) for s in scores}
        answered = {s: slot(f"CAST({quote(f'{s}_items_answered')} AS VARCHAR)") for s in scores}
        prorated = {
            s: slot(f"CASE WHEN {quote(f'{s}_prorated')} THEN 'true' ELSE 'false' END")
            for s in scores
        }
        classes = {c.id: text(quote(c.id)) for c in scale.classifications}
        source = Source(text(file), slot(line))
        extra = {c: slot(sql) for c, sql in carried.items() if c in self.columns}

        def rendered(flags: list[Any], not_applicable: list[Any]) -> str:
            return render(
                ScoreResult(
                    subject, visit, scale.id, scale.version, date, day, values, bands,
                    answered, prorated, flags, classes, not_applicable, [], source, extra,
                )
            )  # fmt: skip

        def flags(sep: str) -> str:  # (the ids of a row's flags, ';' between them)
            between = sql_text(f'"{sep}"')
            return (
                "CASE WHEN flags IS NULL OR flags = '' THEN '' ELSE "
                f"replace(CAST(to_json(flags) AS VARCHAR), ';', {between}) END"
            )

        def not_applicable(sep: str) -> str:
            ids = ", ".join(
                f"CASE WHEN _ks_na_{n} THEN CAST(to_json({sql_text(s)}) AS VARCHAR) END"
                for n, s in enumerate(scores)
            )
            return f"concat_ws({sql_text(sep)}, {ids})"

        base = rendered([], [])
        # the lists: where each is in the text, and how it is written with two elements
        pair = ["\x00a\x00", "\x00b\x00"]
        spans: list[tuple[int, int, str] | None] = [
            _list_span(base, rendered(*(pair if j == k else [] for j in range(2))), elements)
            for k, elements in enumerate((flags, not_applicable))
        ]
        found = list(re.finditer(r'"\\u0000(\d+)\\u0000"', base))
        spans += [(m.start(), m.end(), cells[int(m.group(1))]) for m in found]
        if None in spans or sorted(int(m.group(1)) for m in found) != list(range(len(cells))):
            return None  # (render wrote a value otherwise than as it is: Python writes all)
        pieces: list[str] = []
        done = 0
        for begin, stop, sql in sorted(s for s in spans if s is not None):
            if begin < done:
                return None
            pieces += [sql_text(base[done:begin]), sql]
            done = stop
        pieces.append(sql_text(base[done:]))
        joined = "(" + " || ".join(p for p in pieces if p != "''") + ")"
        return f"CASE WHEN contains({joined}, '\\u00') THEN NULL ELSE {joined} END"

    def _made(
        self,
        reader: Any,
        rows: _SourceRows,
        make: _ResultMaker,
        render: Callable[[ScoreResult], Any] | None = None,
    ) -> Iterator[Any]:
        """The results of the rows of the query's batches, in order (or, where the query
        wrote a row's text, ``_ks_text``, that text)."""
        names, offsets = [s.name for s in self.sources], self.offsets
        for batch in reader:
            # (a batch's columns as lists, zipped into rows: a dict per row costs more)
            columns = dict(zip(batch.schema.names, batch.columns, strict=True))
            order = columns["_ks_order" if self.merged else "rowid"].to_pylist()
            files = columns["_ks_file"].to_pylist()
            issues = columns["issues"].to_pylist()
            copies = columns["_ks_copies"].to_pylist() if self.merged else [1] * len(order)
            texts = columns["_ks_text"].to_pylist() if "_ks_text" in columns else None
            if texts is None:
                values: Iterable[Any] = zip(
                    *(columns[c].to_pylist() for c in make.names), strict=True
                )
            else:  # (a row's values are read only if the query did not write its text)
                values = range(len(order))
            # the rows merged into the batch's records, found in one query (not one a row:
            # a 1M-row CSV with 20,000 repeats took 20 s, against 2.7 s without)
            copies_of = self._copies([at for at, n in zip(order, copies, strict=True) if n > 1])
            # the batch's rows to explain in a Parquet file or a frame, and their copies,
            # read in one query per file (not one query per row: 10-30 ms each on a 3M-row
            # file); a CSV file's are read by their place in it
            wanted: dict[int, set[int]] = {}
            for file, at, problem, n in zip(files, order, issues, copies, strict=True):
                if problem is not None or n > 1:
                    for f, p in [(file, at - offsets[file]), *copies_of.get(at, ())]:
                        if self.sources[f].kind != "csv":
                            wanted.setdefault(f, set()).add(p)
            read = {f: _rows_at(self, f, sorted(places)) for f, places in wanted.items()}
            for file, at, problem, n, row in zip(files, order, issues, copies, values, strict=True):
                pos = at - offsets[file]
                if problem is not None or n > 1:
                    places = [(file, pos), *copies_of.get(at, ())]
                    yield self._explained(
                        [(f, p, *(read[f][p] if f in read else rows.at(f, p))) for f, p in places]
                    )
                elif texts is None:
                    yield make(row, names[file], rows.line(file, pos))
                elif texts[row] is not None:
                    yield texts[row]
                else:
                    cells = tuple(columns[c][row].as_py() for c in make.names)
                    yield make(cells, names[file], rows.line(file, pos))

    def problem_results(self, limit: int) -> list[ScoreResult]:
        """The results the issues listed first come from, in order: the first ``limit``
        with an error and the first ``limit`` with an issue (so that their issues, errors
        first, begin as the issues of every result do)."""
        if (
            not self.table
            and self._problems is not None
            and self.merge_duplicates  # (else a subject and visit may be another's too)
            and self.mapped.long is None
        ):
            with _engine_errors():
                return self._first_problems(limit)
        self.materialize()
        return list(self._results(self._listed(limit), ordered=True))

    def _first_problems(self, limit: int) -> list[ScoreResult]:
        """``problem_results`` of a run written by one streamed pass, without scoring it
        into a table: its records with an issue are known by the hash of their subject and
        visit (unique among the records, or the pass would have merged them), so one query
        of the ids alone (in input order) finds where the first ones are. A 10M-row Parquet
        file with 200,000 such records: 1.5 s, where scoring it into a table took 10 s."""
        import pyarrow as pa

        keys, errors = self._problems or ((), ())
        if not len(keys):
            return []
        self.con.register("_ks_problems", pa.table({"k": keys, "e": errors}))
        try:
            ordered = compile_scale(
                self.scale,
                "duckdb",
                relation=self.relation(True, self.offsets),
                columns=self.mapped,
                layout=replace(self.layout, order="_ks_order", internal=["_ks_file", "_ks_order"]),
                row_checks=True,
            ).text
            first = f"SELECT _ks_file, _ks_order FROM p {{}} ORDER BY _ks_order LIMIT {int(limit)}"
            found = self.con.execute(
                f"WITH s AS (SELECT _ks_file, _ks_order, hash(subject, visit) AS k "
                f"FROM ({ordered}) WHERE _ks_kept), "
                "p AS (SELECT _ks_file, _ks_order, e FROM s JOIN _ks_problems USING (k)) "
                f"({first.format('WHERE e')}) UNION ({first.format('')}) ORDER BY _ks_order"
            ).fetchall()
        finally:
            self.con.unregister("_ks_problems")
        places = [(int(f), int(at) - self.offsets[int(f)]) for f, at in found]
        wanted: dict[int, list[int]] = {}
        for f, pos in places:
            if self.sources[f].kind != "csv":
                wanted.setdefault(f, []).append(pos)
        read = {f: _rows_at(self, f, sorted(positions)) for f, positions in wanted.items()}
        rows = _SourceRows(self)
        with contextlib.closing(rows):
            return [
                self._explained([(f, pos, *(read[f][pos] if f in read else rows.at(f, pos)))])
                for f, pos in places
            ]

    def _listed(self, limit: int) -> str:
        """The WHERE clause of ``problem_results``."""
        order = "_ks_order" if self.merged else "rowid"
        firsts = [
            f"{order} IN (SELECT {order} FROM {self.table} WHERE _ks_kept AND {where} "
            f"ORDER BY {order} LIMIT {int(limit)})"
            for where in (_SQL_HAS_ERROR, "issues IS NOT NULL")
        ]
        return f"_ks_kept AND ({' OR '.join(firsts)})"

    def _explained(self, rows: list[tuple[int, int, int | None, list[Any]]]) -> ScoreResult:
        """The record engine's result for a row of the scored table, from its source rows
        (file, place, line, cells): the row and, when merged, the other rows of its subject
        and visit, in order."""
        from ketascore.engines.record import score_records

        records: list[AnswerRecord] = []
        for file, pos, line, cells in rows:
            records += self.records_of(file, pos, line, cells, [])
        (result,) = score_records(records, {self.scale.id: self.scale}.get)
        return result

    def records_of(
        self, file: int, pos: int, line: int | None, cells: list[Any], issues: list[Issue]
    ) -> list[AnswerRecord]:
        """The records the reader of a source makes of its row at ``pos`` (and its issues)."""
        from ketascore.readers.delimited import WideLayout, wide_row_records

        source = self.sources[file]
        if self.mapping is not None:
            return self._mapped_records(source, cells, line or pos + 1, issues)
        layout = self._wide.get(file)
        if layout is None:  # (a source's columns are worked out once, not for each row)
            layout = self._wide[file] = WideLayout.of(source.header, self.scale_ids)
        records = wide_row_records(layout, cells, line or pos + 1, source.name, issues)
        return [r for r in records if r.scale == self.scale.id]

    def _mapped_records(
        self, source: TableSource, cells: list[Any], line: int, issues: list[Issue]
    ) -> list[AnswerRecord]:
        """The record of a row of a table read through a column map, made as the query
        reads it, and the readers' issues of the row."""
        from ketascore.readers.fields import (
            carried,
            check_date,
            check_day,
            checked_field,
            is_blank,
            item_value,
            text_field,
        )

        assert self.mapping is not None
        cmap, layout = self.mapping
        by = dict(zip(source.header, cells, strict=True))
        subject, visit = text_field(by.get(cmap.subject)), text_field(by.get(cmap.visit))
        where: dict[str, Any] = {
            "file": source.name,
            "line": line,
            "subject": subject,
            "visit": visit,
        }
        if subject is None or visit is None:
            ids = (by.get(cmap.subject), by.get(cmap.visit))
            issues.append(missing_id(subject, visit, source.name, line, cells=ids))
            return []
        date = day = None
        if layout.date:
            date = checked_field(check_date, by.get(layout.date), issues, "row", **where)
        if layout.day:
            day = checked_field(check_day, by.get(layout.day), issues, "row", **where)
        prefix = len(self.scale.id) + 1
        items = {item: item_value(by.get(col)) for item, col in cmap.items.items()}
        items |= {col[prefix:]: item_value(by.get(col)) for col in layout.unknown_items}
        if all(is_blank(v) for v in items.values()):
            return []
        return [
            AnswerRecord(
                subject=subject,
                visit=visit,
                scale=self.scale.id,
                items=items,
                date=date,
                day=day,
                extra={c: carried(by.get(c)) for c in layout.carry},
                source=Source(file=source.name, line=line),
                missing_codes=tuple(cmap.missing_codes),
            )
        ]

    def _copies(self, rowids: list[int]) -> dict[int, list[tuple[int, int]]]:
        """The other rows merged into the records of the rows at ``rowids`` of the run, as
        (file, place) in order, by rowid."""
        if not rowids:
            return {}
        listed = ", ".join(str(int(r)) for r in rowids)
        found = self.con.execute(
            "SELECT f.rowid, c._ks_file, c.rowid FROM _ks_rows c JOIN _ks_rows f "
            "ON c.subject = f.subject AND c.visit = f.visit "
            f"WHERE f.rowid IN ({listed}) AND c._ks_kept AND c.rowid <> f.rowid "
            "ORDER BY f.rowid, c.rowid"
        ).fetchall()
        out: dict[int, list[tuple[int, int]]] = {}
        for at, f, r in found:
            out.setdefault(int(at), []).append((int(f), int(r) - self.offsets[int(f)]))
        return out


class _ResultMaker:
    """The ``ScoreResult`` of a row of the scored table that has no issue: the columns it
    reads (``names``, in order) and the call that makes the result of their values."""

    def __init__(self, scale: Scale, carried: list[str]):
        # (what every row's result shares, worked out once: Scale.id is read through the
        # definition)
        self.scale_id, self.version = scale.id, scale.version
        self.carried = carried
        self.score_ids = [rule.id for rule in scale.scores]
        self.classes = [c.id for c in scale.classifications]
        self.names = ["subject", "visit", "date", "day", "flags", *carried]
        for n, score in enumerate(self.score_ids):
            self.names += [score, f"{score}_band", f"{score}_items_answered", f"{score}_prorated"]
            self.names.append(f"_ks_na_{n}")
        self.names += self.classes

    def __call__(self, row: tuple[Any, ...], file: str, line: int | None) -> ScoreResult:
        subject, visit, date, day, flags = row[:5]
        at = carried_end = 5 + len(self.carried)
        scores: dict[str, Num | None] = {}
        bands: dict[str, str | None] = {}
        answered: dict[str, int] = {}
        prorated: dict[str, bool] = {}
        not_applicable: list[str] = []
        for rule_id in self.score_ids:
            value, band, n, pro, na = row[at : at + 5]
            at += 5
            scores[rule_id] = clean_number(value) if value is not None else None
            bands[rule_id] = band
            answered[rule_id] = int(n)
            prorated[rule_id] = bool(pro)
            if na:
                not_applicable.append(rule_id)
        # (positional, in the order of ScoreResult's fields: a million results are made in
        # two thirds of the time that keywords take; the conformance suite compares every field)
        return ScoreResult(
            subject,
            visit,
            self.scale_id,
            self.version,
            date,
            clean_number(day) if day is not None else None,
            scores,
            bands,
            answered,
            prorated,
            flags.split(";") if flags else [],
            dict(zip(self.classes, row[at:], strict=True)) if self.classes else {},
            not_applicable,
            [],
            Source(file, line),
            {k: _carried(v) for k, v in zip(self.carried, row[5:carried_end], strict=True)}
            if self.carried
            else {},
        )


def _list_span(
    base: str, other: str, elements: Callable[[str], str]
) -> tuple[int, int, str] | None:
    """Where a list is in ``base`` (the text of a result with the list empty), and the SQL
    of its text: ``other`` is the same result's text with two elements in the list, which
    shows how the renderer opens, separates and closes a list; ``elements(separator)`` is
    the SQL of a row's elements (JSON texts) with that separator between them, or ''."""
    start = _same_start(base, other)
    end = _same_start(base[start:][::-1], other[start:][::-1])
    empty, filled = base[start : len(base) - end], other[start : len(other) - end]
    parts = re.split(r'"\\u0000[ab]\\u0000"', filled)
    if len(parts) != 3:
        return None
    opening, separator, closing = parts
    joined = elements(separator)
    sql = (
        f"CASE WHEN {joined} = '' THEN {sql_text(empty)} "
        f"ELSE {sql_text(opening)} || {joined} || {sql_text(closing)} END"
    )
    return start, len(base) - end, sql


def _same_start(a: str, b: str) -> int:
    """How many characters ``a`` and ``b`` share from their start."""
    return next(
        (n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def _number_text(col: str) -> str:
    """The SQL of a number's text as Python writes it (``clean_number``: a whole number
    without a decimal point; else the shortest text that reads back as the float, which
    is also DuckDB's)."""
    whole = (
        f"CASE WHEN abs({col}) < 1e15 THEN CAST(CAST({col} AS BIGINT) AS VARCHAR) "
        f"ELSE CAST(CAST({col} AS HUGEINT) AS VARCHAR) END"
    )
    return f"CASE WHEN {col} = floor({col}) THEN {whole} ELSE CAST({col} AS VARCHAR) END"


def _float_text(col: str, blank: str, inf: str, minus_inf: str) -> str:
    """The SQL of a carried double's text as the readers carry it: NaN blank, a number as
    Python writes a float (3.0, 1e+20; a FLOAT as the double it holds, 0.1 as
    0.10000000149011612), infinity a text; ``blank``, ``inf`` and ``minus_inf`` are how the
    output writes those (SQL)."""
    return (
        f"CASE WHEN {col} IS NULL OR {sql_is_nan(col)} THEN {blank} "
        f"WHEN {col} - {col} = 0 THEN CAST(CAST({col} AS DOUBLE) AS VARCHAR) "
        f"WHEN {col} > 0 THEN {inf} ELSE {minus_inf} END"
    )


def _carried_json(col: str, kind: str) -> str:
    """The SQL of the JSON of a carried cell as the readers carry it (``_carried``): a
    number of a float kind as Python writes the float (NaN null, infinity the text 'inf'),
    a DECIMAL as a number, a text (a Parquet date or timestamp the reader's ISO text) as a
    text."""
    if kind == "integer":
        return f"COALESCE(CAST({col} AS VARCHAR), 'null')"
    if kind in FLOAT_KINDS:
        return _float_text(col, "'null'", sql_text('"inf"'), sql_text('"-inf"'))
    if kind == "decimal":
        return f"COALESCE({_number_text(f'CAST({col} AS DOUBLE)')}, 'null')"
    if kind in ("boolean", "null"):
        return f"COALESCE(CAST(to_json({col}) AS VARCHAR), 'null')"
    return f"COALESCE(CAST(to_json(CAST({col} AS VARCHAR)) AS VARCHAR), 'null')"


def _carried(value: Any) -> Any:
    """A carried cell of the table as the readers carry it (``readers.fields.carried`` of
    the cell as the Parquet reader reads it: NaN blank, a Decimal a number, infinity its
    text); texts come trimmed from the query."""
    if value is None or type(value) is str or type(value) is int:
        return value
    from ketascore.readers.fields import carried
    from ketascore.readers.parquet import table_cell

    return carried(table_cell(value))


class _SourceRows:
    """The rows of each source as its reader reads them, in order (each read once), with
    the line (or row number) where each starts. A CSV file with a line for each row and
    the header (no blank lines, no rows left out: its lines counted when scanned) is not
    read for its line numbers, only for the cells of the rows explained."""

    def __init__(self, run: TableRun):
        self.run = run
        self.readers: dict[int, Any] = {}
        self.seen: dict[int, int] = {}
        self.files: dict[int, tuple[Any, int]] = {}  # a plain source's file, its next row
        self.starts: dict[int, Any] = {}  # where each row of a plain source starts, if asked
        self.shift = _line_shifts(run)
        self.plain = [shift == 2 for shift in self.shift]  # (a plain CSV file's)

    def line(self, file: int, pos: int) -> int | None:
        """The line (or row number) of the row at ``pos``."""
        shift = self.shift[file]
        return pos + shift if shift is not None else self._text(file, pos)[0]

    def at(self, file: int, pos: int) -> tuple[int | None, list[Any]]:
        """The line and the cells of the row at ``pos`` of a CSV source (the rows of a
        Parquet file or a frame are read a batch at a time: ``_rows_at``)."""
        source = self.run.sources[file]
        line, text = self._text(file, pos)
        return line, source.cells(text) if text is not None else []

    def _text(self, file: int, pos: int) -> tuple[int | None, str | None]:
        """The line and the text of the row at ``pos`` of a CSV source."""
        source = self.run.sources[file]
        if self.plain[file]:  # (the lines before it skipped by the file's own iterator)
            fh, at = self.files.get(file, (None, 0))
            if fh is None:
                fh, at = open(source.name, "rb"), -1  # noqa: SIM115
            # back (a row merged with a later one), or on after that: found by the lines'
            # starts, not by reading every line before it again (100 lines at most)
            if at > pos or (file in self.starts and pos - at > 100):
                if file not in self.starts:
                    self.starts[file] = _line_starts(source.name)
                fh.seek(int(self.starts[file][pos]))
                at = pos
            text = next(itertools.islice(fh, pos - at, None)).decode("utf-8")
            self.files[file] = (fh, pos + 1)
            return self.line(file, pos), text
        reader = self.readers.get(file)
        if reader is None or self.seen.get(file, -1) >= pos:
            reader = self.readers[file] = _csv_lines(source)
            self.seen[file] = -1
        for at, line, text in reader:
            self.seen[file] = at
            if at == pos:
                return line, text
        return None, None

    def close(self) -> None:
        for fh, _ in self.files.values():
            fh.close()
        self.files.clear()


def _line_shifts(run: TableRun) -> list[int | None]:
    """What to add to the place of a row of each source for its line: a plain CSV file's
    rows (a line for each row and the header: no blank lines, no rows left out, its lines
    counted when scanned) follow its header, a table's row numbers count from 1; None: the
    file is read for it."""
    return [
        2 if s.kind == "csv" and s.lines == size + 1 else 1 if s.kind != "csv" else None
        for s, size in zip(run.sources, run.sizes, strict=True)
    ]


def _line_starts(path: str) -> Any:
    """Where each row of a CSV file with a line for each row starts (in bytes; its line
    endings are LF or CRLF, ``csv_source``): a numpy array, the header's line left out."""
    import numpy as np

    parts, at = [], 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            parts.append(np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10) + (at + 1))
            at += len(chunk)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _csv_lines(source: TableSource) -> Iterator[tuple[int, int, str]]:
    """(position, line, text) of every row DuckDB reads of a CSV source: the lines after
    the header that are not empty, have the header's width (``TableSource.cells``) and do
    not repeat the header."""
    position = -1
    for line, text, repeat in _csv_rows(source):
        if not repeat:
            position += 1
            yield position, line, text


def _csv_rows(source: TableSource) -> Iterator[tuple[int, str, bool]]:
    """(line, text, whether it repeats the header) of the lines after the header of a CSV
    source that are not empty and have the header's width."""
    from ketascore.readers.delimited import repeats_header

    width = len(source.header) - 1
    delimiter = source.delimiter
    first = ascii_lower(source.header[0])
    firsts = (first, "\ufeff" + first)  # (the first cell of a row that repeats the header)
    with open(source.name, encoding="utf-8", newline="") as fh:
        next(fh, None)
        for line, text in enumerate(fh, start=2):
            text = text.rstrip("\r\n")
            if text and text.count(delimiter) == width:
                repeat = ascii_lower(
                    strip(text.split(delimiter, 1)[0])
                ) in firsts and repeats_header(source.header, source.cells(text))
                yield line, text, repeat


def _rows_at(run: TableRun, file: int, positions: list[int]) -> dict[int, tuple[int, list[Any]]]:
    """(line, cells) of the rows at ``positions`` of a source, as its reader reads them."""
    source = run.sources[file]
    if source.kind == "csv":
        wanted = set(positions)
        out = {}
        for at, line, text in _csv_lines(source):
            if at in wanted:
                out[at] = (line, source.cells(text))
                if len(out) == len(wanted):
                    break
        return out
    from ketascore.readers.parquet import table_cell

    kinds = [source.kinds.get(c) for c in source.header]  # (values.float_cell)
    listed = ", ".join(str(int(p)) for p in positions)
    names = ", ".join(quote(c) for c in source.header)
    if source.kind == "parquet":
        query = (
            f"SELECT file_row_number, {names} FROM read_parquet({sql_text(source.name)}, "
            f"file_row_number = true) WHERE file_row_number IN ({listed})"
        )
    else:
        query = (
            f"SELECT _ks_pos, {names} FROM (SELECT row_number() OVER () - 1 AS _ks_pos, * "
            f"FROM _ks_frame_{file}) WHERE _ks_pos IN ({listed})"
        )
    return {
        int(row[0]): (
            int(row[0]) + 1,
            [float_cell(table_cell(v), kind) for v, kind in zip(row[1:], kinds, strict=True)],
        )
        for row in run.con.execute(query).fetchall()
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
