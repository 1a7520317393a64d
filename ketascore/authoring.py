"""Help for users who write their own scales.

- ``check_scale_file``: every problem of a scale file at once (schema, how the parts fit
  together, an id that shadows a built-in scale, worked examples that fail), each as
  ``file:line:column: path: message``.
- ``starter_yaml``: a commented starter scale (``ketascore scales new``) that loads and whose
  worked examples pass as written.
- ``builtin_table_markdown``: the table of built-in scales in docs/scales.md, regenerated with
  ``python -m ketascore.authoring --update-docs``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ketascore.core.library import builtin_files, builtin_ids, load_builtin
from ketascore.core.scale import Scale, check_scale_text
from ketascore.core.values import Num, format_number
from ketascore.engines.record import run_examples

# --------------------------------------------------------------------------------------
# Checking a user's scale


def check_scale_text_all(text: str, source: str, *, allow_shadow: bool = False) -> list[str]:
    """Every problem of a scale file: schema, relations, and failing worked examples."""
    report = check_scale_text(text, source)
    problems = list(report.problems)
    scale = report.scale
    if scale is None:
        return problems
    builtin = builtin_files().get(scale.id)
    is_builtin_itself = builtin is not None and Path(source).resolve() == builtin.resolve()
    if builtin is not None and not is_builtin_itself and not allow_shadow:
        pos = report.located.position(("id",)) if report.located else None
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        problems.append(
            f"{where}: id: {scale.id!r} is the id of a built-in scale; choose another id, or "
            "pass --allow-shadow to use this file in its place"
        )
    if not scale.definition.examples:
        problems.append(
            f"{source}: examples: the scale has no worked examples; add at least one so that "
            "its rules are tested"
        )
    for failure in run_examples(scale):
        index = int(failure.split("]", 1)[0].split("[", 1)[1])
        pos = report.located.position(("examples", index)) if report.located else None
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        problems.append(f"{where}: {failure}")
    return problems


def check_scale_file(path: str | Path, *, allow_shadow: bool = False) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read the file: {exc}"]
    if is_check_set_text(text):
        return check_check_set_text(text, str(path))
    return check_scale_text_all(text, str(path), allow_shadow=allow_shadow)


def is_check_set_text(text: str) -> bool:
    """A check file (``--checks``) names its scale and has no items of its own."""
    from ketascore.core import yamlsafe

    try:
        data = yamlsafe.load(text).data
    except yamlsafe.YamlError:
        return False
    return isinstance(data, dict) and "scale" in data and "items" not in data


def check_check_set_text(text: str, source: str) -> list[str]:
    """Every problem of a check file: its shape, how its checks fit the scale it names,
    unknown citation keys of its examples, and failing worked examples (run on the scale
    with the checks added)."""
    from dataclasses import replace

    from ketascore.core.checksets import merge_check_set, read_check_set_text
    from ketascore.core.library import UnknownScaleError, resolve_scale
    from ketascore.core.scale import ScaleError

    check_set, problems = read_check_set_text(text, source)
    if check_set is None:
        return problems
    d = check_set.definition
    try:
        base = resolve_scale(d.scale)
    except (UnknownScaleError, ScaleError) as exc:
        return [check_set.where(("scale",), f"{exc}")]
    combined, problems = merge_check_set(base, check_set)
    if combined is None:
        return problems
    keys = {c.key for c in combined.definition.citations}
    for i, example in enumerate(d.examples):
        if example.source is not None and example.source not in keys:
            problems.append(
                check_set.where(
                    ("examples", i, "source"), f"unknown citation key {example.source!r}"
                )
            )
    if not d.examples:
        problems.append(
            f"{source}: examples: the check file has no worked examples; add at least one "
            "that each check holds for and one that it does not"
        )
    with_examples = replace(
        combined, definition=combined.definition.model_copy(update={"examples": d.examples})
    )
    for failure in run_examples(with_examples):
        index = int(failure.split("]", 1)[0].split("[", 1)[1])
        pos = check_set.located.position(("examples", index)) if check_set.located else None
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        problems.append(f"{where}: {failure}")
    return problems


# --------------------------------------------------------------------------------------
# A starter scale

SCALE_ID = re.compile(r"^[a-z][a-z0-9-]*$")
MAX_STARTER_ITEMS = 200


class StarterError(ValueError):
    """The arguments for a starter scale cannot give a valid scale."""


def parse_range(text: str) -> tuple[int, int]:
    """``"0-3"`` -> (0, 3); negative numbers are allowed (``"-2-2"``)."""
    match = re.fullmatch(r"\s*(-?\d+)\s*-\s*(-?\d+)\s*", text)
    if match is None:
        raise StarterError(
            f"range {text!r} is not of the form A-B with whole numbers A < B (e.g. 0-3)"
        )
    lo, hi = int(match.group(1)), int(match.group(2))
    if lo >= hi:
        raise StarterError(f"range {text!r}: the minimum {lo} must be below the maximum {hi}")
    return lo, hi


def _answers_flow(answers: dict[int, Num]) -> str:
    return "{" + ", ".join(f"{k}: {format_number(v)}" for k, v in answers.items()) + "}"


def starter_yaml(scale_id: str, n_items: int, lo: int, hi: int, filename: str | None = None) -> str:
    """A commented starter scale: ``n_items`` items rated ``lo``-``hi`` and their sum.

    It loads as written and its worked examples pass, so ``ketascore scales check`` finds no
    problem until the user edits it; every TODO marks something the user must fill in from the
    scale's published source.
    """
    if not SCALE_ID.match(scale_id) or len(scale_id) > 40:
        raise StarterError(
            f"scale id {scale_id!r} must start with a lower-case letter and hold only lower-case "
            "letters, digits and hyphens (at most 40 characters), e.g. my-scale"
        )
    if scale_id in builtin_files():
        raise StarterError(
            f"{scale_id!r} is the id of a built-in scale; choose another id (e.g. my-{scale_id})"
        )
    if not 1 <= n_items <= MAX_STARTER_ITEMS:
        raise StarterError(f"--items must be between 1 and {MAX_STARTER_ITEMS}, not {n_items}")
    if lo >= hi:
        raise StarterError(f"the range minimum {lo} must be below its maximum {hi}")
    ids = list(range(1, n_items + 1))
    total_lo, total_hi = lo * n_items, hi * n_items
    mid = (total_lo + total_hi) // 2
    item_lines = "\n".join(
        f"  - {{id: {i}, label: TODO label of item {i}, range: [{lo}, {hi}]}}" for i in ids
    )
    of = ", ".join(str(i) for i in ids)
    all_lo = _answers_flow(dict.fromkeys(ids, lo))
    all_hi = _answers_flow(dict.fromkeys(ids, hi))
    one_missing = _answers_flow(dict.fromkeys(ids[:-1], lo))
    n_answered = n_items - 1
    filename = filename or f"{scale_id}.yaml"
    return f"""\
# A scale definition for ketascore (the language is described in docs/scales.md).
# Replace every TODO with what the scale's published source says, then run
#   ketascore scales check {filename}
# which reports every problem at once and runs the worked examples at the end of this file.
# Ship item LABELS only (a few words of your own), never the copyrighted item wording.
id: {scale_id}
name: TODO full name of the scale
short_name: TODO
version: "1.0"
description: >-
  TODO what the scale measures, who rates it, and any rule a reader must know (for example
  that no missing-item rule is published, so every item is required).
rater: clinician                # clinician, self, observer or clinician-or-self
recall_period: TODO             # e.g. past week
licence:
  status: unknown               # public-domain, free, free-with-permission, copyrighted,
                                # proprietary or unknown
  note: TODO who holds the copyright and what permission use needs
citations:
  # Every rule below names the citation it comes from (by key). Give a DOI only if you
  # checked it; never guess one.
  - key: todo-source
    text: TODO the full reference of the publication that defines the items and the scoring
    # doi: 10.xxxx/xxxxx
    # url: https://...
    supports: [items, item range, total]

# Labels shared by several items may be declared once and named by `answers:` on each item:
# answer_sets:
#   frequency:
#     - {{value: 0, label: Not at all}}
#     - {{value: 1, label: Several days}}
# A code that means "no answer" (not assessed, refused) is never a score:
#   missing_codes: [{{value: 9, label: not assessed}}]
items:
{item_lines}

scores:
  - id: total
    label: Total score
    method: sum                 # sum, mean, max or min
    of: [{of}]
    range: [{total_lo}, {total_hi}]   # checked against the range computed from the items
    # Without a `missing` rule every item is required, which is right when no rule is
    # published. A published rule might read (a sum must prorate; it never counts a missing
    # item as 0):
    # missing:
    #   max_missing: 1
    #   method: prorate_mean    # or prorate_max
    #   rounding: {{method: half_up}}
    #   source: todo-source
    # Severity bands must cover the range exactly, without gaps or overlaps:
    # bands_source: todo-source
    # bands:
    #   - {{label: TODO lower band, min: {total_lo}, max: {mid}}}
    #   - {{label: TODO upper band, min: {mid + 1}, max: {total_hi}}}
    # response: {{reduction_percent: 50, source: todo-source}}
    # remission: {{at_most: {total_lo}, source: todo-source}}

# Worked examples are scored by `ketascore scales check` and by ketascore's tests. Add
# examples from the source (its own worked example if it has one), at each band boundary,
# and for missing data.
examples:
  - description: Every item at its minimum
    answers: {all_lo}
    expect:
      scores: {{total: {total_lo}}}
      items_answered: {{total: {n_items}}}
      prorated: {{total: false}}
  - description: Every item at its maximum
    answers: {all_hi}
    expect:
      scores: {{total: {total_hi}}}
  - description: Item {ids[-1]} missing - every item is required, so there is no total
    answers: {one_missing}
    expect:
      scores: {{total: null}}
      items_answered: {{total: {n_answered}}}
      issues: [insufficient-items]
"""


# --------------------------------------------------------------------------------------
# The table of built-in scales in docs/scales.md

DOCS_BEGIN = (
    "<!-- BEGIN GENERATED: built-in scales. Do not edit by hand; run "
    "`python -m ketascore.authoring --update-docs`. -->"
)
DOCS_END = "<!-- END GENERATED: built-in scales -->"
DOCS_PATH = Path(__file__).resolve().parent.parent / "docs" / "scales.md"


def _range_text(lo: Num, hi: Num) -> str:
    return f"{format_number(lo)}-{format_number(hi)}"


def _bands_text(scale: Scale) -> str:
    parts = []
    for sid in scale.score_ids:
        rule = scale.score(sid)
        if not rule.bands:
            continue
        bands = ", ".join(
            f"{_range_text(b.min, b.max) if b.min != b.max else format_number(b.min)} {b.label}"
            for b in rule.bands
        )
        parts.append(f"{sid}: {bands}")
    return "; ".join(parts) or "none"


def builtin_table_markdown() -> str:
    """A Markdown table of the built-in scales: id, name, items, score ranges, bands,
    rating checks (and the built-in check files that add to them), licence."""
    from ketascore.core.checksets import builtin_check_files, resolve_check_set

    companions: dict[str, list[str]] = {}
    for name in builtin_check_files():
        check_set = resolve_check_set(name)
        ids = ", ".join(c.id for c in check_set.definition.checks)
        companions.setdefault(check_set.scale, []).append(f"`--checks {name}`: {ids}")
    lines = [
        "| id | scale | items | scores (range) | bands | rating checks | licence |",
        "|---|---|---|---|---|---|---|",
    ]
    for scale_id in sorted(builtin_ids()):
        scale = load_builtin(scale_id)
        d = scale.definition
        # items as rated: a group of alternatives (HAM-D 16A/16B) counts once
        slots = [s for s in scale.slots if s not in scale.alternative_of]
        scored = sum(1 for s in slots if all(scale.items[m].scored for m in scale.slots[s]))
        items = str(len(slots)) if scored == len(slots) else f"{len(slots)} ({scored} scored)"
        scores = ", ".join(
            f"`{sid}` {_range_text(scale.score(sid).lo, scale.score(sid).hi)}"
            for sid in scale.score_ids
        )
        name = d.name + (f" ({d.short_name})" if d.short_name else "")
        notes = [", ".join(c.id for c in scale.checks)] if scale.checks else []
        checks = "; ".join(notes + companions.get(scale_id, []))
        cells = [
            f"`{scale_id}`",
            name,
            items,
            scores,
            _bands_text(scale),
            checks or "none",
            d.licence.status,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _split_docs(text: str) -> tuple[str, str, str]:
    start = text.find(DOCS_BEGIN)
    end = text.find(DOCS_END)
    if start < 0 or end < start:
        raise ValueError(f"the markers {DOCS_BEGIN!r} and {DOCS_END!r} are missing")
    head = text[: start + len(DOCS_BEGIN)]
    return head, text[start + len(DOCS_BEGIN) : end], text[end:]


def generated_docs_table(text: str) -> str:
    """The generated part of docs/scales.md, without the markers."""
    return _split_docs(text)[1].strip("\n") + "\n"


def update_docs(path: Path = DOCS_PATH) -> bool:
    """Rewrite the table of built-in scales in ``path``; True if the file changed."""
    text = path.read_text(encoding="utf-8")
    head, _body, tail = _split_docs(text)
    new = f"{head}\n{builtin_table_markdown()}{tail}"
    if new == text:
        return False
    from ketascore.writers.tabular import atomic_writer

    with atomic_writer(path) as fh:
        fh.write(new)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ketascore.authoring",
        description="Maintain the generated table of built-in scales in docs/scales.md.",
    )
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--update-docs", action="store_true", help="rewrite the table")
    group.add_argument(
        "--check-docs", action="store_true", help="exit 1 if the table is out of date"
    )
    parser.add_argument("--docs", type=Path, default=DOCS_PATH, help="path of docs/scales.md")
    args = parser.parse_args(argv)
    if args.update_docs:
        changed = update_docs(args.docs)
        print(f"{args.docs}: {'updated' if changed else 'already up to date'}")
        return 0
    current = generated_docs_table(args.docs.read_text(encoding="utf-8"))
    if current != builtin_table_markdown():
        print(
            f"{args.docs}: the table of built-in scales is out of date; run "
            "python -m ketascore.authoring --update-docs"
        )
        return 1
    print(f"{args.docs}: up to date")
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through main() in the tests
    sys.exit(main())
