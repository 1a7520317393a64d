"""Benchmark: PHQ-9 scored by `score_spark` in Spark local mode, against a hand-written Spark
SQL sum of the items (the peer: what a notebook would write), in one run.

    python benchmarks/bench_spark.py                     # 5,000,000 rows, 3 runs per case
    python benchmarks/bench_spark.py --rows 1000000 --runs 5 --threads 2

One Spark session (local mode, ``--threads`` cores) reads the Parquet file of
bench_duckdb.py (generated there if missing) and writes Parquet; the cases take turns, run
by run, after one warm-up run of each (the JVM compiles as it goes). Wall time is measured
around each write.

  hand-sum         SELECT subject, visit, coalesce(phq9_1, 0) + ... AS total: no missing-data
                   rule, no checks, no repeats looked for
  floor-columns    Spark alone writing the twelve columns of the scores' output, each as
                   plainly as SQL allows (no checks, no missing-data rule): what the
                   output's shape alone costs over the hand-written sum
  score-spark      score_spark(df, "phq9"): every check, repeats merged (the default)
  score-spark-unique  score_spark(df, "phq9", merge_duplicates=False): the rows are known to
                   be unique
  sdtm-spark       the same answers as an SDTM QS table (one row per answer, 9x the rows)
                   scored by score_spark(df, "phq9", columns=sdtm_map(scale)) (``--long``)

The target (issue: warehouse scale): score-spark within 1.5x of hand-sum.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_duckdb import DATA, ITEMS, generate  # noqa: E402


def session(threads: int, memory: str) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pyspark.sql import SparkSession

        spark = (
            SparkSession.builder.master(f"local[{threads}]")
            .appName("ketascore-bench")
            .config("spark.driver.memory", memory)
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", str(threads * 2))
            .getOrCreate()
        )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def sdtm(parquet: Path) -> Path:
    """The rows of ``parquet`` as an SDTM QS table (written once)."""
    import duckdb

    from ketascore.core.library import load_builtin

    path = parquet.with_name(parquet.stem + "-qs.parquet")
    if path.exists():
        return path
    scale = load_builtin("phq9")
    codes = {i.id: i.codes.cdisc for i in scale.definition.items if i.codes}
    parts = " UNION ALL ".join(
        f"SELECT subject AS USUBJID, visit AS VISIT, 'PHQ-9' AS QSCAT, '{codes[c[5:]]}' AS "
        f"QSTESTCD, CAST({c} AS DOUBLE) AS QSSTRESN, CAST(NULL AS VARCHAR) AS QSORRES "
        f"FROM read_parquet('{parquet}')"
        for c in ITEMS
    )
    duckdb.execute(f"COPY ({parts}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--memory", default="4g", help="Spark driver memory")
    parser.add_argument("--long", action="store_true", help="also the SDTM case")
    args = parser.parse_args()
    parquet, _ = generate(args.rows, with_csv=False)
    spark = session(args.threads, args.memory)

    from ketascore.core.library import load_builtin
    from ketascore.engines.spark import score_spark
    from ketascore.engines.sql import sdtm_map

    scale = load_builtin("phq9")
    total = " + ".join(f"coalesce({c}, 0)" for c in ITEMS)
    answered = " + ".join(f"CAST({c} IS NOT NULL AS INT)" for c in ITEMS)
    columns = (
        "SELECT subject, visit, CAST(NULL AS STRING) AS date, CAST(NULL AS DOUBLE) AS day, "
        "'phq9' AS scale, '1.0' AS scale_version, total, CASE WHEN total >= 20 THEN 'severe' "
        "WHEN total >= 15 THEN 'moderately severe' WHEN total >= 10 THEN 'moderate' "
        "WHEN total >= 5 THEN 'mild' ELSE 'minimal' END AS total_band, answered AS "
        "total_items_answered, answered < 9 AS total_prorated, CASE WHEN phq9_9 >= 1 THEN "
        "'suicidal_ideation' END AS flags, CASE WHEN answered < 9 THEN 'flag-undetermined' "
        f"END AS issues FROM (SELECT *, CAST({total} AS DOUBLE) AS total, {answered} AS "
        f"answered FROM parquet.`{parquet}`)"
    )
    out = DATA / "spark-out"

    def frame() -> Any:
        return spark.read.parquet(str(parquet))

    cases = {
        "hand-sum": lambda: spark.sql(
            f"SELECT subject, visit, {total} AS total FROM parquet.`{parquet}`"
        ),
        "floor-columns": lambda: spark.sql(columns),
        "score-spark": lambda: score_spark(frame(), scale),
        "score-spark-unique": lambda: score_spark(frame(), scale, merge_duplicates=False),
    }
    if args.long:
        qs = sdtm(parquet)
        cases["sdtm-spark"] = lambda: score_spark(
            spark.read.parquet(str(qs)), scale, columns=sdtm_map(scale)
        )
    times: dict[str, list[float]] = {c: [] for c in cases}
    for run in range(args.runs + 1):  # the first run warms the JVM up
        for case, make in cases.items():
            start = time.perf_counter()
            make().write.mode("overwrite").parquet(str(out))
            if run:
                times[case].append(time.perf_counter() - start)
    shutil.rmtree(out, ignore_errors=True)
    print(f"data: {args.rows:,} rows of PHQ-9 (Parquet); Spark local[{args.threads}]")
    medians = {c: statistics.median(t) for c, t in times.items()}
    for case, t in times.items():
        print(f"{case:20s} median {medians[case]:7.2f}s  runs " + " ".join(f"{x:.2f}" for x in t))
    print("\nratios to the hand-written sum:")
    for case, value in medians.items():
        print(f"  {case:20s} {value / medians['hand-sum']:5.2f}x")
    for case in ("score-spark", "score-spark-unique"):
        ratio = medians[case] / medians["floor-columns"]
        print(f"  {case} / floor-columns {ratio:5.2f}x")
    ratio = medians["score-spark"] / medians["hand-sum"]
    verdict = "met" if ratio <= 1.5 else "NOT met"
    print(f"target score-spark <= 1.5x hand-sum: {verdict} ({ratio:.2f}x)")
    spark.stop()


if __name__ == "__main__":
    main()
