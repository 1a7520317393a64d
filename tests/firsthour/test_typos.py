"""Issue 17, item 2: typos are errors. `--by armm` (a field no record carries) is a usage
error naming the fields there are, in change, plot and report; a scale id in a record
matches whatever its case, or gets the "did you mean" of --scale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

from conftest import EXAMPLE


@pytest.mark.parametrize(
    "command",
    [
        ["change", "--format", "csv"],
        ["report", "--no-plots", "-o", "report.html"],
        ["plot", "--kind", "trajectory", "-o", "t.svg"],
    ],
)
def test_by_a_field_no_record_carries_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    if command[0] == "plot":
        pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    name, *rest = command
    result = runner.invoke(cli, [name, str(EXAMPLE), "--scale", "madrs", "--by", "armm", *rest])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --by armm: no madrs record carries a field 'armm' (did you mean arm?); "
        "fields: arm; or group by a baseline classification (--by SCALE.CLASSIFICATION)\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_by_field_in_another_case_is_suggested(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["change", str(EXAMPLE), "--scale", "hamd6", "--by", "ARM"])
    assert result.exit_code == 2
    assert "no hamd6 record carries a field 'ARM' (did you mean arm?)" in result.stderr


def test_by_a_classification_of_a_scale_not_in_the_input(runner: CliRunner) -> None:
    madrs_only = str(EXAMPLE / "madrs")
    result = runner.invoke(
        cli, ["change", madrs_only, "--scale", "madrs", "--by", "hamd17.anxious_depression"]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: --by hamd17.anxious_depression: the input holds no hamd17 record to take "
        "anxious_depression from"
    )


def test_scale_ids_in_records_match_whatever_their_case(tmp_path: Path, runner: CliRunner) -> None:
    items = {str(k): 2 for k in range(1, 10)}
    records = [
        {"subject": "S1", "visit": "v1", "scale": "PHQ9", "items": items},
        {"subject": "S2", "visit": "v1", "scale": "Phq9", "items": items},
        {"subject": "S3", "visit": "v1", "scale": "phq-9", "items": items},
        {"subject": "S4", "visit": "v1", "scale": "gad7x", "items": items},
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    doc = json.loads(result.stdout)
    scored = {r["subject"]: (r["scale"], r["scores"].get("total")) for r in doc["results"]}
    assert scored["S1"] == ("phq9", 18) and scored["S2"] == ("phq9", 18)
    messages = [i["message"] for r in doc["results"] for i in r["issues"]]
    assert messages == [
        f"{path}:1: subject S3, visit v1: unknown scale 'phq-9' (did you mean phq9?); see "
        "`ketascore scales list`, or pass --scale with the path of your scale file",
        f"{path}:1: subject S4, visit v1: unknown scale 'gad7x' (did you mean gad7?); see "
        "`ketascore scales list`, or pass --scale with the path of your scale file",
    ]
    assert result.exit_code == 1


def test_with_scale_given_a_mistyped_scale_id_is_reported_not_dropped(
    tmp_path: Path, runner: CliRunner
) -> None:
    items = {str(k): 2 for k in range(1, 11)}
    records = [
        {"subject": "S1", "visit": "baseline", "scale": "MADRS", "items": items},
        {"subject": "S1", "visit": "day1", "scale": "madrss", "items": items},  # a typo
        {"subject": "S1", "visit": "day1", "scale": "hamd6", "items": items},  # another scale
        {"subject": "S1", "visit": "day1", "scale": "site-diary", "items": items},  # not a scale
    ]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    for command in (["score"], ["change"]):
        result = runner.invoke(cli, [*command, str(path), "--scale", "madrs", "--format", "csv"])
        assert result.exit_code == 1
        errors = [line for line in result.stderr.splitlines() if line.startswith("error[")]
        assert errors == [
            f"error[unknown-scale] {path}:1: subject S1, visit day1: unknown scale 'madrss' "
            "(did you mean madrs-s, madrs?); see `ketascore scales list`, or pass --scale with "
            "the path of your scale file"
        ], command
