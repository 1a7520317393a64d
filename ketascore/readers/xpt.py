"""SAS transport files (XPORT version 5, the format FDA submissions and NHANES use).

A small reader and writer of our own, so no SAS or pandas stack is needed. Numbers are IBM
hexadecimal floats in the file; they are converted exactly, and then a value within 1e-9 of
a whole number is taken as that whole number: some files store a 0 as a denormal IBM float
that reads back as 5.4e-79 (NHANES DPQ_J.xpt does), and no rating is ever that close to a
whole number without being one. A number of a variable shorter than 8 bytes kept only the
first digits of its IBM float (``ibm_id_limit``): one at or beyond the limit its length
gives is read as an ``IbmFloat``, whose id is refused (``inexact-id``), as a double of 2^53
or more is. Dates (variables with a DATE-like format) become ISO text.
Missing numbers (``.``, ``.A``-``.Z``, ``._``) become None. A file that ends inside an
observation was cut short (``Dataset.cut``): its readers say so, never passing over the
observations lost.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from ketascore.core.values import EXACT_ID_LIMIT, NarrowFloat

RECORD = 80
_LIBRARY = b"HEADER RECORD*******LIBRARY HEADER RECORD!!!!!!!"
_MEMBER = b"HEADER RECORD*******MEMBER  HEADER RECORD!!!!!!!"
_DSCRPTR = b"HEADER RECORD*******DSCRPTR HEADER RECORD!!!!!!!"
_NAMESTR = b"HEADER RECORD*******NAMESTR HEADER RECORD!!!!!!!"
_OBS = b"HEADER RECORD*******OBS     HEADER RECORD!!!!!!!"
MAGIC = _LIBRARY

SNAP = 1e-9
SAS_EPOCH = dt.date(1960, 1, 1)
_DATE_FORMATS = re.compile(r"^(DATE|YYMMDD|MMDDYY|DDMMYY|E8601DA|IS8601DA|B8601DA|WORDDATE)")
_DATETIME_FORMATS = re.compile(r"^(DATETIME|E8601DT|IS8601DT|B8601DT)")
_MISSING_BYTES = frozenset(b"._ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,7}$")


class XptError(ValueError):
    """A file that is not a usable SAS transport (XPORT v5) file."""


@dataclass
class Variable:
    name: str
    label: str = ""
    numeric: bool = True
    length: int = 8
    format: str = ""
    format_length: int = 0
    format_decimals: int = 0


@dataclass
class Dataset:
    name: str
    label: str
    variables: list[Variable]
    rows: list[list[Any]] = field(default_factory=list)
    members: int = 1  # members in the file (only the first is read)
    cut: bool = False  # the file ends inside an observation: it was cut short

    def cut_message(self) -> str:
        """What a file cut short lost, for a message."""
        return (
            f"the file ends inside observation {len(self.rows) + 1}: it was cut short, so the "
            f"observations from there on are missing ({len(self.rows):,} were read)"
        )


# --------------------------------------------------------------------------------------
# IBM hexadecimal floats


def ibm_to_float(data: bytes) -> float | None:
    """An IBM float (2-8 bytes, big-endian) as a Python float; None for a SAS missing value."""
    raw = data.ljust(8, b"\x00")
    if raw[0] in _MISSING_BYTES and not any(raw[1:]):
        return None
    (word,) = struct.unpack(">Q", raw)
    sign = -1.0 if word >> 63 else 1.0
    exponent = (word >> 56) & 0x7F
    mantissa = word & 0x00FF_FFFF_FFFF_FFFF
    if mantissa == 0:
        return 0.0
    return sign * math.ldexp(mantissa, 4 * (exponent - 64) - 56)


def ibm_id_limit(length: int) -> int:
    """The least magnitude from which a number of a numeric variable of ``length`` bytes
    (2-8) may not be the whole number that was written.

    An IBM float is a sign bit, a 7-bit exponent of 16 and a fraction of ``8 * length - 8``
    bits, that is ``2 * length - 2`` hexadecimal digits, normalised so that its first digit
    is not 0 (that digit may have up to 3 leading zero bits: a number keeps between
    ``8 * length - 11`` and ``8 * length - 8`` significant bits). A whole number below
    ``16 ** (2 * length - 2) = 2 ** (8 * length - 8)`` has no more digits than that, and is
    held exactly; ``2 ** (8 * length - 8) + 1`` has one more, and SAS, storing a short
    variable by dropping the last bytes of the 8-byte number, stores it as
    ``2 ** (8 * length - 8)``. So the limit is 2^8 = 256 for 2 bytes, 2^16 = 65536 for 3,
    2^24 = 16777216 for 4, 2^32 = 4294967296 for 5, 2^40 = 1099511627776 for 6 and
    2^48 = 281474976710656 for 7. An 8-byte number holds every whole number below 2^56,
    but it is read as a double: 2^53 (``values.EXACT_ID_LIMIT``)."""
    return min(1 << (8 * length - 8), EXACT_ID_LIMIT)


class IbmFloat(NarrowFloat):
    """A number of a numeric variable shorter than 8 bytes, at or beyond the limit its
    length gives (``ibm_id_limit``): a float in every way, but no id."""

    def __new__(cls, value: float, length: int = 7) -> IbmFloat:
        number = super().__new__(cls, value)
        number.limit = ibm_id_limit(length)
        number.width = f"a {length}-byte SAS transport number"
        return number


def float_to_ibm(value: float | None) -> bytes:
    """A Python float as an 8-byte IBM float; None as the SAS missing value ``.``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return b"." + b"\x00" * 7
    if value == 0:
        return b"\x00" * 8
    if math.isinf(value):
        raise XptError("an infinite number cannot be written to a SAS transport file")
    sign = 0x80 if value < 0 else 0
    m, e = math.frexp(abs(value))  # abs = m * 2**e, 0.5 <= m < 1
    hexp = -(-e // 4)  # ceil(e / 4)
    shift = 4 * hexp - e  # 0..3
    mantissa = int(math.ldexp(m, 56 - shift))  # exact: m has 53 significant bits
    if mantissa >= 1 << 56:  # pragma: no cover - cannot happen with shift >= 0
        mantissa >>= 4
        hexp += 1
    exponent = hexp + 64
    if exponent > 127:
        raise XptError(f"{value!r} is too large for a SAS transport file")
    if exponent < 0:
        return b"\x00" * 8  # below the smallest IBM float: written as 0
    return bytes([sign | exponent]) + mantissa.to_bytes(7, "big")


def snap(value: float) -> int | float:
    """A number within 1e-9 of a whole number is that whole number (see the module text)."""
    nearest = round(value)
    if abs(value - nearest) <= SNAP:
        return int(nearest)
    return value


# --------------------------------------------------------------------------------------
# Reading


def _text(raw: bytes) -> str:
    return raw.decode("latin-1").rstrip(" \x00")


def _convert(var: Variable, raw: bytes) -> Any:
    if not var.numeric:
        return _text(raw) or None
    number = ibm_to_float(raw)
    if number is None:
        return None
    value = snap(number)
    fmt = var.format.upper()
    try:
        if _DATE_FORMATS.match(fmt) and float(value).is_integer():
            return (SAS_EPOCH + dt.timedelta(days=int(value))).isoformat()
        if _DATETIME_FORMATS.match(fmt):
            stamp = dt.datetime(1960, 1, 1) + dt.timedelta(seconds=float(value))
            return stamp.isoformat()
    except OverflowError:
        pass
    if not abs(number) < ibm_id_limit(var.length):  # (it may have been cut: no id)
        return IbmFloat(number, var.length) if var.length < 8 else number
    return value


def read_xport(data: bytes) -> Dataset:
    """The first member of a transport file; raises XptError if the file is not one, or
    its headers are damaged (whatever the damage: a header is never trusted to size
    anything beyond the file itself)."""
    try:
        return _read_xport(data)
    except XptError:
        raise
    except (ValueError, IndexError, OverflowError, struct.error) as exc:
        raise XptError(f"the SAS transport headers are damaged ({exc})") from None


def _header_number(raw: bytes, what: str) -> int:
    text = raw.strip(b" \x00")
    if not text.isdigit():
        raise XptError(f"the {what} is not a number ({raw!r}): the headers are damaged")
    return int(text)


def _read_xport(data: bytes) -> Dataset:
    if not data.startswith(_LIBRARY):
        raise XptError("not a SAS transport (XPORT v5) file: no library header record")
    pos = 3 * RECORD
    if data[pos : pos + len(_MEMBER)] != _MEMBER:
        raise XptError("no member header record after the library header")
    size_field = data[pos + 74 : pos + 78]
    namestr_size = 140
    if size_field.strip():
        namestr_size = _header_number(size_field, "variable description size")
    if namestr_size not in (136, 140):
        raise XptError(
            f"variable descriptions of {namestr_size} bytes (136 or 140 expected): the headers "
            "are damaged"
        )
    pos += RECORD
    if data[pos : pos + len(_DSCRPTR)] != _DSCRPTR:
        raise XptError("no member descriptor record")
    pos += RECORD
    member = data[pos : pos + 2 * RECORD]
    name = _text(member[8:16])
    label = _text(member[RECORD + 32 : RECORD + 72])
    pos += 2 * RECORD
    if data[pos : pos + len(_NAMESTR)] != _NAMESTR:
        raise XptError("no NAMESTR header record")
    try:
        count = _header_number(data[pos + 54 : pos + 58], "number of variables")
    except XptError:
        raise XptError("the NAMESTR header record does not give the number of variables") from None
    pos += RECORD
    if pos + count * namestr_size > len(data):
        raise XptError(
            f"the file ends inside the descriptions of its {count} variables (truncated?)"
        )
    variables: list[Variable] = []
    positions: list[int] = []
    for i in range(count):
        ns = data[pos + i * namestr_size : pos + (i + 1) * namestr_size]
        if len(ns) < 88:
            raise XptError("the file ends inside the variable descriptions")
        ntype, _, nlng, _ = struct.unpack(">hhhh", ns[:8])
        nfl, nfd = struct.unpack(">hh", ns[64:68])
        (npos,) = struct.unpack(">i", ns[84:88])
        # (a numeric variable of 1 byte has no digit: SAS writes 2-8 bytes)
        least, most = (2, 8) if ntype == 1 else (1, 200)
        if ntype not in (1, 2) or not least <= nlng <= most or npos < 0:
            raise XptError(
                f"variable {i + 1} has a damaged description (type {ntype}, length {nlng}, "
                f"position {npos})"
            )
        variables.append(
            Variable(
                name=_text(ns[8:16]),
                label=_text(ns[16:56]),
                numeric=ntype == 1,
                length=nlng,
                format=_text(ns[56:64]),
                format_length=nfl,
                format_decimals=nfd,
            )
        )
        positions.append(npos)
    pos += count * namestr_size
    pos += -pos % RECORD
    if data[pos : pos + len(_OBS)] != _OBS:
        raise XptError("no observation header record")
    pos += RECORD
    width = max((p + v.length for p, v in zip(positions, variables, strict=True)), default=0)
    if width > 1 << 20:
        raise XptError(f"observations of {width:,} bytes: the headers are damaged")
    members = 1
    end = len(data)
    following = data.find(_MEMBER, pos)
    while following != -1 and (following - pos) % RECORD:
        following = data.find(_MEMBER, following + 1)
    if following != -1:
        end = following
        members += data.count(_MEMBER, following)
    rows: list[list[Any]] = []
    if width:
        while pos + width <= end:
            raw = data[pos : pos + width]
            if not raw.strip(b" ") and end - pos < RECORD:
                break  # blank padding of the last record
            rows.append(
                [
                    _convert(v, raw[p : p + v.length])
                    for v, p in zip(variables, positions, strict=True)
                ]
            )
            pos += width
    cut = bool(width) and bool(data[pos:end].strip(b" "))
    return Dataset(name, label, variables, rows, members, cut)


# --------------------------------------------------------------------------------------
# Writing


def _sas_stamp(when: dt.datetime) -> bytes:
    return when.strftime("%d%b%y:%H:%M:%S").upper().encode("ascii")


def _pad(text: str, size: int) -> bytes:
    raw = text.encode("latin-1", errors="replace")[:size]
    return raw.ljust(size, b" ")


def _records(data: bytes) -> bytes:
    return data + b" " * (-len(data) % RECORD)


FIXED_TIME = dt.datetime(2000, 1, 1)


def write_xport(
    out: IO[bytes],
    name: str,
    variables: Sequence[Variable],
    rows: Iterable[Sequence[Any]],
    *,
    label: str = "",
    created: dt.datetime = FIXED_TIME,
) -> None:
    """Write one dataset. Numbers are floats or None; text is str or None; a date variable
    (format DATE9. etc.) takes days since 1960-01-01. ``created`` is fixed by default so the
    same data give the same bytes."""
    if not _NAME.match(name):
        raise XptError(f"dataset name {name!r} must be 1-8 letters, digits or _")
    for var in variables:
        if not _NAME.match(var.name):
            raise XptError(f"variable name {var.name!r} must be 1-8 letters, digits or _")
        if not var.numeric and not 1 <= var.length <= 200:
            raise XptError(f"text variable {var.name} must be 1-200 bytes long")
        if var.numeric and var.length < 2:
            raise XptError(f"numeric variable {var.name} must be 2-8 bytes long")
    stamp = _sas_stamp(created)
    head = b"".join(
        [
            _LIBRARY + b"0" * 30 + b"  ",
            _pad("SAS", 8)
            + _pad("SAS", 8)
            + _pad("SASLIB", 8)
            + _pad("9.4", 8)
            + _pad("ketascor", 8)
            + b" " * 24
            + stamp,
            stamp + b" " * 64,
            _MEMBER + b"000000000000000001600000000140  ",
            _DSCRPTR + b"0" * 30 + b"  ",
            _pad("SAS", 8)
            + _pad(name.upper(), 8)
            + _pad("SASDATA", 8)
            + _pad("9.4", 8)
            + _pad("ketascor", 8)
            + b" " * 24
            + stamp,
            stamp + b" " * 16 + _pad(label, 40) + _pad("", 8),
            _NAMESTR + b"000000" + f"{len(variables):04d}".encode() + b"0" * 20 + b"  ",
        ]
    )
    namestrs = b""
    npos = 0
    for i, var in enumerate(variables):
        length = min(var.length, 8) if var.numeric else var.length
        namestrs += (
            struct.pack(">hhhh", 1 if var.numeric else 2, 0, length, i + 1)
            + _pad(var.name.upper(), 8)
            + _pad(var.label, 40)
            + _pad(var.format.upper(), 8)
            + struct.pack(">hhh", var.format_length, var.format_decimals, 0)
            + b"\x00\x00"
            + _pad("", 8)
            + struct.pack(">hh", 0, 0)
            + struct.pack(">i", npos)
            + b"\x00" * 52
        )
        npos += length
    body = bytearray()
    for row in rows:
        for var, value in zip(variables, row, strict=True):
            if var.numeric:
                # (a short number keeps its first bytes, as SAS stores it)
                body += float_to_ibm(None if value is None else float(value))[: var.length]
            else:
                body += _pad("" if value is None else str(value), var.length)
    out.write(head)
    out.write(_records(namestrs))
    out.write(_OBS + b"0" * 30 + b"  ")
    out.write(_records(bytes(body)))


def sas_date(iso: str | None) -> int | None:
    """Days since 1960-01-01 of an ISO date (or the date part of a date-time)."""
    if not iso:
        return None
    try:
        day = dt.date.fromisoformat(iso[:10])
    except ValueError:
        return None
    return (day - SAS_EPOCH).days
