"""Read answer files: YAML, JSON, JSON Lines and CSV (wide or long), from files, folders or stdin.

Readers never raise on bad content. They return the records they could read and an issue for
everything they could not, naming the file and line.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import hashlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.values import Rejection
from ketascore.readers.folders import walk_folder

FORMATS = ("yaml", "json", "jsonl", "csv", "csv-long")
EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}
DEFAULT_MAX_FILE_SIZE = 1 << 30  # 1 GiB
POSITION_LIMIT = 8 << 20  # JSON files up to 8 MiB are read with line numbers

RECORD_FIELDS = ("subject", "visit", "scale", "items", "date", "day")
LONG_FIELDS = ("subject", "visit", "scale", "item", "value")


@dataclass
class ReadResult:
    records: list[AnswerRecord] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # file -> sha256 of its bytes

    def extend(self, other: ReadResult) -> None:
        self.records.extend(other.records)
        self.issues.extend(other.issues)
        self.files.extend(other.files)
        self.hashes.update(other.hashes)


# --------------------------------------------------------------------------------------
# Finding files


def iter_input_files(
    paths: Iterable[str | Path],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    issues: list[Issue] | None = None,
) -> Iterator[Path]:
    """Files named directly, and files in folders (recursively, sorted, hidden ones skipped).

    In folders only files with a known extension are read, so notes and READMEs beside the
    data are ignored. Symbolic-link loops and unreadable folders are reported in ``issues``.
    """
    include, exclude = list(include), list(exclude)
    sink = issues if issues is not None else []

    def loop(folder: str) -> None:
        sink.append(make_issue("folder-loop", file=folder))

    for given in paths:
        path = Path(given)
        if str(given) == "-" or not path.is_dir():
            yield path
            continue
        yield from walk_folder(path, is_input_file, include, exclude, loop)


def walk_files(
    paths: Iterable[str | Path], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> Iterator[str | Issue]:
    """The input files in reading order, with the folder issues at their places, as the
    walk finds them."""
    issues: list[Issue] = []
    for path in iter_input_files(paths, include, exclude, issues):
        yield from issues
        issues.clear()
        yield str(path)
    yield from issues


# --------------------------------------------------------------------------------------
# Reading bytes


def decode(data: bytes, name: str, issues: list[Issue]) -> str | None:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:  # spreadsheet programs save "Unicode text" as UTF-16 with a byte-order mark
            return data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if b"\x00" in data[:8192]:
        issues.append(make_issue("file-format", "binary", file=name, formats="YAML, JSON or CSV"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issues.append(make_issue("encoding", file=name, line=line, byte=data[exc.start]))
        return data.decode("latin-1")


def detect_format(name: str, text: str) -> str:
    """The format of a file from its extension, or from its content when that is unknown."""
    ext = os.path.splitext(name)[1].lower()
    if ext in EXTENSIONS and EXTENSIONS[ext] != "csv":
        return EXTENSIONS[ext]
    head = text.lstrip()[:4096]
    if ext not in EXTENSIONS:
        if head.startswith(("{", "[")):
            first = head.split("\n", 1)[0].strip()
            if first.startswith("{") and first.endswith("}") and "\n{" in head:
                return "jsonl"
            return "json"
        first_line = head.split("\n", 1)[0]
        if (
            not any(sep in first_line for sep in (",", ";", "\t"))
            or ":" in first_line.split(",", 1)[0]
        ):
            return "yaml"
    header = [h.strip().casefold() for h in _split_header(text)]
    if {"item", "value"} <= set(header) and "scale" in header:
        return "csv-long"
    return "csv"


def _split_header(text: str) -> list[str]:
    lines = text.lstrip("\ufeff").splitlines()
    first = lines[0] if lines else ""
    try:
        return next(csv.reader([first], delimiter=_delimiter(first)), [])
    except csv.Error:  # an unbalanced quote: not a usable header, the CSV reader says why
        return []


def _delimiter(header_line: str) -> str:
    counts = {sep: header_line.count(sep) for sep in (",", ";", "\t")}
    best = max(counts, key=lambda k: counts[k])
    return best if counts[best] else ","


# --------------------------------------------------------------------------------------
# Records from plain data (YAML, JSON)


def text_field(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


class FieldError(ValueError):
    """A date or study day that cannot be used: the bad-field message's variant and
    parameters."""

    def __init__(self, variant: str, value: Any):
        super().__init__(variant)
        self.variant = variant
        self.value = value


def field_issue(exc: FieldError, unit: str, **where: Any) -> Issue:
    """The bad-field issue of ``exc``; ``unit`` (record, row) is what is scored without it."""
    return make_issue("bad-field", exc.variant, value=exc.value, unit=unit, **where)


def check_date(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        if len(text) <= 10:
            dt.date.fromisoformat(text)
        else:
            dt.datetime.fromisoformat(text)
    except ValueError:
        raise FieldError("date", text) from None
    return text


def check_day(value: Any) -> int | float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise FieldError("day", value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FieldError("day", value) from None
    if number != number or abs(number) > 1e6:
        raise FieldError("day-range", value)
    return int(number) if number.is_integer() else number


def record_from_mapping(
    data: Any,
    *,
    file: str,
    index: int,
    line: int | None,
    item_lines: dict[str, int] | None = None,
    field_lines: dict[str, int] | None = None,
    issues: list[Issue],
) -> AnswerRecord | None:
    """Build a record from one mapping; issues for what is wrong, None if unusable."""
    field_lines = field_lines or {}
    if not isinstance(data, dict):
        issues.append(
            make_issue(
                "bad-record",
                "not-mapping",
                file=file,
                line=line,
                number=index + 1,
                kind=_kind(data),
            )
        )
        return None
    subject = text_field(data.get("subject"))
    visit = text_field(data.get("visit"))
    missing = [name for name, value in (("subject", subject), ("visit", visit)) if value is None]
    if missing:
        issues.append(
            make_issue(
                "missing-field",
                "record",
                number=index + 1,
                fields=" or ".join(missing),
                file=file,
                line=line,
                subject=subject,
                visit=visit,
            )
        )
        return None
    assert subject is not None and visit is not None
    items = data.get("items")
    if not isinstance(items, dict):
        issues.append(
            make_issue(
                "bad-record",
                "no-items",
                file=file,
                line=field_lines.get("items", line),
                subject=subject,
                visit=visit,
            )
        )
        return None
    scale = data.get("scale")
    if scale is not None and not isinstance(scale, str):
        scale = str(scale)
    date = day = None
    try:
        date = check_date(data.get("date"))
    except FieldError as exc:
        issues.append(
            field_issue(
                exc,
                "record",
                file=file,
                line=field_lines.get("date", line),
                subject=subject,
                visit=visit,
            )
        )
    try:
        day = check_day(data.get("day"))
    except FieldError as exc:
        issues.append(
            field_issue(
                exc,
                "record",
                file=file,
                line=field_lines.get("day", line),
                subject=subject,
                visit=visit,
            )
        )
    extra = {k: v for k, v in data.items() if k not in RECORD_FIELDS}
    return AnswerRecord(
        subject=subject,
        visit=visit,
        scale=scale.strip() if isinstance(scale, str) and scale.strip() else None,
        items={str(k): v for k, v in items.items()},
        date=date,
        day=day,
        extra=extra,
        source=Source(file=file, line=line, index=index),
        item_lines=item_lines or {},
    )


def _kind(value: Any) -> str:
    return {
        list: "list",
        dict: "mapping",
        str: "text",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "empty value",
    }.get(type(value), type(value).__name__)


def records_from_document(
    data: Any, located: yamlsafe.Located | None, file: str, issues: list[Issue]
) -> list[AnswerRecord]:
    """A document holds one record (a mapping) or a list of records."""
    if data is None:
        issues.append(make_issue("file-empty", "no-records", file=file))
        return []
    if isinstance(data, dict):
        entries, single = [data], True
    elif isinstance(data, list):
        entries, single = data, False
    else:
        issues.append(make_issue("bad-record", "document", file=file, line=1, kind=_kind(data)))
        return []
    if not entries:
        issues.append(make_issue("file-empty", "empty-list", file=file))
    records = []
    for i, entry in enumerate(entries):
        path: tuple[str | int, ...] = () if single else (i,)
        line = item_lines = field_lines = None
        if located is not None:
            pos = located.position(path)
            line = pos.line if pos else None
            if isinstance(entry, dict):
                field_lines = {
                    k: p.line for k in entry if (p := located.positions.get((*path, k))) is not None
                }
                if isinstance(entry.get("items"), dict):
                    item_lines = {
                        str(k): p.line
                        for k in entry["items"]
                        if (p := located.positions.get((*path, "items", k))) is not None
                    }
        record = record_from_mapping(
            entry,
            file=file,
            index=i,
            line=line,
            item_lines=item_lines,
            field_lines=field_lines,
            issues=issues,
        )
        if record is not None:
            records.append(record)
    return records


def yaml_issue(exc: yamlsafe.YamlError, file: str, what: str) -> Issue:
    """The parse-error issue of a YAML (or JSON) document the loader refused."""
    variant = "" if exc.kind == "syntax" else exc.kind
    if exc.column:
        variant = f"{variant}-at-column" if variant else "at-column"
    return make_issue(
        "parse-error",
        variant,
        file=file,
        line=exc.line,
        format=what,
        error=exc.message,
        column=exc.column,
    )


def read_yaml(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    try:
        located = yamlsafe.load(text, raw_keys=frozenset({"subject", "visit"}))
    except yamlsafe.YamlError as exc:
        out.issues.append(yaml_issue(exc, file, "YAML"))
        return out
    out.records = records_from_document(located.data, located, file, out.issues)
    return out


def read_json(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    if len(text) <= POSITION_LIMIT:
        try:  # JSON is YAML: this reading also gives the line of every record and item
            located = yamlsafe.load(text, raw_keys=frozenset({"subject", "visit"}))
        except yamlsafe.YamlError:
            located = None
        if located is not None:
            out.records = records_from_document(located.data, located, file, out.issues)
            return out
    try:
        yamlsafe.check_depth(text)
        data = json.loads(text)
    except yamlsafe.YamlError as exc:
        out.issues.append(yaml_issue(exc, file, "JSON"))
        return out
    except json.JSONDecodeError as exc:
        out.issues.append(
            make_issue(
                "parse-error",
                "at-column",
                file=file,
                line=exc.lineno,
                format="JSON",
                error=exc.msg,
                column=exc.colno,
            )
        )
        return out
    except RecursionError:
        out.issues.append(make_issue("parse-error", "too-deep", file=file))
        return out
    out.records = records_from_document(data, None, file, out.issues)
    return out


def read_jsonl(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yamlsafe.check_depth(line)
            data = json.loads(line)
        except (json.JSONDecodeError, yamlsafe.YamlError, RecursionError) as exc:
            detail = getattr(exc, "msg", None) or getattr(exc, "message", None) or "too deep"
            out.issues.append(
                make_issue("parse-error", file=file, line=lineno, format="JSON", error=detail)
            )
            continue
        record = record_from_mapping(
            data, file=file, index=lineno - 1, line=lineno, issues=out.issues
        )
        if record is not None:
            out.records.append(record)
    if not out.records and not out.issues:
        out.issues.append(make_issue("file-empty", "no-records", file=file))
    return out


# --------------------------------------------------------------------------------------
# CSV


@dataclass
class _Rows:
    """A table from any tabular source: CSV (text cells), a spreadsheet or a SAS transport
    file (text, numbers, None, or a CellError for a spreadsheet error cell)."""

    header: list[str]
    rows: list[tuple[int, list[Any]]]  # (line of the row's start, or sheet row; cells)


Table = _Rows


class CellError(str):
    """A spreadsheet cell holding an error (#DIV/0!, #N/A, ...): its text where text is
    expected, and an unusable value (issue ``cell-error``) where an item's answer is."""

    variant: str
    params: dict[str, Any]

    def __new__(cls, text: str, variant: str, params: dict[str, Any]) -> CellError:
        obj = super().__new__(cls, text)
        obj.variant, obj.params = variant, params
        return obj


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def item_value(value: Any) -> Any:
    """A cell as an item's raw answer: a spreadsheet error cell is rejected."""
    if isinstance(value, CellError):
        return Rejection("cell-error", value.variant, value.params)
    return value


def _csv_rows(text: str, file: str, issues: list[Issue]) -> _Rows | None:
    table = _csv_table(text, file, issues)
    return None if table is None else check_table(table, file, issues)


def _csv_table(text: str, file: str, issues: list[Issue]) -> _Rows | None:
    """The header and non-empty rows of CSV text, not yet checked."""
    if not text.strip():
        issues.append(make_issue("file-empty", file=file))
        return None
    first = text.split("\n", 1)[0].rstrip("\r")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(first), strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            if header is None:
                header = [c.strip() for c in cells]
            elif any(c.strip() for c in cells):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        issues.append(
            make_issue("parse-error", "csv", file=file, line=reader.line_num, error=str(exc))
        )
    if header is None:
        issues.append(make_issue("file-empty", file=file))
        return None
    return _Rows(header, rows)


def repeated_columns(header: Iterable[str], file: str) -> Issue | None:
    """The issue of a header that names a column more than once (in any case), if it does."""
    header = list(header)
    folded = [h.casefold() for h in header]
    dupes = sorted({h for h, f in zip(header, folded, strict=True) if folded.count(f) > 1})
    if not dupes:
        return None
    return make_issue(
        "csv-columns", "repeated", file=file, line=1, names=", ".join(repr(d) for d in dupes)
    )


def check_table(
    table: _Rows,
    file: str,
    issues: list[Issue],
    required: tuple[str, ...] = ("subject", "visit"),
) -> _Rows | None:
    """Unique column names, the required columns, rows as long as the header."""
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
    if not rows:
        issues.append(make_issue("file-empty", "header-only", file=file))
    good: list[tuple[int, list[Any]]] = []
    at = folded.index("subject") if "subject" in folded else None
    for line, cells in rows:
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
    return _Rows(header, good)


def _split_column(column: str, scale_ids: set[str]) -> tuple[str, str] | None:
    """``madrs_3`` -> (madrs, 3) when madrs is a known scale id."""
    prefix, sep, item = column.partition("_")
    if sep and item and prefix.casefold() in scale_ids:
        return prefix.casefold(), item
    return None


def _row_common(
    header: list[str], cells: list[Any], line: int, file: str, issues: list[Issue]
) -> tuple[dict[str, Any], str | None, Any, dict[str, Any]] | None:
    data = {h.casefold(): c for h, c in zip(header, cells, strict=True)}
    subject = text_field(data.get("subject"))
    visit = text_field(data.get("visit"))
    if subject is None or visit is None:
        issues.append(
            make_issue(
                "missing-field",
                "row",
                field="subject" if subject is None else "visit",
                file=file,
                line=line,
                subject=subject,
                visit=visit,
            )
        )
        return None
    date = day = None
    try:
        date = check_date(data.get("date"))
    except FieldError as exc:
        issues.append(field_issue(exc, "row", file=file, line=line, subject=subject, visit=visit))
    try:
        day = check_day(data.get("day"))
    except FieldError as exc:
        issues.append(field_issue(exc, "row", file=file, line=line, subject=subject, visit=visit))
    return {"subject": subject, "visit": visit}, date, day, data


def read_csv_wide(text: str, file: str, scale_ids: set[str]) -> ReadResult:
    out = ReadResult(files=[file])
    table = _csv_rows(text, file, out.issues)
    if table is None:
        return out
    records_wide(table, file, scale_ids, out)
    return out


def records_wide(table: _Rows, file: str, scale_ids: set[str], out: ReadResult) -> None:
    """Records of a checked wide table: one per row and scale (``<scale>_<item>`` columns)."""
    header = table.header
    item_columns: dict[int, tuple[str, str]] = {}
    extra_columns: list[int] = []
    for i, name in enumerate(header):
        folded = name.casefold()
        if folded in ("subject", "visit", "date", "day"):
            continue
        split = _split_column(name, scale_ids)
        if split is not None:
            item_columns[i] = split
        else:
            extra_columns.append(i)
    scales_in_file = list(dict.fromkeys(s for s, _ in item_columns.values()))
    if not scales_in_file:
        out.issues.append(
            make_issue("csv-columns", "no-items", file=file, line=1, columns=header[:12])
        )
        return
    for line, cells in table.rows:
        common = _row_common(header, cells, line, file, out.issues)
        if common is None:
            continue
        ids, date, day, _ = common
        extra = {header[i]: _cell(cells[i]) for i in extra_columns}
        for scale_id in scales_in_file:
            items = {
                item: item_value(cells[i]) for i, (s, item) in item_columns.items() if s == scale_id
            }
            if all(_is_blank(v) for v in items.values()):
                continue  # this scale was not rated at this visit
            out.records.append(
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


def _cell(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    return text if text else None


def _same_cell(old: Any, new: Any) -> bool:
    if isinstance(old, str) and isinstance(new, str):
        return old.strip() == new.strip()
    return bool(old == new)


def read_csv_long(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    table = _csv_rows(text, file, out.issues)
    if table is None:
        return out
    records_long(table, file, out)
    return out


def records_long(table: _Rows, file: str, out: ReadResult) -> None:
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
        common = _row_common(header, cells, line, file, out.issues)
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
                "extra": {h: _cell(data[h.casefold()]) for h in extra_names},
            }
        value = item_value(data.get("value", ""))
        if item in group["items"]:
            old = group["items"][item]
            if isinstance(old, Rejection) or not _same_cell(old, value):
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
            )
        )


# --------------------------------------------------------------------------------------
# More formats, registered by name (ketascore.readers.formats adds xlsx, xpt, sdtm, redcap, fhir)


@dataclass(frozen=True)
class ReadOptions:
    """Options of the readers of clinical formats, passed through ``read_paths``.

    ``mapping`` a column mapping for tabular input (ketascore.readers.mapping.ColumnMapping);
    ``sheet`` the spreadsheet sheet to read (default: the first); ``redcap_dictionary`` a
    REDCap data dictionary (ketascore.readers.redcap.RedcapDictionary); ``questionnaire``
    FHIR Questionnaires (ketascore.readers.fhir.Questionnaires); ``category`` the SDTM
    QSCAT/RSCAT to read; ``scales`` scales besides the built-in ones, whose codes readers may
    use. ``ketascore.readers.formats.load_read_options`` builds one from file names.
    """

    mapping: Any = None
    sheet: str | None = None
    redcap_dictionary: Any = None
    questionnaire: Any = None
    category: str | None = None
    scales: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FormatContext:
    """What a registered reader gets besides the input: the options and the known scale ids
    (casefolded)."""

    options: ReadOptions
    scale_ids: frozenset[str]


@dataclass(frozen=True)
class FormatReader:
    """A reader registered by name.

    Binary formats read bytes (``read_bytes``), text formats decoded text (``read_text``).
    Without --input-format a format is chosen by ``extensions`` or ``magic`` (binary) or by
    ``detect(name, text, requested, context)`` (text; ``requested`` is the built-in format
    named by the caller, or None). Detectors run in registration order, before the built-in
    detection, and return False when unsure.
    """

    name: str
    read_text: Callable[[str, str, FormatContext], ReadResult] | None = None
    read_bytes: Callable[[bytes, str, FormatContext], ReadResult] | None = None
    extensions: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    detect: Callable[[str, str, str | None, FormatContext], bool] | None = None
    description: str = ""


FORMAT_READERS: dict[str, FormatReader] = {}


def register_format(reader: FormatReader) -> None:
    """Add (or replace) a named format; the built-in names cannot be taken."""
    if reader.name in FORMATS:
        raise ValueError(f"{reader.name!r} is a built-in format")
    FORMAT_READERS[reader.name] = reader


def _plain_yaml(name: str, fmt: str | None) -> bool:
    """A .yaml/.yml file (or --input-format yaml): no clinical format reads YAML, so the
    format readers need not even be imported."""
    if fmt is not None:
        return fmt == "yaml"
    return os.path.splitext(name)[1].lower() in (".yaml", ".yml")


def _load_formats() -> None:
    import ketascore.readers.formats  # noqa: F401  (registers the clinical formats)


def input_formats() -> tuple[str, ...]:
    """Every format name ``--input-format`` accepts."""
    _load_formats()
    return (*FORMATS, *FORMAT_READERS)


def is_input_file(name: str) -> bool:
    """Whether a file found in a folder is read: a known extension, not an office lock file."""
    _load_formats()
    ext = os.path.splitext(name)[1].lower()
    if name.startswith("~$"):
        return False
    return ext in EXTENSIONS or any(ext in r.extensions for r in FORMAT_READERS.values())


def _context(scale_ids: Iterable[str], options: ReadOptions | None) -> FormatContext:
    return FormatContext(options or ReadOptions(), frozenset(s.casefold() for s in scale_ids))


def _binary_reader(fmt: str | None, name: str, data: bytes) -> FormatReader | None:
    if fmt is not None:
        reader = FORMAT_READERS.get(fmt)
        return reader if reader is not None and reader.read_bytes is not None else None
    ext = os.path.splitext(name)[1].lower()
    for reader in FORMAT_READERS.values():
        if reader.read_bytes is None:
            continue
        if ext in reader.extensions or any(data.startswith(m) for m in reader.magic):
            return reader
    return None


def _text_reader(
    fmt: str | None, name: str, text: str, context: FormatContext
) -> FormatReader | None:
    if fmt is not None and fmt in FORMAT_READERS:
        return FORMAT_READERS[fmt]
    if fmt == "yaml":
        return None
    for reader in FORMAT_READERS.values():
        detect = reader.detect
        if reader.read_text is not None and detect is not None and detect(name, text, fmt, context):
            return reader
    return None


# --------------------------------------------------------------------------------------
# Entry points


def read_text(
    text: str,
    name: str,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read answer records from text; ``fmt`` overrides detection."""
    text = text.removeprefix("\ufeff")
    reader = None
    if not _plain_yaml(name, fmt):
        _load_formats()
        reader = _text_reader(fmt, name, text, _context(scale_ids, options))
    if reader is not None:
        if reader.read_text is None:
            return ReadResult(
                issues=[make_issue("file-format", "binary-format", file=name, format=reader.name)],
                files=[name],
            )
        return reader.read_text(text, name, _context(scale_ids, options))
    fmt = fmt or detect_format(name, text)
    if fmt == "yaml":
        return read_yaml(text, name)
    if fmt == "json":
        return read_json(text, name)
    if fmt == "jsonl":
        return read_jsonl(text, name)
    if fmt == "csv-long":
        return read_csv_long(text, name)
    if fmt == "csv":
        if detect_format(".csv", text) == "csv-long":
            return read_csv_long(text, name)
        return read_csv_wide(text, name, {s.casefold() for s in scale_ids})
    raise ValueError(f"unknown input format {fmt!r}; choose one of {', '.join(input_formats())}")


def read_bytes(
    data: bytes,
    name: str,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    issues: list[Issue] = []
    digest = hashlib.sha256(data).hexdigest()
    binary = None
    if not _plain_yaml(name, fmt):
        _load_formats()
        binary = _binary_reader(fmt, name, data)
    if binary is not None and binary.read_bytes is not None:
        result = binary.read_bytes(data, name, _context(scale_ids, options))
        result.hashes[name] = digest
        return result
    text = decode(data, name, issues)
    if text is None:
        return ReadResult(issues=issues, files=[name], hashes={name: digest})
    result = read_text(text, name, fmt, scale_ids, options=options)
    result.issues[:0] = issues
    result.hashes[name] = digest
    return result


def read_file(
    path: str | Path,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    name = str(path)
    try:
        size = os.stat(path).st_size
        if size > max_file_size:
            return ReadResult(
                issues=[make_issue("file-too-large", file=name, size=size, limit=max_file_size)],
                files=[name],
            )
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ReadResult(
            issues=[make_issue("file-unreadable", file=name, reason=reason)],
            files=[name],
        )
    return read_bytes(data, name, fmt, scale_ids, options=options)


def read_paths(
    paths: Iterable[str | Path],
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    stdin: BinaryIO | None = None,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read files and folders (``-`` is standard input) into one result, in a stable order.

    ``options`` reach the readers of clinical formats (mapping file, sheet, REDCap data
    dictionary, FHIR Questionnaire, SDTM category)."""
    out = ReadResult()
    ids = list(scale_ids)
    for path in iter_input_files(paths, include, exclude, out.issues):
        if str(path) == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            out.extend(read_bytes(stream.read(), "<stdin>", fmt, ids, options=options))
        else:
            out.extend(read_file(path, fmt, ids, max_file_size, options=options))
    return out
