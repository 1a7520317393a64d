"""Safety alerts per patient, newest first: every flag a scale declares (PHQ-9 item 9,
C-SSRS ideation with intent, MADRS item 10, ... as each scale file defines them), flags that
could not be determined because their item was not answered, and the alert and warning flags
of dosing sessions. Nothing here names a particular scale: a flag added to a scale file
becomes an alert without code."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ketascore.clinic.sessions import SEVERITY_ORDER, SessionResult
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale


@dataclass(frozen=True)
class Alert:
    subject: str
    date: str | None
    day: float | int | None
    kind: str  # "scale-flag", "flag-undetermined" or "session"
    severity: str  # alert, warning
    code: str  # the flag's or the rule's id
    label: str
    scale: str | None = None  # the scale (scale flags) or the drug (sessions)
    visit: str | None = None
    source: str | None = None  # the rule's citation and section (sessions)
    file: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scale_alerts(
    results: Iterable[ScoreResult], scale_of: Callable[[str], Scale | None]
) -> list[Alert]:
    """The flags raised, and those left undetermined, in scored records."""
    out: list[Alert] = []
    for r in results:
        scale = scale_of(r.scale) if r.scale else None
        labels = {f.id: f.label for f in scale.flags} if scale is not None else {}
        for flag in r.flags:
            out.append(_result_alert(r, "scale-flag", "alert", flag, labels.get(flag, flag)))
        for issue in r.issues:
            if issue.code != "flag-undetermined":
                continue
            flag = str(issue.params.get("flag", ""))
            label = f"cannot be determined, an item it needs is missing: {labels.get(flag, flag)}"
            out.append(_result_alert(r, "flag-undetermined", "warning", flag, label))
    return out


def _result_alert(r: ScoreResult, kind: str, severity: str, flag: str, label: str) -> Alert:
    where = (r.scale, r.visit, None, r.source.file, r.source.line)
    return Alert(r.subject, r.date, r.day, kind, severity, flag, label, *where)


def session_alerts(
    results: Iterable[SessionResult], severities: tuple[str, ...] = ("alert", "warning")
) -> list[Alert]:
    out: list[Alert] = []
    for r in results:
        s = r.session
        for flag in r.flags:
            if flag.severity not in severities:
                continue
            source = f"{flag.source}, {flag.section}" if flag.section else flag.source
            what = ("session", flag.severity, flag.rule, flag.label, s.drug, s.session, source)
            out.append(Alert(s.subject, s.date, None, *what, s.file, s.line))
    return out


def newest_first(alerts: Iterable[Alert]) -> dict[str, list[Alert]]:
    """Alerts grouped by patient (patients in natural order), each patient's newest first:
    by date, then study day; undated alerts last; on the same day alerts before warnings."""
    from ketascore.analysis.change import natural_key

    grouped: dict[str, list[Alert]] = {}
    for a in alerts:
        grouped.setdefault(a.subject, []).append(a)
    out = {}
    for subject in sorted(grouped, key=natural_key):
        items = grouped[subject]
        items.sort(key=lambda a: SEVERITY_ORDER.get(a.severity, 9))
        items.sort(key=lambda a: a.day if a.day is not None else float("-inf"), reverse=True)
        items.sort(key=lambda a: a.date or "", reverse=True)
        out[subject] = items
    return out
