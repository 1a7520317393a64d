"""Read answer files: YAML, JSON, JSON Lines and CSV (wide or long), from files, folders or stdin.

Readers never raise on bad content. They return the records they could read and an issue for
everything they could not, naming the file and line. Every input, standard input and
devices included, is read up to ``max_file_size`` bytes and no further. In folders, what is
not a ratings file (a README, notes, a binary file, a fifo or device) is skipped with a
notice (``file-skipped``), and a subfolder that cannot be listed is reported
(``folder-unreadable``).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from ketascore.core.issues import Issue, make_issue
from ketascore.readers.base import (
    DEFAULT_MAX_FILE_SIZE,
    EXTENSIONS,
    FORMATS,
    POSITION_LIMIT,
    FormatContext,
    FormatReader,
    ReadOptions,
    ReadResult,
    display_name,
    foreign_format,
    utf16_without_bom,
)
from ketascore.readers.delimited import (
    Table,
    check_table,
    csv_table,
    read_csv_long,
    read_csv_wide,
    records_long,
    records_wide,
    repeated_columns,
    sniff_delimiter,
    split_column,
    split_header,
)
from ketascore.readers.documents import read_json, read_jsonl, read_yaml
from ketascore.readers.fields import (
    CellError,
    FieldError,
    check_date,
    check_day,
    is_blank,
    item_value,
    same_cell,
    text_field,
)
from ketascore.readers.folders import SPECIAL, walk_folder

__all__ = [
    "DEFAULT_MAX_FILE_SIZE",
    "POSITION_LIMIT",
    "CellError",
    "FieldError",
    "FormatContext",
    "FormatReader",
    "FoundFile",
    "FoundPath",
    "ReadOptions",
    "ReadResult",
    "Table",
    "check_date",
    "check_day",
    "check_table",
    "claimed_by_format",
    "csv_table",
    "decode",
    "detect_format",
    "display_name",
    "guarded",
    "input_formats",
    "is_blank",
    "is_input_file",
    "item_value",
    "iter_input_files",
    "read_bytes",
    "read_file",
    "read_limited",
    "read_paths",
    "read_stream",
    "read_text",
    "records_long",
    "records_wide",
    "register_format",
    "repeated_columns",
    "same_cell",
    "sniff_delimiter",
    "split_column",
    "split_header",
    "text_field",
    "walk_files",
]

FORMAT_READERS: dict[str, FormatReader] = {}


# --------------------------------------------------------------------------------------
# Finding files


class FoundFile(str):
    """The name of a file found in a folder (rather than named by the user): one that turns
    out not to be a ratings file (a binary file, notes) is skipped with a notice, not
    reported as an error. ``FoundPath`` is the same as a path."""

    __slots__ = ()


class FoundPath(type(Path())):  # type: ignore[misc]
    """The path of a file found in a folder (see ``FoundFile``)."""

    __slots__ = ()


def _found(path: str | Path) -> bool:
    return isinstance(path, FoundFile | FoundPath)


def iter_input_files(
    paths: Iterable[str | Path],
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    issues: list[Issue] | None = None,
) -> Iterator[Path]:
    """Files named directly, and files in folders (recursively, sorted, hidden ones skipped).

    In folders only files with a known extension are read; the others (notes and READMEs
    beside the data, fifos, devices) are skipped with a notice in ``issues``, as are
    symbolic-link loops; a folder that cannot be listed is an error in ``issues``.
    """
    sink = issues if issues is not None else []
    for path, found in _input_files(paths, include, exclude, sink):
        yield FoundPath(path) if found else Path(path)


def walk_files(
    paths: Iterable[str | Path], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> Iterator[str | Issue]:
    """The input files in reading order, with the folder issues at their places, as the
    walk finds them. A file found in a folder is a ``FoundFile``."""
    issues: list[Issue] = []
    for path, found in _input_files(paths, include, exclude, issues):
        yield from issues
        issues.clear()
        yield FoundFile(path) if found else path
    yield from issues


def _input_files(
    paths: Iterable[str | Path], include: Iterable[str], exclude: Iterable[str], sink: list[Issue]
) -> Iterator[tuple[str, bool]]:
    """Each input file's path as ``pathlib`` writes it, and whether it was found in a folder."""
    include, exclude = list(include), list(exclude)

    def loop(folder: str) -> None:
        sink.append(make_issue("folder-loop", file=display_name(folder)))

    def skipped(path: str, why: str, kind: str) -> None:
        name = display_name(path)
        if why == SPECIAL:
            sink.append(make_issue("file-skipped", "special", file=name, kind=kind))
        elif os.path.basename(path).startswith("~$"):
            sink.append(make_issue("file-skipped", "lock", file=name))
        else:
            ext = display_name(kind) or "no extension"
            sink.append(make_issue("file-skipped", "extension", file=name, ext=ext))

    def unreadable(folder: str, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        sink.append(make_issue("folder-unreadable", file=display_name(folder), reason=reason))

    for given in paths:
        if _found(given):
            yield str(given), True
            continue
        path = Path(given)
        if str(given) == "-" or not path.is_dir():
            yield str(path), False
            continue
        for found in walk_folder(
            str(path), is_input_file, include, exclude, loop, skipped, unreadable
        ):
            yield found, True


# --------------------------------------------------------------------------------------
# Reading bytes


# UTF-32 and UTF-16 text by its byte-order mark (UTF-32 LE's begins with UTF-16 LE's, so
# it is looked for first): spreadsheet programs save "Unicode text" as UTF-16 with one
UNICODE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode(data: bytes, name: str, issues: list[Issue]) -> str | None:
    for bom, codec in UNICODE_BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                break
    foreign = foreign_format(data)
    if foreign is not None:
        kind, advice = foreign
        issues.append(make_issue("file-format", "foreign", file=name, kind=kind, advice=advice))
        return None
    if b"\x00" in data[:8192]:
        utf16 = utf16_without_bom(data)
        if utf16 is not None:
            order, evidence = utf16
            issues.append(
                make_issue("file-format", "utf16", file=name, order=order, evidence=evidence)
            )
        else:
            issues.append(
                make_issue("file-format", "binary", file=name, formats="YAML, JSON or CSV")
            )
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issues.append(make_issue("encoding", file=name, line=line, byte=data[exc.start]))
        return data.decode("latin-1")


def detect_format(name: str, text: str) -> str:
    """The format of a file from its extension, or from its content when that is unknown."""
    ext = os.path.splitext(name)[1].lower()
    if ext in EXTENSIONS and EXTENSIONS[ext] != "csv":
        return EXTENSIONS[ext]
    head = text.lstrip()[:4096]
    if ext not in EXTENSIONS:
        if head.startswith(("{", "[")):
            first = head.split("\n", 1)[0].strip()
            if first.startswith("{") and first.endswith("}") and "\n{" in head:
                return "jsonl"
            return "json"
        # (a YAML file may open with comments, a directive or a document marker, which
        # say nothing of its layout: the first line after them decides)
        first_line = next(
            (
                line
                for line in head.splitlines()
                if line.strip() and not line.lstrip().startswith(("#", "%", "---"))
            ),
            "",
        )
        if (
            not any(sep in first_line for sep in (",", ";", "\t"))
            or ":" in first_line.split(",", 1)[0]
        ):
            return "yaml"
    header = [h.strip().casefold() for h in split_header(text)]
    if {"item", "value"} <= set(header) and "scale" in header:
        return "csv-long"
    return "csv"


def register_format(reader: FormatReader) -> None:
    """Add (or replace) a named format; the built-in names cannot be taken."""
    if reader.name in FORMATS:
        raise ValueError(f"{reader.name!r} is a built-in format")
    FORMAT_READERS[reader.name] = reader


def _plain_yaml(name: str, fmt: str | None) -> bool:
    """A .yaml/.yml file (or --input-format yaml): no clinical format reads YAML, so the
    format readers need not even be imported."""
    if fmt is not None:
        return fmt == "yaml"
    return os.path.splitext(name)[1].lower() in (".yaml", ".yml")


def _load_formats() -> None:
    import ketascore.readers.formats  # noqa: F401  (registers the clinical formats)


def input_formats() -> tuple[str, ...]:
    """Every format name ``--input-format`` accepts."""
    _load_formats()
    return (*FORMATS, *FORMAT_READERS)


def is_input_file(name: str) -> bool:
    """Whether a file found in a folder is read: a known extension, not an office lock file."""
    _load_formats()
    ext = os.path.splitext(name)[1].lower()
    if name.startswith("~$"):
        return False
    return ext in EXTENSIONS or any(ext in r.extensions for r in FORMAT_READERS.values())


def _context(scale_ids: Iterable[str], options: ReadOptions | None) -> FormatContext:
    return FormatContext(options or ReadOptions(), _casefolded(tuple(scale_ids)))


@functools.lru_cache(maxsize=8)  # (a batch asks with the same ids for every file)
def _casefolded(scale_ids: tuple[str, ...]) -> frozenset[str]:
    return frozenset(s.casefold() for s in scale_ids)


def _binary_reader(fmt: str | None, name: str, data: bytes) -> FormatReader | None:
    if fmt is not None:
        reader = FORMAT_READERS.get(fmt)
        return reader if reader is not None and reader.read_bytes is not None else None
    ext = os.path.splitext(name)[1].lower()
    for reader in FORMAT_READERS.values():
        if reader.read_bytes is None:
            continue
        if ext in reader.extensions or any(data.startswith(m) for m in reader.magic):
            return reader
    return None


def _text_reader(
    fmt: str | None, name: str, text: str, context: FormatContext
) -> FormatReader | None:
    if fmt is not None and fmt in FORMAT_READERS:
        return FORMAT_READERS[fmt]
    if fmt == "yaml":
        return None
    for reader in FORMAT_READERS.values():
        detect = reader.detect
        if reader.read_text is not None and detect is not None and detect(name, text, fmt, context):
            return reader
    return None


def claimed_by_format(
    name: str,
    data: bytes,
    text: str,
    scale_ids: Iterable[str] = (),
    options: ReadOptions | None = None,
) -> bool:
    """Whether a registered format (a clinical one: SDTM, REDCap, FHIR, ...) would read this
    file, which the built-in readers would otherwise read as YAML, JSON or CSV."""
    if _plain_yaml(name, None):
        return False
    _load_formats()
    if _binary_reader(None, name, data) is not None:
        return True
    return _text_reader(None, name, text, _context(scale_ids, options)) is not None


# --------------------------------------------------------------------------------------
# Entry points


def read_text(
    text: str,
    name: str,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read answer records from text; ``fmt`` overrides detection."""
    text = text.removeprefix("\ufeff")
    reader = None
    if not _plain_yaml(name, fmt):
        _load_formats()
        reader = _text_reader(fmt, name, text, _context(scale_ids, options))
    if reader is not None:
        if reader.read_text is None:
            return ReadResult(
                issues=[make_issue("file-format", "binary-format", file=name, format=reader.name)],
                files=[name],
            )
        return reader.read_text(text, name, _context(scale_ids, options))
    fmt = fmt or detect_format(name, text)
    if fmt == "yaml":
        return read_yaml(text, name)
    if fmt == "json":
        return read_json(text, name)
    if fmt == "jsonl":
        return read_jsonl(text, name)
    if fmt == "csv-long":
        return read_csv_long(text, name)
    if fmt == "csv":
        if detect_format(".csv", text) == "csv-long":
            return read_csv_long(text, name)
        return read_csv_wide(text, name, {s.casefold() for s in scale_ids})
    raise ValueError(f"unknown input format {fmt!r}; choose one of {', '.join(input_formats())}")


def read_bytes(
    data: bytes,
    name: str,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    options: ReadOptions | None = None,
    found: bool = False,
) -> ReadResult:
    """Read answer records from a file's bytes. ``found``: the file was found in a folder,
    so one that is not a ratings file (binary, or notes) is skipped with a notice."""
    issues: list[Issue] = []
    digest = hashlib.sha256(data).hexdigest()
    binary = None
    if not _plain_yaml(name, fmt):
        _load_formats()
        binary = _binary_reader(fmt, name, data)
    if binary is not None and binary.read_bytes is not None:
        result = binary.read_bytes(data, name, _context(scale_ids, options))
        result.hashes[name] = digest
        return result
    if found and fmt is None:
        reason = _not_ratings(name, data, options)
        if reason is not None:
            return ReadResult(issues=[make_issue("file-skipped", reason, file=name)], files=[name])
    text = decode(data, name, issues)
    if text is None:
        return ReadResult(issues=issues, files=[name], hashes={name: digest})
    result = read_text(text, name, fmt, scale_ids, options=options)
    result.issues[:0] = issues
    result.hashes[name] = digest
    return result


# a column any ratings table read without a mapping file has (wide or long, SDTM, REDCap)
TABLE_MARKERS = ("subject", "usubjid", "record_id", "redcap_event_name")


def _not_ratings(name: str, data: bytes, options: ReadOptions | None) -> str | None:
    """Why a file found in a folder is not a ratings file (``file-skipped`` variant), or
    None: binary content, or a .txt file (notes, as often as a table) whose first line
    names no subject column (nor the mapping file's) and no SDTM test code column."""
    head = data[:8192]
    codec = "utf-8"
    if b"\x00" in head and not head.startswith(tuple(bom for bom, _ in UNICODE_BOMS)):
        # UTF-16 text without its mark is not skipped (reading it says what to do) unless
        # it is notes
        utf16 = utf16_without_bom(head)
        if utf16 is None:
            return "binary"
        codec = utf16[0].replace(" ", "-").lower()
    if os.path.splitext(name)[1].lower() == ".txt":
        text = head.decode(codec, "replace").lstrip("\ufeff")
        columns = {c.strip().casefold() for c in split_header(text.lstrip())}
        markers = set(TABLE_MARKERS)
        mapping = options.mapping if options is not None else None
        if mapping is not None and mapping.spec.subject:
            markers.add(mapping.spec.subject.casefold())
        if not columns & markers and not any(c.endswith("testcd") for c in columns):
            return "notes"
    return None


def read_limited(stream: BinaryIO, limit: int) -> bytes | None:
    """The bytes of a stream (standard input, a pipe, a device), or None when it holds more
    than ``limit`` bytes; never more than ``limit`` + 1 bytes are read."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = stream.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def guarded(name: str, read: Callable[[], ReadResult]) -> ReadResult:
    """``read()``, or, if a reader fails (a bug), an issue naming the file, so that one file
    never stops a batch. Set KETASCORE_TRACEBACK=1 (``ketascore --traceback``) to see the
    failure itself."""
    try:
        return read()
    except Exception as exc:
        if os.environ.get("KETASCORE_TRACEBACK"):
            raise
        error = f"{type(exc).__name__}: {exc}"[:300]
        issue = make_issue("internal-error", file=name, error=error)
        return ReadResult(issues=[issue], files=[name])


def read_file(
    path: str | Path,
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read one file: a regular file, or a pipe or device named by the user (read up to
    ``max_file_size`` bytes)."""
    name = display_name(str(path))
    found = _found(path)
    try:
        info = os.stat(path)
        mode, size = info.st_mode, info.st_size
        if stat.S_ISREG(mode) and size > max_file_size:
            return ReadResult(
                issues=[make_issue("file-too-large", file=name, size=size, limit=max_file_size)],
                files=[name],
            )
        with open(path, "rb") as fh:
            data = fh.read() if stat.S_ISREG(mode) else read_limited(fh, max_file_size)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ReadResult(
            issues=[make_issue("file-unreadable", file=name, reason=reason)],
            files=[name],
        )
    if data is None or len(data) > max_file_size:  # (a regular file may grow as it is read)
        return ReadResult(
            issues=[make_issue("file-too-large", "stream", file=name, limit=max_file_size)],
            files=[name],
        )
    return guarded(
        name, lambda: read_bytes(data, name, fmt, scale_ids, options=options, found=found)
    )


def read_stream(
    stream: BinaryIO,
    name: str = "<stdin>",
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    *,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read standard input (or any stream), up to ``max_file_size`` bytes."""
    try:
        data = read_limited(stream, max_file_size)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return ReadResult(
            issues=[make_issue("file-unreadable", file=name, reason=reason)], files=[name]
        )
    if data is None:
        return ReadResult(
            issues=[make_issue("file-too-large", "stream", file=name, limit=max_file_size)],
            files=[name],
        )
    return guarded(name, lambda: read_bytes(data, name, fmt, scale_ids, options=options))


def read_paths(
    paths: Iterable[str | Path],
    fmt: str | None = None,
    scale_ids: Iterable[str] = (),
    *,
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    stdin: BinaryIO | None = None,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read files and folders (``-`` is standard input) into one result, in a stable order.

    ``options`` reach the readers of clinical formats (mapping file, sheet, REDCap data
    dictionary, FHIR Questionnaire, SDTM category)."""
    out = ReadResult()
    ids = list(scale_ids)
    for path in iter_input_files(paths, include, exclude, out.issues):
        if str(path) == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            out.extend(read_stream(stream, "<stdin>", fmt, ids, max_file_size, options=options))
        else:
            out.extend(read_file(path, fmt, ids, max_file_size, options=options))
    return out
