"""The SQL compiler: the query gives the Python engine's results, in DuckDB (and Spark, in
test_spark.py) - every built-in scale and a scale that uses every construct of the language,
on random answers with missing values, missing codes, labels, answer codes and bad values."""

from __future__ import annotations

import math
import random
import re
import unicodedata
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
pytest.importorskip("sqlglot")

import sqlglot  # noqa: E402

from ketascore.core.library import builtin_ids, load_builtin  # noqa: E402
from ketascore.core.records import AnswerRecord, Source  # noqa: E402
from ketascore.core.scale import Scale, load_scale_text  # noqa: E402
from ketascore.core.values import _NUMBER  # noqa: E402
from ketascore.engines.record import score_record, score_records  # noqa: E402
from ketascore.engines.sql import (  # noqa: E402
    DIALECTS,
    NUMBER_PATTERN,
    ColumnMap,
    SqlError,
    TableLayout,
    _python_whitespace,
    compile_scale,
    csv_columns,
    parse_column_map,
    read_column_map,
    scale_sql,
)

# A scale that uses every construct: ranges and value lists (with fractions and negatives),
# labels, answer codes and missing codes, an alternative, sum/mean/max/min, recode, reverse
# and weights, min_answered/max_missing, both prorating methods, every rounding method with
# decimals, bands, scores of scores, applies_when on an item and on a score, flags and
# classifications on items, alternatives and scores.
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
flags:
  - {id: f_item, label: item a1 high, when: {item: a1, at_least: 3}}
  - {id: f_alt, label: alternative rated 2, when: {item: xy, equals: 2}}
  - {id: f_score, label: low score low, when: {score: low, below: 1}}
classifications:
  - {id: c_item, label: g open, when: {item: g, equals: 1}}
  - {id: c_score, label: pm_up at most 6, when: {score: pm_up, at_most: 6}}
"""

EXTRA_CODES: tuple[Any, ...] = (7, "NR", 2.5e9)


def sink_scale() -> Scale:
    return load_scale_text(SINK, "sink.yaml")


def scales_under_test() -> list[Scale]:
    return [*(load_builtin(i) for i in builtin_ids()), sink_scale()]


# --------------------------------------------------------------------------------------
# Random answers


def _odd_values(scale: Scale, item_id: str) -> list[Any]:
    rule = scale.items[item_id]
    values = rule.allowed_values()
    lo, hi = values[0], values[-1]
    out: list[Any] = [None, "", " ", "NA", " n/a ", ".", "N/A"]
    out += [f" {lo} ", f"{hi}.0", f"+{hi}", "\xa0" + str(lo), f"{lo}.", "0" + str(hi), f"{hi}e0"]
    out += [str(hi + 1), str(lo - 1), "1.5", "0.25", "abc", "nan", "inf", "-Infinity", "1e400"]
    out += ["1" + "0" * 30, "٣", "３", "7", "9", "NR", "nr", "1e3", "2.5e9", "true"]
    for label in rule.answer_labels:
        out += [label, label.upper(), "  " + label.lower().replace(" ", "  \t ") + "\n"]
    for code in rule.codes:
        out += [code, code.lower(), f" {code} "]
    for value in rule.missing_values:
        out += [str(value), f"{float(value)}"]
    for label in rule.missing_labels:
        out += [label, label.upper()]
    return out


def random_rows(scale: Scale, n: int, seed: int) -> list[dict[str, Any]]:
    """Rows of text answers: a third complete, a third with some missing items, a third with
    anything (bad values, labels, codes, missing codes)."""
    rnd = random.Random(seed)
    odd = {i: _odd_values(scale, i) for i in scale.items}
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
    return rows


def expected(scale: Scale, row: dict[str, Any], codes: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The Python engine's result for one row, as the query's columns."""
    prefix = f"{scale.id}_"
    items = {k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}
    record = AnswerRecord(subject=row["subject"], visit=row["visit"], scale=scale.id, items=items)
    return result_columns(scale, score_record(scale, record, extra_missing=codes))


def result_columns(scale: Scale, result: Any) -> dict[str, Any]:
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


def same(py: Any, sql: Any) -> bool:
    """Equal, with numbers compared as the doubles they are (bit for bit)."""
    if isinstance(py, bool) or py is None or isinstance(py, str):
        return bool(py == sql) and type(py) is type(sql)
    return sql is not None and float(py) == float(sql) and not isinstance(sql, bool)


def mismatches(
    scale: Scale, rows: list[dict[str, Any]], got: list[dict[str, Any]], codes: tuple[Any, ...] = ()
) -> list[str]:
    assert len(got) == len(rows)
    out = []
    for row, result in zip(rows, got, strict=True):
        for key, value in expected(scale, row, codes).items():
            if not same(value, result[key]):
                items = {k: v for k, v in row.items() if k not in ("subject", "visit")}
                out.append(f"{scale.id} {key}: python {value!r}, sql {result[key]!r} for {items}")
    return out


def duckdb_table(
    con: Any, name: str, rows: list[dict[str, Any]], types: dict[str, str] | None = None
) -> None:
    columns = list(rows[0])
    types = types or {}
    spec = ", ".join(f'"{c}" {types.get(c, "VARCHAR")}' for c in columns)
    con.execute(f'CREATE OR REPLACE TABLE "{name}" ({spec})')
    con.executemany(
        f'INSERT INTO "{name}" VALUES ({", ".join("?" for _ in columns)})',
        [[r[c] for c in columns] for r in rows],
    )


def run_duckdb(con: Any, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


# --------------------------------------------------------------------------------------
# The differential test


@pytest.mark.parametrize("scale", scales_under_test(), ids=lambda s: s.id)
def test_duckdb_gives_the_python_engines_results(scale: Scale) -> None:
    rows = random_rows(scale, 400, seed=8)
    con = duckdb.connect()
    duckdb_table(con, "answers", rows)
    compiled = compile_scale(
        scale, "duckdb", columns=ColumnMap(missing_codes=EXTRA_CODES), skip_unrated=False
    )
    got = run_duckdb(con, compiled.sql())
    assert [c for c in compiled.columns] == csv_columns(scale)
    bad = mismatches(scale, rows, got, EXTRA_CODES)
    assert not bad, "\n".join(bad[:20])


def test_numeric_columns_give_the_python_engines_results() -> None:
    """Typed columns (a Parquet file, a warehouse table): numbers are checked as numbers."""
    scale = sink_scale()
    rnd = random.Random(3)
    specials = [None, 3.0, 0.5, -1.0, 2.5, 99.0, 1.5, 7.0, 2.5e9, 1e300, math.nan, math.inf, -0.0]
    rows = []
    for k in range(300):
        row: dict[str, Any] = {"subject": f"S{k}", "visit": "v"}
        for item_id, rule in scale.items.items():
            pick = rnd.random()
            value = rnd.choice(rule.allowed_values()) if pick < 0.7 else rnd.choice(specials)
            row[f"sink_{item_id}"] = None if value is None else float(value)
        rows.append(row)
    con = duckdb.connect()
    duckdb_table(con, "answers", rows, {f"sink_{i}": "DOUBLE" for i in scale.items})
    kinds = {f"sink_{i}": "number" for i in scale.items}
    compiled = compile_scale(
        scale,
        "duckdb",
        columns=ColumnMap(missing_codes=EXTRA_CODES),
        layout=TableLayout(kinds=kinds),
        skip_unrated=False,
    )
    bad = mismatches(scale, rows, run_duckdb(con, compiled.sql()), EXTRA_CODES)
    assert not bad, "\n".join(bad[:20])


@pytest.mark.parametrize("scale", scales_under_test(), ids=lambda s: s.id)
def test_known_columns_and_enums_give_the_python_engines_results(scale: Scale) -> None:
    """What DuckDB scores Parquet files with: item columns known to hold allowed values or
    NULL (nothing to check, so the checks fold away), plain subjects and visits, and the
    text columns whose values are known in advance typed as ENUMs."""
    rnd = random.Random(11)
    rows = []
    for k in range(300):
        row: dict[str, Any] = {"subject": f"S{k:04d}", "visit": f"v{k % 3}"}
        for item_id, rule in scale.items.items():
            missing = rnd.random() < (0.02 if k % 2 else 0.3)
            value = None if missing else float(rnd.choice(rule.allowed_values()))
            row[f"{scale.id}_{item_id}"] = value
        rows.append(row)
    con = duckdb.connect()
    columns = [c for c in rows[0] if c not in ("subject", "visit")]
    duckdb_table(con, "answers", rows, dict.fromkeys(columns, "DOUBLE"))
    kinds = {**dict.fromkeys(columns, "allowed"), "subject": "plain", "visit": "plain"}
    layout = TableLayout(kinds=kinds, visits=("v0", "v1", "v2"))
    compiled = compile_scale(scale, "duckdb", layout=layout, skip_unrated=False, enums=True)
    assert "not-a-number" not in compiled.sql()  # no value is checked
    assert "ENUM('v0', 'v1', 'v2')" in compiled.sql(pretty=False)  # the visits known
    bad = mismatches(scale, rows, run_duckdb(con, compiled.sql()))
    assert not bad, "\n".join(bad[:20])
    with pytest.raises(SqlError, match="DuckDB"):
        compile_scale(scale, "spark", enums=True)


def test_issue_codes_known_in_advance_are_an_enum() -> None:
    """With enums, the issues column is an ENUM of every text its codes can join (in the
    engine's order), and the absent date a NULL ENUM; a code known only per row (an invalid
    value) keeps the column text."""
    scale = load_builtin("phq9")
    columns = [f"phq9_{i}" for i in scale.items]
    allowed = TableLayout(kinds=dict.fromkeys(columns, "allowed"))
    sql = compile_scale(scale, "duckdb", layout=allowed, enums=True).sql(pretty=False)
    texts = ["insufficient-items", "flag-undetermined", "insufficient-items;flag-undetermined"]
    assert "ENUM(" + ", ".join(f"'{t}'" for t in texts) + ")" in sql
    assert "CAST(NULL AS ENUM('')) AS date" in sql
    checked = compile_scale(scale, "duckdb", enums=True).sql(pretty=False)
    assert "ENUM('insufficient-items'" not in checked


def test_duplicates_are_merged_as_the_python_engine_merges_them() -> None:
    scale = load_builtin("phq9")
    base = {f"phq9_{i}": "1" for i in range(1, 11)}
    rows = [
        {"subject": "A", "visit": "v1", "order": 1, **base},
        {"subject": "B", "visit": "v1", "order": 2, **base},
        {"subject": "A", "visit": "v1", "order": 3, **base, "phq9_2": " 1.0 "},  # same answer
        {"subject": "B", "visit": "v1", "order": 4, **base, "phq9_2": "2"},  # conflict
        {"subject": "C", "visit": "v1", "order": 5, **base, "phq9_3": "Several days"},
        {"subject": "C", "visit": "v1", "order": 6, **base},  # label vs number: conflict
        {"subject": "D", "visit": "v1", "order": 7, **base, "phq9_4": ""},
    ]
    con = duckdb.connect()
    duckdb_table(con, "answers", rows, {"order": "INTEGER"})
    compiled = compile_scale(scale, "duckdb", duplicates=True, order_by="order")
    got = run_duckdb(con, compiled.sql())
    records = [
        AnswerRecord(
            subject=r["subject"],
            visit=r["visit"],
            scale="phq9",
            items={k[5:]: v for k, v in r.items() if k.startswith("phq9_")},
            source=Source(file="t.csv", line=i + 2),
        )
        for i, r in enumerate(rows)
    ]
    python = [result_columns(scale, r) for r in score_records(records, {"phq9": scale}.get)]
    assert [r["subject"] for r in got] == [r["subject"] for r in python] == ["A", "B", "C", "D"]
    for py, sql in zip(python, got, strict=True):
        for key, value in py.items():
            assert same(value, sql[key]), (key, value, sql[key])


def test_unrated_rows_and_rows_without_ids_are_left_out() -> None:
    scale = load_builtin("phq9")
    blank = {f"phq9_{i}": None for i in range(1, 11)}
    rows = [
        {"subject": "A", "visit": "v1", **blank, "phq9_1": "2"},
        {"subject": "B", "visit": "v1", **blank, "phq9_1": "  "},
        {"subject": " ", "visit": "v1", **blank, "phq9_1": "1"},
        {"subject": "C", "visit": None, **blank, "phq9_1": "1"},
    ]
    con = duckdb.connect()
    duckdb_table(con, "answers", rows)
    kept = run_duckdb(con, scale_sql(scale, "duckdb"))
    assert [r["subject"] for r in kept] == ["A"]
    everything = run_duckdb(con, scale_sql(scale, "duckdb", skip_unrated=False))
    assert len(everything) == 4


def test_column_map_names_columns_and_missing_codes() -> None:
    scale = load_builtin("phq9")
    cmap = parse_column_map(
        {
            "subject": "SEQN",
            "visit": "CYCLE",
            "items": {i: f"DPQ0{i}0" for i in range(1, 10)},
            "missing_codes": [7, 9],
        }
    )
    row: dict[str, Any] = {"SEQN": "1", "CYCLE": "2017"}
    row |= {f"DPQ0{i}0": "1" for i in range(1, 10)}
    row["DPQ090"] = "7"  # refused: missing, not out of range
    con = duckdb.connect()
    duckdb_table(con, "nhanes", [row])
    got = run_duckdb(con, scale_sql(scale, "duckdb", table="nhanes", columns=cmap))
    assert got[0]["total"] == 9.0  # 8 x 1, prorated to 9 items
    assert got[0]["total_prorated"] is True
    assert got[0]["issues"] == "flag-undetermined"


def test_column_map_file(tmp_path: Any) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("subject: SEQN\nvisit: CYCLE\nitems: {1: DPQ010}\nmissing_codes: [7, NR]\n")
    cmap = read_column_map(path)
    assert cmap == ColumnMap("SEQN", "CYCLE", {"1": "DPQ010"}, (7, "NR"))
    path.write_text("subject: SEQN\ncolumns: {}\n")
    with pytest.raises(SqlError, match="unknown key"):
        read_column_map(path)
    path.write_text("items: [1, 2]\n")
    with pytest.raises(SqlError, match="items maps"):
        read_column_map(path)
    with pytest.raises(SqlError, match="does not have"):
        compile_scale(load_builtin("phq9"), columns=ColumnMap(items={"99": "X"}))


# --------------------------------------------------------------------------------------
# Dialects and the pieces of Python's behaviour the query copies


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialect_gives_sql_that_parses(dialect: str) -> None:
    for scale in (load_builtin("hamd17"), load_builtin("cssrs"), sink_scale()):
        text = compile_scale(scale, dialect, duplicates=True, order_by="n", details=True).sql()
        assert sqlglot.parse_one(text, read=dialect) is not None
        assert "_ks_" in text


def test_an_unchecked_dialect_is_refused() -> None:
    with pytest.raises(SqlError, match="not supported"):
        compile_scale(load_builtin("phq9"), "oracle")


def test_number_syntax_follows_the_engine() -> None:
    samples = [
        "3",
        "+3",
        "-0",
        "3.",
        ".5",
        "3.0",
        "1e3",
        "1E+2",
        "1.e-3",
        "e3",
        ".",
        "+",
        "3..",
        "1e",
        "0x1",
        " 3",
    ]
    ours = re.compile(NUMBER_PATTERN)
    for text in samples:
        assert bool(ours.match(text)) == bool(_NUMBER.match(text)), text


def test_whitespace_is_pythons() -> None:
    python = {c for c in range(0x110000) if chr(c).isspace()}
    assert set(_python_whitespace()) == python
    separators = {c for c in python if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp")}
    assert separators  # written \\p{Z} for RE2 and Java


def test_whitespace_and_digits_in_duckdb() -> None:
    """Python strips and splits on every Unicode space and reads every Unicode digit."""
    scale = load_builtin("phq9")
    row = {"subject": "\u3000S1\u2003", "visit": "v1"}
    row |= {f"phq9_{i}": f"\u2028{'٠١٢٣'[i % 4]}\x1c" for i in range(1, 10)}
    row["phq9_10"] = " Very\u00a0\u00a0 DIFFICULT\t"
    con = duckdb.connect()
    duckdb_table(con, "answers", [row])
    got = run_duckdb(con, scale_sql(scale, "duckdb"))
    assert got[0]["subject"] == "S1"
    assert same(expected(scale, row)["total"], got[0]["total"])
    assert got[0]["issues"] is None


def test_cli_prints_the_query(runner: Any) -> None:
    from ketascore.cli import cli

    result = runner.invoke(cli, ["sql", "phq9", "--dialect", "spark", "--table", "db.ratings"])
    assert result.exit_code == 0, result.output
    assert "FROM db.ratings" in result.output
    sqlglot.parse_one(result.output.rstrip().rstrip(";"), read="spark")
    result = runner.invoke(cli, ["sql", "phq9", "--dialect", "oracle"])
    assert result.exit_code == 2
    assert "unknown dialect" in result.output
    result = runner.invoke(cli, ["sql", "no-such-scale"])
    assert result.exit_code == 2


def test_cli_map_and_output(runner: Any, tmp_path: Any) -> None:
    from ketascore.cli import cli

    mapping = tmp_path / "map.yaml"
    mapping.write_text("subject: SEQN\nvisit: CYCLE\nitems: {1: DPQ010}\n")
    out = tmp_path / "q.sql"
    result = runner.invoke(
        cli, ["sql", "phq9", "--map", str(mapping), "--compact", "--details", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert '"DPQ010"' in text and '"SEQN"' in text and "issue_items" in text
    mapping.write_text("subjects: SEQN\n")
    result = runner.invoke(cli, ["sql", "phq9", "--map", str(mapping)])
    assert result.exit_code == 2
    assert "unknown key" in result.output
