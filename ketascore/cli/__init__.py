"""The command-line interface: parses options, calls the library, formats the output.

Each command lives in its own module of this package and registers itself on ``cli``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from ketascore import __version__
from ketascore.cli.common import Exit, missing_extra

# pydantic looks for plugins among the entry points of every installed distribution the
# first time a model is built: tens of milliseconds of a command that takes a few hundred.
# The command line has no use for them (set the variable yourself to decide otherwise).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# The commands, each in the module of this package of the same name, where it registers
# itself on `cli`. A command's module is imported when the command is run (`--help` imports
# them all to list them), so that `ketascore score` does not import the others.
COMMANDS = ("change", "clinic", "model", "plot", "report", "scales", "score", "sql")


class KetascoreGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(f"ketascore.cli.{cmd_name}")
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        own = ctx.params.get("traceback") and not os.environ.get("KETASCORE_TRACEBACK")
        try:
            with _terminate_as_interrupt():
                return self._invoke(ctx)
        finally:
            if own:  # --traceback holds for this command only (a script may run several)
                os.environ.pop("KETASCORE_TRACEBACK", None)

    def _invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Terminated as ended:
            with contextlib.suppress(OSError):  # (after a hang-up, the terminal may be gone)
                click.echo(ended.said, err=True)
            ctx.exit(ended.code)
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
            extra = missing_extra(exc, ctx.invoked_subcommand)
            if extra is not None:  # an optional extra that is not installed: not a bug
                click.echo(f"Error: {extra}", err=True)
                ctx.exit(Exit.USAGE)
            environment = environment_error(exc)
            if environment is not None:  # a full disk, a permission: not a bug
                click.echo(f"Error: {environment}", err=True)
                ctx.exit(Exit.USAGE)
            click.echo(
                f"Error: internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in ketascore; rerun with --traceback and report it.",
                err=True,
            )
            ctx.exit(Exit.INTERNAL)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP (``engines.ENDINGS``), which a command takes as it takes Ctrl-C
    (whatever it was writing is removed, workers stop) and ends with 128 + the signal's
    number (143, 129) instead of 130."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        hung_up = signum == getattr(signal, "SIGHUP", None)
        self.said = "Hung up." if hung_up else "Terminated."
        self.code = Exit.HUNG_UP if hung_up else Exit.TERMINATED


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGHUP raise ``Terminated`` while a command runs (each where nothing
    else handles it: not one that ``nohup`` ignores), instead of killing the process on the
    spot: a job scheduler's time limit, `kill` or a closed terminal then leaves no hidden
    partial output file (``.NAME.part``) behind."""
    from ketascore.engines import ENDINGS

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mine = [sig for sig in ENDINGS if signal.getsignal(sig) is signal.SIG_DFL]

    def terminated(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    for sig in mine:
        signal.signal(sig, terminated)
    try:
        yield
    finally:
        for sig in mine:
            signal.signal(sig, signal.SIG_DFL)


def environment_error(exc: BaseException) -> str | None:
    """The message of an error of the system rather than of ketascore (an output that
    cannot be written, a full disk, a permission), or None."""
    from ketascore.writers.outputs import OutputError

    if isinstance(exc, OutputError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno is not None:
        where = f" ({exc.filename})" if exc.filename else ""
        return (
            f"{exc.strerror or exc}{where}; this is a problem of the system (disk space, "
            "permissions, a device), not of the data: fix it and run again"
        )
    return None


@click.group(cls=KetascoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ketascore")
@click.option("--traceback", is_flag=True, help="Show the full traceback of internal errors.")
def cli(traceback: bool) -> None:
    """Score clinical rating scales and report change from baseline.

    \b
    Exit codes: 0 all input scored cleanly; 1 some input had problems (the rest
    was scored and the problems reported); 2 usage error (bad option, unknown or
    unusable scale, an output that cannot be written); 3 internal error;
    130 interrupted; 143 terminated (SIGTERM); 129 hung up (SIGHUP).
    """
    if traceback:  # the readers then let a failure through instead of reporting it
        os.environ["KETASCORE_TRACEBACK"] = "1"


def main() -> None:
    """Console-script entry point."""
    import gc

    # A command creates many objects that live until it ends (modules, pydantic's models,
    # records) and few reference cycles: the cycle collector is run less often than its
    # default of every 700 new objects, which in start-up alone scanned them dozens of times.
    gc.set_threshold(100_000, 50, 100)
    try:
        cli(prog_name="ketascore")
    except KeyboardInterrupt:  # pragma: no cover - interrupted before click took over
        click.echo("Interrupted.", err=True)
        _leave(Exit.INTERRUPTED)
    except SystemExit as done:
        _leave(done.code)
    _leave(0)  # pragma: no cover - click always ends with SystemExit


def _leave(code: Any) -> None:
    """End the process once the command is done, without tearing the interpreter down.

    Everything the command writes is complete by now: output files are closed and renamed
    into place, and the standard streams are flushed here. What a normal exit adds is the
    interpreter's finalization, which frees every module and object one by one (pydantic's
    models, numpy): 50-80 ms, a fifth of a small command. Handlers registered with atexit
    (by ketascore's libraries: worker pools, temporary files) still run."""
    import atexit

    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message"), as Python itself reports it
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass  # the reader went away (`| head`): not an error of ours
    except OSError as exc:  # a full disk or a device error: the output is not complete
        with contextlib.suppress(OSError, ValueError):
            print(
                f"Error: cannot write to standard output: {exc.strerror or exc}; the output "
                "is incomplete",
                file=sys.stderr,
            )
        code = 2
    except ValueError:  # closed
        pass
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)
