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
guessed. Only ASCII letters change case (``Ä`` and ``ä`` are different labels). A rejected
answer that holds a character that does not show or looks like a space (a zero-width
space, a byte-order mark, a no-break space, a control character: ``unseen_character``) is
rejected with the message that names it (variant ``unseen``), since ``'2\u200b'`` prints
as ``2``.
"""

from __future__ import annotations

import decimal
import math
import unicodedata
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
MISSING_MARKERS = ("", "na", "n/a", ".")
NOT_NUMBERS = ("nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")

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
    """Text without ASCII whitespace at either end."""
    return text.strip(WHITESPACE)


def ascii_lower(text: str) -> str:
    return text.translate(_LOWER)


def label_key(label: str) -> str:
    """How answer labels compare: ASCII case and ASCII whitespace do not count."""
    return label.translate(_KEY)


def is_missing_marker(text: str) -> bool:
    """``text`` (stripped) is blank, NA, N/A or ``.``."""
    return ascii_lower(text) in MISSING_MARKERS


def is_number(text: str) -> bool:
    """``text`` (stripped) is a NUMBER: a sign, ASCII digits, at most one decimal point."""
    body = text[1:] if text[:1] in ("+", "-") else text
    return body not in ("", ".") and body.translate(_NO_DIGITS) in ("", ".")


def number_of(text: str) -> Num:
    """The value of a NUMBER (``is_number``): exact for whole numbers. A whole number too
    long for Python to convert (more than 4,300 digits) is read as a double, as SQL reads
    it: infinite, so it is rejected as every number beyond a double's range is."""
    if "." in text:
        return clean_number(float(text))
    try:
        return int(text)
    except ValueError:
        return clean_number(float(text))


def missing_code_values(codes: Iterable[Any]) -> tuple[Any, ...]:
    """Extra missing codes (a mapping file's ``missing_codes``, ``extra_missing``) as the
    grammar reads answers, in their order: a text that is a NUMBER (``"7"``, ``" 07 "``) is
    that number, so that it means no answer whether a cell holds 7 as a number (a
    spreadsheet, Parquet or SAS cell) or as text; other codes are compared as given."""
    out: dict[Any, None] = {}
    for code in codes:
        if isinstance(code, str) and is_number(strip(code)):
            code = number_of(strip(code))
        out[clean_number(code) if isinstance(code, int | float) else code] = None
    return tuple(out)


def unseen_character(text: str) -> str | None:
    """The first character of ``text`` that does not show or looks like a space but is not
    ASCII whitespace (a zero-width space, a byte-order mark, a no-break space, a control
    character), as ``U+200B (ZERO WIDTH SPACE)``; None when there is none. The grammar
    reads no such character: an answer holding one is rejected, and this names it, since
    ``2\u200b`` prints as ``2``."""
    if text.isascii() and text.isprintable():  # (most texts: a character at a time is slow)
        return None
    for char in text:
        if _unseen(char):
            return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"
    return None


def _unseen(char: str) -> bool:
    if char.isascii() and (char.isprintable() or char in WHITESPACE):
        return False
    return unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def without_unseen(text: str) -> str:
    """``text`` without the characters ``unseen_character`` names: how two names compare
    when one may hold a character that does not show (``S1`` and ``S1\u200b``)."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c for c in text if not _unseen(c))


def has_digit(text: str) -> bool:
    return text.translate(_NO_DIGITS) != text


def clean_number(value: Num) -> Num:
    """Whole floats become ints (16.0 prints and serialises as 16; -0.0 is 0); others are
    plain floats (a ``NarrowFloat`` too)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else float(value)
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
    params: dict[str, Any] = {"value": raw}
    hidden = unseen_character(text)
    if hidden is not None:
        params["character"] = hidden
    if rule.labels and not has_digit(text) and ascii_lower(text) not in NOT_NUMBERS:
        labels = ", ".join(repr(lbl) for lbl in rule.answer_labels[:8])
        return Rejection("unknown-label", "unseen" if hidden else "", {**params, "labels": labels})
    variant = "unseen" if hidden else "grammar" if has_digit(text) else ""
    return Rejection("not-a-number", variant, params)


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
    if isinstance(value, Rejection):  # (its parameters as written: one may be a rejection)
        params = tuple(sorted((k, repr(v)) for k, v in value.params.items()))
        return ("rejected", value.code, value.variant, params)
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


def sql_in(expr: str, values: Iterable[str]) -> str:
    """``expr`` is one of ``values`` (SQL literals). A long IN list is written as ORs:
    DuckDB turns an IN list of more than four constants into a join, which does not keep
    the rows in input order."""
    values = list(values)
    if not values:
        return "FALSE"
    if len(values) <= 4:
        return f"{expr} IN ({', '.join(values)})"
    return "(" + " OR ".join(f"{expr} = {v}" for v in values) + ")"


@dataclass(frozen=True)
class SqlItem:
    """An item's answer read in SQL, in layers (each names the columns of the ones before):

    1. ``fast``: the value of an allowed whole value written plainly ("0" ... "3"), from the
       raw answer (a CASE on the text, the quickest way DuckDB has); else NULL;
    2. ``text``: the stripped text where ``fast`` gave nothing (NULL for a NULL answer);
    3. ``number``: the answer as a number where ``text`` is a NUMBER (typed: the column's),
       ``key``: ``text`` as answer labels compare, ``lower``: ``text`` in lower case;
    4. ``kind``: what the text is: m (missing), n (a number), l (a label), c (a code),
       u (an unknown label), z (not a number);
    5. ``value``: the value (DOUBLE), NULL when missing or unusable;
    6. ``rejection``: the issue code of an answer that gave no value and is not missing.

    Each is an expression over the columns ``SqlColumns`` names. Layers a column's kind
    does not need are None."""

    fast: str | None
    text: str | None
    number: str
    key: str | None
    lower: str | None
    kind: str | None
    value: str
    rejection: str


@dataclass(frozen=True)
class SqlColumns:
    """The names of an item's columns in the layers of ``SqlItem``."""

    raw: str
    fast: str
    text: str
    number: str
    key: str
    lower: str
    kind: str
    value: str


PLAIN_LIMIT = 64  # items with more allowed whole values are not mapped value by value


def sql_item(
    rule: ItemRule,
    c: SqlColumns,
    kind: str = "text",
    extra_missing: Iterable[Num | str] = (),
    whole: bool = False,
) -> SqlItem:
    """The grammar of ``parse_value`` for an item's column (``c.raw``): ``kind`` is text
    (any column read as text), number (a numeric column; NaN is a missing answer, as the
    readers of tables take it) or boolean. ``whole``: a number column of an integer type
    (no NaN, infinity or fraction to look for)."""
    extra = list(missing_code_values(extra_missing))
    extra_numbers = [clean_number(v) for v in extra if isinstance(v, int | float)]
    extra_texts = [v for v in extra if isinstance(v, str)]
    checked = _sql_number_check(rule, c.number, extra_numbers, whole and kind == "number")
    if kind == "boolean":
        rejected = f"CASE WHEN {c.raw} IS NULL THEN NULL ELSE 'not-a-number' END"
        null = "CAST(NULL AS DOUBLE)"
        return SqlItem(None, None, null, None, None, None, null, rejected)
    if kind == "number":
        number = f"CAST({c.raw} AS DOUBLE)"
        if not whole:
            number = f"(CASE WHEN {sql_is_nan(number)} THEN NULL ELSE {number} END)"
        return SqlItem(None, None, number, None, None, None, checked.value, checked.rejection)
    # 1. the plain answers
    texts = {str(v): sql_number(v) for v in _plain_values(rule)}
    for code in (str(x) for x in extra):
        texts.pop(code, None)
    whens = " ".join(f"WHEN {sql_text(k)} THEN {v}" for k, v in texts.items())
    fast = f"CASE {c.raw} {whens} END" if texts else None
    # 2. and 3. the others, stripped, as a number and as a label
    unread = f"{c.fast} IS NOT NULL OR " if fast is not None else ""
    text = f"CASE WHEN {unread}{c.raw} IS NULL THEN NULL ELSE {sql_strip(c.raw)} END"
    # (each starts with "no text, nothing": most rows have none, and then the rest of the
    # CASE is not evaluated at all)
    none = f"WHEN {c.text} IS NULL THEN NULL"
    number = f"CASE {none} WHEN {sql_is_number(c.text)} THEN CAST({c.text} AS DOUBLE) END"
    has_labels = bool(rule.labels or rule.missing_labels)
    key = f"CASE {none} ELSE {sql_label_key(c.text)} END" if has_labels else None
    lower = f"CASE {none} ELSE {sql_ascii_lower(c.text)} END"
    # 4. what the text is
    lowered = c.lower
    missing = [
        sql_in(c.text, (sql_text(t) for t in [*extra_texts, *sorted(rule.missing_code_texts)])),
        sql_in(lowered, (sql_text(m) for m in MISSING_MARKERS)),
        sql_in(c.key, (sql_text(k) for k in sorted(rule.missing_labels))),
    ]
    not_number = sql_in(lowered, (sql_text(n) for n in NOT_NUMBERS))
    unknown_label = f"NOT {sql_has_digit(c.text)} AND NOT {not_number}" if rule.labels else "FALSE"
    what = (
        f"CASE WHEN {c.text} IS NULL THEN NULL "
        f"WHEN {missing[0]} OR {missing[1]} THEN 'm' "
        f"WHEN {c.number} IS NOT NULL THEN 'n' "
        f"WHEN {sql_in(c.key, (sql_text(k) for k in rule.labels))} THEN 'l' "
        f"WHEN {missing[2]} THEN 'm' "
        f"WHEN {sql_in(c.text, (sql_text(k) for k in rule.codes))} THEN 'c' "
        f"WHEN {unknown_label} THEN 'u' ELSE 'z' END"
    )
    # 5. the value
    labels = " ".join(
        f"WHEN {sql_text(k)} THEN {sql_number(v)}" for k, v in sorted(rule.labels.items())
    )
    codes = " ".join(f"WHEN {sql_text(k)} THEN {sql_number(v)}" for k, v in rule.codes.items())
    value = (
        "CASE "
        + (f"WHEN {c.fast} IS NOT NULL THEN {c.fast} " if fast is not None else "")
        + f"WHEN {c.kind} = 'n' THEN {checked.value} "
        + (f"WHEN {c.kind} = 'l' THEN (CASE {c.key} {labels} END) " if labels else "")
        + (f"WHEN {c.kind} = 'c' THEN (CASE {c.text} {codes} END) " if codes else "")
        + "END"
    )
    # 6. why an answer gives nothing
    rejection = (
        f"CASE {c.kind} WHEN 'n' THEN {checked.rejection} WHEN 'u' THEN 'unknown-label' "
        "WHEN 'z' THEN 'not-a-number' END"
    )
    return SqlItem(fast, text, number, key, lower, what, value, rejection)


def _plain_values(rule: ItemRule) -> list[int]:
    """The item's allowed whole values (missing codes are never allowed values)."""
    values = [v for v in rule.allowed_values() if isinstance(clean_number(v), int)]
    return [int(v) for v in values] if len(values) <= PLAIN_LIMIT else []


@dataclass(frozen=True)
class _Checked:
    value: str
    rejection: str


def _sql_number_check(
    rule: ItemRule, number: str, extra_missing: list[Num], whole: bool = False
) -> _Checked:
    """A number (a DOUBLE column) checked as ``_check_number`` checks it (``whole``: one of
    an integer column, finite and whole)."""
    missing = sql_in(number, (sql_number(v) for v in [*rule.missing_values, *extra_missing]))
    if rule.allowed is None and rule.per_unit > 1:
        # a range in steps of 1/k (half points): (v - lo) * k is whole, as ItemRule.is_allowed
        lo, hi = sql_number(rule.lo), sql_number(rule.hi)
        units = f"(({number} - {lo}) * {sql_number(rule.per_unit)})"
        allowed = f"({number} BETWEEN {lo} AND {hi} AND {units} = floor({units}))"
    elif rule.allowed is None:
        lo, hi = sql_number(rule.lo), sql_number(rule.hi)
        fraction = "" if whole else f" AND {number} = floor({number})"
        allowed = f"({number} BETWEEN {lo} AND {hi}{fraction})"
    else:
        allowed = sql_in(number, (sql_number(v) for v in sorted(rule.allowed)))
    outside = f"({number} < {sql_number(rule.lo)} OR {number} > {sql_number(rule.hi)})"
    finite = f"({number} - {number} = 0)"  # NaN and infinity minus themselves are NaN
    checks = ("" if whole else f"{finite} AND ") + (
        "" if missing == "FALSE" else f"NOT {missing} AND "
    )
    value = f"CASE WHEN {checks}{allowed} THEN {number} END"
    nan = "" if whole else f"WHEN NOT {finite} THEN 'not-a-number' "
    rejection = (
        f"CASE WHEN {number} IS NULL THEN NULL {nan}"
        f"WHEN {missing} OR {allowed} THEN NULL WHEN {outside} THEN 'out-of-range' "
        "ELSE 'not-allowed-value' END"
    )
    return _Checked(value, rejection)


def sql_is_nan(number: str) -> str:
    """``number`` (a DOUBLE) is NaN, in plain arithmetic: where NaN compares unequal to
    itself (BigQuery), by that; where NaN equals itself and is greater than every number
    (DuckDB, PostgreSQL, Spark, Snowflake), as a number greater than 0 whose negation is
    greater than 0 too."""
    return f"({number} <> {number} OR ({number} > 0 AND -{number} > 0))"


def sql_ascii_upper_strip(expr: str) -> str:
    """A code as codes compare: as text, ASCII whitespace stripped, ASCII letters upper."""
    return (
        f"translate({sql_strip(f'CAST({expr} AS VARCHAR)')}, {sql_text(LOWER)}, {sql_text(UPPER)})"
    )


def sql_comparable(column: str, kind: str = "text") -> str:
    """``comparable`` in SQL, as text (numbers by value, labels by key, NULL when missing:
    NaN too, which the readers of tables take for a blank cell)."""
    if kind == "number":
        double = f"CAST({column} AS DOUBLE)"
        number = _no_signed_zero(double)
        return (
            f"CASE WHEN {column} IS NULL OR {sql_is_nan(double)} THEN NULL "
            f"ELSE 'n' || CAST({number} AS VARCHAR) END"
        )
    if kind == "boolean":
        return f"CASE WHEN {column} IS NULL THEN NULL ELSE 'b' || CAST({column} AS VARCHAR) END"
    s = sql_strip(column)
    markers = sql_in(sql_ascii_lower(s), (sql_text(m) for m in MISSING_MARKERS))
    number = _no_signed_zero(f"CAST({s} AS DOUBLE)")
    return (
        f"CASE WHEN {column} IS NULL OR {markers} THEN NULL "
        f"WHEN {sql_is_number(s)} THEN 'n' || CAST({number} AS VARCHAR) "
        f"ELSE 't' || {sql_label_key(s)} END"
    )


def _no_signed_zero(number: str) -> str:
    """-0 compares equal to 0, so it must print as 0 too."""
    return f"(CASE WHEN {number} = 0 THEN 0.0 ELSE {number} END)"


# --------------------------------------------------------------------------------------
# Subjects and visits: the text of an id however a table types it (Python and SQL)

# Beyond 2**53 a double cannot hold every whole number (9007199254740993 is stored as
# 9007199254740992), so a floating-point id there may not be the id that was written; a
# 32-bit float (Parquet FLOAT, SQL REAL) holds every whole number below 2**24 only
# (16777217 is stored as 16777216), a 16-bit float (Parquet FLOAT16, a DataFrame's
# float16) below 2**11 only (2049 is stored as 2048)
EXACT_ID_LIMIT = 2**53
EXACT_FLOAT32_ID_LIMIT = 2**24
EXACT_FLOAT16_ID_LIMIT = 2**11
# Below its least normal number (2^-1022 for a double, 2^-126 for a 32-bit float, 2^-14 for
# a 16-bit one) a floating-point type holds fewer significant digits (a subnormal number:
# 1.5e-320 and 1.5000001e-320 are one double), so such an id may not be the one written
# either; nor do engines agree on its text (Java, and so Spark, writes 4.9e-324 for the
# double Python writes 5e-324)
LEAST_EXACT_ID = 2.0**-1022
LEAST_EXACT_FLOAT32_ID = 2.0**-126
LEAST_EXACT_FLOAT16_ID = 2.0**-14


class NarrowFloat(float):
    """A value of a floating-point type that holds fewer whole numbers than a double, as
    the double it holds: a float in every way, but an id of it is exact below ``limit``
    only (``inexact_id``); ``width`` names the type in the message. The readers of typed
    tables make such a column's values so (``float_cell``)."""

    __slots__ = ()
    limit: int = EXACT_ID_LIMIT
    least: float = LEAST_EXACT_ID
    width: str = "a double"


class Float32(NarrowFloat):
    """A value of a 32-bit floating-point column (Parquet FLOAT, SQL FLOAT or REAL, the
    column plan's kind ``float``)."""

    __slots__ = ()
    limit = EXACT_FLOAT32_ID_LIMIT
    least = LEAST_EXACT_FLOAT32_ID
    width = "a 32-bit float"


class Float16(NarrowFloat):
    """A value of a 16-bit floating-point column (Parquet FLOAT16, a DataFrame's float16,
    the column plan's kind ``half``)."""

    __slots__ = ()
    limit = EXACT_FLOAT16_ID_LIMIT
    least = LEAST_EXACT_FLOAT16_ID
    width = "a 16-bit float"


# the column plan's kinds of narrow floating-point columns, and their values' type
NARROW_KINDS: dict[str, type[NarrowFloat]] = {"float": Float32, "half": Float16}
FLOAT_KINDS = ("number", *NARROW_KINDS)  # (every kind read as a double)


def float_cell(value: Any, kind: str | None) -> Any:
    """A cell of a column of the column plan's ``kind`` as the value its type holds: a
    float of a ``float`` or ``half`` column as a ``Float32`` or ``Float16`` (other values,
    and other kinds', as given)."""
    narrow = NARROW_KINDS.get(kind or "")
    return narrow(value) if narrow is not None and isinstance(value, float) else value


def id_limit(value: Any) -> int:
    """The least magnitude from which a floating-point id may not be the whole number that
    was written: its type's (``NarrowFloat.limit``: 2**24 for a 32-bit float, 2**11 for a
    16-bit one), else 2**53 (a double)."""
    return value.limit if isinstance(value, NarrowFloat) else EXACT_ID_LIMIT


def id_least(value: Any) -> float:
    """The least magnitude, zero aside, from which a floating-point id is exact: its
    type's least normal number (``NarrowFloat.least``), else a double's (2^-1022)."""
    return value.least if isinstance(value, NarrowFloat) else LEAST_EXACT_ID


def id_width(value: Any) -> str:
    """The type of a floating-point id, as ``id_limit``'s message names it."""
    return value.width if isinstance(value, NarrowFloat) else "a double"


def id_text(value: Any) -> str | None:
    """A subject or visit as text: a text stripped of ASCII whitespace; a number as its
    number, however typed (``12``, ``12.0`` and a DECIMAL ``12.00`` are ``"12"``; ``1.50``
    is ``"1.5"``; ``-0.0`` is ``"0"``). None when blank (NaN too, as the readers of tables
    take a NaN cell), when a boolean or anything else, and when a floating-point number is
    not usable as an id (``inexact_id``: too large, or subnormal)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float):
        if value != value or inexact_id(value):
            return None
        return format_number(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        number = (value + 0).normalize()  # (+ 0: -0.00 is 0)
        return format(number, "f")
    if isinstance(value, int | str):
        return strip(str(value)) or None
    return None


def inexact_id(value: Any) -> bool:
    """A floating-point number that is no usable id: infinite, so large that it may not
    be the whole number that was written (``id_limit``: 2**53 and beyond, 2**24 for a
    32-bit float, 2**11 for a 16-bit one), or so small, zero aside, that its type holds
    fewer digits there (``id_least``: a subnormal number)."""
    if not isinstance(value, float) or value != value:
        return False
    size = abs(value)
    return not size < id_limit(value) or 0 < size < id_least(value)


def sql_id(expr: str, kind: str) -> str:
    """``id_text`` in SQL, for a column of a kind of the column plan (text, number, float,
    half, decimal, integer, boolean): NULL where ``id_text`` gives None."""
    if kind == "boolean":
        return "CAST(NULL AS VARCHAR)"
    if kind == "integer":
        return f"CAST({expr} AS VARCHAR)"
    if kind == "decimal":  # exact: a whole number's digits, else without trailing zeros
        return (
            f"(CASE WHEN {expr} = floor({expr}) "
            f"THEN CAST(CAST({expr} AS DECIMAL(38, 0)) AS VARCHAR) "
            f"ELSE rtrim(CAST({expr} AS VARCHAR), '0') END)"
        )
    if kind in FLOAT_KINDS:
        number = f"CAST({expr} AS DOUBLE)"
        narrow = NARROW_KINDS.get(kind)
        limit = narrow.limit if narrow is not None else EXACT_ID_LIMIT
        least = narrow.least if narrow is not None else LEAST_EXACT_ID
        # (NaN and infinity first, by arithmetic: DuckDB finds abs(NaN) below any number)
        return (
            f"(CASE WHEN {sql_is_nan(number)} OR NOT ({number} - {number} = 0) THEN NULL "
            f"WHEN abs({number}) >= {sql_number(limit)} THEN NULL "
            f"WHEN abs({number}) < {sql_number(least)} AND {number} <> 0 THEN NULL "
            f"WHEN {number} = floor({number}) "
            f"THEN CAST(CAST({number} AS BIGINT) AS VARCHAR) "
            f"ELSE {_sql_fraction_text(f'CAST({number} AS VARCHAR)')} END)"
        )
    text = f"CAST({expr} AS VARCHAR)"
    # most ids need no stripping: test the first and last characters, trim the rest (the
    # last by its position: substring is cheaper than right in DuckDB, and means the same)
    last = f"substring({text}, length({text}), 1)"
    return (
        f"(CASE WHEN ascii({text}) > 32 AND ascii({last}) > 32 THEN {text} "
        f"ELSE nullif(trim({text}, {WS_SQL}), '') END)"
    )


def _sql_fraction_text(text: str) -> str:
    """A double that is not whole and below 2**53 (``text``: its shortest digits as the SQL
    engine writes them) as Python writes it (``format_number``): in positional notation
    from 1e-4 on (``0.00015``, ``1000000000000000.5``), else as ``1.5e-05``. Each engine
    has its own notation (Spark Java's ``1.0E-5``, ``1.23456785E7``; PostgreSQL
    ``1.0000000000000005e+15``; DuckDB Python's): a text with an exponent is written anew
    from its digits."""
    body = f"ltrim({text}, '-')"
    sign = f"(CASE WHEN substr({text}, 1, 1) = '-' THEN '-' ELSE '' END)"
    at = f"strpos(lower({body}), 'e')"
    exp = f"CAST(substr({body}, {at} + 1) AS INTEGER)"
    # the mantissa's digits (one before its point) without the point and trailing zeros
    digits = f"rtrim(replace(substr({body}, 1, {at} - 1), '.', ''), '0')"
    small = (
        f"substr({digits}, 1, 1) || (CASE WHEN length({digits}) > 1 "
        f"THEN '.' || substr({digits}, 2) ELSE '' END) "
        f"|| 'e-' || (CASE WHEN {exp} > -10 THEN '0' ELSE '' END) || CAST(-{exp} AS VARCHAR)"
    )
    positional = (
        f"(CASE WHEN {exp} < 0 THEN '0.' || repeat('0', -{exp} - 1) || {digits} "
        f"ELSE substr({digits}, 1, {exp} + 1) || '.' || substr({digits}, {exp} + 2) END)"
    )
    return (
        f"(CASE WHEN {at} = 0 THEN {text} "
        f"ELSE {sign} || (CASE WHEN {exp} < -4 THEN {small} ELSE {positional} END) END)"
    )


# --------------------------------------------------------------------------------------
# Dates and study days of a record (the same grammar in Python and SQL)

MAX_DAY = 1e6
_TIME_SHAPES = tuple(
    base + zone
    for base in ("99:99", "99:99:99", *(f"99:99:99.{'9' * n}" for n in range(1, 7)))
    for zone in ("", "Z", "+99:99", "-99:99")
)
_NINES = str.maketrans(DIGITS, "9" * 10)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 28
    return 30 if month in (4, 6, 9, 11) else 31


def is_date(text: str) -> bool:
    """``text`` (stripped) is an ISO date, ``YYYY-MM-DD``, a real calendar day, optionally
    followed by ``T`` or a space and a time ``HH:MM[:SS[.ffffff]]`` with an optional ``Z``
    or ``+HH:MM`` offset."""
    if len(text) < 10 or text[4] != "-" or text[7] != "-":
        return False
    digits = text[0:4] + text[5:7] + text[8:10]
    if digits.translate(_NO_DIGITS) != "":
        return False
    year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
    if year < 1 or not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return False
    if len(text) == 10:
        return True
    time = text[11:]
    if text[10] not in "T " or time.translate(_NINES) not in _TIME_SHAPES:
        return False
    if int(time[0:2]) > 23 or int(time[3:5]) > 59 or (time[5:6] == ":" and int(time[6:8]) > 59):
        return False
    zone = time[-6:] if time[-6:-5] in ("+", "-") else ""
    return not zone or (int(zone[1:3]) <= 23 and int(zone[4:6]) <= 59)


def finite_number(value: Any) -> Num | None:
    """A value as a number by the grammar: a number, or a text that is a NUMBER
    (``is_number``, ASCII whitespace stripped), finite. None when blank (None or ASCII
    whitespace); raises ValueError("not-a-number") for anything else that is not a number
    (a boolean, "1e2", "abc") and ValueError("not-finite") for NaN, infinity and a whole
    number beyond a double's range (as SQL reads it)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("not-a-number")
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, str):
        text = strip(value)
        if not text:
            return None
        if not is_number(text):
            raise ValueError("not-a-number")
        value = number_of(text)
    if not isinstance(value, int | float):
        raise ValueError("not-a-number")
    try:
        finite = math.isfinite(value)
    except OverflowError:
        finite = False
    if not finite:
        raise ValueError("not-finite")
    return clean_number(value)


def day_number(value: Any) -> Num | None:
    """A study day: None when blank; raises ValueError("day") when it is not a number and
    ValueError("day-range") when it is not finite or beyond a million days."""
    try:
        day = finite_number(value)
    except ValueError as exc:
        raise ValueError("day" if str(exc) == "not-a-number" else "day-range") from None
    if day is not None and abs(day) > MAX_DAY:
        raise ValueError("day-range")
    return day


def sql_date(column: str, kind: str = "text") -> str:
    """The date of ``column`` as text when ``is_date`` holds, else NULL."""
    if kind != "text":
        return "CAST(NULL AS VARCHAR)"  # a typed date column is read as text by the engines
    s = sql_strip(f"CAST({column} AS VARCHAR)")
    y, m, d = (f"CAST(substr({s}, {a}, {n}) AS INTEGER)" for a, n in ((1, 4), (6, 2), (9, 2)))
    digits = f"substr({s}, 1, 4) || substr({s}, 6, 2) || substr({s}, 9, 2)"
    leap = f"(({y} % 4 = 0 AND {y} % 100 <> 0) OR {y} % 400 = 0)"
    days = (
        f"(CASE WHEN {m} = 2 THEN (CASE WHEN {leap} THEN 29 ELSE 28 END) "
        f"WHEN {m} IN (4, 6, 9, 11) THEN 30 ELSE 31 END)"
    )
    time = f"substr({s}, 12)"
    shape = f"translate({time}, {sql_text(DIGITS)}, '9999999999')"
    shapes = sql_in(shape, (sql_text(t) for t in _TIME_SHAPES))
    zone = f"right({time}, 6)"
    hour, minute = (f"CAST(substr({time}, {a}, 2) AS INTEGER)" for a in (1, 4))
    second = f"CAST(substr({time}, 7, 2) AS INTEGER)"
    zone_h, zone_m = (f"CAST(substr({zone}, {a}, 2) AS INTEGER)" for a in (2, 5))
    # nested CASEs: a cast runs only on text whose shape makes it a number
    time_ok = (
        f"(CASE WHEN substr({s}, 11, 1) IN ('T', ' ') AND {shapes} THEN "
        f"({hour} <= 23 AND {minute} <= 59 "
        f"AND (CASE WHEN substr({time}, 6, 1) = ':' THEN {second} <= 59 ELSE TRUE END) "
        f"AND (CASE WHEN substr({zone}, 1, 1) IN ('+', '-') "
        f"THEN {zone_h} <= 23 AND {zone_m} <= 59 ELSE TRUE END)) ELSE FALSE END)"
    )
    # each test runs only when the ones before it hold (CASE), so no cast sees a non-number
    return (
        f"(CASE WHEN {s} = '' OR length({s}) < 10 OR substr({s}, 5, 1) <> '-' "
        f"OR substr({s}, 8, 1) <> '-' OR translate({digits}, {sql_text(DIGITS)}, '') <> '' "
        "THEN NULL "
        f"WHEN {y} < 1 OR {m} NOT BETWEEN 1 AND 12 OR {d} NOT BETWEEN 1 AND {days} THEN NULL "
        f"WHEN length({s}) = 10 THEN {s} WHEN {time_ok} THEN {s} END)"
    )


def sql_day(column: str, kind: str = "text") -> str:
    """The study day of ``column`` (DOUBLE) when ``day_number`` gives one, else NULL."""
    if kind == "boolean":
        return "CAST(NULL AS DOUBLE)"
    if kind == "number":
        number = f"CAST({column} AS DOUBLE)"
    else:
        s = sql_strip(f"CAST({column} AS VARCHAR)")
        number = f"(CASE WHEN {sql_is_number(s)} THEN CAST({s} AS DOUBLE) END)"
    return (
        f"(CASE WHEN {number} - {number} = 0 AND abs({number}) <= {sql_number(MAX_DAY)} "
        f"THEN {number} END)"
    )
