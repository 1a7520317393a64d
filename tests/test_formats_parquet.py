"""Parquet tables: read by the Parquet reader (record engine) and inside DuckDB (table engine),
with the same records and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("duckdb")

from ketascore.cli import cli  # noqa: E402


def both_engines(runner: Any, path: Path | list[Path], *args: str, exit_code: int = 0) -> list[Any]:
    """The stdout and stderr of ``score PATH... --scale phq9 ARGS`` by the record engine
    and by the table engine (DuckDB), each with ``exit_code``."""
    paths = [str(p) for p in (path if isinstance(path, list) else [path])]
    outputs = []
    for engine in ("record", "duckdb"):
        result = runner.invoke(cli, ["score", *paths, "--scale", "phq9", *args, "--engine", engine])
        assert result.exit_code == exit_code, result.output
        outputs.append((result.stdout, result.stderr))
    return outputs


@pytest.mark.parametrize("column", ["subject", "visit"])
def test_a_nan_subject_or_visit_is_blank_in_every_engine(
    runner: Any, tmp_path: Path, column: str
) -> None:
    """A NaN in a number column of subjects or visits is a blank cell, as the Parquet reader
    takes it: the row is reported (missing-field) and not scored. The table engine wrote
    NaN as the text 'nan' and scored the row for subject (or at visit) 'nan'."""
    ids = {"subject": ["S1", "S2"], "visit": ["v1", "v1"]}
    ids[column] = [1.5, float("nan")]  # (no whole number: the column stays DOUBLE)
    table = {**ids, **{f"phq9_{i}": [1, 2] for i in range(1, 10)}}
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv", exit_code=1)
    assert "row has no " + column in stderr and "nan" not in stdout
    assert other == (stdout, stderr)


def test_a_quoted_missing_code_is_the_number_in_every_engine(runner: Any, tmp_path: Path) -> None:
    """``missing_codes: ['7']`` in a mapping file means the number 7 (the value grammar reads
    the code as it reads an answer): an integer column's 7 is no answer in both engines
    (it was out of range in both)."""
    items = ", ".join(f"{i}: Q{i}" for i in range(1, 10))
    (tmp_path / "m.yaml").write_text(
        f"scale: phq9\nsubject: ID\nvisit: Wave\nitems: {{{items}}}\nmissing_codes: ['7']\n"
    )
    table = {"ID": ["A1", "A2"], "Wave": ["w", "w"], **{f"Q{i}": [1, 1] for i in range(1, 10)}}
    table["Q1"] = [7, 2]
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    mapping = str(tmp_path / "m.yaml")
    (stdout, stderr), other = both_engines(runner, path, "--map", mapping, "--format", "csv")
    assert stdout.splitlines()[1].startswith("A1,w,,,phq9,1.0,9,mild,8,true,")
    assert other == (stdout, stderr)


def test_a_date_python_cannot_hold_is_reported_not_a_failure(runner: Any, tmp_path: Path) -> None:
    """A date before year 1 (or a timestamp beyond year 9999) has no Python object: the
    column is read as pyarrow writes its values, so the date is a bad-field and the answer
    not-a-number. Reading the file failed (internal-error: the file was not read)."""
    table = {
        "subject": ["a", "b"],
        "visit": ["v", "v"],
        "date": pa.array([-800000, 0], pa.date32()),
    }
    table.update({f"phq9_{i}": [1, 1] for i in range(1, 10)})
    table["phq9_9"] = pa.array([0, 2**62], pa.timestamp("us"))
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    args = ["score", str(path), "--scale", "phq9", "--engine", "record", "--format", "csv"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "internal-error" not in result.stderr
    assert "date '-0221-09-04' is not an ISO date" in result.stderr
    assert "'<value out of range: 4611686018427387904>' is not a number" in result.stderr
    assert "'1970-01-01 00:00:00.000000' is not a number" in result.stderr


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "fhir"])
def test_carried_columns_of_any_type_are_written(runner: Any, tmp_path: Path, fmt: str) -> None:
    """Columns carried to the output hold what Parquet holds: each becomes a value every
    output can write (a duration and bytes as text, a Decimal as a number, an infinite
    number as its text, nested dates as ISO text). JSON output stopped with an internal
    error (exit 3) on a duration, a Decimal, bytes, a list of dates or an infinity."""
    import datetime as dt
    import decimal
    import json

    table = {
        "subject": ["a"],
        "visit": ["v"],
        "wait": pa.array([5], pa.duration("s")),
        "dose": pa.array([decimal.Decimal("1.50")]),
        "raw": pa.array([b"ab"]),
        "dates": pa.array([[dt.date(2024, 1, 1)]]),
        "far": pa.array([float("inf")]),
        **{f"phq9_{i}": [1] for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    args = ["score", str(path), "--scale", "phq9", "--engine", "record", "--format", fmt]
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    if fmt == "json":
        (row,) = json.loads(result.stdout)["results"]
        assert [row[k] for k in ("wait", "dose", "raw", "dates", "far")] == [
            "0:00:05",
            1.5,
            "ab",
            ["2024-01-01"],
            "inf",
        ]


def test_carried_numbers_are_written_alike_by_both_engines(runner: Any, tmp_path: Path) -> None:
    """A carried DECIMAL, NaN or infinite number: the table engine (the default for
    Parquet) wrote DuckDB's Decimal and non-finite floats into the results, and JSON
    output stopped with an internal error (exit 3); it now carries them as the readers do."""
    import decimal

    table = {
        "subject": ["a", "b"],
        "visit": ["v", "v"],
        "dose": pa.array([decimal.Decimal("1.50"), decimal.Decimal("2.00")]),
        "weight": pa.array([float("nan"), float("-inf")]),
        **{f"phq9_{i}": [1, 2] for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    outputs = [
        [line for line in stdout.splitlines() if '"provenance"' not in line]
        for stdout, _ in both_engines(runner, path, "--format", "jsonl")
    ]
    assert outputs[0] == outputs[1]
    assert '"dose": 1.5, "weight": null' in outputs[0][0]
    assert '"dose": 2, "weight": "-inf"' in outputs[0][1]


@pytest.mark.parametrize(
    ("name", "column", "shown"),
    [
        (
            "date",
            pa.array([1704114300000000, None], pa.timestamp("us", tz="UTC")),
            "2024-01-01T13:05:00+00:00",
        ),
        ("date", pa.array([1704114300000000, None], pa.timestamp("us")), "2024-01-01T13:05:00"),
        ("wait", pa.array([5, None], pa.duration("s")), "0:00:05"),
    ],
)
def test_timestamps_and_durations_are_read_as_the_reader_reads_them(
    runner: Any, tmp_path: Path, name: str, column: Any, shown: str
) -> None:
    """DuckDB writes a timestamp with a space (and a zone as +00, which the date check does
    not read: the table engine, the default for Parquet, dropped such a date without a
    word) and a duration as an integer; a file with such a column is left to the Parquet
    reader, which writes ISO text, so both engines give the same output."""
    table = {"subject": ["a", "b"], "visit": ["v", "v"], name: column}
    table.update({f"phq9_{i}": [1, 2] for i in range(1, 10)})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv")
    assert other == (stdout, stderr)
    assert f",{shown}," in stdout.splitlines()[1] or stdout.splitlines()[1].endswith(shown)


def test_a_timestamp_is_written_as_the_reader_writes_it_inside_duckdb(
    runner: Any, tmp_path: Path
) -> None:
    """A timestamp without a zone or in UTC (a visit's date and time, a carried collection
    time) is ISO text in both engines (``2024-01-01T13:05:00``, six digits of a fraction, a year
    before 1000 in four digits), and the file stays with the table engine (it went to the
    record path, row by row); a timestamp Python cannot hold leaves the file to the reader."""
    from ketascore.api import score_paths
    from ketascore.core.library import load_builtin

    stamps = [1704114300000000, 1704114300123456, 1704067200000000, -59042995200000000, None]
    table: dict[str, Any] = {"subject": list("abcde"), "visit": ["v"] * 5}
    table["date"] = pa.array(stamps, pa.timestamp("us"))
    table["collected"] = pa.array([s // 1000 if s else None for s in stamps], pa.timestamp("ms"))
    table["sent"] = pa.array(stamps, pa.timestamp("us", tz="UTC"))
    table.update({f"phq9_{i}": [1, 2, 0, 3, 1] for i in range(1, 10)})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv")
    assert other == (stdout, stderr)
    outputs = [
        [line for line in out.splitlines() if '"provenance"' not in line]
        for out, _ in both_engines(runner, path, "--format", "jsonl")
    ]
    assert outputs[0] == outputs[1]
    stdout = "\n".join(outputs[0])
    assert "2024-01-01T13:05:00.123456" in stdout and "0099-01-01T00:00:00" in stdout
    assert (
        '"date": "2024-01-01T13:05:00"' in stdout and '"collected": "2024-01-01T13:05:00"' in stdout
    )
    assert '"sent": "2024-01-01T13:05:00.123456+00:00"' in stdout
    with score_paths([path], scale=load_builtin("phq9"), engine="table") as run:
        assert run.engine == "table"
    for odd in (
        pa.array([0, 2**62, None, None, None], pa.timestamp("us")),  # beyond year 9999
        pa.array(stamps, pa.timestamp("us", tz="Europe/Berlin")),  # the reader's offsets
    ):
        table["collected"] = odd
        pq.write_table(pa.table(table), path)
        (stdout, stderr), other = both_engines(runner, path, "--format", "csv")
        assert other == (stdout, stderr)
        with score_paths([path], scale=load_builtin("phq9"), engine="table") as run:
            assert run.engine == "record"


def test_parquet_output_of_an_input_the_table_engine_leaves_says_what_to_do(
    runner: Any, tmp_path: Path
) -> None:
    """Only the table engine writes Parquet; an input it leaves to the readers (a timestamp
    in a zone other than UTC) is a usage error that says why and what to write instead (it
    only told the user to give --engine duckdb --scale, which they had)."""
    table: dict[str, Any] = {"subject": ["a"], "visit": ["v"]}
    table["sent"] = pa.array([1704114300000000], pa.timestamp("us", tz="Europe/Berlin"))
    table.update({f"phq9_{i}": [1] for i in range(1, 10)})
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    out = tmp_path / "out.parquet"
    args = ["score", str(path), "--scale", "phq9", "--engine", "duckdb", "-o", str(out)]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert "which did not score this input" in result.stderr
    assert "write --format csv or json instead" in result.stderr
    assert not out.exists()


def test_a_number_id_is_the_same_text_in_every_engine(runner: Any, tmp_path: Path) -> None:
    """A subject or visit typed as a number is its number's text, one rule for both engines
    (``values.id_text``): a whole double is an integer (``1.0`` is ``1``, ``-0.0`` is
    ``0``), a DECIMAL by its digits (``1.50`` is ``1.5``). A double from 2^53 on cannot hold
    every whole number, so it may not be the id that was written: the row is reported and
    not scored. The record engine read a DECIMAL visit as no visit at all, and the table
    engine wrote 1e20 as ``1e+20`` where the record engine wrote ``100000000000000000000``."""
    import decimal

    table = {
        "subject": pa.array([1.0, 2.5, 1e20, 2.0**53 + 2, -0.0]),
        "visit": pa.array(
            [decimal.Decimal(v) for v in ("1.50", "2.00", "1", "1", "-0.00")], pa.decimal128(10, 2)
        ),
        **{f"phq9_{i}": [1] * 5 for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv", exit_code=1)
    assert [line.split(",")[:2] for line in stdout.splitlines()[1:4]] == [
        ["1", "1.5"],
        ["2.5", "2"],
        ["0", "0"],
    ]
    assert "subject 1e+20 is a floating-point number too large to be an exact id" in stderr
    assert "subject 9007199254740994.0 is a floating-point number too large" in stderr
    assert "100000000000000000000" not in stdout + stderr
    assert other == (stdout, stderr)


def test_a_float32_id_from_2_24_on_is_refused_in_every_engine(runner: Any, tmp_path: Path) -> None:
    """A 32-bit FLOAT holds every whole number below 2^24 only: subject 16777217 written to
    a FLOAT column is stored as 16777216, so a FLOAT id from 2^24 on is refused as a
    DOUBLE one is from 2^53 on (the message names the 32-bit float's limit). Both engines
    scored subject 16777216 (and 16777218, 1e10) as if it were the id written."""
    subjects = [16777215.0, 16777217.0, 16777218.0, -1e10, 2.5]
    table = {
        "subject": pa.array(subjects, pa.float32()),
        "visit": pa.array([1.0, 1.0, 1.0, 1.0, 3e7], pa.float32()),
        **{f"phq9_{i}": [1] * 5 for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv", exit_code=1)
    assert [line.split(",")[:2] for line in stdout.splitlines()[1:]] == [["16777215", "1"]]
    for field, value in [("subject", "16777216.0"), ("subject", "16777218.0")]:
        assert (
            f"{field} {value} is a floating-point number too large to be an exact id (from "
            f"2^24 = 16777216 on, a 32-bit float cannot hold every whole number" in stderr
        )
    assert "subject -10000000000.0 is a floating-point" in stderr
    assert "visit 30000000.0 is a floating-point" in stderr
    assert other == (stdout, stderr)


def test_a_float16_id_from_2_11_on_is_refused_in_every_engine(runner: Any, tmp_path: Path) -> None:
    """A 16-bit float (Parquet FLOAT16) holds every whole number below 2^11 only: subject
    2049 written to such a column is stored as 2048, so its id is refused from 2^11 on (the
    message names the 16-bit float's limit), by either engine. DuckDB reads the column as a
    FLOAT, exactly: both engines took it for a 32-bit float and scored subject 2048 (and
    4096, 60000) as if it were the id written."""
    table = {
        "subject": pa.array([2047.0, 2049.0, 4097.0, -60000.0, 2.5], pa.float16()),
        "visit": pa.array([1.0, 1.0, 1.0, 1.0, 3000.0], pa.float16()),
        **{f"phq9_{i}": [1] * 5 for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv", exit_code=1)
    assert [line.split(",")[:2] for line in stdout.splitlines()[1:]] == [["2047", "1"]]
    for field, value in [("subject", "2048.0"), ("subject", "4096.0"), ("visit", "3000.0")]:
        assert (
            f"{field} {value} is a floating-point number too large to be an exact id (from "
            f"2^11 = 2048 on, a 16-bit float cannot hold every whole number" in stderr
        )
    assert "subject -60000.0 is a floating-point" in stderr
    assert other == (stdout, stderr)


def test_a_subnormal_id_is_refused_in_every_engine(runner: Any, tmp_path: Path) -> None:
    """Below its least normal number a floating-point type holds fewer digits (1.5e-320 and
    1.5000001e-320 are one double), and engines write such a number differently (Java, so
    Spark, 4.9e-324 for Python's 5e-324): an id there is refused, for each width, naming
    the bound; zero and a small normal number are ids. The table engine once wrote 5e-324
    as 5e-32 (an exponent of three digits cut to two)."""
    table = {
        "n": pa.array(range(6), pa.int64()),
        "subject": pa.array([5e-324, 1.5e-310, 1e-100, 0.0, 2.5, 2.5]),
        "visit": pa.array([1.0, 1.0, 1.0, 1.0, 1e-40, 2.0], pa.float32()),
        **{f"phq9_{i}": [1] * 6 for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv", exit_code=1)
    assert [line.split(",")[:2] for line in stdout.splitlines()[1:]] == [
        ["1e-100", "1"],
        ["0", "1"],
        ["2.5", "2"],
    ]
    double = "(below 2^-1022 = 2.2250738585072014e-308, a double holds fewer digits"
    for value in ("5e-324", "1.5e-310"):
        assert (
            f"subject {value} is a floating-point number too small to be an exact id "
            f"{double}" in stderr
        )
    assert (
        "visit 9.99994610111476e-41 is a floating-point number too small to be an exact "
        "id (below 2^-126 = 1.1754943508222875e-38, a 32-bit float holds fewer digits" in stderr
    )
    assert other == (stdout, stderr)


def test_duckdb_tells_a_float16_column_without_pyarrow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """DuckDB reads a FLOAT16 column as a FLOAT: the table engine knows it for a 16-bit
    one from DuckDB's own schema of the file, with no Arrow schema to ask (pyarrow not
    installed), and passes over a nested column's FLOAT16 field of the same name."""
    from ketascore.engines import table

    monkeypatch.setattr(table, "_arrow_types", lambda path: {})
    nested = pa.struct([("subject", pa.float16()), ("visit", pa.float32())])
    columns = {
        "n": pa.array([{"subject": 1.0, "visit": 2.0}], nested),
        "subject": pa.array([1.0], pa.float16()),
        "visit": pa.array([1.0], pa.float32()),
        "x": pa.array([1.0], pa.float64()),
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(columns), path)
    import duckdb

    with duckdb.connect() as con:
        assert table._half_floats(con, str(path)) == {"subject"}
    del columns["n"]
    pq.write_table(pa.table(columns), path)
    kinds = table.parquet_source(str(path)).kinds
    assert kinds == {"subject": "half", "visit": "float", "x": "number"}


def test_a_float16_id_keeps_its_limit_next_to_other_types(runner: Any, tmp_path: Path) -> None:
    """Two files whose subjects are typed FLOAT16 and DOUBLE: each keeps its own limit when
    the table engine reads them as one table (a DOUBLE's 3000 is an id; a FLOAT16's is not)."""
    paths = []
    for name, kind, other in [("half", pa.float16(), 7.0), ("double", pa.float64(), 8.0)]:
        table = {
            "subject": pa.array([3000.0, other], kind),
            "visit": ["v", "v"],
            **{f"phq9_{i}": [1, 1] for i in range(1, 10)},
        }
        paths.append(tmp_path / f"{name}.parquet")
        pq.write_table(pa.table(table), paths[-1])
    (stdout, stderr), other = both_engines(runner, paths, "--format", "csv", exit_code=1)
    assert [line.split(",")[0] for line in stdout.splitlines()[1:]] == ["7", "3000", "8"]
    assert "half.parquet:1: visit v: subject 3000.0 is a floating-point number" in stderr
    assert other == (stdout, stderr)


def test_a_table_with_nothing_to_score_gives_one_header(runner: Any, tmp_path: Path) -> None:
    """A table whose rows answer no item (every item cell blank) gives no result: the CSV is
    the header the record engine writes for no result, from either engine. The table
    engine wrote a header naming the scale's scores and the carried columns."""
    table = {
        "subject": ["S1", "S2"],
        "visit": ["v1", "v1"],
        "arm": ["a", "b"],
        **{f"phq9_{i}": pa.array([None, None], pa.int8()) for i in range(1, 10)},
    }
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    (stdout, stderr), other = both_engines(runner, path, "--format", "csv")
    assert stdout == "subject,visit,date,day,scale,scale_version,flags,issues\n"
    assert other == (stdout, stderr)


def test_an_integer_and_a_decimal_id_column_in_two_files(runner: Any, tmp_path: Path) -> None:
    """Two Parquet files scored as one run, the subject an integer in one and a DECIMAL in
    the other: DuckDB reads the two as one DECIMAL column, whose ids are their digits, as
    the reader reads each file. The run took the column for a double, so a DECIMAL id of
    2^53 or more was refused as inexact where the record engine read its digits; and a
    carried column, an integer in one file and a DECIMAL in the other, was written as the
    first file types it (the DECIMAL 1.50 as 1.50, where the record engine writes 1.5)."""
    import decimal

    items = {f"phq9_{i}": [1] for i in range(1, 10)}
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    ids, doses = pa.array([7], pa.int64()), pa.array([3], pa.int32())
    pq.write_table(pa.table({"subject": ids, "visit": ["v"], **items, "dose": doses}), first)
    big = pa.array([decimal.Decimal("12345678901234567890")], pa.decimal128(20, 0))
    doses = pa.array([decimal.Decimal("1.50")], pa.decimal128(10, 2))
    pq.write_table(pa.table({"subject": big, "visit": ["v"], **items, "dose": doses}), second)
    outputs = both_engines(runner, [first, second], "--format", "csv")
    rows = [line.split(",") for line in outputs[0][0].splitlines()[1:]]
    assert [(row[0], row[-1]) for row in rows] == [("7", "3"), ("12345678901234567890", "1.5")]
    assert outputs[0] == outputs[1]


def test_an_integer_and_a_float_id_column_in_two_files(runner: Any, tmp_path: Path) -> None:
    """Two Parquet files scored as one run, the subject an INTEGER in one and a FLOAT in the
    other: DuckDB's union of the two is a FLOAT, which holds no integer beyond 2^24 exactly,
    so subject 20000001 became 20000000. Each file's column is now read as a double, which
    holds both."""
    items = {f"phq9_{i}": [1] for i in range(1, 10)}
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    subject = pa.array([20000001], pa.int32())
    pq.write_table(pa.table({"subject": subject, "visit": ["v"], **items}), first)
    subject = pa.array([1.5], pa.float32())
    pq.write_table(pa.table({"subject": subject, "visit": ["v"], **items}), second)
    outputs = both_engines(runner, [first, second], "--format", "csv")
    assert [line.split(",")[0] for line in outputs[0][0].splitlines()[1:]] == ["20000001", "1.5"]
    assert outputs[0] == outputs[1]


def test_an_id_typed_otherwise_in_two_files_is_each_files_id(runner: Any, tmp_path: Path) -> None:
    """Two Parquet files scored as one run, the subject an integer in one and a DOUBLE (or
    a FLOAT) in the other: each file's subject is its own id, as the reader reads each file.
    The integer 9007199254740993 is exact (as an integer it is the id written), so it is
    kept, while a double there is refused; a FLOAT's subject from 2^24 on is refused next
    to a DOUBLE's of the same value, which is kept. The table engine read the two files'
    column as one DOUBLE: it refused the integer (9007199254740993 as a double is
    9007199254740992, beyond 2^53) and kept the FLOAT's 16777216, where the record engine
    kept the one and refused the other."""
    items = {f"phq9_{i}": [1, 1] for i in range(1, 10)}
    paths = [tmp_path / f"{n}.parquet" for n in "abcd"]
    subjects = [
        pa.array([2**53 + 1, 7], pa.int64()),
        pa.array([1.5, 2.0**53], pa.float64()),
        pa.array([16777216.0, 3.0], pa.float32()),
        pa.array([16777216.0, 4.0], pa.float64()),
    ]
    for path, subject in zip(paths, subjects, strict=True):
        pq.write_table(pa.table({"subject": subject, "visit": ["v", "w"], **items}), path)
    outputs = both_engines(runner, paths, "--format", "csv", exit_code=1)
    stdout, stderr = outputs[0]
    assert [line.split(",")[0] for line in stdout.splitlines()[1:]] == [
        "9007199254740993",
        "7",
        "1.5",
        "3",
        "16777216",
        "4",
    ]
    assert "subject 9007199254740992.0 is a floating-point number too large" in stderr
    assert "subject 16777216.0 is a floating-point number too large" in stderr
    assert "2^24 = 16777216 on, a 32-bit float" in stderr
    assert outputs[1] == outputs[0]


def test_a_text_id_in_a_csv_file_and_a_double_in_a_parquet_file(
    runner: Any, tmp_path: Path
) -> None:
    """A subject that is text in a CSV file (`` 1.0 ``) and a DOUBLE in a Parquet file
    (1.0): each file's id is its own text (``1.0`` and ``1``), as the readers read them, and
    the table engine scores the two files itself (it left them to the record engine, since
    a DOUBLE and a text cannot be read as one column)."""
    from ketascore.api import score_paths
    from ketascore.core.library import load_builtin

    items = {f"phq9_{i}": [1, 1] for i in range(1, 10)}
    pq.write_table(
        pa.table({"subject": [1.0, 2.5], "visit": ["v", "v"], **items}), tmp_path / "b.parquet"
    )
    header = "subject,visit," + ",".join(items)
    answers = ",".join(["1"] * 9)
    (tmp_path / "a.csv").write_text(f"{header}\n 1.0 ,v,{answers}\n2.5,v,{answers}\n")
    paths = [tmp_path / "a.csv", tmp_path / "b.parquet"]
    outputs = both_engines(runner, paths, "--format", "csv")
    assert [line.split(",")[0] for line in outputs[0][0].splitlines()[1:]] == ["1.0", "2.5", "1"]
    assert outputs[1] == outputs[0]
    with score_paths(paths, scale=load_builtin("phq9"), engine="table") as run:
        assert run.engine == "table"
