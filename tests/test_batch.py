"""Folder batches: same output whatever the number of worker processes, duplicates across
files found as score_records finds them, bad files reported, progress on a terminal,
Ctrl-C stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.api import read_answers, score
from ketascore.cli import cli
from ketascore.engines.batch import Settings, collect_files, score_files
from ketascore.writers.tabular import score_json

from conftest import ROOT, as_a_terminal_starts_it


def make_folder(root: Path, n: int = 150) -> Path:
    """Visits as YAML and JSON files, with a duplicate, a conflict, a bad file, a hidden one."""
    for i in range(n):
        subject, visit = f"S{i // 3:03d}", ["baseline", "week1", "week2"][i % 3]
        folder = root / f"site{i % 4}" / subject
        folder.mkdir(parents=True, exist_ok=True)
        items = {str(k): (i + k) % 4 for k in range(1, 10)}
        if i % 17 == 0:
            items["9"] = "refused"
        if i % 2:
            doc = {"subject": subject, "visit": visit, "scale": "phq9", "items": items}
            (folder / f"{visit}.json").write_text(json.dumps(doc))
        else:
            lines = [f"subject: {subject}", f"visit: {visit}", "scale: phq9", "items:"]
            lines += [f"  {k}: {v}" for k, v in items.items()]
            (folder / f"{visit}.yaml").write_text("\n".join(lines) + "\n")
    dup = root / "zz" / "again.yaml"
    dup.parent.mkdir()
    dup.write_text((root / "site0" / "S000" / "baseline.yaml").read_text())
    (root / "zz" / "conflict.json").write_text(
        json.dumps(
            {"subject": "S001", "visit": "week1", "scale": "phq9", "items": {"1": 3, "2": 3}}
        )
    )
    (root / "zz" / "broken.json").write_text('{"subject": "S9", "items": [')
    (root / "zz" / ".hidden.yaml").write_text("not: [valid")
    return root


def test_merge_equals_score_records_for_any_number_of_jobs(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data")
    data = read_answers([folder])
    expected = score_json(score(data.records), data.issues, len(data.files))
    items = collect_files([folder])
    for jobs, chunk in ((1, 64), (2, 7), (3, 1)):
        batch = score_files(items, Settings(scale_ids=()), jobs=jobs, chunk=chunk)
        got = score_json(batch.results, batch.issues, len(batch.files))
        assert got == expected, jobs
    codes = {i.code for r in batch.results for i in r.issues} | {i.code for i in batch.issues}
    assert {"duplicate-record", "conflicting-records", "parse-error"} <= codes


def test_cli_output_is_the_same_with_one_or_two_jobs(tmp_path: Path, runner: CliRunner) -> None:
    folder = make_folder(tmp_path / "data", 200)
    out = []
    for jobs in ("1", "2"):
        target = tmp_path / f"out{jobs}.csv"
        result = runner.invoke(cli, ["score", str(folder), "-j", jobs, "-o", str(target)])
        assert result.exit_code == 1  # the broken file and the conflict
        out.append(target.read_bytes())
        # the problems are listed (errors first, then their count), then the summary
        *problems, counts, summary = result.stderr.splitlines()
        assert summary.startswith("203 file(s), 200 record(s)")
        assert counts == "14 errors, 1 warning" and problems[0].startswith("error[parse-error]")
    assert out[0] == out[1]


def test_one_bad_file_is_reported_with_its_path_and_the_rest_scored(
    tmp_path: Path, runner: CliRunner
) -> None:
    folder = make_folder(tmp_path / "data", 90)
    result = runner.invoke(cli, ["score", str(folder), "-j", "2", "--format", "json"])
    doc = json.loads(result.stdout)
    assert [i["file"] for i in doc["issues"]] == [str(folder / "zz" / "broken.json")]
    assert doc["summary"]["records"] == 90  # the duplicate and the conflict merged


def _pty_run(args: list[str], cwd: Path) -> tuple[int, str]:
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketascore.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        env=env,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal_and_silent_when_quiet(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "data", 60)
    code, err = _pty_run(["score", str(folder), "-j", "1", "-o", str(tmp_path / "o.csv")], ROOT)
    assert code == 1
    assert "scoring" in err and "files" in err and "records" in err
    assert "63 file(s), 60 record(s)" in err
    code, err = _pty_run(["score", str(folder), "-q", "-o", str(tmp_path / "o.csv")], ROOT)
    assert err.strip() == ""


def test_no_progress_bar_when_piped(tmp_path: Path, runner: CliRunner) -> None:
    folder = make_folder(tmp_path / "data", 30)
    result = runner.invoke(cli, ["score", str(folder), "-o", str(tmp_path / "o.csv")])
    *problems, counts, summary = result.stderr.splitlines()
    assert summary.startswith("33 file(s), 30 record(s), ")
    assert counts == "4 errors, 1 warning" and len(problems) == 5  # the problems, no bar
    assert all(line.startswith(("error[", "warning[")) for line in problems)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def started_workers(pid: int, timeout: float = 30) -> None:
    """Wait until the process ``pid`` has child processes (its workers), as Linux lists
    them; elsewhere, a while. (A fixed wait interrupted a command still starting up on a
    busy machine, before it had any worker to stop.)"""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if not children.exists():
        time.sleep(0.7)
        return
    deadline = time.monotonic() + timeout
    while not children.read_text().split():
        assert time.monotonic() < deadline, "the command started no worker"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def folder_8000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("folder") / "data", 8000)


def _scoring(folder: Path, target: Path, preexec: Any) -> subprocess.Popen[bytes]:
    """``ketascore score FOLDER -j 2 -o TARGET`` started, once it has its workers."""
    command = ["score", str(folder), "-j", "2", "-o", str(target)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ketascore.cli", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        preexec_fn=preexec,
    )
    started_workers(proc.pid)
    return proc


@pytest.mark.parametrize(
    "sig, code, said",
    [
        (signal.SIGINT, 130, "Interrupted."),
        (signal.SIGTERM, 143, "Terminated."),
        (signal.SIGHUP, 129, "Hung up."),
    ],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_an_interrupt_stops_workers_and_leaves_no_output_file(
    folder_8000: Path, tmp_path: Path, sig: int, code: int, said: str
) -> None:
    """Ctrl-C, SIGTERM (`kill`, a job scheduler's time limit) or SIGHUP (the terminal
    closed) while the workers score a folder: the command stops them, removes what it was
    writing and says so, with 130, 143 or 129. (SIGTERM and SIGHUP killed the command on
    the spot and left a hidden .part file behind.)"""
    proc = _scoring(folder_8000, tmp_path / "out.json", as_a_terminal_starts_it)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert said in err.decode()
    assert list(tmp_path.iterdir()) == []


def _under_nohup() -> None:
    as_a_terminal_starts_it()
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def test_a_hang_up_under_nohup_changes_nothing(folder_8000: Path, tmp_path: Path) -> None:
    """A command started with SIGHUP ignored (``nohup``) keeps it ignored, in its workers
    too: the terminal closing does not stop it, and it writes its output."""
    target = tmp_path / "out.json"
    proc = _scoring(folder_8000, target, _under_nohup)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers = children.read_text().split() if children.exists() else []
    for pid in [proc.pid, *map(int, workers)]:  # (as a closing terminal signals them all)
        os.kill(pid, signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err  # (the folder holds a broken file, reported)
    assert b"Hung up." not in err
    assert json.loads(target.read_text())["summary"]["records"] >= 8000


# --------------------------------------------------------------------------------------
# The quick reader of simple JSON and YAML files reads what the YAML loader reads

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

TRICKY = [
    "007",
    "-5",
    "+1",
    "1.50",
    ".5",
    "1.",
    "1e5",
    "1E+5",
    "0x1A",
    "0o17",
    "1_000",
    "12:30",
    "null",
    "Null",
    "~",
    "True",
    "true",
    "FALSE",
    "yes",
    "no",
    "on",
    "2024-01-02",
    "2024-1-2",
    "2025-13-40",
    "a b",
    "a  b",
    "Several days",
    "x:y",
    "x: y",
    "#c",
    "a #c",
    "-",
    "- a",
    "S01",
    "week 4",
    "3",
    "0",
    "-0",
    "2.5",
    "NaN",
    ".inf",
    "=1",
    "'q'",
    '"q"',
    "[1]",
    "{a: 1}",
]
PLAIN = ["1", "2", "S01", "week 4", "Several days", "2.5", "0", "-1", "baseline", "007"]
KEYS = [
    "1",
    "01",
    "16a",
    "subject",
    "visit",
    "scale",
    "items",
    "null",
    "True",
    "a-b",
    "1_0",
    "x",
    "day",
    "date",
    "S",
    "10",
]


VALUES = st.one_of(st.sampled_from(PLAIN), st.sampled_from(PLAIN), st.sampled_from(TRICKY))


@st.composite
def yaml_docs(draw: st.DrawFn) -> str:
    lines = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True)):
        if draw(st.booleans()):
            lines.append(f"{key}: {draw(VALUES)}")
        else:
            lines.append(f"{key}:")
            indent = " " * draw(st.integers(1, 4))
            for sub in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
                lines.append(f"{indent}{sub}: {draw(VALUES)}")
    return "\n".join(lines) + "\n"


@st.composite
def json_docs(draw: st.DrawFn) -> str:
    import json as _json

    def scalar() -> str:
        kind = draw(st.sampled_from(["str", "raw"]))
        if kind == "str":
            return _json.dumps(draw(VALUES))
        return draw(st.sampled_from(["1", "-2", "0", "1.5", "-0.0", "1e5", "true", "null", "01"]))

    parts = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=6)):
        if draw(st.booleans()):
            value = scalar()
        else:
            inner = [
                f'"{k}": {scalar()}' for k in draw(st.lists(st.sampled_from(KEYS), max_size=4))
            ]
            value = "{" + ", ".join(inner) + "}"
        parts.append(f'"{key}": {value}')
    sep = draw(st.sampled_from([", ", ",\n  ", ","]))
    return "{" + sep.join(parts) + "}\n"


def _same(fast: object, slow: object) -> bool:
    if type(fast) is not type(slow):
        return False
    if isinstance(fast, dict):
        assert isinstance(slow, dict)
        return list(fast) == list(slow) and all(_same(fast[k], slow[k]) for k in fast)
    if isinstance(fast, list):
        assert isinstance(slow, list)
        return len(fast) == len(slow) and all(_same(a, b) for a, b in zip(fast, slow, strict=True))
    return fast == slow


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(yaml_docs(), json_docs()))
def test_quick_reading_equals_the_yaml_loader(text: str) -> None:
    from ketascore.core import yamlsafe
    from ketascore.readers import quickload

    fast = quickload.load_json(text) if text.startswith("{") else quickload.load_yaml(text)
    if fast is None:
        return
    slow = yamlsafe.load(text, raw_keys=quickload.RAW_KEYS)
    assert _same(fast.data, slow.data), (text, fast.data, slow.data)
    assert fast.positions == slow.positions, text


@pytest.mark.parametrize(
    "text",
    ['{"a": 1, "b": @}', '{"a": 1 x}', '{"a":1}', '{"a": 1}  \t', '{"a": 1} //', '{"a": 01}'],
)
def test_quick_json_refuses_what_it_does_not_know(text: str) -> None:
    """A character outside the subset anywhere (which the tokenizer's findall skips over)
    leaves the text to the full loader."""
    from ketascore.readers import quickload

    assert quickload.load_json(text) is None


def test_quick_reading_of_a_folder_equals_read_file(tmp_path: Path) -> None:
    from ketascore.engines.batch import read_quick
    from ketascore.readers import quickload, read_file

    folder = make_folder(tmp_path / "data", 40)
    files = [p for p in collect_files([folder]) if isinstance(p, str)]
    quick = 0
    for path in files:
        text = Path(path).read_text()
        loader = quickload.load_json if path.endswith(".json") else quickload.load_yaml
        quick += loader(text) is not None
        got, expected = read_quick(path, Settings()), read_file(path)
        assert got.records == expected.records and got.issues == expected.issues, path
        assert got.files == expected.files and got.hashes == expected.hashes
    assert quick >= len(files) - 4  # all but the broken and the odd ones


def test_quick_reading_of_a_file_that_changes_or_is_no_regular_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grew between its size and its reading, and a named pipe, are read by
    read_file itself: the records are those of the whole file."""
    import os
    import threading

    from ketascore.engines import batch
    from ketascore.readers import read_file

    path = tmp_path / "a.yaml"
    path.write_text("subject: S1\nvisit: v1\nscale: phq9\nitems: {1: 2, 2: 3}\n")
    real = os.stat

    def smaller(name: Any, *args: Any, **kwargs: Any) -> Any:
        info = real(name, *args, **kwargs)
        if str(name) != str(path):
            return info
        return os.stat_result((info.st_mode, *info[1:6], info.st_size - 5, *info[7:]))

    monkeypatch.setattr(batch.os, "stat", smaller)
    got = batch.read_quick(str(path), Settings())
    monkeypatch.undo()
    expected = read_file(str(path))
    assert got.records == expected.records and got.issues == expected.issues
    assert got.records[0].items == {"1": 2, "2": 3}
    pipe = tmp_path / "p.yaml"
    os.mkfifo(pipe)
    text = path.read_text()
    writer = threading.Thread(target=pipe.write_text, args=(text,))
    writer.start()
    got = batch.read_quick(str(pipe), Settings())
    writer.join()
    assert [r.items for r in got.records] == [{"1": 2, "2": 3}]
