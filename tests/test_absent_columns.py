"""A table without the column of an item a score reads is an error naming the column, in
every engine (issue: warehouse scale, "columns that are absent are absent"): its ratings of
that scale are not scored, rather than every row prorated or left empty without a word. An
unscored item's column, or one of an alternative's two, may be absent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ketascore.api import score_paths
from ketascore.cli import cli
from ketascore.core.library import load_builtin

ITEMS = [f"phq9_{i}" for i in range(1, 11)]


def phq9_table(path: Path, drop: str) -> Path:
    header = ["subject", "visit", *(c for c in ITEMS if c != drop)]
    rows = [[f"S{k}", "baseline", *(str(k % 4) for c in ITEMS if c != drop)] for k in range(5)]
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("engine", ["record", "duckdb"])
def test_a_scored_item_without_a_column_is_an_error_naming_it(
    runner: Any, tmp_path: Path, engine: str
) -> None:
    if engine == "duckdb":
        pytest.importorskip("duckdb")
    path = phq9_table(tmp_path / "phq9.csv", drop="phq9_5")
    got = runner.invoke(
        cli, ["score", str(path), "--scale", "phq9", "--engine", engine, "--format", "csv"]
    )
    assert got.exit_code == 1
    assert got.stdout.count("\n") == 1  # the header, no row: nothing was prorated
    assert "error[missing-column]" in got.stderr
    assert "no column phq9_5, which phq9 scores read (total)" in got.stderr
    assert "add the column" in got.stderr


def test_the_table_engine_hands_such_a_table_to_the_record_path(tmp_path: Path) -> None:
    pytest.importorskip("duckdb")
    path = phq9_table(tmp_path / "phq9.csv", drop="phq9_9")
    with score_paths([path], scale=load_builtin("phq9"), engine="table") as run:
        assert run.engine == "record"
        assert [i.code for i in run.issues] == ["missing-column"]
        assert list(run.results()) == []


def test_an_unscored_items_column_may_be_absent(runner: Any, tmp_path: Path) -> None:
    path = phq9_table(tmp_path / "phq9.csv", drop="phq9_10")  # the difficulty question
    got = runner.invoke(cli, ["score", str(path), "--format", "csv"])
    assert got.exit_code == 0, got.output
    assert got.stdout.count("\n") == 6  # the header and five scored rows
    assert "missing-column" not in got.stderr


def test_an_alternative_needs_one_of_its_items(tmp_path: Path) -> None:
    """HAM-D17 item 16 is rated by history (16a) or by measurement (16b): a table with
    either column is whole; one with neither lacks the item."""
    scale = load_builtin("hamd17")
    others = [i for i in scale.items if i not in ("16a", "16b")]
    assert scale.absent_columns_issue("t.csv", [*others, "16b"]) is None
    issue = scale.absent_columns_issue("t.csv", others)
    assert issue is not None and issue.code == "missing-column"
    assert "hamd17_16a or hamd17_16b" in issue.message


def test_a_dataframe_without_a_scored_column_is_reported(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    from ketascore.engines.dataframe import score_frame

    frame = pd.DataFrame(
        {"subject": ["S1"], "visit": ["v1"], **{c: [1] for c in ITEMS if c != "phq9_2"}}
    )
    scored = score_frame(frame, "phq9")
    assert len(scored.scores) == 0
    assert [i.code for i in scored.issues] == ["missing-column"]
    assert "phq9_2" in scored.issues[0].message


def test_every_command_that_reads_answers_leaves_such_a_table_out(tmp_path: Path) -> None:
    """``read_answers`` (change --by, report, plot, the clinic commands, scripts) reports
    the table and keeps none of its ratings of the scale; other scales' are kept."""
    from ketascore.api import read_answers

    path = phq9_table(tmp_path / "phq9.csv", drop="phq9_1")
    read = read_answers([path])
    assert read.records == []
    assert [i.code for i in read.issues] == ["missing-column"]
    # a scale that is not asked for is not looked at
    read = read_answers([path], scales=[load_builtin("gad7")])
    assert "missing-column" not in [i.code for i in read.issues]


def test_a_column_whose_name_differs_by_a_character_that_does_not_show_is_named(
    runner: Any, tmp_path: Path
) -> None:
    """A header cell 'phq9_1' with a zero-width space after it (pasted from a web page) is
    not the item's column: the error said the table had no column phq9_1, which the user
    could see it had. It now names the look-alike column, escaped."""
    path = phq9_table(tmp_path / "phq9.csv", drop="")
    path.write_text(path.read_text().replace("phq9_1,", "phq9_1\u200b,", 1), encoding="utf-8")
    got = runner.invoke(cli, ["score", str(path), "--scale", "phq9", "--format", "csv"])
    assert got.exit_code == 1
    assert "no column phq9_1, which phq9 scores read" in got.stderr
    assert "the header has 'phq9_1\\u200b', which differs by a character that does not show" in (
        got.stderr
    )
