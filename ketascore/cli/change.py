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
    console,
    emit,
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


def change_report(
    data: ReadResult,
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
) -> tuple[list[ScoreResult], ChangeReport]:
    """Score the records read (and those of the grouping scale) and compute the change from
    baseline; the report's issues start with those of reading and scoring."""
    from ketascore.analysis.change import compute_change
    from ketascore.api import score
    from ketascore.core.values import clean_number

    results = score(data.records, scale=scale)
    if other is not None and other.id != scale.id:
        results += score(data.records, scale=other)
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
    report.issues[:0] = data.issues + record_issues
    return results, report


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
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """Change from baseline per subject and a per-visit summary, for one score of one scale."""
    from ketascore.api import read_answers
    from ketascore.writers import tabular as out

    fmt = resolve_format(fmt, output)
    scale = load_scale_option(scale_name)
    if score_name not in scale.score_ids:
        raise UsageError(
            f"scale {scale.id} has no score {score_name!r}; scores: {', '.join(scale.score_ids)}"
        )
    if fmt == "csv" and not (by or windows_file or impute or include or exclude):
        from ketascore.cli.score import change_columnar

        if change_columnar(
            paths,
            scale,
            score_name,
            baseline,
            response_percent,
            remission_at_most,
            summary_only,
            output,
            provenance_file,
            no_escape_formulas,
            input_format,
            max_file_size,
        ):
            return
    data = read_answers(
        list(paths),
        input_format=input_format,
        scales=[scale],
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=read_options([scale]),
    )
    other = grouping_scale(by, scale)
    windows = load_windows_option(windows_file)
    _results, report = change_report(
        data,
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
        print_issues(console(stderr=True), report.issues)
    provenance = build_provenance(
        [scale, *([other] if other is not None else [])], data.hashes, "ketascore change"
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
