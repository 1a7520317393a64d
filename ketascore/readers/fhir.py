"""FHIR R4 QuestionnaireResponse resources: one resource, a Bundle of them, or NDJSON.

- The scale is the one whose LOINC item codes (``codes.loinc`` of its items) the response's
  items match best: an item matches by its ``linkId`` (``44250-9``, or the last part of a
  path-like linkId such as ``/44249-1/44250-9``) or by the ``code`` its Questionnaire item
  declares (``--questionnaire``). A mapping file maps linkIds to items instead
  (``items: {1: q1}``) and names the scale. Nested groups (and items nested in answers) are
  walked; items that match nothing (dates, names) are ignored.
- A ``valueCoding`` answer is scored through the scale's answer codes (the LOINC LA codes of
  its answer set); a code the scale does not know is scored through the Questionnaire's
  ``ordinalValue`` (or ``itemWeight``) extension when ``--questionnaire`` gives it, and is
  otherwise rejected (``unknown-answer-code``). A coding is its system and code: a LOINC
  answer code in another system than LOINC's, or an answer option's code in another system
  than the Questionnaire's, is rejected too (a coding without a system is matched by its
  code; a scale's own codes, not LOINC's, declare no system). ``valueInteger``,
  ``valueDecimal`` and ``valueString`` (a number or an answer label) are accepted too.
- The subject is ``subject.reference`` (``Patient/123``, an absolute
  ``https://server/fhir/Patient/123`` and a version's ``Patient/123/_history/2`` give
  ``123``; a reference to anything else is the subject as written), else a Patient
  ``source`` (who answered a self-report), else ``subject.identifier.value``. A
  ``subject.reference`` that is no text (the number 123), or a ``subject`` that is no
  reference, is reported (``bad-field``) and the response skipped, unless a mapping file
  gives the subject: ``source`` is not taken in its place.
- The date is ``authored``; the visit is the authored date (``YYYY-MM-DD``, as written,
  without time-zone conversion), unless a mapping file gives a constant
  (``visit: {value: baseline}``) or names the linkId of an item that holds the visit. An
  ``authored`` that is no text (the number ``20240101``) is reported (``bad-field``), and
  the response, without a visit, is skipped.
- A response whose ``status`` is not final (``in-progress``, ``stopped``) or is no
  QuestionnaireResponse status is scored with a warning (``response-status``); one
  ``entered-in-error`` is skipped.
- A total the form stored is compared with the computed score (``reported-score-mismatch``):
  an item whose linkId or code is a score's LOINC code (``44261-6``), or, with the
  Questionnaire, a numeric item with an SDC ``calculatedExpression`` (the form's own total,
  such as ``phq9-total-score``), taken as the scale's ``total`` score.
- A resource of another type is reported (``unsupported-resource``) and skipped; in a Bundle
  that holds QuestionnaireResponses, other resources (a Patient, an Encounter) are ignored and
  Questionnaire resources are used as with ``--questionnaire``.
- A form that answers items of several scales (a PHQ-9 and a GAD-7 on one form) gives one
  record per scale.
- What does not have the shape FHIR gives it is an error, never a missing answer: a response
  whose ``item`` is not a list of items is skipped (``bad-record``); an answer that is not a
  list of answers, whose ``value[x]`` has the wrong JSON type (``valueInteger: "2"``, a
  coding without a code), or that holds two ``value[x]`` (``valueInteger`` and
  ``valueString``: which is the answer?), is an unusable answer. A key given twice in one
  JSON object makes the file (or the NDJSON line) unreadable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketascore.core import yamlsafe
from ketascore.core.issues import Issue, make_issue
from ketascore.core.records import AnswerRecord, Source
from ketascore.core.scale import Scale
from ketascore.core.values import Num, Rejection, clean_number
from ketascore.readers import POSITION_LIMIT, FieldError, FormatContext, ReadResult, check_date
from ketascore.readers.base import text_lines
from ketascore.readers.fields import carried

from .documents import JsonContentError, json_loads
from .mapping import Constant
from .tables import ScaleCodes, all_codes, check_mapping_scale, codes_of

ORDINAL_URLS = frozenset(
    {
        "http://hl7.org/fhir/StructureDefinition/ordinalValue",
        "http://hl7.org/fhir/StructureDefinition/itemWeight",
        "http://hl7.org/fhir/StructureDefinition/iso21090-CO-value",
    }
)
CALCULATED_URL = (
    "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaire-calculatedExpression"
)
NUMERIC_TYPES = frozenset({"integer", "decimal", "quantity"})
Path_ = tuple[str | int, ...]


class QuestionnaireError(ValueError):
    pass


# --------------------------------------------------------------------------------------
# Questionnaires (--questionnaire)


@dataclass
class QuestionnaireItem:
    link_id: str
    type: str | None
    codes: list[str] = field(default_factory=list)
    calculated: bool = False
    ordinals: dict[str, Num] = field(default_factory=dict)  # answer code -> ordinal value
    systems: dict[str, str] = field(default_factory=dict)  # answer code -> its code system


@dataclass
class QuestionnaireDef:
    id: str | None
    url: str | None
    name: str | None
    items: dict[str, QuestionnaireItem] = field(default_factory=dict)


def _list(value: Any) -> list[Any]:
    """A JSON value that FHIR gives as a list (``extension``, ``code``, ``answerOption``),
    or nothing when it is not one: a Questionnaire is read as far as it has FHIR's shape (a
    part that has not is not used, and answers it would have explained are reported)."""
    return value if isinstance(value, list) else []


def _ordinal(extensions: Any) -> Num | None:
    for ext in _list(extensions):
        if isinstance(ext, dict) and ext.get("url") in ORDINAL_URLS:
            value = ext.get("valueDecimal", ext.get("valueInteger"))
            if isinstance(value, int | float) and not isinstance(value, bool):
                return clean_number(value)
    return None


def questionnaire_def(resource: dict[str, Any]) -> QuestionnaireDef:
    out = QuestionnaireDef(
        id=_str(resource.get("id")), url=_str(resource.get("url")), name=_str(resource.get("name"))
    )

    def walk(items: Any) -> None:
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            link = _str(item.get("linkId"))
            if link is not None:
                q = QuestionnaireItem(link, _str(item.get("type")))
                for coding in _list(item.get("code")):
                    if isinstance(coding, dict) and _str(coding.get("code")):
                        q.codes.append(str(coding["code"]))
                q.calculated = any(
                    isinstance(e, dict) and e.get("url") == CALCULATED_URL
                    for e in _list(item.get("extension"))
                )
                for option in _list(item.get("answerOption")):
                    if not isinstance(option, dict):
                        continue
                    coding = option.get("valueCoding")
                    if not isinstance(coding, dict) or not _str(coding.get("code")):
                        continue
                    value = _ordinal(option.get("extension"))
                    if value is None:
                        value = _ordinal(coding.get("extension"))
                    if value is not None:
                        q.ordinals[str(coding["code"])] = value
                        system = _str(coding.get("system"))
                        if system is not None:
                            q.systems[str(coding["code"])] = system
                out.items[link] = q
            walk(item.get("item"))

    walk(resource.get("item"))
    return out


@dataclass
class Questionnaires:
    """Questionnaire resources, found by the canonical URL, id or name a response cites."""

    defs: list[QuestionnaireDef] = field(default_factory=list)

    def find(self, reference: Any) -> QuestionnaireDef | None:
        ref = _str(reference)
        if ref is None:
            return self.defs[0] if len(self.defs) == 1 else None
        base = ref.split("|", 1)[0]
        tail = base.rstrip("/").rsplit("/", 1)[-1]
        for d in self.defs:
            if base in (d.url, d.id, d.name) or tail in (d.id, d.name):
                return d
        return self.defs[0] if len(self.defs) == 1 else None

    def extended(self, more: Iterable[QuestionnaireDef]) -> Questionnaires:
        return Questionnaires([*more, *self.defs])


def load_questionnaires(paths: Iterable[str | Path]) -> Questionnaires:
    """Questionnaire resources from files (a resource, a Bundle or NDJSON)."""
    defs: list[QuestionnaireDef] = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise QuestionnaireError(f"{path}: cannot read the Questionnaire: {exc}") from None
        try:
            yamlsafe.check_depth(text)
            resources = [r for r, _ in _resources(_parse_all(text))]
        except (ValueError, RecursionError) as exc:
            raise QuestionnaireError(f"{path}: not valid JSON: {exc}") from None
        found = [
            questionnaire_def(r) for r in resources if r.get("resourceType") == "Questionnaire"
        ]
        if not found:
            raise QuestionnaireError(f"{path}: holds no Questionnaire resource")
        defs.extend(found)
    return Questionnaires(defs)


# --------------------------------------------------------------------------------------
# Parsing


# the statuses of a QuestionnaireResponse (FHIR R4); completed and amended are final
STATUSES = ("in-progress", "completed", "amended", "entered-in-error", "stopped")


def _shown_json(value: Any) -> str:
    """A JSON value as a message shows it: a text quoted, anything else as JSON."""
    return repr(value) if isinstance(value, str) else json.dumps(value)[:60]


def _not_text(value: Any) -> str | None:
    """A JSON value that is given but is no text, as a message shows it (``the number
    20240101``), or None (absent, null or a text)."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    return "a list" if isinstance(value, list) else "an object"


def _str(value: Any) -> str | None:
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class LineError(ValueError):
    """A JSON document that cannot be used, at a line."""

    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.message = message
        self.line = line


def _parse_all(text: str) -> list[tuple[Any, int | None]]:
    """Documents of a JSON file, or of NDJSON (one per line, with its line number).
    Raises json.JSONDecodeError, or JsonContentError (in a JSON file) or LineError (on a
    line of NDJSON) for a key given twice in one object or an unpaired surrogate."""
    try:
        return [(json_loads(text), None)]
    except JsonContentError:
        try:  # one document with a key twice, or NDJSON (whose line then says which)?
            json.loads(text, parse_int=str, parse_constant=str)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise
        else:
            raise
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            raise
    docs: list[tuple[Any, int | None]] = []
    offset = 0
    for lineno, line in enumerate(text_lines(text, keepends=True), start=1):
        if line.strip():
            try:
                docs.append((json_loads(line), lineno))
            except json.JSONDecodeError as exc:
                raise json.JSONDecodeError(exc.msg, text, offset + exc.pos) from None
            except JsonContentError as exc:
                raise LineError(str(exc), lineno) from None
        offset += len(line)
    return docs


class NotAResource(dict[str, Any]):
    """Something in place of a resource that is none (a number in a list of resources)."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind


def _resources(docs: list[tuple[Any, int | None]]) -> Iterator[tuple[dict[str, Any], Path_]]:
    """Each resource with its path in the document (for line numbers). Something that is
    not a resource (a number in a list of resources, a Bundle entry without one) is given as
    an empty mapping at its path, so that it is reported rather than passed over."""
    for index, (doc, _) in enumerate(docs):
        base: Path_ = (index,) if len(docs) > 1 else ()
        entries = doc if isinstance(doc, list) else [doc]
        for i, res in enumerate(entries):
            path = (*base, i) if isinstance(doc, list) else base
            if not isinstance(res, dict):
                yield NotAResource(_json_kind(res)), path
                continue
            if res.get("resourceType") == "Bundle":
                bundle = res.get("entry")
                if bundle is not None and not isinstance(bundle, list):
                    yield NotAResource(f"Bundle whose entry is a {_json_kind(bundle)}"), path
                    continue
                for j, entry in enumerate(bundle or []):
                    if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                        yield entry["resource"], (*path, "entry", j, "resource")
                    elif not (isinstance(entry, dict) and entry.get("resource") is None):
                        yield NotAResource(_json_kind(entry)), (*path, "entry", j)
            else:
                yield res, path


def looks_like_fhir(name: str, text: str, requested: str | None, context: FormatContext) -> bool:
    if requested not in (None, "json", "jsonl"):
        return False
    head = text.lstrip()[:1]
    return head in ("{", "[") and '"resourceType"' in text[: 1 << 20]


# --------------------------------------------------------------------------------------
# Reading


@dataclass
class _Answer:
    item: dict[str, Any]
    path: Path_
    keys: list[str]  # linkId, its last path part, the Questionnaire item's codes


class ShapeError(ValueError):
    """A part of a response that does not have the shape FHIR gives it."""

    def __init__(self, path: Path_, field: str, value: Any, expected: str):
        super().__init__(field)
        self.path = path
        self.field = field
        self.kind = _json_kind(value)
        self.expected = expected


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "null"


def _walk(items: Any, path: Path_, qdef: QuestionnaireDef | None) -> Iterator[_Answer]:
    """The items of a response, nested ones too; raises ShapeError where an ``item`` is not
    a list of mappings."""
    if items is None:
        return
    if not isinstance(items, list):
        raise ShapeError(path, "item", items, "a list of items")
    for i, item in enumerate(items):
        here = (*path, i)
        if not isinstance(item, dict):
            raise ShapeError(here, "an item", item, "a mapping (linkId, answer)")
        link = _str(item.get("linkId"))
        if link is not None:
            keys = [link]
            tail = link.rstrip("/").rsplit("/", 1)[-1]
            if tail != link:
                keys.append(tail)
            if qdef is not None and link in qdef.items:
                keys.extend(qdef.items[link].codes)
            yield _Answer(item, here, keys)
        yield from _walk(item.get("item"), (*here, "item"), qdef)
        answers = item.get("answer")
        for j, answer in enumerate(answers if isinstance(answers, list) else []):
            if isinstance(answer, dict):
                yield from _walk(answer.get("item"), (*here, "answer", j, "item"), qdef)


def _simple_value(answer: dict[str, Any]) -> Any:
    for key in ("valueInteger", "valueDecimal", "valueString"):
        if key in answer:
            return answer[key]
    quantity = answer.get("valueQuantity")
    if isinstance(quantity, dict):
        return quantity.get("value")
    coding = answer.get("valueCoding")
    if isinstance(coding, dict):
        return _str(coding.get("code")) or _str(coding.get("display"))
    return None


# the JSON type of each value[x] (FHIR R4 JSON): a value of another type is unusable
VALUE_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "valueInteger": ((int,), "a whole number"),
    "valueDecimal": ((int, float), "a number"),
    "valueString": ((str,), "text"),
    "valueBoolean": ((bool,), "true or false"),
    "valueCoding": ((dict,), "a coding (a mapping with system and code)"),
    "valueQuantity": ((dict,), "a quantity (a mapping with value)"),
}


def _wrong_type(key: str, value: Any) -> Rejection | None:
    """The rejection of a value[x] of the wrong JSON type, or None."""
    if key not in VALUE_TYPES:
        return None
    types, expected = VALUE_TYPES[key]
    ok = isinstance(value, types) and (key == "valueBoolean" or not isinstance(value, bool))
    if key == "valueInteger" and isinstance(value, float) and value.is_integer():
        ok = True  # 2.0: JSON does not tell 2 from 2.0
    if ok:
        return None
    return Rejection(
        "not-a-number",
        "fhir-value-type",
        {"key": key, "kind": _json_kind(value), "expected": expected},
    )


def _answer_value(
    answer_item: dict[str, Any], scale: Scale, item_id: str, qitem: QuestionnaireItem | None
) -> Any:
    given = answer_item.get("answer")
    if given is None or given == []:
        return None
    if not isinstance(given, list):
        return Rejection("not-a-number", "fhir-shape", {"kind": _json_kind(given)})
    if len(given) > 1:
        return Rejection("not-allowed-value", "answers", {"count": len(given)})
    answer = given[0]
    if not isinstance(answer, dict):
        return Rejection("not-a-number", "fhir-shape", {"kind": _json_kind(answer)})
    keys = [key for key in answer if key.startswith("value")]
    if len(keys) > 1:  # which one is the answer?
        return Rejection("not-a-number", "fhir-values", {"keys": " and ".join(keys)})
    for key, value in answer.items():
        if key.startswith("value") and (wrong := _wrong_type(key, value)) is not None:
            return wrong
    coding = answer.get("valueCoding")
    if isinstance(coding, dict):
        for part in ("code", "system"):  # (texts: a code, a URI)
            raw = coding.get(part)
            if raw is not None and not isinstance(raw, str):
                return Rejection(
                    "not-a-number",
                    "fhir-value-type",
                    {"key": f"valueCoding.{part}", "kind": _json_kind(raw), "expected": "text"},
                )
        code = _str(coding.get("code"))
        rule = scale.items[item_id]
        if code is None:
            display = coding.get("display")
            if isinstance(display, str) and display.strip():
                return display  # a label, checked by the engine
            return Rejection("not-a-number", "fhir-type", {"kind": "valueCoding without code"})
        system = _str(coding.get("system"))
        if code in rule.codes and (system is None or _in_system(code, system)):
            return rule.codes[code]
        if qitem is not None and code in qitem.ordinals:
            declared = qitem.systems.get(code)
            if system is None or declared is None or system == declared:
                return qitem.ordinals[code]
            expected = f"{declared}, the system of the Questionnaire's answer"
            return Rejection(
                "unknown-answer-code",
                "system",
                {"answer_code": code, "system": system, "expected": expected},
            )
        if code in rule.codes and system is not None:
            expected = f"{LOINC} (LOINC), whose code the scale knows"
            return Rejection(
                "unknown-answer-code",
                "system",
                {"answer_code": code, "system": system, "expected": expected},
            )
        known = ", ".join(rule.codes) or "none declared"
        return Rejection(
            "unknown-answer-code",
            "",
            {"answer_code": code, "system": f" ({system})" if system else "", "codes": known},
        )
    for key in ("valueInteger", "valueDecimal", "valueString", "valueBoolean"):
        if key in answer:
            return answer[key]
    quantity = answer.get("valueQuantity")
    if isinstance(quantity, dict):
        value = quantity.get("value")
        if value is None:
            return Rejection("not-a-number", "fhir-type", {"kind": "valueQuantity without value"})
        return _wrong_type("valueDecimal", value) or value
    kinds = [k for k in answer if k.startswith("value")]
    return Rejection("not-a-number", "fhir-type", {"kind": kinds[0] if kinds else "blank"})


LOINC = "http://loinc.org"
LOINC_SYSTEMS = frozenset({LOINC, "https://loinc.org", "urn:oid:2.16.840.1.113883.6.1"})
LOINC_ANSWER = re.compile(r"LA\d+-\d")


def _in_system(code: str, system: str) -> bool:
    """Whether a scale's answer code may be the ``code`` of a coding of ``system``: a
    LOINC answer code (``LA6568-5``, the codes of every built-in scale) in LOINC's system
    only (its URL or OID); a scale's own code, whose system the scale does not declare, in
    any (none can be checked)."""
    if LOINC_ANSWER.fullmatch(code):
        return system.rstrip("/") in LOINC_SYSTEMS
    return True


def _patient_id(reference: str, other: str | None) -> str | None:
    """The patient's id in a reference to a Patient, relative or absolute, of a version
    or not (``Patient/123``, ``https://server/fhir/Patient/123``, ``Patient/123/_history/2``
    all give ``123``: one patient, one subject); None when it names no id (``Patient/``).
    A reference to anything else gives ``other``."""
    head, found, tail = reference.rpartition("Patient/")
    if not found or (head and not head.endswith("/")):
        return other
    return _str(tail.split("/", 1)[0])


def _subject(resource: dict[str, Any]) -> str | None:
    """The subject of a response (see the module text); a reference without an id
    (``Patient/``) gives none."""
    subject = resource.get("subject")
    if isinstance(subject, dict):
        ref = _str(subject.get("reference"))
        if ref is not None and (found := _patient_id(ref, ref)) is not None:
            return found
    source = resource.get("source")
    if isinstance(source, dict):
        ref = _str(source.get("reference"))
        if ref is not None and (found := _patient_id(ref, None)) is not None:
            return found
    if isinstance(subject, dict) and isinstance(subject.get("identifier"), dict):
        value = subject["identifier"].get("value")
        return _str(value) if isinstance(value, str) else None
    return None


def _subject_shape(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(the field, what it holds) when ``subject`` is not a reference (a mapping) or its
    ``reference`` is given but is no text (the number 123): the subject is then unknown,
    and is not taken from ``source`` (who answered), which it was."""
    subject = resource.get("subject")
    if subject is None:
        return None
    if not isinstance(subject, dict):
        return "subject", _not_text(subject) or f"the text {_shown_json(subject)}"
    shown = _not_text(subject.get("reference"))
    return ("subject.reference", shown) if shown is not None else None


class _Reader:
    def __init__(self, file: str, context: FormatContext, located: yamlsafe.Located | None):
        self.file = file
        self.context = context
        self.located = located
        self.out = ReadResult(files=[file])
        self.mapping = context.options.mapping
        self.codes = all_codes(context)
        self.mapped_scale: Scale | None = None
        if self.mapping is not None:
            self.mapped_scale = check_mapping_scale(self.mapping, context, file, self.out.issues)

    @property
    def issues(self) -> list[Issue]:
        return self.out.issues

    def line(self, path: Path_, fallback: int | None = None) -> int | None:
        if self.located is None:
            return fallback
        pos = self.located.positions.get(path)
        return pos.line if pos is not None else fallback

    def choose_scales(
        self, answers: list[_Answer]
    ) -> list[tuple[ScaleCodes, dict[str, str], dict[str, str]]]:
        """Each scale the response answers items of (the mapping's, or every scale whose
        item codes it holds), with key -> item id and key -> score id of its keys."""
        if self.mapping is not None:
            if self.mapped_scale is None:
                return []
            scale = self.mapped_scale
            item_keys = {
                key: scale.item_lookup[item.casefold()]
                for item, key in self.mapping.spec.items.items()
                if item.casefold() in scale.item_lookup
            }
            score_keys = {
                key: score
                for score, key in self.mapping.spec.scores.items()
                if score in scale.score_ids
            }
            return [(codes_of(scale), item_keys, score_keys)]
        keys = {k for a in answers for k in a.keys}
        return [
            (codes, dict(codes.item_by_loinc), dict(codes.score_by_loinc))
            for codes in self.codes
            if keys & set(codes.item_by_loinc)
        ]

    def response(
        self, resource: dict[str, Any], path: Path_, line: int | None, qs: Questionnaires
    ) -> None:
        line = self.line(path, line)
        status = _str(resource.get("status"))
        qdef = qs.find(resource.get("questionnaire"))
        label = (
            f"QuestionnaireResponse {resource.get('id')}"
            if isinstance(resource.get("id"), str | int) and resource.get("id")
            else ("the QuestionnaireResponse")
        )
        subject = _subject(resource)
        try:
            answers = list(_walk(resource.get("item"), (*path, "item"), qdef))
        except ShapeError as exc:
            self.issues.append(
                make_issue(
                    "bad-record",
                    "fhir-shape",
                    file=self.file,
                    line=self.line(exc.path, line),
                    subject=subject,
                    resource=label,
                    field=exc.field,
                    kind=exc.kind,
                    expected=exc.expected,
                )
            )
            return
        scales = self.choose_scales(answers)
        authored = _str(resource.get("authored"))
        not_text = _not_text(resource.get("authored"))
        spec = self.mapping.spec if self.mapping is not None else None
        by_link = {a.keys[0]: a for a in answers}
        if spec is not None and isinstance(spec.subject, str) and spec.subject in by_link:
            subject = _str(str(_simple_value_of(by_link[spec.subject]) or "")) or subject
        visit: str | None = authored[:10] if authored else None
        if spec is not None and isinstance(spec.visit, Constant):
            visit = spec.visit.value
        elif spec is not None and isinstance(spec.visit, str) and spec.visit in by_link:
            visit = _str(str(_simple_value_of(by_link[spec.visit]) or "")) or visit
        if status == "entered-in-error":
            self.issues.append(
                make_issue(
                    "bad-record",
                    "entered-in-error",
                    file=self.file,
                    line=line,
                    subject=subject,
                    resource=label,
                )
            )
            return
        shape = _subject_shape(resource)
        given = spec is not None and isinstance(spec.subject, str) and spec.subject in by_link
        if shape is not None and not given and scales:
            field_name, value = shape
            self.issues.append(
                make_issue(
                    "bad-field",
                    "subject-type",
                    file=self.file,
                    line=self.line((*path, *field_name.split(".")), line),
                    visit=visit,
                    resource=label,
                    field=field_name,
                    value=value,
                )
            )
            return
        if not scales:
            if self.mapping is not None:
                return  # the mapping's scale is unknown (reported)
            links = ", ".join(a.keys[0] for a in answers[:8])
            self.issues.append(
                make_issue(
                    "no-scale-items",
                    "fhir",
                    file=self.file,
                    line=line,
                    subject=subject,
                    resource=label,
                    links=links or "none",
                )
            )
            return
        raw_status = resource.get("status")
        if raw_status is not None and status not in ("completed", "amended"):
            known = status in STATUSES
            self.issues.append(
                make_issue(
                    "response-status",
                    "" if known else "unknown",
                    file=self.file,
                    line=self.line((*path, "status"), line),
                    subject=subject,
                    visit=visit,
                    resource=label,
                    status=status if known else _shown_json(raw_status),
                )
            )
        if not_text is not None and subject is not None:
            self.issues.append(
                make_issue(
                    "bad-field",
                    "authored-type",
                    file=self.file,
                    line=self.line((*path, "authored"), line),
                    subject=subject,
                    visit=visit,
                    resource=label,
                    value=not_text,
                    outcome="scored without a date" if visit else "skipped (the visit is its date)",
                )
            )
            if visit is None:
                return
        if subject is None or visit is None:
            missing = "subject" if subject is None else "authored date (the visit)"
            for codes, _, _ in scales:
                self.issues.append(
                    make_issue(
                        "missing-field",
                        "resource",
                        file=self.file,
                        line=line,
                        subject=subject,
                        scale=codes.scale.id,
                        resource=label,
                        field=missing,
                    )
                )
            return
        date = None
        if authored:
            try:
                date = check_date(authored)
            except FieldError as exc:
                self.issues.append(
                    make_issue(
                        "bad-field",
                        "authored",
                        file=self.file,
                        line=self.line((*path, "authored"), line),
                        subject=subject,
                        visit=visit,
                        resource=label,
                        value=exc.value,
                    )
                )
        for codes, item_keys, score_keys in scales:
            self.record(
                resource,
                answers,
                codes,
                item_keys,
                score_keys,
                qdef,
                len(scales) == 1,
                subject=subject,
                visit=visit,
                date=date,
                line=line,
                by_link=by_link,
            )

    def record(
        self,
        resource: dict[str, Any],
        answers: list[_Answer],
        codes: ScaleCodes,
        item_keys: dict[str, str],
        score_keys: dict[str, str],
        qdef: QuestionnaireDef | None,
        only_scale: bool,
        *,
        subject: str,
        visit: str,
        date: str | None,
        line: int | None,
        by_link: dict[str, _Answer],
    ) -> None:
        """The record of one scale a response answers."""
        scale = codes.scale
        items: dict[str, Any] = {}
        item_lines: dict[str, int] = {}
        reported: dict[str, Any] = {}
        reported_lines: dict[str, int] = {}
        for answer in answers:
            item_id = next((item_keys[k] for k in answer.keys if k in item_keys), None)
            score_id = next((score_keys[k] for k in answer.keys if k in score_keys), None)
            link = answer.keys[0]
            qitem = qdef.items.get(link) if qdef is not None else None
            if item_id is None and score_id is None and only_scale and _is_calculated_total(qitem):
                score_id = codes.total_score  # (a form of several scales: whose total?)
            where = self.line(answer.path, line)
            if item_id is not None:
                value = _answer_value(answer.item, scale, item_id, qitem)
                if value is None:
                    continue
                if item_id in items:  # asked twice (a PHQ-2 inside a PHQ-9 form): must agree
                    if isinstance(value, Rejection) or items[item_id] != value:
                        items[item_id] = Rejection(
                            "conflicting-records",
                            "response-item",
                            {
                                "item_id": item_id,
                                "first": items[item_id],
                                "first_at": item_lines.get(item_id),
                                "second": value,
                                "second_at": where,
                            },
                        )
                    continue
                items[item_id] = value
                if where is not None:
                    item_lines[item_id] = where
            elif score_id is not None:
                given = answer.item.get("answer")
                stored = _simple_value_of(answer)
                if given is not None and not isinstance(given, list):  # (reported: unreadable)
                    stored = f"answer: {json.dumps(given)[:60]}"
                if stored is not None and score_id not in reported:
                    reported[score_id] = stored
                    if where is not None:
                        reported_lines[score_id] = where
        extra: dict[str, Any] = {"fhir_id": _str(resource.get("id"))}
        if _str(resource.get("questionnaire")):
            extra["questionnaire"] = _str(resource.get("questionnaire"))
        if self.mapping is not None:
            for name, key in self.mapping.carried.items():
                if key in by_link:
                    extra[name] = carried(_simple_value_of(by_link[key]))
        self.out.records.append(
            AnswerRecord(
                subject=subject,
                visit=visit,
                scale=scale.id,
                items=items,
                date=date,
                extra=extra,
                source=Source(file=self.file, line=line),
                item_lines=item_lines,
                missing_codes=self.mapping.missing_codes if self.mapping is not None else (),
                reported=reported,
                reported_lines=reported_lines,
            )
        )


def _is_calculated_total(qitem: QuestionnaireItem | None) -> bool:
    """A numeric Questionnaire item the form computes itself (its own total)."""
    return qitem is not None and qitem.calculated and (qitem.type or "") in NUMERIC_TYPES


def _simple_value_of(answer: _Answer) -> Any:
    """The value of an item's one answer; None when it has none, several, or an answer
    that is not a list of answers."""
    given = answer.item.get("answer")
    answers = [a for a in given if isinstance(a, dict)] if isinstance(given, list) else []
    return _simple_value(answers[0]) if len(answers) == 1 else None


def read_fhir(text: str, file: str, context: FormatContext) -> ReadResult:
    from .documents import json_as_yaml, yaml_issue

    located: yamlsafe.Located | None = None
    try:
        yamlsafe.check_depth(text)
        docs = _parse_all(text)
    except yamlsafe.YamlError as exc:
        return ReadResult(files=[file], issues=[yaml_issue(exc, file, "JSON")])
    except JsonContentError as exc:
        try:  # the JSON reading as YAML gives the line and column of a repeated key
            yamlsafe.load(json_as_yaml(text), json_numbers=True)
        except yamlsafe.YamlError as located_exc:
            if located_exc.kind == "duplicate":
                return ReadResult(files=[file], issues=[yaml_issue(located_exc, file, "JSON")])
        issue = make_issue("parse-error", file=file, format="JSON", error=str(exc))
        return ReadResult(files=[file], issues=[issue])
    except (json.JSONDecodeError, LineError, RecursionError) as exc:
        out = ReadResult(files=[file])
        line: int | None
        if isinstance(exc, json.JSONDecodeError):
            detail, line = exc.msg, exc.lineno
        elif isinstance(exc, LineError):
            detail, line = exc.message, exc.line
        else:
            detail, line = "nested too deeply", None
        out.issues.append(
            make_issue("parse-error", file=file, line=line, format="JSON", error=detail)
        )
        return out
    if len(docs) == 1 and len(text) <= POSITION_LIMIT:
        try:  # JSON is YAML: this reading also gives the line of every item
            located = yamlsafe.load(json_as_yaml(text), json_numbers=True)
        except yamlsafe.YamlError:
            located = None
    reader = _Reader(file, context, located)
    if reader.mapping is not None and reader.mapped_scale is None:
        return reader.out
    resources = list(_resources(docs))
    given: Questionnaires = context.options.questionnaire or Questionnaires()
    local = [questionnaire_def(r) for r, _ in resources if r.get("resourceType") == "Questionnaire"]
    qs = given.extended(local) if local else given
    responses = [(r, p) for r, p in resources if r.get("resourceType") == "QuestionnaireResponse"]
    if not resources:
        reader.issues.append(make_issue("file-empty", "no-resources", file=file))
    for res, path in resources:
        kind = res.kind if isinstance(res, NotAResource) else res.get("resourceType")
        known = kind in ("QuestionnaireResponse", "Questionnaire")
        if known or (responses and not isinstance(res, NotAResource)):
            continue
        reader.issues.append(
            make_issue(
                "unsupported-resource",
                file=file,
                line=reader.line(path),
                kind=str(kind) if kind else "resource without resourceType",
            )
        )
    ndjson_lines = [ln for _, ln in docs]
    for res, path in responses:
        line = None
        if path and isinstance(path[0], int) and len(docs) > 1:
            line = ndjson_lines[path[0]]
        reader.response(res, path, line, qs)
    return reader.out
