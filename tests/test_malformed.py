"""The malformed and hostile input corpus (tests/data/malformed): each file gives its exact
issues and exit status, never a traceback, and everything usable is still scored."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from ketascore.cli import cli

CORPUS = Path(__file__).resolve().parent / "data" / "malformed"
CASES: list[dict[str, Any]] = yaml.safe_load((CORPUS / "expected.yaml").read_text())["cases"]


def test_corpus_is_large_and_complete() -> None:
    files = {
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name != "expected.yaml"
    }
    assert files == {c["file"] for c in CASES}
    assert len(CASES) >= 60


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_case(case: dict[str, Any], runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    command = case["command"].split()
    start = time.perf_counter()
    result = runner.invoke(cli, [*command, case["file"], *case["args"]])
    elapsed = time.perf_counter() - start
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert elapsed < 10, "hostile input must be refused quickly"
    assert result.exit_code == case["exit"], result.output
    if case["command"] == "scales check":
        assert result.stdout.splitlines() == case["output"]
        return
    doc = json.loads(result.stdout)
    found = [(i["code"], i["message"]) for i in doc["issues"]]
    if case["command"] == "score":
        found += [(i["code"], i["message"]) for r in doc["results"] for i in r["issues"]]
        scored = doc["summary"]["scored"]
    else:
        scored = len([row for row in doc["rows"] if row["change"] is not None])
    assert found == [(i["code"], i["message"]) for i in case["issues"]]
    assert scored == case["scored"]


# ---- cases that need a folder or the file system -----------------------------------


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "study"
    folder.mkdir()
    shutil.copy(CORPUS / "crlf.csv", folder / "a-good.csv")
    shutil.copy(CORPUS / "binary.json", folder / "b-binary.json")
    shutil.copy(CORPUS / "truncated.json", folder / "c-truncated.json")
    (folder / "README.md").write_text("notes beside the data are not read\n")
    (folder / ".hidden.yaml").write_text("not: [valid")
    return folder


def test_bad_files_in_a_folder_do_not_stop_the_batch(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _folder(tmp_path)
    result = runner.invoke(cli, ["score", "study", "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["summary"]["scored"] == 1
    # notes and a binary file among the ratings are skipped and named, not errors (#16)
    assert [(i["code"], i["severity"], i["file"]) for i in doc["issues"]] == [
        ("file-skipped", "warning", "study/README.md"),
        ("file-skipped", "warning", "study/b-binary.json"),
        ("parse-error", "error", "study/c-truncated.json"),
    ]


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_symlink_loop_and_dangling_link(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _folder(tmp_path)
    (folder / "b-binary.json").unlink()
    (folder / "c-truncated.json").unlink()
    (folder / "loop").symlink_to(folder)
    (folder / "gone.yaml").symlink_to(tmp_path / "deleted.yaml")
    result = runner.invoke(cli, ["score", "study", "--format", "json"])
    doc = json.loads(result.stdout)
    assert doc["summary"]["scored"] == 1
    assert [(i["code"], i["severity"]) for i in doc["issues"]] == [
        ("file-skipped", "warning"),  # README.md, named (#16)
        ("file-unreadable", "error"),
        ("folder-loop", "warning"),
    ]
    assert doc["issues"][1]["message"].startswith(
        "study/gone.yaml: cannot read the file: No such file or directory"
    )
    assert result.exit_code == 1


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _folder(tmp_path)
    locked = folder / "d-locked.yaml"
    locked.write_text("subject: A\n")
    locked.chmod(0)
    result = runner.invoke(cli, ["score", "study", "--format", "json"])
    codes = [i["code"] for i in json.loads(result.stdout)["issues"]]
    assert "file-unreadable" in codes


def test_file_over_the_size_limit(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    result = runner.invoke(
        cli, ["score", "crlf.csv", "bom.csv", "--max-file-size", "100", "--format", "json"]
    )
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert doc["summary"]["scored"] == 0
    assert [(i["code"], i["message"]) for i in doc["issues"]] == [
        (
            "file-too-large",
            f"{name}: file is {size} bytes, above the limit of 100; split the file, or raise "
            "the limit with --max-file-size",
        )
        for name, size in (("crlf.csv", 103), ("bom.csv", 104))
    ]
    result = runner.invoke(cli, ["score", "crlf.csv", "--max-file-size", "103", "--quiet"])
    assert result.exit_code == 0


@pytest.mark.parametrize("command", [["score"], ["change", "--scale", "phq9"]])
def test_markup_in_data_is_printed_as_text(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """Subject ids like "[/red]" must not be read as terminal markup (it used to crash)."""
    monkeypatch.chdir(CORPUS)
    result = runner.invoke(
        cli, [command[0], "markup-injection.yaml", *command[1:], "--format", "table"]
    )
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.exit_code == 0, result.output
    assert "[/red]" in result.stdout


@pytest.mark.parametrize("command", [["score"], ["change", "--scale", "phq9"]])
def test_control_characters_never_reach_the_terminal(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """An escape sequence in a subject id is shown as \\x1b, never sent to the terminal."""
    monkeypatch.chdir(CORPUS)
    result = runner.invoke(
        cli, [command[0], "control-chars.csv", *command[1:], "--format", "table"]
    )
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "S\\x07\\x1b[31m1" in result.stdout
