"""Answer records: one subject's answers to one scale at one visit."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ketascore.core.issues import Issue

Num = int | float


@dataclass(frozen=True, slots=True)
class Source:
    """Where a record came from: file, line (YAML line or CSV line), record index. (A
    plain frozen dataclass: every result holds one, and a pydantic model of three fields
    took 480 bytes and a microsecond and a half of each of a big table's results.)"""

    file: str | None = None
    line: int | None = None
    index: int | None = None


class AnswerRecord(BaseModel):
    """Raw answers as read from a file; values are checked when scored, not when read.

    ``items`` maps item id to the value as written (a number, an answer label, a missing
    code or None). ``item_lines`` gives the line of each item where the format knows it.
    ``extra`` holds carried fields (arm, site, ...) that are copied to the output.
    ``missing_codes`` are extra codes meaning "no answer" for this record (from a mapping
    file, e.g. NHANES 7 = refused, 9 = don't know).
    """

    model_config = ConfigDict(frozen=True)

    subject: str
    visit: str
    scale: str | None = None
    items: dict[str, Any] = Field(default_factory=dict)
    date: str | None = None
    day: int | float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    source: Source = Field(default_factory=Source)
    item_lines: dict[str, int] = Field(default_factory=dict)
    missing_codes: tuple[Any, ...] = ()
    reported: dict[str, Any] = Field(
        default_factory=dict,
        description="scores the source itself reports (an SDTM derived row, a FHIR form's "
        "total), by score id; compared with ketascore's own result",
    )
    reported_lines: dict[str, int] = Field(default_factory=dict)
    repeated_lines: tuple[int, ...] = Field(
        default=(),
        description="the lines of a long table's rows that give an item of the record again "
        "with the same answer (a repeated row: one duplicate-record warning)",
    )

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.subject, self.visit, self.scale)

    def line_of(self, item: str | None) -> int | None:
        if item is not None and item in self.item_lines:
            return self.item_lines[item]
        return self.source.line


@dataclass(slots=True)
class ScoreResult:
    """The scores of one record: the JSON contract of ``ketascore score``."""

    subject: str
    visit: str
    scale: str | None
    scale_version: str | None
    date: str | None = None
    day: Num | None = None
    scores: dict[str, Num | None] = field(default_factory=dict)
    bands: dict[str, str | None] = field(default_factory=dict)
    items_answered: dict[str, int] = field(default_factory=dict)
    prorated: dict[str, bool] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    classifications: dict[str, bool | None] = field(default_factory=dict)
    not_applicable: list[str] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    source: Source = field(default_factory=Source)
    extra: dict[str, Any] = field(default_factory=dict)
    items: dict[str, Num | None] = field(default_factory=dict)
    # analysis bookkeeping (analysis windows), not part of the score output
    source_visit: str | None = None
    note: str | None = None
    # for rules across visits (a scale's flags and checks that compare with an earlier
    # rating): each item, alternative and score as a number, "missing" or "invalid";
    # kept only for scales that have such rules, not part of the score output
    states: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": self.subject,
            "visit": self.visit,
            "date": self.date,
            "day": self.day,
            "scale": self.scale,
            "scale_version": self.scale_version,
            "scores": self.scores,
            "bands": self.bands,
            "items_answered": self.items_answered,
            "prorated": self.prorated,
            "flags": self.flags,
            "classifications": self.classifications,
            "not_applicable": self.not_applicable,
            "issues": [i.as_dict() for i in self.issues],
            "source": {"file": self.source.file, "line": self.source.line},
        }
        for key, value in self.extra.items():
            if key not in out:
                out[key] = value
        return out
