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


# The terminal layouts, widest first: the column lines go first, then the check ids in the
# header give way to numbers explained under the table (no cell is ever cut).
LAYOUTS = (("box", False), ("rule", False), ("none", False), ("none", True))


class RatingCheckTable:
    """The summary as a rich renderable (for ``ketascore change``), laid out for the width
    it is printed at as the change tables are (``present.render.fit_columns``)."""

    def __init__(self, summary: RatingCheckSummary):
        self.summary = summary

    def table(self, lines: str, numbered: bool) -> Any:
        from rich.table import Table

        from ketascore.present.render import BOXES, safe

        summary = self.summary
        table = Table(
            title=title(summary),
            title_justify="left",
            header_style="bold",
            box=BOXES[lines],
            pad_edge=lines == "box",
        )
        headers = columns(summary)
        if numbered:
            headers = [*headers[:3], *(str(i + 1) for i in range(len(summary.checks)))]
        for i, name in enumerate(headers):
            table.add_column(safe(name), justify="left" if i == 0 else "right", no_wrap=i > 0)
        for row in rows(summary):
            table.add_row(*(safe(cell) for cell in row))
        text = notes(summary)
        if numbered:
            text[1] = (
                "; ".join(f"{i + 1} = {c} ({label})" for i, (c, label) in enumerate(summary.checks))
                + "."
            )
        table.caption = safe(" ".join(text))
        table.caption_justify = "left"
        return table

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from ketascore.present.render import fit_columns

        width = options.max_width
        for lines, numbered in LAYOUTS:
            table = self.table(lines, numbered)
            if fit_columns(console, options, table, width):
                yield table
                return
        table = self.table(*LAYOUTS[-1])
        fit_columns(console, options, table, width)
        yield table


def rating_check_table(summary: RatingCheckSummary) -> RatingCheckTable:
    """The summary for the terminal (``ketascore change``)."""
    return RatingCheckTable(summary)


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
