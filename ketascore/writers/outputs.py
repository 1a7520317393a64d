"""Writing output files without destroying anything.

- An output is written to a temporary file beside it and renamed into place, so a crash, a
  full disk or Ctrl-C never leaves a partial file, and the old file stays until the new one
  is complete.
- Only a regular file is ever replaced: a device, a fifo, a socket or a folder (or a
  symbolic link to one) is refused (``OutputError``); a symbolic link to a regular file is
  followed, so the link stays and the file it points to is replaced.
- A file that is replaced keeps its permission bits (and, where the system allows, its
  owner); a new file follows the user's umask.
- ``write_together`` writes several files (an output and its provenance sidecar, a report
  and its PDF) all or none: if one cannot be written, none of them changes.

Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


class OutputError(Exception):
    """An output that cannot be written; the message names the file and says why."""


def _kind(mode: int) -> str:
    from ketascore.readers.folders import file_kind

    return file_kind(mode)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def output_target(path: str | Path) -> Path:
    """Where writing ``path`` puts the file: ``path`` itself, or the regular file a symbolic
    link points to. Raises OutputError when the target is not a regular file (a device, a
    fifo, a socket, a folder) or its folder does not exist or is not writable."""
    given = Path(path)
    target = Path(os.path.realpath(given)) if given.is_symlink() else given
    try:
        mode = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None  # (a folder that is missing or a file: said below)
    except OSError as exc:
        raise OutputError(f"cannot write {given}: {exc.strerror or exc}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise OutputError(f"cannot write {given}: it is a folder; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        link = f" (a link to {target})" if target != given else ""
        raise OutputError(
            f"refusing to write {given}{link}: it is a {_kind(mode)}, not a regular file, and "
            "ketascore only ever replaces regular files; write to a file, or leave out the "
            "option to write to standard output"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"cannot write {given}: the folder {folder} {what}; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(
            f"cannot write {given}: the folder {folder} is not writable (permission denied)"
        )
    return target


def same_path(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same file (the same inode, or the same resolved path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _new_temp(target: Path) -> tuple[int, str]:
    folder = target.parent if str(target.parent) else Path(".")
    return tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=folder)


def _keep_mode(tmp: str, target: Path) -> None:
    """Give ``tmp`` the permission bits (and owner) of the file it replaces, or the user's
    umask when there is none."""
    try:
        info = os.stat(target)
    except OSError:
        os.chmod(tmp, 0o666 & ~_umask())
        return
    os.chmod(tmp, stat.S_IMODE(info.st_mode))
    if hasattr(os, "chown") and (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
        with contextlib.suppress(OSError):  # allowed to root (and to a member of the group)
            os.chown(tmp, info.st_uid, info.st_gid)


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """Write to a temporary file beside ``path`` and rename it into place on success, so a
    crash or Ctrl-C never leaves a partial output file (see the module text)."""
    target = output_target(path)
    fd, tmp = _new_temp(target)
    try:
        _keep_mode(tmp, target)
        mode = "wb" if binary else "w"
        kwargs: dict[str, Any] = {} if binary else {"encoding": "utf-8", "newline": ""}
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Output:
    """One file of ``write_together``: ``write(fh)`` writes it to an open file (text in
    UTF-8, or bytes when ``binary``), or, with ``to_path``, ``write(path)`` writes a file at
    ``path`` itself (as a database's COPY does)."""

    path: Path
    write: Callable[[Any], None]
    binary: bool = False
    to_path: bool = False


def write_together(outputs: Sequence[Output]) -> None:
    """Write every output, all or none: each is written completely to a temporary file
    first; then each replaces its target, and if one of these fails, the ones already
    replaced are put back as they were. Raises OutputError (or OSError) on failure, after
    cleaning up."""
    targets = [output_target(o.path) for o in outputs]
    staged: list[tuple[str, Path]] = []
    replaced: list[tuple[Path, str | None]] = []  # (target, backup of the old file)
    try:
        for out, target in zip(outputs, targets, strict=True):
            fd, tmp = _new_temp(target)
            staged.append((tmp, target))
            if out.to_path:
                os.close(fd)
                out.write(Path(tmp))
            else:
                kwargs: dict[str, Any] = {} if out.binary else {"encoding": "utf-8", "newline": ""}
                with os.fdopen(fd, "wb" if out.binary else "w", **kwargs) as fh:
                    out.write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
            _keep_mode(tmp, target)
        for tmp, target in staged:
            backup = None
            if os.path.lexists(target):
                backup = tmp + ".old"
                try:
                    os.link(target, backup)
                except OSError:  # a file system without hard links
                    import shutil

                    shutil.copy2(target, backup)
            replaced.append((target, backup))
            os.replace(tmp, target)
    except BaseException:
        for target, backup in reversed(replaced):
            with contextlib.suppress(OSError):
                if backup is not None:
                    os.replace(backup, target)
                else:
                    os.unlink(target)
            if backup is not None and os.path.lexists(backup):
                # (a rename onto a hard link of the same file does nothing)
                with contextlib.suppress(OSError):
                    os.unlink(backup)
        for tmp, _ in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for _, backup in replaced:
        if backup is not None:
            with contextlib.suppress(OSError):
                os.unlink(backup)
