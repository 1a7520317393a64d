"""Load a scale definition, check it as a whole, and compile it into scoring rules.

``load_scale_text`` parses YAML safely, validates the shape with the pydantic models of
``ketascore.core.model``, then checks how the parts relate (every problem is collected, none stops
the others) and compiles the rules the engine runs. Problems are reported as
``file:line:column: path: message``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.methods import METHODS
from ketascore.core.model import (
    Band,
    Classification,
    Condition,
    Flag,
    Item,
    MissingRule,
    Remission,
    Response,
    Rounding,
    ScaleDefinition,
    Score,
    Term,
)
from ketascore.core.values import Num, clean_number, format_number, label_key, without_unseen

LocPath = tuple[str | int, ...]


# --------------------------------------------------------------------------------------
# Problems


@dataclass(frozen=True)
class Problem:
    """One defect of a scale file, located by its path in the document."""

    path: LocPath
    message: str
    code: str = "scale-invalid"


def format_path(path: LocPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


MAX_ITEM_VALUES = 10_000  # whole values an item's range may hold (a VAS in mm has 101)
MAX_SCALE_VALUES = 1_000_000  # and all of a scale's ranges together


class ScaleError(ValueError):
    """A scale file that cannot be used; ``problems`` are formatted, one per line."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


# --------------------------------------------------------------------------------------
# Compiled rules


@dataclass(frozen=True)
class ItemRule:
    id: str
    label: str
    lo: Num
    hi: Num
    allowed: frozenset[Num] | None  # None: every whole number from lo to hi
    labels: dict[str, Num]  # normalised label -> value
    codes: dict[str, Num]
    missing_values: frozenset[Num]
    missing_labels: frozenset[str]  # label keys of missing codes
    scored: bool
    answer_labels: tuple[str, ...] = ()  # as written in the scale file
    missing_code_texts: frozenset[str] = frozenset()  # codes of missing codes
    per_unit: int = 1  # with allowed None: values from lo to hi in steps of 1 / per_unit

    @property
    def whole(self) -> bool:
        if self.allowed is None:
            return self.per_unit == 1
        return all(float(v).is_integer() for v in self.allowed)

    def allowed_values(self) -> list[Num]:
        if self.allowed is None:
            k = self.per_unit
            return [
                clean_number(int(self.lo) + j / k) for j in range((int(self.hi - self.lo)) * k + 1)
            ]
        return sorted(self.allowed)

    def describe_allowed(self) -> str:
        if self.allowed is None:
            steps = f" in steps of {format_number(1 / self.per_unit)}" if self.per_unit > 1 else ""
            return f"{format_number(self.lo)}-{format_number(self.hi)}{steps}"
        return ", ".join(format_number(v) for v in sorted(self.allowed))

    def is_allowed(self, value: Num) -> bool:
        if self.allowed is None:
            if self.per_unit == 1:  # (lo is whole)
                return self.lo <= value <= self.hi and float(value).is_integer()
            # the same arithmetic as the SQL (values.sql_item): (v - lo) * k is whole
            return (
                self.lo <= value <= self.hi
                and float((value - self.lo) * self.per_unit).is_integer()
            )
        return value in self.allowed


@dataclass(frozen=True)
class TermRule:
    ref: str
    kind: str  # "slot" (an item or an alternative) or "score"
    recode: dict[Num, Num] | None
    reverse: tuple[Num, Num] | None  # the range values are reversed within
    weight: Num
    lo: Num
    hi: Num

    def apply(self, value: Num) -> Num:
        if self.recode is not None:
            value = self.recode[value]
        if self.reverse is not None:
            value = self.reverse[0] + self.reverse[1] - value
        if self.weight != 1:
            value = value * self.weight
        return value


OPS = ("at_least", "at_most", "above", "below", "equals")
OP_WORDS = {"at_least": ">=", "at_most": "<=", "above": ">", "below": "<", "equals": "="}


@dataclass(frozen=True)
class ConditionRule:
    """A condition, compiled. ``kind`` says what it reads: an item or alternative
    ("slot"), a score ("score", optionally as its change from an earlier rating,
    ``change_from``), the difference of two items or the spread of several ("difference",
    "spread", over ``refs``), or other conditions ("all", "any", over ``parts``)."""

    ref: str
    kind: str  # slot | score | difference | spread | all | any
    op: str = ""  # at_least | at_most | above | below | equals (not for all / any)
    threshold: Num = 0
    parts: tuple[ConditionRule, ...] = ()
    refs: tuple[str, ...] = ()
    change_from: str | None = None  # previous | first_of_day (kind score)

    def test(self, value: Num) -> bool:
        op, t = self.op, self.threshold
        if op == "at_least":
            return value >= t
        if op == "at_most":
            return value <= t
        if op == "above":
            return value > t
        if op == "below":
            return value < t
        return value == t  # equals

    def describe(self) -> str:
        if self.kind in ("all", "any"):
            joined = f" {'and' if self.kind == 'all' else 'or'} ".join(
                f"({p.describe()})" if p.kind in ("all", "any") else p.describe()
                for p in self.parts
            )
            return joined
        if self.kind == "slot":
            what = f"item {self.ref}"
        elif self.kind == "difference":
            what = f"item {self.refs[0]} - item {self.refs[1]}"
        elif self.kind == "spread":
            what = f"spread of items {', '.join(self.refs)}"
        elif self.change_from == "previous":
            what = f"change of {self.ref} from the previous rating"
        elif self.change_from == "first_of_day":
            what = f"change of {self.ref} from the first rating of the day"
        else:
            what = self.ref
        return f"{what} {OP_WORDS[self.op]} {format_number(self.threshold)}"

    def leaves(self) -> list[ConditionRule]:
        if self.kind in ("all", "any"):
            return [leaf for p in self.parts for leaf in p.leaves()]
        return [self]

    def slots(self) -> list[str]:
        """The items and alternatives the condition reads, in order, once each."""
        out: dict[str, None] = {}
        for leaf in self.leaves():
            if leaf.kind == "slot":
                out[leaf.ref] = None
            out.update(dict.fromkeys(leaf.refs))
        return list(out)

    def scores(self) -> list[str]:
        return list(dict.fromkeys(leaf.ref for leaf in self.leaves() if leaf.kind == "score"))

    @property
    def across_visits(self) -> bool:
        """The condition compares with another rating of the subject (not one record)."""
        return any(leaf.change_from is not None for leaf in self.leaves())


@dataclass(frozen=True)
class ScoreRule:
    id: str
    label: str
    method: str
    terms: tuple[TermRule, ...]
    required: int
    prorate: str  # none | prorate_mean | prorate_max
    rounding: Rounding
    lo: Num
    hi: Num
    whole: bool
    bands: tuple[Band, ...]
    response: Response | None
    remission: Remission | None
    missing_source: str | None
    applies_when: ConditionRule | None = None

    def band(self, value: Num) -> str | None:
        """Bands are thresholds: a value belongs to the last band whose min it reaches."""
        found = None
        for band in self.bands:
            if value >= band.min:
                found = band.label
        return found

    def remitted(self, value: Num) -> bool | None:
        if self.remission is None:
            return None
        if self.remission.at_most is not None:
            return value <= self.remission.at_most
        if self.remission.below is not None:
            return value < self.remission.below
        return None


@dataclass(frozen=True)
class FlagRule:
    id: str
    label: str
    condition: ConditionRule


@dataclass(frozen=True)
class ClassificationRule:
    id: str
    label: str
    condition: ConditionRule
    at_baseline: bool


@dataclass(frozen=True)
class SkipRule:
    """Items not asked when ``condition`` holds; a blank one counts as ``counts_as`` (None:
    it stays unanswered)."""

    id: str
    label: str
    condition: ConditionRule
    items: tuple[str, ...]
    counts_as: Num | None


@dataclass(frozen=True)
class CheckRule:
    """A rating-consistency check: a warning (rating-check) when ``condition`` holds."""

    id: str
    label: str
    condition: ConditionRule

    @property
    def item(self) -> str | None:
        """The items the check reads, as the issue names them."""
        slots = self.condition.slots()
        return ",".join(slots) if slots else None


@dataclass
class Scale:
    """A checked scale, ready to score. ``definition`` keeps everything the file said."""

    definition: ScaleDefinition
    source: str
    sha256: str
    items: dict[str, ItemRule]
    slots: dict[str, tuple[str, ...]]  # item or alternative id -> the item ids it reads
    scores: tuple[ScoreRule, ...]  # in evaluation order
    flags: tuple[FlagRule, ...]
    classifications: tuple[ClassificationRule, ...]
    alternative_of: dict[str, str] = field(default_factory=dict)
    item_lookup: dict[str, str] = field(default_factory=dict)  # casefolded id -> item id

    dependents: dict[str, tuple[str, ...]] = field(default_factory=dict)  # score -> users
    skips: tuple[SkipRule, ...] = ()  # in evaluation order
    checks: tuple[CheckRule, ...] = ()
    alternative_lookup: dict[str, str] = field(default_factory=dict)  # casefolded id -> id
    # the flags and checks that compare a rating with an earlier one of the subject
    # (evaluated over a subject's records, not record by record)
    across_visits: tuple[str, ...] = ()

    def score_users(self) -> dict[str, list[str]]:
        """Each slot a score reads (an item, or an alternative such as HAM-D 16a/16b), with
        the scores that read it."""
        out: dict[str, list[str]] = {}
        for rule in self.scores:
            slots = {t.ref for t in rule.terms if t.kind == "slot"}
            if rule.applies_when is not None and rule.applies_when.kind == "slot":
                slots.add(rule.applies_when.ref)
            for slot in sorted(slots):
                out.setdefault(slot, []).append(rule.id)
        return out

    def absent_slots(self, present: Iterable[str]) -> dict[str, list[str]]:
        """The slots a score reads that a table whose item columns are ``present`` (item
        ids) cannot give, with the scores that read them: an item without its column, an
        alternative without a column for any of its items. A table without them would
        leave every row's scores empty or prorated; unscored items may be absent."""
        have = set(present)
        return {
            slot: users
            for slot, users in self.score_users().items()
            if not any(m in have for m in self.slots.get(slot, (slot,)))
        }

    def absent_columns_issue(self, file: str, keys: Iterable[str]) -> Issue | None:
        """The error of a table (``file``) whose item columns name the items ``keys`` (as
        its header spells them) when a score reads an item it has no column for: its
        ratings of this scale are not scored. None when nothing a score reads is absent."""
        present = {self.item_lookup.get(str(k).casefold()) for k in keys}
        absent = self.absent_slots(i for i in present if i is not None)
        if not absent:
            return None
        columns = [
            " or ".join(f"{self.id}_{m}" for m in self.slots.get(slot, (slot,))) for slot in absent
        ]
        users = dict.fromkeys(u for us in absent.values() for u in us)
        wanted = {m.casefold() for slot in absent for m in self.slots.get(slot, (slot,))}
        alike = [f"{self.id}_{k!s}" for k in keys if without_unseen(str(k)).casefold() in wanted]
        return make_issue(
            "missing-column",
            "scored-item",
            file=file,
            columns=", ".join(columns),
            scale=self.id,
            scores=", ".join(users),
            alike=(
                f"; the header has {', '.join(repr(a) for a in alike)}, which differs by a "
                "character that does not show: correct the header"
                if alike
                else ""
            ),
        )

    def __post_init__(self) -> None:
        rules: list[FlagRule | CheckRule] = [*self.flags, *self.checks]
        self.across_visits = tuple(r.id for r in rules if r.condition.across_visits)
        self.item_lookup = {item_id.casefold(): item_id for item_id in self.items}
        self.alternative_lookup = {
            slot.casefold(): slot for slot, members in self.slots.items() if len(members) > 1
        }
        users: dict[str, list[str]] = {}
        for rule in self.scores:  # evaluation order: users come after what they use
            for term in rule.terms:
                if term.kind == "score":
                    users.setdefault(term.ref, []).append(rule.id)
        closure: dict[str, tuple[str, ...]] = {}
        for rule in reversed(self.scores):
            direct = users.get(rule.id, [])
            found = dict.fromkeys(direct)
            for d in direct:
                found.update(dict.fromkeys(closure.get(d, ())))
            closure[rule.id] = tuple(found)
        self.dependents = {k: v for k, v in closure.items() if v}

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def version(self) -> str:
        return self.definition.version

    @property
    def name(self) -> str:
        return self.definition.name

    def score(self, score_id: str) -> ScoreRule:
        for rule in self.scores:
            if rule.id == score_id:
                return rule
        raise KeyError(score_id)

    @property
    def score_ids(self) -> list[str]:
        """Score ids in the order the file lists them."""
        return [s.id for s in self.definition.scores]


# --------------------------------------------------------------------------------------
# Checking and compiling


class _Compiler:
    def __init__(self, definition: ScaleDefinition):
        self.d = definition
        self.problems: list[Problem] = []
        self.items: dict[str, ItemRule] = {}
        self.item_index: dict[str, int] = {}
        self.slots: dict[str, tuple[str, ...]] = {}
        self.slot_range: dict[str, tuple[Num, Num]] = {}
        self.slot_values: dict[str, list[Num]] = {}
        self.alternative_of: dict[str, str] = {}
        self.score_defs: dict[str, tuple[int, Score]] = {}
        self.score_rules: dict[str, ScoreRule] = {}
        self.skip_rules: list[SkipRule] = []
        self.check_rules: list[CheckRule] = []
        self.range_values = 0  # whole values of the items' ranges so far

    def problem(self, path: LocPath, message: str) -> None:
        self.problems.append(Problem(path, message))

    # items -------------------------------------------------------------------------

    def compile_items(self) -> None:
        citation_keys = [c.key for c in self.d.citations]
        for key in sorted({k for k in citation_keys if citation_keys.count(k) > 1}):
            self.problem(("citations",), f"citation key {key!r} is used more than once")
        for i, item in enumerate(self.d.items):
            path: LocPath = ("items", i)
            if item.id in self.items:
                self.problem((*path, "id"), f"item id {item.id!r} is used more than once")
                continue
            rule = self.compile_item(item, path)
            if rule is not None:
                self.items[item.id] = rule
                self.item_index[item.id] = i

    def compile_item(self, item: Item, path: LocPath) -> ItemRule | None:
        if (item.range is None) == (item.values is None):
            self.problem(path, "give exactly one of range (min, max) or values (a list)")
            return None
        allowed: frozenset[Num] | None = None
        per_unit = 1
        if item.step is not None and item.range is None:
            self.problem((*path, "step"), "step goes with range (give the values otherwise)")
            return None
        if item.range is not None:
            lo, hi = item.range
            if not (float(lo).is_integer() and float(hi).is_integer()):
                self.problem((*path, "range"), "a range holds whole numbers; use values for others")
                return None
            if lo > hi:
                self.problem((*path, "range"), f"range minimum {lo} is above its maximum {hi}")
                return None
            lo, hi = int(lo), int(hi)
            if item.step is not None:
                units = 1 / item.step
                if not (float(units).is_integer() and 1 <= units <= 100):
                    self.problem(
                        (*path, "step"),
                        f"step {format_number(item.step)} does not divide 1 into whole parts; "
                        "use 1, 0.5, 0.25 or another 1/n (n up to 100)",
                    )
                    return None
                per_unit = int(units)
            if (hi - lo) * per_unit >= MAX_ITEM_VALUES:
                # every allowed value is listed when the scale is compiled: a declared range
                # must not make memory explode (a rating item has a handful of values)
                self.problem(
                    (*path, "range"),
                    f"range {lo}-{hi} holds {(hi - lo) * per_unit + 1:,} "
                    f"{'whole ' if per_unit == 1 else ''}values; an item may have at most "
                    f"{MAX_ITEM_VALUES:,}",
                )
                return None
            self.range_values += (hi - lo) * per_unit + 1
            if self.range_values > MAX_SCALE_VALUES:
                self.problem(
                    (*path, "range"),
                    f"the items' ranges hold more than {MAX_SCALE_VALUES:,} whole values in all",
                )
                return None
        else:
            assert item.values is not None
            if not item.values:
                self.problem((*path, "values"), "values must list at least one value")
                return None
            if len(set(item.values)) != len(item.values):
                self.problem((*path, "values"), "values lists a value more than once")
            allowed = frozenset(clean_number(v) for v in item.values)
            lo, hi = min(allowed), max(allowed)

        def is_allowed(v: Num) -> bool:
            if allowed is None:
                return lo <= v <= hi and float((v - lo) * per_unit).is_integer()
            return v in allowed

        labels: dict[str, Num] = {}
        codes: dict[str, Num] = {}
        answers = item.answers
        answers_path: LocPath = (*path, "answers")
        if isinstance(answers, str):
            if answers not in self.d.answer_sets:
                self.problem(answers_path, f"answer set {answers!r} is not defined in answer_sets")
                answers = None
            else:
                answers_path = ("answer_sets", answers)
                answers = self.d.answer_sets[answers]
        for j, answer in enumerate(answers or []):
            value = clean_number(answer.value)
            if not is_allowed(value):
                self.problem(
                    (*answers_path, j, "value"),
                    f"answer {answer.label!r} has value {format_number(value)}, "
                    f"which item {item.id} does not allow",
                )
            key = label_key(answer.label)
            if key in labels:
                self.problem((*answers_path, j, "label"), f"answer label {answer.label!r} repeats")
            labels[key] = value
            if answer.code:
                codes[answer.code] = value
        missing_values: set[Num] = set()
        missing_labels: set[str] = set()
        missing_codes: set[str] = set()
        for j, code in enumerate(item.missing_codes):
            mpath = (*path, "missing_codes", j)
            if code.value is None and code.label is None and code.code is None:
                self.problem(mpath, "a missing code needs a value, a label or a code")
            if code.value is not None:
                value = clean_number(code.value)
                if is_allowed(value):
                    self.problem(
                        (*mpath, "value"),
                        f"missing code {format_number(value)} is also an allowed value of item "
                        f"{item.id}; a code that means 'no answer' must lie outside the range",
                    )
                missing_values.add(value)
            if code.label is not None:
                key = label_key(code.label)
                if key in labels:
                    self.problem((*mpath, "label"), f"label {code.label!r} is also an answer label")
                missing_labels.add(key)
            if code.code is not None:
                missing_codes.add(code.code)
        return ItemRule(
            id=item.id,
            label=item.label,
            lo=lo,
            hi=hi,
            allowed=allowed,
            labels=labels,
            codes=codes,
            missing_values=frozenset(missing_values),
            missing_labels=frozenset(missing_labels),
            missing_code_texts=frozenset(missing_codes),
            scored=item.scored,
            answer_labels=tuple(a.label for a in answers or []),
            per_unit=per_unit,
        )

    def compile_slots(self) -> None:
        for item_id, rule in self.items.items():
            self.slots[item_id] = (item_id,)
            self.slot_range[item_id] = (rule.lo, rule.hi)
            self.slot_values[item_id] = rule.allowed_values()
        for i, alt in enumerate(self.d.alternatives):
            path: LocPath = ("alternatives", i)
            if alt.id in self.slots:
                self.problem((*path, "id"), f"id {alt.id!r} is already used by an item")
                continue
            members: list[str] = []
            for j, item_id in enumerate(alt.items):
                if item_id not in self.items:
                    self.problem((*path, "items", j), f"unknown item {item_id!r}")
                    continue
                if item_id in self.alternative_of:
                    self.problem(
                        (*path, "items", j),
                        f"item {item_id!r} is already an alternative of "
                        f"{self.alternative_of[item_id]!r}",
                    )
                    continue
                self.alternative_of[item_id] = alt.id
                members.append(item_id)
            if len(members) < 2:
                continue
            self.slots[alt.id] = tuple(members)
            values = sorted({v for m in members for v in self.items[m].allowed_values()})
            self.slot_values[alt.id] = values
            self.slot_range[alt.id] = (values[0], values[-1])

    # scores ------------------------------------------------------------------------

    def resolve(self, ref: str, path: LocPath, *, want: str | None = None) -> str | None:
        """Kind of ``ref`` ("slot" or "score"), reporting unknown and unusable references."""
        is_slot = ref in self.slots
        is_score = ref in self.score_defs
        if is_slot and is_score:
            self.problem(path, f"{ref!r} names both an item and a score")
            return None
        if want == "slot" and not is_slot:
            if is_score:
                self.problem(path, f"{ref!r} is a score; write score: {ref}")
            else:
                self.problem(path, f"unknown item {ref!r}")
            return None
        if want == "score" and not is_score:
            self.problem(path, f"unknown score {ref!r}")
            return None
        if not (is_slot or is_score):
            self.problem(path, f"unknown item or score {ref!r}")
            return None
        if is_slot and ref in self.alternative_of:
            self.problem(
                path,
                f"item {ref!r} is one of the alternatives {self.alternative_of[ref]!r}; "
                f"refer to {self.alternative_of[ref]!r} instead",
            )
            return None
        if is_slot and ref in self.items and not self.items[ref].scored:
            self.problem(path, f"item {ref!r} is marked scored: false but a score uses it")
            return None
        return "slot" if is_slot else "score"

    def compile_scores(self) -> None:
        for i, score in enumerate(self.d.scores):
            if score.id in self.score_defs:
                self.problem(("scores", i, "id"), f"score id {score.id!r} is used more than once")
                continue
            if score.id in self.slots:
                self.problem(("scores", i, "id"), f"score id {score.id!r} is also an item id")
                continue
            self.score_defs[score.id] = (i, score)
        order = self.evaluation_order()
        for score_id in order:
            i, score = self.score_defs[score_id]
            rule = self.compile_score(score, ("scores", i))
            if rule is not None:
                self.score_rules[score_id] = rule

    def score_refs(self, score: Score) -> list[str]:
        refs = []
        if score.applies_when is not None:
            refs += condition_scores(score.applies_when)
        for term in score.of:
            if isinstance(term, Term):
                if term.score is not None:
                    refs.append(term.score)
            elif term in self.score_defs and term not in self.slots:
                refs.append(term)
        return refs

    def evaluation_order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(sid: str, chain: list[str]) -> None:
            if state.get(sid) == 2:
                return
            if state.get(sid) == 1:
                cycle = " -> ".join([*chain[chain.index(sid) :], sid])
                i, _ = self.score_defs[sid]
                self.problem(("scores", i, "of"), f"scores refer to each other in a cycle: {cycle}")
                return
            state[sid] = 1
            for ref in self.score_refs(self.score_defs[sid][1]):
                if ref in self.score_defs:
                    visit(ref, [*chain, sid])
            state[sid] = 2
            order.append(sid)

        for sid in self.score_defs:
            visit(sid, [])
        return order

    def compile_term(self, term: Any, path: LocPath) -> TermRule | None:
        if not isinstance(term, Term):
            term = Term(item=term) if term in self.slots else Term(score=term)
            kind = self.resolve(term.item or term.score or "", path)
        else:
            if (term.item is None) == (term.score is None):
                self.problem(path, "a term names exactly one of item or score")
                return None
            want = "slot" if term.item is not None else "score"
            kind = self.resolve(term.item or term.score or "", path, want=want)
        if kind is None:
            return None
        ref = term.item or term.score or ""
        if kind == "slot":
            values = list(self.slot_values[ref])
        else:
            if ref not in self.score_rules:
                return None  # the referred score has problems of its own
            sub = self.score_rules[ref]
            if term.recode is not None:
                self.problem((*path, "recode"), "recode applies to items, not to scores")
                return None
            values = [sub.lo, sub.hi]
        recode: dict[Num, Num] | None = None
        if term.recode is not None:
            recode = {}
            for key, new in term.recode.items():
                try:
                    old = clean_number(float(key))
                except ValueError:
                    self.problem((*path, "recode", key), f"recode key {key!r} is not a number")
                    continue
                recode[old] = clean_number(new)
            unmapped = [v for v in values if v not in recode]
            if unmapped:
                self.problem(
                    (*path, "recode"),
                    "recode does not map the value(s) "
                    + ", ".join(format_number(v) for v in unmapped),
                )
                return None
            extra = [k for k in recode if k not in values]
            if extra:
                self.problem(
                    (*path, "recode"),
                    f"recode maps value(s) {', '.join(format_number(v) for v in extra)} that "
                    f"item {ref} does not allow",
                )
            values = [recode[v] for v in values]
        lo, hi = min(values), max(values)
        reverse = (lo, hi) if term.reverse else None
        if term.weight == 0:
            self.problem((*path, "weight"), "a weight of 0 removes the item; leave it out instead")
            return None
        w = term.weight
        tlo, thi = sorted((clean_number(lo * w), clean_number(hi * w)))
        return TermRule(ref, kind, recode, reverse, w, tlo, thi)

    def compile_score(self, score: Score, path: LocPath) -> ScoreRule | None:
        terms: list[TermRule] = []
        ok = True
        for j, term in enumerate(score.of):
            rule = self.compile_term(term, (*path, "of", j))
            if rule is None:
                ok = False
            else:
                terms.append(rule)
        refs = [t.ref for t in terms]
        for ref in sorted({r for r in refs if refs.count(r) > 1}):
            self.problem((*path, "of"), f"{ref!r} appears more than once")
            ok = False
        if not ok:
            # the range is unknown, but the bands can still be checked against each other
            self.check_bands(score, path, None, None, whole=True)
            return None
        n = len(terms)
        missing = score.missing or MissingRule()
        mpath = (*path, "missing")
        if missing.min_answered is not None and missing.max_missing is not None:
            self.problem(mpath, "give min_answered or max_missing, not both")
            return None
        required = n
        if missing.min_answered is not None:
            required = missing.min_answered
        elif missing.max_missing is not None:
            required = n - missing.max_missing
        if required > n:
            self.problem(mpath, f"requires {required} answered items but the score has only {n}")
            return None
        required = max(required, 1)
        method = METHODS[score.method]
        for message in method.problems(missing, required, n, [(t.lo, t.hi) for t in terms]):
            self.problem((*mpath, "method"), message)
        lo, hi = method.value_range([t.lo for t in terms], [t.hi for t in terms], required)
        whole_terms = all(self.term_is_whole(t) for t in terms)
        whole = method.whole(whole_terms, missing, missing.method != "none" and required < n)
        if score.range is not None and (score.range[0] != lo or score.range[1] != hi):
            self.problem(
                (*path, "range"),
                f"declared range {format_number(score.range[0])}-{format_number(score.range[1])}"
                f" differs from the range computed from the items, "
                f"{format_number(lo)}-{format_number(hi)}",
            )
        self.check_bands(score, path, lo, hi, whole)
        for name, value in (
            ("response", score.response),
            ("remission", score.remission),
        ):
            if value is None:
                continue
            if isinstance(value, Remission):
                if (value.at_most is None) == (value.below is None):
                    self.problem((*path, name), "give exactly one of at_most or below")
                    continue
                threshold = value.at_most if value.at_most is not None else value.below
                assert threshold is not None
                if not lo <= threshold <= hi:
                    self.problem(
                        (*path, name),
                        f"threshold {format_number(threshold)} lies outside the score's range "
                        f"{format_number(lo)}-{format_number(hi)}",
                    )
        applies_when = None
        if score.applies_when is not None:
            if score.id in condition_scores(score.applies_when):
                self.problem((*path, "applies_when"), "a score cannot depend on itself")
                return None
            applies_when = self.compile_condition(score.applies_when, (*path, "applies_when"))
            if applies_when is None:
                return None
        return ScoreRule(
            applies_when=applies_when,
            id=score.id,
            label=score.label,
            method=score.method,
            terms=tuple(terms),
            required=required,
            prorate=missing.method if required < n else "none",
            rounding=missing.rounding,
            lo=lo,
            hi=hi,
            whole=whole,
            bands=tuple(score.bands),
            response=score.response,
            remission=score.remission,
            missing_source=missing.source,
        )

    def term_is_whole(self, term: TermRule) -> bool:
        if term.kind == "score":
            rule = self.score_rules.get(term.ref)
            whole = rule is not None and rule.whole
        elif term.recode is not None:
            whole = all(float(v).is_integer() for v in term.recode.values())
        else:
            whole = all(float(v).is_integer() for v in self.slot_values[term.ref])
        return whole and float(term.weight).is_integer()

    def check_bands(
        self, score: Score, path: LocPath, lo: Num | None, hi: Num | None, whole: bool
    ) -> None:
        if not score.bands:
            return
        bpath = (*path, "bands")
        bands = score.bands
        labels = [b.label for b in bands]
        for label in sorted({x for x in labels if labels.count(x) > 1}):
            self.problem(bpath, f"band label {label!r} is used more than once")
        for k, band in enumerate(bands):
            if band.min > band.max:
                self.problem(
                    (*bpath, k), f"band {band.label!r} has min {band.min} above max {band.max}"
                )
        if lo is not None and bands[0].min != lo:
            self.problem(
                (*bpath, 0, "min"),
                f"the first band starts at {format_number(bands[0].min)} but the score's minimum "
                f"is {format_number(lo)}",
            )
        if hi is not None and bands[-1].max != hi:
            self.problem(
                (*bpath, len(bands) - 1, "max"),
                f"the last band ends at {format_number(bands[-1].max)} but the score's maximum "
                f"is {format_number(hi)}",
            )
        for k in range(1, len(bands)):
            prev, band = bands[k - 1], bands[k]
            gap = band.min - prev.max
            # Whole-number scores: the next band starts one above the previous maximum.
            # Other scores may also use continuous bands that meet (0-1.5, 1.5-3).
            if gap == 1 or (gap == 0 and not whole):
                continue
            if gap <= 0:
                self.problem(
                    (*bpath, k, "min"),
                    f"bands {prev.label!r} ({format_number(prev.min)}-{format_number(prev.max)}) "
                    f"and {band.label!r} ({format_number(band.min)}-{format_number(band.max)}) "
                    f"overlap",
                )
            else:
                self.problem(
                    (*bpath, k, "min"),
                    f"gap between bands {prev.label!r} (ends at {format_number(prev.max)}) and "
                    f"{band.label!r} (starts at {format_number(band.min)})",
                )

    # flags and classifications -----------------------------------------------------

    def compile_condition(
        self,
        cond: Condition,
        path: LocPath,
        *,
        scores: bool = True,
        across_visits: bool = False,
    ) -> ConditionRule | None:
        """A condition; ``scores``: it may read scores; ``across_visits``: it may compare a
        score with an earlier rating (change_from)."""
        ops = {name: getattr(cond, name) for name in OPS if getattr(cond, name) is not None}
        subjects = [
            name
            for name in ("item", "score", "difference", "spread", "all", "any")
            if getattr(cond, name) is not None
        ]
        if len(subjects) != 1:
            self.problem(
                path, "a condition names exactly one of item, score, difference, spread, all, any"
            )
            return None
        (subject,) = subjects
        if cond.change_from is not None and subject != "score":
            self.problem((*path, "change_from"), "change_from goes with score")
            return None
        if subject in ("all", "any"):
            if ops:
                self.problem(path, f"{subject} combines conditions; put the tests in them")
                return None
            conditions = getattr(cond, subject)
            if not conditions:
                self.problem((*path, subject), f"{subject} needs at least one condition")
                return None
            parts = [
                self.compile_condition(
                    c, (*path, subject, j), scores=scores, across_visits=across_visits
                )
                for j, c in enumerate(conditions)
            ]
            if any(part is None for part in parts):
                return None
            return ConditionRule("", subject, parts=tuple(p for p in parts if p is not None))
        if len(ops) != 1:
            self.problem(path, "give exactly one of at_least, at_most, above, below, equals")
            return None
        ((op, threshold),) = ops.items()
        if subject in ("difference", "spread"):
            refs = list(getattr(cond, subject))
            if subject == "difference" and len(refs) != 2:
                self.problem((*path, subject), "difference names two items (first minus second)")
                return None
            if subject == "spread" and len(refs) < 2:
                self.problem((*path, subject), "spread names at least two items")
                return None
            ok = True
            for j, ref in enumerate(refs):
                if ref not in self.slots:
                    self.problem((*path, subject, j), f"unknown item {ref!r}")
                    ok = False
            if not ok:
                return None
            return ConditionRule("", subject, op, threshold, refs=tuple(refs))
        if subject == "item":
            ref = cond.item or ""
            if ref not in self.slots:
                self.problem((*path, "item"), f"unknown item {ref!r}")
                return None
            rule = ConditionRule(ref, "slot", op, threshold)
            if not any(rule.test(v) for v in self.slot_values[ref]):
                values = ", ".join(format_number(v) for v in self.slot_values[ref])
                self.problem(
                    path,
                    f"item {ref} can never be {OP_WORDS[op]} {format_number(threshold)} "
                    f"(its values: {values})",
                )
                return None
            return rule
        ref = cond.score or ""
        if not scores:
            self.problem((*path, "score"), "this condition reads items only")
            return None
        if cond.change_from is not None and not across_visits:
            self.problem(
                (*path, "change_from"),
                "change_from compares ratings across visits: flags and checks only",
            )
            return None
        if ref not in self.score_rules:
            if ref not in self.score_defs:
                self.problem((*path, "score"), f"unknown score {ref!r}")
            return None
        return ConditionRule(ref, "score", op, threshold, change_from=cond.change_from)

    def compile_flags(self) -> tuple[list[FlagRule], list[ClassificationRule]]:
        flags: list[FlagRule] = []
        classes: list[ClassificationRule] = []
        seen: set[str] = set()
        entries: Iterable[tuple[str, int, Flag | Classification]] = [
            *(("flags", i, f) for i, f in enumerate(self.d.flags)),
            *(("classifications", i, c) for i, c in enumerate(self.d.classifications)),
        ]
        for section, i, entry in entries:
            path: LocPath = (section, i)
            if entry.id in seen:
                self.problem((*path, "id"), f"flag or classification id {entry.id!r} repeats")
                continue
            seen.add(entry.id)
            cond = self.compile_condition(
                entry.when, (*path, "when"), across_visits=isinstance(entry, Flag)
            )
            if cond is None:
                continue
            if isinstance(entry, Classification):
                classes.append(ClassificationRule(entry.id, entry.label, cond, entry.at_baseline))
            else:
                flags.append(FlagRule(entry.id, entry.label, cond))
        return flags, classes

    def compile_skips(self) -> list[SkipRule]:
        """Skip rules, in the order they must be applied (a rule that reads an item another
        rule skips comes after it); a cycle is a problem."""
        rules: dict[str, tuple[int, SkipRule]] = {}
        skipped_by: dict[str, str] = {}
        for i, skip in enumerate(self.d.skips):
            path: LocPath = ("skips", i)
            if skip.id in rules:
                self.problem((*path, "id"), f"skip rule id {skip.id!r} repeats")
                continue
            cond = self.compile_condition(skip.when, (*path, "when"), scores=False)
            ok = cond is not None
            for slot in cond.slots() if cond is not None else []:
                if slot not in self.items:
                    self.problem(
                        (*path, "when"),
                        f"{slot!r} is an alternative; a skip condition names items "
                        f"({', '.join(self.slots[slot])})",
                    )
                    ok = False
            for j, item_id in enumerate(skip.items):
                ipath = (*path, "items", j)
                if item_id not in self.items:
                    what = "an alternative; name its items" if item_id in self.slots else "unknown"
                    self.problem(ipath, f"item {item_id!r} is {what}")
                    ok = False
                elif item_id in skipped_by:
                    self.problem(
                        ipath,
                        f"item {item_id!r} is already skipped by rule {skipped_by[item_id]!r}",
                    )
                    ok = False
                elif skip.counts_as is not None and not self.items[item_id].is_allowed(
                    clean_number(skip.counts_as)
                ):
                    self.problem(
                        (*path, "counts_as"),
                        f"counts_as {format_number(skip.counts_as)} is not a value item "
                        f"{item_id} allows ({self.items[item_id].describe_allowed()})",
                    )
                    ok = False
                else:
                    skipped_by[item_id] = skip.id
            if not ok or cond is None:
                continue
            counts_as = None if skip.counts_as is None else clean_number(skip.counts_as)
            rules[skip.id] = (i, SkipRule(skip.id, skip.label, cond, tuple(skip.items), counts_as))

        # order: the items a rule reads are settled first
        def reads(rule: SkipRule) -> set[str]:
            out: set[str] = set()
            for slot in rule.condition.slots():
                out.update(self.slots.get(slot, (slot,)))
            return out

        order: list[SkipRule] = []
        state: dict[str, int] = {}

        def visit(rid: str, chain: list[str]) -> None:
            if state.get(rid) == 2:
                return
            i, rule = rules[rid]
            if state.get(rid) == 1:
                cycle = " -> ".join([*chain[chain.index(rid) :], rid])
                self.problem(
                    ("skips", i, "when"), f"skip rules depend on each other in a cycle: {cycle}"
                )
                return
            state[rid] = 1
            for item_id in sorted(reads(rule)):
                other = skipped_by.get(item_id)
                if other is not None and other in rules:
                    visit(other, [*chain, rid])
            state[rid] = 2
            order.append(rule)

        for rid in rules:
            visit(rid, [])
        return order

    def compile_checks(self) -> list[CheckRule]:
        checks: list[CheckRule] = []
        seen: set[str] = set()
        for i, check in enumerate(self.d.checks):
            path: LocPath = ("checks", i)
            if check.id in seen:
                self.problem((*path, "id"), f"check id {check.id!r} repeats")
                continue
            seen.add(check.id)
            cond = self.compile_condition(check.when, (*path, "when"), across_visits=True)
            if cond is not None:
                checks.append(CheckRule(check.id, check.label, cond))
        return checks

    def check_citations(self) -> None:
        keys = {c.key for c in self.d.citations}

        def need(path: LocPath, key: str | None) -> None:
            if key is not None and key not in keys:
                self.problem(path, f"unknown citation key {key!r}")

        for i, score in enumerate(self.d.scores):
            need(("scores", i, "bands_source"), score.bands_source)
            if score.missing is not None:
                need(("scores", i, "missing", "source"), score.missing.source)
            if score.response is not None:
                need(("scores", i, "response", "source"), score.response.source)
            if score.remission is not None:
                need(("scores", i, "remission", "source"), score.remission.source)
        for i, flag in enumerate(self.d.flags):
            need(("flags", i, "source"), flag.source)
        for i, cls in enumerate(self.d.classifications):
            need(("classifications", i, "source"), cls.source)
        for i, example in enumerate(self.d.examples):
            need(("examples", i, "source"), example.source)
        for i, skip in enumerate(self.d.skips):
            need(("skips", i, "source"), skip.source)
        for i, check in enumerate(self.d.checks):
            need(("checks", i, "source"), check.source)

    def run(self) -> tuple[list[FlagRule], list[ClassificationRule]]:
        self.compile_items()
        self.compile_slots()
        self.compile_scores()
        flags, classes = self.compile_flags()
        self.skip_rules = self.compile_skips()
        self.check_rules = self.compile_checks()
        self.check_citations()
        return flags, classes


def compile_definition(
    definition: ScaleDefinition, source: str = "<scale>", sha256: str = ""
) -> tuple[Scale | None, list[Problem]]:
    """Check how a definition's parts fit together and compile it; all problems at once."""
    compiler = _Compiler(definition)
    flags, classes = compiler.run()
    if compiler.problems:
        return None, compiler.problems
    order = [s for s in compiler.score_rules.values()]
    scale = Scale(
        definition=definition,
        source=source,
        sha256=sha256,
        items=compiler.items,
        slots=compiler.slots,
        scores=tuple(order),
        flags=tuple(flags),
        classifications=tuple(classes),
        alternative_of=compiler.alternative_of,
        skips=tuple(compiler.skip_rules),
        checks=tuple(compiler.check_rules),
    )
    return scale, []


def condition_scores(cond: Condition) -> list[str]:
    """The scores a condition (as written) reads."""
    out = [cond.score] if cond.score is not None else []
    for part in [*(cond.all or []), *(cond.any or [])]:
        out += condition_scores(part)
    return out


# --------------------------------------------------------------------------------------
# Loading


def pydantic_problems(exc: ValidationError, data: Any) -> list[Problem]:
    problems = []
    located_errors: list[tuple[LocPath, Any]] = []
    for err in exc.errors():
        path: list[str | int] = []
        node = data
        for part in err["loc"]:
            # pydantic adds the names of union members to the location; keep only real keys
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_dict or in_list:
                node = node[part]
                path.append(part)
            elif err["type"] == "missing" and part == err["loc"][-1]:
                path.append(part)
        located_errors.append((tuple(path), err))
    # a number field (int | float) reports both members' errors; say "a number" once instead
    types_at: dict[LocPath, set[str]] = {}
    for loc, err in located_errors:
        types_at.setdefault(loc, set()).add(err["type"])
    for loc, err in located_errors:
        path = list(loc)
        message = err["msg"]
        number_union = {"int_type", "float_type"} <= types_at[loc]
        if err["type"] in ("int_type", "float_type") and number_union:
            message = f"expected a number, got {err.get('input')!r}"
        elif err["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}" if path else "unknown key"
        elif err["type"] == "missing":
            message = "required key is missing"
        problems.append(Problem(tuple(path), message, "scale-schema"))
    # one message per path is enough when several union members fail at the same place
    unique: dict[tuple[LocPath, str], Problem] = {}
    for p in problems:
        unique.setdefault((p.path, p.message), p)
    return list(unique.values())


def format_problem(source: str, located: yamlsafe.Located | None, problem: Problem) -> str:
    pos = located.position(problem.path) if located is not None else None
    if problem.path and located is not None and problem.message == "required key is missing":
        pos = located.position(problem.path[:-1])
    where = f"{source}:{pos.line}:{pos.column}" if pos else source
    return f"{where}: {format_path(problem.path)}: {problem.message}"


@dataclass
class LoadReport:
    """What loading a scale file found: the scale (if usable) and every problem."""

    source: str
    scale: Scale | None
    problems: list[str]
    located: yamlsafe.Located | None = None


def check_scale_text(text: str, source: str = "<scale>") -> LoadReport:
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        located = yamlsafe.load(text)
    except yamlsafe.YamlError as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        return LoadReport(source, None, [f"{where}: {exc.message}"])
    if not isinstance(located.data, dict):
        return LoadReport(
            source, None, [f"{source}:1:1: (document): a scale file holds a mapping of keys"]
        )
    try:
        definition = ScaleDefinition.model_validate(located.data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, located.data)
        return LoadReport(
            source, None, [format_problem(source, located, p) for p in problems], located
        )
    scale, problems = compile_definition(definition, source, sha)
    return LoadReport(
        source, scale, [format_problem(source, located, p) for p in problems], located
    )


def load_scale_text(text: str, source: str = "<scale>") -> Scale:
    report = check_scale_text(text, source)
    if report.scale is None:
        raise ScaleError(source, report.problems)
    return report.scale


def load_scale_file(path: str | Path) -> Scale:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScaleError(str(path), [f"{path}: cannot read scale file: {exc}"]) from None
    return load_scale_text(text, str(path))


M = TypeVar("M", bound=BaseModel)


def load_model(
    text: str,
    source: str,
    model: type[M],
    relations: Callable[[M], list[Problem]] = lambda _: [],
    numbers: yamlsafe.Numbers = "yaml",
) -> M:
    """Parse and check one data file written in YAML (measures, session rules, windows):
    safe YAML, the pydantic ``model``, then ``relations`` between its parts; raises
    ScaleError with every problem located as ``file:line:column: path: message``."""
    try:
        located = yamlsafe.load(text, numbers=numbers)
    except yamlsafe.YamlError as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        raise ScaleError(source, [f"{where}: {exc.message}"]) from None
    if not isinstance(located.data, dict):
        raise ScaleError(source, [f"{source}:1:1: (document): the file holds a mapping of keys"])
    try:
        parsed = model.model_validate(located.data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, located.data)
        raise ScaleError(source, [format_problem(source, located, p) for p in problems]) from None
    found = relations(parsed)
    if found:
        raise ScaleError(source, [format_problem(source, located, p) for p in found])
    return parsed
