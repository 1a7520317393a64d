"""REDCap exports: events and repeat instances as visits, dictionaries, label exports."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketascore.api import score
from ketascore.core.issues import Issue
from ketascore.readers import csv_table, detect_format, read_paths
from ketascore.readers.formats import load_read_options
from ketascore.readers.redcap import (
    load_redcap_dictionary,
    parse_choices,
    redcap_visits,
)

from conftest import DATA

FORMATS = DATA / "formats"


def test_events_and_repeat_instances_are_visits() -> None:
    data = read_paths([FORMATS / "redcap-phq9.csv"])
    assert [i.code for i in data.issues] == ["redcap-codes"]  # (no data dictionary)
    assert [(r.subject, r.visit) for r in data.records] == [
        ("101", "baseline_arm_1"),
        ("101", "week_1_arm_1"),
        ("101", "week_1_arm_1#2"),
        ("102", "baseline_arm_1"),
    ]  # 102 has no answers at week 1: no record
    first = data.records[0]
    assert first.reported == {"total": "17"} and first.extra == {}  # no other fields copied
    results = score(data.records)
    assert [r.scores["total"] for r in results] == [17, 5, 2, 27]
    assert all(r.ok for r in results)


def test_a_repeat_instance_is_one_number_however_written(tmp_path: Path) -> None:
    """Instance 2 is one visit whether the export says 2, 2.0 (a file saved by a
    spreadsheet) or 02: it made two visits, each scored apart. An instance that is not a
    whole number of 1 or more is no visit (it made week_1_arm_1#x, #-1, #1.5, scored
    as visits of their own): the row is skipped with an issue."""
    header = "record_id,redcap_event_name,redcap_repeat_instance," + ",".join(
        f"phq9_{i}" for i in range(1, 10)
    )
    instances = ("2", "2.0", "02", "x", "-1", "1.5", "0", "NaN", "")
    rows = [f"101,week_1_arm_1,{n}," + ",".join(["1"] * 9) for n in instances]
    path = tmp_path / "export.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    table = csv_table(path.read_text(encoding="utf-8"), str(path), [])
    assert table is not None
    issues: list[Issue] = []
    visits = redcap_visits(table, str(path), issues)
    assert [(line, cells[-1]) for line, cells in visits.rows] == [
        (2, "week_1_arm_1#2"),
        (3, "week_1_arm_1#2"),
        (4, "week_1_arm_1#2"),
        (10, "week_1_arm_1"),
    ]
    assert [(i.code, i.line, i.subject) for i in issues] == [
        ("bad-field", line, "101") for line in range(5, 10)
    ]
    assert issues[0].message == (
        f"{path}:5: subject 101, visit week_1_arm_1: repeat instance 'x' is not a whole "
        "number of 1 or more, so the row's visit is not known; row skipped; correct "
        "redcap_repeat_instance (1, 2, 3 ...), or leave it blank if the row is not repeated"
    )
    data = read_paths([path])
    assert [r.visit for r in data.records] == ["week_1_arm_1#2"] * 3 + ["week_1_arm_1"]
    assert [i.code for i in data.issues] == ["bad-field"] * 5 + ["redcap-codes"]


def test_label_export_with_the_data_dictionary() -> None:
    opts = load_read_options(redcap_dictionary=FORMATS / "redcap-phq9-dictionary.csv")
    data = read_paths([FORMATS / "redcap-phq9-labels.csv"], options=opts, fmt="redcap")
    assert data.issues == []
    first, _ = data.records
    assert (first.subject, first.visit) == ("101", "Baseline (Arm 1: Ketamine)")
    assert first.items["1"] == "2" and first.items["9"] == "1"  # labels back to raw codes
    results = score(data.records)
    assert results[0].scores == {"total": 17}
    # "Sometimes" is not one of the field's choices: rejected, no score
    assert results[1].scores == {"total": None}
    (issue,) = [i for i in results[1].issues if i.code == "unknown-answer-code"]
    assert issue.item == "9" and issue.line == 3
    assert "answer 'Sometimes' is neither a code nor a label" in issue.message


@pytest.mark.parametrize("labels", [True, False], ids=["label-headers", "raw-headers"])
def test_a_joined_export_repeats_its_header_once(tmp_path: Path, labels: bool) -> None:
    """Two exports joined with cat (the second with its byte-order mark): the second header
    is a row that repeats the header, skipped with one csv-repeated-header warning, as for
    raw headers, whether the file is read alone or in a run (the record path's workers).
    The label export's second header (field labels, renamed to field names through the
    data dictionary for the first) was read as a record of subject 'Record ID' at visit
    'Event Name', refused for its repeat instance ('Repeat Instance')."""
    from ketascore.api import score_paths

    name = "redcap-phq9-labels.csv" if labels else "redcap-phq9.csv"
    text = (FORMATS / name).read_text(encoding="utf-8")
    path = tmp_path / "joined.csv"
    path.write_text(text + "\ufeff" + text, encoding="utf-8")
    header_line = text.count("\n") + 1
    opts = load_read_options(redcap_dictionary=FORMATS / "redcap-phq9-dictionary.csv")
    alone = read_paths([FORMATS / name], options=opts, fmt="redcap")
    data = read_paths([path], options=opts, fmt="redcap")
    repeated = [i for i in data.issues if i.code == "csv-repeated-header"]
    assert [(i.severity, i.line) for i in repeated] == [("warning", header_line)]
    assert [i for i in data.issues if i not in repeated] == alone.issues
    assert [(r.subject, r.visit) for r in data.records] == 2 * [
        (r.subject, r.visit) for r in alone.records
    ]
    with score_paths([path], input_format="redcap", options=opts, custom_options=True) as run:
        issues = [i for i in run.issues if i.code != "duplicate-record"]
        assert [i.code for i in issues] == [i.code for i in data.issues]
        assert [r.subject for r in run.results()] == [r.subject for r in alone.records]


def test_dictionary_parsing() -> None:
    assert parse_choices("0, Not at all | 1, Several days|2,More, or less") == {
        "0": "Not at all",
        "1": "Several days",
        "2": "More, or less",
    }
    dictionary = load_redcap_dictionary(FORMATS / "redcap-phq9-dictionary.csv")
    assert dictionary.record_id == "record_id"
    assert dictionary.fields["phq9_1"].code_of("nearly  DAILY") == "3"
    assert dictionary.fields["phq9_total"].choices == {}  # a calculated field


@pytest.mark.parametrize("space", ["\u00a0", "\u2009", "\u3000", "\u0085"])
def test_dictionary_answers_are_stripped_as_the_grammar_strips(tmp_path: Path, space: str) -> None:
    """An answer is matched to a choice after stripping ASCII whitespace only, as the value
    grammar strips answers: a no-break (or other non-ASCII) space around a code is no code,
    with the data dictionary as without it (it was stripped away and the answer scored)."""
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    export = tmp_path / "export.csv"
    export.write_text(
        f"record_id,redcap_event_name,{items}\n1,baseline_arm_1,{space}1,1,1,1,1,1,1,1, 1\t\n",
        encoding="utf-8",
    )
    opts = load_read_options(redcap_dictionary=FORMATS / "redcap-phq9-dictionary.csv")
    data = read_paths([export], options=opts)
    (result,) = score(data.records)
    assert result.scores == {"total": None}
    (issue,) = result.issues
    assert (issue.code, issue.item) == ("unknown-answer-code", "1")
    assert f"answer {space + '1'!r} is neither a code nor a label" in issue.message
    field = load_redcap_dictionary(FORMATS / "redcap-phq9-dictionary.csv").fields["phq9_1"]
    assert field.code_of(" 1\t") == "1"  # ASCII whitespace is stripped
    assert field.code_of(f"{space}1") is None


@pytest.mark.parametrize("first", ["redcap_event_name", "phq9_1", "phq9_total", "phq9_complete"])
def test_a_first_column_that_is_no_record_id_is_not_read_as_subjects(
    tmp_path: Path, first: str
) -> None:
    """The record id is the export's first column; a file whose first column is a REDCap
    system field or an item is refused (the event names, or the answers of item 1, were
    taken for subjects). A mapping file's subject column is used instead, as always."""
    items = [f"phq9_{i}" for i in range(1, 10)]
    others = [c for c in ["redcap_event_name", *items, "phq9_total", "phq9_complete"] if c != first]
    header = [first, "record_id", *others]
    values = {"redcap_event_name": "base_arm_1", "phq9_total": "9", "phq9_complete": "2"}
    rows = [[values.get(c, "1") for c in header] for _ in range(2)]
    rows[0][1], rows[1][1] = "101", "102"
    export = tmp_path / "export.csv"
    export.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    data = read_paths([export])
    assert data.records == []
    (issue,) = data.issues
    assert (issue.code, issue.severity, issue.line) == ("missing-column", "error", 1)
    assert f"the first column, {first!r}, is not a record id" in issue.message
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nsubject: record_id\nitems: {"
        + ", ".join(f"{i}: phq9_{i}" for i in range(1, 10))
        + "}\n"
    )
    mapped = read_paths([export], options=load_read_options(map=tmp_path / "m.yaml"))
    assert [r.subject for r in mapped.records] == ["101", "102"]
    # a record id that merely starts like a scale's fields is one
    named = tmp_path / "named.csv"
    named.write_text(f"phq9_id,redcap_event_name,{','.join(items)}\nK7,b_arm_1,{'1,' * 8}1\n")
    assert [r.subject for r in read_paths([named]).records] == ["K7"]


def test_redcap_through_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "scale: phq9\nitems: {"
        + ", ".join(f"{i}: phq9_{i}" for i in range(1, 10))
        + "}\nscores: {total: phq9_total}\ncarry: [age]\n"
    )
    opts = load_read_options(map=tmp_path / "m.yaml")
    data = read_paths([FORMATS / "redcap-phq9.csv"], options=opts)
    assert [i.code for i in data.issues] == ["redcap-codes"]  # (a mapping gives no coding)
    assert [r.visit for r in data.records] == [
        "baseline_arm_1",
        "week_1_arm_1",
        "week_1_arm_1#2",
        "baseline_arm_1",
    ]
    assert data.records[0].extra == {"age": "34"}
    assert [r.scores["total"] for r in score(data.records)] == [17, 5, 2, 27]


@pytest.mark.parametrize(
    ("name", "visits"),
    [
        ("longitudinal__data.csv", {"enrollment_arm_1", "dose_1_arm_1", "visit_1_arm_1"}),
        (
            "repeating-instruments__data.csv",
            {"event_1_arm_1", "event_1_arm_1#1", "event_1_arm_1#2", "event_1_arm_1#3"},
        ),
        ("checkboxes-1__data.csv", {"event_1_arm_1"}),
    ],
)
def test_real_exports_are_read_without_error(
    shared_data: Path, name: str, visits: set[str]
) -> None:
    path = shared_data / "redcap" / name
    text = path.read_text(encoding="utf-8")
    assert detect_format(name, text) == "csv"
    data = read_paths([path])
    assert data.records == []  # they hold no rating scale
    (issue,) = data.issues
    assert (issue.code, issue.severity) == ("no-scale-items", "warning")
    table = csv_table(text, str(path), [])
    assert table is not None
    issues: list[Issue] = []
    assert visits <= {cells[-1] for _, cells in redcap_visits(table, str(path), issues).rows}
    assert issues == []


def test_real_dictionary_loads(shared_data: Path) -> None:
    dictionary = load_redcap_dictionary(shared_data / "redcap" / "longitudinal__dictionary.csv")
    assert dictionary.record_id == "study_id"
    assert dictionary.fields["date_enrolled"].form == "demographics"
    checkbox = load_redcap_dictionary(shared_data / "redcap" / "checkboxes-1__dictionary.csv")
    assert checkbox.fields["check_two"].choices == {k: k.upper() for k in "abcde"}


def test_choice_labels_that_are_numbers_are_their_scores(tmp_path: Path) -> None:
    """A field coded ``1, 0 | 2, 1 | 3, 2 | 4, 3`` labels each choice with its score: the
    labels are read as the scores they say (a coding-differs warning), and an answer that
    is one choice's code and another's label ("1": code 1, scored 0, or the label of code 2,
    scored 1?) is not scored. Numeric labels were passed over, so raw code 1 was scored 1
    and the label export's "0" became code 1 and was scored 1 too."""
    header = "Variable / Field Name,Form Name,Field Type,Field Label,Choices\n"
    fields = "".join(
        f'phq9_{i},phq9,radio,Q{i},"1, 0 | 2, 1 | 3, 2 | 4, 3"\n' for i in range(1, 10)
    )
    (tmp_path / "dictionary.csv").write_text(header + "record_id,phq9,text,Record ID,\n" + fields)
    opts = load_read_options(redcap_dictionary=tmp_path / "dictionary.csv")
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    raw = tmp_path / "raw.csv"
    raw.write_text(
        f"record_id,redcap_event_name,{items}\nA,b_arm_1,{'4,' * 8}4\nB,b_arm_1,1,{'4,' * 7}4\n"
    )
    data = read_paths([raw], options=opts)
    assert {i.code for i in data.issues} == {"coding-differs"}
    assert "('0' 1 -> 0, '1' 2 -> 1, '2' 3 -> 2, '3' 4 -> 3)" in data.issues[0].message
    a, b = score(data.records)
    assert a.scores == {"total": 27}  # code 4 is only a code: its label says 3
    assert b.scores == {"total": None}
    (issue,) = b.issues
    assert (issue.code, issue.item) == ("coding-conflict", "1")
    assert (
        "answer '1' is choice '1' ('0') of REDCap field phq9_1, and also the label of choice '2'"
        in issue.message
    )
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"Record ID,Event Name,{','.join(f'Q{i}' for i in range(1, 10))}\nC,b,{'0,' * 8}0\n"
    )
    (result,) = score(read_paths([labels], options=opts, fmt="redcap").records)
    assert result.scores == {"total": 0}  # "0" is only a label: the label of code 1


def test_a_bad_repeat_instance_names_the_record_id_wherever_it_is(tmp_path: Path) -> None:
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    export = tmp_path / "export.csv"
    export.write_text(
        f"redcap_event_name,record_id,redcap_repeat_instance,{items}\n"
        f"week_1_arm_1,101,1.5,{'1,' * 8}1\n"
    )
    opts = load_read_options(redcap_dictionary=FORMATS / "redcap-phq9-dictionary.csv")
    data = read_paths([export], options=opts, fmt="redcap")
    (issue,) = data.issues
    assert (issue.code, issue.subject, issue.visit) == ("bad-field", "101", "week_1_arm_1")


def test_a_raw_export_without_its_dictionary_warns_once_that_codes_are_scores(
    tmp_path: Path,
) -> None:
    """A raw export holds REDCap's choice codes, which many projects number from 1 (1, Not
    at all | 2, Several days ...): read without the data dictionary, each code was taken as
    the scale's score without a word, so every total could be off by the number of items.
    One warning per file says so and how to give the dictionary; with it, or when the
    answers are labels, there is nothing to warn of."""
    header = "record_id,redcap_event_name," + ",".join(f"phq9_{i}" for i in range(1, 10))
    rows = [f"{n},baseline_arm_1," + ",".join(["2"] * 9) for n in range(1, 6)]
    raw = tmp_path / "raw.csv"
    raw.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    data = read_paths([raw])
    assert len(data.records) == 5
    (issue,) = data.issues
    assert (issue.code, issue.severity, issue.line) == ("redcap-codes", "warning", 1)
    assert issue.message == (
        f"{raw}:1: 45 answer(s) (phq9 items 1, 2, 3, 4, 5, 6, 7, 8, 9) are REDCap codes, "
        "taken as the scale's scores without the project's data dictionary: where a field "
        "codes a choice otherwise than the scale (1 = Not at all, which the scale scores 0), "
        "every score from it is off; give the project's data dictionary with "
        "--redcap-dictionary (in REDCap: Project Setup, Data Dictionary, download the current "
        "data dictionary): each code is then checked against its label; nothing to do if the "
        "fields' codes are the scale's scores"
    )
    opts = load_read_options(redcap_dictionary=FORMATS / "redcap-phq9-dictionary.csv")
    assert read_paths([raw], options=opts).issues == []
    labels = tmp_path / "labels.csv"  # raw headers, label answers: matched by meaning
    labels.write_text(
        header + "\n1,baseline_arm_1," + ",".join(["Several days"] * 9) + "\n", encoding="utf-8"
    )
    labelled = read_paths([labels])
    assert labelled.issues == [] and [r.scores["total"] for r in score(labelled.records)] == [9]
