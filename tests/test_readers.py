"""Reading answer files: YAML, JSON, JSON Lines, CSV wide and long, detection, stdin."""

from __future__ import annotations

import io
import json
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from hypothesis import strategies as st

from ketascore.api import score
from ketascore.core.values import Rejection, day_number, finite_number
from ketascore.readers import decode, detect_format, iter_input_files, read_paths, read_text
from ketascore.readers.base import SCRIPT_UTF16, utf16_without_bom

from conftest import budget

IDS = ["madrs", "phq9", "hamd17", "qids-sr16"]


def test_yaml_single_record_keeps_identifiers_as_written() -> None:
    text = "subject: 007\nvisit: 1\nscale: phq9\nday: 0\narm: ketamine\nitems:\n  1: 2\n  2: x\n"
    result = read_text(text, "r.yaml")
    (rec,) = result.records
    assert (rec.subject, rec.visit, rec.scale, rec.day) == ("007", "1", "phq9", 0)
    assert rec.items == {"1": 2, "2": "x"}
    assert rec.extra == {"arm": "ketamine"}
    assert rec.source.line == 1 and rec.item_lines == {"1": 7, "2": 8}
    assert result.issues == []


def test_yaml_list_of_records_has_lines() -> None:
    text = "- {subject: A, visit: v, items: {1: 1}}\n- {subject: B, visit: v, items: {1: 2}}\n"
    result = read_text(text, "r.yaml")
    assert [r.source.line for r in result.records] == [1, 2]


def test_yaml_yes_no_stay_text() -> None:
    (rec,) = read_text("subject: A\nvisit: v\nitems: {q1: yes, q2: no}\n", "r.yaml").records
    assert rec.items == {"q1": "yes", "q2": "no"}


def test_json_has_lines() -> None:
    text = '[\n  {"subject": "A", "visit": "v",\n   "items": {"1": 1,\n             "2": 7}}\n]\n'
    (rec,) = read_text(text, "r.json").records
    assert rec.source.line == 2 and rec.item_lines == {"1": 3, "2": 4}


def test_jsonl() -> None:
    text = '{"subject": "A", "visit": "v", "items": {"1": 1}}\n\nnot json\n'
    result = read_text(text, "r.jsonl")
    assert len(result.records) == 1
    (issue,) = result.issues
    assert issue.code == "parse-error" and issue.line == 3


def test_csv_wide_splits_scales_and_carries_extra_fields() -> None:
    text = (
        "subject,visit,day,arm,phq9_1,phq9_2,madrs_1\n"
        "S1,baseline,0,ketamine,1,2,\n"
        "S2,baseline,0,placebo,,,4\n"
    )
    result = read_text(text, "w.csv", scale_ids=IDS)
    assert [(r.subject, r.scale, r.items) for r in result.records] == [
        ("S1", "phq9", {"1": "1", "2": "2"}),
        ("S2", "madrs", {"1": "4"}),
    ]
    assert result.records[0].extra == {"arm": "ketamine"}
    assert result.records[1].source.line == 3


def test_csv_scale_ids_with_hyphens() -> None:
    text = "subject,visit,qids-sr16_1\nS1,v,3\n"
    (rec,) = read_text(text, "w.csv", scale_ids=IDS).records
    assert rec.scale == "qids-sr16" and rec.items == {"1": "3"}


def test_csv_long_groups_rows_and_catches_conflicts() -> None:
    text = (
        "subject,visit,scale,item,value\n"
        "S1,v,phq9,1,2\n"
        "S1,v,phq9,2,Several days\n"
        "S1,v,phq9,2,3\n"
        "S2,v,phq9,1,0\n"
    )
    result = read_text(text, "l.csv")
    assert detect_format("l.csv", text) == "csv-long"
    first, second = result.records
    assert first.items["1"] == "2"
    assert isinstance(first.items["2"], Rejection)
    assert first.items["2"].code == "conflicting-records"
    assert first.item_lines == {"1": 2, "2": 3}
    assert second.subject == "S2"


def test_csv_semicolon_bom_crlf() -> None:
    text = "\ufeffsubject;visit;phq9_1\r\nS1;v;1\r\n"
    (rec,) = read_text(text, "w.csv", scale_ids=IDS).records
    assert rec.items == {"1": "1"}


def test_csv_quoted_newline_keeps_line_numbers() -> None:
    text = 'subject,visit,note,phq9_1\nS1,v,"two\nlines",1\nS2,v,x,5\n'
    result = read_text(text, "w.csv", scale_ids=IDS)
    assert [r.source.line for r in result.records] == [2, 4]


def test_csv_ragged_row_costs_that_row_only() -> None:
    text = "subject,visit,phq9_1\nS1,v,1\nS2,v\nS3,v,2\n"
    result = read_text(text, "w.csv", scale_ids=IDS)
    assert [r.subject for r in result.records] == ["S1", "S3"]
    (issue,) = result.issues
    assert issue.code == "csv-ragged-row"
    assert issue.message.startswith(
        "w.csv:3: subject S2: row has 2 cells but the header has 3; row skipped"
    )


def test_a_header_repeated_in_the_middle_is_one_warning_and_no_row() -> None:
    """Two exports joined with ``cat``: the second header (here with its byte-order mark,
    another case and spaces) was read as a row of subject "subject", with a not-a-number
    error for each item. It is one warning naming the line, and no record."""
    header = "subject,visit,phq9_1,phq9_2"
    text = f"{header}\nS1,v,1,2\n\ufeffSubject , VISIT,phq9_1,phq9_2\nS2,v,0,1\n{header}\n"
    result = read_text(text, "w.csv", scale_ids=IDS)
    assert [r.subject for r in result.records] == ["S1", "S2"]
    assert [(i.code, i.severity, i.line) for i in result.issues] == [
        ("csv-repeated-header", "warning", 3),
        ("csv-repeated-header", "warning", 5),
    ]
    assert result.issues[0].message.startswith(
        "w.csv:3: this row repeats the header: were two files joined? the row is skipped"
    )
    # a header that differs in a cell is another header (below); a header alone has no rows
    almost = read_text(f"{header}\nsubject,visit,phq9_1,x\n", "w.csv", scale_ids=IDS)
    assert [i.code for i in almost.issues] == ["csv-other-header"] and almost.records == []
    alone = read_text(f"{header}\n{header}\n", "w.csv", scale_ids=IDS)
    assert [i.code for i in alone.issues] == ["file-empty", "csv-repeated-header"]


@pytest.mark.parametrize(
    ("second", "how"),
    [
        ("visit,subject,phq9_2,phq9_1", "columns in another order"),  # same width
        ("subject,visit,phq9_1,phq9_2,site", "other columns"),  # ragged
        ("\ufeffSUBJECT,phq9_1,visit,note", "other columns"),
    ],
)
def test_a_header_with_other_columns_inside_a_table_stops_the_reading(
    second: str, how: str
) -> None:
    """Two exports with other columns joined: the second header was read as a row (errors
    for subject "visit"), and the rows after it under the first header's columns (here
    items 1 and 2 swapped, scored without a word) or as ragged rows. Reading stops there,
    with one error saying why and how many rows were not read."""
    text = f"subject,visit,phq9_1,phq9_2\nS1,v1,0,3\n{second}\nv1,S2,3,0\nv2,S2,3,0\n"
    result = read_text(text, "w.csv", scale_ids=IDS)
    assert [r.subject for r in result.records] == ["S1"]
    (issue,) = result.issues
    assert (issue.code, issue.severity, issue.line) == ("csv-other-header", "error", 3)
    assert issue.message == (
        f"w.csv:3: this row is a header with {how} than the first: were two files with "
        "other columns joined? the rows after it do not follow the first header, so this "
        "row and the 2 row(s) after it were not read; split the file at this line and read "
        "each part with its own header, or give the parts the same columns in the same order"
    )
    # a visit named visit_1 and a subject named subject-7 are no header, nor a row of
    # answers whose other cells say visit and subject
    kinds = "subject,visit,kind,who,phq9_1\nS9,v1,visit,subject,1\n"
    assert read_text(kinds, "w.csv", scale_ids=IDS).issues == []
    plain = read_text(
        "subject,visit,phq9_1\nsubject-7,visit,1\nS8,visit_1,2\n", "w.csv", scale_ids=IDS
    )
    assert plain.issues == [] and len(plain.records) == 2


def test_csv_duplicate_columns_refuse_the_file() -> None:
    result = read_text("subject,visit,phq9_1,PHQ9_1\nS1,v,1,2\n", "w.csv", scale_ids=IDS)
    assert result.records == []
    assert [i.code for i in result.issues] == ["csv-columns"]


def test_csv_without_subject_column() -> None:
    result = read_text("id,visit,phq9_1\n1,v,1\n", "w.csv", scale_ids=IDS)
    (issue,) = result.issues
    assert issue.code == "csv-columns"
    assert "no 'subject' column" in issue.message


def test_detect_format_by_content() -> None:
    assert detect_format("-", '[{"a": 1}]') == "json"
    assert detect_format("-", '{"a": 1}\n{"a": 2}\n') == "jsonl"
    assert detect_format("-", "subject,visit,phq9_1\nS,v,1\n") == "csv"
    assert detect_format("-", "subject: S\nvisit: v\n") == "yaml"
    assert detect_format("x.yml", "[1]") == "yaml"


def test_latin1_file_is_read_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "w.csv"
    path.write_bytes("subject,visit,site,phq9_1\nS1,v,Malmö,1\n".encode("latin-1"))
    result = read_paths([path], scale_ids=IDS)
    assert result.records[0].extra == {"site": "Malmö"}
    assert [i.code for i in result.issues] == ["encoding"]


def test_binary_file_and_folder_walk(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.yaml").write_text("subject: A\nvisit: v\nitems: {1: 1}\n")
    (tmp_path / "a.yaml").write_text("subject: B\nvisit: v\nitems: {1: 1}\n")
    (tmp_path / ".hidden.yaml").write_text("junk: [")
    (tmp_path / "notes.md").write_text("# notes")
    (tmp_path / "blob.json").write_bytes(b"\x00\x01\x02")
    files = [p.relative_to(tmp_path).as_posix() for p in iter_input_files([tmp_path])]
    assert files == ["a.yaml", "blob.json", "b/2.yaml"]
    result = read_paths([tmp_path])
    assert [r.subject for r in result.records] == ["B", "A"]
    # in a folder, a binary file and notes are skipped and named, not errors (#16)
    assert [(i.code, i.variant, Path(i.file or "").name) for i in result.issues] == [
        ("file-skipped", "binary", "blob.json"),
        ("file-skipped", "extension", "notes.md"),
    ]
    assert [i.code for i in read_paths([tmp_path / "blob.json"]).issues] == ["file-format"]


@pytest.mark.parametrize(("codec", "order"), [("utf-16-le", "LE"), ("utf-16-be", "BE")])
def test_utf16_without_a_byte_order_mark_is_named_not_called_binary(
    tmp_path: Path, codec: str, order: str
) -> None:
    """UTF-16 saved without its byte-order mark was "a binary file, not YAML, JSON or CSV"
    (in a folder, skipped as one, with a warning). It is named, with what to do, and not
    decoded (its byte order would be a guess); notes in it are still skipped."""
    folder = tmp_path / "data"
    folder.mkdir()
    text = "subject,visit,phq9_1,phq9_2\nS1,v1,1,2\nS2,v1,Ærø,2\n"
    (folder / "ratings.csv").write_bytes(text.encode(codec))
    (folder / "notes.txt").write_bytes("To do: call the site\n".encode(codec))
    (folder / "blob.csv").write_bytes(bytes(range(256)) * 4)
    for given in (folder / "ratings.csv", folder):
        read = read_paths([given], scale_ids=IDS)
        assert read.records == []
        (issue,) = [i for i in read.issues if Path(i.file or "").name == "ratings.csv"]
        assert (issue.code, issue.severity, issue.variant) == ("file-format", "error", "utf16")
        assert issue.message == (
            f"{folder / 'ratings.csv'}: this looks like UTF-16 {order} text without a "
            "byte-order mark (every other byte is NUL); it was not read, as its encoding "
            "would be a guess; save it as UTF-8 (Excel: Save As, CSV UTF-8; a text editor: "
            "encoding UTF-8), or as UTF-16 with a byte-order mark"
        )
    skipped = [(i.variant, Path(i.file or "").name) for i in read.issues if i is not issue]
    assert skipped == [("binary", "blob.csv"), ("notes", "notes.txt")]
    binary = read_paths([folder / "blob.csv"], scale_ids=IDS).issues
    assert [(i.code, i.variant) for i in binary] == [("file-format", "binary")]


def test_include_exclude(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x")
    (tmp_path / "b.csv").write_text("x")
    assert [p.name for p in iter_input_files([tmp_path], include=["*.csv"])] == ["b.csv"]
    assert [p.name for p in iter_input_files([tmp_path], exclude=["*.csv"])] == ["a.yaml"]


@pytest.mark.parametrize(
    ("root", "prefix"), [("data", "data/"), ("./data/", "data/"), ("data//", "data/"), (".", "")]
)
def test_files_found_are_named_as_pathlib_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, root: str, prefix: str
) -> None:
    """The walk joins names as strings (2.5x as fast on 20,000 files); the names are still
    those that joining ``Path`` objects gave, whatever the spelling of the folder."""
    from ketascore.readers import walk_files

    monkeypatch.chdir(tmp_path)
    names = ["data/a.yaml", "data/sub/b.json", "data/sub/deep/c.csv"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    expected = [prefix + name.removeprefix("data/") if prefix else name for name in names]
    assert [str(p) for p in walk_files([root])] == expected
    assert [str(p) for p in iter_input_files([root])] == expected
    # patterns match the path below the folder given, or the name
    assert [str(p) for p in walk_files(["data"], include=["sub/*"])] == [
        "data/sub/b.json",
        "data/sub/deep/c.csv",
    ]
    assert [str(p) for p in walk_files(["data"], exclude=["sub/deep/*", "a.*"])] == [
        "data/sub/b.json"
    ]


def test_file_size_limit_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("subject: A\nvisit: v\nitems: {1: 1}\n")
    result = read_paths([path, tmp_path / "missing.yaml"], max_file_size=10)
    assert [i.code for i in result.issues] == ["file-too-large", "file-unreadable"]
    assert "file is 34 bytes, above the limit of 10" in result.issues[0].message


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_symlink_loop_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "r.yaml").write_text("subject: A\nvisit: v\nitems: {1: 1}\n")
    (tmp_path / "d" / "loop").symlink_to(tmp_path / "d")
    result = read_paths([tmp_path])
    assert len(result.records) == 1
    assert [i.code for i in result.issues] == ["folder-loop"]


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_loop_is_found_where_the_file_system_gives_no_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folders are told apart by device and inode; a file system that reports inode 0 for
    every folder (some network shares) is walked by the folders' real paths instead, not
    taken for one folder read again and again."""
    import ketascore.readers.folders as folders

    real_stat = os.stat

    def no_inode(path: Any, *args: Any, **kwargs: Any) -> Any:
        info = real_stat(path, *args, **kwargs)
        return os.stat_result((info.st_mode, 0, *tuple(info)[2:]))

    monkeypatch.setattr(folders.os, "stat", no_inode)
    for name in ("a", "b", "a/c"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "r.yaml").write_text(f"subject: {name}\nvisit: v\nitems: {{1: 1}}\n")
    (tmp_path / "b" / "loop").symlink_to(tmp_path / "a")
    result = read_paths([tmp_path])
    assert sorted(r.subject for r in result.records) == ["a", "a/c", "b"]
    assert [i.code for i in result.issues] == ["folder-loop"]


def test_stdin() -> None:
    stream = io.BytesIO(b'{"subject": "A", "visit": "v", "scale": "phq9", "items": {"1": 1}}')
    result = read_paths(["-"], stdin=stream)
    assert result.records[0].source.file == "<stdin>"


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("", "file-empty", "e.yaml: the file holds no records; check the export"),
        ("[]", "file-empty", "e.yaml: the file holds an empty list; check the export"),
        (
            "42",
            "bad-record",
            "e.yaml:1: the file holds a number; expected a record or a list "
            "of records; each record needs subject, visit and items",
        ),
        (
            "subject: A\nitems: {1: 1}\n",
            "missing-field",
            "e.yaml:1: subject A: record 1 has "
            "no usable visit; add the field (subject and visit are required)",
        ),
        (
            "subject: A\nvisit: v\nitems: [1, 2]\n",
            "bad-record",
            "e.yaml:3: subject A, visit v: "
            "record has no items mapping (items: {item id: value}); each record needs subject, "
            "visit and items",
        ),
        (
            "- 1\n",
            "bad-record",
            "e.yaml:1: record 1 is a number, not a mapping of fields; each "
            "record needs subject, visit and items",
        ),
    ],
)
def test_bad_documents(text: str, code: str, message: str) -> None:
    (issue,) = read_text(text, "e.yaml").issues
    assert (issue.code, issue.message) == (code, message)


def test_bad_date_and_day_keep_the_record() -> None:
    text = "subject: A\nvisit: v\ndate: 2025-13-40\nday: soon\nitems: {1: 1}\n"
    result = read_text(text, "r.yaml")
    assert len(result.records) == 1
    assert [(i.code, i.line) for i in result.issues] == [("bad-field", 3), ("bad-field", 4)]


@pytest.mark.parametrize(
    ("value", "number"),
    [(None, None), (" \t", None), (" 7 ", 7), ("+2.50", 2.5), ("-0", 0), (3.0, 3), (2, 2)],
)
def test_a_finite_number_is_read_by_the_grammar(value: Any, number: Any) -> None:
    """One reading of a value as a number (study days, stored scores, clinic fields, ADaM
    visit numbers): the answers' grammar, finite."""
    got = finite_number(value)
    assert got == number and type(got) is type(number)


@pytest.mark.parametrize(
    ("value", "why", "day"),
    [
        ("1e2", "not-a-number", "day"),
        ("5_6", "not-a-number", "day"),
        ("\u0663", "not-a-number", "day"),
        (True, "not-a-number", "day"),
        ([1], "not-a-number", "day"),
        (float("nan"), "not-finite", "day-range"),
        ("1" + "0" * 400, "not-finite", "day-range"),
    ],
)
def test_what_is_not_a_finite_number_says_why(value: Any, why: str, day: str) -> None:
    with pytest.raises(ValueError, match=f"^{why}$"):
        finite_number(value)
    with pytest.raises(ValueError, match=f"^{day}$"):
        day_number(value)
    with pytest.raises(ValueError, match=r"^day-range$"):
        day_number(1_000_001)


@pytest.mark.parametrize("name", ["r.json", "r.jsonl"])
def test_an_extra_field_beyond_a_double_is_carried_as_text(tmp_path: Path, name: str) -> None:
    """A record's extra field that is a JSON number beyond a double's range (1e400 reads as
    infinity) is carried as its text; JSON output stopped with an internal error (exit 3)."""
    from click.testing import CliRunner

    from ketascore.cli import cli

    items = ", ".join(f'"{i}": 1' for i in range(1, 10))
    record = (
        f'{{"subject": "S1", "visit": "v1", "scale": "phq9", "w": 1e400, "items": {{{items}}}}}'
    )
    (tmp_path / name).write_text(record + "\n")
    (read,) = read_paths([tmp_path / name]).records
    assert read.extra == {"w": "inf"}
    for fmt in ("json", "jsonl"):
        result = CliRunner().invoke(cli, ["score", str(tmp_path / name), "--format", fmt])
        assert result.exit_code == 0, result.output


@pytest.mark.parametrize("codec", ["utf-32", "utf-32-be", "utf-16", "utf-16-be"])
def test_unicode_text_with_a_byte_order_mark_is_read(tmp_path: Path, codec: str) -> None:
    """UTF-32 text with its byte-order mark was taken for UTF-16 (its mark begins with
    UTF-16's), so its header read '\\x00s\\x00u...' and the file had 'no subject column'; in
    a folder, big-endian UTF-32 was skipped as a binary file."""
    text = "subject,visit,phq9_1,phq9_2\nS1,v1,1,2\n"
    data = text.encode(codec)
    if not codec.endswith("-be"):
        assert data.startswith((b"\xff\xfe", b"\xfe\xff"))  # (Python writes the mark)
    else:
        data = ("\ufeff" + text).encode(codec)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(data)
    for given in (folder / "ratings.csv", folder):
        read = read_paths([given], scale_ids=IDS)
        assert read.issues == []
        (record,) = read.records
        assert (record.subject, record.items) == ("S1", {"1": "1", "2": "2"})


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_json_lines_break_at_line_ends_only(separator: str) -> None:
    """A JSON string may hold U+2028 LINE SEPARATOR (and U+2029, U+0085) as it is,
    as json.dumps(..., ensure_ascii=False) writes it; JSON Lines and FHIR NDJSON were split
    at such a character, so a valid file gave a parse error on every line and lines that
    are not there."""
    note = f"called{separator}back"
    items = {str(i): 1 for i in range(1, 10)}
    lines = [
        json.dumps(
            {"subject": s, "visit": "v1", "scale": "phq9", "note": note, "items": items},
            ensure_ascii=False,
        )
        for s in ("S1", "S2")
    ]
    data = read_text("\r\n".join(lines) + "\n", "r.jsonl")
    assert data.issues == []
    assert [(r.subject, r.source.line, r.extra["note"]) for r in data.records] == [
        ("S1", 1, note),
        ("S2", 2, note),
    ]
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p1", "display": f"Ann{separator}Lee"},
        "authored": "2024-01-01",
        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 1}]}],
    }
    ndjson = "\n".join(json.dumps(response, ensure_ascii=False) for _ in range(2))
    fhir = read_text(ndjson, "qr.ndjson")
    assert fhir.issues == [] and [r.source.line for r in fhir.records] == [1, 2]


def test_a_long_table_breaks_rows_at_line_ends_only(tmp_path: Path) -> None:
    """The model's CSV reader split the text where str.splitlines does, so a quoted cell
    holding U+2028 (or a quoted line break) became two rows."""
    from ketascore.analysis.longdata import read_table

    path = tmp_path / "adqs.csv"
    path.write_text(
        'USUBJID,AVISIT,CHG,NOTE\r\nS1,day1,-3,"a\u2028b"\r\nS2,day1,-4,"two\r\nlines"\r\n',
        encoding="utf-8",
        newline="",
    )
    table = read_table(path)
    assert table.columns["USUBJID"] == ["S1", "S2"]
    assert table.columns["NOTE"] == ["a\u2028b", "two\r\nlines"]


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_a_json_string_keeps_a_line_separator(separator: str) -> None:
    """JSON is read as YAML for its line numbers, and YAML 1.1 takes U+2028 (U+2029,
    U+0085) for a line break, folded into a space: a subject 'S1<U+2028>x' became 'S1 x'
    and the lines after it were miscounted. JSON's strings are JSON's."""
    items = {str(i): 1 for i in range(1, 10)}
    records = [
        {"subject": f"S1{separator}x", "visit": "v1", "scale": "phq9", "items": items},
        {"subject": "S2", "visit": "v1", "scale": "phq9", "items": items},
    ]
    text = json.dumps(records, ensure_ascii=False, indent=1)
    data = read_text(text, "r.json")
    assert data.issues == []
    lines = text.split("\n")  # (where JSON breaks its lines)
    second = lines.index(" {", 2) + 1
    assert [(r.subject, r.source.line) for r in data.records] == [
        (f"S1{separator}x", 2),
        ("S2", second),
    ]


def test_a_fhir_response_with_a_line_separator_has_its_lines() -> None:
    """FHIR's data are read as JSON, but its line numbers through YAML, which counted a
    U+2028 in a string as a line: every line after it was off by one."""
    response = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/p1", "display": "Ann\u2028Lee"},
        "authored": "2024-01-01",
        "item": [{"linkId": "44250-9", "answer": [{"valueInteger": 7}]}],
    }
    lines = []
    for display in ("Ann\u2028Lee", "Ann Lee"):  # (the same lines, as JSON counts them)
        response["subject"] = {"reference": "Patient/p1", "display": display}
        text = json.dumps(response, ensure_ascii=False, indent=1)
        (result,) = score(read_text(text, "qr.json").records)
        lines += [i.line for i in result.issues if i.code == "out-of-range"]
    assert lines[0] == lines[1] == 10


def test_a_column_name_with_a_character_that_does_not_show_is_quoted() -> None:
    """A header cell 'subject' followed by a zero-width space is no subject column, and the
    message listed it as 'subject', which the user sees in the file: it is now quoted with
    escapes."""
    text = "subject\u200b,visit,phq9_1\nS1,v1,1\n"
    (issue,) = read_text(text, "w.csv", scale_ids=IDS).issues
    assert issue.message.startswith(
        "w.csv:1: no 'subject' column (columns: 'subject\\u200b', visit, phq9_1)"
    )


SCRIPTS = {
    "cyrillic": "Пациент,Визит,phq9_1,phq9_2\nП1,Первый,1,2\nП2,Второй,Ёж,3\n",
    "greek": "Ασθενής;Επίσκεψη;phq9_1\nΑ1;Πρώτη;2\nΒ2;Δεύτερη;ΩΨ\n",
    "japanese": "被験者\t来院\tphq9_1\n患者一\t第一回\t2\n患者二\t第二回\t3\n",
    "korean": "피험자,방문,phq9_1\n환자일,첫번째,2\n",
    "arabic": "المريض,الزيارة,phq9_1\nم١,الأولى,2\n",
}


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_utf16_without_a_byte_order_mark_in_any_script_is_named(
    tmp_path: Path, codec: str, script: str
) -> None:
    """UTF-16 without its mark in a script other than Latin has no NUL in its letters,
    only beside its separators and line ends: it was "a binary file" (Cyrillic, Greek,
    Japanese ...). It is named as UTF-16, with the same advice, alone and in a folder,
    wherever the file ends (an odd byte left over too)."""
    text = SCRIPTS[script] * 40
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "ratings.csv").write_bytes(text.encode(codec))
    order = codec[-2:].upper()
    for given in (folder / "ratings.csv", folder):
        read = read_paths([given], scale_ids=IDS)
        (issue,) = read.issues
        assert (issue.code, issue.variant) == ("file-format", "utf16")
        assert issue.message == (
            f"{folder / 'ratings.csv'}: this looks like UTF-16 {order} text without a "
            "byte-order mark (each separator and line end is a NUL and an ASCII byte); it "
            "was not read, as its encoding would be a guess; save it as UTF-8 (Excel: Save "
            "As, CSV UTF-8; a text editor: encoding UTF-8), or as UTF-16 with a byte-order mark"
        )
    for cut in range(100, 1030, 7):
        assert utf16_without_bom(text.encode(codec)[:cut]) == (f"UTF-16 {order}", SCRIPT_UTF16)


def test_a_surrogate_pair_cut_by_the_head_is_no_unpaired_surrogate() -> None:
    """The first kilobyte may end between the two halves of a surrogate pair: still UTF-16;
    an unpaired surrogate before the end is not (binary data)."""
    for codec in ("utf-16-le", "utf-16-be"):
        text = ("a" + "𠀋,𠀋\n" * 200).encode(codec)
        assert text[1022:1026] == "𠀋".encode(codec)  # (the head ends inside this pair)
        assert utf16_without_bom(text) == (f"UTF-16 {codec[-2:].upper()}", SCRIPT_UTF16)
    unpaired = ("ab,\n".encode("utf-16-le") + b"\x00\xd8") * 100  # (a high surrogate, alone)
    assert utf16_without_bom(unpaired) is None


UTF8_ALPHABET = st.sampled_from(
    list("Пациент Визит Ασθενής 被験者来院 피험자 المريض abcÆøé 0123,;\t\n\r\"'|.-")
)


@hypothesis.settings(max_examples=budget(300))
@hypothesis.given(st.text(UTF8_ALPHABET, min_size=0, max_size=700))
def test_utf8_text_in_any_script_is_never_taken_for_utf16(text: str) -> None:
    """Text in UTF-8 (and Latin text in Latin-1) holds no NUL, so none of its 16-bit units
    is an ASCII separator: it is never named UTF-16, and decodes as the text it is."""
    for data in (text.encode("utf-8"), text.encode("utf-8-sig")):
        assert utf16_without_bom(data) is None
        issues: list[Any] = []
        assert decode(data, "t.csv", issues) == text and issues == []
    latin = "".join(c for c in text if ord(c) < 256)
    assert utf16_without_bom(latin.encode("latin-1")) is None


@pytest.mark.parametrize(
    "data",
    [
        bytes(range(256)) * 4,
        zlib.compress(("Пациент,Визит\n" * 500).encode("utf-16-le")),
        struct.pack("<512H", *range(0, 5120, 10)),
        struct.pack("<256f", *[k / 7 for k in range(256)]),
        b"\x89PNG\r\n\x1a\n" + bytes(1000),
        "Пациент,Визит\n".encode() * 50 + b"\x00",
    ],
    ids=["bytes", "zlib", "uint16", "float32", "png", "utf8-and-nul"],
)
def test_binary_data_is_not_taken_for_utf16(data: bytes) -> None:
    assert utf16_without_bom(data) is None
