"""`ketascore clinic`: measurement-based care for ketamine clinics (outcome measures, dosing
sessions, alerts, a patient's timeline)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
    UsageError,
    console,
    emit,
    input_options,
    is_tty,
    output_options,
    read_options,
    resolve_format,
)

if TYPE_CHECKING:
    from ketascore.clinic.sessions import RuleSet, SessionResult
    from ketascore.core.issues import Issue
    from ketascore.core.records import ScoreResult
    from ketascore.core.scale import Scale


@cli.group("clinic")
def clinic() -> None:
    """Measurement-based care: outcome measures, dosing sessions, alerts, timelines.

    \b
    ketascore clinic measures                       the named outcome measures
    ketascore clinic measure cms159 RATINGS...      a measure, per patient and as rates
    ketascore clinic sessions SESSIONS.csv          each session against the label's rules
    ketascore clinic alerts RATINGS... --sessions F safety alerts per patient, newest first
    ketascore clinic timeline RATINGS... --patient ID -o page.html
    """


def _scored(
    paths: tuple[str, ...],
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> tuple[list[ScoreResult], list[Issue]]:
    """Every record of every known scale in the paths, scored; the problems found."""
    from ketascore.api import read_answers, score

    data = read_answers(
        list(paths),
        input_format=input_format,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=read_options([]),
    )
    results = score(data.records)
    return results, [*data.issues, *(i for r in results for i in r.issues)]


def _scale_of(scale_id: str) -> Scale | None:
    from ketascore.core.library import ScaleSet

    return ScaleSet().get(scale_id)


def _rules(name: str) -> RuleSet:
    from ketascore.clinic.sessions import load_rules
    from ketascore.core.scale import ScaleError

    try:
        return load_rules(name)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None
    except ScaleError as exc:
        raise UsageError(
            f"rules file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None


def _sessions(files: tuple[Path, ...], rules: RuleSet) -> tuple[list[SessionResult], list[Issue]]:
    from ketascore.clinic.sessions import evaluate_sessions, read_sessions

    sessions = []
    issues: list[Issue] = []
    for path in files:
        found, problems = read_sessions(path)
        sessions.extend(found)
        issues.extend(problems)
    return evaluate_sessions(sessions, rules), issues


def _finish(issues: list[Issue], fmt: str) -> None:
    """Problems to stderr (in every format), and the exit code they call for."""
    from ketascore.present.render import print_issues

    problems = [i for i in issues if i.code != "flag-undetermined"]
    print_issues(console(stderr=True), problems)
    sys.exit(Exit.PROBLEMS if any(i.severity == "error" for i in issues) else Exit.OK)


def _json(doc: dict[str, Any]) -> str:
    import json

    from ketascore import __version__

    return (
        json.dumps({"ketascore_version": __version__, **doc}, indent=2, ensure_ascii=False) + "\n"
    )


def _csv(rows: list[dict[str, Any]]) -> str:
    import csv
    import io

    from ketascore.writers.tabular import escape_formula

    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: escape_formula(v) if isinstance(v, str) else v for k, v in row.items()}
            )
    return out.getvalue()


rules_option = click.option(
    "--rules",
    "rules_name",
    default="esketamine-label",
    show_default=True,
    help="Session monitoring rules: a built-in id or the path of a rules file.",
)


# --------------------------------------------------------------------------------------
# measures


@clinic.command("measures")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
@click.option(
    "--check",
    "check_file",
    type=click.Path(exists=True, dir_okay=False),
    help="Check a measure file you wrote and run its worked examples.",
)
def measures_cmd(fmt: str | None, check_file: str | None) -> None:
    """The named outcome measures (NHS Talking Therapies, CMS159 / MIPS 370, HEDIS DRR-E)."""
    from ketascore.clinic.measures import builtin_measures, load_measure, run_examples
    from ketascore.core.scale import ScaleError

    if check_file is not None:
        try:
            measure = load_measure(check_file)
        except ScaleError as exc:
            click.echo("\n".join(exc.problems), err=True)
            sys.exit(Exit.PROBLEMS)
        failures = run_examples(measure)
        for failure in failures:
            click.echo(f"{check_file}: {failure}", err=True)
        if failures:
            sys.exit(Exit.PROBLEMS)
        click.echo(f"{check_file}: ok ({len(measure.examples)} worked example(s) pass)")
        return
    measures = [load_measure(m) for m in builtin_measures()]
    fmt = fmt or ("table" if is_tty(sys.stdout) else "json")
    if fmt == "json":
        click.echo(
            _json(
                {
                    "measures": [
                        {
                            "id": m.id,
                            "name": m.name,
                            "short_name": m.short_name,
                            "version": m.version,
                            "outcomes": [o.id for o in m.outcomes],
                            "sources": [c.text for c in m.citations],
                        }
                        for m in measures
                    ]
                }
            ),
            nl=False,
        )
        return
    from rich.table import Table

    table = Table(header_style="bold")
    for name in ("Id", "Measure", "Version", "Outcomes"):
        table.add_column(name)
    for m in measures:
        table.add_row(m.id, m.short_name or m.name, m.version, ", ".join(o.id for o in m.outcomes))
    console().print(table)


@clinic.command("measure")
@click.argument("measure_name", metavar="MEASURE")
@click.argument("paths", nargs=-1, required=True)
@click.option("--index-from", help="First date an index event may have (YYYY-MM-DD).")
@click.option("--index-to", help="Last date an index event may have (YYYY-MM-DD).")
@output_options(("table", "json", "csv"))
@input_options
def measure_cmd(
    measure_name: str,
    paths: tuple[str, ...],
    index_from: str | None,
    index_to: str | None,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """A named outcome measure (or a measure file) over ratings: each patient's start and
    follow-up scores and outcomes, and the rate of each outcome."""
    import datetime as dt

    from ketascore.clinic.measures import evaluate_measure, load_measure
    from ketascore.core.scale import ScaleError

    try:
        measure = load_measure(measure_name)
    except LookupError as exc:
        raise UsageError(str(exc.args[0])) from None
    except ScaleError as exc:
        raise UsageError(
            f"measure file {exc.source} has problems:\n" + "\n".join(exc.problems)
        ) from None
    for name, value in (("--index-from", index_from), ("--index-to", index_to)):
        if value is not None:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise UsageError(f"{name} {value!r}: write the date as YYYY-MM-DD") from None
    fmt = resolve_format(fmt, output)
    results, issues = _scored(paths, input_format, include, exclude, max_file_size)
    wanted = {p.scale for p in measure.parts}
    issues = [i for i in issues if i.scale is None or i.scale in wanted]
    report = evaluate_measure(measure, results, index_from=index_from, index_to=index_to)
    issues += report.issues
    if fmt == "table":
        from ketascore.present.clinic import measure_tables

        console().print(measure_tables(report))
    elif fmt == "json":
        emit(_json(report.to_dict()), output, list(paths))
    else:
        rows = []
        for p in report.patients:
            row: dict[str, Any] = {
                "subject": p.subject,
                "in_population": p.in_population,
                "reason": p.reason or "",
            }
            for part in measure.parts:
                for when, points in (("start", p.start), ("end", p.end)):
                    point = points.get(part.id)
                    row[f"{part.id}_{when}_date"] = point.date.isoformat() if point else ""
                    row[f"{part.id}_{when}"] = point.value if point else ""
            for outcome in measure.outcomes:
                met = p.outcomes.get(outcome.id)
                row[outcome.id] = "" if met is None else met
            rows.append(row)
        emit(_csv(rows), output, list(paths))
    _finish(issues, fmt)


# --------------------------------------------------------------------------------------
# sessions


@clinic.command("sessions")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@rules_option
@click.option("--patient", help="Only this patient's sessions.")
@output_options(("table", "json", "csv"))
def sessions_cmd(
    files: tuple[Path, ...],
    rules_name: str,
    patient: str | None,
    fmt: str | None,
    output: Path | None,
) -> None:
    """Each dosing session checked against monitoring rules (by default the esketamine
    label's and REMS's), and a clinic summary by drug and by rule."""
    from ketascore.clinic.sessions import summarise_sessions

    rules = _rules(rules_name)
    fmt = resolve_format(fmt, output)
    results, issues = _sessions(files, rules)
    if patient is not None:
        results = [r for r in results if r.session.subject == patient]
    summary = summarise_sessions(results, rules)
    inputs = [str(f) for f in files]
    if fmt == "table":
        from ketascore.present.clinic import session_tables

        console().print(session_tables(results, summary))
    elif fmt == "json":
        doc = {
            "rules": {"id": rules.id, "name": rules.name, "version": rules.version},
            "sessions": [r.to_dict() for r in results],
            "summary": summary.to_dict(),
            "issues": [i.as_dict() for i in issues],
        }
        emit(_json(doc), output, inputs)
    else:
        rows = []
        for r in results:
            row = r.session.to_dict()
            row.pop("source")
            row["flags"] = ";".join(f.rule for f in r.flags)
            row["undetermined"] = ";".join(r.undetermined)
            rows.append(row)
        emit(_csv(rows), output, inputs)
    _finish(issues, fmt)


# --------------------------------------------------------------------------------------
# alerts


sessions_option = click.option(
    "--sessions",
    "session_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file of dosing sessions (CSV, YAML or JSON); repeat for more.",
)


@clinic.command("alerts")
@click.argument("paths", nargs=-1, required=True)
@sessions_option
@rules_option
@click.option("--patient", help="Only this patient's alerts.")
@output_options(("table", "json"))
@input_options
def alerts_cmd(
    paths: tuple[str, ...],
    session_files: tuple[Path, ...],
    rules_name: str,
    patient: str | None,
    fmt: str | None,
    output: Path | None,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """Safety alerts per patient, newest first: every flag a scale declares (PHQ-9 item 9,
    C-SSRS ideation with intent, ...), flags that could not be determined, and the alerts and
    warnings of dosing sessions."""
    from ketascore.clinic.alerts import newest_first, scale_alerts, session_alerts

    fmt = resolve_format(fmt, output)
    rules = _rules(rules_name)
    results, issues = _scored(paths, input_format, include, exclude, max_file_size)
    sessions, session_issues = _sessions(session_files, rules)
    issues += session_issues
    grouped = newest_first(scale_alerts(results, _scale_of) + session_alerts(sessions))
    if patient is not None:
        grouped = {k: v for k, v in grouped.items() if k == patient}
    if fmt == "table":
        from ketascore.present.clinic import alert_tables

        console().print(alert_tables(grouped))
    else:
        doc = {
            "patients": [
                {"subject": subject, "alerts": [a.to_dict() for a in alerts]}
                for subject, alerts in grouped.items()
            ],
            "issues": [i.as_dict() for i in issues if i.code != "flag-undetermined"],
        }
        emit(_json(doc), output, [*paths, *map(str, session_files)])
    _finish(issues, fmt)


# --------------------------------------------------------------------------------------
# timeline


@clinic.command("timeline")
@click.argument("paths", nargs=-1, required=True)
@click.option("--patient", required=True, help="The patient (subject id).")
@sessions_option
@rules_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the page to FILE (HTML); without it the page goes to stdout when piped.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "json"]),
    default="html",
    show_default=True,
    help="The page, or the data it shows as JSON.",
)
@input_options
def timeline_cmd(
    paths: tuple[str, ...],
    patient: str,
    session_files: tuple[Path, ...],
    rules_name: str,
    output: Path | None,
    fmt: str,
    input_format: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    max_file_size: int,
) -> None:
    """One patient's timeline as a self-contained HTML page: every scale's scores over time
    with its bands shaded, dosing sessions on the time axis, the reliable change category,
    and the patient's alerts. Prints on one page."""
    import difflib

    from ketascore.clinic.timeline import build_timeline

    if output is None and fmt == "html" and is_tty(sys.stdout):
        raise UsageError("the timeline is an HTML page: write it with -o FILE.html")
    rules = _rules(rules_name)
    results, issues = _scored(paths, input_format, include, exclude, max_file_size)
    sessions, session_issues = _sessions(session_files, rules)
    issues += session_issues
    known = sorted({r.subject for r in results} | {s.session.subject for s in sessions})
    if patient not in known:
        close = difflib.get_close_matches(patient, known, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UsageError(f"no records or sessions of patient {patient!r}{hint}")
    timeline = build_timeline(patient, results, _scale_of, sessions)
    issues += timeline.issues
    inputs = [*paths, *map(str, session_files)]
    if fmt == "json":
        emit(_json(timeline.to_dict()), output, inputs)
    else:
        from ketascore.present.timeline import render_timeline

        emit(render_timeline(timeline), output, inputs)
    mine = [i for i in issues if i.subject in (None, patient)]
    _finish(mine, fmt)
