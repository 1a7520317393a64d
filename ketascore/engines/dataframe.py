"""Score a pandas or polars DataFrame and get one back.

Example (a notebook)::

    import pandas as pd
    from ketascore.engines.dataframe import score_frame

    df = pd.read_csv("phq9.csv")            # subject, visit, phq9_1 ... phq9_9
    scored = score_frame(df, "phq9")
    scored.scores                           # a DataFrame: subject, visit, total, ...
    scored.issues                           # a list of ketascore.Issue
    scored.issues_frame()                   # the same issues as a DataFrame

Item columns are named ``<scale>_<item>`` (``phq9_3``) or by the item id alone (``3``);
other columns are carried to the output. A null (None, NaN, pd.NA) is a missing answer.
The scores, bands, items answered, prorated flags, flags, classifications and issues are
exactly those of ``ketascore score`` on the same rows: the frame is scored by the table
engine (DuckDB, when installed and the columns have plain types) or record by record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ketascore.core.issues import ISSUE_COLUMNS, Issue, missing_id
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import Scale


@dataclass
class ScoredFrame:
    """What ``score_frame`` gives: a DataFrame of scores (of the input's library) and the
    issues as a list (``issues_frame()`` gives them as a DataFrame too)."""

    scores: Any
    issues: list[Issue]
    library: str

    def issues_frame(self) -> Any:
        rows = [i.as_dict() for i in self.issues]
        columns = list(ISSUE_COLUMNS)
        data = {c: [r[c] for r in rows] for c in columns}
        return _frame(self.library, data)


@dataclass(frozen=True)
class _Rows:
    """A frame's columns as lists, and what each column is."""

    scale: Scale
    values: dict[str, list[Any]]
    subject: str
    visit: str
    items: dict[str, str]  # column -> item
    extras: list[str]
    extra_missing: tuple[Any, ...]
    name: str


def _frame(library: str, data: dict[str, list[Any]]) -> Any:
    if library == "polars":
        import polars as pl

        return pl.DataFrame(data, strict=False)
    import pandas as pd  # type: ignore[import-untyped,unused-ignore]

    return pd.DataFrame(data)


def _is_null(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover
        return False
    return value is pd.NA or value is pd.NaT


def score_frame(
    frame: Any,
    scale: str | Scale,
    *,
    subject: str = "subject",
    visit: str = "visit",
    extra_missing: tuple[Any, ...] = (),
    name: str = "<dataframe>",
) -> ScoredFrame:
    """Score every row of a wide DataFrame (pandas or polars) against one scale.

    Rows of the same subject and visit are merged when identical and left unscored with a
    ``conflicting-records`` issue when they differ, as for files. Issues name the row as
    ``<dataframe>:N`` (N counts from 1).
    """
    from ketascore.core.library import resolve_scale

    chosen = scale if isinstance(scale, Scale) else resolve_scale(scale)
    library = "polars" if type(frame).__module__.startswith("polars") else "pandas"
    columns = [str(c) for c in frame.columns]
    prefix = chosen.id.casefold() + "_"
    items: dict[str, str] = {}  # column -> item
    extras: list[str] = []
    for col in columns:
        if col in (subject, visit):
            continue
        if col.casefold().startswith(prefix) and len(col) > len(prefix):
            items[col] = col[len(prefix) :]
        elif col.casefold() in chosen.item_lookup:
            items[col] = col
        else:
            extras.append(col)
    values = {c: _values(frame[c]) for c in columns}
    rows = _Rows(chosen, values, subject, visit, items, extras, tuple(extra_missing), name)
    absent = chosen.absent_columns_issue(name, items.values())
    results, issues = ([], [absent]) if absent is not None else _by_table(rows)
    if results is None:
        results, issues = _by_record(rows)
    out: dict[str, list[Any]] = {"subject": [], "visit": []}
    for rule in chosen.scores:
        for suffix in ("", "_band", "_items_answered", "_prorated"):
            out[f"{rule.id}{suffix}"] = []
    for cls in chosen.classifications:
        out[cls.id] = []
    out["flags"] = []
    out["issues"] = []
    carried = [c for c in extras if c not in out]
    for c in carried:
        out[c] = []
    for r in results:
        out["subject"].append(r.subject)
        out["visit"].append(r.visit)
        for rule in chosen.scores:
            out[rule.id].append(r.scores.get(rule.id))
            out[f"{rule.id}_band"].append(r.bands.get(rule.id))
            out[f"{rule.id}_items_answered"].append(r.items_answered.get(rule.id))
            out[f"{rule.id}_prorated"].append(r.prorated.get(rule.id))
        for cls in chosen.classifications:
            out[cls.id].append(r.classifications.get(cls.id))
        out["flags"].append(";".join(r.flags))
        out["issues"].append(";".join(i.code for i in r.issues))
        for c in carried:
            out[c].append(r.extra.get(c))
        issues.extend(r.issues)
    return ScoredFrame(_frame(library, out), issues, library)


def _values(column: Any) -> list[Any]:
    """A frame's column as a list, a null as None; a 32-bit or 16-bit float column's values
    as ``values.Float32`` or ``Float16`` (an id of it is exact below 2^24 or 2^11 only), as
    the Parquet reader reads them."""
    from ketascore.core.values import float_cell

    values = [None if _is_null(v) else v for v in column.to_list()]
    # (pandas' float32 and float16, polars' Float32 and Float16)
    kind = {"float32": "float", "float16": "half"}.get(str(column.dtype).casefold())
    return [float_cell(v, kind) for v in values] if kind else values


def _plain_column(values: list[Any]) -> str | None:
    """The Arrow type a column's values take as they are (numbers, texts), or None."""
    from ketascore.core.values import Float16, Float32

    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int}:
        return "int64"
    if kinds == {Float32}:
        return "float32"
    if kinds == {Float16}:
        return "float16"
    if kinds <= {int, float}:
        return "float64"
    if kinds <= {str}:
        return "string"
    return None


def _by_table(frame: _Rows) -> tuple[list[ScoreResult] | None, list[Issue]]:
    """The frame scored by the table engine, when DuckDB and pyarrow are installed and
    every column holds plain numbers or texts; else (None, [])."""
    from ketascore.engines import table

    if not table.available() or frame.scale.across_visits:  # (rules across visits: records)
        return None, []
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    arrays, names = [], []
    renamed = {
        frame.subject: "subject",
        frame.visit: "visit",
        **{c: f"{frame.scale.id}_{item}" for c, item in frame.items.items()},
    }
    for column, data in frame.values.items():
        kind = _plain_column(data)
        if kind is None:
            return None, []
        arrays.append(pa.array(data, type=pa.string() if kind == "string" else getattr(pa, kind)()))
        names.append(renamed.get(column, column))
    if len(set(n.casefold() for n in names)) != len(names):
        return None, []
    source = table.arrow_source(pa.Table.from_arrays(arrays, names=names), frame.name)
    from ketascore.engines.sql import ColumnMap

    columns = ColumnMap(missing_codes=frame.extra_missing)
    try:
        with table.score_tables([source], frame.scale, columns=columns) as run:
            return list(run.results()), list(run.issues)
    except table.TableEngineError:  # (a column without a name, say: the records it is)
        return None, []


def _by_record(frame: _Rows) -> tuple[list[ScoreResult], list[Issue]]:
    """The frame scored record by record."""
    from ketascore.engines.record import score_records
    from ketascore.readers import is_blank, text_field
    from ketascore.readers.fields import carried

    scale, values, items, name = frame.scale, frame.values, frame.items, frame.name
    issues: list[Issue] = []
    records = []
    for i, (s, v) in enumerate(
        zip(
            map(text_field, values[frame.subject]),
            map(text_field, values[frame.visit]),
            strict=True,
        )
    ):
        if s is None or v is None:
            if all(is_blank(values[c][i]) for c in values):
                continue  # a row with nothing in it is no row, as in a file
            ids = (values[frame.subject][i], values[frame.visit][i])
            issues.append(missing_id(s, v, name, i + 1, cells=ids))
            continue
        answers = {item: values[col][i] for col, item in items.items()}
        if all(a is None for a in answers.values()):
            continue  # a row with no answer is no record, as in a file
        records.append(
            AnswerRecord(
                subject=s,
                visit=v,
                scale=scale.id,
                items=answers,
                extra={c: carried(values[c][i]) for c in frame.extras},
                source=Source(file=name, line=i + 1),
            )
        )
    return score_records(records, {scale.id: scale}.get, extra_missing=frame.extra_missing), issues
