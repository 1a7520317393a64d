"""CDISC SDTM QS/RS: categories, test codes, NOT DONE, derived totals, baseline flags, .xpt."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ketascore.api import score
from ketascore.readers import ReadOptions, read_paths, read_text
from ketascore.readers.formats import load_read_options, xpt

from conftest import DATA

FORMATS = DATA / "formats"


def test_admiral_gad7_rows_give_the_totals_of_their_derived_rows(shared_data: Path) -> None:
    path = shared_data / "sdtm" / "admiral_example_qs.csv"
    data = read_paths([path])
    visits = [(r.subject, r.visit, r.scale) for r in data.records]
    assert visits == [
        ("P0001", "VISIT 1", "gad7"),
        ("P0001", "UNSCHEDULED VISIT 5.01", "gad7"),
        ("P0001", "VISIT 6", "gad7"),
        ("P0001", "VISIT 12", "gad7"),
    ]
    # the GDS and sleep rows: no such scale, reported once per category and ignored
    assert [(i.code, i.severity, i.line) for i in data.issues] == [
        ("unknown-category", "warning", 34),
        ("unknown-category", "warning", 154),
    ]
    assert "120 row(s) of category 'GDS SHORT FORM' match no known scale" in data.issues[0].message
    first = data.records[0]
    assert first.reported == {"total": "15"} and first.reported_lines == {"total": 9}
    assert first.date == "2012-11-16" and first.extra == {"study_id": "STUDYX", "visit_number": 1}
    results = score(data.records)
    assert [r.scores["total"] for r in results] == [15, 14, 13, 7]
    assert all(r.ok for r in results)  # each stored GAD0208 equals the computed total


def test_category_option_keeps_one_category(shared_data: Path) -> None:
    path = shared_data / "sdtm" / "admiral_example_qs.csv"
    data = read_paths([path], options=ReadOptions(category="gad-7 v2"))
    assert len(data.records) == 4 and data.issues == []
    data = read_paths([path], options=ReadOptions(category="GDS SHORT FORM"))
    assert data.records == [] and [i.code for i in data.issues] == ["unknown-category"]


def test_phq9_qs_rows() -> None:
    data = read_paths([FORMATS / "sdtm-qs.csv"])
    assert [(i.code, i.line) for i in data.issues] == [("unknown-category", 32)]
    base, week1, other = data.records
    assert (base.subject, base.visit, base.day) == ("KET-01-001", "BASELINE", 1)
    assert base.extra == {"study_id": "KET-01", "visit_number": 1, "baseline_flag": "Y"}
    assert "baseline_flag" not in week1.extra
    assert week1.items["3"] is None  # QSSTAT = NOT DONE: missing, never a score
    assert other.items["3"] == "Several days"  # no QSSTRESN: the original result (a label)
    results = score(data.records)
    assert results[0].scores == {"total": 17} and results[0].ok
    # one item not done: prorated (4 x 9 / 8); the sponsor stored the plain sum, 4
    assert results[1].scores == {"total": 4.5} and results[1].prorated == {"total": True}
    (mismatch,) = [i for i in results[1].issues if i.code == "reported-score-mismatch"]
    assert mismatch.line == 21 and "stores total = 4 but the items give 4.5" in mismatch.message
    assert results[2].scores == {"total": 9}
    assert [i.code for i in results[2].issues] == ["reported-score-mismatch"]


def test_sdtm_without_required_columns() -> None:
    data = read_paths([FORMATS / "sdtm-missing-columns.csv"])
    (issue,) = data.issues
    assert issue.code == "missing-column" and issue.line == 1
    assert "lacks the column(s) QSSTRESN or QSORRES" in issue.message
    assert data.records == []
    forced = read_text("USUBJID,VISIT\nS1,V1\n", "qs.csv", "sdtm")
    (issue,) = forced.issues
    assert "lacks the column(s) QSTESTCD, QSSTRESN or QSORRES" in issue.message


def test_rs_domain_for_hamd17() -> None:
    rows = ["STUDYID,USUBJID,RSTESTCD,RSCAT,RSSTRESN,VISIT,VISITNUM,RSDTC"]
    codes = [f"HAMD1{i:02d}" for i in range(1, 16)] + ["HAMD116A", "HAMD117"]
    values = [2, 2, 0, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0]
    rows += [
        f"S,K1,{c},HAMD 17,{v},WEEK 2,3,2024-02-01" for c, v in zip(codes, values, strict=True)
    ]
    rows += ["S,K1,HAMD199,HAMD 17,4,WEEK 2,3,2024-02-01"]
    data = read_text("\n".join(rows) + "\n", "rs.csv")
    (rec,) = data.records
    assert rec.scale == "hamd17" and rec.items["16a"] == "1"
    (issue,) = data.issues
    assert issue.code == "unknown-item" and "test code HAMD199 (1 row(s))" in issue.message
    (result,) = score(data.records)
    assert result.scores["total"] == sum(values)


def test_sdtm_as_sas_transport(tmp_path: Path) -> None:
    names = ["USUBJID", "QSTESTCD", "QSCAT", "QSSTRESN", "VISIT", "VISITNUM", "QSDTC"]
    variables = [xpt.Variable(n, numeric=n in ("QSSTRESN", "VISITNUM"), length=10) for n in names]
    rows = [
        ["K1", f"GAD020{i}", "GAD-7 V2", 2.0, "BASELINE", 1.0, "2024-01-02"] for i in range(1, 8)
    ]
    rows.append(["K1", "GAD0208", "GAD-7 V2", 14.0, "BASELINE", 1.0, "2024-01-02"])
    buf = io.BytesIO()
    xpt.write_xport(buf, "QS", variables, rows)
    path = tmp_path / "qs.xpt"
    path.write_bytes(buf.getvalue())
    data = read_paths([path])
    (rec,) = data.records
    assert data.issues == [] and rec.date == "2024-01-02"
    assert rec.items == {str(i): 2 for i in range(1, 8)} and rec.reported == {"total": 14}
    assert rec.source.line == 1 and rec.reported_lines == {"total": 8}
    (result,) = score(data.records)
    assert result.scores == {"total": 14} and result.ok


def test_sdtm_through_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(
        "scale: gad7\ncategory: ANXIETY SCREEN\nitems: {1: A1, 2: A2, 3: A3, 4: A4, 5: A5,"
        " 6: A6, 7: A7}\nscores: {total: ATOT}\ncarry: {arm: ARM}\n"
    )
    rows = ["USUBJID,QSTESTCD,QSCAT,QSORRES,VISIT,ARM"]
    rows += [f"K2,A{i},ANXIETY SCREEN,Several days,SCREENING,ketamine" for i in range(1, 8)]
    rows += ["K2,ATOT,ANXIETY SCREEN,7,SCREENING,ketamine", "K2,X1,OTHER,3,SCREENING,ketamine"]
    (tmp_path / "qs.csv").write_text("\n".join(rows) + "\n")
    opts = load_read_options(map=tmp_path / "m.yaml")
    data = read_paths([tmp_path / "qs.csv"], options=opts)
    (rec,) = data.records
    assert data.issues == [] and rec.extra == {"arm": "ketamine"}
    (result,) = score(data.records)
    assert result.scores == {"total": 7} and result.ok


def test_derived_item_rows_are_reported_not_passed_over(tmp_path: Path) -> None:
    """An item row that the sponsor derived (QSDRVFL = Y: an imputed value) is not an
    answer, and says so in a warning counting such rows; it was left out in silence, the
    total then prorated from the other items."""
    text = (FORMATS / "sdtm-qs.csv").read_text()
    lines = text.splitlines(keepends=True)
    header = lines[0].split(",")
    drv = header.index("QSDRVFL")
    for n in (1, 2):  # the baseline rows of items 1 and 2 of the first subject
        cells = lines[n].split(",")
        cells[drv] = "Y"
        lines[n] = ",".join(cells)
    (tmp_path / "qs.csv").write_text("".join(lines))
    data = read_paths([tmp_path / "qs.csv"])
    derived = [i for i in data.issues if i.code == "derived-answer"]
    assert [(i.item, i.line, i.severity) for i in derived] == [
        ("1", 2, "warning"),
        ("2", 3, "warning"),
    ]
    assert "1 row(s) derived by the sponsor (QSDRVFL = Y), not answered" in derived[0].message
    first = data.records[0]
    assert "1" not in first.items and "2" not in first.items
    # (derived totals are stored scores, not answers)
    assert "derived-answer" not in {i.code for i in read_paths([FORMATS / "sdtm-qs.csv"]).issues}


def test_a_visit_number_beyond_a_double_is_carried_as_written(tmp_path: Path) -> None:
    """VISITNUM is read as the value grammar reads numbers; a number too long to be one
    (5,000 digits: infinite as a double) is kept as written. It became infinity, and JSON
    output stopped with an internal error (exit 3)."""
    from click.testing import CliRunner

    from ketascore.cli import cli

    big = "9" * 5000
    rows = "".join(f"K,S1,PHQ010{i},PHQ-9,1,{big},BASE\n" for i in range(1, 10))
    path = tmp_path / "qs.csv"
    path.write_text("STUDYID,USUBJID,QSTESTCD,QSCAT,QSSTRESN,VISITNUM,VISIT\n" + rows)
    (record,) = read_paths([path]).records
    assert record.extra["visit_number"] == big
    result = CliRunner().invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output


def test_a_visit_taken_from_visitnum_is_the_number_however_written(tmp_path: Path) -> None:
    """Without VISIT, the visit is VISITNUM's number: 1.0 in a CSV file is visit 1, as the
    same number in a SAS transport file is (it was the visit '1.0' beside '1'); a text that
    is no number stays as written."""
    rows = []
    for subject, number in (("S1", "1.0"), ("S2", "1"), ("S3", "01"), ("S4", "2.5"), ("S5", "WK1")):
        rows += [f"K,{subject},PHQ010{i},PHQ-9,1,{number},\n" for i in range(1, 10)]
    path = tmp_path / "qs.csv"
    path.write_text("STUDYID,USUBJID,QSTESTCD,QSCAT,QSSTRESN,VISITNUM,VISIT\n" + "".join(rows))
    records = read_paths([path]).records
    assert [(r.subject, r.visit) for r in records] == [
        ("S1", "1"), ("S2", "1"), ("S3", "1"), ("S4", "2.5"), ("S5", "WK1"),
    ]  # fmt: skip


def test_a_result_with_a_character_that_does_not_show_is_unreadable(
    shared_data: Path, tmp_path: Path
) -> None:
    """A QSSTRESN of ``2`` followed by a zero-width space (or a byte-order mark, a no-break
    space) was taken for another coding of its label: a coding-differs warning that read
    'QSSTRESN holds 2 where ... the scale scores 2', and the label's score. It is no
    number: the item is unscored and the message names the character."""
    text = (shared_data / "sdtm" / "admiral_example_qs.csv").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[1].endswith(",More than half the days,GAD-7 V2,2")
    for char, name in [
        ("\u200b", "U+200B (ZERO WIDTH SPACE)"),
        ("\ufeff", "U+FEFF (ZERO WIDTH NO-BREAK SPACE)"),
        ("\u00a0", "U+00A0 (NO-BREAK SPACE)"),
    ]:
        path = tmp_path / "qs.csv"
        path.write_text("\n".join([lines[0], lines[1] + char, *lines[2:]]), encoding="utf-8")
        results = score(read_paths([path]).records)
        assert [r.scores["total"] for r in results] == [None, 14, 13, 7]
        (issue, _mismatch) = results[0].issues
        assert (issue.code, issue.line, issue.item) == ("not-a-number", 2, "1")
        assert issue.message.endswith(
            f"gad7 item 1: {'2' + char!r} holds the character {name}, which does not show "
            "or looks like a space, so it is neither a number nor an answer label; retype "
            "the value without that character; scores that use this item are left empty"
        )


def test_a_label_with_a_character_that_does_not_show_names_it() -> None:
    text = (
        "USUBJID,QSCAT,QSTESTCD,VISIT,QSORRES\n"
        + "".join(f"S1,GAD-7 V2,GAD020{i},V1,Several days\n" for i in range(1, 7))
        + "S1,GAD-7 V2,GAD0207,V1,Several\u200b days\n"
    )
    (result,) = score(read_text(text, "qs.csv").records)
    (issue,) = result.issues
    assert issue.code == "unknown-label" and issue.line == 8
    assert "'Several\\u200b days' holds the character U+200B (ZERO WIDTH SPACE)" in issue.message


@pytest.mark.parametrize("partial", ["2024-01", "2024", "2024---08", "2024-01--"])
def test_a_partial_date_is_a_warning_and_no_date(tmp_path: Path, partial: str) -> None:
    """SDTM dates may be partial (ISO 8601: a year, a year and month, dashes for an unknown
    part; SDTMIG 4.4.4). Such a QSDTC was a bad-field error on every row (exit 1 on valid
    SDTM data); it is now one warning per record, which is scored without a date and keeps
    its study day."""
    text = (FORMATS / "sdtm-qs.csv").read_text().replace("2024-01-08", partial)
    (tmp_path / "qs.csv").write_text(text)
    data = read_paths([tmp_path / "qs.csv"])
    assert not [i for i in data.issues if i.severity == "error"]
    warned = [i for i in data.issues if i.code == "partial-date"]
    first = data.records[0]
    assert [(i.subject, i.visit) for i in warned] == [(first.subject, first.visit)]
    assert f"QSDTC '{partial}' is a partial date" in warned[0].message
    assert first.date is None and first.day == 1
    full = read_paths([FORMATS / "sdtm-qs.csv"]).records[0]
    assert first.items == full.items and full.date == "2024-01-08"


def test_a_repeated_row_is_a_duplicate_record_warning(tmp_path: Path) -> None:
    """A QS row given again (the same subject, visit, test code and result) is one answer,
    and the record warns once (duplicate-record, at its first row, naming the repeated
    rows), as a wide row's copies do; it was merged without a word."""
    rows = [f"S1,PHQ010{i},PHQ-9,1,V1\n" for i in range(1, 10)]
    rows += [rows[2], rows[4], "S2,PHQ0101,PHQ-9,1,V1\n"]
    path = tmp_path / "qs.csv"
    path.write_text("USUBJID,QSTESTCD,QSCAT,QSSTRESN,VISIT\n" + "".join(rows))
    read = read_paths([path])
    record, other = score(read.records)
    assert [i.code for i in record.issues] == ["duplicate-record"]
    assert record.issues[0].message == (
        f"{path}:2: subject S1, visit V1: 2 row(s) give an item's answer again, the same "
        f"({path}:11, {path}:12); each answer counted once; nothing to do: the repeated rows "
        "were merged"
    )
    assert record.scores["total"] == 9 and not read.issues
    assert "duplicate-record" not in [i.code for i in other.issues]  # (one row each)
