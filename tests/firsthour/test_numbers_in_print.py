"""Issue 17, item 10: one rule for the numbers people read (present/numbers.py), in the
terminal, the HTML report and the pictures; plot titles fit the picture; `report` does not
pour HTML onto a terminal.

The rounding is SAS's: ROUND "returns the multiple with the larger absolute value when the
first argument is approximately halfway between the two nearest multiples", and fuzzes the
result "to agree with decimal arithmetic" (SAS 9.2 Language Reference, ROUND and ROUNDE
functions; the ROUNDE example lists ROUND(0.5) = 1, ROUND(2.5) = 3, where ROUNDE gives 0
and 2). Python's own formatting rounds the binary value half to even: f"{2.25:.1f}" is 2.2.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from firsthour_support import run_in_terminal

from ketascore.analysis.change import compute_change
from ketascore.cli import cli
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult
from ketascore.present import numbers

from conftest import EXAMPLE


@pytest.mark.parametrize(
    ("value", "stat"),
    [
        (2.25, "2.3"),  # halfway: away from zero, not to even
        (-2.25, "-2.3"),
        (0.15, "0.2"),  # 0.15 is 0.1499999... in binary; decimal arithmetic says 0.2
        (-14.85, "-14.9"),  # the example study's day-1 change in the 0.5 mg/kg arm (-297/20)
        (32, "32.0"),  # a whole mean still has its decimal
        (-0.04, "0.0"),  # no "-0.0"
        (16.666666666666668, "16.7"),
    ],
)
def test_statistics_have_one_decimal_rounded_as_sas_rounds(value: float, stat: str) -> None:
    assert numbers.stat(value) == stat


def test_percentages_values_and_counts() -> None:
    assert [numbers.percent(v) for v in (0.5, 2.5, 12.5, -12.5, 66.66666666666667)] == [
        "1",
        "3",
        "13",
        "-13",
        "67",
    ]
    assert numbers.percent(6.45, sign=True) == "+6" and numbers.percent(0.2, sign=True) == "0"
    assert [numbers.value(v) for v in (31, 31.0, 16.875, 16.5, None)] == [
        "31",
        "31",
        "16.88",
        "16.5",
        "-",
    ]
    assert numbers.mean_sd(30.0, None) == "30.0 (-)"
    assert numbers.count_rate(9, 20, 45.0) == "9/20 (45%)" and numbers.count_rate(0, 0, None) == "-"


def _twelve_and_a_half() -> tuple[Any, Any]:
    """Two subjects: S1 from 16 to 18 (+12.5%), S2 from 30 to 15 (-50%)."""
    madrs = load_builtin("madrs")

    def res(subject: str, visit: str, total: int, day: int) -> ScoreResult:
        return ScoreResult(
            subject=subject, visit=visit, scale="madrs", scale_version="1.0",
            scores={"total": total}, day=day,
        )  # fmt: skip

    results = [res("S1", "baseline", 16, 0), res("S1", "day1", 18, 1)]
    results += [res("S2", "baseline", 30, 0), res("S2", "day1", 15, 1)]
    return madrs, compute_change(results, madrs)


def test_the_same_numbers_in_the_terminal_the_report_and_the_pictures() -> None:
    pytest.importorskip("matplotlib")
    import io

    from rich.console import Console

    from ketascore.present.plotting import figure_bytes, make_figure
    from ketascore.present.render import change_tables
    from ketascore.present.report import Section, subject_rows, summary_rows

    madrs, report = _twelve_and_a_half()
    console = Console(width=120, record=True, color_system=None, file=io.StringIO())
    console.print(change_tables(report, madrs))
    terminal = console.export_text()
    section = Section(madrs, report, report.analysed)
    html_summary = summary_rows(section)
    _, html_subjects = subject_rows(report)
    svg = figure_bytes(make_figure("waterfall", report, madrs), "svg").decode()
    svg_text = " ".join(
        t.text or "" for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")
    )
    # baseline mean 23.0 (SD 9.9), day 1 mean 16.5, change -6.5 (SD 12.0): one decimal each
    for text in ("23.0 (9.9)", "16.5 (2.1)", "-6.5 (12.0)", "1/2 (50%)"):
        assert text in terminal
        assert any(text in cell for row in html_summary for cell in row)
    # S1's +12.5% is +13% everywhere (Python's "%+.0f" would print +12)
    assert "18 (+13%)" in terminal
    assert any("18 (+13%)" in cell for row in html_subjects for cell in row)
    assert "+13%" in svg_text and "+12%" not in svg_text


@pytest.mark.parametrize("kind", ["trajectory", "spaghetti", "waterfall", "distribution"])
def test_plot_titles_fit_the_picture(kind: str) -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from ketascore.present.plotting import make_figure

    madrs, report = _twelve_and_a_half()
    title = (
        "Montgomery-Asberg Depression Rating Scale total score by planned treatment arm, "
        "change from baseline to the primary endpoint at day 1 (intent-to-treat set)"
    )
    fig = make_figure(kind, report, madrs, title=title)
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    width = fig.bbox.width
    texts = [t for t in fig.texts if t.get_text()]
    assert texts[0].get_text().replace("\n", " ") == title
    assert texts[0].get_text().count("\n") >= 1  # wrapped
    for text in texts:
        box = text.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= width, text.get_text()
        assert box.y1 <= fig.bbox.height
    axes_top = max(ax.get_window_extent(renderer).y1 for ax in fig.axes if ax.get_visible())
    subtitle = texts[1].get_window_extent(renderer)
    assert subtitle.y0 >= axes_top  # the titles do not run into the plot


def test_report_refuses_to_pour_html_onto_a_terminal(runner: CliRunner) -> None:
    args = ["report", str(EXAMPLE / "hamd6.csv"), "--scale", "hamd6", "--no-plots"]
    code, text = run_in_terminal(args, 100, stderr_too=True)
    assert code == 2
    assert "the report is an HTML file: write it with -o report.html" in text
    assert "<html" not in text
    piped = runner.invoke(cli, args)  # not a terminal: the page goes to standard output
    assert piped.exit_code == 0 and piped.stdout.startswith("<!DOCTYPE html>")


def test_change_has_quiet_like_score(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "m.yaml"
    data.write_text("subject: S1\nvisit: baseline\nscale: madrs\nitems: {1: 9}\n")
    loud = runner.invoke(cli, ["change", str(data), "--scale", "madrs", "--format", "csv"])
    quiet = runner.invoke(cli, ["change", str(data), "--scale", "madrs", "--format", "csv", "-q"])
    assert loud.exit_code == quiet.exit_code == 1
    assert re.search(r"^error\[out-of-range\]", loud.stderr, re.M) and quiet.stderr == ""
    assert quiet.stdout == loud.stdout
