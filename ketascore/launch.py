"""The ``ketascore`` console script.

It imports the command line only once it has taken charge of Ctrl-C: an interrupt while
the command line's modules are being imported (the first tenth of a second of every command)
ends the program as one later does, with "Interrupted." and exit code 130, instead of a
traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from ketascore.cli import main as command_line
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise SystemExit(130) from None
    command_line()
