"""Typed tables (``support.typed_table``): seeded Parquet files whose columns carry the
types real exports give them (integers of every width, signed or not, doubles with NaN,
-0.0, infinity and huge values, floats, DECIMAL, text with whitespace, labels and missing
codes, booleans, dates, all-null columns; ids of those types too; repeated subjects and
visits, identical and conflicting). The record engine (the reference) and the table
engine give the same results, issues and CSV bytes, and the table engine scores every
such file itself (none is left to the record engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("duckdb")
pq = pytest.importorskip("pyarrow.parquet")

from support import (  # noqa: E402
    compare,
    random_scales,
    record_results,
    record_texts,
    sink_scale,
    streamed_csv,
    table_results,
    table_texts,
    typed_table,
)

from ketascore.api import score_paths  # noqa: E402
from ketascore.core.library import load_builtin  # noqa: E402
from ketascore.core.scale import Scale  # noqa: E402
from ketascore.writers.tabular import score_csv  # noqa: E402

from conftest import budget  # noqa: E402

SCALES = [load_builtin("phq9"), load_builtin("hamd17"), sink_scale(), *random_scales(3)]
CASES = [(scale, seed) for scale in SCALES for seed in range(budget(2))]


@pytest.mark.parametrize(("scale", "seed"), CASES, ids=lambda v: getattr(v, "id", v))
def test_a_typed_table_gives_the_same_output_from_either_engine(
    tmp_path: Path, scale: Scale, seed: int
) -> None:
    table = typed_table(scale, 60, seed)
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    kinds = {name: str(table.schema.field(name).type) for name in table.column_names}
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join([str(kinds), *bad[:20]])
    assert [i.as_dict() for i in issues] == [i.as_dict() for i in expected_issues], kinds
    text, summary = streamed_csv(path, scale)  # the one pass of score -o scores.csv
    assert text == score_csv(expected, expected_issues), kinds
    assert table_texts(path, scale) == record_texts(expected), kinds
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        assert summary == run.summary(), kinds
