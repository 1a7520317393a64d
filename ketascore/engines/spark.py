"""Score a Spark DataFrame with a scale, through the Spark SQL of ``ketascore.engines.sql``.

    from ketascore.core.library import load_builtin
    from ketascore.engines.spark import score_spark

    scores = score_spark(ratings_df, load_builtin("phq9"))

The DataFrame has one row per subject and visit and one column per item (``phq9_1`` ... or
as a column map says). The result has the columns of ``ketascore score --format csv`` (the
DataFrame's other columns are carried after them) with the Python engine's numbers. pyspark
is not a dependency of ketascore: install it where Spark runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from ketascore.core.scale import Scale
from ketascore.engines.sql import ColumnMap, compile_scale, plan_columns

_INTEGER_TYPES = ("ByteType", "ShortType", "IntegerType", "LongType")
_NUMBER_TYPES = ("FloatType", "DoubleType")


def _kind(data_type: Any) -> str:
    name = type(data_type).__name__
    if name in _INTEGER_TYPES:
        return "integer"
    if name == "FloatType":  # (32-bit: an id of it is exact below 2^24 only)
        return "float"
    if name in _NUMBER_TYPES:
        return "number"
    if name == "DecimalType":
        return "decimal"
    if name == "BooleanType":
        return "boolean"
    return "text"


def score_spark(
    df: Any,
    scale: Scale | str,
    *,
    columns: ColumnMap | None = None,
    carry: Iterable[str] | None = None,
    merge_duplicates: bool = True,
    merge_duplicates_by: str | None = None,
    keep_unrated: bool = False,
    details: bool = False,
) -> Any:
    """Score ``df`` (a pyspark DataFrame) with ``scale`` (a Scale, a built-in id or a YAML
    path); returns a DataFrame. Nothing runs until an action (write, count, collect).

    ``columns`` maps subject, visit and items to the DataFrame's columns (or describes a
    long table: ``ColumnMap(long=...)``, ``sdtm_map(scale)``). ``carry`` names the columns
    copied to the result (default: every column that is not an id, date, day or item).
    Rows of the same subject and visit are merged as ``ketascore score`` merges them
    (identical answers: one result with a duplicate-record warning; different answers: a
    conflicting-records error and no scores), the first kept, unless ``merge_duplicates``
    is False; ``merge_duplicates_by`` names a column that orders the rows (default: the
    order in which Spark reads them). The result is in that order. ``keep_unrated`` keeps
    rows with no item answered; ``details`` adds not_applicable and issue_items. Raises
    ``MissingColumns`` (a ``SqlError``) naming a column a score needs that ``df`` lacks.
    """
    from ketascore.core.library import builtin_ids, resolve_scale

    if isinstance(scale, str):
        scale = resolve_scale(scale)
    spark = df.sparkSession
    names = list(df.columns)
    kinds = {f.name: _kind(f.dataType) for f in df.schema.fields}
    layout, mapped = plan_columns(scale, names, kinds, columns, builtin_ids())
    if carry is not None:
        by_fold = {n.casefold(): n for n in names}
        chosen = [by_fold.get(c.casefold(), c) for c in carry]
        layout = replace(layout, carry=chosen)
    long = mapped.long is not None
    order = None
    if merge_duplicates_by is not None:
        by_fold = {n.casefold(): n for n in names}
        order = by_fold.get(merge_duplicates_by.casefold(), merge_duplicates_by)
    elif merge_duplicates or long:
        from pyspark.sql.functions import monotonically_increasing_id

        order = "_ks_row"
        df = df.withColumn(order, monotonically_increasing_id())
    if order is not None:
        layout = replace(layout, order=order)
    view = f"_ks_{scale.id.replace('-', '_')}_{uuid.uuid4().hex[:12]}"
    compiled = compile_scale(
        scale,
        "spark",
        table=view,
        columns=mapped,
        layout=layout,
        skip_unrated=not keep_unrated,
        duplicates=order is not None and (merge_duplicates or merge_duplicates_by is not None),
        details=details,
    )
    # Spark infers constraints through every alias of every step: on a query of this
    # shape (steps of CASE expressions) that takes minutes and gigabytes to plan, where
    # without it the plan takes seconds and is the same scan
    spark.conf.set("spark.sql.constraintPropagation.enabled", "false")
    # whole-stage code generation makes this query's CASE expressions into Java methods
    # larger than HotSpot compiles (8,000 bytes of bytecode), which then run interpreted,
    # 2-3x slower; Spark's own advice on HotSpot is this limit, beyond which it generates
    # code expression by expression (left alone when the session set its own)
    if spark.conf.get("spark.sql.codegen.hugeMethodLimit", "65535") == "65535":
        spark.conf.set("spark.sql.codegen.hugeMethodLimit", "8000")
    df.createOrReplaceTempView(view)
    try:
        # spark.sql resolves the view at once, so the result no longer needs its name
        return spark.sql(compiled.sql(pretty=False))
    finally:
        spark.catalog.dropTempView(view)


def spark_sql(scale: Scale | str, table: str, **options: Any) -> str:
    """The Spark SQL text that scores ``table`` (for spark.sql or a Databricks notebook)."""
    from ketascore.core.library import resolve_scale

    if isinstance(scale, str):
        scale = resolve_scale(scale)
    return compile_scale(scale, "spark", table=table, **options).sql()
