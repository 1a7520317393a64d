"""Ketamine and esketamine dosing sessions, and monitoring rules evaluated per session.

A session record holds the date, the drug and dose, blood pressure before dosing, at about
40 minutes and at discharge, the lowest MOAA/S and the MOAA/S at discharge, CADSS before
dosing, after (at about 40 minutes) and at discharge, the time of dosing and the time the
patient was ready to leave, and adverse events as free text. Sessions are read from CSV
(one row each), YAML or JSON (a list of mappings); a field that cannot be read is an issue
that names the file, line, patient and field, and the rules that need it are left
undetermined, never guessed.

Monitoring rules are data (``ketascore/clinic/data/rules/*.yaml``): each rule has an id, a
label, a severity (``alert``, ``warning``, ``note``), the drugs it applies to, a condition over
the session's fields (``FIELDS``) and the label section it comes from.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from ketascore.clinic import files
from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.model import Citation, Id, Text
from ketascore.core.scale import Problem, load_model
from ketascore.core.values import Num, clean_number, finite_number

Severity = Literal["alert", "warning", "note"]
SEVERITY_ORDER = {"alert": 0, "warning": 1, "note": 2}
BP_FIELDS = ("bp_pre", "bp_40min", "bp_discharge")
NUMBER_FIELDS = (
    "dose_mg",
    "moaas_lowest",
    "moaas_discharge",
    "cadss_pre",
    "cadss_post",
    "cadss_discharge",
)
TIME_FIELDS = ("dosed_at", "ready_to_leave_at")

# What a rule's condition may name: the recorded values and the differences derived from them.
FIELDS = (
    "dose_mg",
    *(f"{bp}.{part}" for bp in BP_FIELDS for part in ("systolic", "diastolic")),
    *(
        f"{d}.{part}"
        for d in ("rise_40min", "rise_discharge", "fall_after_40min")
        for part in ("systolic", "diastolic")
    ),
    "monitoring_minutes",
    "moaas_lowest",
    "moaas_discharge",
    "cadss_pre",
    "cadss_post",
    "cadss_discharge",
    "cadss_rise",
    "adverse_events",
    "dosed_at",
    "ready_to_leave_at",
    *BP_FIELDS,
)


@dataclass(frozen=True)
class BloodPressure:
    systolic: Num
    diastolic: Num

    def __str__(self) -> str:
        return f"{self.systolic:g}/{self.diastolic:g}"


@dataclass
class Session:
    subject: str
    date: str
    drug: str
    dose_mg: Num | None = None
    route: str | None = None
    bp_pre: BloodPressure | None = None
    bp_40min: BloodPressure | None = None
    bp_discharge: BloodPressure | None = None
    moaas_lowest: Num | None = None
    moaas_discharge: Num | None = None
    cadss_pre: Num | None = None
    cadss_post: Num | None = None
    cadss_discharge: Num | None = None
    dosed_at: int | None = None  # minutes after midnight
    ready_to_leave_at: int | None = None
    adverse_events: str | None = None
    session: str | None = None
    file: str | None = None
    line: int | None = None
    unreadable: set[str] = field(default_factory=set)  # fields given but not readable

    @property
    def monitoring_minutes(self) -> int | None:
        if self.dosed_at is None or self.ready_to_leave_at is None:
            return None
        minutes = self.ready_to_leave_at - self.dosed_at
        return minutes if minutes >= 0 else minutes + 24 * 60  # past midnight

    def value(self, name: str) -> Any:
        """A field a rule names (None when not recorded)."""
        head, _, part = name.partition(".")
        if head in BP_FIELDS:
            bp = getattr(self, head)
            return bp if not part or bp is None else getattr(bp, part)
        if head in ("rise_40min", "rise_discharge", "fall_after_40min"):
            first, second = {
                "rise_40min": (self.bp_pre, self.bp_40min),
                "rise_discharge": (self.bp_pre, self.bp_discharge),
                "fall_after_40min": (self.bp_discharge, self.bp_40min),
            }[head]
            if first is None or second is None:
                return None
            return clean_number(getattr(second, part) - getattr(first, part))
        if name == "monitoring_minutes":
            return self.monitoring_minutes
        if name == "cadss_rise":
            if self.cadss_pre is None or self.cadss_post is None:
                return None
            return clean_number(self.cadss_post - self.cadss_pre)
        if name == "adverse_events":
            return self.adverse_events.strip() if self.adverse_events else None
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "date": self.date,
            "session": self.session,
            "drug": self.drug,
            "dose_mg": self.dose_mg,
            "route": self.route,
            "bp_pre": str(self.bp_pre) if self.bp_pre else None,
            "bp_40min": str(self.bp_40min) if self.bp_40min else None,
            "bp_discharge": str(self.bp_discharge) if self.bp_discharge else None,
            "moaas_lowest": self.moaas_lowest,
            "moaas_discharge": self.moaas_discharge,
            "cadss_pre": self.cadss_pre,
            "cadss_post": self.cadss_post,
            "cadss_discharge": self.cadss_discharge,
            "dosed_at": _clock(self.dosed_at),
            "ready_to_leave_at": _clock(self.ready_to_leave_at),
            "monitoring_minutes": self.monitoring_minutes,
            "adverse_events": self.adverse_events,
            "source": {"file": self.file, "line": self.line},
        }


def _clock(minutes: int | None) -> str | None:
    return None if minutes is None else f"{minutes // 60:02d}:{minutes % 60:02d}"


# --------------------------------------------------------------------------------------
# Reading sessions

# (ASCII digits and whitespace, as the value grammar reads numbers: not "١٢٨/٨٢")
_BP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*(?:mm ?hg)?\s*$", re.I | re.A)
_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})(?::\d{2})?\s*$", re.A)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.A)
MISSING_TEXT = {"", "na", "n/a", ".", "none", "null"}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().casefold() in MISSING_TEXT)


def _parse_bp(value: Any) -> BloodPressure:
    if isinstance(value, dict) and set(value) == {"systolic", "diastolic"}:
        sys_, dia = value["systolic"], value["diastolic"]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (sys_, dia)):
            return _checked_bp(sys_, dia)
    match = _BP.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(
            f"{value!r} is not a blood pressure; write it as SYSTOLIC/DIASTOLIC (128/82)"
        )
    return _checked_bp(float(match[1]), float(match[2]))


def _checked_bp(systolic: float, diastolic: float) -> BloodPressure:
    if not (40 <= systolic <= 300 and 20 <= diastolic <= 200) or diastolic >= systolic:
        raise ValueError(f"{systolic:g}/{diastolic:g} is not a plausible blood pressure")
    return BloodPressure(clean_number(systolic), clean_number(diastolic))


def _parse_time(value: Any) -> int:
    # YAML reads an unquoted 09:30 as the base-60 number 570: minutes after midnight
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 24 * 60:
        return value
    match = _TIME.match(value) if isinstance(value, str) else None
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"{value!r} is not a time of day; write it as HH:MM (24-hour)")
    return int(match[1]) * 60 + int(match[2])


def _parse_number(name: str, value: Any) -> Num:
    # the grammar of an answer (a sign, ASCII digits, one decimal point): "1e2", "5_0" or
    # Arabic-Indic digits are not a dose read as 100, 50 or 3
    try:
        number = finite_number(value)
    except ValueError as exc:
        what = "a number" if str(exc) == "not-a-number" else "a number of 0 or more"
        raise ValueError(f"{value!r} is not {what}") from None
    if number is None or number < 0:
        raise ValueError(f"{value!r} is not a number of 0 or more")
    limits = {
        "moaas_lowest": 5,
        "moaas_discharge": 5,
        "cadss_pre": 92,
        "cadss_post": 92,
        "cadss_discharge": 92,
    }
    if name in limits and number > limits[name]:
        raise ValueError(f"{value!r} is above the scale's maximum of {limits[name]}")
    if name.startswith("moaas") and isinstance(number, float):  # (whole ones are ints)
        raise ValueError(f"{value!r} is not a whole MOAA/S score (0-5)")
    return number


def session_from_row(
    row: dict[str, Any], file: str | None, line: int | None
) -> tuple[Session | None, list[Issue]]:
    """One session from a row of fields; the issues of the fields that cannot be read."""
    issues: list[Issue] = []
    subject = row.get("subject", row.get("patient"))
    for name, value in (("subject", subject), ("date", row.get("date")), ("drug", row.get("drug"))):
        if _blank(value):
            issues.append(
                make_issue(
                    "session-invalid",
                    "missing",
                    field=name,
                    subject=None if _blank(subject) else str(subject),
                    file=file,
                    line=line,
                )
            )
    if issues:
        return None, issues
    subject = str(subject).strip()
    date = str(row["date"]).strip()
    if not _DATE.match(date):
        issues.append(
            make_issue(
                "session-invalid",
                field="date",
                reason=f"{date!r} is not a date; write it as YYYY-MM-DD",
                subject=subject,
                file=file,
                line=line,
            )
        )
        return None, issues
    session = Session(
        subject=subject, date=date, drug=str(row["drug"]).strip(), file=file, line=line
    )
    parsers: list[tuple[tuple[str, ...], Any]] = [
        (BP_FIELDS, lambda _n, v: _parse_bp(v)),
        (NUMBER_FIELDS, _parse_number),
        (TIME_FIELDS, lambda _n, v: _parse_time(v)),
    ]
    for names, parse in parsers:
        for name in names:
            value = row.get(name)
            if _blank(value):
                continue
            try:
                setattr(session, name, parse(name, value))
            except ValueError as exc:
                session.unreadable.add(name)
                issues.append(
                    make_issue(
                        "session-invalid",
                        field=name,
                        reason=str(exc),
                        subject=subject,
                        file=file,
                        line=line,
                    )
                )
    for name in ("route", "adverse_events", "session"):
        value = row.get(name)
        if not _blank(value):
            setattr(session, name, str(value).strip())
    return session, issues


def read_sessions(path: str | Path) -> tuple[list[Session], list[Issue]]:
    """Sessions of a CSV, YAML or JSON file (a list of mappings, or ``{sessions: [...]}``)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [], [make_issue("file-unreadable", reason=str(exc), file=name)]
    rows: list[tuple[dict[str, Any], int | None]] = []
    if Path(path).suffix.lower() in (".yaml", ".yml", ".json"):
        try:
            located = yamlsafe.load(text, raw_keys=frozenset({"subject", "patient", "session"}))
        except yamlsafe.YamlError as exc:
            return [], [
                make_issue(
                    "session-invalid",
                    "file",
                    error=exc.message,
                    file=name,
                    line=exc.line,
                )
            ]
        data = located.data
        if isinstance(data, dict) and "sessions" in data:
            data = data["sessions"]
            prefix: tuple[str | int, ...] = ("sessions",)
        else:
            prefix = ()
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            return [], [
                make_issue(
                    "session-invalid",
                    "file",
                    error="expected a list of sessions",
                    file=name,
                )
            ]
        for i, row in enumerate(data):
            pos = located.position((*prefix, i))
            rows.append((row, pos.line if pos else None))
    else:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            rows.append(({k.strip().casefold(): v for k, v in row.items() if k}, reader.line_num))
    sessions: list[Session] = []
    issues: list[Issue] = []
    for row, line in rows:
        session, found = session_from_row(row, name, line)
        issues.extend(found)
        if session is not None:
            sessions.append(session)
    if not rows:
        issues.append(make_issue("file-empty", "no-records", file=name))
    return sessions, issues


# --------------------------------------------------------------------------------------
# Rules


class Condition(BaseModel):
    """``{field: F, above: N}`` (or at_least, at_most, below, equals), ``{missing: F}``,
    ``{recorded: F}``, ``{any: [conditions]}`` or ``{all: [conditions]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | None = None
    above: StrictInt | StrictFloat | None = None
    at_least: StrictInt | StrictFloat | None = None
    at_most: StrictInt | StrictFloat | None = None
    below: StrictInt | StrictFloat | None = None
    equals: StrictInt | StrictFloat | None = None
    missing: str | None = None
    recorded: str | None = None
    any: list[Condition] | None = None
    all: list[Condition] | None = None

    def test(self, session: Session) -> bool | None:
        """True, False, or None when a field it needs is not recorded."""
        if self.any is not None:
            found = [c.test(session) for c in self.any]
            return True if True in found else (None if None in found else False)
        if self.all is not None:
            found = [c.test(session) for c in self.all]
            return False if False in found else (None if None in found else True)
        if self.missing is not None or self.recorded is not None:
            name = self.missing or self.recorded or ""
            if name.partition(".")[0] in session.unreadable:
                return None
            absent = session.value(name) is None
            return absent if self.missing is not None else not absent
        assert self.field is not None
        if self.field.partition(".")[0] in session.unreadable:
            return None
        value = session.value(self.field)
        if value is None or not isinstance(value, int | float):
            return None
        if self.above is not None:
            return bool(value > self.above)
        if self.at_least is not None:
            return bool(value >= self.at_least)
        if self.at_most is not None:
            return bool(value <= self.at_most)
        if self.below is not None:
            return bool(value < self.below)
        assert self.equals is not None, "a checked condition has a comparison"
        return bool(value == self.equals)

    def fields(self) -> list[str]:
        if self.any is not None or self.all is not None:
            return [f for c in (self.any or self.all or []) for f in c.fields()]
        return [self.field or self.missing or self.recorded or ""]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    label: str
    severity: Severity
    drugs: list[str] = Field(default_factory=list, description="empty: every drug")
    when: Condition
    source: str
    section: str | None = Field(default=None, description="the section of the source")

    def applies_to(self, drug: str) -> bool:
        return not self.drugs or drug.casefold() in {d.casefold() for d in self.drugs}


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Id
    name: str
    version: Text
    description: str | None = None
    citations: list[Citation] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)


def _condition_problems(c: Condition, path: tuple[str | int, ...]) -> list[Problem]:
    problems: list[Problem] = []
    ops = [
        op
        for op in ("above", "at_least", "at_most", "below", "equals")
        if getattr(c, op) is not None
    ]
    kinds = [k for k in ("field", "missing", "recorded", "any", "all") if getattr(c, k) is not None]
    if len(kinds) != 1:
        return [Problem(path, "give exactly one of field, missing, recorded, any or all")]
    if c.field is not None and len(ops) != 1:
        problems.append(
            Problem(
                path,
                "a field needs exactly one comparison (above, at_least, at_most, below, equals)",
            )
        )
    if c.field is None and ops:
        problems.append(Problem(path, f"{ops[0]} goes with a field"))
    for name in (c.field, c.missing, c.recorded):
        if name is not None and name not in FIELDS:
            problems.append(Problem(path, f"unknown field {name!r}; fields: {', '.join(FIELDS)}"))
    for key in ("any", "all"):
        for i, sub in enumerate(getattr(c, key) or []):
            problems.extend(_condition_problems(sub, (*path, key, i)))
    return problems


def _rule_relations(rs: RuleSet) -> list[Problem]:
    problems: list[Problem] = []
    keys = {c.key for c in rs.citations}
    ids = [r.id for r in rs.rules]
    for i, rule in enumerate(rs.rules):
        if ids.count(rule.id) > 1:
            problems.append(Problem(("rules", i, "id"), f"rule {rule.id!r} repeats"))
        if rule.source not in keys:
            problems.append(
                Problem(("rules", i, "source"), f"unknown citation key {rule.source!r}")
            )
        problems.extend(_condition_problems(rule.when, ("rules", i, "when")))
    return problems


def load_rules(id_or_path: str = "esketamine-label") -> RuleSet:
    return files.resolve("rules", id_or_path, RuleSet, _rule_relations)


def load_rules_text(text: str, source: str = "<rules>") -> RuleSet:
    return load_model(text, source, RuleSet, _rule_relations)


# --------------------------------------------------------------------------------------
# Evaluation and the clinic summary


@dataclass
class SessionFlag:
    rule: str
    label: str
    severity: Severity
    source: str
    section: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))  # (its fields, in order)


@dataclass
class SessionResult:
    session: Session
    flags: list[SessionFlag]
    undetermined: list[str]  # rules whose fields are not recorded
    rules_applied: int

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.session.to_dict(),
            "flags": [f.to_dict() for f in self.flags],
            "undetermined": self.undetermined,
            "rules_applied": self.rules_applied,
        }


def evaluate_session(session: Session, rules: RuleSet) -> SessionResult:
    flags: list[SessionFlag] = []
    undetermined: list[str] = []
    applied = 0
    for rule in rules.rules:
        if not rule.applies_to(session.drug):
            continue
        applied += 1
        verdict = rule.when.test(session)
        if verdict is None:
            undetermined.append(rule.id)
        elif verdict:
            flags.append(SessionFlag(rule.id, rule.label, rule.severity, rule.source, rule.section))
    flags.sort(key=lambda f: SEVERITY_ORDER[f.severity])
    return SessionResult(session, flags, undetermined, applied)


def evaluate_sessions(sessions: Iterable[Session], rules: RuleSet) -> list[SessionResult]:
    from ketascore.analysis.change import natural_key

    ordered = sorted(sessions, key=lambda s: (natural_key(s.subject), s.date, s.dosed_at or 0))
    return [evaluate_session(s, rules) for s in ordered]


@dataclass
class ClinicSummary:
    """Sessions by drug: how many, for how many patients, how many with a flag of each
    severity, how often each rule fired, and how long patients were monitored."""

    rows: list[dict[str, Any]]
    rule_counts: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"by_drug": self.rows, "rules": self.rule_counts}


def summarise_sessions(results: list[SessionResult], rules: RuleSet) -> ClinicSummary:
    rows = []
    by_drug: dict[str, list[SessionResult]] = {}
    for r in results:
        by_drug.setdefault(r.session.drug.casefold(), []).append(r)
    for drug in sorted(by_drug):
        rs = by_drug[drug]
        minutes = sorted(m for r in rs if (m := r.session.monitoring_minutes) is not None)
        rows.append(
            {
                "drug": rs[0].session.drug,
                "sessions": len(rs),
                "patients": len({r.session.subject for r in rs}),
                "with_alert": sum(any(f.severity == "alert" for f in r.flags) for r in rs),
                "with_warning": sum(any(f.severity == "warning" for f in r.flags) for r in rs),
                "rules_applied": max((r.rules_applied for r in rs), default=0),
                "monitoring_minutes_median": _median(minutes),
                "monitoring_minutes_min": minutes[0] if minutes else None,
            }
        )
    counts = []
    for rule in rules.rules:
        eligible = [r for r in results if rule.applies_to(r.session.drug)]
        counts.append(
            {
                "rule": rule.id,
                "label": rule.label,
                "severity": rule.severity,
                "section": rule.section,
                "sessions": len(eligible),
                "flagged": sum(any(f.rule == rule.id for f in r.flags) for r in eligible),
                "undetermined": sum(rule.id in r.undetermined for r in eligible),
            }
        )
    return ClinicSummary(rows, counts)


def _median(values: list[int]) -> Num | None:
    if not values:
        return None
    mid = len(values) // 2
    if len(values) % 2:
        return values[mid]
    return clean_number((values[mid - 1] + values[mid]) / 2)
