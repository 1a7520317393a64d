"""Issue 17, item 8: the change tables on narrow and wide terminals. The subject id is never
cut; at 60 columns the trend column, the column lines and long headers go first, then the
visits are split over several tables; the summary table fits. Run in a pseudo-terminal of
60, 100 and 200 columns, and through CliRunner at the same widths."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from firsthour_support import ROOT, run_in_terminal
from rich.cells import cell_len

from ketascore.cli import cli

EXAMPLE = "examples/ketamine-trial"
SUBJECTS = [f"KT-{i:03d}" for i in range(1, 101)]


def _check_layout(text: str, columns: int) -> None:
    lines = text.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= columns
    assert "…" not in text  # nothing cut
    for subject in SUBJECTS:  # every subject id whole, at the start of a row
        assert any(line.lstrip("│┃ ").startswith(subject + " ") for line in lines), subject
    summary = text[text.index("Summary by visit") :]
    for visit in ("baseline", "day1", "day3", "day7", "day14"):
        assert f"{visit} " in summary
    for arm in ("midazolam", "ketamine"):
        assert arm in summary


@pytest.mark.parametrize("columns", [60, 100, 200])
def test_change_table_in_a_terminal(columns: int) -> None:
    code, text = run_in_terminal(
        ["change", EXAMPLE, "--scale", "madrs", "--by", "arm"], columns, cwd=ROOT
    )
    assert code == 0, text
    _check_layout(text, columns)
    if columns >= 100:  # room for the trend column and the box lines
        assert "Trend" in text and "┏" in text
    else:  # the trend and the box lines went first; long headers were shortened
        assert "Trend" not in text and "┏" not in text
        assert "Resp. = responders, Remit. = remitters" in text


@pytest.mark.parametrize("columns", [60, 100, 200])
def test_change_table_at_a_width(columns: int) -> None:
    runner = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"})
    result = runner.invoke(
        cli,
        [
            "change",
            EXAMPLE,
            "--scale",
            "madrs",
            "--by",
            "hamd17.anxious_depression",
            "--format",
            "table",
        ],
        catch_exceptions=False,
        env={"COLUMNS": str(columns)},
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert max(cell_len(line.rstrip()) for line in lines) <= columns
    assert "…" not in result.stdout
    for subject in SUBJECTS:
        assert any(line.lstrip("│┃ ").startswith(subject + " ") for line in lines), subject
    header = "hamd17.anxious_depression" if columns > 60 else "depression"
    assert header in result.stdout
    if columns == 60:  # the group column is wide: the last visit goes to a second table
        assert "(continued: day14)" in result.stdout
