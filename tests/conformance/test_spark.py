"""Spark local mode runs the same query (transpiled from DuckDB's dialect by sqlglot) and
gives the record engine's results: PHQ-9 through score_spark (carried columns, merged
repeats), typed columns, the plan, generated code. The scale that uses every construct of
the language runs in Spark with every other engine in test_warehouse.py.

One small local session for every test (support.spark_session). Skipped when pyspark or Java
is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("sqlglot")

from support import (
    merged_results,
    query_differences,
    random_rows,
    spark_session,
)

from ketascore.core.library import load_builtin
from ketascore.core.records import AnswerRecord
from ketascore.core.values import id_text
from ketascore.engines.record import score_record
from ketascore.engines.spark import score_spark, spark_sql
from ketascore.engines.sql import MissingColumns, sdtm_map

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture
def spark() -> Iterator[Any]:
    yield spark_session()  # (one session for every test)


def frame(spark: Any, rows: list[dict[str, Any]], types: dict[str, str] | None = None) -> Any:
    types = types or {}
    schema = ", ".join(f"`{c}` {types.get(c, 'string')}" for c in rows[0])
    return spark.createDataFrame([[r[c] for c in rows[0]] for r in rows], schema)


def record_of(scale: Any, row: dict[str, Any], codes: tuple[Any, ...] = ()) -> Any:
    prefix = f"{scale.id}_"
    items = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    record = AnswerRecord(subject=row["subject"], visit=row["visit"], scale=scale.id, items=items)
    return score_record(scale, record, extra_missing=codes)


def test_score_spark_reads_the_dataframe(spark: Any) -> None:
    scale = load_builtin("phq9")
    rows = random_rows(scale, 40, seed=2)
    for k, row in enumerate(rows):
        row["site"] = f"site-{k % 3}"
        row["order"] = k
    rows.append({**rows[0], "order": 99})  # the same answers again: merged
    out = score_spark(frame(spark, rows, {"order": "int"}), "phq9", merge_duplicates_by="order")
    assert out.columns[-2:] == ["site", "order"]  # carried columns come last
    got = [r.asDict() for r in out.collect()]
    python = merged_results(scale, rows)
    assert not (bad := query_differences(scale, python, got)), "\n".join(bad[:20])
    # merged by default, in the order Spark reads the rows
    got = [r.asDict() for r in score_spark(frame(spark, rows, {"order": "int"}), "phq9").collect()]
    assert not (bad := query_differences(scale, python, got)), "\n".join(bad[:20])
    assert not [t for t in spark.sql("SHOW TABLES").collect() if t.tableName.startswith("_ks_")]
    assert "ratings" in spark_sql("phq9", "ratings")
    with pytest.raises(MissingColumns, match="phq9_9"):
        score_spark(frame(spark, rows).drop("phq9_9"), "phq9")


def test_the_plan_is_one_scan(spark: Any, tmp_path: Any) -> None:
    """A Parquet table, scored with repeats merged (wide) and pivoted (an SDTM QS domain):
    the physical plan reads the file once."""
    scale = load_builtin("hamd17")
    rows = random_rows(scale, 20, seed=3)
    path = str(tmp_path / "wide.parquet")
    frame(spark, rows).write.parquet(path)
    plan = score_spark(spark.read.parquet(path), scale)._jdf.queryExecution().executedPlan()
    assert plan.toString().count("FileScan parquet") == 1, plan.toString()
    qs = [
        {"USUBJID": r["subject"], "VISIT": r["visit"], "QSCAT": "HAMD 17", "QSTESTCD": code}
        | {"QSORRES": r[f"hamd17_{item.id}"], "QSSTRESN": None}
        for r in rows
        for item in scale.definition.items
        if item.codes and (code := item.codes.cdisc)
    ]
    path = str(tmp_path / "qs.parquet")
    frame(spark, qs, {"QSSTRESN": "double"}).write.parquet(path)
    long = score_spark(spark.read.parquet(path), scale, columns=sdtm_map(scale))
    plan = long._jdf.queryExecution().executedPlan()
    assert plan.toString().count("FileScan parquet") == 1, plan.toString()
    assert long.count() == 20


def test_typed_columns(spark: Any) -> None:
    scale = load_builtin("hamd17")
    rows = []
    for k, value in enumerate([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 2.5, None, float("nan"), -0.0]):
        row: dict[str, Any] = {"subject": f"S{k}", "visit": "v1"}
        row |= {f"hamd17_{i}": 1.0 for i in scale.items}
        row["hamd17_16b"] = None
        row["hamd17_1"] = value
        row["hamd17_16a"] = 3.0 if k % 2 else 1.0
        rows.append(row)
    types = {f"hamd17_{i}": "double" for i in scale.items}
    out = score_spark(frame(spark, rows, types), scale, carry=[])
    got = [r.asDict() for r in out.collect()]
    python = []
    for row in rows:  # NaN in a typed column is a missing answer, as the readers take it
        clean = {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        python.append(record_of(scale, clean))
    assert not (bad := query_differences(scale, python, got)), "\n".join(bad[:20])


def test_score_spark_takes_sparks_advice_for_hotspot(spark: Any) -> None:
    """Whole-stage code generation of the query's CASE expressions makes methods larger
    than HotSpot compiles: score_spark sets Spark's advised limit, unless the session set
    its own (bench_spark.py: 2-3x faster, same results)."""
    key = "spark.sql.codegen.hugeMethodLimit"
    rows = random_rows(load_builtin("phq9"), 3, seed=5)
    try:
        spark.conf.unset(key)
        score_spark(frame(spark, rows), "phq9")
        assert spark.conf.get(key) == "8000"
        spark.conf.set(key, "20000")
        score_spark(frame(spark, rows), "phq9")
        assert spark.conf.get(key) == "20000"
    finally:
        spark.conf.unset(key)


def test_score_spark_generates_code(spark: Any) -> None:
    """The tests' session interprets expressions (support.spark_session); a cluster
    compiles them to Java, whole stage by stage: scored so, PHQ-9 gives the same results."""
    scale = load_builtin("phq9")
    rows = random_rows(scale, 40, seed=7)
    rows.append(dict(rows[3]))  # the same answers again: merged
    settings = {"spark.sql.codegen.factoryMode": "FALLBACK", "spark.sql.codegen.wholeStage": "true"}
    before = {key: spark.conf.get(key) for key in settings}
    try:
        for key, value in settings.items():
            spark.conf.set(key, value)
        out = score_spark(frame(spark, rows), scale)
        assert "*(" in out._jdf.queryExecution().executedPlan().toString()  # a generated stage
        got = [r.asDict() for r in out.collect()]
    finally:
        for key, value in before.items():
            spark.conf.set(key, value)
    python = merged_results(scale, rows)
    assert not (bad := query_differences(scale, python, got)), "\n".join(bad[:20])


def test_a_number_id_is_the_record_engines_text(spark: Any) -> None:
    """A subject typed DOUBLE is its number's text as ``values.id_text`` writes it (Python's
    shortest form), and a FLOAT visit from 2^24 on is refused (no row). Spark wrote its own
    notation for a double (Java's: 1.0E-5 for 1e-05, 1.23456785E7 for 12345678.5), and
    kept the FLOAT visit 16777216 (16777217 as written)."""
    subjects = [1e-05, 0.1, 1.5, 123456.75, 1e15 + 0.5, 12345678.5, -0.00015, 2.5e-10, 7.0]
    # (exponents of three digits; a subnormal, which Java writes 4.9E-324, is no id)
    subjects += [1e-100, -2.5e-123, 5e-324]
    rows = [
        {"subject": s, "visit": 16777216.0 if k == 0 else 1.0}
        | {f"phq9_{i}": 1 for i in range(1, 10)}
        for k, s in enumerate([0.25, *subjects])
    ]
    types = {"subject": "double", "visit": "float"} | {f"phq9_{i}": "int" for i in range(1, 10)}
    out = score_spark(frame(spark, rows, types), "phq9", carry=[], keep_unrated=True)
    got = [(r.subject, r.visit) for r in out.collect()]
    assert got == [("0.25", None)] + [(id_text(s), "1") for s in subjects], got
    assert id_text(1e-05) == "1e-05" and id_text(1e15 + 0.5) == "1000000000000000.5"
