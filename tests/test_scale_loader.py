"""The scale loader: safe YAML, schema errors with file:line:column, and whole-scale checks."""

from __future__ import annotations

import textwrap
import time

import pytest

from ketascore.core.methods import METHODS, round_value
from ketascore.core.model import Rounding
from ketascore.core.scale import ScaleError, check_scale_text, load_scale_text

BASE = """\
id: demo
name: Demo scale
version: "1"
rater: self
licence: {status: unknown}
citations:
  - {key: src, text: A source.}
items:
  - {id: 1, label: One, range: [0, 3]}
  - {id: 2, label: Two, range: [0, 3]}
  - {id: 3, label: Three, range: [0, 3]}
scores:
  - id: total
    label: Total
    of: [1, 2, 3]
    bands:
      - {label: low, min: 0, max: 4}
      - {label: high, min: 5, max: 9}
"""


def problems(text: str) -> list[str]:
    return check_scale_text(textwrap.dedent(text), "demo.yaml").problems


def test_base_scale_is_valid() -> None:
    scale = load_scale_text(BASE, "demo.yaml")
    assert scale.score("total").lo == 0 and scale.score("total").hi == 9


def test_unknown_key_is_reported_with_line_and_column() -> None:
    text = BASE.replace(
        "  - {id: 2, label: Two, range: [0, 3]}",
        "  - {id: 2, label: Two, range: [0, 3], colour: red}",
    )
    assert problems(text) == ["demo.yaml:10:48: items[1].colour: unknown key 'colour'"]


def test_wrong_type_points_at_the_value() -> None:
    text = BASE.replace("range: [0, 3]}\n  - {id: 3", "range: [0, x]}\n  - {id: 3")
    assert problems(text) == ["demo.yaml:10:36: items[1].range[1]: expected a number, got 'x'"]


def test_missing_required_key() -> None:
    text = BASE.replace("rater: self\n", "")
    assert problems(text) == ["demo.yaml:1:1: rater: required key is missing"]


def test_overlapping_bands() -> None:
    text = BASE.replace("{label: high, min: 5, max: 9}", "{label: high, min: 4, max: 9}")
    assert problems(text) == [
        "demo.yaml:18:28: scores[0].bands[1].min: bands 'low' (0-4) and 'high' (4-9) overlap"
    ]


def test_gap_between_bands() -> None:
    text = BASE.replace("{label: high, min: 5, max: 9}", "{label: high, min: 6, max: 9}")
    assert problems(text) == [
        "demo.yaml:18:28: scores[0].bands[1].min: gap between bands 'low' (ends at 4) and "
        "'high' (starts at 6)"
    ]


def test_bands_missing_the_range() -> None:
    text = BASE.replace("{label: high, min: 5, max: 9}", "{label: high, min: 5, max: 8}")
    assert problems(text) == [
        "demo.yaml:18:36: scores[0].bands[1].max: the last band ends at 8 but the score's "
        "maximum is 9"
    ]
    text = BASE.replace("{label: low, min: 0, max: 4}", "{label: low, min: 1, max: 4}")
    assert problems(text) == [
        "demo.yaml:17:27: scores[0].bands[0].min: the first band starts at 1 but the score's "
        "minimum is 0"
    ]


def test_score_refers_to_unknown_item() -> None:
    text = BASE.replace("of: [1, 2, 3]", "of: [1, 2, 4]")
    assert problems(text) == ["demo.yaml:15:16: scores[0].of[2]: unknown item or score '4'"]


def test_declared_range_differs_from_computed() -> None:
    text = BASE.replace("    of: [1, 2, 3]\n", "    of: [1, 2, 3]\n    range: [0, 10]\n")
    assert problems(text) == [
        "demo.yaml:16:12: scores[0].range: declared range 0-10 differs from the range computed "
        "from the items, 0-9"
    ]


def test_sum_allowing_missing_items_must_prorate() -> None:
    text = BASE.replace(
        "    of: [1, 2, 3]\n", "    of: [1, 2, 3]\n    missing: {min_answered: 2}\n"
    )
    assert problems(text) == [
        "demo.yaml:16:14: scores[0].missing.method: a sum that allows missing items must "
        "prorate them (prorate_mean or prorate_max); summing only the answered items would "
        "count missing ones as 0"
    ]


def test_prorate_mean_needs_equal_ranges() -> None:
    text = BASE.replace(
        "{id: 3, label: Three, range: [0, 3]}", "{id: 3, label: Three, range: [0, 8]}"
    )
    text = text.replace("max: 9}", "max: 14}")
    text = text.replace(
        "    of: [1, 2, 3]\n",
        "    of: [1, 2, 3]\n    missing: {min_answered: 2, method: prorate_mean}\n",
    )
    assert problems(text) == [
        "demo.yaml:16:40: scores[0].missing.method: prorate_mean needs items of equal range; use "
        "prorate_max for unequal ranges"
    ]


def test_missing_code_inside_the_range_is_refused() -> None:
    text = BASE.replace(
        "{id: 1, label: One, range: [0, 3]}",
        "{id: 1, label: One, range: [0, 3], missing_codes: [{value: 3}]}",
    )
    assert problems(text) == [
        "demo.yaml:9:64: items[0].missing_codes[0].value: missing code 3 is also an allowed value "
        "of item 1; a code that means 'no answer' must lie outside the range"
    ]


def test_cycle_between_scores() -> None:
    text = BASE + "  - {id: a, label: A, of: [b]}\n  - {id: b, label: B, of: [a]}\n"
    assert problems(text) == [
        "demo.yaml:19:27: scores[1].of: scores refer to each other in a cycle: a -> b -> a"
    ]


def test_recode_must_map_every_value() -> None:
    text = BASE.replace("of: [1, 2, 3]", "of: [{item: 1, recode: {0: 0, 1: 1}}, 2, 3]")
    found = problems(text)
    assert found[0] == (
        "demo.yaml:15:28: scores[0].of[0].recode: recode does not map the value(s) 2, 3"
    )


def test_every_problem_is_reported_at_once() -> None:
    text = (
        BASE.replace("of: [1, 2, 3]", "of: [1, 2, 9]")
        .replace("{label: high, min: 5, max: 9}", "{label: high, min: 7, max: 9}")
        .replace("{id: 2, label: Two, range: [0, 3]}", "{id: 2, label: Two, range: [3, 0]}")
    )
    assert len(problems(text)) >= 2


def test_invalid_yaml_is_reported_with_position() -> None:
    assert problems("id: [demo\nname: x\n") == [
        "demo.yaml:2:5: while parsing a flow sequence: did not find expected ',' or ']'"
    ]


def test_python_tags_are_refused() -> None:
    found = problems("id: !!python/object/apply:os.system ['echo hacked']\n")
    assert found == [
        "demo.yaml:1:5: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"
    ]


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - start < 5
    assert len(found) == 1 and "expands to more than" in found[0]


def test_deep_nesting_is_refused() -> None:
    found = problems("[" * 50_000 + "]" * 50_000)
    assert found == ["demo.yaml: document is nested more than 100 levels deep"]


def test_scale_error_lists_problems() -> None:
    with pytest.raises(ScaleError) as err:
        load_scale_text(BASE.replace("rater: self", "rater: robot"), "demo.yaml")
    assert "demo.yaml:4:8: rater: Input should be" in str(err.value)


@pytest.mark.parametrize(
    ("method", "value", "expected"),
    [
        ("half_up", 20.5, 21),
        ("half_up", 20.49, 20),
        ("half_up", -2.5, -3),
        ("half_even", 20.5, 20),
        ("half_even", 21.5, 22),
        ("floor", 20.9, 20),
        ("ceil", 20.1, 21),
        ("none", 20.5, 20.5),
    ],
)
def test_rounding(method: str, value: float, expected: float) -> None:
    assert round_value(value, Rounding(method=method)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "required", "expected"),
    [
        ("sum", 3, (1, 14)),
        ("mean", 3, (1 / 3, 14 / 3)),
        ("mean", 1, (0, 8)),  # one answered item can be the lowest or the highest alone
        ("max", 3, (1, 8)),
        ("max", 1, (0, 8)),
        ("min", 1, (0, 8)),
        ("min", 3, (0, 3)),
    ],
)
def test_score_range_accounts_for_missing_items(
    method: str, required: int, expected: tuple[float, float]
) -> None:
    lo, hi = METHODS[method].value_range([0, 1, 0], [3, 3, 8], required)
    assert (lo, hi) == pytest.approx(expected)
