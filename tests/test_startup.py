"""Start-up: scoring one small file never imports the column libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

HEAVY = ("numpy", "polars", "pyarrow", "pandas", "duckdb")

PROBE = """
import json, sys
from ketascore.cli import cli
sys.argv = ["ketascore", *sys.argv[1:]]
try:
    cli(prog_name="ketascore")
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*args: str, whole: bool = False) -> set[str]:
    """The packages a command imports (``whole``: the modules, by their whole names)."""
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
        line.split("|")[-1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    return {m if whole else m.split(".")[0] for m in imported | timed}


# (the table engine and its SQL compiler, the check files of --checks: 15-20 ms of the
# command's 0.3 s, for nothing when a small answer file is scored)
UNUSED = {"ketascore.engines.table", "ketascore.engines.sql", "ketascore.core.checksets"}


def test_scoring_one_small_yaml_file_imports_no_column_library(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = ("score", "tests/data/study/madrs.yaml", "-q", "-o", str(out))
    modules = _modules_after(*args, whole=True)
    assert out.exists()
    packages = {m.split(".")[0] for m in modules}
    assert not packages & set(HEAVY), sorted(packages & set(HEAVY))
    assert not modules & UNUSED, sorted(modules & UNUSED)


def test_the_table_engine_does_not_import_pandas(tmp_path: Path) -> None:
    """The streamed pass of a big CSV (DuckDB, pyarrow, numpy) leaves pandas and
    pyarrow.compute alone: importing them costs 0.3 s of the command (pyarrow's
    ``to_numpy`` and ``filter`` import them)."""
    pytest.importorskip("duckdb")
    rows = [f"S{k},v1,{','.join(str((k + i) % 4) for i in range(9))}" for k in range(3000)]
    header = "subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))
    (tmp_path / "big.csv").write_text("\n".join([header, *rows]) + "\n")
    out = tmp_path / "out.csv"
    args = ["score", str(tmp_path / "big.csv"), "--engine", "duckdb", "--scale", "phq9"]
    modules = _modules_after(*args, "-q", "-o", str(out), whole=True)
    assert "duckdb" in modules and out.read_text().count("\n") == 3001
    assert not {"pandas", "pyarrow.compute"} & modules


def test_help_imports_no_column_library() -> None:
    modules = _modules_after("--help")
    assert not modules & set(HEAVY)
    assert "pydantic" not in modules  # --help does not even load the scale language


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from ketascore.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        input=stdin,
    )


def test_the_command_ends_with_its_exit_code_and_all_output_written(tmp_path: Path) -> None:
    """main() leaves without the interpreter's teardown: what was written is all there and
    the exit status is the command's."""
    ok = _run("score", "tests/data/study/madrs.yaml", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["results"]  # the whole document reached the pipe
    assert ok.stderr.strip().endswith("0 with problems")
    usage = _run("score", "--no-such-option")
    assert usage.returncode == 2
    assert "No such option" in usage.stderr
    unknown = _run("score", "tests/data/study/madrs.yaml", "--scale", "no-such-scale")
    assert unknown.returncode == 2
    out = tmp_path / "out.csv"
    written = _run("score", "tests/data/study/madrs.yaml", "-q", "-o", str(out))
    assert written.returncode == 0 and written.stderr == ""
    assert out.read_text(encoding="utf-8").startswith("subject,visit,")


def test_a_reader_that_goes_away_is_not_an_error() -> None:
    """`ketascore score ... | head -1`: no traceback, no 'Exception ignored' at exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ketascore.cli import main; main()", "score", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    # (2,000 rows: 1.1 MB of JSON, many times what the pipe holds once its reader is gone)
    rows = "".join(f"S{i},baseline,{i % 4},1,2,0,1,2,3,0,1\n" for i in range(2000))
    header = "subject,visit," + ",".join(f"phq9_{k}" for k in range(1, 10)) + "\n"
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write((header + rows).encode())
    proc.stdin.close()
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.wait(timeout=120)
    assert proc.returncode == 0
    assert "Traceback" not in err and "Exception ignored" not in err


INTERRUPTED_AT_START = """
import sys


class CtrlC:  # Ctrl-C pressed while the command line's modules are being imported
    def find_spec(self, name, path=None, target=None):
        if name == "click":
            raise KeyboardInterrupt


sys.meta_path.insert(0, CtrlC())
from ketascore.launch import main

main()
"""


def test_ctrl_c_while_starting_up_is_exit_130_without_a_traceback() -> None:
    """The console script (``ketascore.launch``) takes charge of Ctrl-C before it imports
    the command line: pressed in the first tenth of a second, it ends the command as it
    does later, not with a traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_AT_START, "score", "x.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 130
    assert proc.stderr == "Interrupted.\n"
