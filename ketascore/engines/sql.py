"""Compile a scale to SQL, so a table in a database or a lake is scored where it lives.

``compile_scale(scale, dialect=...)`` builds, as a sqlglot syntax tree, one query that reads a
wide table (one row per subject and visit, one column per item, ``<scale>_<item>`` by default)
and returns, per row, what ``ketascore score --format csv`` writes: every score with its
missing-data rule, prorating and rounding, its band, items answered and whether it was
prorated, the classifications, the flags and the codes of the issues found. The query follows
``ketascore.engines.record`` step by step:

* a value is parsed as ``engine.parse_value`` does: text is stripped, blank/NA/N/A/. and
  missing codes are missing, numbers must be allowed values of the item, answer labels match
  case-insensitively with whitespace collapsed, answer codes match exactly; anything else is
  invalid and leaves every score using the item empty (its issue code says why);
* alternatives (HAM-D 16A/16B) give a value when exactly one is rated;
* scores are computed in evaluation order with the same arithmetic, in the same order, on
  doubles, so the numbers are bit-identical to the Python engine's.

Nothing is pasted as text: the tree is built from ``sqlglot.exp`` nodes and printed for a
dialect. Dialects whose behaviour has not been checked are refused.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot import exp

from ketascore.core.scale import ConditionRule, ItemRule, Scale, ScoreRule, TermRule
from ketascore.core.values import (
    _NOT_NUMBERS,
    _NUMBER,
    MISSING_MARKERS,
    Num,
    format_number,
    label_key,
)

# Dialects whose output has been checked against the Python engine (duckdb and spark by the
# test suite); databricks is Spark SQL; postgres uses its own regular-expression escapes.
DIALECTS: dict[str, str] = {
    "duckdb": "re2",
    "spark": "java",
    "databricks": "java",
    "postgres": "postgres",
}

# The engine's number syntax with ASCII classes (Unicode digits are translated first).
NUMBER_PATTERN = _NUMBER.pattern.replace(r"\d", "[0-9]").replace(r"\.", "[.]")
INTEGER_PATTERN = r"^[+-]?[0-9]+$"  # the engine reads these with int(), others with float()
FAST_PATH_LIMIT = 200  # items with more allowed values skip the exact-text fast path
# "allowed": a number column known to hold only allowed values of its item or NULL (from
# the statistics of a Parquet file), so the values need no checking
# "plain": a text column (subject, visit) whose values are known to be neither blank nor
# surrounded by whitespace, so they are taken as they are
KINDS = ("text", "number", "boolean", "allowed", "plain")
NUMBER_KINDS = ("number", "allowed")


class SqlError(ValueError):
    """A scale or option that cannot be compiled to SQL for the chosen dialect."""


# --------------------------------------------------------------------------------------
# Column mapping (the minimal form; the shared mapping model will replace the parser)


@dataclass(frozen=True)
class ColumnMap:
    """Where a table keeps the subject, the visit and each item, and extra missing codes.

    Without ``items``, items are read from ``<scale>_<item>`` columns; with them, an item
    the map does not list has no column (always missing)."""

    subject: str = "subject"
    visit: str = "visit"
    items: Mapping[str, str] = field(default_factory=dict)
    missing_codes: tuple[Num | str, ...] = ()
    date: str | None = None
    day: str | None = None

    def item_column(self, scale: Scale, item_id: str) -> str:
        return self.items.get(item_id) or f"{scale.id}_{item_id}"


def parse_column_map(data: Any, source: str = "<map>") -> ColumnMap:
    """The minimal column-mapping YAML::

        subject: SEQN          # default: subject
        visit: CYCLE           # default: visit
        items: {1: DPQ010, 2: DPQ020}
        missing_codes: [7, 9]

    Raises SqlError naming the problem."""
    if not isinstance(data, dict):
        raise SqlError(f"{source}: a column map holds a mapping of keys")
    known = {"scale", "subject", "visit", "items", "missing_codes", "date", "day"}
    # the keys of a mapping file (--map) that change nothing here, and those SQL cannot follow
    ignored = {"description", "source", "carry", "sheet", "scores", "visit_number"}
    refused = {"layout", "item_column", "value_column", "category"}
    unknown = sorted(str(k) for k in data if k not in known | ignored | refused)
    if unknown:
        raise SqlError(f"{source}: unknown key(s) {', '.join(unknown)}; known: {sorted(known)}")
    if data.get("layout", "wide") != "wide" or any(k in data for k in refused - {"layout"}):
        raise SqlError(
            f"{source}: the SQL compiler reads wide tables only (one column per item); "
            "score long or SDTM tables with ketascore score"
        )
    if isinstance(data.get("visit"), dict):
        raise SqlError(
            f"{source}: a constant visit ({{value: ...}}) is not supported by the SQL "
            "compiler; add the visit as a column of the table"
        )

    def column(key: str, default: str | None) -> str | None:
        value = data.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise SqlError(f"{source}: {key} must name a column")
        return value

    items = data.get("items") or {}
    if not isinstance(items, dict):
        raise SqlError(f"{source}: items maps item ids to column names")
    item_map: dict[str, str] = {}
    for key, value in items.items():
        if not isinstance(value, str) or not value.strip():
            raise SqlError(f"{source}: items.{key} must name a column")
        item_map[str(key)] = value
    codes = data.get("missing_codes") or []
    if not isinstance(codes, list) or not all(
        isinstance(c, int | float | str) and not isinstance(c, bool) for c in codes
    ):
        raise SqlError(f"{source}: missing_codes is a list of numbers or texts")
    return ColumnMap(
        subject=column("subject", "subject") or "subject",
        visit=column("visit", "visit") or "visit",
        items=item_map,
        missing_codes=tuple(codes),
        date=column("date", None),
        day=column("day", None),
    )


def read_column_map(path: str | Path) -> ColumnMap:
    from ketascore.core import yamlsafe

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        data = yamlsafe.load(text, positions=False).data
    except OSError as exc:
        raise SqlError(f"{path}: cannot read the column map: {exc.strerror or exc}") from None
    except yamlsafe.YamlError as exc:
        raise SqlError(f"{path}:{exc.line}:{exc.column}: {exc.message}") from None
    return parse_column_map(data, str(path))


def check_column_map(scale: Scale, columns: ColumnMap) -> None:
    unknown = [k for k in columns.items if k not in scale.items]
    if unknown:
        raise SqlError(
            f"the column map names item(s) {', '.join(unknown)} that {scale.id} does not have "
            f"(items: {', '.join(scale.items)})"
        )


# --------------------------------------------------------------------------------------
# Small builders


DOUBLE = exp.DataType.build("double")
# with enums, the issues column is an ENUM when at most this many issues can join (2**n - 1
# texts); beyond, it is text
MAX_ENUM_ISSUES = 6
VARCHAR = exp.DataType.build("varchar")
INT = exp.DataType.build("int")


def _col(name: str) -> exp.Column:
    """An internal column (a plain lower-case name that needs no quoting)."""
    return exp.column(name)


def _user_col(name: str) -> exp.Column:
    return exp.column(exp.to_identifier(name, quoted=True))


def _num(value: Num) -> exp.Expr:
    if isinstance(value, bool):  # pragma: no cover - guarded by the scale models
        raise SqlError("a boolean is not a number")
    if isinstance(value, int) or float(value).is_integer():
        number = exp.Literal.number(abs(int(value)))
        return exp.Neg(this=number) if value < 0 else number
    return exp.cast(exp.Literal.string(repr(float(value))), DOUBLE)


def _dnum(value: Num) -> exp.Expr:
    """A number as a DOUBLE literal (for CASE branches that must all be doubles)."""
    return exp.cast(exp.Literal.string(format_number(value)), DOUBLE)


def _str(text: str) -> exp.Literal:
    return exp.Literal.string(text)


def _const(e: exp.Expr) -> bool | None:
    """True or False when e is that boolean literal, else None."""
    return bool(e.this) if isinstance(e, exp.Boolean) else None


def _and(*parts: exp.Expr) -> exp.Expr:
    """a AND b AND ..., with TRUE parts left out and FALSE deciding (as SQL's three-valued
    logic allows: FALSE AND NULL is FALSE), so known facts cost nothing per row."""
    if any(_const(p) is False for p in parts):
        return exp.false()
    kept = [p for p in parts if _const(p) is not True]
    return functools.reduce(lambda a, b: exp.and_(a, b), kept) if kept else exp.true()


def _or(*parts: exp.Expr) -> exp.Expr:
    """a OR b OR ..., with FALSE parts left out and TRUE deciding (TRUE OR NULL is TRUE)."""
    if any(_const(p) is True for p in parts):
        return exp.true()
    kept = [p for p in parts if _const(p) is not False]
    return functools.reduce(lambda a, b: exp.or_(a, b), kept) if kept else exp.false()


def _not(e: exp.Expr) -> exp.Expr:
    known = _const(e)
    if known is not None:
        return exp.Boolean(this=not known)
    return exp.Not(this=e)


def _add(parts: Sequence[exp.Expr]) -> exp.Expr:
    """a + b + c, left to right, like Python's sum()."""
    return functools.reduce(lambda a, b: exp.Add(this=a, expression=b), parts)


def _paren(e: exp.Expr) -> exp.Expr:
    return e if isinstance(e, exp.Boolean) else exp.Paren(this=e)


def _is_null(e: exp.Expr) -> exp.Expr:
    return exp.Is(this=e, expression=exp.Null())


def _not_null(e: exp.Expr) -> exp.Expr:
    return exp.Not(this=_is_null(e))


def _in(e: exp.Expr, values: Iterable[exp.Expr]) -> exp.Expr:
    return exp.In(this=e, expressions=list(values))


def _case(whens: Iterable[tuple[exp.Expr, exp.Expr]], default: exp.Expr | None = None) -> exp.Expr:
    """CASE WHEN ... END; branches known to be FALSE are left out and one known to be TRUE
    ends the CASE (when nothing is left, the default, which must then be given)."""
    branches = list(whens)
    kept: list[tuple[exp.Expr, exp.Expr]] = []
    for cond, value in branches:
        known = _const(cond)
        if known is False:
            continue
        if known is True:
            default = value
            break
        kept.append((cond, value))
    if not kept and default is not None:
        return default
    if not kept:  # (a NULL of the branches' type: keep one branch that never holds)
        kept = branches[:1]
    case = exp.Case()
    for cond, value in kept:
        case = case.when(cond, value)
    if default is not None:
        case = case.else_(default)
    return case


def _flag(cond: exp.Expr) -> exp.Expr:
    """1 when cond holds, else 0 (cond is never NULL: a cast is cheaper than a CASE)."""
    known = _const(cond)
    if known is not None:
        return exp.cast(exp.Literal.number(int(known)), INT)
    return exp.cast(cond, INT)


def _regex_like(e: exp.Expr, pattern: str) -> exp.Expr:
    return exp.RegexpLike(this=e, expression=_str(pattern))


def _regex_replace(e: exp.Expr, pattern: str, replacement: str) -> exp.Expr:
    return exp.RegexpReplace(this=e, expression=_str(pattern), replacement=_str(replacement))


def _concat_ws(sep: str, parts: Sequence[exp.Expr]) -> exp.Expr:
    """Parts joined by sep, NULL parts left out; NULL when no part is there."""
    if not parts:
        return exp.cast(exp.Null(), VARCHAR)
    joined = exp.ConcatWs(expressions=[_str(sep), *parts], safe=True, coalesce=True)
    return exp.Nullif(this=joined, expression=_str(""))


_OPERATORS = (exp.Binary, exp.Not, exp.Neg, exp.In, exp.Between)


def _parenthesize(tree: exp.Query) -> exp.Query:
    """Put every operand that is itself an operation in parentheses. Trees built node by
    node carry no parentheses, and a printed ``NOT a OR b`` would not mean NOT (a OR b)."""
    for node in list(tree.walk()):
        if not isinstance(node, _OPERATORS) or isinstance(node, exp.Paren):
            continue
        keys = ("this",) if isinstance(node, exp.In | exp.Between) else ("this", "expression")
        for key in keys:
            child = node.args.get(key)
            if isinstance(child, _OPERATORS) and not isinstance(child, exp.Paren):
                node.set(key, exp.Paren(this=child))
    return tree


def _visible(e: exp.Expr) -> exp.Expr:
    """The first character of e is visible ASCII (so not whitespace)."""
    code = exp.Ascii(this=e)
    return exp.Between(this=code, low=exp.Literal.number(33), high=exp.Literal.number(126))


def _finite(e: exp.Expr) -> exp.Expr:
    """e is neither NaN nor infinite (NaN and inf minus themselves are NaN)."""
    return exp.EQ(this=_paren(exp.Sub(this=e, expression=e)), expression=exp.Literal.number(0))


# --------------------------------------------------------------------------------------
# Python's notion of whitespace and digits, as regular expressions of each dialect


@functools.cache
def _python_whitespace() -> tuple[int, ...]:
    found = tuple(c for c in range(0x3001) if chr(c).isspace())
    return found


@functools.cache
def _unicode_digits() -> tuple[str, str]:
    """Every non-ASCII decimal digit (which Python's int() and float() accept) and its
    ASCII equivalent, for TRANSLATE."""
    src, dst = [], []
    for code in range(0x80, 0x20000):  # no decimal digit lies above U+1FFFF
        char = chr(code)
        if unicodedata.category(char) == "Nd":
            src.append(char)
            dst.append(str(unicodedata.decimal(char)))
    return "".join(src), "".join(dst)


def _esc(code: int, flavor: str) -> str:
    return f"\\u{code:04x}" if flavor == "postgres" else f"\\x{{{code:x}}}"


def _char_class(codes: Iterable[int], flavor: str) -> str:
    """A bracket expression matching exactly ``codes``; RE2 and Java name the Unicode
    separators (category Z) as \\p{Z}, which keeps the expression short."""
    codes = set(codes)
    parts: list[str] = []
    separators = {c for c in codes if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp")}
    if flavor != "postgres" and separators:
        parts.append("\\p{Z}")
        codes -= separators
    ranges: list[list[int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    for a, b in ranges:
        parts.append(_esc(a, flavor) if a == b else f"{_esc(a, flavor)}-{_esc(b, flavor)}")
    return "[" + "".join(parts) + "]"


@dataclass(frozen=True)
class _Text:
    """Text functions that behave like Python's str methods, for one regex flavor."""

    flavor: str

    @property
    def ws(self) -> str:
        return _char_class(_python_whitespace(), self.flavor)

    def strip(self, e: exp.Expr) -> exp.Expr:
        if self.flavor == "postgres":
            spaces = "".join(chr(c) for c in _python_whitespace())
            return exp.Trim(this=e, expression=_str(spaces))
        ws = self.ws  # (DuckDB's TRIM with a set of characters is slower than RE2)
        stripped = _regex_replace(e, f"^{ws}+|{ws}+$", "")
        # text that starts and ends with a visible ASCII character needs no stripping
        last = exp.Substring(this=e.copy(), start=exp.Neg(this=exp.Literal.number(1)))
        plain = _and(_visible(e.copy()), _visible(last))
        return _case([(plain, e.copy())], stripped)

    def has_text(self, e: exp.Expr) -> exp.Expr:
        """e holds something besides whitespace (NULL when e is NULL)."""
        return _or(_visible(e.copy()), _regex_like(e, "[^" + self.ws[1:]))

    def collapse(self, e: exp.Expr) -> exp.Expr:
        return _regex_replace(e, f"{self.ws}+", " ")

    def ascii_digits(self, e: exp.Expr) -> exp.Expr:
        # the digit tables are two constant columns of the first layer (long literals)
        return exp.func("translate", e, _col("_ks_digits"), _col("_ks_ascii"))

    def is_number(self, e: exp.Expr) -> exp.Expr:
        return _regex_like(e, NUMBER_PATTERN)

    def to_double(self, e: exp.Expr) -> exp.Expr:
        if self.flavor != "postgres":
            return exp.TryCast(this=e, to=DOUBLE)
        # PostgreSQL refuses to read numbers beyond a double's range (Python reads 1e400 as
        # inf and 1e-400 as 0): those become NaN, so the value is rejected, never wrong
        number = exp.cast(e, exp.DataType.build("decimal"))
        size = exp.Abs(this=number)
        beyond = _and(
            exp.NEQ(this=number.copy(), expression=exp.Literal.number(0)),
            _or(
                exp.GTE(this=size, expression=exp.Literal.number("1e308")),
                exp.LT(this=size.copy(), expression=exp.Literal.number("1e-307")),
            ),
        )
        return _case([(beyond, exp.cast(_str("NaN"), DOUBLE))], exp.cast(e.copy(), DOUBLE))


# --------------------------------------------------------------------------------------
# The query plan: a chain of common table expressions, each adding columns to the last


@dataclass
class _Layer:
    """One step of the query: new columns computed from the step before (or the table)."""

    new: list[exp.Expr] = field(default_factory=list)
    where: exp.Expr | None = None
    table: exp.Expr | None = None


class _Plan:
    def __init__(self) -> None:
        self.layers: list[_Layer] = []

    def layer(self) -> list[exp.Expr]:
        self.layers.append(_Layer())
        return self.layers[-1].new


def _refs(e: exp.Expr) -> set[str]:
    return {c.name for c in e.find_all(exp.Column) if c.name.startswith("_ks_")}


@dataclass
class _ValueRef:
    """A value known at some layer: its value column (NULL when missing or invalid), an
    expression that is true when it is invalid, and its leaf count when present."""

    value: exp.Expr
    bad: exp.Expr
    leaves: exp.Expr


@dataclass
class _IssueEntry:
    """An issue the row has when ``when`` holds: its code and item (empty for none)."""

    when: exp.Expr
    code: exp.Expr
    item: exp.Expr


@dataclass
class CompiledScale:
    """A scale compiled to one query; ``columns`` are its output columns in order.
    ``issue_texts``: every text the issues column can hold, when they are known in advance
    (with enums; the column is then an ENUM of them)."""

    scale_id: str
    dialect: str
    query: exp.Query
    columns: list[str]
    csv_columns: list[str]
    keys: exp.Query
    issue_texts: tuple[str, ...] = ()

    def sql(self, pretty: bool = True) -> str:
        return self.query.sql(dialect=self.dialect, pretty=pretty)


@dataclass(frozen=True)
class TableLayout:
    """What is known about the input relation.

    ``kinds`` gives a column's kind (text, number or boolean; default text, which is right
    for any type since the value is read as text). ``carry`` columns are copied to the
    output after the scores (as the CSV reader copies extra columns). ``unknown_items`` are
    ``<scale>_<x>`` columns that name no item of the scale (each row gets an unknown-item
    issue). ``absent`` items have no column at all (always missing). ``visits``: every value
    of a plain visit column, when known (with enums, the visit is written as an ENUM of
    them)."""

    kinds: Mapping[str, str] = field(default_factory=dict)
    carry: Sequence[str] = ()
    carry_as: Mapping[str, str] = field(default_factory=dict)
    unknown_items: Sequence[str] = ()
    absent: frozenset[str] = frozenset()
    date: str | None = None
    day: str | None = None
    visits: Sequence[str] = ()


def _kind(layout: TableLayout, column: str) -> str:
    kind = layout.kinds.get(column, "text")
    if kind not in KINDS:
        raise SqlError(f"unknown column kind {kind!r}; choose one of {', '.join(KINDS)}")
    return kind


def compile_scale(
    scale: Scale,
    dialect: str = "duckdb",
    *,
    table: str | exp.Expr = "answers",
    columns: ColumnMap | None = None,
    layout: TableLayout | None = None,
    skip_unrated: bool = True,
    duplicates: bool = False,
    order_by: str | None = None,
    details: bool = False,
    enums: bool = False,
) -> CompiledScale:
    """Compile ``scale`` to one query over ``table`` for ``dialect``.

    ``skip_unrated`` leaves out rows where no item column holds anything (the CSV reader
    makes no record of them) and rows without subject or visit. ``duplicates`` merges rows
    of the same subject and visit as ``engine.score_records`` does (identical answers:
    scored once with a duplicate-record warning; different answers: no scores and a
    conflicting-records error), keeping the first by ``order_by`` (a column), and orders the
    output by first appearance. ``details`` adds the columns ``not_applicable`` and
    ``issue_items`` (the item of each issue, or empty) after the issues. ``enums`` (DuckDB
    only) types the columns whose values are known in advance (scale, scale_version, the
    bands, the flags of a scale with a single flag) as ENUMs: the same text, but DuckDB
    writes them to Parquet without hashing each value.
    """
    if enums and dialect != "duckdb":
        raise SqlError("enums are a DuckDB type; leave them out for other dialects")
    if dialect not in DIALECTS:
        raise SqlError(
            f"dialect {dialect!r} is not supported; choose one of {', '.join(DIALECTS)} "
            "(other dialects are refused until their text and regular-expression functions "
            "have been checked against the Python engine)"
        )
    return _Compiler(
        scale,
        dialect,
        table,
        columns or ColumnMap(),
        layout or TableLayout(),
        skip_unrated=skip_unrated,
        duplicates=duplicates,
        order_by=order_by,
        details=details,
        enums=enums,
    ).compile()


def compile_keys(scale: Scale, dialect: str = "duckdb", **options: Any) -> exp.Query:
    """A query of the subject and visit of each row ``compile_scale`` scores, before rows
    of the same subject and visit are merged (to find out whether any are)."""
    options = {**options, "duplicates": False, "order_by": None, "details": False}
    compiled = compile_scale(scale, dialect, **options)
    return compiled.keys


def compile_row_checks(
    scale: Scale,
    dialect: str = "duckdb",
    *,
    table: str | exp.Expr = "answers",
    columns: ColumnMap | None = None,
    layout: TableLayout | None = None,
    all_columns: Sequence[str] = (),
    group_by: str | None = None,
) -> exp.Query:
    """Counts of the rows the CSV reader reports (per ``group_by``, e.g. the file):
    ``no_ids`` rows with a value in some column but no subject or visit (skipped),
    ``bad_date`` and ``bad_day`` rows whose date or day is unusable (kept, left empty), and
    ``rows``, all of those rows (files without any are left out)."""
    compiler = _Compiler(
        scale,
        dialect,
        table,
        columns or ColumnMap(),
        layout or TableLayout(),
        skip_unrated=False,
        duplicates=False,
        order_by=None,
        details=False,
    )
    return compiler.row_checks(all_columns, group_by)


def scale_sql(scale: Scale, dialect: str = "duckdb", pretty: bool = True, **options: Any) -> str:
    """The SQL text of ``compile_scale(scale, dialect, **options)``."""
    return compile_scale(scale, dialect, **options).sql(pretty=pretty)


def csv_columns(scale: Scale) -> list[str]:
    """The columns of ``ketascore score --format csv`` for one scale (before carried ones)."""
    out = ["subject", "visit", "date", "day", "scale", "scale_version"]
    for rule in scale.scores:
        out += [rule.id, f"{rule.id}_band", f"{rule.id}_items_answered", f"{rule.id}_prorated"]
    out += [c.id for c in scale.classifications]
    return [*out, "flags", "issues"]


def plan_columns(
    scale: Scale,
    names: Sequence[str],
    kinds: Mapping[str, str] | None = None,
    columns: ColumnMap | None = None,
    known_scales: Iterable[str] = (),
) -> tuple[TableLayout, ColumnMap]:
    """Sort a table's columns as the wide CSV reader does: subject, visit, date, day, the
    scale's items (``<scale>_<item>``, case-insensitive, or as ``columns`` maps them),
    columns that name no item of the scale (unknown-item issues), items of other known
    scales (left out) and everything else (carried to the output). Returns the layout and
    the column map spelled as the table spells its columns."""
    cmap = columns or ColumnMap()
    by_fold = {n.casefold(): n for n in names}
    items: dict[str, str] = {}
    for item_id, column in cmap.items.items():
        actual = column if column in names else by_fold.get(column.casefold())
        if actual is not None:
            items[item_id] = actual
    date = by_fold.get((cmap.date or "date").casefold())
    day = by_fold.get((cmap.day or "day").casefold())
    used = {cmap.subject.casefold(), cmap.visit.casefold(), *(c.casefold() for c in items.values())}
    used |= {c.casefold() for c in (date, day) if c}
    unknown: list[str] = []
    carry: list[str] = []
    prefix = scale.id.casefold() + "_"
    known_prefixes = {k.casefold() for k in known_scales} | {scale.id.casefold()}
    reserved = {c.casefold() for c in csv_columns(scale)}
    for name in names:
        folded = name.casefold()
        if folded in used or folded.startswith("_ks_"):
            continue
        head, sep, rest = folded.partition("_")
        if folded.startswith(prefix) and len(folded) > len(prefix):
            item = scale.item_lookup.get(folded[len(prefix) :])
            if item is None:
                unknown.append(name)
            elif item not in items and item not in cmap.items:
                items[item] = name
            continue
        if sep and rest and head in known_prefixes:
            continue  # an item of another scale
        if folded not in reserved:
            carry.append(name)
    mapped = ColumnMap(
        subject=by_fold.get(cmap.subject.casefold(), cmap.subject),
        visit=by_fold.get(cmap.visit.casefold(), cmap.visit),
        items=items,
        missing_codes=cmap.missing_codes,
    )
    layout = TableLayout(
        kinds=dict(kinds or {}),
        carry=carry,
        unknown_items=unknown,
        absent=frozenset(i for i in scale.items if i not in items),
        date=date,
        day=day,
    )
    return layout, mapped


class _Compiler:
    def __init__(
        self,
        scale: Scale,
        dialect: str,
        table: str | exp.Expr,
        columns: ColumnMap,
        layout: TableLayout,
        *,
        skip_unrated: bool,
        duplicates: bool,
        order_by: str | None,
        details: bool,
        enums: bool = False,
    ) -> None:
        self.scale = scale
        self.enums = enums
        self.dialect = dialect
        self.text = _Text(DIALECTS[dialect])
        self.table = exp.to_table(table, dialect=dialect) if isinstance(table, str) else table
        self.columns = columns
        self.layout = layout
        self.skip_unrated = skip_unrated
        self.duplicates = duplicates
        self.order_by = order_by
        self.details = details
        self.plan = _Plan()
        self.item_index = {item_id: i for i, item_id in enumerate(scale.items)}
        self.slot_refs: dict[str, _ValueRef] = {}
        self.score_refs: dict[str, _ValueRef] = {}
        # items whose values need no checking (so never invalid), and internal boolean
        # columns known to be constant: both fold away instead of being tested per row
        self.never_invalid: set[int] = set()
        self.known: dict[str, exp.Expr] = {}
        self.listed_issues: tuple[str, ...] = ()
        check_column_map(scale, columns)
        if duplicates and not order_by:
            raise SqlError("merging duplicates needs a column that orders the rows (order_by)")
        for code in columns.missing_codes:
            if isinstance(code, float) and not (code == code and abs(code) != float("inf")):
                raise SqlError(f"missing code {code!r} is not a usable number")

    # source --------------------------------------------------------------------------

    def item_source(self, item_id: str) -> tuple[str, str] | None:
        """(column, kind) of an item, or None when the table has no such column."""
        if item_id in self.layout.absent:
            return None
        if self.columns.items and item_id not in self.columns.items:
            return None
        column = self.columns.item_column(self.scale, item_id)
        return column, _kind(self.layout, column)

    def text_of(self, column: str) -> exp.Expr:
        """A column's value as Python's readers would give it as text: stripped text, and
        whole numbers without a decimal point."""
        kind = _kind(self.layout, column)
        raw = _user_col(column)
        if kind == "plain":
            return exp.cast(raw, VARCHAR)
        if kind in NUMBER_KINDS:
            x = exp.cast(raw, DOUBLE)
            whole = exp.EQ(this=x, expression=exp.Floor(this=x))
            small = exp.LT(this=exp.Abs(this=x), expression=_num(10**15))
            as_int = exp.cast(exp.cast(x, exp.DataType.build("bigint")), VARCHAR)
            return _case([(_and(whole, small), as_int)], exp.cast(x, VARCHAR))
        return exp.Nullif(this=self.text.strip(exp.cast(raw, VARCHAR)), expression=_str(""))

    def rated(self, column: str) -> exp.Expr:
        """The column holds a value (NULL counts as no)."""
        if _kind(self.layout, column) == "text":
            return self.text.has_text(exp.cast(_user_col(column), VARCHAR))
        return _not_null(_user_col(column))

    def lacks(self, column: str) -> exp.Expr:
        """The column holds no value (NOT rated, with the cheap tests first)."""
        raw = _user_col(column)
        if _kind(self.layout, column) != "text":
            return _is_null(raw)
        text = exp.cast(raw.copy(), VARCHAR)
        blank = _not(_regex_like(text.copy(), "[^" + self.text.ws[1:]))
        return _paren(_or(_is_null(raw), _and(_not(_visible(text)), blank)))

    def source_layers(self) -> list[_Layer]:
        layout, cmap = self.layout, self.columns
        cols: list[exp.Expr] = [
            exp.alias_(self.text_of(cmap.subject), "_ks_subject"),
            exp.alias_(self.text_of(cmap.visit), "_ks_visit"),
        ]
        date = layout.date or cmap.date
        day = layout.day or cmap.day
        cols.append(exp.alias_(self.date_expr(date), "_ks_date"))
        cols.append(exp.alias_(self.day_expr(day), "_ks_day"))
        sources = [self.item_source(item_id) for item_id in self.scale.items]
        if self.duplicates or any(s is not None and s[1] == "text" for s in sources):
            # (only text is read as a number; the tables take a while to build)
            src_digits, ascii_digits = _unicode_digits()
            cols.append(exp.alias_(_str(src_digits), "_ks_digits"))
            cols.append(exp.alias_(_str(ascii_digits), "_ks_ascii"))
        rated: list[exp.Expr] = []
        for item_id in self.scale.items:
            i = self.item_index[item_id]
            src = self.item_source(item_id)
            if src is None:
                cols.append(exp.alias_(exp.cast(exp.Null(), VARCHAR), f"_ks_r{i}"))
                continue
            column, kind = src
            raw = _user_col(column)
            value: exp.Expr
            if kind == "text":
                value = exp.cast(raw, VARCHAR)
            elif kind in NUMBER_KINDS:
                value = exp.cast(raw, DOUBLE)
            else:
                value = raw
            cols.append(exp.alias_(value, f"_ks_r{i}"))
            rated.append(self.rated(column))
        for j, column in enumerate(layout.unknown_items):
            rated.append(self.rated(column))
            if self.duplicates:
                cols.append(exp.alias_(exp.cast(_user_col(column), VARCHAR), f"_ks_u{j}"))
        for j, column in enumerate(layout.carry):
            kind = _kind(layout, column)
            carried = self.text_of(column) if kind == "text" else _user_col(column)
            cols.append(exp.alias_(carried, f"_ks_x{j}"))
        if self.order_by:
            cols.append(exp.alias_(_user_col(self.order_by), "_ks_order"))
        layer = _Layer(cols, table=self.table)
        if not self.skip_unrated:
            return [layer]
        # (tests of the raw text: DuckDB would otherwise evaluate the stripping twice)
        conds = [self.rated(cmap.subject), self.rated(cmap.visit)]
        conds.append(_paren(_or(*rated)) if rated else exp.false())
        layer.where = _and(*conds)
        return [layer]

    def row_checks(self, all_columns: Sequence[str], group_by: str | None) -> exp.Query:
        cmap, layout = self.columns, self.layout
        ids = _and(self.rated(cmap.subject), self.rated(cmap.visit))
        has_ids = exp.func("coalesce", ids, exp.false())
        anything = _or(*(self.rated(c) for c in all_columns)) if all_columns else exp.false()
        count = exp.Count(this=exp.Star())

        # (written so that the expensive tests run only on the rows the cheap ones leave)
        no_ids = _and(
            _paren(_or(self.lacks(cmap.subject), self.lacks(cmap.visit))),
            exp.func("coalesce", anything, exp.false()),
        )
        conds = [("no_ids", no_ids)]
        date = layout.date or cmap.date
        day = layout.day or cmap.day
        for name, column, value in (
            ("bad_date", date, self.date_expr(date)),
            ("bad_day", day, self.day_expr(day)),
        ):
            if column is None:
                conds.append((name, exp.false()))
                continue
            given = exp.func("coalesce", self.rated(column), exp.false())
            conds.append((name, _and(given, _is_null(value), has_ids.copy())))
        # only the rows to report are grouped and counted (most rows have nothing to report)
        checks = [
            exp.alias_(exp.Literal.number(0), name)
            if _const(cond) is False
            else exp.alias_(exp.Sum(this=_flag(cond)), name)
            for name, cond in conds
        ]
        select = exp.select(
            *([_user_col(group_by)] if group_by else []), *checks, exp.alias_(count, "rows")
        )
        select = select.from_(self.table.copy()).where(_or(*(c.copy() for _, c in conds)))
        if group_by:
            select = select.group_by(_user_col(group_by)).order_by(_user_col(group_by))
        return _parenthesize(select)

    def date_expr(self, column: str | None) -> exp.Expr:
        """The date as the CSV reader keeps it: ISO text, else empty."""
        if column is None:
            return exp.cast(exp.Null(), VARCHAR)
        text = self.text_of(column)
        iso = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}(:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?)?)?$"
        date_ok = _not_null(
            exp.TryCast(
                this=exp.Substring(
                    this=text, start=exp.Literal.number(1), length=exp.Literal.number(10)
                ),
                to=exp.DataType.build("date"),
            )
        )
        return _case([(_and(_regex_like(text, iso), date_ok), text)], exp.cast(exp.Null(), VARCHAR))

    def day_expr(self, column: str | None) -> exp.Expr:
        """The study day as a number (the CSV reader's check_day), else empty."""
        if column is None:
            return exp.cast(exp.Null(), DOUBLE)
        kind = _kind(self.layout, column)
        raw = _user_col(column)
        x = (
            exp.TryCast(this=self.text.strip(exp.cast(raw, VARCHAR)), to=DOUBLE)
            if kind == "text"
            else exp.cast(raw, DOUBLE)
        )
        ok = exp.LTE(this=exp.Abs(this=x), expression=_num(10**6))
        return _case([(_and(_not_null(x), _finite(x), ok), x)], exp.cast(exp.Null(), DOUBLE))

    # items ---------------------------------------------------------------------------

    def fast_values(self, rule: ItemRule) -> list[tuple[str, Num]]:
        """Exact texts of allowed values ("0", "1", "0.5") that parse without further work."""
        values = rule.allowed_values()
        if len(values) > FAST_PATH_LIMIT:
            return []
        codes = self.columns.missing_codes
        text_codes = {c for c in codes if isinstance(c, str)}
        num_codes = {c for c in codes if not isinstance(c, str)}
        out = []
        for v in values:
            text = format_number(v)
            if text in text_codes or v in num_codes or not re.match(NUMBER_PATTERN, text):
                continue
            if float(text) != v:  # pragma: no cover - repr round-trips
                continue
            out.append((text, v))
        return out

    def allowed(self, rule: ItemRule, x: exp.Expr) -> exp.Expr:
        if rule.allowed is None:
            return _and(
                exp.GTE(this=x, expression=_num(rule.lo)),
                exp.LTE(this=x, expression=_num(rule.hi)),
                exp.EQ(this=x, expression=exp.Floor(this=x)),
            )
        return _in(x, [_dnum(v) for v in sorted(rule.allowed)])

    def number_checks(self, rule: ItemRule, x: exp.Expr) -> tuple[exp.Expr, exp.Expr]:
        """(value, error code) of a number x that is not NULL and not an extra missing code."""
        missing = [_dnum(v) for v in sorted(rule.missing_values)]
        is_missing = _in(x, missing) if missing else exp.false()
        allowed = self.allowed(rule, x)
        value = _case(
            [(is_missing, exp.cast(exp.Null(), DOUBLE)), (allowed, x)], exp.cast(exp.Null(), DOUBLE)
        )
        outside = _or(
            exp.LT(this=x, expression=_num(rule.lo)), exp.GT(this=x, expression=_num(rule.hi))
        )
        error = _case(
            [
                (_or(is_missing, allowed), exp.cast(exp.Null(), VARCHAR)),
                (outside, _str("out-of-range")),
            ],
            _str("not-allowed-value"),
        )
        return value, error

    def extra_codes(self) -> tuple[list[str], list[Num]]:
        codes = self.columns.missing_codes
        return [c for c in codes if isinstance(c, str)], [
            c for c in codes if not isinstance(c, str)
        ]

    def compile_items(self) -> None:
        l1, l2, l3, l4, l5 = (self.plan.layer() for _ in range(5))
        text_codes, num_codes = self.extra_codes()
        null_d = exp.cast(exp.Null(), DOUBLE)
        null_s = exp.cast(exp.Null(), VARCHAR)
        for item_id, rule in self.scale.items.items():
            i = self.item_index[item_id]
            src = self.item_source(item_id)
            kind = src[1] if src else "text"
            raw = _col(f"_ks_r{i}")
            v_name, e_name = f"_ks_v{i}", f"_ks_e{i}"
            if kind == "boolean":
                l4.append(exp.alias_(null_d, v_name))
                l4.append(
                    exp.alias_(_case([(_not_null(raw), _str("not-a-number"))], null_s), e_name)
                )
                continue
            if src is None:  # no column: always missing
                l4.append(exp.alias_(null_d, v_name))
                l4.append(exp.alias_(null_s, e_name))
                self.never_invalid.add(i)
                continue
            if kind == "allowed":
                l4.append(exp.alias_(raw, v_name))
                l4.append(exp.alias_(null_s, e_name))
                self.never_invalid.add(i)
                continue
            if kind == "number":
                x = raw
                extra = _in(x, [_dnum(c) for c in num_codes]) if num_codes else exp.false()
                value, error = self.number_checks(rule, x)
                # an allowed value (the usual case) is taken at once
                usual = [_dnum(v) for _, v in self.fast_values(rule)]
                plain = _in(x, usual) if usual else exp.false()
                l4.append(
                    exp.alias_(
                        _case(
                            [
                                (plain, x),
                                (_or(_is_null(x), extra), null_d),
                                (exp.Not(this=_finite(x)), null_d),
                            ],
                            value,
                        ),
                        v_name,
                    )
                )
                l4.append(
                    exp.alias_(
                        _case(
                            [
                                (_or(plain.copy(), _is_null(x), extra), null_s),
                                (exp.Not(this=_finite(x)), _str("not-a-number")),
                            ],
                            error,
                        ),
                        e_name,
                    )
                )
                continue
            # text: an exact allowed value is taken as is; anything else goes the long way
            fast = self.fast_values(rule)
            f = _col(f"_ks_f{i}")
            t = _col(f"_ks_t{i}")
            n = _col(f"_ks_n{i}")
            k = _col(f"_ks_k{i}")
            if fast:
                l1.append(
                    exp.alias_(
                        _case([(exp.EQ(this=raw, expression=_str(s)), _dnum(v)) for s, v in fast]),
                        f"_ks_f{i}",
                    )
                )
            else:
                l1.append(exp.alias_(null_d, f"_ks_f{i}"))
            l2.append(exp.alias_(_case([(_is_null(f), self.text.strip(raw))], null_s), f"_ks_t{i}"))
            digits = self.text.ascii_digits(t)
            l3.append(
                exp.alias_(
                    _case([(self.text.is_number(digits), self.text.to_double(digits))], null_d),
                    f"_ks_n{i}",
                )
            )
            l3.append(exp.alias_(exp.Lower(this=self.text.collapse(t)), f"_ks_k{i}"))
            missing_text = _or(
                _in(exp.Lower(this=t), [_str(m) for m in sorted(MISSING_MARKERS)]),
                *([_in(t, [_str(c) for c in text_codes])] if text_codes else []),
            )
            label_keys = self.label_keys(rule)
            missing_labels = self.missing_label_keys(rule)
            codes = sorted(rule.codes.items())
            number = _not_null(n)
            missing_values = [_dnum(v) for v in sorted(rule.missing_values)]
            # Python reads text without a point or exponent with int() (a huge one is out of
            # range) and other text with float() (which may give inf: not a number).
            huge = _case(
                [(_regex_like(digits.copy(), INTEGER_PATTERN), _str("out-of-range"))],
                _str("not-a-number"),
            )
            outside = _or(
                exp.LT(this=n, expression=_num(rule.lo)), exp.GT(this=n, expression=_num(rule.hi))
            )
            # one status per value: f (exact text), n (number), l (label), c (answer code),
            # m (missing), or the code of the issue that makes it unusable
            whens: list[tuple[exp.Expr, exp.Expr]] = [
                (_not_null(f), _str("f")),
                (_is_null(t), _str("m")),
                (missing_text, _str("m")),
            ]
            if num_codes:
                whens.append((_and(number, _in(n, [_dnum(c) for c in num_codes])), _str("m")))
            whens.append((_and(number, exp.Not(this=_finite(n))), huge))
            if missing_values:
                whens.append((_and(number, _in(n, missing_values)), _str("m")))
            whens += [
                (_and(number, self.allowed(rule, n)), _str("n")),
                (_and(number, outside), _str("out-of-range")),
                (number, _str("not-allowed-value")),
            ]
            if label_keys:
                whens.append((_in(k, [_str(key) for key, _ in label_keys]), _str("l")))
            if missing_labels:
                whens.append((_in(k, [_str(key) for key in missing_labels]), _str("m")))
            if codes:
                whens.append((_in(t, [_str(c) for c, _ in codes]), _str("c")))
            whens.append((_in(k, [_str(x) for x in sorted(_NOT_NUMBERS)]), _str("not-a-number")))
            status = _case(whens, _str("unknown-label" if rule.labels else "not-a-number"))
            l4.append(exp.alias_(status, f"_ks_st{i}"))
            st = _col(f"_ks_st{i}")
            chosen: list[tuple[exp.Expr, exp.Expr]] = [
                (exp.EQ(this=st, expression=_str("f")), f),
                (exp.EQ(this=st, expression=_str("n")), n),
            ]
            chosen += [
                (
                    _and(
                        exp.EQ(this=st, expression=_str("l")), exp.EQ(this=k, expression=_str(key))
                    ),
                    _dnum(v),
                )
                for key, v in label_keys
            ]
            chosen += [
                (
                    _and(exp.EQ(this=st, expression=_str("c")), exp.EQ(this=t, expression=_str(c))),
                    _dnum(v),
                )
                for c, v in codes
            ]
            l5.append(exp.alias_(_case(chosen, null_d), v_name))
            is_issue = exp.GT(this=exp.Length(this=st), expression=exp.Literal.number(1))
            l5.append(exp.alias_(_case([(is_issue, st)], null_s), e_name))

    @staticmethod
    def label_keys(rule: ItemRule) -> list[tuple[str, Num]]:
        """Normalised labels; also the lower-cased form where casefold differs (ß)."""
        out: dict[str, Num] = {}
        for key, value in rule.labels.items():
            out[key] = value
        for label in rule.answer_labels:
            key = label_key(label)
            if key in rule.labels:
                out.setdefault(" ".join(label.split()).lower(), rule.labels[key])
        return sorted(out.items())

    @staticmethod
    def missing_label_keys(rule: ItemRule) -> list[str]:
        return sorted(rule.missing_labels)

    # slots ---------------------------------------------------------------------------

    def compile_slots(self) -> list[_IssueEntry]:
        """Slot values; returns the alternatives-both issues, in slot order."""
        layer = self.plan.layer()
        issues: list[_IssueEntry] = []
        one = exp.Literal.number(1)
        for j, (slot_id, members) in enumerate(self.scale.slots.items()):
            if len(members) == 1:
                i = self.item_index[members[0]]
                v = _col(f"_ks_v{i}")
                self.slot_refs[slot_id] = _ValueRef(v, self.invalid(i), _flag(_not_null(v)))
                continue
            idx = [self.item_index[m] for m in members]
            any_bad = _paren(_or(*(self.invalid(i) for i in idx)))
            several = exp.GT(
                this=_paren(_add([_flag(_not_null(_col(f"_ks_v{i}"))) for i in idx])),
                expression=one,
            )
            bad = _or(any_bad, several)
            first = exp.Coalesce(
                this=_col(f"_ks_v{idx[0]}"), expressions=[_col(f"_ks_v{i}") for i in idx[1:]]
            )
            value = _case([(_not(_paren(bad)), first)], exp.cast(exp.Null(), DOUBLE))
            layer.append(exp.alias_(value, f"_ks_av{j}"))
            layer.append(exp.alias_(bad.copy(), f"_ks_ab{j}"))
            layer.append(exp.alias_(_and(_not(any_bad.copy()), several.copy()), f"_ks_aw{j}"))
            v = _col(f"_ks_av{j}")
            self.slot_refs[slot_id] = _ValueRef(v, _col(f"_ks_ab{j}"), _flag(_not_null(v)))
            first_rated = _case(
                [(_not_null(_col(f"_ks_v{i}")), _str(m)) for i, m in zip(idx, members, strict=True)]
            )
            issues.append(_IssueEntry(_col(f"_ks_aw{j}"), _str("alternatives-both"), first_rated))
        return issues

    def invalid(self, i: int) -> exp.Expr:
        """Item i holds an invalid value (FALSE when its values need no checking)."""
        return exp.false() if i in self.never_invalid else _not_null(_col(f"_ks_e{i}"))

    def column(self, layer: list[exp.Expr], value: exp.Expr, name: str) -> exp.Expr:
        """Add column ``name`` to the layer, or, when its value is a known boolean, note
        it; returns what later steps use (the column or the constant)."""
        if _const(value) is not None:
            self.known[name] = value
            return value.copy()
        layer.append(exp.alias_(value, name))
        return _col(name)

    def col(self, name: str) -> exp.Expr:
        known = self.known.get(name)
        return known.copy() if known is not None else _col(name)

    # scores --------------------------------------------------------------------------

    def ref(self, kind: str, ref: str) -> _ValueRef:
        return self.slot_refs[ref] if kind == "slot" else self.score_refs[ref]

    def depths(self) -> dict[str, int]:
        depth: dict[str, int] = {}
        for rule in self.scale.scores:  # evaluation order
            d = 0
            refs = [t.ref for t in rule.terms if t.kind == "score"]
            if rule.applies_when is not None and rule.applies_when.kind == "score":
                refs.append(rule.applies_when.ref)
            for r in refs:
                d = max(d, depth[r])
            depth[rule.id] = d + 1
        return depth

    def term_value(self, term: TermRule, value: exp.Expr) -> exp.Expr:
        out = value
        if term.recode is not None:
            out = _case(
                [
                    (exp.EQ(this=value, expression=_dnum(k)), _dnum(v))
                    for k, v in term.recode.items()
                ],
                exp.cast(exp.Null(), DOUBLE),
            )
        if term.reverse is not None:
            lo, hi = term.reverse
            out = exp.Sub(this=_num(lo + hi), expression=_paren(out))
        if term.weight != 1:
            out = exp.Mul(this=_paren(out), expression=_num(term.weight))
        return out

    def condition(self, cond: ConditionRule, value: exp.Expr) -> exp.Expr:
        t = _num(cond.threshold)
        ops: dict[str, type[exp.Expr]] = {
            "at_least": exp.GTE,
            "at_most": exp.LTE,
            "above": exp.GT,
            "below": exp.LT,
            "equals": exp.EQ,
        }
        return ops[cond.op](this=value, expression=t)

    def compile_scores(self) -> None:
        depth = self.depths()
        self.score_idx = {rule.id: s for s, rule in enumerate(self.scale.scores)}
        for level in sorted(set(depth.values())):
            rules = [r for r in self.scale.scores if depth[r.id] == level]
            a, b, c = self.plan.layer(), self.plan.layer(), self.plan.layer()
            for rule in rules:
                self.compile_score(rule, a, b, c)

    def compile_score(
        self,
        rule: ScoreRule,
        a: list[exp.Expr],
        b: list[exp.Expr],
        c: list[exp.Expr],
    ) -> None:
        s = self.score_idx[rule.id]
        p = f"_ks_s{s}_"
        n = len(rule.terms)
        refs = [self.ref(t.kind, t.ref) for t in rule.terms]
        null_d = exp.cast(exp.Null(), DOUBLE)

        # gate (applies_when): ok / bad / not applicable
        if rule.applies_when is not None:
            g = self.ref(rule.applies_when.kind, rule.applies_when.ref)
            test = self.condition(rule.applies_when, g.value)
            gate_ok = _and(_not_null(g.value), test)
            a.append(exp.alias_(gate_ok, p + "gok"))
            a.append(exp.alias_(_and(_not_null(g.value), _not(_paren(test))), p + "gna"))
            self.column(a, g.bad, p + "gbad")
            ok_gate: exp.Expr = _col(p + "gok")
        else:
            ok_gate = exp.true()

        # layer a: counts, invalid, first invalid term, parts
        answered = [_not_null(r.value) for r in refs]
        a.append(exp.alias_(_add([_flag(x) for x in answered]), p + "k"))
        self.column(a, _or(*(r.bad.copy() for r in refs)), p + "bad")
        one_n = exp.Literal.number(n)

        def first_if_bad(j: int, bad: exp.Expr) -> exp.Expr:
            # j when term j is invalid, else n
            return exp.Sub(
                this=one_n.copy(),
                expression=exp.Mul(this=_flag(bad), expression=exp.Literal.number(n - j)),
            )

        first_bad = (
            exp.Least(
                this=first_if_bad(0, refs[0].bad),
                expressions=[first_if_bad(j, r.bad) for j, r in enumerate(refs[1:], start=1)],
            )
            if n > 1
            else first_if_bad(0, refs[0].bad)
        )
        a.append(exp.alias_(first_bad, p + "fb"))
        slot_terms = [j for j, t in enumerate(rule.terms) if t.kind == "slot"]
        missing_items = (
            _add([_flag(_is_null(refs[j].value)) for j in slot_terms])
            if slot_terms
            else exp.Literal.number(0)
        )
        # when every term is an item, the missing items are the terms not answered and the
        # items behind the answered terms are those terms: no need to count them again
        all_items = len(slot_terms) == n
        some_missing = (
            exp.LT(this=_col(p + "k"), expression=exp.Literal.number(n))
            if all_items
            else exp.GT(this=_col(p + "mi"), expression=exp.Literal.number(0))
        )
        if not all_items:
            a.append(exp.alias_(missing_items, p + "mi"))
        for j, term in enumerate(rule.terms):
            a.append(exp.alias_(self.term_value(term, refs[j].value), f"{p}p{j}"))
        if rule.method in ("sum", "mean"):  # the sum of the parts, computed once
            zero_part = exp.Literal.number(0)
            a.append(
                exp.alias_(
                    _add(
                        [
                            exp.Coalesce(
                                this=self.term_value(term, refs[j].value), expressions=[zero_part]
                            )
                            for j, term in enumerate(rule.terms)
                        ]
                    ),
                    p + "sum",
                )
            )

        def leaves(j: int) -> exp.Expr:
            # the items behind term j when it is answered, else 0
            if rule.terms[j].kind == "slot":
                return _flag(answered[j].copy())
            return exp.Mul(this=_flag(answered[j].copy()), expression=refs[j].leaves)

        if not all_items:
            a.append(exp.alias_(_add([leaves(j) for j in range(n)]), p + "lv"))
        lv = _col(p + ("k" if all_items else "lv"))
        parts = [_col(f"{p}p{j}") for j in range(n)]
        k = _col(p + "k")

        # layer b: items answered (up to the first invalid term), total before rounding
        fb = _col(p + "fb")
        leaves_before_bad = _case(
            [
                (
                    self.col(p + "bad"),
                    _add(
                        [
                            exp.Mul(
                                this=_flag(exp.LT(this=exp.Literal.number(j), expression=fb)),
                                expression=leaves(j),
                            )
                            for j in range(n)
                        ]
                    ),
                )
            ],
            lv.copy(),
        )
        b.append(exp.alias_(leaves_before_bad, p + "ia"))
        ok = _and(
            ok_gate,
            _not(self.col(p + "bad")),
            exp.GTE(this=k, expression=exp.Literal.number(rule.required)),
        )
        self.column(b, ok, p + "ok")
        zero = exp.Literal.number(0)
        k_safe = exp.Nullif(this=k, expression=zero)
        raw: exp.Expr
        if rule.method in ("sum", "mean"):
            total = _col(p + "sum")
            if rule.method == "mean":
                raw = exp.Div(this=_paren(total), expression=k_safe, typed=False, safe=False)
            elif rule.prorate == "prorate_mean":
                scaled = exp.Div(
                    this=_paren(exp.Mul(this=_paren(total), expression=exp.Literal.number(n))),
                    expression=k_safe,
                    typed=False,
                    safe=False,
                )
                raw = _case(
                    [(exp.LT(this=k, expression=exp.Literal.number(n)), scaled)], total.copy()
                )
            elif rule.prorate == "prorate_max":
                all_max: Num = sum(t.hi for t in rule.terms)
                answered_max = _add(
                    [_case([(answered[j], _num(rule.terms[j].hi))], zero) for j in range(n)]
                )
                scaled = exp.Div(
                    this=_paren(exp.Mul(this=_paren(total), expression=_num(all_max))),
                    expression=exp.Nullif(this=_paren(answered_max), expression=zero),
                    typed=False,
                    safe=False,
                )
                raw = _case(
                    [(exp.LT(this=k, expression=exp.Literal.number(n)), scaled)], total.copy()
                )
            else:
                raw = total
        else:
            lows = [t.lo for t in rule.terms]
            highs = [t.hi for t in rule.terms]
            if rule.method == "max":
                fill = _num(min(lows) - 1)
                raw = (
                    exp.Greatest(
                        this=exp.Coalesce(this=parts[0], expressions=[fill]),
                        expressions=[exp.Coalesce(this=x, expressions=[fill]) for x in parts[1:]],
                    )
                    if n > 1
                    else parts[0]
                )
            else:
                fill = _num(max(highs) + 1)
                raw = (
                    exp.Least(
                        this=exp.Coalesce(this=parts[0], expressions=[fill]),
                        expressions=[exp.Coalesce(this=x, expressions=[fill]) for x in parts[1:]],
                    )
                    if n > 1
                    else parts[0]
                )
        b.append(exp.alias_(_case([(ok, exp.cast(raw, DOUBLE))], null_d), p + "raw"))

        # layer c: the value (rounded where the rule says), state for users of the score
        x = _col(p + "raw")
        prorating = rule.method in ("sum", "mean")
        partial = exp.LT(this=k, expression=exp.Literal.number(n))
        if rule.rounding.method != "none" and (rule.method == "mean" or rule.required < n):
            rounded = self.rounded(x, rule)
            value = rounded if rule.method == "mean" else _case([(partial, rounded)], x)
        else:
            value = x
        c.append(exp.alias_(_case([(self.col(p + "ok"), value)], null_d), p + "val"))
        if rule.applies_when is not None:
            bad = _or(self.col(p + "gbad"), _and(_col(p + "gok"), self.col(p + "bad")))
            answered_out = _case([(_col(p + "gok"), _col(p + "ia"))], zero)
        else:
            bad = self.col(p + "bad")
            answered_out = _col(p + "ia")
        self.column(c, bad, p + "isbad")
        c.append(exp.alias_(exp.cast(answered_out, INT), p + "n"))
        prorated = _and(self.col(p + "ok"), partial) if prorating else exp.false()
        c.append(exp.alias_(prorated, p + "pr"))
        insufficient = _and(
            ok_gate,
            _not(self.col(p + "bad")),
            exp.LT(this=k, expression=exp.Literal.number(rule.required)),
            some_missing,
        )
        self.column(c, insufficient, p + "ins")
        value_col = _col(p + "val")
        self.score_refs[rule.id] = _ValueRef(value_col, self.col(p + "isbad"), lv.copy())

    def rounded(self, x: exp.Expr, rule: ScoreRule) -> exp.Expr:
        """scale.round_value in SQL: the same operations in the same order."""
        decimals = rule.rounding.decimals
        scale = 10**decimals
        y = exp.Mul(this=x, expression=exp.Literal.number(scale)) if decimals else x
        half = _dnum(0.5)
        method = rule.rounding.method
        if method == "half_up":  # copysign(floor(abs(y) + 0.5), y)
            r = _case(
                [
                    (
                        exp.LT(this=y, expression=exp.Literal.number(0)),
                        exp.Neg(
                            this=exp.Floor(
                                this=exp.Add(this=exp.Neg(this=_paren(y)), expression=half)
                            )
                        ),
                    )
                ],
                exp.Floor(this=exp.Add(this=y, expression=half)),
            )
        elif method == "half_even":  # Python round(): ties to even; y - floor(y) is exact
            fl = exp.Floor(this=y)
            frac = exp.Sub(this=_paren(y), expression=fl)
            odd = exp.NEQ(
                this=exp.Sub(
                    this=exp.Floor(this=y),
                    expression=exp.Mul(
                        this=exp.Literal.number(2),
                        expression=exp.Floor(
                            this=exp.Div(
                                this=exp.Floor(this=y),
                                expression=exp.Literal.number(2),
                                typed=False,
                                safe=False,
                            )
                        ),
                    ),
                ),
                expression=exp.Literal.number(0),
            )
            up = exp.Add(this=exp.Floor(this=y), expression=exp.Literal.number(1))
            r = _case(
                [
                    (exp.GT(this=frac, expression=half), up),
                    (exp.LT(this=frac.copy(), expression=half.copy()), exp.Floor(this=y)),
                    (odd, up.copy()),
                ],
                exp.Floor(this=y),
            )
        elif method == "floor":
            r = exp.Floor(this=y)
        else:
            r = exp.Ceil(this=y)
        r = exp.cast(r, DOUBLE)
        if decimals:
            return exp.Div(
                this=_paren(r), expression=exp.Literal.number(scale), typed=False, safe=False
            )
        return r

    # bands, flags, classifications, issues --------------------------------------------

    def text_type(self, values: Sequence[str]) -> exp.DataType:
        """VARCHAR, or with ``enums`` an ENUM of the values (each listed once)."""
        if not self.enums or not values:
            return VARCHAR
        listed = [_str(v) for v in dict.fromkeys(values)]
        return exp.DataType(this=exp.DataType.Type.ENUM, expressions=listed, nested=False)

    def known_text(self, value: str, typ: exp.DataType) -> exp.Expr:
        return _str(value) if typ is VARCHAR else exp.cast(_str(value), typ.copy())

    def issue_texts(self, entries: Sequence[_IssueEntry]) -> list[str]:
        """Every text the issues column can hold (the codes of each ordered selection of
        ``entries``, joined by ";", and conflicting-records when rows are merged), or none
        when a code is only known per row or the selections are too many to list."""
        codes = [x.code.name for x in entries if isinstance(x.code, exp.Literal)]
        if not entries or len(codes) < len(entries) or len(entries) > MAX_ENUM_ISSUES:
            return []
        texts = [
            ";".join(c for bit, c in enumerate(codes) if chosen >> bit & 1)
            for chosen in range(1, 1 << len(codes))
        ]
        return [*texts, "conflicting-records"] if self.duplicates else texts

    def band(self, rule: ScoreRule, value: exp.Expr) -> exp.Expr:
        typ = self.text_type([b.label for b in rule.bands])
        if not rule.bands:
            return exp.cast(exp.Null(), typ)
        whens = [
            (exp.GTE(this=value, expression=_num(band.min)), self.known_text(band.label, typ))
            for band in reversed(rule.bands)
        ]
        return _case(whens, exp.cast(exp.Null(), typ.copy()))

    def compile(self) -> CompiledScale:
        scale = self.scale
        source = self.source_layers()
        source_layers = self.duplicate_layers() if self.duplicates else []
        self.compile_items()
        alt_issues = self.compile_slots()
        self.compile_scores()

        out: list[exp.Expr] = []
        null_s = exp.cast(exp.Null(), VARCHAR)
        conflict = _col("_ks_conflict") if self.duplicates else None

        def unless_conflict(e: exp.Expr, empty: exp.Expr) -> exp.Expr:
            if conflict is None:
                return e
            return _case([(conflict, empty)], e)

        out.append(exp.alias_(_col("_ks_subject"), "subject"))
        visit: exp.Expr = _col("_ks_visit")
        if self.enums and self.layout.visits and _kind(self.layout, self.columns.visit) == "plain":
            # (the writer keeps the ENUM's own dictionary instead of hashing every text)
            visit = exp.cast(visit, self.text_type(self.layout.visits))
        out.append(exp.alias_(visit, "visit"))
        if self.enums and (self.layout.date or self.columns.date) is None:
            # no date column: NULL in every row, as an ENUM (the writer hashes no text)
            out.append(exp.alias_(exp.cast(exp.Null(), self.text_type([""])), "date"))
        else:
            out.append(exp.alias_(_col("_ks_date"), "date"))
        out.append(exp.alias_(_col("_ks_day"), "day"))
        for name, text in (("scale", scale.id), ("scale_version", scale.version)):
            out.append(exp.alias_(self.known_text(text, self.text_type([text])), name))
        names = ["subject", "visit", "date", "day", "scale", "scale_version"]
        for rule in scale.scores:
            s = self.score_idx[rule.id]
            p = f"_ks_s{s}_"
            value = _col(p + "val")
            out.append(
                exp.alias_(
                    unless_conflict(value, exp.cast(exp.Null(), DOUBLE)), rule.id, quoted=True
                )
            )
            band_null = exp.cast(exp.Null(), self.text_type([b.label for b in rule.bands]))
            out.append(
                exp.alias_(
                    unless_conflict(self.band(rule, value), band_null),
                    f"{rule.id}_band",
                    quoted=True,
                )
            )
            out.append(
                exp.alias_(
                    unless_conflict(_col(p + "n"), exp.cast(exp.Literal.number(0), INT)),
                    f"{rule.id}_items_answered",
                    quoted=True,
                )
            )
            out.append(
                exp.alias_(
                    unless_conflict(_col(p + "pr"), exp.false()), f"{rule.id}_prorated", quoted=True
                )
            )
            names += [
                rule.id,
                f"{rule.id}_band",
                f"{rule.id}_items_answered",
                f"{rule.id}_prorated",
            ]
        for cls in scale.classifications:
            ref = self.ref(cls.condition.kind, cls.condition.ref)
            verdict = _case(
                [(_not_null(ref.value), self.condition(cls.condition, ref.value))],
                exp.cast(exp.Null(), exp.DataType.build("boolean")),
            )
            out.append(
                exp.alias_(
                    unless_conflict(verdict, exp.cast(exp.Null(), exp.DataType.build("boolean"))),
                    cls.id,
                    quoted=True,
                )
            )
            names.append(cls.id)
        fired = []
        undetermined: list[_IssueEntry] = []
        for flag in scale.flags:
            ref = self.ref(flag.condition.kind, flag.condition.ref)
            test = self.condition(flag.condition, ref.value)
            fired.append(_and(_not_null(ref.value), test))
            item = flag.condition.ref if flag.condition.kind == "slot" else ""
            unknown = _and(_is_null(ref.value), _not(_paren(ref.bad.copy())))
            undetermined.append(_IssueEntry(unknown, _str("flag-undetermined"), _str(item)))
        out.append(exp.alias_(self.flags_column(fired, unless_conflict), "flags"))
        names.append("flags")

        # issues, in the order the engine reports them
        entries: list[_IssueEntry] = []
        for column in self.layout.unknown_items:
            item = column.partition("_")[2] or column
            entries.append(_IssueEntry(exp.true(), _str("unknown-item"), _str(item)))
        for item_id in scale.items:
            i = self.item_index[item_id]
            e = _col(f"_ks_e{i}")
            entries.append(_IssueEntry(self.invalid(i), e, _str(self.shown_item(item_id))))
        entries.extend(alt_issues)
        for rule in scale.scores:
            p = f"_ks_s{self.score_idx[rule.id]}_"
            entries.append(_IssueEntry(self.col(p + "ins"), _str("insufficient-items"), _str("")))
        entries.extend(undetermined)
        if self.duplicates:
            several = exp.GT(this=_col("_ks_dn"), expression=exp.Literal.number(1))
            entries.append(_IssueEntry(several, _str("duplicate-record"), _str("")))
        entries = [x for x in entries if _const(x.when) is not False]  # (cannot happen)
        # most rows have no issue: test that first, then build the text
        any_issue = _or(*(x.when.copy() for x in entries)) if entries else exp.false()
        # with enums, the issues too when every text they can join is known in advance
        texts = self.issue_texts(entries)
        issue_type = self.text_type(texts)
        self.listed_issues = tuple(texts) if issue_type is not VARCHAR else ()
        null_text = exp.cast(exp.Null(), issue_type)
        if len(entries) == 1:  # one possible issue: its code (no joining)
            code = entries[0].code.copy()
            if issue_type is not VARCHAR:
                code = self.known_text(code.name, issue_type)
            codes = _case([(entries[0].when.copy(), code)], null_text.copy())
        else:
            joined = _concat_ws(";", [_case([(x.when, x.code)]) for x in entries])
            if issue_type is not VARCHAR:
                joined = exp.cast(joined, issue_type.copy())
            codes = _case([(any_issue, joined)], null_text)
        items = _case(
            [
                (
                    any_issue.copy(),
                    _concat_ws(";", [_case([(x.when.copy(), x.item)]) for x in entries]),
                )
            ],
            null_text.copy(),
        )
        conflicting = self.known_text("conflicting-records", issue_type)
        out.append(exp.alias_(unless_conflict(codes, conflicting), "issues"))
        names.append("issues")
        csv_names = list(names)
        for j, column in enumerate(self.layout.carry):
            name = self.layout.carry_as.get(column, column)
            out.append(exp.alias_(_col(f"_ks_x{j}"), name, quoted=True))
            names.append(name)
        if self.details:
            na = _concat_ws(
                ";",
                [
                    _case([(_col(f"_ks_s{self.score_idx[r.id]}_gna"), _str(r.id))])
                    for r in scale.scores
                    if r.applies_when is not None
                ],
            )
            out.append(exp.alias_(unless_conflict(na, null_s), "not_applicable"))
            out.append(exp.alias_(unless_conflict(items, null_s), "issue_items"))
            names += ["not_applicable", "issue_items"]
            if self.order_by:
                out.append(exp.alias_(_col("_ks_order"), "_ks_order"))
                names.append("_ks_order")

        query = _parenthesize(self.assemble([*source, *source_layers, *self.plan.layers], out))
        key_cols = [
            exp.alias_(_col("_ks_subject"), "subject"),
            exp.alias_(_col("_ks_visit"), "visit"),
        ]
        duplicates, self.duplicates = self.duplicates, False
        keys = _parenthesize(self.assemble(self.source_layers(), key_cols))
        self.duplicates = duplicates
        listed = self.listed_issues
        return CompiledScale(scale.id, self.dialect, query, names, csv_names, keys, listed)

    def flags_column(
        self, fired: list[exp.Expr], unless_conflict: Callable[[exp.Expr, exp.Expr], exp.Expr]
    ) -> exp.Expr:
        """The ids of the flags raised (``fired``: the condition of each), joined by ";"
        (NULL when none)."""
        ids = [flag.id for flag in self.scale.flags]
        if self.enums and len(ids) == 1:  # one flag: its id or NULL, as an ENUM
            typ = self.text_type(ids)
            joined = _case([(fired[0], self.known_text(ids[0], typ))], exp.cast(exp.Null(), typ))
            return unless_conflict(joined, exp.cast(exp.Null(), typ.copy()))
        parts = [_case([(cond, _str(i))]) for cond, i in zip(fired, ids, strict=True)]
        return unless_conflict(_concat_ws(";", parts), exp.cast(exp.Null(), VARCHAR))

    def shown_item(self, item_id: str) -> str:
        """The item as the input names it (the column suffix: 16A for hamd17_16A)."""
        src = self.item_source(item_id)
        prefix = f"{self.scale.id}_"
        if src is not None and src[0].casefold().startswith(prefix):
            return src[0][len(prefix) :]
        return item_id

    def duplicate_layers(self) -> list[_Layer]:
        """Rows of the same subject and visit: counted, compared, the first one kept."""
        keys: list[exp.Expr] = []
        for item_id in self.scale.items:
            i = self.item_index[item_id]
            src = self.item_source(item_id)
            keys.append(self.comparable(_col(f"_ks_r{i}"), src[1] if src else "text"))
        for j in range(len(self.layout.unknown_items)):
            keys.append(self.comparable(_col(f"_ks_u{j}"), "text"))
        parts = [
            exp.Coalesce(
                this=exp.DPipe(
                    this=exp.DPipe(
                        this=exp.cast(exp.Length(this=key), VARCHAR), expression=_str(":")
                    ),
                    expression=key.copy(),
                ),
                expressions=[_str("-")],
            )
            for key in keys
        ]
        key_expr = _concat_ws("|", parts) if parts else _str("")
        part = [_col("_ks_subject"), _col("_ks_visit")]
        order = exp.Order(expressions=[exp.Ordered(this=_col("_ks_order"))])
        first = [exp.alias_(exp.Coalesce(this=key_expr, expressions=[_str("")]), "_ks_key")]
        second = [
            exp.alias_(exp.Window(this=exp.Count(this=exp.Star()), partition_by=part), "_ks_dn"),
            exp.alias_(
                exp.NEQ(
                    this=exp.Window(
                        this=exp.Min(this=_col("_ks_key")), partition_by=[p.copy() for p in part]
                    ),
                    expression=exp.Window(
                        this=exp.Max(this=_col("_ks_key")), partition_by=[p.copy() for p in part]
                    ),
                ),
                "_ks_conflict",
            ),
            exp.alias_(
                exp.Window(
                    this=exp.RowNumber(), partition_by=[p.copy() for p in part], order=order
                ),
                "_ks_rn",
            ),
        ]
        keep = exp.EQ(this=_col("_ks_rn"), expression=exp.Literal.number(1))
        return [_Layer(first), _Layer(second), _Layer([], where=keep)]

    def comparable(self, raw: exp.Expr, kind: str) -> exp.Expr:
        """engine._comparable as text: n<number>, s<label> or NULL (left out)."""
        null_s = exp.cast(exp.Null(), VARCHAR)
        if kind in NUMBER_KINDS:
            return exp.DPipe(this=_str("n"), expression=exp.cast(raw, VARCHAR))
        if kind == "boolean":
            return _case(
                [(_not_null(raw), exp.DPipe(this=_str("b"), expression=exp.cast(raw, VARCHAR)))],
                null_s,
            )
        t = self.text.strip(raw)
        digits = self.text.ascii_digits(t)
        number = exp.DPipe(
            this=_str("n"), expression=exp.cast(self.text.to_double(digits), VARCHAR)
        )
        label = exp.DPipe(this=_str("s"), expression=exp.Lower(this=self.text.collapse(t.copy())))
        return _case(
            [
                (_is_null(raw), null_s),
                (_in(exp.Lower(this=t.copy()), [_str(m) for m in sorted(MISSING_MARKERS)]), null_s),
                (self.text.is_number(digits.copy()), number),
            ],
            label,
        )

    def assemble(self, layers: list[_Layer], out: list[exp.Expr]) -> exp.Query:
        """Chain the layers as common table expressions. Each passes on only the columns
        that later steps use: Spark compiles a chain of projections into one method, which
        must stay small."""
        order = [exp.Ordered(this=_col("_ks_order"))] if self.duplicates else []
        needed: set[str] = set().union(*(_refs(e) for e in [*out, *order]))
        rank: dict[str, int] = {}
        for layer in layers:
            for e in layer.new:
                rank.setdefault(e.alias_or_name, len(rank))
        shapes: list[tuple[list[str], list[exp.Expr]]] = []
        for layer in reversed(layers):
            made = {e.alias_or_name for e in layer.new}
            kept = [e for e in layer.new if e.alias_or_name in needed]
            passed = sorted(needed - made, key=lambda n: rank.get(n, -1))
            shapes.append((passed, kept))
            needed = set(passed).union(*(_refs(e) for e in kept))
            if layer.where is not None:
                needed |= _refs(layer.where)
        shapes.reverse()
        ctes: list[tuple[str, exp.Select]] = []
        prev: exp.Expr | str = ""
        for n, (layer, (passed, kept)) in enumerate(zip(layers, shapes, strict=True)):
            if layer.table is None and layer.where is None and not kept:
                continue
            name = f"_ks_{n}"
            select = exp.select(*[_col(c) for c in passed], *kept)
            select = select.from_(layer.table.copy() if layer.table is not None else prev)
            if layer.where is not None:
                select = select.where(layer.where)
            if self.dialect == "postgres":
                # PostgreSQL inlines common table expressions and would substitute each
                # step's expressions into the next, without end: OFFSET 0 keeps steps apart
                select = select.offset(0)
            ctes.append((name, select))
            prev = name
        final = exp.select(*out).from_(prev)
        if order:
            final = final.order_by(*order)
        for name, select in ctes:
            final = final.with_(name, as_=select)
        return final
