"""A scale's card: everything a reader needs to know about how it is scored."""

from __future__ import annotations

from typing import Any

from ketascore.scale import Scale, TermRule, format_number


def _term_text(term: TermRule) -> str:
    text = term.ref if term.kind == "score" else f"item {term.ref}"
    if term.recode is not None:
        text += (
            " recoded {"
            + ", ".join(f"{format_number(k)}->{format_number(v)}" for k, v in term.recode.items())
            + "}"
        )
    if term.reverse is not None:
        text += " reversed"
    if term.weight != 1:
        text += f" x{format_number(term.weight)}"
    return text


def formula(scale: Scale, score_id: str) -> str:
    rule = scale.score(score_id)
    parts = [_term_text(t) for t in rule.terms]
    if rule.method == "sum" and all(
        t.kind == "slot" and t.recode is None and t.weight == 1 and t.reverse is None
        for t in rule.terms
    ):
        return "sum of items " + ", ".join(t.ref for t in rule.terms)
    return f"{rule.method} of " + ", ".join(parts)


def scale_card_data(scale: Scale) -> dict[str, Any]:
    d = scale.definition
    items = []
    for item in d.items:
        item_rule = scale.items[item.id]
        items.append(
            {
                "id": item.id,
                "label": item.label,
                "allowed": item_rule.describe_allowed(),
                "min": item_rule.lo,
                "max": item_rule.hi,
                "answers": [
                    {"value": v, "label": lbl}
                    for lbl, v in zip(
                        item_rule.answer_labels, item_rule.labels.values(), strict=False
                    )
                ],
                "missing_codes": [m.model_dump(exclude_none=True) for m in item.missing_codes],
                "scored": item.scored,
                "alternative_of": scale.alternative_of.get(item.id),
                "codes": item.codes.model_dump(exclude_none=True) if item.codes else {},
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
                "min": rule.lo,
                "max": rule.hi,
                "missing_rule": rule.describe_missing_rule(),
                "missing_rule_source": rule.missing_source,
                "bands": [b.model_dump() for b in rule.bands],
                "bands_source": sdef.bands_source,
                "response": rule.response.model_dump(exclude_none=True) if rule.response else None,
                "remission": rule.remission.model_dump(exclude_none=True)
                if rule.remission
                else None,
                "applies_when": rule.applies_when.describe() if rule.applies_when else None,
                "codes": sdef.codes.model_dump(exclude_none=True) if sdef.codes else {},
            }
        )
    return {
        "id": d.id,
        "name": d.name,
        "short_name": d.short_name,
        "version": d.version,
        "description": d.description,
        "rater": d.rater,
        "recall_period": d.recall_period,
        "licence": d.licence.model_dump(exclude_none=True),
        "codes": d.codes.model_dump(exclude_none=True) if d.codes else {},
        "items": items,
        "alternatives": [a.model_dump() for a in d.alternatives],
        "scores": scores,
        "flags": [
            {"id": f.id, "label": f.label, "when": f.condition.describe()} for f in scale.flags
        ],
        "classifications": [
            {
                "id": c.id,
                "label": c.label,
                "when": c.condition.describe(),
                "at_baseline": c.at_baseline,
            }
            for c in scale.classifications
        ],
        "citations": [c.model_dump(exclude_none=True) for c in d.citations],
        "examples": len(d.examples),
        "source": scale.source,
        "sha256": scale.sha256,
    }


def scale_card(scale: Scale) -> Any:
    """The card as rich renderables (imported only by the CLI)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    data = scale_card_data(scale)
    head = Text()
    head.append(f"{data['name']}", style="bold")
    head.append(f"  ({data['id']}, version {data['version']})\n")
    head.append(f"Rater: {data['rater']}")
    if data["recall_period"]:
        head.append(f"; recall period: {data['recall_period']}")
    licence = data["licence"]
    head.append(f"\nLicence: {licence['status']}")
    if licence.get("holder"):
        head.append(f" ({licence['holder']})")
    if licence.get("note"):
        head.append(f"\n  {licence['note']}", style="dim")
    if data["description"]:
        head.append(f"\n{data['description']}")

    items = Table(title="Items", title_justify="left", header_style="bold")
    for col in ("Id", "Label", "Values", "Answer labels", "Missing codes"):
        items.add_column(col)
    for item in data["items"]:
        label = item["label"]
        if not item["scored"]:
            label += " (not scored)"
        if item["alternative_of"]:
            label += f" (alternative of {item['alternative_of']})"
        items.add_row(
            item["id"],
            label,
            item["allowed"],
            "; ".join(f"{format_number(a['value'])}={a['label']}" for a in item["answers"]),
            "; ".join(", ".join(str(v) for v in m.values()) for m in item["missing_codes"]),
        )

    scores = Table(title="Scores", title_justify="left", header_style="bold")
    for col in ("Score", "Computed as", "Range", "Missing items", "Bands", "Outcomes"):
        scores.add_column(col)
    for s in data["scores"]:
        bands = "\n".join(
            f"{format_number(b['min'])}-{format_number(b['max'])} {b['label']}" for b in s["bands"]
        )
        outcomes = []
        if s["response"]:
            outcomes.append(
                f"response: >= {format_number(s['response']['reduction_percent'])}% reduction"
            )
        if s["remission"]:
            rem = s["remission"]
            if "at_most" in rem:
                outcomes.append(f"remission: <= {format_number(rem['at_most'])}")
            else:
                outcomes.append(f"remission: < {format_number(rem['below'])}")
        computed_as = s["formula"]
        if s["applies_when"]:
            computed_as += f"\nonly when {s['applies_when']}"
        scores.add_row(
            f"{s['id']}\n{s['label']}",
            computed_as,
            f"{format_number(s['min'])}-{format_number(s['max'])}",
            s["missing_rule"],
            bands,
            "\n".join(outcomes),
        )
    parts: list[Any] = [head, items, scores]
    extras = Text()
    for f in data["flags"]:
        extras.append(f"Flag {f['id']}: {f['when']} ({f['label']})\n")
    for c in data["classifications"]:
        extras.append(
            f"Classification {c['id']}: {c['when']}"
            f"{' at baseline' if c['at_baseline'] else ''} ({c['label']})\n"
        )
    if extras:
        parts.append(extras)
    cites = Text("Sources\n", style="bold")
    for c in data["citations"]:
        cites.append(f"[{c['key']}] ", style="bold")
        cites.append(c["text"])
        if c.get("doi"):
            cites.append(f" doi:{c['doi']}")
        if c.get("supports"):
            cites.append(f" ({', '.join(c['supports'])})", style="dim")
        cites.append("\n")
    parts.append(cites)
    return Group(*parts)
