"""The grammar of an answer value, written once: in Python for the record engine and as SQL
text for the table engines (the SQL compiler builds its item expressions from here).

An answer, as a reader hands it over, is null, a boolean, a number, a text, or a reader's
``Rejection``. It means one of three things for an item: a number the item allows, MISSING
(not answered), or a Rejection (an issue code, a message variant and its parameters).

1. null is missing; a reader's rejection stays rejected; a boolean is rejected.
2. A number (int, float, Decimal) must be finite. It is missing when it is one of the item's
   missing codes (or an extra missing code of a mapping file), allowed when the item allows
   it, and otherwise out of range or not allowed.
3. A text is first stripped of ASCII whitespace (space, tab, line feed, carriage return,
   vertical tab, form feed). Then, in this order:
   - blank, ``NA``, ``N/A`` and ``.`` (any ASCII case) are missing;
   - a NUMBER, ``[+-]`` then ASCII digits with at most one decimal point and at least one
     digit (``3``, ``+3``, ``03``, ``3.0``, ``3.``, ``.5``), is read as that number (2.);
   - an answer label of the item, compared ignoring ASCII case and every ASCII whitespace
     character (``several days`` is ``Several  Days``), is its value; a missing code's label
     is missing;
   - an answer code of the item (``LA6569-3``), compared exactly, is its value; a missing
     code's code is missing;
   - anything else is rejected: ``unknown-label`` when the item has labels and the text
     holds no ASCII digit and is not a spelling of NaN or infinity, else ``not-a-number``.
4. Anything else (a list, a mapping) is rejected.

What this grammar does not read (on purpose, so that every SQL dialect reads exactly the
same): exponents (``1e0``), digits of other scripts (``٣``), and whitespace beyond ASCII
(a no-break space around a number). Such answers are rejected with ``not-a-number``, never
guessed. Only ASCII letters change case (``Ä`` and ``ä`` are different labels).
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ketascore.core.scale import ItemRule

Num = int | float

WHITESPACE = " \t\n\r\x0b\x0c"
DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
MISSING_MARKERS = frozenset({"", "na", "n/a", "."})
NOT_NUMBERS = ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_NOT_NUMBERS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"})
_LOWER = str.maketrans(UPPER, LOWER)
_KEY = str.maketrans(UPPER, LOWER, WHITESPACE)
_NO_DIGITS = str.maketrans("", "", DIGITS)


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


MISSING: Any = _Missing()
INVALID: Any = _Invalid()


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an answer cannot be used: an issue code, its message variant and parameters."""

    code: str
    variant: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """The message the rejection's issue gives (without location or hint)."""
        from ketascore.core.issues import make_issue

        return make_issue(self.code, self.variant, **self.params).detail


# --------------------------------------------------------------------------------------
# The grammar's pieces


def strip(text: str) -> str:
    """Text without whitespace at either end."""
    return text.strip()


def ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


def label_key(label: str) -> str:
    """How answer labels compare: case and repeated or outer whitespace do not count."""
    return " ".join(str(label).split()).casefold()


def is_missing_marker(text: str) -> bool:
    """``text`` (stripped) is blank, NA, N/A or ``.``."""
    return text.casefold() in MISSING_MARKERS


def is_number(text: str) -> bool:
    """``text`` (stripped) is a number as Python reads it."""
    return _NUMBER.match(text) is not None


def number_of(text: str) -> Num:
    """The value of a NUMBER (``is_number``): exact for whole numbers."""
    if text.lstrip("+-").isdigit():
        return int(text)
    return clean_number(float(text))


def has_digit(text: str) -> bool:
    return text.translate(_NO_DIGITS) != text


def clean_number(value: Num) -> Num:
    """Whole floats become ints (16.0 prints and serialises as 16; -0.0 is 0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def format_number(value: Num) -> str:
    value = clean_number(value)
    return repr(value) if isinstance(value, float) else str(value)


def shown(number: Num) -> str:
    """A number as messages show it (very large ones in short form)."""
    return format_number(number) if abs(number) < 1e15 else f"{number:.3g}"


# --------------------------------------------------------------------------------------
# Python


def parse_value(rule: ItemRule, raw: Any, extra_missing: frozenset[Any] = frozenset()) -> Any:
    """An item's value as a number, MISSING, or a Rejection saying why it is unusable."""
    if raw is None:
        return MISSING
    if isinstance(raw, Rejection):  # a reader already found the value unusable
        return raw
    if isinstance(raw, bool):
        return Rejection("not-a-number", "boolean", {"value": str(raw).lower()})
    if isinstance(raw, decimal.Decimal):
        raw = int(raw) if raw == raw.to_integral_value() else float(raw)
    if isinstance(raw, int | float):
        number = clean_number(raw)
        if extra_missing and number in extra_missing:
            return MISSING
        return _check_number(rule, number, raw)
    if not isinstance(raw, str):
        return Rejection("not-a-number", "type", {"kind": type(raw).__name__})
    text = strip(raw)
    if extra_missing and text in extra_missing:
        return MISSING
    if is_missing_marker(text):
        return MISSING
    if is_number(text):
        number = number_of(text)
        if extra_missing and number in extra_missing:
            return MISSING
        return _check_number(rule, number, raw)
    key = label_key(text)
    if key in rule.labels:
        return rule.labels[key]
    if key in rule.missing_labels:
        return MISSING
    if text in rule.codes:
        return rule.codes[text]
    if text in rule.missing_code_texts:
        return MISSING
    if key in _NOT_NUMBERS:
        return Rejection("not-a-number", "", {"value": raw})
    if rule.labels:
        labels = ", ".join(repr(lbl) for lbl in rule.answer_labels[:8])
        return Rejection("unknown-label", "", {"value": raw, "labels": labels})
    return Rejection("not-a-number", "", {"value": raw})


def _check_number(rule: ItemRule, number: Num, raw: Any) -> Any:
    try:
        finite = math.isfinite(number)
    except OverflowError:  # an int beyond a double's range
        finite = False
    if not finite:  # (SQL reads every number as a double)
        return Rejection("not-a-number", "", {"value": raw})
    if number in rule.missing_values:
        return MISSING
    if rule.is_allowed(number):
        return number
    params = {"value": shown(number), "allowed": rule.describe_allowed()}
    if number < rule.lo or number > rule.hi:
        return Rejection("out-of-range", "", params)
    return Rejection("not-allowed-value", "", params)


def comparable(value: Any) -> Any:
    """What two answers to one item must share to be the same answer (duplicate records):
    the number, the label key, or None when not answered."""
    if value is None:
        return None
    if isinstance(value, Rejection):
        return ("rejected", value.code, value.variant, tuple(sorted(value.params.items())))
    if isinstance(value, bool):
        return ("boolean", value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        return ("other", repr(value))
    text = strip(value)
    if is_missing_marker(text):
        return None
    if is_number(text):
        return float(number_of(text))
    return label_key(text)


# --------------------------------------------------------------------------------------
# SQL (DuckDB's dialect; other dialects are transpiled from it). Every expression below
# uses plain functions that every dialect has: TRIM with characters, TRANSLATE, LOWER is
# not used (ASCII case is changed by TRANSLATE), CAST, IN, CASE.


def sql_text(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sql_number(value: Num) -> str:
    value = clean_number(value)
    if isinstance(value, int):
        return f"{value}.0" if abs(value) < 2**53 else repr(float(value))
    return repr(value)


WS_SQL = sql_text(WHITESPACE)


def sql_strip(column: str) -> str:
    return f"trim({column}, {WS_SQL})"


def sql_ascii_lower(expr: str) -> str:
    return f"translate({expr}, {sql_text(UPPER)}, {sql_text(LOWER)})"


def sql_label_key(expr: str) -> str:
    """``label_key`` in SQL: ASCII letters lowered, ASCII whitespace dropped. (TRANSLATE
    drops the characters of its second argument that the third lacks.)"""
    return f"translate({expr}, {sql_text(UPPER + WHITESPACE)}, {sql_text(LOWER)})"


def sql_is_number(stripped: str) -> str:
    """``is_number`` in SQL, without regular expressions."""
    body = (
        f"(CASE WHEN substr({stripped}, 1, 1) IN ('+', '-') "
        f"THEN substr({stripped}, 2) ELSE {stripped} END)"
    )
    return f"({body} NOT IN ('', '.') AND translate({body}, {sql_text(DIGITS)}, '') IN ('', '.'))"


def sql_has_digit(stripped: str) -> str:
    return f"(translate({stripped}, {sql_text(DIGITS)}, '') <> {stripped})"


def _sql_in(expr: str, values: Iterable[str]) -> str:
    values = list(values)
    if not values:
        return "FALSE"
    return f"{expr} IN ({', '.join(values)})"


@dataclass(frozen=True)
class SqlItem:
    """An item's answer read in SQL: ``value`` (DOUBLE; NULL when missing or rejected) and
    ``rejection`` (the issue code, or NULL when the answer is usable or missing)."""

    value: str
    rejection: str


def sql_item(
    rule: ItemRule, column: str, kind: str = "text", extra_missing: Iterable[Num | str] = ()
) -> SqlItem:
    """The grammar of ``parse_value`` for ``column``: ``kind`` is text (any column read as
    text), number (a numeric column) or boolean."""
    extra = list(extra_missing)
    extra_numbers = [clean_number(v) for v in extra if isinstance(v, int | float)]
    extra_texts = [v for v in extra if isinstance(v, str)]
    if kind == "boolean":
        rejected = f"CASE WHEN {column} IS NULL THEN NULL ELSE 'not-a-number' END"
        return SqlItem("CAST(NULL AS DOUBLE)", rejected)
    if kind == "number":
        return _sql_number_item(rule, f"CAST({column} AS DOUBLE)", extra_numbers)
    s = sql_strip(column)
    # the answers of most rows: an allowed value written plainly ("0" ... "3")
    plain = [str(v) for v in rule.allowed_values() if isinstance(clean_number(v), int)]
    plain_in = _sql_in(column, (sql_text(p) for p in plain if p not in map(str, extra)))
    number = _sql_number_item(rule, f"CAST({s} AS DOUBLE)", extra_numbers)
    key = sql_label_key(s)
    labels = sorted(rule.labels.items())
    label_value = (
        "CASE "
        + " ".join(f"WHEN {key} = {sql_text(k)} THEN {sql_number(v)}" for k, v in labels)
        + " END"
        if labels
        else "NULL"
    )
    code_value = (
        "CASE "
        + " ".join(f"WHEN {s} = {sql_text(k)} THEN {sql_number(v)}" for k, v in rule.codes.items())
        + " END"
        if rule.codes
        else "NULL"
    )
    is_label = _sql_in(key, (sql_text(k) for k, _ in labels))
    is_missing_label = _sql_in(key, (sql_text(k) for k in sorted(rule.missing_labels)))
    is_code = _sql_in(s, (sql_text(k) for k in rule.codes))
    is_missing_code = _sql_in(s, (sql_text(k) for k in sorted(rule.missing_code_texts)))
    is_extra_text = _sql_in(s, (sql_text(t) for t in extra_texts))
    markers = _sql_in(sql_ascii_lower(s), (sql_text(m) for m in MISSING_MARKERS))
    value = (
        f"CASE WHEN {column} IS NULL THEN NULL "
        f"WHEN {plain_in} THEN CAST({column} AS DOUBLE) "
        f"WHEN {is_extra_text} OR {markers} THEN NULL "
        f"WHEN {sql_is_number(s)} THEN {number.value} "
        f"WHEN {is_label} THEN {label_value} "
        f"WHEN {is_code} THEN {code_value} "
        "ELSE NULL END"
    )
    not_numbers = ", ".join(sql_text(n) for n in NOT_NUMBERS)
    unknown_label = (
        f"NOT {sql_has_digit(s)} AND {sql_ascii_lower(s)} NOT IN ({not_numbers})"
        if rule.labels
        else "FALSE"
    )
    rejection = (
        f"CASE WHEN {column} IS NULL OR {plain_in} THEN NULL "
        f"WHEN {is_extra_text} OR {markers} THEN NULL "
        f"WHEN {sql_is_number(s)} THEN {number.rejection} "
        f"WHEN {is_label} OR {is_missing_label} OR {is_code} OR {is_missing_code} THEN NULL "
        f"WHEN {unknown_label} THEN 'unknown-label' "
        "ELSE 'not-a-number' END"
    )
    return SqlItem(value, rejection)


def _sql_number_item(rule: ItemRule, number: str, extra_missing: list[Num]) -> SqlItem:
    """A number (already DOUBLE) checked as ``_check_number`` checks it."""
    missing = _sql_in(number, (sql_number(v) for v in [*rule.missing_values, *extra_missing]))
    if rule.allowed is None:
        lo, hi = sql_number(rule.lo), sql_number(rule.hi)
        allowed = f"({number} BETWEEN {lo} AND {hi} AND {number} = floor({number}))"
    else:
        allowed = _sql_in(number, (sql_number(v) for v in sorted(rule.allowed)))
    outside = f"({number} < {sql_number(rule.lo)} OR {number} > {sql_number(rule.hi)})"
    finite = f"({number} - {number} = 0)"  # NaN and infinity minus themselves are NaN
    value = f"CASE WHEN {finite} AND NOT {missing} AND {allowed} THEN {number} END"
    rejection = (
        f"CASE WHEN {number} IS NULL THEN NULL WHEN NOT {finite} THEN 'not-a-number' "
        f"WHEN {missing} OR {allowed} THEN NULL WHEN {outside} THEN 'out-of-range' "
        "ELSE 'not-allowed-value' END"
    )
    return SqlItem(value, rejection)


def sql_comparable(column: str, kind: str = "text") -> str:
    """``comparable`` in SQL, as text (numbers by value, labels by key, NULL when missing)."""
    if kind == "number":
        number = _no_signed_zero(f"CAST({column} AS DOUBLE)")
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE 'n' || CAST({number} AS VARCHAR) END"
    if kind == "boolean":
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE 'b' || CAST({column} AS VARCHAR) END"
    s = sql_strip(column)
    markers = _sql_in(sql_ascii_lower(s), (sql_text(m) for m in MISSING_MARKERS))
    number = _no_signed_zero(f"CAST({s} AS DOUBLE)")
    return (
        f"CASE WHEN {column} IS NULL OR {markers} THEN NULL "
        f"WHEN {sql_is_number(s)} THEN 'n' || CAST({number} AS VARCHAR) "
        f"ELSE 't' || {sql_label_key(s)} END"
    )


def _no_signed_zero(number: str) -> str:
    """-0 compares equal to 0, so it must print as 0 too."""
    return f"(CASE WHEN {number} = 0 THEN 0.0 ELSE {number} END)"
