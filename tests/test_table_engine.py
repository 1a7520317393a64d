"""The table engine from the command line and the API: CSV and Parquet in, every output
format out, the same bytes as the record engine (the conformance suite compares results)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

duckdb = pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

from ketascore.api import score_paths  # noqa: E402
from ketascore.cli import cli  # noqa: E402
from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.engines import table  # noqa: E402
from ketascore.engines.sql import ColumnMap, csv_columns  # noqa: E402

from conftest import DATA  # noqa: E402

STUDY = DATA / "study" / "madrs-day3.csv"


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "table"])
def test_every_output_is_the_record_engines(runner: Any, fmt: str) -> None:
    outputs = []
    for engine in ("record", "duckdb"):
        result = runner.invoke(
            cli, ["score", str(STUDY), "--scale", "madrs", "--engine", engine, "--format", fmt]
        )
        assert result.exit_code == 1, result.output  # one record misses an item
        # the provenance records the engine that scored (#16); all else is the same
        stdout = re.sub(r'("engine": ?)"(record|table)"', r'\1"?"', result.stdout)
        outputs.append((stdout, result.stderr))
    assert outputs[0] == outputs[1]


def _jsonl(runner: Any, path: Path, engine: str, *args: str, fmt: str = "jsonl") -> list[str]:
    result = runner.invoke(cli, ["score", str(path), "--engine", engine, "--format", fmt, *args])
    assert result.exit_code in (0, 1), result.output
    return [line for line in result.stdout.splitlines() if '"engine": ' not in line]


def test_json_lines_written_by_the_query_are_the_record_engines(
    runner: Any, tmp_path: Path
) -> None:
    """The table engine's query writes the JSON line of a row without an issue itself (and
    its text in the JSON output):
    the same text as Python's encoder for every kind of carried column (floats with NaN,
    infinity, -0.0 and 1e20, a 32-bit and a 16-bit float, DECIMAL, booleans, dates,
    timestamps, an all-null column) and for texts JSON escapes (quotes, backslashes,
    non-ASCII, a control character, which DuckDB escapes in capitals: such a row is written
    by Python)."""
    import datetime
    import decimal

    n = 12
    subjects = ['S"1', "S\\2", "Søren", "S\x1f4", "S 5", "S/6", *(f"S{k}" for k in range(6, n))]
    items = {f"phq9_{k}": [k % 4] * n for k in range(1, 10)}
    items["phq9_3"] = [None, *([2] * (n - 1))]  # (one answer missing: prorated)
    floats = [0.1, -0.0, 3.0, 1e20, float("nan"), float("inf"), float("-inf"), None, 2.5e-7]
    floats += [1 / 3] * (n - len(floats))
    frame = pa.table(
        {
            "subject": subjects,
            "visit": ["baseline"] * n,
            **items,
            "weight": pa.array(floats, pa.float64()),
            "narrow": pa.array([0.1] * n, pa.float32()),
            "half": pa.array([1.5] * n, pa.float16()) if hasattr(pa, "float16") else [1.5] * n,
            "dose": pa.array([decimal.Decimal("12.50"), None] * (n // 2), pa.decimal128(9, 2)),
            "count": pa.array(list(range(-2, n - 2)), pa.int64()),
            "ok": pa.array([True, False, None] * (n // 3), pa.bool_()),
            "born": pa.array([datetime.date(1980, 1, 2)] * n, pa.date32()),
            "seen": pa.array([datetime.datetime(2024, 5, 6, 7, 8, 9)] * n, pa.timestamp("us")),
            "nothing": pa.array([None] * n, pa.null()),
            "arm": ["ketamine", 'the "other"', "é", "", None, " x "] * (n // 6),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(frame, path)
    record = _jsonl(runner, path, "record", "--scale", "phq9")
    assert _jsonl(runner, path, "duckdb", "--scale", "phq9") == record
    document = _jsonl(runner, path, "record", "--scale", "phq9", fmt="json")
    assert _jsonl(runner, path, "duckdb", "--scale", "phq9", fmt="json") == document
    assert len(record) == n and '"weight": 1e+20' in record[3] and "\\u001f" in record[3]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(st.characters(exclude_categories=["Cs"])), min_size=1, max_size=20))
def test_duckdb_writes_a_text_in_json_as_python_does_or_the_row_is_left_to_python(
    texts: list[str],
) -> None:
    """The query writes a text's JSON with DuckDB's ``to_json``: the same as Python's
    ``json.dumps(text, ensure_ascii=False)``, except where a character is escaped in
    hexadecimal (DuckDB's capitals), which the query finds by ``\\u00`` in the line and
    leaves to Python."""
    con = duckdb.connect()
    got = con.execute(
        "SELECT list_transform(?::VARCHAR[], lambda t: CAST(to_json(t) AS VARCHAR))", [texts]
    ).fetchone()[0]
    for text, written in zip(texts, got, strict=True):
        assert written == json.dumps(text, ensure_ascii=False) or "\\u00" in written


def test_files_provenance_and_parquet(runner: Any, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = runner.invoke(
        cli, ["score", str(STUDY), "--engine", "duckdb", "--scale", "madrs", "-o", str(out)]
    )
    assert result.exit_code == 1
    record = runner.invoke(cli, ["score", str(STUDY), "--scale", "madrs", "--format", "csv"])
    assert out.read_text() == record.stdout
    provenance = json.loads((tmp_path / "scores.csv.provenance.json").read_text())
    assert hashlib.sha256(STUDY.read_bytes()).hexdigest() in json.dumps(provenance)
    parquet = tmp_path / "scores.parquet"
    result = runner.invoke(
        cli, ["score", str(STUDY), "--engine", "duckdb", "--scale", "madrs", "-o", str(parquet)]
    )
    got = pq.read_table(parquet)
    assert got.column_names == [*csv_columns(load_builtin("madrs")), "arm"]
    assert got.schema.field("total").type == pa.float64()
    assert got.schema.field("total_prorated").type == pa.bool_()
    missing = runner.invoke(cli, ["score", str(STUDY), "--engine", "duckdb", "-o", str(out)])
    assert missing.exit_code == 2 and "--scale" in missing.stderr
    no_parquet = runner.invoke(cli, ["score", str(STUDY), "-o", str(tmp_path / "x.parquet")])
    assert no_parquet.exit_code == 2 and "--engine duckdb" in no_parquet.stderr


def test_auto_takes_the_table_engine_for_a_large_table(tmp_path: Path) -> None:
    site = "a site named at length " * 25  # (wide rows: few rows make 1 MiB)
    rows = ["subject,visit,site," + ",".join(f"phq9_{i}" for i in range(1, 10))]
    rows += [
        f"S{k},v1,{site}," + ",".join(str((k + i) % 4) for i in range(1, 10)) for k in range(2000)
    ]
    path = tmp_path / "big.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert path.stat().st_size >= 1 << 20
    scale = load_builtin("phq9")
    with score_paths([path], scale=scale) as run:
        assert run.engine == "table"
        assert run.summary()["records"] == 2000
    with score_paths([path], scale=scale, engine="record") as run:
        assert run.engine == "record"
    small = tmp_path / "small.csv"
    small.write_text("\n".join(rows[:10]) + "\n", encoding="utf-8")
    with score_paths([small], scale=scale) as run:
        assert run.engine == "record"  # a small file is quicker read record by record


def test_a_repeated_header_is_skipped_by_either_engine_alike(runner: Any, tmp_path: Path) -> None:
    """A table of more than 1 MiB (the table engine's) joined from exports: their headers
    in the middle (one as written, one with another case, spaces and a byte-order mark)
    are one warning each and no row, in the same bytes from either engine and from the
    streamed CSV; a blank line, a ragged row, an out-of-range answer and ratings the
    joined exports both hold (alike: merged; not: in conflict) around them."""
    header = "subject,visit,site," + ",".join(f"phq9_{i}" for i in range(1, 10))
    site = "a site named at length " * 25  # (wide rows: few rows make 1 MiB)
    rows = [
        f"S{k},v{k % 3},{site},{','.join(str((k + i) % 4) for i in range(9))}" for k in range(2400)
    ]
    rows[10] = rows[10][:-1] + "7"
    rows.insert(1000, header)
    rows.insert(1001, "")
    rows.insert(1002, rows[5])  # the second export repeats a rating (merged) ...
    rows.insert(1003, rows[6][:-1] + ("1" if rows[6].endswith("0") else "0"))  # ... or not
    rows.insert(2200, "S9,v1,1")
    rows.insert(2300, "\ufeffSUBJECT ,visit, Site," + ",".join(f"PHQ9_{i}" for i in range(1, 10)))
    path = tmp_path / "joined.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    assert path.stat().st_size > 1 << 20
    scale = load_builtin("phq9")
    with score_paths([path], scale=scale) as run:
        assert run.engine == "table"
        issues = [(i.code, i.line) for i in run.issues]
    assert issues == [
        ("csv-repeated-header", 1002),
        ("csv-ragged-row", 2202),
        ("csv-repeated-header", 2302),
    ]
    outputs = {}
    for engine in ("record", "duckdb"):
        args = ["score", str(path), "--scale", "phq9", "--engine", engine]
        result = runner.invoke(cli, [*args, "--format", "json"])
        assert result.exit_code == 1, result.output  # the ragged row and the 7
        assert re.search(r'"engine": ?"table"', result.stdout) or engine == "record"
        stdout = re.sub(r'("engine": ?)"(record|table)"', r'\1"?"', result.stdout)
        out = tmp_path / f"{engine}.csv"
        runner.invoke(cli, [*args, "-o", str(out)])
        provenance = json.loads((tmp_path / f"{engine}.csv.provenance.json").read_text())
        assert provenance["settings"]["engine"] == {"duckdb": "table"}.get(engine, engine)
        outputs[engine] = (stdout, result.stderr, out.read_bytes())
    assert outputs["record"] == outputs["duckdb"]
    assert "subject subject" not in outputs["record"][1]
    assert outputs["record"][1].count("warning[csv-repeated-header]") == 2
    assert "warning[duplicate-record]" in outputs["record"][1]
    assert "error[conflicting-records]" in outputs["record"][1]


def test_a_header_with_other_columns_leaves_the_table_to_the_reader(tmp_path: Path) -> None:
    """The CSV reader stops at a header other than the first (two exports with other
    columns joined): such a file is left to it, whichever case the header is written in;
    one whose only other header repeats the first, or whose notes say subject, is not."""
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    rows = [f"S{k},v1,note,{','.join(['1'] * 9)}" for k in range(50)]
    scale = load_builtin("phq9")
    cases = {
        "SUBJECT,Visit,note," + items: False,  # another case: the same header
        f"visit,subject,note,{items}": True,  # another order
        f"subject,visit,{items}": True,  # another width (a ragged row)
        "S50,v1,the subject withdrew," + ",".join(["1"] * 9): False,  # subject as a word
    }
    for n, (line, other) in enumerate(cases.items()):
        path = tmp_path / f"joined{n}.csv"
        body = [f"subject,visit,note,{items}", *rows[:20], line, *rows[20:]]
        path.write_text("\n".join(body) + "\n", encoding="utf-8")
        assert (table.csv_source(str(path), ["phq9"], scale) is None) == other, line


def test_what_duckdb_does_not_read_as_the_readers_is_left_to_them(tmp_path: Path) -> None:
    scale = load_builtin("phq9")
    cases = {
        "latin1.csv": "subject,visit,site,phq9_1\nA,v1,Zürich,1\n".encode("latin-1"),
        "quoted.csv": b'subject,visit,site,phq9_1\nA,v1,"a, b",1\n',
        "mixed.csv": b"subject,visit,phq9_1\r\nA,v1,1\nB,v1,2\r\n",
        "bom.csv": b"\xef\xbb\xbfsubject,visit,phq9_1\nA,v1,1\n",
        "long.csv": b"subject,visit,scale,item,value\nA,v1,phq9,1,1\n",
        "two-scales.csv": b"subject,visit,phq9_1,gad7_1\nA,v1,1,1\n",
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert table.csv_source(str(path), ["phq9", "gad7"]) is None, name
    assert table.csv_source(str(tmp_path / "two-scales.csv"), ["phq9", "gad7"], scale) is not None


def test_a_column_map_names_columns_and_missing_codes(tmp_path: Path) -> None:
    source = tmp_path / "nhanes.parquet"
    row = {"SEQN": 1.0, "CYCLE": "2017", **{f"DPQ0{i}0": 1.0 for i in range(1, 10)}}
    row["DPQ090"] = 7.0  # refused: a missing answer, never a score
    pq.write_table(pa.Table.from_pylist([row]), source)
    cmap = ColumnMap(
        subject="SEQN",
        visit="cycle",
        items={str(i): f"DPQ0{i}0" for i in range(1, 10)},
        missing_codes=(7, 9),
    )
    with table.score_tables(
        [table.parquet_source(str(source))], load_builtin("phq9"), columns=cmap
    ) as run:
        (result,) = run.results()
    assert result.subject == "1" and result.scores["total"] == 9 and result.prorated["total"]
    assert [i.code for i in result.issues] == ["flag-undetermined"]
    assert result.source.line == 1


def test_output_is_written_completely_or_not_at_all(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    items = [f"phq9_{i}" for i in range(1, 10)]
    source.write_text(f"subject,visit,{','.join(items)}\nA,v1,1,,,,,,,,\n", encoding="utf-8")
    with table.score_tables(
        [table.csv_source(str(source), ["phq9"])],
        load_builtin("phq9"),  # type: ignore[list-item]
    ) as run:
        with pytest.raises(OSError):
            run.write("csv", tmp_path / "missing-folder" / "o.csv")
        run.write("csv", tmp_path / "o.csv")
    assert (tmp_path / "o.csv").read_text().startswith("subject,visit")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_folder_of_tables_is_read_as_one(runner: Any, tmp_path: Path) -> None:
    """Several CSV files of one scale, in the folder's order; a subject and visit repeated
    across files is merged as the record engine merges it."""
    folder = tmp_path / "site"
    folder.mkdir()
    header = "subject,visit,site," + ",".join(f"phq9_{i}" for i in range(1, 10))
    (folder / "a.csv").write_text(
        header + "\nS1,v1,a,1,1,1,1,1,1,1,1,1\nS2,v1,a,2,2,2,2,2,2,2,2,2\n", encoding="utf-8"
    )
    (folder / "b.csv").write_text(
        header + "\nS1,v1,b,1,1,1,1,1,1,1,1,1\nS3,v1,b,3,3,3,,3,3,3,3,3\n", encoding="utf-8"
    )
    outputs = []
    for engine in ("record", "duckdb"):
        result = runner.invoke(
            cli, ["score", str(folder), "--scale", "phq9", "--engine", engine, "--format", "json"]
        )
        doc = json.loads(result.stdout)
        doc["provenance"]["settings"].pop("engine")  # recorded (#16); all else is the same
        outputs.append((result.exit_code, doc))
    assert outputs[0] == outputs[1]
    results = outputs[0][1]["results"]
    assert [r["subject"] for r in results] == ["S1", "S2", "S3"]
    assert [i["code"] for i in results[0]["issues"]] == ["duplicate-record"]


def test_a_table_duckdb_fails_on_while_writing_is_left_to_the_readers(
    runner: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    """DuckDB reads a line longer than its limit only when it writes the output (the run is
    scored in one pass then): the record engine scores the file instead, and the output is
    its, whole."""
    monkeypatch.setenv("KETASCORE_NO_FALLBACK", "0")  # (the fallback under test)
    rows = ["subject,visit,note," + ",".join(f"phq9_{i}" for i in range(1, 10))]
    rows += ["S1,v1," + "x" * 2_200_000 + "," + ",".join("1" * 9)]
    rows += ["S2,v1,short," + ",".join("2" * 9)]
    path = tmp_path / "long-line.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "scores.csv"
    args = ["score", str(path), "--scale", "phq9"]
    table_run = runner.invoke(cli, [*args, "--engine", "duckdb", "-o", str(out)])
    record_run = runner.invoke(cli, [*args, "--engine", "record", "--format", "csv"])
    assert table_run.exit_code == record_run.exit_code == 1
    assert out.read_text(encoding="utf-8") == record_run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "long-line.csv",
        "scores.csv",
        "scores.csv.provenance.json",
    ]


def test_out_of_memory_is_tried_again_on_one_thread(monkeypatch: Any, tmp_path: Path) -> None:
    """Two DuckDB threads each hold a row group: a Parquet file of 1M-row groups (pyarrow's
    and pandas' default) ran out of memory under the default 800 MiB, and the run fell to
    the record engine without a word, 40 times slower (3M rows: 250 s against 11 s). The
    table engine now writes again on one thread; only if that fails too do the readers
    score the input."""
    path = tmp_path / "t.csv"
    path.write_text(
        "subject,visit,"
        + ",".join(f"phq9_{i}" for i in range(1, 10))
        + "\n"
        + "".join(
            f"S{k},v1," + ",".join(str((k + i) % 4) for i in range(9)) + "\n" for k in range(50)
        ),
        encoding="utf-8",
    )
    scale = load_builtin("phq9")
    source = table.csv_source(str(path), ["phq9"], scale)
    assert source is not None
    tries: list[int] = []
    real = table.TableRun._copy

    def tight(run: Any, *args: Any) -> None:
        threads = int(run.con.execute("SELECT current_setting('threads')").fetchall()[0][0])
        tries.append(threads)
        if threads > 1:
            raise table.TableMemoryError("DuckDB ran out of memory: (as with 1M-row groups)")
        real(run, *args)

    monkeypatch.setattr(table.TableRun, "_copy", tight)
    run = table.score_tables([source], scale, lazy=True, config={"threads": 2})
    run.write("csv", tmp_path / "out.csv")
    assert tries == [2, 1]
    assert (tmp_path / "out.csv").read_text().count("\n") == 51
    run.close()
    tries.clear()  # one thread already: the error stands (the readers then score it)
    run = table.score_tables([source], scale, lazy=True, config={"threads": 1})
    monkeypatch.setattr(
        table.TableRun,
        "_copy",
        lambda r, *a: (_ for _ in ()).throw(table.TableMemoryError("DuckDB ran out of memory")),
    )
    with pytest.raises(table.TableMemoryError):
        run.write("csv", tmp_path / "out2.csv")
    assert not (tmp_path / "out2.csv").exists()
    run.close()


def test_scoring_into_a_table_is_tried_again_on_one_thread(monkeypatch: Any) -> None:
    """Results one by one (JSON, the terminal, ``change``) come from the run scored into a
    table; running out of memory there fell to the record engine at once, while writing a
    file tried again on one thread first. Both now do (and the retry starts clean: the
    first try's table is dropped)."""
    scale = load_builtin("madrs")
    tries: list[int] = []
    real = table.TableRun._materialize

    def tight(run: Any) -> None:
        threads = int(run.con.execute("SELECT current_setting('threads')").fetchall()[0][0])
        tries.append(threads)
        if threads > 1:
            run.con.execute("CREATE TABLE _ks_rows AS SELECT 1 AS half_made")
            raise table.TableMemoryError("DuckDB ran out of memory")
        real(run)

    monkeypatch.setattr(table.TableRun, "_materialize", tight)
    with score_paths(STUDY, scale=scale, engine="table", duckdb_config={"threads": 2}) as run:
        got = [(r.subject, r.visit, r.scores) for r in run.results()]
        assert run.engine == "table" and run.fell_back is None
    assert tries == [2, 1]
    with score_paths(STUDY, scale=scale, engine="record") as run:
        assert got == [(r.subject, r.visit, r.scores) for r in run.results()]


def test_the_command_says_when_memory_sent_a_table_to_the_record_engine(
    runner: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    """Should DuckDB run out of memory even on one thread, the readers score the input:
    the same results, many times slower, and the user is told why and what to change
    (before, nothing said so, and a 3M-row file took 250 s instead of 11)."""

    def out_of_memory(run: Any, *args: Any) -> None:
        raise table.TableMemoryError("DuckDB ran out of memory: could not allocate")

    monkeypatch.setenv("KETASCORE_NO_FALLBACK", "0")  # (the fallback under test)

    monkeypatch.setattr(table.TableRun, "_copy", out_of_memory)
    monkeypatch.setattr(table.TableRun, "_materialize", out_of_memory)
    args = ["score", str(STUDY), "--scale", "madrs", "--format", "csv"]
    fell = runner.invoke(cli, [*args, "--engine", "duckdb", "--memory-limit", "64MiB"])
    record = runner.invoke(cli, [*args, "--engine", "record"])
    assert fell.exit_code == record.exit_code == 1  # (one record misses an item)
    assert fell.stdout == record.stdout
    hint = "hint: DuckDB ran out of memory under --memory-limit 64MiB, even on one thread"
    assert hint in fell.stderr and "--temp-directory" in fell.stderr
    assert hint not in record.stderr
    quiet = runner.invoke(cli, [*args, "--engine", "duckdb", "-q"])
    assert quiet.stdout == record.stdout and quiet.stderr == ""


def test_a_fault_of_our_own_is_not_taken_for_input_duckdb_cannot_read(
    monkeypatch: Any, tmp_path: Path
) -> None:
    """The engine's own function failing inside the query is a fault to report, not a sign
    that DuckDB cannot read the input (that would hand a big table to the record path in
    silence, 40x slower)."""

    def broken(self: Any, kept: Any, code: Any, key: Any, errors: Any, issues: Any) -> Any:
        raise ZeroDivisionError("a fault of ours")

    monkeypatch.setattr(table._Tally, "keep", broken)
    with (
        pytest.raises(duckdb.Error, match="a fault of ours"),
        score_paths([STUDY], scale=load_builtin("madrs"), engine="table") as run,
    ):
        run.write("csv", tmp_path / "out.csv")


@pytest.mark.parametrize(
    "name, code, said",
    [("SIGINT", 130, "Interrupted."), ("SIGTERM", 143, "Terminated."), ("SIGHUP", 129, "Hung up.")],
)
def test_an_interrupt_during_the_query_ends_the_command(
    monkeypatch: Any, runner: Any, tmp_path: Path, name: str, code: int, said: str
) -> None:
    """Ctrl-C (or SIGTERM) while DuckDB runs the query reaches Python in the function
    DuckDB calls with each batch, and DuckDB reports it as that function's error: the
    command still ends as it does elsewhere ("Interrupted.", 130; "Terminated.", 143) and
    writes no output, not even a partial file. (It said "internal error ... This is a bug
    in ketascore", exit 3.)"""
    import signal

    sig = getattr(signal, name)
    keep = table._Tally.keep

    def pressed(self: Any, kept: Any, code: Any, key: Any, errors: Any, issues: Any) -> Any:
        signal.raise_signal(sig)  # (the handler runs here, as it would for a real signal)
        return keep(self, kept, code, key, errors, issues)

    monkeypatch.setattr(table._Tally, "keep", pressed)
    # (Python's own handlers, which the command line starts with; a test runner may differ)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        out = tmp_path / "out.csv"
        args = ["score", str(STUDY), "--scale", "madrs", "--engine", "duckdb", "-o", str(out)]
        got = runner.invoke(cli, args)
        for s in before:  # (the command's handlers, undone)
            assert signal.getsignal(s) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
        for s, handler in before.items():
            signal.signal(s, handler)
    assert got.exit_code == code, got.output
    assert said in got.stderr and "internal error" not in got.stderr
    assert list(tmp_path.iterdir()) == []


_HEADER_TEXT = st.text(alphabet="sSuVvIiTt_1 \t\xa0\ufeffÄä", max_size=6)
_CELL = _HEADER_TEXT | st.sampled_from(
    [" SUBJECT", "subject\xa0", "\ufeffsubject", " \ufeffsubject", "Visit ", "vIsIt\t", "vısıt"]
)


@pytest.fixture(scope="module")
def duckdb_con() -> Any:
    """One DuckDB connection for every example of a property (a new one took 30 ms)."""
    import duckdb

    with duckdb.connect() as con:
        yield con


@settings(max_examples=50)
@given(columns=st.lists(st.tuples(_HEADER_TEXT, _CELL), min_size=1, max_size=4))
def test_a_repeated_header_is_found_in_sql_as_the_reader_finds_it(
    duckdb_con: Any, columns: list[tuple[str, str]]
) -> None:
    """``sql_repeats_header`` (the table engine's) and ``repeats_header`` (the reader's)
    agree on every row: ASCII case and ASCII spaces do not count, other case and other
    spaces do, a byte-order mark only before the first cell; a blank cell is NULL to
    DuckDB. (The names of the first two columns are subject and visit, which the query's
    quick test reads.)"""
    from ketascore.readers.delimited import repeats_header

    header = [name.strip() for name, _ in columns]
    header[:2] = ["subject", "visit"][: len(header)]
    if "" in header or len({h.casefold() for h in header}) != len(header):
        return  # (csv_source takes no header that names a column twice)
    rows = [
        [cell for _, cell in columns],
        [*header],
        [f" {h.upper()}\t" for h in header],
        ["\ufeff" + header[0], *header[1:]],
    ]
    con = duckdb_con
    con.execute(
        f"CREATE OR REPLACE TABLE t ({', '.join(f'{table.quote(h)} VARCHAR' for h in header)})"
    )
    con.executemany(
        f"INSERT INTO t VALUES ({', '.join('?' for _ in header)})",
        [[c or None for c in row] for row in rows],
    )
    got = con.execute(f"SELECT {table.sql_repeats_header(header)} FROM t").fetchall()
    assert [bool(g) for (g,) in got] == [repeats_header(header, row) for row in rows]


@given(
    st.lists(st.lists(st.booleans(), max_size=40), max_size=4),
    st.integers(0, 50),
    st.integers(0, 50),
)
def test_the_counts_read_arrow_buffers_as_arrow_reads_them(
    chunks: list[list[bool]], start: int, length: int
) -> None:
    """The streamed pass reads its batches' booleans and numbers straight from the Arrow
    buffers (bits packed from the lowest, arrays sliced at any offset, several chunks)."""
    np = pytest.importorskip("numpy")
    flags = pa.chunked_array([pa.array(c, pa.bool_()) for c in chunks], pa.bool_())
    numbers = pa.chunked_array([pa.array(range(len(c)), pa.uint64()) for c in chunks], pa.uint64())
    for arrays in ((flags, numbers), (flags.slice(start, length), numbers.slice(start, length))):
        got = table._values(arrays[0], bool)
        assert got.tolist() == arrays[0].to_pylist()
        assert table._values(arrays[1], np.uint64).tolist() == arrays[1].to_pylist()


@pytest.mark.parametrize("size", [0, 1, 2, 1000, (1 << 20) + 3])
def test_a_repeated_key_is_found_in_a_small_or_a_split_array(size: int) -> None:
    """Repeated subjects and visits are found by sorting their hashes: small arrays in one
    sort, large ones split by the highest bit and sorted in two threads; a repeat is found
    wherever its copies are, in either half."""
    np = pytest.importorskip("numpy")
    keys = np.random.default_rng(size).integers(0, 2**64 - 1, size, dtype=np.uint64)
    assert not table._repeats(keys.copy())
    if size > 1:
        for low in (True, False):
            chosen = np.flatnonzero((keys < np.uint64(1 << 63)) == low)
            if len(chosen) < 2:
                continue
            twice = keys.copy()
            twice[chosen[-1]] = twice[chosen[0]]
            assert table._repeats(twice)


_NEAR_FORMULAS = st.text(
    st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20"])
    | st.sampled_from([" ", "\x0b", "\x0c", "0", "1", ".", "a", "\u0301", "'"])
    | st.characters(),
    max_size=8,
)


@given(texts=st.lists(_NEAR_FORMULAS, min_size=1, max_size=30))
def test_the_csv_cells_escape_formulas_as_the_csv_writer_does(
    duckdb_con: Any, texts: list[str]
) -> None:
    """The table engine's CSV cells escape a text that could start a formula by the
    writer's own rule (``needs_escape``), written in SQL: full-width signs, leading
    whitespace, and plain numbers (``-1``, ``+4.5``) that are left as they are."""
    from ketascore.writers.tabular import needs_escape, sql_needs_escape

    texts = [t.replace("\x00", "") for t in texts]
    con = duckdb_con
    con.execute("CREATE OR REPLACE TABLE t (i INTEGER, x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    got = con.execute(f"SELECT {sql_needs_escape('x')} FROM t ORDER BY i").fetchall()
    assert [bool(g) for (g,) in got] == [needs_escape(t) for t in texts]


@pytest.mark.parametrize(
    "shape", ["plain", "crlf", "no-final-newline", "blank-line", "ragged-row", "blank-end"]
)
def test_each_result_names_the_line_the_readers_name(tmp_path: Path, shape: str) -> None:
    """The table engine's results carry the line of their row as the CSV reader counts it,
    whether the line numbers are taken from the row's place (a line for each row) or read
    from the file (a blank or ragged line in between), for rows with and without issues."""
    from ketascore.api import read_answers, score

    header = "subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))
    lines = [f"S{n},v{n % 3},{','.join(str((n + i) % 4) for i in range(9))}" for n in range(40)]
    for n in (7, 31):  # out of range: explained by the record engine
        lines[n] = lines[n][: -len("3")] + "7"
    if shape == "blank-line":
        lines.insert(12, "")
    if shape == "ragged-row":
        lines.insert(20, "S99,v1,1,2")
    newline = "\r\n" if shape == "crlf" else "\n"
    text = newline.join([header, *lines])
    text += {"no-final-newline": "", "blank-end": "\n\n"}.get(shape, newline)
    path = tmp_path / "rows.csv"
    path.write_bytes(text.encode())
    scale = load_builtin("phq9")
    source = table.csv_source(str(path), ["phq9"], scale)
    assert source is not None
    with table.score_tables([source], scale) as run:
        got = [(r.subject, r.source.line, [i.code for i in r.issues]) for r in run.results()]
    expected = [
        (r.subject, r.source.line, [i.code for i in r.issues])
        for r in score(read_answers([str(path)], scales=[scale]).records, scale=scale)
    ]
    assert got == expected and len(got) == 40
    assert [i for _, _, i in got].count(["out-of-range"]) == 2


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_the_copies_of_a_batch_are_found_and_read_together(
    monkeypatch: Any, tmp_path: Path, kind: str
) -> None:
    """Results one by one of a run with repeated subjects and visits: each merged record is
    explained from all its rows. The copies were found one query per record (a join over
    the whole table) and, in a Parquet file, read one query per copy: 100,000 rows with
    2,000 repeats took 95 s to JSON Lines, against 7 s now. They are found once a batch,
    and a Parquet file's read once a batch, with the same results as the readers'."""
    from ketascore.api import read_answers, score

    header = ["subject", "visit", *(f"phq9_{i}" for i in range(1, 10))]
    rows = [[f"S{n}", f"v{n % 3}", *((n + i) % 4 for i in range(9))] for n in range(120)]
    halves = [rows[:60] + rows[100:110], rows[60:] + rows[:12] + rows[30:35]]
    halves[1][-1] = [*halves[1][-1][:-1], 2 + int(halves[1][-1][-1] == 2)]  # (a conflict)
    paths = []
    for i, half in enumerate(halves):
        path = tmp_path / f"t{i}.{kind}"
        if kind == "csv":
            lines = [",".join(map(str, r)) for r in [header, *half]]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        else:
            cols = list(zip(*half, strict=True))
            pq.write_table(pa.table({h: list(c) for h, c in zip(header, cols, strict=True)}), path)
        paths.append(path)
    scale = load_builtin("phq9")
    found, read = [], []
    real_copies, real_rows_at = table.TableRun._copies, table._rows_at
    monkeypatch.setattr(
        table.TableRun, "_copies", lambda run, ids: found.append(ids) or real_copies(run, ids)
    )
    monkeypatch.setattr(
        table, "_rows_at", lambda run, f, at: read.append(f) or real_rows_at(run, f, at)
    )
    sources = [
        table.csv_source(str(p), ["phq9"], scale) if kind == "csv" else table.parquet_source(str(p))
        for p in paths
    ]
    with table.score_tables(sources, scale) as run:  # type: ignore[arg-type]
        assert run.merged
        got = [(r.subject, r.visit, r.scores, [i.code for i in r.issues]) for r in run.results()]
    records = read_answers([str(p) for p in paths], scales=[scale]).records
    expected = [
        (r.subject, r.visit, r.scores, [i.code for i in r.issues])
        for r in score(records, scale=scale)
    ]
    assert got == expected and len(got) == 120
    assert sum(bool(i) for *_, i in got) == 27  # the repeats, one of them a conflict
    assert [c for *_, i in got for c in i].count("conflicting-records") == 1
    assert len(found) == 1 and len(found[0]) == 27  # one batch: one query
    assert read == ([] if kind == "csv" else [0, 1])


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_rows_merged_with_later_ones_are_read_by_where_their_lines_start(
    tmp_path: Path, newline: str
) -> None:
    """A CSV file that repeats its first rows at its end (an export appended to part of
    itself): each merged record is explained from a row and a later copy, so the reading
    goes back and forth. Going back read the file again from its top (25,000 rows to JSON
    Lines: 23 s, now 5 s); the rows are found by where their lines start, with the lines
    and results the readers give."""
    from ketascore.api import read_answers, score

    header = "subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))
    lines = [f"S{n},v{n % 3},{','.join(str((n + i) % 4) for i in range(9))}" for n in range(300)]
    lines[5] = lines[5][:-1] + "9"  # (out of range, in both copies)
    path = tmp_path / "again.csv"
    path.write_bytes(newline.join([header, *lines, *lines[:150]]).encode() + newline.encode())
    scale = load_builtin("phq9")
    source = table.csv_source(str(path), ["phq9"], scale)
    assert source is not None
    with table.score_tables([source], scale) as run:
        got = [
            (r.subject, r.source.line, r.scores, [i.code for i in r.issues]) for r in run.results()
        ]
    expected = [
        (r.subject, r.source.line, r.scores, [i.code for i in r.issues])
        for r in score(read_answers([str(path)], scales=[scale]).records, scale=scale)
    ]
    assert got == expected and len(got) == 300
    assert [i for *_, i in got].count(["duplicate-record"]) == 149


def test_the_issues_listed_and_counted_are_the_record_engines(runner: Any, tmp_path: Path) -> None:
    """The command lists the first 50 issues, errors first, then counts them all. The
    table engine read the issues of its first 51 results with one and counted only those:
    80 repeated rows (warnings) before 10 rows out of range said "0 errors, 51 warnings"
    and listed no error, while the exit code said 1. It now lists the same issues as the
    record engine and counts them all (20 errors and 80 warnings here)."""
    header = "subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))
    lines = [f"S{n},v1,{','.join(str((n + i) % 4) for i in range(9))}" for n in range(100)]
    lines += lines[:80]
    for n in range(90, 100):
        lines[n] = f"S{n},v1,7,7,0,0,0,0,0,0,0"  # (two items out of range)
    path = tmp_path / "t.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    args = ["score", str(path), "--scale", "phq9", "--format", "csv"]
    record = runner.invoke(cli, [*args, "--engine", "record"])
    table_run = runner.invoke(cli, [*args, "--engine", "duckdb"])
    assert table_run.exit_code == record.exit_code == 1
    assert table_run.stdout == record.stdout
    assert table_run.stderr == record.stderr
    assert "20 errors, 80 warnings" in record.stderr
    with score_paths(path, scale=load_builtin("phq9"), engine="table") as run:
        assert run.issue_totals() == (20, 80) and run.engine == "table"
        assert len(run.problem_results(50)) == 60  # (the first 50 with an issue, and 10 errors)
    assert record.stderr.index("error[") < record.stderr.index("warning[")


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_column_without_a_name_is_left_to_the_readers(tmp_path: Path, kind: str) -> None:
    """A column with no name (a blank header cell): the readers carry it to the output
    under no name, and DuckDB cannot name it. A CSV file's query failed to parse, and the
    run was handed to the record engine only after that failure; a Parquet file's column
    DuckDB names C1, and the table engine carried it so. Such a table is the record
    engine's from the start, with its output."""
    header = ["subject", "visit", "", *(f"phq9_{i}" for i in range(1, 10))]
    rows = [[f"S{n}", "v1", "x", *(str((n + i) % 4) for i in range(9))] for n in range(30)]
    path = tmp_path / f"t.{kind}"
    if kind == "csv":
        path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    else:
        columns = list(zip(*rows, strict=True))
        pq.write_table(pa.table({h: list(c) for h, c in zip(header, columns, strict=True)}), path)
    scale = load_builtin("phq9")
    with score_paths(path, scale=scale, engine="table") as run:
        got = [(r.subject, r.scores, r.extra) for r in run.results()]
        assert run.engine == "record" and run.fell_back is None
    with score_paths(path, scale=scale, engine="record") as run:
        assert got == [(r.subject, r.scores, r.extra) for r in run.results()]
    assert got[0][2] == {"": "x"}
    if kind == "csv":  # a DataFrame with such a column is the records', too (it crashed)
        from ketascore.engines.dataframe import score_frame

        frame = pd.DataFrame(rows, columns=header)
        scored = score_frame(frame, scale)
        assert list(scored.scores[""]) == ["x"] * 30
        assert list(scored.scores["total"]) == [r[1]["total"] for r in got]


@pytest.mark.parametrize("shape", ["repeat", "no-subject", "repeat-far"])
def test_a_streamed_pass_stops_at_the_first_batch_that_needs_a_table(
    monkeypatch: Any, tmp_path: Path, shape: str
) -> None:
    """Writing a file streams the query into it, and scores the run into a table when the
    pass finds repeated subjects and visits or rows the readers report: the stream was then
    written to the end for nothing (a 1M-row CSV with 20,000 repeats: 8.6 s, 3.5-3.9 s when
    stopped). It stops at the first batch with a row the readers report or a record that
    repeats the one before it (a repeat further away is found at the end, as before); the
    output is the record engine's either way."""
    header = "subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))
    lines = [f"S{n},v1,{','.join(str((n + i) % 4) for i in range(9))}" for n in range(300)]
    if shape == "repeat":
        lines.insert(10, lines[9])
    elif shape == "no-subject":
        lines[10] = "," + lines[10].split(",", 1)[1]
    else:
        lines.append(lines[3])
    path = tmp_path / "t.csv"
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    stops: list[bool] = []
    real = table.TableRun._counted

    def counted(run: Any, *args: Any) -> Any:
        try:
            tally = real(run, *args)
        except Exception:
            stops.append(True)
            raise
        stops.append(False)
        return tally

    monkeypatch.setattr(table.TableRun, "_counted", counted)
    scale = load_builtin("phq9")
    with score_paths(path, scale=scale, engine="table") as run:
        run.write("csv", tmp_path / "out.csv")
        assert run.engine == "table"
    assert stops[0] == (shape != "repeat-far") and len(stops) >= 2  # (then the table)
    with score_paths(path, scale=scale, engine="record") as run:
        from ketascore.writers.tabular import score_csv

        expected = score_csv(list(run.results()), run.issues)
    assert (tmp_path / "out.csv").read_text(encoding="utf-8") == expected


@pytest.fixture(scope="module")
def scattered() -> tuple[Any, list[int], list[int]]:
    """600,000 PHQ-9 rows (an Arrow table of texts, made by DuckDB) with errors (item 1
    out of range, 1 row in 10,000: the first 50 spread over several of DuckDB's row groups,
    which a parallel join takes in no order; within one or two it kept the order) and
    warnings (item 9 blank) scattered among them, and the rows of each."""
    import duckdb

    con = duckdb.connect()
    luck = "(hash(n, 'luck') % 10000)"
    items = [f"CAST(hash(n, {i}) % 4 AS VARCHAR)" for i in range(1, 10)]
    items[0] = f"CASE WHEN {luck} < 1 THEN '7' ELSE {items[0]} END"
    items[8] = f"CASE WHEN {luck} >= 9996 THEN NULL ELSE {items[8]} END"
    items = [f"{e} AS phq9_{i}" for i, e in enumerate(items, 1)]
    con.execute(
        "CREATE TABLE t AS SELECT 'S' || lpad(CAST(n // 4 AS VARCHAR), 6, '0') AS subject, "
        f"'v' || CAST(n % 4 AS VARCHAR) AS visit, {', '.join(items)}, {luck} AS luck "
        "FROM range(600000) r(n) ORDER BY n"
    )
    rows = {
        kind: [n for (n,) in con.execute(f"SELECT rowid FROM t WHERE {at} ORDER BY 1").fetchall()]
        for kind, at in (("errors", "luck < 1"), ("warnings", "luck >= 9996"))
    }
    whole = con.sql("SELECT * EXCLUDE (luck) FROM t ORDER BY rowid").to_arrow_table()
    return whole, rows["errors"], rows["warnings"]


@pytest.mark.parametrize(
    ("kind", "files", "streamed"),
    [("csv", 1, True), ("csv", 1, False), ("csv", 2, True), ("parquet", 1, True)],
)
def test_the_issues_listed_are_the_first_in_input_order(
    scattered: Any, tmp_path: Path, kind: str, files: int, streamed: bool
) -> None:
    """The results the command lists issues of are the first with an error and the first
    with any issue, in input order, whether the run was streamed into a file (found by
    their subject and visit afterwards, in each of several files) or scored into a table.
    On a 1M-row CSV the table's were taken by a parallel join, out of order: the listing
    began at its 136,435th line, not its 8,331st."""
    import duckdb
    import pyarrow.parquet as pq

    whole, errors, warnings = scattered
    size = whole.num_rows // files
    sources = []
    for f in range(files):
        part, path = whole.slice(f * size, size), tmp_path / f"part{f}.{kind}"
        if kind == "csv":  # (DuckDB writes no quote character where none is needed)
            duckdb.from_arrow(part).write_csv(str(path))
            sources.append(table.csv_source(str(path), ["phq9"]))
        else:
            pq.write_table(part, path, row_group_size=50_000)
            sources.append(table.parquet_source(str(path)))
    first = sorted(set(errors[:50] + sorted(errors + warnings)[:50]))
    shift = 2 if kind == "csv" else 1  # (a CSV row's line; a Parquet row's number)
    expected = [(f"part{n // size}.{kind}", n % size + shift) for n in first]
    with table.score_tables(sources, load_builtin("phq9"), lazy=streamed) as run:
        if streamed:
            run.write("csv", tmp_path / "out.csv")
        listed = run.problem_results(50)
        assert bool(run.table) is not streamed
    assert [(Path(r.source.file or "").name, r.source.line) for r in listed] == expected
    assert all(r.issues for r in listed) and len(expected) > 60
