"""REDCap "export records" CSV files (raw codes, or labels with the data dictionary).

- The subject is the record id: the first column of the export (the first field of the data
  dictionary), or the mapping file's ``subject``. A first column that cannot be a record id
  (``redcap_event_name``, ``phq9_1``: a file whose columns were reordered) is an error: its
  values are never taken for subjects.
- The visit is the event (``redcap_event_name``, e.g. ``week_1_arm_1``). A classic project
  has no events; its visit is ``event_1_arm_1``, the name REDCap itself gives its single
  event. A repeat instance (``redcap_repeat_instance``, of a repeating instrument or event)
  is part of the visit: ``week_1_arm_1#2`` is the second instance at event week_1_arm_1,
  whether the file says 2, 2.0 (saved by a spreadsheet) or 02. REDCap numbers instances
  1, 2, 3 ...: a row with another instance (``0``, ``-1``, ``1.5``, ``x``) is skipped with
  an issue (``bad-field``), its visit being unknown.
- Item columns are found by their names, ``<scale>_<item>`` (``phq9_1``), or by a mapping
  file. A column ``<scale>_<score>`` (``phq9_total``, a REDCap calculated field) is a score
  the export stores: it is compared with the computed score, never used as an answer.
- ``<form>_complete`` columns, checkbox columns (``field___code``) and every other field are
  not copied to the output (they may identify people); ``redcap_data_access_group`` is kept.
- With the data dictionary (``--redcap-dictionary``: the standard data dictionary CSV),
  exports with labels are understood: column headers that are field labels are matched back
  to field names, and answers that are choice labels (``"1, Not at all | 2, Several days"``)
  back to their raw codes, which are then scored. An answer that is neither a code nor a label
  of the field's choices is rejected (``unknown-answer-code``).
- With the data dictionary, a field's coding is checked against the scale's by meaning: a
  choice whose label is one of the item's answer labels must have the scale's value for that
  label. When a field codes its choices otherwise (``1, Not at all | 2, Several days`` where
  the scale has Not at all = 0), its answers are scored by the meaning of their labels (a
  ``coding-differs`` warning names the field), and an answer whose choice label the scale
  does not know is not scored (``coding-conflict``): the raw code is never scored as if it
  were the scale's. A field whose labels match none of the scale's keeps its codes: there is
  nothing to compare them with. A label that is a number means that score (``1, 0 | 2, 1``:
  choice 1 is scored 0), and an answer that is one choice's code and another's label (``1``
  there) is not scored (``coding-conflict``): raw or label export, which is meant is not
  certain.
- Without the data dictionary, answers that are codes (a raw export) are taken as the
  scale's scores, with one warning per file (``redcap-codes``): that holds only if the
  project codes its choices as the scale does (many number them from 1). Answers that are
  labels are matched by meaning.
- A data dictionary that lists a field twice, or a choice code twice, is refused: either
  would make the meaning of an answer ambiguous.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketascore.core.issues import Issue, make_issue, missing_id
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.scale import ItemRule
from ketascore.core.values import (
    MISSING,
    Rejection,
    format_number,
    is_number,
    label_key,
    parse_value,
    strip,
)
from ketascore.readers import (
    FormatContext,
    ReadResult,
    Table,
    check_table,
    csv_table,
    is_blank,
    item_value,
    split_column,
    text_field,
)

from .fields import number_text
from .tables import find_column, known_scales, read_mapped_table

CLASSIC_EVENT = "event_1_arm_1"
EVENT, INSTRUMENT, INSTANCE = (
    "redcap_event_name",
    "redcap_repeat_instrument",
    "redcap_repeat_instance",
)
DAG = "redcap_data_access_group"
VISIT_COLUMN = "redcap visit"
CHOICE_TYPES = frozenset({"radio", "dropdown", "checkbox"})
# the headers of a label export that are no field's label, compared as labels are
LABEL_HEADERS = {
    label_key(label): name
    for label, name in (
        ("Event Name", EVENT),
        ("Repeat Instrument", INSTRUMENT),
        ("Repeat Instance", INSTANCE),
        ("Data Access Group", DAG),
    )
}


class RedcapDictionaryError(ValueError):
    pass


@dataclass
class RedcapField:
    name: str
    form: str
    type: str
    label: str
    choices: dict[str, str] = field(default_factory=dict)  # raw code -> label

    def code_of(self, answer: str) -> str | None:
        """The raw code of an answer given as a code or as a choice label (stripped of ASCII
        whitespace only, as the value grammar strips answers: ``"\\xa01"`` is no code)."""
        text = strip(answer)
        if text in self.choices:
            return text
        return self.labelled(text)

    def labelled(self, answer: str) -> str | None:
        """The code of the one choice whose label the answer is, if any."""
        wanted = label_key(strip(answer))
        found = [code for code, label in self.choices.items() if label_key(label) == wanted]
        return found[0] if len(found) == 1 else None


@dataclass
class RedcapDictionary:
    source: str
    fields: dict[str, RedcapField]

    @property
    def record_id(self) -> str | None:
        return next(iter(self.fields), None)

    def field_by_label(self) -> dict[str, str]:
        labels: dict[str, list[str]] = {}
        for f in self.fields.values():
            labels.setdefault(label_key(f.label), []).append(f.name)
        return {label: names[0] for label, names in labels.items() if len(names) == 1}


def parse_choices(text: str) -> dict[str, str]:
    """``"1, Not at all | 2, Several days"`` -> {"1": "Not at all", "2": "Several days"};
    raises RedcapDictionaryError when a code is given twice."""
    out: dict[str, str] = {}
    for part in text.split("|"):
        code, sep, label = part.partition(",")
        if sep and code.strip():
            if code.strip() in out:
                raise RedcapDictionaryError(f"choice code {code.strip()!r} is given twice")
            out[code.strip()] = label.strip()
    return out


def load_redcap_dictionary_text(text: str, source: str = "<dictionary>") -> RedcapDictionary:
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))
    if not rows:
        raise RedcapDictionaryError(f"{source}: the data dictionary is empty")
    header = [h.strip().casefold() for h in rows[0]]

    def find(*starts: str) -> int | None:
        for i, h in enumerate(header):
            if any(h.startswith(s) for s in starts):
                return i
        return None

    name_i = find("variable / field name", "field name", "variable")
    form_i = find("form name", "form")
    type_i = find("field type")
    label_i = find("field label")
    choices_i = find("choices, calculations", "choices")
    if name_i is None or type_i is None:
        raise RedcapDictionaryError(
            f"{source}: not a REDCap data dictionary (no 'Variable / Field Name' and "
            "'Field Type' columns)"
        )
    fields: dict[str, RedcapField] = {}
    for row in rows[1:]:
        if len(row) <= max(name_i, type_i) or not row[name_i].strip():
            continue

        def cell(i: int | None, row: list[str] = row) -> str:
            return row[i].strip() if i is not None and i < len(row) else ""

        kind = cell(type_i).casefold()
        name = cell(name_i)
        choices: dict[str, str] = {}
        if kind in CHOICE_TYPES:
            try:
                choices = parse_choices(cell(choices_i))
            except RedcapDictionaryError as exc:
                raise RedcapDictionaryError(f"{source}: field {name}: {exc}") from None
        elif kind == "yesno":
            choices = {"1": "Yes", "0": "No"}
        elif kind == "truefalse":
            choices = {"1": "True", "0": "False"}
        if name in fields:
            raise RedcapDictionaryError(
                f"{source}: field {name} is listed twice, so the meaning of its answers is "
                "ambiguous; keep one row per field"
            )
        fields[name] = RedcapField(name, cell(form_i), kind, cell(label_i), choices)
    if not fields:
        raise RedcapDictionaryError(f"{source}: the data dictionary lists no fields")
    return RedcapDictionary(source, fields)


def load_redcap_dictionary(path: str | Path) -> RedcapDictionary:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RedcapDictionaryError(f"{path}: cannot read the data dictionary: {exc}") from None
    return load_redcap_dictionary_text(text, str(path))


def looks_like_redcap(header: list[str]) -> bool:
    folded = {h.strip().casefold() for h in header}
    if EVENT in folded or INSTRUMENT in folded:
        return True
    return "record_id" in folded and any(h.endswith("_complete") for h in folded)


# --------------------------------------------------------------------------------------
# Reading


def _rename_label_headers(header: list[str], dictionary: RedcapDictionary) -> list[str]:
    """A label export's headers (field labels) back to field names, where they match."""
    if dictionary.record_id in header:
        return header
    by_label = dictionary.field_by_label()
    out = []
    for h in header:
        key = label_key(h)
        out.append(LABEL_HEADERS.get(key) or by_label.get(key) or h)
    return out


def redcap_visits(table: Table, file: str, issues: list[Issue], subject: int = 0) -> Table:
    """The table with the visit of each row as a column of its own (``VISIT_COLUMN``): the
    event (or event_1_arm_1), with ``#instance`` if repeated. A repeat instance is a whole
    number of 1 or more (``2``, ``2.0``, ``02``); a row with another one (``-1``, ``1.5``,
    ``NaN``) has no known visit and is skipped with an issue (naming the record id, in
    column ``subject``)."""
    event = find_column(table.header, EVENT)
    instance = find_column(table.header, INSTANCE)
    rows: list[tuple[int, list[Any]]] = []
    for line, cells in table.rows:
        visit = text_field(cells[event]) if event is not None else CLASSIC_EVENT
        number = number_text(cells[instance]) if instance is not None else None  # (2.0 is 2)
        if number is not None and not (number.isdecimal() and number.isascii() and number != "0"):
            issues.append(
                make_issue(
                    "bad-field",
                    "instance",
                    file=file,
                    line=line,
                    subject=text_field(cells[subject]),
                    visit=visit,
                    value=number,
                )
            )
            continue
        if visit is not None and number is not None:
            visit = f"{visit}#{number}"
        rows.append((line, [*cells, visit]))
    return Table([*table.header, VISIT_COLUMN], rows)


@dataclass
class Coding:
    """How a field's choice codes become the item's values, when the dictionary codes them
    otherwise than the scale (see the module text): code -> value (None: a missing code's
    label) or the Rejection of a choice whose meaning is not certain."""

    values: dict[str, Any]


def field_coding(fld: RedcapField, rule: ItemRule) -> Coding | None:
    """The field's recoding by meaning, or None when its codes are the scale's (or cannot
    be compared: none of its labels is one of the item's)."""
    meanings: dict[str, Any] = {}
    differs = False
    for code, label in fld.choices.items():
        meaning = parse_value(rule, label)  # (a label "0" means the score 0)
        if isinstance(meaning, Rejection):
            continue  # not one of the item's labels
        meanings[code] = meaning
        as_code = parse_value(rule, code)
        if as_code != meaning:
            differs = True
    if not differs:
        return None
    labels = ", ".join(repr(lbl) for lbl in rule.answer_labels[:8])
    values: dict[str, Any] = {}
    for code, label in fld.choices.items():
        if code in meanings:
            values[code] = None if meanings[code] is MISSING else meanings[code]
        else:
            values[code] = Rejection(
                "coding-conflict",
                "redcap",
                {"value": code, "code": code, "label": label, "field": fld.name, "labels": labels},
            )
    return Coding(values)


def _recoding(fld: RedcapField, coding: Coding) -> str:
    """``'Not at all' 1 -> 0, 'Several days' 2 -> 1, ...``: what the recoding did."""
    pairs = [
        f"{label!r} {code} -> {format_number(value)}"
        for code, label in fld.choices.items()
        if not isinstance(value := coding.values[code], Rejection) and value is not None
    ]
    return ", ".join(pairs[:6]) + (", ..." if len(pairs) > 6 else "")


def _decode_answers(
    table: Table,
    columns: dict[int, str],
    dictionary: RedcapDictionary | None,
    rules: dict[int, ItemRule] | None = None,
    out: ReadResult | None = None,
    file: str | None = None,
) -> None:
    """Choice labels back to raw codes, in place; unknown answers become Rejections. With
    ``rules`` (the item of each column), codes the dictionary gives another meaning than
    the scale are replaced by the item's value for their label (see ``field_coding``)."""
    if dictionary is None:
        return
    codings: dict[int, Coding] = {}
    for i, name in columns.items():
        fld = dictionary.fields.get(name)
        rule = (rules or {}).get(i)
        if fld is None or not fld.choices or rule is None:
            continue
        coding = field_coding(fld, rule)
        if coding is None:
            continue
        codings[i] = coding
        if out is not None:
            out.issues.append(
                make_issue(
                    "coding-differs",
                    "redcap",
                    file=file,
                    line=1,
                    field=name,
                    recoding=_recoding(fld, coding),
                )
            )
    for _, cells in table.rows:
        for i, name in columns.items():
            fld = dictionary.fields.get(name)
            value = cells[i]
            if fld is None or not fld.choices or is_blank(value):
                continue
            if not isinstance(value, str):
                if i not in codings:
                    continue
                value = format_number(value) if isinstance(value, int | float) else str(value)
            code = fld.code_of(value)
            if code is None:
                shown = ", ".join(f"{c} = {lbl}" for c, lbl in list(fld.choices.items())[:8])
                cells[i] = Rejection(
                    "unknown-answer-code",
                    "redcap",
                    {"value": strip(value), "field": name, "choices": shown},
                )
            elif i in codings:
                cells[i] = codings[i].values[code]
                other = fld.labelled(value)
                if other is not None and codings[i].values[other] != cells[i]:
                    # "1" is choice 1 (labelled "0") and the label of choice 2: raw or label?
                    cells[i] = Rejection(
                        "coding-conflict",
                        "redcap-code-label",
                        {
                            "value": strip(value),
                            "code": code,
                            "label": fld.choices[code],
                            "other": other,
                            "field": name,
                        },
                    )
            else:
                cells[i] = code


def read_redcap(text: str, file: str, context: FormatContext) -> ReadResult:
    out = ReadResult(files=[file])
    table = csv_table(text, file, out.issues)
    if table is None:
        return out
    dictionary: RedcapDictionary | None = context.options.redcap_dictionary
    written = table.header  # (a label export's labels: a row repeating them is its header)
    if dictionary is not None:
        table = Table(_rename_label_headers(table.header, dictionary), table.rows)
    checked = check_table(table, file, out.issues, required=(), written=written)
    if checked is None:
        return out
    table = checked
    if not table.header:
        return out
    mapping = context.options.mapping
    subject_name = (
        (dictionary.record_id if dictionary is not None else None)
        if dictionary is not None and dictionary.record_id in table.header
        else table.header[0]
    )
    if (mapping is None or mapping.spec.subject is None) and not _may_be_record_id(
        subject_name, context
    ):
        out.issues.append(
            make_issue("missing-column", "redcap-record-id", file=file, line=1, column=subject_name)
        )
        return out
    # the visit as a column of its own, so mapped and wide reading see it like any other
    table = redcap_visits(table, file, out.issues, table.header.index(subject_name))
    if mapping is not None:
        item_columns = {
            i: h
            for i, h in enumerate(table.header)
            if any(h.casefold() == c.casefold() for c in mapping.spec.items.values())
        }
        _decode_answers(
            table, item_columns, dictionary, _mapped_rules(table, mapping, context), out, file
        )
        read_mapped_table(
            table,
            file,
            mapping,
            context,
            out,
            subject_default=subject_name,
            visit_default=VISIT_COLUMN,
        )
    else:
        _read_named(table, file, subject_name, context, dictionary, out)
    if dictionary is None:
        _codes_as_scores(out, file)
    return out


def _codes_as_scores(out: ReadResult, file: str) -> None:
    """One warning for a file whose answers are codes (a raw export) read without the
    data dictionary: each code is taken as the scale's score, which it is only if the
    project codes its choices as the scale does (a label export's answers are labels,
    matched by meaning)."""
    count = 0
    items: dict[str, dict[str, None]] = {}  # scale -> items answered by a code
    for record in out.records:
        for item, value in record.items.items():
            if isinstance(value, str) and is_number(strip(value)):
                count += 1
                items.setdefault(record.scale or "", {})[item] = None
    if count:
        where = "; ".join(
            f"{scale} item{'s' if len(found) > 1 else ''} "
            + ", ".join(list(found)[:10])
            + (", ..." if len(found) > 10 else "")
            for scale, found in items.items()
        )
        out.issues.append(make_issue("redcap-codes", file=file, line=1, count=count, where=where))


def _may_be_record_id(name: str, context: FormatContext) -> bool:
    """Whether the column taken for the record id (the export's first) may be one: not a
    REDCap system field (``redcap_event_name``), a form status, a checkbox choice, nor an
    item or score field of a known scale (``phq9_1``), which would be read as subjects."""
    folded = name.casefold()
    if folded.startswith("redcap_") or folded.endswith("_complete") or "___" in name:
        return False
    scales = {s.id: s for s in known_scales(context)}
    split = split_column(name, set(scales))
    if split is None:
        return True
    scale, rest = scales[split[0]], split[1]
    return rest.casefold() not in scale.item_lookup and rest not in scale.score_ids


def _mapped_rules(table: Table, mapping: Any, context: FormatContext) -> dict[int, ItemRule]:
    """The item of each column a mapping file names (for checking the field's coding)."""
    from .tables import find_scale

    scale = find_scale(context, mapping.spec.scale)
    if scale is None:
        return {}
    out: dict[int, ItemRule] = {}
    for item, column in mapping.spec.items.items():
        item_id = scale.item_lookup.get(item.casefold())
        index = find_column(table.header, column)
        if item_id is not None and index is not None:
            out[index] = scale.items[item_id]
    return out


def _read_named(
    table: Table,
    file: str,
    subject_name: str,
    context: FormatContext,
    dictionary: RedcapDictionary | None,
    out: ReadResult,
) -> None:
    """Items found by the ``<scale>_<item>`` naming of their fields."""
    scales = {s.id: s for s in known_scales(context)}
    ids = {s.casefold() for s in context.scale_ids} | set(scales)
    items: dict[int, tuple[str, str]] = {}
    scores: dict[int, tuple[str, str]] = {}
    for i, name in enumerate(table.header):
        if "___" in name or name.casefold().endswith("_complete"):
            continue  # checkbox choices, form status
        split = split_column(name, ids)
        if split is None:
            continue
        scale_id, rest = split
        scale = scales.get(scale_id)
        if scale is not None and rest not in scale.item_lookup and rest in scale.score_ids:
            scores[i] = split
        else:
            items[i] = split
    subject_col = table.header.index(subject_name)
    visit_col = len(table.header) - 1
    dag_col = find_column(table.header, DAG)
    if not items:
        visits = sorted({str(cells[visit_col]) for _, cells in table.rows})
        shown = ", ".join(visits[:6]) + (", ..." if len(visits) > 6 else "")
        out.issues.append(
            make_issue(
                "no-scale-items",
                "redcap",
                file=file,
                rows=len(table.rows),
                visits=len(visits),
                shown=shown,
            )
        )
        return
    rules: dict[int, ItemRule] = {}
    for i, (scale_id, item) in items.items():
        scale = scales.get(scale_id)
        item_id = scale.item_lookup.get(item.casefold()) if scale is not None else None
        if scale is not None and item_id is not None:
            rules[i] = scale.items[item_id]
    _decode_answers(table, {i: table.header[i] for i in items}, dictionary, rules, out, file)
    scale_ids = list(dict.fromkeys(s for s, _ in items.values()))
    for line, cells in table.rows:
        subject = text_field(cells[subject_col])
        visit = text_field(cells[visit_col])
        for scale_id in scale_ids:
            answers = {it: item_value(cells[i]) for i, (s, it) in items.items() if s == scale_id}
            if all(is_blank(v) for v in answers.values()):
                continue  # not this instrument's row, or not rated
            if subject is None or visit is None:
                out.issues.append(missing_id(subject, visit, file, line, ("record id", "event")))
                continue
            stored = {
                sc: cells[i]
                for i, (s, sc) in scores.items()
                if s == scale_id and not is_blank(cells[i])
            }
            extra: dict[str, Any] = {}
            if dag_col is not None:
                extra[DAG] = text_field(cells[dag_col])
            out.records.append(
                AnswerRecord(
                    subject=subject,
                    visit=visit,
                    scale=scale_id,
                    items=answers,
                    extra=extra,
                    source=Source(file=file, line=line),
                    reported=stored,
                    reported_lines={sc: line for sc in stored},
                )
            )
