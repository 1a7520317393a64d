"""Analysis of covariance at one visit, as SAS PROC GLM fits it:

    PROC GLM; CLASS group factors;
      MODEL change = group factors baseline / SOLUTION;
      LSMEANS group / STDERR PDIFF CL;

Ordinary least squares with the design of ``ketascore.analysis.design`` (the same reference
coding and aliasing as the MMRM); LS means with covariates at their mean and other factors
averaged with equal weights; differences to the reference group with t tests on the residual
degrees of freedom; and, when each group has a numeric dose, a linear trend contrast across
the groups' LS means (weights: dose minus the mean dose).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats  # type: ignore[import-untyped,unused-ignore]

from ketascore.analysis.design import (
    DesignError,
    Variable,
    build_design,
    exact_fit,
    fits_exactly,
    parse_terms,
    term_name,
)
from ketascore.analysis.longdata import LongTable, level_text, natural_levels, number
from ketascore.core.issues import Issue, make_issue


@dataclass
class GroupMean:
    group: str
    n: int
    estimate: float
    se: float
    lower: float
    upper: float


@dataclass
class GroupDifference:
    group: str
    reference: str
    estimate: float
    se: float
    df: float
    lower: float
    upper: float
    p: float


@dataclass
class Trend:
    doses: dict[str, float]
    coefficients: dict[str, float]
    estimate: float
    se: float
    df: float
    t: float
    p: float


@dataclass
class AncovaResult:
    outcome: str
    group: str
    visit: str | None
    terms: list[str]
    n: int
    observations_read: int
    df_error: int = 0
    mse: float = math.nan
    r_squared: float = math.nan
    coefficients: list[dict[str, Any]] = field(default_factory=list)
    type3: list[dict[str, Any]] = field(default_factory=list)
    lsmeans: list[GroupMean] = field(default_factory=list)
    differences: list[GroupDifference] = field(default_factory=list)
    trend: Trend | None = None
    issues: list[Issue] = field(default_factory=list)


def fit_ancova(
    table: LongTable,
    *,
    outcome: str,
    group: str,
    covariates: Sequence[str] = (),
    factors: Sequence[str] = (),
    reference: str | None = None,
    references: Mapping[str, str] | None = None,
    doses: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    visit: str | None = None,
) -> AncovaResult:
    """The ANCOVA of ``outcome`` on ``group`` (+ factors and covariates) over the rows of
    ``table`` (already those of one visit). Rows missing the outcome are not used; rows
    missing a covariate or factor are dropped with an issue that counts them."""
    terms = parse_terms([group, *factors, *covariates])
    result = AncovaResult(outcome, group, visit, [term_name(t) for t in terms], 0, table.n_rows)
    n = table.n_rows
    y_all = [number(v) for v in table.column(outcome)]
    used = [v is not None for v in y_all]
    class_names = {group, *factors}
    for var in [group, *factors, *covariates]:
        column = table.column(var)
        lacking = 0
        for i in range(n):
            if not used[i]:
                continue
            bad = level_text(column[i]) is None if var in class_names else number(column[i]) is None
            if bad:
                used[i] = False
                lacking += 1
        if lacking:
            result.issues.append(make_issue("model-rows-dropped", count=lacking, variable=var))
    rows = [i for i in range(n) if used[i]]
    levels = natural_levels(level_text(table.column(group)[i]) for i in rows)
    if len(levels) < 2:
        raise DesignError(
            f"the group variable {group!r} has "
            + (f"one level ({levels[0]!r})" if levels else "no levels")
            + " among the rows with an outcome"
            + (f" at visit {visit}" if visit else "")
            + "; a comparison needs two groups or more"
        )
    refs = dict(references or {})
    ref = reference or refs.get(group) or levels[0]
    if ref not in levels:
        raise DesignError(f"reference group {ref!r} is not among {', '.join(levels)}")
    class_vars = {group: Variable(group, tuple(levels), ref)}
    for var in factors:
        lv = natural_levels(level_text(table.column(var)[i]) for i in rows)
        class_vars[var] = Variable(var, tuple(lv), refs.get(var, lv[0]))
    data: dict[str, list[Any]] = {}
    for var in [group, *factors, *covariates]:
        column = table.column(var)
        data[var] = [
            level_text(column[i]) if var in class_names else number(column[i]) for i in rows
        ]
    design = build_design(data, terms, class_vars, n=len(rows))
    singular = design.unexpected_aliases()
    if singular:
        result.issues.append(
            make_issue("model-singular", columns=[c.label for c in singular], count=len(singular))
        )
    x = design.matrix
    y = np.array([y_all[i] for i in rows], dtype=float)
    n_used, p = x.shape
    df = n_used - p
    result.n = n_used
    if df <= 0:
        raise DesignError(
            f"{n_used} observations for {p} parameters: no degrees of freedom left for error"
        )
    xtx_inv = np.linalg.inv(x.T @ x)
    beta = xtx_inv @ x.T @ y
    resid = y - x @ beta
    sse = float(resid @ resid)
    sst = float(np.sum((y - y.mean()) ** 2))
    if fits_exactly(y, resid):
        raise DesignError(exact_fit(outcome, visit))
    mse = sse / df
    cov = mse * xtx_inv
    result.df_error = df
    result.mse = mse
    result.r_squared = 1 - sse / sst if sst > 0 else math.nan
    tq = float(stats.t.ppf(1 - alpha / 2, df))
    for j, kept in enumerate(design.kept_columns):
        se = math.sqrt(cov[j, j])
        t = float(beta[j] / se) if se else math.nan
        result.coefficients.append(
            {
                "term": term_name(kept.term) if kept.term else "Intercept",
                "levels": dict(kept.levels),
                "estimate": float(beta[j]),
                "se": se,
                "df": df,
                "t": t,
                "p": float(2 * stats.t.sf(abs(t), df)),
            }
        )
    hypotheses, _ = design.type3_hypotheses()
    for term, coef in hypotheses.items():
        est = coef @ beta
        middle = coef @ cov @ coef.T
        rank = int(np.linalg.matrix_rank(middle))
        if rank == 0:
            continue
        f = float(est @ np.linalg.pinv(middle) @ est) / rank
        result.type3.append(
            {
                "term": term,
                "num_df": rank,
                "den_df": df,
                "f": f,
                "p": float(stats.f.sf(f, rank, df)),
            }
        )
    counts = {lv: 0 for lv in levels}
    for value in data[group]:
        counts[value] += 1
    cells: dict[str, np.ndarray] = {}
    for level in levels:
        reduced = design.reduce(design.lsmean_coefficients({group: level}))
        if reduced is None:
            continue
        coef = reduced
        cells[level] = coef
        est = float(coef @ beta)
        se = math.sqrt(float(coef @ cov @ coef))
        result.lsmeans.append(
            GroupMean(level, counts[level], est, se, est - tq * se, est + tq * se)
        )
    for level in levels:
        if level == ref or level not in cells or ref not in cells:
            continue
        coef = cells[level] - cells[ref]
        est = float(coef @ beta)
        se = math.sqrt(float(coef @ cov @ coef))
        p_value = float(2 * stats.t.sf(abs(est / se), df)) if se else math.nan
        result.differences.append(
            GroupDifference(level, ref, est, se, df, est - tq * se, est + tq * se, p_value)
        )
    if doses:
        missing = [lv for lv in levels if lv not in doses]
        if missing:
            result.issues.append(
                make_issue(
                    "analysis-skipped",
                    analysis="dose trend",
                    reason=f"no dose for group(s) {', '.join(missing)}",
                )
            )
        elif len({doses[lv] for lv in levels}) < 2:
            result.issues.append(
                make_issue(
                    "analysis-skipped",
                    analysis="dose trend",
                    reason="every group has the same dose",
                )
            )
        else:
            mean_dose = sum(doses[lv] for lv in levels) / len(levels)
            weights = {lv: doses[lv] - mean_dose for lv in levels}
            with np.errstate(over="ignore", invalid="ignore"):
                coef = np.sum([weights[lv] * cells[lv] for lv in levels], axis=0)
                est = float(coef @ beta)
                se = math.sqrt(float(coef @ cov @ coef))
            if not (math.isfinite(est) and math.isfinite(se) and se > 0):
                # doses such as 1e308 or 1e-320: the contrast overflows or vanishes
                result.issues.append(
                    make_issue(
                        "analysis-skipped",
                        analysis="dose trend",
                        reason="the doses are too large or differ too little to weigh the "
                        "groups; give the doses in other units",
                    )
                )
            else:
                t = est / se
                result.trend = Trend(
                    {lv: doses[lv] for lv in levels},
                    weights,
                    est,
                    se,
                    df,
                    t,
                    float(2 * stats.t.sf(abs(t), df)),
                )
    return result
