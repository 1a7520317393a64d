"""Every built-in scale loads, its worked examples pass, and its ranges are right."""

from __future__ import annotations

import pytest

from ketascore.core.library import builtin_files, builtin_ids, load_builtin
from ketascore.core.records import AnswerRecord
from ketascore.engines.record import run_examples, score_record

CORE = ["madrs", "hamd17", "hamd6", "qids-sr16", "phq9"]


def test_core_scales_are_built_in() -> None:
    assert set(CORE) <= set(builtin_ids())


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_scale_loads_and_id_matches_file(scale_id: str) -> None:
    scale = load_builtin(scale_id)
    assert scale.id == scale_id == builtin_files()[scale_id].stem


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_worked_examples_pass(scale_id: str) -> None:
    scale = load_builtin(scale_id)
    assert len(scale.definition.examples) >= 3
    assert run_examples(scale) == []


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_has_citations_and_licence(scale_id: str) -> None:
    d = load_builtin(scale_id).definition
    assert d.citations and all(c.text for c in d.citations)
    assert d.licence.status


def _extreme(scale_id: str, pick: str) -> dict[str, object]:
    scale = load_builtin(scale_id)
    answers: dict[str, object] = {}
    for slot, members in scale.slots.items():
        if len(members) > 1 or slot in scale.alternative_of:
            continue
        rule = scale.items[slot]
        answers[slot] = rule.lo if pick == "min" else rule.hi
    for members in scale.slots.values():
        if len(members) > 1:
            rule = scale.items[members[0]]
            answers[members[0]] = rule.lo if pick == "min" else rule.hi
    return answers


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_all_minimum_and_all_maximum_give_the_computed_range(scale_id: str) -> None:
    """Scores made only of items (no reverse keying) reach their range at the extremes."""
    scale = load_builtin(scale_id)
    for pick in ("min", "max"):
        record = AnswerRecord(subject="x", visit="v", items=_extreme(scale_id, pick))
        result = score_record(scale, record)
        for rule in scale.scores:
            if any(t.reverse or (t.weight < 0) for t in rule.terms):
                continue
            if rule.id in result.not_applicable:  # C-SSRS intensity needs some ideation
                assert rule.applies_when is not None, (scale_id, rule.id, pick)
                continue
            expected = rule.lo if pick == "min" else rule.hi
            assert result.scores[rule.id] == expected, (scale_id, rule.id, pick)


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_bands_cover_the_range(scale_id: str) -> None:
    scale = load_builtin(scale_id)
    for rule in scale.scores:
        if rule.bands:
            assert rule.bands[0].min == rule.lo
            assert rule.bands[-1].max == rule.hi
            assert rule.band(rule.lo) == rule.bands[0].label
            assert rule.band(rule.hi) == rule.bands[-1].label


def test_qids_is_nine_domains_not_sixteen_items() -> None:
    scale = load_builtin("qids-sr16")
    items = {str(i): 3 for i in range(1, 17)}
    result = score_record(scale, AnswerRecord(subject="x", visit="v", items=items))
    assert result.scores["total"] == 27


def test_hamd17_item_16_code_3_is_not_a_score() -> None:
    scale = load_builtin("hamd17")
    items = {str(i): 0 for i in range(1, 18) if i != 16} | {"16a": 3, "16b": 2}
    result = score_record(scale, AnswerRecord(subject="x", visit="v", items=items))
    assert result.scores["total"] == 2
    assert result.items["16a"] is None
