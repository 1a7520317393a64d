"""Spark local mode: the Spark SQL of every scale gives the Python engine's results.

One small local session for the module, one DataFrame per scale. Skipped when pyspark or
Java is not installed."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("sqlglot")
if shutil.which("java") is None:
    pytest.skip("Java is not installed", allow_module_level=True)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # pyspark warns about the installed pandas version
    pyspark_sql = pytest.importorskip("pyspark.sql")

from test_sql import (
    EXTRA_CODES,
    expected,
    mismatches,
    random_rows,
    same,
    scales_under_test,
)

from ketascore.core.library import load_builtin
from ketascore.core.scale import Scale
from ketascore.engines.spark import score_spark, spark_sql
from ketascore.engines.sql import ColumnMap, compile_scale

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        session = (
            pyspark_sql.SparkSession.builder.master("local[1]")
            .appName("ketascore-tests")
            .config("spark.sql.shuffle.partitions", "1")
            .config("spark.default.parallelism", "1")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.codegen.wholeStage", "false")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("FATAL")
    yield session
    session.stop()


def frame(spark: Any, rows: list[dict[str, Any]], types: dict[str, str] | None = None) -> Any:
    types = types or {}
    schema = ", ".join(f"`{c}` {types.get(c, 'string')}" for c in rows[0])
    return spark.createDataFrame([[r[c] for c in rows[0]] for r in rows], schema)


@pytest.mark.parametrize("scale", scales_under_test(), ids=lambda s: s.id)
def test_spark_gives_the_python_engines_results(spark: Any, scale: Scale) -> None:
    rows = random_rows(scale, 200, seed=11)
    frame(spark, rows).createOrReplaceTempView("answers")
    compiled = compile_scale(
        scale, "spark", columns=ColumnMap(missing_codes=EXTRA_CODES), skip_unrated=False
    )
    got = [r.asDict() for r in spark.sql(compiled.sql()).collect()]
    bad = mismatches(scale, rows, got, EXTRA_CODES)
    assert not bad, "\n".join(bad[:20])


def test_score_spark_reads_the_dataframe(spark: Any) -> None:
    scale = load_builtin("phq9")
    rows = random_rows(scale, 50, seed=2)
    for k, row in enumerate(rows):
        row["site"] = f"site-{k % 3}"
        row["order"] = k
    rows.append({**rows[0], "order": 99})  # the same answers again: merged
    df = frame(spark, rows, {"order": "int"})
    out = score_spark(df, "phq9", merge_duplicates_by="order")
    assert out.columns[-3:] == ["issues", "site", "order"]  # carried columns come last
    got = {r["subject"]: r.asDict() for r in out.collect()}
    assert len(got) == 50
    for row in rows[:50]:
        for key, value in expected(scale, row).items():
            if key == "issues" and row["subject"] == rows[0]["subject"]:
                value = ";".join(filter(None, [value, "duplicate-record"]))
            assert same(value, got[row["subject"]][key]), (key, row)
    assert not [t for t in spark.catalog.listTables() if t.name.startswith("_ks_")]
    text = spark_sql("phq9", "ratings")
    assert "FROM ratings" in text


def test_typed_columns(spark: Any) -> None:
    scale = load_builtin("hamd17")
    rows = []
    for k, value in enumerate([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 2.5, None, float("nan")]):
        row: dict[str, Any] = {"subject": f"S{k}", "visit": "v1"}
        row |= {f"hamd17_{i}": 1.0 for i in scale.items}
        row["hamd17_16b"] = None
        row["hamd17_1"] = value
        row["hamd17_16a"] = 3.0 if k % 2 else 1.0
        rows.append(row)
    types = {f"hamd17_{i}": "double" for i in scale.items}
    out = score_spark(frame(spark, rows, types), scale, carry=[])
    got = [r.asDict() for r in out.collect()]
    assert not mismatches(scale, rows, got)
