"""The engines: the record engine (``record``, the reference), the table engine on DuckDB
(``table``, with the SQL compiler ``sql``), Spark (``spark``) and DataFrames
(``dataframe``); ``batch`` scores files in worker processes."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

# The signals that end a command as Ctrl-C does, other than Ctrl-C itself (the command line
# turns them into an interrupt): SIGTERM (`kill`, a job scheduler's time limit) and, where
# there is one, SIGHUP (the terminal or the ssh session closed).
ENDINGS = (signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))
# The signals a command takes as an interrupt: the workers' fork holds them, the table
# engine's pass tells them from its errors.
INTERRUPTS = (signal.SIGINT, *ENDINGS)


def duckdb_config(
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> dict[str, Any]:
    """The settings of the table engine's DuckDB connection (``score_paths(duckdb_config=...)``,
    ``table.score_tables(config=...)``): threads, a memory limit beyond which it spills to
    ``temp_directory``."""
    config: dict[str, Any] = {}
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    if temp_directory is not None:
        config["temp_directory"] = str(temp_directory)
    return config
