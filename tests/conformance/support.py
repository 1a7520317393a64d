"""The conformance suite's shared pieces: the scale that uses every construct of the
language, random scales, random answer tables, the engines run the same way, and the one
definition of "the same result" every comparison uses."""

from __future__ import annotations

import csv
import decimal
import io
import math
import random
from pathlib import Path
from typing import Any

from ketascore.api import score_paths
from ketascore.core.library import builtin_ids, load_builtin
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import Scale, load_scale_text
from ketascore.engines.record import score_records
from ketascore.engines.sql import quote

# A scale that uses every construct: ranges and value lists (with fractions and negatives),
# labels, answer codes and missing codes, an alternative, sum/mean/max/min, recode, reverse
# and weights, min_answered/max_missing, both prorating methods, every rounding method with
# decimals, bands, scores of scores, applies_when on an item and on a score, flags and
# classifications on items, alternatives and scores; a range in half steps; skip logic
# (with and without counts_as, one rule reading an item another skips); conditions that
# combine others (all, any, nested), differences and spreads of items, in flags,
# classifications, applies_when and rating checks.
SINK = """
id: sink
name: Every construct of the scale language
version: "1"
rater: self
licence: {status: public-domain}
citations:
  - {key: test, text: A test scale for the SQL compiler}
answer_sets:
  agree:
    - {value: 0, label: Strongly disagree, code: LA-0}
    - {value: 1, label: Disagree, code: LA-1}
    - {value: 2, label: Agree, code: LA-2}
    - {value: 3, label: Strongly agree, code: LA-3}
    - {value: 4, label: Straße, code: LA-4}
items:
  - id: a1
    label: A1
    range: [0, 4]
    answers: agree
    missing_codes: [{value: 9, label: refused, code: LA-REF}, {value: -1}]
  - {id: a2, label: A2, range: [0, 4], answers: agree}
  - {id: a3, label: A3, range: [0, 4], answers: agree}
  - {id: a4, label: A4, range: [0, 4], answers: agree, missing_codes: [{label: not asked}]}
  - {id: v1, label: V1, values: [0, 0.5, 1, 2.5]}
  - {id: v2, label: V2, values: [-1, 0, 1.25]}
  - {id: r1, label: R1, range: [1, 5]}
  - {id: r2, label: R2, range: [1, 5]}
  - {id: w1, label: W1, range: [0, 3]}
  - {id: w2, label: W2, range: [0, 5]}
  - {id: w3, label: W3, range: [0, 2]}
  - {id: x, label: X by history, range: [0, 2], missing_codes: [{value: 3}]}
  - {id: y, label: Y by measurement, range: [0, 2]}
  - {id: g, label: Gate, range: [0, 1]}
  - {id: note, label: Not scored, range: [0, 9], scored: false}
  - {id: h, label: Half points, range: [0, 4], step: 0.5}
  - id: q1
    label: Screen
    range: [0, 1]
    answers: [{value: 0, label: "no"}, {value: 1, label: "yes"}]
  - {id: q2, label: Asked after yes, range: [0, 2]}
  - {id: q3, label: Asked after q2 above 0, range: [1, 3]}
alternatives:
  - {id: xy, label: X or Y, items: [x, y]}
scores:
  - id: pm_up
    label: Prorated mean, half up to one decimal
    of: [a1, a2, a3, a4]
    missing: {max_missing: 2, method: prorate_mean, rounding: {method: half_up, decimals: 1}}
    bands:
      - {label: low, min: 0, max: 8}
      - {label: high, min: 8, max: 16}
  - id: pm_even
    label: Prorated mean, half even
    of: [a1, a2, a3, a4]
    missing: {min_answered: 1, method: prorate_mean, rounding: {method: half_even}}
  - id: pm_raw
    label: Prorated mean, not rounded
    of: [a1, a2, a3, a4]
    missing: {min_answered: 3, method: prorate_mean}
  - id: px_floor
    label: Prorated max, floor
    of: [w1, w2, w3]
    missing: {min_answered: 1, method: prorate_max, rounding: {method: floor, decimals: 2}}
  - id: px_ceil
    label: Prorated max, ceil
    of: [w1, w2, w3]
    missing: {min_answered: 2, method: prorate_max, rounding: {method: ceil}}
  - id: px_raw
    label: Prorated max, not rounded
    of: [w1, w2, w3]
    missing: {max_missing: 1, method: prorate_max}
  - id: mean_v
    label: Mean of values items
    method: mean
    of: [v1, v2, a1]
    missing: {min_answered: 1, rounding: {method: half_even, decimals: 2}}
  - id: mean_raw
    label: Mean, not rounded
    method: mean
    of: [v1, v2, {item: r1, weight: 0.1}]
    missing: {min_answered: 2}
  - id: mean_up
    label: Mean, half up
    method: mean
    of: [{item: v2, weight: -3}, {item: v1, reverse: true}]
    missing: {min_answered: 1, rounding: {method: half_up}}
  - id: low
    label: Minimum of transformed items
    method: min
    of:
      - {item: r1, reverse: true}
      - {item: r2, recode: {"1": 0, "2": 0, "3": 1, "4": 2, "5": 2}}
      - {item: w1, weight: 0.5}
    missing: {min_answered: 2}
  - id: high
    label: Maximum with an alternative
    method: max
    of: [xy, g, {item: v2, weight: 2}]
    missing: {min_answered: 1}
  - id: nested
    label: Sum of scores
    of: [{score: low, weight: 2}, {score: high, reverse: true}, pm_up]
  - id: gated
    label: Only when the gate is open
    of: [r1, r2]
    applies_when: {item: g, equals: 1}
    bands:
      - {label: small, min: 2, max: 5}
      - {label: large, min: 6, max: 10}
  - id: gated2
    label: Only when nested is above 3
    of: [gated, {item: w3, recode: {"0": 2, "1": 1, "2": 0}}]
    applies_when: {score: nested, above: 3}
  - id: halves
    label: Sum with half points
    of: [h, {item: v1, weight: 2}]
  - id: screened
    label: Highest of the screened items
    method: max
    of: [q1, {item: q2, weight: 2}, q3]
  - id: combined_gate
    label: Only when g is open or h is high
    of: [r1, q2]
    applies_when:
      any: [{item: g, equals: 1}, {all: [{item: h, at_least: 2.5}, {score: low, below: 2}]}]
skips:
  - id: no_screen
    label: q2 not asked after no
    when: {item: q1, equals: 0}
    items: [q2]
    counts_as: 0
  - {id: no_q2, label: q3 not asked when q2 is 0, when: {item: q2, equals: 0}, items: [q3]}
flags:
  - {id: f_item, label: item a1 high, when: {item: a1, at_least: 3}}
  - {id: f_alt, label: alternative rated 2, when: {item: xy, equals: 2}}
  - {id: f_score, label: low score low, when: {score: low, below: 1}}
  - id: f_all
    label: both high
    when: {all: [{item: a1, at_least: 2}, {score: halves, above: 3}]}
  - id: f_any
    label: either
    when: {any: [{item: h, equals: 0.5}, {difference: [r1, r2], at_least: 2}, {item: xy, below: 1}]}
  - {id: f_spread, label: same, when: {spread: [a1, a2, a3], equals: 0}}
classifications:
  - {id: c_item, label: g open, when: {item: g, equals: 1}}
  - {id: c_score, label: pm_up at most 6, when: {score: pm_up, at_most: 6}}
  - id: c_any
    label: either
    when:
      any: [{all: [{item: q1, equals: 1}, {item: q3, at_least: 2}]}, {score: screened, at_least: 4}]
checks:
  - id: k_pair
    label: implausible pair
    when: {all: [{item: a1, equals: 0}, {item: a2, at_least: 3}]}
  - {id: k_same, label: identical ratings, when: {spread: [r1, r2, w1, w2], equals: 0}}
  - {id: k_diff, label: far apart, when: {difference: [v1, v2], below: -0.5}}
  - {id: k_score, label: score check, when: {score: screened, at_least: 3}}
"""


EXTRA_CODES: tuple[Any, ...] = (7, "NR", 2.5e9)


def sink_scale() -> Scale:
    return load_scale_text(SINK, "sink.yaml")


def scales_under_test() -> list[Scale]:
    """The scales every engine scores: the built-in ones a query can score, and the sink."""
    return [*(s for s in builtin_scales() if not s.across_visits), sink_scale()]


def scales_across_visits() -> list[Scale]:
    """Built-in scales with rules that compare a subject's ratings (the record engine's)."""
    return [s for s in builtin_scales() if s.across_visits]


def builtin_scales() -> list[Scale]:
    return [load_builtin(i) for i in builtin_ids()]


# --------------------------------------------------------------------------------------
# Random answers


def odd_values(scale: Scale, item_id: str) -> list[Any]:
    """Answers of every kind the readers meet: blanks and NA in any spelling, numbers
    written every way (some not numbers to the grammar), out of range, fractions, labels
    in any case and spacing, answer codes, missing codes, text that is nothing."""
    rule = scale.items[item_id]
    values = rule.allowed_values()
    lo, hi = values[0], values[-1]
    out: list[Any] = [None, "", " ", "NA", " n/a ", ".", "N/A", "na"]
    out += [f" {lo} ", f"{hi}.0", f"+{hi}", "\xa0" + str(lo), f"{lo}.", "0" + str(hi), f"{hi}e0"]
    out += [str(hi + 1), str(lo - 1), "1.5", "0.25", "abc", "nan", "inf", "-Infinity", "1e400"]
    out += ["1" + "0" * 30, "٣", "３", "7", "9", "NR", "nr", "1e3", "2.5e9", "true", "-0", "-0.0"]
    for label in rule.answer_labels:
        out += [label, label.upper(), "  " + label.lower().replace(" ", "  \t ") + "\n"]
    for code in rule.codes:
        out += [code, code.lower(), f" {code} "]
    for value in rule.missing_values:
        out += [str(value), f"{float(value)}"]
    for label in rule.missing_labels:
        out += [label, label.upper()]
    return out


def same_number(text: str) -> str:
    """A number written otherwise, the same number (``1`` as ``1.0`` or ``01``, ``-2`` as
    ``-02.0``); any other text as it is."""
    from ketascore.core.values import is_number, strip

    text = strip(text)
    if not is_number(text):
        return text
    sign, body = (text[0], text[1:]) if text[0] in "+-" else ("", text)
    return f"{sign}0{body}" if "." in body else f"{sign}0{body}.0"


def random_rows(scale: Scale, n: int, seed: int, *, repeats: bool = False) -> list[dict[str, Any]]:
    """Rows of text answers: a third complete, a third with some missing items, a third with
    anything. ``repeats``: some subjects and visits come again, with the same answers or
    others (written differently but the same, or different)."""
    rnd = random.Random(seed)
    odd = {i: odd_values(scale, i) for i in scale.items}
    rows = []
    for k in range(n):
        row: dict[str, Any] = {"subject": f"S{k:04d}", "visit": "v1"}
        mode = rnd.random()
        for item_id, rule in scale.items.items():
            good = str(rnd.choice(rule.allowed_values()))
            if mode < 0.3:
                value: Any = good
            elif mode < 0.65:
                value = good if rnd.random() < 0.75 else rnd.choice([None, "", "NA"])
            else:
                value = rnd.choice(odd[item_id]) if rnd.random() < 0.6 else good
            row[f"{scale.id}_{item_id}"] = value
        rows.append(row)
        if repeats and rnd.random() < 0.15:
            again = dict(row)
            if rnd.random() < 0.5:  # written differently, the same answer
                for key, value in again.items():
                    if key.startswith(scale.id + "_") and isinstance(value, str) and value:
                        again[key] = rnd.choice([f" {value} ", same_number(value)])
            else:
                key = rnd.choice([k for k in row if k.startswith(scale.id + "_")])
                again[key] = rnd.choice(odd[key[len(scale.id) + 1 :]])
            rows.append(again)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> Path:
    """The rows as a CSV file without quote characters (texts with a delimiter, a quote or a
    line break are left out of the random values the engines get as CSV)."""
    columns = list(rows[0])
    lines = [delimiter.join(columns)]
    for row in rows:
        cells = ["" if row[c] is None else str(row[c]) for c in columns]
        cells = [c if not any(x in c for x in (delimiter, '"', "\n", "\r")) else "x" for c in cells]
        lines.append(delimiter.join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------
# The engines, run the same way


def merged_results(
    scale: Scale,
    rows: list[dict[str, Any]],
    file: str | None = None,
    first_line: int = 0,
    codes: tuple[Any, ...] = (),
) -> list[ScoreResult]:
    """The record engine's results of wide rows (``<scale>_<item>`` columns) taken as one
    file's records, repeats merged, line numbers from ``first_line``, ``codes`` further
    missing codes."""
    prefix = f"{scale.id}_"
    records = [
        AnswerRecord(
            subject=r["subject"],
            visit=r["visit"],
            scale=scale.id,
            items={k[len(prefix) :]: v for k, v in r.items() if k.startswith(prefix)},
            source=Source(file=file, line=first_line + i),
        )
        for i, r in enumerate(rows)
    ]
    return score_records(records, {scale.id: scale}.get, extra_missing=codes)


def record_results(path: Path, scale: Scale) -> tuple[list[ScoreResult], list[Any]]:
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        return list(run.results()), list(run.issues)


def table_results(path: Path, scale: Scale) -> tuple[list[ScoreResult], list[Any]]:
    with score_paths([path], scale=scale, engine="table") as run:
        assert run.engine == "table", f"the table engine did not take {path}"
        return list(run.results()), list(run.issues)


def streamed_csv(path: Path, scale: Scale) -> tuple[str, dict[str, int]]:
    """The CSV the table engine writes in one streamed pass (as ``ketascore score -o
    x.csv`` does), and the run's summary."""
    with score_paths([path], scale=scale, engine="table") as run:
        assert run.engine == "table", f"the table engine did not take {path}"
        target = path.with_suffix(".out.csv")
        run.write("csv", target)
        assert run.engine == "table", "DuckDB failed: the record engine wrote the file"
        return target.read_text(encoding="utf-8"), run.summary()


def table_texts(path: Path, scale: Scale) -> list[str]:
    """The results' JSON Lines and their texts in the JSON output, as the table engine
    writes them (its query writes those of the rows without an issue)."""
    from ketascore.writers.tabular import result_json, score_line

    with score_paths([path], scale=scale, engine="table") as run:
        assert run.engine == "table", f"the table engine did not take {path}"
        return [*run.texts(score_line), *run.texts(result_json)]


def record_texts(results: list[ScoreResult]) -> list[str]:
    """``table_texts`` as Python writes them."""
    from ketascore.writers.tabular import result_json, score_line

    return [*map(score_line, results), *map(result_json, results)]


# --------------------------------------------------------------------------------------
# What "the same" means


def same_value(a: Any, b: Any) -> bool:
    """Equal and of the same type (an int is not a float: 16 and 16.0 print differently);
    floats bit for bit."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def result_differences(a: ScoreResult, b: ScoreResult) -> list[str]:
    """Where two results differ: every field of the JSON contract, issues by their whole
    written form."""
    da, db = a.to_dict(), b.to_dict()
    return [
        f"{da['subject']} {da['visit']} {key}: {da.get(key)!r} != {db.get(key)!r}"
        for key in sorted(set(da) | set(db))
        if not same_value(da.get(key), db.get(key))
    ]


def compare(expected: list[ScoreResult], got: list[ScoreResult]) -> list[str]:
    """Every difference between two engines' results (in order)."""
    out = []
    if len(expected) != len(got):
        out.append(f"{len(expected)} results != {len(got)}")
    for a, b in zip(expected, got, strict=False):
        out += result_differences(a, b)
    return out


def result_columns(scale: Scale, result: ScoreResult) -> dict[str, Any]:
    """A result as the compiled query's columns."""
    out: dict[str, Any] = {"subject": result.subject, "visit": result.visit}
    for rule in scale.scores:
        out[rule.id] = result.scores.get(rule.id)
        out[f"{rule.id}_band"] = result.bands.get(rule.id)
        out[f"{rule.id}_items_answered"] = result.items_answered.get(rule.id)
        out[f"{rule.id}_prorated"] = result.prorated.get(rule.id)
    for cls in scale.classifications:
        out[cls.id] = result.classifications.get(cls.id)
    out["flags"] = ";".join(result.flags) or None
    out["issues"] = ";".join(i.code for i in result.issues) or None
    return out


def same_column(py: Any, sql: Any) -> bool:
    """A result's value and the query's: numbers as the doubles they are (bit for bit)."""
    if isinstance(py, bool) or py is None or isinstance(py, str):
        return bool(py == sql) and type(py) is type(sql)
    return sql is not None and float(py) == float(sql) and not isinstance(sql, bool)


def query_differences(
    scale: Scale, expected: list[ScoreResult], rows: list[dict[str, Any]]
) -> list[str]:
    """Where the query's rows differ from the record engine's results."""
    out = []
    if len(expected) != len(rows):
        out.append(f"{len(expected)} results != {len(rows)} rows")
    for result, row in zip(expected, rows, strict=False):
        for key, value in result_columns(scale, result).items():
            if not same_column(value, row[key]):
                out.append(f"{scale.id} {result.subject} {key}: {value!r} != {row[key]!r}")
    return out


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------------------
# Messy tables, and the engines that score them where they live (shared sessions)


def messy_rows(scale: Scale, n: int, seed: int) -> list[dict[str, Any]]:
    """A seeded messy table of text answers, numbered in input order (column ``n``):
    blanks, NA, out of range, fractions, labels, missing codes, whitespace (``random_rows``),
    subjects and visits repeated with the same answers written otherwise, and with other
    answers, some with a problem in one copy only."""
    rnd = random.Random(seed)
    rows = random_rows(scale, n, seed, repeats=True)
    odd = {i: odd_values(scale, i) for i in scale.items}
    for row in list(rows):
        if rnd.random() < 0.05:  # a copy with a problem where the first has none
            again = dict(row)
            item = rnd.choice(list(scale.items))
            again[f"{scale.id}_{item}"] = rnd.choice([*odd[item][8:24], "-0"])
            rows.insert(rnd.randrange(len(rows) + 1), again)
    return [{"n": k, **row} for k, row in enumerate(rows)]


def long_rows(scale: Scale, rows: list[dict[str, Any]], standard: str) -> list[dict[str, Any]]:
    """Wide rows as a long table: one row per answer, the item named by its ``standard``
    code (``cdisc`` or ``loinc``), numbered in input order; blank answers are left out now
    and then, as a long table leaves them out."""
    rnd = random.Random(len(rows))
    out: list[dict[str, Any]] = []
    prefix = f"{scale.id}_"
    for row in rows:
        for key, value in row.items():
            if not key.startswith(prefix) or (value is None and rnd.random() < 0.5):
                continue
            item = scale.definition.items[list(scale.items).index(key[len(prefix) :])]
            code = getattr(item.codes, standard, None) if item.codes else None
            code = code or f"X-{item.id}"
            out.append(
                {"n": len(out), "subject": row["subject"], "visit": row["visit"]}
                | {"code": code if rnd.random() < 0.8 else f" {code.lower()} ", "answer": value}
            )
    return out


def query_rows(con: Any, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def duckdb_table(con: Any, rows: list[dict[str, Any]], types: dict[str, str] | None = None) -> None:
    columns = list(rows[0])
    types = types or {}
    spec = ", ".join(f"{quote(c)} {types.get(c, 'VARCHAR')}" for c in columns)
    con.execute(f"CREATE OR REPLACE TABLE answers ({spec})")
    con.executemany(
        f"INSERT INTO answers VALUES ({', '.join('?' for _ in columns)})",
        [[r[c] for c in columns] for r in rows],
    )


def spark_session() -> Any:
    """One small local Spark session for every test that needs one (skipped without
    pyspark or Java)."""
    import atexit
    import shutil
    import tempfile
    import warnings

    import pytest

    global _SPARK
    if _SPARK is None:
        if shutil.which("java") is None:
            pytest.skip("Java is not installed")
        _one_jvm_per_run()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pyspark warns about the installed pandas version
            pyspark_sql = pytest.importorskip("pyspark.sql")
            warehouse = tempfile.mkdtemp(prefix="ketascore-spark-wh-")
            atexit.register(shutil.rmtree, warehouse, True)
            _SPARK = (
                pyspark_sql.SparkSession.builder.master("local[1]")
                .appName("ketascore-tests")
                .config("spark.sql.shuffle.partitions", "1")
                .config("spark.default.parallelism", "1")
                .config("spark.ui.enabled", "false")
                .config("spark.sql.session.timeZone", "UTC")
                # (by default the catalog makes a spark-warehouse folder in the working folder:
                # the project's root)
                .config("spark.sql.warehouse.dir", warehouse)
                .config("spark.sql.codegen.wholeStage", "false")
                .config("spark.sql.constraintPropagation.enabled", "false")  # as score_spark
                # the frames are a few hundred rows: compiling the queries' expressions to
                # Java (and HotSpot compiling that) took more of the suite's time than
                # evaluating them, and adaptive execution plans each query again; one test
                # runs score_spark as a cluster does (test_score_spark_generates_code)
                .config("spark.sql.codegen.factoryMode", "NO_CODEGEN")
                .config("spark.sql.adaptive.enabled", "false")
                # one collector thread: the JVM's parallel collectors took CPU from the
                # suite's other worker (Spark files alone: 151 -> 133 CPU s, 105 -> 98 s)
                .config("spark.driver.extraJavaOptions", "-XX:+UseSerialGC")
                .getOrCreate()
            )
        _SPARK.sparkContext.setLogLevel("FATAL")
    return _SPARK


_SPARK: Any = None


def _one_jvm_per_run() -> None:
    """Fail when a second worker of the same run starts a Spark session: the Spark files
    belong to one worker (tests/conftest.py), and two JVMs on two cores slow the suite by
    a minute."""
    import os
    import tempfile
    from pathlib import Path

    import pytest

    run, worker = os.environ.get("PYTEST_XDIST_TESTRUNUID"), os.environ.get("PYTEST_XDIST_WORKER")
    if not run or not worker:
        return
    mark = Path(tempfile.gettempdir()) / f"ketascore-spark-{run}"
    try:
        with mark.open("x") as fh:
            fh.write(worker)
    except FileExistsError:
        first = mark.read_text()
        if first != worker:
            pytest.fail(f"Spark started in workers {first} and {worker}: see tests/conftest.py")


_POSTGRES: Any = None


def postgres_connection() -> Any:
    """A connection to the PostgreSQL server of ``KETASCORE_POSTGRES`` (a connection
    address; .ci/run starts one), else of a local server on the default port. Skipped when
    no server answers, unless KETASCORE_POSTGRES names one: then it is a failure."""
    import os

    import pytest

    global _POSTGRES
    if _POSTGRES is None:
        psycopg = pytest.importorskip("psycopg")
        given = os.environ.get("KETASCORE_POSTGRES")
        address = given or "postgresql://postgres@127.0.0.1:5432/postgres"
        try:
            _POSTGRES = psycopg.connect(address, autocommit=True, connect_timeout=5)
        except psycopg.Error as exc:
            if given:
                pytest.fail(f"KETASCORE_POSTGRES={given}: no PostgreSQL server answers: {exc}")
            pytest.skip(f"no PostgreSQL server at {address}")
    return _POSTGRES


def postgres_rows(
    rows: list[dict[str, Any]], sql: str, types: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """``sql`` (reading the table ``answers``) run on PostgreSQL over ``rows``, in a
    transaction that is rolled back."""
    con = postgres_connection()
    columns = list(rows[0])
    types = types or {}
    spec = ", ".join(f'"{c}" {types.get(c, "text")}' for c in columns)
    with con.transaction(force_rollback=True), con.cursor() as cur:
        cur.execute(f"CREATE TEMPORARY TABLE answers ({spec})")
        with cur.copy(
            f"COPY answers ({', '.join(chr(34) + c + chr(34) for c in columns)}) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        cur.execute(sql)
        names = [d.name for d in cur.description or []]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


# --------------------------------------------------------------------------------------
# Random scales


def random_scale(seed: int) -> Scale | None:
    """A seeded random scale of the language (None when the draw is not a valid scale):
    items with ranges (some in steps), value lists with fractions and negatives, labels and
    codes, missing codes; scores by every method over items and other scores, with
    reversing, weights and recoding, missing-data rules with prorating and rounding,
    applies_when; flags and classifications on items, scores, spreads and combinations.
    The sink scale has every construct once; these have them in combinations nobody wrote."""
    import yaml

    from ketascore.core.scale import check_scale_text

    rnd = random.Random(seed)
    items: list[dict[str, Any]] = []
    alike = rnd.random() < 0.5  # as in most scales, every item rated on one range
    for k in range(1, rnd.randint(1, 7) + 1):
        item: dict[str, Any] = {"id": f"i{k}", "label": f"I{k}"}
        if alike and items:
            item["range"] = items[0].get("range", [0, 3])
        elif rnd.random() < 0.65:
            lo = rnd.choice([0, 0, 0, 1, -2])
            item["range"] = [lo, lo + rnd.randint(1, 6)]
            if rnd.random() < 0.15:
                item["step"] = rnd.choice([0.5, 0.25])
            elif rnd.random() < 0.3:
                item["answers"] = [
                    {"value": v, "label": f"Answer {v} of {k}", "code": f"C{k}-{v}"}
                    for v in range(item["range"][0], item["range"][1] + 1)
                ]
        else:
            pool = [-2.5, -1, 0, 0.25, 1, 1.5, 2, 3.75, 6.5, 10]
            item["values"] = sorted(rnd.sample(pool, rnd.randint(2, 5)))
        if rnd.random() < 0.3:
            item["missing_codes"] = [{"value": rnd.choice([9, 99, -9]), "label": "not assessed"}]
        items.append(item)

    def allowed(item: dict[str, Any]) -> Any:
        if "values" in item:
            return rnd.choice(item["values"])
        return rnd.randint(*item["range"])

    def ranges(chosen: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
        return {tuple(i.get("range") or i["values"]) for i in chosen}

    scores: list[dict[str, Any]] = []
    for s in range(rnd.randint(1, 3)):
        chosen = rnd.sample(items, rnd.randint(1, len(items)))
        terms: list[Any] = []
        plain = rnd.random() < 0.5  # as in most scores, the items as they are
        for item in chosen:
            term: dict[str, Any] = {"item": item["id"]}
            if not plain and rnd.random() < 0.15 and "range" in item and "step" not in item:
                lo, hi = item["range"]
                term["recode"] = {str(v): rnd.choice([0, 1, 2, 0.5]) for v in range(lo, hi + 1)}
            elif not plain:
                if rnd.random() < 0.3:
                    term["reverse"] = True
                if rnd.random() < 0.3:
                    term["weight"] = rnd.choice([2, 0.5, -1, 1.5])
            terms.append(term if len(term) > 1 else item["id"])
        if s and rnd.random() < 0.3:
            terms.append({"score": f"s{rnd.randrange(s)}"})
        score: dict[str, Any] = {
            "id": f"s{s}",
            "label": f"S{s}",
            "method": rnd.choice(["sum", "sum", "mean", "max", "min"]),
            "of": terms,
        }
        zero_based = all(i.get("range", [1])[0] == 0 for i in chosen) and len(terms) == len(chosen)
        prorates = score["method"] != "sum" or zero_based or len(ranges(chosen)) == 1
        if rnd.random() < 0.6 and len(terms) > 1 and prorates:
            rule: dict[str, Any] = {}
            if rnd.random() < 0.5:
                rule["max_missing"] = rnd.randint(0, len(terms) - 1)
            else:
                rule["min_answered"] = rnd.randint(1, len(terms))
            if score["method"] == "sum":
                plain = plain and len(terms) == len(chosen) and len(ranges(chosen)) == 1
                by_max = zero_based and (not plain or rnd.random() < 0.5)
                rule["method"] = "prorate_max" if by_max else "prorate_mean"
            if rnd.random() < 0.5:
                rule["rounding"] = {
                    "method": rnd.choice(["none", "half_up", "half_even", "floor", "ceil"]),
                    "decimals": rnd.randint(0, 2),
                }
            score["missing"] = rule
        if rnd.random() < 0.4:
            score["response"] = {"reduction_percent": rnd.choice([50, 25, 33.3])}
        scores.append(score)
    if len(scores) > 1 and rnd.random() < 0.3:
        scores[-1]["applies_when"] = {"item": items[0]["id"], "at_least": allowed(items[0])}

    def condition() -> dict[str, Any]:
        item = rnd.choice(items)
        simple = [
            {"item": item["id"], "at_least": allowed(item)},
            {"item": item["id"], "equals": allowed(item)},
            {"item": item["id"], "at_most": allowed(item)},
            {"score": scores[0]["id"], "above": 0},
        ]
        if len(items) > 1:
            simple.append({"spread": [items[0]["id"], items[1]["id"]], "equals": 0})
        pick = rnd.choice(simple)
        if rnd.random() < 0.3:
            return {rnd.choice(["all", "any"]): [pick, rnd.choice(simple)]}
        return pick

    definition: dict[str, Any] = {
        "id": f"random{seed}",
        "name": f"Random scale {seed}",
        "version": "1",
        "rater": "self",
        "licence": {"status": "public-domain"},
        "citations": [{"key": "test", "text": "A random scale of the conformance suite"}],
        "items": items,
        "scores": scores,
    }
    flags = [
        {"id": f"f{k}", "label": f"F{k}", "when": condition()} for k in range(rnd.randint(0, 2))
    ]
    kinds = [
        {"id": f"c{k}", "label": f"C{k}", "when": condition()} for k in range(rnd.randint(0, 2))
    ]
    if flags:
        definition["flags"] = flags
    if kinds:
        definition["classifications"] = kinds
    text = yaml.safe_dump(definition, sort_keys=False)
    if check_scale_text(text, f"random{seed}.yaml").problems:
        return None
    return load_scale_text(text, f"random{seed}.yaml")


def random_scales(count: int, first_seed: int = 0) -> list[Scale]:
    """The first ``count`` valid random scales from ``first_seed`` on."""
    out: list[Scale] = []
    seed = first_seed
    while len(out) < count:
        scale = random_scale(seed)
        if scale is not None:
            out.append(scale)
        seed += 1
    return out


# --------------------------------------------------------------------------------------
# Typed tables: Parquet files whose columns carry the types real exports give them

# Arrow type names and what a column of that type may hold
_INTEGERS: dict[str, tuple[int, int]] = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint8": (0, 2**8 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
    "uint64": (0, 2**64 - 1),
}
_DOUBLES = [math.nan, -0.0, math.inf, -math.inf, 1e300, 1e20, 2.0**53, 5e-324, 0.1, 0.5, 2.5]
ANSWER_TYPES = (
    *_INTEGERS,
    *("float64", "float32", "float16", "decimal(9,0)", "decimal(12,2)", "decimal(38,3)"),
    *("string", "bool", "null"),
)
ID_TYPES = (
    *("string", "int8", "int32", "int64", "uint64", "float64", "float32", "float16"),
    "decimal(12,2)",
)


def arrow_type(name: str) -> Any:
    """The Arrow type of a name of ``ANSWER_TYPES`` (``decimal(p,s)``, ``date32`` too)."""
    import pyarrow as pa

    if name.startswith("decimal("):
        precision, scale = (int(x) for x in name[8:-1].split(","))
        return pa.decimal128(precision, scale)
    return {"float64": pa.float64(), "string": pa.string(), "bool": pa.bool_()}.get(
        name
    ) or getattr(pa, name)()


def _typed(name: str, value: Any) -> Any:
    """``value`` (a number or a text) as a cell of a column of type ``name``, or None when
    the type cannot hold it."""
    if value is None:
        return None
    if name == "string":
        return value if isinstance(value, str) else str(value)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if name in _INTEGERS:
        lo, hi = _INTEGERS[name]
        ok = isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())
        return int(value) if ok and lo <= value <= hi else None
    if name.startswith("decimal("):
        precision, scale = (int(x) for x in name[8:-1].split(","))
        if not math.isfinite(value) or abs(value) >= 10 ** (precision - scale):
            return None
        return decimal.Decimal(repr(float(value))).quantize(decimal.Decimal(1).scaleb(-scale))
    if name == "bool":
        return bool(value)
    if name == "null":
        return None
    return float(value)


def _answer(rnd: random.Random, scale: Scale, item_id: str, type_name: str) -> Any:
    """An answer for a column of ``type_name``: mostly an allowed value, else a value of
    every kind the type holds (out of range, fractions, missing codes, extremes)."""
    rule = scale.items[item_id]
    pick = rnd.random()
    if pick < 0.08:
        return None
    if type_name == "string":
        return (
            str(rnd.choice(rule.allowed_values()))
            if pick < 0.55
            else rnd.choice(
                [v for v in odd_values(scale, item_id) if v is None or isinstance(v, str)]
            )
        )
    if type_name == "bool":
        return rnd.random() < 0.5
    if pick < 0.7:
        value: Any = rnd.choice(rule.allowed_values())
    else:
        extremes: list[Any] = [*rule.missing_values, rule.hi + 1, rule.lo - 1, 7, 9, -1]
        if type_name in _INTEGERS:
            extremes += list(_INTEGERS[type_name])
        else:
            extremes += _DOUBLES
        value = rnd.choice(extremes)
    return _typed(type_name, value)


def _ids(rnd: random.Random, type_name: str, n: int, prefix: str) -> list[Any]:
    """``n`` ids of a column of ``type_name`` (a few of them odd: blank, NaN, huge, signs,
    whitespace, fractions)."""
    out = []
    for k in range(n):
        odd = rnd.random() < 0.08
        if type_name == "string":
            value: Any = (
                rnd.choice([f" {prefix}{k}", f"{prefix}{k}\t", "", None])
                if odd
                else (f"{prefix}{k}")
            )
        elif odd:
            extremes: list[Any] = [None, -1, 0]
            if type_name in _INTEGERS:
                extremes += list(_INTEGERS[type_name])
            elif type_name.startswith("decimal("):
                extremes += ["-0.00", "1.5", "0.25", "9999999999.99"]
            else:
                # (2047 and 2049: a 16-bit float's limit, 2^24 + 1: a 32-bit float's)
                extremes += [*_DOUBLES, k + 0.5, 1e15, 2.0**53 - 1, 2047.0, 2049.0, 2.0**24 + 1]
            value = _typed(type_name, rnd.choice(extremes))
        else:
            value = _typed(type_name, k % 100 if type_name in ("int8", "uint8") else k)
        out.append(value)
    return out


def typed_table(scale: Scale, n: int, seed: int) -> Any:
    """A seeded Parquet-ready Arrow table of ``n`` rows (and their repeats) of ``scale``:
    subject and visit, date and day, each item and a few carried columns each of a type
    drawn from what exports give (integers of every width, signed or not, doubles with NaN,
    -0.0, infinity and huge values, floats, DECIMAL, text with whitespace, labels and
    missing codes, booleans, dates, all-null columns); subjects and visits repeated with
    the same answers (also written otherwise: -0.0 for 0, ``01.0`` for ``1``) and with
    others."""
    import datetime

    import pyarrow as pa

    rnd = random.Random(seed)
    types: dict[str, str] = {
        "subject": rnd.choice(ID_TYPES),
        "visit": rnd.choice([*ID_TYPES, "date32"]),
    }
    columns: dict[str, list[Any]] = {
        "subject": _ids(rnd, types["subject"], n, "S"),
        "visit": [rnd.choice(["v1", " v1", "v2"]) for _ in range(n)],
    }
    if types["visit"] == "date32":
        days = [
            datetime.date(2024, 1, 1) + datetime.timedelta(days=rnd.randrange(3)) for _ in range(n)
        ]
        columns["visit"] = [None if rnd.random() < 0.03 else d for d in days]
    elif types["visit"] != "string":
        columns["visit"] = _ids(rnd, types["visit"], n, "v")
        columns["visit"] = [
            v if rnd.random() < 0.8 else columns["visit"][0] for v in columns["visit"]
        ]
    if rnd.random() < 0.5:
        types["date"] = rnd.choice(["date32", "string"])
        dates = [datetime.date(2024, 1, 1) + datetime.timedelta(days=k % 60) for k in range(n)]
        columns["date"] = [
            None
            if rnd.random() < 0.1
            else d
            if types["date"] == "date32"
            else rnd.choice([d.isoformat(), f" {d.isoformat()} ", "2024-02-30", "soon"])
            for d in dates
        ]
    if rnd.random() < 0.5:
        types["day"] = rnd.choice(["int16", "float64", "decimal(12,2)", "string"])
        picks: list[Any] = [None, 1, 7, -3, 0.5, 2e6, math.nan, -0.0, "x", " 3 "]
        columns["day"] = [_typed(types["day"], rnd.choice(picks)) for _ in range(n)]
    for item_id in scale.items:
        name = f"{scale.id}_{item_id}"
        types[name] = rnd.choice(ANSWER_TYPES[:-1]) if rnd.random() < 0.95 else "null"
        columns[name] = [_answer(rnd, scale, item_id, types[name]) for _ in range(n)]
    for name in ("arm", "weight", "dose", "code", "ok", "nothing", "stamp"):
        if rnd.random() < 0.4:
            weight = rnd.choice(["float64", "float32", "float16"])
            kind = {"arm": "string", "weight": weight, "dose": "decimal(12,2)", "ok": "bool"}
            types[name] = kind.get(name) or {
                "code": rnd.choice(list(_INTEGERS)),
                "nothing": "null",
            }.get(name, "date32")
            values: list[Any] = [" a ", "b", "", None, "=1", "-2", 3, 0.5, -0.0, math.inf, 1e300]
            values += [0.1, 70.3, -math.inf, math.nan]
            if types[name] == "date32":
                columns[name] = [datetime.date(2024, 5, 1 + k % 28) for k in range(n)]
            else:
                columns[name] = [_typed(types[name], rnd.choice(values)) for _ in range(n)]
    rows = [{c: columns[c][k] for c in columns} for k in range(n)]
    items = [f"{scale.id}_{i}" for i in scale.items]
    for k in range(n):
        if rnd.random() < 0.2:
            again = dict(rows[k])
            if rnd.random() < 0.5:  # the same answers, written otherwise where a type can
                for name in items:
                    value = again[name]
                    if types[name] == "string" and isinstance(value, str):
                        again[name] = rnd.choice([f" {value} ", same_number(value)])
                    elif types[name] in ("float64", "float32", "float16") and value == 0:
                        again[name] = -0.0
            else:
                name = rnd.choice(items)
                again[name] = _answer(rnd, scale, name[len(scale.id) + 1 :], types[name])
            rows.insert(rnd.randrange(len(rows) + 1), again)
    return pa.table({c: pa.array([r[c] for r in rows], arrow_type(types[c])) for c in columns})
