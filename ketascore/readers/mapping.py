"""Column mapping files: how the columns (or codes) of a table map to a scale's items.

A mapping file is YAML, checked as strictly as a scale file (unknown keys are errors, every
problem is reported as ``file:line:col: path: message``)::

    scale: phq9
    subject: SEQN                 # the subject column
    visit: {value: 2017-2018}     # a visit column, or a constant
    items: {1: DPQ010, 2: DPQ020} # item id -> column (wide) or code (long, SDTM, FHIR linkId)
    missing_codes: [7, 9]         # extra codes that mean "no answer" ('7' is 7 too)
    carry: [RIDAGEYR]             # columns copied to the output (or {name: column})

Column names match exactly, else case-insensitively. A mapping is checked against a table
when the table is read: a column it names that the table lacks is an issue naming both files
(``missing-column``); an item column that is missing leaves the scores using that item empty,
a missing subject or visit column skips the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
)

from ketascore.core import yamlsafe
from ketascore.core.model import Id, ScaleId, Text
from ketascore.core.values import strip

Column = Annotated[Text, Field(min_length=1, max_length=200)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_blank(value: str) -> str:
    """A constant as the readers take a visit from a cell: stripped of ASCII whitespace,
    never blank (a blank visit is no visit)."""
    text = strip(value)
    if not text:
        raise ValueError("the value is blank; give the visit's name")
    return text


class Constant(Model):
    """A value that is the same for every row (``visit: {value: screening}``)."""

    value: Annotated[Text, AfterValidator(_not_blank)] = Field(min_length=1)


class ColumnMapping(Model):
    scale: ScaleId = Field(description="the scale the items belong to (a built-in id)")
    subject: Column | None = Field(
        default=None, description="the subject column (SDTM: USUBJID; REDCap: the first column)"
    )
    visit: Column | Constant | None = Field(
        default=None, description="the visit column, or {value: ...} for a constant"
    )
    date: Column | None = None
    day: Column | None = None
    visit_number: Column | None = Field(
        default=None, description="a column that orders the visits (SDTM VISITNUM)"
    )
    layout: Literal["wide", "long"] = Field(
        default="wide",
        description="wide: one column per item; long: one row per item (item_column, value_column)",
    )
    item_column: Column | None = Field(default=None, description="long layout: the item codes")
    value_column: Column | None = Field(default=None, description="long layout: the answers")
    category: Text | None = Field(default=None, description="SDTM QSCAT/RSCAT of the rows to read")
    items: dict[Id, Column] = Field(
        min_length=1, description="item id -> column (wide) or code (long, SDTM, FHIR linkId)"
    )
    scores: dict[Id, Column] = Field(
        default_factory=dict,
        description="score id -> column or code holding a score the source stored; compared "
        "with the computed score",
    )
    missing_codes: list[StrictInt | StrictFloat | str] = Field(
        default_factory=list, description="codes that mean no answer (NHANES 7 = refused)"
    )
    carry: list[Column] | dict[Id, Column] = Field(
        default_factory=list, description="columns copied to the output, or {name: column}"
    )
    sheet: Text | None = Field(default=None, description="spreadsheet sheet (default: the first)")
    description: str | None = None
    source: str | None = Field(default=None, description="where the codes and columns come from")


class MappingError(ValueError):
    """A mapping file that cannot be used; ``problems`` are formatted, one per line."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class LoadedMapping:
    """A checked mapping and where it came from (for messages that name its lines)."""

    spec: ColumnMapping
    source: str
    located: yamlsafe.Located | None = None

    def where(self, *path: str | int) -> str:
        """``mapping.yaml:12`` for the line of ``path`` (or the file name alone)."""
        pos = self.located.position(tuple(path)) if self.located is not None else None
        return f"{self.source}:{pos.line}" if pos else self.source

    @property
    def carried(self) -> dict[str, str]:
        """Output name -> column of each carried field."""
        carry = self.spec.carry
        return dict(carry) if isinstance(carry, dict) else {c: c for c in carry}

    @property
    def missing_codes(self) -> tuple[Any, ...]:
        return tuple(self.spec.missing_codes)


def _problems(exc: ValidationError, data: Any, source: str, located: yamlsafe.Located) -> list[str]:
    from ketascore.core.scale import format_problem, pydantic_problems

    problems = pydantic_problems(exc, data)

    def order(p: Any) -> tuple[int, int]:
        path = p.path[:-1] if p.message == "required key is missing" else p.path
        pos = located.position(path)
        return (pos.line, pos.column) if pos else (0, 0)

    return [format_problem(source, located, p) for p in sorted(problems, key=order)]


def _check(spec: ColumnMapping) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that relate the keys of a mapping to each other."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    if spec.layout == "long":
        if spec.item_column is None or spec.value_column is None:
            out.append((("layout",), "the long layout needs item_column and value_column"))
    else:
        for key in ("item_column", "value_column"):
            if getattr(spec, key) is not None:
                out.append(((key,), "only the long layout has an item or value column"))

    # each column has one role, and so has each code of the long layout: a column read as
    # the subject and as the visit, or a code read as an item and as a stored score, is a
    # mistake (the one would be taken and the other passed over)
    def claim(seen: dict[str, str], path: tuple[str | int, ...], name: str, role: str) -> None:
        folded = name.casefold()
        if folded in seen:
            out.append((path, f"{name!r} is also given for {seen[folded]}"))
        else:
            seen[folded] = role

    columns: dict[str, str] = {}
    for key in ("subject", "visit", "date", "day", "visit_number", "item_column", "value_column"):
        column = getattr(spec, key)
        if isinstance(column, str):
            claim(columns, (key,), column, key)
    # (long layout: items and scores are codes in the item column, not columns)
    named = columns if spec.layout == "wide" else {}
    for item, name in spec.items.items():
        claim(named, ("items", item), name, f"item {item}")
    for score, name in spec.scores.items():
        claim(named, ("scores", score), name, f"score {score}")
    return out


def load_mapping_text(text: str, source: str = "<mapping>") -> LoadedMapping:
    """Parse and check a mapping; raises MappingError with every problem."""
    try:
        # numbers as the value grammar reads them: missing_codes: [010] is 10, not octal 8
        located = yamlsafe.load(text.removeprefix("\ufeff"), numbers="grammar")
    except yamlsafe.YamlError as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        raise MappingError(source, [f"{where}: {exc.message}"]) from None
    if not isinstance(located.data, dict):
        raise MappingError(
            source, [f"{source}:1:1: (document): a mapping file holds a mapping of keys"]
        )
    try:
        spec = ColumnMapping.model_validate(located.data)
    except ValidationError as exc:
        raise MappingError(source, _problems(exc, located.data, source, located)) from None
    problems = []
    for path, message in _check(spec):
        pos = located.position(path)
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        dotted = ".".join(str(p) for p in path)
        problems.append(f"{where}: {dotted}: {message}")
    if problems:
        raise MappingError(source, problems)
    return LoadedMapping(spec, source, located)


def load_mapping(path: str | Path) -> LoadedMapping:
    """Read a mapping file; raises MappingError (also when the file cannot be read)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(str(path), [f"{path}: cannot read the mapping file: {exc}"]) from None
    return load_mapping_text(text, str(path))
