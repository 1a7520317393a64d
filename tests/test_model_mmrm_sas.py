"""The MMRM against SAS PROC MIXED on the public fev_data (openpharma/mmrm data/fev_data.rda).

References, all SAS output kept by the authors of the R package mmrm (openpharma/mmrm,
design/SAS/):
- sas_log_reml.txt (also in ../shared/reference/analysis/README.md): REML, UN, Satterthwaite,
  FEV1 = ARMCD AVISIT ARMCD*AVISIT RACE SEX, LSMEANS AVISIT*ARMCD;
- sas_log.txt: the same model by ML;
- sas_cs_{reml,ml}.txt, sas_ar1_{reml,ml}.txt, sas_toep_{reml,ml}.rtf, sas_csh_{reml,ml}.txt,
  sas_ar1h_{reml,ml}.txt, sas_toeph_{reml,ml}.txt: FEV1 = (intercept only) with REPEATED
  AVISIT / TYPE=CS, AR(1), TOEP, CSH, ARH(1), TOEPH.

SAS prints degrees of freedom rounded to integers: they are compared within 1. SAS orders the
UN parameters by the CLASS levels of AVISIT with the reference (VIS1) last, so its UN(1,1) is
VIS2; ketascore orders them by visit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("scipy")

from ketascore.analysis.longdata import read_table
from ketascore.analysis.mmrm import MMRMResult, MMRMSpec, fit_mmrm

from conftest import ROOT

FEV = ROOT.parent / "shared" / "reference" / "analysis" / "fev_data.csv"

REFERENCES = {"ARMCD": "PBO", "AVISIT": "VIS1", "RACE": "Asian", "SEX": "Male"}
SAS_VISITS = ["VIS2", "VIS3", "VIS4", "VIS1"]  # SAS's index order of the UN parameters


@pytest.fixture(scope="module")
def fev() -> Path:
    if not FEV.is_file():
        pytest.skip("../shared/reference/analysis is not present")
    return FEV


def fit(path: Path, method: str = "reml", covariance: str = "un", full: bool = True) -> MMRMResult:
    table = read_table(path)
    if full:
        spec = MMRMSpec(
            outcome="FEV1",
            subject="USUBJID",
            visit="AVISIT",
            group="ARMCD",
            terms=("ARMCD", "AVISIT", "ARMCD*AVISIT", "RACE", "SEX"),
            factors=("RACE", "SEX"),
            references=REFERENCES,
            method=method,
            covariance=covariance,
        )
    else:
        spec = MMRMSpec(
            outcome="FEV1",
            subject="USUBJID",
            visit="AVISIT",
            terms=("1",),
            method=method,
            covariance=covariance,
        )
    return fit_mmrm(table, spec)


def un_by_sas_name(result: MMRMResult) -> dict[str, float]:
    """ketascore's UN parameters under SAS's names."""
    index = {v: i for i, v in enumerate(result.visits)}
    matrix = result.covariance_matrix
    out = {}
    for i, vi in enumerate(SAS_VISITS):
        for j, vj in enumerate(SAS_VISITS[: i + 1]):
            out[f"UN({i + 1},{j + 1})"] = matrix[index[vi]][index[vj]]
    return out


def effect(result: MMRMResult, term: str, **levels: str) -> tuple[float, float, float | None]:
    for f in result.fixed_effects:
        if f.term == term and f.levels == levels:
            return f.estimate, f.se, f.df
    raise AssertionError(f"no fixed effect {term} {levels}")


# SAS PROC MIXED, REML (design/SAS/sas_log_reml.txt; ../shared/reference/analysis/README.md)
REML_UN = {
    "UN(1,1)": 26.5692, "UN(2,1)": 2.7851, "UN(2,2)": 14.8970, "UN(3,1)": 7.4790,
    "UN(3,2)": 0.9017, "UN(3,3)": 95.5528, "UN(4,1)": 14.3982, "UN(4,2)": 4.9744,
    "UN(4,3)": 13.3731, "UN(4,4)": 40.5509,
}  # fmt: skip
REML_FIXED = [
    ("Intercept", {}, 30.7774, 0.8865, 219),
    ("ARMCD", {"ARMCD": "TRT"}, 3.7745, 1.0741, 146),
    ("AVISIT", {"AVISIT": "VIS2"}, 4.8396, 0.8016, 144),
    ("AVISIT", {"AVISIT": "VIS3"}, 10.3422, 0.8227, 156),
    ("AVISIT", {"AVISIT": "VIS4"}, 15.0537, 1.3129, 138),
    ("ARMCD*AVISIT", {"ARMCD": "TRT", "AVISIT": "VIS2"}, -0.04231, 1.1292, 139),
    ("ARMCD*AVISIT", {"ARMCD": "TRT", "AVISIT": "VIS3"}, -0.6939, 1.1876, 158),
    ("ARMCD*AVISIT", {"ARMCD": "TRT", "AVISIT": "VIS4"}, 0.6240, 1.8510, 130),
    ("RACE", {"RACE": "Black or African American"}, 1.5305, 0.6244, 169),
    ("RACE", {"RACE": "White"}, 5.6436, 0.6656, 157),
    ("SEX", {"SEX": "Female"}, 0.3262, 0.5319, 166),
]
REML_TYPE3 = {
    "ARMCD": (1, 169, 31.67),
    "AVISIT": (3, 148, 142.11),
    "ARMCD*AVISIT": (3, 148, 0.26),
    "RACE": (2, 166, 36.92),
    "SEX": (1, 166, 0.38),
}
REML_LSMEANS = [
    ("VIS1", "TRT", 37.1063, 0.7626, 143, 35.5990, 38.6137),
    ("VIS1", "PBO", 33.3318, 0.7554, 148, 31.8391, 34.8245),
    ("VIS2", "TRT", 41.9037, 0.6023, 144, 40.7131, 43.0942),
    ("VIS2", "PBO", 38.1715, 0.6117, 147, 36.9626, 39.3803),
    ("VIS3", "TRT", 46.7546, 0.5086, 130, 45.7484, 47.7608),
    ("VIS3", "PBO", 43.6740, 0.4617, 130, 42.7605, 44.5875),
    ("VIS4", "TRT", 52.7841, 1.1877, 133, 50.4347, 55.1334),
    ("VIS4", "PBO", 48.3855, 1.1886, 134, 46.0346, 50.7364),
]
REML_DIFFS = [
    ("VIS1", 3.7745, 1.0741, 146, 1.6517, 5.8974, 0.0006),
    ("VIS2", 3.7322, 0.8588, 145, 2.0348, 5.4296, None),
    ("VIS3", 3.0806, 0.6896, 131, 1.7164, 4.4448, None),
    ("VIS4", 4.3985, 1.6805, 133, 1.0746, 7.7225, 0.0099),
]


def close4(ours: float, sas: float) -> bool:
    """Equal to the 4 decimals SAS prints (half a unit of the last printed digit)."""
    return abs(ours - sas) <= 0.5e-4 + 1e-9


def test_reml_unstructured_matches_sas(fev: Path) -> None:
    r = fit(fev)
    assert r.converged
    assert (r.observations_read, r.observations_used) == (800, 537)
    assert r.neg2_log_likelihood is not None and close4(r.neg2_log_likelihood, 3386.4499)
    assert r.aic is not None and abs(r.aic - 3406.4) < 0.05
    assert r.aicc is not None and abs(r.aicc - 3406.9) < 0.05
    assert r.bic is not None and abs(r.bic - 3439.4) < 0.05
    ours = un_by_sas_name(r)
    for name, sas in REML_UN.items():
        assert close4(ours[name], sas), (name, ours[name], sas)
    for term, levels, est, se, df in REML_FIXED:
        e, s, d = effect(r, term, **levels)
        digits = 5 if abs(est) < 0.1 else 4  # SAS printed -0.04231
        assert abs(e - est) <= 0.5 * 10**-digits + 1e-9, (term, levels, e, est)
        assert close4(s, se), (term, levels, s, se)
        assert d is not None and abs(d - df) <= 1, (term, levels, d, df)
    type3 = {t.term: t for t in r.type3}
    for term, (num, den, f) in REML_TYPE3.items():
        assert type3[term].num_df == num
        assert type3[term].den_df is not None and abs(type3[term].den_df - den) <= 1
        assert abs(type3[term].f - f) <= 0.005, (term, type3[term].f, f)


def test_reml_lsmeans_and_differences_match_sas(fev: Path) -> None:
    r = fit(fev)
    cells = {(x.visit, x.group): x for x in r.lsmeans}
    for visit, arm, est, se, df, lower, upper in REML_LSMEANS:
        x = cells[(visit, arm)]
        assert close4(x.estimate, est) and close4(x.se, se), (visit, arm)
        assert x.df is not None and abs(x.df - df) <= 1
        assert x.lower is not None and close4(x.lower, lower)
        assert x.upper is not None and close4(x.upper, upper)
    diffs = {c.visit: c for c in r.contrasts}
    for visit, est, se, df, lower, upper, p in REML_DIFFS:
        c = diffs[visit]
        assert (c.group, c.reference) == ("TRT", "PBO")
        assert close4(c.estimate, est) and close4(c.se, se)
        assert c.df is not None and abs(c.df - df) <= 1
        assert c.lower is not None and close4(c.lower, lower)
        assert c.upper is not None and close4(c.upper, upper)
        assert c.p is not None
        if p is None:
            assert c.p < 0.0001  # SAS prints <.0001
        else:
            assert close4(c.p, p)


# SAS PROC MIXED, ML (design/SAS/sas_log.txt)
ML_UN = {
    "UN(1,1)": 25.9989, "UN(2,1)": 2.5419, "UN(2,2)": 14.4620, "UN(3,1)": 7.2159,
    "UN(3,2)": 0.6609, "UN(3,3)": 93.9227, "UN(4,1)": 14.0451, "UN(4,2)": 4.7227,
    "UN(4,3)": 12.9820, "UN(4,4)": 39.7740,
}  # fmt: skip
ML_FIXED = [
    ("Intercept", {}, 30.7748, 0.8767, 222),
    ("ARMCD", {"ARMCD": "TRT"}, 3.7751, 1.0641, 148),
    ("AVISIT", {"AVISIT": "VIS2"}, 4.8376, 0.7948, 146),
    ("AVISIT", {"AVISIT": "VIS3"}, 10.3459, 0.8156, 158),
    ("AVISIT", {"AVISIT": "VIS4"}, 15.0480, 1.3027, 140),
    ("ARMCD*AVISIT", {"ARMCD": "TRT", "AVISIT": "VIS3"}, -0.6923, 1.1773, 161),
    ("ARMCD*AVISIT", {"ARMCD": "TRT", "AVISIT": "VIS4"}, 0.6250, 1.8367, 131),
    ("RACE", {"RACE": "Black or African American"}, 1.5361, 0.6146, 173),
    ("RACE", {"RACE": "White"}, 5.6436, 0.6548, 161),
    ("SEX", {"SEX": "Female"}, 0.3275, 0.5235, 171),
]
ML_TYPE3 = {
    "ARMCD": (1, 171, 32.49),
    "AVISIT": (3, 150, 144.50),
    "ARMCD*AVISIT": (3, 150, 0.26),
    "RACE": (2, 170, 38.12),
    "SEX": (1, 171, 0.39),
}


def test_ml_unstructured_matches_sas(fev: Path) -> None:
    r = fit(fev, method="ml")
    assert r.neg2_log_likelihood is not None and abs(r.neg2_log_likelihood - 3397.57220025) < 1e-6
    assert r.aic is not None and abs(r.aic - 3439.6) < 0.05
    assert r.aicc is not None and abs(r.aicc - 3441.4) < 0.05
    assert r.bic is not None and abs(r.bic - 3508.8) < 0.05
    ours = un_by_sas_name(r)
    for name, sas in ML_UN.items():
        assert close4(ours[name], sas), (name, ours[name], sas)
    for term, levels, est, se, df in ML_FIXED:
        e, s, d = effect(r, term, **levels)
        assert close4(e, est) and close4(s, se), (term, levels, e, s)
        assert d is not None and abs(d - df) <= 1, (term, levels, d)
    e, _, _ = effect(r, "ARMCD*AVISIT", ARMCD="TRT", AVISIT="VIS2")
    assert abs(e - -0.03937) <= 0.5e-5
    type3 = {t.term: t for t in r.type3}
    for term, (num, den, f) in ML_TYPE3.items():
        assert type3[term].num_df == num
        assert type3[term].den_df is not None and abs(type3[term].den_df - den) <= 1
        assert abs(type3[term].f - f) <= 0.005


# Intercept-only models with structured covariances: (covariance, method) -> SAS's final
# -2 (Res) Log Likelihood (iteration history), covariance parameters, intercept (estimate,
# SE, DF). SAS stops at its relative Hessian criterion (1e-8), and for CS, AR(1) and TOEP it
# iterates on the parameters divided by the profiled residual variance, so it stops at a
# slightly different point than ketascore: parameters are compared to 1e-3 of their value
# (0.2% for the poorly determined CS covariance) and the likelihood to 2e-5 (both within
# the 1e-8 relative criterion, which allows about 4e-5 here).
STRUCTURED = {
    ("cs", "reml"): (3917.98183508, {"CS": 5.8943, "Residual": 81.0025}, (42.2896, 0.4285, 187)),
    ("cs", "ml"): (3918.12214544, {"CS": 5.7193, "Residual": 80.9950}, (42.2897, 0.4273, 188)),
    ("ar1", "reml"): (
        3875.49945459, {"AR(1)": 0.4272, "Residual": 88.9866}, (42.3255, 0.5013, 188)
    ),
    ("ar1", "ml"): (3875.95352406, {"AR(1)": 0.4249, "Residual": 88.7088}, (42.3252, 0.5000, 189)),
    ("toep", "reml"): (
        3856.68995273,
        {"TOEP(2)": 41.5499, "TOEP(3)": 6.9536, "TOEP(4)": -17.6135, "Residual": 89.0847},
        (42.3721, 0.4684, 166),
    ),
    ("toep", "ml"): (
        3857.00777313,
        {"TOEP(2)": 41.2525, "TOEP(3)": 6.7009, "TOEP(4)": -17.7604, "Residual": 88.8193},
        (42.3717, 0.4669, 166),
    ),
    ("csh", "reml"): (
        3784.85341599,
        {"Var(1)": 104.61, "Var(2)": 38.6137, "Var(3)": 31.3143, "Var(4)": 178.91, "CSH": 0.1582},
        (41.9964, 0.3575, 199),
    ),
    ("csh", "ml"): (
        3784.63158043,
        {"Var(1)": 104.54, "Var(2)": 38.5253, "Var(3)": 31.1656, "Var(4)": 178.62, "CSH": 0.1566},
        (42.0018, 0.3566, 199),
    ),
    ("arh1", "reml"): (
        3739.96835012,
        {
            "Var(1)": 92.3009, "Var(2)": 38.5178, "Var(3)": 35.2148, "Var(4)": 176.37,
            "ARH(1)": 0.4130,
        },
        (41.6955, 0.3947, 191),
    ),
    ("arh1", "ml"): (
        3739.94416707,
        {
            "Var(1)": 92.2283, "Var(2)": 38.3927, "Var(3)": 35.0194, "Var(4)": 176.08,
            "ARH(1)": 0.4113,
        },
        (41.7017, 0.3936, 191),
    ),
    ("toeph", "reml"): (
        3722.38018329,
        {
            "Var(1)": 90.4041, "Var(2)": 38.5927, "Var(3)": 36.1518, "Var(4)": 175.78,
            "TOEPH(1)": 0.4295, "TOEPH(2)": 0.04570, "TOEPH(3)": -0.3116,
        },
        (41.6726, 0.3822, 185),
    ),
    ("toeph", "ml"): (
        3722.29178558,
        {
            "Var(1)": 90.3084, "Var(2)": 38.4717, "Var(3)": 35.9728, "Var(4)": 175.50,
            "TOEPH(1)": 0.4279, "TOEPH(2)": 0.04377, "TOEPH(3)": -0.3130,
        },
        (41.6769, 0.3812, 186),
    ),
}  # fmt: skip


@pytest.mark.parametrize(("covariance", "method"), sorted(STRUCTURED))
def test_structured_covariances_match_sas(fev: Path, covariance: str, method: str) -> None:
    neg2ll, params, (est, se, df) = STRUCTURED[(covariance, method)]
    r = fit(fev, method=method, covariance=covariance, full=False)
    assert r.converged
    assert r.neg2_log_likelihood is not None and abs(r.neg2_log_likelihood - neg2ll) < 2e-5
    ours = dict(zip(r.covariance_names, r.covariance_estimates, strict=True))
    assert set(ours) == set(params)
    for name, sas in params.items():
        tolerance = 2e-3 if name == "CS" else 1e-3
        assert abs(ours[name] - sas) <= tolerance * abs(sas) + 1e-4, (name, ours[name], sas)
    (intercept,) = r.fixed_effects
    assert abs(intercept.estimate - est) <= 2e-4
    assert abs(intercept.se - se) <= 1e-4
    assert intercept.df is not None and abs(intercept.df - df) <= 1


# Kenward-Roger: SAS PROC MIXED DDFM=KR, FEV1 = ARMCD, REPEATED AVISIT, LSMEANS ARMCD
# (openpharma/mmrm design/ddfm_covtype/kr_us.txt and kr_ar1.txt): (estimate, SE, DF) of the
# intercept, of ARMCD TRT, and of the two LS means; AR(1) checks the second-derivative term
# of the adjusted covariance (SAS's KR(LINEAR) gives 0.6664 and 0.9606 there instead).
KENWARD_ROGER = {
    "un": (
        3667.96276376,
        [(41.0058, 0.4547, 162), (3.8197, 0.6612, 161)],
        {
            "TRT": (44.8255, 0.4801, 159, 43.8773, 45.7737),
            "PBO": (41.0058, 0.4547, 162, 40.1078, 41.9037),
        },
    ),
    "ar1": (
        None,
        [(40.2881, 0.6651, 194), (4.2257, 0.9587, 188)],
        {
            "TRT": (44.5139, 0.6904, 183, 43.1518, 45.8760),
            "PBO": (40.2881, 0.6651, 194, 38.9763, 41.5999),
        },
    ),
}  # fmt: skip


@pytest.mark.parametrize("covariance", sorted(KENWARD_ROGER))
def test_kenward_roger_matches_sas(fev: Path, covariance: str) -> None:
    neg2ll, fixed, lsmeans = KENWARD_ROGER[covariance]
    spec = MMRMSpec(
        outcome="FEV1",
        subject="USUBJID",
        visit="AVISIT",
        group="ARMCD",
        terms=("ARMCD",),
        references={"ARMCD": "PBO"},
        covariance=covariance,
        ddfm="kenward-roger",
    )
    r = fit_mmrm(read_table(fev), spec)
    if neg2ll is not None:
        assert r.neg2_log_likelihood is not None and abs(r.neg2_log_likelihood - neg2ll) < 1e-6
    for f, (est, se, df) in zip(r.fixed_effects, fixed, strict=True):
        assert close4(f.estimate, est) and close4(f.se, se), (f, est, se)
        assert f.df is not None and abs(f.df - df) <= 1
    for x in r.lsmeans:
        est, se, df, lower, upper = lsmeans[x.group or ""]
        assert close4(x.estimate, est) and close4(x.se, se)
        assert x.df is not None and abs(x.df - df) <= 1
        assert x.lower is not None and close4(x.lower, lower)
        assert x.upper is not None and close4(x.upper, upper)
    (type3,) = r.type3
    assert type3.den_df is not None and abs(type3.den_df - fixed[1][2]) <= 1
