"""A long table for the analysis step: one row per subject and visit, columns by name.

It is read from a CSV/TSV file, a Parquet file or a SAS transport file (an ADaM BDS data set
such as ADQS: USUBJID, AVISIT, PARAMCD, AVAL, BASE, CHG, TRT01P ...), or made from
ketascore's own change-from-baseline report. Cells are kept as text or numbers; an empty cell
(and NA, N/A, ., NaN) is missing (None).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ketascore.analysis.change import ChangeReport

MISSING_TEXT = {"", "na", "n/a", ".", "nan", "null", "none"}


class TableError(ValueError):
    """The table cannot be read or lacks a column (the message says what to do)."""


@dataclass
class LongTable:
    columns: dict[str, list[Any]]
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def column(self, name: str) -> list[Any]:
        """The column ``name``; as SAS does, a name differing only in case is the same
        column when no column has the exact name."""
        if name not in self.columns and (found := self.find(name)) is not None:
            return self.columns[found]
        if name not in self.columns:
            raise TableError(
                f"{self.source or 'the table'} has no column {name!r} "
                f"(columns: {', '.join(self.columns)})"
            )
        return self.columns[name]

    def where(self, keep: Sequence[bool]) -> LongTable:
        return LongTable(
            {
                k: [v for v, ok in zip(col, keep, strict=True) if ok]
                for k, col in self.columns.items()
            },
            self.source,
            list(self.notes),
        )

    def find(self, *candidates: str) -> str | None:
        """The first of ``candidates`` that is a column (case-insensitive), as spelled here."""
        lower = {c.casefold(): c for c in self.columns}
        for name in candidates:
            if name.casefold() in lower:
                return lower[name.casefold()]
        return None


def cell(value: Any) -> Any:
    """A cell as the analysis reads it: None for missing, else text or a number."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value.strip()
        return None if text.casefold() in MISSING_TEXT else text
    return value


def number(value: Any) -> float | None:
    """A cell as a number (None when missing); raises ValueError when it is not one."""
    value = cell(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite number")
    return result


# The largest magnitude of an outcome or covariate the analyses take. Their sums of squares
# and their tolerances (aliasing, estimability) are computed in double precision: from about
# 1e15 a covariate was taken for a combination of the others, and from 1e154 the squares
# overflow. Ratings and their covariates are nowhere near; a column in such units is rescaled.
LARGEST = 1e15
# The smallest magnitude of a covariate's largest value: the tests and estimates are the same
# whatever a column's units from here up to LARGEST (tests/test_model_stats.py), and below it
# a covariate's column is rounding beside the intercept's.
SMALLEST = 1e-15


def number_at(table: LongTable, name: str, i: int, *, outcome: bool = False) -> float | None:
    """Row ``i`` of column ``name`` as a number of the analysis (None when missing); raises
    TableError naming the column and the row (the first row after the header is row 1) when
    it is not a number, or is too large to analyse (``LARGEST``)."""
    value = table.column(name)[i]
    try:
        result = number(value)
    except (TypeError, ValueError):
        if outcome:
            raise TableError(
                f"the outcome {name!r} is not numeric at row {i + 1} ({value!r})"
            ) from None
        raise TableError(
            f"{name!r} is not numeric at row {i + 1} ({value!r}); name it with --factor if it "
            "is categorical"
        ) from None
    if result is not None and abs(result) >= LARGEST:
        raise TableError(
            f"{'the outcome ' if outcome else ''}{name!r} at row {i + 1} is {value!r}, too large "
            f"to analyse (the analysis takes numbers below {LARGEST:g} in magnitude); express "
            "the column in other units"
        )
    return result


def read_table(path: str | Path) -> LongTable:
    """A CSV/TSV, Parquet or SAS transport (.xpt) file as a long table."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return _read_parquet(path)
        if suffix == ".xpt":
            return _read_xpt(path)
        return _read_delimited(path)
    except OSError as exc:
        raise TableError(f"{path}: cannot read the file: {exc.strerror or exc}") from None


def _read_delimited(path: Path) -> LongTable:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        text = fh.read()
    if not text.strip():
        raise TableError(f"{path}: the file is empty")
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    if delimiter == "," and text.split("\n", 1)[0].count("\t") > text.split("\n", 1)[0].count(","):
        delimiter = "\t"
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise TableError(f"{path}: not valid CSV: {exc}") from None
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise TableError(f"{path}: column name(s) {', '.join(repeated)} appear more than once")
    columns: dict[str, list[Any]] = {h: [] for h in header}
    for number_, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise TableError(
                f"{path}:{number_}: row has {len(row)} cells but the header has {len(header)}"
            )
        for h, value in zip(header, row, strict=True):
            columns[h].append(_typed(value))
    return LongTable(columns, str(path))


def _typed(text: str) -> Any:
    value = cell(text)
    if value is None:
        return None
    try:
        number_ = float(value)
    except ValueError:
        return value
    return number_ if math.isfinite(number_) else value


def _read_parquet(path: Path) -> LongTable:
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise TableError(
            f"{path}: reading Parquet needs pyarrow: pip install 'ketascore[duckdb]'"
        ) from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise TableError(f"{path}: not a readable Parquet file: {exc}") from None
    columns = {
        name: [cell(v) for v in table.column(name).to_pylist()] for name in table.column_names
    }
    return LongTable(columns, str(path))


def _read_xpt(path: Path) -> LongTable:
    from ketascore.readers.xpt import XptError, read_xport

    try:
        data = read_xport(path.read_bytes())
    except XptError as exc:
        raise TableError(f"{path}: {exc}") from None
    if data.cut:  # (an analysis of part of the data is no analysis of the data)
        raise TableError(f"{path}: {data.cut_message()}; export the file again")
    names = [v.name for v in data.variables]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for row in data.rows:
        for name, value in zip(names, row, strict=True):
            columns[name].append(cell(value))
    return LongTable(columns, str(path))


def from_change_report(report: ChangeReport) -> LongTable:
    """ketascore's change-from-baseline rows as a long table: subject, visit, group, value,
    baseline, change, percent_change, response, remission (post-baseline visits only)."""
    names = (
        "subject",
        "visit",
        "group",
        "baseline",
        "value",
        "change",
        "percent_change",
        "response",
        "remission",
        "imputed",
    )
    columns: dict[str, list[Any]] = {n: [] for n in names}
    for row in report.rows:
        if row.before_baseline:  # (a screening visit: not a repeated measure of change)
            continue
        columns["subject"].append(row.subject)
        columns["visit"].append(row.visit)
        columns["group"].append(row.group)
        columns["baseline"].append(_float(row.baseline))
        columns["value"].append(_float(row.value))
        columns["change"].append(_float(row.change))
        columns["percent_change"].append(row.percent_change)
        columns["response"].append(row.response)
        columns["remission"].append(row.remission)
        columns["imputed"].append(row.imputed)
    return LongTable(columns, f"{report.scale} {report.score} change from baseline")


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def natural_levels(values: Iterable[Any]) -> list[str]:
    """The distinct non-missing values as text, in natural order (S2 before S10; see
    ``natural_order``: the model's reference level, the first, is the same in every run)."""
    from ketascore.analysis.change import natural_order

    seen = {_level(v) for v in values if v is not None}
    return sorted(seen, key=natural_order)


def _level(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def level_text(value: Any) -> str | None:
    """A class variable's cell as its level name (1.0 and 1 are level '1')."""
    return None if value is None else _level(value)
