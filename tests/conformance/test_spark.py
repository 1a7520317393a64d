"""Spark local mode runs the same query (transpiled from DuckDB's dialect by sqlglot) and
gives the record engine's results: the scale that uses every construct of the language,
PHQ-9 through score_spark (carried columns, merged repeats) and typed columns.

One small local session for the module. Skipped when pyspark or Java is not installed."""

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

from support import (
    EXTRA_CODES,
    merged_results,
    query_differences,
    random_rows,
    sink_scale,
)

from ketascore.core.library import load_builtin
from ketascore.core.records import AnswerRecord
from ketascore.engines.record import score_record
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


def record_of(scale: Any, row: dict[str, Any], codes: tuple[Any, ...] = ()) -> Any:
    prefix = f"{scale.id}_"
    items = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    record = AnswerRecord(subject=row["subject"], visit=row["visit"], scale=scale.id, items=items)
    return score_record(scale, record, extra_missing=codes)


def test_spark_gives_the_record_engines_results(spark: Any) -> None:
    scale = sink_scale()
    rows = random_rows(scale, 150, seed=11)
    frame(spark, rows).createOrReplaceTempView("answers")
    compiled = compile_scale(
        scale, "spark", columns=ColumnMap(missing_codes=EXTRA_CODES), skip_unrated=False
    )
    got = [r.asDict() for r in spark.sql(compiled.sql()).collect()]
    python = [record_of(scale, r, EXTRA_CODES) for r in rows]
    assert not (bad := query_differences(scale, python, got)), "\n".join(bad[:20])


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
    assert not [t for t in spark.catalog.listTables() if t.name.startswith("_ks_")]
    assert "ratings" in spark_sql("phq9", "ratings")


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
