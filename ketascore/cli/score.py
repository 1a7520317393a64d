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
    check_files,
    check_input_extras,
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

ENGINES = {"auto": "auto", "python": "auto", "record": "record", "duckdb": "table"}


def summary_line(summary: dict[str, int], skipped: list[str] | None = None) -> str:
    """The summary of a run; ``skipped`` names the files of folders that were not read
    (notes, binary files, fifos)."""
    line = (
        f"{summary['files']} file(s), {summary['records']} record(s), "
        f"{summary['scored']} scored, {summary['with_problems']} with problems"
        + (f", {summary['file_issues']} file issue(s)" if summary["file_issues"] else "")
    )
    if skipped:
        from ketascore.present.render import safe  # (file names may hold escape sequences)

        more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        shown = ", ".join(safe(name) for name in skipped[:5]) + more
        line += f"; skipped (not ratings files): {shown}"
    return line


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
@click.option(
    "--memory-limit",
    metavar="SIZE",
    default="800MiB",
    show_default=True,
    help="The table engine's memory limit (DuckDB: 2GiB, 500MB ...); beyond it, it spills "
    "to the temporary directory (a 10M-row table then stays within 1 GiB).",
)
@click.option(
    "--temp-directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the table engine spills what does not fit in memory (default: DuckDB's).",
)
@provenance_options
@checks_option
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="No progress bar, no problems listed and no summary line on stderr (the exit code "
    "still says whether anything was wrong).",
)
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
    memory_limit: str | None,
    temp_directory: Path | None,
    provenance_file: Path | None,
    no_escape_formulas: bool,
    check_names: tuple[str, ...],
    quiet: bool,
) -> None:
    """Score answer files (YAML, JSON, CSV, ...), folders (recursively) or - (stdin).

    \b
    Folders are read in a stable sorted order (hidden files skipped, other files that
    are not ratings files named in the summary) by --jobs worker processes; the
    output is the same whatever the number of jobs. A large table is scored inside
    DuckDB. On a terminal a progress bar shows on stderr. The problems of the input are
    listed on stderr, errors first, in every output format.
    """
    from ketascore.api import score_paths

    chosen = checked_scale(load_scale_option(scale_name, max_file_size), check_names, max_file_size)
    engine = ENGINES[engine]
    parquet = fmt == "parquet" or (output is not None and output.suffix.lower() == ".parquet")
    fmt = "parquet" if parquet else resolve_format(fmt, output)
    inputs = list(paths)
    read_files = [f for _, f in option_files()] + [f for f in [scale_file(scale_name)] if f]
    read_files += check_files(check_names)
    plan_outputs(output_targets(fmt, output, provenance_file), inputs, read_files)
    check_input_extras(inputs, input_format)
    given = given_read_options()
    custom = any(bool(v) for v in given.values())
    if engine == "table":
        _check_table_engine(chosen, given)
        engine = "table" if not custom else "record"
    if engine != "record" and _above_limit(inputs, include, exclude, max_file_size, engine):
        engine = "record"  # (the record readers refuse a file above --max-file-size)
    options = read_options([chosen] if chosen is not None else [], max_file_size)
    config = None
    if memory_limit is not None or temp_directory is not None:
        from ketascore.engines import duckdb_config

        config = duckdb_config(memory_limit=memory_limit, temp_directory=temp_directory)
    hint = speed_hint(inputs) if engine == "auto" and not quiet else None
    if hint:
        click.echo(hint, err=True)
    bar = Progress(not quiet and is_tty(sys.stderr))
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
            rows=bar.rows,
            duckdb_config=config,
        )
    settings = {
        "engine": run.engine,
        "scale": scale_name,
        "input_format": input_format,
        "include": list(include),
        "exclude": list(exclude),
        "max_file_size": max_file_size,
        "escape_formulas": not no_escape_formulas,
    }
    with run:
        _write(run, fmt, output, not no_escape_formulas, provenance_file, settings)
        if not quiet:
            from ketascore.present.render import print_issues

            print_issues(console(stderr=True), _problems(run), run.issue_totals())
            if run.out_of_memory:
                click.echo(_memory_hint(memory_limit), err=True)
            skipped = [i.file or "" for i in run.issues if i.code == "file-skipped"]
            click.echo(summary_line(run.summary(), skipped), err=True)
        ok = run.ok
    sys.exit(Exit.OK if ok else Exit.PROBLEMS)


def _memory_hint(limit: str | None) -> str:
    """Why a table took the record engine's time: DuckDB ran out of memory."""
    return (
        f"hint: DuckDB ran out of memory under --memory-limit {limit}, even on one thread, so "
        "the input was scored row by row instead (the same results, many times slower); a "
        "larger --memory-limit, or a --temp-directory on a disk with room, keeps it in DuckDB"
    )


def _problems(run: Any) -> list[Any]:
    """The issues of the files and of the records: all of them from the record engine; the
    table engine's first ones (the summary line counts the records with problems)."""
    from ketascore.present.render import ISSUES_LISTED

    table = run.table is not None
    results = run.problem_results(ISSUES_LISTED + 1) if table else list(run.results())
    return list(run.issues) + [i for r in results for i in r.issues]


def _above_limit(
    paths: list[str],
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    limit: int,
    engine: str,
) -> bool:
    """Whether an input the table engine would read is larger than --max-file-size (the
    table engine does not check it): with --engine duckdb any file, else the only file of
    the input (the table engine takes no other)."""
    import itertools

    from ketascore.readers import walk_files

    files = (w for w in walk_files(paths, include, exclude) if isinstance(w, str))
    if engine == "table":
        candidates = list(files)
    else:
        first = list(itertools.islice(files, 2))  # (a folder of many: walked no further)
        candidates = first if len(first) == 1 else []
    for name in candidates:
        if name == "-":
            continue
        try:
            if os.path.getsize(name) > limit:
                return True
        except OSError:
            continue
    return False


def _check_table_engine(chosen: Any, given: dict[str, Any]) -> None:
    from ketascore.engines import table

    if chosen is None:
        raise UsageError("--engine duckdb scores one scale: give it with --scale")
    if not table.available():
        raise UsageError(
            "--engine duckdb needs DuckDB 2.0 or later: pip install 'ketascore[duckdb]'"
        )
    if any(v for k, v in given.items() if k != "map"):
        raise UsageError("--engine duckdb reads CSV and Parquet tables: only --map applies")


def _write(
    run: Any,
    fmt: str,
    output: Path | None,
    escape: bool,
    provenance_file: Path | None,
    settings: dict[str, Any],
) -> None:
    """Write the output and its provenance: to standard output, or to files that appear
    together or not at all."""
    from ketascore.writers import tabular as out
    from ketascore.writers.outputs import Output

    straight = run.table is not None and fmt in ("csv", "parquet")
    if straight and _write_table(run, fmt, output, escape, provenance_file, settings):
        return  # (else DuckDB could not read the input as the readers do: records it is)
    provenance = complete_provenance(run.provenance(), settings)
    files: list[Output] = []
    content: Any = None
    if fmt == "parquet":
        raise UsageError(
            "Parquet output is written by the table engine (--engine duckdb --scale ID), "
            "which did not score this input: it scores CSV and Parquet tables of one scale "
            "that DuckDB reads as the readers do (not, say, a CSV file with quote characters "
            "or a Parquet timestamp in a zone other than UTC); give those options, or write "
            "--format csv or json instead"
        )
    elif fmt == "table":
        from ketascore.present.render import score_tables

        out_console = console()
        for table in score_tables(list(run.results())):
            out_console.print(table)
    elif fmt == "json":
        content = out.score_json_stream(
            run.texts(out.result_json), run.issues, run.summary, provenance
        )
    elif fmt == "jsonl":
        content = out.score_jsonl(run.texts(out.score_line), run.issues, provenance)
    elif fmt == "csv":
        results = list(run.results())
        content = out.score_csv(results, run.issues, escape_formulas=escape)
    elif fmt == "fhir":
        from ketascore.writers.fhir import fhir_json

        content = fhir_json(list(run.results()), [run.scale] if run.scale else [])
    if content is not None:
        if output is None:
            echo_out(content)
        else:
            files.append(Output(output, lines_writer(content)))
    if fmt != "table":
        files += provenance_outputs(provenance, fmt, output, provenance_file)
    if files:
        write_outputs(files)


def _write_table(
    run: Any,
    fmt: str,
    output: Path | None,
    escape: bool,
    provenance_file: Path | None,
    settings: dict[str, Any],
) -> bool:
    """Write CSV or Parquet straight from the table engine (with its provenance); False
    when DuckDB could not read the input after all (nothing was written: the run is then
    the record engine's)."""
    from ketascore.engines.table import TableEngineError
    from ketascore.writers.outputs import Output

    def copy(path: Path) -> None:
        run.write(fmt, path, escape_formulas=escape)

    try:
        provenance = complete_provenance(run.provenance(), settings)
        files = [] if output is None else [Output(output, copy, to_path=True)]
        files += provenance_outputs(provenance, fmt, output, provenance_file)
        if output is None:
            _table_to_stdout(run, fmt, escape)
        if files:
            write_outputs(files)
    except TableEngineError:
        return False
    return True


def _table_to_stdout(run: Any, fmt: str, escape: bool) -> None:
    """The CSV or Parquet output on standard output, written to a temporary file first (a
    Parquet file is complete only once its footer is written; DuckDB may still give up on
    a CSV input, leaving it to the readers, before the last row) and copied from there a
    block at a time (the CSV was read whole into memory: 600 MB of text for 10M rows)."""
    import shutil
    import tempfile

    if fmt == "parquet" and is_tty(sys.stdout):
        raise UsageError("Parquet output is binary: give -o FILE.parquet or redirect stdout")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"scores.{fmt}"
        run.write(fmt, path, escape_formulas=escape)
        sys.stdout.flush()
        with path.open("rb") as fh:
            shutil.copyfileobj(fh, sys.stdout.buffer)
        sys.stdout.buffer.flush()
