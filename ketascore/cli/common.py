"""Shared pieces of the CLI: exit codes, output and input options, writing output."""

from __future__ import annotations

import enum
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class Exit(enum.IntEnum):
    OK = 0
    PROBLEMS = 1  # some input had problems; everything else was scored
    USAGE = 2  # bad option, unknown scale, unusable scale file
    INTERNAL = 3  # a bug in ketascore
    INTERRUPTED = 130


class UsageError(click.ClickException):
    exit_code = Exit.USAGE


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    # Data are printed as they are: no markup ([bold]) or emoji (:smile:) codes are read from
    # subject ids, visits, labels or messages, which come from files of many hands.
    return Console(stderr=stderr, highlight=False, soft_wrap=False, markup=False, emoji=False)


def is_tty(stream: Any) -> bool:
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
        type=click.Choice(INPUT_FORMATS),
        help="Format of the input (default: from the extension or the content).",
    )(func)
    return format_options(func)


# Kept here rather than asked of ketascore.readers so that `--help` imports nothing heavy;
# a test checks it against readers.input_formats().
INPUT_FORMATS = [
    "yaml",
    "json",
    "jsonl",
    "csv",
    "csv-long",
    "csv-mapped",
    "xlsx",
    "xpt",
    "parquet",
    "sdtm",
    "redcap",
    "fhir",
]
_READ_OPTIONS = "ketascore.read_options"


def _stash(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_READ_OPTIONS, {})[param.name] = value
    return value


def format_options(func: F) -> F:
    """Options of the clinical-format readers. They are kept in the click context (read
    them with ``read_options``) so that every command taking input accepts them."""
    specs: list[tuple[str, dict[str, Any]]] = [
        ("--category", {"help": "SDTM: the QSCAT/RSCAT to read (default: the scale's)."}),
        (
            "--questionnaire",
            {
                "multiple": True,
                "type": click.Path(exists=True, dir_okay=False),
                "help": "FHIR: a Questionnaire giving answer ordinalValues and stored totals.",
            },
        ),
        (
            "--redcap-dictionary",
            {
                "type": click.Path(exists=True, dir_okay=False),
                "help": "REDCap: the data dictionary CSV (needed for label exports).",
            },
        ),
        ("--sheet", {"help": "Spreadsheets: the sheet to read (default: the first)."}),
        (
            "--map",
            {
                "type": click.Path(exists=True, dir_okay=False),
                "help": "A column mapping file (YAML) describing a table's subject, visit and "
                "item columns.",
            },
        ),
    ]
    for flag, kwargs in specs:
        func = click.option(flag, expose_value=False, callback=_stash, **kwargs)(func)
    return func


def given_read_options() -> dict[str, Any]:
    """The clinical-format options given on the command line, by name."""
    return dict(click.get_current_context().meta.get(_READ_OPTIONS, {}))


def read_options(scales: list[Any]) -> Any:
    """The ReadOptions of the format options given on the command line."""
    given = given_read_options()
    if not any(given.values()):  # nothing to load: keep the format readers out of start-up
        from ketascore.readers import ReadOptions

        return ReadOptions(scales=tuple(scales))
    from ketascore.readers.formats import FormatOptionError, load_read_options

    try:
        return load_read_options(
            map=given.get("map"),
            sheet=given.get("sheet"),
            redcap_dictionary=given.get("redcap_dictionary"),
            questionnaire=given.get("questionnaire") or None,
            category=given.get("category"),
            scales=scales,
        )
    except FormatOptionError as exc:
        raise UsageError("\n".join(exc.problems)) from None


def resolve_format(fmt: str | None, output: Path | None) -> str:
    if fmt:
        if fmt == "table" and output is not None:
            raise UsageError("--format table writes to the terminal; choose json, jsonl or csv")
        return fmt
    if output is not None:
        ext = output.suffix.lower().lstrip(".")
        if ext == "xpt":
            return "adam"
        return ext if ext in ("json", "jsonl", "csv") else "json"
    return "table" if is_tty(sys.stdout) else "json"


def check_output(output: Path, inputs: list[str]) -> None:
    """Refuse an output path that is an input or lies inside an input folder."""
    target = output.resolve()
    for name in inputs:
        if name != "-" and Path(name).exists():
            resolved = Path(name).resolve()
            if resolved == target or (resolved.is_dir() and resolved in target.parents):
                raise UsageError(
                    f"refusing to write {output}: it is an input (or inside an input folder); "
                    "choose another output path"
                )


def emit(text_or_lines: Any, output: Path | None, inputs: list[str]) -> None:
    """Write text (or an iterable of lines) to stdout or atomically to ``output``."""
    from ketascore.writers.tabular import atomic_writer

    if output is None:
        if isinstance(text_or_lines, str):
            click.echo(text_or_lines, nl=False)
        else:
            for line in text_or_lines:
                click.echo(line, nl=False)
        return
    check_output(output, inputs)
    with atomic_writer(output) as fh:
        if isinstance(text_or_lines, str):
            fh.write(text_or_lines)
        else:
            for line in text_or_lines:
                fh.write(line)


def load_scale_option(name: str | None) -> Any:
    if name is None:
        return None
    from ketascore.core.library import UnknownScaleError, resolve_scale
    from ketascore.core.scale import ScaleError

    try:
        return resolve_scale(name)
    except UnknownScaleError as exc:
        raise UsageError(str(exc)) from None
    except ScaleError as exc:
        raise UsageError(
            f"scale file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None


def provenance_options(func: F) -> F:
    func = click.option(
        "--no-escape-formulas",
        is_flag=True,
        help="In CSV output, do not prefix text cells starting with = + - @ with a quote.",
    )(func)
    func = click.option(
        "--provenance",
        "provenance_file",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Also write the provenance (version, scales and their sha256, inputs and their "
        "sha256) to FILE as JSON.",
    )(func)
    return func


def write_provenance(
    provenance: dict[str, Any],
    fmt: str,
    output: Path | None,
    provenance_file: Path | None,
    inputs: list[str],
) -> None:
    """JSON and JSON Lines carry the provenance inside; CSV, ADaM and FHIR files get a
    sidecar ``<output>.provenance.json``; ``--provenance FILE`` writes it wherever asked."""
    import json

    text = json.dumps(provenance, indent=2, ensure_ascii=False) + "\n"
    targets = []
    if provenance_file is not None:
        targets.append(provenance_file)
    if fmt in ("csv", "adam", "fhir") and output is not None:
        targets.append(output.with_name(output.name + ".provenance.json"))
    for target in targets:
        emit(text, target, inputs)


def window_options(func: F) -> F:
    """--windows and --impute: how records become analysis visits (change, plot, report)."""
    func = click.option(
        "--impute",
        type=click.Choice(["locf"]),
        help="Carry the last observed post-baseline value forward to later visits.",
    )(func)
    func = click.option(
        "--windows",
        "windows_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Assign records to analysis visits by study day (a YAML windows file).",
    )(func)
    return func


def checks_option(func: F) -> F:
    """--checks: add the rating checks of a check file to its scale for this run."""
    return click.option(
        "--checks",
        "check_names",
        multiple=True,
        metavar="NAME|FILE",
        help="Add the rating checks of a check file to its scale for this run: a built-in "
        "one (madrs-visit-swings, hamd17-visit-swings) or the path of your own. A scale "
        "with checks across visits is scored record by record.",
    )(func)


def load_check_sets(names: tuple[str, ...] | list[str]) -> list[Any]:
    """The check files of ``--checks`` (a usage error if one is unknown or has problems)."""
    from ketascore.core.checksets import UnknownCheckSetError, resolve_check_set
    from ketascore.core.scale import ScaleError

    found = []
    for name in names:
        try:
            found.append(resolve_check_set(name))
        except UnknownCheckSetError as exc:
            raise UsageError(str(exc)) from None
        except ScaleError as exc:
            raise UsageError(
                f"check file {exc.source} has problems:\n" + "\n".join(exc.problems)
            ) from None
    return found


def add_checks(scale: Any, check_sets: list[Any]) -> Any:
    """``scale`` with the checks of those ``check_sets`` that are for it."""
    from ketascore.core.checksets import with_check_sets
    from ketascore.core.scale import ScaleError

    mine = [c for c in check_sets if c.scale == scale.id]
    if not mine:
        return scale
    try:
        return with_check_sets(scale, mine)
    except ScaleError as exc:
        raise UsageError(
            f"check file {exc.source} does not fit scale {scale.id}:\n" + "\n".join(exc.problems)
        ) from None


def require_checked_scales(check_sets: list[Any], scales: list[Any]) -> None:
    """A usage error for a check file whose scale is not among ``scales``."""
    ids = {s.id for s in scales if s is not None}
    for check_set in check_sets:
        if check_set.scale not in ids:
            given = ", ".join(sorted(ids)) or "none; give it with --scale"
            raise UsageError(
                f"--checks {check_set.id}: its checks are for scale {check_set.scale}, which "
                f"is not a scale of this run (--scale: {given})"
            )


def checked_scale(scale: Any, names: tuple[str, ...]) -> Any:
    """``scale`` (the scale of --scale) with the checks of ``--checks`` added."""
    if not names:
        return scale
    check_sets = load_check_sets(names)
    require_checked_scales(check_sets, [scale])
    return add_checks(scale, check_sets)
