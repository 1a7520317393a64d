"""The scoring engine: pure functions from a scale and answer records to results.

Correct scores or no score: a missing item is never counted as 0, a missing code ("not
assessed") is never a score, and a value the item does not allow is rejected with an issue
and leaves every score that uses it empty. Prorating happens only where the scale's
missing-data rule says so, and each score reports how many items it used and whether it was
prorated.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ketascore.core.issues import Issue, make_issue
from ketascore.core.methods import score_value
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.core.scale import CheckRule, ConditionRule, FlagRule, Scale, ScoreRule
from ketascore.core.values import (
    INVALID,
    MISSING,
    Num,
    Rejection,
    clean_number,
    comparable,
    finite_number,
    format_number,
    is_missing_marker,
    missing_code_values,
    parse_value,
    strip,
)

# --------------------------------------------------------------------------------------
# Scoring


@dataclass(slots=True)
class _State:
    value: Any  # number, MISSING or INVALID
    leaves: int = 0


@functools.lru_cache(maxsize=256)  # (a run has one or a few sets of codes, and many records)
def _missing_codes(codes: tuple[Any, ...]) -> frozenset[Any]:
    return frozenset(missing_code_values(codes))


def score_record(
    scale: Scale, record: AnswerRecord, *, extra_missing: Iterable[Any] = ()
) -> ScoreResult:
    """Score one record against one scale. Never raises on bad values: issues say why."""
    missing_codes = _missing_codes((*extra_missing, *record.missing_codes))
    file, subject, visit = record.source.file, record.subject, record.visit
    result = ScoreResult(
        subject=subject,
        visit=visit,
        scale=scale.id,
        scale_version=scale.version,
        date=record.date,
        day=record.day,
        source=record.source,
        extra=dict(record.extra),
    )
    issues = result.issues

    def issue(
        code: str,
        variant: str = "",
        /,
        item: str | None = None,
        line: int | None = None,
        **params: Any,
    ) -> None:
        if line is None:
            line = record.line_of(item) if item is not None else record.source.line
        issues.append(
            make_issue(
                code,
                variant,
                file=file,
                line=line,
                subject=subject,
                visit=visit,
                scale=scale.id,
                item=item,
                **params,
            )
        )

    # item values ----------------------------------------------------------------
    lookup = scale.item_lookup
    raw_by_item: dict[str, tuple[str, Any]] = {}
    for key, raw in record.items.items():
        item_id = lookup.get(str(key).casefold())
        if item_id is None:
            slot = scale.alternative_lookup.get(str(key).casefold())
            if slot is not None:  # (HAM-D item 16 given as one column: 16a or 16b?)
                members = scale.slots[slot]
                issue(
                    "unknown-item",
                    "alternative",
                    item=str(key),
                    scale_id=scale.id,
                    key=key,
                    members=" or ".join(members),
                    rated=", ".join(f"{m} ({scale.items[m].label})" for m in members),
                )
                continue
            issue(
                "unknown-item", item=str(key), scale_id=scale.id, key=key, items=list(scale.items)
            )
            continue
        if item_id in raw_by_item:
            issue("bad-record", "item-twice", item=str(key))
            continue
        raw_by_item[item_id] = (str(key), raw)

    values: dict[str, Any] = {}
    for item_id, item_rule in scale.items.items():
        key, raw = raw_by_item.get(item_id, (item_id, None))
        parsed = parse_value(item_rule, raw, missing_codes)
        if isinstance(parsed, Rejection):
            issue(parsed.code, parsed.variant, item=key, **parsed.params)
            values[item_id] = INVALID
        else:
            values[item_id] = parsed
        usable = values[item_id] is not MISSING and values[item_id] is not INVALID
        result.items[item_id] = values[item_id] if usable else None

    # skip logic: items the form does not ask ---------------------------------------
    for skip in scale.skips:
        gate = evaluate(skip.condition, lambda leaf: _leaf_of(leaf, values))
        if gate is not True:
            continue
        for item_id in skip.items:
            v = values[item_id]
            if v is INVALID or (v is not MISSING and v == skip.counts_as):
                continue
            if v is MISSING:
                if skip.counts_as is not None:
                    values[item_id] = result.items[item_id] = skip.counts_as
                continue
            key, raw = raw_by_item.get(item_id, (item_id, None))
            issue(
                "skip-inconsistent",
                "" if skip.counts_as is None else "counts-as",
                item=key,
                value=repr(raw) if isinstance(raw, str) else format_number(v),
                condition=skip.condition.describe(),
                skip=skip.id,
                counts_as=None if skip.counts_as is None else format_number(skip.counts_as),
            )
            values[item_id] = INVALID
            result.items[item_id] = None

    # slots: items, and alternatives of which exactly one may be rated -------------
    slots: dict[str, _State] = {}
    for slot_id, members in scale.slots.items():
        if len(members) == 1:
            v = values[members[0]]
            slots[slot_id] = _State(v, 0 if v is MISSING or v is INVALID else 1)
            continue
        states = [values[m] for m in members]
        # an alternative counts as one answered item when a member holds a usable value
        answered = int(any(s is not MISSING and s is not INVALID for s in states))
        if any(s is INVALID for s in states):
            slots[slot_id] = _State(INVALID, answered)
            continue
        rated = [(m, v) for m, v in zip(members, states, strict=True) if v is not MISSING]
        if len(rated) > 1:
            issue(
                "alternatives-both",
                item=rated[0][0],
                items=" and ".join(m for m, _ in rated),
                slot=slot_id,
            )
            slots[slot_id] = _State(INVALID, answered)
        elif rated:
            slots[slot_id] = _State(rated[0][1], 1)
        else:
            slots[slot_id] = _State(MISSING)

    # scores ---------------------------------------------------------------------
    computed: dict[str, _State] = {}

    slot_values = {k: s.value for k, s in slots.items()}

    def leaf(cond: ConditionRule) -> Any:
        return _leaf_of(cond, slot_values, computed)

    def condition_value(cond: ConditionRule) -> Any:
        kind = cond.kind
        if kind == "slot" or kind == "score":  # (most conditions: no need to combine)
            v = slot_values[cond.ref] if kind == "slot" else computed[cond.ref].value
            return v if v is MISSING or v is INVALID else cond.test(v)
        return evaluate(cond, leaf)

    for rule in scale.scores:
        if rule.applies_when is not None:
            gate = condition_value(rule.applies_when)
            if gate is not True:
                # not applicable (or not known to apply): no score, and no issue of its own
                computed[rule.id] = _State(INVALID if gate is INVALID else MISSING)
                result.scores[rule.id] = None
                result.bands[rule.id] = None
                result.items_answered[rule.id] = 0
                result.prorated[rule.id] = False
                if gate is not MISSING and gate is not INVALID:
                    result.not_applicable.append(rule.id)
                continue
        parts: list[Num] = []
        answered_terms: list[int] = []
        leaves = 0
        invalid = False
        missing_items = 0
        for j, term in enumerate(rule.terms):
            state = slots[term.ref] if term.kind == "slot" else computed[term.ref]
            leaves += state.leaves  # every answered item counts, whatever became of the rest
            if state.value is INVALID:
                invalid = True  # no score
                continue
            if state.value is MISSING:
                missing_items += term.kind == "slot"
                continue
            parts.append(term.apply(state.value))
            answered_terms.append(j)
        result.items_answered[rule.id] = leaves
        result.prorated[rule.id] = False
        result.bands[rule.id] = None
        if invalid:
            computed[rule.id] = _State(INVALID, leaves)
            result.scores[rule.id] = None
            continue
        if len(parts) < rule.required:
            computed[rule.id] = _State(MISSING, leaves)
            result.scores[rule.id] = None
            # A score that lacks only sub-scores is explained by the sub-score's own issue.
            if missing_items:
                variant, params = insufficient_items(scale, rule, len(parts))
                issue("insufficient-items", variant, **params)
            continue
        value, prorated = score_value(rule, parts, answered_terms)
        computed[rule.id] = _State(value, leaves)
        result.scores[rule.id] = value
        result.prorated[rule.id] = prorated
        result.bands[rule.id] = rule.band(value) if rule.bands else None

    # flags, classifications and rating checks ------------------------------------
    for flag in scale.flags:
        if flag.condition.across_visits:
            continue  # (check_across_visits, over the subject's records)
        v = condition_value(flag.condition)
        if v is MISSING:
            issue("flag-undetermined", **flag_undetermined(flag))
        elif v is True:
            result.flags.append(flag.id)
    for cls in scale.classifications:
        v = condition_value(cls.condition)
        result.classifications[cls.id] = v if isinstance(v, bool) else None
    for check in scale.checks:
        if not check.condition.across_visits and condition_value(check.condition) is True:
            issue("rating-check", **rating_check(check))
    if scale.across_visits:  # what the rules across visits read of this record
        named = slot_values | {k: s.value for k, s in computed.items()}
        result.states = {
            k: "missing" if v is MISSING else "invalid" if v is INVALID else v
            for k, v in named.items()
        }
    for score_id, stored in record.reported.items():
        _compare_reported(scale, result, score_id, stored, record, issue)
    return result


def _stored_number(stored: Any) -> Any:
    """A stored score as a number (``finite_number``), None where nothing is stored (blank,
    a missing marker, a numeric column's NaN), INVALID where it is not a finite number."""
    if isinstance(stored, str) and is_missing_marker(strip(stored)):
        return None
    if isinstance(stored, float) and stored != stored:  # NaN: an empty numeric cell
        return None
    try:
        return finite_number(stored)
    except ValueError:
        return INVALID


def _compare_reported(
    scale: Scale,
    result: ScoreResult,
    score_id: str,
    stored: Any,
    record: AnswerRecord,
    issue: Any,
) -> None:
    """Compare a score the source stored (a sponsor-derived total) with our own. The stored
    score is read as an answer is (the value grammar); one that cannot be read is reported,
    not passed over: a comparison that never happened must not look like agreement."""
    ours = result.scores.get(score_id)
    theirs = _stored_number(stored)
    if theirs is INVALID:
        issue(
            "reported-score-mismatch",
            "unreadable",
            line=record.reported_lines.get(score_id),
            score=score_id,
            stored=repr(stored) if isinstance(stored, str) else stored,
        )
        return
    if theirs is None or ours is None:
        if theirs is not None and score_id in result.scores:
            issue(
                "reported-score-mismatch",
                "none",
                line=record.reported_lines.get(score_id),
                score=score_id,
                stored=format_number(clean_number(theirs)),
            )
        return
    if abs(ours - theirs) > 1e-9:
        issue(
            "reported-score-mismatch",
            line=record.reported_lines.get(score_id),
            score=score_id,
            stored=format_number(clean_number(theirs)),
            ours=format_number(ours),
        )


def insufficient_items(scale: Scale, rule: ScoreRule, answered: int) -> tuple[str, dict[str, Any]]:
    """The message variant and parameters of the insufficient-items issue of ``rule`` when
    ``answered`` of its terms are answered."""
    n = len(rule.terms)
    params: dict[str, Any] = {
        "score": rule.id,
        "answered": answered,
        "total": n,
        "need": "all" if rule.required >= n else f"at least {rule.required}",
    }
    users = scale.dependents.get(rule.id, ())
    if not users:
        return "", params
    return "dependents", {
        **params,
        "dependents": list(users),
        "verb": "is" if len(users) == 1 else "are",
    }


# --------------------------------------------------------------------------------------
# Conditions: true, false, or not known (MISSING: a value is missing; INVALID: a value was
# rejected, and that has its own issue)

NO_REFERENCE: Any = object()  # a comparison with an earlier rating that does not exist


def evaluate(cond: ConditionRule, leaf: Callable[[ConditionRule], Any]) -> Any:
    """True, False, MISSING or INVALID. ``leaf`` gives the number a simple condition tests
    (or MISSING, INVALID, NO_REFERENCE). ``all``: false when a part is false, else INVALID
    or MISSING when a part is, else true; ``any`` the same with true and false swapped."""
    if cond.kind in ("all", "any"):
        decides = cond.kind == "any"
        found = [evaluate(part, leaf) for part in cond.parts]
        if any(f is decides for f in found):
            return decides
        if any(f is INVALID for f in found):
            return INVALID
        if any(f is MISSING for f in found):
            return MISSING
        return not decides
    value = leaf(cond)
    if value is NO_REFERENCE:
        return False
    if value is MISSING or value is INVALID:
        return value
    return cond.test(value)


def _combined(values: list[Any], combine: Callable[[list[Num]], Num]) -> Any:
    if any(v is INVALID for v in values):
        return INVALID
    if any(v is MISSING for v in values):
        return MISSING
    return clean_number(combine(values))


def _leaf_of(
    cond: ConditionRule, slots: dict[str, Any], scores: dict[str, _State] | None = None
) -> Any:
    """The number a simple condition of one record tests (``slots``: item and alternative
    values; ``scores``: the scores computed so far)."""
    if cond.kind == "slot":
        return slots[cond.ref]
    if cond.kind == "score":
        assert scores is not None
        return scores[cond.ref].value
    values = [slots[ref] for ref in cond.refs]
    if cond.kind == "difference":
        return _combined(values, lambda v: v[0] - v[1])
    return _combined(values, lambda v: max(v) - min(v))


def flag_undetermined(flag: FlagRule) -> dict[str, Any]:
    """The item and parameters of the flag-undetermined issue of a flag whose value is
    missing."""
    item = flag.condition.ref if flag.condition.kind == "slot" else None
    return {"item": item, "flag": flag.id, "condition": flag.condition.describe()}


def rating_check(check: CheckRule) -> dict[str, Any]:
    """The item and parameters of the rating-check issue of a check that holds."""
    return {
        "item": check.item,
        "check": check.id,
        "label": check.label,
        "condition": check.condition.describe(),
    }


# --------------------------------------------------------------------------------------
# Rules across visits: flags and checks that compare a rating with an earlier one


def rating_order(results: Sequence[ScoreResult]) -> list[ScoreResult]:
    """One subject's ratings of a scale in time order: by study day when every rating has
    one, else by date (and time, as written) when every rating has one, else as read; ties
    keep the order read."""
    indexed = list(enumerate(results))
    if all(r.day is not None for r in results):
        indexed.sort(key=lambda p: (p[1].day, p[1].date or "", p[0]))
    elif all(r.date for r in results):
        indexed.sort(key=lambda p: (p[1].date or "", p[0]))
    return [r for _, r in indexed]


def _day_of(result: ScoreResult) -> Any:
    if result.day is not None:
        return ("day", result.day)
    if result.date:
        return ("date", result.date[:10])
    return None


def _state(result: ScoreResult, ref: str) -> Any:
    value = result.states.get(ref, "missing")
    return MISSING if value == "missing" else INVALID if value == "invalid" else value


def check_across_visits(results: list[ScoreResult], resolve: Any) -> None:
    """Evaluate the flags and checks that compare a rating with an earlier one of the same
    subject (``change_from``) over all ``results`` (``resolve(scale_id)`` gives a Scale),
    adding their flags and issues to each result. Running it again gives the same."""
    groups: dict[tuple[str, str], list[ScoreResult]] = {}
    scales: dict[str, Scale | None] = {}  # those without such rules: None
    for r in results:
        if r.scale is None:
            continue
        if r.scale not in scales:
            scale = resolve(r.scale)
            scales[r.scale] = scale if scale is not None and scale.across_visits else None
        if scales[r.scale] is not None:
            groups.setdefault((r.scale, r.subject), []).append(r)
    for (scale_id, _), group in groups.items():
        scale = scales[scale_id]
        assert scale is not None
        _across_visits(scale, rating_order(group))


def _across_visits(scale: Scale, ordered: list[ScoreResult]) -> None:
    flags = [f for f in scale.flags if f.condition.across_visits]
    checks = [c for c in scale.checks if c.condition.across_visits]
    mine = {f.id for f in flags}, {c.id for c in checks}
    for pos, result in enumerate(ordered):
        # what an earlier run added is taken away first
        result.flags = [f for f in result.flags if f not in mine[0]]
        result.issues = [
            i
            for i in result.issues
            if not (
                (i.code == "flag-undetermined" and i.params.get("flag") in mine[0])
                or (i.code == "rating-check" and i.params.get("check") in mine[1])
            )
        ]
        if not result.states:
            continue  # not scored (records that disagree): nothing to compare

        def leaf(cond: ConditionRule, result: ScoreResult = result, pos: int = pos) -> Any:
            if cond.kind != "score" or cond.change_from is None:
                slots = {ref: _state(result, ref) for ref in (*cond.refs, cond.ref) if ref}
                scores = {cond.ref: _State(_state(result, cond.ref))}
                return _leaf_of(cond, slots, scores)
            if cond.change_from == "previous":
                if pos == 0:
                    return NO_REFERENCE
                reference = ordered[pos - 1]
            else:
                day = _day_of(result)
                if day is None:
                    return MISSING  # no study day or date: the day's first rating is unknown
                reference = next(r for r in ordered if _day_of(r) == day)
            now, then = _state(result, cond.ref), _state(reference, cond.ref)
            return _combined([now, then], lambda pair: pair[0] - pair[1])

        raised = set()
        for flag in flags:
            v = evaluate(flag.condition, leaf)
            if v is True:
                raised.add(flag.id)
            elif v is MISSING:
                result.issues.append(
                    _issue_of(result, scale, "flag-undetermined", flag_undetermined(flag))
                )
        if raised:
            keep = set(result.flags) | raised
            result.flags = [f.id for f in scale.flags if f.id in keep]
        for check in checks:
            if evaluate(check.condition, leaf) is True:
                result.issues.append(_issue_of(result, scale, "rating-check", rating_check(check)))


def _issue_of(result: ScoreResult, scale: Scale, code: str, params: dict[str, Any]) -> Issue:
    return make_issue(
        code,
        file=result.source.file,
        line=result.source.line,
        subject=result.subject,
        visit=result.visit,
        scale=scale.id,
        **params,
    )


# --------------------------------------------------------------------------------------
# Worked examples


def run_examples(scale: Scale) -> list[str]:
    """Score each worked example of a scale; one message per expectation it misses."""
    failures: list[str] = []
    for i, example in enumerate(scale.definition.examples):
        # the earlier ratings of the same day (for rules across visits), then the example
        records = [
            AnswerRecord(
                subject=f"example-{i + 1}",
                visit=f"earlier-{k + 1}" if k < len(example.before) else "example",
                scale=scale.id,
                items={str(key): v for key, v in answers.items()},
                day=0,
            )
            for k, answers in enumerate([*example.before, example.answers])
        ]
        result = score_records(records, {scale.id: scale}.get)[-1]
        where = f"examples[{i}] ({example.description})"
        expect = example.expect

        def check(what: str, expected: Any, actual: Any, where: str = where) -> None:
            if expected != actual:
                failures.append(f"{where}: {what}: expected {expected!r}, got {actual!r}")

        for name, value in expect.scores.items():
            if name not in result.scores:
                failures.append(f"{where}: unknown score {name!r}")
                continue
            got = result.scores[name]
            same = (got is None and value is None) or (
                got is not None and value is not None and abs(got - value) < 1e-9
            )
            if not same:
                check(f"score {name}", value, got)
        for name, band in expect.bands.items():
            check(f"band of {name}", band, result.bands.get(name, "<no such score>"))
        for name, count in expect.items_answered.items():
            check(f"items answered for {name}", count, result.items_answered.get(name))
        for name, flag in expect.prorated.items():
            check(f"prorated {name}", flag, result.prorated.get(name))
        if expect.flags is not None:
            check("flags", sorted(expect.flags), sorted(result.flags))
        for name, cls in expect.classifications.items():
            check(f"classification {name}", cls, result.classifications.get(name, "<none>"))
        codes = sorted(i.code for i in result.issues)
        if expect.issues is not None:
            check("issue codes", sorted(expect.issues), codes)
        elif codes:
            failures.append(f"{where}: unexpected issues: {', '.join(codes)}")
    return failures


# --------------------------------------------------------------------------------------
# Many records


def answers_key(record: AnswerRecord) -> tuple[tuple[str, Any], ...]:
    return tuple(
        sorted(
            (str(k).casefold(), v)
            for k, raw in record.items.items()
            if (v := comparable(raw)) is not None
        )
    )


def _empty_result(record: AnswerRecord, scale: Scale | None, issue: Issue) -> ScoreResult:
    result = ScoreResult(
        subject=record.subject,
        visit=record.visit,
        scale=scale.id if scale else record.scale,
        scale_version=scale.version if scale else None,
        date=record.date,
        day=record.day,
        source=record.source,
        extra=dict(record.extra),
        issues=[issue],
    )
    if scale is not None:
        for rule in scale.scores:
            result.scores[rule.id] = None
            result.bands[rule.id] = None
            result.items_answered[rule.id] = 0
            result.prorated[rule.id] = False
        for cls in scale.classifications:
            result.classifications[cls.id] = None
    return result


def record_location(record: AnswerRecord) -> str:
    src = record.source
    if src.file is None:
        return f"record {src.index + 1}" if src.index is not None else "input"
    return f"{src.file}:{src.line}" if src.line is not None else src.file


def score_records(
    records: Iterable[AnswerRecord],
    resolve: Any,
    *,
    extra_missing: Iterable[Any] = (),
) -> list[ScoreResult]:
    """Score records in order. ``resolve(scale_id)`` gives a Scale or None if unknown.

    Records for the same subject, visit and scale are compared: identical ones are merged
    (a warning), differing ones give one result with no scores and an error.
    """
    extra = tuple(extra_missing)
    groups: dict[tuple[str, str, str], list[AnswerRecord]] = {}
    order: list[tuple[str, str, str] | AnswerRecord] = []
    out: list[ScoreResult] = []
    for record in records:
        if record.scale is None:
            order.append(record)
            continue
        key = (record.subject, record.visit, record.scale.casefold())
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(record)
    for entry in order:
        if isinstance(entry, AnswerRecord):
            out.append(
                _empty_result(
                    entry,
                    None,
                    make_issue(
                        "no-scale",
                        file=entry.source.file,
                        line=entry.source.line,
                        subject=entry.subject,
                        visit=entry.visit,
                    ),
                )
            )
            continue
        group = groups[entry]
        first = group[0]
        assert first.scale is not None
        scale = resolve(first.scale)
        if scale is None:
            out.append(_empty_result(first, None, unknown_scale_issue(first)))
            continue
        # one record cannot disagree with itself: its answers need no comparing
        if len(group) > 1 and len({answers_key(r) for r in group}) > 1:
            out.append(conflict_result(first, scale, [record_location(r) for r in group]))
            continue
        result = score_record(scale, first, extra_missing=extra)
        if first.repeated_lines:  # a long table's repeated rows
            places = [f"{first.source.file}:{line}" for line in first.repeated_lines]
            result.issues.append(
                record_issue("duplicate-record", first, "rows", count=len(places), places=places)
            )
        if len(group) > 1:
            result.issues.append(duplicate_issue(first, scale, [record_location(r) for r in group]))
        out.append(result)
    check_across_visits(out, resolve)
    return out


def unknown_scale_issue(record: AnswerRecord) -> Issue:
    """The issue of a record whose scale field names no known scale, with the ids it may
    mean (as ``--scale`` suggests them)."""
    from ketascore.core.library import ScaleSet, close_ids

    assert record.scale is not None
    close = close_ids(record.scale, ScaleSet().ids())
    if close:
        return record_issue(
            "unknown-scale", record, "did-you-mean", scale_id=record.scale, close=close
        )
    return record_issue("unknown-scale", record, scale_id=record.scale)


def conflict_result(first: AnswerRecord, scale: Scale, places: Sequence[str]) -> ScoreResult:
    """The unscored result of records of one subject, visit and scale whose answers differ
    (``places``: where each was read)."""
    return _empty_result(
        first,
        scale,
        record_issue(
            "conflicting-records", first, scale=scale.id, count=len(places), places=list(places)
        ),
    )


def duplicate_issue(first: AnswerRecord, scale: Scale, places: Sequence[str]) -> Issue:
    """The note on a result scored once from records with the same answers."""
    return record_issue(
        "duplicate-record", first, scale=scale.id, count=len(places), places=list(places)
    )


def record_issue(code: str, record: AnswerRecord, variant: str = "", **params: Any) -> Issue:
    """An issue located at a record: its file, line, subject and visit (``params`` may add
    the scale and item, and give the message's parameters)."""
    return make_issue(
        code,
        variant,
        file=record.source.file,
        line=record.source.line,
        subject=record.subject,
        visit=record.visit,
        **params,
    )
