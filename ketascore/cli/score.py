"""`ketascore score`: score answer files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
    console,
    emit,
    input_options,
    load_scale_option,
    output_options,
    resolve_format,
)

# --------------------------------------------------------------------------------------
# score


def _read_and_score(
    paths: tuple[str, ...],
    scale_name: str | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> tuple[Any, list[Any], Any]:
    from ketascore.api import read_answers, score

    chosen = load_scale_option(scale_name)
    extra = [chosen] if chosen is not None else []
    data = read_answers(
        list(paths),
        input_format=input_format,
        scales=extra,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
    )
    results = score(data.records, scale=chosen)
    return chosen, results, data


@cli.command("score")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale",
    "scale_name",
    help="Built-in scale id or path of a scale YAML file (default: each record's scale field).",
)
@output_options(("table", "json", "jsonl", "csv"))
@input_options
@click.option("-q", "--quiet", is_flag=True, help="Do not print the summary line on stderr.")
def score_cmd(
    paths: tuple[str, ...],
    scale_name: str | None,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
    quiet: bool,
) -> None:
    """Score answer files (YAML, JSON, CSV), folders (recursively) or - (stdin)."""
    from ketascore import output as out

    fmt = resolve_format(fmt, output)
    _, results, data = _read_and_score(
        paths, scale_name, input_format, include, exclude, max_file_size
    )
    files = len(data.files)
    if fmt == "table":
        from ketascore.render import print_issues, score_tables

        out_console = console()
        for table in score_tables(results):
            out_console.print(table)
        err = console(stderr=True)
        print_issues(err, data.issues + [i for r in results for i in r.issues])
    elif fmt == "json":
        emit(out.score_json(results, data.issues, files), output, list(paths))
    elif fmt == "jsonl":
        emit(out.score_jsonl(results, data.issues), output, list(paths))
    else:
        emit(out.score_csv(results, data.issues), output, list(paths))
    summary = out.score_summary(results, data.issues, files)
    if not quiet:
        click.echo(
            f"{summary['files']} file(s), {summary['records']} record(s), "
            f"{summary['scored']} scored, {summary['with_problems']} with problems"
            + (f", {summary['file_issues']} file issue(s)" if summary["file_issues"] else ""),
            err=True,
        )
    problems = any(i.severity == "error" for i in data.issues) or any(not r.ok for r in results)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)
