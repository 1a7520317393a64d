"""A scale's card: everything a reader needs to know about how it is scored.

``scale_card_data`` gives the card as plain data (``ketascore scales show --format json``);
``scale_card`` lays the same data out as rich renderables. Rendering never computes: every
figure on the card comes from ``scale_card_data``.
"""

from __future__ import annotations

from typing import Any

from ketascore.core.model import Answer, Codes, Item
from ketascore.core.scale import Scale, ScoreRule, TermRule
from ketascore.core.values import Num, format_number

BAND_RULE = (
    "A score belongs to the last band whose minimum it reaches (bands are thresholds), so a "
    "value between two bands of whole numbers cannot occur."
)


def _codes(codes: Codes | None) -> dict[str, Any]:
    return codes.model_dump(exclude_none=True) if codes is not None else {}


def _answers(scale: Scale, item: Item) -> tuple[str | None, list[Answer]]:
    """The answer set name (if the item uses a shared set) and the item's answers."""
    if isinstance(item.answers, str):
        return item.answers, list(scale.definition.answer_sets.get(item.answers, []))
    return None, list(item.answers or [])


def _answer_data(answer: Answer) -> dict[str, Any]:
    return answer.model_dump(exclude_none=True)


def _term_kind(scale: Scale, term: TermRule) -> str:
    if term.kind == "score":
        return "score"
    return "item" if term.ref in scale.items else "alternative"


def _transform_text(term: TermRule) -> str:
    parts = []
    if term.recode is not None:
        pairs = ", ".join(f"{format_number(k)}->{format_number(v)}" for k, v in term.recode.items())
        parts.append(f"recoded {{{pairs}}}")
    if term.reverse is not None:
        parts.append("reversed")
    if term.weight != 1:
        parts.append(f"x{format_number(term.weight)}")
    return " ".join(parts)


def _ref_text(scale: Scale, term: TermRule) -> str:
    kind = _term_kind(scale, term)
    return term.ref if kind == "score" else f"item {term.ref}"


def formula(scale: Scale, score_id: str) -> str:
    """How a score is computed, in words: ``sum of items 1, 2, 3``, ``max of item 1 x1, ...``."""
    rule = scale.score(score_id)
    transforms = [_transform_text(t) for t in rule.terms]
    if len(rule.terms) == 1:
        term = rule.terms[0]
        return f"the value of {_ref_text(scale, term)} {transforms[0]}".rstrip()
    kinds = {_term_kind(scale, t) for t in rule.terms}
    if "score" not in kinds and len(set(transforms)) == 1:
        # every term is an item with the same transform: "sum of items 1, 2, each recoded {...}"
        refs = ", ".join(t.ref for t in rule.terms)
        noun = "item" if len(rule.terms) == 1 else "items"
        text = f"{rule.method} of {noun} {refs}"
        if transforms[0]:
            text += f", {'each ' if len(rule.terms) > 1 else ''}{transforms[0]}"
        return text
    parts = []
    for term, transform in zip(rule.terms, transforms, strict=True):
        parts.append(f"{_ref_text(scale, term)} {transform}".rstrip())
    return f"{rule.method} of " + ", ".join(parts)


def missing_rule_text(rule: ScoreRule) -> str:
    """The missing-data rule of a score in words."""
    n = len(rule.terms)
    noun = "items" if all(t.kind == "slot" for t in rule.terms) else "parts"
    if rule.required >= n:
        text = {1: f"the {noun[:-1]} is required", 2: f"both {noun} required"}.get(
            n, f"all {n} {noun} required"
        )
    else:
        text = f"at least {rule.required} of {n} {noun} answered"
        if rule.method == "mean":
            text += " (mean of those answered)"
        elif rule.method in ("max", "min"):
            text += f" ({'highest' if rule.method == 'max' else 'lowest'} of those answered)"
    if rule.prorate == "prorate_mean":
        text += f"; prorated: sum x {n} / number answered"
    elif rule.prorate == "prorate_max":
        text += "; prorated: sum x (maximum of all) / (maximum of those answered)"
    rounding = rule.rounding
    if rounding.method != "none":
        when = "the mean" if rule.method == "mean" else "a prorated total"
        text += f"; {when} is rounded {rounding.method.replace('_', ' ')}"
        if rounding.decimals:
            text += f" to {rounding.decimals} decimal{'s' if rounding.decimals > 1 else ''}"
        else:
            text += " to a whole number"
    return text


def _missing_data(rule: ScoreRule) -> dict[str, Any]:
    return {
        "text": missing_rule_text(rule),
        "required": rule.required,
        "of": len(rule.terms),
        "method": rule.prorate,
        "rounding": rule.rounding.model_dump(),
        "source": rule.missing_source,
    }


def _examples(scale: Scale) -> list[dict[str, Any]]:
    out = []
    for example in scale.definition.examples:
        expect = {
            key: value
            for key, value in example.expect.model_dump().items()
            if value is not None and value != {}
        }
        out.append(
            {
                "description": example.description,
                "source": example.source,
                "answers": {str(k): v for k, v in example.answers.items()},
                "expect": expect,
                **(
                    {"before": [{str(k): v for k, v in a.items()} for a in example.before]}
                    if example.before
                    else {}
                ),
            }
        )
    return out


def scale_card_data(scale: Scale) -> dict[str, Any]:
    """Every part of a scale, as data: the same content as the printed card."""
    d = scale.definition
    items = []
    for item in d.items:
        item_rule = scale.items[item.id]
        answer_set, answers = _answers(scale, item)
        items.append(
            {
                "id": item.id,
                "label": item.label,
                "allowed": item_rule.describe_allowed(),
                "min": item_rule.lo,
                "max": item_rule.hi,
                "values": item.values,
                "answer_set": answer_set,
                "answers": [_answer_data(a) for a in answers],
                "missing_codes": [m.model_dump(exclude_none=True) for m in item.missing_codes],
                "scored": item.scored,
                "alternative_of": scale.alternative_of.get(item.id),
                "codes": _codes(item.codes),
                "note": item.note,
            }
        )
    scores = []
    for sdef in d.scores:
        rule = scale.score(sdef.id)
        scores.append(
            {
                "id": rule.id,
                "label": rule.label,
                "method": rule.method,
                "formula": formula(scale, rule.id),
                "terms": [
                    {
                        "ref": t.ref,
                        "kind": _term_kind(scale, t),
                        "recode": (
                            {format_number(k): v for k, v in t.recode.items()}
                            if t.recode is not None
                            else None
                        ),
                        "reverse": t.reverse is not None,
                        "weight": t.weight,
                    }
                    for t in rule.terms
                ],
                "min": rule.lo,
                "max": rule.hi,
                "whole_numbers": rule.whole,
                "missing": _missing_data(rule),
                "bands": [b.model_dump() for b in rule.bands],
                "bands_source": sdef.bands_source,
                "response": rule.response.model_dump(exclude_none=True) if rule.response else None,
                "remission": (
                    rule.remission.model_dump(exclude_none=True) if rule.remission else None
                ),
                "applies_when": rule.applies_when.describe() if rule.applies_when else None,
                "codes": _codes(sdef.codes),
                "note": sdef.note,
            }
        )
    flag_sources = {f.id: f.source for f in d.flags}
    class_sources = {c.id: c.source for c in d.classifications}
    skip_sources = {s.id: s.source for s in d.skips}
    check_sources = {c.id: c.source for c in d.checks}
    return {
        "id": d.id,
        "name": d.name,
        "short_name": d.short_name,
        "version": d.version,
        "description": d.description,
        "rater": d.rater,
        "recall_period": d.recall_period,
        "licence": d.licence.model_dump(exclude_none=True),
        "codes": _codes(d.codes),
        "answer_sets": {
            name: [_answer_data(a) for a in answers] for name, answers in d.answer_sets.items()
        },
        "items": items,
        "alternatives": [a.model_dump() for a in d.alternatives],
        "scores": scores,
        "band_rule": BAND_RULE if any(s["bands"] for s in scores) else None,
        "flags": [
            {
                "id": f.id,
                "label": f.label,
                "when": f.condition.describe(),
                "source": flag_sources.get(f.id),
            }
            for f in scale.flags
        ],
        "classifications": [
            {
                "id": c.id,
                "label": c.label,
                "when": c.condition.describe(),
                "at_baseline": c.at_baseline,
                "source": class_sources.get(c.id),
            }
            for c in scale.classifications
        ],
        "skips": [
            {
                "id": s.id,
                "label": s.label,
                "when": s.condition.describe(),
                "items": list(s.items),
                "counts_as": s.counts_as,
                "source": skip_sources.get(s.id),
            }
            for s in scale.skips
        ],
        "checks": [
            {
                "id": c.id,
                "label": c.label,
                "when": c.condition.describe(),
                "source": check_sources.get(c.id),
            }
            for c in scale.checks
        ],
        "examples": _examples(scale),
        "citations": [c.model_dump(exclude_none=True) for c in d.citations],
        "source": scale.source,
        "sha256": scale.sha256,
    }


# --------------------------------------------------------------------------------------
# Rendering


def _num(value: Num) -> str:
    return format_number(value)


def _codes_text(codes: dict[str, Any]) -> str:
    names = {
        "loinc": "LOINC",
        "cdisc": "CDISC",
        "cdisc_category": "CDISC category",
        "cdisc_domain": "CDISC domain",
    }
    return "; ".join(f"{names.get(k, k)} {v}" for k, v in codes.items())


def _answers_text(answers: list[dict[str, Any]]) -> str:
    out = []
    for a in answers:
        text = f"{_num(a['value'])}={a['label']}"
        if a.get("code"):
            text += f" ({a['code']})"
        out.append(text)
    return "; ".join(out)


def _missing_codes_text(codes: list[dict[str, Any]]) -> str:
    out = []
    for m in codes:
        parts = []
        if "value" in m:
            parts.append(_num(m["value"]))
        if "label" in m:
            parts.append(str(m["label"]))
        if "code" in m:
            parts.append(str(m["code"]))
        out.append(" = ".join(parts))
    return "; ".join(out)


def _source(key: str | None) -> str:
    return f" [{key}]" if key else ""


def _value_text(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _num(value)
    return str(value)


def _expect_text(expect: dict[str, Any]) -> str:
    lines = []
    scores = expect.get("scores", {})
    bands = expect.get("bands", {})
    for name, value in scores.items():
        text = f"{name} = {_value_text(value)}"
        if bands.get(name):
            text += f" ({bands[name]})"
        lines.append(text)
    for name, band in bands.items():
        if name not in scores:
            lines.append(f"band of {name} = {_value_text(band)}")
    for key, title in (("items_answered", "items answered"), ("prorated", "prorated")):
        if expect.get(key):
            lines.append(
                f"{title}: " + ", ".join(f"{k} {_value_text(v)}" for k, v in expect[key].items())
            )
    if "flags" in expect:
        lines.append("flags: " + (", ".join(expect["flags"]) or "none"))
    if expect.get("classifications"):
        lines.append(
            "classifications: "
            + ", ".join(f"{k} {_value_text(v)}" for k, v in expect["classifications"].items())
        )
    if "issues" in expect:
        lines.append("issues: " + (", ".join(expect["issues"]) or "none"))
    return "\n".join(lines)


def scale_card(scale: Scale) -> Any:
    """The card as rich renderables (imported only by the CLI)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    data = scale_card_data(scale)
    head = Text()
    head.append(data["name"], style="bold")
    if data["short_name"]:
        head.append(f" ({data['short_name']})", style="bold")
    head.append(f"  id {data['id']}, version {data['version']}\n")
    head.append(f"Rater: {data['rater']}")
    if data["recall_period"]:
        head.append(f"; recall period: {data['recall_period']}")
    licence = data["licence"]
    head.append(f"\nLicence: {licence['status']}")
    if licence.get("holder"):
        head.append(f" ({licence['holder']})")
    if licence.get("note"):
        head.append(f"\n  {licence['note']}", style="dim")
    if data["codes"]:
        head.append(f"\nCodes: {_codes_text(data['codes'])}")
    if data["description"]:
        head.append(f"\n{data['description']}")
    parts: list[Any] = [head]

    items = Table(title="Items", title_justify="left", header_style="bold")
    has_answers = any(i["answers"] for i in data["items"])
    has_missing = any(i["missing_codes"] for i in data["items"])
    has_codes = any(i["codes"] for i in data["items"])
    items.add_column("Id")
    items.add_column("Label")
    items.add_column("Values")
    if has_answers:
        items.add_column("Answers")
    if has_missing:
        items.add_column("Missing codes")
    if has_codes:
        items.add_column("Codes")
    for item in data["items"]:
        label = item["label"]
        if not item["scored"]:
            label += " (not scored)"
        if item["alternative_of"]:
            label += f" (alternative of {item['alternative_of']})"
        if item["note"]:
            label += f"\n{item['note']}"
        row = [item["id"], label, item["allowed"]]
        if has_answers:
            if item["answer_set"]:
                row.append(f"set {item['answer_set']}")
            else:
                row.append(_answers_text(item["answers"]))
        if has_missing:
            row.append(_missing_codes_text(item["missing_codes"]))
        if has_codes:
            row.append(_codes_text(item["codes"]))
        items.add_row(*(Text(cell) for cell in row))
    parts.append(items)

    if data["answer_sets"]:
        sets = Table(title="Answer sets", title_justify="left", header_style="bold")
        for col in ("Set", "Value", "Label", "Code"):
            sets.add_column(col)
        for name, answers in data["answer_sets"].items():
            for k, a in enumerate(answers):
                cells = [name if k == 0 else "", _num(a["value"]), a["label"], a.get("code", "")]
                sets.add_row(*(Text(cell) for cell in cells))
        parts.append(sets)

    if data["alternatives"]:
        alts = Text("Alternatives\n", style="bold")
        for a in data["alternatives"]:
            alts.append(
                f"Item {a['id']} ({a['label']}): exactly one of {', '.join(a['items'])} is rated; "
                "rating more than one is an error.\n",
                style="",
            )
        parts.append(alts)

    scores = Table(title="Scores", title_justify="left", header_style="bold")
    for col in ("Score", "Computed as", "Range", "Missing items", "Bands", "Outcomes"):
        scores.add_column(col)
    for s in data["scores"]:
        computed_as = s["formula"]
        if s["applies_when"]:
            computed_as += f"\nonly when {s['applies_when']}; otherwise not applicable"
        if s["codes"]:
            computed_as += f"\ncodes: {_codes_text(s['codes'])}"
        if s["note"]:
            computed_as += f"\n{s['note']}"
        bands = "\n".join(
            f"{_num(b['min'])}{'' if b['min'] == b['max'] else '-' + _num(b['max'])} {b['label']}"
            for b in s["bands"]
        )
        if s["bands"]:
            bands += _source(s["bands_source"])
        outcomes = []
        if s["response"]:
            response = s["response"]
            outcomes.append(
                f"response: >= {_num(response['reduction_percent'])}% reduction"
                + _source(response.get("source"))
            )
        if s["remission"]:
            rem = s["remission"]
            if "at_most" in rem:
                outcomes.append(
                    f"remission: <= {_num(rem['at_most'])}" + _source(rem.get("source"))
                )
            else:
                outcomes.append(f"remission: < {_num(rem['below'])}" + _source(rem.get("source")))
        cells = [
            f"{s['id']}\n{s['label']}",
            computed_as,
            f"{_num(s['min'])}-{_num(s['max'])}",
            s["missing"]["text"] + _source(s["missing"]["source"]),
            bands,
            "\n".join(outcomes),
        ]
        scores.add_row(*(Text(cell) for cell in cells))
    parts.append(scores)
    if data["band_rule"]:
        parts.append(Text(data["band_rule"], style="dim"))

    extras = Text()
    for f in data["flags"]:
        extras.append(f"Flag {f['id']}: {f['when']} ({f['label']}){_source(f['source'])}\n")
    for c in data["classifications"]:
        when = " at baseline" if c["at_baseline"] else " at each visit"
        extras.append(
            f"Classification {c['id']}: {c['when']}{when} ({c['label']}){_source(c['source'])}\n"
        )
    for s in data["skips"]:
        counts = (
            f"; a blank one counts as {_num(s['counts_as'])}"
            if s["counts_as"] is not None
            else "; a blank one stays unanswered"
        )
        extras.append(
            f"Skip {s['id']}: when {s['when']}, item(s) {', '.join(s['items'])} are not asked"
            f"{counts}, any other answer is an error ({s['label']}){_source(s['source'])}\n"
        )
    for c in data["checks"]:
        extras.append(
            f"Rating check {c['id']}: warns when {c['when']} ({c['label']}){_source(c['source'])}\n"
        )
    if extras:
        parts.append(extras)

    if data["examples"]:
        examples = Table(
            title="Worked examples (run by `ketascore scales check`)",
            title_justify="left",
            header_style="bold",
        )
        for col in ("#", "Example", "Answers", "Expected"):
            examples.add_column(col)
        for k, ex in enumerate(data["examples"], start=1):
            answers = " ".join(f"{key}={val}" for key, val in ex["answers"].items()) or "(none)"
            earlier = [
                " ".join(f"{key}={val}" for key, val in before.items())
                for before in ex.get("before", [])
            ]
            if earlier:
                lines = [f"earlier rating {n} that day: {e}" for n, e in enumerate(earlier, 1)]
                answers = "\n".join([*lines, f"this rating: {answers}"])
            cells = [
                str(k),
                ex["description"] + _source(ex["source"]),
                answers,
                _expect_text(ex["expect"]),
            ]
            examples.add_row(*(Text(cell) for cell in cells))
        parts.append(examples)

    cites = Text("Sources\n", style="bold")
    for c in data["citations"]:
        cites.append(f"[{c['key']}] ", style="bold")
        cites.append(c["text"])
        if c.get("doi"):
            cites.append(f" doi:{c['doi']}")
        if c.get("url"):
            cites.append(f" {c['url']}")
        if c.get("supports"):
            cites.append(f" (supports: {'; '.join(c['supports'])})", style="dim")
        cites.append("\n")
    cites.append(f"File: {data['source']}", style="dim")
    parts.append(cites)
    return Group(*parts)
