"""Analysis windows: assign records to analysis visits by study day.

A windows file names each analysis visit with the range of study days it covers and its
target day::

    pick: closest            # optional default rule for every window (closest, latest, earliest)
    windows:
      - {name: baseline, from: -14, to: 0, target: 0, avisitn: 0}
      - {name: day1, from: 1, to: 2, target: 1, avisitn: 1}
      - {name: week1, from: 5, to: 10, target: 7, avisitn: 7, pick: latest}

A record belongs to the window whose range holds its study day. When a subject has several
records in one window, the window's rule picks the one analysed (``choose``, the only place
that holds the rule):

- ``closest`` (the default): the record closest to the target day; on a tie, the earlier day,
  then the first in the input;
- ``latest``: the record with the latest day in the window (as quality measures such as CMS159
  take the most recent score); on a tie, the later date, then the last in the input;
- ``earliest``: the record with the earliest day; on a tie, the earlier date, then the first in
  the input.

Records with a value of the analysed score are preferred to records without one. The analysis
says which record was chosen and by which rule.

``avisitn`` numbers each analysis visit (ADaM AVISITN). When the windows carry it, every
window must, the numbers are unique, and the analysis visits are ordered by it; without it
they keep the order of the file and are numbered by position.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Problem, ScaleError, load_model
from ketascore.core.values import Num, format_number

Pick = Literal["closest", "latest", "earliest"]
PICK_TEXT = {
    "closest": "closest to target day {target}",
    "latest": "the latest in the window",
    "earliest": "the earliest in the window",
}
T = TypeVar("T")


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    from_day: int | float = Field(alias="from")
    to_day: int | float = Field(alias="to")
    target: int | float
    pick: Pick | None = Field(default=None, description="the plan's rule when not given")
    avisitn: StrictInt | StrictFloat | None = Field(
        default=None, description="the analysis visit number (ADaM AVISITN)"
    )


class WindowPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pick: Pick = "closest"
    windows: list[Window] = Field(min_length=1)

    def window_of(self, day: Num) -> Window | None:
        for window in self.windows:
            if window.from_day <= day <= window.to_day:
                return window
        return None

    def rule_of(self, window: Window) -> Pick:
        return window.pick or self.pick

    def analysis_order(self) -> list[str]:
        """The analysis visits in order: by ``avisitn`` when the windows carry it, else as
        the file lists them."""
        if all(w.avisitn is not None for w in self.windows):
            return [w.name for w in sorted(self.windows, key=lambda w: w.avisitn or 0)]
        return [w.name for w in self.windows]

    def visit_numbers(self) -> dict[str, Num]:
        """Analysis visit -> AVISITN, when the windows file sets it (else empty)."""
        return {w.name: w.avisitn for w in self.windows if w.avisitn is not None}


def _relations(plan: WindowPlan) -> list[Problem]:
    problems = []
    names = [w.name for w in plan.windows]
    numbered = [w for w in plan.windows if w.avisitn is not None]
    for i, w in enumerate(plan.windows):
        path = ("windows", i)
        if names.count(w.name) > 1:
            problems.append(Problem((*path, "name"), f"window name {w.name!r} repeats"))
        if not w.from_day <= w.target <= w.to_day:
            problems.append(
                Problem(path, f"target day {w.target} is outside {w.from_day} to {w.to_day}")
            )
        if numbered and w.avisitn is None:
            problems.append(Problem(path, "avisitn is missing: give it on every window or on none"))
        earlier = [o.name for o in plan.windows[:i] if o.avisitn == w.avisitn]
        if w.avisitn is not None and earlier:
            problems.append(
                Problem(
                    (*path, "avisitn"),
                    f"avisitn {format_number(w.avisitn)} repeats that of window {earlier[0]!r}",
                )
            )
        for j, other in enumerate(plan.windows[:i]):
            if w.from_day <= other.to_day and other.from_day <= w.to_day:
                problems.append(
                    Problem(
                        path, f"window {w.name!r} overlaps window {other.name!r} (windows[{j}])"
                    )
                )
    return problems


def load_windows_text(text: str, source: str) -> WindowPlan:
    """Parse a windows file; raises ScaleError with every problem as file:line:col (days
    read as the value grammar reads numbers: from: 010 is day 10, not octal 8)."""
    return load_model(text, source, WindowPlan, _relations, numbers="grammar")


def load_windows(path: str | Path) -> WindowPlan:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScaleError(str(path), [f"{path}: cannot read the windows file: {exc}"]) from None
    return load_windows_text(text, str(path))


def choose(
    candidates: Sequence[T],
    rule: Pick,
    day: Callable[[T], Num],
    *,
    target: Num = 0,
    date: Callable[[T], str | None] = lambda _: None,
    usable: Callable[[T], bool] = lambda _: True,
) -> T:
    """The candidate a window's ``rule`` analyses (see the module's docstring for the
    rule and its ties). Candidates that are ``usable`` (have a value) come first."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    pool = [c for c in candidates if usable(c)] or list(candidates)
    position = {id(c): i for i, c in enumerate(candidates)}
    if rule == "closest":
        return min(pool, key=lambda c: (abs(day(c) - target), day(c), position[id(c)]))
    if rule == "latest":
        return max(pool, key=lambda c: (day(c), date(c) or "", position[id(c)]))
    return min(pool, key=lambda c: (day(c), date(c) or "", position[id(c)]))


def pick_reason(rule: Pick, target: Num) -> str:
    """How the rule chose, in words (for the notes of the analysis)."""
    return PICK_TEXT[rule].format(target=format_number(target))


def apply_windows(
    results: list[ScoreResult], plan: WindowPlan, scale_id: str, score: str
) -> tuple[list[ScoreResult], list[Issue]]:
    """The results of ``scale_id`` renamed to their analysis window, one per subject and
    window; results of other scales pass through unchanged."""
    issues: list[Issue] = []
    chosen: dict[tuple[str, str], list[ScoreResult]] = {}
    order: list[tuple[str, str]] = []
    out: list[ScoreResult] = []
    for r in results:
        if r.scale != scale_id:
            out.append(r)
            continue
        if r.day is None:
            issues.append(
                make_issue(
                    "no-study-day",
                    file=r.source.file,
                    line=r.source.line,
                    subject=r.subject,
                    visit=r.visit,
                    scale=scale_id,
                )
            )
            continue
        window = plan.window_of(r.day)
        if window is None:
            continue  # outside every window: not part of the analysis
        key = (r.subject, window.name)
        if key not in chosen:
            chosen[key] = []
            order.append(key)
        chosen[key].append(r)
    windows = {w.name: w for w in plan.windows}
    for key in order:
        candidates = chosen[key]
        window = windows[key[1]]
        rule = plan.rule_of(window)
        pick = choose(
            candidates,
            rule,
            lambda c: c.day or 0,
            target=window.target,
            date=lambda c: c.date,
            usable=lambda c: c.scores.get(score) is not None,
        )
        note = f"visit {pick.visit} (day {pick.day})"
        if len(candidates) > 1:
            others = ", ".join(f"{c.visit} (day {c.day})" for c in candidates if c is not pick)
            note += f", {pick_reason(rule, window.target)}; not analysed: {others}"
        out.append(dataclasses.replace(pick, visit=window.name, source_visit=pick.visit, note=note))
    return out, issues
