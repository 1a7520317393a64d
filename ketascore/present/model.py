"""The efficacy tables of ``ketascore model`` as rows of text: one place that decides what
the terminal (rich) and the HTML report show."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ketascore.analysis.efficacy import EfficacyReport


@dataclass
class TextTable:
    title: str
    columns: list[str]
    rows: list[list[str]]
    note: str = ""


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return str(value)
    return f"{float(value):.{digits}f}"


def fmt_p(value: float | None) -> str:
    """p as SAS prints it: four decimals, <.0001 below."""
    if value is None or not math.isfinite(value):
        return "–"
    return "<.0001" if value < 0.0001 else f"{value:.4f}"


def ci(lower: Any, upper: Any, digits: int = 2) -> str:
    if lower is None or upper is None:
        return "–"
    return f"{fmt(lower, digits)} to {fmt(upper, digits)}"


def model_title(report: EfficacyReport) -> str:
    spec = report.options.mmrm
    terms = " ".join("*".join(t) for t in spec.model_terms()) or "(intercept)"
    return (
        f"MMRM of {spec.outcome} = {terms}; {spec.covariance.upper()} covariance, "
        f"{spec.method.upper()}, "
        + ("Kenward-Roger" if spec.ddfm == "kenward-roger" else "Satterthwaite")
        + " DF"
    )


def efficacy_tables(report: EfficacyReport, digits: int = 2) -> list[TextTable]:
    tables: list[TextTable] = []
    spec = report.options.mmrm
    level = f"{round(100 * (1 - spec.alpha))}%"
    m = report.mmrm
    if m is not None and m.fitted:
        n = (
            f"{m.subjects} subjects, {m.observations_used} of {m.observations_read} observations"
            f" used; -2 {'Res ' if spec.method == 'reml' else ''}Log Likelihood "
            f"{fmt(m.neg2_log_likelihood, 4)}, AIC {fmt(m.aic, 1)}, BIC {fmt(m.bic, 1)}"
        )
        rows = [
            [
                x.visit or "",
                x.group or "",
                fmt(x.estimate, digits),
                fmt(x.se, digits),
                fmt(x.df, 1),
                ci(x.lower, x.upper, digits),
            ]
            for x in m.lsmeans
        ]
        tables.append(
            TextTable(
                model_title(report) + ": LS means",
                ["Visit", "Group", "LS mean", "SE", "DF", f"{level} CI"],
                rows,
                n,
            )
        )
        if m.contrasts:
            rows = [
                [
                    c.visit or "",
                    f"{c.group} - {c.reference}",
                    fmt(c.estimate, digits),
                    fmt(c.se, digits),
                    fmt(c.df, 1),
                    ci(c.lower, c.upper, digits),
                    fmt_p(c.p),
                ]
                for c in m.contrasts
            ]
            tables.append(
                TextTable(
                    "MMRM: differences in LS means",
                    ["Visit", "Comparison", "Difference", "SE", "DF", f"{level} CI", "p"],
                    rows,
                )
            )
        if m.type3:
            rows = [
                [t.term, str(t.num_df), fmt(t.den_df, 1), fmt(t.f, 2), fmt_p(t.p)] for t in m.type3
            ]
            tables.append(
                TextTable(
                    "MMRM: Type 3 tests of fixed effects",
                    ["Effect", "Num DF", "Den DF", "F", "p"],
                    rows,
                )
            )
        rows = [
            [name, fmt(value, 4)]
            for name, value in zip(m.covariance_names, m.covariance_estimates, strict=False)
        ]
        tables.append(
            TextTable(
                "MMRM: covariance parameters",
                ["Parameter", "Estimate"],
                rows,
                "Visits in order: " + ", ".join(m.visits),
            )
        )
    a = report.ancova
    if a is not None:
        rows = [
            [
                x.group,
                str(x.n),
                fmt(x.estimate, digits),
                fmt(x.se, digits),
                ci(x.lower, x.upper, digits),
                "",
                "",
            ]
            for x in a.lsmeans
        ]
        rows += [
            [
                f"{d.group} - {d.reference}",
                "",
                fmt(d.estimate, digits),
                fmt(d.se, digits),
                ci(d.lower, d.upper, digits),
                fmt(d.df, 0),
                fmt_p(d.p),
            ]
            for d in a.differences
        ]
        note = f"{a.n} subjects; residual DF {a.df_error}, MSE {fmt(a.mse, 4)}"
        if a.trend is not None:
            note += (
                f"; linear dose trend: estimate {fmt(a.trend.estimate, digits)} "
                f"(SE {fmt(a.trend.se, digits)}), t = {fmt(a.trend.t, 2)}, p = {fmt_p(a.trend.p)}"
            )
        tables.append(
            TextTable(
                f"ANCOVA of {a.outcome} at {a.visit}: " + " + ".join(a.terms),
                ["Group", "n", "LS mean", "SE", f"{level} CI", "DF", "p"],
                rows,
                note,
            )
        )
    for r in report.responders:
        rows = [
            [
                x.group,
                f"{x.responders}/{x.n}",
                fmt(100 * x.rate, 1) + "%" if x.rate is not None else "–",
            ]
            + [""] * 5
            for x in r.rates
        ]
        for c in r.comparisons:
            cells = [
                f"{c.group} - {c.reference}",
                "",
                fmt(100 * c.difference, 1) + "%",
                ci(100 * c.newcombe[0], 100 * c.newcombe[1], 1),
                ci(100 * c.miettinen_nurminen[0], 100 * c.miettinen_nurminen[1], 1),
                fmt(c.odds_ratio, 2)
                + (
                    f" ({ci(c.odds_ratio_ci[0], c.odds_ratio_ci[1], 2)})" if c.odds_ratio_ci else ""
                ),
                fmt_p(c.fisher_p),
                fmt_p(c.cmh["p"]) if c.cmh else "–",
            ]
            rows.append(cells)
        width = 8
        rows = [row + [""] * (width - len(row)) for row in rows]
        tables.append(
            TextTable(
                f"{r.outcome.capitalize()} at {r.visit}",
                [
                    "Group",
                    "Count",
                    "Rate / difference",
                    f"Newcombe {level} CI",
                    f"Miettinen-Nurminen {level} CI",
                    "Odds ratio (CI)",
                    "Fisher p",
                    f"CMH p ({r.strata})" if r.strata else "CMH p",
                ],
                rows,
            )
        )
    if report.effects:
        rows = [
            [
                f"{e.group} - {e.reference}",
                f"{e.n} / {e.n_reference}",
                fmt(e.mean, digits),
                fmt(e.mean_reference, digits),
                fmt(e.sd_pooled, digits),
                fmt(e.g, 2),
                ci(e.lower, e.upper, 2),
            ]
            for e in report.effects
        ]
        tables.append(
            TextTable(
                f"Effect size at {report.visit}: Hedges' g of {spec.outcome}",
                ["Comparison", "n", "Mean", "Mean (reference)", "Pooled SD", "g", f"{level} CI"],
                rows,
            )
        )
    return tables


def rich_tables(tables: Sequence[TextTable]) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    parts: list[Any] = []
    for t in tables:
        table = Table(title=t.title, title_justify="left", caption=t.note or None)
        for i, column in enumerate(t.columns):
            table.add_column(column, justify="left" if i < 2 else "right")
        for row in t.rows:
            table.add_row(*row)
        parts.append(table)
        parts.append(Text(""))
    return Group(*parts)
