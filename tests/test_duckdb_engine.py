"""The DuckDB engine: CSV and Parquet in, CSV, JSON Lines and Parquet out, with the same
results as `ketascore score`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

duckdb = pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

from test_sql import expected, random_rows, same, sink_scale  # noqa: E402

from ketascore.cli import cli  # noqa: E402
from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.engines.duckdb_engine import (  # noqa: E402
    DuckDBEngineError,
    find_input_files,
    score_with_duckdb,
)
from ketascore.engines.sql import ColumnMap, csv_columns  # noqa: E402

from conftest import EXAMPLE  # noqa: E402

ADVERSARIAL = (
    "subject,visit,date,day,arm,PHQ9_1,phq9_2,phq9_3,phq9_4,phq9_5,phq9_6,phq9_7,phq9_8,"
    "phq9_9,phq9_99,madrs_1\n"
    ' s1 ,v1,2024-01-02,1,"a, b",1,2,3,0,1,2,3,0,1,,5\n'
    "s1,v1,2024-01-02,1,x,1,2,3,0,1,2,3,0,1,,\n"
    "s2,v1,bad,1.5,y,Not at all,2,,0,1,2,3,0,NA,3,\n"
    "s2,v1,,, ,1,2,2,0,1,2,3,0,NA,,\n"
    ",v9,,,,1,1,1,1,1,1,1,1,1,,\n"
    "s3,v1,,,,,,,,,,,,,,4\n"
    "s4,v1,,,,,,,,,,,,,7,\n"
    "s5,v1,,,z,1,1,1\n"
    's6,v2,,7,"q\nr",3,3,3,3,3,3,3,3,3,,\n'
    's7,v1,,,,1.0,2.,+3,٣,\xa01,"1 ",3,0,9,,\n'
    "s8,v1,,x,,Several days,LA6569-3, more  than half the DAYS ,1,1,1,1,1,1,,\n"
    "-s9,=v1,,,@cmd,1,1,1,1,1,1,1,1,1,,\n"
)


def python_csv(runner: Any, path: Path, scale: str, tmp_path: Path) -> tuple[str, str]:
    out = tmp_path / "python.csv"
    result = runner.invoke(
        cli, ["score", str(path), "--scale", scale, "--format", "csv", "-o", str(out)]
    )
    return out.read_text(encoding="utf-8"), result.output


@pytest.mark.parametrize(
    ("name", "scale"),
    [("hamd17-baseline.csv", "hamd17"), ("hamd6.csv", "hamd6")],
)
def test_csv_output_is_byte_identical(runner: Any, tmp_path: Path, name: str, scale: str) -> None:
    source = EXAMPLE / name
    want, _ = python_csv(runner, source, scale, tmp_path)
    out = tmp_path / "duck.csv"
    run = score_with_duckdb(source, scale, out)
    assert out.read_text(encoding="utf-8") == want
    assert run.records == want.count("\n") - 1
    assert run.issues == []


def test_awkward_csv_gives_the_same_output_and_issues(runner: Any, tmp_path: Path) -> None:
    source = tmp_path / "answers.csv"
    source.write_text(ADVERSARIAL, encoding="utf-8")
    want, summary = python_csv(runner, source, "phq9", tmp_path)
    out = tmp_path / "duck.csv"
    run = score_with_duckdb(source, "phq9", out)
    assert out.read_text(encoding="utf-8") == want
    words = (
        f"{run.summary()['records']} record(s), {run.summary()['scored']} scored, "
        f"{run.summary()['with_problems']} with problems"
    )
    assert words in summary
    codes = sorted((i.code, i.line) for i in run.issues)
    assert codes == [
        ("bad-field", None),  # a date
        ("bad-field", None),  # a day
        ("csv-ragged-row", 9),
        ("missing-field", None),
    ]
    assert not run.ok


def test_parquet_and_jsonl_outputs(runner: Any, tmp_path: Path) -> None:
    source = tmp_path / "answers.csv"
    source.write_text(ADVERSARIAL, encoding="utf-8")
    want, _ = python_csv(runner, source, "phq9", tmp_path)
    run = score_with_duckdb(source, "phq9", tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    header = want.splitlines()[0].split(",")
    assert table.column_names == header
    assert table.schema.field("total").type == pa.float64()
    assert table.schema.field("total_items_answered").type == pa.int32()
    assert table.schema.field("total_prorated").type == pa.bool_()
    for name in ("scale", "scale_version", "total_band", "flags", "issues"):  # (some ENUMs)
        assert table.schema.field(name).type == pa.string(), name
    assert table.num_rows == run.records == 7  # 10 rows: 2 merged, 1 ragged, 1 without ids

    result = runner.invoke(cli, ["score", str(source), "--scale", "phq9", "--format", "jsonl"])
    python = [json.loads(line) for line in result.output.splitlines() if '"type": "score"' in line]
    jrun = score_with_duckdb(source, "phq9", tmp_path / "out.jsonl")
    ours = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert jrun.summary() == run.summary()
    assert len(ours) == len(python)
    for a, b in zip(python, ours, strict=True):
        assert list(a) == list(b)
        for key in ("subject", "visit", "date", "day", "scores", "bands", "items_answered"):
            assert a[key] == b[key], key
        for key in ("prorated", "flags", "classifications", "not_applicable", "arm"):
            assert a[key] == b[key], key
        assert [i["code"] for i in a["issues"]] == [i["code"] for i in b["issues"]]
        assert [i["item"] for i in a["issues"]] == [i["item"] for i in b["issues"]]
        assert b["source"]["file"] == str(source)


def test_parquet_input_with_typed_columns(tmp_path: Path) -> None:
    scale = sink_scale()
    rows = random_rows(scale, 300, seed=5)
    text_path = tmp_path / "text.parquet"
    pq.write_table(pa.Table.from_pylist(rows), text_path)
    numbers = [dict(r) for r in rows[:100]]
    for row in numbers:
        for key, value in row.items():
            if key.startswith("sink_"):
                try:
                    row[key] = float(value) if value is not None else None
                except ValueError:
                    row[key] = None
    typed_path = tmp_path / "typed.parquet"
    pq.write_table(pa.Table.from_pylist(numbers), typed_path)
    scale_file = tmp_path / "sink.yaml"
    from test_sql import SINK

    scale_file.write_text(SINK, encoding="utf-8")
    for path, data in ((text_path, rows), (typed_path, numbers)):
        out = tmp_path / f"{path.stem}-scores.parquet"
        score_with_duckdb(path, str(scale_file), out, merge_duplicates=False)
        got = pq.read_table(out).to_pylist()
        assert len(got) == len(
            [
                r
                for r in data
                if any(
                    r[k] not in (None, "") and str(r[k]).strip() for k in r if k.startswith("sink_")
                )
            ]
        )
        by_subject = {r["subject"]: r for r in got}
        for row in data:
            if row["subject"] not in by_subject:
                continue
            for key, value in expected(scale, row).items():
                assert same(value, by_subject[row["subject"]][key]), (path.name, key, row)


def test_folders_mixed_files_and_duplicates_across_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.csv").write_text("subject,visit,phq9_1,phq9_2\nA,v1,1,2\n", encoding="utf-8")
    (folder / "sub" / "a.csv").write_text(
        "visit;subject;phq9_1;phq9_2;site\nv1;A;1;2;north\nv2;B;3;3;south\n", encoding="utf-8"
    )
    pq.write_table(
        pa.Table.from_pylist([{"subject": "C", "visit": "v1", "phq9_1": 1, "phq9_2": 0}]),
        folder / "c.parquet",
    )
    (folder / ".hidden.csv").write_text("junk", encoding="utf-8")
    (folder / "notes.md").write_text("not data", encoding="utf-8")
    files = find_input_files([folder])
    assert [f.relative_to(folder).as_posix() for f in files] == ["b.csv", "c.parquet", "sub/a.csv"]
    out = tmp_path / "out.csv"
    run = score_with_duckdb(folder, "phq9", out)
    lines = out.read_text().splitlines()
    assert lines[0].endswith(",flags,issues,site")
    # A/v1 appears in b.csv and sub/a.csv with the same answers: merged, first file first
    assert [line.split(",")[0] for line in lines[1:]] == ["A", "C", "B"]
    assert "duplicate-record" in lines[1]
    assert run.records == 3 and run.summary()["files"] == 3


def test_latin1_file_is_read_with_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "latin.csv"
    source.write_bytes("subject,visit,site,phq9_1\nA,v1,Zürich,1\n".encode("latin-1"))
    out = tmp_path / "out.csv"
    run = score_with_duckdb(source, "phq9", out)
    assert [i.code for i in run.issues] == ["encoding"]
    assert "Zürich" in out.read_text(encoding="utf-8")


def test_column_map(tmp_path: Path) -> None:
    source = tmp_path / "nhanes.csv"
    items = ",".join(f"DPQ0{i}0" for i in range(1, 10))
    source.write_text(f"SEQN,CYCLE,{items}\n1,2017,1,1,1,1,1,1,1,1,7\n", encoding="utf-8")
    cmap = ColumnMap(
        subject="seqn",
        visit="CYCLE",
        items={str(i): f"DPQ0{i}0" for i in range(1, 10)},
        missing_codes=(7, 9),
    )
    out = tmp_path / "out.parquet"
    score_with_duckdb(source, "phq9", out, columns=cmap)
    row = pq.read_table(out).to_pylist()[0]
    assert row["subject"] == "1" and row["total"] == 9.0 and row["total_prorated"] is True


def test_output_is_all_or_nothing_and_never_an_input(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("subject,visit,phq9_1\nA,v1,1\n", encoding="utf-8")
    with pytest.raises(DuckDBEngineError, match="is an input"):
        score_with_duckdb(tmp_path, "phq9", tmp_path / "inside.csv")
    with pytest.raises(DuckDBEngineError, match="output format"):
        score_with_duckdb(source, "phq9", tmp_path / "out.xlsx")
    with pytest.raises(DuckDBEngineError, match="no such file"):
        score_with_duckdb(tmp_path / "missing.csv", "phq9", tmp_path / "o.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DuckDBEngineError, match="no CSV or Parquet"):
        score_with_duckdb(tmp_path / "empty", "phq9", tmp_path / "o.csv")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DuckDBEngineError, match="no input file could be read"):
        score_with_duckdb(bad, "phq9", tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not (tmp_path / "inside.csv").exists()


def test_columns_follow_score_csv(tmp_path: Path) -> None:
    source = tmp_path / "a.csv"
    source.write_text("subject,visit,hamd17_1\nA,v1,1\n", encoding="utf-8")
    out = tmp_path / "o.csv"
    score_with_duckdb(source, load_builtin("hamd17"), out)
    assert out.read_text().splitlines()[0].split(",") == csv_columns(load_builtin("hamd17"))


def test_parquet_statistics_spare_the_checks_only_when_they_prove_them(tmp_path: Path) -> None:
    scale = load_builtin("phq9")
    clean = [
        {"subject": f"S{k}", "visit": "v1", **{f"phq9_{i}": (k + i) % 4 for i in range(1, 10)}}
        for k in range(40)
    ]
    clean[3]["phq9_2"] = None
    dirty = [dict(r) for r in clean]
    dirty[5]["phq9_7"] = 9  # out of range: the statistics show it, the checks stay
    schema = pa.schema(
        [("subject", pa.string()), ("visit", pa.string())]
        + [(f"phq9_{i}", pa.int32()) for i in range(1, 10)]
    )
    for name, rows in (("clean", clean), ("dirty", dirty)):
        source = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), source)
        out = tmp_path / f"{name}-scores.parquet"
        run = score_with_duckdb(source, scale, out)
        checked = "out-of-range" in run.sql
        assert checked == (name == "dirty")
        got = pq.read_table(out).to_pylist()
        for row, result in zip(rows, got, strict=True):
            for key, value in expected(scale, row).items():
                assert same(value, result[key]), (name, key, row)


def test_visits_kept_as_dictionary_codes_are_written_as_an_enum(tmp_path: Path) -> None:
    """Where a Parquet file keeps the visits as dictionary codes (under a byte a value), their
    few values are listed first and the visit is written as an ENUM of them; stored as
    texts, or too many, it stays text. The scores are the same either way."""
    rows = [
        {"subject": f"S{k:03d}", "visit": f"v{k % 3}", **{f"phq9_{i}": k % 4 for i in range(1, 10)}}
        for k in range(600)
    ]
    many = [{**r, "visit": f"w{k}"} for k, r in enumerate(rows)]  # 600 values
    cases = {"codes": (rows, True), "texts": (rows, False), "many": (many, True)}
    for name, (data, dictionary) in cases.items():
        source = tmp_path / f"{name}.parquet"
        pq.write_table(pa.Table.from_pylist(data), source, use_dictionary=dictionary)
        out = tmp_path / f"{name}-scores.parquet"
        run = score_with_duckdb(source, "phq9", out)
        assert ("ENUM('v0', 'v1', 'v2')" in run.sql) == (name == "codes"), name
        assert pq.read_table(out).schema.field("visit").type == pa.string()
        csv = tmp_path / f"{name}.csv"
        header = list(data[0])
        lines = [",".join(header)] + [",".join(str(r[c]) for c in header) for r in data]
        csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
        score_with_duckdb(csv, "phq9", tmp_path / f"{name}-csv.parquet")
        assert (
            pq.read_table(out).to_pylist()
            == pq.read_table(tmp_path / f"{name}-csv.parquet").to_pylist()
        )


def test_summary_counts_issues_known_in_advance_per_text(tmp_path: Path) -> None:
    """Items known to hold allowed values give an issues column of a few texts known in
    advance; the rows with problems are counted per text, and the figures are those of
    the same rows in CSV (every issue a text, counted row by row)."""
    rows = []
    for k in range(200):
        row: dict[str, Any] = {"subject": f"S{k:03d}", "visit": "v1"}
        for i in range(1, 10):  # some rows miss too many items, some the flag's item
            row[f"phq9_{i}"] = None if (k % 7 == 0 and i <= 4) or (k % 5 == 0 and i == 9) else 1
        rows.append(row)
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), source)
    csv = tmp_path / "in.csv"
    header = list(rows[0])
    lines = [",".join(header)] + [
        ",".join("" if r[c] is None else str(r[c]) for c in header) for r in rows
    ]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    listed = score_with_duckdb(source, "phq9", tmp_path / "p.parquet")
    assert "ENUM('insufficient-items'" in listed.sql
    texts = score_with_duckdb(csv, "phq9", tmp_path / "c.parquet")
    assert "ENUM('insufficient-items'" not in texts.sql
    assert listed.summary() == texts.summary()
    assert listed.with_problems == len([k for k in range(200) if k % 7 == 0]) > 0


def test_score_engine_duckdb_from_the_command_line(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ketascore.cli import cli

    data = Path(__file__).resolve().parent / "data" / "study" / "madrs-day3.csv"
    out = tmp_path / "scores.csv"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["score", str(data), "--engine", "duckdb", "--scale", "madrs", "-o", str(out)]
    )
    assert result.exit_code == 1  # one record misses an item
    python = runner.invoke(cli, ["score", str(data), "--scale", "madrs", "--format", "csv"])
    assert out.read_text() == python.stdout
    provenance = json.loads((tmp_path / "scores.csv.provenance.json").read_text())
    # the input's sha256 (computed while DuckDB scores it) is the file's
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    assert digest in json.dumps(provenance)
    parquet = tmp_path / "scores.parquet"
    result = runner.invoke(
        cli, ["score", str(data), "--engine", "duckdb", "--scale", "madrs", "-o", str(parquet)]
    )
    assert parquet.read_bytes()[:4] == b"PAR1"
    missing = runner.invoke(cli, ["score", str(data), "--engine", "duckdb", "-o", str(out)])
    assert missing.exit_code == 2 and "needs --scale" in missing.stderr
    no_parquet = runner.invoke(cli, ["score", str(data), "-o", str(tmp_path / "x.parquet")])
    assert no_parquet.exit_code == 2 and "--engine duckdb" in no_parquet.stderr


@pytest.mark.parametrize(
    "keys",
    [
        [("A", "v1"), ("A", "v2"), ("B", "v1"), ("C", "v1")],  # sorted, unique
        [("B", "v1"), ("A", "v2"), ("C", "v1"), ("A", "v1")],  # unsorted, unique
        [("A", "v1"), ("A", "v1"), ("B", "v1"), ("C", "v1")],  # sorted, a repeat
        [("B", "v1"), ("A", "v1"), ("C", "v1"), ("A", "v1")],  # unsorted, a repeat
        [("A", "v1"), (" A ", "v1"), ("B", "v1"), ("C", "v1")],  # a repeat once stripped
        [("A", "v1"), ("B", "\tv2"), ("", "v1"), ("Ä", "v1")],  # values to strip, blank
    ],
)
def test_parquet_keys_are_checked_as_in_csv(tmp_path: Path, keys: list[tuple[str, str]]) -> None:
    """Parquet subjects and visits are scored as they are while the checks make sure they
    need no stripping and whether some repeat: the results are those of the same rows in
    CSV (scored with every check, as the Python engine scores them)."""
    rows = [
        {"subject": s, "visit": v, **{f"phq9_{i}": str((n + i) % 4) for i in range(1, 10)}}
        for n, (s, v) in enumerate(keys)
    ]
    rows[-1] = {**rows[0], "subject": rows[-1]["subject"], "visit": rows[-1]["visit"]}
    parquet, csv = tmp_path / "in.parquet", tmp_path / "in.csv"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    header = list(rows[0])
    lines = [",".join(header)] + [",".join(f'"{r[c]}"' for c in header) for r in rows]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_parquet = score_with_duckdb(parquet, "phq9", tmp_path / "p.csv")
    from_csv = score_with_duckdb(csv, "phq9", tmp_path / "c.csv")
    assert (tmp_path / "p.csv").read_text() == (tmp_path / "c.csv").read_text()
    assert from_parquet.summary() == from_csv.summary()
