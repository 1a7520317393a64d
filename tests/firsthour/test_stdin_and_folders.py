"""Issue 17, item 7: answers on standard input are recognised by their content, as a file
with an extension would be: a YAML file that opens with comments (one with a comma in it
read as a CSV header before), JSON, JSON Lines, CSV. In a folder, what is not a ratings file
(a README, notes, a binary file) is skipped with a notice, by the rule of issue 16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.readers import detect_format

from conftest import EXAMPLE

ITEMS = "{1: 3, 2: 3, 3: 4, 4: 4, 5: 2, 6: 3, 7: 4, 8: 3, 9: 4, 10: 2}"


@pytest.mark.parametrize(
    ("text", "fmt"),
    [
        (f"# MADRS, day 1 (site 2, entered late)\n- subject: A\n  items: {ITEMS}\n", "yaml"),
        (f"# one record\n\n# subject, visit, items\nsubject: A\nitems: {ITEMS}\n", "yaml"),
        (f"%YAML 1.2\n---\n# a, b\nsubject: A\nitems: {ITEMS}\n", "yaml"),
        (f"- {{subject: A, visit: v1, items: {ITEMS}}}\n", "yaml"),
        ('{"subject": "A", "visit": "v1"}\n', "json"),
        ('[{"subject": "A"},\n {"subject": "B"}]\n', "json"),
        ('{"subject": "A"}\n{"subject": "B"}\n', "jsonl"),
        ("subject,visit,madrs_1\nA,v1,3\n", "csv"),
        ("subject;visit;madrs_1\nA;v1;3\n", "csv"),
        ("subject,visit,scale,item,value\nA,v1,madrs,1,3\n", "csv-long"),
    ],
)
def test_content_decides_the_format_of_standard_input(text: str, fmt: str) -> None:
    assert detect_format("<stdin>", text) == fmt


def test_the_example_files_read_the_same_from_standard_input(runner: CliRunner) -> None:
    for path in (
        EXAMPLE / "madrs" / "01-day1.yaml",  # opens with "# MADRS ratings, visit day1 (...)"
        EXAMPLE / "late-entries" / "KT-007-day14-madrs.json",
    ):
        piped = runner.invoke(cli, ["score", "-", "--format", "json"], input=path.read_bytes())
        named = runner.invoke(cli, ["score", str(path), "--format", "json"])
        assert piped.exit_code == named.exit_code == 0, piped.stderr
        results = json.loads(piped.stdout)["results"]
        expected = json.loads(named.stdout)["results"]
        assert len(results) == len(expected) > 0
        assert [r["scores"] for r in results] == [r["scores"] for r in expected]


def test_a_messy_folder_skips_what_is_not_ratings_with_a_notice(
    runner: CliRunner, tmp_path: Path
) -> None:
    folder = tmp_path / "trial"
    folder.mkdir()
    (folder / "hamd6.csv").write_bytes((EXAMPLE / "hamd6.csv").read_bytes())
    (folder / "README.md").write_text("# HAM-D6 export\n")
    (folder / "notes.txt").write_text("call the site on monday\n")
    (folder / "logo.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = runner.invoke(cli, ["score", str(folder), "--format", "csv"])
    assert result.exit_code == 0, result.stderr  # notices, not errors
    for name in ("README.md", "notes.txt", "logo.json"):
        assert f"warning[file-skipped] {folder / name}" in result.stderr
    assert result.stdout.count("\n") == 486  # the ratings were all read
