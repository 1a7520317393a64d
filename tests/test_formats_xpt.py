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


@pytest.mark.parametrize(
    ("length", "limit"),
    [(2, 2**8), (3, 2**16), (4, 2**24), (5, 2**32), (6, 2**40), (7, 2**48), (8, 2**53)],
)
def test_a_short_number_holds_whole_numbers_below_its_limit_only(length: int, limit: int) -> None:
    """A numeric variable of ``length`` bytes keeps 2 * length - 2 hexadecimal digits of
    the IBM float: every whole number below 2^(8 * length - 8) is held exactly (stored as
    SAS stores it, by dropping the last bytes), the one after the limit is not (it is
    stored as the limit); an 8-byte number is read as a double (2^53)."""
    assert xpt.ibm_id_limit(length) == limit

    def stored(value: int) -> float | None:
        return xpt.ibm_to_float(xpt.float_to_ibm(float(value))[:length])

    if length < 8:
        assert all(stored(n) == n for n in (limit - 1, limit - 2, limit // 2 + 1, limit // 16 - 1))
        assert stored(limit) == limit and stored(limit + 1) == limit
        assert stored(-(limit + 1)) == -limit


def _short_ids_file(tmp_path: Path, length: int, ids: list[float]) -> Path:
    """A wide PHQ-9 file whose numeric SUBJECT is ``length`` bytes long, one row per id."""
    variables = [
        xpt.Variable("SUBJECT", length=length),
        xpt.Variable("VISIT", numeric=False, length=4),
        *(xpt.Variable(f"PHQ9_{i}") for i in range(1, 10)),
    ]
    rows = [[s, "v1", *([1.0] * 9)] for s in ids]
    buf = io.BytesIO()
    xpt.write_xport(buf, "QS", variables, rows)
    path = tmp_path / f"short{length}.xpt"
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.parametrize("length", [2, 3, 4, 5, 6, 7])
def test_a_short_numeric_id_from_its_limit_on_is_refused(tmp_path: Path, length: int) -> None:
    """A subject of a numeric variable shorter than 8 bytes is exact below the limit its
    length gives only: 2^(8 * length - 8) + 1 is stored as 2^(8 * length - 8), so from the
    limit on the row is refused (inexact-id, naming the variable's length), and a number
    below it is the subject. The reader scored subject 65536 of a 3-byte variable, which
    may have been 65537."""
    limit = xpt.ibm_id_limit(length)
    path = _short_ids_file(tmp_path, length, [limit - 1, limit, limit + 1, -limit, 12.0])
    data = read_paths([path])
    assert [r.subject for r in data.records] == [str(limit - 1), "12"]
    messages = [i.message for i in data.issues]
    assert len(messages) == 3 and all(i.code == "bad-field" for i in data.issues)
    power = f"2^{8 * length - 8} = {limit}"
    assert f"{path}:2: visit v1: subject {float(limit)!r} is a floating-point" in messages[0]
    for message in messages:
        assert f"(from {power} on, a {length}-byte SAS transport number cannot hold" in message
    assert f"subject {float(-limit)!r} is" in messages[2]


def test_an_8_byte_id_is_exact_below_2_53_only(tmp_path: Path) -> None:
    """An 8-byte number holds 56 bits, but it is read as a double: 2^53 + 1 in the file is
    read as 2^53, so an id from 2^53 on is refused as a double's (it was taken as a whole
    number, 9007199254740992, the subject that was not written)."""
    path = _short_ids_file(tmp_path, 8, [2.0**53 - 1, 2.0**53])
    data = bytearray(path.read_bytes())
    at = data.rindex(xpt.float_to_ibm(2.0**53))
    data[at + 7] = 1  # (2^53 + 1: the last of the 56 bits)
    path.write_bytes(bytes(data))
    assert xpt.ibm_to_float(bytes(data[at : at + 8])) == 2.0**53
    read = read_paths([path])
    assert [r.subject for r in read.records] == [str(2**53 - 1)]
    (issue,) = read.issues
    assert "(from 2^53 = 9007199254740992 on, a double cannot hold" in issue.message


def test_a_short_visitnum_from_its_limit_on_is_refused_in_sdtm(tmp_path: Path) -> None:
    """SDTM: a visit taken from a 3-byte VISITNUM (no VISIT) is refused from 2^16 on, the
    message naming VISITNUM (it said the row had no VISIT)."""
    names = ["USUBJID", "QSTESTCD", "QSCAT", "QSSTRESN", "VISITNUM"]
    variables = [
        xpt.Variable(n, numeric=n in ("QSSTRESN", "VISITNUM"), length=3 if n == "VISITNUM" else 10)
        for n in names
    ]
    rows = [
        ["K1", f"GAD020{i}", "GAD-7 V2", 2.0, visit]
        for visit in (65535.0, 70000.0)
        for i in range(1, 8)
    ]
    buf = io.BytesIO()
    xpt.write_xport(buf, "QS", variables, rows)
    path = tmp_path / "qs.xpt"
    path.write_bytes(buf.getvalue())
    data = read_paths([path])
    assert [r.visit for r in data.records] == ["65535"]
    assert len(data.issues) == 7 and all(
        "VISITNUM 70000.0 is a floating-point number too large to be an exact id (from "
        "2^16 = 65536 on, a 3-byte SAS transport number cannot hold" in i.message
        for i in data.issues
    )


def test_a_1_byte_numeric_variable_is_a_damaged_file() -> None:
    """A numeric variable of 1 byte holds no digit (every number reads as 0): SAS writes
    2-8 bytes, and the reader refuses such a description, as the writer does."""
    with pytest.raises(xpt.XptError, match="2-8 bytes"):
        xpt.write_xport(io.BytesIO(), "QS", [xpt.Variable("A", length=1)], [])
    buf = io.BytesIO()
    xpt.write_xport(buf, "QS", [xpt.Variable("A", length=2)], [[1.0]])
    data = bytearray(buf.getvalue())
    at = data.index(b"A       ") - 8  # (the NAMESTR's length field)
    data[at + 4 : at + 6] = b"\x00\x01"
    with pytest.raises(xpt.XptError, match="damaged description"):
        xpt.read_xport(bytes(data))
