"""The command line, end to end: output formats (golden files), exit codes, files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

from conftest import ROOT, check_golden

STUDY = "tests/data/study"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(runner: CliRunner, *args: str, **kw: Any) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False, **kw)


def test_help_lists_commands_and_exit_codes(runner: CliRunner) -> None:
    result = run(runner, "--help")
    assert result.exit_code == 0
    for word in ("score", "change", "scales", "Exit codes", "130"):
        assert word in result.output


def test_version(runner: CliRunner) -> None:
    result = run(runner, "--version")
    assert result.exit_code == 0 and result.output.startswith("ketascore, version ")


def test_scales_list_json(runner: CliRunner) -> None:
    result = run(runner, "scales", "list", "--format", "json")
    ids = [s["id"] for s in json.loads(result.output)]
    assert {"madrs", "hamd17", "hamd6", "qids-sr16", "phq9"} <= set(ids)


def test_score_json_golden(runner: CliRunner) -> None:
    result = run(runner, "score", STUDY, "--format", "json")
    assert result.exit_code == 1  # one MADRS record misses an item
    check_golden("score-study.json", result.stdout)
    doc = json.loads(result.stdout)
    assert doc["summary"] == {
        "files": 3,
        "records": 12,
        "scored": 11,
        "with_problems": 1,
        "file_issues": 0,
    }
    assert result.stderr == (  # the problems on stderr in every format, then the summary
        "error[insufficient-items] tests/data/study/madrs-day3.csv:4: subject S10, visit day3, "
        "madrs: score total: 9 of 10 answered, the rule needs all; complete the missing items; "
        "the scale's missing-data rule allows no score\n"
        "warning[flag-undetermined] tests/data/study/madrs-day3.csv:4: subject S10, visit day3, "
        "madrs item 10: flag suicidal_thoughts (item 10 >= 4) cannot be determined; the item "
        "or score the flag depends on is missing\n"
        "1 error, 1 warning\n"
        "3 file(s), 12 record(s), 11 scored, 1 with problems\n"
    )


def test_score_csv_golden(runner: CliRunner) -> None:
    result = run(runner, "score", STUDY, "--scale", "madrs", "--format", "csv")
    check_golden("score-study-madrs.csv", result.stdout)


def test_score_table_golden(runner: CliRunner) -> None:
    result = run(runner, "score", STUDY, "--format", "table")
    check_golden("score-study-table.txt", result.stdout)
    assert "error[insufficient-items]" in result.stderr


def test_score_jsonl_lines_are_typed(runner: CliRunner) -> None:
    result = run(runner, "score", STUDY, "--format", "jsonl", "--quiet")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0]["type"] == "provenance"
    assert len(lines) == 13 and {line["type"] for line in lines[1:]} == {"score"}
    assert result.stderr == ""


def test_score_piped_defaults_to_json(runner: CliRunner) -> None:
    result = run(runner, "score", f"{STUDY}/hamd17.csv")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["summary"]["records"] == 3


def test_score_stdin(runner: CliRunner) -> None:
    data = Path(STUDY, "madrs.yaml").read_text()
    result = run(runner, "score", "-", "--format", "csv", input=data)
    assert result.exit_code == 0
    assert result.stdout.count("\n") == 7


def test_change_json_golden(runner: CliRunner) -> None:
    result = run(runner, "change", STUDY, "--scale", "madrs", "--format", "json")
    assert result.exit_code == 1
    check_golden("change-study.json", result.stdout)


def test_change_table_golden(runner: CliRunner) -> None:
    result = run(runner, "change", STUDY, "--scale", "madrs", "--format", "table")
    check_golden("change-study-table.txt", result.stdout)


def test_change_by_classification_table_golden(runner: CliRunner) -> None:
    result = run(
        runner,
        "change",
        STUDY,
        "--scale",
        "madrs",
        "--by",
        "hamd17.anxious_depression",
        "--format",
        "table",
    )
    check_golden("change-study-by-anxious.txt", result.stdout)


def test_change_csv_rows_and_summary(runner: CliRunner) -> None:
    rows = run(runner, "change", STUDY, "--scale", "madrs", "--format", "csv")
    check_golden("change-study-rows.csv", rows.stdout)
    summary = run(runner, "change", STUDY, "--scale", "madrs", "--format", "csv", "--summary")
    check_golden("change-study-summary.csv", summary.stdout)


def test_change_jsonl(runner: CliRunner) -> None:
    result = run(runner, "change", STUDY, "--scale", "madrs", "--format", "jsonl")
    kinds = [json.loads(line)["type"] for line in result.stdout.splitlines()]
    assert kinds.count("row") == 6 and kinds.count("summary") == 3 and "issue" in kinds


def test_change_other_score_and_baseline(runner: CliRunner) -> None:
    result = run(
        runner,
        "change",
        f"{STUDY}/madrs.yaml",
        "--scale",
        "madrs",
        "--baseline",
        "day1",
        "--format",
        "json",
    )
    doc = json.loads(result.stdout)
    assert doc["baseline_rules"] == {"option": 3}
    assert {r["visit"] for r in doc["rows"]} == {"baseline"}


def test_output_file_is_written_whole(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "scores.csv"
    result = run(runner, "score", f"{STUDY}/hamd17.csv", "-o", str(out))
    assert result.exit_code == 0 and result.stdout == ""
    assert out.read_text().startswith("subject,visit,date,day,scale")
    assert not list(tmp_path.glob("*.part"))


def test_output_refuses_to_overwrite_an_input(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "in.yaml"
    target.write_text(Path(STUDY, "madrs.yaml").read_text())
    before = target.read_bytes()
    result = runner.invoke(cli, ["score", str(target), "-o", str(target)])
    assert result.exit_code == 2
    assert "refusing to write" in result.stderr
    assert target.read_bytes() == before
    result = runner.invoke(cli, ["score", str(tmp_path), "-o", str(tmp_path / "out.json")])
    assert result.exit_code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["score", STUDY, "--scale", "madrss"],
            "Error: unknown scale 'madrss' (did you mean madrs, madrs-s?)",
        ),
        (
            ["change", STUDY, "--scale", "madrs", "--score", "sum"],
            "Error: scale madrs has no score 'sum'; scores: total",
        ),
        (
            ["change", STUDY, "--scale", "madrs", "--by", "hamd17.anxious"],
            "Error: --by hamd17.anxious: hamd17 has no classification or score 'anxious'",
        ),
        (["score", STUDY, "--format", "xml"], "Invalid value for '--format'"),
        (
            ["score", STUDY, "--format", "table", "-o", "x.txt"],
            "Error: --format table writes to the terminal; choose json, jsonl or csv",
        ),
        (
            ["change", STUDY],
            "Error: --scale is missing and the input holds records of 2 scales: madrs (9 "
            "records), hamd17 (3 records); choose one, e.g. --scale madrs",
        ),
        (
            ["plot", "README.md", "--kind", "trajectory", "-o", "x.png"],
            "Error: --scale is missing and no record of the input names a built-in scale",
        ),
        # click reads nan and inf as numbers, and NaN passes every range check: a threshold
        # of nan made nobody a responder or a remitter, in silence
        (
            f"change {STUDY} --scale madrs --response-percent nan".split(),
            "Invalid value for '--response-percent': 'nan' is not a finite number.",
        ),
        (
            f"plot {STUDY} --scale madrs --kind waterfall --remission-at-most inf".split(),
            "Invalid value for '--remission-at-most': 'inf' is not a finite number.",
        ),
        (
            f"model {STUDY} --scale madrs --by arm --alpha nan".split(),
            "Invalid value for '--alpha': 'nan' is not a finite number.",
        ),
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(cli, args)
    assert result.exit_code == 2
    assert message.split(" (did you mean")[0] in result.stderr


def test_scale_file_with_problems_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: bad\nname: x\n")
    result = runner.invoke(cli, ["score", STUDY, "--scale", str(bad)])
    assert result.exit_code == 2
    assert f"Error: scale file {bad} has problems:\n{bad}:1:1: version: required key" in (
        result.stderr
    )


def test_user_scale_file_scores_records(runner: CliRunner, tmp_path: Path) -> None:
    text = Path(ROOT, "scales", "phq9.yaml").read_text().replace("id: phq9", "id: my-phq")
    (tmp_path / "my-phq.yaml").write_text(text)
    data = tmp_path / "d.csv"
    data.write_text(
        "subject,visit,my-phq_1,my-phq_2,my-phq_3,my-phq_4,my-phq_5,my-phq_6,"
        "my-phq_7,my-phq_8,my-phq_9\nS,v,1,1,1,1,1,1,1,1,1\n"
    )
    result = run(
        runner, "score", str(data), "--scale", str(tmp_path / "my-phq.yaml"), "--format", "json"
    )
    assert json.loads(result.stdout)["results"][0]["scores"] == {"total": 9}


def test_internal_error_is_reported_without_traceback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.engines.record

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("kaboom")

    # (the record engine, which scores every record of a folder)
    monkeypatch.setattr(ketascore.engines.record, "score_records", boom)
    result = runner.invoke(cli, ["score", STUDY])
    assert result.exit_code == 3
    assert "Error: internal error: RuntimeError: kaboom" in result.stderr
    assert "Traceback" not in result.stderr
    result = runner.invoke(cli, ["--traceback", "score", STUDY])
    assert isinstance(result.exception, RuntimeError)


def test_interrupt_exits_130(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import ketascore.engines.record

    def interrupted(*a: Any, **k: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(ketascore.engines.record, "score_records", interrupted)
    result = runner.invoke(cli, ["score", STUDY])
    assert result.exit_code == 130


def test_readme_documents_every_command(runner: CliRunner) -> None:
    readme = (ROOT / "README.md").read_text()
    names: list[str] = []

    def walk(group: Any, prefix: str) -> None:
        for name, command in group.commands.items():
            full = f"{prefix} {name}".strip()
            if hasattr(command, "commands"):
                walk(command, full)
            else:
                names.append(full)

    walk(cli, "ketascore")
    missing = [n for n in names if n not in readme]
    assert not missing, f"README.md does not document: {missing}"
