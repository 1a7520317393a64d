"""The SQL compiler: its options, column maps, dialects and the value grammar in SQL (the
conformance suite checks its results against the record engine on every scale)."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

duckdb = pytest.importorskip("duckdb")
sqlglot = pytest.importorskip("sqlglot")

from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.core.scale import load_scale_text  # noqa: E402
from ketascore.core.values import (  # noqa: E402
    is_date,
    is_number,
    label_key,
    sql_date,
    sql_is_number,
    sql_label_key,
    sql_strip,
    strip,
)
from ketascore.engines.sql import (  # noqa: E402
    DIALECTS,
    ColumnMap,
    SqlError,
    TableLayout,
    compile_scale,
    parse_column_map,
    read_column_map,
    scale_sql,
)

from conftest import budget  # noqa: E402

TEXT = st.text(alphabet=string.digits + " .+-eEaZ\t\n\xa0٣T:", max_size=12)


def run(con: Any, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


@settings(max_examples=budget(60))
@given(st.lists(TEXT, min_size=1, max_size=30))
def test_the_grammar_is_the_same_in_sql(texts: list[str]) -> None:
    """Stripping, numbers, label keys and dates: one definition, the same in both."""
    con = duckdb.connect()
    con.execute("CREATE TABLE t (x VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[x] for x in texts])
    s = sql_strip("x")
    got = con.execute(
        f"SELECT x, {s}, {sql_is_number(s)}, {sql_label_key(s)}, {sql_date('x')} FROM t"
    ).fetchall()
    for x, stripped, number, key, date in got:
        assert stripped == strip(x)
        assert number == is_number(strip(x)), x
        assert key == label_key(strip(x))
        assert (date is not None) == is_date(strip(x)), x


def test_dates_of_the_grammar() -> None:
    good = ["2024-02-29", "2024-05-03T10:30", "2024-05-03 10:30:59", "2024-05-03T10:30:00.5Z"]
    good += ["2024-05-03T23:59:59.123456+02:00", "0001-01-01"]
    bad = ["2023-02-29", "2024-13-01", "20240503", "2024-5-3", "2024-05-03T24:00", "x"]
    bad += ["2024-05-03T10", "2024-05-03T10:30+2", "2024-05-03T10:61", "0000-01-01"]
    assert all(is_date(d) for d in good)
    assert not any(is_date(d) for d in bad)


def test_duplicates_are_merged_as_the_record_engine_merges_them() -> None:
    from support import merged_results, query_differences

    scale = load_builtin("phq9")
    base = {f"phq9_{i}": "1" for i in range(1, 11)}
    rows = [
        {"subject": "A", "visit": "v1", "n": 1, **base},
        {"subject": "B", "visit": "v1", "n": 2, **base},
        {"subject": "A", "visit": "v1", "n": 3, **base, "phq9_2": " 1.0 "},  # the same answer
        {"subject": "B", "visit": "v1", "n": 4, **base, "phq9_2": "2"},  # a conflict
        {"subject": "C", "visit": "v1", "n": 5, **base, "phq9_3": "Several days"},
        {"subject": "C", "visit": "v1", "n": 6, **base},  # a label against a number: conflict
        {"subject": "D", "visit": "v1", "n": 7, **base, "phq9_4": "-0"},
        {"subject": "D", "visit": "v1", "n": 8, **base, "phq9_4": "0"},  # -0 is 0
    ]
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE answers (subject VARCHAR, visit VARCHAR, n INTEGER, "
        + ", ".join(f"phq9_{i} VARCHAR" for i in range(1, 11))
        + ")"
    )
    con.executemany(
        f"INSERT INTO answers VALUES ({', '.join('?' for _ in rows[0])})",
        [list(r.values()) for r in rows],
    )
    sql = compile_scale(scale, duplicates=True, layout=TableLayout(order="n")).sql()
    python = merged_results(scale, rows, "t.csv", first_line=2)
    got = run(con, sql)
    assert [r["subject"] for r in got] == ["A", "B", "C", "D"]
    assert not query_differences(scale, python, got)


def test_unrated_rows_and_rows_without_ids_are_left_out() -> None:
    scale = load_builtin("phq9")
    con = duckdb.connect()
    others = ", ".join(f"NULL::VARCHAR AS phq9_{i}" for i in range(2, 11))
    con.execute(
        f"CREATE TABLE answers AS SELECT *, {others} FROM (VALUES ('A', 'v1', '2'), "
        "('B', 'v1', '  '), (' ', 'v1', '1'), ('C', NULL, '1')) t(subject, visit, phq9_1)"
    )
    assert [r["subject"] for r in run(con, scale_sql(scale))] == ["A"]
    assert len(run(con, scale_sql(scale, skip_unrated=False))) == 4


def test_column_map_file(tmp_path: Any) -> None:
    path = tmp_path / "map.yaml"
    path.write_text("subject: SEQN\nvisit: CYCLE\nitems: {1: DPQ010}\nmissing_codes: [7, NR]\n")
    assert read_column_map(path) == ColumnMap("SEQN", "CYCLE", {"1": "DPQ010"}, (7, "NR"))
    path.write_text("subject: SEQN\ncolumns: {}\n")
    with pytest.raises(SqlError, match="unknown key"):
        read_column_map(path)
    path.write_text("items: [1, 2]\n")
    with pytest.raises(SqlError, match="items maps"):
        read_column_map(path)
    with pytest.raises(SqlError, match="names its answers"):
        parse_column_map({"layout": "long", "codes": "cdisc"})
    with pytest.raises(SqlError, match="needs item codes"):
        parse_column_map({"layout": "long", "value_column": "QSORRES"})
    with pytest.raises(SqlError, match="only a long layout"):
        parse_column_map({"item_column": "QSTESTCD"})


@pytest.mark.parametrize("dialect", list(DIALECTS))
def test_every_dialect_gets_a_query_that_parses(dialect: str) -> None:
    from support import SINK

    scale = load_scale_text(SINK, "s")  # every construct of the language
    layout = TableLayout(order="n")
    text = compile_scale(scale, dialect, duplicates=True, layout=layout, details=True).sql()
    read = "spark" if dialect == "databricks" else dialect
    assert sqlglot.parse_one(text, read=read) is not None
    assert "_ks_" in text


def test_an_unchecked_dialect_is_refused() -> None:
    with pytest.raises(SqlError, match="not supported"):
        compile_scale(load_builtin("phq9"), "oracle")
    with pytest.raises(SqlError, match="orders the rows"):
        compile_scale(load_builtin("phq9"), duplicates=True)


def test_no_long_in_list() -> None:
    """DuckDB turns an IN list of more than four constants into a join, which does not keep
    the rows in input order: the compiler writes them as ORs."""
    import re

    sql = compile_scale(load_builtin("cssrs")).sql()
    for found in re.findall(r"IN \(([^()]*)\)", sql):
        assert found.count(",") < 4, found


def test_cli_prints_the_query(runner: Any, tmp_path: Any) -> None:
    from ketascore.cli import cli

    result = runner.invoke(cli, ["sql", "phq9", "--dialect", "spark", "--table", "db.ratings"])
    assert result.exit_code == 0, result.output
    assert "ratings" in result.output
    sqlglot.parse_one(result.output.rstrip().rstrip(";"), read="spark")
    result = runner.invoke(cli, ["sql", "phq9", "--dialect", "oracle"])
    assert result.exit_code == 2 and "unknown dialect" in result.output
    assert runner.invoke(cli, ["sql", "no-such-scale"]).exit_code == 2
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
    assert result.exit_code == 2 and "unknown key" in result.output
