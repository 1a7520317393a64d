"""The clinical formats through the command line: --map, --input-format, --category,
--questionnaire, --redcap-dictionary, and ADaM output of change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.cli.common import INPUT_FORMATS
from ketascore.readers import input_formats

from conftest import ROOT

FORMATS = ROOT / "tests" / "data" / "formats"


def test_input_format_choices_match_the_readers() -> None:
    assert sorted(INPUT_FORMATS) == sorted(input_formats())


def test_change_reads_sdtm_and_writes_adam(
    runner: CliRunner, shared_data: Path, tmp_path: Path
) -> None:
    qs = shared_data / "sdtm" / "admiral_example_qs.csv"
    out = tmp_path / "adqs.csv"
    result = runner.invoke(
        cli,
        [
            "change",
            str(qs),
            "--scale",
            "gad7",
            "--category",
            "GAD-7 V2",
            "-o",
            str(out),
            "--format",
            "adam",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = out.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:4] == ["STUDYID", "USUBJID", "PARAMCD", "PARAM"] or "USUBJID" in header
    assert (tmp_path / "adqs.csv.provenance.json").exists()
    xpt = tmp_path / "adqs.xpt"
    result = runner.invoke(cli, ["change", str(qs), "--scale", "gad7", "-o", str(xpt)])
    assert result.exit_code == 0, result.output
    assert xpt.read_bytes().startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!")


def test_map_option_scores_a_mapped_table(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        [
            "change",
            str(FORMATS / "mapped-phq9.csv"),
            "--scale",
            "phq9",
            "--map",
            str(FORMATS / "mapped-phq9.yaml"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    assert doc["scale"] == "phq9" and doc["provenance"]["inputs"]


def test_bad_mapping_file_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        [
            "change",
            str(FORMATS / "mapped-phq9.csv"),
            "--scale",
            "phq9",
            "--map",
            str(FORMATS / "mapped-bad.yaml"),
        ],
    )
    assert result.exit_code == 2
    assert "mapped-bad.yaml:" in result.stderr


@pytest.mark.parametrize("option", ["--sheet", "--category"])
def test_format_options_are_documented(runner: CliRunner, option: str) -> None:
    for command in ("score", "change"):
        result = runner.invoke(cli, [command, "--help"])
        assert option in result.output


def test_parquet_input_through_the_record_engine(runner: CliRunner, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "subject": ["S1", "S2"],
            "visit": ["baseline", "baseline"],
            **{f"phq9_{i}": [1, 2 if i != 3 else 7] for i in range(1, 10)},
        }
    )
    path = tmp_path / "visits.parquet"
    pq.write_table(table, path)
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    doc = json.loads(result.stdout)
    assert [r["scores"]["total"] for r in doc["results"]] == [9, None]
    (issue,) = doc["results"][1]["issues"]
    assert issue["code"] == "out-of-range" and issue["message"].startswith(f"{path}:2: subject S2")


def test_report_reads_through_a_mapping_file(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(
        cli,
        [
            "report",
            str(FORMATS / "mapped-phq9.csv"),
            "--scale",
            "phq9",
            "--map",
            str(FORMATS / "mapped-phq9.yaml"),
            "--no-plots",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 1, result.output  # one stored total differs from the items
    html = out.read_text()
    assert "A1" in html and "reported-score-mismatch" in html
