"""The files of the folders given as input: the one order and filter every reader uses.

Recursively, each folder's files sorted and then its subfolders, hidden files and folders
skipped, a symbolic link back into a folder already read not followed again, and
``--include`` / ``--exclude`` patterns matched against the path below the folder given or
the file's name. Standard library only (the DuckDB engine walks folders before importing the
rest of ketascore).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from fnmatch import fnmatch
from pathlib import Path


def selected(path: Path, root: Path, include: Sequence[str], exclude: Sequence[str]) -> bool:
    """Whether ``path`` (in the folder ``root``) passes the include and exclude patterns."""
    rel = path.relative_to(root).as_posix()
    if include and not any(fnmatch(rel, p) or fnmatch(path.name, p) for p in include):
        return False
    return not any(fnmatch(rel, p) or fnmatch(path.name, p) for p in exclude)


def walk_folder(
    root: Path,
    accept: Callable[[str], bool],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    loop: Callable[[str], None] | None = None,
) -> Iterator[Path]:
    """The files below ``root`` whose names ``accept`` takes, in order; ``loop`` is told of
    each folder not read again (a symbolic link back into one already read)."""
    seen: set[str] = set()
    for folder, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            if loop is not None:
                loop(folder)
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or not accept(name):
                continue
            file = Path(folder) / name
            if (include or exclude) and not selected(file, root, include, exclude):
                continue
            yield file
