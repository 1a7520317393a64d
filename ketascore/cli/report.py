"""`ketascore report`: a self-contained HTML study report (and optionally a PDF)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    ChangeSettings,
    Exit,
    UsageError,
    add_checks,
    change_options,
    check_files,
    check_input_extras,
    checks_option,
    complete_provenance,
    console,
    input_options,
    is_tty,
    lines_writer,
    load_check_sets,
    load_scale_option,
    option_files,
    plan_outputs,
    read_options,
    require_checked_scales,
    scale_file,
    write_outputs,
)
from ketascore.cli.plot import (
    picture_options,
    require_plotting,
)

if TYPE_CHECKING:
    from ketascore.core.scale import Scale


@cli.command("report")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale",
    "scale_names",
    multiple=True,
    help="Built-in scale id or path of a scale file; repeat for a section per scale. "
    "Without it, a section per built-in scale the input holds.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the HTML report to FILE (written completely or not at all); without it the "
    "report goes to standard output when that is not a terminal.",
)
@click.option(
    "--pdf",
    "pdf_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as a PDF (tables as text pages, then the pictures).",
)
@click.option("--no-plots", is_flag=True, help="Leave the pictures out (no matplotlib needed).")
@click.option(
    "--model",
    "with_model",
    is_flag=True,
    help="Add the efficacy analysis: MMRM of change by --by group and visit adjusted for "
    "baseline, and at --visit (default the last) the ANCOVA, responders and Hedges' g "
    "(needs pip install 'ketascore[stats]').",
)
@change_options
@picture_options
@checks_option
@input_options
def report_cmd(
    paths: tuple[str, ...],
    scale_names: tuple[str, ...],
    output: Path | None,
    pdf_file: Path | None,
    no_plots: bool,
    with_model: bool,
    how: ChangeSettings,
    visit: str | None,
    error: str,
    color_by: str | None,
    title: str | None,
    check_names: tuple[str, ...],
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """A study report in one self-contained HTML file.

    It holds the study summary (subjects, visits, records, issues), the change table per
    visit and group, the pictures (trajectory, spaghetti, waterfall, distribution) as inline
    SVG, the data issues, and the provenance of the scales and inputs (sha256 of each). The
    file loads nothing from the network. Pictures need matplotlib (pip install
    'ketascore[plot]'); --no-plots makes a report of tables only.
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
    from ketascore.present.render import print_issues
    from ketascore.present.report import (
        Section,
        add_figures,
        build_report,
        followup_visits,
        render_html,
        render_pdf,
    )
    from ketascore.writers.outputs import Output

    if output is None and is_tty(sys.stdout):
        raise UsageError(
            "the report is an HTML file: write it with -o report.html (or redirect it: "
            "ketascore report ... > report.html)"
        )
    if with_model:
        from ketascore.cli.model import require_stats

        require_stats()
    if pdf_file is not None and no_plots:
        raise UsageError("--pdf is drawn with matplotlib; leave out --no-plots")
    if not no_plots or pdf_file is not None:
        require_plotting("; or make a report of tables only with --no-plots")
    read_files = [f for _, f in option_files()] + [
        str(f) for f in (*map(scale_file, scale_names), how.windows_file) if f is not None
    ]
    read_files += check_files(check_names)
    plan_outputs([("-o", output), ("--pdf", pdf_file)], list(paths), read_files)
    check_input_extras(list(paths), input_format)
    windows = load_windows_option(how.windows_file, max_file_size)  # (stops before reading)
    if not scale_names:
        scale_names = tuple(scales_held(list(paths), how.by, several=True))
    scales: list[Scale] = []
    check_sets = load_check_sets(check_names, max_file_size)
    for name in scale_names:
        scale = add_checks(load_scale_option(name, max_file_size), check_sets)
        check_score(scale, how.score_name)
        if scale.id not in {s.id for s in scales}:
            scales.append(scale)
    require_checked_scales(check_sets, scales)
    data = read_answers(
        list(paths),
        input_format=input_format,
        scales=scales,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=read_options(list(scales), max_file_size),
    )
    sections: list[Section] = []
    others: list[Scale] = []
    for scale in scales:
        other = grouping_scale(how.by, scale)
        if other is not None:
            others.append(other)
        results = results_of(data, scale, other)
        report = change_report(results, data.issues, scale, how, other, windows)
        section = Section(scale, report, results)
        if with_model and report.rows:
            from ketascore.cli.model import default_model_options, efficacy_of_change

            section.efficacy = efficacy_of_change(report, default_model_options(visit=visit))
        followups = followup_visits(report)
        if visit is not None and report.subjects and visit not in followups:
            raise UsageError(
                f"--visit {visit}: no {scale.id} change from baseline at that visit; "
                f"visits: {', '.join(followups) or 'none'}"
            )
        if not report.subjects:
            section.notes.append(f"No {scale.id} records in the input.")
        elif no_plots:
            section.notes.append("Pictures left out (--no-plots).")
        else:
            add_figures(section, error=error, visit=visit, color_by=color_by)
        sections.append(section)
    doc = build_report(sections, data, title=title, extra_scales=others)
    settings = {
        "score": how.score_name,
        "baseline": how.baseline,
        "by": how.by,
        "response_percent": how.response_percent,
        "remission_at_most": how.remission_at_most,
        "windows": str(how.windows_file) if how.windows_file is not None else None,
        "impute": how.impute,
        "input_format": input_format,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_size": max_file_size,
    }
    complete_provenance(doc.provenance, settings, [("--windows", how.windows_file)])
    print_issues(console(stderr=True), doc.issues)
    html_text = render_html(doc)
    files: list[Output] = []
    if output is None:
        click.echo(html_text, nl=False)
    else:
        files.append(Output(output, lines_writer(html_text)))
    if pdf_file is not None:
        pdf = render_pdf(doc)
        files.append(Output(pdf_file, lambda fh: fh.write(pdf), binary=True))
    if files:
        write_outputs(files)  # the report and its PDF appear together or not at all
        for written in files:
            click.echo(f"Wrote {written.path}", err=True)
    problems = any(i.severity == "error" for i in doc.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
