"""New scales on public data that no one here wrote: the NHANES 2017-2018 depression
screener (CDC/NCHS, DPQ_J.xpt) scored as PHQ-8, against totals computed from the same file
read by pyreadstat (a peer's SAS transport reader). Skips when ../shared/data is absent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ketascore.api import score
from ketascore.readers import read_paths
from ketascore.readers.formats import load_read_options

ITEMS = [f"DPQ0{i}0" for i in range(1, 10)]


def test_nhanes_as_phq8_agrees_with_sums_read_by_pyreadstat(
    shared_data: Path, tmp_path: Path
) -> None:
    """Kroenke et al. 2009 defined the PHQ-8 as the PHQ-9 without item 9, and scored it in a
    population survey. Every respondent with the eight items answered 0-3 has their sum as
    PHQ-8 total; 7 (refused) and 9 (don't know) are missing, so those respondents have none.
    And for everyone complete on nine items, PHQ-8 + item 9 is the PHQ-9 total."""
    pyreadstat = pytest.importorskip("pyreadstat")
    xpt = shared_data / "nhanes" / "DPQ_J.xpt"
    mapping = tmp_path / "nhanes-phq8.yaml"
    mapping.write_text(
        "scale: phq8\nsubject: SEQN\nvisit: {value: nhanes-2017-2018}\nmissing_codes: [7, 9]\n"
        "items: {" + ", ".join(f"{i + 1}: {c}" for i, c in enumerate(ITEMS[:8])) + "}\n"
    )
    data = read_paths([xpt], options=load_read_options(map=mapping))
    assert data.issues == []
    results = {r.subject: r for r in score(data.records)}

    frame, _ = pyreadstat.read_xport(str(xpt))
    theirs: dict[str, float | None] = {}
    item9: dict[str, float | None] = {}
    for _, row in frame.iterrows():
        values = [row[c] for c in ITEMS]
        answers = [None if math.isnan(v) or round(v) in (7, 9) else round(v) for v in values]
        if all(math.isnan(v) for v in values[:8]):
            continue  # not given the screener: no record
        seqn = str(int(row["SEQN"]))
        eight = answers[:8]
        theirs[seqn] = None if any(a is None for a in eight) else float(sum(eight))
        item9[seqn] = answers[8]
    assert set(results) == set(theirs)
    for seqn, total in theirs.items():
        assert results[seqn].scores["total"] == total, seqn
    complete = [s for s, t in theirs.items() if t is not None]
    assert len(complete) > 5000
    current = sum(1 for s in complete if results[s].flags == ["current_depression"])
    assert current == sum(1 for s in complete if (theirs[s] or 0) >= 10)

    phq9 = {
        r.subject: r
        for r in score(
            read_paths(
                [xpt],
                options=load_read_options(
                    map=Path(__file__).parent.parent / "examples" / "mappings" / "nhanes-phq9.yaml"
                ),
            ).records
        )
    }
    for seqn in complete:
        if item9[seqn] is not None and not phq9[seqn].prorated["total"]:
            assert phq9[seqn].scores["total"] == theirs[seqn] + item9[seqn]
