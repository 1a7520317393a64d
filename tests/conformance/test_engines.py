"""One conformance suite for every engine: the record engine (the reference), the table
engine (DuckDB) and the compiled query run as text, on every built-in scale and on a
scale that uses every construct of the language, on random answers, on the malformed
corpus and on random tables (hypothesis). Every comparison uses ``support.compare`` or
``support.query_differences``: one definition of "the same", types included."""

from __future__ import annotations

import json
import math
import random
import string
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

duckdb = pytest.importorskip("duckdb")
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from support import (  # noqa: E402
    EXTRA_CODES,
    compare,
    duckdb_table,
    query_differences,
    query_rows,
    random_rows,
    record_results,
    record_texts,
    scales_across_visits,
    scales_under_test,
    sink_scale,
    streamed_csv,
    table_results,
    table_texts,
    write_csv,
)

from ketascore.api import score_paths  # noqa: E402
from ketascore.cli import cli  # noqa: E402
from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.core.records import AnswerRecord  # noqa: E402
from ketascore.core.scale import Scale  # noqa: E402
from ketascore.engines import duckdb_config  # noqa: E402
from ketascore.engines.record import score_record  # noqa: E402
from ketascore.engines.sql import ColumnMap, SqlError, TableLayout, compile_scale  # noqa: E402
from ketascore.writers.tabular import score_csv  # noqa: E402

from conftest import DATA, budget  # noqa: E402


def record_of(scale: Scale, row: dict[str, Any], codes: tuple[Any, ...] = ()) -> Any:
    prefix = f"{scale.id}_"
    items = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    record = AnswerRecord(subject=row["subject"], visit=row["visit"], scale=scale.id, items=items)
    return score_record(scale, record, extra_missing=codes)


@pytest.mark.parametrize("scale", scales_under_test(), ids=lambda s: s.id)
def test_every_engine_gives_the_record_engines_results(tmp_path: Path, scale: Scale) -> None:
    """A CSV file of random answers (repeated subjects and visits among them): the table
    engine's results are the record engine's, every field and message; the query, run as
    text on a table of texts (extra missing codes too), gives the same columns."""
    rows = random_rows(scale, 150, seed=8, repeats=True)
    path = write_csv(tmp_path / f"{scale.id}.csv", rows)
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])
    assert [i.message for i in issues] == [i.message for i in expected_issues]

    unique = random_rows(scale, 150, seed=9)
    con = duckdb.connect()
    duckdb_table(con, unique)
    compiled = compile_scale(
        scale, "duckdb", columns=ColumnMap(missing_codes=EXTRA_CODES), skip_unrated=False
    )
    python = [record_of(scale, r, EXTRA_CODES) for r in unique]
    bad = query_differences(scale, python, query_rows(con, compiled.sql()))
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("scale", scales_across_visits(), ids=lambda s: s.id)
def test_a_scale_with_rules_across_visits_is_scored_by_the_record_engine(
    tmp_path: Path, scale: Scale
) -> None:
    """A query scores each row on its own, so it cannot follow a rule that compares a
    subject's ratings (CADSS dissociation: above the pre-dose value): the compiler refuses
    the scale with a message naming the rules, and the table engine leaves the file to the
    record engine, which gives its results."""
    with pytest.raises(SqlError, match="compare a rating with an earlier one"):
        compile_scale(scale, "duckdb")
    rows = random_rows(scale, 60, seed=3, repeats=True)
    for k, row in enumerate(rows):
        row["subject"] = f"S{k // 3}"  # three ratings per subject and day
        row["visit"] = f"t{k % 3}"
    path = write_csv(tmp_path / f"{scale.id}.csv", rows)
    from ketascore.api import score_paths

    with score_paths([path], scale=scale, engine="table") as run:
        assert run.engine == "record"
        got = list(run.results())
    expected, _ = record_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])


def test_typed_columns_mean_the_same_in_every_engine(tmp_path: Path) -> None:
    """A Parquet file with DOUBLE, DECIMAL and BIGINT item columns (NaN, -0, infinity,
    fractions, out of range, missing codes): the table engine reads it as the record
    readers do."""
    scale = sink_scale()
    rnd = random.Random(3)
    specials = [None, 3.0, 0.5, -1.0, 2.5, 99.0, 1.5, 7.0, 1e300, math.nan, math.inf, -0.0]
    rows = []
    for k in range(200):
        row: dict[str, Any] = {"subject": f"S{k}", "visit": "v"}
        for item_id, rule in scale.items.items():
            pick = rnd.random()
            value = rnd.choice(rule.allowed_values()) if pick < 0.7 else rnd.choice(specials)
            row[f"sink_{item_id}"] = None if value is None else float(value)
        rows.append(row)
    table = pa.Table.from_pylist(rows)
    decimal = pa.decimal128(12, 3)
    whole = [c for c in table.column_names if c in ("sink_r1", "sink_r2", "sink_g")]
    for name in whole:  # integers (NaN and fractions become nulls)
        values = [
            int(v) if v is not None and v == v and float(v).is_integer() and abs(v) < 1e9 else None
            for v in table[name].to_pylist()
        ]
        table = table.set_column(table.column_names.index(name), name, pa.array(values, pa.int64()))
    for name in ("sink_a1", "sink_w2"):  # decimals
        values = [
            None if v is None or v != v or abs(v) > 1e8 else round(v, 3)
            for v in table[name].to_pylist()
        ]
        table = table.set_column(
            table.column_names.index(name), name, pa.array(values).cast(decimal)
        )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    expected, _ = record_results(path, scale)
    got, _ = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])


def test_integer_extremes_and_carried_numbers_in_the_streamed_csv(tmp_path: Path) -> None:
    """A TINYINT item and an INTEGER carried column at their least value, and a carried
    DOUBLE column with a whole number, infinity, NaN and 1e300: the table engine writes the
    record engine's CSV bytes in its one streamed pass. DuckDB stopped on the least value
    (the NaN test negated it: overflow) and on 1e300, infinity and NaN (cast to HUGEINT),
    and wrote a carried 3.0 as 3 where the record engine writes 3.0. A carried FLOAT (single
    precision) 0.1 is the double it holds, 0.10000000149011612, in both engines (DuckDB wrote
    0.1)."""
    scale = load_builtin("phq9")
    weights = [3.0, math.inf, -math.inf, math.nan, 1e300, -0.0, 0.5, None]
    n = len(weights)
    table = pa.table(
        {
            "subject": [f"S{k}" for k in range(n)],
            "visit": ["v"] * n,
            "phq9_1": pa.array([-128, 1, 2, 3, 127, None, 0, 1], pa.int8()),
            **{f"phq9_{i}": pa.array([1] * n, pa.int16()) for i in range(2, 10)},
            "weight": pa.array(weights, pa.float64()),
            "code": pa.array([-(2**31), 2**31 - 1, 0, -1, 5, None, 7, 8], pa.int32()),
            "height": pa.array([0.1, 70.3, 1.5, None, math.nan, -0.0, 2.0, 1e20], pa.float32()),
        }
    )
    path = tmp_path / "extremes.parquet"
    pq.write_table(table, path)
    expected, expected_issues = record_results(path, scale)
    text, _ = streamed_csv(path, scale)
    assert text == score_csv(expected, expected_issues)
    got, _ = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])


def test_an_answer_given_twice_alike_is_one_answer_in_every_layout(tmp_path: Path) -> None:
    """An item given twice with the same meaning (``1`` and ``1.0``, a label in another case,
    NA and a blank) is one answer in a long table, as two such copies of a wide row are one
    record: by the long CSV reader, a long file read through a mapping file, and the query
    that pivots a long table in DuckDB. Each of them called ``1`` and ``1.0`` conflicting
    records (the text compared, not the meaning); a wide table merged them. The rows that
    repeat an answer get one duplicate-record warning, as a wide row's copies do (each
    merged them without a word)."""
    scale = load_builtin("phq9")
    firsts = {1: "1", 2: "Several days", 3: "NA", 4: "2", 5: "0", 6: "3", 7: "1", 8: "", 9: "0"}
    seconds = {1: "1.0", 2: "several  DAYS", 3: "", 4: "02", 5: "-0", 6: "3.", 7: "2"}
    long = [(i, v) for i, v in firsts.items()] + [(i, v) for i, v in seconds.items()]
    path = tmp_path / "long.csv"
    path.write_text(
        "subject,visit,scale,item,value\n" + "".join(f"S1,v1,phq9,{i},{v}\n" for i, v in long),
        encoding="utf-8",
    )
    (result,), _ = record_results(path, scale)
    assert [i.code for i in result.issues] == ["conflicting-records", "duplicate-record"], (
        result.issues
    )
    assert "item 7" in result.issues[0].message  # 1 and 2 differ; nothing else does
    repeats = ", ".join(f"{path}:{line}" for line in range(11, 17))  # items 1-6 again
    assert result.issues[1].message == (
        f"{path}:2: subject S1, visit v1: 6 row(s) give an item's answer again, the same "
        f"({repeats}); each answer counted once; nothing to do: the repeated rows were merged"
    )
    assert result.items_answered == {"total": 6}

    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "scale: phq9\nsubject: subject\nvisit: visit\nlayout: long\nitem_column: item\n"
        "value_column: value\nitems: {" + ", ".join(f"{i}: '{i}'" for i in firsts) + "}\n",
        encoding="utf-8",
    )
    from ketascore.readers import ReadOptions
    from ketascore.readers.mapping import load_mapping

    options = ReadOptions(mapping=load_mapping(mapping))
    with score_paths(
        [path], scale=scale, engine="record", options=options, custom_options=True
    ) as run:
        mapped = list(run.results())
    assert not (bad := compare([result], mapped)), "\n".join(bad)

    from ketascore.engines.sql import LongLayout

    rows = [
        {"n": n, "subject": "S1", "visit": "v1", "item": str(i), "value": v or None}
        for n, (i, v) in enumerate(long)
    ]
    con = duckdb.connect()
    duckdb_table(con, rows, {"n": "BIGINT"})
    cmap = ColumnMap(
        items={str(i): str(i) for i in firsts}, long=LongLayout(item="item", values=("value",))
    )
    layout = TableLayout(order="n", kinds={"n": "number"})
    compiled = compile_scale(scale, "duckdb", columns=cmap, layout=layout)
    bad = query_differences(scale, [result], query_rows(con, compiled.sql()))
    assert not bad, "\n".join(bad)


def test_a_nan_copy_of_a_blank_answer_is_the_same_record_in_the_query(tmp_path: Path) -> None:
    """Two rows of one subject and visit, a DOUBLE answer NaN in one and null in the other:
    both are a blank answer (as the readers of tables take NaN), so the query that merges
    repeats finds the same answers (duplicate-record), as the record engine does. It found
    'nan' and nothing, and refused both copies as conflicting records."""
    from support import merged_results

    scale = load_builtin("phq9")
    rows: list[dict[str, Any]] = [
        {"n": n, "subject": "S1", "visit": "v1", **{f"phq9_{i}": 1.0 for i in range(1, 10)}}
        for n in range(2)
    ]
    rows[0]["phq9_3"], rows[1]["phq9_3"] = math.nan, None
    expected = merged_results(scale, [r | {"phq9_3": None} for r in rows])
    assert [i.code for r in expected for i in r.issues] == ["duplicate-record"]
    con = duckdb.connect()
    types = {"n": "BIGINT", **{f"phq9_{i}": "DOUBLE" for i in range(1, 10)}}
    duckdb_table(con, rows, types)
    kinds = {"n": "integer", **{f"phq9_{i}": "number" for i in range(1, 10)}}
    from dataclasses import replace

    from ketascore.engines.sql import plan_columns

    layout, _ = plan_columns(scale, list(rows[0]), kinds)
    compiled = compile_scale(scale, "duckdb", layout=replace(layout, order="n"), duplicates=True)
    bad = query_differences(scale, expected, query_rows(con, compiled.sql()))
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("kind", ["float64", "float32", "float16"])
def test_a_nan_answer_is_blank_whatever_the_files_statistics(tmp_path: Path, kind: str) -> None:
    """A Parquet DOUBLE (or FLOAT, FLOAT16) column of answers 0-3 with NaN among them: a
    Parquet file's statistics leave NaN out (least 0, greatest 3), and DuckDB folded every
    test for NaN to false by them, so the query took each NaN answer for not-a-number (no total)
    where the readers take a blank cell (the total prorated). The one-pass CSV and its
    count of problems are the record engine's."""
    scale = load_builtin("phq9")
    rnd = random.Random(2)
    n = 40
    table: dict[str, Any] = {"subject": [f"S{k}" for k in range(n)], "visit": ["v"] * n}
    for i in range(1, 10):
        values = [math.nan if rnd.random() < 0.1 else float(rnd.randint(0, 3)) for _ in range(n)]
        table[f"phq9_{i}"] = pa.array(values, getattr(pa, kind)())
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table(table), path)
    expected, expected_issues = record_results(path, scale)
    text, summary = streamed_csv(path, scale)
    assert text == score_csv(expected, expected_issues)
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        assert summary == run.summary()


ADVERSARIAL = (
    "subject,visit,date,day,arm,PHQ9_1,phq9_2,phq9_3,phq9_4,phq9_5,phq9_6,phq9_7,phq9_8,"
    "phq9_9,phq9_99,madrs_1\n"
    " s1 ,v1,2024-01-02,1,a b,1,2,3,0,1,2,3,0,1,,5\n"
    "s1,v1,2024-01-02,1,x,1,2,3,0,1,2,3,0,1,,\n"
    "s2,v1,bad,1.5,y,Not at all,2,,0,1,2,3,0,NA,3,\n"
    "s2,v1,,, ,1,2,2,0,1,2,3,0,NA,,\n"
    ",v9,,,,1,1,1,1,1,1,1,1,1,,\n"
    "\n"
    ",,,,,,,,,,,,,,,\n"
    "   \n"
    "s3,v1,,,,,,,,,,,,,,4\n"
    "s4,v1,,,,,,,,,,,,,7,\n"
    "s5,v1,,,z,1,1,1\n"
    "s6,v2,,7,q,3,3,3,3,3,3,3,3,3,,,extra\n"
    "s7,v1,2024-02-30,,,1.0,2.,+3,٣,\xa01,1 ,3,0,9,,\n"
    "s8,v1,2024-05-03T10:30,x,,Several days,LA6569-3, more  than half the DAYS ,1,1,1,1,1,1,,\n"
    "-s9,=v1,,1e3,@cmd,1,1,1,1,1,1,1,1,1,,\n"
    "s#10,v#1,,,site #3,#,1,1,1,1,1,1,1,1,,\n"  # ('#': DuckDB's CSV writer quoted it)
)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_awkward_csv_gives_the_same_results_and_reading_issues(
    tmp_path: Path, newline: str
) -> None:
    """Ragged rows, blank rows, rows without ids, unusable dates and days, an unknown
    item column, another scale's column, labels, codes, exotic numbers, repeats."""
    path = tmp_path / "awkward.csv"
    path.write_bytes(ADVERSARIAL.replace("\n", newline).encode("utf-8"))
    scale = load_builtin("phq9")
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])
    assert [i.as_dict() for i in issues] == [i.as_dict() for i in expected_issues]
    text, summary = streamed_csv(path, scale)  # the one-pass path of -o scores.csv
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        assert summary == run.summary(), [i.as_dict() for i in run.issues]
    if expected:
        assert text == score_csv(expected, expected_issues)
    assert {i.code for i in issues} >= {"csv-ragged-row", "missing-field", "bad-field"}


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("blank_last", [1, 40], ids=["sparse", "dense"])
def test_a_row_with_empty_cells_beyond_the_header_is_reported_by_every_engine(
    runner: Any, tmp_path: Path, newline: str, blank_last: int
) -> None:
    """A row with more cells than the header, those beyond it empty (``s2,v1,1,...,1,``),
    is a ragged row: the CSV reader reports it and skips it. DuckDB's reader drops such
    cells without a word, so the table engine scored the row, and failed with an internal
    error where it explained the row (``zip() argument 2 is longer``). Such a file now goes
    to the record engine; one whose last column is merely blank (a line ending with the
    delimiter) stays with the table engine. ``blank_last``: how many rows in 40 leave the
    last column blank (many: the scan counts their cells by numpy, a chunk at a time)."""
    scale = load_builtin("phq9")
    header = ["subject", "visit", *(f"phq9_{i}" for i in range(1, 10)), "note"]
    lines = [",".join(header)]
    for n in range(400):
        note = "" if n % 40 < blank_last else "ok"
        lines.append(f"S{n},v1,1,2,0,1,1,2,3,0,1,{note}")
    plain = tmp_path / "plain.csv"
    plain.write_bytes((newline.join(lines) + newline).encode())
    with score_paths([plain], scale=scale, engine="table") as run:
        assert run.engine == "table"
    lines[5] += ","  # one empty cell beyond the header
    lines[9] += ",,"  # two
    lines[-1] = "S1,v1,1,2,0,1,1,2,3,0,1,,"  # the same subject and visit as a good row
    ragged = tmp_path / "ragged.csv"
    ragged.write_bytes((newline.join(lines) + newline).encode())
    expected, expected_issues = record_results(ragged, scale)
    assert [(i.code, i.line) for i in expected_issues if i.code == "csv-ragged-row"] == [
        ("csv-ragged-row", 6),
        ("csv-ragged-row", 10),
        ("csv-ragged-row", 401),
    ]
    for engine in ("record", "duckdb"):
        result = runner.invoke(cli, ["score", str(ragged), "--scale", "phq9", "--format",
                                     "csv", "--engine", engine])  # fmt: skip
        assert result.exit_code == 1, result.output
        assert result.stdout == score_csv(expected, expected_issues), engine


def _corpus_cases() -> list[tuple[Path, str]]:
    """The malformed corpus's CSV files the table engine could read, with their scale."""
    cases = []
    for path in sorted((DATA / "malformed").glob("*.csv")):
        header = path.read_bytes().split(b"\n", 1)[0].decode("utf-8", errors="replace")
        for scale_id in ("phq9", "madrs", "hamd17", "gad7"):
            if f"{scale_id}_" in header.casefold():
                cases.append((path, scale_id))
                break
    return cases


@pytest.mark.parametrize(("path", "scale_id"), _corpus_cases(), ids=lambda v: getattr(v, "name", v))
def test_malformed_corpus_gives_the_same_output_from_either_engine(
    runner: Any, path: Path, scale_id: str
) -> None:
    """The command's whole JSON output and exit code are the same whichever engine reads
    the file (the table engine leaves to the readers what it does not read as they do)."""
    outputs = []
    for engine in ("record", "duckdb"):
        result = runner.invoke(
            cli, ["score", str(path), "--scale", scale_id, "--engine", engine, "--format", "json"]
        )
        assert result.exit_code in (0, 1), result.output
        doc = json.loads(result.stdout)
        # the provenance records the engine that scored (#16); all else is the same
        assert doc["provenance"]["settings"].pop("engine") in ("record", "table")
        outputs.append((result.exit_code, doc))
    assert outputs[0] == outputs[1]


def test_output_is_the_same_whatever_the_number_of_threads(tmp_path: Path) -> None:
    """A table large enough to be read by several threads: the same bytes from 1 and 2
    threads, in input order (and the record engine's)."""
    from ketascore.engines import table

    scale = load_builtin("phq9")
    rnd = random.Random(5)
    n = 300_000
    subjects = [f"S{k // 4:06d}" for k in range(n)]
    visits = [("baseline", "week1", "week2", "week4")[k % 4] for k in range(n)]
    columns: dict[str, Any] = {"subject": subjects, "visit": visits}
    for i in range(1, 10):
        columns[f"phq9_{i}"] = [
            None if rnd.random() < 0.05 else rnd.randint(0, 3) for _ in range(n)
        ]
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table(columns), path, row_group_size=20_000)
    outputs = []
    for threads in (1, 2):
        run = table.score_tables(
            [table.parquet_source(str(path))], scale, config=duckdb_config(threads)
        )
        with run:
            target = tmp_path / f"scores-{threads}.csv"
            run.write("csv", target)
            outputs.append(target.read_bytes())
    assert outputs[0] == outputs[1]
    lines = outputs[0].decode().splitlines()
    assert len(lines) == n + 1
    assert [line.split(",", 2)[:2] for line in lines[1:6]] == [
        [subjects[k], visits[k]] for k in range(5)
    ]
    assert lines[-1].startswith(f"{subjects[-1]},{visits[-1]},")


# --------------------------------------------------------------------------------------
# Random tables (hypothesis)

_IDS = st.sampled_from(["S1", "S2", " S3", "S4 ", "s1", "007", "7", "", " ", "S\t5", "S#6"])
_VISITS = st.sampled_from(["baseline", "Baseline", "v1", " v1", "week 1", "", "7"])
_ANSWERS = st.one_of(
    st.sampled_from(["0", "1", "2", "3", "", " ", "NA", "n/a", ".", "4", "-1", "1.0", "+2"]),
    st.sampled_from(["Several days", "nearly  every day", "LA6569-3", "x", "1e0", "٣", "-0"]),
    st.text(alphabet=string.digits + " .+-eE", max_size=4),
)


@settings(max_examples=budget(25))
@given(
    st.lists(
        st.tuples(_IDS, _VISITS, st.lists(_ANSWERS, min_size=9, max_size=9)),
        min_size=1,
        max_size=12,
    )
)
def test_random_tables_give_the_same_results(tmp_path_factory: Any, table_rows: Any) -> None:
    scale = load_builtin("phq9")
    rows = [
        {"subject": s, "visit": v, **{f"phq9_{i + 1}": a for i, a in enumerate(answers)}}
        for s, v, answers in table_rows
    ]
    path = write_csv(tmp_path_factory.mktemp("t") / "t.csv", rows)
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])
    assert [i.as_dict() for i in issues] == [i.as_dict() for i in expected_issues]
    text, summary = streamed_csv(path, scale)  # the one-pass path of -o scores.csv
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        assert summary == run.summary(), [i.as_dict() for i in run.issues]
    if expected:
        assert text == score_csv(expected, expected_issues)


# Raw CSV text: what the CSV writer of test_random_tables never writes (cells beyond the
# header, a delimiter of another dialect in a cell, '#', characters Python takes for line
# breaks or whitespace, rows that repeat the header, blank lines). The table engine takes
# the file or leaves it to the record engine; when it takes it, everything is the same.
_PIECES = st.sampled_from(
    ["0", "1", "2", "3", "", "  ", " 1", "2 ", "NA", "x", "\t", "é", "\u00a0", "\u2028",
     "\x0b", "\x0c", "\x1c", "\x85", "3.0", "+1", "-0", "1e0", "١", "#", "'", "\\",
     "\x1f", "subject", "visit", "baseline", "=1", "@", "-", "1.", ".5", "0x1", "1_0", "inf",
     "nan", "N/A", "-1", "99", "\u200b", "\ufeff", ",", ";"]
)  # fmt: skip
_RAW_CELL = st.lists(_PIECES, max_size=2).map("".join)


@settings(max_examples=budget(15))
@given(
    delimiter=st.sampled_from([",", ";", "\t"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    extra=st.sampled_from([[], ["site"], ["day"], ["phq9_10"]]),
    rows=st.lists(
        st.tuples(
            st.sampled_from(["S1", "S2", " S3", "s1", "", "007", "S#1", "S\u200b1"]),
            st.sampled_from(["v1", "baseline", "v 2", "", "Baseline", "1"]),
            st.lists(_RAW_CELL, min_size=8, max_size=12),
        ),
        min_size=1,
        max_size=8,
    ),
    odd=st.sampled_from([None, "", " ", "header", "HEADER", "delimiters"]),
    last_newline=st.booleans(),
)
def test_raw_csv_text_gives_the_same_output_from_either_engine(
    tmp_path_factory: Any,
    delimiter: str,
    newline: str,
    extra: list[str],
    rows: list[tuple[str, str, list[str]]],
    odd: str | None,
    last_newline: bool,
) -> None:
    """Found a row with empty cells beyond the header scored (DuckDB drops them) and a
    text holding '#' quoted (DuckDB's CSV writer) by the table engine."""
    scale = load_builtin("phq9")
    header = ["subject", "visit", *(f"phq9_{i}" for i in range(1, 10)), *extra]
    lines = [delimiter.join(header)] + [delimiter.join([s, v, *cells]) for s, v, cells in rows]
    if odd is not None:
        odd_line = {"header": delimiter.join(header), "delimiters": delimiter * 4}.get(odd, odd)
        lines.insert(1 + len(lines) // 2, odd_line.upper() if odd == "HEADER" else odd_line)
    path = tmp_path_factory.mktemp("raw") / "t.csv"
    path.write_bytes((newline.join(lines) + (newline if last_newline else "")).encode("utf-8"))
    with score_paths([path], scale=scale, engine="table") as run:
        if run.engine != "table":  # (left to the readers: nothing to compare)
            return
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])
    assert [i.as_dict() for i in issues] == [i.as_dict() for i in expected_issues]
    text, _ = streamed_csv(path, scale)
    if expected:
        assert text == score_csv(expected, expected_issues)
    assert table_texts(path, scale) == record_texts(expected)


def test_a_column_layout_the_compiler_is_told(tmp_path: Path) -> None:
    """Numeric item columns and a column map (NHANES names, refused/don't know codes)."""
    scale = load_builtin("phq9")
    cmap = ColumnMap(
        subject="SEQN",
        visit="CYCLE",
        items={str(i): f"DPQ0{i}0" for i in range(1, 10)},
        missing_codes=(7, 9),
    )
    rows = []
    rnd = random.Random(4)
    for k in range(60):
        row: dict[str, Any] = {"SEQN": float(k), "CYCLE": "2017"}
        row |= {f"DPQ0{i}0": float(rnd.choice([0, 1, 2, 3, 7, 9])) for i in range(1, 10)}
        rows.append(row)
    con = duckdb.connect()
    duckdb_table(con, rows, {"SEQN": "DOUBLE", **{f"DPQ0{i}0": "DOUBLE" for i in range(1, 10)}})
    layout = TableLayout(kinds={"SEQN": "number", **{f"DPQ0{i}0": "number" for i in range(1, 10)}})
    sql = compile_scale(scale, "duckdb", columns=cmap, layout=layout).sql()
    python = []
    for row in rows:
        items = {str(i): row[f"DPQ0{i}0"] for i in range(1, 10)}
        subject = str(int(row["SEQN"]))
        record = AnswerRecord(subject=subject, visit="2017", scale="phq9", items=items)
        python.append(score_record(scale, record, extra_missing=(7, 9)))
    bad = query_differences(scale, python, query_rows(con, sql))
    assert not bad, "\n".join(bad[:20])
