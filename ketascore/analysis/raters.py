"""Rating checks summarised per rater and per site.

A scale's rating-consistency checks (``checks:``) give each record that raises one a
``rating-check`` warning naming the check. Central reviewers read them by rater and by site:
a rater whose ratings raise a check far more often than the others' needs a word or more
training. This module counts, for one scale, the records checked, the records that raised at
least one check and the records that raised each check - over all records, and for each
rater and each site when the records carry those fields (a ``rater`` or ``site`` column
carried through, see ``RATER_FIELDS`` and ``SITE_FIELDS``; a mapping file's
``carry: {rater: EVALID}`` gives any column that name).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ketascore.analysis.change import natural_key
from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale

# Carried fields read as the rater and as the site, first found first (names matched
# ignoring case). The summary names the field as the data spell it.
RATER_FIELDS = ("rater", "rater_id", "raterid", "evaluator", "evaluator_id")
SITE_FIELDS = (
    "site",
    "site_id",
    "siteid",
    "centre",
    "center",
    "redcap_data_access_group",  # REDCap data access groups are usually the sites
)

# a record whose answers could not be scored (its records disagree): its checks never ran
NOT_CHECKED = frozenset({"conflicting-records"})


@dataclass
class CheckTally:
    """Records checked, records that raised at least one check, and records per check."""

    records: int = 0
    flagged: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    def add(self, held: set[str]) -> None:
        self.records += 1
        if held:
            self.flagged += 1
        for check_id in held:
            self.hits[check_id] = self.hits.get(check_id, 0) + 1

    @property
    def flagged_percent(self) -> float | None:
        return round(100 * self.flagged / self.records, 1) if self.records else None

    def to_dict(self, check_ids: Sequence[str]) -> dict[str, Any]:
        return {
            "records": self.records,
            "flagged": self.flagged,
            "flagged_percent": self.flagged_percent,
            "hits": {c: self.hits.get(c, 0) for c in check_ids},
        }


@dataclass
class GroupTally:
    """The tally of one rater or site; ``value`` None: records that do not say."""

    value: str | None
    tally: CheckTally


@dataclass
class FieldSummary:
    """The tallies by one carried field: ``role`` is rater or site, ``field`` its name."""

    role: str
    field: str
    groups: list[GroupTally]


@dataclass
class RatingCheckSummary:
    scale: str
    checks: list[tuple[str, str]]  # (id, label), in the scale's order
    overall: CheckTally
    by: list[FieldSummary] = field(default_factory=list)
    not_checked: int = 0  # records of the scale that could not be scored

    @property
    def check_ids(self) -> list[str]:
        return [c for c, _ in self.checks]

    def to_dict(self) -> dict[str, Any]:
        ids = self.check_ids
        return {
            "scale": self.scale,
            "checks": [{"id": c, "label": label} for c, label in self.checks],
            **self.overall.to_dict(ids),
            "not_checked": self.not_checked,
            "by": [
                {
                    "role": f.role,
                    "field": f.field,
                    "groups": [{"value": g.value, **g.tally.to_dict(ids)} for g in f.groups],
                }
                for f in self.by
            ],
        }


def carried_field(results: Sequence[ScoreResult], names: Sequence[str]) -> str | None:
    """The first of ``names`` (ignoring case) that the results carry, as they spell it."""
    spelled: dict[str, str] = {}
    for r in results:
        for key in r.extra:
            spelled.setdefault(str(key).casefold(), str(key))
    for name in names:
        if name.casefold() in spelled:
            return spelled[name.casefold()]
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def summarise_rating_checks(
    results: Iterable[ScoreResult],
    scale: Scale,
    *,
    rater_field: str | None = None,
    site_field: str | None = None,
) -> RatingCheckSummary | None:
    """The rating checks of ``scale`` over its records among ``results``: overall and per
    rater and per site (the fields named, else the first of ``RATER_FIELDS`` and
    ``SITE_FIELDS`` the records carry). None when the scale has no checks."""
    if not scale.checks:
        return None
    mine = [r for r in results if r.scale == scale.id]
    known = {c.id for c in scale.checks}
    overall = CheckTally()
    fields = [
        (role, name)
        for role, name in (
            ("rater", rater_field or carried_field(mine, RATER_FIELDS)),
            ("site", site_field or carried_field(mine, SITE_FIELDS)),
        )
        if name is not None
    ]
    tallies: list[dict[str | None, CheckTally]] = [{} for _ in fields]
    not_checked = 0
    for r in mine:
        if any(i.code in NOT_CHECKED for i in r.issues):
            not_checked += 1
            continue
        held = {
            str(i.params.get("check"))
            for i in r.issues
            if i.code == "rating-check" and i.params.get("check") in known
        }
        overall.add(held)
        for (_, name), by_value in zip(fields, tallies, strict=True):
            by_value.setdefault(_text(r.extra.get(name)), CheckTally()).add(held)
    by = [
        FieldSummary(
            role,
            name,
            [
                GroupTally(value, by_value[value])
                for value in sorted(
                    by_value, key=lambda v: (v is None, natural_key(v) if v is not None else ())
                )
            ],
        )
        for (role, name), by_value in zip(fields, tallies, strict=True)
    ]
    return RatingCheckSummary(
        scale=scale.id,
        checks=[(c.id, c.label) for c in scale.checks],
        overall=overall,
        by=by,
        not_checked=not_checked,
    )
