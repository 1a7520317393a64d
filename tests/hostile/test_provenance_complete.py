"""Class 5 of issue #16: provenance is complete.

Every file and option that can change a number (mapping, windows, data dictionary,
questionnaire, baseline rule, thresholds, grouping, engine, the scale file) is recorded, so
two runs that give different numbers never carry the same provenance."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests" / "data" / "formats"
MADRS = ",".join(f"madrs_{i}" for i in range(1, 11))


@pytest.fixture
def study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rows = [
        ("S1", "screen", -3, "A", 4),
        ("S1", "baseline", 0, "A", 3),
        ("S1", "day1", 1, "A", 1),
        ("S1", "day3", 3, "A", 2),
        ("S2", "baseline", 0, "B", 3),
        ("S2", "day1", 2, "B", 2),
    ]
    (tmp_path / "v.csv").write_text(
        f"subject,visit,day,arm,{MADRS}\n"
        + "".join(f"{s},{v},{d},{a}," + ",".join([str(x)] * 10) + "\n" for s, v, d, a, x in rows)
    )
    (tmp_path / "w1.yaml").write_text(
        "windows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: week, from: 1, to: 7, target: 1}\n"
    )
    (tmp_path / "w2.yaml").write_text(
        "windows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: week, from: 1, to: 7, target: 3}\n"
    )
    shutil.copy(FORMATS / "mapped-phq9.csv", tmp_path / "mapped.csv")
    mapping = (FORMATS / "mapped-phq9.yaml").read_text()
    (tmp_path / "m1.yaml").write_text(mapping)
    (tmp_path / "m2.yaml").write_text(mapping.replace("missing_codes: [", "missing_codes: [1, "))
    return tmp_path


def _change(*args: str) -> tuple[Any, Any]:
    result = CliRunner().invoke(
        cli, ["change", "v.csv", "--scale", "madrs", *args, "--format", "json"]
    )
    assert result.exit_code in (0, 1), result.output
    doc = json.loads(result.stdout)
    numbers = (doc["rows"], doc["summary"])
    return numbers, doc["provenance"]


CHANGE_VARIANTS = [
    [],
    ["--baseline", "screen"],
    ["--response-percent", "40"],
    ["--remission-at-most", "9"],
    ["--by", "arm"],
    ["--windows", "w1.yaml"],
    ["--windows", "w2.yaml"],
    ["--windows", "w1.yaml", "--impute", "locf"],
    ["--score", "total", "--baseline", "day1"],
]


def test_different_numbers_never_carry_the_same_provenance(study: Path) -> None:
    runs = [_change(*args) for args in CHANGE_VARIANTS]
    for (n1, p1), (n2, p2) in itertools.combinations(runs, 2):
        if n1 != n2:
            assert p1 != p2
    assert len({json.dumps(p, sort_keys=True) for _, p in runs}) == len(runs)


def test_the_files_options_name_are_recorded_with_their_sha256(study: Path) -> None:
    _, prov = _change("--windows", "w1.yaml")
    (entry,) = prov["option_files"]
    assert entry["option"] == "--windows" and entry["file"] == "w1.yaml"
    assert len(entry["sha256"]) == 64
    assert prov["settings"]["windows"] == "w1.yaml"
    assert prov["settings"]["criteria"] == {
        "response_reduction_percent": 50,
        "remission": "<= 10",
    }


def test_a_mapping_file_that_changes_the_numbers_changes_the_provenance(study: Path) -> None:
    runner = CliRunner()
    docs = []
    for mapping in ("m1.yaml", "m2.yaml"):
        result = runner.invoke(cli, ["score", "mapped.csv", "--map", mapping, "--format", "json"])
        docs.append(json.loads(result.stdout))
    scores = [[r["scores"] for r in d["results"]] for d in docs]
    assert scores[0] != scores[1]
    files = [d["provenance"]["option_files"] for d in docs]
    assert [f[0]["option"] for f in files] == ["--map", "--map"]
    assert files[0][0]["sha256"] != files[1][0]["sha256"]


def test_a_data_dictionary_and_a_questionnaire_are_recorded(study: Path) -> None:
    shutil.copy(FORMATS / "redcap-phq9-labels.csv", "labels.csv")
    shutil.copy(FORMATS / "redcap-phq9-dictionary.csv", "dict.csv")
    shutil.copy(FORMATS / "fhir-ordinal-response.json", "r.json")
    shutil.copy(FORMATS / "fhir-questionnaire-ordinal.json", "q.json")
    runner = CliRunner()
    for args, option in (
        (
            ["labels.csv", "--input-format", "redcap", "--redcap-dictionary", "dict.csv"],
            "--redcap-dictionary",
        ),
        (["r.json", "--questionnaire", "q.json"], "--questionnaire"),
    ):
        result = runner.invoke(cli, ["score", *args, "--format", "csv", "--provenance", "p.json"])
        assert result.exit_code in (0, 1), result.output
        prov = json.loads(Path("p.json").read_text())
        assert [f["option"] for f in prov["option_files"]] == [option]


def test_the_engine_is_recorded(study: Path) -> None:
    pytest.importorskip("duckdb")
    runner = CliRunner()
    engines = set()
    for engine in ("record", "duckdb"):
        result = runner.invoke(
            cli, ["score", "v.csv", "--scale", "madrs", "--engine", engine, "--format", "json"]
        )
        engines.add(json.loads(result.stdout)["provenance"]["settings"]["engine"])
    assert engines == {"record", "table"}


def test_a_report_shows_the_settings_and_option_files(study: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            "report",
            "v.csv",
            "--scale",
            "madrs",
            "--no-plots",
            "--windows",
            "w1.yaml",
            "--baseline",
            "baseline",
            "-o",
            "r.html",
        ],
    )
    assert result.exit_code in (0, 1), result.output
    html = Path("r.html").read_text()
    assert "<h3>Settings</h3>" in html and "<h3>Option files</h3>" in html
    assert "w1.yaml" in html and "--windows" in html
