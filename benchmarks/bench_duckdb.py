"""Benchmark: PHQ-9 scored by the table engine (DuckDB), against DuckDB's own read-sum-write.

    python benchmarks/bench_duckdb.py                    # 10,000,000 rows, 3 runs per case
    python benchmarks/bench_duckdb.py --rows 1000000 --runs 5 --cases duckdb-parquet,floor
    python benchmarks/bench_duckdb.py --rows 50000000 --memory-limit 2GiB --runs 3 \
        --cases floor,duckdb-parquet                   # larger than memory, under a cap

Every case runs under the same DuckDB memory limit (``--memory-limit``, default 2GiB: the
command's ``--memory-limit``, the floor's ``SET memory_limit``) and prints its wall time and
its peak resident memory (the process's, from ``wait4``).

Cases (each run in a fresh process, wall time measured around the whole command; the
cases take turns, run by run):

  duckdb-parquet   `ketascore score --engine duckdb FILE.parquet --scale phq9 -o OUT.parquet`
                   (the command the issue names): Parquet in, Parquet out
  duckdb-parquet-api  the same through the Python API (`score_paths(...).write`), in a
                   script (the interpreter's teardown of pydantic and DuckDB counts here)
  duckdb-parquet-unique  `score_tables` told the rows are unique (no merging of repeats)
  duckdb-parquet-shuffled  duckdb-parquet on the same rows in random order
  duckdb-csv       `ketascore score FILE.csv --format csv -o OUT.csv`: CSV in, CSV out
  floor            DuckDB alone: read the Parquet file, sum the nine items of every row and
                   write subject, visit and the sum to Parquet (no missing-data rule, no
                   checks): the least any engine that writes scores has to do
  floor-read       DuckDB alone: read the Parquet file and sum the items (nothing written)
  floor-columns    DuckDB alone writing the twelve columns of the scores' output, each
                   computed as plainly as SQL allows (no checks, no missing-data rule): what
                   the output's shape alone costs over the three columns of the floor

The data (seeded, 2% of answers missing, four visits per subject) is generated once under
benchmarks/.data/duckdb/. The target: duckdb-parquet within 1.5x of the floor.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data" / "duckdb"
ITEMS = [f"phq9_{i}" for i in range(1, 10)]


def generate(rows: int, with_csv: bool = True) -> tuple[Path, Path]:
    import duckdb

    DATA.mkdir(parents=True, exist_ok=True)
    parquet = DATA / f"phq9-{rows}.parquet"
    csv = DATA / f"phq9-{rows}.csv"
    if parquet.exists() and (csv.exists() or not with_csv):
        return parquet, csv
    con = duckdb.connect()
    con.execute("SELECT setseed(0.42)")
    answers = ", ".join(
        f"CASE WHEN random() < 0.02 THEN NULL ELSE CAST(floor(random() * 4) AS INTEGER) END "
        f"AS {name}"
        for name in ITEMS
    )
    con.execute(
        f"""CREATE TABLE t AS SELECT
              'S' || lpad(CAST(i // 4 AS VARCHAR), 8, '0') AS subject,
              ['baseline', 'week1', 'week2', 'week4'][i % 4 + 1] AS visit,
              {answers},
              CAST(floor(random() * 4) AS INTEGER) AS phq9_10
            FROM range({rows}) r(i) ORDER BY i"""
    )
    con.execute(f"COPY t TO '{parquet}' (FORMAT parquet, COMPRESSION zstd)")
    if with_csv:
        con.execute(f"COPY t TO '{csv}' (FORMAT csv, HEADER true)")
    con.close()
    return parquet, csv


def prepare(rows: int, with_csv: bool, cases: list[str]) -> tuple[Path, Path]:
    """The data sets the cases read, made once."""
    parquet, csv = generate(rows, with_csv)
    if "duckdb-parquet-shuffled" in cases:
        shuffled(parquet)
    return parquet, csv


def shuffled(parquet: Path) -> Path:
    """The rows of ``parquet`` in a seeded random order (written once)."""
    import duckdb

    path = parquet.with_name(parquet.stem + "-shuffled.parquet")
    if not path.exists():
        con = duckdb.connect()
        con.execute("SELECT setseed(0.17)")
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{parquet}') ORDER BY random()) "
            f"TO '{path}' (FORMAT parquet, COMPRESSION zstd)"
        )
        con.close()
    return path


CASES = {
    "duckdb-parquet-api": (
        "from ketascore.api import score_paths\n"
        "from ketascore.core.library import load_builtin\n"
        "with score_paths([{parquet!r}], scale=load_builtin('phq9'), engine='table') as run:\n"
        "    run.write('parquet', {out!r} + '.parquet')\n"
        "    print(run.summary())\n"
    ),
    "duckdb-parquet-unique": (
        "from ketascore.core.library import load_builtin\n"
        "from ketascore.engines import table\n"
        "source = table.parquet_source({parquet!r})\n"
        "with table.score_tables([source], load_builtin('phq9'), merge_duplicates=False, "
        "lazy=True) as run:\n"
        "    run.write('parquet', {out!r} + '.parquet')\n"
        "    print(run.summary())\n"
    ),
    "floor": (
        "import duckdb\n"
        "duckdb.execute(\"SET memory_limit = '{limit}'\")\n"
        'duckdb.execute("COPY (SELECT subject, visit, {total} AS total FROM '
        "read_parquet({parquet!r})) TO '\" + {out!r} + \".parquet' (FORMAT parquet, "
        'COMPRESSION zstd)")\n'
    ),
    "floor-columns": (
        "import duckdb\n"
        "duckdb.execute(\"SET memory_limit = '{limit}'\")\n"
        'duckdb.execute("COPY (SELECT subject, visit, NULL::VARCHAR AS date, NULL::DOUBLE AS '
        "day, 'phq9' AS scale, '1.0' AS scale_version, {total} AS total, CASE WHEN total >= 20 "
        "THEN 'severe' WHEN total >= 15 THEN 'moderately severe' WHEN total >= 10 THEN "
        "'moderate' WHEN total >= 5 THEN 'mild' ELSE 'minimal' END AS total_band, "
        "{answered} AS total_items_answered, {answered} < 9 AS total_prorated, CASE WHEN "
        "phq9_9 >= 1 THEN 'suicidal_ideation' END AS flags, CASE WHEN {answered} < 9 THEN "
        "'flag-undetermined' END AS issues FROM read_parquet({parquet!r})) TO '\" + {out!r} + "
        '".parquet\' (FORMAT parquet, COMPRESSION zstd)")\n'
    ),
    "floor-read": (
        "import duckdb\n"
        "duckdb.execute(\"SET memory_limit = '{limit}'\")\n"
        'print(duckdb.execute("SELECT sum({total}) FROM read_parquet({parquet!r})").fetchone())\n'
    ),
}


# the command `ketascore score --engine duckdb` (the input, the output's extension)
ENGINE_CASES = {
    "duckdb-parquet": ("parquet", ".parquet"),
    "duckdb-parquet-shuffled": ("shuffled", ".parquet"),
    "duckdb-csv": ("csv", ".csv"),
}


def command(case: str, parquet: Path, csv: Path, out: Path, limit: str) -> list[str]:
    if case in ENGINE_CASES:
        source, suffix = ENGINE_CASES[case]
        data = {"parquet": parquet, "csv": csv}.get(source) or shuffled(parquet)
        exe = Path(sys.executable).with_name("ketascore")
        engine = ["--engine", "duckdb", "--scale", "phq9", "-q", "--memory-limit", limit]
        return [str(exe), "score", str(data), *engine, "-o", f"{out}{suffix}"]
    total = " + ".join(f"coalesce({c}, 0)" for c in ITEMS)
    answered = " + ".join(f"CAST({c} IS NOT NULL AS INTEGER)" for c in ITEMS)
    code = CASES[case].format(
        parquet=str(parquet),
        csv=str(csv),
        out=str(out),
        total=total,
        limit=limit,
        answered=answered,
    )
    return [sys.executable, "-c", code]


def measure(cmd: list[str], timeout: float) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MiB) of the command, from ``wait4``."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - start > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                print(f"  (stopped after {timeout:.0f}s)", flush=True)
                return float("inf"), float("nan")
            time.sleep(0.005)
        wall = time.perf_counter() - start
        peak = usage.ru_maxrss / 1024
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # 1: some rows had problems (expected: missing items)
            err.seek(0)
            print(f"  (failed, exit {code}: {err.read().strip()[-300:]})", flush=True)
            return float("inf"), peak
    return wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cases",
        default=(
            "floor-read,floor,floor-columns,duckdb-parquet,duckdb-parquet-api,duckdb-parquet-unique,"
            "duckdb-parquet-shuffled,duckdb-csv"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--memory-limit", default="2GiB", help="DuckDB's memory limit in every case"
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="stop a run after this many seconds"
    )
    args = parser.parse_args()
    started = time.perf_counter()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    # the data is made in a child process: on Linux a command's peak memory (ru_maxrss)
    # starts from the peak of the process it was forked from, so this process stays small
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        parquet, csv = pool.apply(prepare, (args.rows, "duckdb-csv" in cases, cases))
    print(
        f"data: {args.rows:,} rows; parquet {parquet.stat().st_size / 1e6:.0f} MB, "
        f"csv {csv.stat().st_size / 1e6 if csv.exists() else 0:.0f} MB (generated/checked in "
        f"{time.perf_counter() - started:.1f}s); cpus: {os.cpu_count()}",
        flush=True,
    )
    out = DATA / "out"
    medians: dict[str, float] = {}
    # the cases take turns (run 1 of each case, then run 2 ...), so that a change in the
    # machine's load during the benchmark falls on every case alike
    times: dict[str, list[float]] = {case: [] for case in cases}
    peaks: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.runs):
        for case in cases:
            cmd = command(case, parquet, csv, out, args.memory_limit)
            wall, peak = measure(cmd, args.timeout)
            times[case].append(wall)
            peaks[case].append(peak)
    print(f"memory limit (DuckDB): {args.memory_limit}")
    for case in cases:
        medians[case] = statistics.median(times[case])
        print(
            f"{case:24s} median {medians[case]:7.2f}s  peak {max(peaks[case]):6.0f} MiB  runs "
            + " ".join(f"{t:.2f}" for t in times[case]),
            flush=True,
        )
    floor = medians.get("floor")
    if floor:
        print("\nratios to the floor (DuckDB reading, summing and writing the same rows):")
        for case, value in medians.items():
            print(f"  {case:24s} {value / floor:5.2f}x")
        if "duckdb-parquet" in medians:
            ratio = medians["duckdb-parquet"] / floor
            verdict = "met" if ratio <= 1.5 else "NOT met"
            print(f"target duckdb-parquet <= 1.5x floor: {verdict} ({ratio:.2f}x)")
    shaped = medians.get("floor-columns")
    if shaped and "duckdb-parquet" in medians:
        print(
            "duckdb-parquet / floor-columns (the same twelve output columns, no rules): "
            f"{medians['duckdb-parquet'] / shaped:.2f}x"
        )
    if args.json:
        print(json.dumps({"rows": args.rows, "medians": medians, "peaks": peaks}))
    for suffix in (".parquet", ".csv"):
        Path(f"{out}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
