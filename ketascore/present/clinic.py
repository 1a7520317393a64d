"""Terminal tables of the clinic commands (rich). Rendering only."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Group
from rich.table import Table
from rich.text import Text

from ketascore.clinic.alerts import Alert
from ketascore.clinic.measures import MeasureReport
from ketascore.clinic.sessions import ClinicSummary, SessionResult
from ketascore.present.render import fmt, safe

SEVERITY_STYLE = {"alert": "bold red", "warning": "yellow", "note": "dim"}


def _yes_no(value: bool | None) -> Text:
    if value is None:
        return Text("-", style="dim")
    return Text("yes", style="green") if value else Text("no")


def measure_tables(report: MeasureReport) -> Group:
    m = report.measure
    rates = Table(
        title=f"{m.short_name or m.id}: {m.name} ({m.version})",
        title_justify="left",
        header_style="bold",
    )
    rates.add_column("Outcome")
    rates.add_column("Met", justify="right")
    rates.add_column("Of", justify="right")
    rates.add_column("Rate %", justify="right")
    for r in report.rates:
        rates.add_row(safe(r.label), str(r.numerator), str(r.denominator), fmt(r.rate))
    patients = Table(title="Patients", title_justify="left", header_style="bold")
    patients.add_column("Patient")
    for part in m.parts:
        patients.add_column(f"{part.id} start", justify="right")
        patients.add_column(f"{part.id} end", justify="right")
    for outcome in m.outcomes:
        patients.add_column(outcome.id)
    patients.add_column("Note")
    for p in report.patients:
        cells: list[Text | str] = [safe(p.subject)]
        for part in m.parts:
            for point in (p.start.get(part.id), p.end.get(part.id)):
                cells.append(f"{fmt(point.value)} ({point.date})" if point else "-")
        for outcome in m.outcomes:
            cells.append(_yes_no(p.outcomes.get(outcome.id)) if p.in_population else Text("-"))
        cells.append(safe(p.reason or ""))
        patients.add_row(*cells)
    parts: list[Table | Text] = [rates, patients]
    if m.not_checked:
        parts.append(Text(f"Not checked by rating data: {m.not_checked}", style="dim"))
    return Group(*parts)


def session_tables(results: Sequence[SessionResult], summary: ClinicSummary) -> Group:
    sessions = Table(
        title="Sessions with alerts or warnings (notes are counted under Rules)",
        title_justify="left",
        header_style="bold",
    )
    for name in ("Patient", "Date", "Drug", "BP pre", "BP 40 min", "BP discharge", "Min", "Flags"):
        sessions.add_column(
            name,
            justify="right" if name == "Min" else "left",
            no_wrap=name != "Flags",
            overflow="fold",
        )
    for r in results:
        if not any(f.severity in ("alert", "warning") for f in r.flags):
            continue
        s = r.session
        flags = Text()
        shown = [f for f in r.flags if f.severity != "note"]
        for i, f in enumerate(shown):
            if i:
                flags.append("; ")
            flags.append(f.rule, style=SEVERITY_STYLE.get(f.severity, ""))
        sessions.add_row(
            safe(s.subject),
            s.date,
            safe(s.drug),
            str(s.bp_pre or "-"),
            str(s.bp_40min or "-"),
            str(s.bp_discharge or "-"),
            fmt(s.monitoring_minutes),
            flags,
        )
    by_drug = Table(title="Clinic summary", title_justify="left", header_style="bold")
    for name in (
        "Drug",
        "Sessions",
        "Patients",
        "With alert",
        "With warning",
        "Rules",
        "Monitoring min (median)",
        "(shortest)",
    ):
        by_drug.add_column(name, justify="left" if name == "Drug" else "right")
    for row in summary.rows:
        by_drug.add_row(
            safe(row["drug"]),
            str(row["sessions"]),
            str(row["patients"]),
            str(row["with_alert"]),
            str(row["with_warning"]),
            str(row["rules_applied"]),
            fmt(row["monitoring_minutes_median"]),
            fmt(row["monitoring_minutes_min"]),
        )
    rules = Table(title="Rules", title_justify="left", header_style="bold")
    for name in ("Rule", "Severity", "Flagged", "Of", "Undetermined", "Source"):
        rules.add_column(
            name,
            justify="right" if name in ("Flagged", "Of", "Undetermined") else "left",
            no_wrap=name == "Rule",
        )
    for row in summary.rule_counts:
        rules.add_row(
            row["rule"],
            Text(row["severity"], style=SEVERITY_STYLE.get(row["severity"], "")),
            str(row["flagged"]),
            str(row["sessions"]),
            str(row["undetermined"]),
            safe(row["section"] or ""),
        )
    return Group(sessions, by_drug, rules)


def alert_tables(grouped: dict[str, list[Alert]]) -> Group:
    tables = []
    for subject, alerts in grouped.items():
        table = Table(title=f"Patient {safe(subject)}", title_justify="left", header_style="bold")
        for name in ("Date", "Severity", "Source", "Alert"):
            table.add_column(name)
        for a in alerts:
            source = a.scale or ""
            if a.kind != "session" and a.visit:
                source += f" {a.visit}"
            table.add_row(
                a.date or "-",
                Text(a.severity, style=SEVERITY_STYLE.get(a.severity, "")),
                safe(source),
                safe(a.label),
            )
        tables.append(table)
    if not tables:
        return Group(Text("No alerts."))
    return Group(*tables)
