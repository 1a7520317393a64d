"""What every reader shares: the result of reading, the options of the clinical formats,
and how a format registers itself."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ketascore.core.issues import Issue
from ketascore.core.records import AnswerRecord

FORMATS = ("yaml", "json", "jsonl", "csv", "csv-long")
EXTENSIONS = {
    ".yaml": "yaml",
    ".yml": "yaml",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
}
DEFAULT_MAX_FILE_SIZE = 1 << 30  # 1 GiB
POSITION_LIMIT = 8 << 20  # JSON files up to 8 MiB are read with line numbers

RECORD_FIELDS = ("subject", "visit", "scale", "items", "date", "day")

_LINE_END = re.compile(r"(?<=\r\n)|(?<=\r)(?!\n)|(?<=\n)")


def text_lines(text: str, keepends: bool = False) -> list[str]:
    """The lines of a file's text, broken where files break them: at a line feed, a
    carriage return and line feed, or a carriage return. Never at what else
    ``str.splitlines`` breaks at (U+2028 LINE SEPARATOR, U+0085, a form feed, ...), which
    a JSON string or a quoted CSV cell may hold as it is."""
    lines = [line for line in _LINE_END.split(text) if line]
    return lines if keepends else [line.rstrip("\r\n") for line in lines]


# Files ketascore does not read, known by their first bytes: what each is, and what to do
# (a data manager sent an .xls, a SAS data set or a PDF where a ratings table was expected)
FOREIGN_FORMATS: tuple[tuple[bytes, str, str], ...] = (
    (
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        "an Excel 97-2003 workbook (.xls) or a workbook protected by a password",
        "open it in a spreadsheet program and save it as .xlsx (without a password) or CSV",
    ),
    (
        b"\x00" * 12 + b"\xc2\xea\x81\x60\xb3\x14\x11\xcf\xbd\x92\x08\x00\x09\xc7\x31\x8c",
        "a SAS data set (.sas7bdat)",
        "export it from SAS as a transport file (.xpt, XPORT version 5) or as CSV",
    ),
    (
        b"%PDF-",
        "a PDF document",
        "export the ratings as CSV or .xlsx from the program that holds them",
    ),
    (
        b"PK\x03\x04",
        "a zip archive (an .xlsx workbook named otherwise?)",
        "name a workbook .xlsx (or give --input-format xlsx); unpack an archive first",
    ),
)


def foreign_format(data: bytes) -> tuple[str, str] | None:
    """What a file that ketascore does not read is, and what to do (``FOREIGN_FORMATS``),
    or None when its first bytes are none of those."""
    for magic, kind, advice in FOREIGN_FORMATS:
        if data.startswith(magic):
            return kind, advice
    return None


LATIN_UTF16 = "every other byte is NUL"
SCRIPT_UTF16 = "each separator and line end is a NUL and an ASCII byte"


def utf16_without_bom(data: bytes) -> tuple[str, str] | None:
    """``UTF-16 LE`` or ``UTF-16 BE`` and what shows it (``LATIN_UTF16``,
    ``SCRIPT_UTF16``, for the message) when the first kilobyte is text in UTF-16 without a
    byte-order mark (as some programs save "Unicode text"), else None (binary data, or
    text). Latin text: at least 90% of its pairs of bytes are a NUL and a character of
    Latin-1 text (a letter, digit, punctuation, space, tab or line end), the NUL on the
    same side. Text in other scripts (Cyrillic, Greek, CJK ...) has no NUL in its letters,
    but a table's separators and line ends are ASCII, a NUL beside each: ``_utf16_table``.
    Only named, never decoded: without its mark, its byte order is a guess."""
    head = data[:1024]
    pairs = len(head) // 2
    if pairs < 2 or b"\x00" not in head:
        return None
    printable = bytes(range(0x20, 0x7F)) + bytes(range(0xA0, 0x100)) + b"\t\n\r"
    low, high = head[0 : pairs * 2 : 2], head[1 : pairs * 2 : 2]
    for order, text, nul in (("UTF-16 LE", low, high), ("UTF-16 BE", high, low)):
        latin = sum(1 for t, n in zip(text, nul, strict=True) if n == 0 and t in printable)
        if latin >= 0.9 * pairs:
            return order, LATIN_UTF16
    for order in ("UTF-16 LE", "UTF-16 BE"):
        if _utf16_table(head[: pairs * 2], order.replace(" ", "-").lower()):
            return order, SCRIPT_UTF16
    return None


_SEPARATORS = frozenset(",;\t|\n\r")
# letters, marks, digits, punctuation, symbols and spaces (no control, format, private-use
# or unassigned characters, no line or paragraph separators)
_PRINTABLE = ("L", "M", "N", "P", "S", "Zs")


def _utf16_table(head: bytes, codec: str) -> bool:
    """Whether ``head`` (an even number of bytes) reads in ``codec`` as the text of a table
    in any script: no unpaired surrogate (but a pair cut at the end), at least 95% of its
    characters printable (letters, marks, digits, punctuation, symbols, spaces, tabs, line
    ends), and at least 2% (and two) of them an ASCII separator or line end (``,`` ``;``
    tab ``|`` CR LF). The separators are what tells UTF-16 from other text: each is a NUL
    and an ASCII byte, which text in UTF-8 or Latin-1 never holds; the other byte order
    reads them as U+2C00, U+0A00 ..., no separators; binary data has control characters
    (U+0000), unpaired surrogates or private-use characters."""
    try:
        text = head.decode(codec)
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 2:  # (an unpaired surrogate before the last unit)
            return False
        text = head[: exc.start].decode(codec)
    if not text:
        return False
    printable = sum(
        1 for c in text if c in "\t\n\r" or unicodedata.category(c).startswith(_PRINTABLE)
    )
    separators = sum(1 for c in text if c in _SEPARATORS)
    return printable >= 0.95 * len(text) and separators >= max(2, 0.02 * len(text))


def display_name(name: str) -> str:
    """A file name as issues and outputs show it. A name whose bytes are not UTF-8 (the
    system keeps them as lone surrogates) shows them as U+FFFD, so that every output, which
    is UTF-8, can be written."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in name)
    return name


@dataclass
class ReadResult:
    records: list[AnswerRecord] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)  # file -> sha256 of its bytes
    # the item columns of each wide table, by scale: file -> scale id -> items, as the
    # header names them (a score whose item has no column cannot be scored from it)
    columns: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def extend(self, other: ReadResult) -> None:
        self.records.extend(other.records)
        self.issues.extend(other.issues)
        self.files.extend(other.files)
        self.hashes.update(other.hashes)
        self.columns.update(other.columns)


@dataclass(frozen=True)
class ReadOptions:
    """Options of the readers of clinical formats, passed through ``read_paths``.

    ``mapping`` a column mapping for tabular input (ketascore.readers.mapping.ColumnMapping);
    ``sheet`` the spreadsheet sheet to read (default: the first); ``redcap_dictionary`` a
    REDCap data dictionary (ketascore.readers.redcap.RedcapDictionary); ``questionnaire``
    FHIR Questionnaires (ketascore.readers.fhir.Questionnaires); ``category`` the SDTM
    QSCAT/RSCAT to read; ``scales`` scales besides the built-in ones, whose codes readers may
    use. ``ketascore.readers.formats.load_read_options`` builds one from file names.
    """

    mapping: Any = None
    sheet: str | None = None
    redcap_dictionary: Any = None
    questionnaire: Any = None
    category: str | None = None
    scales: tuple[Any, ...] = ()


@dataclass(frozen=True)
class FormatContext:
    """What a registered reader gets besides the input: the options and the known scale ids
    (casefolded)."""

    options: ReadOptions
    scale_ids: frozenset[str]


@dataclass(frozen=True)
class FormatReader:
    """A reader registered by name.

    Binary formats read bytes (``read_bytes``), text formats decoded text (``read_text``).
    Without --input-format a format is chosen by ``extensions`` or ``magic`` (binary) or by
    ``detect(name, text, requested, context)`` (text; ``requested`` is the built-in format
    named by the caller, or None). Detectors run in registration order, before the built-in
    detection, and return False when unsure.
    """

    name: str
    read_text: Callable[[str, str, FormatContext], ReadResult] | None = None
    read_bytes: Callable[[bytes, str, FormatContext], ReadResult] | None = None
    extensions: tuple[str, ...] = ()
    magic: tuple[bytes, ...] = ()
    detect: Callable[[str, str, str | None, FormatContext], bool] | None = None
    description: str = ""
