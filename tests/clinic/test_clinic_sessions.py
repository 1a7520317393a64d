"""Dosing sessions: reading them, the esketamine label's monitoring rules as data (a worked
example per rule, with the label section it comes from), the clinic summary and the
`ketascore clinic sessions` command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.clinic.sessions import (
    evaluate_session,
    evaluate_sessions,
    load_rules,
    load_rules_text,
    read_sessions,
    session_from_row,
    summarise_sessions,
)
from ketascore.core.scale import ScaleError

# A session that the label's monitoring is content with: blood pressure measured before
# dosing (below 140/90), at 40 minutes and at discharge (lower than at 40 minutes), monitored
# 2 hours 10 minutes, awake (MOAA/S 5) and without dissociation (CADSS 0) at discharge.
CLEAN = {
    "subject": "P1",
    "date": "2024-03-05",
    "drug": "esketamine",
    "dose_mg": "56",
    "bp_pre": "124/78",
    "bp_40min": "142/88",
    "bp_discharge": "128/80",
    "moaas_lowest": "4",
    "moaas_discharge": "5",
    "cadss_pre": "0",
    "cadss_post": "3",
    "cadss_discharge": "0",
    "dosed_at": "09:30",
    "ready_to_leave_at": "11:40",
    "adverse_events": "",
}


@pytest.fixture
def clinic() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"


def flags(**changes: Any) -> list[str]:
    session, issues = session_from_row({**CLEAN, **changes}, "s.csv", 2)
    assert session is not None and issues == []
    return [f.rule for f in evaluate_session(session, load_rules()).flags]


def test_a_clean_session_raises_no_flag() -> None:
    assert flags() == []


@pytest.mark.parametrize(
    ("changes", "rule"),
    [
        # 2.1: elevated baseline blood pressure is above 140 systolic or 90 diastolic
        (
            {"bp_pre": "141/80", "bp_40min": "150/88", "bp_discharge": "138/80"},
            "bp-elevated-before-dosing",
        ),
        (
            {"bp_pre": "130/91", "bp_40min": "140/95", "bp_discharge": "128/88"},
            "bp-elevated-before-dosing",
        ),
        # 2.1: blood pressure is assessed before dosing and at about 40 minutes
        ({"bp_pre": ""}, "bp-not-measured-before-dosing"),
        ({"bp_40min": ""}, "bp-not-measured-at-40-minutes"),
        # 5.6 (2019): an increase of more than 40 mmHg systolic and/or 25 mmHg diastolic
        ({"bp_40min": "165/90", "bp_discharge": "130/80"}, "bp-rise-at-40-minutes"),
        ({"bp_40min": "150/104", "bp_discharge": "130/80"}, "bp-rise-at-40-minutes"),
        # 2.1: discharged while blood pressure is above the pre-dose value and not decreasing
        ({"bp_discharge": "144/86"}, "bp-not-decreasing-at-discharge"),
        # Boxed Warning, 5.1, 5.2: monitored at least 2 hours
        ({"ready_to_leave_at": "11:29"}, "monitored-under-2-hours"),
        ({"ready_to_leave_at": ""}, "monitoring-time-not-recorded"),
        # 5.1: loss of consciousness is a MOAA/S of 0; MOAA/S 5 is awake (Chernik 1990)
        ({"moaas_lowest": "0"}, "loss-of-consciousness"),
        ({"moaas_discharge": "4"}, "sedated-at-discharge"),
        # 5.2: dissociation resolved before leaving
        ({"cadss_discharge": "5"}, "dissociation-at-discharge"),
        ({"cadss_post": "12"}, "dissociation"),
        ({"adverse_events": "nausea"}, "adverse-event-recorded"),
    ],
)
def test_each_rule_on_its_worked_example(changes: dict[str, str], rule: str) -> None:
    assert flags(**changes) == [rule]


@pytest.mark.parametrize(
    ("changes"),
    [
        {"bp_pre": "140/90", "bp_40min": "150/95", "bp_discharge": "135/85"},  # not above
        {"bp_40min": "164/103", "bp_discharge": "130/80"},  # +40 and +25: not more than
        {"ready_to_leave_at": "11:30"},  # exactly 2 hours
        {"cadss_pre": "6", "cadss_post": "6"},  # above 4 but no rise from before dosing
        {"bp_discharge": "124/78"},  # back to the pre-dose value
    ],
)
def test_boundaries_that_do_not_flag(changes: dict[str, str]) -> None:
    assert flags(**changes) == []


def test_rules_apply_to_their_drug_only() -> None:
    session, _ = session_from_row({**CLEAN, "drug": "ketamine", "moaas_lowest": "0"}, "s", 2)
    assert session is not None
    result = evaluate_session(session, load_rules())
    assert (result.flags, result.rules_applied) == ([], 0)


def test_a_rule_whose_field_is_not_recorded_is_undetermined_not_guessed() -> None:
    session, _ = session_from_row({**CLEAN, "cadss_pre": "", "cadss_post": "12"}, "s", 2)
    assert session is not None
    result = evaluate_session(session, load_rules())
    assert "dissociation" in result.undetermined
    assert result.flags == []


def test_times_past_midnight_and_yaml_clock_numbers() -> None:
    session, _ = session_from_row(
        {**CLEAN, "dosed_at": "23:00", "ready_to_leave_at": "01:10"}, "s", 2
    )
    assert session is not None and session.monitoring_minutes == 130
    # YAML reads an unquoted 09:30 as 570 (base 60): minutes after midnight
    session, _ = session_from_row({**CLEAN, "dosed_at": 570, "ready_to_leave_at": 700}, "s", 2)
    assert session is not None and session.monitoring_minutes == 130


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"bp_pre": "13O/85"},
            "s.csv:2: subject P1: bp_pre: '13O/85' is not a blood pressure; write it as "
            "SYSTOLIC/DIASTOLIC (128/82); correct the value in the sessions file; the rules "
            "that need it are not evaluated",
        ),
        ({"bp_40min": "80/120"}, "bp_40min: 80/120 is not a plausible blood pressure"),
        ({"moaas_lowest": "6"}, "moaas_lowest: '6' is above the scale's maximum of 5"),
        ({"moaas_discharge": "4.5"}, "moaas_discharge: '4.5' is not a whole MOAA/S score"),
        ({"dosed_at": "9.30"}, "dosed_at: '9.30' is not a time of day; write it as HH:MM"),
        ({"cadss_post": "-1"}, "cadss_post: '-1' is not a number of 0 or more"),
        ({"dose_mg": "5_6"}, "dose_mg: '5_6' is not a number"),
        ({"dose_mg": "1e2"}, "dose_mg: '1e2' is not a number"),
        ({"cadss_pre": "\u0663"}, "cadss_pre: '\u0663' is not a number"),
        ({"bp_pre": "\u0661\u0663\u0660/80"}, "bp_pre: '\u0661\u0663\u0660/80' is not a blood"),
        ({"dosed_at": "\u0669:30"}, "dosed_at: '\u0669:30' is not a time of day"),
    ],
)
def test_unreadable_fields_are_issues_that_name_the_field(
    changes: dict[str, str], message: str
) -> None:
    session, issues = session_from_row({**CLEAN, **changes}, "s.csv", 2)
    assert session is not None
    (issue,) = issues
    assert issue.code == "session-invalid" and issue.severity == "error"
    assert message in issue.message
    field = next(iter(changes))
    result = evaluate_session(session, load_rules())
    assert all(field not in f.rule for f in result.flags)


def test_a_session_without_patient_date_or_drug_is_not_read() -> None:
    session, issues = session_from_row({**CLEAN, "drug": "", "date": "5/3/2024"}, "s.csv", 4)
    assert session is None
    assert [i.message.split(";")[0] for i in issues] == [
        "s.csv:4: subject P1: the session has no drug"
    ]
    session, issues = session_from_row({**CLEAN, "date": "5/3/2024"}, "s.csv", 4)
    assert session is None and "'5/3/2024' is not a date" in issues[0].message


def test_read_csv_yaml_and_json(tmp_path: Path) -> None:
    rows = [CLEAN, {**CLEAN, "subject": "P2", "bp_pre": "x"}]
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CLEAN))
        writer.writeheader()
        writer.writerows(rows)
    sessions, issues = read_sessions(tmp_path / "s.csv")
    assert [s.subject for s in sessions] == ["P1", "P2"]
    assert [(i.line, i.subject) for i in issues] == [(3, "P2")]
    (tmp_path / "s.yaml").write_text(
        "sessions:\n  - {subject: 007, date: 2024-03-05, drug: esketamine, dosed_at: 09:30,"
        " ready_to_leave_at: '11:00'}\n"
    )
    sessions, issues = read_sessions(tmp_path / "s.yaml")
    assert issues == []
    assert (sessions[0].subject, sessions[0].monitoring_minutes, sessions[0].line) == ("007", 90, 2)
    (tmp_path / "s.json").write_text(json.dumps([CLEAN]))
    assert len(read_sessions(tmp_path / "s.json")[0]) == 1
    (tmp_path / "bad.yaml").write_text("a: [\n")
    assert read_sessions(tmp_path / "bad.yaml")[1][0].code == "session-invalid"


def test_summary_by_drug_and_by_rule() -> None:
    rows = [CLEAN, {**CLEAN, "ready_to_leave_at": "11:00"}, {**CLEAN, "drug": "ketamine"}]
    sessions = [s for r in rows if (s := session_from_row(r, "s", 2)[0])]
    rules = load_rules()
    summary = summarise_sessions(evaluate_sessions(sessions, rules), rules)
    esk = next(r for r in summary.rows if r["drug"] == "esketamine")
    assert (esk["sessions"], esk["with_alert"], esk["monitoring_minutes_min"]) == (2, 1, 90)
    short = next(r for r in summary.rule_counts if r["rule"] == "monitored-under-2-hours")
    assert (short["flagged"], short["sessions"]) == (1, 2)


def test_rules_cite_the_label_and_check_their_fields() -> None:
    rules = load_rules()
    assert {c.key for c in rules.citations} >= {"spravato-pi", "spravato-rems"}
    assert all(r.section for r in rules.rules)
    bad = """\
id: mine
name: My protocol
version: "1"
citations: [{key: p, text: protocol}]
rules:
  - {id: a, label: A, severity: alert, when: {field: bp_pre.systolc, above: 1}, source: p}
  - {id: b, label: B, severity: alert, when: {field: dose_mg}, source: q}
"""
    with pytest.raises(ScaleError) as err:
        load_rules_text(bad, "r.yaml")
    text = "\n".join(err.value.problems)
    assert "r.yaml:6:46: rules[0].when: unknown field 'bp_pre.systolc'" in text
    assert "rules[1].source: unknown citation key 'q'" in text
    assert "rules[1].when: a field needs exactly one comparison" in text


def test_cli_sessions_on_the_example_clinic(runner: CliRunner, clinic: Path) -> None:
    result = runner.invoke(
        cli, ["clinic", "sessions", str(clinic / "sessions.csv"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    flagged = {
        (s["subject"], f["rule"])
        for s in doc["sessions"]
        for f in s["flags"]
        if f["severity"] != "note"
    }
    assert flagged == {
        ("KC-02", "bp-elevated-before-dosing"),
        ("KC-05", "bp-rise-at-40-minutes"),
        ("KC-08", "monitored-under-2-hours"),
        ("KC-10", "loss-of-consciousness"),
        ("KC-10", "sedated-at-discharge"),
        ("KC-11", "bp-not-measured-at-40-minutes"),
        ("KC-13", "dissociation-at-discharge"),
        ("KC-14", "bp-not-decreasing-at-discharge"),
    }
    assert {r["drug"] for r in doc["summary"]["by_drug"]} == {"esketamine", "ketamine"}
    table = runner.invoke(
        cli, ["clinic", "sessions", str(clinic / "sessions.csv"), "--format", "table"]
    )
    assert "Clinic summary" in table.stdout and "KC-08" in table.stdout
    one = runner.invoke(
        cli,
        [
            "clinic",
            "sessions",
            str(clinic / "sessions.csv"),
            "--patient",
            "KC-08",
            "--format",
            "csv",
        ],
    )
    rows = list(csv.DictReader(io.StringIO(one.stdout)))
    assert {r["subject"] for r in rows} == {"KC-08"}


def test_cli_sessions_with_a_bad_row_exits_1(runner: CliRunner, tmp_path: Path) -> None:
    with open(tmp_path / "s.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CLEAN))
        writer.writeheader()
        writer.writerow({**CLEAN, "bp_pre": "high"})
    result = runner.invoke(cli, ["clinic", "sessions", str(tmp_path / "s.csv"), "--format", "json"])
    assert result.exit_code == 1
    assert "bp_pre: 'high' is not a blood pressure" in result.stderr
    assert json.loads(result.stdout)["issues"][0]["code"] == "session-invalid"
