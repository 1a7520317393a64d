"""ANCOVA, responder statistics and Hedges' g against published results."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("scipy")

from ketascore.analysis.ancova import fit_ancova
from ketascore.analysis.design import DesignError
from ketascore.analysis.effect import from_summary, hedges_g
from ketascore.analysis.longdata import LongTable
from ketascore.analysis.responders import (
    cmh,
    fisher_exact,
    miettinen_nurminen,
    newcombe,
    odds_ratio,
    responder_analysis,
)

# SAS/STAT User's Guide, The GLM Procedure, Example "Analysis of Covariance" (DrugTest, from
# Snedecor & Cochran 1967, p. 422): PostTreatment = Drug PreTreatment, LSMEANS Drug.
DRUG_TEXT = (
    "A 11 6 A 8 0 A 5 2 A 14 8 A 19 11 A 6 4 A 10 13 A 6 1 A 11 8 A 3 0 "
    "D 6 0 D 6 2 D 7 3 D 8 1 D 18 18 D 8 4 D 19 14 D 8 9 D 5 1 D 15 9 "
    "F 16 13 F 13 10 F 11 18 F 9 5 F 21 23 F 16 12 F 12 5 F 12 16 F 7 1 F 12 20"
)
DRUG_TEST = DRUG_TEXT.split()


def drug_table() -> LongTable:
    rows = [DRUG_TEST[i : i + 3] for i in range(0, len(DRUG_TEST), 3)]
    return LongTable(
        {
            "Drug": [r[0] for r in rows],
            "PreTreatment": [float(r[1]) for r in rows],
            "PostTreatment": [float(r[2]) for r in rows],
        }
    )


def test_ancova_matches_sas_glm_example() -> None:
    r = fit_ancova(
        drug_table(),
        outcome="PostTreatment",
        group="Drug",
        covariates=["PreTreatment"],
        reference="F",  # SAS's reference is the last level
    )
    assert r.df_error == 26
    assert r.mse == pytest.approx(16.046254, abs=5e-7)
    coef = {(c["term"], tuple(c["levels"].values())): c for c in r.coefficients}
    assert coef[("Intercept", ())]["estimate"] == pytest.approx(-0.434671164, abs=5e-10)
    assert coef[("Intercept", ())]["se"] == pytest.approx(2.47135356, abs=5e-9)
    assert coef[("Drug", ("A",))]["estimate"] == pytest.approx(-3.446138280, abs=5e-10)
    assert coef[("Drug", ("D",))]["estimate"] == pytest.approx(-3.337166948, abs=5e-10)
    assert coef[("PreTreatment", ())]["estimate"] == pytest.approx(0.987183811, abs=5e-10)
    assert coef[("PreTreatment", ())]["se"] == pytest.approx(0.16449757, abs=5e-9)
    means = {m.group: m for m in r.lsmeans}
    for group, est, se in (
        ("A", 6.7149635, 1.2884943),
        ("D", 6.8239348, 1.2724690),
        ("F", 10.1611017, 1.3159234),
    ):
        assert means[group].estimate == pytest.approx(est, abs=5e-8)
        assert means[group].se == pytest.approx(se, abs=5e-8)
    type3 = {t["term"]: t for t in r.type3}
    assert type3["Drug"]["f"] == pytest.approx(2.14, abs=0.005)
    assert type3["Drug"]["p"] == pytest.approx(0.1384, abs=5e-5)
    assert type3["PreTreatment"]["f"] == pytest.approx(36.01, abs=0.005)


def test_dose_trend_of_doses_out_of_range_is_skipped() -> None:
    # doses of 1e308 overflowed the trend contrast (numpy warnings, an infinite estimate),
    # doses of 1e-320 left it a standard error of 0 (a ZeroDivisionError)
    for doses in ({"A": -1e308, "D": 0.0, "F": 1e308}, {"A": 0.0, "D": 0.0, "F": 1e-320}):
        r = fit_ancova(
            drug_table(),
            outcome="PostTreatment",
            group="Drug",
            covariates=["PreTreatment"],
            doses=doses,
        )
        assert r.trend is None
        (issue,) = r.issues
        assert issue.code == "analysis-skipped" and "doses are too large" in issue.message
        assert r.differences  # the rest of the ANCOVA is reported


def test_ancova_of_an_outcome_fitted_exactly_is_no_number() -> None:
    # a constant outcome left a residual variance of rounding alone: differences of 1e-15
    # with a p value of 0.64 (and a ZeroDivisionError in the dose trend when it was exactly
    # 0); an exact fit has no variance to test with
    table = drug_table()
    for post in (
        [7.0] * 30,  # constant
        [0.0] * 30,  # zero
        [0.1 * float(x) for x in table.column("PreTreatment")],  # a covariate's multiple
    ):
        exact = LongTable({**{c: table.column(c) for c in ("Drug", "PreTreatment")}, "y": post})
        with pytest.raises(DesignError, match="fits y exactly"):
            fit_ancova(
                exact,
                outcome="y",
                group="Drug",
                covariates=["PreTreatment"],
                doses={"A": 0.0, "D": 1.0, "F": 2.0},
            )


def test_ancova_agrees_with_statsmodels_ols() -> None:
    sm = pytest.importorskip("statsmodels.formula.api")
    pd = pytest.importorskip("pandas")
    table = drug_table()
    r = fit_ancova(
        table, outcome="PostTreatment", group="Drug", covariates=["PreTreatment"], reference="A"
    )
    peer = sm.ols("PostTreatment ~ C(Drug) + PreTreatment", data=pd.DataFrame(table.columns)).fit()
    diffs = {d.group: d for d in r.differences}
    for group in ("D", "F"):
        name = f"C(Drug)[T.{group}]"
        assert diffs[group].estimate == pytest.approx(peer.params[name], abs=1e-10)
        assert diffs[group].se == pytest.approx(peer.bse[name], abs=1e-10)
        assert diffs[group].p == pytest.approx(peer.pvalues[name], abs=1e-10)
        lower, upper = peer.conf_int().loc[name]
        assert (diffs[group].lower, diffs[group].upper) == (
            pytest.approx(lower, abs=1e-10),
            pytest.approx(upper, abs=1e-10),
        )


def test_ancova_dose_trend_is_the_linear_contrast() -> None:
    r = fit_ancova(
        drug_table(),
        outcome="PostTreatment",
        group="Drug",
        covariates=["PreTreatment"],
        reference="F",
        doses={"A": 1, "D": 2, "F": 3},
    )
    assert r.trend is not None
    # equally spaced doses: weights -1, 0, 1 -> F - A, the negative of the A - F difference
    a_minus_f = next(d for d in r.differences if d.group == "A")
    assert r.trend.estimate == pytest.approx(-a_minus_f.estimate)
    assert r.trend.p == pytest.approx(a_minus_f.p)


def test_ancova_refuses_one_group() -> None:
    table = LongTable({"g": ["a", "a", "a"], "y": [1.0, 2.0, 4.0]})
    with pytest.raises(DesignError, match="one level"):
        fit_ancova(table, outcome="y", group="g")


# Newcombe RG. Interval estimation for the difference between independent proportions:
# comparison of eleven methods. Stat Med 1998;17:873-890, Table II: examples (a)-(h) with the
# score interval of Miettinen & Nurminen (method 6) and the hybrid Wilson score interval
# (method 10), 95%.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0528, 0.3382), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1700, 0.8406), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0342, 0.8534), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0326, 0.1933), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1658, 0.2844), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2879, 0.2879), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.7156, 1.0000), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6636, 1.0000), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "mn", "hybrid"), NEWCOMBE_TABLE_II)
def test_difference_intervals_match_newcombe_1998(
    counts: tuple[int, int, int, int], mn: tuple[float, float], hybrid: tuple[float, float]
) -> None:
    lower, upper = miettinen_nurminen(*counts)
    assert (round(lower, 4), round(upper, 4)) == mn
    lower, upper = newcombe(*counts)
    assert (round(lower, 4), round(upper, 4)) == hybrid


def test_fisher_exact_tea_tasting() -> None:
    # Fisher (1935), The Design of Experiments: 3 of 4 cups right, two-sided p = 0.4857
    assert fisher_exact(3, 4, 1, 4) == pytest.approx(0.485714, abs=5e-7)


def test_cmh_matches_sas_freq_migraine_example() -> None:
    # SAS/STAT User's Guide, The FREQ Procedure, Example "Cochran-Mantel-Haenszel Statistics"
    # (Migraine data, strata = Gender): CMH 8.3052, p = 0.0040, MH common odds ratio 3.3132
    out = cmh([(16, 27, 5, 25), (12, 28, 7, 26)])
    assert out is not None
    assert out["statistic"] == pytest.approx(8.3052, abs=5e-5)
    assert out["p"] == pytest.approx(0.0040, abs=5e-5)
    assert out["common_odds_ratio"] == pytest.approx(3.3132, abs=5e-5)


def test_cmh_agrees_with_statsmodels() -> None:
    np = pytest.importorskip("numpy")
    ct = pytest.importorskip("statsmodels.stats.contingency_tables")
    strata = [(7, 20, 3, 18), (12, 25, 8, 24), (4, 9, 1, 10)]
    ours = cmh(strata)
    tables = [np.array([[a, n - a], [c, m - c]]) for a, n, c, m in strata]
    peer = ct.StratifiedTable(tables)
    assert ours is not None
    assert ours["statistic"] == pytest.approx(peer.test_null_odds(correction=False).statistic)
    assert ours["common_odds_ratio"] == pytest.approx(peer.oddsratio_pooled)


def test_odds_ratio_woolf_interval() -> None:
    value, ci = odds_ratio(16, 27, 5, 25)
    assert value == pytest.approx(16 * 20 / (11 * 5))
    assert ci is not None
    se = math.sqrt(1 / 16 + 1 / 11 + 1 / 5 + 1 / 20)
    assert ci[0] == pytest.approx(value * math.exp(-1.959963985 * se))
    assert odds_ratio(0, 10, 3, 10) == (None, None)


def test_responder_analysis_by_group() -> None:
    values = {
        "ketamine": [(True, None)] * 9 + [(False, None)],
        "midazolam": [(True, None)] * 3 + [(False, None)] * 7,
    }
    r = responder_analysis("response", "day1", values, ["ketamine", "midazolam"], "midazolam")
    (c,) = r.comparisons
    assert c.difference == pytest.approx(0.6)
    assert (round(c.newcombe[0], 4), round(c.newcombe[1], 4)) == (0.1705, 0.8090)
    assert [x.rate for x in r.rates] == [0.9, 0.3]


def test_hedges_g_matches_borenstein_example() -> None:
    # Borenstein, Hedges, Higgins & Rothstein (2009), Introduction to Meta-Analysis, ch. 4:
    # means 103 and 100, SDs 5.5 and 4.5, n 50 and 50: d = 0.5970, V(d) = 0.0418,
    # J = 0.9923, g = 0.5924, V(g) = 0.0411
    pooled = math.sqrt((49 * 5.5**2 + 49 * 4.5**2) / 98)
    e = from_summary(103, 100, pooled, 50, 50)
    assert e is not None
    assert e.d == pytest.approx(0.5970, abs=5e-5)
    assert e.g == pytest.approx(0.5924, abs=5e-5)
    assert e.se**2 == pytest.approx(0.0411, abs=5e-5)
    assert e.lower == pytest.approx(e.g - 1.959963985 * e.se)


def test_hedges_g_from_values() -> None:
    e = hedges_g([1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0])
    assert e is not None
    assert e.d == pytest.approx(-1 / math.sqrt(5 / 3))
    assert hedges_g([1.0], [2.0, 3.0]) is None
