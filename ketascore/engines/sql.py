"""Compile a scale to SQL, so a table in a database or a lake is scored where it lives.

``compile_scale(scale, dialect=...)`` writes one query that reads a wide table (one row per
subject and visit, one column per item, ``<scale>_<item>`` by default) and returns, per row,
what ``ketascore score --format csv`` writes: every score with its missing-data rule,
prorating and rounding, its band, items answered and whether it was prorated, the
classifications, the flags and the codes of the issues found, in the order the record
engine reports them.

The rules come from where the record engine takes them: the value grammar from
``ketascore.core.values`` (``sql_item``), the score methods, prorating and rounding from
``ketascore.core.methods``. The query is written in DuckDB's dialect, with plain functions
only (CASE, CAST, TRIM, TRANSLATE, COALESCE, GREATEST, CONCAT_WS, window functions), and
transpiled by sqlglot for the other dialects, so DuckDB, Spark and PostgreSQL run the same
query.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ketascore.core.methods import SqlParts, sql_score_value
from ketascore.core.scale import ConditionRule, Scale, ScoreRule, TermRule
from ketascore.core.values import (
    LOWER,
    NARROW_KINDS,
    UPPER,
    WHITESPACE,
    WS_SQL,
    Num,
    SqlColumns,
    sql_comparable,
    sql_id,
    sql_is_nan,
    sql_item,
    sql_number,
    sql_text,
)

# Dialects whose results are checked against the record engine by the test suite.
DIALECTS = ("duckdb", "spark", "databricks", "postgres")
KINDS = ("text", "number", "float", "half", "integer", "decimal", "boolean")


class SqlError(ValueError):
    """A scale or option that cannot be compiled to SQL for the chosen dialect."""


# --------------------------------------------------------------------------------------
# Where the table keeps what


STANDARDS = ("cdisc", "loinc")  # the item codes a scale file declares (codes: {cdisc, loinc})


@dataclass(frozen=True)
class LongLayout:
    """A long table: one row per answer, its item named by a code in ``item``.

    The codes are the scale's own (``standard``: ``cdisc`` test codes such as PHQ0101, or
    ``loinc`` codes such as 44250-9) or the column map's ``items`` (item id -> code);
    codes match with ASCII case and surrounding whitespace ignored. The answer is the first
    of ``values`` that is not blank (SDTM: QSSTRESN, QSSTRESC, QSORRES). ``status``: a
    column whose ``NOT DONE`` makes the answer missing (SDTM QSSTAT); ``derived``: a column
    whose ``Y`` marks a row that is not an answer (QSDRVFL); ``category``: a column that
    must hold ``category_value`` (or be blank) for the row to count (QSCAT). ``scores``:
    codes of rows that hold a score the source stored (they make a record, they are no
    answer)."""

    item: str
    values: tuple[str, ...]
    standard: str | None = None
    status: str | None = None
    derived: str | None = None
    category: str | None = None
    category_value: str | None = None
    scores: tuple[str, ...] = ()

    def codes(self, scale: Scale, items: Mapping[str, str]) -> dict[str, str]:
        """Item code (ASCII upper case) -> item id."""
        out: dict[str, str] = {}
        if self.standard is not None:
            for item in scale.definition.items:
                code = getattr(item.codes, self.standard, None) if item.codes else None
                if code:
                    out[_ascii_upper(code)] = item.id
        for item_id, code in items.items():
            out[_ascii_upper(code)] = scale.item_lookup.get(item_id.casefold(), item_id)
        return out


@dataclass(frozen=True)
class ColumnMap:
    """Where a table keeps the subject, the visit and each item, and extra missing codes.

    Without ``items``, items are read from ``<scale>_<item>`` columns; with them, an item
    the map does not list has no column (always missing). With ``long``, the table holds
    one row per answer (``items`` then gives item codes)."""

    subject: str = "subject"
    visit: str = "visit"
    items: Mapping[str, str] = field(default_factory=dict)
    missing_codes: tuple[Num | str, ...] = ()
    date: str | None = None
    day: str | None = None
    long: LongLayout | None = None

    def item_column(self, scale: Scale, item_id: str) -> str:
        return self.items.get(item_id) or f"{scale.id}_{item_id}"


def _ascii_upper(text: str) -> str:
    return text.strip(WHITESPACE).translate(str.maketrans(LOWER, UPPER))


def sdtm_map(scale: Scale, domain: str = "QS", *, subject: str = "USUBJID") -> ColumnMap:
    """The column map of a CDISC SDTM questionnaire domain (QS, RS, FT): the scale's CDISC
    test codes in --TESTCD, the answer in --STRESN, else --STRESC, else --ORRES; --STAT NOT
    DONE is missing; --DRVFL Y rows and the scale's score codes are no answers; rows of
    another --CAT than the scale's are left out; --DTC is the date and --DY the study day."""
    d = domain.upper()
    category = scale.definition.codes.cdisc_category if scale.definition.codes else None
    scores = tuple(s.codes.cdisc for s in scale.definition.scores if s.codes and s.codes.cdisc)
    long = LongLayout(
        item=f"{d}TESTCD",
        values=(f"{d}STRESN", f"{d}STRESC", f"{d}ORRES"),
        standard="cdisc",
        status=f"{d}STAT",
        derived=f"{d}DRVFL",
        category=f"{d}CAT" if category else None,
        category_value=category,
        scores=scores,
    )
    return ColumnMap(subject=subject, visit="VISIT", date=f"{d}DTC", day=f"{d}DY", long=long)


def parse_column_map(data: Any, source: str = "<map>") -> ColumnMap:
    """The column-mapping YAML (a mapping file of ``ketascore score --map`` that describes
    a wide table)::

        subject: SEQN          # default: subject
        visit: CYCLE           # default: visit
        items: {1: DPQ010, 2: DPQ020}
        missing_codes: [7, 9]

    Raises SqlError naming the problem."""
    if not isinstance(data, dict):
        raise SqlError(f"{source}: a column map holds a mapping of keys")
    known = {"scale", "subject", "visit", "items", "missing_codes", "date", "day"}
    long_keys = {"layout", "item_column", "value_column", "codes", "status_column"}
    long_keys |= {"derived_column", "category_column", "category"}
    # the keys of a mapping file (--map) that change nothing here
    ignored = {"description", "source", "carry", "sheet", "scores", "visit_number"}
    unknown = sorted(str(k) for k in data if k not in known | long_keys | ignored)
    if unknown:
        raise SqlError(
            f"{source}: unknown key(s) {', '.join(unknown)}; known: {sorted(known | long_keys)}"
        )
    layout = data.get("layout", "wide")
    if layout not in ("wide", "long", "sdtm"):
        raise SqlError(f"{source}: layout is wide, long or sdtm, not {layout!r}")
    if layout == "wide" and any(k in data for k in long_keys - {"layout"}):
        given = sorted(k for k in data if k in long_keys - {"layout"})
        raise SqlError(f"{source}: {', '.join(given)}: only a long layout has item codes")
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
    long = None
    if layout != "wide":
        long = _long_layout(data, source, layout, column)
    defaults = ("USUBJID", "VISIT") if layout == "sdtm" else ("subject", "visit")
    return ColumnMap(
        subject=column("subject", defaults[0]) or defaults[0],
        visit=column("visit", defaults[1]) or defaults[1],
        items=item_map,
        missing_codes=tuple(codes),
        date=column("date", "QSDTC" if layout == "sdtm" else None),
        day=column("day", "QSDY" if layout == "sdtm" else None),
        long=long,
    )


def _long_layout(data: dict[str, Any], source: str, layout: str, column: Any) -> LongLayout:
    """The long layout a column map describes (``layout: long`` or ``layout: sdtm``)."""
    standard = data.get("codes")
    if standard is not None and standard not in STANDARDS:
        raise SqlError(f"{source}: codes is one of {', '.join(STANDARDS)}, not {standard!r}")
    if layout == "sdtm":
        standard = standard or "cdisc"
        return LongLayout(
            item=column("item_column", "QSTESTCD"),
            values=("QSSTRESN", "QSSTRESC", "QSORRES"),
            standard=standard,
            status=column("status_column", "QSSTAT"),
            derived=column("derived_column", "QSDRVFL"),
            category=column("category_column", "QSCAT" if data.get("category") else None),
            category_value=data.get("category"),
        )
    values = data.get("value_column")
    values = [values] if isinstance(values, str) else values
    if not values or not all(isinstance(v, str) and v.strip() for v in values):
        raise SqlError(f"{source}: a long layout names its answers: value_column: <column>")
    if standard is None and not data.get("items"):
        raise SqlError(
            f"{source}: a long layout needs item codes: codes: cdisc or loinc, or items: "
            "{item: code}"
        )
    category = data.get("category")
    if category is not None and not isinstance(category, str):
        raise SqlError(f"{source}: category is a text")
    return LongLayout(
        item=column("item_column", "item") or "item",
        values=tuple(values),
        standard=standard,
        status=column("status_column", None),
        derived=column("derived_column", None),
        category=column("category_column", None),
        category_value=category,
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


@dataclass(frozen=True)
class TableLayout:
    """What is known about the input relation.

    ``kinds`` gives a column's kind: text (the default, right for any type since the value
    is then read as text), number, float (a number of a 32-bit floating-point type, FLOAT or
    REAL: read as a number, but an id of it is exact below 2^24 only, ``values.id_limit``),
    half (of a 16-bit one, Parquet FLOAT16: the same, below 2^11),
    integer (a number that is always whole: no NaN, no fraction, so the checks for them are
    left out), decimal (a number of a DECIMAL type: read as a number, but an id by its
    exact digits) or boolean. ``carry`` columns are copied
    to the output after the scores, as the CSV reader copies other columns. ``unknown_items`` are
    ``<scale>_<x>`` columns that name no item of the scale (each row gets an unknown-item
    issue). ``absent`` items have no column (always missing). ``order`` is a column that
    numbers the rows in input order (the first of repeated rows is kept, and the output
    follows it). ``others`` are the table's other columns (items of other scales): a row is
    blank, and skipped as the readers skip it, only when they are blank too. ``internal``
    columns (an engine's own) are passed through to the output."""

    kinds: Mapping[str, str] = field(default_factory=dict)
    carry: Sequence[str] = ()
    unknown_items: Sequence[str] = ()
    absent: frozenset[str] = frozenset()
    date: str | None = None
    day: str | None = None
    order: str | None = None
    others: Sequence[str] = ()
    internal: Sequence[str] = ()


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
    *,
    require: bool = True,
) -> tuple[TableLayout, ColumnMap]:
    """Sort a table's columns as the wide CSV reader does: subject, visit, date, day, the
    scale's items (``<scale>_<item>``, case-insensitive, or as ``columns`` maps them),
    columns that name no item of the scale (unknown-item issues), items of other known
    scales (left out) and everything else (carried to the output). Returns the layout and
    the column map spelled as the table spells its columns.

    ``require``: raise MissingColumns, naming them, when the table lacks the column of an
    item a score needs (``Scale.absent_slots``) or of an item the column map names; an
    unscored item, or one of an alternative's items, may be absent. (Without it, such an
    item is missing in every row: ``layout.absent``.)"""
    cmap = columns or ColumnMap()
    by_fold = {n.casefold(): n for n in names}
    if cmap.long is not None:
        return _plan_long(scale, names, kinds, cmap)
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
    others: list[str] = []
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
            others.append(name)  # an item of another scale
            continue
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
        others=others,
    )
    # an item the map names must be there; without a map, every item a score needs
    named = {i: c for i, c in cmap.items.items() if i not in items}
    wanted = {i: cmap.item_column(scale, i) for i in scale.items if not cmap.items}
    absent = scale.absent_slots(items)
    missing = [
        f"{c} ({scale.id} item {i}, used by {', '.join(users)})"
        for i, c in (named | wanted).items()
        if i not in items and (users := absent.get(i))
    ]
    alternatives = [
        f"one of {', '.join(cmap.item_column(scale, m) for m in scale.slots[slot])} "
        f"({scale.id} {slot})"
        for slot in absent
        if len(scale.slots.get(slot, ())) > 1
    ]
    if require and (missing or alternatives):
        raise MissingColumns(
            f"the table has no column {'; '.join(missing + alternatives)}: every score that "
            "uses it would be left empty or prorated; add the column (blank where the item "
            "was not asked) or map the item to another column"
        )
    return layout, mapped


class MissingColumns(SqlError):
    """A table without a column that a score needs (or that the column map names)."""


def _plan_long(
    scale: Scale, names: Sequence[str], kinds: Mapping[str, str] | None, cmap: ColumnMap
) -> tuple[TableLayout, ColumnMap]:
    """The layout of a long table: its id, date, day and code columns spelled as the
    table spells them; a MissingColumns error for one that is not there."""
    assert cmap.long is not None
    by_fold = {n.casefold(): n for n in names}
    long = cmap.long

    def find(name: str | None, required: bool = True) -> str | None:
        if name is None:
            return None
        return name if name in names else by_fold.get(name.casefold())

    needed = {"subject": cmap.subject, "visit": cmap.visit, "item codes": long.item}
    lacking = [f"{c} ({what})" for what, c in needed.items() if find(c) is None]
    values = tuple(v for v in (find(c) for c in long.values) if v is not None)
    if not values:
        lacking.append(" or ".join(long.values) + " (the answers)")
    if long.category_value is not None and long.category and find(long.category) is None:
        lacking.append(f"{long.category} (the category)")
    if lacking:
        raise MissingColumns(f"the long table has no column {'; '.join(lacking)}")
    mapped = replace(
        cmap,
        subject=find(cmap.subject) or cmap.subject,
        visit=find(cmap.visit) or cmap.visit,
        long=replace(
            long,
            item=find(long.item) or long.item,
            values=values,
            status=find(long.status),
            derived=find(long.derived),
            category=find(long.category) if long.category_value is not None else None,
        ),
    )
    layout = TableLayout(
        kinds=dict(kinds or {}), date=find(cmap.date or "date"), day=find(cmap.day or "day")
    )
    return layout, mapped


# --------------------------------------------------------------------------------------
# SQL text


def quote(name: str) -> str:
    """A quoted identifier."""
    return '"' + name.replace('"', '""') + '"'


def table_name(name: str) -> str:
    """A table name given by a user (``schema.table``), each part quoted."""
    parts = name.split(".")
    if not all(p and p.strip() == p for p in parts):
        raise SqlError(f"cannot use {name!r} as a table name")
    return ".".join(quote(p) for p in parts)


def _carried(expr: str, kind: str) -> str:
    if kind != "text":
        return expr
    return f"nullif(trim(CAST({expr} AS VARCHAR), {WS_SQL}), '')"


def _test(cond: ConditionRule, value: str) -> str:
    op = {"at_least": ">=", "at_most": "<=", "above": ">", "below": "<", "equals": "="}[cond.op]
    return f"({value} {op} {sql_number(cond.threshold)})"


def _any(parts: Sequence[str]) -> str:
    parts = [p for p in parts if p != "FALSE"]
    return "(" + " OR ".join(parts) + ")" if parts else "FALSE"


# Conditions in SQL. A simple condition on an item or a score keeps its plain form
# (``_test``); the others (all, any, difference, spread) are written as a code: 0 false,
# 1 not known because a value was rejected, 2 not known because a value is missing, 3 true,
# as the record engine's ``evaluate`` decides them.
_NOTHING = "CAST(NULL AS DOUBLE)"


def _code(cond: ConditionRule, slots: Mapping[str, _Value], scores: Mapping[str, _Value]) -> str:
    if cond.kind == "all":  # false, then rejected, then missing: the lowest code
        parts = [_code(p, slots, scores) for p in cond.parts]
        return parts[0] if len(parts) == 1 else f"least({', '.join(parts)})"
    if cond.kind == "any":  # true, then rejected, then missing: the highest, 1 and 2 swapped
        parts = [_swap(_code(p, slots, scores)) for p in cond.parts]
        return _swap(parts[0] if len(parts) == 1 else f"greatest({', '.join(parts)})")
    if cond.kind == "slot":
        read = [slots[cond.ref]]
        value = read[0].value
    elif cond.kind == "score":
        read = [scores[cond.ref]]
        value = read[0].value
    else:
        read = [slots[ref] for ref in cond.refs]
        if cond.kind == "difference":
            value = f"({read[0].value} - {read[1].value})"
        else:
            each = ", ".join(v.value for v in read)
            value = f"(greatest({each}) - least({each}))"
    bad = _any([v.bad for v in read])
    null = _any([f"{v.value} IS NULL" for v in read])
    return (
        f"(CASE WHEN {bad} THEN 1 WHEN {null} THEN 2 WHEN {_test(cond, value)} THEN 3 ELSE 0 END)"
    )


def _swap(code: str) -> str:
    """A code with 1 and 2 exchanged (so that ``any`` ranks rejected above missing)."""
    return f"(CASE {code} WHEN 1 THEN 2 WHEN 2 THEN 1 ELSE {code} END)"


def _holds(
    cond: ConditionRule, slots: Mapping[str, _Value], scores: Mapping[str, _Value]
) -> tuple[str, str]:
    """(the condition holds, it cannot be known because a value is missing)."""
    if cond.kind in ("slot", "score"):
        v = slots[cond.ref] if cond.kind == "slot" else scores[cond.ref]
        return _test(cond, v.value), f"({v.value} IS NULL AND NOT {v.bad})"
    code = _code(cond, slots, scores)
    return f"({code} = 3)", f"({code} = 2)"


def _join(parts: Sequence[str]) -> str:
    """The texts that are not NULL, joined by ``;`` (``concat_ws``, which not every dialect
    has, or has with other NULL rules: written with ``||`` and ``coalesce``)."""
    if not parts:
        return "''"
    return "substr(" + " || ".join(f"coalesce(';' || {p}, '')" for p in parts) + ", 2)"


def _count(parts: Sequence[str]) -> str:
    """How many of the boolean expressions hold (an integer)."""
    if not parts:
        return "0"
    return "(" + " + ".join(f"(CASE WHEN {p} THEN 1 ELSE 0 END)" for p in parts) + ")"


@dataclass
class _Value:
    """A slot or score at some layer: its value column (NULL when missing or unusable), a
    test that it is unusable, and its leaf count (items answered)."""

    value: str
    bad: str
    leaves: str


@dataclass
class CompiledScale:
    """A scale compiled to one query; ``columns`` are its output columns in order."""

    scale_id: str
    dialect: str
    text: str
    columns: list[str]

    def sql(self, pretty: bool = True) -> str:
        if self.dialect == "duckdb" and not pretty:
            return self.text
        import sqlglot

        write = "spark" if self.dialect == "databricks" else self.dialect
        return sqlglot.transpile(self.text, read="duckdb", write=write, pretty=pretty)[0]


class _Query:
    """A chain of layers, each a SELECT of the layer before with new columns."""

    def __init__(self, source: str, fence: str = ""):
        self.fence = fence
        self.layers: list[tuple[list[str], str | None]] = []
        self.source = source
        self.names: set[str] = set()
        self.prelude: list[str] = []  # CTEs before the layers (a long table's pivot)

    def add(self, columns: list[str], where: str | None = None) -> None:
        for column in columns:  # each internal name is given once in the whole query
            name = column.rpartition(" AS ")[2]
            if name.startswith("_ks_"):
                assert name not in self.names, f"column {name} is named twice"
                self.names.add(name)
        self.layers.append((columns, where))

    def text(self, final: list[str], where: str | None = None, order: str | None = None) -> str:
        ctes = list(self.prelude)
        prev = self.source
        for i, (columns, cond) in enumerate(self.layers):
            name = f"_ks_step{i}"
            select = ", ".join(["*", *columns]) if i else ", ".join(columns)
            where = f" WHERE {cond}" if cond else ""
            ctes.append(f"{name} AS (SELECT {select} FROM {prev}{where}{self.fence})")
            prev = name
        body = f"SELECT {', '.join(final)} FROM {prev}"
        if where:
            body += f" WHERE {where}"
        if order:
            body += f" ORDER BY {order}"
        return ("WITH " + ", ".join(ctes) + " " if ctes else "") + body


def compile_scale(
    scale: Scale,
    dialect: str = "duckdb",
    *,
    table: str = "answers",
    columns: ColumnMap | None = None,
    layout: TableLayout | None = None,
    skip_unrated: bool = True,
    duplicates: bool = False,
    details: bool = False,
    relation: str | None = None,
    row_checks: bool = False,
) -> CompiledScale:
    """Compile ``scale`` to one query over ``table`` (or over ``relation``, a FROM clause
    of DuckDB's dialect, such as ``read_parquet('x.parquet')``) for ``dialect``.

    ``skip_unrated`` leaves out rows where no item column holds anything (the CSV reader
    makes no record of them) and rows without subject or visit. ``duplicates`` merges rows
    of the same subject and visit as ``ketascore score`` does (identical answers: scored
    once with a duplicate-record warning; different answers: no scores and a
    conflicting-records error), keeping the first by ``layout.order``, and orders the
    output by it. ``details`` adds the columns ``not_applicable`` and ``issue_items`` (the
    item of each issue, or empty). ``row_checks`` keeps every row and adds, for an engine
    that reports what the readers report, ``_ks_kept`` (the row is a record of the scale),
    ``_ks_no_ids`` (a row that is not blank has no subject or visit), ``_ks_bad_date`` and
    ``_ks_bad_day`` (a record's date or study day is unusable), ``_ks_na_<n>`` (score n does
    not apply) and, when merging, ``_ks_copies`` (how many rows the record merges).
    """
    if dialect not in DIALECTS:
        raise SqlError(f"dialect {dialect!r} is not supported; choose one of {', '.join(DIALECTS)}")
    if scale.across_visits:
        raise SqlError(
            f"{scale.id} has rules that compare a rating with an earlier one of the subject "
            f"({', '.join(scale.across_visits)}); a query scores each row on its own and "
            "cannot follow them: score this scale with ketascore score (the record engine)"
        )
    cmap = columns or ColumnMap()
    layout = layout or TableLayout()
    if duplicates and layout.order is None:
        raise SqlError("merging duplicates needs a column that orders the rows")
    for column, kind in layout.kinds.items():
        if kind not in KINDS:
            raise SqlError(f"column {column}: unknown kind {kind!r}; choose one of {KINDS}")
    compiler = _Compiler(scale, cmap, layout, details, row_checks)
    # PostgreSQL inlines each step into the next, its expressions into every use: OFFSET 0
    # keeps the steps apart (else the query's text grows beyond what the planner can hold)
    compiler.fence = " OFFSET 0" if dialect == "postgres" else ""
    text = compiler.query(
        relation or table_name(table), skip_unrated and not row_checks, duplicates
    )
    return CompiledScale(scale.id, dialect, text, _output_columns(scale, layout, details))


def _output_columns(scale: Scale, layout: TableLayout, details: bool) -> list[str]:
    out = csv_columns(scale)
    reserved = {c.casefold() for c in out}
    out += [c for c in layout.carry if c.casefold() not in reserved]
    if details:
        out += ["not_applicable", "issue_items"]
    return out


def scale_sql(scale: Scale, dialect: str = "duckdb", pretty: bool = True, **options: Any) -> str:
    """The SQL text of ``compile_scale(scale, dialect, **options)``."""
    return compile_scale(scale, dialect, **options).sql(pretty=pretty)


class _Compiler:
    def __init__(
        self, scale: Scale, cmap: ColumnMap, layout: TableLayout, details: bool, checks: bool
    ):
        self.scale, self.cmap, self.layout, self.details = scale, cmap, layout, details
        self.checks = checks
        self.fence = ""  # ends each step's SELECT (" OFFSET 0" for PostgreSQL)

    def kind(self, column: str) -> str:
        kind = self.layout.kinds.get(column, "text")
        return "number" if kind in ("integer", "decimal", *NARROW_KINDS) else kind

    def id_sql(self, column: str) -> str:
        """A subject or visit column as the id's text (``values.sql_id``)."""
        return sql_id(quote(column), self.layout.kinds.get(column, "text"))

    def whole(self, column: str) -> bool:
        """The column holds whole numbers only (an integer type)."""
        return self.layout.kinds.get(column) == "integer"

    def item_columns(self) -> dict[str, str]:
        """The column of each item the table has."""
        out = {}
        for item_id in self.scale.items:
            if item_id in self.layout.absent or (
                self.cmap.items and item_id not in self.cmap.items
            ):
                continue  # (a column map names every item the table has)
            out[item_id] = self.cmap.item_column(self.scale, item_id)
        return out

    def query(self, source: str, skip_unrated: bool, duplicates: bool) -> str:
        layout = self.layout
        items = self.item_columns()
        q = _Query(source, self.fence)
        if self.cmap.long is not None:
            return self.long_query(q, items)
        # layer 0: ids, date, day, carried columns and the raw answers ----------------------
        l0 = [
            f"{self.id_sql(self.cmap.subject)} AS _ks_subject",
            f"{self.id_sql(self.cmap.visit)} AS _ks_visit",
            f"{self.date_sql()} AS _ks_date",
            f"{self.day_sql()} AS _ks_day",
        ]
        l0 += [f"{_carried(quote(c), self.kind(c))} AS {quote('_ks_c_' + c)}" for c in layout.carry]
        raw: dict[str, str] = {}
        for n, (item_id, column) in enumerate(items.items()):
            raw[item_id] = f"_ks_a{n}"
            l0.append(f"{quote(column)} AS _ks_a{n}")
        unknown = []
        for n, column in enumerate(layout.unknown_items):
            unknown.append(f"_ks_u{n}")
            l0.append(f"{quote(column)} AS _ks_u{n}")
        if layout.order is not None:
            l0.append(f"{quote(layout.order)} AS _ks_order")
        l0 += [quote(c) for c in layout.internal]
        return self.scored(q, l0, items, raw, unknown, skip_unrated, duplicates)

    def long_query(self, q: _Query, items: dict[str, str]) -> str:
        """A long table pivoted to one row per subject and visit, then scored."""
        from ketascore.core.values import sql_ascii_upper_strip

        assert self.cmap.long is not None
        long, layout, cmap = self.cmap.long, self.layout, self.cmap
        codes = long.codes(self.scale, cmap.items)
        index = {item_id: n for n, item_id in enumerate(items)}
        code = f"translate(trim(CAST({quote(long.item)} AS VARCHAR), {WS_SQL}), "
        code += f"{sql_text(LOWER)}, {sql_text(UPPER)})"
        whens = [
            f"WHEN {sql_text(c)} THEN {index[i]}" for c, i in sorted(codes.items()) if i in index
        ]
        whens += [f"WHEN {sql_text(_ascii_upper(c))} THEN -1" for c in long.scores]
        item = f"(CASE {code} {' '.join(whens)} END)" if whens else "CAST(NULL AS INTEGER)"
        if long.derived is not None:
            derived = f"{sql_ascii_upper_strip(quote(long.derived))} = 'Y'"
            item = f"(CASE WHEN {derived} AND {item} IS NOT NULL THEN -1 ELSE {item} END)"
        kinds = [self.kind(v) for v in long.values]
        if len(long.values) == 1:
            value, kind = quote(long.values[0]), kinds[0]
        else:  # the first answer that is not blank, as text
            firsts = " ".join(
                f"WHEN NOT {self.blank(quote(v), k)} THEN CAST({quote(v)} AS VARCHAR)"
                for v, k in zip(long.values, kinds, strict=True)
            )
            value, kind = f"(CASE {firsts} END)", "text"
        if long.status is not None:
            done = f"{sql_ascii_upper_strip(quote(long.status))} = 'NOT DONE'"
            value = f"(CASE WHEN {done} THEN NULL ELSE {value} END)"
        self.layout = replace(layout, kinds={**layout.kinds, "_ks_value": kind})
        row = quote(layout.order) if layout.order is not None else "CAST(NULL AS BIGINT)"
        first = [
            f"{self.id_sql(cmap.subject)} AS _ks_subject",
            f"{self.id_sql(cmap.visit)} AS _ks_visit",
            f"{item} AS _ks_item",
            f"{value} AS _ks_value",
            f"coalesce({sql_comparable(value, kind)}, '') AS _ks_same",
            f"{self.date_sql()} AS _ks_rdate",
            f"{self.day_sql()} AS _ks_rday",
            f"{row} AS _ks_row",
            *(quote(c) for c in layout.internal),
        ]
        where = "_ks_item IS NOT NULL AND _ks_subject IS NOT NULL AND _ks_visit IS NOT NULL"
        if long.category is not None and long.category_value is not None:
            cat = sql_ascii_upper_strip(quote(long.category))
            want = sql_text(_ascii_upper(long.category_value))
            first.append(f"({cat} = {want} OR {cat} = '' OR {cat} IS NULL) AS _ks_in")
            where = f"{where} AND _ks_in"
        group = "PARTITION BY _ks_subject, _ks_visit"
        per_item = f"{group}, _ks_item"
        second = [
            f"row_number() OVER ({per_item} ORDER BY _ks_row) AS _ks_nth",
            f"(min(_ks_same) OVER ({per_item}) <> max(_ks_same) OVER ({per_item})) AS _ks_differ",
            *(
                f"min(CASE WHEN {c} IS NOT NULL THEN _ks_row END) OVER ({group}) AS _ks_first_{c}"
                for c in ("_ks_rdate", "_ks_rday")
            ),
        ]
        source = q.source
        q.prelude += [
            f"_ks_long AS (SELECT * FROM (SELECT {', '.join(first)} FROM {source}) _ks_l "
            f"WHERE {where}{self.fence})",
            f"_ks_long1 AS (SELECT *, {', '.join(second)} FROM _ks_long{self.fence})",
        ]
        # (with no order column, the first date is the least one)
        picked = {
            c: f"max(CASE WHEN _ks_row = _ks_first_{c} THEN {c} END)"
            if layout.order is not None
            else f"max({c})"
            for c in ("_ks_rdate", "_ks_rday")
        }
        pivot = [
            "_ks_subject",
            "_ks_visit",
            f"{picked['_ks_rdate']} AS _ks_date",
            f"{picked['_ks_rday']} AS _ks_day",
            "min(_ks_row) AS _ks_order",
            *(f"min({quote(c)}) AS {quote(c)}" for c in layout.internal),
            # a row that gives an item again alike (not given otherwise too): the record
            # warns of repeated rows (duplicate-record), as the readers' LongGroups do
            "(max(CASE WHEN _ks_item >= 0 AND _ks_nth > 1 AND NOT _ks_differ THEN 1 ELSE 0 END)"
            " = 1) AS _ks_rep",
        ]
        raw: dict[str, str] = {}
        for n, item_id in enumerate(items):
            raw[item_id] = f"_ks_a{n}"
            pivot.append(
                f"max(CASE WHEN _ks_item = {n} AND _ks_nth = 1 THEN _ks_value END) AS _ks_a{n}"
            )
            pivot.append(
                f"(max(CASE WHEN _ks_item = {n} AND _ks_differ THEN 1 ELSE 0 END) = 1) AS _ks_x{n}"
            )
            self.layout = replace(self.layout, kinds={**self.layout.kinds, f"_ks_a{n}": kind})
        q.prelude.append(
            f"_ks_pivot AS (SELECT {', '.join(pivot)} FROM _ks_long1 "
            f"GROUP BY _ks_subject, _ks_visit{self.fence})"
        )
        q.source = "_ks_pivot"
        l0 = ["_ks_subject", "_ks_visit", "_ks_date", "_ks_day", "_ks_order"]
        l0 += [f"_ks_a{n}" for n in range(len(items))]
        l0 += [f"_ks_x{n}" for n in range(len(items))]
        l0 += ["_ks_rep", *(quote(c) for c in layout.internal)]
        if self.checks:  # (an engine checks a long table's ids, dates and days itself)
            l0 += ["FALSE AS _ks_no_ids", "TRUE AS _ks_no_date", "TRUE AS _ks_no_day"]
        answers = {item_id: f"_ks_a{n}" for n, item_id in enumerate(items)}
        return self.scored(q, l0, answers, raw, [], False, False, pivoted=True)

    def scored(
        self,
        q: _Query,
        l0: list[str],
        items: dict[str, str],
        raw: dict[str, str],
        unknown: list[str],
        skip_unrated: bool,
        duplicates: bool,
        pivoted: bool = False,
    ) -> str:
        """The layers that score the rows of layer 0 (``l0``: ids, date, day, carried
        columns, the raw answers ``raw`` of the items' columns ``items`` and of unknown
        items). ``pivoted``: the rows are a long table's, pivoted (each a record, with
        ``_ks_x<n>`` true where an item was given twice, differently)."""
        scale, layout = self.scale, self.layout
        has_ids = "(_ks_subject IS NOT NULL AND _ks_visit IS NOT NULL)"
        if self.checks and not pivoted:
            # a row without subject or visit is reported unless it is blank throughout
            every = [
                self.cmap.subject,
                self.cmap.visit,
                *(c for c in (layout.date, layout.day) if c is not None),
                *items.values(),
                *layout.unknown_items,
                *layout.carry,
                *layout.others,
            ]
            row_blank = " AND ".join(self.blank(quote(c), self.kind(c)) for c in every)
            ids = [f"({self.id_sql(c)} IS NOT NULL)" for c in (self.cmap.subject, self.cmap.visit)]
            l0 += [
                f"(CASE WHEN {ids[0]} AND {ids[1]} THEN FALSE "
                f"ELSE NOT ({row_blank}) END) AS _ks_no_ids",
                f"{self.blank_raw(layout.date)} AS _ks_no_date",
                f"{self.blank_raw(layout.day)} AS _ks_no_day",
            ]
        q.add(l0)
        # item values, in layers (see values.SqlItem): the plain answers, the others
        # stripped, as numbers and label keys, the value; then why an answer is unusable.
        # The row is a record when it has ids and an answer that is not blank (an unknown
        # item column counts: the reader makes a record of it, and an issue); that is worked
        # out from the raw columns alone, so an engine that pushes the filter below the
        # layers (Spark) substitutes a shallow expression
        layers: dict[str, list[str]] = {k: [] for k in ("fast", "text", "number", "kind", "value")}
        rejections: list[str] = []
        answered: list[tuple[str, str]] = []  # the answer columns and their kinds
        names = ("_ks_f", "_ks_t", "_ks_n", "_ks_k", "_ks_lo", "_ks_c", "_ks_v")
        for n, (item_id, column) in enumerate(items.items()):
            kind = self.kind(column)
            cols = SqlColumns(raw[item_id], *(f"{name}{n}" for name in names))
            reading = sql_item(
                scale.items[item_id], cols, kind, self.cmap.missing_codes, self.whole(column)
            )
            for part, expr, name in (
                ("fast", reading.fast, cols.fast),
                ("text", reading.text, cols.text),
                ("number", reading.number, cols.number),
                ("number", reading.key, cols.key),
                ("number", reading.lower, cols.lower),
                ("kind", reading.kind, cols.kind),
                ("value", reading.value, cols.value),
            ):
                if expr is not None:
                    layers[part].append(f"{expr} AS {name}")
            # the rejection is worked out only where no value came: most rows skip it
            rejection = (
                f"(CASE WHEN {cols.value} IS NOT NULL OR {cols.raw} IS NULL THEN NULL "
                f"ELSE {reading.rejection} END)"
            )
            if pivoted:  # an item given twice, differently, is unusable
                layers["value"][-1] = (
                    f"(CASE WHEN _ks_x{n} THEN NULL ELSE {reading.value} END) AS {cols.value}"
                )
                rejection = f"(CASE WHEN _ks_x{n} THEN 'conflicting-records' ELSE {rejection} END)"
            rejections.append(f"{rejection} AS _ks_r{n}")
            answered.append((raw[item_id], kind))
        answered += [(u, self.kind(c)) for u, c in zip(unknown, layout.unknown_items, strict=True)]
        # (most rows are settled by their first answer's first character)
        quick = " ".join(f"WHEN {self.present(c, k, quick=True)} THEN TRUE" for c, k in answered)
        slow = " OR ".join(self.present(c, k) for c, k in answered) or "FALSE"
        kept = (
            "TRUE" if pivoted else f"(CASE WHEN NOT {has_ids} THEN FALSE {quick} ELSE {slow} END)"
        )
        layers["fast"].append(f"{kept} AS _ks_kept")
        q.add(layers.pop("fast"))
        if skip_unrated:
            q.add([], "_ks_kept")
        if duplicates:  # the first of each subject and visit is scored; the others compared
            self.copies(q, [raw[i] for i in items] + unknown)
        for layer in layers.values():
            if layer:
                q.add(layer)
        if self.checks:
            rejections += [
                f"({has_ids} AND NOT _ks_no_date AND _ks_date IS NULL) AS _ks_bad_date",
                f"({has_ids} AND NOT _ks_no_day AND _ks_day IS NULL) AS _ks_bad_day",
            ]
        q.add(rejections)
        item_ref = {item_id: n for n, item_id in enumerate(items)}
        # each item's value and whether it was rejected (skip logic may change them)
        answer: dict[str, _Value] = {
            i: _Value(f"_ks_v{n}", f"(_ks_r{n} IS NOT NULL)", "1") for i, n in item_ref.items()
        }
        skipped = self.skip_layers(q, answer)
        # slots: items and alternatives -----------------------------------------------------
        values: dict[str, _Value] = {}
        alternatives: list[str] = []  # issue expressions (alternatives-both)
        alt_items: list[str] = []
        l3 = []
        for slot_id, members in scale.slots.items():
            present = [m for m in members if m in answer]
            if len(members) == 1:
                if not present:
                    values[slot_id] = _Value("CAST(NULL AS DOUBLE)", "FALSE", "0")
                    continue
                values[slot_id] = answer[members[0]]
                continue
            k = len(alternatives)
            rejected = _any([answer[m].bad for m in present])
            count = _count([f"{answer[m].value} IS NOT NULL" for m in present])
            both = f"(NOT {rejected} AND {count} > 1)"
            whens = " ".join(
                f"WHEN {answer[m].value} IS NOT NULL THEN {answer[m].value}" for m in present
            )
            value = (
                f"(CASE WHEN {rejected} OR {count} <> 1 THEN NULL {whens} END)"
                if present
                else "CAST(NULL AS DOUBLE)"
            )
            l3.append(f"{value} AS _ks_s{k}")
            l3.append(f"({rejected} OR {both}) AS _ks_sb{k}")
            alternatives.append(f"(CASE WHEN {both} THEN 'alternatives-both' END)")
            firsts = " ".join(
                f"WHEN {answer[m].value} IS NOT NULL THEN {sql_text(m)}" for m in present
            )
            first_rated = f"(CASE {firsts} END)" if present else "NULL"
            alt_items.append(f"(CASE WHEN {both} THEN {first_rated} END)")
            # one answered item when a member holds a usable value (as the record engine)
            any_rated = _any([f"{answer[m].value} IS NOT NULL" for m in present])
            values[slot_id] = _Value(
                f"_ks_s{k}", f"_ks_sb{k}", f"(CASE WHEN {any_rated} THEN 1 ELSE 0 END)"
            )
        if l3:
            q.add(l3)
        # scores, by depth: each depth takes two layers (the terms counted, then the value)
        scores: dict[str, _Value] = {}
        depth: dict[str, int] = {}
        for rule in scale.scores:
            needs = {t.ref for t in rule.terms if t.kind == "score"}
            if rule.applies_when is not None:
                needs.update(rule.applies_when.scores())
            depth[rule.id] = 1 + max((depth[n] for n in needs), default=0)
        for d in sorted(set(depth.values())):
            rules = [r for r in scale.scores if depth[r.id] == d]
            counted, valued = [], []
            for rule in rules:
                first, second, scored = self.score(rule, values, scores)
                counted += first
                valued += second
                scores[rule.id] = scored
            q.add(counted)
            q.add(valued)
        insufficient = [
            f"(CASE WHEN _ks_i_{self.sid(r)} THEN 'insufficient-items' END)" for r in scale.scores
        ]
        not_applicable = [
            f"(CASE WHEN _ks_na_{self.sid(r)} THEN {sql_text(r.id)} END)" for r in scale.scores
        ]

        # flags, classifications, rating checks and issues ----------------------------------
        def ref(cond: ConditionRule) -> _Value:
            return values[cond.ref] if cond.kind == "slot" else scores[cond.ref]

        flags, raised, undetermined, missing_refs, undetermined_items = [], [], [], [], []
        for flag in scale.flags:
            test, missing = _holds(flag.condition, values, scores)
            raised.append(test)
            flags.append(f"(CASE WHEN {test} THEN {sql_text(flag.id)} END)")
            missing_refs.append(missing)
            undetermined.append(f"(CASE WHEN {missing} THEN 'flag-undetermined' END)")
            item = sql_text(flag.condition.ref) if flag.condition.kind == "slot" else "''"
            undetermined_items.append(f"(CASE WHEN {missing} THEN {item} END)")
        classes = []
        for cls in scale.classifications:
            if cls.condition.kind in ("slot", "score"):
                v = ref(cls.condition)
                value = (
                    f"(CASE WHEN {v.value} IS NULL THEN NULL "
                    f"ELSE {_test(cls.condition, v.value)} END)"
                )
            else:
                code = _code(cls.condition, values, scores)
                value = f"(CASE {code} WHEN 3 THEN TRUE WHEN 0 THEN FALSE END)"
            classes.append(f"{value} AS {quote(cls.id)}")
        checks, check_items, check_raised = [], [], []
        for check in scale.checks:
            test, _ = _holds(check.condition, values, scores)
            check_raised.append(test)
            checks.append(f"(CASE WHEN {test} THEN 'rating-check' END)")
            item = sql_text(check.item) if check.item is not None else "''"
            check_items.append(f"(CASE WHEN {test} THEN {item} END)")
        issues = [
            *("'unknown-item'" for _ in unknown),
            *(f"_ks_r{item_ref[i]}" for i in items),
            *(f"(CASE WHEN {x} THEN 'skip-inconsistent' END)" for _, x in skipped),
            *alternatives,
            *insufficient,
            *undetermined,
            *checks,
            *(["(CASE WHEN _ks_rep THEN 'duplicate-record' END)"] if pivoted else []),
        ]
        issue_items = [
            *(sql_text(c[len(scale.id) + 1 :]) for c in layout.unknown_items),
            *(f"(CASE WHEN _ks_r{item_ref[i]} IS NOT NULL THEN {sql_text(i)} END)" for i in items),
            *(f"(CASE WHEN {x} THEN {sql_text(i)} END)" for i, x in skipped),
            *alt_items,
            *(f"(CASE WHEN _ks_i_{self.sid(r)} THEN '' END)" for r in scale.scores),
            *undetermined_items,
            *check_items,
            *(["(CASE WHEN _ks_rep THEN '' END)"] if pivoted else []),
        ]
        # most rows have no issue and no flag: their text is made only where there is one
        any_issue = _any(
            [
                *(["TRUE"] if unknown else []),
                *(f"_ks_r{item_ref[i]} IS NOT NULL" for i in items),
                *(x for _, x in skipped),
                *(f"_ks_sb{k}" for k in range(len(alternatives))),
                *(f"_ks_i_{self.sid(r)}" for r in scale.scores),
                *missing_refs,
                *check_raised,
                *(["_ks_rep"] if pivoted else []),
            ]
        )
        issues_text = (
            f"(CASE WHEN {any_issue} THEN nullif({_join(issues)}, '') END)"
            if issues
            else "CAST(NULL AS VARCHAR)"
        )
        if len(flags) == 1:
            flags_text = flags[0]
        elif flags:
            flags_text = f"(CASE WHEN {_any(raised)} THEN {_join(flags)} END)"
        else:
            flags_text = "CAST(NULL AS VARCHAR)"
        final = [
            "_ks_subject AS subject",
            "_ks_visit AS visit",
            "_ks_date AS date",
            "_ks_day AS day",
            f"{sql_text(scale.id)} AS scale",
            f"{sql_text(scale.version)} AS scale_version",
        ]
        for rule in scale.scores:
            sid = self.sid(rule)
            final += [
                f"_ks_x_{sid} AS {quote(rule.id)}",
                f"{self.band(rule, f'_ks_x_{sid}')} AS {quote(rule.id + '_band')}",
                f"_ks_n_{sid} AS {quote(rule.id + '_items_answered')}",
                f"_ks_p_{sid} AS {quote(rule.id + '_prorated')}",
            ]
        final += classes
        final.append(f"{flags_text} AS flags")
        final.append(f"{issues_text} AS issues")
        reserved = {c.casefold() for c in csv_columns(scale)}
        final += [
            f"{quote('_ks_c_' + c)} AS {quote(c)}"
            for c in layout.carry
            if c.casefold() not in reserved
        ]
        if self.details:
            final.append(f"{_join(not_applicable)} AS not_applicable")
            final.append(
                f"CASE WHEN {any_issue} THEN {_join(self.paired(issues, issue_items))} "
                "ELSE '' END AS issue_items"
            )
        if self.checks:
            final += ["_ks_kept", "_ks_no_ids", "_ks_bad_date", "_ks_bad_day"]
            final += [f"_ks_na_{self.sid(r)}" for r in scale.scores]
        final += list(layout.internal)
        if pivoted:
            order = "_ks_order" if self.layout.order is not None else None
            return q.text(final, order=order)
        if not duplicates:
            return q.text(final)
        final.append("_ks_order")
        return self.merged(q, final)

    def skip_layers(self, q: _Query, answer: dict[str, _Value]) -> list[tuple[str, str]]:
        """The skip logic (``scale.skips``, in order): each rule's condition, then the items
        it skips, as the record engine settles them (a blank one takes ``counts_as``, another
        answer contradicts the skip). ``answer`` is updated; returns each skipped item with
        the column that says it contradicts its rule."""
        out: list[tuple[str, str]] = []
        for k, skip in enumerate(self.scale.skips):
            read = {i: answer.get(i, _Value(_NOTHING, "FALSE", "0")) for i in self.scale.items}
            q.add([f"{_code(skip.condition, read, {})} AS _ks_g{k}"])
            layer = []
            for j, item_id in enumerate(skip.items):
                v = read[item_id]
                wrong = f"(_ks_g{k} = 3 AND NOT {v.bad} AND {v.value} IS NOT NULL"
                if skip.counts_as is None:
                    value = f"(CASE WHEN _ks_g{k} = 3 THEN {_NOTHING} ELSE {v.value} END)"
                    wrong += ")"
                else:
                    c = sql_number(skip.counts_as)
                    value = (
                        f"(CASE WHEN _ks_g{k} <> 3 THEN {v.value} WHEN {v.bad} THEN NULL "
                        f"WHEN {v.value} IS NULL THEN {c} WHEN {v.value} = {c} THEN {v.value} END)"
                    )
                    wrong += f" AND {v.value} <> {c})"
                layer += [f"{value} AS _ks_q{k}_{j}", f"{wrong} AS _ks_x{k}_{j}"]
                answer[item_id] = _Value(f"_ks_q{k}_{j}", f"({v.bad} OR _ks_x{k}_{j})", "1")
                out.append((item_id, f"_ks_x{k}_{j}"))
            q.add(layer)
        return out

    def paired(self, issues: list[str], items: list[str]) -> list[str]:
        """The item of each issue that is there (so the lists line up)."""
        return [
            f"(CASE WHEN {i} IS NOT NULL THEN coalesce({it}, '') END)"
            for i, it in zip(issues, items, strict=True)
        ]

    def sid(self, rule: ScoreRule) -> str:
        return str([r.id for r in self.scale.scores].index(rule.id))

    def blank_raw(self, column: str | None) -> str:
        if column is None:
            return "TRUE"
        return self.blank(quote(column), self.kind(column))

    def present(self, column: str, kind: str, quick: bool = False) -> str:
        """The column is not blank (``quick``: its first character is visible, which
        settles most texts; NULL or FALSE otherwise). NaN in a number column is blank, as
        the readers of tables take it."""
        if kind == "number":  # (as a double: an integer's least value has no negation)
            return f"({column} IS NOT NULL AND NOT {sql_is_nan(f'CAST({column} AS DOUBLE)')})"
        if kind != "text":
            return f"({column} IS NOT NULL)"
        text = f"CAST({column} AS VARCHAR)"
        if quick:
            return f"(ascii({text}) > 32)"
        return (
            f"(CASE WHEN ascii({text}) > 32 THEN TRUE WHEN {column} IS NULL THEN FALSE "
            f"ELSE trim({text}, {WS_SQL}) <> '' END)"
        )

    def blank(self, column: str, kind: str) -> str:
        if kind == "number":  # (NaN is blank, as in ``present``)
            return f"({column} IS NULL OR {sql_is_nan(f'CAST({column} AS DOUBLE)')})"
        if kind != "text":
            return f"({column} IS NULL)"
        text = f"CAST({column} AS VARCHAR)"
        # a text that starts with a visible character is not blank: most need no trimming
        return (
            f"({column} IS NULL OR (CASE WHEN ascii({text}) > 32 THEN FALSE "
            f"ELSE trim({text}, {WS_SQL}) = '' END))"
        )

    def date_sql(self) -> str:
        from ketascore.core.values import sql_date

        column = self.layout.date
        if column is None:
            return "CAST(NULL AS VARCHAR)"
        return sql_date(quote(column), self.kind(column))

    def day_sql(self) -> str:
        from ketascore.core.values import sql_day

        column = self.layout.day
        if column is None:
            return "CAST(NULL AS DOUBLE)"
        return sql_day(quote(column), self.kind(column))

    def term(self, term: TermRule, v: _Value) -> str:
        value = v.value
        if term.recode is not None:
            value = (
                f"(CASE {value} "
                + " ".join(
                    f"WHEN {sql_number(a)} THEN {sql_number(b)}" for a, b in term.recode.items()
                )
                + " END)"
            )
        if term.reverse is not None:
            value = f"({sql_number(term.reverse[0] + term.reverse[1])} - {value})"
        if term.weight != 1:
            value = f"({value} * {sql_number(term.weight)})"
        return value

    def score(
        self, rule: ScoreRule, values: dict[str, _Value], scores: dict[str, _Value]
    ) -> tuple[list[str], list[str], _Value]:
        """A score's columns: the first layer counts its terms, the second gives its value,
        items answered, prorating, unusability, shortfall and applicability."""
        sid = self.sid(rule)
        refs = [values[t.ref] if t.kind == "slot" else scores[t.ref] for t in rule.terms]
        parts = [self.term(t, v) for t, v in zip(rule.terms, refs, strict=True)]
        slots = [v for t, v in zip(rule.terms, refs, strict=True) if t.kind == "slot"]
        # a value counts 1 when there (an item or alternative) or its own items answered
        # (a score); most scores count items only, and then items answered is the count
        counted = [f"CAST({v.value} IS NOT NULL AS INTEGER)" for v in refs]
        own = all(v.leaves == "1" for v in refs)
        # every answered item counts, whatever became of the rest (a sub-score's own count)
        leaves = " + ".join(
            c if v.leaves == "1" else v.leaves for c, v in zip(counted, refs, strict=True)
        )
        blocked, gate_bad, not_applicable = "FALSE", "FALSE", "FALSE"
        if rule.applies_when is not None and rule.applies_when.kind in ("slot", "score"):
            cond = rule.applies_when
            gate = values[cond.ref] if cond.kind == "slot" else scores[cond.ref]
            blocked = f"({gate.value} IS NULL OR NOT {_test(cond, gate.value)})"
            gate_bad = gate.bad
            not_applicable = f"({gate.value} IS NOT NULL AND NOT {_test(cond, gate.value)})"
        elif rule.applies_when is not None:
            code = _code(rule.applies_when, values, scores)
            blocked, gate_bad, not_applicable = f"({code} <> 3)", f"({code} = 1)", f"({code} = 0)"
        first = [
            f"({' + '.join(counted) or '0'}) AS _ks_k_{sid}",
            f"{_any([v.bad for v in refs])} AS _ks_bad_{sid}",
            *([] if own else [f"({leaves}) AS _ks_l_{sid}"]),
            f"{blocked} AS _ks_blk_{sid}",
            f"{gate_bad} AS _ks_gb_{sid}",
            f"{not_applicable} AS _ks_na_{sid}",
        ]
        value, prorated = sql_score_value(
            rule, SqlParts(parts, f"_ks_k_{sid}", [t.hi for t in rule.terms])
        )
        none = f"(_ks_blk_{sid} OR _ks_bad_{sid} OR _ks_k_{sid} < {rule.required})"
        # too few items, and some missing (not unusable): worked out only for those rows
        missing = _count([f"({v.value} IS NULL AND NOT {v.bad})" for v in slots])
        short = (
            f"(CASE WHEN _ks_blk_{sid} OR _ks_bad_{sid} OR _ks_k_{sid} >= {rule.required} "
            f"THEN FALSE ELSE {missing} > 0 END)"
        )
        second = [
            f"(CASE WHEN {none} THEN NULL ELSE {value} END) AS _ks_x_{sid}",
            f"(CASE WHEN _ks_blk_{sid} THEN 0 ELSE _ks_{'k' if own else 'l'}_{sid} END) "
            f"AS _ks_n_{sid}",
            f"(CASE WHEN {none} THEN FALSE ELSE {prorated} END) AS _ks_p_{sid}",
            f"(CASE WHEN _ks_blk_{sid} THEN _ks_gb_{sid} ELSE _ks_bad_{sid} END) AS _ks_b_{sid}",
            f"{short} AS _ks_i_{sid}",
        ]
        return first, second, _Value(f"_ks_x_{sid}", f"_ks_b_{sid}", f"_ks_n_{sid}")

    def band(self, rule: ScoreRule, value: str) -> str:
        if not rule.bands:
            return "CAST(NULL AS VARCHAR)"
        whens = " ".join(
            f"WHEN {value} >= {sql_number(b.min)} THEN {sql_text(b.label)}"
            for b in reversed(rule.bands)
        )
        return f"(CASE {whens} END)"

    def copies(self, q: _Query, answer_columns: list[str]) -> None:
        """Rows of one subject and visit, compared as the record engine compares records
        (before they are scored: the comparison reads the raw answers): how many there are
        (``_ks_copies``), whether they differ (``_ks_conflict``); only the first of each is
        kept (and, with row checks, every row that makes no record)."""
        window = "PARTITION BY _ks_subject, _ks_visit"
        if self.checks:  # rows that make no record are not copies of one
            window = "PARTITION BY _ks_kept, _ks_subject, _ks_visit"
        q.add(
            [
                f"count(*) OVER ({window}) AS _ks_copies",
                f"row_number() OVER ({window} ORDER BY _ks_order) AS _ks_nth",
            ]
        )
        # the copies differ when their answers, each as comparable text (NULL: missing)
        # and all of them in one text, differ; worked out only where there are copies
        # (most rows have none), each answer prefixed by its length (or '-' when missing)
        # so that no two lists of answers make the same text
        if answer_columns:
            q.add(
                [
                    f"(CASE WHEN _ks_copies > 1 THEN {sql_comparable(c, self.kind_of_answer(c))} "
                    f"END) AS _ks_cmp{n}"
                    for n, c in enumerate(answer_columns)
                ]
            )
        answers = (
            " || ',' || ".join(
                f"coalesce(CAST(length(_ks_cmp{n}) AS VARCHAR) || ':' || _ks_cmp{n}, '-')"
                for n in range(len(answer_columns))
            )
            or "''"
        )
        q.add([f"(CASE WHEN _ks_copies > 1 THEN {answers} END) AS _ks_answers"])
        differ = f"min(_ks_answers) OVER ({window}) <> max(_ks_answers) OVER ({window})"
        q.add([f"coalesce({differ}, FALSE) AS _ks_conflict"])
        q.add([], "_ks_nth = 1 OR NOT _ks_kept" if self.checks else "_ks_nth = 1")

    def merged(self, q: _Query, final: list[str]) -> str:
        """The first row of each subject and visit as the merged record's result."""
        scale = self.scale
        empty = {}
        for rule in scale.scores:
            empty[quote(rule.id)] = "CAST(NULL AS DOUBLE)"
            empty[quote(rule.id + "_band")] = "CAST(NULL AS VARCHAR)"
            empty[quote(rule.id + "_items_answered")] = "0"
            empty[quote(rule.id + "_prorated")] = "FALSE"
        for cls in scale.classifications:
            empty[quote(cls.id)] = "CAST(NULL AS BOOLEAN)"
        for rule in scale.scores:
            empty[f"_ks_na_{self.sid(rule)}"] = "FALSE"
        empty["flags"] = "CAST(NULL AS VARCHAR)"
        out = []
        for column in final:
            expr, _, name = column.rpartition(" AS ")
            if not _:
                expr = name = column
            if name == "issues":
                expr = (
                    "(CASE WHEN _ks_conflict THEN 'conflicting-records' WHEN _ks_copies > 1 "
                    f"THEN {_join([expr, sql_text('duplicate-record')])} ELSE {expr} END)"
                )
            elif name == "not_applicable":
                expr = f"(CASE WHEN _ks_conflict THEN '' ELSE {expr} END)"
            elif name == "issue_items":
                expr = (
                    "(CASE WHEN _ks_conflict THEN '' WHEN _ks_copies > 1 THEN "
                    f"{_join([expr, sql_text('')])} ELSE {expr} END)"
                )
            elif name in empty:
                expr = f"(CASE WHEN _ks_conflict THEN {empty[name]} ELSE {expr} END)"
            out.append(f"{expr} AS {name}")
        if self.checks:
            out.append("_ks_copies")
            return q.text(out, order="_ks_order")
        return q.text(out[:-1], order="_ks_order")

    def kind_of_answer(self, internal: str) -> str:
        items = self.item_columns()
        if internal.startswith("_ks_a"):
            column = list(items.values())[int(internal[5:])]
        else:
            column = self.layout.unknown_items[int(internal[5:])]
        return self.kind(column)
