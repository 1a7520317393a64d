"""Pictures: the numbers behind them (no matplotlib needed), the files `ketascore plot`
writes from the example study (valid PNG/SVG/PDF holding the expected subjects and numbers),
the message when matplotlib is missing, and the terminal trend column of `change`."""

from __future__ import annotations

import io
import math
import struct
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from ketascore.analysis.change import compute_change
from ketascore.api import load_scale, read_answers, score
from ketascore.cli import cli
from ketascore.present.plotting import (
    distribution_data,
    error_half_width,
    groups_of,
    t_quantile,
    trajectory_data,
    values_by_subject,
    visit_axis,
    waterfall_data,
)
from ketascore.present.render import change_tables, sparkline

from conftest import ROOT

EXAMPLE = "examples/ketamine-trial"  # data only (made by examples/generate_ketamine_trial.py)
STUDY = "tests/data/study"
PNG = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def example() -> Any:
    """The example study's MADRS results and change report by arm."""
    madrs = load_scale("madrs")
    data = read_answers(ROOT / EXAMPLE, scales=[madrs])
    results = score(data.records, scale=madrs)
    return madrs, results, compute_change(results, madrs, by="arm")


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def svg_text(path: Path) -> str:
    """All text of an SVG file (parsed, so it must be well-formed XML)."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG_NS}svg"
    return " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))


def svg_ids(path: Path) -> set[str]:
    return {el.get("id", "") for el in ET.parse(path).getroot().iter()}


# --------------------------------------------------------------------------------------
# Numbers


@pytest.mark.parametrize(
    ("df", "expected"),
    [
        (1, 12.7062047),
        (2, 4.3026527),
        (3, 3.1824463),
        (9, 2.2621572),
        (19, 2.0930241),
        (30, 2.0422725),
        (100, 1.9839715),
        (1000, 1.9623391),
    ],
)
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=1e-6)


def test_error_bars() -> None:
    assert error_half_width(1, None, "ci") is None
    assert error_half_width(4, 2.0, "sd") == 2.0
    assert error_half_width(4, 2.0, "se") == 1.0
    assert error_half_width(4, 2.0, "ci") == pytest.approx(3.1824463)


def test_trajectory_numbers_are_those_of_the_summary(example: Any) -> None:
    _, results, report = example
    lines = trajectory_data(report, results)
    assert [line.group.label for line in lines] == [
        "ketamine 0.1 mg/kg",
        "ketamine 0.2 mg/kg",
        "ketamine 0.5 mg/kg",
        "ketamine 1.0 mg/kg",
        "midazolam",
    ]
    assert [line.group.n for line in lines] == [20] * 5
    half_dose = lines[2]
    assert [p.visit for p in half_dose.points] == ["baseline", "day1", "day3", "day7", "day14"]
    assert [p.x for p in half_dose.points] == [0, 1, 3, 7, 14]  # placed by study day
    day1 = half_dose.points[1]
    row = next(s for s in report.summary if s.group == "ketamine 0.5 mg/kg" and s.visit == "day1")
    assert (day1.n, day1.mean, day1.sd) == (row.n, row.mean, row.sd) == (20, 16.5, row.sd)
    assert day1.sd is not None and day1.low is not None and day1.high is not None
    half = t_quantile(0.975, 19) * day1.sd / math.sqrt(20)
    assert (day1.low, day1.high) == pytest.approx((16.5 - half, 16.5 + half))
    se = trajectory_data(report, results, "se")[2].points[1]
    assert se.high == pytest.approx(16.5 + day1.sd / math.sqrt(20))


def test_visits_fall_back_to_their_order_without_days() -> None:
    madrs = load_scale("madrs")
    results = score(read_answers(ROOT / STUDY, scales=[madrs]).records, scale=madrs)
    for r in results:
        r.day = None
    report = compute_change(results, madrs)
    axis = visit_axis(report, results)
    assert not axis.by_day
    assert axis.x == {"baseline": 0, "day1": 1, "day3": 2}


def test_waterfall_is_sorted_and_says_what_it_left_out(example: Any) -> None:
    _, _, report = example
    data = waterfall_data(report, "day1")
    pcts = [row.percent_change for row in data.bars]
    assert len(pcts) == 100 and data.left_out == []
    assert pcts == sorted(pcts, reverse=True)  # largest increase first
    assert sum(1 for row in data.bars if row.response) == 18
    assert sum(1 for row in data.bars if row.remission) == 3
    assert waterfall_data(report).visit == "day14"  # default: the last visit


def test_distribution_counts_every_value_once(example: Any) -> None:
    madrs, results, report = example
    data = distribution_data(report, madrs, results)
    assert data.bands == ["normal", "mild", "moderate", "severe"]
    values = values_by_subject(report, results)
    for panel in data.panels:
        for visit in data.visits:
            with_value = sum(1 for s in panel.group.subjects if visit in values[s])
            assert sum(panel.counts[visit].values()) == with_value
    half_dose = data.panels[2]
    assert half_dose.group.label == "ketamine 0.5 mg/kg"
    assert half_dose.counts["day1"] == {"normal": 0, "mild": 15, "moderate": 5, "severe": 0}


def test_yes_no_groups_are_named_after_the_classification() -> None:
    madrs, hamd17 = load_scale("madrs"), load_scale("hamd17")
    data = read_answers(ROOT / EXAMPLE, scales=[madrs])
    results = score(data.records, scale=madrs) + score(data.records, scale=hamd17)
    report = compute_change(
        results, madrs, by="hamd17.anxious_depression", scales={"hamd17": hamd17}
    )
    labels = [g.label for g in groups_of(report)]
    assert labels == ["anxious_depression: no", "anxious_depression: yes"]


# --------------------------------------------------------------------------------------
# Files written by `ketascore plot`


def test_trajectory_svg(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "t.svg"
    result = run(
        runner,
        "plot",
        EXAMPLE,
        "--scale",
        "madrs",
        "--by",
        "arm",
        "--kind",
        "trajectory",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Wrote {out} (trajectory, 100 subjects)\n"
    text = svg_text(out)
    for words in (
        "MADRS total score by arm",
        "Mean and 95% CI",
        "n = 100 subjects",
        "ketamine 0.5 mg/kg (n=20)",
        "midazolam (n=20)",
        "Study day",
        "baseline",
        "MADRS total score (points, 0–60)",
        "mild",
        "moderate",
        "severe",
    ):
        assert words in text, words


def test_spaghetti_svg_has_every_subject(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "s.svg"
    result = run(
        runner,
        "plot",
        EXAMPLE,
        "--scale",
        "madrs",
        "--by",
        "arm",
        "--kind",
        "spaghetti",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    ids = svg_ids(out)
    assert {f"subject-KT-{n:03d}" for n in range(1, 101)} <= ids
    assert "ketamine 1.0 mg/kg (n=20)" in svg_text(out)


def test_waterfall_svg_bars_and_counts(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "w.svg"
    result = run(
        runner,
        "plot",
        EXAMPLE,
        "--scale",
        "madrs",
        "--kind",
        "waterfall",
        "--visit",
        "day1",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert {f"subject-KT-{n:03d}" for n in range(1, 101)} <= svg_ids(out)
    text = svg_text(out)
    for words in (
        "percent change from baseline to day1",
        "remission (3)",
        "response without remission (15)",
        "neither (82)",
        "response threshold (−50%)",
        "Subjects (n = 100)",
    ):
        assert words in text, words


def test_waterfall_of_a_small_study_labels_subjects(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "w.svg"
    result = run(
        runner,
        "plot",
        STUDY,
        "--scale",
        "madrs",
        "--kind",
        "waterfall",
        "--visit",
        "day1",
        "--by",
        "arm",
        "--color-by",
        "group",
        "-o",
        str(out),
    )
    assert result.exit_code == 1  # the study has a record with a missing item
    assert "insufficient-items" in result.stderr
    text = svg_text(out)
    for words in ("S1", "S2", "S10", "-50%", "-13%", "-75%"):
        assert words in text, words


def test_distribution_svg_counts(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "d.svg"
    result = run(
        runner,
        "plot",
        EXAMPLE,
        "--scale",
        "madrs",
        "--by",
        "arm",
        "--kind",
        "distribution",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    text = svg_text(out).split()
    assert "severity" in text and "n=20" in text and "n=17" in text
    assert "15" in text  # 15 subjects of the 0.5 mg/kg arm in the mild band on day 1


def test_png_and_pdf(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png, pdf = tmp_path / "t.png", tmp_path / "t.pdf"
    for out in (png, pdf):
        result = run(
            runner,
            "plot",
            EXAMPLE,
            "--scale",
            "madrs",
            "--by",
            "hamd17.anxious_depression",
            "--kind",
            "trajectory",
            "-o",
            str(out),
        )
        assert result.exit_code == 0, result.output
    data = png.read_bytes()
    assert data[:8] == PNG
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1200, 810)  # 8 x 5.4 inches at 150 dpi
    assert pdf.read_bytes().startswith(b"%PDF-")


def test_output_is_the_same_byte_for_byte(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for name in ("a.svg", "b.svg", "a.png", "b.png"):
        run(
            runner,
            "plot",
            STUDY,
            "--scale",
            "madrs",
            "--kind",
            "spaghetti",
            "-o",
            str(tmp_path / name),
        )
    assert (tmp_path / "a.svg").read_bytes() == (tmp_path / "b.svg").read_bytes()
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "a.svg").read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "trajectory", "-o", "x.gif"], "the picture file must end in .png, .svg"),
        (["--kind", "trajectory", "--visit", "day1", "-o", "x.png"], "--visit applies to"),
        (
            ["--kind", "waterfall", "--visit", "day9", "-o", "x.png"],
            "no change from baseline at visit 'day9'; visits: day1, day3, day7, day14",
        ),
        (
            ["--kind", "distribution", "--scale", "hamd6", "-o", "x.png"],
            "hamd6 total has no severity bands",
        ),
        (
            ["--kind", "trajectory", "--by", "hamd17.nothing", "-o", "x.png"],
            "hamd17 has no classification or score 'nothing'",
        ),
        (["--kind", "pie", "-o", "x.png"], "Invalid value for '--kind'"),
    ],
)
def test_plot_usage_errors(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    pytest.importorskip("matplotlib")
    args = [a if a != "x.png" and a != "x.gif" else str(tmp_path / a) for a in args]
    if "--scale" not in args:
        args += ["--scale", "madrs"]
    result = runner.invoke(cli, ["plot", EXAMPLE, *args])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_no_records_draws_nothing(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "x.png"
    result = runner.invoke(
        cli, ["plot", STUDY, "--scale", "phq9", "--kind", "trajectory", "-o", str(out)]
    )
    assert result.exit_code == 1
    assert "Error: no phq9 records in the input; nothing to draw." in result.stderr
    assert not out.exists()


def test_missing_matplotlib_is_a_clear_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "x.png"
    result = runner.invoke(
        cli, ["plot", EXAMPLE, "--scale", "madrs", "--kind", "trajectory", "-o", str(out)]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: pictures need matplotlib, which is not installed; install it with: "
        "pip install 'ketascore[plot]'\n"
    )
    assert not out.exists()


# --------------------------------------------------------------------------------------
# The trend column of `ketascore change` on a terminal


def test_sparkline() -> None:
    assert sparkline([0, 10, 20, 30, 40, 50, 60, 70], 0, 70) == "▁▂▃▄▅▆▇█"
    assert sparkline([30, None, 15], 0, 60) == "▅·▃"
    assert sparkline([5, 5], 5, 5) == "▁▁"


def test_trend_column_only_when_asked(example: Any) -> None:
    madrs, results, _ = example
    small = [r for r in results if r.subject in ("KT-001", "KT-014")]
    report = compute_change(small, madrs)

    def text(trend: bool) -> str:
        console = Console(width=140, record=True, color_system=None, file=io.StringIO())
        console.print(change_tables(report, madrs, trend=trend))
        return console.export_text()

    plain_text = text(False)
    assert "Trend" not in plain_text and "▁" not in plain_text
    with_trend = text(True)
    lines = {line.split()[1]: line for line in with_trend.splitlines() if "KT-0" in line}
    # KT-001: 31, 32, 30, 33, then no value on day 14; KT-014: 34, 12, 13, 18, 25
    assert lines["KT-001"].rstrip(" │").endswith("▇▇▇█·")
    assert lines["KT-014"].rstrip(" │").endswith("█▁▁▃▅")
    words = " ".join(with_trend.split())
    assert "trend: total at each visit (baseline, day1, day3, day7, day14), ▁ = 12, █ = 34" in (
        words
    )


def test_waterfall_cuts_very_tall_bars_and_labels_them() -> None:
    pytest.importorskip("matplotlib")
    from ketascore.core.records import ScoreResult
    from ketascore.present.plotting import figure_bytes, make_figure

    madrs = load_scale("madrs")

    def res(subject: str, visit: str, total: int) -> ScoreResult:
        return ScoreResult(
            subject=subject, visit=visit, scale="madrs", scale_version="1.0",
            scores={"total": total},
        )  # fmt: skip

    results = [res("S1", "baseline", 1), res("S1", "day1", 12)]
    results += [res("S2", "baseline", 30), res("S2", "day1", 12)]
    report = compute_change(results, madrs)
    svg = figure_bytes(make_figure("waterfall", report, madrs), "svg").decode()
    root = ET.fromstring(svg)
    text = " ".join(t.text or "" for t in root.iter(f"{SVG_NS}text"))
    assert "bars above +100% are cut and labelled" in text
    assert "+1100% ↑" in text and "-60%" in text


def windowed_study(folder: Path) -> tuple[Path, Path]:
    """Two subjects rated on days that only analysis windows line up; S1 misses week1."""
    from test_windows import WINDOWS

    (folder / "w.yaml").write_text(WINDOWS)
    items = ",".join(f"madrs_{i}" for i in range(1, 11))
    rows = [
        ("S1", "v0", 0, 3),
        ("S1", "v1", 1, 1),
        ("S1", "v9", 15, 2),
        ("S2", "screen", -2, 3),
        ("S2", "d2", 2, 2),
        ("S2", "d6", 6, 2),
        ("S2", "d13", 13, 1),
    ]
    lines = [f"subject,visit,day,{items}"]
    # each total is 10 x x, and no rating has ten identical items (a rating check)
    lines += [f"{s},{v},{d}," + ",".join(map(str, [x + 1, x - 1, *[x] * 8])) for s, v, d, x in rows]
    (folder / "d.csv").write_text("\n".join(lines) + "\n")
    return folder / "d.csv", folder / "w.yaml"


def test_plot_with_analysis_windows_and_locf(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data, windows = windowed_study(tmp_path)
    out = tmp_path / "t.svg"
    args = ["plot", str(data), "--scale", "madrs", "--kind", "trajectory", "-o", str(out)]
    result = run(runner, *args, "--windows", str(windows), "--impute", "locf")
    assert result.exit_code == 0, result.output
    text = svg_text(out)
    for visit in ("baseline", "day1", "week1", "week2"):
        assert visit in text, visit
    assert "v9" not in text and "d13" not in text  # the analysis visits, not the raw ones
    assert "Includes values carried forward (LOCF)" in text
    plain = tmp_path / "plain.svg"
    result = run(runner, "plot", str(data), "--scale", "madrs", "--kind", "trajectory")
    assert result.exit_code == 2  # -o is required: nothing drawn
    result = run(
        runner, *args[:-1], str(plain), "--windows", str(windows)
    )  # windows without LOCF: no note
    assert result.exit_code == 0, result.output
    assert "carried forward" not in svg_text(plain)
    bad = run(runner, *args, "--windows", str(data))
    assert bad.exit_code == 2 and "windows file" in bad.stderr


def test_waterfall_at_an_analysis_visit(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data, windows = windowed_study(tmp_path)
    out = tmp_path / "w.svg"
    result = run(
        runner,
        "plot",
        str(data),
        "--scale",
        "madrs",
        "--kind",
        "waterfall",
        "--visit",
        "week2",
        "--windows",
        str(windows),
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "week2" in svg_text(out)


def test_distribution_counts_analysis_visits_and_carried_values(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Each subject is counted at each analysis visit, S1's week1 by its carried value, as
    the summary counts it (before, the raw visits matched no analysis visit: empty bars)."""
    pytest.importorskip("matplotlib")
    data, windows = windowed_study(tmp_path)
    out = tmp_path / "d.svg"
    args = ["plot", str(data), "--scale", "madrs", "--kind", "distribution", "-o", str(out)]
    result = run(runner, *args, "--windows", str(windows), "--impute", "locf")
    assert result.exit_code == 0, result.output
    counts = [t for t in svg_text(out).split() if t.startswith("n=")]
    assert counts == ["n=2"] * 4
