"""`ketascore change`: change from baseline."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    SCALE_HELP,
    ChangeSettings,
    Exit,
    UsageError,
    change_options,
    check_files,
    check_input_extras,
    check_option_file,
    checked_scale,
    checks_option,
    complete_provenance,
    console,
    echo_out,
    given_read_options,
    input_options,
    is_tty,
    lines_writer,
    load_scale_option,
    many_objects,
    option_files,
    output_options,
    output_targets,
    plan_outputs,
    provenance_options,
    provenance_outputs,
    read_options,
    resolve_format,
    scale_file,
    write_outputs,
)
from ketascore.cli.progress import Progress, speed_hint

if TYPE_CHECKING:
    from ketascore.analysis.change import ChangeReport
    from ketascore.analysis.windows import WindowPlan
    from ketascore.core.issues import Issue
    from ketascore.core.records import ScoreResult
    from ketascore.core.scale import Scale
    from ketascore.readers import ReadResult


def load_windows_option(path: Path | None, max_file_size: int | None = None) -> WindowPlan | None:
    """The analysis windows of ``--windows FILE`` (a usage error if the file has problems)."""
    if path is None:
        return None
    from ketascore.analysis.windows import load_windows
    from ketascore.core.scale import ScaleError

    check_option_file("--windows", path, max_file_size)

    try:
        return load_windows(path)
    except ScaleError as exc:
        raise UsageError(
            f"windows file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None


def check_score(scale: Scale, score_name: str) -> None:
    if score_name not in scale.score_ids:
        raise UsageError(
            f"scale {scale.id} has no score {score_name!r}; scores: {', '.join(scale.score_ids)}"
        )


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


def scales_held(paths: list[str], by: str | None, *, several: bool = False) -> list[str]:
    """Without --scale: the built-in scales the input holds, in order of first appearance,
    the scale of ``--by SCALE.NAME`` left out when others remain; read with the command's
    --input-format, --include, --exclude and --max-file-size. A usage error when there is
    none, or (unless ``several``) more than one, naming what the input holds."""
    from ketascore.api import held_scales
    from ketascore.core.library import ScaleSet

    if "-" in paths:
        raise UsageError(
            "--scale is missing: standard input is read once, so name its scale with --scale"
        )
    given = click.get_current_context().params
    reading = {
        "input_format": given["input_format"],
        "include": given["include"],
        "exclude": given["exclude"],
        "max_file_size": given["max_file_size"],
        "options": read_options([], given["max_file_size"]),
    }
    held = held_scales(paths, **reading)
    by_scale = ScaleSet().get(by.partition(".")[0]) if by and "." in by else None
    if by_scale is not None and len(held) > 1:
        held.pop(by_scale.id, None)
    if not held:
        from ketascore.api import read_answers
        from ketascore.present.render import print_issues

        problems = read_answers(paths, **reading).issues  # (what stopped the records, if anything)
        print_issues(console(stderr=True), problems)
        raise UsageError(
            "--scale is missing and no record of the input names a built-in scale"
            + (" (the input's problems are listed above)" if problems else "")
            + ": name the scale with --scale (a built-in id, or the path of a scale file)"
        )
    if len(held) > 1 and not several:
        most = sorted(held, key=lambda scale: -(held[scale] or 0))
        counts = [
            f"{scale} ({held[scale]} record{'s' if held[scale] != 1 else ''})" for scale in most
        ]
        raise UsageError(
            f"--scale is missing and the input holds records of {len(held)} scales: "
            f"{', '.join(counts)}; choose one, e.g. --scale {most[0]}"
        )
    return list(held)


def scored_for_change(
    paths: list[str],
    scale: Scale,
    other: Scale | None,
    *,
    input_format: str | None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
    max_file_size: int,
    quiet: bool = True,
) -> tuple[list[ScoreResult], list[Issue], dict[str, str]]:
    """The results of ``scale`` (and of ``other``, the scale of --by) in the paths, the
    problems of the files, and the inputs' sha256. Unless ``quiet``, a progress bar shows on
    a terminal. Python's cycle collector is paused until the command ends (``change`` and
    ``model`` hold the results until then)."""
    from ketascore.api import read_answers, score_paths

    click.get_current_context().with_resource(many_objects())
    options = read_options([scale], max_file_size)
    custom = any(bool(v) for v in given_read_options().values())
    if other is None or other.id == scale.id:
        bar = Progress(not quiet and is_tty(sys.stderr))
        with bar as progress:
            run = score_paths(
                paths,
                scale=scale,
                input_format=input_format,
                include=include,
                exclude=exclude,
                max_file_size=max_file_size,
                options=options,
                custom_options=custom,
                progress=progress,
                walked=bar.set_total,
                rows=bar.rows,
            )
        with run:
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


def check_by(by: str | None, results: list[ScoreResult], scale: Scale, other: Scale | None) -> None:
    """A usage error when ``--by`` names what no record carries: a field that no record of
    the scale has (a typo, not a group "(missing)" for everyone), with the fields there
    are; or a classification of a scale with no record in the input."""
    import difflib

    if not by:
        return
    if other is not None:
        if not any(r.scale == other.id for r in results):
            raise UsageError(
                f"--by {by}: the input holds no {other.id} record to take "
                f"{by.partition('.')[2]} from; give the {other.id} files too, or group by a "
                "field the records carry"
            )
        return
    mine = [r for r in results if r.scale == scale.id]
    fields = sorted({name for r in mine for name in r.extra}, key=str.casefold)
    if not mine or by in fields:
        return
    close = [f for f in fields if f.casefold() == by.casefold()]
    close += [f for f in difflib.get_close_matches(by, fields, n=3) if f not in close]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    scales = f"{scale.id}." if scale.classifications else "SCALE."
    raise UsageError(
        f"--by {by}: no {scale.id} record carries a field {by!r}{hint}; fields: "
        f"{', '.join(fields) or 'none'}; or group by a baseline classification "
        f"(--by {scales}CLASSIFICATION)"
    )


def change_report(
    results: list[ScoreResult],
    issues: list[Issue],
    scale: Scale,
    how: ChangeSettings,
    other: Scale | None,
    windows: WindowPlan | None,
) -> ChangeReport:
    """The change from baseline of the results; the report's issues start with those of
    reading (``issues``) and scoring."""
    from ketascore.analysis.change import compute_change
    from ketascore.core.values import clean_number

    check_by(how.by, results, scale, other)
    remission = how.remission_at_most
    report = compute_change(
        results,
        scale,
        how.score_name,
        baseline_visit=how.baseline,
        by=how.by,
        scales={other.id: other} if other is not None else None,
        response_percent=clean_number(how.response_percent) if how.response_percent else None,
        remission_at_most=clean_number(remission) if remission is not None else None,
        windows=windows,
        impute=how.impute,
    )
    # the records of the scale, and those naming no known scale (a mistyped id)
    record_issues = [
        i for r in results if r.scale == scale.id or r.scale_version is None for i in r.issues
    ]
    report.issues[:0] = issues + record_issues
    from ketascore.analysis.raters import summarise_rating_checks

    report.rating_checks = summarise_rating_checks(results, scale)
    return report


# --------------------------------------------------------------------------------------
# change


@cli.command("change")
@click.argument("paths", nargs=-1, required=True)
@click.option("--scale", "scale_name", help=SCALE_HELP)
@change_options
@click.option("--summary", "summary_only", is_flag=True, help="With csv: write the summary table.")
@click.option(
    "--study-id",
    help="With adam: the STUDYID of every row (default: the study id the records carry).",
)
@output_options(("table", "json", "jsonl", "csv", "adam"))
@provenance_options
@checks_option
@input_options
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bar and no problems listed on stderr (the exit code still says).",
)
def change_cmd(
    paths: tuple[str, ...],
    scale_name: str | None,
    how: ChangeSettings,
    summary_only: bool,
    study_id: str | None,
    fmt: str | None,
    output: Path | None,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    check_names: tuple[str, ...],
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
    quiet: bool,
) -> None:
    """Change from baseline per subject and a per-visit summary, for one score of one scale.

    \b
    The problems of the input are listed on stderr, errors first, in every output format
    (-q leaves them out); the exit code is 1 when there is an error.
    """
    from ketascore.writers import tabular as out

    fmt = resolve_format(fmt, output)
    if study_id is not None and fmt != "adam":
        raise UsageError("--study-id applies to the ADaM output: add --format adam")
    inputs = list(paths)
    read_files = [f for _, f in option_files()] + [
        str(f) for f in (scale_file(scale_name), how.windows_file) if f is not None
    ]
    read_files += check_files(check_names)
    plan_outputs(output_targets(fmt, output, provenance_file), inputs, read_files)
    check_input_extras(inputs, input_format)
    windows = load_windows_option(how.windows_file, max_file_size)  # (stops before reading)
    if scale_name is None:
        scale_name = scales_held(inputs, how.by)[0]
    scale = checked_scale(load_scale_option(scale_name, max_file_size), check_names, max_file_size)
    check_score(scale, how.score_name)
    other = grouping_scale(how.by, scale)
    hint = None if quiet else speed_hint(list(paths))
    if hint:
        click.echo(hint, err=True)
    results, issues, hashes = scored_for_change(
        list(paths),
        scale,
        other,
        input_format=input_format,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        quiet=quiet,
    )
    report = change_report(results, issues, scale, how, other, windows)
    from ketascore.core.provenance import build_provenance
    from ketascore.writers.outputs import Output

    if fmt == "table":
        from ketascore.present.render import change_tables

        console().print(change_tables(report, scale, trend=is_tty(sys.stdout)))
        if report.rating_checks is not None:
            from ketascore.present.raters import rating_check_table

            console().print(rating_check_table(report.rating_checks))
    provenance = build_provenance(
        [scale, *([other] if other is not None else [])], hashes, "ketascore change"
    )
    settings = {
        "score": how.score_name,
        "baseline": how.baseline,
        "baseline_rules": report.baseline_rules(),
        "by": how.by,
        "criteria": report.criteria.describe(),
        "windows": str(how.windows_file) if how.windows_file is not None else None,
        "impute": list(how.impute) or None,
        "input_format": input_format,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_size": max_file_size,
        "escape_formulas": not no_escape_formulas,
    }
    complete_provenance(provenance, settings, [("--windows", how.windows_file)])
    escape = not no_escape_formulas
    content: object = None
    files: list[Output] = []
    if fmt == "json":
        content = out.change_json(report, provenance)
    elif fmt == "jsonl":
        content = out.change_jsonl(report, provenance)
    elif fmt == "csv":
        content = out.change_csv(report, summary_only, escape_formulas=escape)
    elif fmt == "adam":
        from ketascore.core.issues import make_issue
        from ketascore.writers.adam import adam_csv, adam_rows, group_column, write_adam_xpt

        known = [scale, *([other] if other is not None else [])]
        rows = adam_rows([report], report.analysed, known, study_id=study_id)
        if any(not row["STUDYID"] for row in rows):
            report.issues.append(make_issue("no-study-id", scale=scale.id))
        if output is not None and output.suffix.lower() == ".xpt":
            labels = {group_column(how.by): f"Group: {how.by}"} if how.by else {}

            def xpt(fh: object) -> None:
                write_adam_xpt(fh, rows, labels=labels)

            files.append(Output(output, xpt, binary=True))
        else:
            content = adam_csv(rows, escape_formulas=escape)
    if content is not None:
        if output is None:
            echo_out(content)
        else:
            files.append(Output(output, lines_writer(content)))
    files += provenance_outputs(provenance, fmt, output, provenance_file)
    if files:
        write_outputs(files)
    if not quiet:
        from ketascore.present.render import print_issues

        print_issues(console(stderr=True), report.issues)
    problems = any(i.severity == "error" for i in report.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
