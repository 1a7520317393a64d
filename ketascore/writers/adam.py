"""CDISC ADaM-style output: a long Basic Data Structure (BDS) table, one row per subject,
parameter (score) and visit, as CSV or as SAS transport (a path ending in .xpt).

Columns: STUDYID, USUBJID, the group of ``--by`` when given, PARAMCD, PARAM, AVISIT, AVISITN,
ADT, ADY, AVAL, AVALC (the band), BASE, CHG, PCHG, ABLFL, DTYPE, CRIT1, CRIT1FL (response),
CRIT2, CRIT2FL (remission), and two that keep ketascore's rule that every score says how it
was made: ITEMN (items answered) and PRORFL (Y when the score was prorated). docs/adam.md
gives the derivation of each column.

- PARAMCD is the score's CDISC code when the scale declares one (``GAD0208``), else built
  from the scale and score ids, at most 8 characters: ``TOT`` for a total (``MADRSTOT``), the
  initials of a score id in parts (``HAMD17AS`` for anxiety_somatization), else its first
  four characters; PARAM is the scale's short name and the score's label.
- The rows are those of the change report (``ketascore.analysis.change``): each subject's baseline
  (ABLFL = Y, BASE = AVAL, CHG and PCHG empty) and each analysed follow-up visit. A subject
  without a usable baseline has a row per record with empty BASE and CHG.
- AVALC is the band of AVAL (the scale's bands for the score).
- AVISITN is the analysis visit number the windows file sets (``avisitn``), else the source's
  visit number (SDTM VISITNUM, carried as ``visit_number``) when every record has one, else the
  visit's position in the report (the baseline visit is 0).
- DTYPE is ``LOCF`` on rows whose value change from baseline carried forward from the
  subject's last post-baseline value, ``BOCF`` on rows that carry the baseline forward for a
  subject with no post-baseline value (``ChangeRow.imputed``); such a row keeps the date,
  study day, items answered and prorated flag of the record carried forward. Observed rows
  have an empty DTYPE.
- CRIT1FL/CRIT2FL are Y or N on post-baseline rows where response/remission is determined.
- STUDYID is ``study_id`` when given (``--study-id``), else the study id the record carries
  (SDTM STUDYID, read as ``study_id``; or a carried field named ``studyid``/``study_id`` in
  any case), else empty.
- The group of ``--by`` is carried in a column named after the field in upper case when
  that is a SAS name of at most 8 characters that the table does not use (``arm`` gives
  ARM), else GROUP; its label is the ``--by`` text.
- In CSV, ADT is an ISO date; in SAS transport it is a SAS date (DATE9. format).
Rows are sorted by subject (S2 before S10), parameter and visit, so output is deterministic.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ketascore.analysis.change import ChangeReport, ChangeRow, natural_key
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale, ScoreRule
from ketascore.core.values import finite_number, format_number
from ketascore.readers import xpt
from ketascore.writers.tabular import atomic_writer, escape_formula

COLUMNS = (
    "STUDYID",
    "USUBJID",
    "PARAMCD",
    "PARAM",
    "AVISIT",
    "AVISITN",
    "ADT",
    "ADY",
    "AVAL",
    "AVALC",
    "BASE",
    "CHG",
    "PCHG",
    "ABLFL",
    "DTYPE",
    "CRIT1",
    "CRIT1FL",
    "CRIT2",
    "CRIT2FL",
    "ITEMN",
    "PRORFL",
)
NUMERIC = frozenset({"AVISITN", "ADT", "ADY", "AVAL", "BASE", "CHG", "PCHG", "ITEMN"})
LABELS = {
    "STUDYID": "Study Identifier",
    "USUBJID": "Unique Subject Identifier",
    "PARAMCD": "Parameter Code",
    "PARAM": "Parameter",
    "AVISIT": "Analysis Visit",
    "AVISITN": "Analysis Visit (N)",
    "ADT": "Analysis Date",
    "ADY": "Analysis Relative Day",
    "AVAL": "Analysis Value",
    "AVALC": "Analysis Value (C)",
    "BASE": "Baseline Value",
    "CHG": "Change from Baseline",
    "PCHG": "Percent Change from Baseline",
    "ABLFL": "Baseline Record Flag",
    "DTYPE": "Derivation Type",
    "CRIT1": "Analysis Criterion 1",
    "CRIT1FL": "Criterion 1 Evaluation Result Flag",
    "CRIT2": "Analysis Criterion 2",
    "CRIT2FL": "Criterion 2 Evaluation Result Flag",
    "ITEMN": "Number of Items Answered",
    "PRORFL": "Prorated Score Flag",
}


def _scales(reports: Sequence[ChangeReport], scales: Iterable[Scale]) -> dict[str, Scale]:
    from ketascore.core.library import ScaleSet

    given = list(scales)
    known = ScaleSet(given)
    out = {s.id: s for s in given}
    for report in reports:
        if report.scale not in out:
            scale = known.get(report.scale)
            if scale is None:
                raise ValueError(f"unknown scale {report.scale!r}: pass it in scales")
            out[report.scale] = scale
    return out


def param_code(scale: Scale, score_id: str) -> str:
    for score in scale.definition.scores:
        if score.id == score_id and score.codes is not None and score.codes.cdisc:
            return score.codes.cdisc.upper()[:8]
    base = re.sub(r"[^A-Z0-9]", "", scale.id.upper())
    parts = [re.sub(r"[^A-Z0-9]", "", p) for p in score_id.upper().split("_")]
    if score_id == "total":
        suffix = "TOT"
    elif len([p for p in parts if p]) > 1:
        suffix = "".join(p[0] for p in parts if p)[:4]  # anxiety_somatization -> AS
    else:
        suffix = "".join(parts)[:4]
    return (base[: 8 - len(suffix)] + suffix)[:8]


def param_label(scale: Scale, score_id: str) -> str:
    label = next(s.label for s in scale.definition.scores if s.id == score_id)
    name = scale.definition.short_name or scale.definition.name
    return f"{name} {label}"[:200]


def _criteria_text(report: ChangeReport) -> tuple[str, str]:
    c = report.criteria
    response = ""
    if c.reduction_percent is not None:
        response = (
            f"Response: {report.score} decreased by >= {format_number(c.reduction_percent)}% "
            "from baseline"
        )
    remission = ""
    if c.remission_at_most is not None:
        remission = f"Remission: {report.score} <= {format_number(c.remission_at_most)}"
    elif c.remission_below is not None:
        remission = f"Remission: {report.score} < {format_number(c.remission_below)}"
    return response, remission


def _flag(value: bool | None) -> str:
    return "" if value is None else ("Y" if value else "N")


def _dtype(row: ChangeRow | None) -> str:
    """LOCF (or another derivation type) when change from baseline imputed the value."""
    if row is None:
        return ""
    for name in ("dtype", "imputed"):
        value = getattr(row, name, None)
        if isinstance(value, str) and value:
            return value.upper()
        if value is True:
            return "LOCF"
    return ""


def _number(value: Any) -> int | float | None:
    """A visit number: a finite number by the grammar (``finite_number``), else None."""
    try:
        return finite_number(value)
    except ValueError:
        return None


def _visit_numbers(report: ChangeReport, mine: list[ScoreResult]) -> dict[str, Any]:
    """Visit -> AVISITN: the windows file's numbers, else the source's visit numbers if every
    visit has one, else positions."""
    if report.visit_numbers:
        return dict(report.visit_numbers)
    numbers: dict[str, int | float] = {}
    for r in mine:
        n = _number(r.extra.get("visit_number"))
        if n is not None:
            numbers.setdefault(r.visit, n)
    visits = list(report.visits) or list(dict.fromkeys(r.visit for r in mine))
    if visits and all(v in numbers for v in visits):
        return {v: numbers[v] for v in visits}
    return {v: i for i, v in enumerate(visits)}


@dataclass(frozen=True)
class _Param:
    """What every row of one parameter (one report) shares."""

    code: str
    label: str
    score: str
    rule: ScoreRule
    crit1: str
    crit2: str
    visit_n: dict[str, Any]
    order: int
    study_id: str | None = None
    group_column: str | None = None
    groups: dict[str, str | None] | None = None


def _row(
    p: _Param,
    subject: str,
    visit: str,
    value: Any,
    source: ScoreResult | None,
    *,
    base: Any = None,
    is_base: bool = False,
    change: ChangeRow | None = None,
) -> dict[str, Any]:
    date = (change.date if change is not None else None) or (source.date if source else None)
    day = change.day if change is not None else None
    if day is None and source is not None:
        day = source.day
    prorated = source.prorated.get(p.score) if source is not None else None
    band = p.rule.band(value) if value is not None and p.rule.bands else None
    group = {}
    if p.group_column is not None and p.groups is not None:
        group[p.group_column] = p.groups.get(subject) or ""
    return {
        "STUDYID": p.study_id or _study_of(source),
        "USUBJID": subject,
        **group,
        "PARAMCD": p.code,
        "PARAM": p.label,
        "AVISIT": visit,
        "AVISITN": p.visit_n.get(visit),
        "ADT": (date or "")[:10] or None,
        "ADY": day,
        "AVAL": value,
        "AVALC": band or "",
        "BASE": base,
        "CHG": change.change if change is not None else None,
        "PCHG": change.percent_change if change is not None else None,
        "ABLFL": "Y" if is_base else "",
        "DTYPE": _dtype(change),
        "CRIT1": p.crit1,
        "CRIT1FL": _flag(change.response) if change is not None else "",
        "CRIT2": p.crit2,
        "CRIT2FL": _flag(change.remission) if change is not None else "",
        "ITEMN": source.items_answered.get(p.score) if source is not None else None,
        "PRORFL": "" if prorated is None else ("Y" if prorated else "N"),
        "_order": p.order,
    }


def _study_of(source: ScoreResult | None) -> str:
    """The study id a record carries: SDTM STUDYID (``study_id``), or a carried field
    named studyid or study_id in any case."""
    if source is None:
        return ""
    for key, value in source.extra.items():
        if key.casefold() in ("study_id", "studyid") and value not in (None, ""):
            return str(value)
    return ""


SAS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,7}")


def group_column(by: str) -> str:
    """The column of a ``--by`` group: ``arm`` gives ARM; a name that is not a SAS name of
    at most 8 characters, or that the table already uses, gives GROUP."""
    name = by.upper()
    if SAS_NAME.fullmatch(by) and name not in COLUMNS:
        return name
    return "GROUP"


def columns_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The columns of a table of ``adam_rows``: COLUMNS, with any group column after
    USUBJID."""
    extra: dict[str, None] = {}
    for row in rows:
        extra.update(dict.fromkeys(k for k in row if k not in COLUMNS and not k.startswith("_")))
    at = COLUMNS.index("USUBJID") + 1
    return [*COLUMNS[:at], *extra, *COLUMNS[at:]]


def _report_rows(
    report: ChangeReport, results: Sequence[ScoreResult], p: _Param
) -> list[dict[str, Any]]:
    mine = [r for r in results if r.scale == report.scale]
    found: dict[tuple[str, str], ScoreResult] = {}
    by_subject: dict[str, list[ScoreResult]] = {}
    for r in mine:
        found.setdefault((r.subject, r.visit), r)
        origin = getattr(r, "source_visit", None)
        if isinstance(origin, str):
            found.setdefault((r.subject, origin), r)
        by_subject.setdefault(r.subject, []).append(r)
    changes: dict[str, list[ChangeRow]] = {}
    for change in report.rows:
        changes.setdefault(change.subject, []).append(change)
    out = []
    for subject in dict.fromkeys([*report.subjects, *by_subject]):
        base_visit, _, base = report.baselines.get(subject, (None, None, None))
        if base_visit is not None and base is not None:
            source = found.get((subject, base_visit))
            out.append(_row(p, subject, base_visit, base, source, base=base, is_base=True))
            for change in changes.get(subject, []):
                origin = getattr(change, "source_visit", None) or change.visit
                source = found.get((subject, origin))
                out.append(
                    _row(p, subject, change.visit, change.value, source, base=base, change=change)
                )
            continue
        for r in by_subject.get(subject, []):  # no usable baseline: the values alone
            value = r.scores.get(p.score)
            out.append(_row(p, subject, r.visit, value, r, is_base=r.visit == base_visit))
    return out


def adam_rows(
    reports: Sequence[ChangeReport],
    results: Sequence[ScoreResult],
    scales: Iterable[Scale] = (),
    *,
    study_id: str | None = None,
) -> list[dict[str, Any]]:
    """One BDS row per subject, parameter (one per report) and analysed visit.

    ``results`` are the scored records the reports were computed from (with analysis
    windows: the windowed records, whose ``source_visit`` names the visit of origin).
    ``study_id`` is every row's STUDYID (default: the records' own).
    """
    by_id = _scales(reports, scales)
    used: dict[str, tuple[str, str]] = {}
    out: list[dict[str, Any]] = []
    for order, report in enumerate(reports):
        scale = by_id[report.scale]
        code = param_code(scale, report.score)
        if used.get(code, (report.scale, report.score)) != (report.scale, report.score):
            code = f"{code[:6]}{order:02d}"
        used[code] = (report.scale, report.score)
        crit1, crit2 = _criteria_text(report)
        mine = [r for r in results if r.scale == report.scale]
        p = _Param(
            code,
            param_label(scale, report.score),
            report.score,
            scale.score(report.score),
            crit1,
            crit2,
            _visit_numbers(report, mine),
            order,
            study_id,
            group_column(report.by) if report.by else None,
            report.groups,
        )
        out.extend(_report_rows(report, results, p))
    out.sort(
        key=lambda row: (
            natural_key(row["USUBJID"]),
            row["_order"],
            row["AVISITN"] if row["AVISITN"] is not None else math.inf,
            natural_key(row["AVISIT"]),
        )
    )
    for row in out:
        del row["_order"]
    return out


def _text(value: Any, escape: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, float | int) and not isinstance(value, bool):
        return format_number(value)
    return escape_formula(str(value)) if escape else str(value)


def adam_csv(rows: Sequence[dict[str, Any]], *, escape_formulas: bool = True) -> str:
    """The table as CSV; text cells a spreadsheet would run as a formula are escaped as in
    every CSV output (``ketascore.writers.tabular.escape_formula``)."""
    columns = columns_of(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_text(row.get(c), escape_formulas) for c in columns])
    return buf.getvalue()


def xpt_variables(
    rows: Sequence[dict[str, Any]], labels: dict[str, str] | None = None
) -> list[xpt.Variable]:
    """The SAS transport variables of the columns; ``labels`` names the group column."""
    variables = []
    for name in columns_of(rows):
        label = LABELS.get(name) or (labels or {}).get(name) or f"Group ({name.lower()})"
        if name in NUMERIC:
            fmt = "DATE" if name == "ADT" else ""
            variables.append(xpt.Variable(name, label, True, 8, fmt, 9 if fmt else 0, 0))
        else:
            width = max(
                (len(str(row.get(name, "")).encode("latin-1", "replace")) for row in rows),
                default=1,
            )
            variables.append(xpt.Variable(name, label[:40], False, min(max(width, 1), 200)))
    return variables


IBM_MAX = 7.2e75  # about the largest number an IBM float (SAS transport) holds


def _check_numbers(rows: Sequence[dict[str, Any]]) -> None:
    """Every number fits a SAS transport file, else OutputError naming the first that
    does not (a visit number of 200 digits in the source)."""
    from ketascore.writers.outputs import OutputError

    for row in rows:
        for name in NUMERIC:
            value = row[name]
            if value is None or name == "ADT":
                continue
            try:
                fits = math.isfinite(float(value)) and abs(float(value)) < IBM_MAX
            except OverflowError:
                fits = False
            if not fits:
                shown = format_number(value) if abs(value) < 1e15 else f"{value:.3g}"
                raise OutputError(
                    f"cannot write {name} = {shown} (subject {row['USUBJID']}, visit "
                    f"{row['AVISIT']}) to a SAS transport file, whose numbers stop at about "
                    "7.2e75; check the source's value, or write the table as CSV"
                )


def write_adam_xpt(
    fh: Any,
    rows: Sequence[dict[str, Any]],
    *,
    dataset: str = "ADQS",
    labels: dict[str, str] | None = None,
) -> None:
    """The rows of ``adam_rows`` as a SAS transport file, to an open binary file (raises
    OutputError when a number does not fit one); ``labels`` names the group column."""
    _check_numbers(rows)
    variables = xpt_variables(rows, labels)
    columns = columns_of(rows)
    values = [
        [xpt.sas_date(row.get(c)) if c == "ADT" else row.get(c, "") for c in columns]
        for row in rows
    ]
    xpt.write_xport(fh, dataset, variables, values, label="Questionnaire Analysis Dataset")


def write_adam(
    path: str | Path,
    reports: Sequence[ChangeReport],
    results: Sequence[ScoreResult],
    scales: Iterable[Scale] = (),
    *,
    dataset: str = "ADQS",
    study_id: str | None = None,
    escape_formulas: bool = True,
) -> list[dict[str, Any]]:
    """Write the table atomically: SAS transport when ``path`` ends in .xpt, else CSV."""
    rows = adam_rows(reports, results, scales, study_id=study_id)
    if str(path).lower().endswith(".xpt"):
        labels = {group_column(r.by): f"Group: {r.by}" for r in reports if r.by}
        with atomic_writer(path, binary=True) as fh:
            write_adam_xpt(fh, rows, dataset=dataset, labels=labels)
    else:
        with atomic_writer(path) as fh:
            fh.write(adam_csv(rows, escape_formulas=escape_formulas))
    return rows
