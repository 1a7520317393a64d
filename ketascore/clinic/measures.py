"""Named outcome measures as data: NHS Talking Therapies reliable improvement and recovery,
CMS159 / MIPS 370 depression remission at twelve months, HEDIS DRR-E response and remission.

A measure file (``ketascore/clinic/data/measures/*.yaml``, or any file of the same shape)
names the scale scores it reads (``parts``), how each patient's first record is chosen
(``start``: the earliest, optionally the earliest meeting an index condition such as PHQ-9
> 9), how the follow-up record is chosen (``follow_up``: a window of days, optionally around an
anchor some calendar months after the start, and the window rule that picks in it, as in
``ketascore.analysis.windows.choose``), and each outcome as clauses over facts of the parts
(``remission``, ``reliable_improvement``, ...). Every rule cites its source; the worked
examples of each file are run by the test suite.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from ketascore.analysis.windows import choose, pick_reason
from ketascore.clinic import files
from ketascore.core.issues import Issue, make_issue
from ketascore.core.model import Citation, Id, Text
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Problem, load_model
from ketascore.core.values import Num, clean_number

Number = StrictInt | StrictFloat
Fact = Literal[
    "followed_up",
    "case_at_start",
    "case_at_end",
    "reliable_improvement",
    "reliable_deterioration",
    "remission",
    "response",
]
FACTS: tuple[str, ...] = get_args(Fact)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Threshold(_Model):
    """A condition on a score value (give one)."""

    at_least: Number | None = None
    at_most: Number | None = None
    above: Number | None = None
    below: Number | None = None

    def test(self, value: Num) -> bool:
        if self.at_least is not None:
            return value >= self.at_least
        if self.at_most is not None:
            return value <= self.at_most
        if self.above is not None:
            return value > self.above
        assert self.below is not None
        return value < self.below

    def describe(self) -> str:
        for op, word in (("at_least", ">="), ("at_most", "<="), ("above", ">"), ("below", "<")):
            value = getattr(self, op)
            if value is not None:
                return f"{word} {value}"
        return "?"


class Part(_Model):
    """One scale score the measure reads, and its thresholds."""

    id: Id
    scale: str
    score: str = "total"
    index: Threshold | None = Field(default=None, description="the start record must meet this")
    caseness: Threshold | None = None
    remission: Threshold | None = None
    reliable_change: Number | None = Field(default=None, gt=0, description="points")
    response_percent: Number | None = Field(default=None, gt=0, le=100)
    source: str | None = None


class Start(_Model):
    pick: Literal["earliest", "latest"] = "earliest"
    index_required: bool = Field(
        default=True, description="the start is the first record meeting the part's index"
    )
    source: str | None = None


class FollowUp(_Model):
    anchor_months: StrictInt | None = Field(
        default=None, ge=0, description="calendar months from the start date to the anchor"
    )
    from_day: Number | None = Field(default=None, alias="from", description="days from the anchor")
    to_day: Number | None = Field(default=None, alias="to")
    pick: Literal["latest", "earliest", "closest"] = "latest"
    source: str | None = None


class Clause(_Model):
    """``{any: FACT}``: at least one part; ``{all: FACT}``: every part; ``{none: FACT}``."""

    any: Fact | None = None
    all: Fact | None = None
    none: Fact | None = None


class Outcome(_Model):
    id: Id
    label: str
    eligible: list[Clause] = Field(default_factory=list, description="added to the denominator")
    met: list[Clause] = Field(min_length=1)
    source: str | None = None


class ExampleRecord(_Model):
    part: str
    date: str
    value: Number | None


class ExampleExpect(_Model):
    in_population: bool = True
    outcomes: dict[str, bool | None] = Field(default_factory=dict)


class MeasureExample(_Model):
    description: str
    source: str | None = None
    records: list[ExampleRecord] = Field(min_length=1)
    expect: ExampleExpect


class MeasureDefinition(_Model):
    id: Id
    name: str
    short_name: str | None = None
    version: Text
    description: str | None = None
    not_checked: str | None = Field(
        default=None, description="criteria of the measure that rating data cannot check"
    )
    citations: list[Citation] = Field(min_length=1)
    parts: list[Part] = Field(min_length=1)
    start: Start = Field(default_factory=Start)
    follow_up: FollowUp = Field(default_factory=FollowUp)
    outcomes: list[Outcome] = Field(min_length=1)
    examples: list[MeasureExample] = Field(default_factory=list)


def _relations(m: MeasureDefinition) -> list[Problem]:
    problems: list[Problem] = []
    keys = {c.key for c in m.citations}
    parts = {p.id for p in m.parts}

    def cite(path: tuple[str | int, ...], key: str | None) -> None:
        if key is not None and key not in keys:
            problems.append(Problem(path, f"unknown citation key {key!r}"))

    for i, part in enumerate(m.parts):
        cite(("parts", i, "source"), part.source)
        for name in ("index", "caseness", "remission"):
            t = getattr(part, name)
            if t is not None and sum(v is not None for v in t.model_dump().values()) != 1:
                problems.append(Problem(("parts", i, name), "give exactly one comparison"))
    cite(("start", "source"), m.start.source)
    cite(("follow_up", "source"), m.follow_up.source)
    if (m.follow_up.from_day is None) != (m.follow_up.to_day is None):
        problems.append(Problem(("follow_up",), "give both from and to, or neither"))
    if m.follow_up.anchor_months is not None and m.follow_up.from_day is None:
        problems.append(Problem(("follow_up",), "an anchor needs a window (from, to)"))
    needs = {
        "case_at_start": "caseness",
        "case_at_end": "caseness",
        "reliable_improvement": "reliable_change",
        "reliable_deterioration": "reliable_change",
        "remission": "remission",
        "response": "response_percent",
    }
    ids = [o.id for o in m.outcomes]
    for i, outcome in enumerate(m.outcomes):
        cite(("outcomes", i, "source"), outcome.source)
        if ids.count(outcome.id) > 1:
            problems.append(Problem(("outcomes", i, "id"), f"outcome {outcome.id!r} repeats"))
        for section in ("eligible", "met"):
            for j, clause in enumerate(getattr(outcome, section)):
                path = ("outcomes", i, section, j)
                given = [f for f in (clause.any, clause.all, clause.none) if f is not None]
                if len(given) != 1:
                    problems.append(Problem(path, "give exactly one of any, all or none"))
                    continue
                needed = needs.get(given[0])
                for part in m.parts:
                    if needed and getattr(part, needed) is None:
                        problems.append(
                            Problem(path, f"{given[0]} needs {needed} on part {part.id!r}")
                        )
    for i, example in enumerate(m.examples):
        cite(("examples", i, "source"), example.source)
        for j, record in enumerate(example.records):
            if record.part not in parts:
                problems.append(
                    Problem(("examples", i, "records", j, "part"), f"unknown part {record.part!r}")
                )
            if _date(record.date) is None:
                problems.append(
                    Problem(("examples", i, "records", j, "date"), "write the date as YYYY-MM-DD")
                )
        for name in example.expect.outcomes:
            if name not in ids:
                problems.append(
                    Problem(("examples", i, "expect", "outcomes"), f"unknown outcome {name!r}")
                )
    return problems


def builtin_measures() -> list[str]:
    return list(files.builtin_files("measures"))


def load_measure(id_or_path: str) -> MeasureDefinition:
    """A built-in measure by id, or a measure file by path (ScaleError lists its problems;
    LookupError: no such measure)."""
    return files.resolve("measures", id_or_path, MeasureDefinition, _relations)


def load_measure_text(text: str, source: str = "<measure>") -> MeasureDefinition:
    return load_model(text, source, MeasureDefinition, _relations)


# --------------------------------------------------------------------------------------
# Evaluation


def _date(text: str | None) -> dt.date | None:
    if not text:
        return None
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def add_months(day: dt.date, months: int) -> dt.date:
    """The same day of the month ``months`` later (the month's last day when it has none)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Point:
    """One score of one part: where it came from and when."""

    value: Num
    date: dt.date
    visit: str
    source: ScoreResult | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"date": self.date.isoformat(), "visit": self.visit, "value": self.value}


@dataclass
class PatientOutcome:
    subject: str
    in_population: bool
    reason: str | None  # why not in the population
    start: dict[str, Point] = field(default_factory=dict)
    end: dict[str, Point] = field(default_factory=dict)
    outcomes: dict[str, bool | None] = field(default_factory=dict)  # None: not eligible
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "in_population": self.in_population,
            "reason": self.reason,
            "start": {k: v.to_dict() for k, v in self.start.items()},
            "end": {k: v.to_dict() for k, v in self.end.items()},
            "outcomes": self.outcomes,
            "notes": self.notes,
        }


@dataclass
class OutcomeRate:
    id: str
    label: str
    numerator: int
    denominator: int

    @property
    def rate(self) -> float | None:
        if not self.denominator:
            return None
        return clean_number(round(100 * self.numerator / self.denominator, 1))

    def to_dict(self) -> dict[str, Any]:
        return {**vars(self), "rate": self.rate}  # (its fields, in order, and the rate)


@dataclass
class MeasureReport:
    measure: MeasureDefinition
    patients: list[PatientOutcome]
    rates: list[OutcomeRate]
    issues: list[Issue]
    index_from: str | None = None
    index_to: str | None = None

    def to_dict(self) -> dict[str, Any]:
        m = self.measure
        return {
            "measure": {
                "id": m.id,
                "name": m.name,
                "short_name": m.short_name,
                "version": m.version,
                "not_checked": m.not_checked,
                "index_from": self.index_from,
                "index_to": self.index_to,
            },
            "rates": [r.to_dict() for r in self.rates],
            "patients": [p.to_dict() for p in self.patients],
            "issues": [i.as_dict() for i in self.issues],
        }


def _facts(part: Part, start: Point, end: Point | None) -> dict[str, bool]:
    facts = dict.fromkeys(FACTS, False)
    facts["followed_up"] = end is not None
    if part.caseness is not None:
        facts["case_at_start"] = part.caseness.test(start.value)
        facts["case_at_end"] = end is not None and part.caseness.test(end.value)
    if end is None:
        return facts
    change = end.value - start.value
    if part.reliable_change is not None:
        facts["reliable_improvement"] = -change >= part.reliable_change
        facts["reliable_deterioration"] = change >= part.reliable_change
    if part.remission is not None:
        facts["remission"] = part.remission.test(end.value)
    if part.response_percent is not None and start.value > 0:
        facts["response"] = -change * 100 >= part.response_percent * start.value
    return facts


def _holds(clauses: Sequence[Clause], facts: dict[str, dict[str, bool]]) -> bool:
    for clause in clauses:
        if clause.any is not None and not any(f[clause.any] for f in facts.values()):
            return False
        if clause.all is not None and not all(f[clause.all] for f in facts.values()):
            return False
        if clause.none is not None and any(f[clause.none] for f in facts.values()):
            return False
    return True


def evaluate_patient(
    measure: MeasureDefinition,
    subject: str,
    points: dict[str, list[Point]],
    *,
    index_from: dt.date | None = None,
    index_to: dt.date | None = None,
) -> PatientOutcome:
    """One patient's outcomes from their scores by part (each list in input order)."""
    out = PatientOutcome(subject, False, None)
    for part in measure.parts:
        candidates = [
            p
            for p in points.get(part.id, [])
            if (index_from is None or p.date >= index_from)
            and (index_to is None or p.date <= index_to)
        ]
        if measure.start.index_required and part.index is not None:
            candidates = [p for p in candidates if part.index.test(p.value)]
        if not candidates:
            out.reason = (
                f"no {part.id} score meeting the index ({part.index.describe()})"
                if part.index is not None and measure.start.index_required
                else f"no {part.id} score"
            )
            out.outcomes = {o.id: None for o in measure.outcomes}
            return out
        out.start[part.id] = choose(candidates, measure.start.pick, lambda p: p.date.toordinal())
    out.in_population = True
    fu = measure.follow_up
    for part in measure.parts:
        start = out.start[part.id]
        anchor = start.date
        if fu.anchor_months is not None:
            anchor = add_months(start.date, fu.anchor_months)
        later = [p for p in points.get(part.id, []) if p.date > start.date]
        if fu.from_day is not None and fu.to_day is not None:
            lo, hi = fu.from_day, fu.to_day
            later = [p for p in later if lo <= (p.date - anchor).days <= hi]
        if later:
            end = choose(
                later,
                fu.pick,
                lambda p, anchor=anchor: (p.date - anchor).days,  # type: ignore[misc]
                date=lambda p: p.date.isoformat(),
            )
            out.end[part.id] = end
            if len(later) > 1:
                out.notes.append(
                    f"{part.id}: {end.visit} ({end.date}), {pick_reason(fu.pick, 0)} of "
                    f"{len(later)}"
                )
    facts = {
        part.id: _facts(part, out.start[part.id], out.end.get(part.id)) for part in measure.parts
    }
    for outcome in measure.outcomes:
        if not _holds(outcome.eligible, facts):
            out.outcomes[outcome.id] = None
            continue
        out.outcomes[outcome.id] = _holds(outcome.met, facts)
    return out


def points_by_subject(
    measure: MeasureDefinition, results: Iterable[ScoreResult]
) -> tuple[dict[str, dict[str, list[Point]]], list[Issue]]:
    """Each subject's scores for each part of the measure; undated records are reported."""
    by_subject: dict[str, dict[str, list[Point]]] = {}
    issues: list[Issue] = []
    for r in results:
        for part in measure.parts:
            if r.scale != part.scale:
                continue
            value = r.scores.get(part.score)
            if value is None:
                continue
            when = _date(r.date)
            if when is None:
                issues.append(
                    make_issue(
                        "measure-no-date",
                        file=r.source.file,
                        line=r.source.line,
                        subject=r.subject,
                        visit=r.visit,
                        scale=r.scale,
                        measure=measure.id,
                    )
                )
                continue
            point = Point(value, when, r.visit, r)
            by_subject.setdefault(r.subject, {}).setdefault(part.id, []).append(point)
    return by_subject, issues


def evaluate_measure(
    measure: MeasureDefinition,
    results: Iterable[ScoreResult],
    *,
    index_from: str | None = None,
    index_to: str | None = None,
) -> MeasureReport:
    """Every patient's outcomes and the rate of each outcome (numerator / denominator, the
    denominator being the patients in the population who are eligible for it)."""
    from ketascore.analysis.change import natural_key

    by_subject, issues = points_by_subject(measure, results)
    lo, hi = _date(index_from), _date(index_to)
    patients = [
        evaluate_patient(measure, subject, by_subject[subject], index_from=lo, index_to=hi)
        for subject in sorted(by_subject, key=natural_key)
    ]
    rates = []
    for outcome in measure.outcomes:
        decided = [p.outcomes[outcome.id] for p in patients if p.in_population]
        known = [d for d in decided if d is not None]
        rates.append(OutcomeRate(outcome.id, outcome.label, sum(known), len(known)))
    return MeasureReport(measure, patients, rates, issues, index_from, index_to)


def run_examples(measure: MeasureDefinition) -> list[str]:
    """The worked examples that fail, described (empty when all pass)."""
    failures = []
    for i, example in enumerate(measure.examples):
        points: dict[str, list[Point]] = {}
        for j, record in enumerate(example.records):
            if record.value is None:
                continue
            when = _date(record.date)
            assert when is not None
            points.setdefault(record.part, []).append(
                Point(clean_number(record.value), when, f"r{j + 1}")
            )
        got = evaluate_patient(measure, "example", points)
        want = example.expect
        if got.in_population != want.in_population:
            failures.append(
                f"examples[{i}] ({example.description}): in_population is "
                f"{got.in_population}, expected {want.in_population} ({got.reason})"
            )
            continue
        for name, expected in want.outcomes.items():
            if got.outcomes.get(name) != expected:
                failures.append(
                    f"examples[{i}] ({example.description}): {name} is "
                    f"{got.outcomes.get(name)}, expected {expected}"
                )
    return failures
