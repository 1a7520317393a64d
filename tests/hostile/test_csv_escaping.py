"""Class 6 of issue #16: one escaping rule for every CSV output.

Scores, change, summaries and ADaM: a text cell a spreadsheet would run as a formula is
escaped with a leading quote; a cell that is a plain number (-1, +44, -0.5) is left as it
is; --no-escape-formulas turns the rule off everywhere. The rule is written once
(ketascore.writers.tabular.escape_formula)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from ketascore.cli import cli
from ketascore.writers.tabular import escape_formula

MADRS = ",".join(f"madrs_{i}" for i in range(1, 11))
HOSTILE = {
    '=HYPERLINK("http://x")': True,
    "+SUM(A1)": True,
    "-2+3": True,
    "@cmd": True,
    " =1+1": True,
    "\t=1": True,
    "\n=1": True,
    "\uff1d1+1": True,  # a full-width equals sign
    "-1": False,
    "+44": False,
    "-0.5": False,
    " -1 ": False,
    "KT-001": False,
    "": False,
}


@pytest.mark.parametrize(("text", "escaped"), HOSTILE.items())
def test_the_rule(text: str, escaped: bool) -> None:
    assert escape_formula(text) == ("'" + text if escaped else text)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[+-]?[0-9]{1,6}(\.[0-9]{0,3})?", fullmatch=True))
def test_a_plain_number_is_never_escaped(text: str) -> None:
    assert escape_formula(text) == text


@settings(max_examples=300, deadline=None)
@given(st.sampled_from("=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"), st.text(max_size=8))
def test_a_formula_is_always_escaped(first: str, rest: str) -> None:
    from ketascore.core.values import is_number, strip

    text = first + rest
    if not is_number(strip(text)):
        assert escape_formula(text).startswith("'")


def _study(tmp_path: Path) -> Path:
    rows = []
    for subject, site in (("=cmd|'/c calc'!A0", "-1"), ("-7", "+44 20 7946"), ("S3", "@evil")):
        rows.append(f'"{subject}",baseline,0,{site},' + ",".join(["3"] * 10))
        rows.append(f'"{subject}",day1,1,{site},' + ",".join(["1"] * 10))
    path = tmp_path / "v.csv"
    path.write_text(f"subject,visit,day,site,{MADRS}\n" + "\n".join(rows) + "\n")
    return path


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row]


@pytest.mark.parametrize(
    "args",
    [
        ["score", "--format", "csv"],
        ["change", "--scale", "madrs", "--format", "csv"],
        ["change", "--scale", "madrs", "--format", "csv", "--summary", "--by", "site"],
        ["change", "--scale", "madrs", "--format", "adam"],
    ],
)
def test_every_csv_output_follows_the_rule(
    runner: CliRunner, tmp_path: Path, args: list[str]
) -> None:
    path = _study(tmp_path)
    result = runner.invoke(cli, [args[0], str(path), *args[1:]])
    assert result.exit_code == 0, result.output
    cells = _cells(result.stdout)
    for cell in cells:
        assert escape_formula(cell) == cell or cell.startswith("'"), cell
        if cell.startswith("'"):
            assert escape_formula(cell[1:]) != cell[1:], cell
    raw = runner.invoke(cli, [args[0], str(path), *args[1:], "--no-escape-formulas"])
    assert all(not c.startswith("'") for c in _cells(raw.stdout))
    if args[-1] != "site":  # (the summary has no subject column)
        assert "'=cmd|'/c calc'!A0" in cells and "-7" in cells and "'-7" not in cells


def test_numbers_are_left_as_they_are(runner: CliRunner, tmp_path: Path) -> None:
    path = _study(tmp_path)
    result = runner.invoke(cli, ["score", str(path), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["site"] for r in rows} == {"-1", "'+44 20 7946", "'@evil"}
    assert {r["subject"] for r in rows} == {"'=cmd|'/c calc'!A0", "-7", "S3"}


def test_the_table_engine_follows_the_same_rule(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    path = tmp_path / "plain.csv"  # (no quotes: the table engine reads it itself)
    path.write_text(
        f"subject,visit,site,{MADRS}\nS1,baseline,-1,{','.join(['3'] * 10)}\n"
        f"S2,baseline,@evil,{','.join(['2'] * 10)}\n"
    )
    outputs = []
    for engine in ("record", "duckdb"):
        result = runner.invoke(
            cli, ["score", str(path), "--scale", "madrs", "--engine", engine, "--format", "csv"]
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1]
