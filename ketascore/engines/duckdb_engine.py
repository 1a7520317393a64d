"""Score CSV and Parquet files inside DuckDB: in-process, multi-threaded, larger than memory.

``score_with_duckdb(inputs, scale, output, fmt)`` reads CSV or Parquet files (or folders of
them) as one table, runs the query ``ketascore.engines.sql`` compiles for the scale, and writes CSV,
JSON Lines or Parquet. The CSV (and Parquet) columns are those of ``ketascore score --format
csv``; scores, bands, items answered, prorating, flags, classifications and issue codes are
the Python engine's. What only the Python reader knows is reported less precisely: rows
skipped for a missing subject or visit are counted per file (no line numbers), and issue
messages in JSON Lines name the file but not the line.

This module imports little: it opens DuckDB and starts the checks of the inputs
(``ketascore.engines.duckdb_inputs``) before importing the rest of the engine
(``ketascore.engines.duckdb_scoring``: sqlglot, pydantic, the scale's query), so the two overlap.
DuckDB is an optional dependency (``pip install duckdb``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ketascore.engines.duckdb_inputs import KeyChecks, duckdb_config
from ketascore.engines.duckdb_inputs import find_input_files as find_input_files

if TYPE_CHECKING:
    from ketascore.core.issues import Issue
    from ketascore.core.scale import Scale
    from ketascore.engines.sql import ColumnMap

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}


class DuckDBEngineError(ValueError):
    """Input or options the DuckDB engine cannot use at all (nothing was written)."""


@dataclass(frozen=True)
class DuckDBOptions:
    """How ``score_with_duckdb`` reads, runs and writes (its keyword arguments)."""

    columns: ColumnMap | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    threads: int | None = None
    memory_limit: str | None = None
    temp_directory: str | Path | None = None
    merge_duplicates: bool = True
    escape_formulas: bool = True
    max_row_issues: int = 100


@dataclass
class DuckDBRun:
    """What a run read and wrote."""

    files: list[str]
    output: Path
    format: str
    records: int = 0
    scored: int = 0
    with_problems: int = 0
    issues: list[Issue] = field(default_factory=list)
    seconds: float = 0.0
    sql: str = ""

    def summary(self) -> dict[str, int]:
        """The figures of ``output.score_summary``."""
        return {
            "files": len(self.files),
            "records": self.records,
            "scored": self.scored,
            "with_problems": self.with_problems,
            "file_issues": len(self.issues),
        }

    @property
    def ok(self) -> bool:
        return self.with_problems == 0 and not any(i.severity == "error" for i in self.issues)


def score_with_duckdb(
    inputs: str | Path | Sequence[str | Path],
    scale: Scale | str,
    output: str | Path,
    fmt: str | None = None,
    *,
    columns: ColumnMap | None = None,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
    merge_duplicates: bool = True,
    escape_formulas: bool = True,
    max_row_issues: int = 100,
    prepared: KeyChecks | None = None,
) -> DuckDBRun:
    """Score CSV/Parquet files (or folders of them) with DuckDB and write ``output``.

    ``fmt`` is csv, jsonl or parquet (default: from the output's extension). ``columns`` is
    a column map (``ketascore.engines.sql.read_column_map``). ``threads``, ``memory_limit`` (e.g.
    "4GB") and ``temp_directory`` (where DuckDB spills when memory runs short) tune DuckDB.
    Rows of the same subject and visit are merged as the Python engine merges them, unless
    ``merge_duplicates`` is False. In CSV, text a spreadsheet would run as a formula gets a
    leading quote, as in ``ketascore score``, unless ``escape_formulas`` is False. The
    output is written completely or not at all. ``prepared``: the checks of the keys
    ``KeyChecks.start`` started on the same inputs (else they are started here).
    Raises DuckDBEngineError when nothing can be scored; problems of single files or rows
    are returned as issues."""
    options = DuckDBOptions(
        columns,
        tuple(include),
        tuple(exclude),
        threads,
        memory_limit,
        temp_directory,
        merge_duplicates,
        escape_formulas,
        max_row_issues,
    )
    if isinstance(inputs, str | Path):
        inputs = [inputs]
    if prepared is None:
        prepared = KeyChecks.start(
            inputs,
            options.include,
            options.exclude,
            config=duckdb_config(threads, memory_limit, temp_directory),
            subject=columns.subject if columns is not None else "subject",
            visit=columns.visit if columns is not None else "visit",
            order=merge_duplicates,
        )
    try:
        from ketascore.engines.duckdb_scoring import score

        return score(inputs, scale, output, fmt, options, prepared)
    finally:
        if prepared is not None:
            prepared.stop()
