"""What a long command shows on stderr while it works: a progress bar, and a hint when an
optional extra would make it much faster."""

from __future__ import annotations

import os
from importlib.util import find_spec
from typing import Any

# A CSV or Parquet table from this size on is scored inside DuckDB when it is installed (as
# ``ketascore.api.TABLE_MIN_BYTES``, which the command line does not import to start fast).
TABLE_MIN_BYTES = int(os.environ.get("KETASCORE_TABLE_MIN_BYTES", 1 << 20))
TABLE_EXTENSIONS = (".csv", ".tsv", ".txt", ".parquet", ".pq")
ROWS_EVERY = 2000  # records between two updates of the bar of one file


def speed_hint(paths: list[str]) -> str | None:
    """One line for a large table named on the command line when DuckDB, which scores such
    a table many times faster, is not installed; else None."""
    if find_spec("duckdb") is not None:
        return None
    for name in paths:
        if not name.lower().endswith(TABLE_EXTENSIONS):
            continue
        try:
            size = os.stat(name).st_size
        except OSError:
            continue
        if size >= TABLE_MIN_BYTES:
            return (
                f"hint: {name} ({size / 1e6:,.1f} MB) is scored row by row; DuckDB scores a "
                "table this size many times faster: pip install 'ketascore[duckdb]'"
            )
    return None


class Progress:
    """A rich progress bar on stderr, or nothing (``show`` False: not a terminal, or -q).

    Used as ``with bar as progress:``; ``progress(files_done, records_done)`` moves it as
    files are done, ``bar.set_total(n)`` gives the number of files once the walk has found
    them, and ``bar.rows(done, total)`` the records of a single file as they are scored, so
    one big file shows its rows rather than 0 of 1 file."""

    def __init__(self, show: bool):
        self.show = show
        self.bar: Any = None
        self.task: Any = None
        self.files = 0

    def set_total(self, total: int) -> None:
        self.files = total
        if self.bar is not None and total == 1:  # its rows are counted once it is read
            self.bar.update(self.task, count="reading the file")
        elif self.bar is not None:
            self.bar.update(self.task, total=total)

    def rows(self, done: int, total: int) -> None:
        if self.bar is None or self.files > 1:
            return
        elapsed = self.bar.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed:,.0f} rows/s" if elapsed > 0 and done else ""
        self.bar.update(
            self.task, total=total, completed=done, count=f"{done:,}/{total:,} rows", rate=rate
        )

    def __enter__(self) -> Any:
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.bar = Progress(
            TextColumn("scoring"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TextColumn("{task.fields[rate]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True, force_terminal=True),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task("score", total=None, count="", rate="")

        def update(files_done: int, records_done: int) -> None:
            if self.files == 1:
                return  # one file: its rows tell the progress (``rows``)
            elapsed = self.bar.tasks[0].elapsed or 0.0
            rate = f"{files_done / elapsed:,.0f} files/s" if elapsed > 0 else ""
            of = f"/{self.files}" if self.files else ""
            self.bar.update(
                self.task,
                completed=files_done,
                count=f"{files_done}{of} files, {records_done:,} records",
                rate=rate,
            )

        return update

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()
