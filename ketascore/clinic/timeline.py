"""What one patient's timeline shows, computed (``ketascore.present.timeline`` renders it):
each scale's scores over time with the scale's bands, the reliable change from the first to
the latest score, the dosing sessions and their flags, and the patient's alerts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ketascore.clinic.alerts import Alert, newest_first, scale_alerts, session_alerts
from ketascore.clinic.sessions import SessionResult
from ketascore.core.issues import Issue
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale
from ketascore.core.values import Num


@dataclass(frozen=True)
class TimePoint:
    date: dt.date
    value: Num
    visit: str
    band: str | None
    flags: tuple[str, ...]


@dataclass
class Series:
    scale: str
    scale_name: str
    score: str
    score_label: str
    lo: Num
    hi: Num
    bands: list[tuple[str, Num, Num]]
    points: list[TimePoint]
    rci: dict[str, Any] | None = None  # baseline, latest, change, rci, category, rule

    def to_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "score": self.score,
            "points": [
                {
                    "date": p.date.isoformat(),
                    "visit": p.visit,
                    "value": p.value,
                    "band": p.band,
                    "flags": list(p.flags),
                }
                for p in self.points
            ],
            "reliable_change": self.rci,
        }


@dataclass
class PatientTimeline:
    subject: str
    start: dt.date | None
    end: dt.date | None
    series: list[Series]
    sessions: list[SessionResult]
    alerts: list[Alert]
    undated: int = 0  # records without a date, not placed on the time axis
    issues: list[Issue] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "series": [s.to_dict() for s in self.series],
            "sessions": [s.to_dict() for s in self.sessions],
            "alerts": [a.to_dict() for a in self.alerts],
            "undated": self.undated,
        }


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text)[:10]) if text else None
    except ValueError:
        return None


def charted_score(scale: Scale) -> str:
    """The score a timeline charts: the first with severity bands, else the first."""
    for rule in scale.scores:
        if rule.bands:
            return rule.id
    return scale.score_ids[0]


def _reliable_change(
    scale: Scale, score: str, results: Sequence[ScoreResult], subject: str
) -> tuple[dict[str, Any] | None, list[Issue]]:
    """The patient's change from the first to the latest score, with the reliable change
    index computed over every patient given (their baselines give the SD)."""
    from ketascore.analysis.change import compute_change

    report = compute_change(results, scale, score)
    rows = [r for r in report.rows if r.subject == subject and r.value is not None]
    issues = [i for i in report.issues if i.code == "rci-undetermined"]
    if not rows:
        return None, issues
    last = max(rows, key=lambda r: (r.date or "", r.day if r.day is not None else -1))
    rule = report.reliable_change
    return {
        "baseline_visit": last.baseline_visit,
        "baseline": last.baseline,
        "visit": last.visit,
        "date": last.date,
        "value": last.value,
        "change": last.change,
        "rci": last.rci,
        "category": last.rci_category,
        "rule": rule.describe() if rule is not None else None,
    }, issues


def build_timeline(
    subject: str,
    results: Sequence[ScoreResult],
    scale_of: Callable[[str], Scale | None],
    sessions: Iterable[SessionResult] = (),
) -> PatientTimeline:
    """The timeline of ``subject``; ``results`` may hold every patient (the reliable change
    index needs the clinic's baselines)."""
    mine = [r for r in results if r.subject == subject]
    my_sessions = [s for s in sessions if s.session.subject == subject]
    series: list[Series] = []
    issues: list[Issue] = []
    undated = 0
    scale_ids = list(dict.fromkeys(r.scale for r in mine if r.scale))
    for scale_id in scale_ids:
        scale = scale_of(scale_id)
        if scale is None:
            continue
        score = charted_score(scale)
        rule = scale.score(score)
        points = []
        for r in mine:
            if r.scale != scale_id or r.scores.get(score) is None:
                continue
            when = _date(r.date)
            if when is None:
                undated += 1
                continue
            value = r.scores[score]
            assert value is not None
            points.append(TimePoint(when, value, r.visit, r.bands.get(score), tuple(r.flags)))
        if not points:
            continue
        points.sort(key=lambda p: p.date)
        rci, found = _reliable_change(
            scale, score, [r for r in results if r.scale == scale_id], subject
        )
        issues.extend(found)
        series.append(
            Series(
                scale_id,
                scale.definition.short_name or scale.name,
                score,
                rule.label,
                rule.lo,
                rule.hi,
                [(b.label, b.min, b.max) for b in rule.bands],
                points,
                rci,
            )
        )
    series.sort(key=lambda s: (-len(s.points), s.scale))  # the most measured first
    dates = [p.date for s in series for p in s.points]
    dates += [d for s in my_sessions if (d := _date(s.session.date)) is not None]
    alerts = scale_alerts(mine, scale_of) + session_alerts(my_sessions)
    ordered = newest_first(alerts).get(subject, [])
    return PatientTimeline(
        subject,
        min(dates) if dates else None,
        max(dates) if dates else None,
        series,
        sorted(my_sessions, key=lambda s: (s.session.date, s.session.dosed_at or 0)),
        ordered,
        undated,
        issues,
    )
