"""Class 1 of issue #16: ambiguity is never resolved silently.

A key repeated inside one record, two sources of one answer that disagree, several
baseline candidates, a --by field that changes, a form that carries several scales, a
malformed answer, and numbers that a format's implicit typing would read otherwise than
the value grammar: each gives an issue (or every scale), never a silent choice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.readers import read_paths, read_text

PHQ9_ITEMS = ",".join(f"phq9_{i}" for i in range(1, 10))
PHQ9_LOINC = [
    "44250-9",
    "44255-8",
    "44259-0",
    "44254-1",
    "44251-7",
    "44258-2",
    "44252-5",
    "44253-3",
    "44260-8",
]
GAD7_LOINC = ["69725-0", "68509-9", "69733-4", "69734-2", "69735-9", "69689-8", "69736-7"]
LABELS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]


def score_json(runner: CliRunner, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(cli, ["score", *args, "--format", "json", "--quiet"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def all_issues(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [*doc["issues"], *(i for r in doc["results"] for i in r["issues"])]


# ---- a key repeated inside one record -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.json", '{"subject": "S1", "visit": "v", "scale": "phq9", "items": {"1": 1, "1": 3}}'),
        ("a.json", '{"subject": "S1", "subject": "S2", "visit": "v", "items": {"1": 1}}'),
        ("a.jsonl", '{"subject": "S1", "visit": "v", "scale": "phq9", "items": {"2": 0, "2": 3}}'),
        ("a.yaml", "subject: S1\nvisit: v\nscale: phq9\nitems: {1: 1, 1: 3}\n"),
        ("a.yaml", "subject: S1\nvisit: v\nscale: phq9\nitems: {1: 1, '1': 3}\n"),
    ],
)
def test_a_repeated_key_is_refused(name: str, text: str) -> None:
    result = read_text(text, name)
    assert result.records == []
    assert [i.code for i in result.issues] == ["parse-error"]
    assert "duplicate key" in result.issues[0].message


def test_a_repeated_key_in_a_large_json_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files beyond the size read with line numbers go to Python's JSON reader, which would
    keep the last value silently."""
    from ketascore.readers import documents

    monkeypatch.setattr(documents, "POSITION_LIMIT", 10)
    text = '[{"subject": "S1", "visit": "v", "scale": "phq9", "items": {"1": 1, "1": 3}}]'
    result = read_text(text, "big.json")
    assert result.records == [] and [i.code for i in result.issues] == ["parse-error"]
    assert "duplicate key '1'" in result.issues[0].message


def test_a_repeated_key_in_fhir_is_refused() -> None:
    text = json.dumps(_response([{"linkId": PHQ9_LOINC[0], "answer": [{"valueInteger": 1}]}]))
    text = text.replace('"status": "completed"', '"status": "completed", "status": "amended"')
    result = read_text(text, "r.json")
    assert result.records == [] and [i.code for i in result.issues] == ["parse-error"]
    ndjson = text + "\n" + text + "\n"
    assert [i.line for i in read_text(ndjson, "r.ndjson").issues] == [1]


def test_a_repeated_key_in_a_questionnaire_or_mapping_is_a_usage_error(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "r.json"
    data.write_text(json.dumps(_response([])))
    questionnaire = tmp_path / "q.json"
    questionnaire.write_text('{"resourceType": "Questionnaire", "id": "a", "id": "b"}')
    result = runner.invoke(cli, ["score", str(data), "--questionnaire", str(questionnaire)])
    assert result.exit_code == 2 and "duplicate key" in result.stderr
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "scale: phq9\nsubject: ID\nsubject: SEQN\nvisit: {value: v}\nitems: {1: A}\n"
    )
    result = runner.invoke(cli, ["score", str(data), "--map", str(mapping)])
    assert result.exit_code == 2 and "duplicate key 'subject'" in result.stderr


def test_a_redcap_dictionary_that_lists_a_field_or_code_twice_is_refused(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "export.csv"
    data.write_text(f"record_id,redcap_event_name,{PHQ9_ITEMS}\n1,e,1,1,1,1,1,1,1,1,1\n")
    for rows in (
        'phq9_1,phq9,,radio,"I1","0, Not at all | 1, Several days"\n'
        'phq9_1,phq9,,radio,"I1","0, Not at all | 1, Several days"\n',
        'phq9_1,phq9,,radio,"I1","0, Not at all | 0, Several days"\n',
    ):
        dictionary = tmp_path / "dict.csv"
        dictionary.write_text(_DICT_HEADER + 'record_id,e,,text,"Record ID",\n' + rows)
        result = runner.invoke(cli, ["score", str(data), "--redcap-dictionary", str(dictionary)])
        assert result.exit_code == 2 and "twice" in result.stderr, result.output


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("a.yaml", "subject: S1\nvisit: v\nscale: hamd17\nitems: {16a: 1, 16A: 2}\n"),
        (
            "a.json",
            '{"subject": "S1", "visit": "v", "scale": "hamd17", "items": {"16a": 1, "16A": 2}}',
        ),
        ("a.csv", "subject,visit,scale,item,value\nS1,v,hamd17,16a,1\nS1,v,hamd17,16A,2\n"),
    ],
)
def test_an_item_named_twice_by_case_with_different_answers_is_unusable(
    name: str, text: str
) -> None:
    from ketascore import api

    (record,) = read_text(text, name).records
    (result,) = api.score([record], scale=api.load_scale("hamd17"))
    codes = [i.code for i in result.issues]
    assert "conflicting-records" in codes
    assert result.items["16a"] is None and result.scores["total"] is None


def test_an_item_named_twice_by_case_with_the_same_answer_is_kept_once() -> None:
    (record,) = read_text("subject: S\nvisit: v\nitems: {16a: 1, 16A: 1}\n", "a.yaml").records
    assert record.items == {"16a": 1}


# ---- two sources of truth for one answer ----------------------------------------------


def _sdtm(rows: list[tuple[str, str, str]], stresc: bool = False) -> str:
    """PHQ-9 items 1..9 for subject P1 at WEEK 1: (QSORRES, QSSTRESN, QSSTRESC) per item."""
    head = "STUDYID,USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN" + (",QSSTRESC" if stresc else "")
    lines = [head + ",VISIT"]
    for i, (orres, stresn, stresc_value) in enumerate(rows, start=1):
        extra = f",{stresc_value}" if stresc else ""
        lines.append(f"ST,P1,PHQ010{i},PHQ-9,{orres},{stresn}{extra},WEEK 1")
    return "\n".join(lines) + "\n"


def test_sdtm_standard_results_coded_otherwise_are_scored_by_the_label(
    runner: CliRunner, tmp_path: Path
) -> None:
    """QSSTRESN coded 1-4 where the scale codes 0-3: the label's meaning is certain, so the
    answer is its value on the scale, never the code; a warning names the recoding."""
    answers = [1, 2, 0, 3, 1, 1, 0, 2, 1]
    path = tmp_path / "qs.csv"
    path.write_text(_sdtm([(LABELS[a], str(a + 1), "") for a in answers]))
    code, doc = score_json(runner, str(path))
    assert code == 0
    assert doc["results"][0]["scores"]["total"] == sum(answers)  # 11, not 20
    assert {i["code"] for i in all_issues(doc)} == {"coding-differs"}


def test_sdtm_results_that_agree_by_meaning_give_no_issue(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "qs.csv"
    path.write_text(_sdtm([(LABELS[1].upper(), "1", "1")] * 9, stresc=True))
    code, doc = score_json(runner, str(path))
    assert code == 0 and all_issues(doc) == [] and doc["results"][0]["scores"]["total"] == 9


@pytest.mark.parametrize(
    ("orres", "stresn", "stresc"),
    [("2", "1", "1"), ("Several days", "1", "2"), ("1", "1", "3")],
)
def test_sdtm_results_that_disagree_otherwise_leave_the_item_unscored(
    runner: CliRunner, tmp_path: Path, orres: str, stresn: str, stresc: str
) -> None:
    rows = [("1", "1", "1")] * 8 + [(orres, stresn, stresc)]
    path = tmp_path / "qs.csv"
    path.write_text(_sdtm(rows, stresc=True))
    code, doc = score_json(runner, str(path))
    assert code == 1
    (result,) = doc["results"]
    assert result["scores"]["total"] is None
    assert [i["code"] for i in result["issues"]] == ["coding-conflict"]
    assert result["issues"][0]["item"] == "9"


def test_sdtm_original_result_in_the_sponsors_own_words_keeps_the_standard_result(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "qs.csv"
    path.write_text(_sdtm([("Sometimes (2-6 days)", "1", "")] * 9))
    code, doc = score_json(runner, str(path))
    assert code == 0 and doc["results"][0]["scores"]["total"] == 9


_DICT_HEADER = (
    '"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    '"Choices, Calculations, OR Slider Labels"\n'
)


def _redcap(tmp_path: Path, choices: list[str], data_rows: list[list[str]]) -> list[str]:
    dictionary = tmp_path / "dict.csv"
    rows = 'record_id,enrolment,,text,"Record ID",\n'
    for i in range(1, 10):
        text = " | ".join(choices)
        rows += f'phq9_{i},phq9,,radio,"Item {i}","{text}"\n'
    dictionary.write_text(_DICT_HEADER + rows)
    data = tmp_path / "export.csv"
    body = "".join(f"{n},baseline_arm_1,{','.join(r)},2\n" for n, r in enumerate(data_rows, 1))
    data.write_text(f"record_id,redcap_event_name,{PHQ9_ITEMS},phq9_complete\n" + body)
    return [str(data), "--redcap-dictionary", str(dictionary)]


@pytest.mark.parametrize("labels_export", [False, True])
def test_redcap_codes_that_differ_from_the_scale_are_scored_by_meaning(
    runner: CliRunner, tmp_path: Path, labels_export: bool
) -> None:
    choices = [f"{k + 1}, {label}" for k, label in enumerate(LABELS)]  # 1-4, scale 0-3
    answers = [2, 2, 1, 4, 3, 1, 1, 2, 1]  # REDCap codes
    cells = [LABELS[a - 1] if labels_export else str(a) for a in answers]
    code, doc = score_json(runner, *_redcap(tmp_path, choices, [cells]))
    assert code == 0
    assert doc["results"][0]["scores"]["total"] == sum(a - 1 for a in answers)  # 8, not 17
    assert [i["code"] for i in doc["issues"]] == ["coding-differs"] * 9


def test_redcap_choice_whose_meaning_is_uncertain_is_not_scored(
    runner: CliRunner, tmp_path: Path
) -> None:
    choices = ["1, Not at all", "2, Several days", "3, Often", "4, Nearly every day"]
    code, doc = score_json(runner, *_redcap(tmp_path, choices, [["1"] * 8 + ["3"], ["2"] * 9]))
    assert code == 1
    first, second = doc["results"]
    assert first["scores"]["total"] is None
    assert [i["code"] for i in first["issues"]] == ["coding-conflict"]
    assert second["scores"]["total"] == 9 and second["issues"] == []


def test_redcap_dictionary_with_the_scales_coding_changes_nothing(
    runner: CliRunner, tmp_path: Path
) -> None:
    choices = [f"{k}, {label}" for k, label in enumerate(LABELS)]
    code, doc = score_json(runner, *_redcap(tmp_path, choices, [["2"] * 9]))
    assert code == 0 and doc["issues"] == [] and doc["results"][0]["scores"]["total"] == 18


# ---- several baseline candidates, and a --by field that changes ----------------------

MADRS = ",".join(f"madrs_{i}" for i in range(1, 11))


def _change(runner: CliRunner, path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(
        cli, ["change", str(path), "--scale", "madrs", *args, "--format", "json"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def _madrs_rows(rows: list[tuple[str, str, int | str, str, int]]) -> str:
    lines = [f"subject,visit,day,arm,{MADRS}"]
    # each total is 10 x x, and no rating has ten identical items (a rating check)
    lines += [
        f"{s},{v},{d},{a}," + ",".join(map(str, [x + 1, x - 1, *[x] * 8])) for s, v, d, a, x in rows
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("visits", "args", "variant"),
    [
        (("baseline", "Baseline"), [], "spelling"),
        (("baseline", " BASE LINE "), [], "spelling"),
        (("Week 0", "week0"), ["--baseline", "week 0"], "spelling"),
        (("screening", "infusion"), [], "tie-day"),
    ],
)
def test_several_baseline_candidates_are_an_issue_not_a_choice(
    runner: CliRunner, tmp_path: Path, visits: tuple[str, str], args: list[str], variant: str
) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        _madrs_rows(
            [("S1", visits[0], 0, "A", 3), ("S1", visits[1], 0, "A", 2), ("S1", "day1", 1, "A", 1)]
        )
    )
    code, doc = _change(runner, path, *args)
    assert code == 1
    assert doc["rows"] == []  # no change computed from a guessed baseline
    ambiguous = [i for i in doc["issues"] if i["code"] == "ambiguous-baseline"]
    assert len(ambiguous) == 1 and ambiguous[0]["subject"] == "S1"
    assert visits[0] in ambiguous[0]["message"] and visits[1].strip() in ambiguous[0]["message"]


def test_the_same_earliest_date_is_an_issue(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        f"subject,visit,date,{MADRS}\nS1,a,2024-01-01,4,2,{','.join(['3'] * 8)}\n"
        f"S1,b,2024-01-01,3,1,{','.join(['2'] * 8)}\nS1,c,2024-01-05,2,0,{','.join(['1'] * 8)}\n"
    )
    code, doc = _change(runner, path)
    assert code == 1 and doc["rows"] == []
    assert [i["code"] for i in doc["issues"]] == ["ambiguous-baseline"]


def test_two_records_flagged_as_baseline_are_an_issue(runner: CliRunner, tmp_path: Path) -> None:
    lines = ["STUDYID,USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN,QSBLFL,VISITNUM,VISIT"]
    for visit, num, flag in (("SCREENING", 0, "Y"), ("WEEK 0", 1, "Y"), ("WEEK 2", 2, "")):
        lines += [f"S,P1,PHQ010{i},PHQ-9,,{num},{flag},{num},{visit}" for i in range(1, 10)]
    path = tmp_path / "qs.csv"
    path.write_text("\n".join(lines) + "\n")
    result = runner.invoke(cli, ["change", str(path), "--scale", "phq9", "--format", "json"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["rows"] == []
    assert [i["code"] for i in doc["issues"]] == ["ambiguous-baseline"]
    assert "SCREENING, WEEK 0" in doc["issues"][0]["message"]


def test_visit_names_that_differ_only_by_case_or_spacing_are_named(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        _madrs_rows(
            [
                ("S1", "baseline", 0, "A", 3),
                ("S1", "Day 1", 1, "A", 1),
                ("S2", "baseline", 0, "A", 3),
                ("S2", "day1", 1, "A", 2),
            ]
        )
    )
    code, doc = _change(runner, path)
    assert code == 0  # a warning: every subject's change is computed
    assert [i["code"] for i in doc["issues"]] == ["visit-spelling"]
    assert len(doc["rows"]) == 2


def test_a_by_field_that_changes_across_visits_is_an_issue(
    runner: CliRunner, tmp_path: Path
) -> None:
    path = tmp_path / "v.csv"
    path.write_text(
        _madrs_rows(
            [
                ("S1", "baseline", 0, "ketamine", 3),
                ("S1", "day1", 1, "midazolam", 1),
                ("S2", "baseline", 0, "ketamine", 3),
                ("S2", "day1", 1, "", 2),
            ]
        )
    )
    code, doc = _change(runner, path, "--by", "arm")
    assert code == 1
    assert [(i["code"], i["subject"]) for i in doc["issues"]] == [("ambiguous-group", "S1")]
    groups = {row["subject"]: row["group"] for row in doc["rows"]}
    assert groups == {"S1": None, "S2": "ketamine"}  # a blank value is no other value
    assert {(s["group"], s["n_change"]) for s in doc["summary"] if not s["is_baseline"]} == {
        (None, 1),
        ("ketamine", 1),
    }


# ---- a form that carries several scales -----------------------------------------------


def _response(items: list[dict[str, Any]], rid: str = "r1") -> dict[str, Any]:
    return {
        "resourceType": "QuestionnaireResponse",
        "id": rid,
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "authored": "2024-03-01T10:00:00Z",
        "item": items,
    }


def test_a_fhir_form_of_phq9_and_gad7_yields_both(runner: CliRunner, tmp_path: Path) -> None:
    items = [
        {
            "linkId": "intro",
            "item": [
                *({"linkId": c, "answer": [{"valueInteger": 2}]} for c in PHQ9_LOINC),
                *(
                    {
                        "linkId": c,
                        "answer": [
                            {"valueCoding": {"system": "http://loinc.org", "code": "LA6569-3"}}
                        ],
                    }
                    for c in GAD7_LOINC
                ),
            ],
        }
    ]
    path = tmp_path / "both.json"
    path.write_text(json.dumps(_response(items)))
    code, doc = score_json(runner, str(path))
    assert code == 0
    assert {r["scale"]: r["scores"]["total"] for r in doc["results"]} == {"phq9": 18, "gad7": 7}
    code, doc = score_json(runner, str(path), "--scale", "gad7")
    assert [r["scale"] for r in doc["results"]] == ["gad7"]


def test_real_phq9_and_gad7_responses_merged_into_one_form(
    runner: CliRunner, tmp_path: Path, shared_data: Path
) -> None:
    """The beda-software responses (shared data) joined into one form give the totals each
    form stored on its own (PHQ-9 and GAD-7)."""
    phq = json.loads(
        (shared_data / "fhir" / "beda_questionnaire_response_fhir_phq_2_phq_9.json").read_text()
    )
    gad = json.loads(
        (shared_data / "fhir" / "beda_questionnaire_response_fhir_gad_7.json").read_text()
    )
    alone = {}
    for name, doc in (("phq", phq), ("gad", gad)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        (result,) = score_json(runner, str(path))[1]["results"]
        alone[result["scale"]] = result["scores"]["total"]
    phq["item"] = phq["item"] + gad["item"]
    path = tmp_path / "both.json"
    path.write_text(json.dumps(phq))
    _, doc = score_json(runner, str(path))
    assert {r["scale"]: r["scores"]["total"] for r in doc["results"]} == alone


# ---- a malformed answer is an error, never "not answered" ----------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"valueInteger": 2},  # not a list
        [2],  # not a mapping
        ["LA6569-3"],
        [{"valueInteger": "2"}],  # the wrong JSON type
        [{"valueInteger": True}],
        [{"valueInteger": 1.5}],
        [{"valueDecimal": "1"}],
        [{"valueString": 1}],
        [{"valueCoding": "LA6569-3"}],
        [{"valueCoding": {"system": "http://loinc.org", "code": 3}}],
        [{"valueCoding": {"system": "http://loinc.org"}}],
        [{"valueQuantity": {"unit": "score"}}],
        [{"valueQuantity": {"value": "2"}}],
        [{}],
    ],
)
def test_a_malformed_fhir_answer_is_an_error(answer: Any) -> None:
    from ketascore import api

    items = [{"linkId": c, "answer": [{"valueInteger": 1}]} for c in PHQ9_LOINC]
    items[0]["answer"] = answer
    (record,) = read_text(json.dumps(_response(items)), "r.json").records
    (result,) = api.score([record])
    assert result.scores["total"] is None
    first_error = next(i for i in result.issues if i.severity == "error")
    assert first_error.item == "1"


@pytest.mark.parametrize(
    "items",
    [{"linkId": PHQ9_LOINC[0]}, ["44250-9"], [{"linkId": "g", "item": {"linkId": PHQ9_LOINC[0]}}]],
)
def test_a_response_of_an_unknown_shape_is_an_error(items: Any) -> None:
    result = read_text(json.dumps(_response(items)), "r.json")
    assert result.records == []
    assert [(i.code, i.severity) for i in result.issues] == [("bad-record", "error")]


def test_a_non_resource_among_resources_is_reported() -> None:
    doc = [_response([{"linkId": c, "answer": [{"valueInteger": 1}]} for c in PHQ9_LOINC]), 7]
    result = read_text(json.dumps(doc), "r.json")
    assert len(result.records) == 1
    assert [i.code for i in result.issues] == ["unsupported-resource"]


# ---- a number is what the value grammar says, in every reader --------------------------


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("010", "out-of-range"),  # 10, not YAML 1.1's octal 8
        ("0x1", "not-a-number"),
        ("0o1", "not-a-number"),
        ("1_0", "not-a-number"),
        ("1:30", "not-a-number"),  # not YAML 1.1's sexagesimal 90
        (".inf", "unknown-label"),
        (".NaN", "unknown-label"),
        ("1.0e+0", "not-a-number"),  # YAML 1.1 reads 1.0
        ("+1", None),
        ("01", None),
        ("1.", None),
        ('"1"', None),
    ],
)
def test_yaml_numbers_follow_the_value_grammar(written: str, code: str | None) -> None:
    from ketascore import api

    text = f"subject: S\nvisit: v\nscale: phq9\nitems: {{1: {written}, 2: 1}}\n"
    (record,) = read_text(text, "a.yaml").records
    (result,) = api.score([record])
    found = [i.code for i in result.issues if i.item == "1"]
    assert found == ([code] if code else []), (written, found)


def test_yaml_keys_are_the_text_written() -> None:
    text = "subject: S\nvisit: v\nday: 010\nitems: {010: 1, 0x1: 2, 3: 1}\n"
    (record,) = read_text(text, "a.yaml").records
    assert record.day == 10
    assert list(record.items) == ["010", "0x1", "3"]


def test_a_json_file_holds_json_numbers_only() -> None:
    """YAML would read these (010 as octal 8); as JSON they are errors."""
    for value in ("010", "0x1", "'1'", ".5", "1_0", "+1"):
        text = f'{{"subject": "S", "visit": "v", "scale": "phq9", "items": {{"1": {value}}}}}'
        result = read_text(text, "a.json")
        assert result.records == [] and [i.code for i in result.issues] == ["parse-error"], value


def test_json_constants_and_huge_integers_stay_text_for_the_grammar() -> None:
    from ketascore import api

    big = "9" * 5000
    for name, text in (
        ("a.json", '{"subject": "S", "visit": "v", "scale": "phq9", "items": {"1": NaN, "2": %s}}'),
        (
            "a.jsonl",
            '{"subject": "S", "visit": "v", "scale": "phq9", "items": {"1": NaN, "2": %s}}',
        ),
        ("a.yaml", "subject: S\nvisit: v\nscale: phq9\nitems: {1: NaN, 2: %s}\n"),
    ):
        (record,) = read_text(text % big, name).records
        (result,) = api.score([record])
        assert {(i.code, i.item) for i in result.issues if i.severity == "error"} == {
            ("not-a-number", "1"),
            ("not-a-number", "2"),
        }, name
        message = next(i.message for i in result.issues if i.item == "2")
        assert "(5,000 characters)" in message and len(message) < 400


def test_mapping_file_numbers_follow_the_grammar(tmp_path: Path) -> None:
    from ketascore.readers.mapping import load_mapping_text

    loaded = load_mapping_text(
        "scale: phq9\nsubject: A\nvisit: {value: 010}\nitems: {1: B}\nmissing_codes: [010, 0x7]\n"
    )
    assert loaded.spec.missing_codes == [10, "0x7"]
    assert loaded.spec.visit.value == "10"  # type: ignore[union-attr]


def test_sdtm_visit_numbers_follow_the_grammar(tmp_path: Path) -> None:
    path = tmp_path / "qs.csv"
    rows = [f"S,P1,PHQ010{i},PHQ-9,1,1,1_0,V1" for i in range(1, 10)]
    path.write_text(
        "STUDYID,USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN,VISITNUM,VISIT\n" + "\n".join(rows) + "\n"
    )
    (record,) = read_paths([path]).records
    assert record.extra["visit_number"] == "1_0"  # text, not float("1_0") = 10
