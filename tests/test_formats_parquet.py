"""Parquet tables: read by the Parquet reader (record engine) and inside DuckDB (table engine),
with the same records and messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("duckdb")

from ketascore.cli import cli  # noqa: E402


@pytest.mark.parametrize("column", ["subject", "visit"])
def test_a_nan_subject_or_visit_is_blank_in_every_engine(
    runner: Any, tmp_path: Path, column: str
) -> None:
    """A NaN in a number column of subjects or visits is a blank cell, as the Parquet reader
    takes it: the row is reported (missing-field) and not scored. The table engine wrote
    NaN as the text 'nan' and scored the row for subject (or at visit) 'nan'."""
    ids = {"subject": ["S1", "S2"], "visit": ["v1", "v1"]}
    ids[column] = [1.5, float("nan")]  # (no whole number: the column stays DOUBLE)
    table = {**ids, **{f"phq9_{i}": [1, 2] for i in range(1, 10)}}
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table(table), path)
    outputs = []
    for engine in ("record", "duckdb"):
        args = ["score", str(path), "--scale", "phq9", "--engine", engine, "--format", "csv"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 1, result.output
        assert "row has no " + column in result.stderr
        assert "nan" not in result.stdout
        outputs.append((result.stdout, result.stderr))
    assert outputs[0] == outputs[1]
