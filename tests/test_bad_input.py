"""Each kind of bad input named by the core issue: exact code, message and exit status,
and everything else still scored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

PHQ = "items: {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1}"
GOOD = f"- subject: OK\n  visit: v1\n  scale: phq9\n  {PHQ}\n"
HAMD = "{1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 1, 10: 1, 11: 1, 12: 1, 13: 1, 14: 1, 15: 1, 17: 1, "  # noqa: E501

SCORE_CASES = [
    (
        "out-of-range",
        "- subject: S1\n  visit: v1\n  scale: phq9\n  items:\n    1: 7\n",
        "out-of-range",
        "bad.yaml:5: subject S1, visit v1, phq9 item 1: value 7 is out of range 0-3; correct "
        "the value, or leave it blank if the item was not rated; scores that use this item are "
        "left empty",
    ),
    (
        "non-numeric",
        "- subject: S1\n  visit: v1\n  scale: madrs\n  items:\n    3: three\n",
        "not-a-number",
        "bad.yaml:5: subject S1, visit v1, madrs item 3: 'three' is not a number; enter the "
        "item's numeric score or one of its answer labels; scores that use this item are left "
        "empty",
    ),
    (
        "unknown label",
        "- subject: S1\n  visit: v1\n  scale: phq9\n  items:\n    2: Sometimes\n",
        "unknown-label",
        "bad.yaml:5: subject S1, visit v1, phq9 item 2: answer 'Sometimes' is not a label of "
        "this item (labels: 'Not at all', 'Several days', 'More than half the days', 'Nearly "
        "every day'); use one of the item's answer labels or its numeric score; scores that "
        "use this item are left empty",
    ),
    (
        "unknown item",
        "- subject: S1\n  visit: v1\n  scale: phq9\n  items:\n    12: 1\n"
        "    1: 1\n    2: 1\n    3: 1\n    4: 1\n    5: 1\n    6: 1\n    7: 1\n    8: 1\n"
        "    9: 1\n",
        "unknown-item",
        "bad.yaml:5: subject S1, visit v1, phq9 item 12: phq9 has no item '12' (items: 1, 2, 3, "
        "4, 5, 6, 7, 8, 9, 10); check the item id against `ketascore scales show`",
    ),
    (
        "unknown scale",
        "- subject: S1\n  visit: v1\n  scale: phq-9\n  items: {1: 1}\n",
        "unknown-scale",
        "bad.yaml:1: subject S1, visit v1: unknown scale 'phq-9' (did you mean phq9?); see "
        "`ketascore scales list`, or pass --scale with the path of your scale file",
    ),
    (
        "conflicting duplicates",
        f"- subject: S1\n  visit: v1\n  scale: phq9\n  {PHQ}\n"
        f"- subject: S1\n  visit: v1\n  scale: phq9\n  {PHQ.replace('9: 1', '9: 2')}\n",
        "conflicting-records",
        "bad.yaml:1: subject S1, visit v1, phq9: 2 records with different answers (bad.yaml:1, "
        "bad.yaml:5); not scored; keep one record per subject, visit and scale",
    ),
    (
        "16A and 16B both rated",
        f"- subject: S1\n  visit: v1\n  scale: hamd17\n  items: {HAMD}16a: 1,\n"
        "           16b: 1}\n",
        "alternatives-both",
        "bad.yaml:4: subject S1, visit v1, hamd17 item 16a: items 16a and 16b are alternatives "
        "of item 16; only one may be rated; keep the one that was rated and leave the other "
        "blank; scores that use item 16 are left empty",
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "code", "message"), SCORE_CASES, ids=[c[0] for c in SCORE_CASES]
)
def test_score_bad_input(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    text: str,
    code: str,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(text)
    Path("good.yaml").write_text(GOOD)
    result = runner.invoke(cli, ["score", "bad.yaml", "good.yaml", "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    issues = [i for r in doc["results"] for i in r["issues"] if i["severity"] == "error"]
    assert [(i["code"], i["message"]) for i in issues] == [(code, message)]
    good = [r for r in doc["results"] if r["subject"] == "OK"]
    assert good[0]["scores"] == {"total": 9}
    assert "Traceback" not in result.output


CHANGE_CASES = [
    (
        "baseline of 0",
        "subject,visit,day,madrs_1,madrs_2,madrs_3,madrs_4,madrs_5,madrs_6,madrs_7,madrs_8,"
        "madrs_9,madrs_10\nS1,baseline,0,0,0,0,0,0,0,0,0,0,0\nS1,day1,1,1,0,0,0,0,0,0,0,0,0\n",
        [
            # a total of 0 has every item at 0: the MADRS identical-ratings check holds too
            (
                "rating-check",
                "bad.csv:2: subject S1, visit baseline, madrs item 1,2,3,4,5,6,7,8,9,10: rating "
                "check identical_ratings (All ten items rated the same): spread of items 1, 2, "
                "3, 4, 5, 6, 7, 8, 9, 10 = 0; review the rating with the rater: a consistency "
                "check flags ratings worth a second look, not an error in the data",
            ),
            (
                "baseline-zero",
                "bad.csv:2: subject S1, visit baseline, madrs: baseline total is 0 at visit "
                "baseline; nothing to do: change is reported, percent change and response are "
                "left empty",
            ),
        ],
        0,
    ),
    (
        "subject without a baseline",
        "subject,visit,day,madrs_1,madrs_2,madrs_3,madrs_4,madrs_5,madrs_6,madrs_7,madrs_8,"
        "madrs_9,madrs_10\nS1,day1,1,1,0,0,0,0,0,0,0,0,0\n",
        [
            (
                "no-baseline",
                "bad.csv:2: subject S1, madrs: no record at the baseline visit 'baseline'; change "
                "not computed; add the baseline record, or choose the baseline visit with "
                "--baseline",
            )
        ],
        1,
    ),
]


@pytest.mark.parametrize(
    ("name", "text", "issues", "status"), CHANGE_CASES, ids=[c[0] for c in CHANGE_CASES]
)
def test_change_bad_input(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    text: str,
    issues: list[tuple[str, str]],
    status: int,
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.csv").write_text(text)
    result = runner.invoke(
        cli, ["change", "bad.csv", "--scale", "madrs", "--baseline", "baseline", "--format", "json"]
    )
    assert result.exit_code == status, result.output
    doc = json.loads(result.stdout)
    assert [(i["code"], i["message"]) for i in doc["issues"]] == issues
