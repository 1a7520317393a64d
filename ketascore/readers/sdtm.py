"""CDISC SDTM questionnaire (QS) and clinical classification (RS) domains, as CSV or SAS
transport (.xpt).

One row per item per visit. Rows are sorted to a scale by their category (``QSCAT`` /
``RSCAT``, matched to a scale's ``codes.cdisc_category``; ``--category`` keeps one category
only), and to items by their test code (``QSTESTCD`` / ``RSTESTCD``, matched to each item's
``codes.cdisc``), or both by a mapping file. Without a category column the test code alone
finds the scale.

- The answer is the standardised numeric result (``--STRESN``), else the standardised text
  result (``--STRESC``), else the original result (``--ORRES``, an answer label or number).
  ``--STAT = NOT DONE`` is a missing answer, whatever the result columns hold.
- When several result columns are filled they must mean the same answer, compared by
  meaning (``QSORRES = Several days`` is 1 on PHQ-9): a standardised result that differs from
  the original answer's label is another coding, and the answer is scored by the label's
  meaning (``coding-differs`` warning), never by the code; results that differ otherwise
  (two numbers, ``QSSTRESN`` against ``QSSTRESC``) leave the answer unscored
  (``coding-conflict``). An original result the scale cannot read (a label of the sponsor's
  own wording) cannot be compared: the standardised result is used. A standardised result
  holding a character that does not show (``2`` and a zero-width space) is no other coding
  of the label: it is unreadable, and the item is not scored.
- ``USUBJID`` is the subject, ``VISIT`` the visit (``VISITNUM``'s number when VISIT is
  blank: 1.0 is visit 1, in a CSV file as in a SAS transport file),
  ``VISITNUM`` is kept as ``visit_number``, ``--DTC`` is the date and ``--DY`` the study day.
- ``--BLFL = Y`` (or ``--LOBXFL = Y``, its successor in SDTMIG 3.3+) on any row of a visit sets
  ``baseline_flag: "Y"`` on the record, so change from baseline can use the sponsor's own
  baseline.
- A row whose test code is a score's ``codes.cdisc`` (``GAD0208``, the GAD-7 total) is not an
  answer: its value is stored in ``AnswerRecord.reported`` and compared with the score
  ketascore computes (issue ``reported-score-mismatch``). Other sponsor-derived rows
  (``--DRVFL = Y``) are not used as answers: an item's derived rows are counted in a
  ``derived-answer`` warning (the item is not answered), never passed over in silence.
- Rows of a category no known scale declares are ignored with one warning per category.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ketascore.core.issues import make_issue
from ketascore.core.scale import ItemRule
from ketascore.core.values import (
    MISSING,
    Rejection,
    finite_number,
    format_number,
    is_number,
    missing_code_values,
    parse_value,
    strip,
)
from ketascore.readers import FormatContext, ReadResult, Table, is_blank, text_field
from ketascore.readers.fields import carried, id_issue, number_text

from .mapping import Constant
from .tables import (
    LongGroups,
    ScaleCodes,
    all_codes,
    check_mapping_scale,
    codes_of,
    dated,
    find_column,
    shown_columns,
)


def _number(value: Any) -> Any:
    """A visit number as the value grammar reads numbers (``finite_number``); what is not
    a finite number (text, a number beyond a double's range) is carried as written."""
    try:
        return finite_number(value)
    except ValueError:
        return carried(value if isinstance(value, str) else format_number(value))


def _shown(value: Any) -> str:
    return format_number(value) if isinstance(value, int | float) else str(value).strip()


@dataclass(frozen=True)
class Recoded:
    """A standardised result read by the meaning of the original answer's label."""

    column: str
    code: str
    label: str
    value: str


def reconcile(
    rule: ItemRule, results: list[tuple[str, Any]], missing: frozenset[Any]
) -> tuple[Any, Recoded | None]:
    """The answer of a row whose result columns (name, cell) are filled: the first when
    they agree by meaning (see the module text); the original label when a standardised
    code differs from its meaning (and what was recoded); a ``coding-conflict`` rejection
    when they disagree otherwise."""
    (first_col, first), rest = results[0], results[1:]
    mine = parse_value(rule, first, missing)
    if isinstance(mine, Rejection) and mine.variant == "unseen":
        return mine, None  # (2\u200b is no other coding of the label's 2: it is unreadable)
    for col, cell in rest:
        theirs = parse_value(rule, cell, missing)
        if theirs == mine or (isinstance(theirs, Rejection) and isinstance(mine, Rejection)):
            continue
        is_label = isinstance(cell, str) and not is_number(strip(cell))
        if isinstance(theirs, Rejection):
            if is_label:
                continue  # a label the scale does not know: nothing to compare with
        elif is_label:
            value = "no answer" if theirs is MISSING else format_number(theirs)
            return cell, Recoded(first_col, _shown(first), strip(cell), value)
        rejection = Rejection(
            "coding-conflict",
            "sdtm",
            {
                "first_column": first_col,
                "first": _shown(first),
                "second_column": col,
                "second": _shown(cell),
            },
        )
        return rejection, None
    return first, None


def _pick(candidates: list[ScaleCodes], test: str) -> ScaleCodes | None:
    """The scale of a category that knows the test code (else the category's first)."""
    for codes in candidates:
        if test in codes.item_by_cdisc or test in codes.score_by_cdisc:
            return codes
    return candidates[0] if candidates else None


def read_sdtm_table(
    table: Table, file: str, context: FormatContext, out: ReadResult, *, unit: str = "line"
) -> None:
    from .layouts import sdtm_prefix

    header = table.header
    prefix = sdtm_prefix(header) or "QS"
    options = context.options
    mapping = options.mapping

    def col(name: str) -> int | None:
        return find_column(header, name)

    subject_name = mapping.spec.subject if mapping is not None and mapping.spec.subject else None
    subject_col = col(subject_name or "USUBJID")
    test_col = col(f"{prefix}TESTCD")
    visit_col = col("VISIT")
    visitnum_col = col("VISITNUM")
    constant_visit = None
    if mapping is not None and isinstance(mapping.spec.visit, Constant):
        constant_visit = mapping.spec.visit.value
    elif mapping is not None and mapping.spec.visit is not None:
        visit_col = col(mapping.spec.visit)
        visitnum_col = None
    results = [col(f"{prefix}STRESN"), col(f"{prefix}STRESC"), col(f"{prefix}ORRES")]
    lacking = []
    if subject_col is None:
        lacking.append(subject_name or "USUBJID")
    if test_col is None:
        lacking.append(f"{prefix}TESTCD")
    if constant_visit is None and visit_col is None and visitnum_col is None:
        lacking.append("VISIT or VISITNUM")
    if all(c is None for c in results):
        lacking.append(f"{prefix}STRESN or {prefix}ORRES")
    if lacking:
        out.issues.append(
            make_issue(
                "missing-column",
                "sdtm",
                file=file,
                line=1,
                domain=prefix,
                columns=list(lacking),
                header=shown_columns(header),
            )
        )
        return
    assert subject_col is not None and test_col is not None
    cat_col = col(f"{prefix}CAT")
    stat_col = col(f"{prefix}STAT")
    drv_col = col(f"{prefix}DRVFL")
    blfl_cols = [c for c in (col(f"{prefix}BLFL"), col(f"{prefix}LOBXFL")) if c is not None]
    dtc_col = col(f"{prefix}DTC")
    partial: set[tuple[str, str]] = set()  # records whose date is partial, reported
    dy_col = col(f"{prefix}DY")
    study_col = col("STUDYID")
    epoch_col = col("EPOCH")
    carry: dict[str, int] = {}

    by_category: dict[str, list[ScaleCodes]] = {}
    by_test: dict[str, ScaleCodes] = {}
    category = options.category
    if mapping is not None:
        # (items the mapping does not name are found by the scale's own CDISC codes)
        scale = check_mapping_scale(mapping, context, file, out.issues, every_item=False)
        if scale is None:
            return
        codes = codes_of(scale)
        for item, code in mapping.spec.items.items():
            item_id = scale.item_lookup.get(item.casefold())
            if item_id is not None:
                codes.item_by_cdisc[code.upper()] = item_id
        for score, code in mapping.spec.scores.items():
            if score in scale.score_ids:
                codes.score_by_cdisc[code.upper()] = score
        category = category or mapping.spec.category or codes.category
        if category:
            by_category[category.casefold()] = [codes]
        for code in (*codes.item_by_cdisc, *codes.score_by_cdisc):
            by_test[code] = codes
        for name, column in mapping.carried.items():
            index = col(column)
            if index is None:
                out.issues.append(
                    make_issue(
                        "missing-column",
                        "carry",
                        file=file,
                        line=1,
                        where=mapping.where("carry"),
                        column=column,
                        name=name,
                    )
                )
            else:
                carry[name] = index
    else:
        for codes in all_codes(context):
            if codes.category:  # one category may hold several scales (CGI-S and CGI-I)
                by_category.setdefault(codes.category.casefold(), []).append(codes)
            for code in (*codes.item_by_cdisc, *codes.score_by_cdisc):
                by_test.setdefault(code, codes)
    wanted = category.casefold() if category else None

    groups = LongGroups(file, unit)
    codes_missing = mapping.missing_codes if mapping is not None else ()
    missing_codes = frozenset(missing_code_values(codes_missing))
    unknown_categories: Counter[str] = Counter()
    recodings: Counter[tuple[str, str, Recoded]] = Counter()
    unknown_tests: Counter[tuple[str, str]] = Counter()
    derived_items: Counter[tuple[str, str, str]] = Counter()  # (scale, item, "derived")
    first_line: dict[Any, int] = {}
    for line, cells in table.rows:
        cat = text_field(cells[cat_col]) if cat_col is not None else None
        if wanted is not None and cat is not None and cat.casefold() != wanted:
            continue
        test = (text_field(cells[test_col]) or "").upper()
        if not test:
            continue
        codes_for = _pick(by_category.get(cat.casefold(), []), test) if cat else None
        if codes_for is None:
            if cat is not None and mapping is None:
                unknown_categories[cat] += 1
                first_line.setdefault(cat, line)
                continue
            codes_for = by_test.get(test)
            if codes_for is None:
                if mapping is None and cat is None:
                    unknown_categories["(no category)"] += 1
                    first_line.setdefault("(no category)", line)
                continue
        scale_id = codes_for.scale.id
        item = codes_for.item_by_cdisc.get(test)
        score = codes_for.score_by_cdisc.get(test)
        derived = drv_col is not None and (text_field(cells[drv_col]) or "").upper() == "Y"
        if item is None and score is None:
            if not derived:
                unknown_tests[(scale_id, test)] += 1
                first_line.setdefault((scale_id, test), line)
            continue
        subject = text_field(cells[subject_col])
        visit = constant_visit
        if visit is None and visit_col is not None:
            visit = text_field(cells[visit_col])
        if visit is None and visitnum_col is not None:  # (1.0 in CSV is visit 1, as in XPT)
            visit = number_text(cells[visitnum_col])
        if subject is None or visit is None:
            raw = (cells[subject_col], cells[visit_col] if visit_col is not None else None)
            names = ("USUBJID", "VISIT")
            if is_blank(raw[1]) and visitnum_col is not None and not is_blank(cells[visitnum_col]):
                raw, names = (raw[0], cells[visitnum_col]), ("USUBJID", "VISITNUM")  # (its number)
            out.issues.append(id_issue(subject, visit, raw, file, line, names))
            continue
        dtc = dtc_col
        if dtc is not None and _partial_date(cells[dtc]):
            if (subject, visit) not in partial:  # (once for the rows of a record)
                partial.add((subject, visit))
                out.issues.append(
                    make_issue(
                        "partial-date",
                        field=header[dtc],
                        value=text_field(cells[dtc]),
                        file=file,
                        line=line,
                        subject=subject,
                        visit=visit,
                    )
                )
            dtc = None  # (the study day, QSDY, is still read)
        date, day = dated(cells, dtc, dy_col, out.issues, file, line, subject, visit)
        extra: dict[str, Any] = {}
        if study_col is not None:
            extra["study_id"] = text_field(cells[study_col])
        if visitnum_col is not None:
            extra["visit_number"] = _number(cells[visitnum_col])
        if epoch_col is not None:
            extra["epoch"] = text_field(cells[epoch_col])
        if any((text_field(cells[c]) or "").upper() == "Y" for c in blfl_cols):
            extra["baseline_flag"] = "Y"
        for name, index in carry.items():
            extra[name] = carried(cells[index])
        group = groups.group(subject, visit, scale_id, line=line, date=date, day=day, extra=extra)
        if stat_col is not None and (text_field(cells[stat_col]) or "").upper() == "NOT DONE":
            value: Any = None
        else:
            filled = [
                (header[c], cells[c]) for c in results if c is not None and not is_blank(cells[c])
            ]
            value = filled[0][1] if filled else None
            if len(filled) > 1 and item is not None and not derived:
                rule = codes_for.scale.items[item]
                value, recoded = reconcile(rule, filled, missing_codes)
                if recoded is not None:
                    recodings[(scale_id, item, recoded)] += 1
                    first_line.setdefault((scale_id, item, recoded), line)
        if score is not None:
            if value is not None:
                groups.add_reported(group, score, value, line)
        elif not derived:
            assert item is not None
            groups.add_item(group, item, value, line)
        else:
            assert item is not None
            derived_items[(scale_id, item, "derived")] += 1
            first_line.setdefault((scale_id, item, "derived"), line)
    out.records.extend(groups.records(codes_missing))
    for cat, n in unknown_categories.items():
        out.issues.append(
            make_issue("unknown-category", file=file, line=first_line[cat], count=n, category=cat)
        )
    for (scale_id, item_id, recoded), n in recodings.items():
        out.issues.append(
            make_issue(
                "coding-differs",
                "sdtm",
                file=file,
                line=first_line[(scale_id, item_id, recoded)],
                scale=scale_id,
                item=item_id,
                column=recoded.column,
                code=recoded.code,
                label=recoded.label,
                value=recoded.value,
                count=n,
            )
        )
    for (scale_id, item_id, key), n in derived_items.items():
        out.issues.append(
            make_issue(
                "derived-answer",
                file=file,
                line=first_line[(scale_id, item_id, key)],
                scale=scale_id,
                item=item_id,
                count=n,
                column=f"{prefix}DRVFL",
            )
        )
    for (scale_id, test), n in unknown_tests.items():
        out.issues.append(
            make_issue(
                "unknown-item",
                "test-code",
                file=file,
                line=first_line[(scale_id, test)],
                scale=scale_id,
                test=test,
                count=n,
                scale_id=scale_id,
            )
        )


def read_sdtm_text(text: str, file: str, context: FormatContext) -> ReadResult:
    """An SDTM domain as CSV text (``--input-format sdtm`` or detected by its header)."""
    from ketascore.readers import check_table, csv_table

    out = ReadResult(files=[file])
    table = csv_table(text, file, out.issues)
    if table is not None:
        checked = check_table(table, file, out.issues, required=())
        if checked is not None:
            read_sdtm_table(checked, file, context, out)
    return out


# SDTM dates are ISO 8601 and may be partial: a year, a year and month, or a date whose
# unknown parts are dashes ("2012---15": the day known, the month not) (SDTMIG 4.4.4).
_PARTIAL_DATE = re.compile(r"[0-9]{4}(-[0-9]{2})?|[0-9]{4}--(-[0-9]{2})?|[0-9]{4}-[0-9]{2}--")


def _partial_date(cell: Any) -> bool:
    text = text_field(cell)
    return text is not None and _PARTIAL_DATE.fullmatch(text) is not None
