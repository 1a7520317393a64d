"""`ketascore model`: the efficacy analysis (MMRM, ANCOVA, responders, effect size)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    ChangeSettings,
    Exit,
    FiniteFloat,
    UsageError,
    console,
    emit,
    input_options,
    load_scale_option,
    output_options,
    provenance_options,
    provenance_outputs,
    resolve_format,
    window_options,
    write_outputs,
)

if TYPE_CHECKING:
    from ketascore.analysis.efficacy import EfficacyReport

STATS_EXTRA = "pip install 'ketascore[stats]'"
COVARIANCES = ("un", "cs", "csh", "ar1", "arh1", "toep", "toeph")
ANALYSES = ("mmrm", "ancova", "responders", "effect")


def require_stats() -> None:
    """Stop with a usage error (exit 2) naming the extra when numpy or scipy is absent."""
    missing = [m for m in ("numpy", "scipy") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(
            f"the analysis step needs {' and '.join(missing)}: install the stats extra "
            f"({STATS_EXTRA})"
        )


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in values:
        name, eq, level = item.partition("=")
        if not eq or not name or not level:
            raise UsageError(f"{option} {item!r}: write NAME=VALUE")
        out[name.strip()] = level.strip()
    return out


def model_options(func: Any) -> Any:
    """The options that say which model to fit (shared with `ketascore report --model`)."""
    specs: list[tuple[tuple[str, ...], dict[str, Any]]] = [
        (
            ("--outcome",),
            {
                "help": "The outcome: with --scale change (default), value or percent_change; "
                "for a table, its column (default CHG, else AVAL, change or value)."
            },
        ),
        (
            ("--covariate",),
            {
                "multiple": True,
                "help": "A numeric covariate (repeat; default: the baseline score, or BASE). "
                "--covariate none leaves it out.",
            },
        ),
        (("--factor",), {"multiple": True, "help": "A categorical covariate (repeat)."}),
        (
            ("--terms",),
            {
                "help": "The fixed effects as SAS writes them, e.g. 'arm visit arm*visit "
                "baseline baseline*visit' (default: group, visit, group*visit, factors, "
                "covariates)."
            },
        ),
        (
            ("--reference",),
            {"help": "Reference group of the comparisons (default: the first in natural order)."},
        ),
        (
            ("--ref",),
            {
                "multiple": True,
                "help": "Reference level of any class variable, VAR=LEVEL (repeat; default: "
                "the first level).",
            },
        ),
        (
            ("--covariance",),
            {
                "type": click.Choice(COVARIANCES),
                "default": "un",
                "show_default": True,
                "help": "Residual covariance: unstructured, compound symmetry, AR(1), Toeplitz, "
                "or their heterogeneous variants (csh, arh1, toeph).",
            },
        ),
        (
            ("--method",),
            {
                "type": click.Choice(["reml", "ml"]),
                "default": "reml",
                "show_default": True,
                "help": "Estimation method.",
            },
        ),
        (
            ("--ddfm",),
            {
                "type": click.Choice(["satterthwaite", "kenward-roger"]),
                "default": "satterthwaite",
                "show_default": True,
                "help": "Degrees of freedom: Satterthwaite, or Kenward-Roger (which also "
                "inflates the standard errors, as SAS DDFM=KR).",
            },
        ),
        (
            ("--alpha",),
            {
                "type": FiniteFloat(0, 1, min_open=True, max_open=True),
                "default": 0.05,
                "show_default": True,
                "help": "1 - confidence level of the intervals.",
            },
        ),
        (
            ("--visit",),
            {
                "help": "The primary visit of the ANCOVA, responders and effect size "
                "(default: the last)."
            },
        ),
        (
            ("--strata",),
            {"help": "Stratify the responder analysis by this factor (Cochran-Mantel-Haenszel)."},
        ),
        (
            ("--dose",),
            {
                "multiple": True,
                "help": "GROUP=DOSE for each group: adds a linear dose-trend test to the ANCOVA "
                "(repeat).",
            },
        ),
        (
            ("--analyses",),
            {
                "default": ",".join(ANALYSES),
                "show_default": True,
                "help": "Which analyses to run, comma-separated.",
            },
        ),
    ]
    for names, kwargs in reversed(specs):
        func = click.option(*names, **kwargs)(func)
    return func


def parse_model_options(params: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of the library's option builders from the command's options."""
    analyses = tuple(a.strip() for a in params["analyses"].split(",") if a.strip())
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise UsageError(
            f"--analyses: unknown {', '.join(unknown)}; choose from {', '.join(ANALYSES)}"
        )
    doses: dict[str, float] = {}
    for group, dose in _pairs(params["dose"], "--dose").items():
        try:
            doses[group] = float(dose)
        except ValueError:
            raise UsageError(f"--dose {group}={dose}: the dose is not a number") from None
        if not math.isfinite(doses[group]):
            raise UsageError(f"--dose {group}={dose}: the dose is not a finite number")
    covariates: tuple[str, ...] | None = tuple(params["covariate"]) or None
    if covariates == ("none",):
        covariates = ()
    return {
        "outcome": params["outcome"],
        "covariates": covariates,
        "factors": tuple(params["factor"]),
        "terms": tuple(params["terms"].split()) if params["terms"] else (),
        "references": _pairs(params["ref"], "--ref"),
        "reference": params["reference"],
        "covariance": params["covariance"],
        "method": params["method"],
        "ddfm": params["ddfm"],
        "alpha": params["alpha"],
        "visit": params["visit"],
        "analyses": analyses,
        "strata": params["strata"],
        "doses": doses,
    }


def default_model_options(**given: Any) -> dict[str, Any]:
    """The library options of `ketascore model` with its defaults (for `report --model`)."""
    params = {
        "outcome": None,
        "covariate": (),
        "factor": (),
        "terms": None,
        "ref": (),
        "reference": None,
        "covariance": "un",
        "method": "reml",
        "ddfm": "satterthwaite",
        "alpha": 0.05,
        "visit": None,
        "strata": None,
        "dose": (),
        "analyses": ",".join(ANALYSES),
    }
    params.update(given)
    return {**parse_model_options(params), "visits": None}


def _visit_list(text: str | None) -> tuple[str, ...] | None:
    if not text:
        return None
    visits = tuple(v.strip() for v in text.split(",") if v.strip())
    return visits or None


def efficacy_of_change(change: Any, kwargs: dict[str, Any]) -> EfficacyReport:
    """Run the analyses on a change-from-baseline report (a usage error when the data cannot
    be analysed as asked)."""
    from ketascore.analysis.design import DesignError
    from ketascore.analysis.efficacy import change_efficacy, run_efficacy
    from ketascore.analysis.longdata import TableError

    kw = dict(kwargs)
    references = dict(kw.pop("references"))
    reference = kw.pop("reference")
    if reference is not None and change.by:
        references[change.by] = reference
    if kw["covariates"] is None:
        kw["covariates"] = ("baseline",)
    if kw["outcome"] is None:
        kw["outcome"] = "change"
    try:
        table, options = change_efficacy(change, references=references, **kw)
        return run_efficacy(table, options)
    except (DesignError, TableError) as exc:
        raise UsageError(str(exc)) from None


@cli.command("model")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale",
    "scale_name",
    help="Analyse ketascore's change from baseline of this scale (answer files as input); "
    "without it one PATH that is a table file (CSV, Parquet, SAS .xpt ADaM data set) is a "
    "long table read by column, and other input (a folder, YAML or JSON files, several "
    "files) is answer files of the one built-in scale they hold.",
)
@click.option("--score", "score_name", default="total", show_default=True, help="Score to analyse.")
@click.option("--baseline", help="Baseline visit (as in `ketascore change`).")
@click.option(
    "--by",
    help="The group: with --scale a carried field (arm) or a baseline classification "
    "(hamd17.anxious_depression); for a table, its column (default TRT01P, TRTP, ARM).",
)
@click.option(
    "--response-percent",
    type=FiniteFloat(0, 100, min_open=True),
    help="Response = reduction of at least this percent (default: the scale's).",
)
@click.option(
    "--remission-at-most", type=FiniteFloat(), help="Remission = score at most this value."
)
@window_options
@click.option("--subject", "subject_column", help="Table: the subject column (default USUBJID).")
@click.option("--visit-column", help="Table: the visit column (default AVISIT).")
@click.option(
    "--visits",
    help="The visits to analyse, in order, comma-separated (default: every visit after "
    "baseline; a table's in natural order).",
)
@click.option("--param", help="Table: keep the rows of this PARAMCD (ADaM BDS).")
@click.option("--response", "response_column", help="Table: a column of response flags (Y/N).")
@click.option("--remission", "remission_column", help="Table: a column of remission flags (Y/N).")
@model_options
@output_options(("table", "json", "csv"))
@provenance_options
@input_options
def model_cmd(**params: Any) -> None:
    """The efficacy analysis: a mixed model for repeated measures (MMRM) of change by group
    and visit, and at one visit an ANCOVA, responder and remitter rates and Hedges' g.

    \b
    With --scale, the answer files are scored and analysed through `ketascore change`
    (--baseline, --by, --windows, --impute); otherwise PATH is one long table with a row per
    subject and visit (an ADaM BDS data set such as ADQS works as it is). The numbers agree
    with SAS PROC MIXED and PROC GLM (docs/analysis.md). Needs numpy and scipy
    (pip install 'ketascore[stats]').
    """
    require_stats()
    paths = list(params["paths"])
    fmt = resolve_format(params["fmt"], params["output"])
    kwargs = parse_model_options(params)
    if not params["scale_name"] and not _one_table(paths):
        from ketascore.cli.change import scales_held

        params["scale_name"] = scales_held(paths, params["by"])[0]
    if params["scale_name"]:
        report, provenance = _from_scale(params, kwargs, paths)
    else:
        report, provenance = _from_table(params, kwargs, paths)
    report.provenance = provenance
    issues = report.all_issues()
    if fmt == "table":
        from ketascore.present.model import efficacy_tables, rich_tables

        console().print(rich_tables(efficacy_tables(report)))
    elif fmt == "json":
        from ketascore.writers.efficacy import efficacy_json

        emit(efficacy_json(report), params["output"], paths)
    else:
        from ketascore.writers.efficacy import efficacy_csv

        emit(
            efficacy_csv(report, escape_formulas=not params["no_escape_formulas"]),
            params["output"],
            paths,
        )
    write_outputs(provenance_outputs(provenance, fmt, params["output"], params["provenance_file"]))
    from ketascore.present.render import print_issues

    print_issues(console(stderr=True), issues)  # in every format: problems are never invisible
    sys.exit(Exit.PROBLEMS if any(i.severity == "error" for i in issues) else Exit.OK)


def _from_scale(
    params: dict[str, Any], kwargs: dict[str, Any], paths: list[str]
) -> tuple[EfficacyReport, dict[str, Any]]:
    from ketascore.cli.change import (
        change_report,
        check_score,
        grouping_scale,
        load_windows_option,
        scored_for_change,
    )
    from ketascore.core.provenance import build_provenance

    for option in ("subject_column", "visit_column", "param"):
        if params[option]:
            raise UsageError(
                f"--{option.replace('_', '-')} names a column of a table; with --scale the "
                "columns are ketascore's own"
            )
    how = ChangeSettings.of(params)
    scale = load_scale_option(params["scale_name"])
    check_score(scale, how.score_name)
    other = grouping_scale(how.by, scale)
    windows = load_windows_option(how.windows_file)
    results, issues, hashes = scored_for_change(
        paths,
        scale,
        other,
        input_format=params["input_format"],
        include=params["include"],
        exclude=params["exclude"],
        max_file_size=params["max_file_size"],
    )
    change = change_report(results, issues, scale, how, other, windows)
    if not change.rows:
        raise UsageError(f"no {scale.id} change from baseline in the input: nothing to analyse")
    report = efficacy_of_change(change, {**kwargs, "visits": _visit_list(params["visits"])})
    report.issues[:0] = change.issues
    provenance = build_provenance(
        [scale, *([other] if other is not None else [])], hashes, "ketascore model"
    )
    return report, provenance


def _one_table(paths: list[str]) -> bool:
    """Whether the input is one table file (CSV, Parquet or SAS transport), which without
    --scale is analysed as a long table: one path that is no folder, no standard input and
    no YAML or JSON answer document."""
    from ketascore.readers.base import EXTENSIONS

    if len(paths) != 1 or paths[0] == "-" or Path(paths[0]).is_dir():
        return False
    return EXTENSIONS.get(Path(paths[0]).suffix.lower()) not in ("yaml", "json", "jsonl")


def _from_table(
    params: dict[str, Any], kwargs: dict[str, Any], paths: list[str]
) -> tuple[EfficacyReport, dict[str, Any]]:
    from ketascore import __version__
    from ketascore.analysis.design import DesignError
    from ketascore.analysis.efficacy import run_efficacy, table_efficacy
    from ketascore.analysis.longdata import TableError, read_table
    from ketascore.core.provenance import file_digest

    for option in ("windows_file", "impute", "baseline", "response_percent", "remission_at_most"):
        if params[option] not in (None, ()):  # (--impute may be given more than once)
            raise UsageError(
                f"--{option.replace('_file', '').replace('_', '-')} works with --scale "
                "(ketascore computes the change); a table brings its own"
            )
    path = paths[0]  # (one table file: _one_table)
    try:
        table = read_table(path)
        if params["param"]:
            column = table.find("PARAMCD")
            if column is None:
                raise UsageError(f"--param: {path} has no PARAMCD column")
            table = table.where([v == params["param"] for v in table.column(column)])
            if not table.n_rows:
                raise UsageError(f"--param {params['param']}: no row of {path} has that PARAMCD")
        elif (column := table.find("PARAMCD")) is not None:
            codes = sorted({str(v) for v in table.column(column) if v is not None})
            if len(codes) > 1:
                raise UsageError(
                    f"{path} holds several parameters ({', '.join(codes)}); choose one with --param"
                )
        kw = dict(kwargs)
        references = dict(kw.pop("references"))
        reference = kw.pop("reference")
        order = _visit_list(params["visits"])
        options = table_efficacy(
            table,
            subject=params["subject_column"],
            visit_column=params["visit_column"],
            group=params["by"],
            response=params["response_column"],
            remission=params["remission_column"],
            visit_order=order,
            references=references,
            **kw,
        )
        if reference is not None and options.mmrm.group:
            spec = options.mmrm.model_copy(
                update={"references": {**references, options.mmrm.group: reference}}
            )
            options = options.model_copy(update={"mmrm": spec})
        report = run_efficacy(table, options)
    except (DesignError, TableError) as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the file: {exc}") from None
    provenance = {
        "ketascore_version": __version__,
        "command": "ketascore model",
        "scales": [],
        "inputs": [{"file": path, "sha256": file_digest(path)}],
    }
    return report, provenance
