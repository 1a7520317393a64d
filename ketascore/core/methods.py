"""The score methods of the scale language: sum, mean, max and min.

Each method states, in one place, what the scale compiler checks about a score that uses it
(which missing-data rules it takes), the exact range of its values, how the record engine
computes it, and the SQL the table engines run. Adding a method means adding it to the
model's ``Method`` literal and a class here.

The record engine and the SQL compute a score the same way, step by step, on doubles: the
parts (the answered terms, after recoding, reversing and weighting) are added left to right;
a prorated sum is ``(sum * n) / k`` (prorate_mean) or ``(sum * max_all) / max_answered``
(prorate_max); a mean is ``sum / k``; rounding is applied to prorated sums and to means.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ketascore.core.values import Num, clean_number, sql_number

if TYPE_CHECKING:
    from ketascore.core.model import MissingRule, Rounding
    from ketascore.core.scale import ScoreRule


@dataclass(frozen=True)
class SqlParts:
    """A score's terms in SQL: ``parts`` the term values (NULL when not answered),
    ``answered`` the count of answered terms, ``his`` the maximum of each term."""

    parts: Sequence[str]
    answered: str
    his: Sequence[Num]


class ScoreMethod(ABC):
    """A way to combine a score's answered terms into its value."""

    name = ""

    def problems(
        self, missing: MissingRule, required: int, n: int, ranges: list[tuple[Num, Num]]
    ) -> list[str]:
        """What is wrong with using this method with ``missing`` (the missing-data rule) when
        ``required`` of ``n`` terms (of these ranges) must be answered."""
        if missing.method != "none":
            return [f"{missing.method} applies to sums only"]
        return []

    @abstractmethod
    def value_range(self, los: list[Num], his: list[Num], required: int) -> tuple[Num, Num]:
        """The least and greatest values, from the terms' ranges (``required`` answered)."""

    def whole(self, whole_terms: bool, rule: MissingRule, prorates: bool) -> bool:
        """Whether every value is a whole number (bands then meet at whole numbers)."""
        if rule.rounding.method != "none" and rule.rounding.decimals > 0:
            return False
        return whole_terms

    @abstractmethod
    def evaluate(self, rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
        """The value of ``rule`` from the parts of its answered terms (``answered``: their
        positions), and whether it was prorated."""

    @abstractmethod
    def sql(self, rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
        """The SQL of ``evaluate``: (value, prorated), for rows with enough answered terms."""

    def rounds(self, prorated: bool) -> bool:
        """Whether the missing rule's rounding applies to this value."""
        return prorated


def _sql_sum(parts: Sequence[str]) -> str:
    return "(" + " + ".join(f"coalesce({p}, 0.0)" for p in parts) + ")"


class Sum(ScoreMethod):
    name = "sum"

    def problems(
        self, missing: MissingRule, required: int, n: int, ranges: list[tuple[Num, Num]]
    ) -> list[str]:
        out = []
        if required < n and missing.method == "none":
            out.append(
                "a sum that allows missing items must prorate them (prorate_mean or "
                "prorate_max); summing only the answered items would count missing ones as 0"
            )
        if missing.method == "prorate_mean" and len(set(ranges)) > 1:
            out.append(
                "prorate_mean needs items of equal range; use prorate_max for unequal ranges"
            )
        if missing.method == "prorate_max" and any(lo != 0 or hi <= 0 for lo, hi in ranges):
            out.append("prorate_max needs items whose range starts at 0 (and a maximum above 0)")
        return out

    def value_range(self, los: list[Num], his: list[Num], required: int) -> tuple[Num, Num]:
        # prorating keeps a sum within the range of the complete sum
        return clean_number(sum(los)), clean_number(sum(his))

    def whole(self, whole_terms: bool, rule: MissingRule, prorates: bool) -> bool:
        if prorates and rule.rounding.method == "none":
            return False
        return super().whole(whole_terms, rule, prorates)

    def evaluate(self, rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
        n, k = len(rule.terms), len(parts)
        total: Num = sum(parts)
        if k == n:
            return total, False
        if rule.prorate == "prorate_mean":
            total = total * n / k
        elif rule.prorate == "prorate_max":
            all_max = sum(t.hi for t in rule.terms)
            answered_max = sum(rule.terms[j].hi for j in answered)
            total = total * all_max / answered_max
        return total, True

    def sql(self, rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
        n = len(terms.parts)
        total = _sql_sum(terms.parts)
        prorated = f"({terms.answered} < {n})"
        if rule.prorate == "prorate_mean":
            scaled = f"(({total} * {sql_number(n)}) / {terms.answered})"
        elif rule.prorate == "prorate_max":
            all_max = sql_number(sum(terms.his))
            answered_max = (
                "("
                + " + ".join(
                    f"(CASE WHEN {p} IS NULL THEN 0.0 ELSE {sql_number(h)} END)"
                    for p, h in zip(terms.parts, terms.his, strict=True)
                )
                + ")"
            )
            scaled = f"(({total} * {all_max}) / {answered_max})"
        else:
            return total, "FALSE"
        return f"(CASE WHEN {prorated} THEN {scaled} ELSE {total} END)", prorated


class Mean(ScoreMethod):
    name = "mean"

    def value_range(self, los: list[Num], his: list[Num], required: int) -> tuple[Num, Num]:
        # the lowest mean of k answered items is the mean of the k lowest minima
        low, high = sorted(los), sorted(his, reverse=True)
        sizes = range(max(required, 1), len(los) + 1)
        lo = min(sum(low[:k]) / k for k in sizes)
        hi = max(sum(high[:k]) / k for k in sizes)
        return clean_number(lo), clean_number(hi)

    def whole(self, whole_terms: bool, rule: MissingRule, prorates: bool) -> bool:
        return rule.rounding.method != "none" and whole_terms and rule.rounding.decimals == 0

    def evaluate(self, rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
        return sum(parts) / len(parts), len(parts) < len(rule.terms)

    def sql(self, rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
        n = len(terms.parts)
        return f"({_sql_sum(terms.parts)} / {terms.answered})", f"({terms.answered} < {n})"

    def rounds(self, prorated: bool) -> bool:
        return True


class Max(ScoreMethod):
    name = "max"

    def value_range(self, los: list[Num], his: list[Num], required: int) -> tuple[Num, Num]:
        return clean_number(sorted(los)[max(required, 1) - 1]), clean_number(max(his))

    def evaluate(self, rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
        return max(parts), False

    def sql(self, rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
        return _sql_extreme("greatest", terms.parts), "FALSE"


class Min(ScoreMethod):
    name = "min"

    def value_range(self, los: list[Num], his: list[Num], required: int) -> tuple[Num, Num]:
        return clean_number(min(los)), clean_number(sorted(his, reverse=True)[max(required, 1) - 1])

    def evaluate(self, rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
        return min(parts), False

    def sql(self, rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
        return _sql_extreme("least", terms.parts), "FALSE"


def _sql_extreme(function: str, parts: Sequence[str]) -> str:
    """GREATEST or LEAST of the parts that are not NULL. Dialects differ on NULL arguments
    (DuckDB, PostgreSQL and Spark skip them, BigQuery and Snowflake return NULL), so each
    argument is the part or, when it is NULL, another part: the same in every dialect."""
    if len(parts) == 1:
        return parts[0]
    args = [
        f"coalesce({', '.join([p, *(o for k, o in enumerate(parts) if k != i)])})"
        for i, p in enumerate(parts)
    ]
    return f"{function}({', '.join(args)})"


METHODS: dict[str, ScoreMethod] = {m.name: m for m in (Sum(), Mean(), Max(), Min())}


# --------------------------------------------------------------------------------------
# Rounding (a missing-data rule's): Python and SQL


def round_value(value: float, rounding: Rounding) -> Num:
    """Apply a rounding rule. half_up rounds halves away from zero (20.5 -> 21)."""
    if rounding.method == "none":
        return value
    scale = 10**rounding.decimals
    x = value * scale
    if rounding.method == "half_up":
        r = math.copysign(math.floor(abs(x) + 0.5), x)
    elif rounding.method == "half_even":
        r = round(x)
    elif rounding.method == "floor":
        r = math.floor(x)
    else:
        r = math.ceil(x)
    return clean_number(r / scale if scale != 1 else r)


def sql_round(value: str, rounding: Rounding) -> str:
    """``round_value`` in SQL (plain arithmetic: every dialect rounds the same way)."""
    if rounding.method == "none":
        return value
    scale = 10**rounding.decimals
    x = f"({value} * {sql_number(scale)})" if scale != 1 else value
    if rounding.method == "half_up":
        r = f"(sign({x}) * floor(abs({x}) + 0.5))"
    elif rounding.method == "half_even":
        low = f"floor({x})"
        r = (
            f"(CASE WHEN {x} - {low} > 0.5 THEN {low} + 1 WHEN {x} - {low} < 0.5 THEN {low} "
            f"WHEN {low} - 2 * floor({low} / 2) = 0 THEN {low} ELSE {low} + 1 END)"
        )
    elif rounding.method == "floor":
        r = f"floor({x})"
    else:
        r = f"ceil({x})"
    return f"({r} / {sql_number(scale)})" if scale != 1 else r


def score_value(rule: ScoreRule, parts: list[Num], answered: list[int]) -> tuple[Num, bool]:
    """A score's value (rounded where its rule says) and whether it was prorated."""
    method = METHODS[rule.method]
    value, prorated = method.evaluate(rule, parts, answered)
    if rule.rounding.method != "none" and method.rounds(prorated):
        value = round_value(value, rule.rounding)
    return clean_number(value), prorated


def sql_score_value(rule: ScoreRule, terms: SqlParts) -> tuple[str, str]:
    """``score_value`` in SQL: (value, prorated)."""
    method = METHODS[rule.method]
    value, prorated = method.sql(rule, terms)
    if rule.rounding.method != "none":
        if isinstance(method, Mean):
            value = sql_round(value, rule.rounding)
        elif prorated != "FALSE":
            value = (
                f"(CASE WHEN {prorated} THEN {sql_round(value, rule.rounding)} ELSE {value} END)"
            )
    return value, prorated
