"""Start-up: scoring one small file never imports the column libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

HEAVY = ("numpy", "polars", "pyarrow", "pandas")

PROBE = """
import json, sys
from ketascore.cli import cli
sys.argv = ["ketascore", *sys.argv[1:]]
try:
    cli(prog_name="ketascore")
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
"""


def _modules_after(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    last = proc.stderr.strip().splitlines()[-1]
    imported = set(json.loads(last))
    # -X importtime lists every module imported, including ones imported and then dropped
    timed = {
        line.split("|")[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return imported | timed


def test_scoring_one_small_yaml_file_imports_no_column_library(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    modules = _modules_after("score", "tests/data/study/madrs.yaml", "-q", "-o", str(out))
    assert out.exists()
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_help_imports_no_column_library() -> None:
    modules = _modules_after("--help")
    assert not modules & set(HEAVY)
    assert "pydantic" not in modules  # --help does not even load the scale language
