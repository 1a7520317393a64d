"""FHIR QuestionnaireResponses: LOINC items and answers, Bundles, NDJSON, Questionnaires."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.api import load_scale, score
from ketascore.cli import cli
from ketascore.readers import ReadOptions, read_paths, read_text
from ketascore.readers.formats import load_read_options

from conftest import DATA

FORMATS = DATA / "formats"


def test_beda_phq9_and_gad7_give_the_totals_their_forms_stored(shared_data: Path) -> None:
    folder = shared_data / "fhir"
    responses = [
        folder / "beda_questionnaire_response_fhir_phq_2_phq_9.json",
        folder / "beda_questionnaire_response_fhir_gad_7.json",
    ]
    opts = load_read_options(
        questionnaire=[
            folder / "beda_questionnaire_fhir_phq_2_phq_9.json",
            folder / "beda_questionnaire_fhir_gad_7.json",
        ]
    )
    data = read_paths(responses, options=opts)
    assert data.issues == []
    phq9, gad7 = data.records
    assert (phq9.scale, gad7.scale) == ("phq9", "gad7")
    assert phq9.subject == "683e382b-fed4-433e-9b6d-a847a7953bc0"  # the Patient source
    assert (phq9.visit, phq9.date) == ("2023-04-06", "2023-04-06T02:33:05Z")
    # the forms' own totals (phq9-total-score, anxiety-score: calculated items)
    assert phq9.reported == {"total": 12} and gad7.reported == {"total": 9}
    assert phq9.items == {"1": 0, "2": 1, "3": 2, "4": 3, "5": 2, "6": 1, "7": 0, "8": 1, "9": 2}
    results = score(data.records)
    assert [r.scores for r in results] == [{"total": 12}, {"total": 9}]
    assert all(r.ok for r in results)  # the computed totals equal the stored ones
    assert results[0].bands == {"total": "moderate"} and results[1].bands == {"total": "mild"}
    # without the Questionnaires the answers are still scored; the totals are not known
    plain = read_paths(responses)
    assert [r.reported for r in plain.records] == [{}, {}]
    assert [r.scores for r in score(plain.records)] == [{"total": 12}, {"total": 9}]


def test_bundle_with_other_resources_and_an_unknown_code() -> None:
    data = read_paths([FORMATS / "fhir-bundle.json"])
    assert data.issues == []  # the Patient beside the responses is ignored
    r1, r2, r3 = score(data.records)
    assert r1.scores == {"total": 16} and r1.ok and r1.extra["fhir_id"] == "r1"
    assert r2.scores == {"total": None}
    (issue,) = [i for i in r2.issues if i.code == "unknown-answer-code"]
    assert issue.item == "3" and issue.subject == "p1" and issue.visit == "2024-02-08"
    assert issue.line is not None and issue.line > 1
    assert "answer code LA9999-9 (http://loinc.org) is not an answer code" in issue.message
    # two items missing: prorated, so the form's plain sum (14) differs
    assert r3.scores == {"total": 18} and r3.prorated == {"total": True}
    assert [i.code for i in r3.issues] == ["flag-undetermined", "reported-score-mismatch"]


def test_resource_of_another_type() -> None:
    data = read_paths([FORMATS / "fhir-patient.json"])
    (issue,) = data.issues
    assert issue.code == "unsupported-resource"
    assert "the resource is a Patient, not a QuestionnaireResponse; skipped" in issue.message
    assert data.records == []


def test_ndjson_lines() -> None:
    data = read_paths([FORMATS / "fhir-responses.ndjson"])
    assert [(r.visit, r.source.line) for r in data.records] == [
        ("2024-03-01", 1),
        ("2024-03-15", 2),
    ]
    results = score(data.records)
    assert [r.scores["total"] for r in results] == [1, 0]
    assert results[0].flags == ["suicidal_ideation"]


def test_questionnaire_ordinal_values_and_calculated_total() -> None:
    without = read_paths([FORMATS / "fhir-ordinal-response.json"])
    # linkIds q1..q9 mean nothing without the Questionnaire's item codes
    (issue,) = without.issues
    assert issue.code == "no-scale-items" and without.records == []
    opts = load_read_options(questionnaire=FORMATS / "fhir-questionnaire-ordinal.json")
    data = read_paths([FORMATS / "fhir-ordinal-response.json"], options=opts)
    (rec,) = data.records
    assert rec.items["1"] == 2 and rec.items["6"] == 3 and rec.reported == {"total": 8}
    (result,) = score(data.records)
    assert result.scores == {"total": 8} and result.ok


def test_mapping_gives_linkids_and_a_constant_visit(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nsubject: who\nvisit: {value: screening}\n"
        "items: {1: a, 2: b, 3: c, 4: d, 5: e, 6: f, 7: g, 8: h, 9: i}\n"
    )
    items = [{"linkId": "who", "answer": [{"valueString": "K-7"}]}]
    items += [{"linkId": k, "answer": [{"valueInteger": 1}]} for k in "abcdefghi"]
    resource = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": items}
    (tmp_path / "qr.json").write_text(json.dumps(resource))
    opts = load_read_options(map=tmp_path / "m.yaml")
    (rec,) = read_paths([tmp_path / "qr.json"], options=opts).records
    assert (rec.subject, rec.visit, rec.date) == ("K-7", "screening", None)
    (result,) = score([rec])
    assert result.scores == {"total": 9}


def test_response_without_subject_or_date() -> None:
    text = json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
        }
    )
    data = read_text(text, "qr.json")
    (issue,) = data.issues
    assert issue.code == "missing-field" and "has no subject; skipped" in issue.message


@pytest.mark.parametrize("reference", ["Patient/", "Patient/  ", " Patient/ "])
def test_reference_without_an_id_is_no_subject(reference: str) -> None:
    """A subject reference that names no patient (``Patient/``) is no subject: the response
    is skipped with missing-field (it was scored for the subject '')."""
    text = json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": {"reference": reference},
            "source": {"reference": "Patient/"},
            "authored": "2024-01-01",
            "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
        }
    )
    data = read_text(text, "qr.json")
    assert data.records == []
    (issue,) = data.issues
    assert issue.code == "missing-field" and "has no subject; skipped" in issue.message
    # an identifier still gives the subject when the reference names none
    with_id = json.loads(text)
    with_id["subject"]["identifier"] = {"value": "K-1"}
    (record,) = read_text(json.dumps(with_id), "qr.json").records
    assert record.subject == "K-1"


@pytest.mark.parametrize(
    ("reference", "subject"),
    [
        ("Patient/p1", "p1"),
        ("Patient/p1/_history/2", "p1"),
        ("https://ehr.example.org/fhir/Patient/p1", "p1"),
        ("https://ehr.example.org/fhir/Patient/p1/_history/7", "p1"),
        (
            "urn:uuid:0b7e5b1c-8c8e-4d6f-9f0a-3c1d2e4f5a6b",
            "urn:uuid:0b7e5b1c-8c8e-4d6f-9f0a-3c1d2e4f5a6b",
        ),
        ("Group/g1", "Group/g1"),
        ("NotAPatient/p1", "NotAPatient/p1"),
    ],
)
def test_every_way_of_referring_to_a_patient_gives_one_subject(
    reference: str, subject: str
) -> None:
    """A patient referred to by a relative, an absolute or a versioned reference is one
    subject (the versioned and absolute forms made a second subject for the same patient,
    whose visits then had no baseline); a reference to anything else is kept as written."""
    text = json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "status": "completed",
            "subject": {"reference": reference},
            "authored": "2024-01-01",
            "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
        }
    )
    (record,) = read_text(text, "qr.json").records
    assert record.subject == subject
    source_only = json.loads(text)
    source_only["subject"] = {"identifier": {"value": "K-1"}}
    source_only["source"] = {"reference": reference}
    (record,) = read_text(json.dumps(source_only), "qr.json").records
    assert record.subject == (
        subject if "Patient/" in reference and "Not" not in reference else "K-1"
    )


def test_unrelated_form_and_bad_json() -> None:
    text = json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "subject": {"reference": "Patient/1"},
            "authored": "2024-01-01",
            "item": [{"linkId": "favourite-colour", "answer": [{"valueString": "blue"}]}],
        }
    )
    (issue,) = read_text(text, "qr.json").issues
    assert issue.code == "no-scale-items" and "favourite-colour" in issue.message
    broken = read_text('{"resourceType": "QuestionnaireResponse",\n "item": [}', "qr.json")
    (issue,) = broken.issues
    assert issue.code == "parse-error" and issue.line == 2


def test_fhir_format_can_be_named() -> None:
    text = json.dumps({"resourceType": "Observation"})
    data = read_text(text, "-", "fhir", options=ReadOptions())
    assert [i.code for i in data.issues] == ["unsupported-resource"]


def test_item_asked_twice_must_agree() -> None:
    def response(second: int) -> str:
        return json.dumps(
            {
                "resourceType": "QuestionnaireResponse",
                "subject": {"reference": "Patient/1"},
                "authored": "2024-01-01",
                "item": [
                    {
                        "linkId": "phq2",
                        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 2}]}],
                    },
                    {
                        "linkId": "phq9",
                        "item": [
                            {"linkId": "44250-9", "answer": [{"valueInteger": second}]},
                            {"linkId": "44255-8"},
                        ],
                    },
                ],
            },
            indent=1,
        )

    (same,) = read_text(response(2), "qr.json").records
    assert same.items == {"1": 2}
    (differ,) = read_text(response(3), "qr.json").records
    assert differ.items["1"].code == "conflicting-records"
    assert "(2 at line" in differ.items["1"].detail


@pytest.mark.parametrize(
    "answer",
    [
        {"valueString": "1", "valueInteger": 2},
        {"valueInteger": 2, "valueCoding": {"code": "LA6568-5"}},
        {"valueDecimal": 1, "valueInteger": 1},
    ],
)
def test_answer_with_two_values_is_unusable(answer: dict[str, object]) -> None:
    """An answer holds one value[x]: with two, which is the answer is not known, so the item
    is unusable (the first in the reader's order of keys was scored, the other passed over)."""
    codes = [item.codes.loinc for item in load_scale("phq9").definition.items if item.codes]
    items = [{"linkId": code, "answer": [{"valueInteger": 1}]} for code in codes[:9]]
    items[0]["answer"] = [answer]
    text = json.dumps(
        {
            "resourceType": "QuestionnaireResponse",
            "subject": {"reference": "Patient/1"},
            "authored": "2024-01-01",
            "item": items,
        }
    )
    (record,) = read_text(text, "qr.json").records
    (result,) = score([record])
    assert result.scores == {"total": None}
    (issue,) = result.issues
    assert (issue.code, issue.item) == ("not-a-number", "1")
    keys = " and ".join(answer)
    assert f"the answer holds {keys}, but a FHIR answer holds one value[x]" in issue.message


def test_a_carried_answer_is_written_in_every_output(tmp_path: Path) -> None:
    """A linkId carried by a mapping file whose answer is a number beyond a double's range
    (valueDecimal: 1e400 reads as infinity) is carried as its text: JSON output stopped
    with an internal error (exit 3)."""
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nvisit: {value: screening}\ncarry: {weight: w}\n"
        "items: {1: a, 2: b, 3: c, 4: d, 5: e, 6: f, 7: g, 8: h, 9: i}\n"
    )
    items = [{"linkId": k, "answer": [{"valueInteger": 1}]} for k in "abcdefghi"]
    items.append({"linkId": "w", "answer": [{"valueDecimal": 7}]})
    resource = {"resourceType": "QuestionnaireResponse", "subject": {"reference": "Patient/1"}}
    text = json.dumps({**resource, "item": items}).replace(
        '"valueDecimal": 7', '"valueDecimal": 1e400'
    )
    (tmp_path / "qr.json").write_text(text)
    args = ["score", str(tmp_path / "qr.json"), "--map", str(tmp_path / "m.yaml")]
    for fmt in ("json", "jsonl", "csv"):
        result = CliRunner().invoke(cli, [*args, "--format", fmt])
        assert result.exit_code == 0, result.output
        assert "inf" in result.stdout


@pytest.mark.parametrize(
    ("authored", "shown"),
    [(20240101, "the number 20240101"), (True, "the boolean true"), (["2024"], "a list")],
)
def test_authored_that_is_no_text_names_the_resource(
    authored: Any, shown: str, tmp_path: Path
) -> None:
    """``authored`` written as a number (20240101) is no date: the response, whose visit is
    its date, is skipped with a message naming the resource and the value (it said the
    response had no authored date); with the visit from a mapping file it is scored
    without a date."""
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-7",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": authored,
        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
    }
    data = read_text(json.dumps(resource, indent=1), "qr.json")
    assert data.records == []
    (issue,) = data.issues
    assert (issue.code, issue.line, issue.subject) == ("bad-field", 8, "p1")
    assert issue.message == (
        f"qr.json:8: subject p1: QuestionnaireResponse qr-7: authored is {shown}, not a "
        "date-time text; skipped (the visit is its date); write authored as an ISO date-time "
        'text, such as "2024-01-01" or "2024-01-01T09:30:00Z"'
    )
    items = ", ".join(f"{i}: q{i}" for i in range(1, 10))
    (tmp_path / "m.yaml").write_text(
        f"scale: phq9\nvisit: {{value: screening}}\nitems: {{{items}}}\n"
    )
    resource["item"] = [{"linkId": "q1", "answer": [{"valueInteger": 1}]}]
    (tmp_path / "qr.json").write_text(json.dumps(resource))
    opts = load_read_options(map=tmp_path / "m.yaml")
    mapped = read_paths([tmp_path / "qr.json"], options=opts)
    (record,) = mapped.records
    assert (record.visit, record.date) == ("screening", None)
    (issue,) = mapped.issues
    assert f"authored is {shown}, not a date-time text; scored without a date" in issue.message
    resource["authored"] = "20240101"  # a text: the visit as written, without a date
    resource["item"] = [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}]
    (issue,) = read_text(json.dumps(resource), "qr.json").issues
    assert "QuestionnaireResponse qr-7: authored '20240101' is not an ISO date" in issue.message


def test_two_answers_to_one_item_say_what_to_do() -> None:
    """An item answered twice in one response (two codings) is unusable; its hint said to
    correct 'a fraction where only whole numbers are allowed', which has nothing to do
    with it."""
    resource = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-01-01",
        "item": [
            {
                "linkId": "44250-9",
                "answer": [{"valueInteger": 0}, {"valueInteger": 3}],
            }
        ],
    }
    (result,) = score(read_text(json.dumps(resource), "qr.json").records)
    (issue,) = [i for i in result.issues if i.code == "not-allowed-value"]
    assert issue.message.endswith(
        "phq9 item 1: 2 answers given; one is expected; keep the one answer the rater gave "
        "in the response; scores that use this item are left empty"
    )


@pytest.mark.parametrize(
    ("status", "said"),
    [
        ("in-progress", "has status in-progress: the form was not completed"),
        ("stopped", "has status stopped: the form was not completed"),
        (3, "has status 3, which is not a QuestionnaireResponse status"),
        ("complete", "has status 'complete', which is not a QuestionnaireResponse status"),
    ],
)
def test_a_response_that_is_not_final_is_scored_with_a_warning(status: Any, said: str) -> None:
    """A form left in progress or abandoned (stopped) was scored as if completed, without
    a word, though its answers may be missing or provisional."""
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-9",
        "status": status,
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-01-01",
        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
    }
    data = read_text(json.dumps(resource), "qr.json")
    assert len(data.records) == 1
    (issue,) = data.issues
    assert (issue.code, issue.severity) == ("response-status", "warning")
    assert f"QuestionnaireResponse qr-9 {said}" in issue.message
    for final in ("completed", "amended"):
        resource["status"] = final
        assert read_text(json.dumps(resource), "qr.json").issues == []


PHQ9_LINKS = [
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
]  # fmt: skip


def _phq9_response(more: list[dict[str, Any]]) -> dict[str, Any]:
    """A completed PHQ-9 response of patient p1, every item answered 1, and ``more`` items."""
    items = [{"linkId": link, "answer": [{"valueInteger": 1}]} for link in PHQ9_LINKS]
    return {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-01-01",
        "item": items + more,
    }


@pytest.mark.parametrize("answer", [True, {"valueInteger": 3}, 3, "3"])
def test_a_stored_total_whose_answer_is_no_list_is_reported(answer: Any) -> None:
    """The item holding the form's own total (44261-6) with an answer that is not a list
    of answers stopped the reader on the file (internal-error: 'bool' object is not
    iterable); it is a stored total that cannot be read, and the items are scored."""
    resource = _phq9_response([{"linkId": "44261-6", "answer": answer}])
    data = read_text(json.dumps(resource), "qr.json")
    assert data.issues == []
    (result,) = score(data.records)
    assert result.scores == {"total": 9}
    (issue,) = [i for i in result.issues if i.code == "reported-score-mismatch"]
    assert "which is not a number, so it cannot be compared" in issue.message


def test_two_records_with_an_item_twice_unusable_are_compared_not_a_crash(
    runner: CliRunner, tmp_path: Path
) -> None:
    """Found by fuzzing: an item given twice in a response, unusable both times, is an
    unusable answer whose message quotes the two; comparing two such records of one
    subject and visit (duplicate records) stopped the command with an internal error
    (exit 3: unhashable type 'dict')."""
    twice = [{"linkId": "44250-9", "answer": [[1]]}, {"linkId": "44250-9", "answer": [[2]]}]
    resource = _phq9_response(twice)
    path = tmp_path / "qr.ndjson"
    path.write_text(json.dumps(resource) + "\n" + json.dumps(resource) + "\n")
    result = runner.invoke(cli, ["score", str(path), "--format", "csv"])
    assert result.exit_code == 1, result.output
    assert "conflicting-records" in result.output or "duplicate-records" in result.output


def test_a_questionnaire_with_parts_of_the_wrong_shape_is_read_as_far_as_it_goes() -> None:
    """Found by fuzzing: a Questionnaire item whose extension, code or answerOption is a
    number (not a list) stopped the reader on the file with internal-error ('int' object
    is not iterable). Such a part is not used; the response is read, and an answer code
    it would have explained is reported."""
    from ketascore.readers.fhir import questionnaire_def

    questionnaire = {
        "resourceType": "Questionnaire",
        "url": "http://example.org/q",
        "item": [
            {"linkId": "a", "type": "choice", "extension": 3, "code": 3, "answerOption": 3},
            {
                "linkId": "b",
                "type": "choice",
                "answerOption": [{"valueCoding": {"code": "x"}, "extension": 1}],
            },
        ],
    }
    qdef = questionnaire_def(questionnaire)
    assert set(qdef.items) == {"a", "b"} and qdef.items["b"].ordinals == {}
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "http://example.org/q",
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-01-01",
        "item": [{"linkId": "44250-9", "answer": [{"valueCoding": {"code": "x"}}]}],
    }
    bundle = {
        "resourceType": "Bundle",
        "entry": [{"resource": questionnaire}, {"resource": response}],
    }
    data = read_text(json.dumps(bundle), "b.json")
    (result,) = score(data.records)
    assert "unknown-answer-code" in {i.code for i in result.issues}


@pytest.mark.parametrize(
    ("subject", "field", "shown", "line"),
    [
        ({"reference": 123}, "subject.reference", "the number 123", 6),
        ({"reference": {"id": "p1"}}, "subject.reference", "an object", 6),
        ("Patient/p1", "subject", "the text 'Patient/p1'", 5),
    ],
)
def test_a_subject_reference_that_is_no_text_names_the_resource(
    subject: Any, field: str, shown: str, line: int
) -> None:
    """A ``subject.reference`` that is no text (or a ``subject`` that is no reference) was
    passed over, and the subject silently taken from ``source``: who answered, here the
    nurse, not the patient. It is an error naming the resource; the response is skipped."""
    resource = {
        "resourceType": "QuestionnaireResponse",
        "id": "qr-9",
        "status": "completed",
        "subject": subject,
        "source": {"reference": "Patient/nurse-1"},
        "authored": "2024-01-01",
        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
    }
    data = read_text(json.dumps(resource, indent=1), "qr.json")
    assert data.records == []
    (issue,) = data.issues
    assert (issue.code, issue.severity, issue.subject, issue.line) == (
        "bad-field",
        "error",
        None,
        line,
    )
    assert issue.message == (
        f"qr.json:{line}: visit 2024-01-01: QuestionnaireResponse qr-9: {field} is {shown}, "
        "not a reference text; skipped (the subject is unknown); write subject.reference "
        'as a reference text, such as "Patient/123"'
    )
    del resource["subject"]  # no subject at all: who answered (a self-report) is the subject
    (record,) = read_text(json.dumps(resource), "qr.json").records
    assert record.subject == "nurse-1"


LOINC = "http://loinc.org"
LOINC_NOT_AT_ALL = {"system": LOINC, "code": "LA6568-5"}  # phq9: 0


@pytest.mark.parametrize(
    ("coding", "scored"),
    [
        (LOINC_NOT_AT_ALL, 0),
        ({"code": "LA6570-1"}, 2),  # no system: the code is the scale's
        ({"system": "urn:oid:2.16.840.1.113883.6.1", "code": "LA6569-3"}, 1),  # LOINC's OID
        ({"system": "http://snomed.info/sct", "code": "LA6568-5"}, None),
        ({"system": "https://example.org/local", "code": "LA6571-9"}, None),
        ({"system": 7, "code": "LA6568-5"}, "valueCoding.system holds a number"),
        ({"system": LOINC, "code": 5}, "valueCoding.code holds a number"),  # (not valueString)
    ],
)
def test_an_answer_code_of_another_system_is_not_taken_for_the_scales(
    coding: dict[str, Any], scored: int | str | None
) -> None:
    """A coding was matched by its code alone: ``LA6568-5`` in SNOMED's system, or in a
    site's own, was scored as LOINC's "Not at all" (and a system that is no text was
    passed over). A coding is its system and code: a LOINC answer code given in another
    system is an unusable answer, named."""
    resource = _phq9_response([])
    resource["item"][0] = {"linkId": PHQ9_LINKS[0], "answer": [{"valueCoding": coding}]}
    (record,) = read_text(json.dumps(resource), "qr.json").records
    (result,) = score([record])
    if isinstance(scored, int):
        assert record.items["1"] == scored and result.ok
        return
    assert result.scores == {"total": None}
    if isinstance(scored, str):
        (issue,) = [i for i in result.issues if i.code == "not-a-number"]
        assert f"{scored}, but FHIR gives it as text" in issue.message
        return
    (issue,) = [i for i in result.issues if i.code == "unknown-answer-code"]
    assert issue.item == "1"
    assert (
        f"answer code {coding['code']} is given in the code system {coding['system']}, not "
        "http://loinc.org (LOINC), whose code the scale knows: a code means what its system "
        "says, so it is not taken for this item's answer; correct the coding's system, or "
        "give the Questionnaire that declares the code with --questionnaire"
    ) in issue.message


def test_a_questionnaire_code_of_another_system_is_not_taken_for_its_ordinal() -> None:
    """The Questionnaire's answer options are codes of a system too: an answer with the
    same code in another system is not given the option's ordinal value."""
    opts = load_read_options(questionnaire=FORMATS / "fhir-questionnaire-ordinal.json")
    resource = json.loads((FORMATS / "fhir-ordinal-response.json").read_text())
    first = resource["item"][0]["item"][0]
    assert first["linkId"] == "q1"
    coding = first["answer"][0]["valueCoding"]
    assert coding["system"] == "https://example.org/answers"
    coding["system"] = "https://example.org/other-answers"
    data = read_text(json.dumps(resource), "qr.json", options=opts)
    (result,) = score(data.records)
    (issue,) = [i for i in result.issues if i.code == "unknown-answer-code"]
    assert (
        f"answer code {coding['code']} is given in the code system "
        "https://example.org/other-answers, not https://example.org/answers, the system of "
        "the Questionnaire's answer" in issue.message
    )
