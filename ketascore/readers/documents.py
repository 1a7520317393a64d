"""YAML, JSON and JSON Lines answer files: one record (a mapping) or a list of records.

Numbers are what the value grammar says (``ketascore.core.values``), whatever YAML's implicit
typing would make of them (``010`` is 10, ``0x1F`` is text); a key repeated in one mapping
is refused in every format, as it makes the value ambiguous; an item named twice in one
record (``16a`` and ``16A``) with different answers is an unusable answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.values import Rejection, comparable
from ketascore.readers.base import POSITION_LIMIT, RECORD_FIELDS, ReadResult, text_lines
from ketascore.readers.fields import carried, check_date, check_day, checked_field, text_field


def record_from_mapping(
    data: Any,
    *,
    file: str,
    index: int,
    line: int | None,
    item_lines: dict[str, int] | None = None,
    field_lines: dict[str, int] | None = None,
    issues: list[Issue],
) -> AnswerRecord | None:
    """Build a record from one mapping; issues for what is wrong, None if unusable."""
    field_lines = field_lines or {}
    if not isinstance(data, dict):
        issues.append(
            make_issue(
                "bad-record",
                "not-mapping",
                file=file,
                line=line,
                number=index + 1,
                kind=_kind(data),
            )
        )
        return None
    subject = text_field(data.get("subject"))
    visit = text_field(data.get("visit"))
    missing = [name for name, value in (("subject", subject), ("visit", visit)) if value is None]
    if missing:
        issues.append(
            make_issue(
                "missing-field",
                "record",
                number=index + 1,
                fields=" or ".join(missing),
                file=file,
                line=line,
                subject=subject,
                visit=visit,
            )
        )
        return None
    assert subject is not None and visit is not None
    items = data.get("items")
    if not isinstance(items, dict):
        issues.append(
            make_issue(
                "bad-record",
                "no-items",
                file=file,
                line=field_lines.get("items", line),
                subject=subject,
                visit=visit,
            )
        )
        return None
    scale = data.get("scale")
    if scale is not None and not isinstance(scale, str):
        scale = str(scale)
    where = {"file": file, "subject": subject, "visit": visit}
    date_line, day_line = field_lines.get("date", line), field_lines.get("day", line)
    date = checked_field(check_date, data.get("date"), issues, "record", line=date_line, **where)
    day = checked_field(check_day, data.get("day"), issues, "record", line=day_line, **where)
    # (a JSON number beyond a double's range is infinity: carried as its text)
    extra = {
        k: v if isinstance(v, str) else carried(v)
        for k, v in data.items()
        if k not in RECORD_FIELDS
    }
    return AnswerRecord(
        subject=subject,
        visit=visit,
        scale=scale.strip() if isinstance(scale, str) and scale.strip() else None,
        items=one_key_per_item(items.items()),
        date=date,
        day=day,
        extra=extra,
        source=Source(file=file, line=line, index=index),
        item_lines=item_lines or {},
    )


def one_key_per_item(pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    """A record's items by key. Item ids compare ignoring case (``16a`` is ``16A``): keys
    that name one item twice keep the first key, with the answer when both agree and an
    unusable answer (``conflicting-records``) when they do not."""
    out: dict[str, Any] = {}
    first_key: dict[str, str] = {}
    for raw_key, value in pairs:
        key = str(raw_key)
        folded = key.casefold()
        if folded not in first_key:
            first_key[folded] = key
            out[key] = value
            continue
        kept = first_key[folded]
        old = out[kept]
        if isinstance(old, Rejection) or comparable(old) != comparable(value):
            out[kept] = Rejection(
                "conflicting-records",
                "key-twice",
                {"first_key": kept, "first": old, "second_key": key, "second": value},
            )
    return out


class JsonContentError(ValueError):
    """JSON that is well formed but cannot be used as it stands."""


class DuplicateKeyError(JsonContentError):
    """A key given twice in one JSON object."""

    def __init__(self, key: str):
        super().__init__(f"duplicate key {key!r}")
        self.key = key


class SurrogateError(JsonContentError):
    """A string with an unpaired UTF-16 surrogate escape (``"\\ud800"``): valid JSON
    syntax, but not a character, and no output could hold it."""

    def __init__(self, text: str):
        super().__init__(
            f"the text {text[:40]!r} holds an unpaired surrogate escape (\\ud800-\\udfff), "
            "which is not a character"
        )


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_surrogates(data: Any) -> None:
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise SurrogateError(value)
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(key)
        out[key] = value
    return out


def json_loads(text: str) -> Any:
    """``json.loads`` as ketascore reads JSON: a key repeated in one object is refused
    (DuplicateKeyError), and so is a string with an unpaired surrogate escape
    (SurrogateError); an integer too long to convert and the constants NaN and Infinity
    (which are not JSON) stay text, for the value grammar to judge."""
    data = json.loads(
        text,
        object_pairs_hook=_unique_pairs,
        parse_int=yamlsafe.number_text,
        parse_constant=str,
    )
    if _SURROGATE_ESCAPE.search(text):
        _check_surrogates(data)
    return data


def _kind(value: Any) -> str:
    return {
        list: "list",
        dict: "mapping",
        str: "text",
        int: "number",
        float: "number",
        bool: "boolean",
        type(None): "empty value",
    }.get(type(value), type(value).__name__)


def records_from_document(
    data: Any, located: yamlsafe.Located | None, file: str, issues: list[Issue]
) -> list[AnswerRecord]:
    """A document holds one record (a mapping) or a list of records."""
    if data is None:
        issues.append(make_issue("file-empty", "no-records", file=file))
        return []
    if isinstance(data, dict):
        entries, single = [data], True
    elif isinstance(data, list):
        entries, single = data, False
    else:
        issues.append(make_issue("bad-record", "document", file=file, line=1, kind=_kind(data)))
        return []
    if not entries:
        issues.append(make_issue("file-empty", "empty-list", file=file))
    records = []
    for i, entry in enumerate(entries):
        path: tuple[str | int, ...] = () if single else (i,)
        line = item_lines = field_lines = None
        if located is not None:
            pos = located.position(path)
            line = pos.line if pos else None
            if isinstance(entry, dict):
                field_lines = {
                    k: p.line for k in entry if (p := located.positions.get((*path, k))) is not None
                }
                if isinstance(entry.get("items"), dict):
                    item_lines = {
                        str(k): p.line
                        for k in entry["items"]
                        if (p := located.positions.get((*path, "items", k))) is not None
                    }
        record = record_from_mapping(
            entry,
            file=file,
            index=i,
            line=line,
            item_lines=item_lines,
            field_lines=field_lines,
            issues=issues,
        )
        if record is not None:
            records.append(record)
    return records


def yaml_issue(exc: yamlsafe.YamlError, file: str, what: str) -> Issue:
    """The parse-error issue of a YAML (or JSON) document the loader refused."""
    variant = "" if exc.kind in ("syntax", "duplicate") else exc.kind
    if exc.column:
        variant = f"{variant}-at-column" if variant else "at-column"
    return make_issue(
        "parse-error",
        variant,
        file=file,
        line=exc.line,
        format=what,
        error=exc.message,
        column=exc.column,
    )


RAW_KEYS = frozenset({"subject", "visit"})


def load_answers(text: str, *, json_document: bool = False) -> yamlsafe.Located:
    """An answer document read with its positions, numbers as the value grammar reads them
    (raises YamlError)."""
    return yamlsafe.load(text, raw_keys=RAW_KEYS, numbers="json" if json_document else "grammar")


def read_yaml(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    try:
        located = load_answers(text)
    except yamlsafe.YamlError as exc:
        out.issues.append(yaml_issue(exc, file, "YAML"))
        return out
    out.records = records_from_document(located.data, located, file, out.issues)
    return out


# Characters a JSON string may hold as they are, which YAML 1.1 takes for line breaks (and
# so folds into a space: "S1\u2028x" would read "S1 x", and the lines after it miscounted)
_YAML_BREAKS = {0x2028: "\\u2028", 0x2029: "\\u2029", 0x85: "\\u0085"}


def json_as_yaml(text: str) -> str:
    """JSON text to read as YAML (for the line of every value): the same JSON, with the
    characters YAML would take for line breaks written as JSON escapes."""
    if any(chr(c) in text for c in _YAML_BREAKS):
        return text.translate(_YAML_BREAKS)
    return text


def read_json(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    if len(text) <= POSITION_LIMIT:
        try:  # JSON is YAML: this reading also gives the line of every record and item
            located = load_answers(json_as_yaml(text), json_document=True)
        except yamlsafe.YamlError as exc:
            if exc.kind in ("duplicate", "limit"):
                out.issues.append(yaml_issue(exc, file, "JSON"))
                return out
            located = None  # not JSON: the JSON reader says why
        if located is not None:
            out.records = records_from_document(located.data, located, file, out.issues)
            return out
    try:
        yamlsafe.check_depth(text)
        data = json_loads(text)
    except yamlsafe.YamlError as exc:
        out.issues.append(yaml_issue(exc, file, "JSON"))
        return out
    except JsonContentError as exc:
        out.issues.append(make_issue("parse-error", file=file, format="JSON", error=str(exc)))
        return out
    except json.JSONDecodeError as exc:
        out.issues.append(
            make_issue(
                "parse-error",
                "at-column",
                file=file,
                line=exc.lineno,
                format="JSON",
                error=exc.msg,
                column=exc.colno,
            )
        )
        return out
    except RecursionError:
        out.issues.append(make_issue("parse-error", "too-deep", file=file))
        return out
    out.records = records_from_document(data, None, file, out.issues)
    return out


def read_jsonl(text: str, file: str) -> ReadResult:
    out = ReadResult(files=[file])
    for lineno, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            yamlsafe.check_depth(line)
            data = json_loads(line)
        except (json.JSONDecodeError, JsonContentError, yamlsafe.YamlError, RecursionError) as exc:
            detail = (
                getattr(exc, "msg", None)
                or getattr(exc, "message", None)
                or (str(exc) if isinstance(exc, JsonContentError) else "too deep")
            )
            out.issues.append(
                make_issue("parse-error", file=file, line=lineno, format="JSON", error=detail)
            )
            continue
        record = record_from_mapping(
            data, file=file, index=lineno - 1, line=lineno, issues=out.issues
        )
        if record is not None:
            out.records.append(record)
    if not out.records and not out.issues:
        out.issues.append(make_issue("file-empty", "no-records", file=file))
    return out
