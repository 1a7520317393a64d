"""Machine-readable outputs (JSON, JSON Lines, CSV); files are written by
``ketascore.writers.outputs``.

Outputs are deterministic: the same input gives byte-identical output.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from operator import attrgetter
from typing import IO, TYPE_CHECKING, Any

from ketascore import __version__
from ketascore.core.issues import Issue
from ketascore.core.records import ScoreResult
from ketascore.core.values import is_number, strip
from ketascore.writers.jsontext import indented, one_line
from ketascore.writers.outputs import atomic_writer as atomic_writer

if TYPE_CHECKING:
    from ketascore.analysis.change import ChangeReport


def write_chunks(fh: IO[bytes], chunks: Iterable[Any], every: int = 8 << 20) -> None:
    """Write bytes-like chunks to a file of ``atomic_writer``, and have the system start
    writing each ``every`` bytes to disk as they come, so the sync at the end has little
    left to wait for (where the system lets a program ask: ``posix_fadvise``)."""
    advise = getattr(os, "posix_fadvise", None)
    done = flushed = 0
    for chunk in chunks:
        fh.write(chunk)
        done += len(chunk) if isinstance(chunk, bytes) else memoryview(chunk).nbytes
        if advise is not None and done - flushed >= every:
            fh.flush()
            # for pages not yet written, DONTNEED starts their writing back without waiting
            with contextlib.suppress(OSError):
                advise(fh.fileno(), flushed, done - flushed, os.POSIX_FADV_DONTNEED)
            flushed = done


# --------------------------------------------------------------------------------------
# score


def score_summary(results: list[ScoreResult], issues: list[Issue], files: int) -> dict[str, int]:
    scored = sum(1 for r in results if any(v is not None for v in r.scores.values()))
    problems = sum(1 for r in results if not r.ok)
    return {
        "files": files,
        "records": len(results),
        "scored": scored,
        "with_problems": problems,
        "file_issues": len(issues),
    }


def score_json(
    results: list[ScoreResult], issues: list[Issue], files: int, extra: dict[str, Any] | None = None
) -> str:
    doc: dict[str, Any] = {
        "ketascore_version": __version__,
        "results": [r.to_dict() for r in results],
        "issues": [i.as_dict() for i in issues],
        "summary": score_summary(results, issues, files),
    }
    if extra:
        doc.update(extra)
    return indented(doc) + "\n"


def result_json(result: ScoreResult) -> str:
    """A result's text in the JSON output's list of results (indented as it is there)."""
    return indented(result.to_dict()).replace("\n", "\n    ")


def score_json_stream(
    texts: Iterable[str],
    issues: list[Issue],
    summary: Callable[[], dict[str, int]],
    provenance: dict[str, Any],
) -> Iterator[str]:
    """``score_json`` written as it goes, result by result: the same bytes. ``texts`` are
    the results' ``result_json`` (which the table engine's query writes itself for most
    rows); ``summary`` is asked for once every result was written."""

    yield "{\n" + f'  "ketascore_version": {indented(__version__)},\n  "results": '
    first = True
    for text in texts:
        yield ("[\n    " if first else ",\n    ") + text
        first = False
    yield "[]" if first else "\n  ]"
    issues_text = indented([i.as_dict() for i in issues]).replace("\n", "\n  ")
    summary_text = indented(summary()).replace("\n", "\n  ")
    provenance_text = indented(provenance).replace("\n", "\n  ")
    yield (
        f',\n  "issues": {issues_text},\n  "summary": {summary_text},\n'
        f'  "provenance": {provenance_text}\n}}\n'
    )


def score_line(result: ScoreResult) -> str:
    """A result's line of JSON Lines output (without its line end)."""
    return one_line({"type": "score", **result.to_dict()})


def score_jsonl(
    lines: Iterable[str],
    issues: Iterable[Issue],
    provenance: dict[str, Any] | None = None,
) -> Iterator[str]:
    """JSON Lines output: the provenance, the results' ``lines`` (``score_line`` of each,
    which the table engine's query writes itself for most rows) and the issues."""
    if provenance is not None:
        yield one_line({"type": "provenance", **provenance}) + "\n"
    for line in lines:
        yield line + "\n"
    for issue in issues:
        yield one_line({"type": "issue", **issue.as_dict()}) + "\n"


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# what a spreadsheet may also take for the start of a formula: a line feed, and the
# full-width forms of = + - @ (which some spreadsheet programs read as the ASCII ones)
_STARTS = (*FORMULA_START, "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")
_LEADING = " \t\r\n\x0b\x0c"
_FIRST = frozenset((*_STARTS, " ", "\x0b", "\x0c"))  # the first characters that may need it


def needs_escape(text: str) -> bool:
    """Whether a spreadsheet could run this text cell as a formula: after any leading
    whitespace it starts with = + - @ (or a full-width one), a tab, a carriage return or a
    line feed, and it is not a plain number (``-1``, ``+44``, ``-0.5``: a sign, ASCII digits
    and at most one decimal point, as ``ketascore.core.values`` reads numbers)."""
    if text[:1] not in _FIRST:  # (most texts: one set lookup)
        return False
    if text.startswith(_STARTS):
        return not is_number(strip(text))
    spaced = text[:1] in (" ", "\x0b", "\x0c") and text.lstrip(_LEADING).startswith(_STARTS)
    return spaced and not is_number(strip(text))


def sql_needs_escape(text: str) -> str:
    """``needs_escape`` in SQL, of the text expression ``text`` (for the table engine's CSV
    cells): the same starts, the same leading whitespace, the same plain numbers. A first
    character is looked up in a text of the characters (``strpos``): one call for most
    cells, where eleven comparisons were."""
    from ketascore.core.values import sql_is_number, sql_strip, sql_text

    def first_in(expr: str, chars: str) -> str:  # (strpos finds '' at 1: not a start)
        return f"(strpos({sql_text(chars)}, left({expr}, 1)) > 0 AND {expr} <> '')"

    lead = f"ltrim({text}, {sql_text(_LEADING)})"
    starts = "".join(_STARTS)
    return (
        f"({first_in(text, ''.join(sorted(_FIRST)))} "
        f"AND ({first_in(text, starts)} OR {first_in(lead, starts)}) "
        f"AND NOT {sql_is_number(sql_strip(text))})"
    )


def escape_formula(text: str) -> str:
    """The one escaping rule of every CSV output (scores, change, summaries, ADaM): a text
    cell a spreadsheet would run as a formula (``needs_escape``) is prefixed with a single
    quote; any other text, and every plain number, is left as it is. Number cells are never
    escaped: only text can carry a formula."""
    return "'" + text if needs_escape(text) else text


def csv_cell(value: Any, escape: bool = True) -> str:
    if value is None:
        return ""
    if type(value) is str:  # (the commonest cell first)
        return escape_formula(value) if escape else value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return ";".join(csv_cell(v, escape) for v in value)
    text = one_line(value) if isinstance(value, dict) else str(value)
    return escape_formula(text) if escape else text


def score_csv_columns(results: list[ScoreResult]) -> tuple[list[str], list[str], list[str]]:
    """(score columns in first-seen order, classification names, extra field names)."""
    scores: dict[str, None] = {}
    classes: dict[str, None] = {}
    extras: dict[str, None] = {}
    for r in results:
        for name in r.scores:
            scores.setdefault(name, None)
        for name in r.classifications:
            classes.setdefault(name, None)
        for name in r.extra:
            extras.setdefault(name, None)
    return list(scores), list(classes), list(extras)


def score_csv(
    results: list[ScoreResult], issues: list[Issue], *, escape_formulas: bool = True
) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    scores, classes, extras = score_csv_columns(results)
    base = ["subject", "visit", "date", "day", "scale", "scale_version"]
    header = list(base)
    for name in scores:
        header += [name, f"{name}_band", f"{name}_items_answered", f"{name}_prorated"]
    header += [*classes, "flags", "issues"]
    # a carried field whose name a score column already has is left out of rows and header
    carried = [e for e in extras if e not in header]
    header += carried
    writer.writerow([csv_cell(h, escape_formulas) for h in header])
    for r in results:
        row: list[Any] = [r.subject, r.visit, r.date, r.day, r.scale, r.scale_version]
        for name in scores:
            present = name in r.scores
            row += [
                r.scores.get(name),
                r.bands.get(name),
                r.items_answered.get(name) if present else None,
                r.prorated.get(name) if present else None,
            ]
        row += [r.classifications.get(c) for c in classes]
        row += [r.flags, [i.code for i in r.issues]]
        row += [r.extra.get(e) for e in carried]
        writer.writerow([csv_cell(v, escape_formulas) for v in row])
    return buf.getvalue()


# --------------------------------------------------------------------------------------
# change


def change_json(report: ChangeReport, provenance: dict[str, Any] | None = None) -> str:
    doc: dict[str, Any] = {"ketascore_version": __version__, **report.to_dict()}
    if provenance is not None:
        doc["provenance"] = provenance
    return indented(doc) + "\n"


def change_jsonl(report: ChangeReport, provenance: dict[str, Any] | None = None) -> Iterator[str]:
    if provenance is not None:
        yield one_line({"type": "provenance", **provenance}) + "\n"
    for row in report.rows:
        yield one_line({"type": "row", **row.to_dict()}) + "\n"
    for srow in report.summary:
        yield one_line({"type": "summary", **srow.to_dict()}) + "\n"
    for issue in report.issues:
        yield one_line({"type": "issue", **issue.as_dict()}) + "\n"


def column_cells(values: list[Any], escape: bool = True) -> list[Any]:
    """A column's cells as ``csv_cell`` writes them, ready for the csv writer, decided once
    for the column by the kinds of value it holds: numbers go to the writer as they are (it
    writes ``str()`` of a number and an empty cell for None, as ``csv_cell`` does), booleans
    become true/false, each distinct text is escaped once; a column of mixed kinds goes
    cell by cell."""
    kinds = set(map(type, values)) - {type(None)}
    if kinds <= {int, float}:
        return values
    if kinds == {bool}:
        return [None if v is None else "true" if v else "false" for v in values]
    if kinds == {str}:
        if not escape:
            return values
        escaped: dict[str, str] = {}
        return [
            None if v is None else escaped.get(v) or escaped.setdefault(v, escape_formula(v))
            for v in values
        ]
    return [csv_cell(v, escape) for v in values]


def _table_csv(rows: Sequence[object], columns: list[str], escape_formulas: bool = True) -> str:
    """The rows (objects with the columns as attributes) as CSV, written column by column
    in blocks of rows; the header is written even when there are no rows."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    block = 1 << 16
    for start in range(0, len(rows), block):
        part = rows[start : start + block]
        cells = [column_cells(list(map(attrgetter(c), part)), escape_formulas) for c in columns]
        writer.writerows(zip(*cells, strict=True))
    return buf.getvalue()


def change_csv(report: ChangeReport, summary: bool = False, *, escape_formulas: bool = True) -> str:
    """The per-subject rows (or with ``summary`` the summary rows) as CSV: a header and no
    rows when there is nothing to report (the report's issues say why)."""
    from dataclasses import fields

    from ketascore.analysis.change import ChangeRow, SummaryRow

    if summary:
        columns = [f.name for f in fields(SummaryRow)]
        return _table_csv(report.summary, columns, escape_formulas)
    columns = [f.name for f in fields(ChangeRow) if f.repr]
    if report.reliable_change is None:
        columns = [c for c in columns if c not in ("rci", "rci_category")]
    return _table_csv(report.rows, columns, escape_formulas)
