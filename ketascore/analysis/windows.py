"""Analysis windows: assign records to analysis visits by study day.

A windows file names each analysis visit with the range of study days it covers and its
target day::

    windows:
      - {name: baseline, from: -14, to: 0, target: 0}
      - {name: day1, from: 1, to: 2, target: 1}
      - {name: week1, from: 5, to: 10, target: 7}

A record belongs to the window whose range holds its study day. When a subject has several
records in one window, the one closest to the target day is analysed (on a tie, the earlier
day, then the first in the input), and the analysis says which was chosen and why.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Problem, ScaleError, _pydantic_problems, format_problem
from ketascore.core.values import Num


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    from_day: int | float = Field(alias="from")
    to_day: int | float = Field(alias="to")
    target: int | float


class WindowPlan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: list[Window] = Field(min_length=1)

    def window_of(self, day: Num) -> Window | None:
        for window in self.windows:
            if window.from_day <= day <= window.to_day:
                return window
        return None


def _relations(plan: WindowPlan) -> list[Problem]:
    problems = []
    names = [w.name for w in plan.windows]
    for i, w in enumerate(plan.windows):
        path = ("windows", i)
        if names.count(w.name) > 1:
            problems.append(Problem((*path, "name"), f"window name {w.name!r} repeats"))
        if not w.from_day <= w.target <= w.to_day:
            problems.append(
                Problem(path, f"target day {w.target} is outside {w.from_day} to {w.to_day}")
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
    """Parse a windows file; raises ScaleError with every problem as file:line:col."""
    try:
        # days as the value grammar reads numbers: from: 010 is day 10, not octal 8
        located = yamlsafe.load(text, numbers="grammar")
    except yamlsafe.YamlError as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        raise ScaleError(source, [f"{where}: {exc.message}"]) from None
    try:
        plan = WindowPlan.model_validate(located.data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc, located.data)
        raise ScaleError(source, [format_problem(source, located, p) for p in problems]) from None
    relations = _relations(plan)
    if relations:
        raise ScaleError(source, [format_problem(source, located, p) for p in relations])
    return plan


def load_windows(path: str | Path) -> WindowPlan:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScaleError(str(path), [f"{path}: cannot read the windows file: {exc}"]) from None
    return load_windows_text(text, str(path))


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
    targets = {w.name: w.target for w in plan.windows}
    for key in order:
        candidates = chosen[key]
        window_name = key[1]
        target = targets[window_name]
        usable = [c for c in candidates if c.scores.get(score) is not None] or candidates
        pick = min(
            usable,
            key=lambda c: (abs((c.day or 0) - target), c.day or 0, candidates.index(c)),
        )
        note = f"visit {pick.visit} (day {pick.day})"
        if len(candidates) > 1:
            others = ", ".join(f"{c.visit} (day {c.day})" for c in candidates if c is not pick)
            note += f", closest to target day {target}; not analysed: {others}"
        out.append(dataclasses.replace(pick, visit=window_name, source_visit=pick.visit, note=note))
    return out, issues
