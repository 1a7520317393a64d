"""Class 2 of issue #16: exit 3 is for bugs only.

No single cell, file or header aborts a batch (huge integers, damaged SAS transport
headers, JSON of the wrong shape, truncated workbooks): the file or cell is reported and
the rest is scored. Problems of the system (an output folder that is missing or read-only,
a full disk, a permission, a fifo or a device) are a clear message with exit 2, or a file
issue with exit 1; never "internal error ... this is a bug"."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascore.cli import cli
from ketascore.readers import read_bytes

ROOT = Path(__file__).resolve().parents[2]
BIG = "9" * 5000
PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))
GOOD_CSV = f"subject,visit,{PHQ9}\nG1,v1,1,1,1,1,1,1,1,1,1\n"


def _huge_inputs() -> dict[str, str]:
    """One file of each text format with a huge integer in an answer."""
    loinc = [
        "44250-9",
        "44255-8",
        "44259-0",
        "44254-1",
        "44251-7",
        "44258-2",
        "44252-5",
        "44253-3",
        "44260-8",
    ]
    fhir = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "subject": {"reference": "Patient/f1"},
        "authored": "2024-01-01",
        "item": [{"linkId": c, "answer": [{"valueInteger": 1}]} for c in loinc],
    }
    fhir_text = json.dumps(fhir).replace('"valueInteger": 1}', f'"valueInteger": {BIG}}}', 1)
    sdtm = "USUBJID,QSTESTCD,QSCAT,QSORRES,QSSTRESN,VISIT\n" + "".join(
        f"P1,PHQ010{i},PHQ-9,1,{BIG if i == 1 else 1},V1\n" for i in range(1, 10)
    )
    return {
        "a.json": f'{{"subject": "J1", "visit": "v", "scale": "phq9", "items": {{"1": {BIG}}}}}',
        "b.jsonl": f'{{"subject": "L1", "visit": "v", "scale": "phq9", "items": {{"1": {BIG}}}}}\n',
        "c.yaml": f"subject: Y1\nvisit: v\nscale: phq9\nday: {BIG}\nitems: {{1: {BIG}}}\n",
        "d.csv": f"subject,visit,day,{PHQ9}\nC1,v,{BIG},{BIG},1,1,1,1,1,1,1,1\n",
        "e.csv": f"subject,visit,scale,item,value\nK1,v,phq9,1,{BIG}\nK1,v,phq9,{BIG},1\n",
        "f.json": fhir_text,
        "g.csv": sdtm,
        "h.csv": f"record_id,redcap_event_name,{PHQ9},phq9_complete\n1,e,{BIG},1,1,1,1,1,1,1,1,2\n",
    }


@pytest.mark.parametrize("workers", [False, True])
def test_huge_integers_never_abort_a_batch(
    runner: CliRunner, tmp_path: Path, workers: bool
) -> None:
    for name, text in _huge_inputs().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "z-good.csv").write_text(GOOD_CSV)
    jobs = ["--jobs", "1"]
    if workers:  # (a folder of more than 64 files is read and scored by worker processes)
        for i in range(70):
            (tmp_path / f"pad{i:02}.json").write_text(
                f'{{"subject": "P{i}", "visit": "v", "scale": "phq9", "items": {{"1": 1}}}}'
            )
        jobs = ["--jobs", "2"]
    result = runner.invoke(cli, ["score", str(tmp_path), "--format", "json", "--quiet", *jobs])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert doc["summary"]["scored"] >= 1
    assert any(r["subject"] == "G1" and r["scores"]["total"] == 9 for r in doc["results"])
    codes = {i["code"] for r in doc["results"] for i in r["issues"]} | {
        i["code"] for i in doc["issues"]
    }
    assert "not-a-number" in codes and "internal-error" not in codes


def test_huge_integers_in_a_spreadsheet(runner: CliRunner, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["subject", "visit", *PHQ9.split(",")])
    sheet.append(["S1", "v", BIG, *([1] * 8)])
    sheet.append(["S2", "v", 1e308, *([1] * 8)])
    sheet.append(["S3", "v", *([1] * 9)])
    path = tmp_path / "w.xlsx"
    book.save(path)
    result = runner.invoke(cli, ["score", str(path), "--format", "json"])
    assert result.exit_code == 1
    totals = [r["scores"]["total"] for r in json.loads(result.stdout)["results"]]
    assert totals == [None, None, 9]


def _xpt_bytes() -> bytes:
    from ketascore.readers import xpt

    buf = io.BytesIO()
    variables = [
        xpt.Variable("SUBJECT", numeric=False, length=8),
        xpt.Variable("VISIT", numeric=False, length=8),
    ] + [xpt.Variable(f"PHQ9_{i}") for i in range(1, 10)]
    xpt.write_xport(buf, "QS", variables, [["S1", "V1", *[1.0] * 9]])
    return buf.getvalue()


@settings(max_examples=200, suppress_health_check=list(HealthCheck), deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 1400), st.binary(min_size=1, max_size=4)), min_size=1, max_size=6
    ),
    st.integers(0, 1700),
)
def test_a_damaged_sas_transport_file_is_a_file_issue(edits: list, cut: int) -> None:
    data = bytearray(_xpt_bytes())
    for at, raw in edits:
        data[at : at + len(raw)] = raw
    data = data[: max(cut, 80)] if cut < 1700 else data
    result = read_bytes(bytes(data), "d.xpt")  # never raises
    assert all(i.code != "internal-error" for i in result.issues)


def test_damaged_headers_are_named(runner: CliRunner, tmp_path: Path) -> None:
    good = _xpt_bytes()
    cases = {
        "count.xpt": good[: 7 * 80 + 54] + b"12ab" + good[7 * 80 + 58 :],
        "size.xpt": good[: 3 * 80 + 74] + b"-140" + good[3 * 80 + 78 :],
        "length.xpt": good[: 8 * 80 + 4] + b"\x7f\xff" + good[8 * 80 + 6 :],
        "cut.xpt": good[:700],
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "z-good.csv").write_text(GOOD_CSV)
    result = runner.invoke(cli, ["score", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert [(i["code"], Path(i["file"]).name) for i in doc["issues"]] == [
        ("parse-error", name) for name in sorted(cases)
    ]
    assert doc["summary"]["scored"] == 1


def test_truncated_workbooks_are_file_issues(runner: CliRunner, tmp_path: Path) -> None:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    book.active.append(["subject", "visit", *PHQ9.split(",")])
    book.active.append(["S1", "v", *([1] * 9)])
    buf = io.BytesIO()
    book.save(buf)
    data = buf.getvalue()
    for n, cut in enumerate((10, len(data) // 3, len(data) // 2, len(data) - 30)):
        (tmp_path / f"w{n}.xlsx").write_bytes(data[:cut])
    (tmp_path / "z-good.csv").write_text(GOOD_CSV)
    result = runner.invoke(cli, ["score", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert {i["code"] for i in doc["issues"]} == {"parse-error"}
    assert doc["summary"]["scored"] == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceType",
                    "item",
                    "answer",
                    "linkId",
                    "valueInteger",
                    "valueCoding",
                    "code",
                    "subject",
                    "reference",
                    "authored",
                    "entry",
                    "resource",
                    "status",
                    "items",
                    "visit",
                    "scale",
                    "valueQuantity",
                    "value",
                    "valueString",
                    "display",
                    "id",
                ]
            ),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, suppress_health_check=list(HealthCheck), deadline=None)
@given(JSON, st.sampled_from(["QuestionnaireResponse", "Bundle", None]))
def test_json_of_any_shape_never_raises(doc: object, kind: str | None) -> None:
    from ketascore import api

    if isinstance(doc, dict) and kind is not None:
        doc = {**doc, "resourceType": kind}
    text = json.dumps(doc, allow_nan=False) if _finite(doc) else "[]"
    for name in ("r.json", "r.ndjson"):
        result = read_bytes(text.encode(), name)
        api.score(result.records)  # never raises
        assert all(i.code != "internal-error" for i in result.issues)


def _finite(doc: object) -> bool:
    try:
        json.dumps(doc, allow_nan=False)
    except ValueError:
        return False
    return True


# ---- a reader's bug is a file issue; the batch goes on --------------------------------


def test_a_reader_that_fails_is_reported_and_the_batch_goes_on(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.readers as readers
    from ketascore.readers import quickload

    def broken(*args: object) -> object:
        raise KeyError("a bug")

    # (the YAML reader, and the quick one that reads the small files of a folder)
    monkeypatch.setattr(readers, "read_yaml", broken)
    monkeypatch.setattr(quickload, "load_yaml", broken)
    (tmp_path / "a.yaml").write_text("subject: A\n")
    (tmp_path / "b.csv").write_text(GOOD_CSV)
    result = runner.invoke(cli, ["score", str(tmp_path), "--format", "json", "--jobs", "1"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [i["code"] for i in doc["issues"]] == ["internal-error"]
    assert "KeyError" in doc["issues"][0]["message"] and doc["summary"]["scored"] == 1
    monkeypatch.setenv("KETASCORE_TRACEBACK", "1")
    with pytest.raises(KeyError):
        readers.read_file(tmp_path / "a.yaml")


# ---- the system's problems: exit 2 with a message -----------------------------------


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(GOOD_CSV)
    return path


def _no_bug(output: str) -> None:
    assert "internal error" not in output and "Traceback" not in output


def test_output_folder_missing_or_a_file(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    for target, words in (
        (tmp_path / "nowhere" / "o.json", "does not exist"),
        (data / "o.json", "is not a folder"),
    ):
        for command in (["score", str(data)], ["change", str(data), "--scale", "phq9"]):
            result = runner.invoke(cli, [*command, "-o", str(target)])
            assert result.exit_code == 2, result.output
            assert words in result.stderr
            _no_bug(result.output)
        result = runner.invoke(
            cli, ["score", str(data), "--format", "csv", "--provenance", str(target)]
        )
        assert result.exit_code == 2 and words in result.stderr
        assert result.stdout == ""  # checked before anything is read or written


def test_output_folder_not_writable(
    runner: CliRunner, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.writers.outputs as outputs

    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(outputs.os, "access", lambda *a, **k: False)  # (root may write anyway)
    result = runner.invoke(cli, ["score", str(data), "-o", str(folder / "o.json")])
    assert result.exit_code == 2 and "not writable" in result.stderr
    _no_bug(result.output)


@pytest.mark.parametrize(
    "failure", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EIO, errno.EDQUOT]
)
def test_a_failed_write_changes_no_file(
    runner: CliRunner,
    data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    failure: int,
) -> None:
    import ketascore.writers.outputs as outputs

    out = tmp_path / "o.csv"
    out.write_text("the old output\n")

    def fail(fd: int) -> None:
        raise OSError(failure, os.strerror(failure))

    monkeypatch.setattr(outputs.os, "fsync", fail)
    result = runner.invoke(cli, ["score", str(data), "-o", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert os.strerror(failure) in result.stderr
    _no_bug(result.output)
    assert out.read_text() == "the old output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "o.csv"]


def test_a_failed_rename_changes_no_file(
    runner: CliRunner, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.writers.outputs as outputs

    out = tmp_path / "o.csv"
    out.write_text("old output\n")
    out.with_name("o.csv.provenance.json").write_text("old provenance\n")
    real = os.replace
    calls = []

    def replace(src: str, dst: object) -> None:
        calls.append(dst)
        if str(dst).endswith(".provenance.json") and len(calls) == 2:
            raise PermissionError(errno.EACCES, "Permission denied")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs.os, "replace", replace)
    result = runner.invoke(cli, ["score", str(data), "-o", str(out), "--quiet"])
    assert result.exit_code == 2 and "Permission denied" in result.stderr
    assert out.read_text() == "old output\n"  # put back: the two appear together or not
    assert out.with_name("o.csv.provenance.json").read_text() == "old provenance\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "in.csv",
        "o.csv",
        "o.csv.provenance.json",
    ]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="fifos")
def test_an_output_that_is_a_fifo_or_a_link_to_one(
    runner: CliRunner, data: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    for target in (fifo, link):
        for option in ("-o", "--provenance"):
            result = runner.invoke(
                cli, ["score", str(data), "--format", "json", option, str(target)]
            )
            assert result.exit_code == 2, result.output
            assert "named pipe" in result.stderr and "not a regular file" in result.stderr
        assert stat.S_ISFIFO(os.stat(fifo).st_mode) and link.is_symlink()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="mknod needs root")
def test_an_output_that_is_a_device(runner: CliRunner, data: Path, tmp_path: Path) -> None:
    device = tmp_path / "null"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    for command in (["score", str(data)], ["change", str(data), "--scale", "phq9"]):
        result = runner.invoke(cli, [*command, "-o", str(device)])
        assert result.exit_code == 2 and "character device" in result.stderr
    assert stat.S_ISCHR(os.stat(device).st_mode)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
@pytest.mark.parametrize("fmt", ["json", "csv", "table"])
def test_standard_output_on_a_full_disk(data: Path, fmt: str) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "ketascore.cli", "score", str(data), "--format", fmt, "-q"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
    assert done.returncode == 2, done.stderr
    assert "No space left on device" in done.stderr
    _no_bug(done.stderr)


def test_an_unreadable_input_is_a_file_issue(
    runner: CliRunner, data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked.csv"
    shutil.copy(data, locked)
    real_open = open

    def guarded(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr("builtins.open", guarded)
    result = runner.invoke(cli, ["score", str(data), str(locked), "--format", "json"])
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [i["code"] for i in doc["issues"]] == ["file-unreadable"]
    assert doc["summary"]["scored"] == 1
