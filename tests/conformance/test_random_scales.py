"""Random scales (``support.random_scale``): combinations of the language's constructs
that no one wrote by hand, scored by the record engine (the reference) and the table
engine on a messy table, and compared by the one definition of "the same"."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("duckdb")

from support import (
    compare,
    messy_rows,
    random_scale,
    random_scales,
    record_results,
    record_texts,
    streamed_csv,
    table_results,
    table_texts,
    write_csv,
)

from ketascore.api import score_paths
from ketascore.core.scale import Scale
from ketascore.writers.tabular import score_csv

SCALES = random_scales(16)


@pytest.mark.parametrize("scale", SCALES, ids=lambda s: s.id)
def test_a_random_scale_gives_the_same_results_in_every_engine(
    tmp_path: Path, scale: Scale
) -> None:
    rows = messy_rows(scale, 60, seed=len(scale.id))
    path = write_csv(tmp_path / "messy.csv", rows)
    expected, expected_issues = record_results(path, scale)
    got, issues = table_results(path, scale)
    assert not (bad := compare(expected, got)), "\n".join(bad[:20])
    assert [i.as_dict() for i in issues] == [i.as_dict() for i in expected_issues]
    text, summary = streamed_csv(path, scale)
    with score_paths([path], scale=scale, engine="record", jobs=1) as run:
        assert summary == run.summary()
    assert text == score_csv(expected, expected_issues)
    assert table_texts(path, scale) == record_texts(expected)


def test_the_random_scales_use_the_language() -> None:
    """The draws are valid scales most of the time, and between them use every score
    method, both prorating methods, rounding, weights, reversing, recoding, scores of
    scores, applies_when, flags and classifications."""
    assert sum(random_scale(seed) is not None for seed in range(50)) >= 40
    used = set()
    for scale in SCALES:
        for score in scale.definition.scores:
            used.add(score.method)
            if score.missing is not None:
                used.add(score.missing.method)
                used.add(f"rounding {score.missing.rounding.method}")
            if score.applies_when is not None:
                used.add("applies_when")
            for term in score.of:
                if not isinstance(term, str):
                    used |= {
                        name
                        for name, on in (
                            ("weight", term.weight != 1),
                            ("reverse", term.reverse),
                            ("recode", term.recode),
                            ("score of scores", term.score),
                        )
                        if on
                    }
        used |= {"flag" for _ in scale.definition.flags}
        used |= {"classification" for _ in scale.definition.classifications}
    wanted = {"sum", "mean", "max", "min", "prorate_mean", "prorate_max", "rounding half_up"}
    wanted |= {"weight", "reverse", "recode", "score of scores", "applies_when"}
    wanted |= {"flag", "classification"}
    assert wanted <= used, wanted - used
