"""Writers: ADaM-style BDS tables (CSV and SAS transport) and FHIR Observation Bundles."""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ketascore.analysis.change import compute_change
from ketascore.api import read_answers, score
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult
from ketascore.readers import read_paths
from ketascore.readers.formats import xpt
from ketascore.writers.adam import COLUMNS, adam_csv, adam_rows, param_code, write_adam
from ketascore.writers.fhir import fhir_json, observations_bundle, write_fhir

from conftest import DATA

STUDY = DATA / "study"
FORMATS = DATA / "formats"


def _study() -> tuple[list[ScoreResult], Any, Any]:
    data = read_answers([STUDY])
    results = score(data.records)
    madrs = compute_change(results, load_builtin("madrs"))
    hamd = compute_change(results, load_builtin("hamd17"), "hamd6")
    return results, madrs, hamd


def test_adam_rows_carry_the_change_report() -> None:
    results, madrs, _ = _study()
    rows = adam_rows([madrs], results)
    by_key = {(r["USUBJID"], r["AVISIT"]): r for r in rows}
    base = by_key[("S1", "baseline")]
    assert base["ABLFL"] == "Y" and base["AVAL"] == base["BASE"] == 30
    assert base["CHG"] is None and base["PARAMCD"] == "MADRSTOT"
    assert base["PARAM"] == "MADRS Total score" and base["ADT"] == "2025-01-06"
    for change in madrs.rows:
        row = by_key[(change.subject, change.visit)]
        assert (row["AVAL"], row["BASE"], row["CHG"], row["PCHG"]) == (
            change.value,
            change.baseline,
            change.change,
            change.percent_change,
        )
        expected = "" if change.response is None else ("Y" if change.response else "N")
        assert row["CRIT1FL"] == expected and row["ABLFL"] == ""
    assert by_key[("S1", "day1")]["CRIT1"].startswith("Response: total decreased by >= 50%")
    assert by_key[("S10", "day1")]["CRIT2FL"] == "Y"
    # subjects sort naturally: S1, S2, ..., S10
    subjects = list(dict.fromkeys(r["USUBJID"] for r in rows))
    assert subjects == sorted(subjects, key=lambda s: int(s[1:]))
    assert all(r["AVISITN"] == 0 for r in rows if r["ABLFL"] == "Y")


@pytest.mark.parametrize("number", ["NaN", "inf", "x"])
def test_a_visit_number_that_is_not_a_finite_number_is_not_used(number: str) -> None:
    """AVISITN comes from the source's visit numbers only when every visit has one: "NaN"
    or "inf" is none (positions are used, not a NaN written into the dataset)."""
    madrs = load_builtin("madrs")
    results = [
        ScoreResult(subject="S1", visit=v, scale="madrs", scale_version="1", scores={"total": t})
        for v, t in (("baseline", 30), ("week1", 20))
    ]
    results[0].extra["visit_number"] = 1
    results[1].extra["visit_number"] = number
    rows = adam_rows([compute_change(results, madrs)], results)
    assert [r["AVISITN"] for r in rows] == [0, 1]


def test_score_to_adam_csv_gives_the_same_numbers(tmp_path: Path) -> None:
    results, madrs, hamd = _study()
    path = tmp_path / "adqs.csv"
    write_adam(path, [madrs, hamd], results)
    with path.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert list(table[0]) == list(COLUMNS)

    def num(text: str) -> float | None:
        return float(text) if text else None

    scored = {(r.subject, r.visit, r.scale): r for r in results}
    checked = 0
    for row in table:
        scale = "madrs" if row["PARAMCD"] == "MADRSTOT" else "hamd17"
        score_id = "total" if scale == "madrs" else "hamd6"
        result = scored.get((row["USUBJID"], row["AVISIT"], scale))
        if result is None:
            continue
        assert num(row["AVAL"]) == result.scores[score_id]
        assert num(row["ITEMN"]) == result.items_answered[score_id]
        assert row["PRORFL"] == ("Y" if result.prorated[score_id] else "N")
        checked += 1
    assert checked == len(table)
    changes = {(c.subject, c.visit): c for c in madrs.rows}
    for row in table:
        if row["PARAMCD"] == "MADRSTOT" and (row["USUBJID"], row["AVISIT"]) in changes:
            change = changes[(row["USUBJID"], row["AVISIT"])]
            assert num(row["CHG"]) == change.change
            pct = num(row["PCHG"])
            assert (pct is None and change.percent_change is None) or math.isclose(
                pct or 0, change.percent_change or 0, rel_tol=1e-15
            )
    # deterministic: the same input gives the same bytes
    again = tmp_path / "again.csv"
    write_adam(again, [madrs, hamd], results)
    assert again.read_bytes() == path.read_bytes()


def test_adam_as_sas_transport_reads_back(tmp_path: Path) -> None:
    results, madrs, _ = _study()
    path = tmp_path / "adqs.xpt"
    rows = write_adam(path, [madrs], results)
    ds = xpt.read_xport(path.read_bytes())
    assert ds.name == "ADQS" and [v.name for v in ds.variables] == list(COLUMNS)
    assert len(ds.rows) == len(rows)
    for ours, back in zip(rows, ds.rows, strict=True):
        for name, value in zip(COLUMNS, back, strict=True):
            expected = ours[name]
            if name in ("AVAL", "BASE", "CHG", "PCHG", "ADY", "AVISITN", "ITEMN"):
                assert (value is None and expected is None) or math.isclose(value, expected)
            else:
                assert value == (expected if expected not in ("",) else None)
    pyreadstat = pytest.importorskip("pyreadstat")
    frame, meta = pyreadstat.read_xport(str(path))
    assert list(frame.columns) == list(COLUMNS)
    assert meta.column_labels[COLUMNS.index("CHG")] == "Change from Baseline"
    assert str(frame["ADT"][0])[:10] == "2025-01-06"


def test_adam_marks_carried_forward_rows() -> None:
    if "impute" not in inspect.signature(compute_change).parameters:
        pytest.skip("change from baseline has no imputation")
    results, _, _ = _study()
    report = compute_change(results, load_builtin("madrs"), impute="locf")
    rows = adam_rows([report], results)
    imputed = [r for r in rows if r["DTYPE"]]
    assert imputed and {r["DTYPE"] for r in imputed} == {"LOCF"}
    for row in imputed:
        assert row["AVAL"] is not None and row["ABLFL"] == ""


def test_param_codes_prefer_cdisc() -> None:
    assert param_code(load_builtin("gad7"), "total") == "GAD0208"
    assert param_code(load_builtin("hamd17"), "anxiety_somatization") == "HAMD17AS"
    assert param_code(load_builtin("madrs"), "total") == "MADRSTOT"


def test_fhir_observations_from_fhir_input(shared_data: Path) -> None:
    folder = shared_data / "fhir"
    data = read_paths([folder / "beda_questionnaire_response_fhir_phq_2_phq_9.json"])
    bundle = observations_bundle(score(data.records))
    (entry,) = bundle["entry"]
    obs = entry["resource"]
    assert obs["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "44261-6",
        "display": "PHQ-9 Total score",
    }
    assert obs["subject"] == {"reference": "Patient/683e382b-fed4-433e-9b6d-a847a7953bc0"}
    assert obs["effectiveDateTime"] == "2023-04-06T02:33:05Z"
    assert obs["valueQuantity"]["value"] == 12 and obs["interpretation"] == [{"text": "moderate"}]
    assert obs["derivedFrom"] == [
        {"reference": "QuestionnaireResponse/846558b9-4c03-4af6-a258-62b0390633e2"}
    ]
    assert entry["fullUrl"] == f"urn:uuid:{obs['id']}"


def test_fhir_bundle_skips_empty_scores_and_is_deterministic(tmp_path: Path) -> None:
    results, _, _ = _study()
    text = fhir_json(results)
    bundle = json.loads(text)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    observations = [e["resource"] for e in bundle["entry"]]
    expected = sum(1 for r in results for v in r.scores.values() if v is not None)
    assert len(observations) == expected
    local = [o for o in observations if o["code"]["coding"][0]["system"] == "urn:ketascore:score"]
    assert {o["code"]["coding"][0]["code"] for o in local} >= {"madrs/total", "hamd17/hamd6"}
    assert len({o["id"] for o in observations}) == len(observations)
    path = tmp_path / "obs.json"
    write_fhir(path, results)
    assert path.read_text(encoding="utf-8") == text
    notes = {o["note"][0]["text"].split("; ")[2] for o in observations}
    assert notes <= {"prorated for missing items", "not prorated"}


def test_adam_csv_of_no_rows() -> None:
    assert adam_csv([]) == ",".join(COLUMNS) + "\n"
    buf = io.StringIO(adam_csv([]))
    assert next(csv.reader(buf)) == list(COLUMNS)


_CELLS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="=+-@ 0123456789.ab\t\uff1d", max_size=6),
    st.lists(st.sampled_from(["a", "=b"]), max_size=2),
)


@given(
    kind=st.sampled_from(["mixed", "numbers", "booleans", "texts"]),
    data=st.data(),
    escape=st.booleans(),
)
def test_a_csv_column_is_written_as_each_of_its_cells_would_be(
    kind: str, data: st.DataObject, escape: bool
) -> None:
    """The column-wise CSV cells (one decision per column: numbers as they are, booleans as
    true/false, each distinct text escaped once) are written as ``csv_cell`` writes each
    cell, whatever the column holds."""
    from ketascore.writers.tabular import column_cells, csv_cell

    cell = {
        "mixed": _CELLS,
        "numbers": st.none() | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
        "booleans": st.none() | st.booleans(),
        "texts": st.none() | st.text(alphabet="=+-@ 0123456789.ab\t\uff1d", max_size=6),
    }[kind]
    values = data.draw(st.lists(cell, max_size=30))

    def written(cells: list[Any]) -> str:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([c, "x"] for c in cells)
        return buf.getvalue()

    assert written(column_cells(values, escape)) == written([csv_cell(v, escape) for v in values])


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-05, 1.5e-09, 3.8e-05, 0.0001, 1e16, 1e20, -0.0, 5e-324])
    | st.text()
)
_JSON_VALUES = st.recursive(
    _JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_indented_json_is_the_standard_librarys(value: Any) -> None:
    """``--format json`` (and FHIR, change) is written by orjson where it writes the bytes
    of ``json.dumps(indent=2)`` (25 times faster), by the standard library elsewhere: a
    float below 1e-4 (orjson writes 0.00001 for 1e-05), an integer beyond 64 bits."""
    from ketascore.writers.jsontext import indented

    expected = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
    try:
        expected.encode("utf-8")
    except UnicodeEncodeError:  # (a lone surrogate: no output file could hold it)
        return
    assert indented(value) == expected


@given(_JSON_VALUES)
def test_json_lines_are_the_standard_librarys(value: Any) -> None:
    """A JSON Lines line is ``json.dumps(value, ensure_ascii=False, allow_nan=False)``,
    written by one encoder built once."""
    from ketascore.writers.jsontext import one_line

    assert one_line(value) == json.dumps(value, ensure_ascii=False, allow_nan=False)


def test_indented_json_without_orjson(monkeypatch: Any) -> None:
    """Without orjson (the fast extra) the standard library writes the same text."""
    import sys

    from ketascore.writers.jsontext import indented

    value = {"a": [1, 2.5, 1e-05, {"b": None}], "c": "é\u2028\x1f", "d": {}}
    expected = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
    monkeypatch.setitem(sys.modules, "orjson", None)
    assert indented(value) == expected
