"""Class 3 of issue #16: bounded resources.

--max-file-size applies to every input, standard input and devices included, and to the
files options name; a file in a folder that is not a regular file is skipped with a notice
(never read, so never waited on); wide headers, many variables and long lines cost time
and memory in proportion to their size; a scale's declared ranges cannot make memory
explode. Commands that could hang or exhaust memory run in a child process with a timeout
and a memory limit, so a regression fails instead of stalling the suite."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))
GOOD_CSV = f"subject,visit,{PHQ9}\nG1,v1,1,1,1,1,1,1,1,1,1\n"
MEMORY = 2 << 30  # a child that needs more than this has lost its bounds


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """ketascore in a child process, with a time and a memory limit."""

    def limit() -> None:  # pragma: no cover - runs in the child
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY * 2, MEMORY * 2))

    return subprocess.run(
        [sys.executable, "-m", "ketascore.cli", *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        preexec_fn=limit if os.name == "posix" else None,
    )


def test_standard_input_is_read_up_to_the_limit(runner: CliRunner) -> None:
    limit = str(len(GOOD_CSV))
    result = runner.invoke(
        cli, ["score", "-", "--max-file-size", limit, "--format", "json"], input=GOOD_CSV + "\n"
    )
    assert result.exit_code == 1
    (issue,) = json.loads(result.stdout)["issues"]
    assert issue["code"] == "file-too-large" and issue["file"] == "<stdin>"
    assert f"more than the limit of {len(GOOD_CSV)} bytes" in issue["message"]
    ok = runner.invoke(cli, ["score", "-", "--max-file-size", limit, "-q"], input=GOOD_CSV)
    assert ok.exit_code == 0, ok.output


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
def test_a_device_is_read_up_to_the_limit() -> None:
    done = run("score", "/dev/zero", "--max-file-size", "1000000", "--format", "json")
    assert done.returncode == 1, done.stderr
    (issue,) = json.loads(done.stdout)["issues"]
    assert issue["code"] == "file-too-large"
    done = run("score", "-", "--max-file-size", "1000", "--format", "json", stdin=b"x" * 100_000)
    assert done.returncode == 1 and "file-too-large" in done.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="fifos")
def test_a_pipe_named_on_the_command_line_is_read_up_to_the_limit(tmp_path: Path) -> None:
    """`ketascore score <(...)` gives a pipe: it is read, but never beyond the limit."""
    fifo = tmp_path / "in.csv"
    os.mkfifo(fifo)

    def write() -> None:
        try:
            with open(fifo, "w") as fh:
                fh.write(GOOD_CSV + ("G2,v1," + ",".join(["1"] * 9) + "\n") * 200_000)
        except BrokenPipeError:
            pass  # the reader stopped at the limit, as it should

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    done = run("score", str(fifo), "--max-file-size", "10000", "--format", "json")
    writer.join(10)
    assert done.returncode == 1, done.stderr
    assert [i["code"] for i in json.loads(done.stdout)["issues"]] == ["file-too-large"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="fifos")
def test_a_folder_with_a_fifo_and_a_device_is_not_waited_on(tmp_path: Path) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "a.csv").write_text(GOOD_CSV)
    os.mkfifo(folder / "b.csv")
    (folder / "c.yaml").symlink_to(folder / "b.csv")  # a link to a fifo
    names = ["b.csv", "c.yaml"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.mknod(folder / "d.json", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # a /dev/zero
        names.append("d.json")
    done = run("score", str(folder), "--format", "json", timeout=60)
    assert done.returncode == 0, done.stderr  # notices, not errors
    doc = json.loads(done.stdout)
    assert doc["summary"]["scored"] == 1
    assert [(i["code"], Path(i["file"]).name) for i in doc["issues"]] == [
        ("file-skipped", name) for name in names
    ]
    assert "not a regular file but a named pipe (fifo)" in doc["issues"][0]["message"]
    assert "skipped (not ratings files)" in done.stderr


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize(
    "option",
    ["--map", "--redcap-dictionary", "--questionnaire", "--scale", "--windows"],
)
def test_an_option_file_is_a_regular_file_within_the_limit(option: str, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text(GOOD_CSV)
    command = "change" if option == "--windows" else "score"
    extra = ["--scale", "phq9"] if command == "change" else []
    done = run(command, str(data), *extra, option, "/dev/zero")
    assert done.returncode == 2, done.stderr
    assert "not a regular file" in done.stderr
    big = tmp_path / "big.yaml"
    big.write_text("x" * 5000)
    done = run(command, str(data), *extra, option, str(big), "--max-file-size", "1000")
    assert done.returncode == 2 and "above the limit of 1,000" in done.stderr


def test_a_wide_header_costs_in_proportion(runner: CliRunner, tmp_path: Path) -> None:
    """200,000 columns (and one repeated) are checked without comparing every pair."""
    names = [f"c{i}" for i in range(200_000)]
    path = tmp_path / "wide.csv"
    path.write_text(
        "subject,visit,"
        + ",".join(names)
        + f",{PHQ9},C7\n"
        + "S,v,"
        + ",".join(["x"] * 200_000)
        + ",1,1,1,1,1,1,1,1,1,y\n"
    )
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 1
    (issue,) = json.loads(result.stdout)["issues"]
    assert issue["code"] == "csv-columns" and "'C7', 'c7'" in issue["message"]


def test_many_variables_in_a_sas_transport_file(runner: CliRunner, tmp_path: Path) -> None:
    from ketascore.readers import xpt

    variables = [
        xpt.Variable("SUBJECT", numeric=False, length=8),
        xpt.Variable("VISIT", numeric=False, length=8),
    ] + [xpt.Variable(f"V{i}") for i in range(9_000)]
    path = tmp_path / "many.xpt"  # (version 5 holds at most 9,999 variables)
    with open(path, "wb") as fh:
        xpt.write_xport(fh, "QS", variables, [["S1", "V1", *[1.0] * 9_000]] * 3)
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 1  # no item of a known scale
    assert json.loads(result.stdout)["issues"][0]["code"] == "csv-columns"


def test_long_lines(runner: CliRunner, tmp_path: Path) -> None:
    """A JSON Lines record with a 3 MB carried field and a CSV cell of 3 MB."""
    text = "x" * 3_000_000
    record = {
        "subject": "S",
        "visit": "v",
        "scale": "phq9",
        "note": text,
        "items": {str(i): 1 for i in range(1, 10)},
    }
    (tmp_path / "a.jsonl").write_text(json.dumps(record) + "\n")
    (tmp_path / "b.csv").write_text(f"subject,visit,note,{PHQ9}\nS2,v,{text},1,1,1,1,1,1,1,1,1\n")
    result = runner.invoke(cli, ["score", str(tmp_path), "--format", "json", "--quiet"])
    assert result.exception is None or isinstance(result.exception, SystemExit)
    doc = json.loads(result.stdout)
    assert doc["summary"]["scored"] >= 1
    for issue in doc["issues"]:  # a message quotes a long value by its start and length
        assert len(issue["message"]) < 1000


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        ([(0, 10**12)], "holds 1,000,000,000,001 whole values"),
        ([(0, 10**300)], "whole values"),
        ([(0, 9_999)] * 150, "more than 1,000,000 whole values in all"),
    ],
)
def test_declared_ranges_cannot_make_memory_explode(
    tmp_path: Path, ranges: list[tuple[int, int]], words: str
) -> None:
    from ketascore.authoring import starter_yaml

    text = starter_yaml("huge", len(ranges), 0, 3, filename="huge-range.yaml")
    for i, (lo, hi) in enumerate(ranges, start=1):
        text = text.replace(
            f"label: TODO label of item {i}, range: [0, 3]}}",
            f"label: TODO label of item {i}, range: [{lo}, {hi}]}}",
        )
    path = tmp_path / "huge-range.yaml"
    path.write_text(text)
    done = run("scales", "check", str(path), timeout=60)
    assert done.returncode in (1, 2), done.stderr
    assert words in done.stdout + done.stderr
    assert "MemoryError" not in done.stderr and "internal error" not in done.stderr


def test_deeply_nested_fhir_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    nested = '{"linkId": "g", "item": [' * 5000 + '{"linkId": "x"}' + "]}" * 5000
    path = tmp_path / "deep.json"
    path.write_text('{"resourceType": "QuestionnaireResponse", "item": [' + nested + "]}")
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 1
    assert [i["code"] for i in json.loads(result.stdout)["issues"]] == ["parse-error"]
