"""Columnar scoring: a scale applied to whole columns of answers at once.

The record engine (``ketascore.engines.record.score_record``) scores one record at a time in Python.
This module scores a table of records column by column with numpy and gives exactly the same
results: scores, bands, items answered, prorated, flags, classifications, not applicable and
issues (same codes, same messages).

How it stays exact:

* Each item column is dictionary-encoded (``RawColumn``: one code per row and the distinct raw
  values). ``engine.parse_value`` runs once per distinct value, so numbers, answer labels,
  codes, missing codes, sentinels and every rejection are decided by the record engine's own
  function; the rows only look the verdicts up.
* Rows that need a message the columnar code does not write itself (an unusable value, two
  alternatives rated, an unknown item column) are scored by ``score_record`` on the row's own
  record, so their results are the record engine's by construction. Rows whose only issues
  are the formulaic ones (too few items answered, a flag that cannot be determined) stay
  columnar; their issues are built when asked for.
* Sums are vectorised only where floating point is exact (whole parts well below 2**53);
  other rows are summed by Python's ``sum`` in the record engine's order.

numpy is imported here only: the command line imports this module only for tabular input.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import ConditionRule, Scale, ScoreRule
from ketascore.core.values import MISSING, Num, Rejection, clean_number, parse_value
from ketascore.engines.record import insufficient_items, score_record

EXACT_LIMIT = float(2**40)  # whole numbers below this stay exact in float64 arithmetic

# per-value states in the lookup tables
VALUE, ABSENT, REJECTED = 0, 1, 2


# --------------------------------------------------------------------------------------
# Dictionary-encoded raw values


@dataclass
class RawColumn:
    """One item's raw answers: ``uniques[codes[i]]`` is row i's value as written."""

    codes: np.ndarray
    uniques: list[Any]

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def value(self, row: int) -> Any:
        return self.uniques[int(self.codes[row])]

    @classmethod
    def from_values(cls, values: Iterable[Any]) -> RawColumn:
        """Encode any values; equal values of different types stay apart (1, 1.0, True)."""
        table: dict[Any, int] = {}
        uniques: list[Any] = []
        codes: list[int] = []
        for value in values:
            try:
                key: Any = (type(value), value)
                code = table.get(key)
            except TypeError:  # unhashable (a list or mapping where a value belongs)
                key = ("id", id(value))
                code = table.get(key)
            if code is None:
                code = table[key] = len(uniques)
                uniques.append(value)
            codes.append(code)
        return cls(np.asarray(codes, dtype=np.int64), uniques)


@dataclass
class _ItemState:
    value: np.ndarray  # float64, 0 where not a value
    state: np.ndarray  # int8: VALUE, ABSENT, REJECTED


def _parse_column(
    scale: Scale, item_id: str, column: RawColumn, extra_missing: frozenset[Any]
) -> tuple[_ItemState, list[Any]]:
    rule = scale.items[item_id]
    size = len(column.uniques)
    used = np.flatnonzero(np.bincount(column.codes, minlength=size))
    lut_value = np.zeros(size, dtype=np.float64)
    lut_state = np.full(size, ABSENT, dtype=np.int8)
    verdicts: list[Any] = [None] * size
    for code in used.tolist():
        parsed = parse_value(rule, column.uniques[code], extra_missing)
        verdicts[code] = parsed
        if isinstance(parsed, Rejection):
            lut_state[code] = REJECTED
        elif parsed is not MISSING:
            lut_state[code] = VALUE
            lut_value[code] = parsed
    if rule.whole and rule.lo >= -128 and rule.hi <= 127:  # small whole numbers: int8
        return _ItemState(
            lut_value.astype(np.int8)[column.codes], lut_state[column.codes]
        ), verdicts
    return _ItemState(lut_value[column.codes], lut_state[column.codes]), verdicts


# --------------------------------------------------------------------------------------
# Rows: what the columnar engine needs to know about each record besides its answers


class Rows:
    """Per-row context of a table of records. Subclasses read it from a CSV buffer or a
    dataframe; this default holds Python lists."""

    def __init__(
        self,
        subjects: Sequence[str],
        visits: Sequence[str],
        *,
        dates: Sequence[str | None] | None = None,
        days: Sequence[Num | None] | None = None,
        extras: Sequence[dict[str, Any]] | None = None,
        sources: Sequence[Source] | None = None,
    ):
        self.n = len(subjects)
        self._subjects = subjects
        self._visits = visits
        self._dates = dates
        self._days = days
        self._extras = extras
        self._sources = sources

    def subject(self, i: int) -> str:
        return self._subjects[i]

    def visit(self, i: int) -> str:
        return self._visits[i]

    def date(self, i: int) -> str | None:
        return self._dates[i] if self._dates is not None else None

    def day(self, i: int) -> Num | None:
        return self._days[i] if self._days is not None else None

    def extra(self, i: int) -> dict[str, Any]:
        return dict(self._extras[i]) if self._extras is not None else {}

    def source(self, i: int) -> Source:
        return self._sources[i] if self._sources is not None else Source()

    def line_of(self, i: int, item: str | None) -> int | None:
        return self.source(i).line


# --------------------------------------------------------------------------------------
# Results


@dataclass
class ScoreColumns:
    value: np.ndarray  # float64, NaN = no score
    band: np.ndarray  # int16, -1 = no band
    answered: np.ndarray  # int64
    prorated: np.ndarray  # bool
    not_applicable: np.ndarray  # bool
    insufficient: np.ndarray  # bool: an insufficient-items issue
    parts: np.ndarray  # int64: terms answered (for the issue message)


@dataclass
class ScoredTable:
    """The scores of a table of records of one scale, one entry per row.

    ``overrides`` holds the rows scored by the record engine (their results are complete
    ScoreResult objects); every other row is described by the columns.
    """

    scale: Scale
    rows: Rows
    item_keys: dict[str, str]  # item id -> the key the input used for it
    items: dict[str, _ItemState]
    scores: dict[str, ScoreColumns]
    flags: dict[str, np.ndarray]  # bool: flag raised
    undetermined: dict[str, np.ndarray]  # bool: flag-undetermined issue
    classes: dict[str, np.ndarray]  # int8: -1 None, 0 False, 1 True
    overrides: dict[int, ScoreResult] = field(default_factory=dict)
    dropped: np.ndarray | None = None  # rows merged into an earlier duplicate

    @property
    def n(self) -> int:
        return self.rows.n

    def kept(self) -> np.ndarray:
        """Indices of the rows that give a result (duplicates merged into the first)."""
        if self.dropped is None:
            return np.arange(self.n)
        return np.flatnonzero(~self.dropped)

    # -- one row as a ScoreResult ----------------------------------------------------

    def result_at(self, i: int) -> ScoreResult:
        """Row ``i`` as the record engine's ScoreResult (same fields, same issues)."""
        if i in self.overrides:
            return self.overrides[i]
        scale, rows = self.scale, self.rows
        result = ScoreResult(
            subject=rows.subject(i),
            visit=rows.visit(i),
            scale=scale.id,
            scale_version=scale.version,
            date=rows.date(i),
            day=rows.day(i),
            source=rows.source(i),
            extra=rows.extra(i),
        )
        for item_id, st in self.items.items():
            result.items[item_id] = (
                clean_number(float(st.value[i])) if st.state[i] == VALUE else None
            )
        for rule in scale.scores:
            cols = self.scores[rule.id]
            v = cols.value[i]
            result.scores[rule.id] = None if math.isnan(v) else clean_number(float(v))
            b = int(cols.band[i])
            result.bands[rule.id] = rule.bands[b].label if b >= 0 else None
            result.items_answered[rule.id] = int(cols.answered[i])
            result.prorated[rule.id] = bool(cols.prorated[i])
            if cols.not_applicable[i]:
                result.not_applicable.append(rule.id)
        result.issues.extend(self.issues_at(i))
        for flag in scale.flags:
            if self.flags[flag.id][i]:
                result.flags.append(flag.id)
        for cls in scale.classifications:
            c = int(self.classes[cls.id][i])
            result.classifications[cls.id] = None if c < 0 else bool(c)
        return result

    def issues_at(self, i: int) -> list[Issue]:
        if i in self.overrides:
            return list(self.overrides[i].issues)
        scale, rows = self.scale, self.rows
        out: list[Issue] = []
        common: dict[str, Any] = {
            "file": rows.source(i).file,
            "subject": rows.subject(i),
            "visit": rows.visit(i),
            "scale": scale.id,
        }
        for rule in scale.scores:
            cols = self.scores[rule.id]
            if cols.insufficient[i]:
                variant, params = insufficient_items(scale, rule, int(cols.parts[i]))
                out.append(
                    make_issue(
                        "insufficient-items",
                        variant,
                        line=rows.line_of(i, None),
                        **common,
                        **params,
                    )
                )
        for flag in scale.flags:
            if self.undetermined[flag.id][i]:
                item = flag.condition.ref if flag.condition.kind == "slot" else None
                out.append(
                    make_issue(
                        "flag-undetermined",
                        line=rows.line_of(i, item) if item is not None else rows.line_of(i, None),
                        item=item,
                        flag=flag.id,
                        condition=flag.condition.describe(),
                        **common,
                    )
                )
        return out

    def results(self) -> Iterator[ScoreResult]:
        for i in self.kept().tolist():
            yield self.result_at(i)

    # -- whole-table facts ---------------------------------------------------------

    def issue_signature(self) -> tuple[np.ndarray, list[list[str]]]:
        """Per row an index into a list of issue-code lists (the codes in order), for the
        rows the columns describe; override rows get index -1."""
        events: list[tuple[np.ndarray, str]] = []
        for rule in self.scale.scores:
            events.append((self.scores[rule.id].insufficient, "insufficient-items"))
        for flag in self.scale.flags:
            events.append((self.undetermined[flag.id], "flag-undetermined"))
        n = self.n
        key = np.zeros(n, dtype=np.int64)
        for j, (mask, _) in enumerate(events[:62]):
            key |= mask.astype(np.int64) << j
        if len(events) <= 20:
            seen = np.bincount(key, minlength=1 << len(events)) > 0
            uniq = np.flatnonzero(seen)
            sig = (np.cumsum(seen) - 1)[key]
        else:  # pragma: no cover - a scale with more than 20 scores and flags
            uniq, sig = np.unique(key, return_inverse=True)
            sig = sig.reshape(-1)
        tables = [
            [code for j, (_, code) in enumerate(events) if (int(u) >> j) & 1] for u in uniq.tolist()
        ]
        for i in self.overrides:
            sig[i] = -1
        return sig, tables

    def problem_rows(self) -> np.ndarray:
        """Rows whose result has an error issue."""
        bad = np.zeros(self.n, dtype=bool)
        for cols in self.scores.values():
            bad |= cols.insufficient
        for i, result in self.overrides.items():
            bad[i] = not result.ok
        return bad

    def scored_rows(self) -> np.ndarray:
        """Rows with at least one score."""
        any_score = np.zeros(self.n, dtype=bool)
        for cols in self.scores.values():
            any_score |= ~np.isnan(cols.value)
        for i, result in self.overrides.items():
            any_score[i] = any(v is not None for v in result.scores.values())
        return any_score


# --------------------------------------------------------------------------------------
# The engine


def _term_exact(scale: Scale, term: Any, nterms: int) -> bool:
    """Whether a term's values are whole and small, so float sums of them are exact."""
    if term.kind != "slot":
        return False
    values = [v for m in scale.slots[term.ref] for v in scale.items[m].allowed_values()]
    if term.recode is not None:
        values = list(term.recode.values())
    whole = all(float(v).is_integer() for v in values) and float(term.weight).is_integer()
    bound = max(abs(term.lo), abs(term.hi)) * max(nterms, 1)
    return whole and bound < EXACT_LIMIT


def _test(cond: ConditionRule, value: np.ndarray) -> np.ndarray:
    if value.dtype != np.float64:
        value = value.astype(np.float64)
    t = cond.threshold
    if cond.op == "at_least":
        return np.asarray(value >= t)
    if cond.op == "at_most":
        return np.asarray(value <= t)
    if cond.op == "above":
        return np.asarray(value > t)
    if cond.op == "below":
        return np.asarray(value < t)
    return np.asarray(value == t)


@dataclass
class _Slot:
    value: np.ndarray
    present: np.ndarray  # bool
    leaves: np.ndarray  # int64


def score_table(
    scale: Scale,
    rows: Rows,
    columns: dict[str, RawColumn],
    *,
    record_at: Callable[[int], AnswerRecord],
    extra_missing: Iterable[Any] = (),
) -> ScoredTable:
    """Score a table of records of one scale.

    ``columns`` maps the item keys as the input names them (``"3"``, ``"16a"``) to their raw
    answers, one per row (a key present in ``columns`` is present in every row's record).
    ``record_at(i)`` builds row i's AnswerRecord; it is called only for rows that need the
    record engine.
    """
    n = rows.n
    extra = frozenset(extra_missing)
    complex_rows = np.zeros(n, dtype=bool)
    whole_table_complex = False

    # item columns ----------------------------------------------------------------
    item_keys: dict[str, str] = {}
    for key in columns:
        item_id = scale.item_lookup.get(str(key).casefold())
        if item_id is None or item_id in item_keys:
            whole_table_complex = True  # unknown-item or bad-record for every row
            continue
        item_keys[item_id] = str(key)
    absent = RawColumn(np.zeros(n, dtype=np.int64), [None])
    items: dict[str, _ItemState] = {}
    for item_id in scale.items:
        given = item_keys.get(item_id)
        column = columns[given] if given is not None else absent
        state, _ = _parse_column(scale, item_id, column, extra)
        items[item_id] = state
        complex_rows |= state.state == REJECTED

    # slots -----------------------------------------------------------------------
    slots: dict[str, _Slot] = {}
    for slot_id, members in scale.slots.items():
        if len(members) == 1:
            st = items[members[0]]
            present = st.state == VALUE
            slots[slot_id] = _Slot(st.value, present, present)
            continue
        rated = np.zeros(n, dtype=np.int64)
        value = np.zeros(n, dtype=np.float64)
        chosen = np.zeros(n, dtype=bool)
        for m in members:
            st = items[m]
            here = st.state == VALUE
            rated += here
            take = here & ~chosen
            value = np.where(take, st.value, value)
            chosen |= here
        complex_rows |= rated > 1  # alternatives-both
        present = rated == 1
        slots[slot_id] = _Slot(value, present, present)

    # scores ----------------------------------------------------------------------
    computed: dict[str, _Slot] = {}
    score_cols: dict[str, ScoreColumns] = {}
    python_rows: dict[str, np.ndarray] = {}

    def cond_state(cond: ConditionRule) -> _Slot:
        return slots[cond.ref] if cond.kind == "slot" else computed[cond.ref]

    for rule in scale.scores:
        nterms = len(rule.terms)
        gate_na = np.zeros(n, dtype=bool)
        applies = np.ones(n, dtype=bool)
        if rule.applies_when is not None:
            g = cond_state(rule.applies_when)
            passes = g.present & _test(rule.applies_when, g.value)
            applies = passes
            gate_na = g.present & ~passes
        acc = np.zeros(n, dtype=np.float64)
        k = np.zeros(n, dtype=np.int64)
        leaves = np.zeros(n, dtype=np.int64)
        missing_items = np.zeros(n, dtype=np.int64)
        answered_hi = np.zeros(n, dtype=np.float64)
        best = np.full(n, np.nan)
        inexact = np.zeros(n, dtype=bool)
        check_total = False
        for term in rule.terms:
            src = slots[term.ref] if term.kind == "slot" else computed[term.ref]
            v = src.value
            transformed = term.recode is not None or term.reverse is not None or term.weight != 1
            if transformed:
                v = v.astype(np.float64)
            if term.recode is not None:
                mapped = v.copy()
                for old, new in term.recode.items():
                    mapped[v == old] = new
                v = mapped
            if term.reverse is not None:
                v = (term.reverse[0] + term.reverse[1]) - v
            if term.weight != 1:
                v = v * term.weight
            p = src.present
            if term.kind == "slot":
                missing_items += ~p
                leaves += p
            else:
                leaves += src.leaves
            k += p
            if rule.method in ("sum", "mean"):
                if transformed:
                    acc += np.where(p, v, 0.0)
                else:
                    acc += v  # zero where there is no value
                if not _term_exact(scale, term, nterms):
                    inexact |= p & ((v != np.floor(v)) | (np.abs(v) > EXACT_LIMIT))
                    check_total = True
                if rule.prorate == "prorate_max":
                    answered_hi += np.where(p, float(term.hi), 0.0)
            elif rule.method == "max":
                best = np.where(p, np.fmax(best, v), best)
            else:
                best = np.where(p, np.fmin(best, v), best)
        if check_total:
            inexact |= np.abs(acc) > EXACT_LIMIT
        enough = applies & (k >= rule.required)
        insufficient = applies & ~enough & (missing_items > 0)
        total = np.full(n, np.nan)
        prorated = np.zeros(n, dtype=bool)
        if rule.method == "sum":
            total = acc.copy()
            short = k < nterms
            if rule.prorate == "prorate_mean":
                with np.errstate(divide="ignore", invalid="ignore"):
                    total = np.where(short, total * nterms / k, total)
            elif rule.prorate == "prorate_max":
                all_max = sum(t.hi for t in rule.terms)
                with np.errstate(divide="ignore", invalid="ignore"):
                    total = np.where(short, total * all_max / answered_hi, total)
            prorated = short
        elif rule.method == "mean":
            with np.errstate(divide="ignore", invalid="ignore"):
                total = acc / k
            prorated = k < nterms
        else:
            total = best
        if rule.rounding.method != "none":
            do_round = prorated | (rule.method == "mean")
            total = np.where(do_round, _round(total, rule), total)
        prorated = prorated & enough
        total = np.where(enough, total, np.nan)
        band = np.full(n, -1, dtype=np.int16)
        for j, b in enumerate(rule.bands):
            band = np.where(enough & (total >= b.min), j, band).astype(np.int16)
        cols = ScoreColumns(
            value=total,
            band=band,
            answered=np.where(applies, leaves, 0),
            prorated=prorated,
            not_applicable=gate_na,
            insufficient=insufficient,
            parts=k,
        )
        score_cols[rule.id] = cols
        if rule.method in ("sum", "mean"):
            python_rows[rule.id] = enough & inexact
        computed[rule.id] = _Slot(np.where(enough, total, 0.0), enough, np.where(enough, leaves, 0))

    # flags and classifications ------------------------------------------------------
    flags: dict[str, np.ndarray] = {}
    undetermined: dict[str, np.ndarray] = {}
    for flag in scale.flags:
        cs = cond_state(flag.condition)
        flags[flag.id] = cs.present & _test(flag.condition, cs.value)
        undetermined[flag.id] = ~cs.present
    classes: dict[str, np.ndarray] = {}
    for cls in scale.classifications:
        cs = cond_state(cls.condition)
        classes[cls.id] = np.where(
            cs.present, _test(cls.condition, cs.value).astype(np.int8), np.int8(-1)
        ).astype(np.int8)

    table = ScoredTable(
        scale=scale,
        rows=rows,
        item_keys=item_keys,
        items=items,
        scores=score_cols,
        flags=flags,
        undetermined=undetermined,
        classes=classes,
    )
    # rows the record engine scores: messages the columns do not write, inexact sums
    if whole_table_complex:
        complex_rows[:] = True
    for mask in python_rows.values():
        complex_rows |= mask
    for i in np.flatnonzero(complex_rows).tolist():
        table.overrides[i] = score_record(scale, record_at(i), extra_missing=extra)
    return table


def _round(value: np.ndarray, rule: ScoreRule) -> np.ndarray:
    method, decimals = rule.rounding.method, rule.rounding.decimals
    scale = 10**decimals
    x = value * scale
    if method == "half_up":
        r = np.copysign(np.floor(np.abs(x) + 0.5), x)
    elif method == "half_even":
        r = np.rint(x)
    elif method == "floor":
        r = np.floor(x)
    else:
        r = np.ceil(x)
    return np.asarray(r / scale if scale != 1 else r)


# --------------------------------------------------------------------------------------
# Wide CSV straight into columns

_SAFE_LO, _SAFE_HI = 0x21, 0x7E  # printable ASCII without space: a cell edge needing no strip
_BLANK_BYTES = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"
_SPLITLINES_BYTES = (
    b"\x0b",
    b"\x0c",
    b"\x1c",
    b"\x1d",
    b"\x1e",
    b"\xc2\x85",
    b"\xe2\x80\xa8",
    b"\xe2\x80\xa9",
)
CSV_FIELD_LIMIT = 131072  # the csv module refuses longer fields


@dataclass
class Cells:
    """Cells of one column as byte ranges of the file (already stripped where ``stripped``)."""

    start: np.ndarray
    end: np.ndarray


def _strip_cells(data: bytes, a: np.ndarray, cells: Cells) -> Cells:
    """Cells as ``str.strip()`` leaves them (a byte sub-range: strip only removes edges)."""
    start, end = cells.start.copy(), cells.end.copy()
    size = len(a)
    nonempty = end > start
    first = a[np.minimum(start, size - 1)]
    last = a[np.maximum(end - 1, 0)]
    odd = nonempty & (
        (first < _SAFE_LO) | (first > _SAFE_HI) | (last < _SAFE_LO) | (last > _SAFE_HI)
    )
    for i in np.flatnonzero(odd).tolist():
        s, e = int(start[i]), int(end[i])
        text = data[s:e].decode("utf-8")
        lead = len(text) - len(text.lstrip())
        body = text.strip()
        s2 = s + len(text[:lead].encode("utf-8"))
        start[i], end[i] = s2, s2 + len(body.encode("utf-8"))
    return Cells(start, end)


def _encode_cells(data: bytes, a: np.ndarray, cells: Cells) -> tuple[RawColumn, np.ndarray]:
    """An item column: canonical numbers 0-99 and blanks without Python, other text with it.
    Also returns which cells are blank (``str.strip()`` leaves nothing)."""
    start, end = cells.start, cells.end
    n = start.shape[0]
    size = a.shape[0]
    length = end - start
    d0 = a[np.minimum(start, size - 1)] - np.uint8(48)  # a digit: 0-9, anything else wraps
    codes = np.full(n, -1, dtype=np.int32)
    one = (length == 1) & (d0 < 10)
    codes[one] = d0[one]
    two_len = length == 2
    if two_len.any():
        d1 = a[np.minimum(start + 1, size - 1)] - np.uint8(48)
        two = two_len & (d0 < 10) & (d1 < 10) & (d0 > 0)
        codes[two] = d0[two].astype(np.int32) * 10 + d1[two]
    empty = length == 0
    codes[empty] = 100
    uniques: list[Any] = [str(v) for v in range(100)] + [""]
    blank = empty
    other = np.flatnonzero(codes < 0)
    if other.size:
        blank = empty.copy()
        table: dict[str, int] = {}
        for i in other.tolist():
            text = data[int(start[i]) : int(end[i])].decode("utf-8")
            code = table.get(text)
            if code is None:
                code = table[text] = len(uniques)
                uniques.append(text)
            codes[i] = code
            if not text.strip():
                blank[i] = True
    return RawColumn(codes, uniques), blank


class CsvRows(Rows):
    """Rows of a wide CSV file kept as byte ranges of the file; decoded when asked for."""

    def __init__(
        self,
        data: bytes,
        file: str,
        lines: np.ndarray,
        subject: Cells,
        visit: Cells,
        dates: list[str | None] | None,
        days: list[Num | None] | None,
        extras: dict[str, Cells],
        delimiter: str = ",",
    ):
        self.n = int(lines.shape[0])
        self.delimiter = delimiter
        self.data = data
        self.file = file
        self.lines = lines
        self.subject_cells = subject
        self.visit_cells = visit
        self.dates = dates
        self.days = days
        self.extra_cells = extras

    def _text(self, cells: Cells, i: int) -> str:
        return self.data[int(cells.start[i]) : int(cells.end[i])].decode("utf-8")

    def subject(self, i: int) -> str:
        return self._text(self.subject_cells, i)

    def visit(self, i: int) -> str:
        return self._text(self.visit_cells, i)

    def date(self, i: int) -> str | None:
        return self.dates[i] if self.dates is not None else None

    def day(self, i: int) -> Num | None:
        return self.days[i] if self.days is not None else None

    def extra(self, i: int) -> dict[str, Any]:
        return {name: (self._text(c, i) or None) for name, c in self.extra_cells.items()}

    def source(self, i: int) -> Source:
        return Source(file=self.file, line=int(self.lines[i]))

    def line_of(self, i: int, item: str | None) -> int | None:
        return int(self.lines[i])


def _layout(
    a: np.ndarray, body: bytes, delimiter: str, ncols: int, first_line: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int, int]]] | None:
    """Where the rows of a chunk of data lines and their cells are: (row starts, row ends,
    row line numbers, delimiter positions one row per data row, ragged lines as (start, end,
    line)). Blank lines are left out, as the csv reader leaves them out."""
    size = a.shape[0]
    delim = ord(delimiter)
    mask = a == 10
    mask |= a == delim
    marks = np.flatnonzero(mask)
    del mask
    if size < 2**31 - 1:
        marks = marks.astype(np.int32)
    is_nl = a[marks] == 10
    if size and a[-1] != 10:  # no line break at the end: as if there were one
        marks = np.append(marks, np.asarray([size], dtype=marks.dtype))
        is_nl = np.append(is_nl, True)
    header_end = -1
    data, data_nl = marks, is_nl
    if not data_nl.any():
        return None
    periodic = False
    if data.shape[0] and data.shape[0] % ncols == 0:
        grid_nl = data_nl.reshape(-1, ncols)
        periodic = bool(grid_nl[:, -1].all()) and not bool(grid_nl[:, :-1].any())
    if periodic:  # every line has its cells: the common case, no line-by-line work
        grid = data.reshape(-1, ncols)
        ends = grid[:, -1]
        starts = np.empty_like(ends)
        starts[0] = header_end + 1
        starts[1:] = ends[:-1] + 1
        pos = grid[:, :-1]
        numbers = np.arange(first_line, ends.shape[0] + first_line, dtype=np.int64)
        ragged_rows = np.zeros(ends.shape[0], dtype=bool)
    else:
        nl = data[data_nl]
        delim_pos = data[~data_nl]
        starts = np.concatenate(([header_end + 1], nl[:-1] + 1)).astype(nl.dtype)
        ends = nl
        numbers = np.arange(first_line, starts.shape[0] + first_line, dtype=np.int64)
        first = np.searchsorted(delim_pos, starts)
        count = np.diff(np.append(first, delim_pos.shape[0]))
        ragged_rows = count != ncols - 1
        ok = np.flatnonzero(~ragged_rows)
        pos = delim_pos[first[ok][:, None] + np.arange(ncols - 1)[None, :]]
        del delim_pos
        full_pos = np.zeros((starts.shape[0], ncols - 1), dtype=pos.dtype)
        full_pos[ok] = pos
        pos = full_pos
    # \r\n: the \r belongs to the line break
    last = a[np.maximum(ends - 1, 0)]
    ends = ends - ((ends > starts) & (last == 13))
    if starts.shape[0] == 0 or int((ends - starts).max()) > CSV_FIELD_LIMIT:
        return None
    # a line is blank when every cell is blank; a line that starts with a printable character
    # is not, and the few others are looked at one by one
    edge = a[np.minimum(starts, size - 1)]
    suspect = (ends == starts) | (edge < _SAFE_LO) | (edge > _SAFE_HI) | (edge == delim)
    blank = np.zeros(starts.shape[0], dtype=bool)
    for j in np.flatnonzero(suspect).tolist():
        text = body[int(starts[j]) : int(ends[j])].decode("utf-8")
        blank[j] = not any(c.strip() for c in text.split(delimiter))
    ragged = ragged_rows & ~blank
    ragged_lines = [
        (int(starts[j]), int(ends[j]), int(numbers[j])) for j in np.flatnonzero(ragged).tolist()
    ]
    good = ~blank & ~ragged
    if good.all():
        return starts, ends, numbers, pos, ragged_lines
    return starts[good], ends[good], numbers[good], pos[good], ragged_lines


@dataclass(frozen=True)
class CsvPlan:
    """What the header of a wide CSV file says: columns, the scale, where the data starts."""

    name: str
    delimiter: str
    header: list[str]
    folded: list[str]
    scale: Scale
    scale_id: str
    items: dict[int, str]  # column -> item key
    extra_columns: list[int]
    data_start: int  # offset of the first data line in the file
    extra_missing: tuple[Any, ...] = ()


def _plain_bytes(chunk: bytes) -> bool:
    """Text the csv module reads exactly as this module does: UTF-8, no quotes, no NUL, no
    line break other than \\n and \\r\\n."""
    if b"\x00" in chunk or b'"' in chunk:
        return False
    if b"\r" in chunk and chunk.count(b"\r") != chunk.count(b"\r\n"):
        return False
    if not chunk.isascii():
        try:
            chunk.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def plan_wide_csv(
    head: bytes,
    name: str,
    resolve: Callable[[str], Scale | None],
    scale_ids: Iterable[str],
    *,
    chosen: Scale | None = None,
    fmt: str | None = None,
    extra_missing: Iterable[Any] = (),
) -> CsvPlan | None:
    """Check the start of a file (its first line and some more): a wide CSV of one scale
    that the record readers would read as such, or None."""
    from ketascore import readers

    if fmt not in (None, "csv") or not head:
        return None
    skip = 0
    for _ in range(2):
        if head[skip:].startswith(b"\xef\xbb\xbf"):
            skip += 3
    body = head[skip:]
    head_end = body.find(b"\n")
    if head_end < 0:
        return None
    first_line = body[:head_end].rstrip(b"\r")
    if not first_line.strip() or any(c in first_line for c in _SPLITLINES_BYTES):
        return None
    if not _plain_bytes(first_line):
        return None
    prefix = body.decode("utf-8", errors="ignore")
    ids = {s.casefold() for s in scale_ids}
    reader_of = getattr(readers, "_text_reader", None)
    if reader_of is not None:
        readers._load_formats()
        context = readers._context(ids, None)
        if reader_of(fmt, name, prefix, context) is not None:
            return None
    if readers.detect_format(name, prefix) != "csv" and fmt is None:
        return None
    if readers.detect_format(".csv", prefix) == "csv-long":
        return None
    header_text = first_line.decode("utf-8")
    delimiter = readers.sniff_delimiter(header_text)
    header = [c.strip() for c in header_text.split(delimiter)]
    folded = [h.casefold() for h in header]
    if len(set(folded)) != len(folded) or "subject" not in folded or "visit" not in folded:
        return None
    item_columns: dict[int, tuple[str, str]] = {}
    extra_columns: list[int] = []
    for i, col in enumerate(header):
        if col.casefold() in ("subject", "visit", "date", "day"):
            continue
        split = readers.split_column(col, ids)
        if split is not None:
            item_columns[i] = split
        else:
            extra_columns.append(i)
    in_file = list(dict.fromkeys(s for s, _ in item_columns.values()))
    if chosen is not None:
        in_file = [s for s in in_file if s == chosen.id]
    if len(in_file) != 1:
        return None
    scale_id = in_file[0]
    scale = resolve(scale_id)
    if scale is None:
        return None
    mine = {i: item for i, (s, item) in item_columns.items() if s == scale_id}
    return CsvPlan(
        name,
        delimiter,
        header,
        folded,
        scale,
        scale_id,
        mine,
        extra_columns,
        skip + head_end + 1,
        tuple(extra_missing),
    )


@dataclass
class ChunkRead:
    """The rows of one chunk of data lines: their records in columns, the reading issues,
    and a 64-bit key of each record's subject and visit (to find duplicates)."""

    plan: CsvPlan
    rows: CsvRows
    columns: dict[str, RawColumn]
    spans: Cells  # each record's line (without its line break)
    ragged: list[Issue]
    row_issues: list[Issue]
    keys: np.ndarray  # per record: 64-bit keys of the subject and of the visit
    lines: int  # rows that are not blank (ragged ones too)

    @property
    def n(self) -> int:
        return self.rows.n

    def record_at(self, i: int) -> AnswerRecord:
        rows, body = self.rows, self.rows.data
        line = body[int(self.spans.start[i]) : int(self.spans.end[i])].decode("utf-8")
        cells = line.split(rows.delimiter)  # as many as the header has: no quotes here
        items = {item: cells[j] for j, item in self.plan.items.items()}
        return AnswerRecord(
            subject=rows.subject(i),
            visit=rows.visit(i),
            scale=self.plan.scale_id,
            items=items,
            date=rows.date(i),
            day=rows.day(i),
            extra=rows.extra(i),
            source=rows.source(i),
        )

    def score(self) -> ScoredTable:
        return score_table(
            self.plan.scale,
            self.rows,
            self.columns,
            record_at=self.record_at,
            extra_missing=self.plan.extra_missing,
        )


def read_chunk(plan: CsvPlan, body: bytes, first_line: int) -> ChunkRead | None:
    """Read a chunk of whole data lines (``first_line``: the line number of its first line);
    None when the chunk holds something the record readers must decide."""
    from ketascore import readers

    if not _plain_bytes(body):
        return None
    name, delimiter, folded = plan.name, plan.delimiter, plan.folded
    ncols = len(plan.header)
    a = np.frombuffer(body, dtype=np.uint8)
    layout = _layout(a, body, delimiter, ncols, first_line)
    if layout is None:
        return None
    g_starts, g_ends, g_numbers, pos, ragged_lines = layout
    m = g_starts.shape[0]
    ragged: list[Issue] = []
    subject_at = folded.index("subject")
    for start, end, number in ragged_lines:
        cells = body[start:end].decode("utf-8").split(delimiter)
        ragged.append(
            make_issue(
                "csv-ragged-row",
                cells=len(cells),
                columns=ncols,
                file=name,
                line=number,
                subject=readers.text_field(cells[subject_at] if len(cells) > subject_at else None),
            )
        )

    def column(j: int) -> Cells:
        s = g_starts if j == 0 else pos[:, j - 1] + 1
        e = g_ends if j == ncols - 1 else pos[:, j]
        return Cells(s, e)

    subject = _strip_cells(body, a, column(subject_at))
    visit = _strip_cells(body, a, column(folded.index("visit")))
    keep = (subject.end > subject.start) & (visit.end > visit.start)
    row_issues: dict[int, list[Issue]] = {}
    ids: dict[int, tuple[str | None, str | None]] = {}

    def ids_of(r: int) -> tuple[str | None, str | None]:
        if r not in ids:
            s = body[int(subject.start[r]) : int(subject.end[r])].decode("utf-8") or None
            v = body[int(visit.start[r]) : int(visit.end[r])].decode("utf-8") or None
            ids[r] = (s, v)
        return ids[r]

    for r in np.flatnonzero(~keep).tolist():
        s, v = ids_of(r)
        row_issues.setdefault(r, []).append(
            make_issue(
                "missing-field",
                "row",
                field="subject" if s is None else "visit",
                file=name,
                line=int(g_numbers[r]),
                subject=s,
                visit=v,
            )
        )
    checked: dict[str, list[Any]] = {}
    for field_name, check in (("date", readers.check_date), ("day", readers.check_day)):
        if field_name not in folded:
            continue
        field_cells = column(folded.index(field_name))
        cache: dict[bytes, Any] = {}
        values: list[Any] = []
        bounds = zip(field_cells.start.tolist(), field_cells.end.tolist(), strict=True)
        for r, (s0, e0) in enumerate(bounds):
            raw = body[s0:e0]
            if raw not in cache:
                try:
                    cache[raw] = (check(raw.decode("utf-8")), None)
                except readers.FieldError as exc:
                    cache[raw] = (None, exc)
            value, problem = cache[raw]
            values.append(value)
            if problem is not None and keep[r]:
                s, v = ids_of(r)
                row_issues.setdefault(r, []).append(
                    readers.field_issue(
                        problem, "row", file=name, line=int(g_numbers[r]), subject=s, visit=v
                    )
                )
        checked[field_name] = values
    issues = [i for r in sorted(row_issues) for i in row_issues[r]]

    # item columns; a row without any answer for the scale is no record
    columns: dict[str, RawColumn] = {}
    any_answer = np.zeros(m, dtype=bool)
    for j, item in plan.items.items():
        col, blank = _encode_cells(body, a, column(j))
        columns[item] = col
        any_answer |= ~blank
    everyone = bool(keep.all() and any_answer.all())
    rec = np.arange(m) if everyone else np.flatnonzero(keep & any_answer)

    def take(cells: Cells) -> Cells:
        return cells if everyone else _take(cells, rec)

    if not everyone:
        columns = {item: RawColumn(c.codes[rec], c.uniques) for item, c in columns.items()}
    extras = {plan.header[j]: take(_strip_cells(body, a, column(j))) for j in plan.extra_columns}
    dates = checked.get("date")
    days = checked.get("day")
    rows = CsvRows(
        body,
        name,
        g_numbers if everyone else g_numbers[rec],
        take(subject),
        take(visit),
        [dates[r] for r in rec.tolist()] if dates is not None else None,
        [days[r] for r in rec.tolist()] if days is not None else None,
        extras,
        delimiter,
    )
    spans = take(Cells(g_starts, g_ends))
    key = np.stack([_hash_cells(a, rows.subject_cells), _hash_cells(a, rows.visit_cells)], 1)
    return ChunkRead(plan, rows, columns, spans, ragged, issues, key, m + len(ragged))


def _take(cells: Cells, idx: np.ndarray) -> Cells:
    return Cells(cells.start[idx], cells.end[idx])


def _hash_cells(a: np.ndarray, cells: Cells) -> np.ndarray:
    """A 64-bit key per cell, a function of its text alone (the same text gives the same key
    in every chunk, whatever else the chunk holds): a text of up to 8 bytes is its bytes,
    big-endian, so that texts sorted by bytes have sorted keys; a longer text is a hash of
    all its bytes and its length. Equal keys are only candidates: the merge compares the
    texts."""
    start = cells.start
    length = cells.end - start
    n = length.shape[0]
    key = np.zeros(n, dtype=np.uint64)
    if n == 0:
        return key
    last = a.shape[0] - 1
    longest = int(length.max())
    same = bool((length == longest).all())
    prime = np.uint64(1099511628211)  # FNV-1's: multiply, then mix the byte in
    for k in range(longest):
        byte = a[np.minimum(start + k, last)] if not same else a[start + k]
        if not same:
            byte = np.where(length > k, byte, 0)
        if k < 8:
            key |= byte.astype(np.uint64) << np.uint64(8 * (7 - k))
        else:
            mixed = (key * prime) ^ byte.astype(np.uint64)
            key = mixed if same else np.where(length > k, mixed, key)
    if longest > 8:
        # the length, and a finaliser (MurmurHash3's) that spreads every byte over all bits
        h = key ^ length.astype(np.uint64)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
        key = h if same else np.where(length > 8, h, key)
    return key


def _chunks(data: bytes, start: int, size: int) -> Iterator[tuple[int, int]]:
    """(begin, end) of pieces of ``data`` from ``start``, about ``size`` bytes, cut after a
    line break."""
    end = len(data)
    at = start
    while at < end:
        cut = data.rfind(b"\n", at, min(end, at + size)) + 1 if at + size < end else end
        if cut <= at:
            nxt = data.find(b"\n", at + size)
            cut = end if nxt < 0 else nxt + 1
        yield at, cut
        at = cut


@dataclass
class Duplicates:
    """Records of the same subject and visit across the file: the result of each group at
    its first record, and the later records, dropped (global record numbers)."""

    first: dict[int, ScoreResult] = field(default_factory=dict)
    dropped: set[int] = field(default_factory=set)


def find_duplicates(
    keys: np.ndarray,
    records: Callable[[list[int]], list[AnswerRecord]],
    resolve: Callable[[str], Scale | None],
    extra: tuple[Any, ...],
) -> Duplicates:
    """Group records by subject and visit as ``engine.score_records`` does; ``records(ids)``
    gives the records of global record numbers (only those whose keys collide)."""
    from ketascore.engines.record import score_records

    out = Duplicates()
    n = keys.shape[0]
    if n < 2:
        return out
    sk, vk = keys[:, 0], keys[:, 1]
    candidates = np.zeros(n, dtype=bool)
    runs = None
    if bool((sk[1:] >= sk[:-1]).all()):  # grouped by subject: look within each subject
        starts = np.flatnonzero(sk[1:] != sk[:-1]) + 1
        runs = int(np.diff(np.concatenate(([0], starts, [n]))).max())
    if runs is not None and runs <= 32:
        for d in range(1, runs):
            same = (sk[d:] == sk[:-d]) & (vk[d:] == vk[:-d])
            candidates[d:] |= same
            candidates[:-d] |= same
        if not candidates.any():
            return out
    else:
        key = sk * np.uint64(0x9E3779B97F4A7C15) ^ vk
        sorted_keys = np.sort(key)
        if not (sorted_keys[1:] == sorted_keys[:-1]).any():
            return out
        order = np.argsort(key, kind="stable")
        same_as_next = key[order][1:] == key[order][:-1]
        candidates[order[1:][same_as_next]] = True
        candidates[order[:-1][same_as_next]] = True
    ids = np.flatnonzero(candidates).tolist()
    recs = records(ids)
    groups: dict[tuple[str, str], list[tuple[int, AnswerRecord]]] = {}
    for i, rec in zip(ids, recs, strict=True):
        groups.setdefault((rec.subject, rec.visit), []).append((i, rec))
    for members in groups.values():
        if len(members) < 2:
            continue
        members.sort(key=lambda m: m[0])
        result = score_records([r for _, r in members], resolve, extra_missing=extra)
        out.first[members[0][0]] = result[0]
        out.dropped.update(i for i, _ in members[1:])
    return out


def _apply(table: ScoredTable, dups: Duplicates, offset: int) -> None:
    n = table.n
    for g, result in dups.first.items():
        if offset <= g < offset + n:
            table.overrides[g - offset] = result
    drop = [g - offset for g in dups.dropped if offset <= g < offset + n]
    if drop:
        table.dropped = np.zeros(n, dtype=bool)
        table.dropped[drop] = True


@dataclass
class CsvTable:
    """A wide CSV file read and scored in columns: chunk by chunk, what ``read_answers`` +
    ``score`` give for it. ``tables()`` gives the scored chunks in order (a file too large
    to hold is read again from disk)."""

    file: str
    plan: CsvPlan
    issues: list[Issue]  # reading issues, in the record readers' order
    records: int
    chunk_tables: list[ScoredTable] | None = None
    _stream: Callable[[], Iterator[tuple[bytes, int]]] | None = None  # chunks, read again
    _digest: Callable[[], str] | None = None
    _dups: Duplicates | None = None
    _offsets: list[int] | None = None  # per chunk: its first record's number

    @property
    def files(self) -> list[str]:
        return [self.file]

    @property
    def digest(self) -> str:
        """The sha256 of the file's bytes (as ``ReadResult.hashes`` has it)."""
        assert self._digest is not None
        return self._digest()

    def tables(self) -> Iterator[ScoredTable]:
        for table, _ in self.scored(None):
            yield table

    def scored(
        self, then: Callable[[ScoredTable], Any] | None, threads: int = 0
    ) -> Iterator[tuple[ScoredTable, Any]]:
        """Each scored chunk, in order, with ``then(table)`` (None without ``then``); chunks
        are scored, and ``then`` runs, in ``threads`` threads (0: ``THREADS``)."""
        threads = threads or THREADS

        def finish(table: ScoredTable) -> tuple[ScoredTable, Any]:
            return table, (then(table) if then is not None else None)

        if self.chunk_tables is not None:
            if then is None:
                for table in self.chunk_tables:
                    yield table, None
            else:
                yield from _map(finish, self.chunk_tables, threads)
            return
        dups = self._dups if self._dups is not None else Duplicates()
        offsets = self._offsets or []
        assert self._stream is not None

        def score_read(item: tuple[int, tuple[bytes, int]]) -> tuple[ScoredTable, Any]:
            c, (piece, line) = item
            read = read_chunk(self.plan, piece, line)
            assert read is not None  # as in the first reading
            table = read.score()
            _apply(table, dups, offsets[c])
            return finish(table)

        yield from _map(score_read, enumerate(self._stream()), threads)

    def results(self) -> Iterator[ScoreResult]:
        for table in self.tables():
            yield from table.results()


def _map(func: Callable[[Any], Any], items: Iterable[Any], threads: int) -> Iterator[Any]:
    """``map`` in order, with up to ``threads`` items at work (numpy releases the GIL while
    it computes) and no more than that taken from ``items`` ahead of the consumer."""
    if threads <= 1:
        yield from map(func, items)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        running: deque[Any] = deque()
        for item in items:
            running.append(pool.submit(func, item))
            if len(running) >= threads:
                yield running.popleft().result()
        while running:
            yield running.popleft().result()


def csv_chunks(
    tables: Iterable[ScoredTable] | CsvTable, *, escape_formulas: bool = True, threads: int = 2
) -> Iterator[tuple[ScoredTable, bytes]]:
    """Each table with the lines ``output.score_csv`` writes for it, made in threads (for a
    CsvTable, each chunk is scored in the same thread)."""

    def text(table: ScoredTable) -> bytes:
        return csv_text(table, escape_formulas=escape_formulas)

    if isinstance(tables, CsvTable):
        return tables.scored(text, threads)
    return _map(lambda t: (t, text(t)), tables, threads)


CHUNK_BYTES = 2 << 20  # small enough for numpy's temporaries to stay in the CPU's caches
THREADS = 2  # chunks read and scored at once (numpy lets go of the GIL while it computes)


def read_wide_csv(
    data: bytes,
    name: str,
    resolve: Callable[[str], Scale | None],
    scale_ids: Iterable[str],
    *,
    chosen: Scale | None = None,
    fmt: str | None = None,
    extra_missing: Iterable[Any] = (),
    chunk_bytes: int = CHUNK_BYTES,
    threads: int | None = None,
) -> CsvTable | None:
    """Read and score a wide CSV file held in memory, in columns; None when the file is not
    one this path takes (quotes, several scales, an odd header ...): the record readers
    read those.

    The results equal ``score(read_bytes(data).records, scale=chosen)`` and the issues
    ``read_bytes``'s; the tests compare both paths byte for byte.
    """
    threads = THREADS if threads is None else threads
    plan = plan_wide_csv(
        data[: (data.find(b"\n") + 1 or len(data)) + 65536],
        name,
        resolve,
        scale_ids,
        chosen=chosen,
        fmt=fmt,
        extra_missing=extra_missing,
    )
    if plan is None:
        return None
    if plan.data_start >= len(data):
        return None
    pieces = _memory_chunks(data, plan.data_start, chunk_bytes)

    def digest() -> str:
        import hashlib

        return hashlib.sha256(data).hexdigest()

    return _read_in_memory(plan, pieces, name, resolve, tuple(extra_missing), threads, digest)


def _read_in_memory(
    plan: CsvPlan,
    pieces: Iterable[tuple[bytes, int]],
    name: str,
    resolve: Callable[[str], Scale | None],
    extra: tuple[Any, ...],
    threads: int,
    digest: Callable[[], str],
) -> CsvTable | None:
    """Read and score the chunks (bytes, first line number) of a file held whole, each in
    one go in a thread (what scoring needs is dropped at once), then find duplicates across
    them."""

    def read_and_score(piece: tuple[bytes, int]) -> tuple[ChunkRead, ScoredTable] | None:
        read = read_chunk(plan, piece[0], piece[1])
        if read is None:
            return None
        table = read.score()
        read.columns = {}  # scored: the raw answers are no longer needed
        return read, table

    done = list(_map(read_and_score, pieces, threads))
    if any(d is None for d in done) or not sum(d[0].lines for d in done):
        return None  # something for the record readers to decide, or no rows to read
    reads = [d[0] for d in done]
    tables = [d[1] for d in done]
    offsets = np.cumsum([0] + [r.n for r in reads])

    def records(ids: list[int]) -> list[AnswerRecord]:
        out = []
        for g in ids:
            c = int(np.searchsorted(offsets, g, side="right")) - 1
            out.append(reads[c].record_at(g - int(offsets[c])))
        return out

    dups = find_duplicates(np.concatenate([r.keys for r in reads]), records, resolve, extra)
    for table, offset in zip(tables, offsets.tolist(), strict=False):
        _apply(table, dups, offset)
    issues = [i for r in reads for i in r.ragged] + [i for r in reads for i in r.row_issues]
    return CsvTable(name, plan, issues, int(offsets[-1]), chunk_tables=tables, _digest=digest)


def _file_chunks(
    path: str, start: int, size: int, hasher: Any = None
) -> Iterator[tuple[bytes, int]]:
    """Pieces of a file from ``start``, about ``size`` bytes each, cut after a line break,
    with the line number of their first line (``hasher`` is given every byte read)."""
    with open(path, "rb") as fh:
        fh.seek(start)
        line = 2
        rest = b""
        while True:
            block = fh.read(size)
            if hasher is not None and block:
                hasher.update(block)
            if not block:
                if rest:
                    yield rest, line
                return
            block = rest + block if rest else block
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                rest = block
                continue
            piece, rest = (block, b"") if cut == len(block) else (block[:cut], block[cut:])
            yield piece, line
            line += piece.count(b"\n")


def _memory_chunks(data: bytes, start: int, size: int) -> Iterator[tuple[bytes, int]]:
    """Pieces of ``data`` from ``start`` (as ``_chunks`` cuts them) with the line number of
    their first line, each cut and counted only when asked for (while the pieces before it
    are scored)."""
    line = 2
    for begin, end in _chunks(data, start, size):
        yield data[begin:end], line
        line += data.count(b"\n", begin, end)


def read_wide_csv_file(
    path: str,
    resolve: Callable[[str], Scale | None],
    scale_ids: Iterable[str],
    *,
    chosen: Scale | None = None,
    fmt: str | None = None,
    extra_missing: Iterable[Any] = (),
    chunk_bytes: int = CHUNK_BYTES,
    in_memory: int = 256 << 20,
    prefetched: Any = None,
) -> CsvTable | None:
    """``read_wide_csv`` for a file; one larger than ``in_memory`` bytes is read twice in
    chunks (keys and issues first, then scores), so memory stays bounded. ``prefetched``:
    the file as read in a thread while the caller did something else: ``data()`` waits for
    its bytes, ``digest()`` for their sha256."""
    import hashlib
    import os

    data = prefetched.data() if prefetched is not None else None
    if data is not None:
        size = len(data)
        head = data[: 1 << 20]
    else:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
    cut = head.find(b"\n")
    plan = plan_wide_csv(
        head[: cut + 1 + 65536] if cut >= 0 else head,
        path,
        resolve,
        scale_ids,
        chosen=chosen,
        fmt=fmt,
        extra_missing=extra_missing,
    )
    if plan is None:  # not a file for the columns: decided without reading it all
        return None
    if data is not None:  # already in memory (its sha256 computed as it was read)
        extra = tuple(extra_missing)
        pieces = _memory_chunks(data, plan.data_start, chunk_bytes)
        return _read_in_memory(plan, pieces, path, resolve, extra, THREADS, prefetched.digest)
    if size <= in_memory:  # read once, chunk by chunk, and kept
        hasher = hashlib.sha256(head[: plan.data_start])
        pieces = _file_chunks(path, plan.data_start, chunk_bytes, hasher)
        return _read_in_memory(
            plan,
            pieces,
            path,
            resolve,
            tuple(extra_missing),
            THREADS,
            hasher.hexdigest,
        )
    extra = tuple(extra_missing)

    def chunks() -> Iterator[tuple[bytes, int, int]]:
        """(chunk, its first line number, 0)"""
        for piece, line in _file_chunks(path, plan.data_start, chunk_bytes):
            yield piece, line, 0

    # pass 1: keys and issues (and the file's sha256)
    keys: list[np.ndarray] = []
    ragged: list[Issue] = []
    row_issues: list[Issue] = []
    counts: list[int] = []
    lines = 0
    hasher = hashlib.sha256(head[: plan.data_start])
    for piece, line in _file_chunks(path, plan.data_start, chunk_bytes, hasher):
        read = read_chunk(plan, piece, line)
        if read is None:
            return None
        lines += read.lines
        keys.append(read.keys)
        ragged += read.ragged
        row_issues += read.row_issues
        counts.append(read.n)
    if not lines:
        return None
    offsets = np.cumsum([0, *counts])

    def records(ids: list[int]) -> list[AnswerRecord]:
        wanted = sorted(ids)
        found: dict[int, AnswerRecord] = {}
        for c, (piece, line, _) in enumerate(chunks()):
            lo, hi = int(offsets[c]), int(offsets[c + 1])
            here = [g for g in wanted if lo <= g < hi]
            if here:
                read = read_chunk(plan, piece, line)
                assert read is not None
                for g in here:
                    found[g] = read.record_at(g - lo)
        return [found[g] for g in ids]

    dups = find_duplicates(np.concatenate(keys), records, resolve, extra)
    del keys

    def stream() -> Iterator[tuple[bytes, int]]:
        return _file_chunks(path, plan.data_start, chunk_bytes)

    return CsvTable(
        path,
        plan,
        ragged + row_issues,
        int(offsets[-1]),
        _stream=stream,
        _digest=hasher.hexdigest,
        _dups=dups,
        _offsets=offsets.tolist(),
    )


# --------------------------------------------------------------------------------------
# Writing: the CSV of ``ketascore score --format csv``, assembled in columns


@dataclass
class _Field:
    """One output column: byte ranges of ``src`` (raw cells), or codes into ``texts``
    (already quoted as csv.writer quotes them)."""

    src: np.ndarray | None = None
    cells: Cells | None = None
    texts: list[bytes] | None = None
    codes: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> _Field:
        if self.cells is not None:
            return _Field(src=self.src, cells=Cells(self.cells.start[idx], self.cells.end[idx]))
        assert self.codes is not None
        return _Field(texts=self.texts, codes=self.codes[idx])


_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


def _quote(text: str) -> bytes:
    if not _NEEDS_QUOTES.search(text):
        return text.encode("utf-8")
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([text, ""])
    return buf.getvalue()[:-2].encode("utf-8")  # without the ",\n" of the empty second field


def _categorical(values: list[Any], codes: np.ndarray, escape: bool = True) -> _Field:
    """A column of few distinct values, each written as ``output._cell`` writes it."""
    from ketascore.writers import tabular as output

    if len(values) > 64 and all(type(v) is str for v in values):
        starts = output.FORMULA_START
        cells = [("'" + v if escape and v.startswith(starts) else v) for v in values]
        texts = [_quote(t) for t in cells]
    else:
        texts = [_quote(output._cell(v, escape)) for v in values]
    return _Field(texts=texts, codes=codes.astype(np.int64))


def _number_texts(values: np.ndarray) -> tuple[list[Any], np.ndarray]:
    """Scores as the record path prints them (16, 11.571428571428571, empty for none)."""
    nan = np.isnan(values)
    whole = ~nan & (values == np.floor(values)) & (np.abs(values) < 1e9)
    codes = np.zeros(values.shape[0], dtype=np.int64)
    texts: list[Any] = []
    if whole.any():
        w = values[whole].astype(np.int64)
        lo, hi = int(w.min()), int(w.max())
        if hi - lo < 1 << 20:
            texts = [lo + k for k in range(hi - lo + 1)]
            codes[whole] = w - lo
        else:
            whole[:] = False
    rest = ~nan & ~whole
    if rest.any():
        uniq, inverse = np.unique(values[rest], return_inverse=True)
        codes[rest] = inverse.reshape(-1) + len(texts)
        texts += [clean_number(float(v)) for v in uniq.tolist()]
    codes[nan] = len(texts)
    return [*texts, None], codes


def _join_categoricals(fields: list[_Field]) -> list[_Field]:
    """Neighbouring categorical columns as one (their joint values are few): the codes of a
    run of them are combined in mixed radix, and only the combinations present are kept."""
    out: list[_Field] = []
    run: list[_Field] = []

    def flush() -> None:
        joint = _joint(run) if len(run) > 1 else None
        out.extend([joint] if joint is not None else run)
        run.clear()

    for f in fields:
        if f.codes is None or f.texts is None or len(f.texts) > 4096:
            flush()  # raw cells, or many distinct values (subjects): kept apart
            out.append(f)
            continue
        run.append(f)
    flush()
    return out


def _joint(run: list[_Field]) -> _Field | None:
    """One categorical column for a run of them (each present combination's text is their
    texts joined by commas), or None when the combinations are too many to be worth it."""
    parts: list[list[bytes]] = []
    joint: np.ndarray | None = None
    size = 1
    for f in run:
        assert f.codes is not None and f.texts is not None
        k = len(f.texts)
        if joint is None:
            joint = f.codes
        else:
            if size * k > 1 << 22:  # keep the codes small: only the combinations present
                made = _compact(parts, joint, size)
                if made is None:
                    return None
                parts, joint, size = [made[0]], made[1], len(made[0])
            joint = joint * k + f.codes
        parts.append(f.texts)
        size *= k
    assert joint is not None
    made = _compact(parts, joint, size)
    return None if made is None else _Field(texts=made[0], codes=made[1])


def _compact(
    parts: list[list[bytes]], codes: np.ndarray, size: int
) -> tuple[list[bytes], np.ndarray] | None:
    """Mixed-radix codes of ``parts`` renumbered to the combinations present (in code
    order), with their texts; None when more than 4096 are present."""
    seen = np.bincount(codes, minlength=size) > 0
    present = np.flatnonzero(seen)
    if present.shape[0] > 4096:
        return None
    radix = [len(p) for p in parts]
    texts = []
    for c in present.tolist():
        cells = []
        for part, k in zip(reversed(parts[1:]), reversed(radix[1:]), strict=True):
            c, d = divmod(c, k)
            cells.append(part[d])
        cells.append(parts[0][c])
        texts.append(b",".join(reversed(cells)))
    remap = np.cumsum(seen) - 1
    return texts, remap[codes]


def _windows(buffer: np.ndarray, width: int) -> np.ndarray:
    """Every run of ``width`` bytes of a byte array, as one row each: row ``i`` is
    ``buffer[i : i + width]``, as one unsigned integer when ``width`` is 1, 2, 4 or 8 (a
    view: writing to it writes to ``buffer``)."""
    count = buffer.shape[0] - width + 1
    if width in (1, 2, 4, 8):
        return np.ndarray((count,), dtype=f"<u{width}", buffer=buffer, strides=(1,))
    from numpy.lib.stride_tricks import as_strided

    return as_strided(buffer, shape=(count, width), strides=(1, 1))


def _as_rows(grid: np.ndarray) -> np.ndarray:
    """A (rows, width) byte matrix in the shape ``_windows`` gives for its width."""
    width = grid.shape[1]
    if width in (1, 2, 4, 8):
        return np.ascontiguousarray(grid).view(f"<u{width}").reshape(-1)
    return grid


def _groups(lengths: np.ndarray) -> tuple[np.ndarray | None, list[tuple[int, int, int]]]:
    """Rows by length: an order of the rows (None: as they are) and, for each length,
    (length, begin, end) of its rows in that order."""
    n = lengths.shape[0]
    if n == 0:
        return None, []
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo == hi:
        return None, [(lo, 0, n)]
    counts = np.bincount(lengths - lo)
    present = np.flatnonzero(counts)
    small = lengths - lo
    small = small.astype(np.uint8 if hi - lo < 256 else np.uint16 if hi - lo < 65536 else np.int64)
    order = np.argsort(small, kind="stable")  # a radix sort for small integers
    bounds = np.cumsum(counts[present]).tolist()
    out = []
    at = 0
    for v, end in zip(present.tolist(), bounds, strict=True):
        out.append((lo + int(v), at, end))
        at = end
    return order, out


@dataclass
class _Piece:
    """An output column ready to be placed: a categorical column's texts (with the
    comma before and the line break after, where they belong) laid out by length, or raw
    cells followed by a separator byte."""

    field: _Field
    first: bool
    last: bool
    lens: np.ndarray | None = None  # categorical: bytes per code
    tables: dict[int, np.ndarray] | None = None  # length -> its texts (as _windows rows)
    index: np.ndarray | None = None  # categorical: code -> row in the table of its length

    @classmethod
    def of(cls, f: _Field, first: bool, last: bool) -> _Piece:
        piece = cls(f, first, last)
        if f.codes is not None:
            assert f.texts is not None
            lead, tail = (b"" if first else b","), (b"\n" if last else b"")
            texts = [lead + t + tail for t in f.texts]
            lens = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
            tables: dict[int, np.ndarray] = {}
            index = np.zeros(len(texts), dtype=np.int64)
            for width in sorted(set(lens.tolist())):
                which = np.flatnonzero(lens == width)
                index[which] = np.arange(which.shape[0])
                flat = b"".join(texts[i] for i in which.tolist())
                grid = np.frombuffer(flat, dtype=np.uint8).reshape(which.shape[0], width)
                tables[width] = _as_rows(grid)
            piece.lens, piece.tables, piece.index = lens, tables, index
        return piece

    def sizes(self, lo: int, hi: int) -> np.ndarray:
        """Bytes of rows lo:hi in the output."""
        f = self.field
        if f.codes is not None:
            assert self.lens is not None
            lengths: np.ndarray = self.lens[f.codes[lo:hi]]
            return lengths
        assert f.cells is not None
        widths: np.ndarray = (f.cells.end[lo:hi] - f.cells.start[lo:hi]).astype(np.int64)
        return widths + (0 if self.first else 1) + (1 if self.last else 0)

    def place(self, out: np.ndarray, at: np.ndarray, lo: int, hi: int) -> None:
        """Write rows lo:hi at offsets ``at`` of ``out``."""
        f = self.field
        if f.codes is not None:
            assert self.lens is not None and self.tables is not None
            assert self.index is not None
            codes = f.codes[lo:hi]
            order, groups = _groups(self.lens[codes])
            row = self.index[codes]
            if order is not None:
                row, at = row[order], at[order]
            for width, b, e in groups:
                _windows(out, width)[at[b:e]] = self.tables[width][row[b:e]]
            return
        assert f.cells is not None and f.src is not None
        start = f.cells.start[lo:hi]
        length = f.cells.end[lo:hi] - start
        if not self.first:
            out[at] = ord(",")
            at = at + 1
        if self.last:
            out[at + length] = 10
        _copy(out, at, f.src, start, length)


# bytes -> which power of two copies them in two overlapping pieces (-1: nothing to copy)
_UNIT = np.asarray([-1, 0, 1, 1, 2, 2, 2, 2] + [3] * 9, dtype=np.int8)


def _copy(
    out: np.ndarray, at: np.ndarray, src: np.ndarray, start: np.ndarray, length: np.ndarray
) -> None:
    """``out[at[i] : at[i] + length[i]] = src[start[i] : start[i] + length[i]]`` for each i."""
    if length.shape[0] == 0:
        return
    hi = int(length.max())
    if hi > 16:  # rows of the same length at once
        order, groups = _groups(length)
        if order is not None:
            start, at = start[order], at[order]
        for width, b, e in groups:
            if width:
                _windows(out, width)[at[b:e]] = _windows(src, width)[start[b:e]]
        return
    # up to 16 bytes: two copies of 1, 2, 4 or 8 bytes, from the start and to the end
    unit = _UNIT[length]
    lo_unit, hi_unit = int(unit.min()), int(unit.max())
    for u in range(max(lo_unit, 0), hi_unit + 1):
        if lo_unit == hi_unit:
            s, d, n = start, at, length
        else:
            rows = np.flatnonzero(unit == u)
            if rows.shape[0] == 0:
                continue
            s, d, n = start[rows], at[rows], length[rows]
        width = 1 << u
        dst, source = _windows(out, width), _windows(src, width)
        dst[d] = source[s]
        if int(n.min()) != width or int(n.max()) != width:
            back = n - width
            dst[d + back] = source[s + back]


def _merge_adjacent(fields: list[_Field]) -> list[_Field]:
    """Neighbouring raw-cell columns that are neighbours in the input too, with a comma
    between them in every row, as one (copied at once)."""
    out: list[_Field] = []
    for f in fields:
        prev = out[-1] if out else None
        if (
            prev is not None
            and f.cells is not None
            and prev.cells is not None
            and f.src is prev.src
            and f.src is not None
            and f.cells.start.shape[0]
            and bool((f.cells.start - prev.cells.end == 1).all())
            and bool((f.src[prev.cells.end] == ord(",")).all())
        ):
            out[-1] = _Field(src=f.src, cells=Cells(prev.cells.start, f.cells.end))
            continue
        out.append(f)
    return out


def _assemble(fields: list[_Field], n: int, block: int = 1 << 16) -> Iterator[memoryview]:
    """CSV lines, in blocks of rows: the length of every line is known from its cells, so
    each column is copied to its place in the output, rows of the same length at once."""
    for buffer, _ in _assemble_blocks(fields, n, block):
        yield buffer.data


def _assemble_blocks(
    fields: list[_Field], n: int, block: int = 1 << 16
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``_assemble`` as byte arrays, each with the offsets of its lines (one more than its
    lines: the last is its size)."""
    if n == 0:
        return
    joined = _merge_adjacent(_join_categoricals(fields))
    pieces = [_Piece.of(f, i == 0, i == len(joined) - 1) for i, f in enumerate(joined)]
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        sizes = [p.sizes(lo, hi) for p in pieces]
        line = np.zeros(hi - lo + 1, dtype=np.int64)
        for s in sizes:
            line[1:] += s
        np.cumsum(line, out=line)
        out = np.empty(int(line[-1]), dtype=np.uint8)
        at = line[:-1].copy()
        for p, s in zip(pieces, sizes, strict=True):
            p.place(out, at, lo, hi)
            at += s
        yield out, line


def csv_text(table: ScoredTable, *, escape_formulas: bool = True) -> bytes:
    """The lines ``output.score_csv`` writes for this table's results (without the header)."""
    return b"".join(iter_csv(table, escape_formulas=escape_formulas))


def iter_csv(table: ScoredTable, *, escape_formulas: bool = True) -> Iterator[bytes | memoryview]:
    """``csv_text`` in pieces, as they are made (bytes-like: written as they are, they are
    not copied)."""
    from ketascore.writers import tabular as output

    scale, rows = table.scale, table.rows
    esc = escape_formulas
    kept = table.kept()
    python_rows = np.zeros(table.n, dtype=bool)
    for i in table.overrides:
        python_rows[i] = True
    fields: list[_Field] = []
    # the columns output.score_csv writes before the carried fields; a carried field with
    # one of these names is left out, as score_csv leaves it out
    base = {"subject", "visit", "date", "day", "scale", "scale_version", "flags", "issues"}
    base.update(cls.id for cls in scale.classifications)
    for rule in scale.scores:
        base.update(
            (rule.id, f"{rule.id}_band", f"{rule.id}_items_answered", f"{rule.id}_prorated")
        )
    if isinstance(rows, CsvRows):
        a = np.frombuffer(rows.data, dtype=np.uint8)
        cells = [rows.subject_cells, rows.visit_cells, *rows.extra_cells.values()]
        if rows.delimiter != "," and b"," in rows.data:  # a cell to quote: written by Python
            hit = np.zeros(a.shape[0] + 1, dtype=np.int64)
            np.cumsum(a == ord(","), out=hit[1:])
            for c in cells:
                python_rows |= (hit[c.end] - hit[c.start]) > 0
        if escape_formulas:  # text a spreadsheet would run as a formula: written by Python
            lut = np.zeros(256, dtype=bool)
            lut[list(b"=+-@")] = True
            for c in cells:
                python_rows |= (c.end > c.start) & lut[a[np.minimum(c.start, a.shape[0] - 1)]]
        fields.append(_Field(src=a, cells=rows.subject_cells))
        fields.append(_Field(src=a, cells=rows.visit_cells))
        date_texts: list[Any] | None = rows.dates
        day_texts: list[Any] | None = rows.days
        extra_fields = [
            _Field(src=a, cells=c) for name, c in rows.extra_cells.items() if name not in base
        ]
    else:
        fields.append(_text_field([rows.subject(i) for i in range(table.n)], table.n, esc))
        fields.append(_text_field([rows.visit(i) for i in range(table.n)], table.n, esc))
        date_texts = [rows.date(i) for i in range(table.n)]
        day_texts = [rows.day(i) for i in range(table.n)]
        names = list(rows.extra(0)) if table.n else []
        extra_fields = [
            _text_field([rows.extra(i).get(name) for i in range(table.n)], table.n, esc)
            for name in names
            if name not in base
        ]
    fields.append(_text_field(date_texts or None, table.n, esc))
    fields.append(_text_field(day_texts or None, table.n, esc))
    zeros = np.zeros(table.n, dtype=np.int64)
    fields.append(_categorical([scale.id], zeros, esc))
    fields.append(_categorical([scale.version], zeros, esc))
    for rule in scale.scores:
        cols = table.scores[rule.id]
        values, codes = _number_texts(cols.value)
        fields.append(_categorical(values, codes, esc))
        labels = [None, *(b.label for b in rule.bands)]
        fields.append(_categorical(labels, cols.band.astype(np.int64) + 1, esc))
        top = int(cols.answered.max()) if cols.answered.size else 0
        fields.append(_categorical(list(range(top + 1)), cols.answered, esc))
        fields.append(_categorical([False, True], cols.prorated.astype(np.int64), esc))
    for cls in scale.classifications:
        codes = table.classes[cls.id].astype(np.int64) + 1
        fields.append(_categorical([None, False, True], codes, esc))
    flag_code = np.zeros(table.n, dtype=np.int64)
    for j, flag in enumerate(scale.flags):
        flag_code |= table.flags[flag.id].astype(np.int64) << j
    if len(scale.flags) <= 16:
        seen = np.bincount(flag_code, minlength=1 << len(scale.flags)) > 0
        uniq, inverse = np.flatnonzero(seen), (np.cumsum(seen) - 1)[flag_code]
    else:  # pragma: no cover - a scale with more than 16 flags
        uniq, inverse = np.unique(flag_code, return_inverse=True)
    flag_lists: list[Any] = [
        [f.id for j, f in enumerate(scale.flags) if (int(u) >> j) & 1] for u in uniq.tolist()
    ]
    fields.append(_categorical(flag_lists, inverse.reshape(-1), esc))
    sig, sig_tables = table.issue_signature()
    issue_lists: list[Any] = [*sig_tables, []]
    fields.append(_categorical(issue_lists, np.where(sig < 0, len(sig_tables), sig), esc))
    fields.extend(extra_fields)
    keep_mask = np.zeros(table.n, dtype=bool)
    keep_mask[kept] = True
    vector = keep_mask & ~python_rows
    special = np.flatnonzero(keep_mask & python_rows)
    if special.size == 0 and vector.all():
        yield from _assemble(fields, table.n)
        return
    idx = np.flatnonzero(vector)
    # the rows written by Python, spliced in at their places
    specials = special.tolist()
    before = np.searchsorted(idx, special).tolist()  # rows written in columns before each
    k = 0  # the next special row
    done = 0  # rows written in columns before the block

    def python_line(i: int) -> bytes:
        text = output.score_csv([table.result_at(i)], [], escape_formulas=escape_formulas)
        return text.split("\n", 1)[1].encode("utf-8")

    for buffer, line in _assemble_blocks([f.take(idx) for f in fields], int(idx.shape[0])):
        count = line.shape[0] - 1
        pieces: list[bytes | memoryview] = []
        at = 0
        while k < len(specials) and before[k] <= done + count:
            cut = int(line[before[k] - done])
            pieces.append(buffer[at:cut].data)
            pieces.append(python_line(specials[k]))
            at = cut
            k += 1
        pieces.append(buffer[at:].data)
        done += count
        yield b"".join(pieces)
    if k < len(specials):
        yield b"".join(python_line(i) for i in specials[k:])


def _text_field(values: list[Any] | None, n: int, escape: bool = True) -> _Field:
    if values is None:
        return _categorical([None], np.zeros(n, dtype=np.int64), escape)
    table: dict[Any, int] = {}
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values):
        key = (type(v), v)
        code = table.get(key)
        if code is None:
            code = table[key] = len(table)
        codes[i] = code
    return _categorical([v for _, v in table], codes, escape)


def csv_header(table: ScoredTable, *, escape_formulas: bool = True) -> str:
    from ketascore.writers import tabular as output

    kept = table.kept()
    results = [table.result_at(int(kept[0]))] if kept.size else []
    text = output.score_csv(results, [], escape_formulas=escape_formulas)
    return text.split("\n", 1)[0] + "\n"


# --------------------------------------------------------------------------------------
# Change from baseline of a wide CSV file, in columns (the common case of `ketascore change`)


def _cell_keys(tables: list[ScoredTable], which: str) -> tuple[np.ndarray, list[str]]:
    """Codes of a text column (subject or visit) over the kept rows of all chunks, and the
    distinct texts (exact: the bytes themselves are compared)."""
    parts: list[np.ndarray] = []
    width = 1
    for t in tables:
        cells = getattr(t.rows, f"{which}_cells")
        length = cells.end - cells.start
        if length.size:
            width = max(width, int(length.max()))
    for t in tables:
        rows = t.rows
        assert isinstance(rows, CsvRows)
        cells = getattr(rows, f"{which}_cells")
        kept = t.kept()
        start, end = cells.start[kept], cells.end[kept]
        a = np.frombuffer(rows.data, dtype=np.uint8)
        step = np.arange(width)
        idx = np.minimum(start[:, None].astype(np.int64) + step, max(a.shape[0] - 1, 0))
        grid = a[idx] if a.size else np.zeros((start.shape[0], width), dtype=np.uint8)
        grid[step[None, :] >= (end - start)[:, None]] = 0
        parts.append(grid)
    grid = np.concatenate(parts) if parts else np.zeros((0, width), dtype=np.uint8)
    if width <= 8:
        padded = np.zeros((grid.shape[0], 8), dtype=np.uint8)
        padded[:, :width] = grid
        keys = padded.view(">u8").reshape(-1)
        uniq, codes = np.unique(keys, return_inverse=True)
        texts = [b.decode("utf-8") for b in uniq.astype(">u8").view("S8").tolist()]
    else:
        fixed = np.ascontiguousarray(grid).view(f"S{width}").reshape(-1)
        uniq_s, codes = np.unique(fixed, return_inverse=True)
        texts = [b.decode("utf-8") for b in uniq_s.tolist()]
    return codes.reshape(-1), texts


def _natural_is_sorted(texts: list[str]) -> bool:
    """Whether texts sorted by their bytes are in ``change.natural_key`` order: true when
    they are ASCII of one length, with digits at the same places and the same other
    characters (S0001, S0002 ...)."""
    if not texts:
        return True
    first = texts[0]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    if not first.isascii() or not (lengths == len(first)).all():
        return False
    if sorted(texts[:1000]) != texts[:1000]:  # the codes come sorted by bytes
        return False
    grid = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8).reshape(
        len(texts), len(first)
    )
    digit = (grid >= 48) & (grid <= 57)
    if not (digit == digit[0]).all():
        return False
    other = grid[:, ~digit[0]]
    return bool((other == other[0]).all())


def change_csv_columnar(
    read: CsvTable,
    scale: Scale,
    score: str,
    *,
    baseline_visit: str | None = None,
    response_percent: Num | None = None,
    remission_at_most: Num | None = None,
    summary: bool = False,
    escape_formulas: bool = True,
) -> tuple[bytes, list[Issue]] | None:
    """``output.change_csv`` of ``compute_change`` for a wide CSV file read in columns, and
    the report's issues; None when the file needs what only the record path does (a
    baseline by study day or date, a baseline flag column)."""
    from ketascore.analysis.change import (
        BASELINE_NAME,
        ChangeRow,
        Criteria,
        SummaryRow,
        _mean_sd,
        _rate,
        natural_key,
    )

    tables = list(read.tables())
    if read.plan.scale.id != scale.id:
        return None
    if any(h.casefold() == "baseline_flag" for h in read.plan.header):
        return None
    rule = scale.score(score)
    criteria = Criteria.for_score(rule, response_percent, remission_at_most)
    esc = escape_formulas
    # the results, in order --------------------------------------------------------------
    kept = [t.kept() for t in tables]
    n = int(sum(k.shape[0] for k in kept))
    value = np.concatenate([t.scores[score].value[k] for t, k in zip(tables, kept, strict=True)])
    lines = np.concatenate([t.rows.lines[k] for t, k in zip(tables, kept, strict=True)])  # type: ignore[attr-defined]
    days: list[Any] = []
    dates: list[Any] = []
    overrides: dict[int, ScoreResult] = {}
    offset = 0
    for t, k in zip(tables, kept, strict=True):
        rows = t.rows
        assert isinstance(rows, CsvRows)
        if rows.days is not None:
            days += [rows.days[i] for i in k.tolist()]
        if rows.dates is not None:
            dates += [rows.dates[i] for i in k.tolist()]
        for i, result in t.overrides.items():
            j = int(np.searchsorted(k, i))
            if j < k.shape[0] and int(k[j]) == i:
                overrides[offset + j] = result
        offset += k.shape[0]
    for g, result in overrides.items():
        v = result.scores.get(score)
        value[g] = np.nan if v is None else float(v)
    subject_code, subjects = _cell_keys(tables, "subject")
    visit_code, visits_text = _cell_keys(tables, "visit")
    if n == 0:
        return None
    # visits: first seen, days and dates, the record path's order -------------------------
    first_seen_idx = np.full(len(visits_text), n, dtype=np.int64)
    np.minimum.at(first_seen_idx, visit_code, np.arange(n))
    first_seen = {visits_text[c]: int(i) for c, i in enumerate(first_seen_idx.tolist())}
    day_by_visit: dict[str, list[Any]] = {}
    date_by_visit: dict[str, list[Any]] = {}
    if days or dates:
        codes_list = visit_code.tolist()
        for i, c in enumerate(codes_list):
            if days and days[i] is not None:
                day_by_visit.setdefault(visits_text[c], []).append(days[i])
            if dates and dates[i]:
                date_by_visit.setdefault(visits_text[c], []).append(dates[i])
    from ketascore.analysis.change import _visit_sort_key

    visit_order = sorted(
        first_seen, key=lambda v: _visit_sort_key(v, day_by_visit, date_by_visit, first_seen)
    )
    # the baseline of each subject ----------------------------------------------------------
    folded = [v.casefold() for v in visits_text]
    if baseline_visit is not None:
        target, how = baseline_visit, "option"
    elif BASELINE_NAME in folded:
        target, how = BASELINE_NAME, "named"
    else:
        return None  # earliest visit by day or date: the record path decides
    at_target = np.asarray([f == target.casefold() for f in folded], dtype=bool)[visit_code]
    nsub = len(subjects)
    base_row = np.full(nsub, -1, dtype=np.int64)
    rows_at = np.flatnonzero(at_target)
    firsts = np.full(nsub, n, dtype=np.int64)
    np.minimum.at(firsts, subject_code[rows_at], rows_at)
    base_row = np.where(firsts < n, firsts, -1)
    first_row = np.full(nsub, n, dtype=np.int64)
    np.minimum.at(first_row, subject_code, np.arange(n))
    base_value = np.where(base_row >= 0, value[np.maximum(base_row, 0)], np.nan)
    valid = ~np.isnan(base_value)
    if _natural_is_sorted(subjects):
        order_subjects = list(range(nsub))
    else:
        order_subjects = sorted(range(nsub), key=lambda s: natural_key(subjects[s]))
    rank = np.empty(nsub, dtype=np.int64)
    rank[np.asarray(order_subjects, dtype=np.int64)] = np.arange(nsub)
    issues: list[Issue] = []
    flagged = ~valid | (base_value == 0)
    for s in sorted(np.flatnonzero(flagged).tolist(), key=lambda s: int(rank[s])):
        b = int(base_row[s])
        where_row = b if b >= 0 else int(first_row[s])
        if not valid[s]:
            variant, params = (
                ("no-score", {"baseline": visits_text[visit_code[b]], "score": score})
                if b >= 0
                else ("no-visit", {"baseline": target})
            )
            issues.append(
                make_issue(
                    "no-baseline",
                    variant,
                    **params,
                    file=read.file,
                    line=int(lines[where_row]),
                    subject=subjects[s],
                    visit=visits_text[visit_code[b]] if b >= 0 else None,
                    scale=scale.id,
                )
            )
        elif base_value[s] == 0:
            issues.append(
                make_issue(
                    "baseline-zero",
                    score=score,
                    file=read.file,
                    line=int(lines[b]),
                    subject=subjects[s],
                    visit=visits_text[visit_code[b]],
                    scale=scale.id,
                )
            )
    # the visits listed: the main baseline first ----------------------------------------
    base_visits = visit_code[base_row[valid]]
    visits = list(visit_order)
    if base_visits.size:
        # max() keeps the first of equal counts in the order the baselines were met
        counts = np.bincount(base_visits, minlength=len(visits_text))
        first_met = np.full(len(visits_text), nsub, dtype=np.int64)
        np.minimum.at(first_met, base_visits, rank[np.flatnonzero(valid)])
        met = sorted(np.flatnonzero(counts).tolist(), key=lambda c: int(first_met[c]))
        best = visits_text[max(met, key=lambda c: int(counts[c]))]
        visits.remove(best)
        visits.insert(0, best)
    visit_pos = np.empty(len(visits_text), dtype=np.int64)
    for c, text in enumerate(visits_text):
        visit_pos[c] = visits.index(text)
    # the follow-up rows ------------------------------------------------------------------
    is_base = np.zeros(n, dtype=bool)
    is_base[base_row[valid]] = True
    follow = valid[subject_code] & ~is_base
    idx = np.flatnonzero(follow)
    idx = idx[np.lexsort((idx, visit_pos[visit_code[idx]], rank[subject_code[idx]]))]
    b_val = base_value[subject_code[idx]]
    v_val = value[idx]
    has = ~np.isnan(v_val)
    change = np.where(has, v_val - b_val, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(has & (b_val != 0), 100 * change / b_val, np.nan)
    resp = np.full(idx.shape[0], -1, dtype=np.int64)
    if criteria.reduction_percent is not None:
        ok = has & (b_val > 0)
        resp[ok] = (change[ok] * 100 <= -criteria.reduction_percent * b_val[ok]).astype(np.int64)
    remit = np.full(idx.shape[0], -1, dtype=np.int64)
    if criteria.remission_at_most is not None:
        remit[has] = (v_val[has] <= criteria.remission_at_most).astype(np.int64)
    elif criteria.remission_below is not None:
        remit[has] = (v_val[has] < criteria.remission_below).astype(np.int64)
    if summary:
        return _change_summary_csv(
            read,
            scale,
            score,
            visits,
            visits_text,
            visit_code,
            value,
            idx,
            change,
            resp,
            remit,
            esc,
            SummaryRow,
            _mean_sd,
            _rate,
        ), issues
    if idx.size == 0:
        return b"", issues
    names = [f.name for f in dataclasses.fields(ChangeRow)]
    known = {
        "subject",
        "scale",
        "score",
        "group",
        "visit",
        "day",
        "date",
        "baseline_visit",
        "baseline_rule",
        "baseline",
        "value",
        "change",
        "percent_change",
        "response",
        "remission",
        "source_visit",
        "imputed",
        "note",
    }
    if set(names) - known:
        return None  # a field this path does not know: the record path writes it
    sub_codes = subject_code[idx]
    fields: dict[str, _Field] = {}
    fields["subject"] = _categorical(subjects, sub_codes, esc)
    zero = np.zeros(idx.shape[0], dtype=np.int64)
    fields["scale"] = _categorical([scale.id], zero, esc)
    fields["score"] = _categorical([score], zero, esc)
    fields["group"] = _categorical([None], zero, esc)
    fields["visit"] = _categorical(visits_text, visit_code[idx], esc)
    fields["day"] = _text_field(
        [days[i] for i in idx.tolist()] if days else None, idx.shape[0], esc
    )
    fields["date"] = _text_field(
        [dates[i] for i in idx.tolist()] if dates else None, idx.shape[0], esc
    )
    fields["baseline_visit"] = _categorical(visits_text, visit_code[base_row[sub_codes]], esc)
    fields["baseline_rule"] = _categorical([how], zero, esc)
    for key, arr in (
        ("baseline", b_val),
        ("value", v_val),
        ("change", change),
        ("percent_change", pct),
    ):
        texts, codes = _number_texts(arr)
        fields[key] = _categorical(texts, codes, esc)
    fields["response"] = _categorical([None, False, True], resp + 1, esc)
    fields["remission"] = _categorical([None, False, True], remit + 1, esc)
    for key in ("source_visit", "imputed", "note"):
        fields[key] = _categorical([None], zero, esc)
    import csv
    import io

    head = io.StringIO()
    csv.writer(head, lineterminator="\n").writerow(names)
    body = b"".join(_assemble([fields[k] for k in names], int(idx.shape[0])))
    return head.getvalue().encode("utf-8") + body, issues


def _change_summary_csv(
    read: CsvTable,
    scale: Scale,
    score: str,
    visits: list[str],
    visits_text: list[str],
    visit_code: np.ndarray,
    value: np.ndarray,
    idx: np.ndarray,
    change: np.ndarray,
    resp: np.ndarray,
    remit: np.ndarray,
    esc: bool,
    summary_row: Any,
    mean_sd: Any,
    rate: Any,
) -> bytes:
    from ketascore.writers import tabular as output

    out = []
    follow_visit = visit_code[idx]
    for v in visits:
        c = visits_text.index(v)
        in_group = visit_code == c
        mine = follow_visit == c
        vals = value[in_group]
        vals = vals[~np.isnan(vals)]
        chg = change[mine]
        chg = chg[~np.isnan(chg)]
        r = resp[mine]
        r = r[r >= 0]
        m = remit[mine]
        m = m[m >= 0]
        mean, sd = mean_sd([clean_number(x) for x in vals.tolist()])
        mean_c, sd_c = mean_sd([clean_number(x) for x in chg.tolist()])
        out.append(
            summary_row(
                scale=scale.id,
                score=score,
                visit=v,
                group=None,
                is_baseline=bool(in_group.any()) and not bool(mine.any()),
                n=int(vals.shape[0]),
                mean=mean,
                sd=sd,
                n_change=int(chg.shape[0]),
                mean_change=mean_c,
                sd_change=sd_c,
                responders=int(r.sum()),
                n_response=int(r.shape[0]),
                response_rate=rate(int(r.sum()), int(r.shape[0])),
                remitters=int(m.sum()),
                n_remission=int(m.shape[0]),
                remission_rate=rate(int(m.sum()), int(m.shape[0])),
            ).to_dict()
        )
    return output._table_csv(out, esc).encode("utf-8")
