"""Responder analysis: rates per group and each group against the reference.

- difference of proportions with Newcombe's hybrid score interval (Newcombe 1998, method 10)
  and the Miettinen-Nurminen score interval (Miettinen & Nurminen 1985; SAS PROC FREQ
  RISKDIFF(CL=MN));
- odds ratio with the Woolf (logit) interval;
- Fisher's exact test (two-sided: the probabilities of tables no more likely than the one
  observed, as SAS and R compute it);
- the Cochran-Mantel-Haenszel test stratified by a factor (no continuity correction, as SAS
  PROC FREQ CMH) with the Mantel-Haenszel common odds ratio.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scipy import optimize, stats  # type: ignore[import-untyped,unused-ignore]

from ketascore.core.issues import Issue


@dataclass
class Rate:
    group: str
    responders: int
    n: int

    @property
    def rate(self) -> float | None:
        return self.responders / self.n if self.n else None


@dataclass
class Comparison:
    group: str
    reference: str
    difference: float
    newcombe: tuple[float, float]
    miettinen_nurminen: tuple[float, float]
    odds_ratio: float | None
    odds_ratio_ci: tuple[float, float] | None
    fisher_p: float
    cmh: dict[str, float] | None = None


@dataclass
class ResponderResult:
    outcome: str  # "response" or "remission"
    visit: str | None
    rates: list[Rate] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    strata: str | None = None
    issues: list[Issue] = field(default_factory=list)


def wilson(x: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson's score interval for a proportion."""
    if n == 0:
        return (0.0, 1.0)
    z = float(stats.norm.ppf(1 - alpha / 2))
    p = x / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05) -> tuple[float, float]:
    """Newcombe's hybrid score interval for p1 - p2 (1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, alpha)
    l2, u2 = wilson(x2, n2, alpha)
    d = p1 - p2
    return (
        d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
        d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2),
    )


def _restricted(p1: float, n1: int, p2: float, n2: int, delta: float) -> tuple[float, float]:
    """Maximum likelihood p1, p2 under p1 - p2 = delta (Miettinen & Nurminen 1985, closed
    form of the cubic's root)."""
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta * delta + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b**3 / (27 * a**3) - b * c / (6 * a * a) + d / (2 * a)
    inner = b * b / (9 * a * a) - c / (3 * a)
    u = math.copysign(math.sqrt(max(inner, 0.0)), v) if v != 0 else math.sqrt(max(inner, 0.0))
    if u == 0:
        q1 = -b / (3 * a)
    else:
        ratio = max(-1.0, min(1.0, v / u**3))
        w = (math.pi + math.acos(ratio)) / 3
        q1 = 2 * u * math.cos(w) - b / (3 * a)
    q1 = min(max(q1, 0.0), 1.0)
    q2 = min(max(q1 - delta, 0.0), 1.0)
    return q1, q2


def miettinen_nurminen(
    x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05
) -> tuple[float, float]:
    """The Miettinen-Nurminen score interval for p1 - p2 (variance with the n/(n-1)
    correction)."""
    p1, p2 = x1 / n1, x2 / n2
    d = p1 - p2
    z = float(stats.norm.ppf(1 - alpha / 2))
    n = n1 + n2

    def score(delta: float) -> float:
        q1, q2 = _restricted(p1, n1, p2, n2, delta)
        var = (q1 * (1 - q1) / n1 + q2 * (1 - q2) / n2) * n / (n - 1)
        if var <= 0:
            return math.copysign(math.inf, d - delta) if d != delta else 0.0
        return (d - delta) / math.sqrt(var)

    eps = 1e-12
    lower = -1.0
    if d > -1 + eps and score(-1 + eps) > z:
        lower = float(optimize.brentq(lambda t: score(t) - z, -1 + eps, d, xtol=1e-12))
    upper = 1.0
    if d < 1 - eps and score(1 - eps) < -z:
        upper = float(optimize.brentq(lambda t: score(t) + z, d, 1 - eps, xtol=1e-12))
    return lower, upper


def odds_ratio(
    x1: int, n1: int, x2: int, n2: int, alpha: float = 0.05
) -> tuple[float | None, tuple[float, float] | None]:
    """The sample odds ratio with the Woolf interval (None with a zero cell)."""
    a, b, c, d = x1, n1 - x1, x2, n2 - x2
    if min(a, b, c, d) == 0:
        return None, None
    value = (a * d) / (b * c)
    se = math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = float(stats.norm.ppf(1 - alpha / 2))
    return value, (math.exp(math.log(value) - z * se), math.exp(math.log(value) + z * se))


def fisher_exact(x1: int, n1: int, x2: int, n2: int) -> float:
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    return float(stats.fisher_exact(table, alternative="two-sided").pvalue)


def cmh(strata: Sequence[tuple[int, int, int, int]]) -> dict[str, float] | None:
    """Cochran-Mantel-Haenszel test of no association in 2x2 tables (x1, n1, x2, n2) per
    stratum, without continuity correction, and the Mantel-Haenszel common odds ratio.
    Strata with fewer than two subjects carry no information and are left out."""
    num = 0.0
    var = 0.0
    or_num = 0.0
    or_den = 0.0
    used = 0
    for x1, n1, x2, n2 in strata:
        total = n1 + n2
        if total < 2 or n1 == 0 or n2 == 0:
            continue
        m1 = x1 + x2
        expected = n1 * m1 / total
        num += x1 - expected
        var += n1 * n2 * m1 * (total - m1) / (total * total * (total - 1))
        or_num += x1 * (n2 - x2) / total
        or_den += (n1 - x1) * x2 / total
        used += 1
    if var <= 0:
        return None
    statistic = num * num / var
    out = {
        "statistic": statistic,
        "df": 1.0,
        "p": float(stats.chi2.sf(statistic, 1)),
        "strata": float(used),
    }
    if or_den > 0:
        out["common_odds_ratio"] = or_num / or_den
    return out


def responder_analysis(
    outcome: str,
    visit: str | None,
    values: Mapping[str, Sequence[tuple[bool, str | None]]],
    groups: Sequence[str],
    reference: str,
    *,
    alpha: float = 0.05,
    strata_name: str | None = None,
) -> ResponderResult:
    """``values``: per group, each subject's (responded, stratum)."""
    result = ResponderResult(outcome, visit, strata=strata_name)
    for g in groups:
        flags = [v for v, _ in values.get(g, [])]
        result.rates.append(Rate(g, sum(flags), len(flags)))
    by_group = {r.group: r for r in result.rates}
    ref = by_group[reference]
    for g in groups:
        if g == reference:
            continue
        rate = by_group[g]
        if rate.n == 0 or ref.n == 0:
            continue
        x1, n1, x2, n2 = rate.responders, rate.n, ref.responders, ref.n
        oratio, oci = odds_ratio(x1, n1, x2, n2, alpha)
        comparison = Comparison(
            g,
            reference,
            x1 / n1 - x2 / n2,
            newcombe(x1, n1, x2, n2, alpha),
            miettinen_nurminen(x1, n1, x2, n2, alpha),
            oratio,
            oci,
            fisher_exact(x1, n1, x2, n2),
        )
        if strata_name is not None:
            levels = sorted({s for v in values.values() for _, s in v if s is not None})
            tables = []
            for level in levels:
                mine = [v for v, s in values.get(g, []) if s == level]
                theirs = [v for v, s in values.get(reference, []) if s == level]
                tables.append((sum(mine), len(mine), sum(theirs), len(theirs)))
            comparison.cmh = cmh(tables)
        result.comparisons.append(comparison)
    return result
