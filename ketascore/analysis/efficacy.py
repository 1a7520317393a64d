"""The efficacy analyses of a trial from one long table: the MMRM over all visits and, at the
primary visit, the ANCOVA, the responder and remitter analyses and Hedges' g.

``run_efficacy`` runs what the options ask and the data allow; an analysis that cannot run
(no response flags, one group at the visit) leaves an ``analysis-skipped`` issue and the
others still run. ``to_contract`` writes the result as the JSON contract of ``ketascore
model`` (field names fixed for other tools).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ketascore.analysis.ancova import AncovaResult, fit_ancova
from ketascore.analysis.covariance import DESCRIPTIONS, SAS_TYPES
from ketascore.analysis.design import DesignError
from ketascore.analysis.effect import EffectSize, hedges_g
from ketascore.analysis.longdata import (
    LongTable,
    level_text,
    natural_levels,
    number,
    number_at,
)
from ketascore.analysis.mmrm import MMRMResult, MMRMSpec, fit_mmrm
from ketascore.analysis.responders import ResponderResult, responder_analysis
from ketascore.core.issues import Issue, make_issue

ANALYSES = ("mmrm", "ancova", "responders", "effect")

TRUE_TEXT = {"y", "yes", "true", "1", "1.0"}
FALSE_TEXT = {"n", "no", "false", "0", "0.0"}


class EfficacyOptions(BaseModel):
    """What to analyse. ``mmrm`` also names the table's columns (outcome, subject, visit,
    group) and the covariates and factors that the ANCOVA shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mmrm: MMRMSpec
    covariates: tuple[str, ...] = ()
    visit: str | None = None  # the primary visit (default: the last)
    analyses: tuple[str, ...] = ANALYSES
    response: str | None = None  # columns of true/false flags
    remission: str | None = None
    strata: str | None = None
    doses: dict[str, float] = Field(default_factory=dict)


@dataclass
class EfficacyReport:
    options: EfficacyOptions
    source: str
    mmrm: MMRMResult | None = None
    ancova: AncovaResult | None = None
    responders: list[ResponderResult] = field(default_factory=list)
    effects: list[EffectSize] = field(default_factory=list)
    visit: str | None = None
    issues: list[Issue] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)

    def all_issues(self) -> list[Issue]:
        out = list(self.issues)
        for part in (self.mmrm, self.ancova):
            if part is not None:
                out += part.issues
        for r in self.responders:
            out += r.issues
        return list(dict.fromkeys(out))


def flag(value: Any) -> bool | None:
    """A response flag cell as True/False (None when missing); raises ValueError otherwise."""
    if value is None or isinstance(value, bool):
        return value
    text = str(level_text(value)).strip().casefold()
    if text in TRUE_TEXT:
        return True
    if text in FALSE_TEXT:
        return False
    raise ValueError(f"{value!r} is not a yes/no flag (Y/N, true/false, 1/0)")


def run_efficacy(table: LongTable, options: EfficacyOptions) -> EfficacyReport:
    spec = options.mmrm
    report = EfficacyReport(options, table.source)
    unknown = set(options.analyses) - set(ANALYSES)
    if unknown:
        raise DesignError(f"unknown analyses {', '.join(sorted(unknown))}; choose from {ANALYSES}")
    if spec.group:
        table = _one_group_per_subject(table, spec, spec.group, report.issues)
    if "mmrm" in options.analyses:
        report.mmrm = fit_mmrm(table, spec)
    per_visit = [a for a in options.analyses if a != "mmrm"]
    if not per_visit:
        return report
    if not spec.group:
        report.issues.append(
            make_issue(
                "analysis-skipped",
                analysis=", ".join(per_visit),
                reason="no group to compare (name one with --by)",
            )
        )
        return report
    # the cells are read here, where their rows are the table's (the analyses below see the
    # rows of one visit)
    outcome = [number_at(table, spec.outcome, i, outcome=True) for i in range(table.n_rows)]
    visits = _visits(table, spec)
    if not visits:
        return report
    visit = options.visit or visits[-1]
    if visit not in visits:
        raise DesignError(
            f"--visit {visit}: no {spec.outcome} at that visit; visits: {', '.join(visits)}"
        )
    report.visit = visit
    keep = [level_text(v) == visit for v in table.column(spec.visit)]
    rows = [i for i, k in enumerate(keep) if k]
    for i in rows:
        if outcome[i] is not None:
            for covariate in options.covariates:
                number_at(table, covariate, i)
    at_visit = table.where(keep)
    if "ancova" in options.analyses:
        try:
            report.ancova = fit_ancova(
                at_visit,
                outcome=spec.outcome,
                group=spec.group,
                covariates=options.covariates,
                factors=[f for f in spec.factors if f != spec.visit],
                references=spec.references,
                doses=options.doses or None,
                alpha=spec.alpha,
                visit=visit,
            )
        except DesignError as exc:
            report.issues.append(make_issue("analysis-skipped", analysis="ANCOVA", reason=str(exc)))
    groups = natural_levels(level_text(v) for v in at_visit.column(spec.group))
    reference = spec.references.get(spec.group, groups[0] if groups else "")
    if "responders" in options.analyses:
        for name, column in (("response", options.response), ("remission", options.remission)):
            if column is None:
                continue
            result = _responders(
                at_visit, rows, spec, name, column, groups, reference, options, visit
            )
            if result is not None:
                report.responders.append(result)
        if options.response is None and options.remission is None:
            report.issues.append(
                make_issue(
                    "analysis-skipped",
                    analysis="responders",
                    reason="no response or remission flags (give --response COLUMN)",
                )
            )
    if "effect" in options.analyses:
        values: dict[str, list[float]] = {}
        for g, y in zip(at_visit.column(spec.group), at_visit.column(spec.outcome), strict=True):
            group, value = level_text(g), number(y)
            if group is not None and value is not None:
                values.setdefault(group, []).append(value)
        for g in groups:
            if g == reference:
                continue
            effect = hedges_g(
                values.get(g, []),
                values.get(reference, []),
                group=g,
                reference_name=reference,
                alpha=spec.alpha,
            )
            if effect is None:
                report.issues.append(
                    make_issue(
                        "analysis-skipped",
                        analysis=f"Hedges' g of {g} against {reference}",
                        reason="each group needs two values or more, not all equal",
                    )
                )
            else:
                report.effects.append(effect)
    return report


def _one_group_per_subject(
    table: LongTable, spec: MMRMSpec, by: str, issues: list[Issue]
) -> LongTable:
    """The table with no group for a subject whose group differs between its rows: such a
    subject is in no group and its rows are left out (each analysis says how many), with an
    ``ambiguous-group`` error naming the rows, as ``change --by`` treats a field that
    changes across a subject's visits."""
    subjects = [level_text(v) for v in table.column(spec.subject)]
    groups = [level_text(v) for v in table.column(by)]
    visits = [level_text(v) for v in table.column(spec.visit)]
    seen: dict[str | None, dict[str, int]] = {}  # subject -> group -> its first row
    for i, (subject, group) in enumerate(zip(subjects, groups, strict=True)):
        if group is not None:
            seen.setdefault(subject, {}).setdefault(group, i)
    torn = {s: firsts for s, firsts in seen.items() if len(firsts) > 1}
    if not torn:
        return table
    for subject, firsts in torn.items():
        issues.append(
            make_issue(
                "ambiguous-group",
                file=table.source or None,
                subject=subject,
                by=by,
                values=[repr(g) for g in firsts],
                visits=[f"{visits[i]}: {g} (row {i + 1})" for g, i in firsts.items()],
            )
        )
    column = [None if s in torn else g for s, g in zip(subjects, table.column(by), strict=True)]
    name = by if by in table.columns else table.find(by) or by
    return LongTable({**table.columns, name: column}, table.source, list(table.notes))


def _visits(table: LongTable, spec: MMRMSpec) -> list[str]:
    have = {
        level_text(v)
        for v, y in zip(table.column(spec.visit), table.column(spec.outcome), strict=True)
        if number(y) is not None
    }
    if spec.visit_order is not None:
        return [v for v in spec.visit_order if v in have]
    return natural_levels(v for v in have if v is not None)


def _responders(
    table: LongTable,
    rows: list[int],
    spec: MMRMSpec,
    name: str,
    column: str,
    groups: list[str],
    reference: str,
    options: EfficacyOptions,
    visit: str,
) -> ResponderResult | None:
    values: dict[str, list[tuple[bool, str | None]]] = {}
    assert spec.group is not None
    strata = table.column(options.strata) if options.strata else [None] * table.n_rows
    for i, (g, v) in enumerate(zip(table.column(spec.group), table.column(column), strict=True)):
        try:
            responded = flag(v)
        except ValueError as exc:
            raise DesignError(f"{column} at row {rows[i] + 1}: {exc}") from None
        group = level_text(g)
        if group is None or responded is None:
            continue
        values.setdefault(group, []).append((responded, level_text(strata[i])))
    if reference not in values:
        return None
    return responder_analysis(
        name,
        visit,
        values,
        [g for g in groups if g in values],
        reference,
        alpha=spec.alpha,
        strata_name=options.strata,
    )


# --------------------------------------------------------------------------------------
# the JSON contract


def to_contract(report: EfficacyReport) -> dict[str, Any]:
    """The JSON contract of ``ketascore model``: ``model``, ``n``, ``fit``, ``covariance``,
    ``fixed_effects``, ``type3``, ``lsmeans``, ``contrasts``, ``issues``, ``provenance``
    (field names fixed), then ``ancova``, ``responders`` and ``effect_sizes``."""
    options = report.options
    spec = options.mmrm
    m = report.mmrm
    out: dict[str, Any] = {
        "model": {
            "outcome": spec.outcome,
            "subject": spec.subject,
            "visit": spec.visit,
            "group": spec.group,
            "terms": [t if isinstance(t, str) else "*".join(t) for t in _term_names(spec)],
            "factors": list(spec.factors),
            "references": dict(spec.references),
            "covariance": spec.covariance,
            "covariance_description": DESCRIPTIONS[spec.covariance],
            "sas_type": SAS_TYPES[spec.covariance],
            "method": spec.method.upper(),
            "ddfm": spec.ddfm,
            "alpha": spec.alpha,
            "primary_visit": report.visit,
            "source": report.source,
        },
        "n": {
            "subjects": m.subjects if m else None,
            "observations_used": m.observations_used if m else None,
            "observations_read": m.observations_read if m else None,
        },
        "fit": {
            "neg2_log_likelihood": m.neg2_log_likelihood if m else None,
            "aic": m.aic if m else None,
            "bic": m.bic if m else None,
            "converged": m.converged if m else None,
            "aicc": m.aicc if m else None,
            "iterations": m.iterations if m else None,
        },
        "covariance": {
            "structure": spec.covariance,
            "parameters": [
                {"name": n, "estimate": e}
                for n, e in zip(m.covariance_names, m.covariance_estimates, strict=False)
            ]
            if m and m.fitted
            else [],
            "visits": m.visits if m else [],
            "matrix": m.covariance_matrix if m and m.fitted else [],
        },
        "fixed_effects": [asdict(f) for f in m.fixed_effects] if m else [],
        "type3": [asdict(t) for t in m.type3] if m else [],
        "lsmeans": [asdict(x) for x in m.lsmeans] if m else [],
        "contrasts": [{k: v for k, v in asdict(c).items() if k != "t"} for c in m.contrasts]
        if m
        else [],
        "issues": [i.as_dict() for i in report.all_issues()],
        "provenance": report.provenance,
    }
    out["ancova"] = _ancova_dict(report.ancova)
    out["responders"] = [_responder_dict(r, report.visit) for r in report.responders]
    out["effect_sizes"] = [{"visit": report.visit, **asdict(e)} for e in report.effects]
    cleaned: dict[str, Any] = _clean(out)
    return cleaned


def _term_names(spec: MMRMSpec) -> list[str]:
    return ["*".join(t) for t in spec.model_terms()]


def _ancova_dict(a: AncovaResult | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {
        "visit": a.visit,
        "outcome": a.outcome,
        "group": a.group,
        "terms": a.terms,
        "n": a.n,
        "df_error": a.df_error,
        "mse": a.mse,
        "r_squared": a.r_squared,
        "coefficients": a.coefficients,
        "type3": a.type3,
        "lsmeans": [asdict(x) for x in a.lsmeans],
        "contrasts": [asdict(x) for x in a.differences],
        "dose_trend": asdict(a.trend) if a.trend else None,
    }


def _responder_dict(r: ResponderResult, visit: str | None) -> dict[str, Any]:
    return {
        "outcome": r.outcome,
        "visit": visit,
        "rates": [
            {"group": x.group, "responders": x.responders, "n": x.n, "rate": x.rate}
            for x in r.rates
        ],
        "comparisons": [
            {
                "group": c.group,
                "reference": c.reference,
                "difference": c.difference,
                "newcombe": {"lower": c.newcombe[0], "upper": c.newcombe[1]},
                "miettinen_nurminen": {
                    "lower": c.miettinen_nurminen[0],
                    "upper": c.miettinen_nurminen[1],
                },
                "odds_ratio": c.odds_ratio,
                "odds_ratio_ci": (
                    {"lower": c.odds_ratio_ci[0], "upper": c.odds_ratio_ci[1]}
                    if c.odds_ratio_ci
                    else None
                ),
                "fisher_p": c.fisher_p,
                "cmh": c.cmh,
            }
            for c in r.comparisons
        ],
        "strata": r.strata,
    }


def _clean(value: Any) -> Any:
    """Plain JSON: numpy scalars as floats, NaN and infinity as null."""
    import math

    if isinstance(value, Mapping):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    try:
        number_ = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number_ if math.isfinite(number_) else None


def change_efficacy(
    change: Any,
    *,
    outcome: str = "change",
    covariates: tuple[str, ...] = ("baseline",),
    factors: tuple[str, ...] = (),
    terms: tuple[str, ...] = (),
    references: Mapping[str, str] | None = None,
    covariance: str = "un",
    method: str = "reml",
    ddfm: str = "satterthwaite",
    alpha: float = 0.05,
    visit: str | None = None,
    analyses: tuple[str, ...] = ANALYSES,
    strata: str | None = None,
    doses: Mapping[str, float] | None = None,
    visits: tuple[str, ...] | None = None,
) -> tuple[LongTable, EfficacyOptions]:
    """The long table and options that analyse ketascore's change from baseline (a
    ``ChangeReport``): ``outcome`` (change or value) by group (the report's ``by``, when it
    has one) and visit, adjusted for ``covariates`` (the baseline score by default), with
    response and remission as the report defines them."""
    from ketascore.analysis.longdata import from_change_report

    if outcome not in ("change", "value", "percent_change"):
        raise DesignError(
            f"--outcome {outcome}: with --scale the outcome is change, value or percent_change"
        )
    table = from_change_report(change)
    order = [v for v in change.visits if v in set(table.columns["visit"])]
    if visits is not None:
        unknown = [v for v in visits if v not in order]
        if unknown:
            raise DesignError(
                f"--visits: no change from baseline at {', '.join(unknown)}; visits: "
                f"{', '.join(order)}"
            )
        table = table.where([v in visits for v in table.columns["visit"]])
        order = list(visits)
    group = None
    if change.by:
        group = change.by
        table.columns[group] = table.columns.pop("group")
    else:
        table.columns.pop("group")
    for name in (*factors, *covariates, *([strata] if strata else [])):
        if name not in table.columns:
            table.columns[name] = _carried(change, name, table.columns["subject"])
    spec = MMRMSpec(
        outcome=outcome,
        subject="subject",
        visit="visit",
        group=group,
        terms=terms or _default_terms(group, "visit", covariates, factors),
        factors=factors,
        references=dict(references or {}),
        visit_order=tuple(order),
        covariance=covariance,
        method=method,
        ddfm=ddfm,
        alpha=alpha,
    )
    options = EfficacyOptions(
        mmrm=spec,
        covariates=covariates,
        visit=visit,
        analyses=analyses,
        response="response",
        remission="remission",
        strata=strata,
        doses=dict(doses or {}),
    )
    return table, options


def _carried(change: Any, name: str, subjects: list[Any]) -> list[Any]:
    """A field carried on each subject's records (site, sex, ...), for every row."""
    per_subject: dict[str, Any] = {}
    for result in change.analysed:
        value = result.extra.get(name)
        if value is not None and result.subject not in per_subject:
            per_subject[result.subject] = value
    if not per_subject:
        raise DesignError(
            f"{name!r} is neither a column of the change table nor a field carried on the records"
        )
    return [per_subject.get(s) for s in subjects]


def _default_terms(
    group: str | None, visit: str, covariates: tuple[str, ...], factors: tuple[str, ...]
) -> tuple[str, ...]:
    words = [group] if group else []
    words.append(visit)
    if group:
        words.append(f"{group}*{visit}")
    return (*words, *factors, *covariates)


def table_efficacy(
    table: LongTable,
    *,
    outcome: str | None = None,
    subject: str | None = None,
    visit_column: str | None = None,
    group: str | None = None,
    covariates: tuple[str, ...] | None = None,
    factors: tuple[str, ...] = (),
    terms: tuple[str, ...] = (),
    references: Mapping[str, str] | None = None,
    covariance: str = "un",
    method: str = "reml",
    ddfm: str = "satterthwaite",
    alpha: float = 0.05,
    visit: str | None = None,
    analyses: tuple[str, ...] = ANALYSES,
    response: str | None = None,
    remission: str | None = None,
    strata: str | None = None,
    doses: Mapping[str, float] | None = None,
    visit_order: tuple[str, ...] | None = None,
) -> EfficacyOptions:
    """Options for any long table, by column name. Unnamed columns default to ADaM BDS
    names when the table has them (USUBJID, AVISIT, CHG (else AVAL), BASE, TRT01P/TRTP/ARM,
    CRIT1FL), else to subject, visit, change, baseline, group."""
    subject = subject or table.find("USUBJID", "SUBJID", "subject")
    visit_column = visit_column or table.find("AVISIT", "VISIT", "visit")
    outcome = outcome or table.find("CHG", "change", "AVAL", "value")
    if group is None:
        group = table.find("TRT01P", "TRTP", "TRT01A", "TRTA", "ARM", "ARMCD", "group")
    missing = [
        what
        for what, name in (
            ("--subject", subject),
            ("--visit-column", visit_column),
            ("--outcome", outcome),
        )
        if name is None
    ]
    if missing:
        raise DesignError(
            f"name the column(s) with {', '.join(missing)} (columns: {', '.join(table.columns)})"
        )
    assert subject is not None and visit_column is not None and outcome is not None
    if covariates is None:
        base = table.find("BASE", "baseline")
        covariates = (base,) if base is not None and base != outcome else ()
    if response is None and "responders" in analyses:
        response = table.find("CRIT1FL", "response")
    if remission is None and "responders" in analyses:
        remission = table.find("remission")
    spec = MMRMSpec(
        outcome=outcome,
        subject=subject,
        visit=visit_column,
        group=group,
        terms=terms or _default_terms(group, visit_column, covariates, factors),
        factors=factors,
        references=dict(references or {}),
        visit_order=visit_order,
        covariance=covariance,
        method=method,
        ddfm=ddfm,
        alpha=alpha,
    )
    return EfficacyOptions(
        mmrm=spec,
        covariates=covariates,
        visit=visit,
        analyses=analyses,
        response=response,
        remission=remission,
        strata=strata,
        doses=dict(doses or {}),
    )
