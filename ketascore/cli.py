"""The command-line interface: parses options, calls the library, formats the output."""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ketascore import __version__

F = TypeVar("F", bound=Callable[..., Any])


class Exit(enum.IntEnum):
    OK = 0
    PROBLEMS = 1  # some input had problems; everything else was scored
    USAGE = 2  # bad option, unknown scale, unusable scale file
    INTERNAL = 3  # a bug in ketascore
    INTERRUPTED = 130


class UsageError(click.ClickException):
    exit_code = Exit.USAGE


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def output_options(formats: tuple[str, ...]) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        func = click.option(
            "-o",
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write to FILE (written completely or not at all) instead of stdout.",
        )(func)
        func = click.option(
            "--format",
            "fmt",
            type=click.Choice(formats),
            help="Output format (default: table on a terminal, json when piped or written).",
        )(func)
        return func

    return decorate


def input_options(func: F) -> F:
    func = click.option(
        "--max-file-size",
        type=int,
        default=1 << 30,
        show_default=True,
        help="Refuse input files larger than this many bytes.",
    )(func)
    func = click.option("--exclude", multiple=True, help="Skip files matching this glob.")(func)
    func = click.option(
        "--include", multiple=True, help="In folders, read only files matching this glob."
    )(func)
    func = click.option(
        "--input-format",
        type=click.Choice(["yaml", "json", "jsonl", "csv", "csv-long"]),
        help="Format of the input (default: from the extension or the content).",
    )(func)
    return func


def _resolve_format(fmt: str | None, output: Path | None) -> str:
    if fmt:
        if fmt == "table" and output is not None:
            raise UsageError("--format table writes to the terminal; choose json, jsonl or csv")
        return fmt
    if output is not None:
        ext = output.suffix.lower().lstrip(".")
        return ext if ext in ("json", "jsonl", "csv") else "json"
    return "table" if _is_tty(sys.stdout) else "json"


def _emit(text_or_lines: Any, output: Path | None, inputs: list[str]) -> None:
    """Write text (or an iterable of lines) to stdout or atomically to ``output``."""
    from ketascore.output import atomic_writer

    if output is None:
        if isinstance(text_or_lines, str):
            click.echo(text_or_lines, nl=False)
        else:
            for line in text_or_lines:
                click.echo(line, nl=False)
        return
    target = output.resolve()
    for name in inputs:
        if name != "-" and Path(name).exists():
            resolved = Path(name).resolve()
            if resolved == target or (resolved.is_dir() and resolved in target.parents):
                raise UsageError(
                    f"refusing to write {output}: it is an input (or inside an input folder); "
                    "choose another output path"
                )
    with atomic_writer(output) as fh:
        if isinstance(text_or_lines, str):
            fh.write(text_or_lines)
        else:
            for line in text_or_lines:
                fh.write(line)


def _load_scale_option(name: str | None) -> Any:
    if name is None:
        return None
    from ketascore.library import UnknownScaleError, resolve_scale
    from ketascore.scale import ScaleError

    try:
        return resolve_scale(name)
    except UnknownScaleError as exc:
        raise UsageError(str(exc)) from None
    except ScaleError as exc:
        raise UsageError(
            f"scale file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None


# --------------------------------------------------------------------------------------


class KetascoreGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(Exit.INTERRUPTED)
        except BrokenPipeError:
            # the reader of our output went away (e.g. `| head`): not an error of ours
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(Exit.OK)
        except Exception as exc:
            if ctx.find_root().params.get("traceback"):
                raise
            click.echo(
                f"Error: internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in ketascore; rerun with --traceback and report it.",
                err=True,
            )
            ctx.exit(Exit.INTERNAL)


@click.group(cls=KetascoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ketascore")
@click.option("--traceback", is_flag=True, help="Show the full traceback of internal errors.")
def cli(traceback: bool) -> None:
    """Score clinical rating scales and report change from baseline.

    \b
    Exit codes: 0 all input scored cleanly; 1 some input had problems (the rest
    was scored and the problems reported); 2 usage error (bad option, unknown or
    unusable scale); 3 internal error; 130 interrupted.
    """


# --------------------------------------------------------------------------------------
# scales


@cli.group()
def scales() -> None:
    """List, show and check scale definitions."""


@scales.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
def scales_list(fmt: str | None) -> None:
    """List the built-in scales."""
    from ketascore.library import builtin_ids, load_builtin
    from ketascore.output import dumps

    loaded = [load_builtin(i) for i in builtin_ids()]
    fmt = fmt or ("table" if _is_tty(sys.stdout) else "json")
    if fmt == "json":
        click.echo(
            dumps(
                [
                    {
                        "id": s.id,
                        "name": s.name,
                        "version": s.version,
                        "rater": s.definition.rater,
                        "items": len(s.items),
                        "scores": {r.id: [r.lo, r.hi] for r in s.scores},
                        "licence": s.definition.licence.status,
                    }
                    for s in loaded
                ]
            )
        )
        return
    from ketascore.render import scales_table

    _console().print(scales_table(loaded))


@scales.command("show")
@click.argument("scale")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
def scales_show(scale: str, fmt: str | None) -> None:
    """Show a scale: items, scores, bands, outcomes, rules, licence and sources."""
    loaded = _load_scale_option(scale)
    fmt = fmt or ("table" if _is_tty(sys.stdout) else "json")
    from ketascore.card import scale_card, scale_card_data

    if fmt == "json":
        from ketascore.output import dumps

        click.echo(dumps(scale_card_data(loaded)))
        return
    _console().print(scale_card(loaded))


@scales.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--allow-shadow",
    is_flag=True,
    help="Allow a scale id that is also the id of a built-in scale.",
)
def scales_check(files: tuple[str, ...], allow_shadow: bool) -> None:
    """Check scale files: schema, items, scores, ranges, bands, and the worked examples.

    Every problem is reported, with file:line:column. Exit code 1 if any file has one.
    """
    from ketascore.authoring import check_scale_file

    failed = False
    for name in files:
        problems = check_scale_file(name, allow_shadow=allow_shadow)
        if problems:
            failed = True
            for p in problems:
                click.echo(p)
            click.echo(f"{name}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        else:
            click.echo(f"{name}: ok")
    if failed:
        sys.exit(Exit.PROBLEMS)


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

    chosen = _load_scale_option(scale_name)
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

    fmt = _resolve_format(fmt, output)
    _, results, data = _read_and_score(
        paths, scale_name, input_format, include, exclude, max_file_size
    )
    files = len(data.files)
    if fmt == "table":
        from ketascore.render import print_issues, score_tables

        console = _console()
        for table in score_tables(results):
            console.print(table)
        err = _console(stderr=True)
        print_issues(err, data.issues + [i for r in results for i in r.issues])
    elif fmt == "json":
        _emit(out.score_json(results, data.issues, files), output, list(paths))
    elif fmt == "jsonl":
        _emit(out.score_jsonl(results, data.issues), output, list(paths))
    else:
        _emit(out.score_csv(results, data.issues), output, list(paths))
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
    help="Baseline visit (default: the visit named 'baseline', else the earliest by study day, "
    "then date, then order in the input).",
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
@click.option("--summary", "summary_only", is_flag=True, help="With csv: write the summary table.")
@output_options(("table", "json", "jsonl", "csv"))
@input_options
def change_cmd(
    paths: tuple[str, ...],
    scale_name: str,
    score_name: str,
    baseline: str | None,
    by: str | None,
    response_percent: float | None,
    remission_at_most: float | None,
    summary_only: bool,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """Change from baseline per subject and a per-visit summary, for one score of one scale."""
    from ketascore import output as out
    from ketascore.api import read_answers, score
    from ketascore.change import compute_change
    from ketascore.library import ScaleSet
    from ketascore.scale import clean_number

    fmt = _resolve_format(fmt, output)
    scale = _load_scale_option(scale_name)
    if score_name not in scale.score_ids:
        raise UsageError(
            f"scale {scale.id} has no score {score_name!r}; scores: {', '.join(scale.score_ids)}"
        )
    data = read_answers(
        list(paths),
        input_format=input_format,
        scales=[scale],
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
    )
    known = ScaleSet([scale])
    by_scale = by.partition(".")[0] if by and "." in by else None
    other = known.get(by_scale) if by_scale else None
    if by_scale and other is None:
        raise UsageError(f"--by {by}: unknown scale {by_scale!r}")
    if other is not None:
        name = by.partition(".")[2] if by else ""
        if name not in {c.id for c in other.classifications} and name not in other.score_ids:
            raise UsageError(
                f"--by {by}: {other.id} has no classification or score {name!r}; "
                f"classifications: {', '.join(c.id for c in other.classifications) or 'none'}"
            )
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
    )
    record_issues = [i for r in results if r.scale == scale.id for i in r.issues]
    report.issues[:0] = data.issues + record_issues
    if fmt == "table":
        from ketascore.render import change_tables, print_issues

        _console().print(change_tables(report, scale))
        print_issues(_console(stderr=True), report.issues)
    elif fmt == "json":
        _emit(out.change_json(report), output, list(paths))
    elif fmt == "jsonl":
        _emit(out.change_jsonl(report), output, list(paths))
    else:
        _emit(out.change_csv(report, summary_only), output, list(paths))
    problems = any(i.severity == "error" for i in report.issues)
    sys.exit(Exit.PROBLEMS if problems else Exit.OK)


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="ketascore")
    except KeyboardInterrupt:  # pragma: no cover - interrupted before click took over
        click.echo("Interrupted.", err=True)
        sys.exit(Exit.INTERRUPTED)


if __name__ == "__main__":  # pragma: no cover
    main()
