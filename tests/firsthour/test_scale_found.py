"""Without --scale, change, plot, report and model take the scale the input holds: the one
built-in scale (change, plot, model of answer files) or each of them (report), with exactly
what naming it would give. An input of several scales is a usage error that names them with
their record counts; the scale of --by SCALE.NAME does not count while others remain."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.api import held_scales
from ketascore.cli import cli

from conftest import EXAMPLE


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_change_takes_the_one_scale_the_input_holds(runner: CliRunner, fmt: str) -> None:
    inputs = [str(EXAMPLE / "madrs"), str(EXAMPLE / "hamd17-baseline.csv")]
    by = ["--by", "hamd17.anxious_depression", "--format", fmt]
    found = runner.invoke(cli, ["change", *inputs, *by])
    named = runner.invoke(cli, ["change", *inputs, "--scale", "madrs", *by])
    assert found.exit_code == named.exit_code == 0, found.stderr
    assert found.stdout == named.stdout and found.stderr == named.stderr
    assert "madrs" in found.stdout


def test_several_scales_are_named_with_their_counts(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["change", str(EXAMPLE)])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --scale is missing and the input holds records of 3 scales: hamd6 (485 "
        "records), madrs (485 records), hamd17 (100 records); choose one, e.g. --scale hamd6\n"
    )
    # the grouping scale of --by is left out, and two remain
    result = runner.invoke(cli, ["change", str(EXAMPLE), "--by", "hamd17.anxious_depression"])
    assert result.exit_code == 2 and "2 scales: hamd6 (485 records), madrs" in result.stderr


def test_no_record_of_a_known_scale(runner: CliRunner, tmp_path: Path) -> None:
    answers = tmp_path / "a.yaml"
    answers.write_text("subject: S1\nvisit: v1\nscale: my-own\nitems: {1: 2}\n")
    result = runner.invoke(cli, ["change", str(answers)])
    assert result.exit_code == 2
    assert "no record of the input names a built-in scale" in result.stderr
    assert "--scale (a built-in id, or the path of a scale file)" in result.stderr
    # what kept the records from being read is listed first
    broken = tmp_path / "b.yaml"
    broken.write_text("subject: [\n")
    result = runner.invoke(cli, ["change", str(broken)])
    assert result.exit_code == 2
    first, _, last = result.stderr.partition("\n")
    assert first.startswith(f"error[parse-error] {broken}:")
    assert "(the input's problems are listed above)" in last


def test_standard_input_needs_the_scale_named(runner: CliRunner) -> None:
    text = (EXAMPLE / "hamd6.csv").read_text(encoding="utf-8")
    result = runner.invoke(cli, ["change", "-"], input=text)
    assert result.exit_code == 2
    assert "standard input is read once, so name its scale with --scale" in result.stderr
    assert runner.invoke(cli, ["change", "-", "--scale", "hamd6"], input=text).exit_code == 0


def test_report_has_a_section_per_scale_held(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    found = runner.invoke(cli, ["report", str(EXAMPLE), "--no-plots", "-o", "found.html"])
    assert found.exit_code == 0, found.stderr
    scales = ["--scale", "hamd17", "--scale", "hamd6", "--scale", "madrs"]  # (input order)
    named = runner.invoke(cli, ["report", str(EXAMPLE), *scales, "--no-plots", "-o", "n.html"])
    assert named.exit_code == 0, named.stderr
    assert Path("found.html").read_bytes() == Path("n.html").read_bytes()
    assert found.stderr.replace("found.html", "n.html") == named.stderr


def test_plot_takes_the_one_scale(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    args = ["plot", str(EXAMPLE / "hamd6.csv"), "--kind", "trajectory"]
    found = runner.invoke(cli, [*args, "-o", "found.svg"])
    named = runner.invoke(cli, [*args, "--scale", "hamd6", "-o", "named.svg"])
    assert found.exit_code == named.exit_code == 0, found.stderr
    assert Path("found.svg").read_bytes() == Path("named.svg").read_bytes()


def test_model_takes_the_one_scale_of_answer_files(runner: CliRunner) -> None:
    """model without --scale: one table file is a long table, as before; a folder (or YAML,
    JSON, several files) is answer files of the scale they hold."""
    pytest.importorskip("scipy")
    args = ["model", str(EXAMPLE / "madrs"), "--by", "arm", "--format", "csv"]
    found = runner.invoke(cli, args)
    named = runner.invoke(cli, [*args, "--scale", "madrs"])
    assert found.exit_code == named.exit_code == 0, found.stderr
    assert found.stdout == named.stdout
    several = runner.invoke(cli, ["model", str(EXAMPLE), "--by", "arm"])
    assert several.exit_code == 2 and "holds records of 3 scales" in several.stderr


def test_a_large_table_is_known_by_its_header(tmp_path: Path) -> None:
    """A table of the table engine's size (1 MiB or more) is not read row by row to find
    its scale: its count is None. Smaller inputs are read and counted."""
    site = "a site named at length " * 25  # (wide rows: few rows make 1 MiB)
    rows = ["subject,visit,site," + ",".join(f"gad7_{i}" for i in range(1, 8))]
    rows += [f"S{k},v1,{site},{','.join('1' * 7)}" for k in range(2000)]
    big = tmp_path / "big.csv"
    big.write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert big.stat().st_size >= 1 << 20
    assert held_scales(big) == {"gad7": None}
    small = tmp_path / "small.csv"
    small.write_text("\n".join(rows[:4]) + "\n", encoding="utf-8")
    assert held_scales([small, small]) == {"gad7": 6}
