"""The checks of the subjects and visits of Parquet input (``ketascore.engines.duckdb_inputs``): the
counts against a reference in Python, and the checks started early, which the DuckDB
engine uses only when they read what it would have read."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ketascore.engines.duckdb_scoring as scoring  # noqa: E402
from ketascore.cli import cli  # noqa: E402
from ketascore.engines.duckdb_engine import score_with_duckdb  # noqa: E402
from ketascore.engines.duckdb_inputs import (  # noqa: E402
    KeyChecks,
    KeyPlan,
    identifier,
    key_checks,
    literal,
    parquet_source,
    repeats,
)

from conftest import budget  # noqa: E402

TEXTS = ["A", "B", "b", "A1", " A", "A ", "\tB", "B\xa0", "", "Ä", "Aé", "~", "!x!"]


def plain(text: str) -> bool:
    """The reference: first and last characters visible ASCII."""
    return bool(text) and "!" <= text[0] <= "~" and "!" <= text[-1] <= "~"


def greater(a: str | None, b: str | None) -> bool | None:
    return None if a is None or b is None else a > b


def reference(keys: list[tuple[str | None, str | None]], order: bool) -> tuple[int, int]:
    """(rows not after the row before, rows with a value not plain) as ``key_checks`` counts
    them: after, in SQL's logic of NULLs (a row whose subject comes after the one before
    does, whatever its visit), and unknown counting as not after."""
    failures = 0
    for n, (s, v) in enumerate(keys):
        if n == 0:
            failures += 1
            continue
        ps, pv = keys[n - 1]
        same = None if s is None or ps is None else s == ps
        later_visit = greater(v, pv)
        # same AND later_visit, then subject-later OR that, each in three-valued logic
        both = False if same is False or later_visit is False else (same and later_visit)
        first = greater(s, ps)
        after = (
            True if first is True or both is True else (None if None in (first, both) else False)
        )
        failures += after is not True
    rows = sum(1 for s, v in keys if any(x is not None and not plain(x) for x in (s, v)))
    return (failures if order else 0), rows


def table(con: Any, keys: list[tuple[str | None, str | None]]) -> str:
    con.execute("CREATE OR REPLACE TABLE k (subject VARCHAR, visit VARCHAR)")
    if keys:
        con.executemany("INSERT INTO k VALUES (?, ?)", keys)
    return "SELECT subject, visit FROM k"


key = st.tuples(st.sampled_from([*TEXTS, None]), st.sampled_from(["v1", "v2", " v1", None]))


@settings(max_examples=budget(60))
@given(st.lists(key, max_size=12), st.booleans())
def test_key_checks_count_as_the_reference(
    keys: list[tuple[str | None, str | None]], order: bool
) -> None:
    """Rows out of order (the first always) and rows with a value that is not plain."""
    con = duckdb.connect(config={"preserve_insertion_order": True, "threads": 1})
    query = table(con, keys)
    want_failures, want_unplain = reference(keys, order)
    failures, unplain = key_checks(con, query, order, ["subject", "visit"])
    assert failures == want_failures
    # where the subject is tested only where it changes, a row repeating the subject of
    # the row before is not tested again: the count can be lower, never zero when wrong
    assert (unplain == 0) == (want_unplain == 0)
    if not order:
        assert unplain == want_unplain
    # the repeats: by order when the rows are sorted, else by hash
    pairs = [(s, v) for s, v in keys]
    assert repeats(con, query) == (len(set(pairs)) < len(pairs))


def test_quoting() -> None:
    con = duckdb.connect()
    odd = 'it\'s "odd"'
    assert con.execute(f"SELECT {literal(odd)}").fetchone() == (odd,)
    con.execute(f"CREATE TABLE t ({identifier(odd)} INTEGER)")
    assert [d[0] for d in con.execute("SELECT * FROM t").description] == [odd]


def write(path: Path, keys: list[tuple[str, str]], subject: str = "subject") -> Path:
    rows = [
        {subject: s, "visit": v, **{f"phq9_{i}": (n + i) % 4 for i in range(1, 10)}}
        for n, (s, v) in enumerate(keys)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_early_checks_are_used_when_they_read_what_the_engine_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine takes the counts of checks started early (its own checks never run), on
    files with quotes in their names; the scores are those it gives alone."""
    folder = tmp_path / 'it\'s "here"'
    folder.mkdir()
    source = write(folder / "a'b.parquet", [("A", "v1"), ("A", "v1"), ("B", "v2")])
    alone = score_with_duckdb(source, "phq9", tmp_path / "alone.csv")
    early = KeyChecks.start([folder])
    assert early is not None and early.files == (str(source),)

    def unused(*args: Any) -> tuple[int, int]:
        raise AssertionError("the engine checked the keys again")

    monkeypatch.setattr(scoring, "key_checks", unused)
    run = score_with_duckdb([folder], "phq9", tmp_path / "early.csv", prepared=early)
    assert (tmp_path / "early.csv").read_text() == (tmp_path / "alone.csv").read_text()
    assert run.summary() == alone.summary() and run.records == 2  # the repeat merged


def test_early_checks_that_guessed_wrong_are_stopped(tmp_path: Path) -> None:
    """Other columns (a column map), no search for repeats, or other files: the engine
    stops the early checks and runs its own."""
    from ketascore.engines.sql import ColumnMap

    source = write(tmp_path / "a.parquet", [("A", "v1"), ("A", "v1")], subject="pid")
    plan = KeyPlan.of([str(source)], "pid", "visit", {"pid": "text", "visit": "text"}, True)
    guessed = KeyChecks.start([source])  # "subject": there is none
    assert guessed is not None and not guessed.expect(plan) and guessed.counts(plan) is None
    unordered = KeyChecks.start([source], subject="pid", order=False)
    assert unordered is not None and unordered.expect(replace(plan, order=False))
    assert unordered.counts(replace(plan, order=False)) == (0, 0)
    pid = ColumnMap(subject="pid")
    for merge, records in ((True, 1), (False, 2)):
        early = KeyChecks.start([source], subject="pid")  # (looks for repeats)
        assert early is not None and early.expect(plan)
        out = tmp_path / f"{merge}.csv"
        run = score_with_duckdb(
            source, "phq9", out, columns=pid, merge_duplicates=merge, prepared=early
        )
        assert run.records == records
    csv = tmp_path / "b.csv"
    csv.write_text("subject,visit,phq9_1\nA,v1,1\n", encoding="utf-8")
    assert KeyChecks.start([source, csv]) is None  # not every file is Parquet
    early = KeyChecks.start([source], subject="pid")
    assert early is not None
    early.stop()
    early.stop()  # (twice: nothing left to stop)
    assert early.counts(plan) in (None, (2, 0))  # (stopped, or done before it was stopped)


def test_command_on_parquet_starts_the_checks_first(tmp_path: Path, runner: Any) -> None:
    source = write(tmp_path / "in.parquet", [("A", "v1"), ("B", "v1"), ("B", "v1"), (" C", "v2")])
    out = tmp_path / "out.csv"
    args = ["score", str(source), "--engine", "duckdb", "--scale", "phq9", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code in (0, 1), result.output
    score_with_duckdb(source, "phq9", tmp_path / "api.csv")
    assert out.read_text() == (tmp_path / "api.csv").read_text()
    assert "\nC," in out.read_text()  # stripped, as the Python engine strips it
    assert parquet_source([str(source)]).startswith("read_parquet([")
