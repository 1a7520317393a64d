"""Issue 17, item 9: progress on long work. One big file shows its rows as they are scored
(not 0 of 1 files); without DuckDB, a large table prints a one-line hint naming the extra
that makes it fast."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from firsthour_support import run_in_terminal

from ketascore.cli import cli
from ketascore.engines.batch import Settings, collect_files, score_files

HEADER = "subject,visit," + ",".join(f"phq9_{k}" for k in range(1, 10))


def _table(path: Path, rows: int) -> Path:
    lines = [HEADER] + [f"S{i:05d},week{i % 4}," + ",".join("1" * 9) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_file_tells_its_rows(tmp_path: Path) -> None:
    seen: list[tuple[int, int]] = []
    items = collect_files([_table(tmp_path / "t.csv", 4500)])
    score_files(items, Settings(), rows=lambda done, total: seen.append((done, total)))
    assert seen == [(0, 4500), (2000, 4500), (4000, 4500), (4500, 4500)]


def test_a_terminal_shows_the_rows_of_one_big_file(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.csv", 5000)
    code, text = run_in_terminal(
        ["score", str(table), "--engine", "record", "-o", str(tmp_path / "o.csv")],
        100,
        stderr_too=True,
    )
    assert code == 0, text
    assert "5,000/5,000 rows" in text and "rows/s" in text
    assert "0/1 files" not in text
    assert text.rstrip().endswith("1 file(s), 5000 record(s), 5000 scored, 0 with problems")


@pytest.mark.parametrize("command", [["score"], ["change", "--scale", "phq9"]])
def test_a_large_table_without_duckdb_gets_a_hint(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    import ketascore.cli.progress as progress

    table = _table(tmp_path / "t.csv", 300)
    monkeypatch.setattr(progress, "find_spec", lambda name: None)  # as without DuckDB
    monkeypatch.setattr(progress, "TABLE_MIN_BYTES", 1000)
    name, *rest = command
    result = runner.invoke(cli, [name, str(table), *rest, "--format", "csv"])
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint:")]
    size = table.stat().st_size / 1e6
    assert hints == [
        f"hint: {table} ({size:,.1f} MB) is scored row by row; DuckDB scores a table this "
        "size many times faster: pip install 'ketascore[duckdb]'"
    ]
    quiet = runner.invoke(cli, [name, str(table), *rest, "--format", "csv", "-q"])
    assert quiet.stderr == ""
    monkeypatch.setattr(progress, "TABLE_MIN_BYTES", 10**9)  # a small table: no hint
    small = runner.invoke(cli, [name, str(table), *rest, "--format", "csv"])
    assert "hint:" not in small.stderr
