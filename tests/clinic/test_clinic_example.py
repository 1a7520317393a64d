"""The synthetic clinic example is generated, seeded, like the trial example."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

CLINIC = Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"
FILES = ["ratings/phq9-gad7.csv", "ratings/madrs.csv", "ratings/cssrs.csv", "sessions.csv"]


def test_the_generator_writes_the_files_in_the_repository(tmp_path: Path) -> None:
    shutil.copy(CLINIC / "generate.py", tmp_path / "generate.py")
    subprocess.run([sys.executable, str(tmp_path / "generate.py")], check=True, timeout=60)
    for name in FILES:
        assert (tmp_path / name).read_bytes() == (CLINIC / name).read_bytes(), name


def test_every_rating_scores_cleanly() -> None:
    from ketascore.api import read_answers, score

    data = read_answers(CLINIC / "ratings")
    results = score(data.records)
    assert data.issues == []
    assert len(results) == 758
    codes = {i.code for r in results for i in r.issues}
    assert codes == {"flag-undetermined"}  # KC-07 left PHQ-9 item 9 blank once, on purpose
