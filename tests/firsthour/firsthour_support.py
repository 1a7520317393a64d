"""Run ketascore in a pseudo-terminal of a given size, as a user at a terminal would."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def run_in_terminal(
    args: list[str],
    columns: int,
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    stderr_too: bool = False,
) -> tuple[int, str]:
    """``ketascore ARGS`` with stdout (and with ``stderr_too`` stderr) on a terminal
    ``columns`` wide (its size set as a terminal sets it, with no COLUMNS variable); its
    exit code and what it printed there, escape sequences removed."""
    import pty

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR")}
    environ.update({"TERM": "xterm-256color", **(env or {})})
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketascore.cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave if stderr_too else subprocess.DEVNULL,
        cwd=cwd,
        env=environ,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, ESCAPES.sub("", b"".join(chunks).decode("utf-8", "replace"))
