"""What attacking ketascore as a hostile user found beyond the classes of issue #16, each
closed and kept closed here."""

from __future__ import annotations

import io
import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.readers import read_paths, read_text

PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.json", '{"subject": "S\\ud800", "visit": "v", "scale": "phq9", "items": {"1": 1}}'),
        ("a.jsonl", '{"subject": "S", "visit": "v", "scale": "phq9", "items": {"1": "\\udfff"}}'),
        (
            "a.json",
            '{"resourceType": "QuestionnaireResponse", "subject": '
            '{"reference": "Patient/\\ud83d"}}',
        ),
    ],
)
def test_an_unpaired_surrogate_escape_is_a_parse_error(
    runner: CliRunner, tmp_path: Path, name: str, text: str
) -> None:
    """Valid JSON syntax, but not a character: every output (UTF-8) failed on it (exit 3)."""
    path = tmp_path / name
    path.write_text(text)
    for fmt in ("json", "csv", "table"):
        result = runner.invoke(cli, ["score", str(path), "--format", fmt])
        assert result.exit_code == 1, result.output
    assert [i.code for i in read_paths([path]).issues] == ["parse-error"]
    pair = '{"subject": "S\\ud83d\\ude00", "visit": "v", "scale": "phq9", "items": {"1": 1}}'
    assert read_text(pair, "b.json").records[0].subject == "S\U0001f600"


@pytest.mark.skipif(os.name != "posix", reason="file names of bytes")
def test_a_file_name_that_is_not_utf8(runner: CliRunner, tmp_path: Path) -> None:
    """A folder holding a file named in Latin-1: its name is shown with U+FFFD, and every
    output can be written (the name used to make the JSON writer fail)."""
    folder = tmp_path / "study"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/r\xe9sultats.csv"
    with open(raw, "w") as fh:
        fh.write(f"subject,visit,{PHQ9}\nS1,v1,1,1,1,1,1,1,1,1,1\n")
    with open(os.fsencode(folder) + b"/\xffnotes.md", "w") as fh:
        fh.write("notes")
    out = tmp_path / "o.json"
    result = runner.invoke(cli, ["score", str(folder), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["results"][0]["source"]["file"].endswith("r\ufffdsultats.csv")
    assert doc["issues"][0]["file"].endswith("\ufffdnotes.md")


def test_a_number_too_large_for_sas_transport(runner: CliRunner, tmp_path: Path) -> None:
    """A visit number of 201 digits went to ADaM AVISITN and stopped the writer (exit 3)."""
    rows = ["USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN,VISITNUM,VISIT"]
    for visit, number, value in (("BASELINE", "1", 3), ("WEEK 1", "1" + "0" * 200, 1)):
        rows += [f"P1,PHQ010{i},PHQ-9,{value},{value},{number},{visit}" for i in range(1, 10)]
    path = tmp_path / "qs.csv"
    path.write_text("\n".join(rows) + "\n")
    out = tmp_path / "adqs.xpt"
    result = runner.invoke(
        cli, ["change", str(path), "--scale", "phq9", "--format", "adam", "-o", str(out)]
    )
    assert result.exit_code == 2 and "AVISITN = 1e+200" in result.stderr
    assert not out.exists()
    csv_out = runner.invoke(cli, ["change", str(path), "--scale", "phq9", "--format", "adam"])
    assert csv_out.exit_code == 0


def test_a_workbook_that_expands_too_far_is_refused(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A workbook is a zip archive; one of a few kilobytes can expand to gigabytes. (The
    limits are lowered here so the test need not build a real zip bomb.)"""
    openpyxl = pytest.importorskip("openpyxl")
    from ketascore.readers import xlsx

    book = openpyxl.Workbook()
    book.active.append(["subject", "visit", *PHQ9.split(",")])
    for n in range(200):
        book.active.append([f"S{n}", "v", *([1] * 9)])
    buf = io.BytesIO()
    book.save(buf)
    path = tmp_path / "w.xlsx"
    path.write_bytes(buf.getvalue())
    monkeypatch.setattr(xlsx, "MAX_EXPANDED", 1000)
    monkeypatch.setattr(xlsx, "MAX_RATIO", 1)
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 1
    (issue,) = json.loads(result.stdout)["issues"]
    assert issue["code"] == "parse-error" and "zip bomb" in issue["message"]


def _big_table(path: Path) -> None:
    rnd = random.Random(1)
    rows = [f"subject,visit,{PHQ9}"]
    rows += [
        f"S{k},v1," + ",".join(str(rnd.randint(0, 3)) for _ in range(9)) for k in range(60_000)
    ]
    path.write_text("\n".join(rows) + "\n")


def test_the_size_limit_holds_for_a_table_the_duckdb_engine_would_read(
    runner: CliRunner, tmp_path: Path
) -> None:
    """A CSV large enough for the table engine was read whatever --max-file-size said."""
    pytest.importorskip("duckdb")
    path = tmp_path / "big.csv"
    _big_table(path)
    for engine in ("auto", "duckdb"):
        for target in (path, tmp_path):
            result = runner.invoke(
                cli,
                [
                    "score",
                    str(target),
                    "--scale",
                    "phq9",
                    "--engine",
                    engine,
                    "--max-file-size",
                    "1000",
                    "--format",
                    "json",
                ],
            )
            doc = json.loads(result.stdout)
            assert [i["code"] for i in doc["issues"]] == ["file-too-large"], (engine, target)
            assert result.exit_code == 1


def test_the_library_size_limit_holds_for_the_table_engine(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    from ketascore.api import score_paths

    path = tmp_path / "big.csv"
    _big_table(path)
    with score_paths([path], max_file_size=1000) as run:
        assert [i.code for i in run.issues] == ["file-too-large"]


def test_a_size_limit_must_be_positive(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"subject,visit,{PHQ9}\nS1,v1,1,1,1,1,1,1,1,1,1\n")
    for limit in ("0", "-5"):
        result = runner.invoke(cli, ["score", str(path), "--max-file-size", limit])
        assert result.exit_code == 2


def test_json_identifiers_keep_their_text() -> None:
    (record,) = read_text('{"subject": 1e3, "visit": 1.50, "items": {"1": 1}}', "a.json").records
    assert (record.subject, record.visit) == ("1e3", "1.50")


def test_windows_days_follow_the_grammar() -> None:
    from ketascore.analysis.windows import load_windows_text

    plan = load_windows_text("windows:\n  - {name: w, from: 010, to: 020, target: 015}\n", "w")
    assert [(w.from_day, w.to_day, w.target) for w in plan.windows] == [(10, 20, 15)]


def test_control_characters_in_skipped_names_never_reach_the_terminal(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a.csv").write_text(f"subject,visit,{PHQ9}\nS1,v1,1,1,1,1,1,1,1,1,1\n")
    (folder / "x\x1b[31mred.md").write_text("notes")
    result = runner.invoke(cli, ["score", str(folder), "--format", "json"])
    assert "\x1b" not in result.stderr and "x\\x1b[31mred.md" in result.stderr
