"""Alerts: every flag a scale declares, flags that could not be determined, and session
flags; per patient, newest first; terminal and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.api import read_answers, score
from ketascore.cli import cli
from ketascore.clinic.alerts import Alert, newest_first, scale_alerts
from ketascore.core.library import ScaleSet, load_builtin
from ketascore.core.scale import load_scale_text

# A scale of one's own with a flag no code knows about: it becomes an alert all the same.
MOOD = """\
id: mood-check
name: Mood check
version: "1"
rater: self
licence: {status: free}
citations: [{key: me, text: my clinic}]
items:
  - {id: 1, label: Mood, range: [0, 4]}
  - {id: 2, label: Hopelessness, range: [0, 4]}
scores:
  - {id: total, label: Total, of: [1, 2], range: [0, 8]}
flags:
  - {id: hopeless, label: Hopelessness rated 4, when: {item: 2, at_least: 4}, source: me}
"""


@pytest.fixture
def clinic() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"


def test_any_declared_flag_is_an_alert(tmp_path: Path) -> None:
    scale = load_scale_text(MOOD, "mood.yaml")
    (tmp_path / "m.csv").write_text(
        "subject,visit,date,mood-check_1,mood-check_2\nP1,v1,2024-01-02,1,4\nP1,v2,2024-02-01,1,\n"
    )
    data = read_answers(tmp_path / "m.csv", scales=[scale])
    results = score(data.records, scale=scale)
    alerts = scale_alerts(results, ScaleSet([scale]).get)
    assert [(a.kind, a.code, a.severity, a.date) for a in alerts] == [
        ("scale-flag", "hopeless", "alert", "2024-01-02"),
        ("flag-undetermined", "hopeless", "warning", "2024-02-01"),
    ]
    assert alerts[0].label == "Hopelessness rated 4"
    assert alerts[1].label.startswith("cannot be determined")


def alert(subject: str, date: str | None, severity: str = "alert", day: int | None = None) -> Alert:
    return Alert(subject, date, day, "scale-flag", severity, "x", "x")


def test_newest_first_per_patient() -> None:
    grouped = newest_first(
        [
            alert("P10", "2024-01-01"),
            alert("P2", "2024-01-05"),
            alert("P2", "2024-03-01", "warning"),
            alert("P2", "2024-03-01", "alert"),
            alert("P2", None, day=3),
            alert("P2", "2023-12-31"),
        ]
    )
    assert list(grouped) == ["P2", "P10"]
    assert [(a.date, a.severity) for a in grouped["P2"]] == [
        ("2024-03-01", "alert"),
        ("2024-03-01", "warning"),
        ("2024-01-05", "alert"),
        ("2023-12-31", "alert"),
        (None, "alert"),
    ]


def test_builtin_safety_flags_are_taken_from_the_scale_files() -> None:
    # the alerts know no scale by name: PHQ-9 item 9 and C-SSRS intent come from their files
    for scale_id, flag in (("phq9", "suicidal_ideation"), ("cssrs", "ideation_with_intent")):
        assert flag in {f.id for f in load_builtin(scale_id).flags}
    source = (
        Path(__file__).resolve().parents[2] / "ketascore" / "clinic" / "alerts.py"
    ).read_text()
    for name in ("phq9", "cssrs", "madrs", "suicidal_ideation", "ideation_with_intent"):
        assert name not in source


def test_cli_alerts_on_the_example_clinic(runner: CliRunner, clinic: Path) -> None:
    result = runner.invoke(
        cli,
        [
            "clinic",
            "alerts",
            str(clinic / "ratings"),
            "--sessions",
            str(clinic / "sessions.csv"),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    by = {p["subject"]: p["alerts"] for p in doc["patients"]}
    kc15 = by["KC-15"]
    assert [a["date"] for a in kc15] == sorted((a["date"] for a in kc15), reverse=True)
    # PHQ-9 item 9, C-SSRS intent and MADRS item 10 >= 4: each a flag of its scale file
    assert {a["code"] for a in kc15} == {
        "suicidal_ideation",
        "ideation_with_intent",
        "suicidal_thoughts",
    }
    assert [a["code"] for a in by["KC-10"]] == ["loss-of-consciousness", "sedated-at-discharge"]
    assert by["KC-10"][0]["source"].startswith("spravato-pi, 5.1 Sedation")
    assert by["KC-07"][0]["kind"] == "flag-undetermined"
    one = runner.invoke(
        cli,
        ["clinic", "alerts", str(clinic / "ratings"), "--patient", "KC-04", "--format", "table"],
    )
    assert one.exit_code == 0
    assert "Patient KC-04" in one.stdout and "KC-15" not in one.stdout
