"""Change from baseline: baseline choice, percent change, response, remission, summary."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ketascore.analysis.change import choose_baseline, compute_change, natural_key
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult, Source

from conftest import budget


def res(subject: str, visit: str, total: float | None, **kw: Any) -> ScoreResult:
    return ScoreResult(
        subject=subject,
        visit=visit,
        scale=kw.pop("scale", "madrs"),
        scale_version="1.0",
        scores={"total": total},
        source=Source(file="f.csv", line=kw.pop("line", 2)),
        **kw,
    )


@pytest.fixture(scope="module")
def madrs():  # type: ignore[no-untyped-def]
    return load_builtin("madrs")


def test_exactly_fifty_percent_is_a_response(madrs: Any) -> None:
    report = compute_change([res("S1", "baseline", 30), res("S1", "day1", 15)], madrs)
    (row,) = report.rows
    assert (row.baseline, row.value, row.change, row.percent_change) == (30, 15, -15, -50)
    assert row.response is True and row.remission is False
    report = compute_change([res("S1", "baseline", 30), res("S1", "day1", 16)], madrs)
    assert report.rows[0].response is False


def test_remission_threshold_and_override(madrs: Any) -> None:
    results = [res("S1", "baseline", 30), res("S1", "day1", 10)]
    assert compute_change(results, madrs).rows[0].remission is True
    report = compute_change(results, madrs, remission_at_most=9)
    assert report.rows[0].remission is False
    report = compute_change(results, madrs, response_percent=70)
    assert report.rows[0].response is False  # 66.7% reduction


def test_baseline_zero_gives_change_but_no_percent(madrs: Any) -> None:
    report = compute_change([res("S1", "baseline", 0), res("S1", "day1", 4)], madrs)
    (row,) = report.rows
    assert (row.change, row.percent_change, row.response) == (4, None, None)
    (issue,) = report.issues
    assert issue.code == "baseline-zero"
    assert issue.message.startswith(
        "f.csv:2: subject S1, visit baseline, madrs: baseline total is 0"
    )


def test_subject_without_baseline(madrs: Any) -> None:
    results = [res("S1", "baseline", 20), res("S1", "day1", 10), res("S2", "day1", 12, line=9)]
    report = compute_change(results, madrs, baseline_visit="baseline")
    assert [r.subject for r in report.rows] == ["S1"]
    (issue,) = report.issues
    assert issue.code == "no-baseline"
    assert issue.message == (
        "f.csv:9: subject S2, madrs: no record at the baseline visit 'baseline'; change not "
        "computed; add the baseline record, or choose the baseline visit with --baseline"
    )


def test_baseline_score_missing(madrs: Any) -> None:
    report = compute_change([res("S1", "baseline", None), res("S1", "day1", 10)], madrs)
    assert report.rows == []
    assert report.issues[0].message.startswith(
        "f.csv:2: subject S1, visit baseline, madrs: the baseline (baseline) has no total score"
    )


@pytest.mark.parametrize(
    ("results", "visit", "rule"),
    [
        ([res("S", "screen", 1, day=-7), res("S", "Baseline", 2, day=0)], "Baseline", "named"),
        ([res("S", "w2", 1, day=14), res("S", "w0", 2, day=0)], "w0", "earliest-day"),
        (
            [res("S", "b", 1, date="2025-02-01"), res("S", "a", 2, date="2025-01-01")],
            "a",
            "earliest-date",
        ),
        ([res("S", "x", 1), res("S", "y", 2, day=0)], "x", "first-seen"),
    ],
)
def test_baseline_rules(results: list[ScoreResult], visit: str, rule: str) -> None:
    base, how = choose_baseline(results, None)
    assert base is not None and (base.visit, how) == (visit, rule)


def test_visits_ordered_by_day_and_subjects_naturally(madrs: Any) -> None:
    results = [
        res("S10", "baseline", 30, day=0),
        res("S10", "week2", 20, day=14),
        res("S2", "day3", 22, day=3),
        res("S2", "baseline", 30, day=0),
    ]
    report = compute_change(results, madrs)
    assert report.visits == ["baseline", "day3", "week2"]
    assert report.subjects == ["S2", "S10"]
    assert sorted(["S10", "S2", "S1"], key=natural_key) == ["S1", "S2", "S10"]


@given(st.text(st.sampled_from("S10²٣ -") | st.characters(), max_size=6))
@example("²")
@example("1²")
@example("²1")
@example("٣4")
def test_any_subject_or_visit_name_sorts(name: str) -> None:
    """Names are sorted by their runs of digits as numbers, whatever else they hold: a run
    of characters that str.isdigit calls digits but int does not read ("²") is text."""
    key = natural_key(name)
    assert key == natural_key(name) and isinstance(key, tuple)


def test_a_name_with_a_superscript_digit_is_reported_not_a_crash(madrs: Any) -> None:
    results = [res("1²", "baseline", 30), res("1²", "week2", 15), res("1", "baseline", 20)]
    report = compute_change(results, madrs)
    assert report.subjects == ["1", "1²"]
    assert [(r.subject, r.change) for r in report.rows] == [("1²", -15)]


def test_a_name_with_thousands_of_digits_sorts_not_a_crash(madrs: Any) -> None:
    """A subject id with a run of more than 4,300 digits (a cell pasted over and over)
    stopped `ketascore change` with an internal error: Python converts no longer digit
    string to an int. Such a run sorts after every shorter number, by its value."""
    huge, huger = "S" + "1" * 5000, "S" + "2" * 5000
    assert sorted([huger, huge, "S10", "S" + "0" * 4999 + "3"], key=natural_key) == [
        "S" + "0" * 4999 + "3",
        "S10",
        huge,
        huger,
    ]
    results = [res(huge, "baseline", 30), res(huge, "week2", 15), res("S2", "baseline", 20)]
    report = compute_change(results, madrs)
    assert report.subjects == ["S2", huge]


def test_summary_statistics(madrs: Any) -> None:
    results = [
        res("A", "baseline", 30),
        res("A", "d1", 15),
        res("B", "baseline", 20),
        res("B", "d1", 18),
        res("C", "baseline", 40),
        res("C", "d1", 8),
    ]
    report = compute_change(results, madrs)
    base, d1 = report.summary
    assert base.is_baseline and base.n == 3 and base.mean == 30 and base.sd == 10
    assert not d1.is_baseline
    assert d1.n == 3 and d1.n_change == 3
    assert d1.mean_change == pytest.approx((-15 - 2 - 32) / 3)
    assert (d1.responders, d1.n_response, d1.response_rate) == (2, 3, pytest.approx(200 / 3))
    assert (d1.remitters, d1.n_remission) == (1, 3)


def test_group_by_carried_field_and_by_classification() -> None:
    madrs, hamd17 = load_builtin("madrs"), load_builtin("hamd17")
    results = [
        res("A", "baseline", 30, extra={"arm": "ketamine"}),
        res("A", "d1", 10, extra={"arm": "ketamine"}),
        res("B", "baseline", 30, extra={"arm": "placebo"}),
        res("B", "d1", 25, extra={"arm": "placebo"}),
        ScoreResult("A", "baseline", "hamd17", "1.0", classifications={"anxious_depression": True}),
        ScoreResult(
            "B", "baseline", "hamd17", "1.0", classifications={"anxious_depression": False}
        ),
    ]
    by_arm = compute_change(results, madrs, by="arm")
    assert [(s.group, s.visit) for s in by_arm.summary] == [
        ("ketamine", "baseline"),
        ("ketamine", "d1"),
        ("placebo", "baseline"),
        ("placebo", "d1"),
    ]
    assert [r.group for r in by_arm.rows] == ["ketamine", "placebo"]
    by_anx = compute_change(
        results, madrs, by="hamd17.anxious_depression", scales={"hamd17": hamd17}
    )
    assert by_anx.groups == {"A": "yes", "B": "no"}
    assert [s.group for s in by_anx.summary] == ["no", "no", "yes", "yes"]


def test_groups_spelled_two_ways_are_reported(madrs: Any) -> None:
    """Arms that differ only by case or spacing are two groups, as written, with a warning
    that says so (as visit names are)."""
    results = [
        res("A", "baseline", 30, extra={"arm": "Placebo"}),
        res("A", "d1", 20, extra={"arm": "Placebo"}),
        res("B", "baseline", 30, extra={"arm": "placebo"}),
        res("B", "d1", 25, extra={"arm": "placebo"}),
        res("C", "baseline", 30, extra={"arm": "ketamine"}),
        res("C", "d1", 10, extra={"arm": "ketamine"}),
    ]
    report = compute_change(results, madrs, by="arm")
    assert sorted({s.group for s in report.summary}) == ["Placebo", "ketamine", "placebo"]
    (issue,) = report.issues
    assert (issue.code, issue.severity) == ("level-spelling", "warning")
    assert issue.message.startswith(
        "arm has levels 'Placebo', 'placebo' that differ only by case or spacing; they are "
        "analysed as different levels"
    )


def test_a_named_baseline_applies_to_every_subject(madrs: Any) -> None:
    """When the data have a visit named baseline, a subject without one has no baseline:
    a later visit never stands in for it."""
    results = [
        res("S1", "baseline", 30, day=0),
        res("S1", "day1", 12, day=1),
        res("S2", "day1", 20, day=1, line=7),
        res("S2", "day3", 10, day=3),
    ]
    report = compute_change(results, madrs)
    assert [r.subject for r in report.rows] == ["S1"]
    (issue,) = report.issues
    assert issue.code == "no-baseline" and issue.subject == "S2"
    assert "no record at the baseline visit 'baseline'" in issue.message


def test_a_source_baseline_flag_wins_over_visit_names(madrs: Any) -> None:
    """SDTM QSBLFL = Y marks the baseline record (readers carry it as baseline_flag)."""
    results = [
        res("S1", "SCREENING", 34, day=-7, extra={"baseline_flag": "Y"}),
        res("S1", "baseline", 30, day=0),
        res("S1", "WEEK 1", 17, day=7),
        res("S2", "WEEK 1", 20, day=7, line=9),
    ]
    report = compute_change(results, madrs)
    assert report.baselines["S1"] == ("SCREENING", "flagged", 34)
    assert [(r.subject, r.visit) for r in report.rows] == [("S1", "baseline"), ("S1", "WEEK 1")]
    (issue,) = report.issues
    assert issue.message.startswith(
        "f.csv:9: subject S2, madrs: no record is flagged as the baseline (baseline flag Y)"
    )


def test_a_visit_before_the_baseline_has_its_value_and_no_change(madrs: Any) -> None:
    """A screening visit before the baseline (by study day, or by date) is listed with its
    value, but change from baseline describes what follows the baseline: no change, percent
    change, response, remission or reliable change there, and none in the summary (as
    ADaM's CHG of post-baseline records)."""
    results = [
        res("S1", "screening", 34, day=-7),
        res("S1", "baseline", 30, day=0),
        res("S1", "week1", 14, day=7),
        res("S2", "screening", 26, day=-6),
        res("S2", "baseline", 28, day=1),
        res("S2", "week1", 10, day=8),
    ]
    report = compute_change(results, madrs, rci_reliability=0.8, rci_sd=6)
    assert report.visits == ["screening", "baseline", "week1"]
    screening = [r for r in report.rows if r.visit == "screening"]
    assert [(r.baseline, r.value) for r in screening] == [(30, 34), (28, 26)]
    for row in screening:
        assert (row.change, row.percent_change, row.response, row.remission) == (None,) * 4
        assert (row.rci, row.rci_category) == (None, None)
    week1 = [r for r in report.rows if r.visit == "week1"]
    assert [r.change for r in week1] == [-16, -18] and all(r.rci is not None for r in week1)
    summary = {s.visit: s for s in report.summary}
    assert (summary["screening"].n, summary["screening"].mean) == (2, 30)
    assert (summary["screening"].n_change, summary["screening"].n_response) == (0, 0)
    assert summary["week1"].n_change == 2
    by_date = [
        res("S1", "screening", 34, date="2024-01-02"),
        res("S1", "baseline", 30, date="2024-01-09"),
        res("S1", "week1", 14, date="2024-01-16"),
    ]
    rows = compute_change(by_date, madrs).rows
    assert [(r.visit, r.change) for r in rows] == [("screening", None), ("week1", -16)]


def test_a_visit_whose_place_is_unknown_follows_the_baseline(madrs: Any) -> None:
    """Without study days or dates the input's order does not say that a visit came before
    the baseline: it gets its change, as before."""
    results = [res("S1", "week1", 14), res("S1", "baseline", 30), res("S1", "week2", 12)]
    report = compute_change(results, madrs)
    assert [(r.visit, r.change) for r in report.rows] == [("week1", -16), ("week2", -18)]
    assert report.visits == ["baseline", "week1", "week2"]


def test_groups_are_in_natural_order_in_the_summary(madrs: Any) -> None:
    """arm2 before arm10 in the summary, as in the plots (which took natural order while
    the summary took the text's), and no group last."""
    results = []
    for subject, arm in (("A", "arm10"), ("B", "arm2"), ("C", None)):
        extra = {"arm": arm} if arm else {}
        results += [res(subject, "baseline", 30, extra=extra), res(subject, "d1", 20, extra=extra)]
    report = compute_change(results, madrs, by="arm")
    assert list(dict.fromkeys(s.group for s in report.summary)) == ["arm2", "arm10", None]


VISIT_DAYS = {"screening": -7, "baseline": 0, "day1": 1, "day3": 3, "day7": 7}


@settings(max_examples=budget(100))
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["S1", "S2", "S10", "S3"]),
            st.sampled_from(list(VISIT_DAYS)),
            st.one_of(st.none(), st.integers(0, 60)),
            st.sampled_from(["a", "b"]),
        ),
        min_size=1,
        max_size=14,
        unique_by=lambda r: (r[0], r[1]),
    ),
    data=st.data(),
)
def test_the_order_of_the_input_does_not_matter(
    madrs: Any, rows: list[tuple[str, str, int | None, str]], data: st.DataObject
) -> None:
    """Change rows, the summary and the issues are a function of the records, not of the
    order they come in (files in another order, a table sorted otherwise). (An issue's
    message points at the first record it concerns in the input, so only its code and
    subject are compared.)"""
    results = [
        res(s, v, t, day=VISIT_DAYS[v], extra={"arm": arm}, line=i + 2)
        for i, (s, v, t, arm) in enumerate(rows)
    ]
    shuffled = data.draw(st.permutations(results))
    impute = data.draw(st.sampled_from([None, "locf", "bocf"]))

    def report(items: list[ScoreResult]) -> tuple[Any, ...]:
        r = compute_change(items, madrs, by="arm", rci_reliability=0.8, rci_sd=6.0, impute=impute)
        issues = sorted((i.code, i.subject or "") for i in r.issues)
        return r.visits, [x.to_dict() for x in r.rows], [s.to_dict() for s in r.summary], issues

    assert report(shuffled) == report(results)


def test_ids_that_differ_by_a_character_that_does_not_show_are_named(madrs: Any) -> None:
    """'S1' and 'S1' with a zero-width space (a cell pasted from a web page) are two
    subjects that print alike: the second seemed to lack its baseline ('subject S1: no
    record at the baseline visit') with nothing else said. They are named, escaped; so are
    visits that differ so (the named baseline is found through one)."""
    results = [
        res("S1", "baseline", 30, line=2),
        res("S1", "day1", 20, line=3),
        res("S1\u200b", "day3", 15, line=4),
        res("S2", "base\u00a0line", 30, line=5),
        res("S2", "day1", 12, line=6),
        res("S3", "baseline", 30, line=7),
        res("s3", "day1", 10, line=8),  # (case counts in an id: not named)
    ]
    report = compute_change(results, madrs)
    messages = {i.code: i.message for i in report.issues}
    assert messages["subject-spelling"] == (
        "f.csv:4: madrs: subject ids 'S1', 'S1\\u200b' differ only by spacing or characters "
        "that do not show (a zero-width space, a no-break space); they are analysed as "
        "different subjects; write each subject's id the same way in every file (retype the "
        "ids), if they are one subject"
    )
    assert [i.code for i in report.issues].count("subject-spelling") == 1
    assert (
        "visit names 'baseline', 'base\\xa0line' differ only by case or spacing"
        in (messages["visit-spelling"])
    )
    no_baseline = [i.message for i in report.issues if i.code == "no-baseline"]
    assert no_baseline[0].startswith("f.csv:4: subject 'S1\\u200b', madrs: no record at")
    s2 = [r for r in report.rows if r.subject == "S2"]
    assert [(r.visit, r.change) for r in s2] == [("day1", -18)]
