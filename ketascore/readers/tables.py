"""Pieces shared by the readers of clinical formats: the scales and their standard codes,
column look-up, grouping of long rows into records, and tables read through a mapping file."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.scale import Scale
from ketascore.core.values import Rejection
from ketascore.readers import (
    FormatContext,
    ReadResult,
    Table,
    check_date,
    check_day,
    is_blank,
    item_value,
    same_cell,
    text_field,
)

from .fields import carried, checked_field, id_issue, repeated_lines
from .mapping import ColumnMapping, Constant, LoadedMapping

# --------------------------------------------------------------------------------------
# Scales and their codes


def known_scales(context: FormatContext) -> list[Scale]:
    """The built-in scales plus those given to the run (a given scale wins over a built-in
    one of the same id)."""
    from ketascore.core.library import ScaleSet

    scales = ScaleSet(list(context.options.scales))
    out = []
    for scale_id in scales.ids():
        scale = scales.get(scale_id)
        if scale is not None:
            out.append(scale)
    return out


def find_scale(context: FormatContext, scale_id: str) -> Scale | None:
    from ketascore.core.library import ScaleSet

    return ScaleSet(list(context.options.scales)).get(scale_id)


@dataclass
class ScaleCodes:
    """The standard codes a scale declares, for matching coded input to items and scores."""

    scale: Scale
    item_by_loinc: dict[str, str] = field(default_factory=dict)
    item_by_cdisc: dict[str, str] = field(default_factory=dict)  # upper-case code -> item
    score_by_loinc: dict[str, str] = field(default_factory=dict)
    score_by_cdisc: dict[str, str] = field(default_factory=dict)
    category: str | None = None  # CDISC QSCAT / RSCAT
    domain: str | None = None

    @property
    def total_score(self) -> str:
        """The score a form's unnamed total stands for: ``total`` if the scale has one."""
        ids = self.scale.score_ids
        return "total" if "total" in ids else ids[0]


def codes_of(scale: Scale) -> ScaleCodes:
    d = scale.definition
    out = ScaleCodes(scale)
    if d.codes is not None:
        out.category = d.codes.cdisc_category
        out.domain = d.codes.cdisc_domain
    for item in d.items:
        if item.codes is None:
            continue
        if item.codes.loinc:
            out.item_by_loinc[item.codes.loinc] = item.id
        if item.codes.cdisc:
            out.item_by_cdisc[item.codes.cdisc.upper()] = item.id
    for score in d.scores:
        if score.codes is None:
            continue
        if score.codes.loinc:
            out.score_by_loinc[score.codes.loinc] = score.id
        if score.codes.cdisc:
            out.score_by_cdisc[score.codes.cdisc.upper()] = score.id
    return out


def all_codes(context: FormatContext) -> list[ScaleCodes]:
    return [codes_of(s) for s in known_scales(context)]


# --------------------------------------------------------------------------------------
# Columns


def find_column(header: list[str], name: str) -> int | None:
    """The index of a column: the exact name, else the only case-insensitive match."""
    if name in header:
        return header.index(name)
    folded = [h.casefold() for h in header]
    matches = [i for i, h in enumerate(folded) if h == name.casefold()]
    return matches[0] if len(matches) == 1 else None


def shown_columns(header: list[str], limit: int = 12) -> str:
    more = f", ... ({len(header)} in all)" if len(header) > limit else ""
    return ", ".join(header[:limit]) + more


def dated(
    cells: list[Any],
    date_col: int | None,
    day_col: int | None,
    issues: list[Issue],
    file: str,
    line: int,
    subject: str,
    visit: str,
) -> tuple[str | None, int | float | None]:
    """The date and study day of a row, with an issue for each that is unusable."""
    where = {"file": file, "line": line, "subject": subject, "visit": visit}
    date = day = None
    if date_col is not None:
        cell = cells[date_col]
        cell = cell if isinstance(cell, str) else text_field(cell)
        date = checked_field(check_date, cell, issues, "record", **where)
    if day_col is not None:
        day = checked_field(check_day, cells[day_col], issues, "record", **where)
    return date, day


# --------------------------------------------------------------------------------------
# Long rows grouped into records


@dataclass
class _Group:
    line: int
    date: str | None
    day: int | float | None
    extra: dict[str, Any]
    items: dict[str, Any] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    reported: dict[str, Any] = field(default_factory=dict)
    reported_lines: dict[str, int] = field(default_factory=dict)
    repeats: dict[str, list[int]] = field(default_factory=dict)


class LongGroups:
    """Rows of one item each, gathered into one record per subject, visit and scale.

    An item given twice with different values becomes an unusable value (issue
    ``conflicting-records``); given twice alike, it is kept once, and the record notes the
    repeated row (``AnswerRecord.repeated_lines``: a duplicate-record warning).
    """

    def __init__(self, file: str, unit: str = "line"):
        self.file = file
        self.unit = unit
        self.groups: dict[tuple[str, str, str], _Group] = {}

    def group(
        self,
        subject: str,
        visit: str,
        scale: str,
        *,
        line: int,
        date: str | None = None,
        day: int | float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> _Group:
        key = (subject, visit, scale)
        found = self.groups.get(key)
        if found is None:
            found = self.groups[key] = _Group(line, date, day, dict(extra or {}))
        else:
            if found.date is None:
                found.date = date
            if found.day is None:
                found.day = day
            for k, v in (extra or {}).items():
                if found.extra.get(k) is None:
                    found.extra[k] = v
        return found

    def add_item(self, group: _Group, item: str, value: Any, line: int) -> None:
        value = item_value(value)
        if item in group.items:
            old = group.items[item]
            if isinstance(old, Rejection) or not same_cell(old, value):
                group.items[item] = Rejection(
                    "conflicting-records",
                    "item",
                    {
                        "first": old,
                        "second": value,
                        "unit": self.unit,
                        "first_at": group.lines[item],
                        "second_at": line,
                    },
                )
            else:
                group.repeats.setdefault(item, []).append(line)
            return
        group.items[item] = value
        group.lines[item] = line

    def add_reported(self, group: _Group, score: str, value: Any, line: int) -> None:
        if score not in group.reported:
            group.reported[score] = value
            group.reported_lines[score] = line

    def records(self, missing_codes: tuple[Any, ...] = ()) -> Iterable[AnswerRecord]:
        for (subject, visit, scale), g in self.groups.items():
            yield AnswerRecord(
                subject=subject,
                visit=visit,
                scale=scale,
                items=g.items,
                date=g.date,
                day=g.day,
                extra=g.extra,
                source=Source(file=self.file, line=g.line),
                item_lines=g.lines,
                missing_codes=missing_codes,
                reported=g.reported,
                reported_lines=g.reported_lines,
                repeated_lines=repeated_lines(g.items, g.repeats),
            )


# --------------------------------------------------------------------------------------
# Any table through a mapping file


@dataclass
class Resolved:
    """A mapping's columns found in one table (indexes), and what could not be found."""

    subject: int | None = None
    visit: int | None = None
    date: int | None = None
    day: int | None = None
    visit_number: int | None = None
    items: dict[str, int] = field(default_factory=dict)
    missing_items: dict[str, str] = field(default_factory=dict)  # item -> column named
    scores: dict[str, int] = field(default_factory=dict)
    carry: dict[str, int] = field(default_factory=dict)
    item_column: int | None = None
    value_column: int | None = None
    usable: bool = True


def check_mapping_scale(
    mapping: LoadedMapping,
    context: FormatContext,
    file: str,
    issues: list[Issue],
    *,
    every_item: bool = True,
) -> Scale | None:
    """The mapping's scale, with an issue for each item or score id the scale lacks.
    ``every_item``: the mapping is the only way to the items (a table's columns, FHIR
    linkIds), so one that names nothing for an item a score reads would leave every row's
    scores empty or prorated: the file is not read (None), with an issue saying so, as a
    wide table without the item's column is not scored (``Scale.absent_columns_issue``)."""
    spec = mapping.spec
    scale = find_scale(context, spec.scale)
    if scale is None:
        issues.append(
            make_issue(
                "unknown-scale",
                "mapping",
                file=file,
                where=mapping.where("scale"),
                scale_id=spec.scale,
            )
        )
        return None
    for item in spec.items:
        if item.casefold() not in scale.item_lookup:
            issues.append(
                make_issue(
                    "unknown-item",
                    "mapping-item",
                    file=file,
                    scale=scale.id,
                    item=item,
                    where=mapping.where("items", item),
                    key=item,
                    scale_id=scale.id,
                    items=list(scale.items),
                )
            )
    for score in spec.scores:
        if score not in scale.score_ids:
            issues.append(
                make_issue(
                    "unknown-item",
                    "mapping-score",
                    file=file,
                    scale=scale.id,
                    where=mapping.where("scores", score),
                    key=score,
                    scale_id=scale.id,
                    scores=scale.score_ids,
                )
            )
    mapped = (scale.item_lookup.get(item.casefold()) for item in spec.items)
    absent = scale.absent_slots(i for i in mapped if i is not None) if every_item else {}
    if absent:
        issues.append(
            make_issue(
                "missing-column",
                "mapped-item",
                file=file,
                scale=scale.id,
                where=mapping.where("items"),
                items=", ".join(" or ".join(scale.slots.get(s, (s,))) for s in absent),
                scores=", ".join(dict.fromkeys(u for users in absent.values() for u in users)),
            )
        )
        return None
    return scale


def resolve_columns(
    mapping: LoadedMapping,
    header: list[str],
    file: str,
    issues: list[Issue],
    *,
    scale: Scale,
    subject_default: str | None = None,
    visit_default: str | None = None,
) -> Resolved:
    """Find the mapping's columns in ``header``; one ``missing-column`` issue per column that
    is not there. Not usable without a subject or a visit."""
    spec = mapping.spec
    out = Resolved()

    def missing(path: tuple[str | int, ...], column: str, what: str) -> None:
        issues.append(
            make_issue(
                "missing-column",
                "mapping",
                file=file,
                line=1,
                where=mapping.where(*path),
                column=column,
                what=what,
                columns=shown_columns(header),
            )
        )

    def find(path: tuple[str | int, ...], column: str | None, what: str) -> int | None:
        if column is None:
            return None
        index = find_column(header, column)
        if index is None:
            missing(path, column, what)
        return index

    subject = spec.subject or subject_default
    if subject is None:
        issues.append(make_issue("missing-column", "no-subject", file=file, mapping=mapping.source))
        out.usable = False
    else:
        out.subject = find(("subject",), subject, "the subject")
        if out.subject is None:
            out.usable = False
    if isinstance(spec.visit, Constant):
        pass
    elif spec.visit is not None or visit_default is not None:
        column = spec.visit if spec.visit is not None else visit_default
        out.visit = find(("visit",), column, "the visit")
        if out.visit is None:
            out.usable = False
    else:
        issues.append(make_issue("missing-column", "no-visit", file=file, mapping=mapping.source))
        out.usable = False
    out.date = find(("date",), spec.date, "the date")
    out.day = find(("day",), spec.day, "the study day")
    out.visit_number = find(("visit_number",), spec.visit_number, "the visit number")
    for name, column in mapping.carried.items():
        index = find(("carry",), column, f"the carried field {name!r}")
        if index is not None:
            out.carry[name] = index
    if spec.layout == "long":
        out.item_column = find(("item_column",), spec.item_column, "the item codes")
        out.value_column = find(("value_column",), spec.value_column, "the answers")
        if out.item_column is None or out.value_column is None:
            out.usable = False
        return out
    for item, column in spec.items.items():
        item_id = scale.item_lookup.get(item.casefold())
        if item_id is None:
            continue
        index = find(("items", item), column, f"{scale.id} item {item_id}")
        if index is None:
            out.missing_items[item_id] = column
        else:
            out.items[item_id] = index
    for score, column in spec.scores.items():
        if score not in scale.score_ids:
            continue
        index = find(("scores", score), column, f"the stored {scale.id} {score}")
        if index is not None:
            out.scores[score] = index
    return out


def _visit_of(spec: ColumnMapping, cols: Resolved, cells: list[Any]) -> str | None:
    if isinstance(spec.visit, Constant):
        return spec.visit.value
    return text_field(cells[cols.visit]) if cols.visit is not None else None


def _id_cells(cols: Resolved, cells: list[Any]) -> tuple[Any, Any]:
    """The subject and visit cells of a row as read (None for a constant)."""
    subject = cells[cols.subject] if cols.subject is not None else None
    return subject, cells[cols.visit] if cols.visit is not None else None


def read_mapped_table(
    table: Table,
    file: str,
    mapping: LoadedMapping,
    context: FormatContext,
    out: ReadResult,
    *,
    unit: str = "line",
    subject_default: str | None = None,
    visit_default: str | None = None,
) -> None:
    """Records of any table read through a mapping file (wide or long layout)."""
    spec = mapping.spec
    scale = check_mapping_scale(mapping, context, file, out.issues)
    if scale is None:
        return
    cols = resolve_columns(
        mapping,
        table.header,
        file,
        out.issues,
        scale=scale,
        subject_default=subject_default,
        visit_default=visit_default,
    )
    if not cols.usable:
        return
    codes = mapping.missing_codes
    if spec.layout == "long":
        _read_long(table, file, mapping, scale, cols, out, unit)
        return
    for line, cells in table.rows:
        subject = text_field(cells[cols.subject]) if cols.subject is not None else None
        visit = _visit_of(spec, cols, cells)
        items: dict[str, Any] = {item: item_value(cells[i]) for item, i in cols.items.items()}
        if all(is_blank(v) for v in items.values()):
            continue  # this scale was not rated in this row
        if subject is None or visit is None:
            out.issues.append(id_issue(subject, visit, _id_cells(cols, cells), file, line))
            continue
        for item, column in cols.missing_items.items():
            items[item] = Rejection("missing-column", "item", {"column": column})
        date, day = dated(cells, cols.date, cols.day, out.issues, file, line, subject, visit)
        extra = {name: carried(cells[i]) for name, i in cols.carry.items()}
        if cols.visit_number is not None:
            extra["visit_number"] = carried(cells[cols.visit_number])
        reported = {score: cells[i] for score, i in cols.scores.items() if not is_blank(cells[i])}
        out.records.append(
            AnswerRecord(
                subject=subject,
                visit=visit,
                scale=scale.id,
                items=items,
                date=date,
                day=day,
                extra=extra,
                source=Source(file=file, line=line),
                missing_codes=codes,
                reported=reported,
                reported_lines={score: line for score in reported},
            )
        )


def _read_long(
    table: Table,
    file: str,
    mapping: LoadedMapping,
    scale: Scale,
    cols: Resolved,
    out: ReadResult,
    unit: str,
) -> None:
    spec = mapping.spec
    assert cols.item_column is not None and cols.value_column is not None
    item_of = {
        code.casefold(): scale.item_lookup[item.casefold()]
        for item, code in spec.items.items()
        if item.casefold() in scale.item_lookup
    }
    score_of = {code.casefold(): s for s, code in spec.scores.items() if s in scale.score_ids}
    groups = LongGroups(file, unit)
    for line, cells in table.rows:
        code = (text_field(cells[cols.item_column]) or "").casefold()
        item, score = item_of.get(code), score_of.get(code)
        if item is None and score is None:
            continue  # a row of another questionnaire or test
        subject = text_field(cells[cols.subject]) if cols.subject is not None else None
        visit = _visit_of(spec, cols, cells)
        if subject is None or visit is None:
            out.issues.append(id_issue(subject, visit, _id_cells(cols, cells), file, line))
            continue
        date, day = dated(cells, cols.date, cols.day, out.issues, file, line, subject, visit)
        extra = {name: carried(cells[i]) for name, i in cols.carry.items()}
        if cols.visit_number is not None:
            extra["visit_number"] = carried(cells[cols.visit_number])
        group = groups.group(subject, visit, scale.id, line=line, date=date, day=day, extra=extra)
        value = cells[cols.value_column]
        if item is not None:
            groups.add_item(group, item, value, line)
        elif score is not None and not is_blank(value):
            groups.add_reported(group, score, value, line)
    out.records.extend(groups.records(mapping.missing_codes))
