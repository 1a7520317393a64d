"""Excel workbooks: wide and long sheets, --sheet, dates, formula errors."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from ketascore.api import score
from ketascore.readers import ReadOptions, read_paths
from ketascore.readers.formats import load_read_options

from conftest import DATA

openpyxl = pytest.importorskip("openpyxl")

MADRS = [f"madrs_{i}" for i in range(1, 11)]


def _book(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = openpyxl.Workbook()
    first = True
    for name, rows in sheets.items():
        sheet = book.active if first else book.create_sheet(name)
        sheet.title = name
        first = False
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def test_wide_sheet_with_a_formula_error(tmp_path: Path) -> None:
    path = _book(
        tmp_path / "visits.xlsx",
        {
            "Scores": [
                ["subject", "visit", "date", "arm", *MADRS],
                ["S1", "baseline", dt.datetime(2024, 1, 8), "ketamine", *[3] * 10],
                ["S2", "baseline", dt.date(2024, 1, 9), "placebo", 4, 4, "#DIV/0!", *[4] * 7],
                [None],
                ["S3", "baseline", "2024-01-10", "placebo", *[2] * 9, None],
            ]
        },
    )
    data = read_paths([path])
    assert data.issues == []
    s1, s2, s3 = data.records
    assert (s1.subject, s1.date, s1.extra, s1.source.line) == (
        "S1",
        "2024-01-08",
        {"arm": "ketamine"},
        2,
    )
    assert s2.date == "2024-01-09" and s3.source.line == 5
    results = score(data.records)
    assert results[0].scores == {"total": 30}
    # the error cell is an unusable answer, never a missing one: no score
    assert results[1].scores == {"total": None}
    (issue,) = results[1].issues
    assert issue.code == "cell-error"
    assert (issue.file, issue.line, issue.subject, issue.visit, issue.item) == (
        str(path),
        3,
        "S2",
        "baseline",
        "3",
    )
    assert "sheet 'Scores' cell G3 holds the formula error #DIV/0!" in issue.message
    assert results[2].scores == {"total": None}  # item 10 missing: MADRS has no prorating


def test_formula_cells_use_their_saved_values(tmp_path: Path) -> None:
    path = tmp_path / "f.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["subject", "visit", *[f"phq9_{i}" for i in range(1, 10)]])
    sheet.append(["S1", "v1", 1, 1, 1, 1, 1, 1, 1, 1, "=1+0"])
    book.save(path)
    data = read_paths([path])
    (result,) = score(data.records)
    # openpyxl writes formulas without their value: never calculated, so never a score
    assert result.scores == {"total": None}
    (issue,) = result.issues
    assert issue.code == "cell-error" and issue.item == "9"
    assert "holds a formula (=1+0) whose value was never calculated" in issue.message


def test_long_sheet_and_sheet_option(tmp_path: Path) -> None:
    long_rows: list[list[Any]] = [["subject", "visit", "scale", "item", "value"]]
    long_rows += [["P1", "week1", "phq9", i, 1] for i in range(1, 10)]
    path = _book(
        tmp_path / "two.xlsx",
        {"Notes": [["nothing to see"]], "Long": long_rows},
    )
    data = read_paths([path], options=ReadOptions(sheet="Long"))
    (result,) = score(data.records)
    assert result.scores == {"total": 9} and result.ok
    first = read_paths([path])  # the first sheet is not a table of answers
    assert [i.code for i in first.issues] == ["csv-columns"]
    missing = read_paths([path], options=ReadOptions(sheet="Scores"))
    (issue,) = missing.issues
    assert (
        issue.code == "file-format" and "no sheet 'Scores' (sheets: Notes, Long)" in issue.message
    )


def test_sheet_through_a_mapping(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["ID", "Wave", *[f"Q{i}" for i in range(1, 10)], "Site", "Total"]]
    rows += [["A1", 1, 1, 1, 1, 2, 2, 3, 3, 3, 0, "north", 16]]
    path = _book(tmp_path / "survey.xlsx", {"Sheet1": rows})
    opts = load_read_options(map=DATA / "formats" / "mapped-phq9.yaml")
    (result,) = score(read_paths([path], options=opts).records)
    assert result.scores == {"total": 16} and result.ok and result.extra == {"site": "north"}


def test_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    data = read_paths([path])
    (issue,) = data.issues
    assert issue.code == "parse-error" and "not a readable .xlsx workbook" in issue.message


def test_folders_include_workbooks_but_not_lock_files(tmp_path: Path) -> None:
    _book(tmp_path / "a.xlsx", {"S": [["subject", "visit", "phq9_1"], ["S1", "v", 1]]})
    (tmp_path / "~$a.xlsx").write_bytes(b"lock")
    data = read_paths([tmp_path])
    assert data.files == [str(tmp_path / "a.xlsx")] and len(data.records) == 1


def test_merged_cells_are_reported_never_read_as_blank(tmp_path: Path) -> None:
    # A subject written once for three visits (A2:A4) and an answer written once for two
    # rows (C5:C6): the covered cells read blank, which would skip rows 3-4 for want of a
    # subject and prorate S2's week1 total without item 1. Nothing is copied into them:
    # the rows are skipped with a message naming the sheet and the range.
    phq9 = [f"phq9_{i}" for i in range(1, 10)]
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Scores"
    for row in [
        ["subject", "visit", *phq9],
        ["S1", "baseline", *[1] * 9],
        [None, "week1", *[2] * 9],
        [None, "week2", *[0] * 9],
        ["S2", "baseline", *[1] * 9],
        ["S2", "week1", *[3] * 9],
        ["S3", "baseline", "2", *[None] * 8],
    ]:
        sheet.append(row)
    sheet.merge_cells("A2:A4")
    sheet.merge_cells("C5:C6")
    sheet.merge_cells("D7:K7")  # one answer across eight items of one row
    sheet.merge_cells("M2:N9")  # right of the table and below it: nothing read is covered
    path = tmp_path / "merged.xlsx"
    book.save(path)
    data = read_paths([path])
    assert [(r.subject, r.visit) for r in data.records] == [("S1", "baseline"), ("S2", "baseline")]
    assert [(i.code, i.line) for i in data.issues] == [
        ("merged-cells", 3),
        ("merged-cells", 6),
        ("merged-cells", 7),
    ]
    assert data.issues[0].message == (
        f"{path}:3: sheet 'Scores' cells A2:A4 are merged: only the first holds a value and "
        "the others read blank; row(s) 3, 4 skipped; unmerge the cells and write the value in "
        "each one"
    )
    assert "cells C5:C6 are merged" in data.issues[1].message
    assert "row(s) 7 skipped" in data.issues[2].message


def test_merged_header_cells_leave_the_sheet_unread(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["subject", "visit", "phq9 items"])
    sheet.append(["S1", "baseline", *[1] * 9])
    sheet.merge_cells("C1:K1")
    path = tmp_path / "header.xlsx"
    book.save(path)
    data = read_paths([path])
    assert data.records == []
    (issue,) = data.issues
    assert (issue.code, issue.line) == ("merged-cells", 1)
    assert "cells C1:K1 of the header row are merged" in issue.message


def test_an_error_cell_is_never_a_subject_or_visit(tmp_path: Path) -> None:
    # a lookup that found nothing (#N/A) made the subject '#N/A', and every such row one
    # subject; the row is skipped with the cell's error, wide and through a mapping file
    phq9 = [f"phq9_{i}" for i in range(1, 10)]
    path = _book(
        tmp_path / "ids.xlsx",
        {
            "Scores": [
                ["subject", "visit", *phq9],
                ["#N/A", "baseline", *[1] * 9],
                ["S2", "#REF!", *[1] * 9],
                ["S3", "baseline", *[1] * 9],
            ]
        },
    )
    data = read_paths([path])
    assert [r.subject for r in data.records] == ["S3"]
    assert [(i.code, i.line, i.subject, i.visit) for i in data.issues] == [
        ("missing-field", 2, None, "baseline"),
        ("missing-field", 3, "S2", None),
    ]
    assert data.issues[0].message == (
        f"{path}:2: visit baseline: sheet 'Scores' cell A2 holds the formula error #N/A, "
        "where the row's subject should be; row skipped; correct the cell in the "
        "spreadsheet so that it holds the subject"
    )
    rows: list[list[Any]] = [["ID", "Wave", *[f"Q{i}" for i in range(1, 10)], "Site", "Total"]]
    rows += [["#N/A", 1, 1, 1, 1, 2, 2, 3, 3, 3, 0, "north", 16]]
    mapped = _book(tmp_path / "survey.xlsx", {"Sheet1": rows})
    opts = load_read_options(map=DATA / "formats" / "mapped-phq9.yaml")
    data = read_paths([mapped], options=opts)
    assert data.records == []
    (issue,) = data.issues
    assert "cell A2 holds the formula error #N/A, where the row's subject should be" in (
        issue.message
    )


def test_merged_cells_are_found_whatever_openpyxl_tells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ranges are read from the sheet's XML part, whose name openpyxl's read-only sheet
    keeps in a private attribute; without it the workbook is loaded whole to ask for them,
    never passing over a merge."""
    from ketascore.readers import xlsx

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["subject", "visit", "phq9_1"])
    sheet.append(["S1", "v1", 1])
    sheet.append([None, "v2", 2])
    sheet.merge_cells("A2:A3")
    path = tmp_path / "m.xlsx"
    book.save(path)
    data = path.read_bytes()
    read_only = openpyxl.load_workbook(path, read_only=True)
    assert xlsx._merged_ranges(data, read_only[sheet.title]) == ["A2:A3"]

    class Bare:  # a read-only sheet as another openpyxl might give it
        title = sheet.title

    assert xlsx._merged_ranges(data, Bare()) == ["A2:A3"]
    read_only.close()


def test_a_date_shown_as_a_number_says_what_date_it_may_be(tmp_path: Path) -> None:
    """A date column formatted as 'General' gives the spreadsheet's date serial (45292),
    which was reported as "date '45292' is not an ISO date" and nothing more: the message
    now says it is a number, the date it would be as a serial, and how to fix the sheet. The
    number is never taken for that date."""
    path = _book(
        tmp_path / "serial.xlsx",
        {
            "Scores": [
                ["subject", "visit", "date", *MADRS],
                ["S1", "baseline", 45292, *[1] * 10],
                ["S2", "baseline", "2024", *[1] * 10],  # (a year: no serial is guessed)
            ]
        },
    )
    data = read_paths([path])
    assert [r.date for r in data.records] == [None, None]
    first, second = data.issues
    assert first.message == (
        f"{path}:2: subject S1, visit baseline: date '45292' is a number, not a date (as a "
        "spreadsheet's date serial number it would be 2024-01-01, if the column holds dates "
        "formatted as numbers); format the column as dates in the spreadsheet, or write the "
        "date as YYYY-MM-DD; the row is scored without a date"
    )
    assert "date '2024' is not an ISO date (YYYY-MM-DD)" in second.message


def test_a_hidden_first_sheet_is_not_read_without_sheet(tmp_path: Path) -> None:
    """Without --sheet the first sheet was read even when hidden: an old version of the
    ratings, hidden rather than deleted, was scored in place of the sheet a spreadsheet
    program shows. The first sheet shown is read, with a warning naming the hidden ones;
    --sheet still reads a hidden sheet."""
    phq9 = [f"phq9_{i}" for i in range(1, 10)]
    book = openpyxl.Workbook()
    old = book.active
    old.title = "Old"
    old.append(["subject", "visit", *phq9])
    old.append(["S1", "v1", *[3] * 9])
    current = book.create_sheet("Current")
    current.append(["subject", "visit", *phq9])
    current.append(["S1", "v1", *[0] * 9])
    old.sheet_state = "hidden"
    book.active = 1
    path = tmp_path / "hidden.xlsx"
    book.save(path)
    data = read_paths([path])
    (record,) = data.records
    assert record.items["1"] == 0
    (issue,) = data.issues
    assert (issue.code, issue.severity) == ("hidden-sheet", "warning")
    assert issue.message == (
        f"{path}: the workbook's first sheet(s) 'Old' are hidden; the first sheet shown, "
        "'Current', was read; nothing to do if that sheet holds the ratings; to read a "
        "hidden one, name it with --sheet"
    )
    named = read_paths([path], options=ReadOptions(sheet="Old"))
    assert named.issues == [] and named.records[0].items["1"] == 3
