"""Score a pandas or polars DataFrame in memory, in columns, and get one back.

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
exactly those of ``ketascore score`` on the same rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ketascore.core.issues import ISSUE_COLUMNS, Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
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
    from ketascore.engines.columnar import RawColumn, Rows, score_table
    from ketascore.engines.record import score_records
    from ketascore.readers import text_field

    chosen = scale if isinstance(scale, Scale) else resolve_scale(scale)
    library = "polars" if type(frame).__module__.startswith("polars") else "pandas"
    columns = [str(c) for c in frame.columns]

    def values(col: str) -> list[Any]:
        return [None if _is_null(v) else v for v in frame[col].to_list()]

    prefix = chosen.id.casefold() + "_"
    item_columns: dict[str, str] = {}
    extras: list[str] = []
    for col in columns:
        if col in (subject, visit):
            continue
        if col.casefold().startswith(prefix) and len(col) > len(prefix):
            item_columns[col] = col[len(prefix) :]
        elif col.casefold() in chosen.item_lookup:
            item_columns[col] = col
        else:
            extras.append(col)
    subjects = [text_field(v) for v in values(subject)]
    visits = [text_field(v) for v in values(visit)]
    issues: list[Issue] = []
    keep = []
    for i, (s, v) in enumerate(zip(subjects, visits, strict=True)):
        if s is None or v is None:
            issues.append(
                make_issue(
                    "missing-field",
                    "row",
                    field="subject" if s is None else "visit",
                    file=name,
                    line=i + 1,
                    subject=s,
                    visit=v,
                )
            )
        else:
            keep.append(i)
    raw = {item: values(col) for col, item in item_columns.items()}
    extra_values = {col: values(col) for col in extras}
    rows = Rows(
        [subjects[i] for i in keep],  # type: ignore[misc]
        [visits[i] for i in keep],  # type: ignore[misc]
        extras=[{c: extra_values[c][i] for c in extras} for i in keep],
        sources=[Source(file=name, line=i + 1) for i in keep],
    )
    cols = {item: RawColumn.from_values(raw[item][i] for i in keep) for item in raw}

    def record_at(j: int) -> AnswerRecord:
        i = keep[j]
        return AnswerRecord(
            subject=rows.subject(j),
            visit=rows.visit(j),
            scale=chosen.id,
            items={item: raw[item][i] for item in raw},
            extra=rows.extra(j),
            source=rows.source(j),
        )

    table = score_table(chosen, rows, cols, record_at=record_at, extra_missing=extra_missing)
    groups: dict[tuple[str, str], list[int]] = {}
    for j in range(rows.n):
        groups.setdefault((rows.subject(j), rows.visit(j)), []).append(j)
    dropped = set()
    for members in groups.values():
        if len(members) > 1:
            merged = score_records(
                [record_at(j) for j in members],
                {chosen.id: chosen}.get,
                extra_missing=extra_missing,
            )
            table.overrides[members[0]] = merged[0]
            dropped.update(members[1:])
    out: dict[str, list[Any]] = {"subject": [], "visit": []}
    for rule in chosen.scores:
        for suffix in ("", "_band", "_items_answered", "_prorated"):
            out[f"{rule.id}{suffix}"] = []
    for cls in chosen.classifications:
        out[cls.id] = []
    out["flags"] = []
    out["issues"] = []
    for c in extras:
        out.setdefault(c, [])
    for j in range(rows.n):
        if j in dropped:
            continue
        r = table.result_at(j)
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
        for c in extras:
            if c in out and len(out[c]) < len(out["subject"]):
                out[c].append(r.extra.get(c))
        issues.extend(r.issues)
    return ScoredFrame(_frame(library, out), issues, library)
