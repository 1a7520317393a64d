"""The input files of the DuckDB engine, and the checks of their subjects and visits.

The engine (``ketascore.engines.duckdb_engine``) scores the subjects and visits of Parquet files as
they are, while a check over every row makes sure that none needs stripping and tells
whether some subject and visit pair repeats. That check reads the rows in file order, in
one thread. ``KeyChecks.start`` runs it in the background as soon as the files are known, so
that it overlaps the rest of the start of a command: importing pydantic and sqlglot, loading
the scale, compiling its query. For that this module imports nothing but DuckDB and the
standard library, and writes its few fixed queries itself, quoting every name and path
(``identifier``, ``literal``); the scale's query is built by ``ketascore.engines.sql``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketascore.readers.folders import walk_folder

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
NUMBER_TYPES = (
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
    "FLOAT",
    "DOUBLE",
    "DECIMAL",
)


def duckdb_config(
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | Path | None = None,
) -> dict[str, Any]:
    """DuckDB's settings for one run of the engine (rows kept in their order)."""
    config: dict[str, Any] = {"preserve_insertion_order": True}
    if threads:
        config["threads"] = threads
    if memory_limit:
        config["memory_limit"] = memory_limit
    if temp_directory:
        config["temp_directory"] = str(temp_directory)
    return config


def find_input_files(
    inputs: Iterable[str | Path], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[Path]:
    """CSV and Parquet files named directly or found in folders (recursively, in the order
    the Python readers use: each folder's files sorted, then its subfolders; hidden skipped)."""
    include, exclude = list(include), list(exclude)
    found: list[Path] = []
    suffixes = (*CSV_SUFFIXES, *PARQUET_SUFFIXES)

    def table(name: str) -> bool:
        return Path(name).suffix.lower() in suffixes

    for given in inputs:
        path = Path(given)
        if not path.is_dir():
            found.append(path)
            continue
        found.extend(walk_folder(path, table, include, exclude))
    return found


def kind_of(duckdb_type: str) -> str:
    """How the engine reads a column of this DuckDB type: number, boolean or text."""
    base = duckdb_type.split("(")[0].upper()
    return "number" if base in NUMBER_TYPES else "boolean" if base == "BOOLEAN" else "text"


def identifier(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a quoted SQL string."""
    return "'" + text.replace("'", "''") + "'"


def plain_test(column: str) -> str:
    """SQL: the text's first and last characters are visible ASCII (so it is not blank and
    needs no stripping). The first is tested by two comparisons of the text ("!" <= text <
    chr(127), byte by byte: they read no more than its first bytes), the last by its code."""
    return (
        f"(({column} >= '!' AND {column} < chr(127))"
        f" AND ascii(substring({column}, -1)) BETWEEN 33 AND 126)"
    )


def key_checks(con: Any, keys: str, order: bool, plain: Sequence[str]) -> tuple[int, int]:
    """Over the rows of the query ``keys`` (columns subject and visit): with ``order``, how
    many rows fail to come after the row before them, in the order the rows stream by (at
    least the first row: when no other does, no pair repeats); how many values of the
    ``plain`` columns ("subject", "visit") are not plain."""

    def unplain(column: str) -> str:  # there and not plain
        return f"({column} IS NOT NULL AND NOT coalesce({plain_test(column)}, false))"

    # Each column is tested as its values come from the file (where DuckDB tests a
    # dictionary-encoded column, visits mostly, once per distinct value), except the
    # subject in file order: tested only where it changes (else it was, the row before).
    later = order and "subject" in plain
    early = [(n, c) for n, c in enumerate(plain) if not (later and c == "subject")]
    tests = [f"{unplain(c)} AS _ks_u{n}" for n, c in early]
    flags = [f"_ks_u{n}" for n, _ in early]
    columns = ["subject", "visit", *flags]
    if order:  # (a streaming window: one pass, in one thread)
        columns += ["lag(subject) OVER () AS _ks_ps", "lag(visit) OVER () AS _ks_pv"]
    if later:
        changed = "subject IS DISTINCT FROM _ks_ps"
        flags.append(f"CASE WHEN {changed} THEN {unplain('subject')} ELSE false END")
    # The first row has no row before it. A comparison with NULL is unknown and fails, unless
    # the subject alone comes after the one before: then too the pairs of the rows that hold
    # both (the rows scored) keep growing, and none can repeat.
    failed = "NOT coalesce(subject > _ks_ps OR (subject = _ks_ps AND visit > _ks_pv), false)"
    streamed = f"SELECT {', '.join(['subject', 'visit', *tests])} FROM ({keys}) AS _ks_keys"
    pairs = f"SELECT {', '.join(columns)} FROM ({streamed}) AS _ks_tested"
    counts = [
        f"count(*) FILTER (WHERE {failed})" if order else "0",
        f"count(*) FILTER (WHERE {' OR '.join([*flags, 'false'])})",
    ]
    query = f"SELECT {', '.join(counts)} FROM ({pairs}) AS _ks_pairs"
    failures, unplain_count = con.execute(query).fetchone()
    return int(failures), int(unplain_count)


def repeats(con: Any, keys: str, checked_order: bool = False) -> bool:
    """Whether some subject and visit pair of ``keys`` repeats: not when each row's pair
    comes after the one before (one cheap pass: files sorted by subject and visit), else
    compared by a 64-bit hash of the pair (a collision, very rare, only costs merging rows
    that need none)."""
    if not checked_order and key_checks(con, keys, True, [])[0] <= 1:
        return False
    count = "SELECT count(*), count(DISTINCT hash(subject, visit))"
    rows, distinct = con.execute(f"{count} FROM ({keys}) AS _ks_keys").fetchone()
    return bool(distinct < rows)


@dataclass(frozen=True)
class KeyPlan:
    """What the checks of the keys read: the files (in order), the subject and visit columns
    (a number column is read as a double, as the scale's query reads it), whether to look
    for repeats (``order``), and which of "subject" and "visit" to test for plainness."""

    files: tuple[str, ...]
    subject: str
    visit: str
    numbers: tuple[bool, bool]
    order: bool
    plain: tuple[str, ...]

    def keys(self, source: str) -> str:
        """The query of the subject and visit of every row of ``source``."""

        def key(column: str, number: bool, name: str) -> str:
            value = identifier(column)
            return f"CAST({value} AS DOUBLE) AS {name}" if number else f"{value} AS {name}"

        subject = key(self.subject, self.numbers[0], "subject")
        return f"SELECT {subject}, {key(self.visit, self.numbers[1], 'visit')} FROM {source}"

    @classmethod
    def of(
        cls,
        files: Sequence[str],
        subject: str,
        visit: str,
        kinds: Mapping[str, str],
        order: bool,
    ) -> KeyPlan:
        """The plan for these columns of these kinds (number, text; anything else is read
        as it is and not tested)."""
        plain = tuple(n for n, c in (("subject", subject), ("visit", visit)) if kinds[c] == "text")
        numbers = (kinds[subject] == "number", kinds[visit] == "number")
        return cls(tuple(files), subject, visit, numbers, order, plain)


def parquet_source(files: Sequence[str]) -> str:
    """SQL: the rows of the Parquet ``files``, in order, their columns matched by name."""
    listed = ", ".join(literal(f) for f in files)
    return f"read_parquet([{listed}], union_by_name = true)"


class KeyChecks:
    """The DuckDB database of one run of the engine, opened at once, and the checks of the
    keys of its Parquet files (``KeyPlan``) run in a background thread, on the columns the
    engine is guessed to choose. The engine takes the connection (``connection()``) and,
    when its plan is the one guessed (``expect(plan)``), the counts (``counts(plan)``);
    else the checks are stopped."""

    def __init__(
        self,
        files: Sequence[str],
        config: Mapping[str, Any],
        columns: tuple[str, str],
        order: bool = True,
    ) -> None:
        self.files = tuple(files)
        self.config = dict(config)
        self._columns = columns
        self._order = order
        self._planned = threading.Event()
        self._con: Any = None
        self._cursor: Any = None
        self._plan: KeyPlan | None = None
        self._counts: tuple[int, int] | None = None
        self._stopped = False
        self._lock = threading.Lock()
        self._open()  # (DuckDB is imported and opened here: the imports of the thread would
        # wait for those of the caller, and the other way round)
        self._thread = threading.Thread(target=self._run, name="ketascore-keys", daemon=True)
        self._thread.start()

    @classmethod
    def start(
        cls,
        inputs: Iterable[str | Path],
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
        *,
        config: Mapping[str, Any] | None = None,
        subject: str = "subject",
        visit: str = "visit",
        order: bool = True,
    ) -> KeyChecks | None:
        """Start on these inputs (as ``find_input_files`` finds them) when every file is
        Parquet (else None). ``config`` is DuckDB's (insertion order is kept); ``order``:
        look for repeats (the engine does unless told not to merge them)."""
        try:
            files = find_input_files(inputs, include, exclude)
        except OSError:
            return None
        return cls.for_files(files, config or {}, subject, visit, order)

    @classmethod
    def for_files(
        cls,
        files: Sequence[str | Path],
        config: Mapping[str, Any],
        subject: str,
        visit: str,
        order: bool = True,
    ) -> KeyChecks | None:
        names = [str(f) for f in files]
        if not names or any(Path(f).suffix.lower() not in PARQUET_SUFFIXES for f in names):
            return None
        settings = {"preserve_insertion_order": True, **config}
        return cls(names, settings, (subject, visit), order)

    def _open(self) -> None:
        try:
            import duckdb

            self._con = duckdb.connect(":memory:", config=self.config)
            # DuckDB's own progress bar would write to the terminal of a quiet command
            self._con.execute("SET enable_progress_bar = false")
            self._cursor = self._con.cursor()
        except Exception:  # (the engine connects again and reports what goes wrong)
            self._con = self._cursor = None

    def _run(self) -> None:
        try:
            with self._lock:
                cursor = None if self._stopped else self._cursor
            if cursor is not None:
                self._check(cursor)
        except Exception:  # (the engine runs the checks again)
            self._counts = None
        finally:
            self._planned.set()

    def _check(self, cursor: Any) -> None:
        source = parquet_source(self.files)
        try:
            described = cursor.execute(f"SELECT * FROM {source} LIMIT 0").description
            names = [str(d[0]) for d in described]
            by_fold = {n.casefold(): n for n in names}
            subject, visit = (by_fold.get(c.casefold(), c) for c in self._columns)
            kinds = {str(d[0]): kind_of(str(d[1])) for d in described}
            if subject not in kinds or visit not in kinds:
                return
            plan = self._plan = KeyPlan.of(self.files, subject, visit, kinds, self._order)
        finally:
            self._planned.set()
        if not self._stopped:
            self._counts = key_checks(cursor, plan.keys(source), plan.order, plan.plain)

    def connection(self) -> Any:
        """The open connection (None when it could not be opened)."""
        return self._con

    def expect(self, plan: KeyPlan) -> bool:
        """Whether ``plan`` is what is being checked (waiting until that is known); if not,
        the check is stopped."""
        self._planned.wait()
        if self._plan != plan:
            self.stop()
            return False
        return True

    def counts(self, plan: KeyPlan) -> tuple[int, int] | None:
        """The counts of ``key_checks`` for ``plan`` when that is what was checked (waiting
        for them), else None (and the check is stopped)."""
        self._planned.wait()
        if self._plan != plan:
            self.stop()
            return None
        self._thread.join()
        self.stop()  # (closes the cursor)
        return self._counts

    def stop(self) -> None:
        """Stop the check (when it is still running) and wait for the thread."""
        with self._lock:
            self._stopped = True
        # (interrupted again until the thread ends: a query that had not begun when it
        # was first interrupted would run to its end)
        while self._thread.is_alive():
            if self._cursor is not None:
                with contextlib.suppress(Exception):
                    self._cursor.interrupt()
            self._thread.join(0.05)
        if self._cursor is not None:
            with contextlib.suppress(Exception):
                self._cursor.close()
