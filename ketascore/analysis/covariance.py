"""Residual covariance structures of a mixed model for repeated measures, as SAS PROC MIXED
names and parameterizes them (REPEATED / TYPE=UN, CS, CSH, AR(1), ARH(1), TOEP, TOEPH).

Each structure maps its parameters (in SAS's order and units: variances and covariances, or
variances and correlations) to the ``t x t`` covariance matrix of one subject's visits, and
gives the first and second derivatives of that matrix, which the REML/ML fit and the
Satterthwaite degrees of freedom need. A structure that is linear in its parameters (UN, CS,
TOEP) has exact constant derivatives; the others are differentiated numerically on the small
``t x t`` matrix with a five-point stencil (accurate to about 1e-10, far below what the
degrees of freedom need).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]

STRUCTURES = ("un", "cs", "csh", "ar1", "arh1", "toep", "toeph")

DESCRIPTIONS = {
    "un": "unstructured",
    "cs": "compound symmetry",
    "csh": "heterogeneous compound symmetry",
    "ar1": "first-order autoregressive",
    "arh1": "heterogeneous first-order autoregressive",
    "toep": "Toeplitz",
    "toeph": "heterogeneous Toeplitz",
}

SAS_TYPES = {
    "un": "UN",
    "cs": "CS",
    "csh": "CSH",
    "ar1": "AR(1)",
    "arh1": "ARH(1)",
    "toep": "TOEP",
    "toeph": "TOEPH",
}


@dataclass(frozen=True)
class Structure:
    """A covariance structure for ``t`` visits."""

    kind: str
    t: int

    # -- parameters -----------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        t = self.t
        if self.kind == "un":
            return [f"UN({i + 1},{j + 1})" for i in range(t) for j in range(i + 1)]
        if self.kind == "cs":
            return ["CS", "Residual"]
        if self.kind == "ar1":
            return ["AR(1)", "Residual"]
        if self.kind == "toep":
            return [f"TOEP({k + 1})" for k in range(1, t)] + ["Residual"]
        variances = [f"Var({i + 1})" for i in range(t)]
        if self.kind == "csh":
            return [*variances, "CSH"]
        if self.kind == "arh1":
            return [*variances, "ARH(1)"]
        return variances + [f"TOEPH({k})" for k in range(1, t)]  # toeph

    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def linear(self) -> bool:
        return self.kind in ("un", "cs", "toep")

    def is_variance(self) -> list[bool]:
        """Which parameters are variances (must stay positive)."""
        names = self.names
        if self.kind == "un":
            return [n.split(",")[0][3:] == n.split(",")[1][:-1] for n in names]
        return [n == "Residual" or n.startswith("Var(") for n in names]

    def is_correlation(self) -> list[bool]:
        """Which parameters are correlations (must stay within -1 and 1)."""
        if self.kind in ("un", "cs", "toep"):
            return [False] * self.size
        return [not v for v in self.is_variance()]

    # -- the matrix -----------------------------------------------------------------
    def matrix(self, theta: Sequence[float] | Array) -> Array:
        t = self.t
        th = np.asarray(theta, dtype=float)
        lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))
        if self.kind == "un":
            out = np.zeros((t, t))
            rows, cols = np.tril_indices(t)
            out[rows, cols] = th
            out[cols, rows] = th
            return out
        if self.kind == "cs":
            return np.asarray(th[0] * np.ones((t, t)) + th[1] * np.eye(t))
        if self.kind == "ar1":
            return np.asarray(th[1] * _power(th[0], lag))
        if self.kind == "toep":
            band = np.concatenate([[th[-1]], th[:-1]])
            return band[lag]
        sd = np.sqrt(np.maximum(th[:t], 0.0))
        if self.kind == "csh":
            corr = np.where(lag == 0, 1.0, th[t])
        elif self.kind == "arh1":
            corr = _power(th[t], lag)
        else:  # toeph
            corr = np.concatenate([[1.0], th[t:]])[lag]
        return np.asarray(np.outer(sd, sd) * corr)

    def derivatives(self, theta: Array) -> tuple[Array, Array | None]:
        """The first derivatives (q, t, t) and second derivatives (q, q, t, t) of the matrix;
        None for the second when the structure is linear (they are all zero)."""
        q, t = self.size, self.t
        if self.linear:
            first = np.empty((q, t, t))
            for k in range(q):
                unit = np.zeros(q)
                unit[k] = 1.0
                first[k] = self.matrix(unit) - self.matrix(np.zeros(q))
            return first, None
        # steps relative to each parameter: a variance in any units (an outcome in units of
        # 1e-4 has variances of 1e-8), a correlation no finer than 1e-6
        size = np.abs(np.asarray(theta, dtype=float))
        variance = np.array(self.is_variance()) & (size > 0)
        steps = 1e-4 * np.where(variance, size, np.maximum(size, 1e-2))
        first = np.empty((q, t, t))
        for k in range(q):
            first[k] = _stencil(lambda h, k=k: self.matrix(_bump(theta, k, h)), steps[k])
        second = np.empty((q, q, t, t))
        for k in range(q):
            for j in range(k, q):

                def dk(h: float, j: int = j, k: int = k) -> Array:
                    shifted = _bump(theta, j, h)
                    return _stencil(lambda g: self.matrix(_bump(shifted, k, g)), steps[k])

                second[k, j] = second[j, k] = _stencil(dk, steps[j])
        return first, second

    # -- starting values and limits -------------------------------------------------
    def initial(self, variance: float) -> Array:
        """SAS's starting values: every variance ``variance``, every covariance 0."""
        return np.array([variance if v else 0.0 for v in self.is_variance()])

    def start(self, moments: Array) -> Array:
        """Starting values from a positive definite moment estimate of the covariance."""
        t = self.t
        variances = np.diag(moments).copy()
        sd = np.sqrt(variances)
        corr = moments / np.outer(sd, sd)
        lag = np.abs(np.subtract.outer(np.arange(t), np.arange(t)))

        def mean_at(k: int, what: Array) -> float:
            return float(np.mean(what[lag == k])) if t > k else 0.0

        if self.kind == "un":
            rows, cols = np.tril_indices(t)
            return np.asarray(moments[rows, cols], dtype=float)
        off = float(np.mean(corr[lag > 0])) if t > 1 else 0.0
        off = float(np.clip(off, -0.5 / max(t - 1, 1), 0.9))
        v = float(np.mean(variances))
        if self.kind == "cs":
            return np.array([off * v, (1 - off) * v])
        rho1 = float(np.clip(mean_at(1, corr), -0.9, 0.9)) if t > 1 else 0.0
        if self.kind == "ar1":
            return np.array([rho1, v])
        if self.kind == "toep":
            bands = [mean_at(k, moments) for k in range(1, t)]
            return np.array([*(0.5 * b for b in bands), v])
        if self.kind == "csh":
            return np.array([*variances, off])
        if self.kind == "arh1":
            return np.array([*variances, rho1])
        return np.array([*variances, *(0.5 * mean_at(k, corr) for k in range(1, t))])

    def valid(self, theta: Array) -> bool:
        """Inside the parameter space: variances positive, correlations within (-1, 1), and
        (checked by the caller's Cholesky) a positive definite matrix."""
        th = np.asarray(theta)
        if not np.all(np.isfinite(th)):
            return False
        var = np.array(self.is_variance())
        cor = np.array(self.is_correlation())
        return bool(np.all(th[var] > 0) and np.all(np.abs(th[cor]) < 1))


def _power(rho: float, lag: NDArray[np.int_]) -> Array:
    out = np.ones(lag.shape)
    mask = lag > 0
    out[mask] = np.power(rho, lag[mask])
    return out


def _bump(theta: Array, k: int, h: float) -> Array:
    out = np.array(theta, dtype=float)
    out[k] += h
    return out


def _stencil(f: object, h: float) -> Array:
    """Five-point central difference of a matrix-valued function at 0."""
    fn = f  # typed loosely: a callable float -> Array
    assert callable(fn)
    return np.asarray((-fn(2 * h) + 8 * fn(h) - 8 * fn(-h) + fn(-2 * h)) / (12 * h))
