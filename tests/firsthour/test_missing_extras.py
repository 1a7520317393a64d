"""Issue 17, item 11: a missing optional extra is not a bug. A command whose optional
package is not installed exits 2 with the exact `pip install 'ketascore[...]'`; an input
named on the command line that needs one does too, while such a file found in a folder is a
file issue with the same command (the rest is read); the README says which command needs
which extra; -o into a folder that does not exist is exit 2 with a clear message."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.cli.common import EXTRAS

from conftest import EXAMPLE, ROOT


def _without(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """As if the packages were not installed: importing them fails."""
    for name in list(sys.modules):
        if name.partition(".")[0] in modules:
            monkeypatch.delitem(sys.modules, name)
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def test_sql_without_sqlglot(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "sqlglot")
    result = runner.invoke(cli, ["sql", "phq9", "--dialect", "duckdb", "--table", "t"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: ketascore sql needs sqlglot, which is not installed; install it with: "
        "pip install 'ketascore[sql]'\n"
    )


def test_model_without_the_stats_extra(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    _without(monkeypatch, "scipy")
    result = runner.invoke(cli, ["model", str(EXAMPLE), "--scale", "madrs", "--by", "arm"])
    assert result.exit_code == 2
    assert "pip install 'ketascore[stats]'" in result.stderr


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["score", "--engine", "duckdb", "--scale", "hamd6"], "duckdb"),
        (["plot", "--scale", "hamd6", "--kind", "trajectory", "-o", "t.png"], "plot"),
    ],
)
def test_engine_and_pictures_without_their_extra(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str], extra: str
) -> None:
    _without(monkeypatch, "duckdb", "matplotlib")
    name, *rest = command
    result = runner.invoke(cli, [name, str(EXAMPLE / "hamd6.csv"), *rest])
    assert result.exit_code == 2
    assert f"pip install 'ketascore[{extra}]'" in result.stderr


@pytest.mark.parametrize(
    ("name", "package", "extra"),
    [("visits.xlsx", "openpyxl", "xlsx"), ("scores.parquet", "pyarrow", "duckdb")],
)
def test_an_input_named_on_the_command_line_that_needs_an_extra(
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    name: str,
    package: str,
    extra: str,
) -> None:
    _without(monkeypatch, package)
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04 not read")
    for command in (["score"], ["change", "--scale", "madrs"]):
        result = runner.invoke(cli, [command[0], str(path), *command[1:]])
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"Error: reading {path} needs {package}, which is not installed; install it "
            f"with: pip install 'ketascore[{extra}]'\n"
        )


def test_a_spreadsheet_in_a_folder_without_openpyxl_is_a_file_issue(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without(monkeypatch, "openpyxl")
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "w2.xlsx").write_bytes(b"PK\x03\x04 not read")
    (folder / "hamd6.csv").write_bytes((EXAMPLE / "hamd6.csv").read_bytes())
    result = runner.invoke(cli, ["score", str(folder), "--format", "csv"])
    assert result.exit_code == 1
    assert (
        f"error[file-format] {folder / 'w2.xlsx'}: reading .xlsx files needs the openpyxl "
        "package; install it with pip install 'ketascore[xlsx]', or save the sheet as CSV"
        in result.stderr
    )
    assert result.stdout.count("\n") == 486  # the CSV file was scored: header and 485 rows


@pytest.mark.parametrize(
    "command",
    [
        ["score", "-o", "{out}"],
        ["score", "--format", "csv", "--provenance", "{out}"],
        ["change", "--scale", "hamd6", "-o", "{out}"],
        ["change", "--scale", "hamd6", "--format", "adam", "-o", "{out}"],
        ["report", "--scale", "hamd6", "--no-plots", "-o", "{out}"],
        ["plot", "--scale", "hamd6", "--kind", "trajectory", "-o", "{out}"],
    ],
)
def test_output_into_a_folder_that_does_not_exist(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    if command[0] == "plot":
        pytest.importorskip("matplotlib")
    suffix = {"plot": ".png", "report": ".html"}.get(command[0], ".csv")
    out = tmp_path / "no-such-folder" / f"out{suffix}"
    name, *rest = command
    args = [name, str(EXAMPLE / "hamd6.csv"), *[a.format(out=out) for a in rest]]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: cannot write {out}: the folder {out.parent} does not exist; create it first\n"
    )
    assert "internal error" not in result.output


def test_the_readme_says_which_command_needs_which_extra() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Optional extras") :]
    section = section[: section.index("\n## ", 4)]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    listed = set(re.findall(r"`pip install 'ketascore\[([a-z]+)\]'`", section))
    assert listed == set(declared) - {"test", "dev"}
    assert set(EXTRAS.values()) <= set(declared)  # the install commands the CLI prints exist
    for command in ("ketascore plot", "ketascore report", "ketascore sql", "ketascore model"):
        assert command in section
