"""Shared fixtures. Tests that read ../shared/data skip when it is absent."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import settings

# Property tests are derandomized so CI is repeatable; KETASCORE_FUZZ=N runs N times as many
# examples with fresh randomness (a longer fuzzing budget, on demand).
FUZZ = int(os.environ.get("KETASCORE_FUZZ", "0") or 0)
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("fuzz", derandomize=False, deadline=None)
settings.load_profile("fuzz" if FUZZ else "ci")

# The table engine hands an input DuckDB fails on to the readers, which give the same
# results: a fault of the table engine would then pass every test that compares the two.
# Here it is an error; a test of the fallback itself sets this to "0".
os.environ["KETASCORE_NO_FALLBACK"] = "1"


def as_a_terminal_starts_it() -> None:
    """For ``subprocess.Popen(preexec_fn=...)`` in tests that press Ctrl-C: the child takes
    SIGINT (and SIGHUP) as a program started from a terminal does. (A suite started in the
    background has SIGINT ignored, under nohup SIGHUP too, and a child inherits that, then
    sleeps through the signal.)"""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def budget(examples: int) -> int:
    """The number of hypothesis examples for a property: small in CI, more when fuzzing."""
    return examples * max(FUZZ, 1)


ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXAMPLE = ROOT / "examples" / "ketamine-trial"
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; KETASCORE_UPDATE_GOLDEN=1 rewrites the file.

    sha256 digests are masked: they change whenever a scale file or fixture is edited, and
    tests of provenance check them on their own."""
    text = re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)
    path = GOLDEN / name
    if os.environ.get("KETASCORE_UPDATE_GOLDEN") == "1":
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {name}; run with KETASCORE_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"output differs from golden file {name}"


# The suite runs in two worker processes (pyproject: -n 2). Each worker takes whole files (a
# file's module state and sessions stay in one process), and the files that use Spark go to
# one worker together: one JVM, started once, instead of two that compete for the machine's
# two cores. The grouping is decided here, from each test's file, by the scheduler itself:
# xdist's own "loadgroup" renames tests by a private attribute that pytest 9.2 no longer
# reads, and then spread the Spark tests over both workers without a word.
SPARK_FILES = ("test_spark.py", "test_warehouse.py")


def work_unit(nodeid: str) -> str:
    """The unit of work of a test, by its id: its file, or "spark" for the Spark files."""
    path = nodeid.split("::", 1)[0]
    return "spark" if path.rsplit("/", 1)[-1] in SPARK_FILES else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return ByFile(config, log)
