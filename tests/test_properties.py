"""Properties of the engine, checked on random answers and random scales (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascore.core.library import builtin_ids, load_builtin
from ketascore.core.records import AnswerRecord
from ketascore.core.scale import Scale, check_scale_text
from ketascore.core.values import MISSING
from ketascore.engines.record import evaluate, score_record

from conftest import budget

SETTINGS = settings(max_examples=budget(60), suppress_health_check=[HealthCheck.too_slow])


def answer_strategy(scale: Scale) -> st.SearchStrategy[dict[str, Any]]:
    """Answers that are valid values, labels, missing codes, blanks or junk."""
    per_item: dict[str, st.SearchStrategy[Any]] = {}
    for item_id, rule in scale.items.items():
        choices: list[st.SearchStrategy[Any]] = [
            st.sampled_from(rule.allowed_values()),
            st.none(),
            st.sampled_from(["", "NA", "junk", "-1", "2.5", "1e9"]),
            st.integers(-3, 12),
        ]
        if rule.answer_labels:
            choices.append(st.sampled_from(list(rule.answer_labels)))
        if rule.missing_values:
            choices.append(st.sampled_from(sorted(rule.missing_values)))
        per_item[item_id] = st.one_of(*choices)
    return st.fixed_dictionaries({}, optional=per_item)


def valid_answers(scale: Scale) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {
            item_id: st.sampled_from(rule.allowed_values())
            for item_id, rule in scale.items.items()
            if item_id not in scale.alternative_of
        }
    )


SCALES = builtin_ids()


@SETTINGS
@given(data=st.data(), scale_id=st.sampled_from(SCALES))
def test_scores_stay_within_their_range(data: st.DataObject, scale_id: str) -> None:
    scale = load_builtin(scale_id)
    answers = data.draw(answer_strategy(scale))
    result = score_record(scale, AnswerRecord(subject="s", visit="v", items=answers))
    for rule in scale.scores:
        value = result.scores[rule.id]
        if value is not None:
            assert rule.lo <= value <= rule.hi, (rule.id, value, answers)
            if rule.bands:
                assert result.bands[rule.id] is not None
        assert result.items_answered[rule.id] >= 0


@SETTINGS
@given(data=st.data(), scale_id=st.sampled_from(SCALES))
def test_item_order_does_not_matter(data: st.DataObject, scale_id: str) -> None:
    scale = load_builtin(scale_id)
    answers = data.draw(answer_strategy(scale))
    order = data.draw(st.permutations(list(answers)))
    shuffled = {k: answers[k] for k in order}
    a = score_record(scale, AnswerRecord(subject="s", visit="v", items=answers))
    b = score_record(scale, AnswerRecord(subject="s", visit="v", items=shuffled))
    assert (a.scores, a.bands, a.flags, a.prorated, a.items_answered) == (
        b.scores,
        b.bands,
        b.flags,
        b.prorated,
        b.items_answered,
    )
    assert sorted(i.code for i in a.issues) == sorted(i.code for i in b.issues)


@SETTINGS
@given(data=st.data(), scale_id=st.sampled_from(SCALES))
def test_every_record_is_scored_or_carries_an_issue(data: st.DataObject, scale_id: str) -> None:
    scale = load_builtin(scale_id)
    answers = data.draw(answer_strategy(scale))
    result = score_record(scale, AnswerRecord(subject="s", visit="v", items=answers))
    for rule in scale.scores:
        if result.scores[rule.id] is None and rule.id not in result.not_applicable:
            assert result.issues, (rule.id, answers)


@SETTINGS
@given(data=st.data(), scale_id=st.sampled_from(SCALES))
def test_complete_valid_answers_are_scored_without_issues(
    data: st.DataObject, scale_id: str
) -> None:
    scale = load_builtin(scale_id)
    answers = data.draw(valid_answers(scale))
    for members in scale.slots.values():
        if len(members) > 1:
            answers[data.draw(st.sampled_from(members))] = scale.items[members[0]].lo
    # as the form records them: an item it does not ask holds what a skipped item counts as
    # (the built-in skip rules test single items)
    for skip in scale.skips:
        assert all(leaf.kind == "slot" for leaf in skip.condition.leaves())
        if evaluate(skip.condition, lambda leaf: answers.get(leaf.ref, MISSING)) is True:
            for item_id in skip.items:
                answers.pop(item_id, None)
                if skip.counts_as is not None:
                    answers[item_id] = skip.counts_as
    result = score_record(scale, AnswerRecord(subject="s", visit="v", items=answers))
    assert [i for i in result.issues if i.severity == "error"] == [], answers


# ---- random scales -------------------------------------------------------------------


@st.composite
def random_scale(draw: st.DrawFn) -> tuple[str, dict[str, tuple[int, int]]]:
    n = draw(st.integers(2, 8))
    ranges = {}
    lines = [
        "id: rnd",
        "name: Random",
        'version: "1"',
        "rater: self",
        "licence: {status: unknown}",
        "citations: [{key: k, text: t}]",
        "items:",
    ]
    equal = draw(st.booleans())
    shared = (draw(st.integers(0, 2)), draw(st.integers(3, 6)))
    for i in range(1, n + 1):
        lo, hi = shared if equal else (draw(st.integers(0, 2)), draw(st.integers(3, 8)))
        ranges[str(i)] = (lo, hi)
        lines.append(f"  - {{id: {i}, label: I{i}, range: [{lo}, {hi}]}}")
    method = draw(st.sampled_from(["sum", "mean", "max", "min"]))
    prorate = draw(st.sampled_from(["none", "prorate_mean", "prorate_max"]))
    if method != "sum" or (prorate == "prorate_mean" and not equal):
        prorate = "none"
    if prorate == "prorate_max" and any(lo != 0 for lo, _ in ranges.values()):
        prorate = "none"
    required = n if prorate == "none" and method == "sum" else draw(st.integers(1, n))
    rounding = draw(st.sampled_from(["none", "half_up", "half_even", "floor", "ceil"]))
    of = ", ".join(
        f"{{item: {i}, reverse: true}}" if draw(st.booleans()) else str(i) for i in range(1, n + 1)
    )
    lines += [
        "scores:",
        "  - id: total",
        "    label: Total",
        f"    method: {method}",
        f"    of: [{of}]",
        f"    missing: {{min_answered: {required}, method: {prorate}, "
        f"rounding: {{method: {rounding}}}}}",
    ]
    return "\n".join(lines) + "\n", ranges


@settings(max_examples=budget(80))
@given(spec=random_scale(), data=st.data())
def test_random_scales_keep_scores_in_range(
    spec: tuple[str, dict[str, tuple[int, int]]], data: st.DataObject
) -> None:
    text, ranges = spec
    report = check_scale_text(text, "rnd.yaml")
    assert report.scale is not None, report.problems
    scale = report.scale
    answers = {
        k: data.draw(st.one_of(st.none(), st.integers(lo, hi))) for k, (lo, hi) in ranges.items()
    }
    result = score_record(scale, AnswerRecord(subject="s", visit="v", items=answers))
    rule = scale.score("total")
    value = result.scores["total"]
    answered = sum(v is not None for v in answers.values())
    if answered >= rule.required:
        assert value is not None
        assert rule.lo <= value <= rule.hi, (text, answers, value)
    else:
        assert value is None


@given(st.text())
def test_a_character_that_does_not_show_is_found_in_any_text(text: str) -> None:
    """``unseen_character`` and ``without_unseen`` (messages, visit and subject spellings)
    look at each character, except in printable ASCII text, which holds none: the quick
    answer is the one a character at a time gives."""
    from ketascore.core.values import _unseen, unseen_character, without_unseen

    first = next((c for c in text if _unseen(c)), None)
    assert (unseen_character(text) is None) == (first is None)
    assert without_unseen(text) == "".join(c for c in text if not _unseen(c))
