"""Analysis windows and last observation carried forward in change from baseline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.analysis.change import compute_change
from ketascore.analysis.windows import load_windows_text
from ketascore.cli import cli
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult, Source
from ketascore.core.scale import ScaleError

WINDOWS = """\
windows:
  - {name: baseline, from: -7, to: 0, target: 0}
  - {name: day1, from: 1, to: 2, target: 1}
  - {name: week1, from: 5, to: 9, target: 7}
  - {name: week2, from: 12, to: 16, target: 14}
"""


def res(subject: str, visit: str, total: float | None, day: int | None) -> ScoreResult:
    return ScoreResult(
        subject=subject,
        visit=visit,
        scale="madrs",
        scale_version="1.0",
        scores={"total": total},
        day=day,
        source=Source(file="v.csv", line=2),
    )


@pytest.fixture(scope="module")
def madrs() -> Any:
    return load_builtin("madrs")


def test_records_go_to_their_window_and_the_closest_to_target_is_analysed(madrs: Any) -> None:
    plan = load_windows_text(WINDOWS, "w.yaml")
    results = [
        res("S1", "screen", 32, -3),
        res("S1", "visit2", 16, 2),
        res("S1", "visit3", 20, 6),
        res("S1", "visit4", 18, 8),
        res("S1", "late", 10, 30),
    ]
    report = compute_change(results, madrs, windows=plan)
    assert [(r.visit, r.source_visit, r.value) for r in report.rows] == [
        ("day1", "visit2", 16),
        ("week1", "visit3", 20),
    ]
    assert report.rows[1].note == (
        "visit visit3 (day 6), closest to target day 7; not analysed: visit4 (day 8)"
    )
    assert report.baselines["S1"][0] == "baseline"


def test_record_without_a_study_day_is_reported(madrs: Any) -> None:
    plan = load_windows_text(WINDOWS, "w.yaml")
    report = compute_change([res("S1", "b", 30, 0), res("S1", "x", 12, None)], madrs, windows=plan)
    assert [i.code for i in report.issues] == ["no-study-day"]


def test_locf_carries_the_last_post_baseline_value(madrs: Any) -> None:
    results = [
        res("S1", "baseline", 30, 0),
        res("S1", "day1", 14, 1),
        res("S1", "week1", None, 7),
        res("S2", "baseline", 20, 0),
        res("S2", "week1", 18, 7),
        res("S2", "week2", 10, 14),
    ]
    report = compute_change(results, madrs, impute="locf")
    rows = [(r.subject, r.visit, r.value, r.imputed, r.source_visit) for r in report.rows]
    assert rows == [
        ("S1", "day1", 14, None, None),
        ("S1", "week1", 14, "LOCF", "day1"),
        ("S1", "week2", 14, "LOCF", "day1"),
        ("S2", "week1", 18, None, None),
        ("S2", "week2", 10, None, None),
    ]
    s1_week2 = report.rows[2]
    assert (s1_week2.change, s1_week2.response, s1_week2.note) == (
        -16,
        True,
        "carried forward from day1 (day 1)",
    )
    week2 = next(s for s in report.summary if s.visit == "week2")
    assert (week2.n_change, week2.responders) == (2, 2)


def test_baseline_is_never_carried_forward(madrs: Any) -> None:
    results = [res("S1", "baseline", 30, 0), res("S1", "day1", None, 1)]
    report = compute_change(results, madrs, impute="locf")
    assert [(r.visit, r.value, r.imputed) for r in report.rows] == [("day1", None, None)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "windows:\n  - {name: a, from: 0, to: 2, target: 5}\n",
            "w.yaml:2:5: windows[0]: target day 5 is outside 0 to 2",
        ),
        (
            "windows:\n  - {name: a, from: 0, to: 2, target: 1}\n  - {name: b, from: 2, to: 4, "
            "target: 3}\n",
            "w.yaml:3:5: windows[1]: window 'b' overlaps window 'a' (windows[0])",
        ),
        (
            "windows:\n  - {name: a, from: 0, to: 2}\n",
            "w.yaml:2:5: windows[0].target: required key is missing",
        ),
    ],
)
def test_bad_windows_files(text: str, message: str) -> None:
    with pytest.raises(ScaleError) as err:
        load_windows_text(text, "w.yaml")
    assert err.value.problems == [message]


def test_cli_windows_and_locf(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text(WINDOWS)
    items = ",".join(f"madrs_{i}" for i in range(1, 11))
    (tmp_path / "d.csv").write_text(
        f"subject,visit,day,{items}\n"
        "S1,v0,0," + ",".join(["3"] * 10) + "\n"
        "S1,v1,1," + ",".join(["1"] * 10) + "\n"
        "S1,v9,15," + ",".join(["2"] * 10) + "\n"
    )
    result = runner.invoke(
        cli,
        [
            "change",
            str(tmp_path / "d.csv"),
            "--scale",
            "madrs",
            "--windows",
            str(tmp_path / "w.yaml"),
            "--impute",
            "locf",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [(r["visit"], r["value"], r["imputed"]) for r in rows] == [
        ("day1", 10, None),
        ("week1", 10, "LOCF"),
        ("week2", 20, None),
    ]
    bad = runner.invoke(
        cli,
        [
            "change",
            str(tmp_path / "d.csv"),
            "--scale",
            "madrs",
            "--windows",
            str(tmp_path / "d.csv"),
        ],
    )
    assert bad.exit_code == 2
    assert "windows file" in bad.stderr
