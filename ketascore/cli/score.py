"""`ketascore score`: score answer files, folders and tables (``ketascore.api.score_paths``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

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
    write_provenance,
)

# pydantic looks for plugins among the entry points of every installed distribution the
# first time a model is built: tens of milliseconds of a command that takes a few hundred.
# The command line has no use for them (set the variable yourself to decide otherwise).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

ENGINES = {"auto": "auto", "python": "auto", "record": "record", "duckdb": "table"}


def summary_line(summary: dict[str, int]) -> str:
    return (
        f"{summary['files']} file(s), {summary['records']} record(s), "
        f"{summary['scored']} scored, {summary['with_problems']} with problems"
        + (f", {summary['file_issues']} file issue(s)" if summary["file_issues"] else "")
    )


@cli.command("score")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--scale",
    "scale_name",
    help="Built-in scale id or path of a scale YAML file (default: each record's scale field).",
)
@output_options(("table", "json", "jsonl", "csv", "fhir", "parquet"))
@input_options
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    help="Worker processes for folders of many files (default: the number of cores).",
)
@click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    default="auto",
    show_default=True,
    help="auto: a large CSV or Parquet table of one scale is scored inside DuckDB when it is "
    "installed, everything else record by record; record: always record by record; duckdb: "
    "CSV and Parquet tables inside DuckDB (needs --scale). The results are the same.",
)
@provenance_options
@checks_option
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary line on stderr.")
def score_cmd(
    paths: tuple[str, ...],
    scale_name: str | None,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
    jobs: int | None,
    engine: str,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    check_names: tuple[str, ...],
    quiet: bool,
) -> None:
    """Score answer files (YAML, JSON, CSV, ...), folders (recursively) or - (stdin).

    \b
    Folders are read in a stable sorted order (hidden files skipped) by --jobs worker
    processes; the output is the same whatever the number of jobs. A large table is
    scored inside DuckDB. On a terminal a progress bar shows on stderr.
    """
    from ketascore.api import score_paths

    chosen = checked_scale(load_scale_option(scale_name), check_names)
    engine = ENGINES[engine]
    parquet = fmt == "parquet" or (output is not None and output.suffix.lower() == ".parquet")
    fmt = "parquet" if parquet else resolve_format(fmt, output)
    inputs = list(paths)
    if output is not None:
        check_output(output, inputs)
    given = given_read_options()
    custom = any(bool(v) for v in given.values())
    if engine == "table":
        _check_table_engine(chosen, given)
        engine = "table" if not custom else "record"
    options = read_options([chosen] if chosen is not None else [])
    bar = _Progress(not quiet and is_tty(sys.stderr))
    with bar as progress:
        run = score_paths(
            inputs,
            scale=chosen,
            engine=engine,
            input_format=input_format,
            include=include,
            exclude=exclude,
            max_file_size=max_file_size,
            jobs=jobs,
            options=options,
            custom_options=custom,
            progress=progress,
            walked=bar.set_total,
        )
    with run:
        _write(run, fmt, output, inputs, not no_escape_formulas, provenance_file)
        if not quiet:
            click.echo(summary_line(run.summary()), err=True)
        ok = run.ok
    sys.exit(Exit.OK if ok else Exit.PROBLEMS)


def _check_table_engine(chosen: Any, given: dict[str, Any]) -> None:
    from ketascore.engines import table

    if chosen is None:
        raise UsageError("--engine duckdb scores one scale: give it with --scale")
    if not table.available():
        raise UsageError("--engine duckdb needs DuckDB: pip install 'ketascore[duckdb]'")
    if any(v for k, v in given.items() if k != "map"):
        raise UsageError("--engine duckdb reads CSV and Parquet tables: only --map applies")


def _write(
    run: Any,
    fmt: str,
    output: Path | None,
    inputs: list[str],
    escape: bool,
    provenance_file: Path | None,
) -> None:
    from ketascore.writers import tabular as out

    provenance = run.provenance()
    written = False
    if run.table is not None and fmt in ("csv", "parquet"):
        from ketascore.engines.table import TableEngineError

        if output is None and fmt == "parquet":
            raise UsageError("Parquet output needs a file: -o FILE.parquet")
        try:
            if output is not None:
                run.write(fmt, output, escape_formulas=escape)
            else:
                click.echo(run.csv_text(escape_formulas=escape), nl=False)
            written = True
        except TableEngineError:
            pass  # DuckDB could not read it as the readers do: the record engine scored it
    if written:
        pass
    elif fmt == "parquet":
        raise UsageError(
            "Parquet output is written by the table engine: --engine duckdb --scale ID"
        )
    elif fmt == "table":
        from ketascore.present.render import print_issues, score_tables

        results = list(run.results())
        out_console = console()
        for table in score_tables(results):
            out_console.print(table)
        print_issues(console(stderr=True), run.issues + [i for r in results for i in r.issues])
    elif fmt == "json":
        emit(
            out.score_json_stream(run.results(), run.issues, run.summary, provenance),
            output,
            inputs,
        )
    elif fmt == "jsonl":
        emit(out.score_jsonl(run.results(), run.issues, provenance), output, inputs)
    elif fmt == "csv":
        results = list(run.results())
        emit(out.score_csv(results, run.issues, escape_formulas=escape), output, inputs)
    elif fmt == "fhir":
        from ketascore.writers.fhir import fhir_json

        emit(fhir_json(list(run.results()), [run.scale] if run.scale else []), output, inputs)
    if fmt != "table":
        write_provenance(provenance, fmt, output, provenance_file, inputs)


class _Progress:
    """A rich progress bar on stderr (files and records done, rate, time left), or nothing."""

    def __init__(self, show: bool):
        self.show = show
        self.bar: Any = None
        self.task: Any = None

    def set_total(self, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, total=total)

    def __enter__(self) -> Any:
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files"),
            TextColumn("{task.fields[records]:,} records"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("score", total=None, records=0, rate="")

        def update(files_done: int, records_done: int) -> None:
            elapsed = self.bar.tasks[0].elapsed or 0.0
            rate = f"{files_done / elapsed:,.0f} files/s" if elapsed > 0 else ""
            self.bar.update(self.task, completed=files_done, records=records_done, rate=rate)

        return update

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
