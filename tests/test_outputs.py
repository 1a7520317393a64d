"""Outputs: atomic writing, formula escaping, provenance, determinism."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.core.library import load_builtin
from ketascore.writers.tabular import atomic_writer, escape_formula, write_chunks

from conftest import ROOT, as_a_terminal_starts_it

STUDY = ROOT / "tests" / "data" / "study"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+SUM(A1)", "'+SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("KT-001", "KT-001"),
        ("", ""),
    ],
)
def test_escape_formula(text: str, expected: str) -> None:
    assert escape_formula(text) == expected


def _hostile_study(tmp_path: Path) -> Path:
    data = tmp_path / "hostile.csv"
    items = ",".join(f"madrs_{i}" for i in range(1, 11))
    data.write_text(
        f"subject,visit,day,site,{items}\n"
        '"=HYPERLINK(""http://x"")",baseline,0,@evil,' + ",".join(["3"] * 10) + "\n"
        '"=HYPERLINK(""http://x"")",day1,1,@evil,' + ",".join(["1"] * 10) + "\n"
    )
    return data


def test_change_csv_escapes_formulas_but_not_numbers(runner: CliRunner, tmp_path: Path) -> None:
    data = _hostile_study(tmp_path)
    result = runner.invoke(cli, ["change", str(data), "--scale", "madrs", "--format", "csv"])
    assert result.exit_code == 0, result.output
    row = result.stdout.splitlines()[1]
    assert row.startswith("\"'=HYPERLINK(")
    assert ",-20,-66.66666666666667," in row  # numbers stay numbers
    raw = runner.invoke(
        cli, ["change", str(data), "--scale", "madrs", "--format", "csv", "--no-escape-formulas"]
    )
    assert raw.stdout.splitlines()[1].startswith('"=HYPERLINK(')


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_provenance_sidecar_and_file(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "change.csv"
    prov = tmp_path / "prov.json"
    data = STUDY / "madrs.yaml"
    result = runner.invoke(
        cli, ["change", str(data), "--scale", "madrs", "-o", str(out), "--provenance", str(prov)]
    )
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "change.csv.provenance.json").read_text())
    assert sidecar == json.loads(prov.read_text())
    assert sidecar["scales"] == [
        {
            "id": "madrs",
            "version": load_builtin("madrs").version,
            "sha256": _sha(ROOT / "scales" / "madrs.yaml"),
            "source": "scales/madrs.yaml",
        }
    ]
    assert sidecar["inputs"] == [{"file": str(data), "sha256": _sha(data)}]


def test_json_and_jsonl_carry_provenance(runner: CliRunner) -> None:
    args = ["change", str(STUDY / "madrs.yaml"), "--scale", "madrs"]
    doc = json.loads(runner.invoke(cli, [*args, "--format", "json"]).stdout)
    assert doc["provenance"]["command"] == "ketascore change"
    first = runner.invoke(cli, [*args, "--format", "jsonl"]).stdout.splitlines()[0]
    assert json.loads(first)["type"] == "provenance"


def test_outputs_are_deterministic(runner: CliRunner) -> None:
    for fmt in ("json", "jsonl", "csv", "table"):
        args = ["change", str(STUDY), "--scale", "madrs", "--by", "hamd17.anxious_depression"]
        first = runner.invoke(cli, [*args, "--format", fmt]).stdout
        second = runner.invoke(cli, [*args, "--format", fmt]).stdout
        assert first == second and first


WRITER = """
import sys, time
from ketascore.writers.tabular import atomic_writer
with atomic_writer(sys.argv[1]) as fh:
    for i in range(100000):
        fh.write("row %d\\n" % i)
        if i == 10:
            fh.flush()
            print("started", flush=True)
            time.sleep(30)
"""


@pytest.mark.skipif(os.name != "posix", reason="signals")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_a_writer_killed_midway_leaves_no_output_file(tmp_path: Path, sig: int) -> None:
    target = tmp_path / "out.csv"
    with subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        preexec_fn=as_a_terminal_starts_it,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"started"
        assert list(tmp_path.iterdir()), "the writer should have a temporary file by now"
        proc.send_signal(sig)
        proc.wait(timeout=20)
    assert not target.exists()
    if sig == signal.SIGINT:  # a Python-level interrupt also removes the temporary file
        deadline = time.time() + 5
        while list(tmp_path.iterdir()) and time.time() < deadline:
            time.sleep(0.05)
        assert list(tmp_path.iterdir()) == []


def test_atomic_writer_keeps_the_old_file_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_writer(target) as fh:
        fh.write("new, half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_write_chunks_writes_every_byte_of_bytes_like_chunks(tmp_path: Path) -> None:
    """Chunks (bytes and memoryviews) are written in order, whatever the writeback step."""
    import numpy as np

    chunks = [b"a,b\n", memoryview(b"1,2\n" * 1000), np.frombuffer(b"3,4\n" * 7, np.uint8).data]
    expected = b"".join(bytes(c) for c in chunks)
    for every in (1, 5, 4096, 8 << 20):
        target = tmp_path / f"out-{every}.csv"
        with atomic_writer(target, binary=True) as fh:
            write_chunks(fh, iter(chunks), every=every)
        assert target.read_bytes() == expected


def test_atomic_writer_follows_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    old = os.umask(0o022)
    try:
        with atomic_writer(target) as fh:
            fh.write("{}")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o644


def test_score_outputs_carry_provenance(runner: CliRunner, tmp_path: Path) -> None:
    data = STUDY / "hamd17.csv"
    doc = json.loads(runner.invoke(cli, ["score", str(data), "--format", "json"]).stdout)
    assert doc["provenance"]["inputs"] == [{"file": str(data), "sha256": _sha(data)}]
    assert [s["id"] for s in doc["provenance"]["scales"]] == ["hamd17"]
    out = tmp_path / "scores.csv"
    result = runner.invoke(cli, ["score", str(data), "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "scores.csv.provenance.json").read_text())
    assert sidecar["command"] == "ketascore score"
    prov = tmp_path / "p.json"
    runner.invoke(cli, ["score", str(data), "--format", "csv", "--provenance", str(prov)])
    assert json.loads(prov.read_text())["inputs"][0]["sha256"] == _sha(data)


def test_score_writes_fhir_observations(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["score", str(STUDY / "hamd17.csv"), "--format", "fhir"])
    bundle = json.loads(result.stdout)
    assert bundle["resourceType"] == "Bundle"
    assert {e["resource"]["resourceType"] for e in bundle["entry"]} == {"Observation"}


def test_a_carried_field_named_like_a_score_column_keeps_rows_aligned(
    runner: CliRunner, tmp_path: Path
) -> None:
    data = tmp_path / "d.yaml"
    data.write_text(
        "subject: S1\nvisit: v\nscale: hamd6\ntotal: from the form\nflags: x\n"
        "items: {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}\n"
    )
    result = runner.invoke(cli, ["score", str(data), "--format", "csv"])
    header, row = result.stdout.splitlines()
    assert len(header.split(",")) == len(row.split(","))
