"""Terminal rendering with rich. Rendering never computes: it only lays out results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ketascore.analysis.change import RULE_TEXT, ChangeReport
from ketascore.core.issues import Issue
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale
from ketascore.core.values import Num, format_number

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def safe(text: Any) -> str:
    """Text from the data, with control characters shown as \\xNN: an escape sequence in a
    subject id must not recolour, retitle or clear the user's terminal."""
    return str(text).translate(_CONTROL)


def fmt(value: Num | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.{digits}f}"
    return format_number(value)


def score_tables(results: Sequence[ScoreResult]) -> list[Table]:
    by_scale: dict[str | None, list[ScoreResult]] = {}
    for r in results:
        by_scale.setdefault(r.scale, []).append(r)
    tables = []
    for scale_id, rows in by_scale.items():
        names: dict[str, None] = {}
        for r in rows:
            names.update(dict.fromkeys(r.scores))
        table = Table(
            title=f"{scale_id or 'unknown scale'}",
            title_justify="left",
            header_style="bold",
        )
        table.add_column("Subject")
        table.add_column("Visit")
        table.add_column("Day", justify="right")
        for name in names:
            table.add_column(name, justify="right")
        table.add_column("Flags")
        table.add_column("Issues")
        for r in rows:
            cells: list[Any] = [safe(r.subject), safe(r.visit), fmt(r.day)]
            for name in names:
                value = r.scores.get(name)
                text = Text(fmt(value, 2))
                if value is not None and r.prorated.get(name):
                    text.append("*", style="yellow")
                band = r.bands.get(name)
                if band:
                    text.append(f" {safe(band)}", style="dim")
                cells.append(text)
            cells.append(", ".join(r.flags))
            codes = sorted({i.code for i in r.issues})
            style = "red" if not r.ok else "yellow"
            cells.append(Text(", ".join(codes), style=style) if codes else "")
            table.add_row(*cells)
        if any(any(r.prorated.values()) for r in rows):
            table.caption = "* prorated under the scale's missing-data rule"
            table.caption_justify = "left"
        tables.append(table)
    return tables


def issue_lines(issues: Sequence[Issue], limit: int = 50) -> list[Text]:
    lines = []
    for issue in issues[:limit]:
        style = "red" if issue.severity == "error" else "yellow"
        line = Text()
        line.append(f"{issue.severity}[{issue.code}] ", style=style)
        line.append(safe(issue.message))
        lines.append(line)
    if len(issues) > limit:
        lines.append(Text(f"... and {len(issues) - limit} more (use --format json to see all)"))
    return lines


def print_issues(console: Console, issues: Sequence[Issue]) -> None:
    for line in issue_lines(issues):
        console.print(line, soft_wrap=True, highlight=False)


SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[Num | None], lo: Num, hi: Num) -> str:
    """One block character per value, from ▁ at ``lo`` to █ at ``hi``; a missing value is
    a middle dot."""
    out = []
    top = len(SPARK_BLOCKS) - 1
    for value in values:
        if value is None:
            out.append("·")
        elif hi <= lo:
            out.append(SPARK_BLOCKS[0])
        else:
            level = round((min(max(value, lo), hi) - lo) / (hi - lo) * top)
            out.append(SPARK_BLOCKS[level])
    return "".join(out)


def change_tables(report: ChangeReport, scale: Scale, *, trend: bool = False) -> Group:
    """The per-subject and per-visit tables. With ``trend`` (on a terminal) a sparkline of
    each subject's score across the visits is added, and cells with a response or a
    remission are coloured."""
    rule = scale.score(report.score)
    followups = [v for v in report.visits if any(r.visit == v for r in report.rows)]
    subjects = Table(
        title=f"{scale.name}: {rule.label} ({report.score}), change from baseline",
        title_justify="left",
        header_style="bold",
    )
    subjects.add_column("Subject")
    if report.by:
        subjects.add_column(safe(report.by))
    subjects.add_column("Baseline", justify="right")
    for visit in followups:
        subjects.add_column(safe(visit), justify="right")
    if trend:
        subjects.add_column("Trend", no_wrap=True)
    cells_by: dict[str, dict[str, Text]] = {}
    values_by: dict[str, dict[str, Num | None]] = {}
    for row in report.rows:
        values_by.setdefault(row.subject, {})[row.visit] = row.value
        style = ""
        if trend and row.remission:
            style = "bold green"
        elif trend and row.response:
            style = "green"
        text = Text(fmt(row.value), style=style)
        if row.percent_change is not None:
            text.append(f" ({row.percent_change:+.0f}%)", style="dim")
        elif row.change is not None:
            text.append(f" ({row.change:+g})", style="dim")
        marks = ("R" if row.response else "") + ("r" if row.remission else "")
        if marks:
            text.append(f" {marks}", style="bold green" if row.remission else "green")
        cells_by.setdefault(row.subject, {})[row.visit] = text
    observed = [v for v in (row.value for row in report.rows) if v is not None]
    observed += [b[2] for b in report.baselines.values() if b[2] is not None]
    trend_range = (min(observed, default=rule.lo), max(observed, default=rule.hi))
    for subject in report.subjects:
        base = report.baselines.get(subject)
        cells: list[Any] = [safe(subject)]
        if report.by:
            cells.append(safe(report.groups.get(subject) or "-"))
        if base is None:
            cells.append(Text("none", style="red"))
        else:
            visit, _, value = base
            cells.append(Text(f"{fmt(value)}") if value is not None else Text("-", style="red"))
        row_cells = cells_by.get(subject, {})
        cells += [row_cells.get(v, Text("")) for v in followups]
        if trend:
            series = dict(values_by.get(subject, {}))
            if base is not None:
                series[base[0]] = base[2]
            spark = sparkline([series.get(v) for v in report.visits], *trend_range)
            cells.append(Text(spark, style="cyan"))
        subjects.add_row(*cells)
    subjects.caption = "R = response, r = remission; (percent change from baseline)"
    if trend:
        subjects.caption += (
            f"; trend: {report.score} at each visit ({safe(', '.join(report.visits))}), "
            f"▁ = {fmt(trend_range[0])}, █ = {fmt(trend_range[1])}, · = no value"
        )
    subjects.caption_justify = "left"

    summary = Table(title="Summary by visit", title_justify="left", header_style="bold")
    summary.add_column("Visit")
    if report.by:
        summary.add_column(safe(report.by))
    summary.add_column("n", justify="right")
    summary.add_column("Mean (SD)", justify="right")
    summary.add_column("Change (SD)", justify="right")
    summary.add_column("Responders", justify="right")
    summary.add_column("Remitters", justify="right")
    for s in report.summary:
        cells = [safe(s.visit)]
        if report.by:
            cells.append(safe(s.group or "(missing)"))
        cells += [
            str(s.n),
            f"{fmt(s.mean)} ({fmt(s.sd)})",
            "" if s.is_baseline else f"{fmt(s.mean_change)} ({fmt(s.sd_change)})",
            "" if s.is_baseline else _count(s.responders, s.n_response, s.response_rate),
            "" if s.is_baseline else _count(s.remitters, s.n_remission, s.remission_rate),
        ]
        summary.add_row(*cells)
    crit = report.criteria
    notes = []
    if crit.reduction_percent is not None:
        notes.append(f"response = reduction of at least {fmt(crit.reduction_percent)}%")
    remission = crit.describe()["remission"]
    if remission:
        notes.append(f"remission = {report.score} {remission}")
    rules = ", ".join(
        f"{RULE_TEXT[rule]} ({n} subject{'s' if n != 1 else ''})"
        for rule, n in report.baseline_rules().items()
    )
    if rules:
        notes.append(f"baseline: {rules}")
    summary.caption = "; ".join(notes)
    summary.caption_justify = "left"
    return Group(subjects, Text(""), summary)


def _count(count: int, total: int, rate: float | None) -> str:
    if not total:
        return "-"
    return f"{count}/{total} ({fmt(rate, 0)}%)"


def scales_table(scales: Sequence[Scale]) -> Table:
    table = Table(header_style="bold")
    for col in ("Id", "Name", "Rater", "Items", "Scores", "Licence"):
        table.add_column(col)
    for s in scales:
        scores = ", ".join(f"{r.id} {fmt(r.lo)}-{fmt(r.hi)}" for r in s.scores)
        # Text, not str: a name with [brackets] must not be read as rich markup
        table.add_row(
            *(
                Text(cell)
                for cell in (
                    s.id,
                    s.name,
                    s.definition.rater,
                    str(len(s.items)),
                    scores,
                    s.definition.licence.status,
                )
            )
        )
    return table
