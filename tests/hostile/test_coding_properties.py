"""Properties of reading coded answers by meaning (issue #16, class 1): whatever codes a
REDCap data dictionary or an SDTM standardised result uses, an answer is scored by the
meaning of its label or not at all; the raw code is never scored as if it were the scale's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ketascore import api
from ketascore.readers import read_paths
from ketascore.readers.formats import load_read_options

LABELS = ["Not at all", "Several days", "More than half the days", "Nearly every day"]
PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))
HEADER = (
    '"Variable / Field Name","Form Name","Section Header","Field Type","Field Label",'
    '"Choices, Calculations, OR Slider Labels"\n'
)


def _score(records: list[Any]) -> Any:
    (result,) = api.score(records, scale=api.load_scale("phq9"))
    return result


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.integers(0, 9), min_size=4, max_size=4, unique=True),
    unknown=st.sets(st.integers(0, 3), max_size=2),
    answers=st.lists(st.integers(0, 3), min_size=9, max_size=9),
)
def test_redcap_answers_are_scored_by_meaning_or_not_at_all(
    tmp_path_factory: Any, codes: list[int], unknown: set[int], answers: list[int]
) -> None:
    """Choice k has code codes[k] and the scale's label k (or a label the scale does not
    know, for k in ``unknown``); the answer to each item is choice answers[i]."""
    folder = tmp_path_factory.mktemp("redcap")
    labels = [f"Label {k}" if k in unknown else LABELS[k] for k in range(4)]
    choices = " | ".join(f"{codes[k]}, {labels[k]}" for k in range(4))
    rows = 'record_id,enrolment,,text,"Record ID",\n' + "".join(
        f'phq9_{i},phq9,,radio,"Item {i}","{choices}"\n' for i in range(1, 10)
    )
    (folder / "dict.csv").write_text(HEADER + rows)
    cells = ",".join(str(codes[a]) for a in answers)
    (folder / "export.csv").write_text(
        f"record_id,redcap_event_name,{PHQ9}\n1,baseline_arm_1,{cells}\n"
    )
    options = load_read_options(redcap_dictionary=folder / "dict.csv")
    data = read_paths([folder / "export.csv"], options=options)
    result = _score(data.records)
    known = [k for k in range(4) if k not in unknown]
    coding_is_the_scales = all(codes[k] == k for k in known)
    if coding_is_the_scales or not known:
        # nothing to correct (or nothing to compare with): the codes are the answers
        expected = None if any(codes[a] > 3 for a in answers) else sum(codes[a] for a in answers)
        assert result.scores["total"] == expected
    elif any(a in unknown for a in answers):
        assert result.scores["total"] is None
        assert "coding-conflict" in {i.code for i in result.issues}
    else:
        assert result.scores["total"] == sum(answers)  # by meaning, never by code


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 5), st.booleans()), min_size=9, max_size=9
    )
)
def test_sdtm_answers_are_scored_by_meaning_or_not_at_all(
    tmp_path_factory: Any, rows: list[tuple[int, int, bool]]
) -> None:
    """Item i: QSORRES is label m (or the number m when the bool is false) and QSSTRESN is
    the number s."""
    lines = ["USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN,VISIT"]
    for i, (m, s, as_label) in enumerate(rows, start=1):
        lines.append(f"P1,PHQ010{i},PHQ-9,{LABELS[m] if as_label else m},{s},V1")
    path: Path = tmp_path_factory.mktemp("sdtm") / "qs.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _score(read_paths([path]).records)
    conflict = any(not as_label and s != m for m, s, as_label in rows)
    if conflict:
        assert result.scores["total"] is None
        assert "coding-conflict" in {i.code for i in result.issues}
    else:
        assert result.scores["total"] == sum(m for m, _, _ in rows)
