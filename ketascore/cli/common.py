"""Shared pieces of the CLI: exit codes, output and input options, writing output."""

from __future__ import annotations

import contextlib
import enum
import functools
import gc
import itertools
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar, cast

import click

F = TypeVar("F", bound=Callable[..., Any])


class Exit(enum.IntEnum):
    OK = 0
    PROBLEMS = 1  # some input had problems; everything else was scored
    USAGE = 2  # bad option, unknown scale, unusable scale file
    INTERNAL = 3  # a bug in ketascore
    INTERRUPTED = 130
    TERMINATED = 143  # SIGTERM (a job scheduler's time limit, `kill`): 128 + 15
    HUNG_UP = 129  # SIGHUP (the terminal or the ssh session closed): 128 + 1


class UsageError(click.ClickException):
    exit_code = Exit.USAGE


@contextlib.contextmanager
def many_objects() -> Iterator[None]:
    """Python's cycle collector paused while a command holds a result per record: each of
    its passes walks every object alive, and a million records' results, change rows and
    cells (none of them in a cycle) made it walk them again and again (``change`` over 1M
    rows: about a third of the time). What cycles arise meanwhile are collected later: the
    objects made meanwhile go to the oldest generation (freeze, then unfreeze), where the
    next allocation does not walk them all at once (0.4 s of 200,000 rows' results)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.freeze()
            gc.enable()
            gc.unfreeze()


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
        type=click.IntRange(min=1),
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


OPTION_FILES = {"map": "--map", "redcap_dictionary": "--redcap-dictionary"}


def option_files() -> list[tuple[str, str]]:
    """(option, file) of each file a clinical-format option names."""
    given = given_read_options()
    files = [(flag, given[key]) for key, flag in OPTION_FILES.items() if given.get(key)]
    files += [("--questionnaire", q) for q in given.get("questionnaire") or ()]
    return files


def check_option_file(option: str, path: str | Path, max_file_size: int | None = None) -> None:
    """A file an option names must be a regular file no larger than --max-file-size (a
    device or a fifo could be read for ever)."""
    import os
    import stat

    from ketascore.readers.base import DEFAULT_MAX_FILE_SIZE
    from ketascore.readers.folders import file_kind

    limit = DEFAULT_MAX_FILE_SIZE if max_file_size is None else max_file_size
    try:
        info = os.stat(path)
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read the file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UsageError(
            f"{option} {path}: it is a {file_kind(info.st_mode)}, not a regular file; give "
            "the file itself"
        )
    if info.st_size > limit:
        raise UsageError(
            f"{option} {path}: the file is {info.st_size:,} bytes, above the limit of "
            f"{limit:,}; raise the limit with --max-file-size"
        )


def read_options(scales: list[Any], max_file_size: int | None = None) -> Any:
    """The ReadOptions of the format options given on the command line."""
    given = given_read_options()
    if not any(given.values()):  # nothing to load: keep the format readers out of start-up
        from ketascore.readers import ReadOptions

        return ReadOptions(scales=tuple(scales))
    from ketascore.readers.formats import FormatOptionError, load_read_options

    for option, path in option_files():
        check_option_file(option, path, max_file_size)

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


def check_output(
    output: Path, inputs: list[str], read_files: list[str] | None = None, what: str = "-o"
) -> None:
    """Refuse an output path that is an input, lies inside an input folder, or is a file
    the command reads (``read_files``: a scale file, a mapping, a windows file, ...)."""
    from ketascore.writers.outputs import same_path

    target = output.resolve()
    for name in inputs:
        if name != "-" and Path(name).exists():
            resolved = Path(name).resolve()
            if (
                resolved == target
                or same_path(name, output)
                or (resolved.is_dir() and resolved in target.parents)
            ):
                raise UsageError(
                    f"refusing to write {output}: it is an input (or inside an input folder); "
                    "choose another output path"
                )
    for name in read_files or []:
        if Path(name).exists() and same_path(name, output):
            raise UsageError(
                f"refusing to write {output} ({what}): the command reads it ({name}); choose "
                "another output path"
            )


def plan_outputs(
    targets: list[tuple[str, Path | None]], inputs: list[str], read_files: list[str]
) -> None:
    """Check, before anything is read, every file the command will write (``targets``:
    (option, path)): each is a regular file (or new) in a writable folder, none is a file
    the command reads, and no two are the same file. Usage errors (exit 2) otherwise."""
    from ketascore.writers.outputs import OutputError, output_target, same_path

    chosen = [(what, path) for what, path in targets if path is not None]
    for i, (what, path) in enumerate(chosen):
        try:
            output_target(path)
        except OutputError as exc:
            raise UsageError(str(exc)) from None
        for other, earlier in chosen[:i]:
            if same_path(path, earlier):
                raise UsageError(
                    f"{path} would be written twice ({other} and {what}); give each output its "
                    "own path"
                )
        check_output(path, inputs, read_files, what)


def sidecar(output: Path) -> Path:
    """The provenance file written beside an output file."""
    return output.with_name(output.name + ".provenance.json")


def lines_writer(text_or_lines: Any) -> Callable[[Any], None]:
    def write(fh: Any) -> None:
        if isinstance(text_or_lines, str):
            fh.write(text_or_lines)
            return
        for chunk in _chunks(text_or_lines):
            fh.write(chunk)

    return write


def write_outputs(outputs: list[Any]) -> None:
    """Write output files (``ketascore.writers.outputs.Output``) all or none; a file that
    cannot be written is a usage error (exit 2) that says why."""
    from ketascore.writers.outputs import OutputError, write_together

    names = ", ".join(str(o.path) for o in outputs)
    try:
        write_together(outputs)
    except OutputError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(
            f"cannot write {names}: {exc.strerror or exc}; no output file was changed"
        ) from None


def _chunks(lines: Iterable[str]) -> Iterator[str]:
    """The lines joined a thousand at a time: a write for each line (and, on standard
    output, a flush) took a fifth of a 1M-row JSON Lines file and half of its output on
    standard output."""
    lines = iter(lines)
    while chunk := list(itertools.islice(lines, 1024)):
        yield "".join(chunk)


def echo_out(text_or_lines: Any) -> None:
    """Write text (or an iterable of lines) to standard output."""
    if isinstance(text_or_lines, str):
        click.echo(text_or_lines, nl=False)
    else:
        for chunk in _chunks(text_or_lines):
            click.echo(chunk, nl=False)


def emit(text_or_lines: Any, output: Path | None, inputs: list[str]) -> None:
    """Write text (or an iterable of lines) to stdout or atomically to ``output``."""
    from ketascore.writers.outputs import Output

    if output is None:
        echo_out(text_or_lines)
        return
    check_output(output, inputs)
    write_outputs([Output(output, lines_writer(text_or_lines))])


SCALE_HELP = (  # (change, plot)
    "Built-in scale id or path of a scale file. Without it, the one built-in scale the "
    "input holds (found by reading it once more; give --scale to skip that)."
)


def scale_file(name: str | None) -> str | None:
    """The file a --scale option names, when it names a file rather than a built-in id."""
    if name is None or not Path(name).exists():
        return None
    return name


def load_scale_option(name: str | None, max_file_size: int | None = None) -> Any:
    if name is None:
        return None
    from ketascore.core.library import UnknownScaleError, resolve_scale
    from ketascore.core.scale import ScaleError

    if scale_file(name) is not None:
        check_option_file("--scale", name, max_file_size)

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


def option_file_hashes(
    extra: Sequence[tuple[str, str | Path | None]] = (),
) -> list[dict[str, str]]:
    """Option, file and sha256 of each file an option names (--map, --redcap-dictionary,
    --questionnaire, and ``extra``: --windows ...): they change the numbers as much as the
    inputs do."""
    from ketascore.core.provenance import file_digest

    out = []
    for option, path in [*option_files(), *extra]:
        if path is None:
            continue
        try:
            digest = file_digest(path)
        except OSError:
            continue
        out.append({"option": option, "file": str(path), "sha256": digest})
    return out


def complete_provenance(
    provenance: dict[str, Any],
    settings: dict[str, Any],
    extra_files: Sequence[tuple[str, str | Path | None]] = (),
) -> dict[str, Any]:
    """Add what else can change a number to a provenance record: the settings (engine,
    baseline rule, thresholds, ...) and each option file with its sha256, so that two runs
    that give different numbers never carry the same provenance."""
    given = given_read_options()
    settings = {
        **settings,
        "category": given.get("category"),
        "sheet": given.get("sheet"),
    }
    provenance["settings"] = _shown(settings)
    provenance["option_files"] = _shown(option_file_hashes(list(extra_files)))
    return provenance


def _shown(value: Any) -> Any:
    """Options as outputs show them: text the terminal gave as bytes that are not UTF-8
    shows them as U+FFFD (see ``readers.display_name``), so the output can be written."""
    from ketascore.readers.base import display_name

    if isinstance(value, str):
        return display_name(value)
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    return value


def provenance_outputs(
    provenance: dict[str, Any], fmt: str, output: Path | None, provenance_file: Path | None
) -> list[Any]:
    """The provenance files to write with an output: ``--provenance FILE``, and beside a
    CSV, ADaM, FHIR or Parquet file ``<output>.provenance.json`` (JSON and JSON Lines carry
    the provenance inside)."""
    from ketascore.writers.jsontext import indented
    from ketascore.writers.outputs import Output

    text = indented(provenance) + "\n"
    outputs = []
    if provenance_file is not None:
        outputs.append(Output(provenance_file, lines_writer(text)))
    if fmt in SIDECAR_FORMATS and output is not None:
        outputs.append(Output(sidecar(output), lines_writer(text)))
    return outputs


SIDECAR_FORMATS = ("csv", "adam", "fhir", "parquet")


def output_targets(
    fmt: str, output: Path | None, provenance_file: Path | None, **more: Path | None
) -> list[tuple[str, Path | None]]:
    """(option, path) of every file a command writes, for ``plan_outputs``."""
    targets: list[tuple[str, Path | None]] = [("-o", output), ("--provenance", provenance_file)]
    if fmt in SIDECAR_FORMATS and output is not None:
        targets.append(("the provenance file beside -o", sidecar(output)))
    targets += [(f"--{name}", path) for name, path in more.items()]
    return targets


def window_options(func: F) -> F:
    """--windows and --impute: how records become analysis visits (change, plot, report)."""
    func = click.option(
        "--impute",
        type=click.Choice(["locf", "bocf"]),
        multiple=True,
        help="Fill post-baseline visits without a value: locf carries the subject's last "
        "observed post-baseline value forward; bocf carries the baseline forward for a "
        "subject with no post-baseline value. Give both to use both.",
    )(func)
    func = click.option(
        "--windows",
        "windows_file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Assign records to analysis visits by study day (a YAML windows file).",
    )(func)
    return func


@dataclass(frozen=True)
class ChangeSettings:
    """How change from baseline is computed: the options of ``change_options``."""

    score_name: str
    baseline: str | None
    by: str | None
    response_percent: float | None
    remission_at_most: float | None
    windows_file: Path | None
    impute: tuple[str, ...]

    @classmethod
    def of(cls, params: dict[str, Any]) -> ChangeSettings:
        """The settings among a command's parameters."""
        return cls(**{f.name: params[f.name] for f in fields(cls)})


def change_options(func: F) -> F:
    """--score, --baseline, --by, --response-percent, --remission-at-most, --windows and
    --impute: how change from baseline is computed (change, plot, report), given to the
    command as one ChangeSettings, ``how``."""

    names = {f.name for f in fields(ChangeSettings)}

    @functools.wraps(func)
    def command(**params: Any) -> Any:
        rest = {k: v for k, v in params.items() if k not in names}
        return func(how=ChangeSettings.of(params), **rest)

    command = window_options(command)
    for option in reversed(CHANGE_OPTIONS):
        command = option(command)
    return cast(F, command)


class FiniteFloat(click.FloatRange):
    """A number option that is a finite number (in a range, if given): click reads "nan" and
    "inf" as floats, and NaN passes every range check, so a threshold of nan silently made
    nobody a responder."""

    def __init__(self, *bounds: Any, **kwargs: Any) -> None:
        super().__init__(*bounds, **kwargs)
        if self.min is None and self.max is None:
            self.name = "float"  # (its help says FLOAT, with no range)

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


CHANGE_OPTIONS = (
    click.option(
        "--score", "score_name", default="total", show_default=True, help="Score to analyse."
    ),
    click.option(
        "--baseline",
        help="Baseline visit (default: the record the source flags as baseline (SDTM QSBLFL), "
        "else the visit named 'baseline', else each subject's earliest by study day, then date, "
        "then order in the input).",
    ),
    click.option(
        "--by",
        help="Group by a carried field (e.g. arm) or a baseline classification of a scale "
        "(e.g. hamd17.anxious_depression).",
    ),
    click.option(
        "--response-percent",
        type=FiniteFloat(0, 100, min_open=True),
        help="Response = reduction of at least this percent (default: the scale's, usually 50).",
    ),
    click.option(
        "--remission-at-most",
        type=FiniteFloat(),
        help="Remission = score at most this value (default: the scale's threshold).",
    ),
)


# The extra of pyproject.toml that installs each optional package a command may import.
EXTRAS = {
    "matplotlib": "plot",
    "openpyxl": "xlsx",
    "sqlglot": "sql",
    "duckdb": "duckdb",
    "pyarrow": "duckdb",
    "pyspark": "spark",
    "pandas": "dataframe",
    "polars": "dataframe",
    "numpy": "stats",
    "scipy": "stats",
}


def install_hint(package: str) -> str:
    """``pip install 'ketascore[plot]'``: the command that installs an optional package."""
    return f"pip install 'ketascore[{EXTRAS[package]}]'"


def missing_extra(exc: BaseException, command: str | None) -> str | None:
    """The message of a command stopped by an optional package that is not installed (a
    usage error, exit 2, not a bug), or None when ``exc`` is anything else."""
    if not isinstance(exc, ImportError):
        return None
    package = (exc.name or "").partition(".")[0]
    if package not in EXTRAS:
        return None
    what = f"ketascore {command}" if command else "this command"
    return f"{what} needs {package}, which is not installed; install it with: " + install_hint(
        package
    )


# Inputs that need an optional package, by extension and by --input-format.
INPUT_PACKAGES = {".xlsx": "openpyxl", ".xlsm": "openpyxl", ".parquet": "pyarrow", ".pq": "pyarrow"}
FORMAT_PACKAGES = {"xlsx": "openpyxl", "parquet": "pyarrow"}


def check_input_extras(paths: list[str], input_format: str | None) -> None:
    """A usage error (exit 2) naming the install command when an input named on the command
    line needs an optional package that is not installed. (A file of that kind found in a
    folder is reported as a file issue with the same command, and the rest is read.)"""
    from importlib.util import find_spec

    wanted: dict[str, str] = {}
    if input_format in FORMAT_PACKAGES:
        wanted[FORMAT_PACKAGES[input_format]] = f"--input-format {input_format}"
    if given_read_options().get("sheet"):
        wanted.setdefault("openpyxl", "--sheet")
    for name in paths:
        package = INPUT_PACKAGES.get(Path(name).suffix.lower())
        if package is not None and not Path(name).is_dir():
            wanted.setdefault(package, name)
    for package, why in wanted.items():
        if find_spec(package) is None:
            raise UsageError(
                f"reading {why} needs {package}, which is not installed; install it with: "
                + install_hint(package)
            )


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


def check_files(names: Sequence[str]) -> list[str]:
    """The files ``--checks`` names (rather than built-in check files)."""
    if not names:  # (the check files' module is not imported by a command without them)
        return []
    from ketascore.core.checksets import builtin_check_files

    return [n for n in names if n not in builtin_check_files() and Path(n).exists()]


def load_check_sets(names: Sequence[str], max_file_size: int | None = None) -> list[Any]:
    """The check files of ``--checks`` (a usage error if one is unknown or has problems)."""
    from ketascore.core.checksets import UnknownCheckSetError, resolve_check_set
    from ketascore.core.scale import ScaleError

    for path in check_files(names):
        check_option_file("--checks", path, max_file_size)
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


def checked_scale(scale: Any, names: Sequence[str], max_file_size: int | None = None) -> Any:
    """``scale`` (the scale of --scale) with the checks of ``--checks`` added."""
    if not names:
        return scale
    check_sets = load_check_sets(names, max_file_size)
    require_checked_scales(check_sets, [scale])
    return add_checks(scale, check_sets)
