"""FHIR output: one Observation per score, in a Bundle (type ``collection``).

- ``code`` is the score's LOINC code when the scale declares one (``Score.codes.loinc``: PHQ-9
  total 44261-6), otherwise a local code ``<scale>/<score>`` in the system
  ``urn:ketascore:score``; its text is the scale's short name and the score's label.
- ``subject`` is ``Patient/<subject>`` when the subject is a valid FHIR id, otherwise an
  identifier with the subject as its value.
- ``effectiveDateTime`` is the record's date (omitted when there is none); the value is a
  ``valueQuantity`` in the UCUM unit ``{score}``; ``interpretation`` holds the band as text;
  a ``note`` says how many items were answered and whether the score was prorated;
  ``derivedFrom`` cites the QuestionnaireResponse the answers came from, when known.
- An empty score (too few items, an unusable answer, not applicable) gives no Observation;
  its issues are in the score output.
- Resource ids are UUIDs derived from subject, visit, scale, score and date, so the same
  results give the same bytes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ketascore.core.records import ScoreResult
from ketascore.core.scale import Scale
from ketascore.writers.jsontext import indented
from ketascore.writers.tabular import atomic_writer

LOINC = "http://loinc.org"
LOCAL = "urn:ketascore:score"
UCUM = "http://unitsofmeasure.org"
CATEGORY = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "survey",
            "display": "Survey",
        }
    ]
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:ketascore:observation")


def _subject(subject: str) -> dict[str, Any]:
    if "/" in subject and _FHIR_ID.match(subject.split("/", 1)[1]):
        return {"reference": subject}
    if _FHIR_ID.match(subject):
        return {"reference": f"Patient/{subject}"}
    return {"identifier": {"value": subject}}


def observation(result: ScoreResult, scale: Scale, score_id: str) -> dict[str, Any] | None:
    """The Observation of one score of one result, or None if the score is empty."""
    value = result.scores.get(score_id)
    if value is None:
        return None
    score = next(s for s in scale.definition.scores if s.id == score_id)
    text = f"{scale.definition.short_name or scale.definition.name} {score.label}"
    loinc = score.codes.loinc if score.codes is not None else None
    coding = (
        {"system": LOINC, "code": loinc, "display": text}
        if loinc
        else {"system": LOCAL, "code": f"{scale.id}/{score_id}", "display": text}
    )
    key = "|".join([result.subject, result.visit, scale.id, score_id, result.date or ""])
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(uuid.uuid5(_NAMESPACE, key)),
        "status": "final",
        "category": [CATEGORY],
        "code": {"coding": [coding], "text": text},
        "subject": _subject(result.subject),
    }
    if result.date:
        obs["effectiveDateTime"] = result.date
    obs["valueQuantity"] = {"value": value, "unit": "{score}", "system": UCUM, "code": "{score}"}
    band = result.bands.get(score_id)
    if band:
        obs["interpretation"] = [{"text": band}]
    answered = result.items_answered.get(score_id)
    prorated = result.prorated.get(score_id)
    note = f"visit {result.visit}; {answered} item(s) answered"
    note += "; prorated for missing items" if prorated else "; not prorated"
    note += f"; {scale.id} version {scale.version}"
    obs["note"] = [{"text": note}]
    response = result.extra.get("fhir_id")
    if isinstance(response, str) and _FHIR_ID.match(response):
        obs["derivedFrom"] = [{"reference": f"QuestionnaireResponse/{response}"}]
    return obs


def observations_bundle(
    results: Sequence[ScoreResult], scales: Iterable[Scale] = ()
) -> dict[str, Any]:
    """A Bundle with one Observation per non-empty score, in the order of the results."""
    from ketascore.core.library import ScaleSet

    known = ScaleSet(list(scales))
    entries = []
    for result in results:
        scale = known.get(result.scale) if result.scale else None
        if scale is None:
            continue
        for score_id in scale.score_ids:
            obs = observation(result, scale, score_id)
            if obs is not None:
                entries.append({"fullUrl": f"urn:uuid:{obs['id']}", "resource": obs})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def fhir_json(results: Sequence[ScoreResult], scales: Iterable[Scale] = ()) -> str:
    bundle = observations_bundle(results, scales)
    return indented(bundle) + "\n"


def write_fhir(
    path: str | Path, results: Sequence[ScoreResult], scales: Iterable[Scale] = ()
) -> None:
    """Write the Bundle atomically."""
    text = fhir_json(results, scales)
    with atomic_writer(path) as fh:
        fh.write(text)
