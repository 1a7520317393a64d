"""`ketascore plot`: pictures of change from baseline (needs the `plot` extra: matplotlib)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    SCALE_HELP,
    ChangeSettings,
    Exit,
    UsageError,
    change_options,
    check_input_extras,
    console,
    input_options,
    load_scale_option,
    option_files,
    plan_outputs,
    read_options,
    scale_file,
    write_outputs,
)

if TYPE_CHECKING:
    pass

F = TypeVar("F", bound=Callable[..., Any])

KINDS = (
    "trajectory",
    "spaghetti",
    "waterfall",
    "distribution",
)  # as ketascore.present.plotting.KINDS
PICTURE_FORMATS = (".png", ".svg", ".pdf")


def require_plotting(hint: str = "") -> None:
    """Stop with a usage error (exit 2) naming the install command when matplotlib is absent."""
    from ketascore.present.plotting import PlottingUnavailable, require_matplotlib

    try:
        require_matplotlib()
    except PlottingUnavailable as exc:
        raise UsageError(f"{exc}{hint}") from None


def picture_options(func: F) -> F:
    func = click.option("--title", help="Title of the picture (default: made from the data).")(func)
    func = click.option(
        "--color-by",
        type=click.Choice(["outcome", "group"]),
        help="waterfall: colour bars by response/remission (default) or by --by group.",
    )(func)
    func = click.option(
        "--error",
        type=click.Choice(["ci", "se", "sd"]),
        default="ci",
        show_default=True,
        help="trajectory: error bars = 95% confidence interval of the mean, standard error, "
        "or standard deviation.",
    )(func)
    func = click.option(
        "--visit",
        help="waterfall: the visit whose percent change is shown (default: the last visit "
        "after baseline).",
    )(func)
    return func


@cli.command("plot")
@click.argument("paths", nargs=-1, required=True)
@click.option("--scale", "scale_name", help=SCALE_HELP)
@click.option("--kind", type=click.Choice(KINDS), required=True, help="Which picture.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Picture file: .png, .svg or .pdf (written completely or not at all).",
)
@change_options
@picture_options
@click.option(
    "--dpi", type=click.IntRange(50, 1200), default=150, show_default=True, help="PNG resolution."
)
@input_options
def plot_cmd(
    paths: tuple[str, ...],
    scale_name: str | None,
    kind: str,
    output: Path,
    how: ChangeSettings,
    visit: str | None,
    error: str,
    color_by: str | None,
    title: str | None,
    dpi: int,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """Draw a picture of one score of one scale over the visits.

    \b
    trajectory    mean and 95% CI (or SE, SD) per visit, one line per group
    spaghetti     each subject's line, faint, with the group mean on top
    waterfall     percent change at one visit, one bar per subject, sorted
    distribution  subjects in each severity band at each visit, stacked

    Needs matplotlib: pip install 'ketascore[plot]'.
    """
    from ketascore.api import read_answers
    from ketascore.cli.change import (
        change_report,
        check_score,
        grouping_scale,
        load_windows_option,
        results_of,
        scales_held,
    )
    from ketascore.present.plotting import PlotError, figure_bytes, make_figure
    from ketascore.present.render import print_issues
    from ketascore.writers.outputs import Output

    if output.suffix.lower() not in PICTURE_FORMATS:
        raise UsageError(f"-o {output}: the picture file must end in .png, .svg or .pdf")
    if visit is not None and kind != "waterfall":
        raise UsageError("--visit applies to --kind waterfall")
    require_plotting()
    read_files = [f for _, f in option_files()] + [
        str(f) for f in (scale_file(scale_name), how.windows_file) if f is not None
    ]
    plan_outputs([("-o", output)], list(paths), read_files)
    check_input_extras(list(paths), input_format)
    windows = load_windows_option(how.windows_file, max_file_size)  # (stops before reading)
    if scale_name is None:
        scale_name = scales_held(list(paths), how.by)[0]
    scale = load_scale_option(scale_name, max_file_size)
    check_score(scale, how.score_name)
    data = read_answers(
        list(paths),
        input_format=input_format,
        scales=[scale],
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=read_options([scale], max_file_size),
    )
    other = grouping_scale(how.by, scale)
    results = results_of(data, scale, other)
    report = change_report(results, data.issues, scale, how, other, windows)
    print_issues(console(stderr=True), report.issues)
    if not report.subjects:
        click.echo(f"Error: no {scale.id} records in the input; nothing to draw.", err=True)
        sys.exit(Exit.PROBLEMS)
    try:
        fig = make_figure(
            kind,
            report,
            scale,
            results,
            error=error,
            visit=visit,
            color_by=color_by,
            title=title,
        )
    except PlotError as exc:
        raise UsageError(str(exc)) from None
    picture = figure_bytes(fig, output.suffix.lower().lstrip("."), dpi)
    write_outputs([Output(output, lambda fh: fh.write(picture), binary=True)])
    click.echo(f"Wrote {output} ({kind}, {len(report.subjects)} subjects)", err=True)
    problems = any(i.severity == "error" for i in report.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
