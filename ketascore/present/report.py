"""A study report people can read at a glance: one self-contained HTML file (pictures as
inline SVG, styles inline, no scripts, nothing fetched from the network), and optionally the
same content as a PDF drawn with matplotlib.

The report holds the study summary (subjects, visits, records, issues), the change table per
visit and group, the pictures, the list of data issues, and the provenance of the scales and
inputs (id, version and sha256 of each scale definition; name and sha256 of each input file).
The same input gives the same report, byte for byte: it carries no date.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ketascore import __version__
from ketascore.analysis.change import IMPUTATIONS, RULE_TEXT, ChangeReport, SummaryRow
from ketascore.core.issues import Issue, severity_counts
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale
from ketascore.core.values import Num
from ketascore.present import numbers
from ketascore.present.plotting import (
    KINDS,
    criteria_text,
    error_half_width,
    groups_of,
    score_name,
    visit_axis,
)
from ketascore.present.raters import rating_check_html, rating_check_lines

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ketascore.readers import ReadResult

CAPTIONS = {
    "trajectory": "Mean at each visit with its 95% confidence interval, one line per group; "
    "visits are placed by study day when every visit has one.",
    "spaghetti": "Each subject's score over the visits (thin lines) and the mean (thick line).",
    "waterfall": "Percent change from baseline at one visit, one bar per subject, sorted; "
    "the dashed line is the response threshold.",
    "distribution": "Number of subjects in each severity band of the scale at each visit.",
}


@dataclass
class Section:
    """One analysed score of one scale."""

    scale: Scale
    report: ChangeReport
    results: list[ScoreResult]
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # why a picture is missing
    efficacy: Any = None  # an analysis.efficacy.EfficacyReport (ketascore report --model)


@dataclass
class StudyReport:
    title: str
    sections: list[Section]
    records: int  # records read, all scales
    records_by_scale: dict[str, int]
    files: list[str]
    issues: list[Issue]
    provenance: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        seen: dict[str, None] = {}
        for section in self.sections:
            seen.update(dict.fromkeys(section.report.subjects))
        return list(seen)

    @property
    def visits(self) -> list[str]:
        seen: dict[str, None] = {}
        for section in self.sections:
            seen.update(dict.fromkeys(section.report.visits))
        return list(seen)


def unique_issues(issues: Iterable[Issue]) -> list[Issue]:
    """Issues in order, each once (every section's report repeats the reading issues)."""
    return list(dict.fromkeys(issues))


def add_figures(
    section: Section,
    *,
    error: str = "ci",
    visit: str | None = None,
    color_by: str | None = None,
) -> None:
    """Draw every picture the data allows; a picture that cannot be drawn leaves a note."""
    from ketascore.present.plotting import PlotError, make_figure

    for kind in KINDS:
        try:
            section.figures[kind] = make_figure(
                kind,
                section.report,
                section.scale,
                section.results,
                error=error,
                visit=visit if kind == "waterfall" else None,
                color_by=color_by,
            )
        except PlotError as exc:
            section.notes.append(f"No {kind} picture: {exc}.")


def build_report(
    sections: list[Section],
    data: ReadResult,
    *,
    title: str | None = None,
    command: str = "ketascore report",
    extra_scales: Sequence[Scale] = (),
) -> StudyReport:
    """Gather the sections, the records read and their issues, and the provenance."""
    from ketascore.core.provenance import build_provenance

    by_scale: dict[str, int] = {}
    for record in data.records:
        key = record.scale or "(no scale named)"
        by_scale[key] = by_scale.get(key, 0) + 1
    issues = unique_issues(
        [
            *data.issues,
            *(i for s in sections for i in s.report.issues),
            *(i for s in sections if s.efficacy is not None for i in s.efficacy.all_issues()),
        ]
    )
    names = ", ".join(score_name(s.scale, s.report) for s in sections)
    scales = [s.scale for s in sections] + list(extra_scales)
    return StudyReport(
        title=title or f"Change from baseline: {names}",
        sections=sections,
        records=len(data.records),
        records_by_scale=by_scale,
        files=list(data.files),
        issues=issues,
        provenance=build_provenance(scales, data.hashes, command),
    )


# --------------------------------------------------------------------------------------
# Numbers and tables (shared by HTML and PDF)


MISSING = "–"


def num(value: Num | None) -> str:
    """A subject's value or a study day (``numbers.value``)."""
    return numbers.value(value, MISSING)


def count(part: int, total: int, rate: float | None) -> str:
    return numbers.count_rate(part, total, rate, MISSING)


def change_interval(s: SummaryRow) -> str:
    """95% confidence interval of the mean change (t distribution)."""
    half = error_half_width(s.n_change, s.sd_change, "ci")
    if half is None or s.mean_change is None:
        return MISSING
    return f"{numbers.stat(s.mean_change - half)} to {numbers.stat(s.mean_change + half)}"


def summary_columns(report: ChangeReport) -> list[str]:
    cols = ["Visit", "Day"]
    if report.by:
        cols.append(report.by)
    cols += ["n", "Mean (SD)", "Change (SD)", "95% CI of change", "Responders", "Remitters"]
    return cols


def summary_rows(section: Section) -> list[list[str]]:
    report = section.report
    axis = visit_axis(report, section.results)
    labels = {g.key: g.label for g in groups_of(report)}
    rows = []
    for s in report.summary:
        cells = [s.visit, num(axis.days.get(s.visit)) if axis.by_day else "–"]
        if report.by:
            cells.append(labels.get(s.group, s.group or "(missing)"))
        cells += [
            str(s.n) + (f" ({s.n_imputed}†)" if s.n_imputed else ""),
            numbers.mean_sd(s.mean, s.sd, MISSING),
            "" if s.is_baseline else numbers.mean_sd(s.mean_change, s.sd_change, MISSING),
            "" if s.is_baseline else change_interval(s),
            "" if s.is_baseline else count(s.responders, s.n_response, s.response_rate),
            "" if s.is_baseline else count(s.remitters, s.n_remission, s.remission_rate),
        ]
        rows.append(cells)
    return rows


def carried_note(report: ChangeReport) -> str | None:
    """Which statistics include values carried forward, when some were."""
    if not any(s.n_imputed for s in report.summary):
        return None
    kinds = ", ".join(sorted({r.imputed for r in report.rows if r.imputed}))
    return (
        f"n (k†): n subjects with a value, k of them carried forward ({kinds}); the mean, the "
        "change, its confidence interval and the counts of responders and remitters include "
        "them."
    )


def followup_visits(report: ChangeReport) -> list[str]:
    return [v for v in report.visits if any(r.visit == v for r in report.rows)]


def subject_rows(report: ChangeReport) -> tuple[list[str], list[list[str]]]:
    visits = followup_visits(report)
    cols = ["Subject"] + ([report.by] if report.by else []) + ["Baseline", *visits]
    cells: dict[str, dict[str, str]] = {}
    for row in report.rows:
        text = num(row.value)
        if row.imputed and row.value is not None:
            text += numbers.CARRIED_MARKS.get(row.imputed, "*")
        if row.percent_change is not None:
            text += f" ({numbers.percent(row.percent_change, sign=True)}%)"
        marks = ("R" if row.response else "") + ("r" if row.remission else "")
        if marks:
            text += f" {marks}"
        cells.setdefault(row.subject, {})[row.visit] = text
    rows = []
    for subject in report.subjects:
        line = [subject]
        if report.by:
            line.append(report.groups.get(subject) or "(missing)")
        base = report.baselines.get(subject)
        line.append("none" if base is None else num(base[2]))
        line += [cells.get(subject, {}).get(v, "") for v in visits]
        rows.append(line)
    return cols, rows


def baseline_text(report: ChangeReport) -> str:
    return ", ".join(
        f"{RULE_TEXT[rule]} ({n} subject{'s' if n != 1 else ''})"
        for rule, n in report.baseline_rules().items()
    )


def study_facts(doc: StudyReport) -> list[tuple[str, str]]:
    """The study summary as (label, value) lines."""
    errors, warnings = severity_counts(doc.issues)
    by_scale = ", ".join(f"{k} {v}" for k, v in sorted(doc.records_by_scale.items()))
    facts = [
        ("Input files", str(len(doc.files))),
        ("Records read", f"{doc.records}" + (f" ({by_scale})" if by_scale else "")),
        ("Subjects", str(len(doc.subjects))),
        ("Visits", ", ".join(doc.visits) or "–"),
        (
            "Issues",
            f"{errors} error{'s' if errors != 1 else ''}, {warnings} warning"
            f"{'s' if warnings != 1 else ''}",
        ),
    ]
    for section in doc.sections:
        report = section.report
        name = score_name(section.scale, report)
        facts.append((f"{name}: baseline", baseline_text(report) or "–"))
        facts.append((f"{name}: criteria", criteria_text(report) or "none defined by the scale"))
        if report.by:
            groups = groups_of(report)
            facts.append(
                (f"{name}: groups by {report.by}", ", ".join(f"{g.label} ({g.n})" for g in groups))
            )
    return facts


def issue_where(issue: Issue) -> str:
    where = issue.file or ""
    if issue.line is not None:
        where += f":{issue.line}"
    return where


# --------------------------------------------------------------------------------------
# HTML

STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; color: #1a1a1a; margin: 0 auto; max-width: 1100px; padding: 1.5rem 2rem 4rem;
  line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #d0d7de; padding-bottom: 0.2rem;
  margin-top: 2.4rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.88rem;
  font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #e1e4e8; padding: 0.25rem 0.6rem; text-align: left;
  vertical-align: top; }
th { background: #f3f5f7; font-weight: 600; }
td.n { text-align: right; white-space: nowrap; }
tbody tr:nth-child(even) { background: #fafbfc; }
table.facts th { background: none; width: 16rem; }
figure { margin: 1.2rem 0 2rem; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #555; font-size: 0.88rem; margin-top: 0.3rem; }
.error { color: #b3261e; font-weight: 600; }
.warning { color: #8a5a00; font-weight: 600; }
code, .hash { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: 0.8rem; word-break: break-all; }
details summary { cursor: pointer; color: #0b5cad; margin: 0.4rem 0; }
.note { background: #fff8e1; border-left: 4px solid #e0a800; padding: 0.4rem 0.8rem; }
nav ul { columns: 2; padding-left: 1.2rem; }
@media print { details { display: block; } details > summary { display: none; }
  h2 { break-before: auto; } figure { break-inside: avoid; } }
"""

RIGHT = {"n", "Day", "Mean (SD)", "Change (SD)", "95% CI of change", "Responders", "Remitters"}


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def html_table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[str] = (), cls: str = ""
) -> str:
    right_cols = {i for i, c in enumerate(columns) if c in set(right)}
    out = [f"<table{f' class={chr(34)}{esc(cls)}{chr(34)}' if cls else ''}>", "<thead><tr>"]
    out += [f"<th>{esc(c)}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            attr = ' class="n"' if i in right_cols else ""
            out.append(f"<td{attr}>{esc(cell)}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _anchor(section: Section) -> str:
    return f"{section.scale.id}-{section.report.score}".replace(" ", "-")


def render_html(doc: StudyReport) -> str:
    from ketascore.present.plotting import inline_svg

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="ketascore {esc(__version__)}">',
        f"<title>{esc(doc.title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{esc(doc.title)}</h1>",
        f'<p class="lead">Made by ketascore {esc(__version__)} from {len(doc.files)} input '
        f"file{'s' if len(doc.files) != 1 else ''}. Scores follow each scale's published rules; "
        "a missing item is never counted as 0.</p>",
    ]
    for note in doc.notes:
        parts.append(f'<p class="note">{esc(note)}</p>')
    parts.append("<nav><ul>")
    parts.append('<li><a href="#summary">Study summary</a></li>')
    for section in doc.sections:
        name = score_name(section.scale, section.report)
        parts.append(f'<li><a href="#{esc(_anchor(section))}">{esc(name)}</a></li>')
    parts.append('<li><a href="#issues">Data issues</a></li>')
    parts.append('<li><a href="#provenance">Provenance</a></li></ul></nav>')

    parts.append('<h2 id="summary">Study summary</h2>')
    parts.append(
        html_table(["", ""], study_facts(doc), cls="facts").replace(
            "<thead><tr><th></th><th></th></tr></thead>", ""
        )
    )

    for section in doc.sections:
        report, scale = section.report, section.scale
        name = score_name(scale, report)
        parts.append(f'<h2 id="{esc(_anchor(section))}">{esc(name)}: change from baseline</h2>')
        parts.append(
            f'<p class="lead">{esc(scale.name)} ({esc(scale.id)} {esc(scale.version)}), '
            f"score {esc(report.score)}; {esc(criteria_text(report) or 'no response criteria')}."
            "</p>"
        )
        parts.append("<h3>Summary by visit" + (" and group" if report.by else "") + "</h3>")
        parts.append(html_table(summary_columns(report), summary_rows(section), RIGHT))
        carried = carried_note(report)
        if carried:
            parts.append(f'<p class="note">{esc(carried)}</p>')
        for kind in KINDS:
            fig = section.figures.get(kind)
            if fig is None:
                continue
            parts.append(f'<figure id="{esc(_anchor(section))}-{kind}">')
            parts.append(inline_svg(fig, prefix=f"{_anchor(section)}-{kind}-"))
            parts.append(f"<figcaption>{esc(CAPTIONS[kind])}</figcaption></figure>")
        for note in section.notes:
            parts.append(f'<p class="note">{esc(note)}</p>')
        parts += efficacy_html(section)
        cols, rows = subject_rows(report)
        marks = "".join(
            f", {numbers.CARRIED_MARKS.get(kind, '*')} = {kind} ({IMPUTATIONS.get(kind, kind)})"
            for kind in sorted({r.imputed for r in report.rows if r.imputed})
        )
        parts.append(
            f"<details><summary>Each subject ({len(rows)}): value at each visit, percent change "
            f"from baseline, R = response, r = remission{esc(marks)}</summary>"
        )
        parts.append(html_table(cols, rows, {"Baseline", *followup_visits(report)}))
        parts.append("</details>")
        parts += rating_check_html(report.rating_checks)

    parts.append('<h2 id="issues">Data issues</h2>')
    if not doc.issues:
        parts.append("<p>No data issues: every record was read and scored cleanly.</p>")
    else:
        parts.append(
            f"<p>{len(doc.issues)} issue{'s' if len(doc.issues) != 1 else ''}; each names the "
            "file, line, subject, visit and item, and says what to do.</p>"
        )
        parts.append("<table><thead><tr><th>Severity</th><th>Code</th><th>Where</th>")
        parts.append("<th>Subject</th><th>Visit</th><th>Message</th></tr></thead><tbody>")
        for issue in doc.issues:
            parts.append(
                f'<tr><td class="{esc(issue.severity)}">{esc(issue.severity)}</td>'
                f"<td><code>{esc(issue.code)}</code></td><td>{esc(issue_where(issue))}</td>"
                f"<td>{esc(issue.subject or '')}</td><td>{esc(issue.visit or '')}</td>"
                f"<td>{esc(issue.message)}</td></tr>"
            )
        parts.append("</tbody></table>")

    prov = doc.provenance
    parts.append('<h2 id="provenance">Provenance</h2>')
    parts.append(
        f"<p>ketascore {esc(prov.get('ketascore_version', __version__))}, command "
        f"<code>{esc(prov.get('command', ''))}</code>. The sha256 of a scale is that of its "
        "definition file; the sha256 of an input is that of its bytes.</p>"
    )
    if prov.get("option_files"):
        parts.append("<h3>Option files</h3>")
        parts.append("<table><thead><tr><th>Option</th><th>File</th><th>sha256</th></tr>")
        parts.append("</thead><tbody>")
        for item in prov["option_files"]:
            parts.append(
                f"<tr><td>{esc(item['option'])}</td><td>{esc(item['file'])}</td>"
                f'<td class="hash">{esc(item["sha256"])}</td></tr>'
            )
        parts.append("</tbody></table>")
    if prov.get("settings"):
        parts.append("<h3>Settings</h3>")
        parts.append("<table><thead><tr><th>Setting</th><th>Value</th></tr></thead><tbody>")
        for key, value in prov["settings"].items():
            parts.append(f"<tr><td>{esc(key)}</td><td>{esc(_setting(value))}</td></tr>")
        parts.append("</tbody></table>")
    parts.append("<h3>Scales</h3>")
    parts.append("<table><thead><tr><th>Id</th><th>Version</th><th>Definition</th>")
    parts.append("<th>sha256</th></tr></thead><tbody>")
    for s in prov.get("scales", []):
        parts.append(
            f"<tr><td>{esc(s['id'])}</td><td>{esc(s['version'])}</td><td>{esc(s['source'])}</td>"
            f'<td class="hash">{esc(s["sha256"])}</td></tr>'
        )
    parts.append("</tbody></table><h3>Inputs</h3>")
    parts.append("<table><thead><tr><th>File</th><th>sha256</th></tr></thead><tbody>")
    for item in prov.get("inputs", []):
        parts.append(
            f'<tr><td>{esc(item["file"])}</td><td class="hash">{esc(item["sha256"])}</td></tr>'
        )
    parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def efficacy_html(section: Section) -> list[str]:
    """The efficacy analysis of a section (MMRM, ANCOVA, responders, effect size)."""
    if section.efficacy is None:
        return []
    from ketascore.present.model import efficacy_tables

    parts = ["<h3>Efficacy analysis</h3>"]
    tables = efficacy_tables(section.efficacy)
    if not tables:
        parts.append('<p class="note">The model could not be fitted; see the data issues.</p>')
    for t in tables:
        parts.append(f"<h4>{esc(t.title)}</h4>")
        parts.append(html_table(t.columns, t.rows, set(t.columns[2:])))
        if t.note:
            parts.append(f'<p class="lead">{esc(t.note)}</p>')
    return parts


def efficacy_lines(section: Section) -> list[str]:
    if section.efficacy is None:
        return []
    from ketascore.present.model import efficacy_tables

    lines: list[str] = []
    for t in efficacy_tables(section.efficacy):
        lines += ["", t.title, ""]
        lines += text_table(t.columns, t.rows)
        if t.note:
            lines.append(f"({t.note})")
    return lines


# --------------------------------------------------------------------------------------
# PDF: text pages (summary, tables, issues, provenance) and the pictures, with matplotlib

PAGE = (8.27, 11.69)  # A4, inches
LINES_PER_PAGE = 88


def text_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return out


def text_lines(doc: StudyReport) -> list[str]:
    lines = [doc.title, "=" * len(doc.title), "", "Study summary", ""]
    width = max(len(k) for k, _ in study_facts(doc))
    lines += [f"{k.ljust(width)}  {v}" for k, v in study_facts(doc)]
    for section in doc.sections:
        name = score_name(section.scale, section.report)
        lines += ["", f"{name}: summary by visit", ""]
        lines += text_table(summary_columns(section.report), summary_rows(section))
        carried = carried_note(section.report)
        lines += [f"({note})" for note in ([carried] if carried else []) + section.notes]
        lines += efficacy_lines(section)
        lines += rating_check_lines(section.report.rating_checks)
    lines += ["", "Data issues", ""]
    if not doc.issues:
        lines.append("No data issues: every record was read and scored cleanly.")
    for issue in doc.issues:
        lines.append(f"{issue.severity}[{issue.code}] {issue.message}")
    prov = doc.provenance
    lines += ["", "Provenance", "", f"ketascore {prov.get('ketascore_version', __version__)}"]
    for s in prov.get("scales", []):
        lines.append(f"scale {s['id']} {s['version']} {s['source']}")
        lines.append(f"  sha256 {s['sha256']}")
    for item in prov.get("inputs", []):
        lines.append(f"input {item['file']}")
        lines.append(f"  sha256 {item['sha256']}")
    for item in prov.get("option_files", []):
        lines.append(f"option {item['option']} {item['file']}")
        lines.append(f"  sha256 {item['sha256']}")
    for key, value in prov.get("settings", {}).items():
        lines.append(f"setting {key}: {_setting(value)}")
    return lines


def _setting(value: Any) -> str:
    """A provenance setting as a report shows it."""
    if value is None:
        return "(default)"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _wrap(lines: list[str], width: int = 110) -> list[str]:
    out = []
    for line in lines:
        while len(line) > width:
            out.append(line[:width])
            line = "    " + line[width:]
        out.append(line)
    return out


def render_pdf(doc: StudyReport) -> bytes:
    """The report as a PDF: text pages, then each picture on its own page."""
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    from ketascore.present.plotting import figure_style

    buf = io.BytesIO()
    metadata = {"Title": doc.title, "Producer": "ketascore", "CreationDate": None, "ModDate": None}
    with figure_style("report"), PdfPages(buf, metadata=metadata) as pdf:
        lines = _wrap(text_lines(doc))
        for start in range(0, max(len(lines), 1), LINES_PER_PAGE):
            page = Figure(figsize=PAGE)
            chunk = lines[start : start + LINES_PER_PAGE]
            page.text(
                0.06,
                0.96,
                "\n".join(chunk).replace("$", r"\$"),
                family="monospace",
                fontsize=6.6,
                va="top",
                linespacing=1.25,
            )
            pdf.savefig(page)
        for section in doc.sections:
            for kind in KINDS:
                fig = section.figures.get(kind)
                if fig is not None:
                    with figure_style(kind):
                        pdf.savefig(fig)
    return buf.getvalue()


def write_text(path: str | Path, text: str) -> None:
    from ketascore.writers.tabular import atomic_writer

    with atomic_writer(path) as fh:
        fh.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    from ketascore.writers.tabular import atomic_writer

    with atomic_writer(path, binary=True) as fh:
        fh.write(data)
