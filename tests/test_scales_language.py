"""The scale language's skip logic, half steps, combined conditions, rating checks and rules
across visits: what the compiler accepts and refuses, what the record engine gives, and that
the SQL compiler gives the same (or refuses the scale, for rules across visits)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from ketascore.core.library import load_builtin
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.core.scale import Scale, check_scale_text, load_scale_text
from ketascore.core.values import INVALID, MISSING
from ketascore.engines.record import (
    NO_REFERENCE,
    check_across_visits,
    evaluate,
    score_record,
    score_records,
)

HEAD = """
id: lang
name: Language test
version: "1"
rater: self
licence: {status: public-domain}
citations: [{key: src, text: A test}]
"""


def scale_of(body: str) -> Scale:
    return load_scale_text(HEAD + textwrap.dedent(body), "lang.yaml")


def problems_of(body: str) -> list[str]:
    report = check_scale_text(HEAD + textwrap.dedent(body), "lang.yaml")
    return [p.split(": ", 2)[-1] for p in report.problems]


def score(scale: Scale, items: dict[str, Any], **fields: Any) -> ScoreResult:
    record = AnswerRecord(subject="S", visit="v", scale=scale.id, items=items, **fields)
    return score_record(scale, record)


def codes(result: ScoreResult) -> list[str]:
    return [i.code for i in result.issues]


# ---- half steps -------------------------------------------------------------------------

STEPS = """
items:
  - {id: a, label: A, range: [0, 4], step: 0.5}
  - {id: b, label: B, range: [0, 8]}
scores:
  - {id: total, label: Total, of: [a, b], range: [0, 12]}
"""


def test_a_step_allows_the_values_in_that_step_only() -> None:
    scale = scale_of(STEPS)
    assert scale.items["a"].allowed_values() == [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]
    assert scale.items["a"].describe_allowed() == "0-4 in steps of 0.5"
    assert not scale.score("total").whole  # bands of such a score may meet
    assert score(scale, {"a": "1.5", "b": 3}).scores["total"] == 4.5
    assert score(scale, {"a": 1.5, "b": 3}).scores["total"] == 4.5
    off = score(scale, {"a": 1.25, "b": 3})
    assert off.scores["total"] is None and codes(off) == ["not-allowed-value"]
    assert "0-4 in steps of 0.5" in off.issues[0].message
    assert codes(score(scale, {"a": 4.5, "b": 3})) == ["out-of-range"]
    assert codes(score(scale, {"a": 1, "b": 2.5})) == ["not-allowed-value"]


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("{id: a, label: A, range: [0, 4], step: 0.3}", "does not divide 1 into whole parts"),
        ("{id: a, label: A, values: [0, 1], step: 0.5}", "step goes with range"),
    ],
)
def test_a_step_that_is_not_1_over_n_is_refused(item: str, message: str) -> None:
    body = f"""
    items:
      - {item}
    scores:
      - {{id: total, label: Total, of: [a]}}
    """
    assert any(message in p for p in problems_of(body))


def test_ymrs_takes_the_half_points_of_its_guidelines() -> None:
    """Published tables report YMRS totals such as 11.5 (Young 1978 guidelines: whole or
    half points between the anchors)."""
    ymrs = load_builtin("ymrs")
    answers = {"1": 1.5, "2": 1, "3": 0, "4": 0.5, "5": 3, "6": 2, "7": 0, "8": 2}
    result = score(ymrs, {**answers, "9": 0, "10": 0, "11": 1.5})
    assert result.scores["total"] == 11.5
    assert codes(score(ymrs, {**answers, "9": 0.5, "10": 0, "11": 1.5})) == ["not-allowed-value"]


# ---- skip logic -------------------------------------------------------------------------


def test_cssrs_skip_logic_follows_the_form() -> None:
    """Columbia's scoring guide and the screener: questions 3-5 are asked only after a yes to
    question 2; blank skipped questions count as no."""
    cssrs = load_builtin("cssrs")
    no_ideation = score(cssrs, {"1": "no", "2": "no"})
    assert no_ideation.scores["ideation_severity"] == 0
    assert no_ideation.items_answered["ideation_severity"] == 5
    assert no_ideation.not_applicable == ["intensity"] and not no_ideation.issues
    wish = score(cssrs, {"1": "yes", "2": "no", "3": "", "4": "NA", "5": None})
    assert wish.scores["ideation_severity"] == 1
    assert codes(wish) == ["insufficient-items"]  # the intensity of that ideation is not rated
    explicit = score(cssrs, {"1": "no", "2": "no", "3": "no", "4": 0, "5": "No"})
    assert explicit.scores["ideation_severity"] == 0 and not explicit.issues
    # question 2 no with question 3 yes: the answers contradict each other
    wrong = score(cssrs, {"1": "yes", "2": "no", "3": "yes"})
    assert wrong.scores["ideation_severity"] is None
    assert codes(wrong) == ["skip-inconsistent"]
    issue = wrong.issues[0]
    assert (issue.item, issue.severity, issue.subject, issue.visit) == ("3", "error", "S", "v")
    assert "answered 'yes'" in issue.message and "item 2 = 0" in issue.message
    assert "no_active_thoughts" in issue.message
    # question 2 blank: nothing is skipped, so the severity is not known
    blank = score(cssrs, {"1": "yes"})
    assert blank.scores["ideation_severity"] is None
    assert codes(blank) == ["insufficient-items", "flag-undetermined"]
    # question 2 yes: 3-5 are asked, a blank one is missing
    asked = score(cssrs, {"1": "yes", "2": "yes", "3": "no", "4": "no"})
    assert codes(asked) == ["insufficient-items", "flag-undetermined"]
    # a rejected value on a skipped item keeps its own issue, not a second one
    rejected = score(cssrs, {"1": "no", "2": "no", "3": "maybe"})
    assert codes(rejected) == ["unknown-label"]


CHAIN = """
items:
  - {id: s, label: Screen, range: [0, 1]}
  - {id: t, label: Follow-up, range: [0, 2]}
  - {id: u, label: Detail, range: [1, 3]}
scores:
  - {id: total, label: Total, of: [s, t], range: [0, 3]}
  - {id: detail, label: Detail, of: [u], range: [1, 3]}
skips:
  - {id: second, label: u after t, when: {item: t, equals: 0}, items: [u]}
  - {id: first, label: t after s, when: {item: s, equals: 0}, items: [t], counts_as: 0}
"""


def test_a_skip_rule_reads_an_item_another_rule_skips() -> None:
    scale = scale_of(CHAIN)
    assert [r.id for r in scale.skips] == ["first", "second"]  # the order they apply in
    result = score(scale, {"s": 0})
    assert result.scores == {"total": 0, "detail": None}
    assert codes(result) == ["insufficient-items"]  # u is not asked, so it stays blank
    contradicts = score(scale, {"s": 0, "u": 2})
    assert codes(contradicts) == ["skip-inconsistent"]
    assert contradicts.issues[0].item == "u"
    assert "(skip rule second)" in contradicts.issues[0].message  # no counts_as: no "counts as"


@pytest.mark.parametrize(
    ("skips", "message"),
    [
        ("- {id: r, label: R, when: {item: x, equals: 0}, items: [t]}", "unknown item 'x'"),
        ("- {id: r, label: R, when: {item: s, equals: 0}, items: [zz]}", "item 'zz' is unknown"),
        ("- {id: r, label: R, when: {item: s, equals: 3}, items: [t]}", "can never be = 3"),
        ("- {id: r, label: R, when: {item: s, at_least: 2}, items: [t]}", "can never be >= 2"),
        (
            "- {id: r, label: R, when: {item: s, equals: 0}, items: [t], counts_as: 5}",
            "counts_as 5 is not a value item t allows",
        ),
        ("- {id: r, label: R, when: {score: total, equals: 0}, items: [t]}", "reads items only"),
        (
            "- {id: r, label: R, when: {item: s, equals: 0}, items: [t]}\n"
            "  - {id: q, label: Q, when: {item: s, equals: 1}, items: [t]}",
            "already skipped by rule 'r'",
        ),
        (
            "- {id: r, label: R, when: {item: s, equals: 0}, items: [t]}\n"
            "  - {id: q, label: Q, when: {item: t, equals: 0}, items: [s]}",
            "skip rules depend on each other in a cycle",
        ),
        (
            "- {id: r, label: R, when: {item: s, equals: 0}, items: [t], source: nowhere}",
            "unknown citation key 'nowhere'",
        ),
        (
            "- {id: r, label: R, when: {item: st, equals: 0}, items: [t]}",
            "'st' is an alternative; a skip condition names items (s1, s2)",
        ),
        (
            "- {id: r, label: R, when: {item: s, equals: 0}, items: [st]}",
            "item 'st' is an alternative; name its items",
        ),
    ],
)
def test_scales_check_refuses_skip_rules_that_cannot_work(skips: str, message: str) -> None:
    body = (
        "items:\n"
        "  - {id: s, label: Screen, range: [0, 1]}\n"
        "  - {id: t, label: Follow-up, range: [0, 2]}\n"
        "  - {id: s1, label: S1, range: [0, 1]}\n"
        "  - {id: s2, label: S2, range: [0, 1]}\n"
        "alternatives: [{id: st, label: S1 or S2, items: [s1, s2]}]\n"
        "scores:\n"
        "  - {id: total, label: Total, of: [s, t], range: [0, 3]}\n"
        f"skips:\n  {skips}\n"
    )
    problems = problems_of(body)
    assert any(message in p for p in problems), problems


def test_hamd21_counts_a_blank_diurnal_severity_as_none_when_there_is_no_variation() -> None:
    hamd21 = load_builtin("hamd21")
    answers = {str(i): 0 for i in range(1, 16)} | {"16a": 0, "17": 0, "19": 0, "20": 0, "21": 0}
    assert score(hamd21, {**answers, "18a": 0}).scores["total"] == 0
    assert codes(score(hamd21, {**answers, "18a": 0, "18": 1})) == ["skip-inconsistent"]
    assert score(hamd21, {**answers, "18a": 1, "18": 1}).scores["total"] == 1
    assert codes(score(hamd21, {**answers, "18a": 1})) == ["insufficient-items"]


# ---- conditions ---------------------------------------------------------------------------


def test_combined_conditions_are_true_false_or_not_known() -> None:
    """``all`` is false when a part is false, else not known when a part is, else true;
    ``any`` the same with true and false swapped; a rejected value outranks a missing one."""
    from ketascore.core.scale import ConditionRule

    one = ConditionRule("a", "slot", "equals", 1)  # item a = 1
    two = ConditionRule("b", "slot", "equals", 2)  # item b = 2

    def both(kind: str, x: Any, y: Any) -> Any:
        """``kind`` of the two conditions when the first is ``x`` and the second ``y``."""
        values = {
            "a": x if x is MISSING or x is INVALID else (1 if x else 0),
            "b": y if y is MISSING or y is INVALID else (2 if y else 0),
        }
        return evaluate(ConditionRule("", kind, parts=(one, two)), lambda c: values[c.ref])

    for kind, table in {
        "all": [
            (True, True, True),
            (True, False, False),
            (False, MISSING, False),
            (True, MISSING, MISSING),
            (MISSING, INVALID, INVALID),
            (INVALID, False, False),
        ],
        "any": [
            (True, False, True),
            (False, False, False),
            (True, MISSING, True),
            (False, MISSING, MISSING),
            (MISSING, INVALID, INVALID),
            (INVALID, True, True),
        ],
    }.items():
        for x, y, expected in table:
            assert both(kind, x, y) is expected, (kind, x, y)
    assert evaluate(one, lambda c: NO_REFERENCE) is False  # no earlier rating to compare


DERIVED = """
items:
  - {id: a, label: A, range: [0, 6]}
  - {id: b, label: B, range: [0, 6]}
  - {id: c, label: C, range: [0, 6]}
scores:
  - {id: total, label: Total, of: [a, b, c], range: [0, 18]}
flags:
  - {id: apart, label: A above B by 3, when: {difference: [a, b], at_least: 3}}
classifications:
  - {id: same, label: All the same, when: {spread: [a, b, c], equals: 0}}
checks:
  - id: pair
    label: A high while B is 0
    when: {all: [{item: a, at_least: 4}, {item: b, equals: 0}]}
    source: src
"""


def test_differences_spreads_and_rating_checks() -> None:
    scale = scale_of(DERIVED)
    result = score(scale, {"a": 5, "b": 0, "c": 2})
    assert result.flags == ["apart"]
    assert result.classifications == {"same": False}
    assert codes(result) == ["rating-check"]
    issue = result.issues[0]
    assert issue.severity == "warning" and issue.item == "a,b"
    assert issue.params["check"] == "pair"
    assert "rating check pair (A high while B is 0): item a >= 4 and item b = 0" in issue.message
    same = score(scale, {"a": 2, "b": 2, "c": 2})
    assert same.classifications == {"same": True} and same.flags == [] and not same.issues
    # a missing value: the check says nothing, the flag is not known
    missing = score(scale, {"a": 5, "c": 2})
    assert codes(missing) == ["insufficient-items", "flag-undetermined"]
    assert missing.classifications == {"same": None}


def test_a_condition_on_an_item_must_be_able_to_hold() -> None:
    body = """
    items:
      - {id: a, label: A, range: [0, 3]}
    scores:
      - {id: total, label: Total, of: [a]}
    flags:
      - {id: f, label: F, when: {item: a, above: 3}}
    checks:
      - {id: k, label: K, when: {any: [{item: a, equals: 1.5}, {spread: [a, zz], equals: 0}]}}
    """
    problems = problems_of(body)
    assert any("item a can never be > 3 (its values: 0, 1, 2, 3)" in p for p in problems)
    assert any("item a can never be = 1.5" in p for p in problems)
    assert any("unknown item 'zz'" in p for p in problems)


def test_the_qids_checks_say_when_both_items_of_a_pair_were_answered() -> None:
    """The QIDS-SR16 form asks for item 6 or 7 and 8 or 9, not both (ids-qids.org)."""
    qids = load_builtin("qids-sr16")
    items = {str(i): 1 for i in range(1, 17)}
    result = score(qids, items)
    assert [i.params["check"] for i in result.issues] == ["appetite_both", "weight_both"]
    assert result.scores["total"] == 9  # the highest of each pair is still scored
    del items["7"], items["9"]
    assert not score(qids, items).issues


# ---- items answered -----------------------------------------------------------------------


def test_items_answered_counts_every_answered_item() -> None:
    """A rejected value empties the scores that use it but every other answered item is
    still counted, through sub-scores and alternatives too."""
    qids = load_builtin("qids-sr16")
    items = {str(i): 1 for i in range(1, 17)} | {"1": 9}
    result = score(qids, items)
    assert result.scores["sleep"] is None and result.scores["total"] is None
    assert result.items_answered == {
        "sleep": 3,
        "appetite": 2,
        "weight": 2,
        "appetite_weight": 4,
        "psychomotor": 2,
        "total": 15,
    }
    hamd17 = load_builtin("hamd17")
    both = {str(i): 1 for i in range(1, 16)} | {"16a": 1, "16b": 1, "17": 1}
    result = score(hamd17, both)
    assert codes(result) == ["alternatives-both"]
    assert result.items_answered["total"] == 17  # item 16 once


# ---- HAM-D17 ------------------------------------------------------------------------------


def test_hamd17_says_what_to_do_with_a_single_item_16() -> None:
    hamd17 = load_builtin("hamd17")
    items = {str(i): 1 for i in range(1, 16)} | {"16": 1, "17": 1}
    result = score(hamd17, items)
    assert codes(result) == ["unknown-item", "insufficient-items"]
    message = result.issues[0].message
    assert "hamd17 has no single item '16'" in message
    assert "16a (Weight loss, by history), 16b (Weight loss, by measurement)" in message
    assert "(16a or 16b)" in message and "--map" in message


def test_the_hamd6_of_hamd17_has_the_remission_rule_of_the_hamd6() -> None:
    inside = load_builtin("hamd17").score("hamd6")
    alone = load_builtin("hamd6").score("total")
    assert inside.remission is not None and alone.remission is not None
    assert inside.remission.at_most == alone.remission.at_most == 4


# ---- rules across visits ------------------------------------------------------------------


def cadss(subject: str, visit: str, total: int, **fields: Any) -> AnswerRecord:
    """A CADSS record with the given total (item 1 holds up to 4 points, and so on)."""
    items = {str(i): 0 for i in range(1, 24)}
    for i in range(1, 24):
        items[str(i)] = min(4, total)
        total -= items[str(i)]
    return AnswerRecord(subject=subject, visit=visit, scale="cadss", items=items, **fields)


def flags_by_visit(results: list[ScoreResult]) -> dict[tuple[str, str], list[str]]:
    return {(r.subject, r.visit): r.flags for r in results}


def test_cadss_dissociation_compares_with_the_pre_dose_rating_of_the_same_day() -> None:
    """The esketamine label's definition: total > 4 and above the pre-dose value."""
    scale = load_builtin("cadss")
    records = [
        # read out of order: study day, then time in the date, decide
        cadss("S1", "day1-90min", 7, day=1, date="2024-05-03T10:50"),
        cadss("S1", "day1-pre", 2, day=1, date="2024-05-03T09:00"),
        cadss("S1", "day1-40min", 12, day=1, date="2024-05-03T10:20"),
        cadss("S1", "day4-pre", 6, day=4, date="2024-05-06T09:00"),
        cadss("S1", "day4-40min", 6, day=4, date="2024-05-06T10:20"),
        cadss("S2", "day1-pre", 0, day=1),
        cadss("S2", "day1-40min", 4, day=1),
        cadss("S3", "pre", 0),  # no day and no date: not known
        cadss("S3", "post", 9),
    ]
    results = score_records(records, {"cadss": scale}.get)
    assert flags_by_visit(results) == {
        ("S1", "day1-90min"): ["dissociation"],  # 7 > 4 and above 2, though below 12
        ("S1", "day1-pre"): [],
        ("S1", "day1-40min"): ["dissociation"],
        ("S1", "day4-pre"): [],  # 6 > 4, but it is the pre-dose rating
        ("S1", "day4-40min"): [],  # no increase
        ("S2", "day1-pre"): [],
        ("S2", "day1-40min"): [],  # not above 4
        ("S3", "pre"): [],  # not above 4: false whatever the day
        ("S3", "post"): [],
    }
    s3 = [r for r in results if r.subject == "S3"]
    assert [codes(r) for r in s3] == [[], ["flag-undetermined"]]
    assert "change of total from the first rating of the day > 0" in s3[1].issues[0].message
    # running it again changes nothing
    before = [(r.flags, [i.message for i in r.issues]) for r in results]
    check_across_visits(results, {"cadss": scale}.get)
    assert [(r.flags, [i.message for i in r.issues]) for r in results] == before


SWINGS = """
items:
  - {id: a, label: A, range: [0, 20]}
scores:
  - {id: total, label: Total, of: [a], range: [0, 20]}
checks:
  - id: swing
    label: Ten points or more since the previous rating
    when:
      any:
        - {score: total, change_from: previous, at_least: 10}
        - {score: total, change_from: previous, at_most: -10}
    source: src
"""


def test_a_check_across_adjacent_visits() -> None:
    scale = scale_of(SWINGS)
    assert scale.across_visits == ("swing",)
    records = [
        AnswerRecord(subject="S", visit=v, scale="lang", items={"a": a}, day=d)
        for v, a, d in [("w2", 5, 14), ("base", 18, 0), ("w1", 8, 7), ("w4", None, 28)]
    ]
    results = score_records(records, {"lang": scale}.get)
    by_visit = {r.visit: [i.code for i in r.issues] for r in results}
    assert by_visit == {
        "base": [],  # no previous rating
        "w1": ["rating-check"],  # 8 - 18 = -10
        "w2": [],  # 5 - 8 = -3
        "w4": ["insufficient-items"],  # no total: the check cannot be evaluated
    }


def test_rules_across_visits_are_refused_by_the_sql_compiler() -> None:
    from ketascore.engines.sql import SqlError, compile_scale

    with pytest.raises(SqlError, match=r"\(swing\).*score this scale with ketascore score"):
        compile_scale(scale_of(SWINGS))
    with pytest.raises(SqlError, match="dissociation"):
        compile_scale(load_builtin("cadss"), "spark")


def test_change_from_is_for_flags_and_checks_only() -> None:
    body = """
    items:
      - {id: a, label: A, range: [0, 3]}
    scores:
      - {id: total, label: Total, of: [a]}
    classifications:
      - {id: c, label: C, when: {score: total, change_from: previous, above: 0}}
    """
    assert any("flags and checks only" in p for p in problems_of(body))
    body = body.replace("score: total, change_from", "item: a, change_from")
    assert any("change_from goes with score" in p for p in problems_of(body))


def test_folders_scored_in_parallel_give_the_same_flags(tmp_path: Path) -> None:
    """The rules across visits run after the merge of the files, so the number of worker
    processes changes nothing."""
    from ketascore.api import score_paths

    rows = [("S1", "pre", 0, 1), ("S1", "post", 9, 1), ("S2", "pre", 5, 2), ("S2", "post", 9, 2)]
    for k, (subject, visit, total, day) in enumerate(rows):
        record = cadss(subject, visit, total, day=day)
        items = ", ".join(f"{key}: {value}" for key, value in record.items.items())
        (tmp_path / f"r{k}.yaml").write_text(
            f"subject: {subject}\nvisit: {visit}\nscale: cadss\nday: {day}\nitems: {{{items}}}\n"
        )
    outputs = []
    for jobs in (1, 2):
        with score_paths([tmp_path], engine="record", jobs=jobs) as run:
            outputs.append([(r.subject, r.visit, r.flags) for r in run.results()])
    assert outputs[0] == outputs[1]
    assert [flags for _, _, flags in outputs[0]] == [[], ["dissociation"], [], ["dissociation"]]
