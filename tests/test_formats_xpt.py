"""SAS transport (XPORT v5): IBM floats, our reader and writer, and real NHANES data."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ketascore.readers import read_paths
from ketascore.readers.formats import xpt

from conftest import budget


@settings(max_examples=budget(200))
@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e70, max_value=1e70)
    | st.integers(min_value=-(10**9), max_value=10**9)
)
def test_ibm_float_round_trip(value: float) -> None:
    back = xpt.ibm_to_float(xpt.float_to_ibm(float(value)))
    assert back is not None
    if abs(value) < 1e-70:
        assert abs(back) < 1e-70
    else:
        assert math.isclose(back, value, rel_tol=1e-15)


def test_known_ibm_values() -> None:
    # 1.0 is 0x41100000 00000000; -118.625 is 0xC276A000 00000000 (IBM manuals)
    assert xpt.float_to_ibm(1.0) == bytes.fromhex("4110000000000000")
    assert xpt.float_to_ibm(-118.625) == bytes.fromhex("C276A00000000000")
    assert xpt.ibm_to_float(bytes.fromhex("C276A00000000000")) == -118.625
    assert xpt.ibm_to_float(b"." + bytes(7)) is None
    assert xpt.ibm_to_float(b"A" + bytes(7)) is None  # .A special missing
    assert xpt.ibm_to_float(bytes(8)) == 0.0


def test_snap_only_within_1e_9() -> None:
    assert xpt.snap(5.4e-79) == 0 and isinstance(xpt.snap(5.4e-79), int)
    assert xpt.snap(2.9999999999) == 3
    assert xpt.snap(2.5) == 2.5
    assert xpt.snap(2.999999) == 2.999999


def _dataset() -> tuple[list[xpt.Variable], list[list[object]]]:
    variables = [
        xpt.Variable("USUBJID", "Subject", numeric=False, length=10),
        xpt.Variable("AVAL", "Analysis Value"),
        xpt.Variable("ADT", "Analysis Date", format="DATE", format_length=9),
    ]
    rows: list[list[object]] = [
        ["S1", 12.0, xpt.sas_date("2024-01-08")],
        ["S10", None, None],
        ["S2", 11.571428571428571, xpt.sas_date("1959-12-31")],
    ]
    return variables, rows


def test_write_then_read_back() -> None:
    variables, rows = _dataset()
    buf = io.BytesIO()
    xpt.write_xport(buf, "ADQS", variables, rows, label="Test")
    data = buf.getvalue()
    assert len(data) % 80 == 0
    ds = xpt.read_xport(data)
    assert (ds.name, ds.label, ds.members) == ("ADQS", "Test", 1)
    assert [v.name for v in ds.variables] == ["USUBJID", "AVAL", "ADT"]
    assert ds.rows == [
        ["S1", 12, "2024-01-08"],
        ["S10", None, None],
        ["S2", 11.571428571428571, "1959-12-31"],
    ]
    # the same data give the same bytes
    again = io.BytesIO()
    xpt.write_xport(again, "ADQS", variables, rows, label="Test")
    assert again.getvalue() == data


def test_pyreadstat_reads_what_we_write(tmp_path: Path) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    variables, rows = _dataset()
    path = tmp_path / "adqs.xpt"
    with open(path, "wb") as fh:
        xpt.write_xport(fh, "ADQS", variables, rows)
    frame, meta = pyreadstat.read_xport(str(path))
    assert list(frame.columns) == ["USUBJID", "AVAL", "ADT"]
    assert list(frame["USUBJID"]) == ["S1", "S10", "S2"]
    assert frame["AVAL"][0] == 12 and math.isnan(frame["AVAL"][1])
    assert str(frame["ADT"][0])[:10] == "2024-01-08"
    assert meta.column_labels == ["Subject", "Analysis Value", "Analysis Date"]


def test_not_an_xport_file() -> None:
    with pytest.raises(xpt.XptError):
        xpt.read_xport(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + b" " * 400)
    with pytest.raises(xpt.XptError):
        xpt.read_xport(b"subject,visit\n")


def test_damaged_xpt_is_an_issue(tmp_path: Path) -> None:
    path = tmp_path / "bad.xpt"
    path.write_bytes(b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!" + b"0" * 200)
    data = read_paths([path])
    (issue,) = data.issues
    assert issue.code == "parse-error" and data.records == []


def test_writer_refuses_bad_names() -> None:
    with pytest.raises(xpt.XptError):
        xpt.write_xport(io.BytesIO(), "TOO_LONG_NAME", [], [])
    with pytest.raises(xpt.XptError):
        xpt.write_xport(io.BytesIO(), "OK", [xpt.Variable("A B")], [])


def test_nhanes_file_agrees_with_pyreadstat(shared_data: Path) -> None:
    data = (shared_data / "nhanes" / "DPQ_J.xpt").read_bytes()
    ds = xpt.read_xport(data)
    assert (ds.name, len(ds.rows), ds.members) == ("DPQ_J", 5533, 1)
    assert [v.name for v in ds.variables][:3] == ["SEQN", "DPQ010", "DPQ020"]
    assert ds.rows[0][:3] == [93705, 0, 0]
    values = {v for row in ds.rows for v in row[1:10]}
    assert values == {0, 1, 2, 3, 7, 9, None}  # whole numbers only: no 5.4e-79 artefacts
    pyreadstat = pytest.importorskip("pyreadstat")
    frame, _ = pyreadstat.read_xport(str(shared_data / "nhanes" / "DPQ_J.xpt"))
    for i in range(0, 5533, 97):
        for j, value in enumerate(ds.rows[i]):
            theirs = frame.iat[i, j]
            assert (value is None and math.isnan(theirs)) or abs(value - theirs) < 1e-9


def test_a_file_cut_short_is_reported(shared_data: Path, tmp_path: Path) -> None:
    """A transport file cut off inside an observation (a copy or download stopped half
    way) gave the observations before the cut without a word: the rest of the subjects were
    lost in silence. It is now a parse-error at the observation where the file ends; the
    observations before it are read."""
    data = (shared_data / "nhanes" / "DPQ_J.xpt").read_bytes()
    assert xpt.read_xport(data).cut is False
    header = data.index(b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!") + 80
    width = 11 * 8  # SEQN, DPQ010 ... DPQ100: eleven numbers
    path = tmp_path / "DPQ_J.xpt"
    path.write_bytes(data[: header + 682 * width + 40])
    ds = xpt.read_xport(path.read_bytes())
    assert (len(ds.rows), ds.cut) == (682, True)
    mapping = Path(__file__).parent.parent / "examples" / "mappings" / "nhanes-phq9.yaml"
    from ketascore.readers.formats import load_read_options

    options = load_read_options(map=mapping)
    read = read_paths([path], options=options)
    whole = read_paths([shared_data / "nhanes" / "DPQ_J.xpt"], options=options)
    before = [r.subject for r in whole.records if r.source.line is not None and r.source.line < 683]
    assert [r.subject for r in read.records] == before
    (issue,) = [i for i in read.issues if i.code == "parse-error"]
    assert issue.message == (
        f"{path}:683: the file ends inside observation 683: it was cut short, so the "
        "observations from there on are missing (682 were read); export the file again from "
        "the program that wrote it (SAS transport v5)"
    )
    # cut at the end of an observation, within the file's last 80-byte record: nothing is
    # left over, so nothing can be said (and a file padded with blanks is whole)
    assert xpt.read_xport(data[: header + 682 * width]).cut is False


def test_a_cut_adam_file_stops_the_model(tmp_path: Path) -> None:
    from ketascore.analysis.longdata import TableError, read_table

    variables = [xpt.Variable("USUBJID", numeric=False, length=8), xpt.Variable("CHG")]
    rows = [[f"S{i}", float(i)] for i in range(20)]
    buf = io.BytesIO()
    xpt.write_xport(buf, "ADQS", variables, rows)
    path = tmp_path / "adqs.xpt"
    path.write_bytes(buf.getvalue()[:-100])
    with pytest.raises(TableError, match="ends inside observation"):
        read_table(path)
