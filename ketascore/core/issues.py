"""Problems found in input, as data.

Every reader, engine and analysis reports a problem as an ``Issue``: a stable ``code``, the
name of one of the code's message templates (``variant``), the template's parameters, and
where it happened (file, line, subject, visit, scale, item). One function, ``render``,
writes the text of every issue for every output (terminal, JSON, CSV, report), so every
engine says the same thing the same way. The catalogue below is the only place that holds
the wording; docs/errors.md lists each code.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]

LEFT_EMPTY = "scores that use this item are left empty"


@dataclass(frozen=True)
class Template:
    """A message with named parameters (``{name}``, ``{name!r}``, ``{size:,}``) and the hint
    that follows it (None: the code's own hint; ``{hint}`` in it stands for that hint)."""

    text: str
    hint: str | None = None


@dataclass(frozen=True)
class IssueType:
    code: str
    severity: Severity
    title: str
    hint: str
    templates: Mapping[str, Template]  # variant -> template; "" is the default


def _type(
    code: str,
    severity: Severity,
    title: str,
    hint: str,
    templates: Mapping[str, str | Template] | str,
) -> IssueType:
    if isinstance(templates, str):
        templates = {"": templates}
    return IssueType(
        code,
        severity,
        title,
        hint,
        {k: v if isinstance(v, Template) else Template(v) for k, v in templates.items()},
    )


EXCLUDE_HINT = "remove it from the folder or exclude it with --exclude"
DATE_HINT = "write the date as YYYY-MM-DD; the {unit} is scored without a date"
DAY_HINT = "write the study day as a number; the {unit} is scored without it"
VALUE_HINT = "{hint}; " + LEFT_EMPTY
UNSEEN = (
    "{value!r} holds the character {character}, which does not show or looks like a space, "
    "so it is neither a number nor an answer label"
)
UNSEEN_HINT = "retype the value without that character; " + LEFT_EMPTY

_TYPES = [
    # files ---------------------------------------------------------------------------
    _type(
        "file-unreadable",
        "error",
        "File cannot be read",
        "check that the file exists and that you may read it",
        "cannot read the file: {reason}",
    ),
    _type(
        "folder-loop",
        "warning",
        "A folder links back into a folder already read",
        "nothing to do: each folder was read once",
        "folder is a symbolic link back into a folder already read (a loop)",
    ),
    _type(
        "file-too-large",
        "error",
        "File is larger than the size limit",
        "split the file, or raise the limit with --max-file-size",
        {
            "": "file is {size:,} bytes, above the limit of {limit:,}",
            "stream": "the input holds more than the limit of {limit:,} bytes; it was not read",
        },
    ),
    _type(
        "file-empty",
        "error",
        "File holds no records",
        "check the export",
        {
            "": "the file is empty",
            "no-records": "the file holds no records",
            "empty-list": "the file holds an empty list",
            "header-only": "the file has a header but no rows",
            "no-resources": "the file holds no FHIR resources",
            "sheet": "the sheet is empty",
        },
    ),
    _type(
        "file-format",
        "error",
        "File format cannot be read",
        "check the file, or name its format with --input-format",
        {
            "binary": Template("this is a binary file, not {formats}", EXCLUDE_HINT),
            "foreign": Template("this is {kind}, which ketascore does not read", "{advice}"),
            "utf16": Template(
                "this looks like {order} text without a byte-order mark ({evidence}); it was "
                "not read, as its encoding would be a guess",
                "save it as UTF-8 (Excel: Save As, CSV UTF-8; a text editor: encoding "
                "UTF-8), or as UTF-16 with a byte-order mark",
            ),
            "binary-format": "{format} is a binary format and cannot be read from text",
            "long-layout": Template(
                "this is the long layout (subject, visit, scale, item, value); the duckdb "
                "engine reads the wide layout only",
                "score this file with the default engine",
            ),
            "table-format": Template(
                "the duckdb engine reads CSV (.csv, .tsv, .txt) and Parquet files",
                "score this file with the default engine",
            ),
            "parquet": "cannot read the Parquet file: {error}",
            "needs-pyarrow": Template(
                "reading Parquet needs pyarrow",
                "install it with pip install 'ketascore[duckdb]'",
            ),
            "needs-openpyxl": Template(
                "reading .xlsx files needs the openpyxl package",
                "install it with pip install 'ketascore[xlsx]', or save the sheet as CSV",
            ),
            "no-sheet": Template(
                "the workbook has no sheet {sheet!r} (sheets: {sheets})",
                "name one of its sheets with --sheet",
            ),
        },
    ),
    _type(
        "parse-error",
        "error",
        "File is not valid YAML, JSON or CSV",
        "fix the syntax at the position shown",
        {
            "": "not valid {format}: {error}",
            "at-column": "not valid {format}: {error} (column {column})",
            "unsafe": Template(
                "refused: {error}",
                "remove the tag: answer files hold data only, and ketascore never builds objects",
            ),
            "unsafe-at-column": Template(
                "refused: {error} (column {column})",
                "remove the tag: answer files hold data only, and ketascore never builds objects",
            ),
            "limit": Template(
                "refused: {error}",
                "the file was refused to keep memory use bounded; write the data out plainly",
            ),
            "limit-at-column": Template(
                "refused: {error} (column {column})",
                "the file was refused to keep memory use bounded; write the data out plainly",
            ),
            "too-deep": "JSON is nested too deeply",
            "csv": Template(
                "not valid CSV: {error}", "fix the quoting at that line; rows before it were read"
            ),
            "csv-row": "not valid CSV ({kind}): {error}; row skipped",
            "more-rows": Template(
                "{count} more malformed row(s) were skipped",
                "fix the rows listed above and look for more of the same",
            ),
            "parquet": "not a readable Parquet file: {error}",
            "expands": Template(
                "the workbook expands to {size:,} bytes, above the limit of {limit:,} (a zip "
                "bomb?); refused",
                "the file was refused to keep memory use bounded; save the sheet as CSV",
            ),
            "xlsx": Template(
                "not a readable .xlsx workbook ({error})",
                "open the file in a spreadsheet program and save it as .xlsx (or CSV)",
            ),
            "workbook": Template(
                "the workbook cannot be read ({error})",
                "open the file in a spreadsheet program and save it again",
            ),
            "xpt": Template(
                "{error}", "export the file again from the program that wrote it (SAS transport v5)"
            ),
        },
    ),
    _type(
        "encoding",
        "warning",
        "File is not UTF-8",
        "save the file as UTF-8; it was read as Latin-1",
        {"": "byte 0x{byte:02x} is not UTF-8", "file": "the file is not UTF-8"},
    ),
    _type(
        "csv-columns",
        "error",
        "CSV header is unusable",
        "give each column a unique name and include subject and visit columns",
        {
            "repeated": "column name(s) {names} appear more than once, so their values are "
            "ambiguous; the file was not scored",
            "missing": Template(
                "no {column!r} column (columns: {columns})",
                "name the columns subject and visit, or describe them with --map",
            ),
            "missing-long": "no {column!r} column",
            "no-items": Template(
                "no item columns: name them <scale>_<item>, e.g. madrs_1 (columns: {columns})",
                "rename the columns, describe them with --map, or use the long layout "
                "(subject, visit, scale, item, value)",
            ),
        },
    ),
    _type(
        "csv-ragged-row",
        "error",
        "CSV row has the wrong number of cells",
        "check the row for a missing or extra separator",
        {
            "": "row has {cells} cells but the header has {columns}; row skipped",
            "duckdb": "{error}; row skipped",
        },
    ),
    _type(
        "csv-repeated-header",
        "warning",
        "A row repeats the header",
        "nothing was lost; ratings that the joined files both hold are merged if alike and "
        "reported if not",
        "this row repeats the header: were two files joined? the row is skipped",
    ),
    _type(
        "csv-other-header",
        "error",
        "A row is a header other than the first",
        "split the file at this line and read each part with its own header, or give the "
        "parts the same columns in the same order",
        "this row is a header with {how} than the first: were two files with other columns "
        "joined? the rows after it do not follow the first header, so this row and the "
        "{rest} row(s) after it were not read",
    ),
    _type(
        "file-skipped",
        "warning",
        "A file in a folder is not a ratings file and was skipped",
        "nothing to do if it holds no ratings; name it on the command line to read it",
        {
            "extension": "not a ratings file ({ext} is not a format ketascore reads); skipped",
            "binary": "a binary file with the name of a ratings file; skipped",
            "notes": "text that is not a ratings table (its first line names no subject "
            "column); skipped",
            "special": "not a regular file but a {kind}; skipped",
            "lock": "an office lock file (the workbook is open in a spreadsheet program); skipped",
        },
    ),
    _type(
        "folder-unreadable",
        "error",
        "A folder cannot be listed",
        "check that the folder exists and that you may read it",
        "cannot read the folder: {reason}; the files in it were not read",
    ),
    _type(
        "internal-error",
        "error",
        "Reading the file failed because of a bug in ketascore",
        "this is a bug in ketascore: rerun with --traceback and report it with the file; "
        "the other files were read",
        "ketascore failed while reading the file ({error}); the file was not read",
    ),
    # records -------------------------------------------------------------------------
    _type(
        "bad-record",
        "error",
        "Record is not usable",
        "each record needs subject, visit and items",
        {
            "not-mapping": "record {number} is a {kind}, not a mapping of fields",
            "no-items": "record has no items mapping (items: {{item id: value}})",
            "document": "the file holds a {kind}; expected a record or a list of records",
            "item-twice": "item {item} is given twice",
            "entered-in-error": Template(
                "{resource} is marked entered-in-error; skipped",
                "nothing to do if the response was withdrawn",
            ),
            "fhir-shape": Template(
                "{resource}: {field} is a {kind}, not {expected}; skipped",
                "give the resource the shape FHIR R4 defines (item: [{{linkId, answer: [...]}}])",
            ),
        },
    ),
    _type(
        "response-status",
        "warning",
        "A FHIR QuestionnaireResponse that is not final was scored",
        "nothing to do if its answers are final; otherwise score the completed response",
        {
            "": "{resource} has status {status}: the form was not completed, so answers may "
            "be missing or provisional; scored as given",
            "unknown": "{resource} has status {status}, which is not a QuestionnaireResponse "
            "status (in-progress, completed, amended, entered-in-error, stopped); scored as "
            "given",
        },
    ),
    _type(
        "missing-field",
        "error",
        "Record lacks a required field",
        "add the field (subject and visit are required)",
        {
            "record": "record {number} has no usable {fields}",
            "row": "row has no {field}; row skipped",
            "cell": Template(
                "{error}, where the row's {field} should be; row skipped",
                "correct the cell in the spreadsheet so that it holds the {field}",
            ),
            "rows": "{count} row(s) have no subject or visit; rows skipped",
            "resource": Template(
                "{resource} has no {field}; skipped",
                "add subject.reference and authored to the resource, or give the visit with "
                "a mapping file (visit: {{value: ...}})",
            ),
        },
    ),
    _type(
        "bad-field",
        "error",
        "Record field has an unusable value",
        "correct the field's value",
        {
            "date": Template("date {value!r} is not an ISO date (YYYY-MM-DD)", DATE_HINT),
            "date-serial": Template(
                "date {value!r} is a number, not a date (as a spreadsheet's date serial number "
                "it would be {as_date}, if the column holds dates formatted as numbers)",
                "format the column as dates in the spreadsheet, or write the date as "
                "YYYY-MM-DD; the {unit} is scored without a date",
            ),
            "day": Template("day {value!r} is not a number", DAY_HINT),
            "day-range": Template("day {value!r} is not a usable study day", DAY_HINT),
            "authored": Template(
                "{resource}: authored {value!r} is not an ISO date (YYYY-MM-DD)",
                "write authored as an ISO date-time; scored without a date",
            ),
            "authored-type": Template(
                "{resource}: authored is {value}, not a date-time text; {outcome}",
                'write authored as an ISO date-time text, such as "2024-01-01" or '
                '"2024-01-01T09:30:00Z"',
            ),
            "subject-type": Template(
                "{resource}: {field} is {value}, not a reference text; skipped (the "
                "subject is unknown)",
                'write subject.reference as a reference text, such as "Patient/123"',
            ),
            "rows": "{count} row(s) have an unusable {field}",
            "inexact-id": Template(
                "{field} {value} is a floating-point number too large to be an exact id "
                "(from {limit} on, {width} cannot hold every whole number, "
                "so it may not be the {field} that was written); row skipped",
                "store subjects and visits as text or as an integer type, not as floating point",
            ),
            "tiny-id": Template(
                "{field} {value} is a floating-point number too small to be an exact id "
                "(below {least}, {width} holds fewer digits, "
                "so it may not be the {field} that was written); row skipped",
                "store subjects and visits as text or as an integer type, not as floating point",
            ),
            "instance": Template(
                "repeat instance {value!r} is not a whole number of 1 or more, so the row's "
                "visit is not known; row skipped",
                "correct redcap_repeat_instance (1, 2, 3 ...), or leave it blank if the row "
                "is not repeated",
            ),
        },
    ),
    _type(
        "no-scale",
        "error",
        "Record names no scale",
        "add a scale field to the record or pass --scale",
        "the record does not say which scale it answers",
    ),
    _type(
        "unknown-scale",
        "error",
        "Scale is not known",
        "see `ketascore scales list`, or pass --scale with the path of your scale file",
        {
            "": "unknown scale {scale_id!r}",
            "did-you-mean": "unknown scale {scale_id!r} (did you mean {close}?)",
            "mapping": Template(
                "the mapping {where} names unknown scale {scale_id!r}; the file was not read",
                "use a built-in scale id, or pass the scale file with --scale",
            ),
        },
    ),
    _type(
        "unknown-item",
        "error",
        "Item is not part of the scale",
        "check the item id against `ketascore scales show`",
        {
            "": "{scale_id} has no item {key!r} (items: {items})",
            "mapping-item": Template(
                "the mapping {where} names item {key!r}, which {scale_id} does not have "
                "(items: {items}); ignored",
                "correct the item id in the mapping file",
            ),
            "mapping-score": Template(
                "the mapping {where} names score {key!r}, which {scale_id} does not have "
                "(scores: {scores}); ignored",
                "correct the score id in the mapping file",
            ),
            "test-code": Template(
                "test code {test} ({count} row(s)) is not an item or score code of "
                "{scale_id}; ignored",
                "check the test code against the scale's codes, or map it with --map",
            ),
            "alternative": Template(
                "{scale_id} has no single item {key!r}: it is rated as one of {rated}",
                "name the column (or key) after the item that was rated ({members}), or map "
                "the column to it with --map; scores that use item {key} are left empty",
            ),
        },
    ),
    # values (an item's answer; each leaves the scores that use the item empty) -------
    _type(
        "not-a-number",
        "error",
        "Value is neither a number nor a known answer label",
        "enter the item's numeric score or one of its answer labels",
        {
            "": Template("{value!r} is not a number", VALUE_HINT),
            "boolean": Template("{value} is not a score (quote it if it is a label)", VALUE_HINT),
            "type": Template("a {kind} is not a score", VALUE_HINT),
            "fhir-type": Template("a {kind} answer is not a score", VALUE_HINT),
            "fhir-value-type": Template(
                "{key} holds a {kind}, but FHIR gives it as {expected}", VALUE_HINT
            ),
            "fhir-shape": Template(
                "the item's answer is a {kind}, not a list of answers (answer: [{{...}}])",
                VALUE_HINT,
            ),
            "fhir-values": Template(
                "the answer holds {keys}, but a FHIR answer holds one value[x]", VALUE_HINT
            ),
            "grammar": Template(
                "{value!r} is not a number as ketascore reads numbers (ASCII digits with an "
                "optional sign and decimal point)",
                VALUE_HINT,
            ),
            "unseen": Template(UNSEEN, UNSEEN_HINT),
        },
    ),
    _type(
        "unknown-label",
        "error",
        "Answer label is not known for this item",
        "use one of the item's answer labels or its numeric score",
        {
            "": Template(
                "answer {value!r} is not a label of this item (labels: {labels})", VALUE_HINT
            ),
            "unseen": Template(UNSEEN, UNSEEN_HINT),
        },
    ),
    _type(
        "out-of-range",
        "error",
        "Value is outside the item's range",
        "correct the value, or leave it blank if the item was not rated",
        {"": Template("value {value} is out of range {allowed}", VALUE_HINT)},
    ),
    _type(
        "not-allowed-value",
        "error",
        "Value is not one of the item's allowed values",
        "correct the value (e.g. a fraction where only whole numbers are allowed)",
        {
            "": Template("value {value} is not an allowed value ({allowed})", VALUE_HINT),
            "answers": Template(
                "{count} answers given; one is expected",
                "keep the one answer the rater gave in the response; " + LEFT_EMPTY,
            ),
        },
    ),
    _type(
        "alternatives-both",
        "error",
        "More than one alternative item was rated",
        "rate exactly one of the alternative items and leave the others blank",
        {
            "": Template(
                "items {items} are alternatives of item {slot}; only one may be rated",
                "keep the one that was rated and leave the other blank; scores that use item "
                "{slot} are left empty",
            )
        },
    ),
    _type(
        "skip-inconsistent",
        "error",
        "An item the form skips was answered",
        "check the answers: correct the answer that decides the skip, or clear this item",
        {
            "": Template(
                "answered {value}, but the form does not ask this item when {condition} "
                "(skip rule {skip})",
                VALUE_HINT,
            ),
            "counts-as": Template(
                "answered {value}, but the form does not ask this item when {condition} "
                "(skip rule {skip}; a skipped item counts as {counts_as})",
                VALUE_HINT,
            ),
        },
    ),
    # records against each other -------------------------------------------------------
    _type(
        "duplicate-record",
        "warning",
        "The same record appears more than once",
        "nothing to do: identical records were merged",
        {
            "": "the same answers appear {count} times ({places}); scored once",
            "rows": Template(
                "{count} row(s) give an item's answer again, the same ({places}); "
                "each answer counted once",
                "nothing to do: the repeated rows were merged",
            ),
        },
    ),
    _type(
        "conflicting-records",
        "error",
        "Two records for the same subject, visit and scale disagree",
        "keep one record per subject, visit and scale",
        {
            "": "{count} records with different answers ({places}); not scored",
            "item": Template(
                "item given twice with different values ({first!r} at {unit} {first_at}, "
                "{second!r} at {unit} {second_at})",
                VALUE_HINT,
            ),
            "key-twice": Template(
                "the record names item {first_key} twice, as {first_key!r} ({first!r}) and "
                "{second_key!r} ({second!r}), with different answers",
                "give each item once; " + LEFT_EMPTY,
            ),
            "response-item": Template(
                "item {item_id} is answered twice in the response with different answers "
                "({first!r} at line {first_at}, {second!r} at line {second_at})",
                VALUE_HINT,
            ),
        },
    ),
    _type(
        "ambiguous-group",
        "error",
        "A subject's --by group changes across its visits",
        "give the subject one value of the field, or group by a baseline classification "
        "(--by SCALE.CLASSIFICATION)",
        "--by {by} is {values} at different visits ({visits}); the subject is in no group",
    ),
    # scores ---------------------------------------------------------------------------
    _type(
        "insufficient-items",
        "error",
        "Too few items answered to compute the score",
        "complete the missing items; the scale's missing-data rule allows no score",
        {
            "": "score {score}: {answered} of {total} answered, the rule needs {need}",
            "dependents": "score {score}: {answered} of {total} answered, the rule needs "
            "{need} (so {dependents} {verb} empty too)",
        },
    ),
    _type(
        "flag-undetermined",
        "warning",
        "A flag could not be determined",
        "the item or score the flag depends on is missing",
        "flag {flag} ({condition}) cannot be determined",
    ),
    _type(
        "rating-check",
        "warning",
        "A rating-consistency check of the scale holds",
        "review the rating with the rater: a consistency check flags ratings worth a second "
        "look, not an error in the data",
        "rating check {check} ({label}): {condition}",
    ),
    _type(
        "reported-score-mismatch",
        "error",
        "A score stored in the input differs from the score computed from its items",
        "check the items and the stored score; ketascore's score follows the scale's rules",
        {
            "": "the input stores {score} = {stored} but the items give {ours}",
            "none": "the input stores {score} = {stored} but ketascore computes no {score} "
            "(see the other issues of this record)",
            "unreadable": "the input stores {score} = {stored}, which is not a number, so it "
            "cannot be compared with ketascore's {score}",
        },
    ),
    # change from baseline -------------------------------------------------------------
    _type(
        "no-baseline",
        "error",
        "Subject has no baseline value",
        "add the baseline record, or choose the baseline visit with --baseline",
        {
            "no-score": "the baseline ({baseline}) has no {score} score; change not computed",
            "no-flag": "no record is flagged as the baseline (baseline flag Y); change not "
            "computed",
            "no-visit": "no record at the baseline visit {baseline!r}; change not computed",
        },
    ),
    _type(
        "no-study-day",
        "error",
        "A record has no study day, so no analysis window can hold it",
        "add the study day (day) to the record, or analyse without --windows",
        "visit {visit} has no study day, so it cannot be placed in an analysis window; "
        "not analysed",
    ),
    _type(
        "baseline-zero",
        "warning",
        "Baseline is 0: percent change is undefined",
        "nothing to do: change is reported, percent change and response are left empty",
        "baseline {score} is 0 at visit {visit}",
    ),
    _type(
        "rci-undetermined",
        "warning",
        "No reliable change index: no standard deviation to compute it with",
        "declare reliability.sd in the scale file, or analyse more subjects; change is "
        "reported without the reliable change index",
        "{score} declares its reliability, but the scale declares no standard deviation and "
        "{n} baseline value(s) are analysed (2 or more are needed)",
    ),
    _type(
        "ambiguous-baseline",
        "error",
        "More than one record could be a subject's baseline",
        "keep one baseline record per subject, or name the baseline visit with --baseline",
        {
            "flagged": "{count} records are flagged as the baseline (visits {visits}); "
            "change not computed",
            "spelling": "visits {visits} are all the baseline visit {baseline!r} (they "
            "differ only by case or spacing); change not computed",
            "tie-day": "visits {visits} share the earliest study day, {day}; change not computed",
            "tie-date": "visits {visits} share the earliest date, {date}; change not computed",
        },
    ),
    _type(
        "visit-spelling",
        "warning",
        "Visit names that differ only by case or spacing",
        "spell each visit the same way in every file",
        "visit names {visits} differ only by case or spacing ({subjects} subject(s)); they are "
        "analysed as different visits",
    ),
    _type(
        "subject-spelling",
        "warning",
        "Subject ids that differ only by spacing or characters that do not show",
        "write each subject's id the same way in every file (retype the ids), if they are "
        "one subject",
        "subject ids {subjects} differ only by spacing or characters that do not show (a "
        "zero-width space, a no-break space); they are analysed as different subjects",
    ),
    _type(
        "level-spelling",
        "warning",
        "Groups or levels of a factor that differ only by case or spacing",
        "spell each level the same way (or recode them in the source) if they are one",
        "{variable} has levels {levels} that differ only by case or spacing; they are "
        "analysed as different levels",
    ),
    _type(
        "outside-windows",
        "warning",
        "A record's study day falls in no analysis window",
        "widen a window in the windows file if the record belongs to the analysis",
        "study day {day} falls in no analysis window; not analysed",
    ),
    _type(
        "no-records",
        "error",
        "The input holds no record of the scale analysed",
        "check --scale and --score against the input (ketascore score shows what the files hold)",
        "no {scale} record in the input has a {score} score; nothing to analyse",
    ),
    _type(
        "no-change",
        "warning",
        "No subject has a value after its baseline",
        "add the records of the later visits, or check --baseline",
        "no subject has a {scale} {score} value after its baseline, so there is no change "
        "from baseline to report",
    ),
    _type(
        "no-study-id",
        "warning",
        "The ADaM table has no study identifier",
        "give it with --study-id (or carry a study_id field on the records)",
        "no record carries a study id, so STUDYID is empty",
    ),
    # clinic: outcome measures, dosing sessions (ketascore.clinic) -------------------------
    _type(
        "measure-no-date",
        "warning",
        "A record has no date, so an outcome measure cannot place it in time",
        "add the date (YYYY-MM-DD) to the record",
        "visit {visit} has no date; not used by the measure {measure}",
    ),
    _type(
        "session-invalid",
        "error",
        "A dosing session's field cannot be read",
        "correct the value in the sessions file; the rules that need it are not evaluated",
        {
            "": "{field}: {reason}",
            "missing": "the session has no {field}; the session was not read",
            "file": Template(
                "cannot read the sessions file: {error}",
                "write the sessions as CSV (one row each), or as a YAML/JSON list of mappings",
            ),
        },
    ),
    # clinical formats (ketascore.readers) ---------------------------------------------
    _type(
        "missing-column",
        "error",
        "A column the format or the mapping file needs is not in the file",
        "check the file's header against the mapping file, or correct the mapping file",
        {
            "mapping": "the mapping {where} names column {column!r} for {what}, but the file "
            "has no such column (columns: {columns})",
            "scored-item": Template(
                "the table has no column {columns}, which {scale} scores read ({scores}): every "
                "row would be left unscored or prorated, so its {scale} ratings were not "
                "scored{alike}",
                "add the column (blank cells where the item was not asked), or name the "
                "item's column with --map",
            ),
            "mapped-item": Template(
                "the mapping {where} names nothing for {scale} item(s) {items}, which {scale} "
                "scores read ({scores}): every row would be left unscored or prorated, so the "
                "file was not read",
                "name each item's column (or linkId) in the mapping file's items",
            ),
            "no-subject": Template(
                "the mapping {mapping} names no subject column; the file was not read",
                "add subject: <column> to the mapping file",
            ),
            "no-visit": Template(
                "the mapping {mapping} names no visit column or constant; the file was not read",
                "add visit: <column> or visit: {{value: <visit name>}} to the mapping file",
            ),
            "sdtm": Template(
                "this SDTM {domain} file lacks the column(s) {columns} (columns: {header}); "
                "the file was not read",
                "export the whole domain (USUBJID, VISIT, --TESTCD, --STRESN, --ORRES), or "
                "describe the columns with --map",
            ),
            "redcap-record-id": Template(
                "the first column, {column!r}, is not a record id (a REDCap export gives the "
                "record id first); the file was not read",
                "put the record id column first, give the data dictionary with "
                "--redcap-dictionary, or name the subject column in a mapping file (--map)",
            ),
            "carry": "the mapping {where} names column {column!r} for the carried field "
            "{name!r}, but the file has no such column",
            "item": Template(
                "the mapping names column {column!r} for this item, but the file has no such "
                "column",
                VALUE_HINT,
            ),
        },
    ),
    _type(
        "cell-error",
        "error",
        "A spreadsheet cell holds an error or a formula that was never calculated",
        "fix the formula in the spreadsheet, or clear the cell if the item was not rated",
        {
            "": Template("sheet {sheet!r} cell {cell} holds the formula error {value}", VALUE_HINT),
            "formula": Template(
                "sheet {sheet!r} cell {cell} holds a formula ({formula}) whose value was never "
                "calculated (the file was written by a program that does not calculate "
                "formulas); open and save it in a spreadsheet program",
                VALUE_HINT,
            ),
        },
    ),
    _type(
        "hidden-sheet",
        "warning",
        "Hidden sheets come before the sheet read",
        "nothing to do if that sheet holds the ratings; to read a hidden one, name it with --sheet",
        "the workbook's first sheet(s) {sheets} are hidden; the first sheet shown, {sheet!r}, "
        "was read",
    ),
    _type(
        "merged-cells",
        "error",
        "Spreadsheet cells are merged, so all but the first read blank",
        "unmerge the cells and write the value in each one",
        {
            "": "sheet {sheet!r} cells {range} are merged: only the first holds a value and "
            "the others read blank; row(s) {rows} skipped",
            "header": Template(
                "sheet {sheet!r} cells {range} of the header row are merged, so its columns "
                "cannot all be named; the sheet was not read",
                "unmerge the cells and give each column its own name",
            ),
        },
    ),
    _type(
        "unknown-answer-code",
        "error",
        "Answer code is not one of the item's answer codes",
        "check the code against the scale's answer codes (ketascore scales show), or give "
        "the Questionnaire with --questionnaire",
        {
            "": Template(
                "answer code {answer_code}{system} is not an answer code of this item "
                "(codes: {codes})",
                VALUE_HINT,
            ),
            "system": Template(
                "answer code {answer_code} is given in the code system {system}, not "
                "{expected}: a code means what its system says, so it is not taken for "
                "this item's answer",
                "correct the coding's system, or give the Questionnaire that declares the "
                "code with --questionnaire; " + LEFT_EMPTY,
            ),
            "redcap": Template(
                "answer {value!r} is neither a code nor a label of the choices of REDCap "
                "field {field} ({choices})",
                VALUE_HINT,
            ),
        },
    ),
    _type(
        "unsupported-resource",
        "error",
        "FHIR resource is not a QuestionnaireResponse",
        "give QuestionnaireResponse resources: one, a Bundle of them, or NDJSON",
        "the resource is a {kind}, not a QuestionnaireResponse; skipped",
    ),
    _type(
        "partial-date",
        "warning",
        "A date given in part, as SDTM allows (a year, or a year and month)",
        "nothing to do if the visits' order is known otherwise (the study day, --DY, or the "
        "visit); a change from baseline orders visits by study day, else by date",
        "{field} {value!r} is a partial date; the record is scored without a date",
    ),
    _type(
        "derived-answer",
        "warning",
        "Rows of an item that the sponsor derived (SDTM --DRVFL = Y) are not answers",
        "nothing to do if the item was not answered: only answers are scored, and the "
        "scale's missing-data rule decides the score without the item",
        "{count} row(s) derived by the sponsor ({column} = Y), not answered; not used as answers",
    ),
    _type(
        "unknown-category",
        "warning",
        "Rows of a category that no known scale declares",
        "nothing to do if they are not needed; otherwise add a scale whose codes declare "
        "that category (codes.cdisc_category)",
        "{count} row(s) of category {category!r} match no known scale; ignored",
    ),
    _type(
        "no-scale-items",
        "warning",
        "File holds no items of a known scale",
        "name the item columns <scale>_<item>, or describe them with --map",
        {
            "redcap": Template(
                "{rows} row(s) at {visits} visit(s) ({shown}) but no item of a known scale; "
                "nothing to score",
                "name the item fields <scale>_<item> (phq9_1), or describe them with --map",
            ),
            "fhir": Template(
                "{resource} answers no item of a known scale (linkIds: {links})",
                "give the Questionnaire with --questionnaire (item codes), or map the linkIds "
                "to items with --map",
            ),
        },
    ),
    # analysis (ketascore model) -------------------------------------------------------
    _type(
        "model-rows-dropped",
        "warning",
        "Rows were left out of the model for a missing covariate",
        "fill in the covariate, or leave it out of the model; the rest were analysed",
        "{count} row(s) with an outcome have no {variable}; not used in the model",
    ),
    _type(
        "model-visit-empty",
        "warning",
        "A visit has no data for the model",
        "nothing to do if the visit was not held; otherwise check the visit names",
        "no observation with an outcome at this visit; the model leaves it out",
    ),
    _type(
        "model-one-level",
        "warning",
        "A factor of the model has one level",
        "leave the factor out of the model; it cannot explain anything",
        "factor {variable} has one level ({level!r}) among the rows used",
    ),
    _type(
        "model-singular",
        "warning",
        "The design is singular",
        "remove a covariate that is constant or a combination of others; an interaction "
        "cell without data cannot be estimated",
        "{count} model column(s) are linear combinations of the others and are set to 0 "
        "(as SAS does): {columns}",
    ),
    _type(
        "model-not-converged",
        "error",
        "The model did not converge",
        "try a simpler covariance structure (--covariance cs or ar1), or check the data for "
        "visits with very few subjects",
        {
            "": "the fit with {covariance} covariance did not converge after {iterations} "
            "iteration(s) ({reason}); no estimates are reported",
            "hessian": "the fit with {covariance} covariance stopped where the likelihood is "
            "not curved in every direction (a parameter is at the edge of its range or not "
            "identified); no estimates are reported",
        },
    ),
    _type(
        "model-exact-fit",
        "error",
        "The model fits the outcome exactly",
        "check the outcome: a model needs variation it does not explain (every change 0, or "
        "a constant change, leaves none)",
        "{reason}; no estimates are reported",
    ),
    _type(
        "model-boundary",
        "warning",
        "A covariance parameter is at the edge of its range",
        "the estimates are reported; consider a simpler covariance structure",
        "covariance parameter {parameter} is {value:.4f}, at the edge of its range",
    ),
    _type(
        "model-not-hierarchical",
        "warning",
        "Type 3 tests cannot be formed",
        "include every main effect of an interaction in the model (--terms) for Type 3 tests",
        "the model is not hierarchical, so no Type 3 test is reported for {terms}",
    ),
    _type(
        "model-not-estimable",
        "warning",
        "An LS mean cannot be estimated",
        "the group has no data at that visit; the other LS means are reported",
        "the LS mean of group {group} is not estimable at this visit",
    ),
    _type(
        "analysis-skipped",
        "warning",
        "An analysis could not be run on these data",
        "see the message; the other analyses are reported",
        "{analysis}: {reason}",
    ),
    _type(
        "coding-differs",
        "warning",
        "The source codes answers differently from the scale; they were read by their labels",
        "nothing to do: each answer was scored by the meaning of its label",
        {
            "sdtm": "{column} holds {code} where the answer is {label!r}, which the scale "
            "scores {value} ({count} row(s)); scored {value}, by the label",
            "redcap": "REDCap field {field} codes its choices otherwise than the scale "
            "({recoding}); answers were scored by their labels",
        },
    ),
    _type(
        "redcap-codes",
        "warning",
        "REDCap choice codes were taken as scores without the data dictionary",
        "give the project's data dictionary with --redcap-dictionary (in REDCap: Project "
        "Setup, Data Dictionary, download the current data dictionary): each code is then "
        "checked against its label; nothing to do if the fields' codes are the scale's scores",
        "{count} answer(s) ({where}) are REDCap codes, taken as the scale's scores without "
        "the project's data dictionary: where a field codes a choice otherwise than the scale "
        "(1 = Not at all, which the scale scores 0), every score from it is off",
    ),
    _type(
        "coding-conflict",
        "error",
        "Two sources of an answer disagree, or its meaning cannot be matched with certainty",
        "make the sources agree; the answer was not scored",
        {
            "sdtm": Template(
                "{first_column} is {first!r} but {second_column} is {second!r}, so the answer "
                "is ambiguous",
                "correct {first_column} or {second_column} so that they agree; " + LEFT_EMPTY,
            ),
            "redcap": Template(
                "answer {value!r} is choice {code!r} ({label!r}) of REDCap field {field}, but "
                "{label!r} is not an answer label of this item (labels: {labels}), so its score "
                "is not certain",
                "give the choice the scale's label in the data dictionary, or map the field "
                "with --map; " + LEFT_EMPTY,
            ),
            "redcap-code-label": Template(
                "answer {value!r} is choice {code!r} ({label!r}) of REDCap field {field}, and "
                "also the label of choice {other!r}, which means another score: whether the "
                "export holds codes or labels is not certain",
                "export the records as raw codes with a dictionary whose labels are not other "
                "choices' codes, or map the field with --map; " + LEFT_EMPTY,
            ),
        },
    ),
]

ISSUE_TYPES: dict[str, IssueType] = {t.code: t for t in _TYPES}


LONG_VALUE = 120  # a quoted value ({value!r}) longer than this is shortened in messages


class _Formatter(string.Formatter):
    """str.format, with lists joined by ", ", and a long value quoted from the data (a cell
    of a megabyte) shown by its start, its end and its length, so a message stays short. A
    text that holds a character that does not show (a column named ``subject`` and a
    zero-width space) is quoted with escapes, so the message never shows it as another."""

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if conversion == "r" and isinstance(value, str) and len(value) > LONG_VALUE:
            return f"{value[:60] + '...' + value[-12:]!r} ({len(value):,} characters)"
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> Any:
        if isinstance(value, list | tuple):
            value = ", ".join(_shown_name(v) if isinstance(v, str) else str(v) for v in value)
        elif isinstance(value, str):
            value = _shown_name(value)
        return super().format_field(value, format_spec)


_FORMATTER = _Formatter()


def _shown_name(name: str) -> str:
    """A name (a subject, a visit, a column) as a message shows it: quoted with escapes
    when it holds a character that does not show (``'S1\\u200b'``, which prints as S1)."""
    from ketascore.core.values import unseen_character

    return repr(name) if unseen_character(name) else name


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
        context.append(f"subject {_shown_name(subject)}")
    if visit is not None:
        context.append(f"visit {_shown_name(visit)}")
    if scale is not None and item is not None:
        context.append(f"{scale} item {item}")
    elif scale is not None:
        context.append(scale)
    elif item is not None:
        context.append(f"item {item}")
    if context:
        parts.append(", ".join(context))
    return ": ".join(parts)


ISSUE_COLUMNS = (
    "code",
    "severity",
    "message",
    "file",
    "line",
    "subject",
    "visit",
    "scale",
    "item",
    "hint",
)


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem, located as precisely as the input allows. ``message`` and ``hint`` are
    written from the catalogue's template for ``code`` and ``variant`` with ``params``."""

    code: str
    variant: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    file: str | None = None
    line: int | None = None
    subject: str | None = None
    visit: str | None = None
    scale: str | None = None
    item: str | None = None

    @property
    def severity(self) -> Severity:
        return ISSUE_TYPES[self.code].severity

    def _fields(self) -> dict[str, Any]:
        """What a template may name: the location, then the parameters."""
        return {
            "file": self.file,
            "line": self.line,
            "subject": self.subject,
            "visit": self.visit,
            "scale": self.scale,
            "item": self.item,
            **self.params,
        }

    @property
    def detail(self) -> str:
        """The template's text with its parameters, without location or hint."""
        template = ISSUE_TYPES[self.code].templates[self.variant]
        return _FORMATTER.format(template.text, **self._fields())

    @property
    def hint(self) -> str:
        kind = ISSUE_TYPES[self.code]
        template = kind.templates[self.variant]
        if template.hint is None:
            return kind.hint
        return _FORMATTER.format(template.hint, **{**self._fields(), "hint": kind.hint})

    @property
    def message(self) -> str:
        """``<where>: <detail>; <what to do>``."""
        prefix = where(self.file, self.line, self.subject, self.visit, self.scale, self.item)
        detail = self.detail
        return f"{prefix}: {detail}; {self.hint}" if prefix else f"{detail}; {self.hint}"

    def __hash__(self) -> int:  # params may hold lists: the written issue identifies it
        return hash((self.code, self.variant, self.message))

    def as_dict(self) -> dict[str, Any]:
        """The issue as the JSON contract writes it."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "subject": self.subject,
            "visit": self.visit,
            "scale": self.scale,
            "item": self.item,
            "hint": self.hint,
        }

    def at(self, **location: Any) -> Issue:
        """The same issue at another location (file, line, subject, ...)."""
        from dataclasses import replace

        return replace(self, **location)


def make_issue(
    code: str,
    variant: str = "",
    /,
    *,
    file: str | None = None,
    line: int | None = None,
    subject: str | None = None,
    visit: str | None = None,
    scale: str | None = None,
    item: str | None = None,
    **params: Any,
) -> Issue:
    """An issue of ``code`` written with the template ``variant`` and ``params``."""
    templates = ISSUE_TYPES[code].templates
    if variant not in templates:
        raise KeyError(f"issue {code} has no message {variant!r}")
    return Issue(code, variant, params, file, line, subject, visit, scale, item)


def has_errors(issues: list[Issue]) -> bool:
    return any(i.severity == "error" for i in issues)


def severity_counts(issues: Iterable[Issue]) -> tuple[int, int]:
    """How many of ``issues`` are errors, and how many warnings."""
    errors = warnings = 0
    for issue in issues:
        if issue.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings


def missing_id(
    subject: str | None,
    visit: str | None,
    file: str | None,
    line: int | None,
    names: tuple[str, str] = ("subject", "visit"),
    cells: tuple[Any, Any] = (None, None),
) -> Issue:
    """A row without a subject or a visit (``names``: what its format calls the two),
    skipped: the message names the first that is missing, or, when its cell (``cells``:
    the row's raw subject and visit) is a floating-point number that is no exact id
    (``values.inexact_id``), says so."""
    from ketascore.core.values import id_least, id_limit, id_width, inexact_id

    at = 0 if subject is None else 1
    cell = cells[at]
    if inexact_id(cell):
        least = id_least(cell)
        if abs(cell) < least:  # (a subnormal number)
            bound = {"least": f"2^{math.frexp(least)[1] - 1} = {least!r}"}
        else:
            limit = id_limit(cell)
            bound = {"limit": f"2^{limit.bit_length() - 1} = {limit}"}
        return make_issue(
            "bad-field",
            "tiny-id" if "least" in bound else "inexact-id",
            field=names[at],
            value=repr(cell),
            **bound,
            width=id_width(cell),
            file=file,
            line=line,
            subject=subject,
            visit=visit,
        )
    return make_issue(
        "missing-field", "row", field=names[at], file=file, line=line, subject=subject, visit=visit
    )
