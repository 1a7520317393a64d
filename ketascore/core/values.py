"""Answer values: what a raw answer (text, number, null) means for an item.

A value is a number the item allows, MISSING (not answered: blank, NA, a missing code), or a
Rejection saying why it cannot be used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ketascore.core.scale import ItemRule, Num, clean_number, format_number, normalize_label

MISSING_MARKERS = frozenset({"", "na", "n/a", "."})
_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_NOT_NUMBERS = frozenset({"nan", "+nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


class _Invalid:
    def __repr__(self) -> str:
        return "INVALID"


MISSING: Any = _Missing()
INVALID: Any = _Invalid()


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    detail: str


def parse_value(rule: ItemRule, raw: Any, extra_missing: frozenset[Any] = frozenset()) -> Any:
    """An item's value as a number, MISSING, or a Rejection saying why it is unusable."""
    if raw is None:
        return MISSING
    if isinstance(raw, Rejection):  # a reader already found the value unusable
        return raw
    if isinstance(raw, bool):
        return Rejection(
            "not-a-number", f"{str(raw).lower()} is not a score (quote it if it is a label)"
        )
    if extra_missing and _in_codes(raw, extra_missing):
        return MISSING
    if isinstance(raw, str):
        text = raw.strip()
        if text.casefold() in MISSING_MARKERS:
            return MISSING
        if _NUMBER.match(text):
            number: Num = int(text) if text.lstrip("+-").isdigit() else clean_number(float(text))
            return _check_number(rule, number, raw)
        key = normalize_label(text)
        if key in rule.labels:
            return rule.labels[key]
        if key in rule.missing_labels:
            return MISSING
        if text in rule.codes:
            return rule.codes[text]
        if key in _NOT_NUMBERS:
            return Rejection("not-a-number", f"{raw!r} is not a number")
        if rule.labels:
            shown = ", ".join(repr(lbl) for lbl in rule.answer_labels[:8])
            return Rejection(
                "unknown-label", f"answer {raw!r} is not a label of this item (labels: {shown})"
            )
        return Rejection("not-a-number", f"{raw!r} is not a number")
    if isinstance(raw, int | float):
        return _check_number(rule, raw, raw)
    return Rejection("not-a-number", f"a {type(raw).__name__} is not a score")


def _in_codes(raw: Any, codes: frozenset[Any]) -> bool:
    if isinstance(raw, str):
        text = raw.strip()
        if text in codes:
            return True
        if _NUMBER.match(text):
            return clean_number(float(text)) in codes
        return False
    return raw in codes


def _check_number(rule: ItemRule, number: Num, raw: Any) -> Any:
    if isinstance(number, float) and (number != number or number in (float("inf"), -float("inf"))):
        return Rejection("not-a-number", f"{raw!r} is not a number")
    number = clean_number(number)
    if number in rule.missing_values:
        return MISSING
    if rule.is_allowed(number):
        return number
    shown = format_number(number) if abs(number) < 1e15 else f"{number:.3g}"
    if number < rule.lo or number > rule.hi:
        return Rejection("out-of-range", f"value {shown} is out of range {rule.describe_allowed()}")
    return Rejection(
        "not-allowed-value", f"value {shown} is not an allowed value ({rule.describe_allowed()})"
    )
