"""Window rules (closest, latest, earliest) and the windows file's AVISITN (issue 17, item 5)."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from ketascore.analysis.change import compute_change
from ketascore.analysis.windows import choose, load_windows_text
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult, Source
from ketascore.core.scale import ScaleError
from ketascore.writers.adam import adam_csv, adam_rows


def res(visit: str, total: float | None, day: int, date: str | None = None) -> ScoreResult:
    return ScoreResult(
        subject="S1",
        visit=visit,
        scale="madrs",
        scale_version="1.0",
        scores={"total": total},
        day=day,
        date=date,
        source=Source(file="v.csv", line=2),
    )


@pytest.fixture(scope="module")
def madrs() -> Any:
    return load_builtin("madrs")


RECORDS = [
    res("screen", 32, -3),
    res("v2", 20, 5),
    res("v3", 18, 7),
    res("v4", 15, 9),
]


@pytest.mark.parametrize(
    ("pick", "chosen", "reason"),
    [
        ("closest", "v3", "closest to target day 7"),
        ("latest", "v4", "the latest in the window"),
        ("earliest", "v2", "the earliest in the window"),
    ],
)
def test_each_rule_picks_its_record_and_says_why(
    madrs: Any, pick: str, chosen: str, reason: str
) -> None:
    plan = load_windows_text(
        "windows:\n"
        "  - {name: baseline, from: -7, to: 0, target: 0}\n"
        f"  - {{name: week1, from: 4, to: 10, target: 7, pick: {pick}}}\n",
        "w.yaml",
    )
    report = compute_change(RECORDS, madrs, windows=plan)
    (row,) = report.rows
    assert (row.visit, row.source_visit) == ("week1", chosen)
    assert reason in (row.note or "")


def test_the_plan_sets_the_default_rule(madrs: Any) -> None:
    plan = load_windows_text(
        "pick: latest\nwindows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: week1, from: 4, to: 10, target: 7}\n",
        "w.yaml",
    )
    assert compute_change(RECORDS, madrs, windows=plan).rows[0].source_visit == "v4"


def test_latest_prefers_a_record_with_a_value() -> None:
    records = [res("a", 10, 3), res("b", None, 5)]
    assert choose(records, "latest", lambda r: r.day, usable=lambda r: r.scores["total"]).visit == (
        "a"
    )


def test_ties_latest_takes_the_later_date_then_the_last_in_the_input() -> None:
    same_day = [res("a", 1, 5, "2024-01-05"), res("b", 2, 5, "2024-01-04"), res("c", 3, 5)]
    assert choose(same_day, "latest", lambda r: r.day, date=lambda r: r.date).visit == "a"
    plain = [res("a", 1, 5), res("b", 2, 5)]
    assert choose(plain, "latest", lambda r: r.day).visit == "b"
    assert choose(plain, "earliest", lambda r: r.day).visit == "a"
    assert choose(plain, "closest", lambda r: r.day, target=9).visit == "a"


AVISITN_WINDOWS = """\
windows:
  - {name: week2, from: 11, to: 17, target: 14, avisitn: 20}
  - {name: baseline, from: -7, to: 0, target: 0, avisitn: 0}
  - {name: week1, from: 4, to: 10, target: 7, avisitn: 10}
"""


def test_avisitn_orders_the_analysis_visits_and_numbers_adam(madrs: Any) -> None:
    plan = load_windows_text(AVISITN_WINDOWS, "w.yaml")
    records = [res("b", 30, 0), res("w2", 12, 14), res("w1", 20, 7)]
    report = compute_change(records, madrs, windows=plan)
    assert report.visits == ["baseline", "week1", "week2"]
    assert [s.visit for s in report.summary] == ["baseline", "week1", "week2"]
    rows = list(csv.DictReader(io.StringIO(adam_csv(adam_rows([report], report.analysed)))))
    assert [(r["AVISIT"], r["AVISITN"]) for r in rows] == [
        ("baseline", "0"),
        ("week1", "10"),
        ("week2", "20"),
    ]


def test_without_avisitn_the_file_order_and_positions_stay(madrs: Any) -> None:
    plan = load_windows_text(
        "windows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: week1, from: 4, to: 10, target: 7}\n",
        "w.yaml",
    )
    report = compute_change([res("b", 30, 0), res("w1", 20, 7)], madrs, windows=plan)
    rows = list(csv.DictReader(io.StringIO(adam_csv(adam_rows([report], report.analysed)))))
    assert [(r["AVISIT"], r["AVISITN"]) for r in rows] == [("baseline", "0"), ("week1", "1")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "windows:\n  - {name: a, from: 0, to: 2, target: 1, pick: newest}\n",
            "w.yaml:2:48: windows[0].pick: Input should be 'closest', 'latest' or 'earliest'",
        ),
        (
            "windows:\n  - {name: a, from: 0, to: 2, target: 1, avisitn: 1}\n"
            "  - {name: b, from: 3, to: 4, target: 3}\n",
            "w.yaml:3:5: windows[1]: avisitn is missing: give it on every window or on none",
        ),
        (
            "windows:\n  - {name: a, from: 0, to: 2, target: 1, avisitn: 1}\n"
            "  - {name: b, from: 3, to: 4, target: 3, avisitn: 1}\n",
            "w.yaml:3:51: windows[1].avisitn: avisitn 1 repeats that of window 'a'",
        ),
    ],
)
def test_bad_window_rules(text: str, message: str) -> None:
    with pytest.raises(ScaleError) as err:
        load_windows_text(text, "w.yaml")
    assert message in err.value.problems
