"""Choosing a reader: registered formats, detection, options through read_paths."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from ketascore.core.records import AnswerRecord
from ketascore.readers import (
    FORMAT_READERS,
    FormatContext,
    FormatReader,
    ReadOptions,
    ReadResult,
    input_formats,
    is_input_file,
    read_bytes,
    read_paths,
    read_text,
    register_format,
)
from ketascore.readers.formats import xpt

from conftest import DATA

FORMATS = DATA / "formats"


def test_format_names() -> None:
    assert input_formats() == (
        "yaml",
        "json",
        "jsonl",
        "csv",
        "csv-long",
        "xlsx",
        "xpt",
        "parquet",
        "fhir",
        "sdtm",
        "redcap",
        "csv-mapped",
    )
    with pytest.raises(ValueError, match=r"choose one of yaml, json, .*, fhir, sdtm"):
        read_text("x", "x.csv", "sas")


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("qs.csv", "STUDYID,USUBJID,QSTESTCD,QSSTRESN,VISIT\n", "sdtm"),
        ("rs.txt", "USUBJID;RSTESTCD;RSSTRESN;VISIT\n", "sdtm"),
        ("e.csv", "study_id,redcap_event_name,phq9_1\n", "redcap"),
        ("e.csv", "record_id,age,demographics_complete\n", "redcap"),
        ("r.json", '{"resourceType": "QuestionnaireResponse"}', "fhir"),
        ("r.ndjson", '{"resourceType": "Patient"}\n{"resourceType": "Patient"}\n', "fhir"),
        ("w.csv", "subject,visit,phq9_1\n", None),
        ("r.json", '{"subject": "S", "visit": "v", "items": {}}', None),
        ("r.yaml", "resourceType: QuestionnaireResponse\n", None),
        ("record_id.csv", "subject,visit,record_id\n", None),
    ],
)
def test_detection(name: str, text: str, expected: str | None) -> None:
    from ketascore.readers import _context, _text_reader

    reader = _text_reader(None, name, text, _context([], None))
    assert (reader.name if reader else None) == expected


def test_existing_formats_are_unchanged() -> None:
    data = read_text("subject,visit,phq9_1\nS1,v1,2\n", "w.csv", scale_ids=["phq9"])
    (rec,) = data.records
    assert rec.items == {"1": "2"} and data.issues == []
    data = read_text("subject,visit,phq9_1\nS1,v1,2\n", "w.csv")
    assert [i.code for i in data.issues] == ["csv-columns"]  # no known scale ids given


def test_mapping_claims_csv_but_not_yaml(tmp_path: Path) -> None:
    from ketascore.readers.formats import load_read_options

    opts = load_read_options(map=FORMATS / "mapped-phq9.yaml")
    (tmp_path / "a.yaml").write_text("subject: S\nvisit: v\nscale: phq9\nitems: {1: 2}\n")
    (tmp_path / "b.csv").write_text("ID,Wave,Q1,Q2,Q3,Q4,Q5,Q6,Q7,Q8,Q9\nZ,1,1,1,1,1,1,1,1,1,1\n")
    data = read_paths([tmp_path], options=opts)
    assert [(r.subject, r.items.get("1")) for r in data.records] == [("S", 2), ("Z", "1")]


def test_binary_formats_by_extension_and_magic(tmp_path: Path) -> None:
    assert is_input_file("a.xpt") and is_input_file("b.XLSX") and not is_input_file("~$b.xlsx")
    assert not is_input_file("notes.docx")
    buf = io.BytesIO()
    variables = [
        xpt.Variable("USUBJID", numeric=False, length=4),
        xpt.Variable("QSTESTCD", numeric=False),
    ]
    xpt.write_xport(buf, "QS", variables, [["K1", "GAD0201"]])
    data = read_bytes(buf.getvalue(), "<stdin>")  # no name: known by its first bytes
    (issue,) = data.issues
    assert issue.code == "missing-column"  # an SDTM table without results or visits


def test_a_new_format_can_be_registered() -> None:
    def read(text: str, file: str, context: FormatContext) -> ReadResult:
        subject, visit, answer = text.strip().split(":")
        record = AnswerRecord(subject=subject, visit=visit, scale="phq9", items={"1": answer})
        return ReadResult(records=[record], files=[file])

    def detect(name: str, text: str, requested: str | None, context: FormatContext) -> bool:
        return name.endswith(".colon")

    register_format(FormatReader("colon", read_text=read, detect=detect, extensions=(".colon",)))
    try:
        (rec,) = read_text("S9:v2:3\n", "x.colon").records
        assert (rec.subject, rec.visit, rec.items) == ("S9", "v2", {"1": "3"})
        assert is_input_file("y.colon")
        with pytest.raises(ValueError):
            register_format(FormatReader("csv"))
    finally:
        del FORMAT_READERS["colon"]


def test_options_reach_stdin() -> None:
    text = json.dumps({"resourceType": "Patient"}).encode()
    data = read_paths(["-"], stdin=io.BytesIO(text), options=ReadOptions())
    assert [i.code for i in data.issues] == ["unsupported-resource"]
    assert data.files == ["<stdin>"]


@pytest.mark.parametrize(
    ("name", "data", "said"),
    [
        (
            "visits.xls",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500,
            "this is an Excel 97-2003 workbook (.xls) or a workbook protected by a password, "
            "which ketascore does not read; open it in a spreadsheet program and save it as "
            ".xlsx (without a password) or CSV",
        ),
        (  # a workbook protected by a password is such a file, whatever its name
            "visits.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 500,
            "this is an Excel 97-2003 workbook (.xls) or a workbook protected by a password",
        ),
        (
            "qs.csv",
            b"\x00" * 12 + b"\xc2\xea\x81\x60\xb3\x14\x11\xcf\xbd\x92\x08\x00\x09\xc7\x31\x8c",
            "this is a SAS data set (.sas7bdat), which ketascore does not read; export it "
            "from SAS as a transport file (.xpt, XPORT version 5) or as CSV",
        ),
        ("ratings.csv", b"%PDF-1.7\n%\xe2\xe3\n", "this is a PDF document"),
        ("ratings.csv", b"PK\x03\x04\x14\x00\x00\x00", "this is a zip archive"),
    ],
)
def test_a_file_of_a_format_ketascore_does_not_read_says_what_it_is(
    tmp_path: Path, name: str, data: bytes, said: str
) -> None:
    """An .xls workbook, a SAS data set or a PDF named on the command line was 'a binary
    file, not YAML, JSON or CSV; remove it from the folder', or read as Latin-1 text (a
    YAML syntax error), or for a protected workbook 'File is not a zip file': the message
    now says what the file is and how to get a file ketascore reads."""
    path = tmp_path / name
    path.write_bytes(data)
    (issue,) = read_paths([path]).issues
    assert issue.code == "file-format"
    assert issue.message.startswith(f"{path}: {said}")
