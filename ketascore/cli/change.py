"""`ketascore change`: change from baseline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
    UsageError,
    check_output,
    checked_scale,
    checks_option,
    console,
    emit,
    given_read_options,
    input_options,
    is_tty,
    load_scale_option,
    output_options,
    provenance_options,
    read_options,
    resolve_format,
    window_options,
    write_provenance,
)

if TYPE_CHECKING:
    from ketascore.analysis.change import ChangeReport
    from ketascore.analysis.windows import WindowPlan
    from ketascore.core.issues import Issue
    from ketascore.core.records import ScoreResult
    from ketascore.core.scale import Scale
    from ketascore.readers import ReadResult


def load_windows_option(path: Path | None) -> WindowPlan | None:
    """The analysis windows of ``--windows FILE`` (a usage error if the file has problems)."""
    if path is None:
        return None
    from ketascore.analysis.windows import load_windows
    from ketascore.core.scale import ScaleError

    try:
        return load_windows(path)
    except ScaleError as exc:
        raise UsageError(
            f"windows file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None


def grouping_scale(by: str | None, scale: Scale) -> Scale | None:
    """The scale named by ``--by SCALE.NAME`` (checked), or None for a carried field."""
    from ketascore.core.library import ScaleSet

    by_scale = by.partition(".")[0] if by and "." in by else None
    other = ScaleSet([scale]).get(by_scale) if by_scale else None
    if by_scale and other is None:
        raise UsageError(f"--by {by}: unknown scale {by_scale!r}")
    if other is not None:
        name = by.partition(".")[2] if by else ""
        if name not in {c.id for c in other.classifications} and name not in other.score_ids:
            raise UsageError(
                f"--by {by}: {other.id} has no classification or score {name!r}; "
                f"classifications: {', '.join(c.id for c in other.classifications) or 'none'}"
            )
    return other


def scored_for_change(
    paths: list[str],
    scale: Scale,
    other: Scale | None,
    *,
    input_format: str | None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    max_file_size: int,
) -> tuple[list[ScoreResult], list[Issue], dict[str, str]]:
    """The results of ``scale`` (and of ``other``, the scale of --by) in the paths, the
    problems of the files, and the inputs' sha256."""
    from ketascore.api import read_answers, score_paths

    options = read_options([scale])
    custom = any(bool(v) for v in given_read_options().values())
    if other is None or other.id == scale.id:
        with score_paths(
            paths,
            scale=scale,
            input_format=input_format,
            include=include,
            exclude=exclude,
            max_file_size=max_file_size,
            options=options,
            custom_options=custom,
        ) as run:
            return list(run.results()), list(run.issues), dict(run.hashes)
    data = read_answers(
        paths,
        input_format=input_format,
        scales=[scale],
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=options,
    )
    return results_of(data, scale, other), data.issues, data.hashes


def results_of(data: ReadResult, scale: Scale, other: Scale | None) -> list[ScoreResult]:
    """The results of ``scale`` (and ``other``) among records already read."""
    from ketascore.api import score

    results = score(data.records, scale=scale)
    if other is not None and other.id != scale.id:
        results += score(data.records, scale=other)
    return results


def change_report(
    results: list[ScoreResult],
    issues: list[Issue],
    scale: Scale,
    score_name: str,
    *,
    baseline: str | None,
    by: str | None,
    other: Scale | None,
    response_percent: float | None,
    remission_at_most: float | None,
    windows: WindowPlan | None = None,
    impute: str | None = None,
) -> ChangeReport:
    """The change from baseline of the results; the report's issues start with those of
    reading (``issues``) and scoring."""
    from ketascore.analysis.change import compute_change
    from ketascore.core.values import clean_number

    report = compute_change(
        results,
        scale,
        score_name,
        baseline_visit=baseline,
        by=by,
        scales={other.id: other} if other is not None else None,
        response_percent=clean_number(response_percent) if response_percent else None,
        remission_at_most=clean_number(remission_at_most)
        if remission_at_most is not None
        else None,
        windows=windows,
        impute=impute,
    )
    record_issues = [i for r in results if r.scale == scale.id for i in r.issues]
    report.issues[:0] = issues + record_issues
    from ketascore.analysis.raters import summarise_rating_checks

    report.rating_checks = summarise_rating_checks(results, scale)
    return report


# --------------------------------------------------------------------------------------
# change


@cli.command("change")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale", "scale_name", required=True, help="Built-in scale id or path of a scale file."
)
@click.option("--score", "score_name", default="total", show_default=True, help="Score to analyse.")
@click.option(
    "--baseline",
    help="Baseline visit (default: the record the source flags as baseline (SDTM QSBLFL), "
    "else the visit named 'baseline', else each subject's earliest by study day, then date, "
    "then order in the input).",
)
@click.option(
    "--by",
    help="Group by a carried field (e.g. arm) or a baseline classification of a scale "
    "(e.g. hamd17.anxious_depression).",
)
@click.option(
    "--response-percent",
    type=click.FloatRange(0, 100, min_open=True),
    help="Response = reduction of at least this percent (default: the scale's, usually 50).",
)
@click.option(
    "--remission-at-most",
    type=float,
    help="Remission = score at most this value (default: the scale's threshold).",
)
@window_options
@click.option("--summary", "summary_only", is_flag=True, help="With csv: write the summary table.")
@output_options(("table", "json", "jsonl", "csv", "adam"))
@provenance_options
@checks_option
@input_options
def change_cmd(
    paths: tuple[str, ...],
    scale_name: str,
    score_name: str,
    baseline: str | None,
    by: str | None,
    response_percent: float | None,
    remission_at_most: float | None,
    windows_file: Path | None,
    impute: str | None,
    summary_only: bool,
    fmt: str | None,
    output: Path | None,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    check_names: tuple[str, ...],
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """Change from baseline per subject and a per-visit summary, for one score of one scale."""
    from ketascore.writers import tabular as out

    fmt = resolve_format(fmt, output)
    scale = checked_scale(load_scale_option(scale_name), check_names)
    if score_name not in scale.score_ids:
        raise UsageError(
            f"scale {scale.id} has no score {score_name!r}; scores: {', '.join(scale.score_ids)}"
        )
    other = grouping_scale(by, scale)
    windows = load_windows_option(windows_file)
    results, issues, hashes = scored_for_change(
        list(paths),
        scale,
        other,
        input_format=input_format,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
    )
    report = change_report(
        results,
        issues,
        scale,
        score_name,
        baseline=baseline,
        by=by,
        other=other,
        response_percent=response_percent,
        remission_at_most=remission_at_most,
        windows=windows,
        impute=impute,
    )
    from ketascore.core.provenance import build_provenance

    if fmt == "table":
        from ketascore.present.render import change_tables, print_issues

        console().print(change_tables(report, scale, trend=is_tty(sys.stdout)))
        if report.rating_checks is not None:
            from ketascore.present.raters import rating_check_table

            console().print(rating_check_table(report.rating_checks))
        print_issues(console(stderr=True), report.issues)
    provenance = build_provenance(
        [scale, *([other] if other is not None else [])], hashes, "ketascore change"
    )
    if fmt == "json":
        emit(out.change_json(report, provenance), output, list(paths))
    elif fmt == "jsonl":
        emit(out.change_jsonl(report, provenance), output, list(paths))
    elif fmt == "csv":
        csv_text = out.change_csv(report, summary_only, escape_formulas=not no_escape_formulas)
        emit(csv_text, output, list(paths))
    elif fmt == "adam":
        from ketascore.writers.adam import adam_csv, adam_rows, write_adam

        known = [scale, *([other] if other is not None else [])]
        if output is not None and output.suffix.lower() == ".xpt":
            check_output(output, list(paths))
            write_adam(output, [report], report.analysed, known)
        else:
            emit(adam_csv(adam_rows([report], report.analysed, known)), output, list(paths))
    write_provenance(provenance, fmt, output, provenance_file, list(paths))
    problems = any(i.severity == "error" for i in report.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
