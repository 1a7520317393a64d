"""The rating-check summary (``analysis.raters``) as a terminal table, HTML and text lines.
Rendering never computes: the counts and percentages come from the summary."""

from __future__ import annotations

from typing import Any

from ketascore.analysis.raters import CheckTally, RatingCheckSummary

NOT_RECORDED = "(not recorded)"


def columns(summary: RatingCheckSummary) -> list[str]:
    return ["", "Checked", "Flagged", *summary.check_ids]


def _flagged(tally: CheckTally) -> str:
    pct = tally.flagged_percent
    return f"{tally.flagged}" + (f" ({pct:g}%)" if pct is not None else "")


def _cells(label: str, tally: CheckTally, summary: RatingCheckSummary) -> list[str]:
    return [
        label,
        str(tally.records),
        _flagged(tally),
        *(str(tally.hits.get(c, 0)) for c in summary.check_ids),
    ]


def rows(summary: RatingCheckSummary) -> list[list[str]]:
    """All records, then each rater and each site."""
    out = [_cells("all records", summary.overall, summary)]
    for by in summary.by:
        for group in by.groups:
            out.append(_cells(f"{by.role} {group.value or NOT_RECORDED}", group.tally, summary))
    return out


def notes(summary: RatingCheckSummary) -> list[str]:
    """What the columns mean, which fields were read, and what could not be checked."""
    out = [
        "Checked = records whose checks were evaluated; Flagged = records that raised at "
        "least one check; a check's column = records that raised it. A check flags a rating "
        "worth a second look with the rater, not an error."
    ]
    out.append("; ".join(f"{c} = {label}" for c, label in summary.checks) + ".")
    if summary.by:
        fields = "; ".join(f"{b.role}s from the field {b.field}" for b in summary.by)
        out.append(fields[:1].upper() + fields[1:] + ".")
    else:
        out.append(
            "No rater or site field is carried with the records: carry a column named rater "
            "or site (or map one to those names) to see the checks per rater and per site."
        )
    if summary.not_checked:
        out.append(
            f"{summary.not_checked} record{'s' if summary.not_checked != 1 else ''} could not "
            "be scored, so not checked."
        )
    return out


def title(summary: RatingCheckSummary) -> str:
    return f"Rating checks of {summary.scale}, per rater and site"


def rating_check_table(summary: RatingCheckSummary) -> Any:
    """The summary as a rich table (for ``ketascore change``)."""
    from rich.table import Table

    from ketascore.present.render import safe

    table = Table(title=title(summary), title_justify="left", header_style="bold")
    for i, name in enumerate(columns(summary)):
        if i == 0:
            table.add_column(safe(name), justify="left")
        else:  # (long check ids fold rather than cut)
            table.add_column(safe(name), justify="right", overflow="fold")
    for row in rows(summary):
        table.add_row(*(safe(cell) for cell in row))
    table.caption = " ".join(notes(summary))
    table.caption_justify = "left"
    return table


def rating_check_html(summary: RatingCheckSummary | None) -> list[str]:
    """The summary as HTML (for the study report); nothing when the scale has no checks."""
    if summary is None:
        return []
    from ketascore.present.report import esc, html_table

    cols = columns(summary)
    parts = [f"<h3>{esc(title(summary))}</h3>", html_table(cols, rows(summary), cols[1:])]
    parts.append(f'<p class="lead">{esc(" ".join(notes(summary)))}</p>')
    return parts


def rating_check_lines(summary: RatingCheckSummary | None) -> list[str]:
    """The summary as text lines (for the PDF report)."""
    if summary is None:
        return []
    from ketascore.present.report import text_table

    return ["", title(summary), "", *text_table(columns(summary), rows(summary)), *notes(summary)]
