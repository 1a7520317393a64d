"""The same answer everywhere: one seeded messy table (and the same answers as a long table,
and as typed columns) scored by the record engine, by the compiled query in DuckDB, in
PostgreSQL (a real server: .ci/run starts one), in Spark local mode, and by the query
transpiled to BigQuery and Snowflake (and back, run on DuckDB): the same rows, values,
issues and order, repeated subjects and visits merged the same way.

Few, broad cases: each engine's session is shared, and each case checks every engine."""

from __future__ import annotations

import decimal
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
sqlglot = pytest.importorskip("sqlglot")

from support import (  # noqa: E402
    EXTRA_CODES,
    csv_rows,
    duckdb_table,
    long_rows,
    merged_results,
    messy_rows,
    postgres_rows,
    query_differences,
    query_rows,
    random_scales,
    sink_scale,
    spark_session,
    write_csv,
)

from ketascore.api import score_paths  # noqa: E402
from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.core.records import AnswerRecord  # noqa: E402
from ketascore.core.scale import Scale  # noqa: E402
from ketascore.core.values import Float32, id_text  # noqa: E402
from ketascore.engines.record import score_record  # noqa: E402
from ketascore.engines.sql import (  # noqa: E402
    ColumnMap,
    MissingColumns,
    TableLayout,
    compile_scale,
    plan_columns,
    read_column_map,
)
from ketascore.readers import ReadOptions  # noqa: E402
from ketascore.readers.mapping import load_mapping  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


def duckdb_rows(rows: list[dict[str, Any]], sql: str, types: dict[str, str] | None = None) -> Any:
    con = duckdb.connect()
    duckdb_table(con, rows, types)
    return query_rows(con, sql)


def spark_rows(rows: list[dict[str, Any]], sql: str, types: dict[str, str] | None = None) -> Any:
    spark = spark_session()
    types = types or {}
    schema = ", ".join(f"`{c}` {types.get(c, 'string')}" for c in rows[0])
    spark.createDataFrame([[r[c] for c in rows[0]] for r in rows], schema).createOrReplaceTempView(
        "answers"
    )
    return [r.asDict() for r in spark.sql(sql).collect()]


def roundtrip(sql: str, dialect: str) -> str:
    """The query written for ``dialect`` and read back into DuckDB's."""
    written = sqlglot.transpile(sql, read="duckdb", write=dialect)[0]
    return sqlglot.transpile(written, read=dialect, write="duckdb")[0]


def every_engine(scale: Scale, rows: list[dict[str, Any]], expected: Any, **options: Any) -> None:
    """The compiled query in every engine gives the record engine's results."""
    types = options.pop("types", None)
    spark_types = options.pop("spark_types", None)
    pg_types = options.pop("pg_types", None)
    text = compile_scale(scale, "duckdb", **options).text
    runs = {
        "duckdb": lambda: duckdb_rows(rows, text, types),
        "bigquery": lambda: duckdb_rows(rows, roundtrip(text, "bigquery"), types),
        "snowflake": lambda: duckdb_rows(rows, roundtrip(text, "snowflake"), types),
        "postgres": lambda: postgres_rows(
            rows, compile_scale(scale, "postgres", **options).sql(pretty=False), pg_types
        ),
        "spark": lambda: spark_rows(
            rows, compile_scale(scale, "spark", **options).sql(pretty=False), spark_types
        ),
    }
    for engine, run in runs.items():
        bad = query_differences(scale, expected, run())
        assert not bad, f"{engine}:\n" + "\n".join(bad[:20])


# rows numbered by an integer column ``n`` in every engine
ORDERED: dict[str, Any] = {
    "layout": TableLayout(order="n", kinds={"n": "number"}),
    "types": {"n": "BIGINT"},
    "spark_types": {"n": "bigint"},
    "pg_types": {"n": "bigint"},
}


@pytest.mark.parametrize("scale", [sink_scale(), load_builtin("hamd17")], ids=lambda s: s.id)
def test_a_messy_table_gives_the_same_rows_everywhere(tmp_path: Path, scale: Scale) -> None:
    """Wide, text answers, repeats merged (identical ones with a warning, different ones
    refused), in the order of first appearance; the scale of every construct also with
    further missing codes of every kind (a whole number, a text, a large number) and rows
    without answers kept."""
    rows = messy_rows(scale, 80, seed=20)
    text = write_csv(tmp_path / "messy.csv", rows)  # what every engine reads
    rows = [{k: v or None for k, v in r.items()} for r in csv_rows(text.read_text())]
    rows = [r | {"n": int(r["n"])} for r in rows]
    options: dict[str, Any] = {"duplicates": True, **ORDERED}
    codes: tuple[Any, ...] = ()
    if scale.id == "sink":
        codes = EXTRA_CODES
        options |= {"columns": ColumnMap(missing_codes=codes), "skip_unrated": False}
    expected = merged_results(scale, rows, codes=codes)
    assert any("duplicate-record" in str(r.issues) for r in expected)
    assert any("conflicting-records" in str(r.issues) for r in expected)
    every_engine(scale, rows, expected, **options)


@pytest.mark.parametrize("scale", random_scales(2, first_seed=1000), ids=lambda s: s.id)
def test_a_random_scale_gives_the_same_rows_everywhere(tmp_path: Path, scale: Scale) -> None:
    """Random scales of the language (``support.random_scale``) on a messy table with
    repeats: the same rows from the query in every engine, rows without answers kept."""
    rows = messy_rows(scale, 50, seed=21)
    text = write_csv(tmp_path / "messy.csv", rows)
    rows = [{k: v or None for k, v in r.items()} for r in csv_rows(text.read_text())]
    rows = [r | {"n": int(r["n"])} for r in rows]
    expected = merged_results(scale, rows)
    every_engine(scale, rows, expected, duplicates=True, skip_unrated=False, **ORDERED)


def test_copies_are_compared_answer_by_answer() -> None:
    """Repeats are compared on all their answers at once, as one text: answers that would
    run together ("a,b" then "c" against "a" then "b,c"; a blank against a text) still
    differ, in every engine (the unknown item columns take any text)."""
    scale = load_builtin("phq9")
    plain = {f"phq9_{i}": "1" for i in range(1, 10)}
    pairs = [(("a,tb", "c"), ("a", "b,tc")), ((None, "x"), ("-", "x")), (("q", None), ("q", None))]
    rows = []
    for k, pair in enumerate(pairs):
        for extra in pair:
            row = {"n": len(rows), "subject": f"S{k}", "visit": "v1", **plain}
            rows.append(row | {"phq9_11": extra[0], "phq9_12": extra[1]})
    expected = merged_results(scale, rows)
    assert [str(r.issues) for r in expected].count("None") == 0
    assert ["conflicting-records" in str(r.issues) for r in expected] == [True, True, False]
    kinds = {c: "text" for c in rows[0]} | {"n": "number"}
    layout, mapped = plan_columns(scale, list(rows[0]), kinds, None, ["phq9"])
    layout = replace(layout, order="n")
    every_engine(
        scale,
        rows,
        expected,
        duplicates=True,
        columns=mapped,
        layout=layout,
        types={"n": "BIGINT"},
        spark_types={"n": "bigint"},
        pg_types={"n": "bigint"},
    )


@pytest.mark.parametrize("standard", ["cdisc", "loinc"])
def test_a_long_table_is_pivoted_in_the_query(tmp_path: Path, standard: str) -> None:
    """One row per answer, items named by CDISC or LOINC codes (a mapping file's codes for
    the record engine: the same file), items given twice alike and otherwise."""
    scale = load_builtin("phq9")
    wide = messy_rows(scale, 60, seed=21)
    path = write_csv(tmp_path / "long.csv", long_rows(scale, wide, standard))
    codes = {i.id: getattr(i.codes, standard) for i in scale.definition.items}
    mapping = tmp_path / "long.yaml"
    mapping.write_text(
        "scale: phq9\nsubject: subject\nvisit: visit\nlayout: long\nitem_column: code\n"
        "value_column: answer\nitems:\n" + "".join(f"  '{i}': '{c}'\n" for i, c in codes.items())
    )
    options = ReadOptions(mapping=load_mapping(mapping))
    with score_paths(
        [path], scale=scale, engine="record", options=options, custom_options=True
    ) as run:
        expected = list(run.results())
    assert any("conflicting-records" in str(r.issues) for r in expected)
    assert any("duplicate-record" in str(r.issues) for r in expected)  # (repeated rows)
    rows = [{k: v or None for k, v in r.items()} for r in csv_rows(path.read_text())]
    rows = [r | {"n": int(r["n"])} for r in rows]
    cmap = read_column_map(mapping)
    _, cmap = plan_columns(scale, list(rows[0]), {"n": "number"}, cmap)
    every_engine(scale, rows, expected, columns=cmap, **ORDERED)


def test_typed_columns_mean_the_same_everywhere() -> None:
    """DOUBLE answers (NaN, -0, infinity, fractions, out of range) and DECIMAL ones: NaN is
    a missing answer, as the table readers take it; -0 is 0, also in a repeated record."""
    scale = load_builtin("phq9")
    picks = [0.0, 1.0, 2.0, 3.0, None, math.nan, -0.0, 2.5, 4.0, math.inf, -1.0]
    rows = []
    for k in range(44):
        row: dict[str, Any] = {"n": k, "subject": f"S{k // 2}", "visit": "v1"}
        for i in range(1, 10):
            row[f"phq9_{i}"] = picks[(k * i + i) % len(picks)] if k % 4 else float(i % 4)
        row["phq9_10"] = decimal.Decimal(("1.00", "2.50", "-0.00", "3")[k % 4])
        if k % 4 == 1:  # the copy of row k - 1 with -0 for 0 (and 1.0 for 1.00)
            row = {**rows[-1], "n": k, "phq9_4": -0.0, "phq9_10": decimal.Decimal("1.0")}
        rows.append(row)
    records = []
    for row in rows:  # NaN in a typed column is a missing answer, as the readers take it
        items = {
            key[5:]: None if isinstance(v, float) and math.isnan(v) else v
            for key, v in row.items()
            if key.startswith("phq9_")
        }
        records.append(AnswerRecord(subject=row["subject"], visit="v1", scale="phq9", items=items))
    from ketascore.engines.record import score_records

    expected = score_records(records, {"phq9": scale}.get)
    assert any("duplicate-record" in str(r.issues) for r in expected)
    kinds = {f"phq9_{i}": "number" for i in range(1, 11)} | {"n": "number"}
    items = {f"phq9_{i}": "DOUBLE" for i in range(1, 10)} | {"phq9_10": "DECIMAL(6,2)"}
    every_engine(
        scale,
        rows,
        expected,
        duplicates=True,
        layout=TableLayout(order="n", kinds=kinds),
        types=items | {"n": "BIGINT"},
        spark_types={k: v.replace("DOUBLE", "double") for k, v in items.items()} | {"n": "bigint"},
        pg_types={k: v.replace("DOUBLE", "double precision") for k, v in items.items()}
        | {"n": "bigint"},
    )
    assert score_record(scale, records[0]).scores == expected[0].scores


def test_absent_columns_are_absent() -> None:
    """An unscored item (PHQ-9 item 10) or one of an alternative's items (HAM-D 16A) may be
    missing from the table; a missing scored item is an error naming its column."""
    phq9, hamd17 = load_builtin("phq9"), load_builtin("hamd17")
    names = ["subject", "visit", *(f"phq9_{i}" for i in range(1, 10))]
    layout, _ = plan_columns(phq9, names)
    assert layout.absent == {"10"}
    rows = [{"subject": "A", "visit": "v1"} | {f"phq9_{i}": "1" for i in range(1, 10)}]
    (got,) = duckdb_rows(rows, compile_scale(phq9, layout=layout).text)
    assert got["total"] == 9.0 and got["issues"] is None
    with pytest.raises(MissingColumns, match=r"phq9_3 \(phq9 item 3, used by total\)"):
        plan_columns(phq9, [n for n in names if n != "phq9_3"])
    hamd = ["subject", "visit", *(f"hamd17_{i}" for i in hamd17.items if i != "16a")]
    assert plan_columns(hamd17, hamd)[0].absent == {"16a"}
    with pytest.raises(MissingColumns, match="one of hamd17_16a, hamd17_16b"):
        plan_columns(hamd17, [n for n in hamd if n != "hamd17_16b"])
    with pytest.raises(MissingColumns, match="DPQ090"):
        plan_columns(phq9, names, columns=ColumnMap(items={"9": "DPQ090"}))


def test_the_duckdb_engine_writes_every_format(runner: Any, tmp_path: Path) -> None:
    """`--engine duckdb` writes what the record engine writes, in every format, to a file
    or to standard output, under a memory limit and with a temporary directory of its own."""
    import pyarrow.parquet as pq

    from ketascore.cli import cli

    scale = load_builtin("phq9")
    path = write_csv(tmp_path / "t.csv", messy_rows(scale, 30, seed=22))
    limits = ["--memory-limit", "256MiB", "--temp-directory", str(tmp_path / "spill")]
    written = {}
    for fmt in ("csv", "json", "jsonl", "fhir", "table"):
        outputs = []
        for engine in (["--engine", "record"], ["--engine", "duckdb", *limits]):
            args = ["score", str(path), "--scale", "phq9", "--format", fmt, *engine]
            result = runner.invoke(cli, args)
            assert result.exit_code == 1, result.output  # (the table has problems)
            # the provenance names the engine that scored (#16); all else is the same
            outputs.append(re.sub(r'("engine": ?)"table"', r'\1"record"', result.stdout))
        assert outputs[0] == outputs[1], fmt
        written[fmt] = outputs[0]
    args = ["score", str(path), "--scale", "phq9", "--engine", "duckdb", "--format", "parquet"]
    result = runner.invoke(cli, [*args, *limits])
    assert result.exit_code == 1, result.output
    (tmp_path / "out.parquet").write_bytes(result.stdout_bytes)
    assert pq.read_table(tmp_path / "out.parquet").num_rows == len(written["csv"].splitlines()) - 1


OMOP_VIEW = """
CREATE VIEW phq9_long AS
SELECT o.person_id, o.visit_occurrence_id, q.concept_code AS loinc,
       coalesce(CAST(o.value_as_number AS VARCHAR), a.concept_code) AS answer,
       o.observation_id AS row_order
FROM observation o
JOIN concept q ON q.concept_id = o.observation_concept_id AND q.vocabulary_id = 'LOINC'
LEFT JOIN concept a ON a.concept_id = o.value_as_concept_id
"""


def test_the_omop_recipe(runner: Any, tmp_path: Path) -> None:
    """docs/scale-out.md's OMOP recipe: OBSERVATION rows whose concepts are looked up in
    the site's CONCEPT table by LOINC code (questions) and LOINC answer code (answers) at
    run time, scored by the query `ketascore sql --map` prints."""
    from ketascore.cli import cli

    scale = load_builtin("phq9")
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE concept (concept_id INTEGER, concept_code VARCHAR, vocabulary_id VARCHAR)"
    )
    con.execute(
        "CREATE TABLE observation (observation_id INTEGER, person_id INTEGER, "
        "visit_occurrence_id INTEGER, observation_concept_id INTEGER, "
        "value_as_number DOUBLE, value_as_concept_id INTEGER)"
    )
    items = [i for i in scale.definition.items if i.codes and i.codes.loinc]
    concepts = [(7000 + k, i.codes.loinc, "LOINC") for k, i in enumerate(items)]  # type: ignore[union-attr]
    answers = sorted({code for rule in scale.items.values() for code in rule.codes})
    concepts += [(8000 + k, code, "LOINC") for k, code in enumerate(answers)]
    con.executemany("INSERT INTO concept VALUES (?, ?, ?)", concepts)
    observations, expected = [], []
    for person in range(1, 4):
        values: dict[str, Any] = {}
        for k, item in enumerate(items):
            by_code = person == 2 and k < 3  # answered with LOINC answer codes
            rule = scale.items[item.id]
            code = sorted(rule.codes)[person % len(rule.codes)] if by_code else None
            number = None if by_code else float((person + k) % 4)
            answer = 8000 + answers.index(code) if code else None
            observations.append((len(observations), person, 10, 7000 + k, number, answer))
            values[item.id] = code if code else number
        record = AnswerRecord(subject=str(person), visit="10", scale="phq9", items=values)
        expected.append(score_record(scale, record))
    con.executemany("INSERT INTO observation VALUES (?, ?, ?, ?, ?, ?)", observations)
    con.execute(OMOP_VIEW)
    mapping = tmp_path / "omop.yaml"
    mapping.write_text(
        "layout: long\nsubject: person_id\nvisit: visit_occurrence_id\n"
        "item_column: loinc\nvalue_column: answer\ncodes: loinc\n"
    )
    args = ["sql", "phq9", "--map", str(mapping), "--table", "phq9_long"]
    result = runner.invoke(cli, [*args, "--merge-duplicates", "row_order"])
    assert result.exit_code == 0, result.output
    got = query_rows(con, result.stdout.rstrip().rstrip(";"))
    assert not (bad := query_differences(scale, expected, got)), "\n".join(bad)


def test_a_number_id_is_the_same_text_in_every_engine() -> None:
    """A DOUBLE subject is ``values.id_text``'s text in every engine (Python's shortest
    form: ``1e-05``, ``0.00015``, ``12345678.5``, ``1000000000000000.5``, ``1e-100``; a
    subnormal is no subject), and a FLOAT (REAL) visit from 2^24 on is no visit. Spark
    wrote Java's notation (``1.0E-5``, ``1.23456785E7``), PostgreSQL its own
    (``1.0000000000000005e+15``), and every engine took the FLOAT 16777216 (16777217 as
    written) for a visit."""
    scale = load_builtin("phq9")
    subjects = [1e-05, 0.1, 1.5, 123456.75, 1e15 + 0.5, 12345678.5, -0.00015, 2.5e-10, 7.0]
    # (exponents of three digits, subnormals included: the SQL once cut 5e-324 to 5e-32)
    subjects += [1e-100, -2.5e-123, 1.5e-310, 5e-324]
    visits = [1.0, 16777216.0, 16777215.0, 0.5, 1.0, -3e7, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    items = {f"phq9_{i}": 1 for i in scale.items}
    rows = [
        {"n": k, "subject": s, "visit": v, **items}
        for k, (s, v) in enumerate(zip(subjects, visits, strict=True))
    ]
    kinds = {"n": "integer", "subject": "number", "visit": "float"}
    options = {"layout": TableLayout(order="n", kinds=kinds), "skip_unrated": False}
    expected = [(id_text(s), id_text(Float32(v))) for s, v in zip(subjects, visits, strict=True)]
    assert expected[1:3] == [("0.1", None), ("1.5", "16777215")]
    runs = {
        "duckdb": lambda: duckdb_rows(
            rows,
            compile_scale(scale, "duckdb", **options).text,
            {"n": "BIGINT", "subject": "DOUBLE", "visit": "FLOAT"},
        ),
        "postgres": lambda: postgres_rows(
            rows,
            compile_scale(scale, "postgres", **options).sql(pretty=False),
            {"n": "bigint", "subject": "double precision", "visit": "real"},
        ),
    }
    for engine, run in runs.items():
        assert [(r["subject"], r["visit"]) for r in run()] == expected, engine
