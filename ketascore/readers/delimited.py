"""Delimited text (CSV, TSV, semicolons): the wide layout (one column per item,
``<scale>_<item>``) and the long layout (subject, visit, scale, item, value). Also the table
checks every tabular reader shares (spreadsheets and SAS transport files included)."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.values import Rejection, ascii_lower, is_number, strip
from ketascore.readers.base import ReadResult
from ketascore.readers.fields import (
    carried,
    check_date,
    check_day,
    checked_field,
    id_issue,
    is_blank,
    item_value,
    repeated_lines,
    same_cell,
    text_field,
)

LONG_FIELDS = ("subject", "visit", "scale", "item", "value")


def split_header(text: str) -> list[str]:
    """The cells of the first line (read without splitting the rest of the text)."""
    text = text.removeprefix("\ufeff")
    ends = [i for i in (text.find("\n"), text.find("\r")) if i >= 0]
    first = text[: min(ends)] if ends else text
    try:
        return next(csv.reader([first], delimiter=sniff_delimiter(first)), [])
    except csv.Error:  # an unbalanced quote: not a usable header, the CSV reader says why
        return []


def sniff_delimiter(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else ","


@dataclass
class Table:
    """A table from any tabular source: CSV (text cells), a spreadsheet or a SAS transport
    file (text, numbers, None, or a CellError for a spreadsheet error cell)."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]  # (line of the row's start, or sheet row; cells)


Table = Table


def csv_rows(text: str, file: str, issues: list[Issue]) -> Table | None:
    table = csv_table(text, file, issues)
    return None if table is None else check_table(table, file, issues)


def csv_table(text: str, file: str, issues: list[Issue]) -> Table | None:
    """The header and non-empty rows of CSV text, not yet checked."""
    if not text.strip():
        issues.append(make_issue("file-empty", file=file))
        return None
    first = text.split("\n", 1)[0].rstrip("\r")
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=sniff_delimiter(first), strict=True
    )
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            if header is None:
                header = [c.strip() for c in cells]
            elif any(strip(c) for c in cells):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        issues.append(
            make_issue("parse-error", "csv", file=file, line=reader.line_num, error=str(exc))
        )
    if header is None:
        issues.append(make_issue("file-empty", file=file))
        return None
    return Table(header, rows)


def repeated_columns(header: Iterable[str], file: str) -> Issue | None:
    """The issue of a header that names a column more than once (in any case), if it does."""
    header = list(header)
    counts = Counter(h.casefold() for h in header)  # (not list.count: wide headers exist)
    dupes = sorted({h for h in header if counts[h.casefold()] > 1})
    if not dupes:
        return None
    return make_issue(
        "csv-columns", "repeated", file=file, line=1, names=", ".join(repr(d) for d in dupes)
    )


def repeats_header(header: list[str], cells: list[Any]) -> bool:
    """Whether a row repeats the header: two exports joined end to end (``cat a.csv b.csv``)
    leave the second one's header as a row. Its cells, without ASCII whitespace at either
    end, are the header's names, ignoring ASCII case (the first may start with a byte-order
    mark: the second file's). ``sql_repeats_header`` is the same test in SQL."""
    if len(cells) != len(header) or not header:
        return False
    for n, (name, cell) in enumerate(zip(header, cells, strict=True)):
        if not isinstance(cell, str):
            return False
        key, want = ascii_lower(strip(cell)), ascii_lower(name)
        if key != want and not (n == 0 and key == "\ufeff" + want):
            return False
    return True


_VISIT = ("visit", "\ufeffvisit")


class OtherHeader:
    """The test for a header other than ``header``: ``other(cells)`` says how a row that is
    one differs from it (``columns in another order``, ``other columns``), or None for a row
    that is none. Such a row holds, as two of its cells, the names of the subject and visit
    columns (compared as ``repeats_header`` compares), and no number (a row of answers whose
    carried cells say visit and subject is data), yet does not repeat the header: two
    exports with other columns joined end to end leave it, and the rows after it do not
    follow the first header."""

    def __init__(self, header: list[str]):
        self.header = header
        self.names = [ascii_lower(h) for h in header]
        self.ids = [n for n in self.names if n in ("subject", "visit")]

    def __call__(self, cells: list[Any]) -> str | None:
        if len(self.ids) != 2:
            return None
        # (a quick look first: a cell that is the name "visit")
        if not any(
            type(c) is str and len(c) >= 5 and ascii_lower(strip(c)) in _VISIT for c in cells
        ):
            return None
        keys = [
            ascii_lower(strip(c)).removeprefix("\ufeff" if n == 0 else "")
            for n, c in enumerate(cells)
            if isinstance(c, str)
        ]
        if not all(i in keys for i in self.ids) or repeats_header(self.header, cells):
            return None
        if any(not isinstance(c, str) or is_number(strip(c)) for c in cells):
            return None  # (a row of answers, whose other cells say visit and subject)
        return "columns in another order" if sorted(keys) == sorted(self.names) else "other columns"


def check_table(
    table: Table,
    file: str,
    issues: list[Issue],
    required: tuple[str, ...] = ("subject", "visit"),
    written: list[str] | None = None,
) -> Table | None:
    """Unique column names, the required columns, rows as long as the header; a row that
    repeats the header is skipped with a warning; at a header other than the first (one
    naming the required columns otherwise), reading stops, with an error. ``written``: the
    header as the file writes it, when the reader renamed its columns (a REDCap label
    export's field labels): a row that repeats it repeats the header too."""
    header, rows = table.header, table.rows
    folded = [h.casefold() for h in header]
    repeated = repeated_columns(header, file)
    if repeated is not None:
        issues.append(repeated)
        return None
    for name in required:
        if name not in folded:
            issues.append(
                make_issue(
                    "csv-columns", "missing", file=file, line=1, column=name, columns=header[:12]
                )
            )
            return None
    headers = [header] if written is None or written == header else [header, written]
    repeats = {line for line, cells in rows if any(repeats_header(h, cells) for h in headers)}
    if len(repeats) == len(rows):
        issues.append(make_issue("file-empty", "header-only", file=file))
    good: list[tuple[int, list[Any]]] = []
    at = folded.index("subject") if "subject" in folded else None
    other_header = OtherHeader(header)
    for n, (line, cells) in enumerate(rows):
        if line in repeats:
            issues.append(make_issue("csv-repeated-header", file=file, line=line))
            continue
        other = other_header(cells) if required else None
        if other is not None:
            issues.append(
                make_issue(
                    "csv-other-header", file=file, line=line, how=other, rest=len(rows) - n - 1
                )
            )
            break
        if len(cells) != len(header):
            subject = cells[at] if at is not None and len(cells) > at else None
            issues.append(
                make_issue(
                    "csv-ragged-row",
                    file=file,
                    line=line,
                    subject=text_field(subject),
                    cells=len(cells),
                    columns=len(header),
                )
            )
            continue
        good.append((line, cells))
    return Table(header, good)


def split_column(column: str, scale_ids: set[str]) -> tuple[str, str] | None:
    """``madrs_3`` -> (madrs, 3) when madrs is a known scale id."""
    prefix, sep, item = column.partition("_")
    if sep and item and prefix.casefold() in scale_ids:
        return prefix.casefold(), item
    return None


def row_common(
    header: list[str], cells: list[Any], line: int, file: str, issues: list[Issue]
) -> tuple[dict[str, Any], str | None, Any, dict[str, Any]] | None:
    data = {h.casefold(): c for h, c in zip(header, cells, strict=True)}
    subject = text_field(data.get("subject"))
    visit = text_field(data.get("visit"))
    if subject is None or visit is None:
        issues.append(
            id_issue(subject, visit, (data.get("subject"), data.get("visit")), file, line)
        )
        return None
    where = {"file": file, "line": line, "subject": subject, "visit": visit}
    date = checked_field(check_date, data.get("date"), issues, "row", **where)
    day = checked_field(check_day, data.get("day"), issues, "row", **where)
    return {"subject": subject, "visit": visit}, date, day, data


def read_csv_wide(text: str, file: str, scale_ids: set[str]) -> ReadResult:
    out = ReadResult(files=[file])
    table = csv_rows(text, file, out.issues)
    if table is None:
        return out
    records_wide(table, file, scale_ids, out)
    return out


@dataclass(frozen=True)
class WideLayout:
    """Which columns of a wide table are which: item columns (``<scale>_<item>``) by scale,
    and the other columns, carried to the output."""

    header: list[str]
    items: dict[int, tuple[str, str]]  # column -> (scale, item)
    carried: list[int]

    @property
    def scales(self) -> list[str]:
        return list(dict.fromkeys(s for s, _ in self.items.values()))

    @classmethod
    def of(cls, header: list[str], scale_ids: set[str]) -> WideLayout:
        items: dict[int, tuple[str, str]] = {}
        carried_columns: list[int] = []
        for i, name in enumerate(header):
            if name.casefold() in ("subject", "visit", "date", "day"):
                continue
            split = split_column(name, scale_ids)
            if split is not None:
                items[i] = split
            else:
                carried_columns.append(i)
        return cls(header, items, carried_columns)


def wide_row_records(
    layout: WideLayout, cells: list[Any], line: int, file: str, issues: list[Issue]
) -> list[AnswerRecord]:
    """The records of one row of a wide table (one per scale rated), and its issues."""
    common = row_common(layout.header, cells, line, file, issues)
    if common is None:
        return []
    ids, date, day, _ = common
    extra = {layout.header[i]: carried(cells[i]) for i in layout.carried}
    out = []
    for scale_id in layout.scales:
        items = {
            item: item_value(cells[i]) for i, (s, item) in layout.items.items() if s == scale_id
        }
        if all(is_blank(v) for v in items.values()):
            continue  # this scale was not rated at this visit
        out.append(
            AnswerRecord(
                subject=ids["subject"],
                visit=ids["visit"],
                scale=scale_id,
                items=items,
                date=date,
                day=day,
                extra=extra,
                source=Source(file=file, line=line),
            )
        )
    return out


def records_wide(table: Table, file: str, scale_ids: set[str], out: ReadResult) -> None:
    """Records of a checked wide table: one per row and scale (``<scale>_<item>`` columns)."""
    layout = WideLayout.of(table.header, scale_ids)
    if not layout.scales:
        out.issues.append(
            make_issue("csv-columns", "no-items", file=file, line=1, columns=table.header[:12])
        )
        return
    out.columns[file] = {
        scale: [item for s, item in layout.items.values() if s == scale] for scale in layout.scales
    }
    for line, cells in table.rows:
        out.records.extend(wide_row_records(layout, cells, line, file, out.issues))


def read_csv_long(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    table = csv_rows(text, file, out.issues)
    if table is None:
        return out
    records_long(table, file, out)
    return out


def records_long(table: Table, file: str, out: ReadResult) -> None:
    """Records of a checked long table (subject, visit, scale, item, value)."""
    header = table.header
    folded = [h.casefold() for h in header]
    for name in ("scale", "item", "value"):
        if name not in folded:
            out.issues.append(
                make_issue("csv-columns", "missing-long", file=file, line=1, column=name)
            )
            return
    extra_names = [h for h in header if h.casefold() not in (*LONG_FIELDS, "date", "day")]
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for line, cells in table.rows:
        common = row_common(header, cells, line, file, out.issues)
        if common is None:
            continue
        ids, date, day, data = common
        scale = (text_field(data.get("scale")) or "").casefold()
        item = text_field(data.get("item")) or ""
        if not scale or not item:
            out.issues.append(
                make_issue(
                    "missing-field",
                    "row",
                    field="scale" if not scale else "item",
                    file=file,
                    line=line,
                    subject=ids["subject"],
                    visit=ids["visit"],
                )
            )
            continue
        key = (ids["subject"], ids["visit"], scale)
        group = groups.get(key)
        if group is None:
            group = groups[key] = {
                "line": line,
                "date": date,
                "day": day,
                "items": {},
                "lines": {},
                "spelling": {},
                "repeats": {},
                "extra": {h: carried(data[h.casefold()]) for h in extra_names},
            }
        value = item_value(data.get("value", ""))
        # item ids compare ignoring case: 16a and 16A are one item, kept as first written
        item = group["spelling"].setdefault(item.casefold(), item)
        if item in group["items"]:
            old = group["items"][item]
            if isinstance(old, Rejection) or not same_cell(old, value):
                group["items"][item] = Rejection(
                    "conflicting-records",
                    "item",
                    {
                        "first": old,
                        "second": value,
                        "unit": "line",
                        "first_at": group["lines"][item],
                        "second_at": line,
                    },
                )
            else:
                group["repeats"].setdefault(item, []).append(line)
            continue
        group["items"][item] = value
        group["lines"][item] = line
    for (subject, visit, scale), group in groups.items():
        out.records.append(
            AnswerRecord(
                subject=subject,
                visit=visit,
                scale=scale,
                items=group["items"],
                date=group["date"],
                day=group["day"],
                extra=group["extra"],
                source=Source(file=file, line=group["line"]),
                item_lines=group["lines"],
                repeated_lines=repeated_lines(group["items"], group["repeats"]),
            )
        )
