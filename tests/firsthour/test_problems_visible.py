"""Issue 17, item 1: problems are never invisible. In every output format the problems go
to stderr as in table mode, errors before warnings, with a count of each; `change --format
csv` with nothing to write still writes its header and says why; -q leaves stderr empty."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

PHQ9 = {str(k): 1 for k in range(1, 10)}


def _folder(root: Path) -> Path:
    """A warning first in reading order (a record given twice, the same), an error after
    it (an out-of-range value), and a file that is not valid JSON."""
    root.mkdir()
    record = {"subject": "S1", "visit": "baseline", "scale": "phq9", "items": PHQ9}
    (root / "a-twice.json").write_text(json.dumps([record, record]))
    bad = {**record, "subject": "S2", "items": {**PHQ9, "3": 7}}
    (root / "b-bad.json").write_text(json.dumps(bad))
    (root / "c-broken.json").write_text('{"subject": "S3", ')
    return root


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("error[", "warning["))]


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "table"])
def test_score_lists_problems_on_stderr_in_every_format(
    tmp_path: Path, runner: CliRunner, fmt: str
) -> None:
    folder = _folder(tmp_path / "data")
    result = runner.invoke(cli, ["score", str(folder), "--format", fmt])
    assert result.exit_code == 1
    lines = _problem_lines(result.stderr)
    assert [line.split("]")[0] for line in lines] == [
        "error[parse-error",  # errors first, in reading order ...
        "error[out-of-range",
        "warning[duplicate-record",  # ... then the warnings
    ]
    assert "c-broken.json:1" in lines[0] and "b-bad.json:1: subject S2" in lines[1]
    assert result.stderr.splitlines()[-2:] == [
        "2 errors, 1 warning",
        "3 file(s), 2 record(s), 1 scored, 1 with problems, 1 file issue(s)",
    ]


def test_quiet_leaves_stderr_empty_and_the_exit_code_says(
    tmp_path: Path, runner: CliRunner
) -> None:
    folder = _folder(tmp_path / "data")
    for command in (["score", str(folder)], ["change", str(folder), "--scale", "phq9"]):
        result = runner.invoke(cli, [*command, "--format", "csv", "-q"])
        assert result.exit_code == 1 and result.stderr == "", command


def test_change_csv_with_nothing_to_write_writes_its_header_and_says_why(
    tmp_path: Path, runner: CliRunner
) -> None:
    folder = _folder(tmp_path / "data")
    result = runner.invoke(cli, ["change", str(folder), "--scale", "madrs", "--format", "csv"])
    assert result.exit_code == 1
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert result.stdout.count("\n") == 1 and header[:5] == [
        "subject",
        "scale",
        "score",
        "group",
        "visit",
    ]
    lines = _problem_lines(result.stderr)
    assert lines[0].startswith("error[parse-error]")
    assert (
        "error[no-records] madrs: no madrs record in the input has a total score; nothing to "
        "analyse; check --scale and --score against the input" in result.stderr
    )
    summary = runner.invoke(
        cli, ["change", str(folder), "--scale", "madrs", "--format", "csv", "--summary"]
    )
    assert summary.stdout.startswith("scale,score,visit,group,is_baseline,n,mean,sd,")
    assert summary.stdout.count("\n") == 1


def test_change_csv_lists_each_subject_without_a_baseline(
    tmp_path: Path, runner: CliRunner
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    rows = ["subject,visit,day," + ",".join(f"phq9_{k}" for k in range(1, 10))]
    rows += ["S1,week2,14," + ",".join("1" * 9), "S2,week2,14," + ",".join("2" * 9)]
    (folder / "w2.csv").write_text("\n".join(rows) + "\n")
    result = runner.invoke(
        cli, ["change", str(folder), "--scale", "phq9", "--baseline", "baseline", "-o",
              str(tmp_path / "out.csv")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert (tmp_path / "out.csv").read_text().startswith("subject,scale,score,group,visit,")
    errors = [line for line in _problem_lines(result.stderr) if line.startswith("error[")]
    assert [line.split(": subject ")[1][:2] for line in errors] == ["S1", "S2"]
    assert all("no record at the baseline visit 'baseline'" in line for line in errors)
    assert result.stderr.splitlines()[-1].startswith("2 errors, ")


def test_report_lists_errors_first(tmp_path: Path, runner: CliRunner) -> None:
    folder = _folder(tmp_path / "data")
    result = runner.invoke(
        cli,
        ["report", str(folder), "--scale", "phq9", "--no-plots", "-o", str(tmp_path / "r.html")],
    )
    lines = _problem_lines(result.stderr)
    kinds = [line.split("[")[0] for line in lines]
    assert kinds == sorted(kinds) and "warning" in kinds  # every error before every warning
    errors, warnings = kinds.count("error"), kinds.count("warning")
    plural = {True: "s", False: ""}
    counts = f"{errors} error{plural[errors != 1]}, {warnings} warning{plural[warnings != 1]}"
    assert counts in result.stderr.splitlines()
