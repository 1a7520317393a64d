"""Column mapping files: loading (with positions), checking against a table, NHANES PHQ-9."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ketascore.api import score
from ketascore.readers import read_paths
from ketascore.readers.formats import (
    FormatOptionError,
    MappingError,
    load_mapping,
    load_read_options,
)
from ketascore.readers.mapping import load_mapping_text

from conftest import DATA, ROOT

FORMATS = DATA / "formats"
NHANES_MAP = ROOT / "examples" / "mappings" / "nhanes-phq9.yaml"
ALL_ITEMS = "{" + ", ".join(f"{i}: Q{i}" for i in range(1, 10)) + "}"  # the PHQ-9 columns


def test_mapping_loads_with_defaults() -> None:
    mapping = load_mapping(FORMATS / "mapped-phq9.yaml")
    spec = mapping.spec
    assert (spec.scale, spec.subject, spec.visit, spec.layout) == ("phq9", "ID", "Wave", "wide")
    assert spec.items["9"] == "Q9" and spec.scores == {"total": "Total"}
    assert mapping.missing_codes == (7, 9)
    assert mapping.carried == {"site": "Site"}
    assert mapping.where("items", "9") == f"{FORMATS / 'mapped-phq9.yaml'}:5"


def test_mapping_problems_are_located() -> None:
    with pytest.raises(MappingError) as err:
        load_mapping(FORMATS / "mapped-bad.yaml")
    source = str(FORMATS / "mapped-bad.yaml")
    assert err.value.problems == [
        f"{source}:1:1: items: required key is missing",
        f"{source}:4:8: itemz: unknown key 'itemz'",
        f"{source}:5:9: layout: Input should be 'wide' or 'long'",
    ]


def test_mapping_rules_between_keys() -> None:
    text = "scale: phq9\nsubject: s\nvisit: v\nlayout: long\nitems: {1: A, 2: a}\n"
    with pytest.raises(MappingError) as err:
        load_mapping_text(text, "m.yaml")
    assert err.value.problems == [
        "m.yaml:4:9: layout: the long layout needs item_column and value_column",
        "m.yaml:5:18: items.2: 'a' is also given for item 1",
    ]


@pytest.mark.parametrize("blank", ["'  '", '"\\t "'])
def test_a_constant_visit_is_stripped_and_never_blank(blank: str) -> None:
    """A constant visit is taken as a visit cell is: ASCII whitespace stripped (it was kept,
    so ' baseline ' and the cell baseline were two visits), and a blank one is refused (a
    record was scored at the visit '  ')."""
    text = "scale: phq9\nsubject: s\nvisit: {value: %s}\nitems: {1: A}\n"
    with pytest.raises(MappingError) as err:
        load_mapping_text(text % blank, "m.yaml")
    assert err.value.problems[-1] == (
        "m.yaml:3:16: visit.value: Value error, the value is blank; give the visit's name"
    )
    visit = load_mapping_text(text % "' baseline\t'", "m.yaml").spec.visit
    assert visit is not None and not isinstance(visit, str) and visit.value == "baseline"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "scale: phq9\nsubject: id\nvisit: id\nitems: {1: q1}\n",
            "m.yaml:3:8: visit: 'id' is also given for subject",
        ),
        (
            "scale: phq9\nsubject: ID\nitems: {1: q1, 2: id}\n",
            "m.yaml:3:19: items.2: 'id' is also given for subject",
        ),
        (
            "scale: phq9\nitems: {1: q1}\nscores: {total: Q1}\n",
            "m.yaml:3:17: scores.total: 'Q1' is also given for item 1",
        ),
        (
            "scale: phq9\nlayout: long\nitem_column: code\nvalue_column: code\n"
            "items: {1: PHQ0101}\nscores: {total: PHQ0101}\n",
            "m.yaml:4:15: value_column: 'code' is also given for item_column",
        ),
        (
            "scale: phq9\nlayout: long\nitem_column: code\nvalue_column: answer\n"
            "items: {1: PHQ0101}\nscores: {total: PHQ0101}\n",
            "m.yaml:6:17: scores.total: 'PHQ0101' is also given for item 1",
        ),
    ],
)
def test_a_column_or_code_has_one_role(text: str, expected: str) -> None:
    """A column read as two things (subject and visit, an item and a stored score), or a
    long layout's code given for an item and a score, is refused: one of the two would be
    taken and the other passed over. Long codes are not columns (an item coded 'visit' is
    no clash)."""
    with pytest.raises(MappingError) as err:
        load_mapping_text(text, "m.yaml")
    assert err.value.problems[0] == expected
    long = "scale: phq9\nlayout: long\nitem_column: code\nvalue_column: answer\n"
    assert load_mapping_text(long + "items: {1: visit, 2: code}\n", "m.yaml").spec.items


def test_mapping_is_yaml_only_data() -> None:
    with pytest.raises(MappingError) as err:
        load_mapping_text("scale: !!python/object:os.system x\n", "m.yaml")
    assert "not allowed" in str(err.value)


def test_option_files_report_every_problem(tmp_path: Path) -> None:
    with pytest.raises(FormatOptionError) as err:
        load_read_options(
            map=FORMATS / "mapped-bad.yaml",
            redcap_dictionary=tmp_path / "nope.csv",
            questionnaire=FORMATS / "fhir-patient.json",
        )
    problems = err.value.problems
    assert len(problems) == 5
    assert "cannot read the data dictionary" in problems[3]
    assert problems[4].endswith("holds no Questionnaire resource")


def test_csv_through_a_mapping() -> None:
    opts = load_read_options(map=FORMATS / "mapped-phq9.yaml")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=opts)
    assert data.issues == []
    assert [(r.subject, r.visit) for r in data.records] == [
        ("A1", "1"),
        ("A2", "1"),
        ("A3", "1"),
        ("A5", "2"),
    ]  # A4 answered nothing: no record
    assert data.records[0].extra == {"site": "north"}
    results = {r.subject: r for r in score(data.records)}
    assert results["A1"].scores == {"total": 16} and results["A1"].ok
    # 7 = refused is missing, never a score: prorated from 8 items
    assert results["A2"].scores == {"total": 21.375} and results["A2"].prorated["total"]
    assert results["A3"].scores == {"total": 0} and results["A3"].items_answered["total"] == 8
    (mismatch,) = [i for i in results["A5"].issues if i.code == "reported-score-mismatch"]
    assert mismatch.line == 6
    assert "stores total = 3 but the items give 0" in mismatch.message


def test_mapping_naming_a_missing_column_still_reads_the_rest() -> None:
    opts = load_read_options(map=FORMATS / "mapped-missing-column.yaml")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=opts)
    file = str(FORMATS / "mapped-phq9.csv")
    mapping = str(FORMATS / "mapped-missing-column.yaml")
    messages = [i.message for i in data.issues]
    assert [i.code for i in data.issues] == ["missing-column", "missing-column"]
    assert messages[0].startswith(
        f"{file}:1: the mapping {mapping}:5 names column 'Region' for the carried field 'site', "
        "but the file has no such column (columns: ID, Wave, Q1,"
    )
    assert f"the mapping {mapping}:4 names column 'Q9_typo' for phq9 item 9" in messages[1]
    assert len(data.records) == 4
    results = score(data.records)
    first = results[0]
    # the item whose column is missing is unusable: no score is guessed from the others
    assert first.scores == {"total": None}
    (issue,) = [i for i in first.issues if i.code == "missing-column"]
    assert issue.item == "9" and issue.subject == "A1"


def test_mapping_without_subject_column_skips_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"scale: phq9\nsubject: PERSON\nvisit: {{value: v1}}\nitems: {ALL_ITEMS}\n")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=load_read_options(map=path))
    assert data.records == []
    (issue,) = data.issues
    assert issue.code == "missing-column" and "'PERSON' for the subject" in issue.message


def test_mapping_of_unknown_scale_and_item(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"scale: phq-9\nsubject: ID\nvisit: Wave\nitems: {ALL_ITEMS}\n")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=load_read_options(map=path))
    assert [i.code for i in data.issues] == ["unknown-scale"]
    items = ALL_ITEMS.replace("}", ", 12: Total}")
    path.write_text(f"scale: phq9\nsubject: ID\nvisit: Wave\nitems: {items}\n")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=load_read_options(map=path))
    (issue,) = data.issues
    assert issue.code == "unknown-item" and f"{path}:4" in issue.message
    assert len(data.records) == 4


def test_long_layout_mapping(tmp_path: Path) -> None:
    (tmp_path / "long.csv").write_text(
        "pid,when,question,answer\n"
        "p1,t0,PHQ_A,1\np1,t0,PHQ_B,2\np1,t0,OTHER,5\np1,t0,PHQ_A,3\np1,t0,SUM,3\n"
    )
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nsubject: pid\nvisit: when\nlayout: long\nitem_column: question\n"
        "value_column: answer\nitems: {1: PHQ_A, 2: PHQ_B, 3: PHQ_C, 4: PHQ_D, 5: PHQ_E, "
        "6: PHQ_F, 7: PHQ_G, 8: PHQ_H, 9: PHQ_I}\nscores: {total: SUM}\n"
    )
    opts = load_read_options(map=tmp_path / "m.yaml")
    (rec,) = read_paths([tmp_path / "long.csv"], options=opts).records
    assert rec.items["2"] == "2" and rec.reported == {"total": "3"}
    assert rec.items["1"].code == "conflicting-records"  # given twice, 1 and 3


# --------------------------------------------------------------------------------------
# NHANES 2017-2018 PHQ-9 (SAS transport) through the shipped mapping file


def test_nhanes_phq9_through_the_example_mapping(shared_data: Path) -> None:
    opts = load_read_options(map=NHANES_MAP)
    data = read_paths([shared_data / "nhanes" / "DPQ_J.xpt"], options=opts)
    assert data.issues == []
    # 5,533 respondents; 439 were not given the screener (every item blank): no record
    assert len(data.records) == 5533 - 439
    results = score(data.records)
    outcome = Counter(
        "null" if r.scores["total"] is None else ("prorated" if r.prorated["total"] else "complete")
        for r in results
    )
    assert outcome == {"complete": 5068, "prorated": 18, "null": 8}
    answered = Counter(r.items_answered["total"] for r in results)
    # 15 with one item missing, 3 with two; 7 answered 1-6 items and 1 only refused
    assert answered == {9: 5068, 8: 15, 7: 3, 6: 1, 5: 1, 1: 5, 0: 1}
    # refused (7) and don't know (9) are missing answers, never scores
    for r in results:
        assert all(v is None or 0 <= v <= 3 for v in r.items.values())
        total = r.scores["total"]
        assert total is None or 0 <= total <= 27
    assert not any(
        i.code in ("out-of-range", "not-allowed-value") for r in results for i in r.issues
    )
    codes = Counter(i.code for r in results for i in r.issues)
    assert codes == {"insufficient-items": 8, "flag-undetermined": 9}
    first = next(r for r in results if r.subject == "93705")
    assert first.scores == {"total": 0} and first.visit == "nhanes-2017-2018"


@pytest.mark.parametrize("codes", ["['7', '9']", "[' 07 ', 9.0]", "[7, 9]"])
def test_missing_codes_written_as_text_mean_the_number(tmp_path: Path, codes: str) -> None:
    """A missing code is read as the value grammar reads an answer: ``'7'`` (quoted in the
    mapping file) is the number 7, so a cell holding 7 as a number (a spreadsheet, Parquet,
    SAS file) is no answer, as the text 7 of a CSV file is. A quoted code matched text cells
    only: the number 7 was out of range."""
    openpyxl = pytest.importorskip("openpyxl")
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nsubject: ID\nvisit: Wave\n"
        "items: {" + ", ".join(f"{i}: Q{i}" for i in range(1, 10)) + "}\n"
        f"missing_codes: {codes}\n"
    )
    header = ["ID", "Wave", *(f"Q{i}" for i in range(1, 10))]
    rows = [["A1", "w1", 7, *[1] * 8], ["A2", "w1", "7", *[1] * 8], ["A3", "w1", "9.0", *[1] * 8]]
    book = openpyxl.Workbook()
    for row in [header, *rows]:
        book.active.append(row)
    book.save(tmp_path / "t.xlsx")
    pq.write_table(
        pa.table({h: [r[i] for r in rows[:1]] for i, h in enumerate(header)}),
        tmp_path / "t.parquet",
    )
    (tmp_path / "t.csv").write_text("\n".join(",".join(map(str, r)) for r in [header, *rows]))
    opts = load_read_options(map=tmp_path / "m.yaml")
    for name in ("t.xlsx", "t.parquet", "t.csv"):
        results = score(read_paths([tmp_path / name], options=opts).records)
        assert results, name
        for result in results:
            assert result.scores == {"total": 9}, (name, result.subject)
            assert result.items_answered == {"total": 8} and result.prorated == {"total": True}
            assert not [i for i in result.issues if i.severity == "error"]


def test_a_mapping_without_an_item_a_score_reads_leaves_the_file_unscored(
    tmp_path: Path,
) -> None:
    """A mapping that names no column for PHQ-9 item 9 made every row's total a prorated
    one (8 of 9 items answered), with no word about the mapping: as a wide table without
    the item's column, the file is not scored, and the message names the mapping's line.
    Items no score reads (PHQ-9's item 10) may be left out."""
    path = tmp_path / "m.yaml"
    eight = ALL_ITEMS.replace(", 9: Q9", "")
    path.write_text(f"scale: phq9\nsubject: ID\nvisit: Wave\nitems: {eight}\n")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=load_read_options(map=path))
    assert data.records == []
    (issue,) = data.issues
    assert issue.message == (
        f"{FORMATS / 'mapped-phq9.csv'}: phq9: the mapping {path}:4 names nothing for phq9 "
        "item(s) 9, which phq9 scores read (total): every row would be left unscored or "
        "prorated, so the file was not read; name each item's column (or linkId) in the "
        "mapping file's items"
    )
    path.write_text(f"scale: phq9\nsubject: ID\nvisit: Wave\nitems: {ALL_ITEMS}\n")
    data = read_paths([FORMATS / "mapped-phq9.csv"], options=load_read_options(map=path))
    assert len(data.records) == 4


def test_a_mapping_of_sdtm_test_codes_may_name_some_items(tmp_path: Path) -> None:
    """In SDTM the scale's own CDISC codes find the items a mapping does not name."""
    path = tmp_path / "m.yaml"
    path.write_text("scale: phq9\nsubject: USUBJID\nvisit: VISIT\nitems: {1: MYPHQ1}\n")
    data = read_paths([FORMATS / "sdtm-qs.csv"], options=load_read_options(map=path))
    assert len(data.records) == 3
    assert all(i.code != "missing-column" for i in data.issues)
