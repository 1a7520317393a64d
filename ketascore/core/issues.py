"""Problems found in input, as data.

Every reader, the scoring engine and change-from-baseline report problems as ``Issue``
records instead of raising. Each issue has a stable ``code`` (catalogued below and in
docs/errors.md), a severity, and a message that names the file, line, subject, visit and
item it concerns and says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class IssueType:
    code: str
    severity: Severity
    title: str
    hint: str


_TYPES = [
    # files
    IssueType(
        "file-unreadable",
        "error",
        "File cannot be read",
        "check that the file exists and that you may read it",
    ),
    IssueType(
        "folder-loop",
        "warning",
        "A folder links back into a folder already read",
        "nothing to do: each folder was read once",
    ),
    IssueType(
        "file-too-large",
        "error",
        "File is larger than the size limit",
        "split the file, or raise the limit with --max-file-size",
    ),
    IssueType("file-empty", "error", "File holds no records", "check the export"),
    IssueType(
        "file-format",
        "error",
        "File format cannot be read",
        "check the file, or name its format with --input-format",
    ),
    IssueType(
        "parse-error",
        "error",
        "File is not valid YAML, JSON or CSV",
        "fix the syntax at the position shown",
    ),
    IssueType(
        "encoding", "warning", "File is not UTF-8", "save the file as UTF-8; it was read as Latin-1"
    ),
    IssueType(
        "csv-columns",
        "error",
        "CSV header is unusable",
        "give each column a unique name and include subject and visit columns",
    ),
    IssueType(
        "csv-ragged-row",
        "error",
        "CSV row has the wrong number of cells",
        "check the row for a missing or extra separator",
    ),
    # records
    IssueType(
        "bad-record", "error", "Record is not usable", "each record needs subject, visit and items"
    ),
    IssueType(
        "missing-field",
        "error",
        "Record lacks a required field",
        "add the field (subject and visit are required)",
    ),
    IssueType(
        "bad-field", "error", "Record field has an unusable value", "correct the field's value"
    ),
    IssueType(
        "no-scale",
        "error",
        "Record names no scale",
        "add a scale field to the record or pass --scale",
    ),
    IssueType(
        "unknown-scale",
        "error",
        "Scale is not known",
        "see `ketascore scales list`, or pass --scale with the path of your scale file",
    ),
    IssueType(
        "unknown-item",
        "error",
        "Item is not part of the scale",
        "check the item id against `ketascore scales show`",
    ),
    # values
    IssueType(
        "not-a-number",
        "error",
        "Value is neither a number nor a known answer label",
        "enter the item's numeric score or one of its answer labels",
    ),
    IssueType(
        "unknown-label",
        "error",
        "Answer label is not known for this item",
        "use one of the item's answer labels or its numeric score",
    ),
    IssueType(
        "out-of-range",
        "error",
        "Value is outside the item's range",
        "correct the value, or leave it blank if the item was not rated",
    ),
    IssueType(
        "not-allowed-value",
        "error",
        "Value is not one of the item's allowed values",
        "correct the value (e.g. a fraction where only whole numbers are allowed)",
    ),
    IssueType(
        "alternatives-both",
        "error",
        "More than one alternative item was rated",
        "rate exactly one of the alternative items and leave the others blank",
    ),
    # records against each other
    IssueType(
        "duplicate-record",
        "warning",
        "The same record appears more than once",
        "nothing to do: identical records were merged",
    ),
    IssueType(
        "conflicting-records",
        "error",
        "Two records for the same subject, visit and scale disagree",
        "keep one record per subject, visit and scale",
    ),
    # scores
    IssueType(
        "insufficient-items",
        "error",
        "Too few items answered to compute the score",
        "complete the missing items; the scale's missing-data rule allows no score",
    ),
    IssueType(
        "flag-undetermined",
        "warning",
        "A flag could not be determined",
        "the item or score the flag depends on is missing",
    ),
    IssueType(
        "reported-score-mismatch",
        "error",
        "A score stored in the input differs from the score computed from its items",
        "check the items and the stored score; ketascore's score follows the scale's rules",
    ),
    # change from baseline
    IssueType(
        "no-baseline",
        "error",
        "Subject has no baseline value",
        "add the baseline record, or choose the baseline visit with --baseline",
    ),
    IssueType(
        "no-study-day",
        "error",
        "A record has no study day, so no analysis window can hold it",
        "add the study day (day) to the record, or analyse without --windows",
    ),
    IssueType(
        "baseline-zero",
        "warning",
        "Baseline is 0: percent change is undefined",
        "nothing to do: change is reported, percent change and response are left empty",
    ),
    # clinical formats (ketascore.readers.formats)
    IssueType(
        "missing-column",
        "error",
        "A column the format or the mapping file needs is not in the file",
        "check the file's header against the mapping file, or correct the mapping file",
    ),
    IssueType(
        "cell-error",
        "error",
        "A spreadsheet cell holds an error or a formula that was never calculated",
        "fix the formula in the spreadsheet, or clear the cell if the item was not rated",
    ),
    IssueType(
        "unknown-answer-code",
        "error",
        "Answer code is not one of the item's answer codes",
        "check the code against the scale's answer codes (ketascore scales show), or give "
        "the Questionnaire with --questionnaire",
    ),
    IssueType(
        "unsupported-resource",
        "error",
        "FHIR resource is not a QuestionnaireResponse",
        "give QuestionnaireResponse resources: one, a Bundle of them, or NDJSON",
    ),
    IssueType(
        "unknown-category",
        "warning",
        "Rows of a category that no known scale declares",
        "nothing to do if they are not needed; otherwise add a scale whose codes declare "
        "that category (codes.cdisc_category)",
    ),
    IssueType(
        "no-scale-items",
        "warning",
        "File holds no items of a known scale",
        "name the item columns <scale>_<item>, or describe them with --map",
    ),
]

ISSUE_TYPES: dict[str, IssueType] = {t.code: t for t in _TYPES}


class Issue(BaseModel):
    """One problem, located as precisely as the input allows."""

    model_config = ConfigDict(frozen=True)

    code: str
    severity: Severity
    message: str
    file: str | None = None
    line: int | None = None
    subject: str | None = None
    visit: str | None = None
    scale: str | None = None
    item: str | None = None
    hint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def where(
    file: str | None,
    line: int | None,
    subject: str | None = None,
    visit: str | None = None,
    scale: str | None = None,
    item: str | None = None,
) -> str:
    """The location prefix of a message: ``file:line: subject S01, visit day1, madrs item 3``."""
    parts: list[str] = []
    if file is not None:
        parts.append(f"{file}:{line}" if line is not None else file)
    context = []
    if subject is not None:
        context.append(f"subject {subject}")
    if visit is not None:
        context.append(f"visit {visit}")
    if scale is not None and item is not None:
        context.append(f"{scale} item {item}")
    elif scale is not None:
        context.append(scale)
    elif item is not None:
        context.append(f"item {item}")
    if context:
        parts.append(", ".join(context))
    return ": ".join(parts)


def make_issue(
    code: str,
    detail: str,
    *,
    file: str | None = None,
    line: int | None = None,
    subject: str | None = None,
    visit: str | None = None,
    scale: str | None = None,
    item: str | None = None,
    hint: str | None = None,
) -> Issue:
    """Build an issue whose message reads ``<where>: <detail>; <what to do>``."""
    kind = ISSUE_TYPES[code]
    hint = hint or kind.hint
    prefix = where(file, line, subject, visit, scale, item)
    message = f"{prefix}: {detail}" if prefix else detail
    return Issue(
        code=code,
        severity=kind.severity,
        message=f"{message}; {hint}",
        file=file,
        line=line,
        subject=subject,
        visit=visit,
        scale=scale,
        item=item,
        hint=hint,
    )


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)
