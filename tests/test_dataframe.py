"""Scoring a pandas or polars DataFrame gives the results and issues of the files path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ketascore.api import read_answers, score

pd = pytest.importorskip("pandas")

ROWS = {
    "subject": ["S1", "S2", "S3", "S4", "S4", "S5"],
    "visit": ["base", "base", "base", "w1", "w1", "base"],
    "arm": ["A", "B", None, "A", "A", "B"],
    **{f"phq9_{k}": [1, 2, None, 3, 3, 0] for k in range(1, 9)},
    "phq9_9": [0, "Several days", 2, 7, 7, None],
}


def _expected(tmp_path: Path) -> tuple[list, list]:
    frame = pd.DataFrame(ROWS)
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    data = read_answers([path])
    return score(data.records), data.issues


def test_pandas_frame_scores_like_the_csv_file(tmp_path: Path) -> None:
    from ketascore.engines.dataframe import score_frame

    expected, _ = _expected(tmp_path)
    scored = score_frame(pd.DataFrame(ROWS), "phq9")
    df = scored.scores
    assert list(df["subject"]) == [r.subject for r in expected]
    got_totals = [None if pd.isna(v) else v for v in df["total"]]
    assert got_totals == [r.scores["total"] for r in expected]
    assert list(df["total_items_answered"]) == [r.items_answered["total"] for r in expected]
    assert [i.code for i in scored.issues] == [i.code for r in expected for i in r.issues]
    assert "duplicate-record" in {i.code for i in scored.issues}
    issues = scored.issues_frame()
    assert list(issues["code"]) == [i.code for i in scored.issues]


def test_polars_frame(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    from ketascore.engines.dataframe import score_frame

    expected, _ = _expected(tmp_path)
    scored = score_frame(pl.DataFrame(ROWS, strict=False), "phq9")
    assert isinstance(scored.scores, pl.DataFrame)
    assert scored.scores["total"].to_list() == [r.scores["total"] for r in expected]


@pytest.mark.parametrize("table", [True, False], ids=["table-engine", "record-engine"])
def test_a_float32_id_from_2_24_on_is_refused(monkeypatch: pytest.MonkeyPatch, table: bool) -> None:
    """A pandas float32 subject holds every whole number below 2^24 only (16777217 is
    16777216): from there on the row is refused (bad-field), as a Parquet FLOAT id is, by
    either engine; both took the column for doubles and scored subject 16777216."""
    import numpy as np

    from ketascore.engines import dataframe

    if table:  # (the table engine scores the frame: the record path is not taken)
        monkeypatch.setattr(dataframe, "_by_record", None)
    else:  # (the record engine's path: the table engine declines the frame)
        monkeypatch.setattr(dataframe, "_by_table", lambda rows: (None, []))
    frame = pd.DataFrame(
        {
            "subject": np.array([16777217, 2.5], dtype="float32"),
            "visit": ["v", "v"],
            **{f"phq9_{k}": [1, 1] for k in range(1, 10)},
        }
    )
    scored = dataframe.score_frame(frame, "phq9")
    assert list(scored.scores["subject"]) == ["2.5"]
    (issue,) = scored.issues
    assert issue.code == "bad-field" and "2^24 = 16777216 on, a 32-bit float" in issue.message
    assert issue.message.startswith("<dataframe>:1: visit v: subject 16777216.0 is a floating")


@pytest.mark.parametrize("library", ["pandas", "polars"])
@pytest.mark.parametrize("table", [True, False], ids=["table-engine", "record-engine"])
def test_a_float16_id_from_2_11_on_is_refused(
    monkeypatch: pytest.MonkeyPatch, table: bool, library: str
) -> None:
    """A float16 subject (pandas' float16, polars' Float16) holds every whole number below
    2^11 only (2049 is 2048): from there on the row is refused, by either engine, with the
    16-bit float's limit; both took the column for doubles and scored subject 2048 (the
    table engine's DuckDB cannot scan an Arrow float16 column: it is given as 32-bit floats)."""
    import numpy as np

    from ketascore.engines import dataframe

    if table:
        monkeypatch.setattr(dataframe, "_by_record", None)
    else:
        monkeypatch.setattr(dataframe, "_by_table", lambda rows: (None, []))
    columns = {
        "subject": np.array([2049, 2.5, 2047], dtype="float16"),
        "visit": ["v", "v", "v"],
        **{f"phq9_{k}": [1, 1, 1] for k in range(1, 10)},
    }
    if library == "polars":
        pl = pytest.importorskip("polars")
        frame = pl.DataFrame(columns)
        assert frame.schema["subject"] == pl.Float16
    else:
        frame = pd.DataFrame(columns)
    scored = dataframe.score_frame(frame, "phq9")
    assert list(scored.scores["subject"]) == ["2.5", "2047"]
    (issue,) = scored.issues
    assert issue.code == "bad-field" and "2^11 = 2048 on, a 16-bit float" in issue.message
    assert issue.message.startswith("<dataframe>:1: visit v: subject 2048.0 is a floating")
