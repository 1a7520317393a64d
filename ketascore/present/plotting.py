"""Pictures of change from baseline: trajectories, spaghetti plots, waterfall plots and band
distributions.

The numbers behind each picture are computed here without matplotlib (the ``*_data``
functions, which the tests check against the change report). Drawing needs matplotlib, an
optional extra (``pip install 'ketascore[plot]'``); it is imported only when a figure is
drawn, and figures are built with ``matplotlib.figure.Figure`` directly, so no pyplot state or
GUI backend is touched. Output is deterministic: no dates in the metadata, fixed SVG ids.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ketascore.analysis.change import (
    ChangeReport,
    ChangeRow,
    SummaryRow,
    group_order,
)
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale, ScoreRule
from ketascore.core.values import Num, format_number
from ketascore.present import numbers

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

KINDS = ("trajectory", "spaghetti", "waterfall", "distribution")
ERRORS = ("ci", "se", "sd")
FORMATS = ("png", "svg", "pdf")
INSTALL_HINT = "pip install 'ketascore[plot]'"

# Okabe-Ito colours (distinguishable with colour-blindness), each group also gets its own
# line style, marker and hatch so the pictures read in greyscale.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LINESTYLES: tuple[Any, ...] = ("-", "--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 1)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
HATCHES = ("", "///", "...", "xxx", "\\\\\\", "++", "oo")
# response/remission: dark, middle and light, so the categories survive greyscale printing
OUTCOME_COLOURS = {"remission": "#08306B", "response": "#4A98C9", "neither": "#CFCFCF"}
MISSING_GROUP = "(missing)"
WATERFALL_CAP = 100  # percent; taller bars are cut at the top and labelled with their value


class PlottingUnavailable(RuntimeError):
    """matplotlib is not installed."""


class PlotError(ValueError):
    """The data cannot give the picture asked for (no values, no bands, unknown visit)."""


def require_matplotlib() -> None:
    """Raise ``PlottingUnavailable`` with the install command when matplotlib is missing."""
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise PlottingUnavailable(
            f"pictures need matplotlib, which is not installed; install it with: {INSTALL_HINT}"
        ) from None


# --------------------------------------------------------------------------------------
# Statistics


def t_quantile(p: float, df: int) -> float:
    """The ``p`` quantile (p > 0.5) of Student's t with ``df`` degrees of freedom.

    Uses the closed form of P(|T| < t) for whole degrees of freedom (Abramowitz & Stegun
    26.7.3-4) and bisection; exact to about 1e-10."""
    if df < 1:
        raise ValueError("df must be at least 1")
    target = 2 * p - 1  # P(|T| < t)

    def central(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        c2 = math.cos(theta) ** 2
        if df % 2:
            total, term = 0.0, math.cos(theta)
            if df > 1:
                total = term
                for k in range(1, (df - 3) // 2 + 1):
                    term *= 2 * k / (2 * k + 1) * c2
                    total += term
            return 2 / math.pi * (theta + math.sin(theta) * total)
        total, term = 1.0, 1.0
        for k in range(1, (df - 2) // 2 + 1):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, 1.0
    while central(hi) < target:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if central(mid) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return (lo + hi) / 2


def error_half_width(n: int, sd: float | None, error: str) -> float | None:
    """Half-width of the error bar: 95% CI of the mean (t), standard error, or SD."""
    if sd is None or n < 2:
        return None
    if error == "sd":
        return sd
    se = sd / math.sqrt(n)
    if error == "se":
        return se
    return t_quantile(0.975, n - 1) * se


ERROR_TEXT = {"ci": "Mean and 95% CI", "se": "Mean ± SE", "sd": "Mean ± SD"}


# --------------------------------------------------------------------------------------
# The numbers behind the pictures


@dataclass
class GroupInfo:
    key: str | None
    label: str
    subjects: list[str]

    @property
    def n(self) -> int:
        return len(self.subjects)


def groups_of(report: ChangeReport) -> list[GroupInfo]:
    """The groups in the order of the summary table (one unnamed group without ``by``)."""
    if not report.by:
        return [GroupInfo(None, "all subjects", list(report.subjects))]
    members: dict[str | None, list[str]] = {}
    for subject in report.subjects:
        members.setdefault(report.groups.get(subject), []).append(subject)
    keys = group_order(members)
    field_name = report.by.rpartition(".")[2]
    out = []
    for key in keys:
        label = MISSING_GROUP if key is None else key
        if key in ("yes", "no"):  # a yes/no classification says little without its name
            label = f"{field_name}: {key}"
        out.append(GroupInfo(key, label, members[key]))
    return out


@dataclass
class VisitAxis:
    """Where each visit goes on the x axis: its study day when every visit has one (the
    median over subjects), else its place in the visit order."""

    visits: list[str]
    x: dict[str, float]
    by_day: bool
    days: dict[str, Num] = field(default_factory=dict)

    def label(self, visit: str) -> str:
        if not self.by_day:
            return visit
        day = format_number(self.days[visit])
        plain = re.sub(r"[\s_-]+", "", visit.casefold())
        if plain in (f"day{day}", f"d{day}"):
            return day
        return f"{day}\n{visit}"


def visit_axis(report: ChangeReport, results: Sequence[ScoreResult] | None = None) -> VisitAxis:
    found: dict[str, list[Num]] = {}
    for r in results or ():
        if r.scale == report.scale and r.day is not None:
            found.setdefault(r.visit, []).append(r.day)
    for row in report.rows:
        if results is None and row.day is not None:
            found.setdefault(row.visit, []).append(row.day)
    days = {v: sorted(d)[len(d) // 2] for v, d in found.items()}
    visits = list(report.visits)
    ordered = [days[v] for v in visits if v in days]
    if len(ordered) == len(visits) and all(a < b for a, b in itertools.pairwise(ordered)):
        return VisitAxis(visits, {v: float(days[v]) for v in visits}, True, days)
    return VisitAxis(visits, {v: float(i) for i, v in enumerate(visits)}, False)


def values_by_subject(
    report: ChangeReport, results: Sequence[ScoreResult] | None = None
) -> dict[str, dict[str, Num]]:
    """Each subject's score at each visit. From the scored results when given (the same
    values as the summary table), else from the report's baselines and rows."""
    out: dict[str, dict[str, Num]] = {s: {} for s in report.subjects}
    if results is not None:
        for r in results:
            value = r.scores.get(report.score)
            if r.scale == report.scale and r.subject in out and value is not None:
                out[r.subject][r.visit] = value
        for row in report.rows:  # values carried forward count as the summary counts them
            if row.imputed and row.value is not None and row.subject in out:
                out[row.subject].setdefault(row.visit, row.value)
        return out
    for subject, (visit, _, value) in report.baselines.items():
        if value is not None and subject in out:
            out[subject][visit] = value
    for row in report.rows:
        if row.value is not None:
            out[row.subject][row.visit] = row.value
    return out


@dataclass
class TrajectoryPoint:
    visit: str
    x: float
    n: int
    mean: float
    sd: float | None
    low: float | None
    high: float | None


@dataclass
class TrajectoryLine:
    group: GroupInfo
    points: list[TrajectoryPoint]


def trajectory_data(
    report: ChangeReport,
    results: Sequence[ScoreResult] | None = None,
    error: str = "ci",
) -> list[TrajectoryLine]:
    """Mean and error bar per visit and group: the numbers of the summary table."""
    if error not in ERRORS:
        raise ValueError(f"error must be one of {', '.join(ERRORS)}")
    axis = visit_axis(report, results)
    by_key: dict[tuple[str | None, str], SummaryRow] = {
        (s.group, s.visit): s for s in report.summary
    }
    lines = []
    for group in groups_of(report):
        points = []
        for visit in axis.visits:
            s = by_key.get((group.key, visit))
            if s is None or s.mean is None:
                continue
            half = error_half_width(s.n, s.sd, error)
            points.append(
                TrajectoryPoint(
                    visit=visit,
                    x=axis.x[visit],
                    n=s.n,
                    mean=s.mean,
                    sd=s.sd,
                    low=s.mean - half if half is not None else None,
                    high=s.mean + half if half is not None else None,
                )
            )
        lines.append(TrajectoryLine(group, points))
    return lines


def default_visit(report: ChangeReport) -> str | None:
    """The last visit with a change from baseline."""
    followups = [v for v in report.visits if any(row.visit == v for row in report.rows)]
    return followups[-1] if followups else None


def outcome(row: ChangeRow) -> str:
    if row.remission:
        return "remission"
    if row.response:
        return "response"
    return "neither"


@dataclass
class WaterfallData:
    visit: str
    bars: list[ChangeRow]  # sorted: largest increase first, largest decrease last
    left_out: list[ChangeRow]  # at the visit but without a percent change


def waterfall_data(report: ChangeReport, visit: str | None = None) -> WaterfallData:
    chosen = visit if visit is not None else default_visit(report)
    if chosen is None:
        raise PlotError("no visit after the baseline has a change from baseline")
    at_visit = [row for row in report.rows if row.visit == chosen]
    if visit is not None and not at_visit:
        followups = [v for v in report.visits if any(row.visit == v for row in report.rows)]
        raise PlotError(
            f"no change from baseline at visit {visit!r}; visits: {', '.join(followups)}"
        )
    order = {s: i for i, s in enumerate(report.subjects)}
    bars = [row for row in at_visit if row.percent_change is not None]
    bars.sort(key=lambda row: (-(row.percent_change or 0), order[row.subject]))
    left_out = [row for row in at_visit if row.percent_change is None]
    return WaterfallData(chosen, bars, left_out)


def ordered_bands(rule: ScoreRule) -> list[tuple[str, Num, Num]]:
    """(label, start, end) of each band, by score: a value belongs to the band whose start
    it reaches last, so band boundaries sit at each band's minimum."""
    bands = sorted(rule.bands, key=lambda b: b.min)
    out = []
    for i, band in enumerate(bands):
        end = bands[i + 1].min if i + 1 < len(bands) else max(band.max, rule.hi)
        out.append((band.label, band.min, end))
    return out


@dataclass
class DistributionPanel:
    group: GroupInfo
    counts: dict[str, dict[str, int]]  # visit -> band label -> subjects


@dataclass
class DistributionData:
    bands: list[str]  # lowest score first
    visits: list[str]
    panels: list[DistributionPanel]


def distribution_data(
    report: ChangeReport, scale: Scale, results: Sequence[ScoreResult] | None = None
) -> DistributionData:
    rule = scale.score(report.score)
    if not rule.bands:
        raise PlotError(
            f"{scale.id} {report.score} has no severity bands; "
            "choose a score with bands or another kind of picture"
        )
    labels = [label for label, _, _ in ordered_bands(rule)]
    values = values_by_subject(report, results)
    panels = []
    for group in groups_of(report):
        counts: dict[str, dict[str, int]] = {v: dict.fromkeys(labels, 0) for v in report.visits}
        for subject in group.subjects:
            for visit, value in values[subject].items():
                band = rule.band(value)
                if band is not None and visit in counts:
                    counts[visit][band] += 1
        panels.append(DistributionPanel(group, counts))
    return DistributionData(labels, list(report.visits), panels)


# --------------------------------------------------------------------------------------
# Words


def score_name(scale: Scale, report: ChangeReport) -> str:
    """'MADRS total score'."""
    label = scale.score(report.score).label
    if len(label) > 1 and label[0].isupper() and label[1].islower():
        label = label[0].lower() + label[1:]
    return f"{scale.definition.short_name or scale.id} {label}"


def axis_label(scale: Scale, report: ChangeReport) -> str:
    rule = scale.score(report.score)
    return f"{score_name(scale, report)} (points, {fmt_num(rule.lo)}–{fmt_num(rule.hi)})"


def fmt_num(value: Num) -> str:
    """A value or threshold as ``ketascore.present.numbers`` prints it everywhere."""
    return numbers.value(value)


def criteria_text(report: ChangeReport) -> str:
    crit = report.criteria
    parts = []
    if crit.reduction_percent is not None:
        parts.append(f"response = reduction of at least {fmt_num(crit.reduction_percent)}%")
    if crit.remission_at_most is not None:
        parts.append(f"remission = {report.score} ≤ {fmt_num(crit.remission_at_most)}")
    elif crit.remission_below is not None:
        parts.append(f"remission = {report.score} < {fmt_num(crit.remission_below)}")
    return "; ".join(parts)


def plain(text: str) -> str:
    """Text from the data, shown literally (a ``$`` would start matplotlib's math mode)."""
    return text.replace("$", r"\$")


def safe_id(text: str) -> str:
    """Text as an XML id, one to one: other characters than letters, digits, ``.`` and ``-``
    become ``_<hex>_``."""
    return re.sub(r"[^A-Za-z0-9.-]", lambda m: f"_{ord(m.group(0)):x}_", text)


def group_n_text(groups: list[GroupInfo]) -> str:
    total = sum(g.n for g in groups)
    if len(groups) == 1:
        return f"n = {total} subjects"
    return f"n = {total} subjects in {len(groups)} groups (n of each group beside its name)"


# --------------------------------------------------------------------------------------
# Drawing


def _rc(kind: str) -> dict[str, Any]:
    return {
        "font.size": 9,
        "axes.titlesize": 10,
        "axes.labelsize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "legend.frameon": False,
        "legend.fontsize": 8.5,
        "svg.fonttype": "none",  # text stays text: searchable, and smaller
        "svg.hashsalt": f"ketascore-{kind}",  # fixed ids, unique per kind in one page
        "pdf.fonttype": 42,
    }


@contextmanager
def figure_style(kind: str) -> Iterator[None]:
    import matplotlib

    rc: Any = _rc(kind)
    with matplotlib.rc_context(rc):
        yield


def _new_figure(kind: str, width: float, height: float, header: float = 0.62) -> Figure:
    """A figure with constrained layout and a band of ``header`` inches on top for titles."""
    from matplotlib.figure import Figure
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = ConstrainedLayoutEngine(rect=(0, 0, 1, 1 - header / height))
    fig = Figure(figsize=(width, height), layout=engine, dpi=100)
    fig.set_label(kind)
    return fig


TITLE_LINE, SUBTITLE_LINE = 0.26, 0.16  # inches per line of the title and the subtitle
MARGIN = 0.012  # of the figure's width, left and right of the titles


def carried_note(report: ChangeReport) -> str | None:
    """``Includes values carried forward (LOCF)`` when some values were not observed."""
    carried = sorted({r.imputed for r in report.rows if r.imputed})
    return f"Includes values carried forward ({', '.join(carried)})" if carried else None


def _titles(fig: Figure, title: str, subtitle: str, report: ChangeReport | None = None) -> None:
    """The title and subtitle in the band at the top, each wrapped to the figure's width
    (the figure grows taller by the lines added, so the picture keeps its size); below the
    subtitle, whether the picture includes values carried forward."""
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    room = fig.get_figwidth() * fig.dpi * (1 - 2 * MARGIN)
    title_lines = wrap_to_width(fig, plain(title), room, fontsize=12, fontweight="bold")
    note = carried_note(report) if report is not None else None
    sub_lines = wrap_to_width(fig, plain(subtitle), room, fontsize=8.5)
    if note:
        sub_lines += wrap_to_width(fig, note, room, fontsize=8.5)
    header = 0.1 + TITLE_LINE * len(title_lines) + SUBTITLE_LINE * len(sub_lines) + 0.1
    engine = fig.get_layout_engine()
    rect = engine.get().get("rect") if isinstance(engine, ConstrainedLayoutEngine) else None
    old_header = (1 - rect[3]) * fig.get_figheight() if rect else 0.62
    height = fig.get_figheight() + max(0.0, header - old_header)
    fig.set_figheight(height)
    if isinstance(engine, ConstrainedLayoutEngine):
        engine.set(rect=(0, 0, 1, 1 - header / height))
    fig.text(
        MARGIN, 1 - 0.1 / height, "\n".join(title_lines), fontsize=12, fontweight="bold", va="top"
    )
    top = 0.1 + TITLE_LINE * len(title_lines)
    fig.text(MARGIN, 1 - top / height, "\n".join(sub_lines), fontsize=8.5, color="0.3", va="top")


def wrap_to_width(fig: Figure, text: str, room: float, **font: Any) -> list[str]:
    """``text`` in as few lines as fit ``room`` pixels of ``fig`` in the given font, broken
    at spaces (a word longer than the room stays whole)."""
    import textwrap

    from matplotlib.backends.backend_agg import RendererAgg

    renderer = RendererAgg(  # type: ignore[no-untyped-call]
        fig.get_figwidth() * fig.dpi, fig.get_figheight() * fig.dpi, fig.dpi
    )

    def width(line: str) -> float:
        probe = fig.text(0, 0, line, **font)
        wide = float(probe.get_window_extent(renderer).width)
        probe.remove()
        return wide

    whole = width(text)
    if whole <= room:
        return [text]
    chars = int(len(text) * room / whole) + 2  # about the line length that fits
    while chars > 10:
        lines = textwrap.wrap(text, chars)
        if all(width(line) <= room for line in lines):
            return lines
        chars -= 1
    return textwrap.wrap(text, 10)


def _shade_bands(ax: Axes, rule: ScoreRule, label: bool = True) -> None:
    """The scale's bands as light horizontal stripes, named at the right."""
    from matplotlib.transforms import blended_transform_factory

    lo, hi = ax.get_ylim()
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    for i, (name, start, end) in enumerate(ordered_bands(rule)):
        a, b = max(start, lo), min(end, hi)
        if b <= a:
            continue
        if i % 2:
            ax.axhspan(a, b, color="0.93", zorder=0, linewidth=0)
        if lo < start < hi:
            ax.axhline(start, color="0.7", linewidth=0.6, linestyle=":", zorder=0.5)
        if label and b - a >= (hi - lo) * 0.04:
            ax.text(
                1.01,
                (a + b) / 2,
                plain(name),
                transform=trans,
                fontsize=7.5,
                color="0.4",
                va="center",
                ha="left",
                rotation=90 if b - a < (hi - lo) * 0.15 else 0,
            )
    ax.set_ylim(lo, hi)


def _value_limits(values: Sequence[float], rule: ScoreRule) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, (rule.hi - rule.lo) * 0.03)
    return max(rule.lo, lo - pad), min(rule.hi, hi + pad)


def _visit_ticks(ax: Axes, axis: VisitAxis) -> None:
    ax.set_xticks([axis.x[v] for v in axis.visits], [plain(axis.label(v)) for v in axis.visits])
    ax.set_xlabel("Study day" if axis.by_day else "Visit")
    span = max(axis.x.values()) - min(axis.x.values()) or 1.0
    ax.set_xlim(min(axis.x.values()) - span * 0.04, max(axis.x.values()) + span * 0.04)


def _dodge(axis: VisitAxis, n: int) -> list[float]:
    """Small x offsets so error bars of several groups do not hide each other."""
    if n < 2:
        return [0.0]
    xs = sorted(axis.x.values())
    gap = min((b - a for a, b in itertools.pairwise(xs)), default=1.0)
    step = gap * 0.25 / (n - 1)
    return [(i - (n - 1) / 2) * step for i in range(n)]


def trajectory_figure(
    report: ChangeReport,
    scale: Scale,
    results: Sequence[ScoreResult] | None = None,
    *,
    error: str = "ci",
    title: str | None = None,
) -> Figure:
    lines = trajectory_data(report, results, error)
    if not any(line.points for line in lines):
        raise PlotError(f"no {scale.id} {report.score} values to plot")
    rule = scale.score(report.score)
    axis = visit_axis(report, results)
    groups = [line.group for line in lines]
    fig = _new_figure("trajectory", 8, 5.4)
    ax = fig.add_subplot()
    offsets = _dodge(axis, len(lines))
    bounds: list[float] = []
    for i, line in enumerate(lines):
        if not line.points:
            continue
        colour = PALETTE[i % len(PALETTE)] if len(lines) > 1 else "#000000"
        xs = [p.x + offsets[i] for p in line.points]
        means = [p.mean for p in line.points]
        below = [p.mean - p.low if p.low is not None else 0.0 for p in line.points]
        above = [p.high - p.mean if p.high is not None else 0.0 for p in line.points]
        bounds += [p.low if p.low is not None else p.mean for p in line.points]
        bounds += [p.high if p.high is not None else p.mean for p in line.points]
        ax.errorbar(
            xs,
            means,
            yerr=[below, above],
            color=colour,
            linestyle=LINESTYLES[i % len(LINESTYLES)],
            marker=MARKERS[i % len(MARKERS)],
            markersize=5,
            linewidth=1.8,
            capsize=3,
            elinewidth=1,
            label=plain(f"{line.group.label} (n={line.group.n})"),
        )
    ax.set_ylim(*_value_limits(bounds, rule))
    _shade_bands(ax, rule)
    _visit_ticks(ax, axis)
    ax.set_ylabel(plain(axis_label(scale, report)))
    fig.legend(loc="outside lower center", ncol=min(3, len(lines)), handlelength=3)
    by = f" by {report.by}" if report.by else ""
    _titles(
        fig,
        title or f"{score_name(scale, report)}{by}",
        f"{ERROR_TEXT[error]} at each visit; {group_n_text(groups)}",
        report,
    )
    return fig


def _panel_grid(fig: Figure, n: int, sharey: bool = True) -> list[Axes]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    grid = fig.subplots(rows, cols, sharex=True, sharey=sharey, squeeze=False)
    axes = [ax for row in grid for ax in row]
    for ax in axes[n:]:
        ax.set_visible(False)
    return axes[:n]


def _panel_labels(ax: Axes, i: int, cols: int, n: int, ylabel: str) -> None:
    """Axis labels on the outer panels only; tick labels under every bottom panel."""
    ax.set_ylabel("" if i % cols else ylabel)
    if i + cols < n:
        ax.set_xlabel("")
    else:
        ax.xaxis.set_tick_params(labelbottom=True)


def spaghetti_figure(
    report: ChangeReport,
    scale: Scale,
    results: Sequence[ScoreResult] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    from matplotlib import patheffects

    rule = scale.score(report.score)
    axis = visit_axis(report, results)
    values = values_by_subject(report, results)
    lines = trajectory_data(report, results, "ci")
    every = [v for per in values.values() for v in per.values()]
    if not every:
        raise PlotError(f"no {scale.id} {report.score} values to plot")
    groups = [line.group for line in lines]
    cols = min(3, len(groups))
    rows = math.ceil(len(groups) / cols)
    fig = _new_figure("spaghetti", 1.2 + 3.4 * cols, 0.9 + 2.9 * rows)
    axes = _panel_grid(fig, len(groups))
    limits = _value_limits(every, rule)
    halo = [patheffects.withStroke(linewidth=4.5, foreground="white")]
    for i, (ax, line) in enumerate(zip(axes, lines, strict=True)):
        colour = PALETTE[i % len(PALETTE)] if len(groups) > 1 else "#0072B2"
        for subject in line.group.subjects:
            visits = [v for v in axis.visits if v in values[subject]]
            if not visits:
                continue
            (drawn,) = ax.plot(
                [axis.x[v] for v in visits],
                [values[subject][v] for v in visits],
                color=colour,
                alpha=0.4,
                linewidth=0.8,
                marker="o" if len(visits) == 1 else None,
                markersize=2,
            )
            drawn.set_gid(f"subject-{safe_id(subject)}")
        ax.plot(
            [p.x for p in line.points],
            [p.mean for p in line.points],
            color="black",
            linewidth=2.4,
            marker=MARKERS[0],
            markersize=4,
            path_effects=halo,
            zorder=5,
        )
        ax.set_ylim(*limits)
        _shade_bands(ax, rule, label=i == cols - 1)
        _visit_ticks(ax, axis)
        _panel_labels(ax, i, cols, len(groups), plain(axis_label(scale, report)))
        if len(groups) > 1:
            ax.set_title(plain(f"{line.group.label} (n={line.group.n})"), loc="left")
    by = f" by {report.by}" if report.by else ""
    _titles(
        fig,
        title or f"{score_name(scale, report)}: each subject{by}",
        f"Thin lines: one subject each; thick line: the mean; {group_n_text(groups)}",
        report,
    )
    return fig


def waterfall_figure(
    report: ChangeReport,
    scale: Scale,
    *,
    visit: str | None = None,
    color_by: str | None = None,
    title: str | None = None,
) -> Figure:
    from matplotlib.patches import Patch

    data = waterfall_data(report, visit)
    if not data.bars:
        raise PlotError(f"no percent change from baseline at visit {data.visit!r}")
    crit = report.criteria
    has_outcome = crit.reduction_percent is not None or crit.remission_at_most is not None
    has_outcome = has_outcome or crit.remission_below is not None
    mode = color_by or ("outcome" if has_outcome or not report.by else "group")
    groups = groups_of(report)
    index = {g.key: i for i, g in enumerate(groups)}
    n = len(data.bars)
    fig = _new_figure("waterfall", 9, 5.4)
    ax = fig.add_subplot()
    pcts = [row.percent_change or 0.0 for row in data.bars]
    colours: list[str] = []
    hatches: list[str] = []
    for row in data.bars:
        if mode == "group":
            at = index.get(row.group, 0)
            colours.append(PALETTE[at % len(PALETTE)])
            hatches.append(HATCHES[at % len(HATCHES)])
        else:
            colours.append(OUTCOME_COLOURS[outcome(row)])
            hatches.append("")
    bars = ax.bar(
        range(n),
        pcts,
        width=0.8,
        color=colours,
        edgecolor="white" if mode == "outcome" else "0.25",
        linewidth=0.3 if mode == "outcome" else 0.4,
    )
    for patch, row, hatch in zip(bars.patches, data.bars, hatches, strict=True):
        patch.set_gid(f"subject-{safe_id(row.subject)}")
        if hatch:
            patch.set_hatch(hatch)
    slots = max(n, 12)  # a few subjects get bars of a usual width, centred
    pad = (slots - n) / 2
    ax.set_xlim(-0.7 - pad, n - 0.3 + pad)
    ax.axhline(0, color="black", linewidth=0.8)
    threshold = crit.reduction_percent
    low = min(min(pcts), -(threshold or 50)) - 8
    high = max(max(pcts), 0) + 8
    clipped = high > WATERFALL_CAP + 8  # a few large increases would flatten everyone else
    if clipped:
        high = WATERFALL_CAP + 20
    ax.set_ylim(max(low, -108), high)
    for x, pct in enumerate(pcts):
        if pct > high:
            ax.annotate(
                f"{numbers.percent(pct, sign=True)}% ↑",
                (x, high),
                xytext=(0, -3),
                textcoords="offset points",
                ha="center",
                va="top",
                rotation=90,
                fontsize=7,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "linewidth": 0},
            )
    if threshold is not None:
        ax.axhline(-threshold, color="0.2", linewidth=1, linestyle="--")
        ax.text(
            -0.4 - pad,
            -threshold - 1.5,
            f"response threshold (−{fmt_num(threshold)}%)",
            ha="left",
            va="top",
            fontsize=8,
            color="0.2",
        )
    if n <= 30:
        for x, pct in enumerate(pcts):
            if pct > high:
                continue
            ax.annotate(
                f"{numbers.percent(pct, sign=True)}%",
                (x, pct),
                xytext=(0, 2 if pct >= 0 else -2),
                textcoords="offset points",
                ha="center",
                va="bottom" if pct >= 0 else "top",
                fontsize=7,
                color="0.25",
            )
    if n <= 60:
        ax.set_xticks(range(n), [plain(row.subject) for row in data.bars], rotation=90)
        ax.tick_params(axis="x", labelsize=7 if n > 25 else 8, length=0)
    else:
        ax.set_xticks([])
    ax.set_xlabel(f"Subjects (n = {n}), from the largest increase to the largest decrease")
    ax.set_ylabel(plain(f"Change from baseline in {score_name(scale, report)} (%)"))
    handles = []
    if mode == "group":
        counts = {g.key: sum(1 for row in data.bars if row.group == g.key) for g in groups}
        for g in groups:
            i = index[g.key]
            handles.append(
                Patch(
                    facecolor=PALETTE[i % len(PALETTE)],
                    edgecolor="0.25",
                    hatch=HATCHES[i % len(HATCHES)],
                    label=plain(f"{g.label} ({counts[g.key]})"),
                )
            )
    else:
        names = {
            "remission": "remission",
            "response": "response without remission" if has_outcome else "response",
            "neither": "neither",
        }
        for key, name in names.items():
            count = sum(1 for row in data.bars if outcome(row) == key)
            handles.append(
                Patch(facecolor=OUTCOME_COLOURS[key], edgecolor="0.5", label=f"{name} ({count})")
            )
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4))
    parts = [f"One bar per subject (n = {n})"]
    if mode == "outcome" and criteria_text(report):
        parts.append(criteria_text(report))
    if clipped:
        parts.append(f"bars above +{WATERFALL_CAP}% are cut and labelled")
    if data.left_out:
        parts.append(
            f"{len(data.left_out)} subject{'s' if len(data.left_out) != 1 else ''} at this "
            "visit without a percent change left out"
        )
    _titles(
        fig,
        title or f"{score_name(scale, report)}: percent change from baseline to {data.visit}",
        "; ".join(parts),
        report,
    )
    return fig


def distribution_figure(
    report: ChangeReport,
    scale: Scale,
    results: Sequence[ScoreResult] | None = None,
    *,
    title: str | None = None,
) -> Figure:
    import matplotlib
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    data = distribution_data(report, scale, results)
    rule = scale.score(report.score)
    ranges = {name: (start, end) for name, start, end in ordered_bands(rule)}
    band_max = {b.label: b.max for b in rule.bands}
    cmap = matplotlib.colormaps["Blues"]
    k = len(data.bands)
    shades = {b: cmap(0.22 + 0.7 * i / max(k - 1, 1)) for i, b in enumerate(data.bands)}
    dark = {b: i / max(k - 1, 1) > 0.5 for i, b in enumerate(data.bands)}
    panels = data.panels
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    width = max(6.0, 0.8 + (0.42 * len(data.visits) + 1.0) * cols)
    fig = _new_figure("distribution", width, 1.3 + 2.9 * rows)
    axes = _panel_grid(fig, len(panels))
    top = max(
        (sum(c.values()) for p in panels for c in p.counts.values()),
        default=0,
    )
    top = top or 1  # (no value in any band: empty panels, but an axis all the same)
    stack = list(reversed(data.bands))  # highest score at the bottom
    for i, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        xs = list(range(len(data.visits)))
        bottom = [0] * len(xs)
        for band in stack:
            heights = [panel.counts[v][band] for v in data.visits]
            ax.bar(
                xs,
                heights,
                bottom=bottom,
                width=0.7,
                color=shades[band],
                edgecolor="white",
                linewidth=0.6,
            )
            for x, h, b in zip(xs, heights, bottom, strict=True):
                if h and h >= top * 0.06:
                    ax.text(
                        x,
                        b + h / 2,
                        str(h),
                        ha="center",
                        va="center",
                        fontsize=7.5,
                        color="white" if dark[band] else "black",
                    )
            bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        for x, total in zip(xs, bottom, strict=True):
            ax.text(x, total + top * 0.01, f"n={total}", ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, top * 1.09)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xticks(xs, [plain(v) for v in data.visits], rotation=45 if len(xs) > 6 else 0)
        _panel_labels(ax, i, cols, len(panels), "Subjects")
        ax.set_xlabel("Visit" if i + cols >= len(panels) else "")
        if len(panels) > 1:
            ax.set_title(plain(f"{panel.group.label} (n={panel.group.n})"), loc="left")
    handles = [
        Patch(
            facecolor=shades[b],
            edgecolor="0.6",
            label=plain(f"{b} ({fmt_num(ranges[b][0])}–{fmt_num(band_max[b])})"),
        )
        for b in stack
    ]
    fig.legend(
        handles=list(reversed(handles)),
        loc="outside lower center",
        ncol=len(handles),
        title=plain(f"{score_name(scale, report)} bands"),
    )
    by = f" by {report.by}" if report.by else ""
    _titles(
        fig,
        title or f"{score_name(scale, report)}: severity bands at each visit{by}",
        f"Subjects in each band (stacked; highest scores at the bottom); "
        f"{group_n_text([p.group for p in panels])}",
        report,
    )
    return fig


def make_figure(
    kind: str,
    report: ChangeReport,
    scale: Scale,
    results: Sequence[ScoreResult] | None = None,
    *,
    error: str = "ci",
    visit: str | None = None,
    color_by: str | None = None,
    title: str | None = None,
) -> Figure:
    """Build one picture. ``results`` (the scored records) place visits by study day and
    give the values of subjects without a baseline; without them the report alone is used.
    A report of ``compute_change`` carries the records it analysed (at their analysis visits
    when windows were used), and those are used instead."""
    require_matplotlib()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    if report.analysed:  # the records as analysed: at their analysis visits (windows)
        results = report.analysed
    with figure_style(kind):
        if kind == "trajectory":
            fig = trajectory_figure(report, scale, results, error=error, title=title)
        elif kind == "spaghetti":
            fig = spaghetti_figure(report, scale, results, title=title)
        elif kind == "waterfall":
            fig = waterfall_figure(report, scale, visit=visit, color_by=color_by, title=title)
        else:
            fig = distribution_figure(report, scale, results, title=title)
        return fig


def figure_bytes(fig: Figure, fmt: str, dpi: int = 150) -> bytes:
    """The figure as PNG, SVG or PDF, byte-for-byte the same for the same input."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    all_metadata: dict[str, dict[str, Any]] = {
        "png": {"Software": "ketascore"},
        "svg": {"Date": None, "Creator": "ketascore"},
        "pdf": {"CreationDate": None, "ModDate": None, "Producer": "ketascore"},
    }
    metadata = all_metadata[fmt]
    buf = io.BytesIO()
    with figure_style(str(fig.get_label() or "figure")):
        fig.savefig(buf, format=fmt, dpi=dpi, metadata=metadata)
    return buf.getvalue()


def inline_svg(fig: Figure, prefix: str = "") -> str:
    """The figure as an ``<svg>`` element to put inside an HTML page: no XML prolog, no
    metadata, no namespace declarations (HTML does not need them), and every id (and each
    reference to it) prefixed, so several pictures can share one page."""
    text = figure_bytes(fig, "svg").decode("utf-8")
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    text = re.sub(r'\s+xmlns(?::xlink)?="[^"]*"', "", text, count=2)
    if prefix:
        ids = set(re.findall(r' id="([^"]+)"', text))

        def rename(match: re.Match[str]) -> str:
            name = match.group(2)
            if name not in ids:
                return match.group(0)
            return f"{match.group(1)}{prefix}{name}{match.group(3)}"

        text = re.sub(r'( id="|url\(#|href="#)([^")]+)(["\)])', rename, text)
    return text
