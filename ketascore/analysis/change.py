"""Change from baseline: per-subject change, percent change, response and remission, and a
per-visit summary, optionally by group."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ketascore.analysis.windows import WindowPlan, apply_windows
from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale, ScoreRule
from ketascore.core.values import Num, clean_number, without_unseen

if TYPE_CHECKING:
    from ketascore.analysis.raters import RatingCheckSummary

BASELINE_NAME = "baseline"

# --impute: how a post-baseline visit without a value gets one (the row's ``imputed``, ADaM
# DTYPE). The baseline itself is never imputed.
IMPUTATIONS = {
    "LOCF": "last observation carried forward: the subject's last observed post-baseline value",
    "BOCF": "baseline observation carried forward: the subject has no post-baseline value",
}

RULE_TEXT = {
    "option": "the visit named with --baseline",
    "flagged": "the record the source flags as baseline (SDTM --BLFL)",
    "named": "the visit named 'baseline'",
    "earliest-day": "the earliest visit by study day",
    "earliest-date": "the earliest visit by date",
    "first-seen": "the first visit in the input",
}


@dataclass(slots=True)  # (a row per record: a big table's change holds a million)
class ChangeRow:
    subject: str
    scale: str
    score: str
    group: str | None
    visit: str
    day: Num | None
    date: str | None
    baseline_visit: str
    baseline_rule: str
    baseline: Num | None
    value: Num | None
    change: Num | None
    percent_change: float | None
    response: bool | None
    remission: bool | None
    source_visit: str | None = None  # the visit analysed, when windowed or carried forward
    imputed: str | None = None  # "LOCF" or "BOCF" for a value carried forward (IMPUTATIONS)
    note: str | None = None  # why this record was analysed (windows, imputation)
    # Jacobson & Truax reliable change, when the score declares its reliability
    rci: float | None = None
    rci_category: str | None = None
    rci_reported: bool = field(default=False, repr=False)

    @property
    def before_baseline(self) -> bool:
        """A record of a visit before the baseline: it has a value and no change (every
        other row with a value has one)."""
        return self.value is not None and self.change is None

    def to_dict(self) -> dict[str, Any]:
        # (its fields, in order; asdict would deep-copy each value)
        out = {name: getattr(self, name) for name in _CHANGE_FIELDS}
        if not out.pop("rci_reported"):  # the score has no reliability: no RCI columns
            del out["rci"], out["rci_category"]
        return out


_CHANGE_FIELDS = tuple(f.name for f in fields(ChangeRow))


@dataclass
class SummaryRow:
    scale: str
    score: str
    visit: str
    group: str | None
    is_baseline: bool
    n: int
    mean: float | None
    sd: float | None
    n_change: int
    mean_change: float | None
    sd_change: float | None
    responders: int
    n_response: int
    response_rate: float | None  # percent of subjects with a response determination
    remitters: int
    n_remission: int
    remission_rate: float | None  # percent of subjects with a value
    n_imputed: int = 0  # of the n values, those carried forward (LOCF or BOCF)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Criteria:
    """Response and remission thresholds: the scale's own unless overridden."""

    reduction_percent: Num | None
    remission_at_most: Num | None = None
    remission_below: Num | None = None

    @classmethod
    def for_score(
        cls,
        rule: ScoreRule,
        response_percent: Num | None = None,
        remission_at_most: Num | None = None,
    ) -> Criteria:
        pct = response_percent
        if pct is None and rule.response is not None:
            pct = rule.response.reduction_percent
        if remission_at_most is not None:
            return cls(pct, remission_at_most, None)
        if rule.remission is not None:
            return cls(pct, rule.remission.at_most, rule.remission.below)
        return cls(pct)

    def responded(self, baseline: Num, change: Num) -> bool | None:
        if self.reduction_percent is None or baseline <= 0:
            return None
        # exact for whole numbers: a drop of exactly 50% counts as a response
        return change * 100 <= -self.reduction_percent * baseline

    def remitted(self, value: Num) -> bool | None:
        if self.remission_at_most is not None:
            return value <= self.remission_at_most
        if self.remission_below is not None:
            return value < self.remission_below
        return None

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"response_reduction_percent": self.reduction_percent}
        if self.remission_at_most is not None:
            out["remission"] = f"<= {self.remission_at_most}"
        elif self.remission_below is not None:
            out["remission"] = f"< {self.remission_below}"
        else:
            out["remission"] = None
        return out


@dataclass
class ChangeReport:
    scale: str
    scale_version: str
    score: str
    by: str | None
    criteria: Criteria
    visits: list[str]
    rows: list[ChangeRow] = field(default_factory=list)
    summary: list[SummaryRow] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    baselines: dict[str, tuple[str, str, Num | None]] = field(default_factory=dict)
    groups: dict[str, str | None] = field(default_factory=dict)
    subjects: list[str] = field(default_factory=list)
    # the scored records analysed (after analysis windows), for writers such as ADaM
    analysed: list[ScoreResult] = field(default_factory=list)
    # analysis visit -> AVISITN, as the windows file sets it (empty without one)
    visit_numbers: dict[str, Num] = field(default_factory=dict)
    reliable_change: ReliableChangeRule | None = None
    # the scale's rating checks over its records, per rater and site (analysis.raters)
    rating_checks: RatingCheckSummary | None = None

    def baseline_rules(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, rule, _ in self.baselines.values():
            counts[rule] = counts.get(rule, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        out = {
            "scale": self.scale,
            "scale_version": self.scale_version,
            "score": self.score,
            "by": self.by,
            "criteria": self.criteria.describe(),
            "visits": self.visits,
            "baseline_rules": self.baseline_rules(),
            "rows": [r.to_dict() for r in self.rows],
            "summary": [s.to_dict() for s in self.summary],
            "issues": [i.as_dict() for i in self.issues],
        }
        if self.reliable_change is not None:
            out["reliable_change"] = self.reliable_change.describe()
        if self.rating_checks is not None:
            out["rating_checks"] = self.rating_checks.to_dict()
        return out


_DIGIT_RUNS = re.compile(r"(\d+)")


# Python converts at most 4,300 digits to an int (a guard against slow conversions)
_INT_DIGITS = 4000


def _digits_key(part: str) -> tuple[Any, ...]:
    """A run of digits in numeric order: by the length of its number, then its digits
    (which needs no conversion of a run of thousands of digits, an id pasted over and
    over, beyond what Python converts to an int)."""
    digits = str(int(part)) if len(part) <= _INT_DIGITS else (part.lstrip("0") or "0")
    return (0, len(digits), digits)


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders S2 before S10. The runs of digits are the parts the pattern
    splits at (every other part), not what ``str.isdigit`` calls digits: it calls "²" one,
    and ``int`` does not."""
    return tuple(
        [
            _digits_key(part) if i % 2 else (1, 0, part.casefold())
            for i, part in enumerate(_DIGIT_RUNS.split(text))
            if part
        ]
    )


def natural_order(text: str) -> tuple[Any, ...]:
    """Sort key of natural order (``natural_key``) in which names it does not tell apart
    ('North', 'north') are ordered by their text, never by the order of a set (which changes
    from run to run)."""
    return (natural_key(text), text)


def group_order(groups: Iterable[str | None]) -> list[str | None]:
    """The distinct groups in the order every table and picture shows them: natural order
    (arm2 before arm10), no group last."""
    return sorted(set(groups), key=lambda g: (g is None, natural_order(g or "")))


def _mean_sd(values: Sequence[Num]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return clean_number(mean), None
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return clean_number(mean), clean_number(math.sqrt(var))


def _visit_when(
    visit: str, days: dict[str, list[Num]], dates: dict[str, list[str]]
) -> tuple[int, Any]:
    """When a visit happens, as far as the data say: (0, its median study day), else (1,
    its first date), else (2, 0): not known."""
    if days.get(visit):
        ds = sorted(days[visit])
        return (0, ds[len(ds) // 2])
    if dates.get(visit):
        return (1, min(dates[visit]))
    return (2, 0)


def _visit_sort_key(
    visit: str, days: dict[str, list[Num]], dates: dict[str, list[str]], first: dict[str, int]
) -> tuple[Any, ...]:
    return (*_visit_when(visit, days, dates), first[visit])


def baseline_target(
    results: Iterable[ScoreResult], baseline_visit: str | None
) -> tuple[str | None, str]:
    """The baseline visit for a whole data set and the rule that names it.

    An explicit ``--baseline`` wins; otherwise, when any subject has a visit named
    "baseline", that visit is every subject's baseline (a subject without it has none,
    rather than a later visit standing in); otherwise each subject's earliest visit is used.
    """
    results = list(results)
    if baseline_visit is not None:
        return baseline_visit, "option"
    if any(_flagged(r) for r in results):
        return None, "flagged"
    if any(r.visit.casefold() == BASELINE_NAME for r in results):
        return BASELINE_NAME, "named"
    return None, "earliest"


def _flagged(result: ScoreResult) -> bool:
    """The source marks this record as the baseline (SDTM QSBLFL/RSBLFL = Y)."""
    return str(result.extra.get("baseline_flag") or "").strip().upper() == "Y"


@functools.lru_cache(maxsize=4096)  # (a study has a few visit names and many records)
def visit_key(visit: str) -> str:
    """How visit names compare when one may be spelled two ways: case, whitespace and
    characters that do not show do not count (``Baseline``, ``baseline``, ``base line`` and
    ``baseline`` with a zero-width space are one name)."""
    return "".join(without_unseen(visit).casefold().split())


def subject_spellings(results: Sequence[ScoreResult], scale_id: str) -> list[Issue]:
    """A warning for each set of subject ids that differ only by whitespace or characters
    that do not show (``S1`` and ``S1`` with a zero-width space, pasted from elsewhere):
    they print alike but are analysed as different subjects, so one of them may seem to
    lack its baseline. (Case counts in an id: ``s1`` and ``S1`` are not named.)"""
    first: dict[str, ScoreResult] = {}
    for r in results:
        first.setdefault(r.subject, r)
    issues = []
    for alike in spelled_alike(first, lambda s: "".join(without_unseen(s).split())):
        where = first[alike[1]].source
        subjects = ", ".join(repr(s) for s in alike)
        issues.append(
            make_issue(
                "subject-spelling",
                file=where.file,
                line=where.line,
                scale=scale_id,
                subjects=subjects,
            )
        )
    return issues


def baseline_candidates(
    results: Sequence[ScoreResult], baseline_visit: str | None, rule: str = "option"
) -> tuple[list[ScoreResult], str]:
    """Every record among one subject's results that the rule makes its baseline, and the
    rule. More than one is an ambiguity the caller reports: no silent choice between two
    flagged records, two spellings of the baseline visit, or two visits on the earliest
    day."""
    if rule == "flagged":
        return [r for r in results if _flagged(r)], rule
    if baseline_visit is not None:
        key = visit_key(baseline_visit)
        return [r for r in results if visit_key(r.visit) == key], rule
    named = [r for r in results if visit_key(r.visit) == BASELINE_NAME]
    if named:
        return named, "named"
    if all(r.day is not None for r in results):
        first_day = min(r.day for r in results if r.day is not None)
        return [r for r in results if r.day == first_day], "earliest-day"
    if all(r.date for r in results):
        first_date = min(r.date for r in results if r.date)
        return [r for r in results if r.date == first_date], "earliest-date"
    return list(results[:1]), "first-seen"


def choose_baseline(
    results: Sequence[ScoreResult], baseline_visit: str | None, rule: str = "option"
) -> tuple[ScoreResult | None, str]:
    """The baseline record among one subject's results (None when there is none, or more
    than one: see ``baseline_candidates``), and the rule that chose it."""
    candidates, how = baseline_candidates(results, baseline_visit, rule)
    return (candidates[0] if len(candidates) == 1 else None), how


AMBIGUITY = {
    "flagged": "flagged",
    "option": "spelling",
    "named": "spelling",
    "earliest-day": "tie-day",
    "earliest-date": "tie-date",
}


def ambiguous_baseline(
    candidates: Sequence[ScoreResult], how: str, target: str | None, scale_id: str
) -> Issue:
    """The issue of a subject with several baseline candidates."""
    first = candidates[0]
    return make_issue(
        "ambiguous-baseline",
        AMBIGUITY[how],
        file=first.source.file,
        line=first.source.line,
        subject=first.subject,
        scale=scale_id,
        count=len(candidates),
        visits=[r.visit for r in candidates],
        baseline=target or BASELINE_NAME,
        day=first.day,
        date=first.date,
    )


def spelled_alike(names: Iterable[str], key: Callable[[str], str] = visit_key) -> list[list[str]]:
    """The sets of names (each in first-seen order) that differ only by case or spacing
    (``visit_key``, or ``key``): visits, groups, the levels of a factor, subjects."""
    by_key: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        by_key.setdefault(key(name), []).append(name)
    return [alike for alike in by_key.values() if len(alike) > 1]


def level_spellings(variable: str, levels: Iterable[str]) -> list[Issue]:
    """A warning for each set of a variable's levels (groups, sites) that differ only by
    case or spacing: they are analysed as different levels."""
    return [
        make_issue("level-spelling", variable=variable, levels=[repr(v) for v in alike])
        for alike in spelled_alike(levels)
    ]


def visit_spellings(results: Sequence[ScoreResult], scale_id: str) -> list[Issue]:
    """A warning for each set of visit names that differ only by case or spacing."""
    first: dict[str, ScoreResult] = {}  # visit name -> its first record
    for r in results:
        if r.visit not in first:
            first[r.visit] = r
    spelled = {visit_key(visits[0]): visits for visits in spelled_alike(first)}
    if not spelled:
        return []
    subjects: dict[str, set[str]] = {key: set() for key in spelled}
    for r in results:
        key = visit_key(r.visit)
        if key in subjects:
            subjects[key].add(r.subject)
    return [
        make_issue(
            "visit-spelling",
            file=first[visits[0]].source.file,
            line=first[visits[0]].source.line,
            scale=scale_id,
            visits=[repr(v) for v in visits],
            subjects=len(subjects[key]),
        )
        for key, visits in spelled.items()
    ]


def _group_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def group_of_subjects(
    results: Sequence[ScoreResult],
    by: str,
    scales: dict[str, Scale],
    baseline_visit: str | None,
    issues: list[Issue] | None = None,
) -> dict[str, str | None]:
    """Each subject's group: a carried field (``arm``) or a baseline classification
    (``hamd17.anxious_depression``). A subject whose field has different values at
    different visits, or whose grouping scale has several baseline candidates, is in no
    group, with an issue in ``issues``."""
    sink = issues if issues is not None else []
    groups: dict[str, str | None] = {}
    scale_id, dot, name = by.partition(".")
    if dot and scale_id in scales:
        by_subject: dict[str, list[ScoreResult]] = {}
        for r in results:
            if r.scale == scale_id:
                by_subject.setdefault(r.subject, []).append(r)
        target, rule = baseline_target(
            (r for rs in by_subject.values() for r in rs), baseline_visit
        )
        for subject, rs in by_subject.items():
            candidates, how = baseline_candidates(rs, target, rule)
            if len(candidates) > 1:
                sink.append(ambiguous_baseline(candidates, how, target, scale_id))
            base = candidates[0] if len(candidates) == 1 else None
            value = None
            if base is not None:
                value = base.classifications.get(name, base.scores.get(name))
            groups[subject] = _group_value(value)
        return groups
    seen: dict[str, dict[str, ScoreResult]] = {}  # subject -> value -> first record
    for r in results:
        text = _group_value(r.extra.get(by))
        groups.setdefault(r.subject, None)
        if text is not None:
            seen.setdefault(r.subject, {}).setdefault(text, r)
    for subject, values in seen.items():
        if len(values) == 1:
            groups[subject] = next(iter(values))
            continue
        first = next(iter(values.values()))
        sink.append(
            make_issue(
                "ambiguous-group",
                file=first.source.file,
                line=first.source.line,
                subject=subject,
                by=by,
                values=[repr(v) for v in values],
                visits=[f"{r.visit}: {v}" for v, r in values.items()],
            )
        )
    return groups


def compute_change(
    results: Iterable[ScoreResult],
    scale: Scale,
    score: str = "total",
    *,
    baseline_visit: str | None = None,
    by: str | None = None,
    scales: dict[str, Scale] | None = None,
    response_percent: Num | None = None,
    remission_at_most: Num | None = None,
    windows: WindowPlan | None = None,
    impute: str | Iterable[str] | None = None,
    rci_reliability: float | None = None,
    rci_sd: float | None = None,
) -> ChangeReport:
    """Change from baseline of one score of one scale.

    ``results`` may hold several scales (needed when grouping by another scale's baseline
    classification); only those of ``scale`` are analysed. With ``windows``, records are
    first assigned to analysis visits by study day; a record whose day falls in no window is
    reported (``outside-windows``). ``impute`` fills post-baseline visits without a value
    (the row says so in ``imputed`` and ``source_visit``): ``"locf"`` with the subject's last
    observed post-baseline value, ``"bocf"`` with the baseline for a subject with no
    post-baseline value at all; give both to use both. When the score declares its
    reliability (or ``rci_reliability`` is given), each row also gets the reliable change
    index and its category (``reliable_change_rule``).

    Every statistic of the summary at a visit after the baseline describes one population:
    the subjects with a baseline and a value at that visit, observed or carried forward.
    """
    imputations = _imputations(impute)
    all_results = list(results)
    rule = scale.score(score)
    criteria = Criteria.for_score(rule, response_percent, remission_at_most)
    window_issues: list[Issue] = []
    if windows is not None:
        window_issues = outside_windows(all_results, windows, scale.id)
        all_results, applied = apply_windows(all_results, windows, scale.id, score)
        window_issues = applied + window_issues
    mine = [r for r in all_results if r.scale == scale.id]
    by_subject: dict[str, list[ScoreResult]] = {}
    first_seen: dict[str, int] = {}
    days: dict[str, list[Num]] = {}
    dates: dict[str, list[str]] = {}
    for i, r in enumerate(mine):
        by_subject.setdefault(r.subject, []).append(r)
        first_seen.setdefault(r.visit, i)
        if r.day is not None:
            days.setdefault(r.visit, []).append(r.day)
        if r.date:
            dates.setdefault(r.visit, []).append(r.date)
    by_subject = {k: by_subject[k] for k in sorted(by_subject, key=natural_key)}
    known = {scale.id: scale, **(scales or {})}
    group_issues: list[Issue] = []
    groups = group_of_subjects(all_results, by, known, baseline_visit, group_issues) if by else {}
    if by:
        group_issues += level_spellings(by, (g for g in groups.values() if g is not None))
    report = ChangeReport(
        scale=scale.id,
        scale_version=scale.version,
        score=score,
        by=by,
        criteria=criteria,
        visits=[],
        groups=groups,
        subjects=list(by_subject),
        issues=[*window_issues, *group_issues],
        analysed=mine,
    )
    report.issues.extend(subject_spellings(mine, scale.id))
    if windows is None:
        report.issues.extend(visit_spellings(mine, scale.id))
    if windows is not None:  # analysis visits are the windows, in the plan's order
        visit_order = windows.analysis_order()
        report.visit_numbers = windows.visit_numbers()
    else:
        visit_order = sorted(first_seen, key=lambda v: _visit_sort_key(v, days, dates, first_seen))
    responded, remitted, scale_id = criteria.responded, criteria.remitted, scale.id

    def make(
        r: ScoreResult,
        value: Num | None,
        subject: str,
        group: str | None,
        base_visit: str,
        how: str,
        baseline: Num,
        imputed: str | None = None,
        before: bool = False,
    ) -> ChangeRow:
        """The change row of a record (or of a value carried to a visit: ``imputed``). A
        record ``before`` the baseline (a screening visit) has its value and no change:
        change from baseline describes what follows it (CHG of post-baseline records)."""
        change = pct = response = remission = None
        if value is not None and not before:
            change = clean_number(value - baseline)
            if baseline != 0:
                pct = clean_number(100 * change / baseline)
            response = responded(baseline, change)
            remission = remitted(value)
        # (positional: a million rows are made this way in half the time of keywords)
        return ChangeRow(
            subject, scale_id, score, group, r.visit, r.day, r.date, base_visit, how,
            baseline, value, change, pct, response, remission, r.source_visit, imputed, r.note,
        )  # fmt: skip

    baseline_visits: dict[str, int] = {}
    before: dict[str, set[str]] = {}  # a baseline visit: the visits known to precede it
    target, target_rule = baseline_target(mine, baseline_visit)
    for subject, rs in by_subject.items():
        candidates, how = baseline_candidates(rs, target, target_rule)
        if len(candidates) > 1:  # no silent choice: the subject's change is not computed
            report.issues.append(ambiguous_baseline(candidates, how, target, scale.id))
            continue
        base = candidates[0] if candidates else None
        group = groups.get(subject) if by else None
        src = rs[0]
        if base is None or base.scores.get(score) is None:
            params: dict[str, Any]
            if base is not None:
                variant, params = "no-score", {"baseline": base.visit, "score": score}
            elif target_rule == "flagged":
                variant, params = "no-flag", {}
            else:
                variant, params = "no-visit", {"baseline": target}
            where = base or src
            report.issues.append(
                make_issue(
                    "no-baseline",
                    variant,
                    **params,
                    file=where.source.file,
                    line=where.source.line,
                    subject=subject,
                    visit=where.visit if base is not None else None,
                    scale=scale.id,
                )
            )
            if base is not None:
                report.baselines[subject] = (base.visit, how, None)
            continue
        baseline_visits[base.visit] = baseline_visits.get(base.visit, 0) + 1
        baseline = base.scores[score]
        assert baseline is not None
        report.baselines[subject] = (base.visit, how, baseline)
        if baseline == 0:
            report.issues.append(
                make_issue(
                    "baseline-zero",
                    file=base.source.file,
                    line=base.source.line,
                    subject=subject,
                    visit=base.visit,
                    scale=scale.id,
                    score=score,
                )
            )

        earlier = before.get(base.visit)
        if earlier is None:
            earlier = before[base.visit] = _earlier_visits(first_seen, days, dates, base.visit)
        followups = [
            make(
                r, r.scores.get(score), subject, group, base.visit, how, baseline, None,
                r.visit in earlier,
            )
            for r in rs
            if r is not base
        ]  # fmt: skip
        if imputations:  # (a stand-in record carried to a visit: its row)
            row = functools.partial(
                make,
                subject=subject,
                group=group,
                base_visit=base.visit,
                how=how,
                baseline=baseline,
            )
            if "locf" in imputations:
                followups = _carry_forward(followups, visit_order, base.visit, row)
            if "bocf" in imputations:
                followups = _carry_baseline(followups, visit_order, base, baseline, row)
        report.rows.extend(followups)
    seen = set(first_seen) | {r.visit for r in report.rows}
    visits = [v for v in visit_order if v in seen]
    main_baseline = max(baseline_visits, key=lambda v: baseline_visits[v], default=None)
    if main_baseline in visits:  # first, after only the visits known to precede it
        visits.remove(main_baseline)
        visits.insert(len([v for v in visits if v in before[main_baseline]]), main_baseline)
    report.visits = visits
    subject_pos = {subject: i for i, subject in enumerate(by_subject)}
    visit_pos = {visit: i for i, visit in enumerate(visits)}
    report.rows.sort(key=lambda row: (subject_pos[row.subject], visit_pos[row.visit]))
    report.summary = _summarise(report)
    _add_reliable_change(report, scale, rci_reliability, rci_sd)
    if not report.rows and (not report.subjects or not report.issues):
        report.issues.append(_nothing_to_report(report))
    return report


IMPUTE_CHOICES = ("locf", "bocf")


def _imputations(impute: str | Iterable[str] | None) -> set[str]:
    chosen = {impute} if isinstance(impute, str) else set(impute or ())
    unknown = chosen - set(IMPUTE_CHOICES)
    if unknown:
        raise ValueError(
            f"unknown imputation {sorted(unknown)[0]!r}; choose from {', '.join(IMPUTE_CHOICES)}"
        )
    return chosen


def outside_windows(results: Iterable[ScoreResult], plan: WindowPlan, scale_id: str) -> list[Issue]:
    """An issue for each record of ``scale_id`` whose study day falls in no analysis window
    (the plan's ``window_of`` decides): it is not analysed, and says so."""
    return [
        make_issue(
            "outside-windows",
            file=r.source.file,
            line=r.source.line,
            subject=r.subject,
            visit=r.visit,
            scale=scale_id,
            day=r.day,
        )
        for r in results
        if r.scale == scale_id and r.day is not None and plan.window_of(r.day) is None
    ]


def _nothing_to_report(report: ChangeReport) -> Issue:
    """Why a report with no issue has no change from baseline at all: no record of the
    scale (an error), or no subject with a value after its baseline."""
    if not report.subjects:
        return make_issue("no-records", scale=report.scale, score=report.score)
    return make_issue("no-change", scale=report.scale, score=report.score)


def _earlier_visits(
    visits: Iterable[str], days: dict[str, list[Num]], dates: dict[str, list[str]], visit: str
) -> set[str]:
    """The visits known to come before ``visit`` (a baseline): those whose study days (the
    median) or, when neither has days, whose dates (the first) are earlier. A visit whose
    place cannot be told from days or dates is not before it: the input's order alone does
    not say, and such a visit is taken to follow the baseline."""
    group, when = _visit_when(visit, days, dates)
    if group == 2:
        return set()
    out = set()
    for other in visits:
        other_group, other_when = _visit_when(other, days, dates)
        if other_group == group and other_when < when:
            out.add(other)
    return out


def _carry_forward(
    rows: list[ChangeRow], visit_order: list[str], baseline_visit: str, make: Any
) -> list[ChangeRow]:
    """Last observation carried forward over one subject's post-baseline visits: a visit
    with no value (or no record) after an observed post-baseline value takes that value."""
    by_visit = {r.visit: r for r in rows}
    start = visit_order.index(baseline_visit) + 1 if baseline_visit in visit_order else 0
    out: list[ChangeRow] = []
    last: ChangeRow | None = None
    for visit in visit_order[start:]:
        current = by_visit.pop(visit, None)
        if current is not None and current.value is not None:
            last = current
            out.append(current)
            continue
        if last is None:
            if current is not None:
                out.append(current)
            continue
        source = last.source_visit or last.visit
        stand_in = ScoreResult(
            subject=last.subject, visit=visit, scale=last.scale, scale_version=None
        )
        out.append(
            make(
                stand_in,
                last.value,
                imputed="LOCF",
            )
        )
        out[-1].source_visit = source
        out[-1].note = f"carried forward from {source}" + (
            f" (day {last.day})" if last.day is not None else ""
        )
    out.extend(by_visit.values())  # visits before the baseline, kept as they were
    return out


def _carry_baseline(
    rows: list[ChangeRow], visit_order: list[str], base: ScoreResult, value: Num, make: Any
) -> list[ChangeRow]:
    """Baseline observation carried forward, for a subject with no post-baseline value at
    all: every visit after the baseline takes the baseline value (``imputed = "BOCF"``).
    A subject with a post-baseline value is left as it is (LOCF, when asked, fills its
    gaps)."""
    start = visit_order.index(base.visit) + 1 if base.visit in visit_order else 0
    after = set(visit_order[start:])
    if any(r.value is not None for r in rows if r.visit in after):
        return rows
    by_visit = {r.visit: r for r in rows}
    out: list[ChangeRow] = []
    for visit in visit_order[start:]:
        by_visit.pop(visit, None)
        stand_in = ScoreResult(
            subject=base.subject, visit=visit, scale=base.scale, scale_version=None
        )
        carried = make(stand_in, value, imputed="BOCF")
        carried.source_visit = base.visit
        day = f" (day {base.day})" if base.day is not None else ""
        carried.note = f"baseline carried forward from {base.visit}{day}; no post-baseline value"
        out.append(carried)
    out.extend(by_visit.values())  # visits before the baseline, kept as they were
    return out


def _summarise(report: ChangeReport) -> list[SummaryRow]:
    """One row per group and visit. At a subject's baseline visit, the baselines; at any
    other visit, the subjects with a baseline and a value there (observed or carried
    forward): n, the mean and SD of the value, of the change, and the response and
    remission counts all describe that one population."""
    group_names: list[str | None] = [None]
    if report.by:
        group_names = group_order(report.groups.get(s) for s in report.subjects)
    rows_by: dict[tuple[str, str | None], list[ChangeRow]] = {}
    for row in report.rows:
        rows_by.setdefault((row.visit, row.group), []).append(row)
    baselines_by: dict[tuple[str, str | None], list[Num | None]] = {}
    for subject, (visit, _, value) in report.baselines.items():
        group = report.groups.get(subject) if report.by else None
        baselines_by.setdefault((visit, group), []).append(value)
    out: list[SummaryRow] = []
    for group in group_names:
        for visit in report.visits:
            followups = [r for r in rows_by.get((visit, group), []) if r.value is not None]
            is_baseline = (visit, group) in baselines_by and (visit, group) not in rows_by
            if is_baseline:
                values = [v for v in baselines_by[(visit, group)] if v is not None]
            else:
                values = [row.value for row in followups if row.value is not None]
            changes = [row.change for row in followups if row.change is not None]
            responses = [row.response for row in followups if row.response is not None]
            remissions = [row.remission for row in followups if row.remission is not None]
            mean, sd = _mean_sd(values)
            mean_c, sd_c = _mean_sd(changes)
            responders = sum(responses)
            remitters = sum(remissions)
            out.append(
                SummaryRow(
                    scale=report.scale,
                    score=report.score,
                    visit=visit,
                    group=group,
                    is_baseline=is_baseline,
                    n=len(values),
                    mean=mean,
                    sd=sd,
                    n_change=len(changes),
                    mean_change=mean_c,
                    sd_change=sd_c,
                    responders=responders,
                    n_response=len(responses),
                    response_rate=_rate(responders, len(responses)),
                    remitters=remitters,
                    n_remission=len(remissions),
                    remission_rate=_rate(remitters, len(remissions)),
                    n_imputed=sum(1 for row in followups if row.imputed),
                )
            )
    return out


def _rate(count: int, total: int) -> float | None:
    return clean_number(100 * count / total) if total else None


# --------------------------------------------------------------------------------------
# Reliable and clinically significant change (Jacobson & Truax 1991)

RC_CRITICAL = 1.96  # |RC| > 1.96: a change this large arises by measurement error with p < .05


@dataclass(frozen=True)
class ReliableChangeRule:
    """Jacobson & Truax (1991): RC = (x2 - x1) / S_diff, S_diff = sqrt(2 SE^2),
    SE = s1 sqrt(1 - r_xx). A change is reliable when |RC| > 1.96. Clinically significant
    change also crosses the cut-off between the dysfunctional and the functional population
    (criterion c, b or a; a value on the cut-off counts as dysfunctional).

    Categories: ``recovered`` (reliable improvement, from the dysfunctional to the functional
    side of the cut-off), ``improved`` (reliable improvement otherwise), ``unchanged`` (no
    reliable change), ``deteriorated`` (reliable worsening)."""

    reliability: float
    reliability_from: str  # "scale" (cited in the scale file) or "option"
    sd: float
    sd_from: str  # "scale", "option" or "baseline" (the SD of the baselines analysed)
    cutoff: float | None = None
    cutoff_rule: str | None = None  # "c", "b" or "a"
    cutoff_from: str | None = None
    better: str = "lower"
    source: str | None = None

    @functools.cached_property  # (asked for each row's index)
    def standard_error(self) -> float:
        return self.sd * math.sqrt(1 - self.reliability)

    @functools.cached_property
    def s_diff(self) -> float:
        return math.sqrt(2 * self.standard_error**2)

    @property
    def reliable_points(self) -> float:
        """The change (in score points) that a reliable change must exceed."""
        return RC_CRITICAL * self.s_diff

    def index(self, baseline: Num, value: Num) -> float:
        return (value - baseline) / self.s_diff

    def functional(self, value: Num) -> bool | None:
        if self.cutoff is None:
            return None
        return value < self.cutoff if self.better == "lower" else value > self.cutoff

    def category(self, baseline: Num, value: Num) -> str:
        rc = self.index(baseline, value)
        improvement = -rc if self.better == "lower" else rc
        if improvement > RC_CRITICAL:
            recovered = self.functional(value) and self.functional(baseline) is False
            return "recovered" if recovered else "improved"
        if improvement < -RC_CRITICAL:
            return "deteriorated"
        return "unchanged"

    def describe(self) -> dict[str, Any]:
        return {
            "method": "Jacobson & Truax (1991)",
            "reliability": self.reliability,
            "reliability_from": self.reliability_from,
            "sd": _rounded(self.sd),
            "sd_from": self.sd_from,
            "standard_error": _rounded(self.standard_error),
            "s_diff": _rounded(self.s_diff),
            "reliable_change_points": _rounded(self.reliable_points),
            "cutoff": None if self.cutoff is None else _rounded(self.cutoff),
            "cutoff_rule": self.cutoff_rule,
            "cutoff_from": self.cutoff_from,
            "better": self.better,
            "source": self.source,
        }


def _rounded(value: float) -> Num:
    return clean_number(round(value, 4))


def jt_cutoff(
    functional: tuple[float, float] | None,
    clinical: tuple[float, float] | None,
    better: str = "lower",
) -> tuple[float, str] | None:
    """Jacobson & Truax's cut-off from (mean, sd) of the functional and the dysfunctional
    population: c (both), b (functional only: 2 SD from its mean), a (clinical only)."""
    sign = 1 if better == "lower" else -1
    if functional is not None and clinical is not None:
        (m0, s0), (m1, s1) = functional, clinical
        return (s0 * m1 + s1 * m0) / (s0 + s1), "c"
    if functional is not None:
        return functional[0] + sign * 2 * functional[1], "b"
    if clinical is not None:
        return clinical[0] - sign * 2 * clinical[1], "a"
    return None


def reliable_change_rule(
    scale: Scale,
    score: str,
    baselines: Sequence[Num],
    *,
    reliability: float | None = None,
    sd: float | None = None,
) -> ReliableChangeRule | None:
    """The reliable change rule of a score: its declared reliability and norms (or the
    options), with the baselines analysed standing in for what the scale does not declare
    (the SD of the pre-treatment group, as Jacobson & Truax propose, and the dysfunctional
    distribution of criterion c). None when no reliability is known or no SD can be had."""
    declared = next((s for s in scale.definition.scores if s.id == score), None)
    rel = declared.reliability if declared is not None else None
    norms = declared.norms if declared is not None else None
    if reliability is None and rel is None:
        return None
    r = reliability if reliability is not None else rel.coefficient if rel else None
    assert r is not None
    base_mean, base_sd = _mean_sd(list(baselines))
    if sd is not None:
        s1, sd_from = float(sd), "option"
    elif rel is not None and rel.sd is not None:
        s1, sd_from = float(rel.sd), "scale"
    elif base_sd:
        s1, sd_from = float(base_sd), "baseline"
    else:
        return None
    better = rel.better if rel is not None else "lower"
    functional = (
        (norms.functional.mean, norms.functional.sd) if norms and norms.functional else None
    )
    clinical = (norms.clinical.mean, norms.clinical.sd) if norms and norms.clinical else None
    clinical_from = "scale"
    if clinical is None and functional is not None and base_mean is not None and base_sd:
        clinical, clinical_from = (base_mean, base_sd), "baseline"
    cut = jt_cutoff(functional, clinical, better)
    cutoff_from = None
    if cut is not None:
        parts = []
        if functional is not None:
            parts.append("functional: scale norms")
        if clinical is not None:
            parts.append(
                "dysfunctional: " + ("scale norms" if clinical_from == "scale" else "baselines")
            )
        cutoff_from = "; ".join(parts)
    return ReliableChangeRule(
        reliability=r,
        reliability_from="option" if reliability is not None else "scale",
        sd=s1,
        sd_from=sd_from,
        cutoff=cut[0] if cut else None,
        cutoff_rule=cut[1] if cut else None,
        cutoff_from=cutoff_from,
        better=better,
        source=rel.source if rel is not None and reliability is None else None,
    )


def _add_reliable_change(
    report: ChangeReport, scale: Scale, reliability: float | None, sd: float | None
) -> None:
    baselines = [b for _, _, b in report.baselines.values() if b is not None]
    rule = reliable_change_rule(scale, report.score, baselines, reliability=reliability, sd=sd)
    if rule is None:
        declared = next((s for s in scale.definition.scores if s.id == report.score), None)
        wanted = reliability is not None or (declared is not None and declared.reliability)
        if wanted and any(r.change is not None for r in report.rows):  # (a change to judge)
            report.issues.append(
                make_issue("rci-undetermined", scale=scale.id, score=report.score, n=len(baselines))
            )
        return
    report.reliable_change = rule
    # (the index and category of each pair of values worked out once: a big table's rows
    # hold a few hundred pairs; an int and a float that are equal give the same index)
    judged: dict[tuple[Num, Num], tuple[Num, str]] = {}
    for row in report.rows:
        row.rci_reported = True
        baseline, value = row.baseline, row.value
        if row.change is not None and value is not None and baseline is not None:
            key = (baseline, value)
            found = judged.get(key)
            if found is None:
                found = judged[key] = (
                    _rounded(rule.index(baseline, value)),
                    rule.category(baseline, value),
                )
            row.rci, row.rci_category = found
