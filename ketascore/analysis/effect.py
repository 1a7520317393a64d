"""Standardized mean difference: Hedges' g with its confidence interval.

    d   = (mean_group - mean_reference) / s_pooled,  s_pooled with n1 + n2 - 2 df
    J   = 1 - 3 / (4 (n1 + n2 - 2) - 1)              (Hedges' small-sample correction)
    g   = J d
    V_g = J^2 ((n1 + n2) / (n1 n2) + d^2 / (2 (n1 + n2)))
    CI  = g -/+ z_(1-alpha/2) sqrt(V_g)

as in Borenstein, Hedges, Higgins & Rothstein, Introduction to Meta-Analysis (2009), ch. 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats  # type: ignore[import-untyped,unused-ignore]


@dataclass
class EffectSize:
    group: str
    reference: str
    n: int
    n_reference: int
    mean: float
    mean_reference: float
    sd_pooled: float
    d: float
    g: float
    se: float
    lower: float
    upper: float


def hedges_g(
    values: Sequence[float],
    reference: Sequence[float],
    *,
    group: str = "",
    reference_name: str = "",
    alpha: float = 0.05,
) -> EffectSize | None:
    """Hedges' g of ``values`` against ``reference`` (None when a group has fewer than two
    values or the pooled SD is 0)."""
    n1, n2 = len(values), len(reference)
    if n1 < 2 or n2 < 2:
        return None
    m1 = math.fsum(values) / n1
    m2 = math.fsum(reference) / n2
    ss = math.fsum((v - m1) ** 2 for v in values) + math.fsum((v - m2) ** 2 for v in reference)
    df = n1 + n2 - 2
    sd = math.sqrt(ss / df)
    return from_summary(m1, m2, sd, n1, n2, group=group, reference_name=reference_name, alpha=alpha)


def from_summary(
    m1: float,
    m2: float,
    sd_pooled: float,
    n1: int,
    n2: int,
    *,
    group: str = "",
    reference_name: str = "",
    alpha: float = 0.05,
) -> EffectSize | None:
    if sd_pooled <= 0 or n1 < 2 or n2 < 2:
        return None
    df = n1 + n2 - 2
    d = (m1 - m2) / sd_pooled
    j = 1 - 3 / (4 * df - 1)
    g = j * d
    var_d = (n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2))
    se = math.sqrt(j * j * var_d)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return EffectSize(
        group, reference_name, n1, n2, m1, m2, sd_pooled, d, g, se, g - z * se, g + z * se
    )
