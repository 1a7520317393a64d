"""Fixed-effects design matrices as SAS builds them, and the estimable functions of a model.

A model's terms are written as SAS writes them: ``group``, ``visit``, ``group*visit``,
``baseline``, ``baseline*visit``. A class (categorical) variable gets one indicator column per
level, its reference level last; a continuous variable is one column; an interaction is the
product of its variables' columns. Columns that are linear combinations of the columns before
them are aliased (their estimate is 0, as SAS's sweep sets them), which gives the reference-cell
parameterization for hierarchical models and the right one for any other (``visit
group*visit`` without ``group``). LS-means coefficients follow SAS's LSMEANS rules (other
class effects averaged with equal weights, covariates at their mean over the observations
used); Type 3 hypotheses are those of sum-to-zero coding, which equal SAS's Type III when every
cell of an interaction has data.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from ketascore.analysis.longdata import SMALLEST

Array = NDArray[np.float64]
Term = tuple[str, ...]


class DesignError(ValueError):
    """The model cannot be built from the data (the message says why and what to do)."""


def fits_exactly(y: NDArray[np.float64], resid: NDArray[np.float64]) -> bool:
    """Whether what a least-squares fit of ``y`` leaves (``resid``) is rounding alone: no
    residual variance to estimate standard errors or tests from (a constant change, every
    value 0)."""
    if not len(y):
        return False
    sse = float(resid @ resid)
    sst = float(np.sum((y - y.mean()) ** 2))
    rounding = len(y) * (64 * np.finfo(float).eps * float(np.max(np.abs(y)))) ** 2
    return sse <= max(1e-20 * sst, rounding)


def exact_fit(outcome: str, visit: str | None = None) -> str:
    """Why a model that fits its outcome exactly gives no numbers."""
    at = f" at visit {visit}" if visit else ""
    return (
        f"the model fits {outcome} exactly (no residual variance{at}), so no standard error "
        "or test can be formed"
    )


def parse_terms(text: str | Sequence[str]) -> list[Term]:
    """``"group visit group*visit baseline"`` (or a list of such words) as terms."""
    words = text.replace(",", " ").split() if isinstance(text, str) else list(text)
    terms: list[Term] = []
    for word in words:
        names = tuple(part.strip() for part in word.split("*"))
        if not all(names):
            raise DesignError(f"term {word!r} has an empty name; write terms as a, b, a*b")
        if len(set(names)) != len(names):
            raise DesignError(f"term {word!r} names a variable twice")
        if names not in terms:
            terms.append(names)
    return terms


def term_name(term: Term) -> str:
    return "*".join(term)


@dataclass(frozen=True)
class Variable:
    name: str
    levels: tuple[str, ...] = ()  # class variables: in display order
    reference: str | None = None  # class variables: the reference level

    @property
    def is_class(self) -> bool:
        return bool(self.levels)

    @property
    def coding_order(self) -> tuple[str, ...]:
        """Levels with the reference last (its column is the one aliased)."""
        rest = tuple(x for x in self.levels if x != self.reference)
        return (*rest, self.reference) if self.reference is not None else rest


@dataclass(frozen=True)
class Column:
    term: Term  # () for the intercept
    levels: tuple[tuple[str, str], ...]  # (class variable, level) of this column

    @property
    def label(self) -> str:
        if not self.term:
            return "Intercept"
        lv = " ".join(level for _, level in self.levels)
        return f"{term_name(self.term)} {lv}".strip()


@dataclass
class Design:
    variables: dict[str, Variable]
    terms: list[Term]
    columns: list[Column]  # every column, aliased or not
    full: Array  # (n, all columns)
    kept: NDArray[np.bool_]
    means: dict[str, float]  # continuous variables: mean over the observations used
    data: dict[str, NDArray[np.generic]]  # each variable's values, rows used
    alias_map: Array = field(default_factory=lambda: np.zeros((0, 0)))  # aliased = kept @ map

    @property
    def matrix(self) -> Array:
        return np.asarray(self.full[:, self.kept])

    @property
    def kept_columns(self) -> list[Column]:
        return [c for c, k in zip(self.columns, self.kept, strict=True) if k]

    def unexpected_aliases(self) -> list[Column]:
        """Aliased columns that are not explained by a reference level: a singular design
        (a covariate constant or collinear with others, an empty cell of an interaction)."""
        out = []
        for column, kept in zip(self.columns, self.kept, strict=True):
            if kept:
                continue
            refs = {v.name: v.reference for v in self.variables.values() if v.is_class}
            if not any(refs.get(var) == level for var, level in column.levels):
                out.append(column)
        return out

    # -- estimable functions --------------------------------------------------------
    def reduce(self, coefficients: Array) -> Array | None:
        """A function of all columns as one of the kept columns; None when it is not
        estimable (it gives aliased columns weights their definition does not carry)."""
        full = np.asarray(coefficients, dtype=float)
        kept = full[..., self.kept]
        aliased = full[..., ~self.kept]
        if aliased.size:
            implied = kept @ self.alias_map
            scale = max(1.0, float(np.max(np.abs(full))))
            if np.max(np.abs(implied - aliased)) > 1e-7 * scale:
                return None
        return np.asarray(kept)

    def lsmean_coefficients(self, at: Mapping[str, str]) -> Array:
        """SAS LSMEANS coefficients for the cell ``at`` (class variable -> level): effects of
        the variables in ``at`` at those levels, other class effects averaged over their
        levels with equal weights, continuous variables at their mean."""
        out = np.zeros(len(self.columns))
        for i, column in enumerate(self.columns):
            if not column.term:
                out[i] = 1.0
                continue
            weight = 1.0
            for var in column.term:
                variable = self.variables[var]
                if not variable.is_class:
                    weight *= self.means[var]
                    continue
                level = dict(column.levels)[var]
                if var in at:
                    weight *= 1.0 if at[var] == level else 0.0
                else:
                    weight *= 1.0 / len(variable.levels)
            out[i] = weight
        return out

    def type3_hypotheses(self) -> tuple[dict[str, Array], list[str]]:
        """The Type 3 hypothesis matrix of each term (rows: functions of the kept columns);
        and the terms for which it cannot be formed (the model is not hierarchical)."""
        x = self.matrix
        coded: list[Array] = [np.ones(x.shape[0])]
        owner: list[Term] = [()]
        data = self.data
        for term in self.terms:
            blocks: list[list[Array]] = []
            for var in term:
                variable = self.variables[var]
                if variable.is_class:
                    values = data[var]
                    order = variable.coding_order
                    last = order[-1]
                    cols = []
                    for level in order[:-1]:
                        cols.append(
                            np.where(values == level, 1.0, 0.0) - np.where(values == last, 1.0, 0.0)
                        )
                    blocks.append(cols)
                else:
                    blocks.append([np.asarray(data[var], dtype=float)])
            for combo in itertools.product(*blocks):
                coded.append(np.prod(np.vstack(combo), axis=0))
                owner.append(term)
        xs = np.column_stack(coded)
        # solved on columns of unit length, so that a covariate's units (1e-8 or 1e8) do not
        # make its column look like rounding beside the intercept's
        x_size, xs_size = _column_sizes(x), _column_sizes(xs)
        unit, *_ = np.linalg.lstsq(x / x_size, xs / xs_size, rcond=None)
        fits = np.allclose((x / x_size) @ unit, xs / xs_size, atol=1e-8)
        mapping = unit / x_size[:, None] * xs_size[None, :]
        out: dict[str, Array] = {}
        skipped: list[str] = []
        if not fits or mapping.shape[0] != mapping.shape[1]:
            return out, [term_name(t) for t in self.terms]
        try:
            inverse = np.linalg.inv(mapping)
        except np.linalg.LinAlgError:
            return out, [term_name(t) for t in self.terms]
        for term in self.terms:
            rows = [i for i, o in enumerate(owner) if o == term]
            # SAS's rows: each level against the reference (last) level, not against the
            # mean of the levels; the F statistic is the same, the Satterthwaite DF are not
            basis: Array = np.ones((1, 1))
            for var in term:
                variable = self.variables[var]
                k = len(variable.levels) - 1 if variable.is_class else 1
                block = np.eye(k) + (np.ones((k, k)) if variable.is_class else 0.0)
                basis = np.asarray(np.kron(basis, block), dtype=float)
            out[term_name(term)] = np.asarray(basis @ inverse[rows, :])
        return out, skipped


def build_design(
    data: Mapping[str, Sequence[object]],
    terms: Sequence[Term],
    class_vars: Mapping[str, Variable],
    *,
    n: int | None = None,
    intercept: bool = True,
) -> Design:
    """The design of ``terms`` on ``data`` (columns by name). Variables named in
    ``class_vars`` are class variables; every other variable must be numeric."""
    if n is None:
        n = len(next(iter(data.values()))) if data else 0
    arrays: dict[str, NDArray[np.generic]] = {}
    variables: dict[str, Variable] = {}
    means: dict[str, float] = {}
    for term in terms:
        for var in term:
            if var in variables:
                continue
            if var not in data:
                raise DesignError(f"the model names {var!r}, which is not a column of the data")
            if var in class_vars:
                variables[var] = class_vars[var]
                arrays[var] = np.asarray([str(v) for v in data[var]], dtype=object)
            else:
                try:
                    values = np.asarray([float(v) for v in data[var]])  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise DesignError(
                        f"{var!r} is not numeric; name it as a factor if it is categorical"
                    ) from None
                largest = float(np.max(np.abs(values))) if n else 0.0
                if 0.0 < largest < SMALLEST:
                    raise DesignError(
                        f"every value of the covariate {var!r} is below {SMALLEST:g} in "
                        f"magnitude (at most {largest:g}), too small to analyse beside the "
                        "intercept; express the column in other units"
                    )
                variables[var] = Variable(var)
                arrays[var] = values
                means[var] = float(np.mean(values)) if n else 0.0
    columns: list[Column] = []
    blocks: list[Array] = []
    if intercept:
        columns.append(Column((), ()))
        blocks.append(np.ones(n))
    for term in terms:
        per_var: list[list[tuple[tuple[str, str] | None, Array]]] = []
        for var in term:
            variable = variables[var]
            if variable.is_class:
                values = arrays[var]
                per_var.append(
                    [((var, lv), (values == lv).astype(float)) for lv in variable.coding_order]
                )
            else:
                per_var.append([(None, np.asarray(arrays[var], dtype=float))])
        for combo in itertools.product(*per_var):
            levels = tuple(lv for lv, _ in combo if lv is not None)
            columns.append(Column(tuple(term), levels))
            blocks.append(np.prod(np.vstack([col for _, col in combo]), axis=0))
    full = np.column_stack(blocks) if blocks else np.zeros((n, 0))
    kept = _independent_columns(full)
    design = Design(variables, list(terms), columns, full, kept, means, arrays)
    if (~kept).any():
        design.alias_map = np.asarray(
            np.linalg.lstsq(full[:, kept], full[:, ~kept], rcond=None)[0], dtype=float
        )
    return design


def _column_sizes(x: Array) -> Array:
    """Each column's length (1 for a column of zeros)."""
    size = np.linalg.norm(x, axis=0)
    return np.asarray(np.where(size > 0, size, 1.0))


def _independent_columns(x: Array) -> NDArray[np.bool_]:
    """Columns not a linear combination of the columns before them (SAS's sweep order)."""
    n, p = x.shape
    kept = np.zeros(p, dtype=bool)
    if p == 0:
        return kept
    basis = np.zeros((n, 0))
    for j in range(p):
        col = x[:, j]
        norm = float(np.linalg.norm(col))
        if norm == 0.0:
            continue
        residual = col - basis @ (basis.T @ col) if basis.shape[1] else col
        # re-orthogonalize once for accuracy (classical Gram-Schmidt twice is stable)
        if basis.shape[1]:
            residual = residual - basis @ (basis.T @ residual)
        rnorm = float(np.linalg.norm(residual))
        # relative to the column's own size: a covariate in small units (1e-20) is a column
        # as any other
        if rnorm > 1e-9 * norm * max(1.0, np.sqrt(n)):
            kept[j] = True
            basis = np.column_stack([basis, residual / rnorm])
    return kept
