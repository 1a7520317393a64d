"""The scale definition language, as pydantic models.

These models check the *shape* of a scale file (types, required keys, no unknown keys).
Rules that relate parts of a scale to each other (a score refers to a known item, bands cover
the score's range, ...) are checked in ``ketascore.core.scale``, which reports all of them at once.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictFloat, StrictInt

Number = StrictInt | StrictFloat


def _id_from_scalar(value: Any) -> Any:
    # YAML reads `id: 1` as an integer; item ids are always text.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[
    str,
    BeforeValidator(_id_from_scalar),
    Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$", max_length=64),
]
ScaleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$", max_length=40)]


def _text_from_scalar(value: Any) -> Any:
    # `version: 1.0` is a number to YAML; a version is text.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_text_from_scalar)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Citation(Model):
    key: str = Field(description="short key other parts of the file refer to, e.g. kroenke2001")
    text: str = Field(description="full reference")
    doi: str | None = None
    url: str | None = None
    supports: list[str] = Field(default_factory=list, description="which rules this source gives")


LicenceStatus = Literal[
    "public-domain",
    "free",
    "free-with-permission",
    "copyrighted",
    "proprietary",
    "unknown",
]


class Licence(Model):
    status: LicenceStatus
    holder: str | None = None
    note: str | None = None


class Codes(Model):
    """Standard codes of a scale, item, score or answer."""

    loinc: str | None = None
    cdisc: str | None = Field(default=None, description="CDISC test code (QSTESTCD / RSTESTCD)")
    cdisc_category: str | None = Field(default=None, description="CDISC QSCAT / RSCAT")
    cdisc_domain: Literal["QS", "RS"] | None = None


class Answer(Model):
    value: Number
    label: str
    code: str | None = Field(default=None, description="e.g. a LOINC answer code (LA...)")


class MissingCode(Model):
    """A code that means "no answer" (not assessed, refused): missing, never a score."""

    value: Number | None = None
    label: str | None = None
    code: str | None = None


class Item(Model):
    id: Id
    label: str = Field(max_length=80, description="short label, never the copyrighted wording")
    range: tuple[Number, Number] | None = Field(
        default=None, description="whole numbers from min to max"
    )
    values: list[Number] | None = Field(default=None, description="explicit allowed values")
    step: Number | None = Field(
        default=None,
        gt=0,
        description="with range: the values from min to max in this step (0.5: half points)",
    )
    answers: list[Answer] | str | None = Field(
        default=None, description="answer labels, or the name of an entry of answer_sets"
    )
    missing_codes: list[MissingCode] = Field(default_factory=list)
    scored: bool = True
    codes: Codes | None = None
    note: str | None = None


class Alternative(Model):
    """Items of which exactly one is rated (HAM-D item 16A by history or 16B by measurement)."""

    id: Id
    label: str
    items: list[Id] = Field(min_length=2)


class Term(Model):
    """One component of a score, with optional transforms applied in the order
    recode, reverse, weight."""

    item: Id | None = None
    score: Id | None = None
    recode: dict[str, Number] | None = Field(
        default=None, description="map from the item's value to a new value"
    )
    reverse: bool = False
    weight: Number = 1


Method = Literal["sum", "mean", "max", "min"]


class Rounding(Model):
    method: Literal["none", "half_up", "half_even", "floor", "ceil"] = "none"
    decimals: StrictInt = Field(default=0, ge=0, le=6)


class MissingRule(Model):
    min_answered: StrictInt | None = Field(default=None, ge=1)
    max_missing: StrictInt | None = Field(default=None, ge=0)
    method: Literal["none", "prorate_mean", "prorate_max"] = "none"
    rounding: Rounding = Field(default_factory=Rounding)
    source: str | None = Field(default=None, description="citation key of the rule")


class Band(Model):
    label: str
    min: Number
    max: Number


class Response(Model):
    reduction_percent: Number = Field(default=50, gt=0, le=100)
    source: str | None = None


class Remission(Model):
    at_most: Number | None = None
    below: Number | None = None
    source: str | None = None


class Reliability(Model):
    """The reliability coefficient a reliable change index needs (Jacobson & Truax 1991)."""

    coefficient: float = Field(gt=0, lt=1, description="r_xx")
    kind: Literal["internal-consistency", "test-retest", "inter-rater"]
    sd: Number | None = Field(
        default=None,
        gt=0,
        description="standard deviation for the standard error of measurement "
        "(SE = sd x sqrt(1 - r)); without it, the baseline SD of the data analysed",
    )
    population: str | None = Field(default=None, description="where the coefficient comes from")
    better: Literal["lower", "higher"] = "lower"
    source: str | None = None
    note: str | None = None


class Norm(Model):
    mean: Number
    sd: Number = Field(gt=0)
    n: StrictInt | None = Field(default=None, ge=1)
    population: str | None = None
    source: str | None = None


class Norms(Model):
    """Normative values for clinically significant change (Jacobson & Truax 1991): a
    functional (general population) and a clinical distribution; the cut-off between them
    is criterion c, or criterion b (functional only) or a (clinical only)."""

    functional: Norm | None = None
    clinical: Norm | None = None
    note: str | None = None


class Score(Model):
    id: Id
    label: str
    method: Method = "sum"
    of: list[Id | Term] = Field(min_length=1)
    missing: MissingRule | None = None
    range: tuple[Number, Number] | None = Field(
        default=None, description="declared range; must equal the one computed from the items"
    )
    bands: list[Band] = Field(default_factory=list)
    bands_source: str | None = None
    response: Response | None = None
    remission: Remission | None = None
    applies_when: Condition | None = Field(
        default=None,
        description="the score exists only when this holds (C-SSRS intensity needs ideation)",
    )
    codes: Codes | None = None
    note: str | None = None
    reliability: Reliability | None = None
    norms: Norms | None = None


class Condition(Model):
    item: Id | None = None
    score: Id | None = None
    at_least: Number | None = None
    at_most: Number | None = None
    above: Number | None = None
    below: Number | None = None
    equals: Number | None = None
    # combined and derived conditions (the skip logic and rating checks of a scale)
    all: list[Condition] | None = Field(default=None, description="every condition holds")
    any: list[Condition] | None = Field(default=None, description="some condition holds")
    difference: list[Id] | None = Field(
        default=None, description="two items: the first minus the second"
    )
    spread: list[Id] | None = Field(
        default=None, description="items: the highest minus the lowest (0: all the same)"
    )
    change_from: Literal["previous", "first_of_day"] | None = Field(
        default=None,
        description="with score: the change from the subject's previous rating, or from "
        "their first rating of the same day (a pre-dose rating)",
    )


class Flag(Model):
    id: Id
    label: str
    when: Condition
    source: str | None = None


class Classification(Model):
    id: Id
    label: str
    when: Condition
    at_baseline: bool = Field(default=True, description="taken from the baseline visit")
    source: str | None = None


class Expect(Model):
    scores: dict[str, Number | None] = Field(default_factory=dict)
    bands: dict[str, str | None] = Field(default_factory=dict)
    items_answered: dict[str, StrictInt] = Field(default_factory=dict)
    prorated: dict[str, bool] = Field(default_factory=dict)
    flags: list[str] | None = None
    classifications: dict[str, bool | None] = Field(default_factory=dict)
    issues: list[str] | None = Field(default=None, description="expected issue codes")


class Example(Model):
    description: str
    source: str | None = None
    answers: dict[str, Any]
    before: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the answers of the subject's earlier ratings of the same day, oldest "
        "first (for flags and checks that compare with an earlier rating)",
    )
    expect: Expect


class ScaleDefinition(Model):
    id: ScaleId
    name: str
    short_name: str | None = None
    version: Text
    description: str | None = None
    rater: Literal["clinician", "self", "observer", "clinician-or-self"]
    recall_period: str | None = None
    licence: Licence
    citations: list[Citation] = Field(min_length=1)
    codes: Codes | None = None
    answer_sets: dict[str, list[Answer]] = Field(default_factory=dict)
    items: list[Item] = Field(min_length=1)
    alternatives: list[Alternative] = Field(default_factory=list)
    scores: list[Score] = Field(min_length=1)
    flags: list[Flag] = Field(default_factory=list)
    classifications: list[Classification] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)
    # skip logic and rating checks (see the block below)
    skips: list[Skip] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)


# --------------------------------------------------------------------------------------
# Skip logic and rating checks


class Skip(Model):
    """Items a form does not ask when a condition holds (C-SSRS: no to question 2, so
    questions 3-5 are skipped). A not-asked item left blank counts as ``counts_as`` (or stays
    unanswered when it is not given); an answer other than that contradicts the skip."""

    id: Id
    label: str
    when: Condition
    items: list[Id] = Field(min_length=1)
    counts_as: Number | None = None
    source: str | None = None


class Check(Model):
    """A rating-consistency check: when the condition holds, the record gets a warning
    naming the check (implausible item pairs, identical ratings, large swings between
    visits). The id is the check's code."""

    id: Id
    label: str
    when: Condition
    source: str | None = None
