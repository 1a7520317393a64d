"""The scoring engine: values, missing data, prorating, alternatives, duplicates."""

from __future__ import annotations

from typing import Any

import pytest

from ketascore.core.library import load_builtin
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.values import MISSING, Rejection, parse_value
from ketascore.engines.record import score_record, score_records


def record(items: dict[str, Any], **kw: Any) -> AnswerRecord:
    return AnswerRecord(
        subject=kw.pop("subject", "S1"),
        visit=kw.pop("visit", "baseline"),
        scale=kw.pop("scale", None),
        items=items,
        source=Source(file="f.yaml", line=3),
        **kw,
    )


PHQ9_ALL_1 = {str(i): 1 for i in range(1, 10)}


@pytest.fixture(scope="module")
def phq9():  # type: ignore[no-untyped-def]
    return load_builtin("phq9")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (2, 2),
        (2.0, 2),
        ("2", 2),
        (" 2 ", 2),
        ("2.0", 2),
        ("+2", 2),
        ("Several days", 1),
        ("  several   DAYS ", 1),
        ("LA6570-1", 2),
        (None, MISSING),
        ("", MISSING),
        ("NA", MISSING),
        ("n/a", MISSING),
        (".", MISSING),
    ],
)
def test_parse_value_accepts(phq9: Any, raw: Any, expected: Any) -> None:
    assert parse_value(phq9.items["1"], raw) == expected


UNSEEN = "which does not show or looks like a space, so it is neither a number nor an answer label"


@pytest.mark.parametrize(
    ("raw", "code", "detail"),
    [
        (4, "out-of-range", "value 4 is out of range 0-3"),
        (-1, "out-of-range", "value -1 is out of range 0-3"),
        ("7", "out-of-range", "value 7 is out of range 0-3"),
        (1e308, "out-of-range", "value 1e+308 is out of range 0-3"),
        (1.5, "not-allowed-value", "value 1.5 is not an allowed value (0-3)"),
        ("nan", "not-a-number", "'nan' is not a number"),
        ("inf", "not-a-number", "'inf' is not a number"),
        (float("nan"), "not-a-number", "nan is not a number"),
        (True, "not-a-number", "true is not a score (quote it if it is a label)"),
        (
            "often",
            "unknown-label",
            "answer 'often' is not a label of this item (labels: "
            "'Not at all', 'Several days', 'More than half the days', 'Nearly every day')",
        ),
        ([1], "not-a-number", "a list is not a score"),
        # a character that does not show is named: '2\u200b' prints as 2
        (
            "2\u200b",
            "not-a-number",
            "'2\\u200b' holds the character U+200B (ZERO WIDTH SPACE), " + UNSEEN,
        ),
        (
            "\x002",
            "not-a-number",
            "'\\x002' holds the character U+0000 (a control character), " + UNSEEN,
        ),
        (
            "Several\u00a0days",
            "unknown-label",
            "'Several\\xa0days' holds the character U+00A0 (NO-BREAK SPACE), " + UNSEEN,
        ),
    ],
)
def test_parse_value_rejects(phq9: Any, raw: Any, code: str, detail: str) -> None:
    rejected = parse_value(phq9.items["1"], raw)
    assert isinstance(rejected, Rejection)
    assert (rejected.code, rejected.detail) == (code, detail)


def test_extra_missing_codes_are_missing_not_scores(phq9: Any) -> None:
    assert parse_value(phq9.items["1"], 7, frozenset({7, 9})) is MISSING
    assert parse_value(phq9.items["1"], "9", frozenset({7, 9})) is MISSING
    rejected = parse_value(phq9.items["1"], 7)
    assert isinstance(rejected, Rejection)
    assert (rejected.code, rejected.detail) == ("out-of-range", "value 7 is out of range 0-3")


def test_missing_item_is_never_zero(phq9: Any) -> None:
    items = dict(PHQ9_ALL_1)
    del items["9"]
    result = score_record(phq9, record(items))
    assert result.scores["total"] == 9  # 8 answered, mean 1 x 9: not 8
    assert result.prorated["total"] is True
    assert result.items_answered["total"] == 8


def test_three_missing_items_give_no_total(phq9: Any) -> None:
    items = {str(i): 1 for i in range(1, 7)}
    result = score_record(phq9, record(items))
    assert result.scores["total"] is None
    assert [i.code for i in result.issues] == ["insufficient-items", "flag-undetermined"]
    assert result.issues[0].message == (
        "f.yaml:3: subject S1, visit baseline, phq9: score total: 6 of 9 answered, the rule "
        "needs at least 7; complete the missing items; the scale's missing-data rule allows "
        "no score"
    )


def test_invalid_value_empties_the_score_and_names_the_item(phq9: Any) -> None:
    items = dict(PHQ9_ALL_1, **{"3": 5})
    rec = record(items).model_copy(update={"item_lines": {"3": 7}})
    result = score_record(phq9, rec)
    assert result.scores["total"] is None
    assert result.bands["total"] is None
    (issue,) = result.issues
    assert issue.code == "out-of-range"
    assert (issue.file, issue.line, issue.subject, issue.visit, issue.item) == (
        "f.yaml",
        7,
        "S1",
        "baseline",
        "3",
    )
    assert issue.message == (
        "f.yaml:7: subject S1, visit baseline, phq9 item 3: value 5 is out of range 0-3; "
        "correct the value, or leave it blank if the item was not rated; scores that use "
        "this item are left empty"
    )


def test_unknown_item_is_reported_and_the_rest_scored(phq9: Any) -> None:
    result = score_record(phq9, record(dict(PHQ9_ALL_1, **{"11": 2})))
    assert result.scores["total"] == 9
    assert [i.code for i in result.issues] == ["unknown-item"]


def test_item_ids_match_case_insensitively() -> None:
    scale = load_builtin("hamd17")
    items = {str(i): 0 for i in range(1, 18) if i != 16} | {"16A": 1}
    assert score_record(scale, record(items)).scores["total"] == 1


def test_item_not_scored_is_still_checked(phq9: Any) -> None:
    result = score_record(phq9, record(dict(PHQ9_ALL_1, **{"10": 9})))
    assert result.scores["total"] == 9
    assert [i.code for i in result.issues] == ["out-of-range"]


def test_alternatives_both_rated_is_an_error() -> None:
    scale = load_builtin("hamd17")
    items = {str(i): 1 for i in range(1, 18) if i != 16} | {"16a": 1, "16b": 0}
    result = score_record(scale, record(items))
    assert result.scores == {"total": None, "hamd6": 6, "anxiety_somatization": 6}
    (issue,) = result.issues
    assert issue.code == "alternatives-both"
    assert "items 16a and 16b are alternatives of item 16; only one may be rated" in issue.message


def test_flag_and_classification() -> None:
    scale = load_builtin("hamd17")
    items = {str(i): 0 for i in range(1, 18) if i != 16} | {"16b": 0}
    items.update({"10": 2, "11": 2, "15": 3})
    result = score_record(scale, record(items))
    assert result.classifications == {"anxious_depression": True}
    items["15"] = 2
    assert score_record(scale, record(items)).classifications == {"anxious_depression": False}


def test_phq9_suicidality_flag(phq9: Any) -> None:
    assert score_record(phq9, record(PHQ9_ALL_1)).flags == ["suicidal_ideation"]
    items = dict(PHQ9_ALL_1, **{"9": 0})
    assert score_record(phq9, record(items)).flags == []


def test_nonwhole_prorated_total_uses_threshold_bands(phq9: Any) -> None:
    items = {"1": 1, "2": 1, "3": 1, "4": 0, "5": 0, "6": 0, "7": 1}
    result = score_record(phq9, record(items))
    assert result.scores["total"] == pytest.approx(4 * 9 / 7)  # 5.142...
    assert result.bands["total"] == "mild"
    items = {"1": 1, "2": 1, "3": 1, "4": 0, "5": 0, "6": 0, "7": 0, "8": 0}
    result = score_record(phq9, record(items))
    assert result.scores["total"] == 3.375
    assert result.bands["total"] == "minimal"


def _rec(subject: str, visit: str, items: dict[str, Any], line: int) -> AnswerRecord:
    return AnswerRecord(
        subject=subject,
        visit=visit,
        scale="phq9",
        items=items,
        source=Source(file="a.yaml", line=line),
    )


def test_identical_duplicates_are_merged_with_a_warning(phq9: Any) -> None:
    a = _rec("S1", "v1", PHQ9_ALL_1, 1)
    b = _rec("S1", "v1", {k: str(v) for k, v in PHQ9_ALL_1.items()}, 20)
    (result,) = score_records([a, b], lambda s: phq9)
    assert result.scores["total"] == 9
    (issue,) = result.issues
    assert issue.code == "duplicate-record" and issue.severity == "warning"
    assert "(a.yaml:1, a.yaml:20); scored once" in issue.message


def test_conflicting_duplicates_give_no_score(phq9: Any) -> None:
    a = _rec("S1", "v1", PHQ9_ALL_1, 1)
    b = _rec("S1", "v1", dict(PHQ9_ALL_1, **{"1": 2}), 20)
    (result,) = score_records([a, b], lambda s: phq9)
    assert result.scores == {"total": None}
    (issue,) = result.issues
    assert issue.code == "conflicting-records"
    assert issue.message == (
        "a.yaml:1: subject S1, visit v1, phq9: 2 records with different answers (a.yaml:1, "
        "a.yaml:20); not scored; keep one record per subject, visit and scale"
    )


def test_unknown_scale_and_no_scale(phq9: Any) -> None:
    records = [
        AnswerRecord(subject="S1", visit="v", scale="phq99", items={}, source=Source(file="x")),
        AnswerRecord(subject="S2", visit="v", items={}, source=Source(file="x")),
    ]
    results = score_records(records, lambda s: phq9 if s == "phq9" else None)
    assert [r.issues[0].code for r in results] == ["unknown-scale", "no-scale"]


def test_result_json_contract(phq9: Any) -> None:
    result = score_record(phq9, record(PHQ9_ALL_1, date="2025-01-02", day=0, extra={"arm": "k"}))
    data = result.to_dict()
    assert list(data) == [
        "subject",
        "visit",
        "date",
        "day",
        "scale",
        "scale_version",
        "scores",
        "bands",
        "items_answered",
        "prorated",
        "flags",
        "classifications",
        "not_applicable",
        "issues",
        "source",
        "arm",
    ]
    assert data["source"] == {"file": "f.yaml", "line": 3}


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("abc", "'abc'"),
        ("1e1", "'1e1'"),
        ("\u0669", "'\u0669'"),
        (float("inf"), "inf"),
        (True, "True"),
    ],
)
def test_a_stored_score_that_is_not_a_number_is_reported(
    phq9: Any, stored: Any, shown: str
) -> None:
    """A stored total is read as an answer is (the value grammar): one that cannot be read
    is an issue, not a comparison passed over in silence (which would look like
    agreement)."""
    rec = record(PHQ9_ALL_1).model_copy(update={"reported": {"total": stored}})
    (issue,) = score_record(phq9, rec).issues
    assert issue.code == "reported-score-mismatch"
    assert f"the input stores total = {shown}, which is not a number, so it cannot be " in (
        issue.message
    )


@pytest.mark.parametrize("stored", ["NA", " . ", float("nan"), " 9 ", "9.0", "+9", 9.0])
def test_a_stored_score_blank_or_equal_gives_no_issue(phq9: Any, stored: Any) -> None:
    rec = record(PHQ9_ALL_1).model_copy(update={"reported": {"total": stored}})
    assert score_record(phq9, rec).issues == []


def test_reported_score_is_compared(phq9: Any) -> None:
    rec = record(PHQ9_ALL_1).model_copy(update={"reported": {"total": "10"}})
    result = score_record(phq9, rec)
    assert result.scores["total"] == 9
    (issue,) = result.issues
    assert issue.code == "reported-score-mismatch"
    assert issue.message.startswith(
        "f.yaml:3: subject S1, visit baseline, phq9: the input stores total = 10 but the items "
        "give 9"
    )
    rec = record(PHQ9_ALL_1).model_copy(update={"reported": {"total": 9}})
    assert score_record(phq9, rec).issues == []
