"""One patient's timeline as a self-contained HTML page: inline CSS and SVG, no script, no
network, no timestamp (the same data give the same bytes), laid out to print on one A4 or
Letter page. Rendering only: what it shows is computed by ``ketascore.clinic.timeline``."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from ketascore import __version__
from ketascore.clinic.alerts import Alert
from ketascore.clinic.sessions import SessionResult
from ketascore.clinic.timeline import PatientTimeline, Series
from ketascore.core.values import Num, format_number

WIDTH = 700  # the drawing, in CSS pixels (A4 printable width at 96 dpi is about 700)
LEFT = 34
RIGHT = 150  # room for band labels
CHART_HEIGHT = 96
MAX_ALERTS = 10
MAX_CHARTS = 5
# band fills from the lowest (best) to the highest band of a symptom scale
BAND_FILLS = ["#e8f5e9", "#f1f8e9", "#fffde7", "#fff3e0", "#fbe9e7", "#ffebee"]
SEVERITY_COLOURS = {"alert": "#c62828", "warning": "#ef6c00", "note": "#607d8b"}
CATEGORY_COLOURS = {
    "recovered": "#2e7d32",
    "improved": "#558b2f",
    "unchanged": "#616161",
    "deteriorated": "#c62828",
}

CSS = """
@page { size: A4; margin: 10mm; }
* { box-sizing: border-box; }
body { font: 11px/1.35 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #212121;
       margin: 0 auto; max-width: 720px; padding: 8px; }
h1 { font-size: 17px; margin: 0 0 2px; }
h2 { font-size: 12px; margin: 10px 0 3px; text-transform: uppercase; letter-spacing: .04em;
     color: #455a64; border-bottom: 1px solid #cfd8dc; }
.meta { color: #546e7a; margin-bottom: 4px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 1px 6px 1px 0; vertical-align: top; }
th { color: #546e7a; font-weight: 600; border-bottom: 1px solid #eceff1; }
td.num, th.num { text-align: right; }
.sev { font-weight: 700; text-transform: uppercase; font-size: 9px; }
.cat { font-weight: 700; }
.chart { display: block; margin: 2px 0 0; }
.chart text { font-size: 9px; fill: #546e7a; }
.chart .title { font-size: 10.5px; fill: #212121; font-weight: 600; }
.note { color: #78909c; font-size: 9.5px; }
.none { color: #78909c; }
@media print { body { padding: 0; } h2 { break-after: avoid; } svg, tr { break-inside: avoid; } }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _n(value: Num | None) -> str:
    return (
        ""
        if value is None
        else format_number(round(value, 2) if isinstance(value, float) else value)
    )


class _Axis:
    """Dates to x pixels, shared by every chart of the page so sessions line up."""

    def __init__(self, start: dt.date, end: dt.date):
        if end <= start:
            start, end = start - dt.timedelta(days=7), end + dt.timedelta(days=7)
        pad = max(2, (end - start).days // 40)
        self.start = start - dt.timedelta(days=pad)
        self.end = end + dt.timedelta(days=pad)
        self.span = (self.end - self.start).days

    def x(self, day: dt.date) -> float:
        return LEFT + (WIDTH - LEFT - RIGHT) * (day - self.start).days / self.span

    def ticks(self) -> list[tuple[float, str]]:
        """Month starts (every few months on a long axis), labelled YYYY-MM."""
        months = []
        year, month = self.start.year, self.start.month
        while True:
            month += 1
            if month > 12:
                year, month = year + 1, 1
            day = dt.date(year, month, 1)
            if day > self.end:
                break
            months.append(day)
        step = max(1, len(months) // 8 + (1 if len(months) % 8 else 0))
        return [(self.x(d), f"{d:%Y-%m}") for d in months[::step]]


def _session_lines(
    axis: _Axis, sessions: Sequence[SessionResult], top: float, bottom: float
) -> str:
    out = []
    for r in sessions:
        try:
            day = dt.date.fromisoformat(r.session.date)
        except ValueError:
            continue
        worst = r.flags[0].severity if r.flags else None
        colour = SEVERITY_COLOURS.get(worst or "", "#b0bec5")
        width = 1.4 if worst in ("alert", "warning") else 0.8
        x = axis.x(day)
        out.append(
            f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" '
            f'stroke="{colour}" stroke-width="{width}" stroke-opacity="0.8"/>'
        )
    return "".join(out)


def _chart(series: Series, axis: _Axis, sessions: Sequence[SessionResult]) -> str:
    top, bottom = 16.0, CHART_HEIGHT - 16.0
    lo, hi = float(series.lo), float(series.hi)
    span = (hi - lo) or 1.0

    def y(value: float) -> float:
        return bottom - (bottom - top) * (value - lo) / span

    parts = [
        f'<svg class="chart" width="{WIDTH}" height="{CHART_HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {CHART_HEIGHT}" role="img" '
        f'aria-label="{_e(series.scale_name)} {_e(series.score_label)} over time">',
        f'<text class="title" x="{LEFT}" y="11">{_e(series.scale_name)} - '
        f"{_e(series.score_label)} ({_n(series.lo)}-{_n(series.hi)})</text>",
    ]
    x0, x1 = LEFT, WIDTH - RIGHT
    n = len(series.bands)
    for i, (label, b_lo, b_hi) in enumerate(series.bands):
        # a band reaches up to the next band's minimum, so the fills meet
        upper = float(series.bands[i + 1][1]) if i + 1 < n else hi
        fill = BAND_FILLS[
            min(len(BAND_FILLS) - 1, round(i * (len(BAND_FILLS) - 1) / max(1, n - 1)))
        ]
        y_top, y_bottom = y(upper), y(float(b_lo))
        parts.append(
            f'<rect x="{x0}" y="{y_top:.1f}" width="{x1 - x0}" '
            f'height="{max(0.5, y_bottom - y_top):.1f}" fill="{fill}"/>'
        )
        if y_bottom - y_top >= 7:
            parts.append(
                f'<text x="{x1 + 4}" y="{(y_top + y_bottom) / 2 + 3:.1f}">{_e(label)} '
                f"({_n(b_lo)}-{_n(b_hi)})</text>"
            )
    parts.append(
        f'<rect x="{x0}" y="{top}" width="{x1 - x0}" height="{bottom - top}" fill="none" '
        f'stroke="#cfd8dc"/>'
    )
    for value in (lo, hi):
        parts.append(
            f'<text x="{x0 - 4}" y="{y(value) + 3:.1f}" text-anchor="end">{_n(value)}</text>'
        )
    for x, label in axis.ticks():
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 3}" stroke="#90a4ae"/>'
            f'<text x="{x:.1f}" y="{bottom + 12}" text-anchor="middle">{label}</text>'
        )
    parts.append(_session_lines(axis, sessions, top, bottom))
    coords = [(axis.x(p.date), y(float(p.value))) for p in series.points]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{yy:.1f}" for x, yy in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#37474f" stroke-width="1.4"/>')
    for p, (x, yy) in zip(series.points, coords, strict=True):
        flagged = bool(p.flags)
        parts.append(
            f'<circle cx="{x:.1f}" cy="{yy:.1f}" r="{3.2 if flagged else 2.3}" '
            f'fill="{"#c62828" if flagged else "#37474f"}">'
            f"<title>{_e(p.date)} {_e(p.visit)}: {_n(p.value)}"
            f"{' (' + _e(', '.join(p.flags)) + ')' if flagged else ''}</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _change_table(series: Sequence[Series]) -> str:
    rows = []
    for s in series:
        rc = s.rci
        if rc is None:
            rows.append(
                f"<tr><td>{_e(s.scale_name)}</td><td colspan=5 class=none>one score only</td></tr>"
            )
            continue
        category = rc.get("category")
        rule = rc.get("rule")
        cat = (
            f'<span class=cat style="color:{CATEGORY_COLOURS.get(category, "#212121")}">'
            f"{_e(category)}</span>"
            if category
            else "<span class=none>no reliability declared</span>"
        )
        basis = ""
        if rule:
            basis = (
                f"r = {_n(rule['reliability'])}, "
                f"reliable change &gt; {_n(rule['reliable_change_points'])}"
                + (
                    f", cut-off {rule['cutoff_rule']} = {_n(rule['cutoff'])}"
                    if rule.get("cutoff") is not None
                    else ""
                )
            )
        rows.append(
            f"<tr><td>{_e(s.scale_name)}</td><td class=num>{_n(rc['baseline'])}</td>"
            f"<td class=num>{_n(rc['value'])} "
            f"<span class=note>{_e(rc.get('date') or '')}</span></td>"
            f"<td class=num>{_n(rc['change'])}</td><td class=num>{_n(rc['rci'])}</td>"
            f"<td>{cat} <span class=note>{basis}</span></td></tr>"
        )
    return (
        "<table><tr><th>scale</th><th class=num>first</th><th class=num>latest</th>"
        "<th class=num>change</th><th class=num>RCI</th>"
        "<th>reliable change (Jacobson &amp; Truax)</th></tr>" + "".join(rows) + "</table>"
    )


def _alerts_table(alerts: Sequence[Alert]) -> str:
    if not alerts:
        return "<p class=none>No alerts.</p>"
    rows = []
    for a in alerts[:MAX_ALERTS]:
        colour = SEVERITY_COLOURS.get(a.severity, "#212121")
        what = f"{a.scale or ''}" + (f" {a.visit}" if a.visit and a.kind != "session" else "")
        rows.append(
            f'<tr><td>{_e(a.date or "")}</td><td><span class=sev style="color:{colour}">'
            f"{_e(a.severity)}</span></td><td>{_e(what)}</td><td>{_e(a.label)}"
            + (f" <span class=note>({_e(a.source)})</span>" if a.source else "")
            + "</td></tr>"
        )
    more = len(alerts) - MAX_ALERTS
    tail = (
        f"<p class=note>and {more} older alert(s); the full list: ketascore clinic alerts</p>"
        if more > 0
        else ""
    )
    return (
        "<table><tr><th>date</th><th>severity</th><th>source</th><th>alert</th></tr>"
        + "".join(rows)
        + "</table>"
        + tail
    )


def _sessions_summary(sessions: Sequence[SessionResult]) -> str:
    if not sessions:
        return "<p class=none>No dosing sessions recorded.</p>"
    drugs: dict[str, list[SessionResult]] = {}
    for r in sessions:
        drugs.setdefault(r.session.drug, []).append(r)
    rows = []
    for drug, rs in drugs.items():
        doses = sorted({r.session.dose_mg for r in rs if r.session.dose_mg is not None})
        flagged = sum(any(f.severity in ("alert", "warning") for f in r.flags) for r in rs)
        minutes = [m for r in rs if (m := r.session.monitoring_minutes) is not None]
        rows.append(
            f"<tr><td>{_e(drug)}</td><td class=num>{len(rs)}</td>"
            f"<td>{_e(rs[0].session.date)} to {_e(rs[-1].session.date)}</td>"
            f"<td>{_e(', '.join(_n(d) for d in doses))} mg</td>"
            f"<td class=num>{flagged}</td>"
            f"<td class=num>{min(minutes) if minutes else ''}</td></tr>"
        )
    return (
        "<table><tr><th>drug</th><th class=num>sessions</th><th>dates</th><th>doses</th>"
        "<th class=num>flagged</th><th class=num>shortest monitoring (min)</th></tr>"
        + "".join(rows)
        + "</table><p class=note>Sessions are the vertical lines in the charts: grey without a "
        "flag, orange with a warning, red with an alert. Red points are scores that raised a "
        "scale's flag.</p>"
    )


def render_timeline(t: PatientTimeline) -> str:
    """The page (text of a complete HTML document)."""
    charts = ""
    if t.start is not None and t.end is not None and t.series:
        axis = _Axis(t.start, t.end)
        charts = "".join(_chart(s, axis, t.sessions) for s in t.series[:MAX_CHARTS])
        if len(t.series) > MAX_CHARTS:
            charts += f"<p class=note>{len(t.series) - MAX_CHARTS} more scale(s) not charted.</p>"
    else:
        charts = "<p class=none>No dated scores.</p>"
    span = f"{t.start} to {t.end}" if t.start and t.end else "no dates"
    n_scores = sum(len(s.points) for s in t.series)
    alerts_n = sum(a.severity == "alert" for a in t.alerts)
    undated = f"; {t.undated} undated score(s) not shown" if t.undated else ""
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>Patient {_e(t.subject)} - ketascore timeline</title>"
        f"<style>{CSS}</style></head><body>"
        f"<h1>Patient {_e(t.subject)}</h1>"
        f"<div class=meta>{_e(span)} · {n_scores} score(s) on {len(t.series)} scale(s) · "
        f"{len(t.sessions)} dosing session(s) · {alerts_n} alert(s){_e(undated)}</div>"
        f"<h2>Alerts, newest first</h2>{_alerts_table(t.alerts)}"
        f"<h2>Scores over time</h2>{charts}"
        f"<h2>Change from the first score</h2>{_change_table(t.series)}"
        f"<h2>Dosing sessions</h2>{_sessions_summary(t.sessions)}"
        f"<p class=note>ketascore {_e(__version__)}. Bands, flags and reliability come from "
        "each scale's file (ketascore scales show ID); session rules from the esketamine label "
        "(ketascore clinic sessions --help).</p>"
        "</body></html>\n"
    )
