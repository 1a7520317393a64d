"""Terminal rendering with rich. Rendering never computes: it only lays out results."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ketascore.analysis.change import IMPUTATIONS, RULE_TEXT, ChangeReport, ChangeRow
from ketascore.core.issues import Issue, severity_counts
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale
from ketascore.core.values import Num, format_number
from ketascore.present import numbers

_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def safe(text: Any) -> str:
    """Text from the data, with control characters shown as \\xNN: an escape sequence in a
    subject id must not recolour, retitle or clear the user's terminal."""
    return str(text).translate(_CONTROL)


def fmt(value: Num | None, digits: int = 1) -> str:
    """A number with ``digits`` decimals when it has a fraction (the clinic tables); the
    change and score tables print with ``ketascore.present.numbers``."""
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
            cells: list[Any] = [safe(r.subject), safe(r.visit), numbers.value(r.day)]
            for name in names:
                value = r.scores.get(name)
                text = Text(numbers.value(value))
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


ISSUES_LISTED = 50  # problems listed on stderr; the others are in the output (JSON, CSV)


def issue_lines(
    issues: Sequence[Issue],
    limit: int = ISSUES_LISTED,
    totals: tuple[int, int] | None = None,
) -> list[Text]:
    """The issues as lines, errors before warnings (each in its input order), at most
    ``limit`` of them, then the count of each: ``2 errors, 1 warning``. ``totals``: the
    errors and warnings there are, when ``issues`` are only the first of them (the table
    engine reads the issues of the first results with one only)."""
    ordered = sorted(issues, key=lambda i: i.severity != "error")
    errors, warnings = severity_counts(issues) if totals is None else totals
    lines = []
    for issue in ordered[:limit]:
        style = "red" if issue.severity == "error" else "yellow"
        line = Text()
        line.append(f"{issue.severity}[{issue.code}] ", style=style)
        line.append(safe(issue.message))
        lines.append(line)
    total = errors + warnings
    if total > limit:
        lines.append(Text(f"... and {total - limit} more (use --format json to see all)"))
    if total:
        lines.append(Text(issue_counts(errors, warnings), style="bold"))
    return lines


def issue_counts(errors: int, warnings: int) -> str:
    """``2 errors, 1 warning``."""
    return f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning" + (
        "s" if warnings != 1 else ""
    )


def print_issues(
    console: Console, issues: Sequence[Issue], totals: tuple[int, int] | None = None
) -> None:
    for line in issue_lines(issues, totals=totals):
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


def change_tables(report: ChangeReport, scale: Scale, *, trend: bool = False) -> ChangeTables:
    """The per-subject and per-visit tables. With ``trend`` (on a terminal) a sparkline of
    each subject's score across the visits is added, and cells with a response or a
    remission are coloured. The tables are laid out for the width they are printed at (see
    ``ChangeTables``)."""
    return ChangeTables(report, scale, trend)


@dataclass(frozen=True)
class _Layout:
    """How much the tables show: each step makes them narrower without cutting any text."""

    trend: bool = True  # the sparkline column
    lines: str = "box"  # box: lines around and between the columns; rule: under the header
    # only; none: no lines (the header is bold)
    long_headers: bool = True  # the group column's full name; Responders, Remitters
    visits: tuple[str, ...] | None = None  # the follow-up visits of this table (None: all)


LAYOUTS = (
    _Layout(),
    _Layout(trend=False),
    _Layout(trend=False, lines="rule"),
    _Layout(trend=False, lines="rule", long_headers=False),
    _Layout(trend=False, lines="none", long_headers=False),
)
BOXES = {"box": box.HEAVY_HEAD, "rule": box.SIMPLE_HEAD, "none": None}


class ChangeTables:
    """The change tables, laid out when printed for the width of the console: the first
    layout (``LAYOUTS``) whose narrowest form fits is used, so that no cell is cut. The
    subject id and the visit names are never wrapped or cut; the trend column goes first,
    then the column lines, then long headers, and when the visits still do not fit, the
    per-subject table is split into several with the subject column repeated."""

    def __init__(self, report: ChangeReport, scale: Scale, trend: bool):
        self.report = report
        self.scale = scale
        self.trend = trend

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        yield from self.subject_tables(console, options, width)
        yield Text("")
        yield self.fitted(console, options, width, self.summary_table)

    def fitted(
        self,
        console: Console,
        options: ConsoleOptions,
        width: int,
        build: Callable[[_Layout], Table],
    ) -> Table:
        """The table of the first layout that fits ``width`` (else the narrowest layout's)."""
        table = build(LAYOUTS[-1])
        for layout in LAYOUTS:
            candidate = build(layout)
            if fit_columns(console, options, candidate, width):
                return candidate
        fit_columns(console, options, table, width)
        return table

    def subject_tables(
        self, console: Console, options: ConsoleOptions, width: int
    ) -> Iterator[Table]:
        visits = followup_visits(self.report)
        whole = self.fitted(console, options, width, self.subject_table)
        if _fits(whole) or len(visits) < 2:
            yield whole
            return
        narrow = LAYOUTS[-1]
        pages: list[list[str]] = [[]]
        for visit in visits:  # as many visits per table as fit
            trial = self.subject_table(replace(narrow, visits=(*pages[-1], visit)))
            if pages[-1] and not fit_columns(console, options, trial, width):
                pages.append([])
            pages[-1].append(visit)
        for i, page in enumerate(pages):
            table = self.subject_table(replace(narrow, visits=tuple(page)))
            fit_columns(console, options, table, width)
            if i:
                table.title = None
            if i + 1 < len(pages):
                table.caption = f"(continued: {', '.join(safe(v) for v in pages[i + 1])})"
            yield table

    def subject_table(self, layout: _Layout) -> Table:
        report, scale = self.report, self.scale
        rule = scale.score(report.score)
        followups = list(layout.visits) if layout.visits is not None else followup_visits(report)
        trend = self.trend and layout.trend
        table = _table(f"{scale.name}: {rule.label} ({report.score}), change from baseline", layout)
        table.add_column("Subject", no_wrap=True)
        if report.by:
            table.add_column(_group_header(report.by, layout))
        table.add_column("Baseline", justify="right", no_wrap=True)
        for visit in followups:
            table.add_column(safe(visit), justify="right", header_style="bold", no_wrap=False)
        if trend:
            table.add_column("Trend", no_wrap=True)
        cells_by: dict[str, dict[str, Text]] = {}
        values_by: dict[str, dict[str, Num | None]] = {}
        carried: set[str] = set()
        for row in report.rows:
            values_by.setdefault(row.subject, {})[row.visit] = row.value
            cells_by.setdefault(row.subject, {})[row.visit] = self.cell(row)
            if row.imputed and row.value is not None:
                carried.add(row.imputed)
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
                value = base[2]
                cells.append(Text(numbers.value(value)) if value is not None else Text("-", "red"))
            row_cells = cells_by.get(subject, {})
            cells += [row_cells.get(v, Text("")) for v in followups]
            if trend:
                series = dict(values_by.get(subject, {}))
                if base is not None:
                    series[base[0]] = base[2]
                spark = sparkline([series.get(v) for v in report.visits], *trend_range)
                cells.append(Text(spark, style="cyan"))
            table.add_row(*cells)
        notes = ["R = response, r = remission; (percent change from baseline)"]
        for kind in sorted(carried):
            mark = numbers.CARRIED_MARKS.get(kind, "*")
            notes.append(f"{mark} {kind}, {IMPUTATIONS.get(kind, kind)}")
        if trend:
            notes.append(
                f"trend: {report.score} at each visit ({safe(', '.join(report.visits))}), "
                f"▁ = {numbers.value(trend_range[0])}, █ = {numbers.value(trend_range[1])}, "
                "· = no value"
            )
        table.caption = "; ".join(notes)
        table.caption_justify = "left"
        return table

    def cell(self, row: ChangeRow) -> Text:
        style = ""
        if self.trend and row.remission:
            style = "bold green"
        elif self.trend and row.response:
            style = "green"
        text = Text(numbers.value(row.value), style=style)
        if row.imputed and row.value is not None:
            text.append(numbers.CARRIED_MARKS.get(row.imputed, "*"), style="yellow")
        if row.percent_change is not None:
            text.append(f" ({numbers.percent(row.percent_change, sign=True)}%)", style="dim")
        elif row.change is not None:
            change = numbers.value(row.change)
            text.append(f" ({'+' if row.change > 0 else ''}{change})", style="dim")
        marks = ("R" if row.response else "") + ("r" if row.remission else "")
        if marks:
            text.append(f" {marks}", style="bold green" if row.remission else "green")
        return text

    def summary_table(self, layout: _Layout) -> Table:
        report = self.report
        table = _table("Summary by visit", layout)
        table.add_column("Visit", no_wrap=True)
        if report.by:
            table.add_column(_group_header(report.by, layout))
        table.add_column("n", justify="right")
        table.add_column("Mean (SD)", justify="right")
        table.add_column("Change (SD)", justify="right")
        table.add_column("Responders" if layout.long_headers else "Resp.", justify="right")
        table.add_column("Remitters" if layout.long_headers else "Remit.", justify="right")
        any_carried = False
        for s in report.summary:
            cells = [safe(s.visit)]
            if report.by:
                cells.append(safe(s.group or "(missing)"))
            n = str(s.n)
            if s.n_imputed:
                n += f" ({s.n_imputed}†)"
                any_carried = True
            cells += [
                n,
                numbers.mean_sd(s.mean, s.sd),
                "" if s.is_baseline else numbers.mean_sd(s.mean_change, s.sd_change),
                ""
                if s.is_baseline
                else numbers.count_rate(s.responders, s.n_response, s.response_rate),
                ""
                if s.is_baseline
                else numbers.count_rate(s.remitters, s.n_remission, s.remission_rate),
            ]
            table.add_row(*cells)
        crit = report.criteria
        notes = []
        if not layout.long_headers:
            notes.append("Resp. = responders, Remit. = remitters")
        if any_carried:
            notes.append(
                "n (k†): n subjects with a value, k of them carried forward; the mean, the "
                "change and the counts include them"
            )
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
        table.caption = "; ".join(notes)
        table.caption_justify = "left"
        return table


_WIDE = 1 << 16


def fit_columns(console: Console, options: ConsoleOptions, table: Table, width: int) -> bool:
    """Give each column of ``table`` a width so that the table is at most ``width`` wide
    and no word is cut (a ``no_wrap`` column keeps its whole text): the widest columns are
    narrowed first, never below their longest word. False (widths unchanged) when even
    that is too wide. rich's own layout narrows columns below their longest word, which
    then shows as ``…``."""
    wide = options.update_width(_WIDE)
    lows, highs = [], []
    for column in table.columns:
        low = high = 1
        for cell in (column.header, *column.cells):
            if isinstance(cell, str | Text):
                measured = Measurement.get(console, wide, cell)
                low, high = max(low, measured.minimum), max(high, measured.maximum)
        lows.append(high if column.no_wrap else low)
        highs.append(high)
    room = width - _overhead(console, table)
    if sum(lows) > room:
        return False
    widths = list(highs)
    excess = sum(widths) - room
    while excess > 0:  # narrow the column with the most to spare, one character at a time
        i = max(range(len(widths)), key=lambda k: (widths[k] - lows[k], widths[k]))
        widths[i] -= 1
        excess -= 1
    for column, w in zip(table.columns, widths, strict=True):
        column.width = w
    table.fitted = True  # type: ignore[attr-defined]
    return True


def _fits(table: Table) -> bool:
    return bool(getattr(table, "fitted", False))


def _overhead(console: Console, table: Table) -> int:
    """The columns a table takes beyond its cells' text: padding and box lines."""
    probe = Table(
        box=table.box,
        padding=table.padding,
        pad_edge=table.pad_edge,
        show_edge=table.show_edge,
        show_header=False,
    )
    for _ in table.columns:
        probe.add_column(width=1)
    probe.add_row(*([""] * len(table.columns)))
    measured = Measurement.get(console, console.options.update_width(_WIDE), probe)
    return measured.maximum - len(table.columns)


def followup_visits(report: ChangeReport) -> list[str]:
    """The visits with a change from baseline, in the report's order."""
    with_rows = {r.visit for r in report.rows}
    return [v for v in report.visits if v in with_rows]


def _table(title: str, layout: _Layout) -> Table:
    return Table(
        title=title,
        title_justify="left",
        header_style="bold",
        box=BOXES[layout.lines],
        pad_edge=layout.lines == "box",
    )


def _group_header(by: str, layout: _Layout) -> str:
    """``hamd17.anxious_depression``, or in narrow layouts ``anxious depression`` (words
    that may wrap)."""
    if layout.long_headers:
        return safe(by)
    return safe(by.rpartition(".")[2].replace("_", " "))


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
