"""Reliable and clinically significant change (Jacobson & Truax 1991) in `change`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.analysis.change import (
    ReliableChangeRule,
    compute_change,
    jt_cutoff,
    reliable_change_rule,
)
from ketascore.cli import cli
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult, Source
from ketascore.core.values import clean_number


def rule(
    sd: float, r: float, cutoff: float | None = None, better: str = "lower"
) -> ReliableChangeRule:
    return ReliableChangeRule(r, "option", sd, "option", cutoff, "c", None, better)


def test_reliable_change_criterion_matches_an_independent_implementation() -> None:
    # CECPfuns (C. Evans, co-author of Evans, Margison & Barkham 1998, Evid Based Ment Health
    # 1:70-72), tests/testthat/test-getRCIfromSDandAlpha.R: the smallest reliable change for an
    # SD of 7.5 and a reliability of .80 is 9.296925... points (with z = 1.959964; J&T's 1.96
    # gives 9.2971).
    assert rule(7.5, 0.8).reliable_points == pytest.approx(9.296925484568419, abs=1e-3)
    # SE = 7.5 sqrt(.2) = 3.354; S_diff = sqrt(2) SE = 4.743
    assert rule(7.5, 0.8).standard_error == pytest.approx(3.3541, abs=1e-4)
    assert rule(7.5, 0.8).s_diff == pytest.approx(4.7434, abs=1e-4)


def test_cutoffs_match_the_clinicalsignificance_package() -> None:
    # clinicalsignificance (B. Claus), vignette "The Combined Approach" and README: BDI-II
    # with a clinical mean 35.48 (SD 8.16): cut-off a = 19.16; with a functional population
    # of mean 8 (SD 8): cut-off c = 21.6.
    a = jt_cutoff(None, (35.48, 8.16))
    c = jt_cutoff((8, 8), (35.48, 8.16))
    assert a is not None and c is not None
    assert (round(a[0], 2), a[1]) == (19.16, "a")
    assert (round(c[0], 1), c[1]) == (21.6, "c")
    # Jacobson & Truax's own illustration: dysfunctional mean 40, functional mean 60, both
    # SD 7.5 (higher is better): c halfway, 50; a = 40 + 2 x 7.5 = 55; b = 60 - 15 = 45.
    assert jt_cutoff((60, 7.5), (40, 7.5), "higher") == (50, "c")
    assert jt_cutoff(None, (40, 7.5), "higher") == (55, "a")
    assert jt_cutoff((60, 7.5), None, "higher") == (45, "b")


@pytest.mark.parametrize(
    ("baseline", "value", "category"),
    [
        (20, 6, "recovered"),  # reliable drop, from above to below the cut-off
        (20, 10, "improved"),  # reliable drop to the cut-off itself: still dysfunctional
        (20, 16, "unchanged"),  # RC = -4 / 4.74 = -0.84
        (10, 20, "deteriorated"),
    ],
)
def test_categories(baseline: float, value: float, category: str) -> None:
    assert rule(7.5, 0.8, cutoff=10).category(baseline, value) == category


def test_a_reliable_drop_that_began_on_the_functional_side_is_improved_not_recovered() -> None:
    assert rule(7.5, 0.8, cutoff=25).category(20, 5) == "improved"


def test_a_change_exactly_at_the_criterion_is_not_reliable() -> None:
    r = rule(7.5, 0.8)
    assert r.category(20, 20 - 1.96 * r.s_diff) == "unchanged"
    assert r.category(20, 20 - 1.96 * r.s_diff - 1e-9) == "improved"


def test_higher_is_better_reverses_the_direction() -> None:
    r = rule(7.5, 0.8, cutoff=50, better="higher")
    assert r.category(40, 60) == "recovered"
    assert r.category(60, 40) == "deteriorated"


def res(subject: str, visit: str, total: float, day: int) -> ScoreResult:
    return ScoreResult(
        subject=subject,
        visit=visit,
        scale="phq9",
        scale_version="1.0",
        scores={"total": total},
        day=day,
        source=Source(file="p.csv", line=2),
    )


def test_change_reports_rci_with_the_scales_cited_reliability() -> None:
    phq9 = load_builtin("phq9")
    results = [
        res("S1", "baseline", 20, 0),
        res("S1", "week8", 6, 56),
        res("S2", "baseline", 15, 0),
        res("S2", "week8", 9, 56),
        res("S3", "baseline", 10, 0),
        res("S3", "week8", 14, 56),
    ]
    report = compute_change(results, phq9)
    rc = report.reliable_change
    assert rc is not None
    # r = .89 (Kroenke 2001); s1 = SD of the baselines 20, 15, 10 = 5
    assert (rc.reliability, rc.sd, rc.sd_from) == (0.89, 5, "baseline")
    se = 5 * math.sqrt(1 - 0.89)
    assert rc.s_diff == pytest.approx(math.sqrt(2) * se)
    # cut-off c between the general population (2.91, 3.52; Kocalevent 2013) and the baselines
    assert rc.cutoff == pytest.approx((3.52 * 15 + 5 * 2.91) / (3.52 + 5))
    assert [(r.subject, r.rci_category) for r in report.rows] == [
        ("S1", "recovered"),
        ("S2", "improved"),
        ("S3", "unchanged"),
    ]
    assert report.rows[0].rci == pytest.approx(round(-14 / rc.s_diff, 4))
    doc = report.to_dict()
    assert doc["reliable_change"]["cutoff_rule"] == "c"
    assert doc["rows"][0]["rci_category"] == "recovered"


def test_each_row_gets_the_index_and_category_of_its_own_values() -> None:
    """Rows repeat pairs of values (the report works each pair out once): each row's index
    and category are still those of its own baseline and value, an int and a float of the
    same value alike, and a score too large for a float to hold exactly keeps its own."""
    phq9 = load_builtin("phq9")
    pairs = [(20, 6), (20, 6.0), (20.0, 6), (15, 9), (20, 6), (10, 14), (15, 9.5), (15, 9.5)]
    pairs += [(10**17 + 1, 3), (10**17, 3)]
    results = []
    for k, (baseline, value) in enumerate(pairs):
        results += [res(f"S{k}", "baseline", baseline, 0), res(f"S{k}", "week8", value, 56)]
    report = compute_change(results, phq9, rci_sd=5.0)
    rc = report.reliable_change
    assert rc is not None
    for row, (baseline, value) in zip(report.rows, pairs, strict=True):
        assert (row.baseline, row.value) == (baseline, value)
        expected = round((value - baseline) / rc.s_diff, 4)
        assert row.rci == expected and type(row.rci) is type(clean_number(expected))
        assert row.rci_category == rc.category(baseline, value)


def test_a_score_without_reliability_has_no_rci_columns() -> None:
    madrs = load_builtin("madrs")
    results = [
        ScoreResult("S1", "baseline", "madrs", "1.0", scores={"total": 30}, day=0),
        ScoreResult("S1", "day1", "madrs", "1.0", scores={"total": 12}, day=1),
    ]
    report = compute_change(results, madrs)
    assert report.reliable_change is None
    assert "rci" not in report.rows[0].to_dict()
    assert "reliable_change" not in report.to_dict()


def test_one_baseline_and_no_declared_sd_is_reported() -> None:
    phq9 = load_builtin("phq9")
    report = compute_change([res("S1", "baseline", 20, 0), res("S1", "w", 6, 7)], phq9)
    assert [i.code for i in report.issues] == ["rci-undetermined"]
    assert "rci" not in report.rows[0].to_dict()
    with_sd = compute_change([res("S1", "baseline", 20, 0), res("S1", "w", 6, 7)], phq9, rci_sd=5.0)
    assert with_sd.rows[0].rci_category is not None


def test_builtin_reliability_and_norms_cite_known_sources() -> None:
    from ketascore.core.library import builtin_ids

    for scale_id in builtin_ids():
        definition = load_builtin(scale_id).definition
        keys = {c.key for c in definition.citations}
        for score in definition.scores:
            sources = []
            if score.reliability is not None:
                sources.append(score.reliability.source)
            if score.norms is not None:
                sources += [n.source for n in (score.norms.functional, score.norms.clinical) if n]
            for source in sources:
                assert source in keys, f"{scale_id}.{score.id}: unknown citation {source!r}"


def test_reliable_change_rule_is_none_without_reliability() -> None:
    assert reliable_change_rule(load_builtin("madrs"), "total", [10, 20]) is None


def test_cli_change_json_carries_rci(runner: CliRunner, tmp_path: Path) -> None:
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    (tmp_path / "p.csv").write_text(
        f"subject,visit,day,{items}\n"
        "S1,baseline,0,3,3,3,2,2,2,2,2,1\n"
        "S1,week8,56,1,1,1,1,1,1,0,0,0\n"
        "S2,baseline,0,2,2,2,2,1,1,1,1,0\n"
        "S2,week8,56,2,2,2,1,1,1,1,1,0\n"
    )
    result = runner.invoke(
        cli, ["change", str(tmp_path / "p.csv"), "--scale", "phq9", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert [r["rci_category"] for r in doc["rows"]] == ["recovered", "unchanged"]
    assert doc["reliable_change"]["reliability"] == 0.89
