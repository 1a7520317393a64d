"""Excel workbooks (.xlsx, .xlsm): the first sheet a spreadsheet program shows (hidden
sheets before it are named in a ``hidden-sheet`` warning), or the one named with ``--sheet``.

The sheet is read as a table (the first non-empty row is the header) and then like a CSV
file: wide (``<scale>_<item>`` columns), long (subject, visit, scale, item, value), SDTM
(a QSTESTCD/RSTESTCD column) or through a mapping file. Row numbers in issues are the
sheet's own row numbers.

openpyxl (read-only mode) is used rather than python-calamine although calamine is about 6x
faster (50,000 rows x 13 columns: 0.43 s against 2.8 s): calamine returns a cell holding a
formula error (#DIV/0!, #N/A ...) as an empty string, which would make an unusable answer
look like a missing one and let it be prorated. openpyxl keeps the error, and also shows a
formula whose value was never calculated (a file written by a script), which is rejected
the same way. Dates become ISO text (``2024-03-01``, or with the time if it is not midnight).
"""

from __future__ import annotations

import bisect
import datetime as dt
import importlib
import io
from typing import Any

from ketascore.core.issues import make_issue
from ketascore.readers import CellError, FormatContext, ReadResult, Table
from ketascore.readers.base import foreign_format

SHEET_ROW = "row"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0, 0):
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    return value


# Excel's error values; a cell holding one is an error, not an answer
ERRORS = frozenset(
    {
        "#NULL!",
        "#DIV/0!",
        "#VALUE!",
        "#REF!",
        "#NAME?",
        "#NUM!",
        "#N/A",
        "#GETTING_DATA",
        "#SPILL!",
        "#CALC!",
        "#FIELD!",
        "#BLOCKED!",
        "#UNKNOWN!",
        "#CONNECT!",
        "#BUSY!",
    }
)


def _letter(column: int) -> str:
    out = ""
    while column:
        column, rest = divmod(column - 1, 26)
        out = chr(65 + rest) + out
    return out


def _first_visible(book: Any, file: str, out: ReadResult) -> str:
    """The sheet read without --sheet: the first one a spreadsheet program shows. A hidden
    sheet before it (an old version of the data, hidden rather than deleted) is not read,
    and named in a warning; with every sheet hidden, the first."""
    states = [(ws.title, getattr(ws, "sheet_state", "visible")) for ws in book.worksheets]
    hidden: list[str] = []
    for title, state in states:
        if state == "visible":
            if hidden:
                shown = ", ".join(repr(h) for h in hidden)
                out.issues.append(make_issue("hidden-sheet", file=file, sheets=shown, sheet=title))
            return str(title)
        hidden.append(title)
    return str(states[0][0])


def _rows(book: Any, sheet: str, first: int = 1, last: int | None = None) -> Any:
    ws = book[sheet]
    ws.reset_dimensions()  # some programs write a wrong sheet size; read every row
    return enumerate(ws.iter_rows(min_row=first, max_row=last, values_only=True), start=first)


def load_sheet(data: bytes, file: str, sheet: str | None, out: ReadResult) -> Table | None:
    """The sheet as a table of plain values (text, numbers, ISO dates, None, CellError).

    The sheet is read twice only when it holds formulas: once for the cells as written
    (formulas as text), then for the rows with formulas, to take each formula's saved value.
    """
    try:
        openpyxl = importlib.import_module("openpyxl")
    except ImportError:  # pragma: no cover - depends on the installation
        out.issues.append(make_issue("file-format", "needs-openpyxl", file=file))
        return None

    def open_book(data_only: bool) -> Any:
        return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=data_only)

    foreign = foreign_format(data)
    if foreign is not None and not data.startswith(b"PK"):  # (an .xlsx file is a zip archive)
        kind, advice = foreign
        out.issues.append(make_issue("file-format", "foreign", file=file, kind=kind, advice=advice))
        return None
    expanded = _expanded_size(data)
    if expanded is not None and expanded > MAX_EXPANDED and expanded > MAX_RATIO * len(data):
        out.issues.append(
            make_issue("parse-error", "expands", file=file, size=expanded, limit=MAX_EXPANDED)
        )
        return None

    try:
        book = open_book(False)
    except Exception as exc:  # a damaged or foreign file: openpyxl raises many kinds
        out.issues.append(
            make_issue("parse-error", "xlsx", file=file, error=f"{type(exc).__name__}: {exc}")
        )
        return None
    rows: list[tuple[int, list[Any]]] = []
    formulas: dict[tuple[int, int], str] = {}
    try:
        names = list(book.sheetnames)
        if sheet is not None and sheet not in names:
            out.issues.append(
                make_issue("file-format", "no-sheet", file=file, sheet=sheet, sheets=list(names))
            )
            return None
        name = sheet if sheet is not None else _first_visible(book, file, out)
        for r, values in _rows(book, name):
            cells: list[Any] = []
            for c, value in enumerate(values, start=1):
                if isinstance(value, str):
                    if value in ERRORS:
                        value = _error(name, r, c, value)
                    elif value.startswith("="):
                        formulas[(r, c)] = value
                cells.append(_plain(value))
            rows.append((r, cells))
        if formulas:
            _formula_values(open_book(True), name, rows, formulas)
        merged = _merged_ranges(data, book[name])
    except Exception as exc:
        out.issues.append(
            make_issue("parse-error", "workbook", file=file, error=f"{type(exc).__name__}: {exc}")
        )
        return None
    finally:
        book.close()
    head, table = _table(rows)
    if merged and table.rows:
        return _unmerged(table, head, merged, name, file, out)
    return table


# A workbook is a zip archive: one of a few kilobytes can expand to gigabytes (a "zip
# bomb"). Its declared expanded size is checked before it is opened (the zip reader never
# expands a member beyond its declared size).
MAX_EXPANDED = 512 << 20
MAX_RATIO = 100


def _expanded_size(data: bytes) -> int | None:
    """The size of a workbook's parts once expanded, as its zip directory declares it
    (None when it is not a zip archive: openpyxl then says why)."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return None


def _error(sheet: str, row: int, column: int, value: str) -> CellError:
    return CellError(value, "", {"sheet": sheet, "cell": f"{_letter(column)}{row}", "value": value})


def _formula_values(
    book: Any,
    sheet: str,
    rows: list[tuple[int, list[Any]]],
    formulas: dict[tuple[int, int], str],
) -> None:
    """Put the value each formula had when the file was last saved in place of the formula."""
    wanted = sorted({r for r, _ in formulas})
    by_row = dict(rows)
    try:
        for r, values in _rows(book, sheet, wanted[0], wanted[-1]):
            for c in (c for (fr, c) in formulas if fr == r):
                value = values[c - 1] if c - 1 < len(values) else None
                if isinstance(value, str) and value in ERRORS:
                    value = _error(sheet, r, c, value)
                elif value is None:
                    formula = formulas[(r, c)]
                    value = CellError(
                        formula,
                        "formula",
                        {"sheet": sheet, "cell": f"{_letter(c)}{r}", "formula": formula},
                    )
                by_row[r][c - 1] = _plain(value)
    finally:
        book.close()


def _merged_ranges(data: bytes, worksheet: Any) -> list[str]:
    """The merged ranges of a sheet (``A2:A4``), from its XML part: openpyxl's read-only
    mode, which keeps memory flat on big sheets, does not report them. (Should a version
    of openpyxl not tell where the part is, the whole workbook is loaded to ask it.)"""
    import zipfile

    iterparse = importlib.import_module("openpyxl.xml.functions").iterparse
    if not isinstance(getattr(worksheet, "_worksheet_path", None), str):
        full = importlib.import_module("openpyxl").load_workbook(io.BytesIO(data))
        try:
            return [str(r) for r in full[worksheet.title].merged_cells.ranges]
        finally:
            full.close()

    def part() -> Any:
        return zipfile.ZipFile(io.BytesIO(data)).open(worksheet._worksheet_path)

    with part() as stream:  # most sheets have none, and a byte search says so quickly
        tail = b""
        while chunk := stream.read(1 << 20):
            if b"mergeCell" in tail + chunk:
                break
            tail = chunk[-16:]
        else:
            return []
    ranges: list[str] = []
    with part() as stream:
        for _, element in iterparse(stream):
            if element.tag.rpartition("}")[2] == "mergeCell" and element.get("ref"):
                ranges.append(element.get("ref"))
            element.clear()
    return ranges


def _unmerged(
    table: Table, head: int, merged: list[str], sheet: str, file: str, out: ReadResult
) -> Table | None:
    """The table without the rows in which a merged range covers a cell.

    Only the first (top-left) cell of a merged range holds a value; the cells it covers
    read blank, so a subject, visit or answer written once for several rows would become a
    missing one (a row skipped for want of a subject, an item prorated). No value is copied
    into them: each range that covers cells of the table is reported with the rows skipped
    (the row of its first cell is read when the range is one column wide), and a range that
    covers a cell of the header leaves the sheet unread (None)."""
    range_boundaries = importlib.import_module("openpyxl.utils.cell").range_boundaries

    width = len(table.header)
    read = [r for r, _ in table.rows]  # (in order)
    bounds = []
    for ref in merged:
        try:
            first_col, first_row, last_col, last_row = range_boundaries(ref)
        except (TypeError, ValueError):  # (not a range: nothing is merged)
            continue
        if first_col <= width:  # (cells right of the table are not read)
            bounds.append((first_row, first_col, last_row, last_col, ref))
    skipped: set[int] = set()
    for first_row, first_col, last_row, last_col, ref in sorted(bounds):
        # rows of the table with a cell the range covers: below its first row, and its
        # first row too when the range is more than one column wide
        covered = read[bisect.bisect_left(read, first_row) : bisect.bisect_right(read, last_row)]
        if covered and covered[0] == first_row and min(last_col, width) == first_col:
            covered = covered[1:]
        if first_row <= head <= last_row and (head > first_row or last_col > first_col):
            covered = [head]
        if not covered:
            continue
        if covered[0] == head:
            out.issues.append(
                make_issue("merged-cells", "header", file=file, line=head, sheet=sheet, range=ref)
            )
            return None
        rows = ", ".join(map(str, covered))
        out.issues.append(
            make_issue(
                "merged-cells", file=file, line=covered[0], sheet=sheet, range=ref, rows=rows
            )
        )
        skipped.update(covered)
    return Table(table.header, [(r, cells) for r, cells in table.rows if r not in skipped])


def _table(rows: list[tuple[int, list[Any]]]) -> tuple[int, Table]:
    """The sheet's header row and its table: the first non-empty row is the header."""

    def blank(v: Any) -> bool:
        return v is None or (isinstance(v, str) and not v.strip())

    filled = [(r, cells) for r, cells in rows if not all(blank(v) for v in cells)]
    if not filled:
        return 0, Table([], [])
    head_row, head = filled[0]
    while head and blank(head[-1]):
        head = head[:-1]
    header = [str(v).strip() if not blank(v) else f"(column {i + 1})" for i, v in enumerate(head)]
    width = len(header)
    body: list[tuple[int, list[Any]]] = []
    for r, cells in filled[1:]:
        cells = list(cells)
        while len(cells) > width and blank(cells[-1]):
            cells.pop()
        if len(cells) < width:
            cells += [None] * (width - len(cells))
        body.append((r, cells))
    return head_row, Table(header, body)


def read_xlsx(data: bytes, file: str, context: FormatContext) -> ReadResult:
    from .layouts import records_from_table

    out = ReadResult(files=[file])
    mapping = context.options.mapping
    sheet = context.options.sheet or (mapping.spec.sheet if mapping is not None else None)
    table = load_sheet(data, file, sheet, out)
    if table is None:
        return out
    if not table.header:
        out.issues.append(make_issue("file-empty", "sheet", file=file))
        return out
    records_from_table(table, file, context, out, unit=SHEET_ROW)
    return out
