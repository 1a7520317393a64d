"""Mixed model for repeated measures (MMRM), as SAS PROC MIXED fits it.

    PROC MIXED METHOD=REML;
      CLASS group visit factors subject;
      MODEL outcome = terms / DDFM=SATTERTHWAITE SOLUTION;
      REPEATED visit / SUBJECT=subject TYPE=UN;
      LSMEANS group*visit / DIFF CL;

The fixed effects are estimated by generalized least squares; the residual covariance of each
subject's visits (unstructured, compound symmetry, AR(1), Toeplitz and their heterogeneous
variants) by REML (default) or ML, with Newton-Raphson on the exact gradient and Hessian.
Inference uses Satterthwaite's degrees of freedom (Fai & Cornelius 1996 for F tests, as SAS),
from the observed Hessian of the covariance parameters. Observations with a missing outcome
are not used (as SAS drops them); a subject contributes the visits it has.

Validated against SAS PROC MIXED output on the public ``fev_data`` (tests/analysis).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats  # type: ignore[import-untyped,unused-ignore]

from ketascore.analysis.change import level_spellings
from ketascore.analysis.covariance import Structure
from ketascore.analysis.design import (
    Design,
    DesignError,
    Term,
    Variable,
    build_design,
    exact_fit,
    fits_exactly,
    term_name,
)
from ketascore.analysis.likelihood import Evaluation, Likelihood, NotPositiveDefinite, Pattern
from ketascore.analysis.longdata import LongTable, level_text, natural_levels, number, number_at
from ketascore.core.issues import Issue, make_issue

Array = NDArray[np.float64]


class MMRMSpec(BaseModel):
    """What to fit: the options of ``ketascore model`` and of SAS's PROC MIXED statements."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: str
    subject: str
    visit: str
    group: str | None = None
    terms: tuple[str, ...] = ()  # SAS-style: "group", "visit", "group*visit", "baseline"
    factors: tuple[str, ...] = ()  # class variables other than group and visit
    references: dict[str, str] = Field(default_factory=dict)  # class variable -> level
    visit_order: tuple[str, ...] | None = None
    covariance: Literal["un", "cs", "csh", "ar1", "arh1", "toep", "toeph"] = "un"
    method: Literal["reml", "ml"] = "reml"
    ddfm: Literal["satterthwaite", "kenward-roger"] = "satterthwaite"
    alpha: float = Field(0.05, gt=0, lt=1)
    max_iterations: int = 100

    def model_terms(self) -> list[Term]:
        from ketascore.analysis.design import parse_terms

        if self.terms and self.terms != ("1",):
            return parse_terms(list(self.terms))
        if self.terms == ("1",):  # intercept only
            return []
        words = [self.group] if self.group else []
        words.append(self.visit)
        if self.group:
            words.append(f"{self.group}*{self.visit}")
        return parse_terms(words)


@dataclass
class FixedEffect:
    term: str
    levels: dict[str, str]
    estimate: float
    se: float
    df: float | None
    t: float
    p: float | None


@dataclass
class Type3:
    term: str
    num_df: int
    den_df: float | None
    f: float
    p: float | None


@dataclass
class LSMean:
    visit: str | None
    group: str | None
    estimate: float
    se: float
    df: float | None
    lower: float | None
    upper: float | None


@dataclass
class Contrast:
    visit: str | None
    group: str
    reference: str
    estimate: float
    se: float
    df: float | None
    lower: float | None
    upper: float | None
    p: float | None
    t: float | None = None


@dataclass
class MMRMResult:
    spec: MMRMSpec
    observations_read: int
    observations_used: int = 0
    subjects: int = 0
    visits: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    converged: bool = False
    iterations: int = 0
    neg2_log_likelihood: float | None = None
    aic: float | None = None
    aicc: float | None = None
    bic: float | None = None
    covariance_names: list[str] = field(default_factory=list)
    covariance_estimates: list[float] = field(default_factory=list)
    covariance_matrix: list[list[float]] = field(default_factory=list)
    fixed_effects: list[FixedEffect] = field(default_factory=list)
    type3: list[Type3] = field(default_factory=list)
    lsmeans: list[LSMean] = field(default_factory=list)
    contrasts: list[Contrast] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)  # why -> rows

    @property
    def fitted(self) -> bool:
        return self.converged and self.neg2_log_likelihood is not None


# --------------------------------------------------------------------------------------
# preparing the data


@dataclass
class Prepared:
    design: Design
    patterns: list[Pattern]
    visits: list[str]
    groups: list[str]
    n_used: int
    n_subjects: int
    subjects_read: int  # subjects among all rows read (SAS's "Subjects", used by its BIC)


def class_levels(
    table: LongTable, used: Sequence[bool], var: str, order: Sequence[str] | None = None
) -> list[str]:
    values = [level_text(v) for v, ok in zip(table.column(var), used, strict=True) if ok]
    present = set(v for v in values if v is not None)
    if order is not None:
        return [v for v in order if v in present]
    return natural_levels(present)


def prepare(
    table: LongTable, spec: MMRMSpec, issues: list[Issue]
) -> tuple[Prepared, dict[str, int]]:
    """The rows used, the design and the subjects' missing-data patterns. Rows lacking the
    outcome are dropped silently (as SAS drops them); rows lacking a covariate or factor are
    dropped with an issue that counts them."""
    terms = spec.model_terms()
    variables = list(dict.fromkeys(v for t in terms for v in t))
    class_names = {spec.visit, *spec.factors, *([spec.group] if spec.group else [])}
    for role, name in (("outcome", spec.outcome), ("subject", spec.subject)):
        if name.casefold() in {v.casefold() for v in variables}:
            raise DesignError(
                f"the {role} {name!r} is also named as an explanatory variable of the model; "
                "leave it out of --terms, --covariate and --factor"
            )
    if spec.group and spec.group not in variables:
        raise DesignError(
            f"the model's terms do not include the group variable {spec.group!r} (add it to "
            "--terms)"
        )
    for var in (spec.subject, spec.visit, spec.outcome, *variables):
        table.column(var)  # raises TableError naming the missing column
    n = table.n_rows
    outcome = [number_at(table, spec.outcome, i, outcome=True) for i in range(n)]
    used = [o is not None for o in outcome]
    for var in (spec.subject, spec.visit):
        missing = [i for i in range(n) if used[i] and level_text(table.column(var)[i]) is None]
        if missing:
            raise DesignError(
                f"{len(missing)} row(s) with an outcome have no {var!r} (first at row "
                f"{missing[0] + 1}); every row needs a subject and a visit"
            )
    dropped: dict[str, int] = {}
    if no_outcome := used.count(False):
        dropped[f"no {spec.outcome}"] = no_outcome
    if spec.visit_order is not None:  # the visits analysed: rows at others are not used
        wanted = set(spec.visit_order)
        visit_column = table.column(spec.visit)
        other = [i for i in range(n) if used[i] and level_text(visit_column[i]) not in wanted]
        for i in other:
            used[i] = False
        if other:
            dropped["other visits"] = len(other)
    for var in variables:
        column = table.column(var)
        lacking = 0
        for i in range(n):
            if not used[i]:
                continue
            if var in class_names:
                bad = level_text(column[i]) is None
            else:
                bad = number_at(table, var, i) is None
            if bad:
                used[i] = False
                lacking += 1
        if lacking:
            dropped[f"no {var}"] = lacking
            issues.append(make_issue("model-rows-dropped", count=lacking, variable=var))
    if not any(used):
        raise DesignError(f"no row has both an outcome ({spec.outcome}) and every model variable")
    visits = class_levels(table, used, spec.visit, spec.visit_order)
    if spec.visit_order is not None:
        for v in spec.visit_order:
            if v not in visits:
                issues.append(make_issue("model-visit-empty", visit=v))
    groups = class_levels(table, used, spec.group) if spec.group else []
    if spec.group and len(groups) < 2:
        raise DesignError(
            f"the group variable {spec.group!r} has "
            + (f"one level ({groups[0]!r})" if groups else "no levels")
            + " among the rows used; a comparison needs two groups or more"
        )
    class_vars: dict[str, Variable] = {}
    for var in variables:
        if var not in class_names:
            continue
        levels = (
            visits
            if var == spec.visit
            else groups
            if var == spec.group
            else class_levels(table, used, var)
        )
        if var != spec.visit and var != spec.group and len(levels) < 2:
            issues.append(make_issue("model-one-level", variable=var, level=levels[0]))
        issues.extend(level_spellings(var, levels))
        reference = spec.references.get(var, levels[0])
        if reference not in levels:
            raise DesignError(
                f"reference level {reference!r} of {var!r} is not among its levels "
                f"({', '.join(levels)})"
            )
        class_vars[var] = Variable(var, tuple(levels), reference)
    rows = [i for i in range(n) if used[i]]
    data: dict[str, list[Any]] = {}
    for var in variables:
        column = table.column(var)
        if var in class_vars:
            data[var] = [level_text(column[i]) for i in rows]
        else:
            data[var] = [number(column[i]) for i in rows]
    design = build_design(data, terms, class_vars, n=len(rows))
    singular = design.unexpected_aliases()
    if singular:
        issues.append(
            make_issue("model-singular", columns=[c.label for c in singular], count=len(singular))
        )
    x = design.matrix
    subjects = [level_text(table.column(spec.subject)[i]) or "" for i in rows]
    visit_of = [level_text(table.column(spec.visit)[i]) or "" for i in rows]
    index = {v: k for k, v in enumerate(visits)}
    by_subject: dict[str, list[int]] = {}
    for pos, s in enumerate(subjects):
        by_subject.setdefault(s, []).append(pos)
    group_of = data[spec.group] if spec.group else None
    patterns: dict[tuple[int, ...], list[tuple[str, list[int]]]] = {}
    for s, positions in by_subject.items():
        positions.sort(key=lambda p: index[visit_of[p]])
        if group_of is not None:
            start = positions[0]
            moved = next((k for k in positions if group_of[k] != group_of[start]), None)
            if moved is not None:
                raise DesignError(
                    f"subject {s} is in group {group_of[start]!r} at visit {visit_of[start]} "
                    f"and in group {group_of[moved]!r} at visit {visit_of[moved]} "
                    f"(row {rows[moved] + 1}); the group ({spec.group}) is the subject's: "
                    "correct the table"
                )
        seen = [index[visit_of[p]] for p in positions]
        if len(set(seen)) != len(seen):
            twice = next(visit_of[p] for p in positions if seen.count(index[visit_of[p]]) > 1)
            raise DesignError(
                f"subject {s} has more than one row at visit {twice}; an MMRM takes one "
                "value per subject and visit"
            )
        patterns.setdefault(tuple(seen), []).append((s, positions))
    y = np.array([outcome[i] for i in rows], dtype=float)
    built = []
    for key in sorted(patterns):
        members = patterns[key]
        at = np.array([p for _, ps in members for p in ps]).reshape(len(members), len(key))
        built.append(Pattern(np.array(key, dtype=int), x[at], y[at], [s for s, _ in members]))
    read = {level_text(v) for v in table.column(spec.subject)} - {None}
    prepared = Prepared(design, built, visits, groups, len(rows), len(by_subject), len(read))
    return prepared, dropped


# --------------------------------------------------------------------------------------
# fitting


@dataclass
class Fit:
    theta: Array
    evaluation: Evaluation
    converged: bool
    iterations: int
    reason: str = ""


def ols_residuals(patterns: list[Pattern]) -> tuple[Array, Array, Array]:
    """The outcomes, the design and the ordinary least squares residuals of every
    observation."""
    xs = np.concatenate([p.x.reshape(-1, p.x.shape[2]) for p in patterns])
    ys = np.concatenate([p.y.reshape(-1) for p in patterns])
    beta = np.linalg.lstsq(xs, ys, rcond=None)[0]
    return ys, xs, ys - xs @ beta


def residual_variance(ys: Array, xs: Array, r: Array) -> float:
    """The ordinary least squares residual variance (SAS's starting value, sigma^2 I), from
    ``ols_residuals``."""
    dof = max(len(ys) - int(np.linalg.matrix_rank(xs)), 1)
    return max(float(r @ r) / dof, _least_variance(ys))


def _least_variance(ys: Array) -> float:
    """The least variance a start takes: small beside the outcome's square, whatever the
    outcome's units (an absolute floor made an outcome in units of 1e-12 fail to converge)."""
    return 1e-8 * (float(np.mean(ys * ys)) or 1.0)


def moment_start(patterns: list[Pattern], t: int) -> Array:
    """A positive definite covariance from the OLS residuals, pairwise by visit."""
    xs = np.concatenate([p.x.reshape(-1, p.x.shape[2]) for p in patterns])
    ys = np.concatenate([p.y.reshape(-1) for p in patterns])
    beta = np.linalg.lstsq(xs, ys, rcond=None)[0]
    sums = np.zeros((t, t))
    counts = np.zeros((t, t))
    for p in patterns:
        r = p.y - np.einsum("nap,p->na", p.x, beta)
        idx = p.visits
        sums[np.ix_(idx, idx)] += np.einsum("na,nb->ab", r, r)
        counts[np.ix_(idx, idx)] += r.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    diag = np.diag(cov).copy()
    least = _least_variance(ys)
    floor = max(float(np.mean(diag[diag > 0])) if np.any(diag > 0) else least / 1e-8, least)
    diag = np.where(diag > 1e-8 * floor, diag, floor)
    np.fill_diagonal(cov, diag)
    for shrink in (1.0, 0.8, 0.5, 0.2, 0.0):
        trial = shrink * cov + (1 - shrink) * np.diag(diag)
        np.fill_diagonal(trial, diag)
        if np.all(np.linalg.eigvalsh(trial) > 1e-8 * floor):
            return np.asarray(trial)
    return np.diag(diag)


def newton(lik: Likelihood, start: Array, max_iterations: int, tolerance: float = 1e-8) -> Fit:
    """Minimize -2 log L as SAS PROC MIXED does: one Fisher-scoring step, then
    Newton-Raphson, halving a step that leaves the parameter space or does not lower the
    objective, with a ridge when the Hessian is not positive definite; converged when the
    relative Hessian criterion g'H^-1g / |f| falls below ``tolerance`` (SAS's 1e-8). From
    SAS's starting values this retraces SAS's iterations, so the estimates agree with SAS's
    to the digits it prints."""
    theta = np.array(start, dtype=float)
    try:
        current = lik.evaluate(theta, order=2, expected=True)
    except NotPositiveDefinite as exc:
        return Fit(theta, Evaluation(math.nan), False, 0, f"the starting values failed: {exc}")
    for iteration in range(1, max_iterations + 1):
        g = current.gradient
        h = current.hessian
        assert g is not None and h is not None
        step = _newton_step(g, h)
        if step is None:
            return Fit(theta, current, False, iteration, "the Hessian could not be inverted")
        moved = False
        factor = 1.0
        for _ in range(50):
            trial = theta + factor * step
            try:
                candidate = lik.evaluate(trial, order=2)
            except NotPositiveDefinite:
                factor /= 2
                continue
            if candidate.value <= current.value + 1e-11 * abs(current.value):
                theta, current, moved = trial, candidate, True
                break
            factor /= 2
        if not moved:
            return Fit(theta, current, False, iteration, "no step improved the fit")
        criterion = _criterion(current)
        if criterion is not None and criterion < tolerance:
            return Fit(theta, current, True, iteration)
    return Fit(theta, current, False, max_iterations, "the iteration limit was reached")


def positive_definite(h: Array) -> bool:
    """Whether the Hessian is positive definite, judged on its correlation form (each
    parameter in units of its own curvature): variances of 1e11 beside a correlation make a
    Hessian whose eigenvalues span 24 orders of magnitude, and rounding then makes the least
    of them negative."""
    d = np.diag(h)
    if not np.all(d > 0):
        return False
    return bool(np.all(np.linalg.eigvalsh(h / np.sqrt(np.outer(d, d))) > 0))


def _newton_step(g: Array, h: Array) -> Array | None:
    ridge = 0.0
    scale = max(1e-8, float(np.max(np.abs(np.diag(h)))))
    for _ in range(60):
        try:
            chol = np.linalg.cholesky(h + ridge * np.eye(len(g)))
        except np.linalg.LinAlgError:
            ridge = max(4 * ridge, 1e-6 * scale)
            continue
        return np.asarray(-np.linalg.solve(chol.T, np.linalg.solve(chol, g)))
    return None


def _criterion(ev: Evaluation) -> float | None:
    """SAS's relative Hessian criterion g'H^-1g / |f| (None when H is not positive
    definite)."""
    g, h = ev.gradient, ev.hessian
    assert g is not None and h is not None
    try:
        chol = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    z = np.linalg.solve(chol, g)
    return float(z @ z) / max(abs(ev.value), 1e-300)


# --------------------------------------------------------------------------------------
# inference


class Inference:
    """Estimates, standard errors and degrees of freedom of linear functions of the fixed
    effects: Satterthwaite's (Fai & Cornelius 1996 for F tests, as SAS), or Kenward and
    Roger's (1997), which also inflates the covariance of the estimates for the uncertainty
    of the covariance parameters (SAS DDFM=KR)."""

    def __init__(self, ev: Evaluation, design: Design, ddfm: str = "satterthwaite") -> None:
        assert ev.beta is not None and ev.cov_beta is not None and ev.hessian is not None
        assert ev.dcov is not None
        self.beta = ev.beta
        self.phi = ev.cov_beta  # (X'V^-1X)^-1
        self.design = design
        self.kenward_roger = ddfm == "kenward-roger"
        # asymptotic covariance of the covariance parameters: 2 H^-1 of -2 log L
        self.theta_cov = 2.0 * np.linalg.inv(ev.hessian)
        self.b = ev.dcov  # B_k = -P_k of Kenward & Roger
        # d C / d theta_k = C B_k C
        self.dcov = np.einsum("pq,kqr,rs->kps", self.phi, ev.dcov, self.phi, optimize=True)
        self.cov = self.phi
        if self.kenward_roger:
            assert ev.q_kl is not None and ev.r_kl is not None
            w = self.theta_cov
            inner = (
                np.einsum("ij,ijpq->pq", w, ev.q_kl)
                - np.einsum("ij,ipr,rs,jsq->pq", w, self.b, self.phi, self.b, optimize=True)
                - 0.25 * np.einsum("ij,ijpq->pq", w, ev.r_kl)
            )
            adjusted = self.phi + 2.0 * self.phi @ inner @ self.phi
            self.cov = (adjusted + adjusted.T) / 2

    def variance(self, coef: Array) -> float:
        return float(coef @ self.cov @ coef)

    def df_one(self, coef: Array) -> float | None:
        if self.kenward_roger:
            return self._kr(coef.reshape(1, -1))[0]
        var = float(coef @ self.phi @ coef)
        g = np.einsum("p,kpq,q->k", coef, self.dcov, coef)
        denom = float(g @ self.theta_cov @ g)
        if denom <= 0 or var <= 0:
            return None
        return 2.0 * var * var / denom

    def _kr(self, coef: Array) -> tuple[float | None, float]:
        """Kenward-Roger denominator DF and F scale (lambda) for the rows of ``coef``."""
        rank = int(np.linalg.matrix_rank(coef))
        middle = coef @ self.phi @ coef.T
        theta = coef.T @ np.linalg.pinv(middle) @ coef
        # -Theta Phi P Phi; contracted pairwise (optimize): term by term it took minutes for a
        # model of 30 fixed effects and 36 covariance parameters
        m = np.einsum("pq,qr,krs,st->kpt", theta, self.phi, self.b, self.phi, optimize=True)
        traces = np.einsum("kpp->k", m)
        w = self.theta_cov
        a1 = float(traces @ w @ traces)
        a2 = float(np.einsum("ij,ipq,jqp->", w, m, m, optimize=True))
        q = rank
        b = (a1 + 6 * a2) / (2 * q)
        g = ((q + 1) * a1 - (q + 4) * a2) / ((q + 2) * a2) if a2 > 0 else 0.0
        denom = 3 * q + 2 * (1 - g)
        c1, c2, c3 = g / denom, (q - g) / denom, (q + 2 - g) / denom
        e_star = 1 / (1 - a2 / q)
        v_star = (2 / q) * (1 + c1 * b) / ((1 - c2 * b) ** 2 * (1 - c3 * b))
        rho = v_star / (2 * e_star**2)
        if q * rho - 1 <= 0:
            return None, 1.0
        df = 4 + (q + 2) / (q * rho - 1)
        scale = df / (e_star * (df - 2))
        return df, scale

    def estimate(
        self, coef: Array, alpha: float
    ) -> tuple[float, float, float | None, float | None, float | None, float | None]:
        """estimate, se, df, lower, upper, p (two-sided t test of 0)."""
        est = float(coef @ self.beta)
        se = math.sqrt(max(self.variance(coef), 0.0))
        df = self.df_one(coef)
        if df is None or se == 0:
            return est, se, df, None, None, None
        q = float(stats.t.ppf(1 - alpha / 2, df))
        p = float(2 * stats.t.sf(abs(est / se), df))
        return est, se, df, est - q * se, est + q * se, p

    def f_test(self, coef: Array) -> tuple[int, float | None, float, float | None]:
        """num df, den df, F, p for the hypothesis L beta = 0 (num df 0 when L has no
        row: a term whose only level is the reference, a visit or factor with one level)."""
        if coef.shape[0] == 0:
            return 0, None, math.nan, None
        lcl = coef @ self.cov @ coef.T
        vals, vecs = np.linalg.eigh((lcl + lcl.T) / 2)
        # the rank relative to the largest variance, whatever the outcome's and covariates'
        # units (an outcome in units of 1e-8 has variances of 1e-16 and more)
        keep = vals > 1e-10 * float(np.max(vals))
        rank = int(np.sum(keep))
        if rank == 0:
            return 0, None, math.nan, None
        est = coef @ self.beta
        proj = vecs[:, keep].T @ est
        f = float(np.sum(proj**2 / vals[keep])) / rank
        if self.kenward_roger:
            den, scale = self._kr(vecs[:, keep].T @ coef)
            if den is None:
                return rank, None, f, None
            f *= scale
            return rank, den, f, float(stats.f.sf(f, rank, den))
        # Satterthwaite for F tests (Fai & Cornelius 1996), on the eigenvectors of L C L'
        rotated = vecs[:, keep].T @ coef
        nus = []
        for row, val in zip(rotated, vals[keep], strict=True):
            g = np.einsum("p,kpq,q->k", row, self.dcov, row)
            denom = float(g @ self.theta_cov @ g)
            nus.append(2.0 * val * val / denom if denom > 0 else math.inf)
        e_sum = sum(nu / (nu - 2) for nu in nus if nu > 2)
        den = 2.0 * e_sum / (e_sum - rank) if e_sum > rank else min(nus) if nus else None
        if den is None or not math.isfinite(den):
            return rank, None, f, None
        return rank, den, f, float(stats.f.sf(f, rank, den))


def fit_mmrm(table: LongTable, spec: MMRMSpec) -> MMRMResult:
    """Fit the MMRM of ``spec`` to ``table``. Problems of the data that stop the fit raise
    DesignError (or TableError); problems of the fit are issues of the result, which then
    holds no estimates."""
    result = MMRMResult(spec, observations_read=table.n_rows)
    prepared, dropped = prepare(table, spec, result.issues)
    result.dropped = dropped
    result.observations_used = prepared.n_used
    result.subjects = prepared.n_subjects
    result.visits = prepared.visits
    result.groups = prepared.groups
    design = prepared.design
    structure = Structure(spec.covariance, len(prepared.visits))
    result.covariance_names = structure.names
    if spec.covariance in ("ar1", "arh1", "toep", "toeph", "cs", "csh") and structure.t < 2:
        raise DesignError(f"covariance {spec.covariance} needs two visits or more")
    lik = Likelihood(prepared.patterns, structure, spec.method)
    p = design.matrix.shape[1]
    if spec.method == "reml" and prepared.n_used <= p:
        raise DesignError(
            f"{prepared.n_used} observations for {p} fixed effects: too few to fit the model"
        )
    ys, xs, resid = ols_residuals(prepared.patterns)
    if fits_exactly(ys, resid):  # no variance to estimate: no fit, no numbers
        result.issues.append(make_issue("model-exact-fit", reason=exact_fit(spec.outcome)))
        return result
    fit = newton(lik, structure.initial(residual_variance(ys, xs, resid)), spec.max_iterations)
    if not fit.converged:  # SAS's start failed: try again from the visits' moments
        second = newton(
            lik, structure.start(moment_start(prepared.patterns, structure.t)), spec.max_iterations
        )
        if second.converged:
            fit = second
    result.iterations = fit.iterations
    if not fit.converged:
        result.issues.append(
            make_issue(
                "model-not-converged",
                covariance=spec.covariance,
                iterations=fit.iterations,
                reason=fit.reason,
            )
        )
        return result
    ev = fit.evaluation
    assert ev.hessian is not None
    if not positive_definite(ev.hessian):
        result.issues.append(
            make_issue("model-not-converged", "hessian", covariance=spec.covariance)
        )
        return result
    result.converged = True
    result.neg2_log_likelihood = ev.value
    q = structure.size
    k = q + (p if spec.method == "ml" else 0)
    n_eff = prepared.n_used - (p if spec.method == "reml" else 0)
    result.aic = ev.value + 2 * k
    result.aicc = ev.value + 2 * k * n_eff / (n_eff - k - 1) if n_eff - k - 1 > 0 else None
    result.bic = ev.value + k * math.log(prepared.subjects_read)
    result.covariance_estimates = [float(v) for v in fit.theta]
    result.covariance_matrix = structure.matrix(fit.theta).tolist()
    _boundary(result, structure, fit.theta)
    if spec.ddfm == "kenward-roger":
        ev = lik.evaluate(fit.theta, order=2, kenward_roger=True)
    inference = Inference(ev, design, spec.ddfm)
    _fixed_effects(result, design, inference, spec.alpha)
    _type3(result, design, inference)
    _lsmeans(result, design, inference, spec)
    return result


def _boundary(result: MMRMResult, structure: Structure, theta: Array) -> None:
    names = structure.names
    for name, value, is_corr in zip(names, theta, structure.is_correlation(), strict=True):
        if is_corr and abs(value) > 0.999:
            result.issues.append(make_issue("model-boundary", parameter=name, value=float(value)))


def _fixed_effects(result: MMRMResult, design: Design, inf: Inference, alpha: float) -> None:
    for j, column in enumerate(design.kept_columns):
        coef = np.zeros(len(inf.beta))
        coef[j] = 1.0
        est, se, df, _, _, p = inf.estimate(coef, alpha)
        result.fixed_effects.append(
            FixedEffect(
                term_name(column.term) if column.term else "Intercept",
                dict(column.levels),
                est,
                se,
                df,
                est / se if se else math.nan,
                p,
            )
        )


def _type3(result: MMRMResult, design: Design, inf: Inference) -> None:
    hypotheses, skipped = design.type3_hypotheses()
    if skipped:
        result.issues.append(make_issue("model-not-hierarchical", terms=skipped))
    for term, coef in hypotheses.items():
        num, den, f, p = inf.f_test(coef)
        if num == 0:
            continue
        result.type3.append(Type3(term, num, den, f, p))


def _lsmeans(result: MMRMResult, design: Design, inf: Inference, spec: MMRMSpec) -> None:
    groups: Sequence[str | None] = result.groups or [None]
    visits: Sequence[str | None] = result.visits if spec.visit in design.variables else [None]
    for visit in visits:
        cells: dict[str | None, Array] = {}
        for group in groups:
            at: dict[str, str] = {spec.visit: visit} if visit is not None else {}
            if group is not None and spec.group:
                at[spec.group] = group
            coef = design.reduce(design.lsmean_coefficients(at))
            if coef is None:
                result.issues.append(
                    make_issue("model-not-estimable", visit=visit, group=group or "(all)")
                )
                continue
            cells[group] = coef
            est, se, df, lower, upper, _ = inf.estimate(coef, spec.alpha)
            result.lsmeans.append(LSMean(visit, group, est, se, df, lower, upper))
        if not spec.group:
            continue
        reference = spec.references.get(spec.group, result.groups[0])
        if reference not in cells:
            continue
        for group in result.groups:
            if group == reference or group not in cells:
                continue
            coef = cells[group] - cells[reference]
            est, se, df, lower, upper, p = inf.estimate(coef, spec.alpha)
            result.contrasts.append(
                Contrast(
                    visit, group, reference, est, se, df, lower, upper, p, est / se if se else None
                )
            )
