"""The library of built-in scales: the rules of each scale beyond its own worked examples,
checks against real data, and docs/scales.md kept in sync with scales/."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore import authoring
from ketascore.authoring import builtin_table_markdown, generated_docs_table
from ketascore.core.library import builtin_ids, load_builtin
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.core.values import label_key
from ketascore.engines.record import score_record

from conftest import ROOT

CORE = {"madrs", "hamd17", "hamd6", "qids-sr16", "phq9"}
LIBRARY = {"hama", "gad7", "cadss", "shaps", "ymrs", "bprs", "cgi-s", "cgi-i", "cssrs", "madrs-s"}
# scales of ketamine and esketamine research (issue 18)
KETAMINE = {
    "moaas",
    "cssrs-behavior-lifetime",
    "cssrs-behavior-since-last-visit",
    "hamd21",
    "hamd24",
    "qids-c16",
    "ids-c30",
    "ids-sr30",
    "phq8",
    "phq15",
    "cesd",
}
DOCS = ROOT / "docs" / "scales.md"


def score(scale_id: str, items: dict[str, Any]) -> ScoreResult:
    record = AnswerRecord(subject="S", visit="v", scale=scale_id, items=items)
    return score_record(load_builtin(scale_id), record)


def codes(result: ScoreResult) -> list[str]:
    return sorted(i.code for i in result.issues)


# ---- the library as a whole -------------------------------------------------------------


def test_the_built_in_scales_are_these() -> None:
    assert set(builtin_ids()) == CORE | LIBRARY | KETAMINE


@pytest.mark.parametrize("scale_id", sorted(LIBRARY))
def test_each_scale_documents_licence_sources_and_examples(scale_id: str) -> None:
    d = load_builtin(scale_id).definition
    assert d.description and d.licence.status and d.citations
    assert len(d.examples) >= 3
    for citation in d.citations:
        assert citation.supports, citation.key
        assert citation.doi is None or re.fullmatch(r"10\.\d{4,9}/\S+", citation.doi)
    # every band, missing-data rule, response, remission and flag names its source
    for s in d.scores:
        assert not s.bands or s.bands_source, (scale_id, s.id)
        assert s.missing is None or s.missing.source, (scale_id, s.id)
        assert s.response is None or s.response.source, (scale_id, s.id)
        assert s.remission is None or s.remission.source, (scale_id, s.id)
    for flag in d.flags:
        assert flag.source, (scale_id, flag.id)
    for cls in d.classifications:
        assert cls.source, (scale_id, cls.id)


@pytest.mark.parametrize("scale_id", sorted(CORE | LIBRARY))
def test_each_scale_has_a_missing_data_example(scale_id: str) -> None:
    examples = load_builtin(scale_id).definition.examples
    assert any(
        "insufficient-items" in (e.expect.issues or []) or any(e.expect.prorated.values())
        for e in examples
    )


def _boundaries_hit(scale_id: str, score_id: str) -> tuple[list[tuple[float, float]], set[float]]:
    scale = load_builtin(scale_id)
    rule = scale.score(score_id)
    pairs = [(a.max, b.min) for a, b in zip(rule.bands, rule.bands[1:], strict=False)]
    values = {
        v for e in scale.definition.examples if (v := e.expect.scores.get(score_id)) is not None
    }
    return pairs, values


@pytest.mark.parametrize("scale_id", sorted(LIBRARY))
def test_examples_reach_the_band_boundaries(scale_id: str) -> None:
    scale = load_builtin(scale_id)
    for rule in scale.scores:
        if not rule.bands:
            continue
        pairs, values = _boundaries_hit(scale_id, rule.id)
        if all(b.min == b.max for b in rule.bands):  # one band per value (CGI, C-SSRS)
            assert len(values) >= 3, (scale_id, rule.id)
            assert {rule.lo, rule.hi} <= values, (scale_id, rule.id)
        else:
            for upper_of_lower, lower_of_upper in pairs:
                assert {upper_of_lower, lower_of_upper} & values, (scale_id, rule.id)


# ---- rules of particular scales ---------------------------------------------------------


def test_cssrs_ideation_severity_is_the_highest_type_not_a_sum() -> None:
    result = score("cssrs", {"1": "yes", "2": "yes", "3": "no", "4": "no", "5": "yes"} | {
        "frequency": 1, "duration": 1, "controllability": 1, "deterrents": 1, "reasons": 1,
    })  # fmt: skip
    assert result.scores["ideation_severity"] == 5
    assert result.flags == ["ideation_with_intent"]


def test_cssrs_intensity_is_not_applicable_without_ideation() -> None:
    result = score("cssrs", dict.fromkeys("12345", "no"))
    assert result.scores == {"ideation_severity": 0, "intensity": None}
    assert result.not_applicable == ["intensity"]
    assert result.issues == []


def test_cssrs_zero_codes_of_intensity_are_real_values() -> None:
    items = {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0, "frequency": 1, "duration": 1}
    result = score("cssrs", items | {"controllability": 0, "deterrents": 0, "reasons": 0})
    assert result.scores["intensity"] == 2
    assert result.items_answered["intensity"] == 5


def test_cssrs_controllability_six_is_rejected() -> None:
    # one implementation codes "does not attempt to control" as 6; the scale's code is 0
    items = {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0, "frequency": 1, "duration": 1}
    result = score("cssrs", items | {"controllability": 6, "deterrents": 0, "reasons": 0})
    assert result.scores["intensity"] is None
    assert codes(result) == ["out-of-range"]


def test_shaps_maps_answers_by_label_whatever_the_box_order() -> None:
    # the paper form lists the answers in reverse on items 2, 4, 5, 7, 9, 12, 14; a label is a
    # label wherever its box was
    agree = dict.fromkeys([str(i) for i in range(1, 15)], "Definitely agree")
    disagree = dict.fromkeys([str(i) for i in range(1, 15)], "Definitely disagree")
    assert score("shaps", agree).scores == {"total": 0, "continuous": 14}
    assert score("shaps", disagree).scores == {"total": 14, "continuous": 56}
    mixed = agree | {"2": "strongly disagree", "9": "DISAGREE", "12": "  disagree "}
    assert score("shaps", mixed).scores == {"total": 3, "continuous": 14 + 3 + 2 + 2}


def test_bprs_not_assessed_is_never_a_score() -> None:
    items = {str(i): 2 for i in range(1, 19)}
    complete = score("bprs", items)
    assert complete.scores == {"total": 36, "positive": 8}
    not_assessed = score("bprs", items | {"11": 0})
    assert not_assessed.scores == {"total": None, "positive": None}
    assert not_assessed.items["11"] is None
    assert codes(not_assessed) == ["insufficient-items", "insufficient-items"]


@pytest.mark.parametrize("scale_id", ["cgi-s", "cgi-i"])
def test_cgi_not_assessed_is_missing(scale_id: str) -> None:
    for value in (0, "not assessed", "Not Assessed"):
        result = score(scale_id, {"1": value})
        assert list(result.scores.values()) == [None]
        assert "insufficient-items" in codes(result)


def test_ymrs_double_weighted_items_run_to_eight_and_the_others_to_four() -> None:
    items = {str(i): 0 for i in range(1, 12)}
    for item in ("5", "6", "8", "9"):
        assert score("ymrs", items | {item: 8}).scores["total"] == 8
    for item in ("1", "2", "3", "4", "7", "10", "11"):
        assert codes(score("ymrs", items | {item: 5})) == ["out-of-range"]


def test_hama_subscales_partition_the_total() -> None:
    scale = load_builtin("hama")
    psychic = {t.ref for t in scale.score("psychic").terms}
    somatic = {t.ref for t in scale.score("somatic").terms}
    assert psychic == {"1", "2", "3", "4", "5", "6", "14"}
    assert somatic == {"7", "8", "9", "10", "11", "12", "13"}
    assert psychic | somatic == {t.ref for t in scale.score("total").terms}


def test_bprs_positive_subscale_items() -> None:
    scale = load_builtin("bprs")
    labels = [scale.items[t.ref].label for t in scale.score("positive").terms]
    assert labels == [
        "Conceptual disorganisation",
        "Suspiciousness",
        "Hallucinatory behaviour",
        "Unusual thought content",
    ]


def test_no_library_scale_prorates_without_a_published_rule() -> None:
    for scale_id in LIBRARY:
        for rule in load_builtin(scale_id).scores:
            assert rule.prorate == "none" and rule.required == len(rule.terms), (scale_id, rule.id)


# ---- real data --------------------------------------------------------------------------


def test_gad7_codes_and_totals_match_the_sdtm_example(shared_data: Path) -> None:
    scale = load_builtin("gad7")
    by_code = {
        item.codes.cdisc: item.id for item in scale.definition.items if item.codes is not None
    }
    total_code = scale.definition.scores[0].codes
    assert total_code is not None and total_code.cdisc == "GAD0208"
    category = scale.definition.codes.cdisc_category if scale.definition.codes else None
    assert category == "GAD-7 V2"
    visits: dict[tuple[str, str], dict[str, Any]] = {}
    with open(shared_data / "sdtm" / "admiral_example_qs.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["QSCAT"] != category:
                continue
            found = visits.setdefault((row["USUBJID"], row["VISIT"]), {"items": {}})
            if row["QSTESTCD"] == total_code.cdisc:
                found["stored"] = float(row["QSSTRESN"])
            else:
                # by answer label: QSORRES holds the text, QSSTRESN the code
                item_id = by_code[row["QSTESTCD"]]
                found["items"][item_id] = row["QSORRES"]
                label = label_key(row["QSORRES"])
                assert scale.items[item_id].labels[label] == float(row["QSSTRESN"])
    assert len(visits) == 4
    for (subject, visit), data in visits.items():
        result = score_record(
            scale, AnswerRecord(subject=subject, visit=visit, scale="gad7", items=data["items"])
        )
        assert result.scores["total"] == data["stored"], (subject, visit)
        assert result.issues == []


def test_gad7_loinc_codes_match_the_fhir_example(shared_data: Path) -> None:
    scale = load_builtin("gad7")
    by_loinc = {
        item.codes.loinc: item.id
        for item in scale.definition.items
        if item.codes is not None and item.codes.loinc
    }
    path = shared_data / "fhir" / "beda_questionnaire_response_fhir_gad_7.json"
    response = json.loads(path.read_text(encoding="utf-8"))
    group = next(i for i in response["item"] if i["linkId"] == "gad-7")
    items: dict[str, Any] = {}
    stored = None
    for entry in group["item"]:
        answer = entry["answer"][0]
        if "valueCoding" in answer:
            items[by_loinc[entry["linkId"]]] = answer["valueCoding"]["code"]
        else:
            stored = answer["valueInteger"]
    assert len(items) == 7
    result = score_record(scale, AnswerRecord(subject="S", visit="v", scale="gad7", items=items))
    assert result.scores["total"] == stored == 9


# ---- docs/scales.md ---------------------------------------------------------------------


def test_docs_table_of_builtin_scales_is_up_to_date() -> None:
    current = generated_docs_table(DOCS.read_text(encoding="utf-8"))
    assert current == builtin_table_markdown(), (
        "docs/scales.md is out of date with scales/; run python -m ketascore.authoring "
        "--update-docs"
    )


def test_docs_table_lists_every_builtin_scale() -> None:
    table = builtin_table_markdown()
    for scale_id in builtin_ids():
        assert f"| `{scale_id}` |" in table
    assert "| `hamd17` | Hamilton Depression Rating Scale, 17 items (HAM-D17) | 17 |" in table
    assert "| `phq9` | Patient Health Questionnaire-9 (PHQ-9) | 10 (9 scored) |" in table


def test_update_docs_rewrites_only_the_generated_table(tmp_path: Path) -> None:
    stale = tmp_path / "scales.md"
    stale.write_text(
        f"# Title\n\nprose\n\n{authoring.DOCS_BEGIN}\n| old | table |\n{authoring.DOCS_END}\n"
        "after\n",
        encoding="utf-8",
    )
    assert authoring.main(["--check-docs", "--docs", str(stale)]) == 1
    assert authoring.update_docs(stale) is True
    text = stale.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nprose\n\n")
    assert text.endswith(f"{authoring.DOCS_END}\nafter\n")
    assert generated_docs_table(text) == builtin_table_markdown()
    assert authoring.update_docs(stale) is False
    assert authoring.main(["--check-docs", "--docs", str(stale)]) == 0


def test_docs_without_markers_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "scales.md"
    path.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="markers"):
        authoring.update_docs(path)


def _yaml_block_after(text: str, heading: str) -> str:
    section = text[text.index(heading) :]
    start = section.index("```yaml\n") + len("```yaml\n")
    return section[start : section.index("```\n", start)]


def test_docs_full_example_is_the_tested_example_file() -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = ROOT / "tests" / "data" / "scales" / "example-mood.yaml"
    assert _yaml_block_after(text, "## A complete example") == example.read_text(encoding="utf-8")
    assert authoring.check_scale_file(example) == []


def test_docs_show_the_real_output_of_scales_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from ketascore.cli import cli

    text = DOCS.read_text(encoding="utf-8")
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(cli, ["scales", "check", "tests/data/scales/several.yaml"])
    assert result.exit_code == 1
    block = "$ ketascore scales check tests/data/scales/several.yaml\n" + result.output
    assert block in text


def test_docs_document_every_key_of_the_language() -> None:
    from ketascore.core import model

    text = DOCS.read_text(encoding="utf-8")
    for cls in (
        model.ScaleDefinition,
        model.Item,
        model.Answer,
        model.MissingCode,
        model.Alternative,
        model.Score,
        model.Term,
        model.MissingRule,
        model.Rounding,
        model.Band,
        model.Response,
        model.Remission,
        model.Condition,
        model.Flag,
        model.Classification,
        model.Example,
        model.Expect,
        model.Citation,
        model.Licence,
        model.Codes,
        model.Skip,
        model.Check,
    ):
        for name in cls.model_fields:
            assert f"`{name}`" in text or f"{name}:" in text, f"{cls.__name__}.{name}"
