"""Class 7 of issue #16: folders hold other things.

A README, notes, a script or a binary file among the ratings is skipped and named in the
summary (not parsed as a ratings table, not an error); a subfolder that cannot be read is
reported, never skipped silently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))
GOOD = f"subject,visit,{PHQ9}\nS1,v1,1,1,1,1,1,1,1,1,1\n"


@pytest.fixture
def study(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    (folder / "site2").mkdir(parents=True)
    (folder / "a.csv").write_text(GOOD)
    (folder / "site2" / "b.csv").write_text(GOOD.replace("S1", "S2"))
    (folder / "README.md").write_text("# Ratings of the trial\n\nExported 2024-05-01.\n")
    (folder / "notes.txt").write_text("Patient S4 refused item 9; see the CRF.\n")
    (folder / "photo.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    (folder / "export.sas7bdat").write_bytes(b"\x00\x00\x00\x00" * 64)
    (folder / "~$ratings.xlsx").write_bytes(b"lock")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


def test_other_things_are_skipped_and_named(runner: CliRunner, study: Path) -> None:
    result = runner.invoke(cli, ["score", str(study), "--format", "json"])
    assert result.exit_code == 0, result.output  # notices, not errors
    doc = json.loads(result.stdout)
    assert doc["summary"]["scored"] == 2
    skipped = {Path(i["file"]).name: i["message"] for i in doc["issues"]}
    assert set(skipped) == {
        "README.md",
        "notes.txt",
        "photo.json",
        "export.sas7bdat",
        "~$ratings.xlsx",
    }
    assert {i["code"] for i in doc["issues"]} == {"file-skipped"}
    assert {i["severity"] for i in doc["issues"]} == {"warning"}
    assert "binary" in skipped["photo.json"]
    assert "not a ratings table" in skipped["notes.txt"]
    assert "lock file" in skipped["~$ratings.xlsx"]
    # the summary line names them
    assert "skipped (not ratings files):" in result.stderr
    assert "README.md" in result.stderr and "notes.txt" in result.stderr


def test_a_file_named_directly_is_still_read(runner: CliRunner, study: Path) -> None:
    """Named on the command line, a binary file is an error: the user asked for it."""
    result = runner.invoke(cli, ["score", str(study / "photo.json"), "--format", "json"])
    assert result.exit_code == 1
    assert [i["code"] for i in json.loads(result.stdout)["issues"]] == ["file-format"]


def test_a_table_in_a_txt_file_is_still_read(runner: CliRunner, study: Path) -> None:
    (study / "notes.txt").write_text(GOOD.replace("S1", "S3").replace(",", "\t"))
    doc = json.loads(runner.invoke(cli, ["score", str(study), "--format", "json"]).stdout)
    assert doc["summary"]["scored"] == 3


def test_change_and_report_name_them_too(runner: CliRunner, study: Path) -> None:
    result = runner.invoke(cli, ["change", str(study), "--scale", "phq9", "--format", "json"])
    doc = json.loads(result.stdout)
    # one visit per subject, its baseline: no change to report, and a warning says so
    assert {i["code"] for i in doc["issues"]} == {"file-skipped", "no-change"}
    assert len(doc["issues"]) == 6 and result.exit_code == 0


def test_an_unreadable_subfolder_is_reported(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.readers.folders as folders

    real = os.scandir

    def scandir(path: object) -> object:
        if str(path).endswith("site2"):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(folders.os, "scandir", scandir)
    result = runner.invoke(cli, ["score", str(study), "--format", "json", "--jobs", "1"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    errors = [i for i in doc["issues"] if i["severity"] == "error"]
    assert [(i["code"], Path(i["file"]).name) for i in errors] == [("folder-unreadable", "site2")]
    assert "Permission denied" in errors[0]["message"]
    assert doc["summary"]["scored"] == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads anything")
def test_a_locked_subfolder_is_reported(runner: CliRunner, study: Path) -> None:
    (study / "site2").chmod(0)
    try:
        result = runner.invoke(cli, ["score", str(study), "--format", "json"])
    finally:
        (study / "site2").chmod(0o755)
    codes = [i["code"] for i in json.loads(result.stdout)["issues"]]
    assert "folder-unreadable" in codes and result.exit_code == 1


def test_include_and_exclude_silence_what_the_user_left_out(runner: CliRunner, study: Path) -> None:
    result = runner.invoke(cli, ["score", str(study), "--include", "*.csv", "--format", "json"])
    doc = json.loads(result.stdout)
    assert doc["issues"] == [] and doc["summary"]["scored"] == 2
