"""The fields of a record as readers take them from a file: subject and visit (text), date,
study day, carried fields, and an item's raw answer (checked later by the value grammar)."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from typing import Any, TypeVar

from ketascore.core.issues import Issue, make_issue, missing_id
from ketascore.core.values import (
    Rejection,
    clean_number,
    comparable,
    day_number,
    finite_number,
    format_number,
    id_text,
    is_date,
    strip,
)

T = TypeVar("T")


def text_field(value: Any) -> str | None:
    """A subject or visit as text (``ketascore.core.values.id_text``): stripped of ASCII
    whitespace, a number as its number (``12.0`` is ``"12"``); None when blank, not text or
    a number, a floating-point number that cannot be an exact id (``inexact_id``), or a
    spreadsheet error cell (``#N/A`` is no subject)."""
    if isinstance(value, CellError):
        return None
    return id_text(value)


def number_text(value: Any) -> str | None:
    """A cell that holds a number by definition (SDTM VISITNUM, a REDCap repeat instance)
    as the text of its number however written (``1``, ``1.0`` and ``01`` are ``"1"``), so
    that one number makes one visit; a text that is no number as written (``text_field``)."""
    text = text_field(value)
    if text is None:
        return None
    try:
        number = finite_number(text)
    except ValueError:
        return text
    return text if number is None else format_number(number)


class FieldError(ValueError):
    """A date or study day that cannot be used: the bad-field message's variant and
    parameters."""

    def __init__(self, variant: str, value: Any, **params: Any):
        super().__init__(variant)
        self.variant = variant
        self.value = value
        self.params = params


def field_issue(exc: FieldError, unit: str, **where: Any) -> Issue:
    """The bad-field issue of ``exc``; ``unit`` (record, row) is what is scored without it."""
    return make_issue("bad-field", exc.variant, value=exc.value, unit=unit, **exc.params, **where)


def checked_field(
    check: Callable[[Any], T], value: Any, issues: list[Issue], unit: str, **where: Any
) -> T | None:
    """``check(value)`` (``check_date``, ``check_day``), or None with its bad-field issue."""
    try:
        return check(value)
    except FieldError as exc:
        issues.append(field_issue(exc, unit, **where))
        return None


def check_date(value: Any) -> str | None:
    """A record's date: an ISO date (``ketascore.core.values.is_date``), else FieldError."""
    if value is None:
        return None
    text = strip(str(value))
    if not text:
        return None
    if not is_date(text):
        serial = spreadsheet_date(text)
        if serial is not None:
            raise FieldError("date-serial", text, as_date=serial)
        raise FieldError("date", text)
    return text


# A spreadsheet stores a date as a count of days (Excel's 1900 system: day 1 is 1900-01-01,
# and its day 60 a 29 February 1900 that never was); a date column shown as "General"
# gives that number. Five digits or more (1927-05-18 on): a four-digit number is a year.
SPREADSHEET_EPOCH = dt.date(1899, 12, 30)
SERIALS = range(10_000, 2_958_466)  # (to 9999-12-31)


def spreadsheet_date(text: str) -> str | None:
    """The date a whole number would be as a spreadsheet's date serial (``45292`` is
    ``2024-01-01``), for a message; None when it is no such number. Never used as the date:
    the number may be something else."""
    whole = text[:-2] if text.endswith(".0") else text
    if not (whole.isascii() and whole.isdigit()) or int(whole) not in SERIALS:
        return None
    return (SPREADSHEET_EPOCH + dt.timedelta(days=int(whole))).isoformat()


def check_day(value: Any) -> int | float | None:
    """A record's study day (``ketascore.core.values.day_number``), else FieldError."""
    try:
        return day_number(value)
    except ValueError as exc:
        raise FieldError(str(exc), value) from None


class CellError(str):
    """A spreadsheet cell holding an error (#DIV/0!, #N/A, ...): its text where text is
    expected, and an unusable value (issue ``cell-error``) where an item's answer is."""

    variant: str
    params: dict[str, Any]

    def __new__(cls, text: str, variant: str, params: dict[str, Any]) -> CellError:
        obj = super().__new__(cls, text)
        obj.variant, obj.params = variant, params
        return obj


def id_issue(
    subject: str | None,
    visit: str | None,
    cells: tuple[Any, Any],
    file: str,
    line: int,
    names: tuple[str, str] = ("subject", "visit"),
) -> Issue:
    """The issue of a row without a subject or a visit (``missing_id``; ``cells``: the two
    cells as read). When the cell is a spreadsheet error cell (a lookup's ``#N/A``), the
    message says so rather than that the row has no subject."""
    which = 0 if subject is None else 1
    cell = cells[which]
    if not isinstance(cell, CellError):
        return missing_id(subject, visit, file, line, names, cells)
    error = make_issue("cell-error", cell.variant, **cell.params).detail
    return make_issue(
        "missing-field",
        "cell",
        field=names[which],
        error=error,
        file=file,
        line=line,
        subject=subject,
        visit=visit,
    )


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not strip(value))


def item_value(value: Any) -> Any:
    """A cell as an item's raw answer: a spreadsheet error cell is rejected."""
    if isinstance(value, CellError):
        return Rejection("cell-error", value.variant, value.params)
    return value


def carried(value: Any) -> Any:
    """A carried field's value as output data, which every output format can hold: text
    stripped (None when blank); a number as it is, but a Decimal as an int or float and an
    infinite float as its text; a date or time as ISO text, a duration or bytes as text;
    lists and mappings (Parquet's nested columns) with their values made so."""
    if isinstance(value, str):
        text = strip(value)
        return text if text else None
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):  # (a plain float: a FLOAT column's values.Float32 too)
        return float(value) if math.isfinite(value) else repr(value)
    if isinstance(value, decimal.Decimal):
        return carried(clean_number(float(value))) if value.is_finite() else str(value)
    if isinstance(value, list | tuple):
        return [carried(v) for v in value]
    if isinstance(value, dict):
        return {str(k): carried(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def same_cell(old: Any, new: Any) -> bool:
    """Two answers to one item in a long table are one answer when they mean the same, as
    two copies of a wide row are compared (``ketascore.core.values.comparable``): the same
    number however written (``1``, ``1.0``, `` 01 ``), the same label whatever its case and
    spacing, or neither answered (blank, ``NA``)."""
    return bool(comparable(old) == comparable(new))


def repeated_lines(items: dict[str, Any], repeats: dict[str, list[int]]) -> tuple[int, ...]:
    """The lines of the rows that gave an item again alike (``repeats``, by item), of the
    items not given otherwise too (their conflict is reported instead), in order."""
    return tuple(
        sorted(
            line
            for item, lines in repeats.items()
            if not isinstance(items.get(item), Rejection)
            for line in lines
        )
    )
