"""Clinical data formats: spreadsheets, REDCap, CDISC SDTM, SAS transport and FHIR in;
CDISC ADaM-style tables and FHIR Observations out.

Importing this package registers its readers with ``ketascore.readers`` (which imports it on
first use), so ``read_paths`` and ``--input-format`` know these formats:

- ``xlsx``: Excel workbook, wide, long, SDTM or through a mapping (.xlsx, .xlsm);
- ``xpt``: SAS transport v5, SDTM or any table through a mapping (.xpt);
- ``sdtm``: CDISC SDTM QS/RS domain as CSV or .xpt (a QSTESTCD/RSTESTCD column);
- ``redcap``: REDCap "export records" CSV (redcap_event_name, or record_id and *_complete);
- ``fhir``: FHIR R4 QuestionnaireResponse, a resource, Bundle or NDJSON ("resourceType");
- ``csv-mapped``: any CSV read through a mapping file (``--map`` with CSV input).

In parentheses: how each is recognised without ``--input-format``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ketascore.core.issues import make_issue
from ketascore.readers import (
    FormatContext,
    FormatReader,
    ReadOptions,
    ReadResult,
    Table,
    check_table,
    decode,
    detect_format,
    register_format,
    split_header,
)

from . import xpt
from .parquet import MAGIC as PARQUET_MAGIC

# The readers themselves are imported when a file of their format is met (or one of their
# names is asked for), so registering the formats, and reading CSV files that none of them
# claims, costs no more than these lines.
_LAZY = {
    "QuestionnaireError": "fhir",
    "Questionnaires": "fhir",
    "load_questionnaires": "fhir",
    "looks_like_fhir": "fhir",
    "read_fhir": "fhir",
    "read_table_text": "layouts",
    "records_from_table": "layouts",
    "sdtm_prefix": "layouts",
    "ColumnMapping": "mapping",
    "LoadedMapping": "mapping",
    "MappingError": "mapping",
    "load_mapping": "mapping",
    "load_mapping_text": "mapping",
    "read_parquet": "parquet",
    "RedcapDictionary": "redcap",
    "RedcapDictionaryError": "redcap",
    "load_redcap_dictionary": "redcap",
    "looks_like_redcap": "redcap",
    "read_redcap": "redcap",
    "read_sdtm_table": "sdtm",
    "read_sdtm_text": "sdtm",
    "read_xlsx": "xlsx",
}

if TYPE_CHECKING:  # the names __getattr__ gives
    from .fhir import (
        QuestionnaireError as QuestionnaireError,
    )
    from .fhir import (
        Questionnaires as Questionnaires,
    )
    from .fhir import (
        load_questionnaires as load_questionnaires,
    )
    from .fhir import (
        looks_like_fhir as looks_like_fhir,
    )
    from .fhir import (
        read_fhir as read_fhir,
    )
    from .layouts import (
        read_table_text as read_table_text,
    )
    from .layouts import (
        records_from_table as records_from_table,
    )
    from .layouts import (
        sdtm_prefix as sdtm_prefix,
    )
    from .mapping import (
        ColumnMapping as ColumnMapping,
    )
    from .mapping import (
        LoadedMapping as LoadedMapping,
    )
    from .mapping import (
        MappingError as MappingError,
    )
    from .mapping import (
        load_mapping as load_mapping,
    )
    from .mapping import (
        load_mapping_text as load_mapping_text,
    )
    from .parquet import (
        read_parquet as read_parquet,
    )
    from .redcap import (
        RedcapDictionary as RedcapDictionary,
    )
    from .redcap import (
        RedcapDictionaryError as RedcapDictionaryError,
    )
    from .redcap import (
        load_redcap_dictionary as load_redcap_dictionary,
    )
    from .redcap import (
        looks_like_redcap as looks_like_redcap,
    )
    from .redcap import (
        read_redcap as read_redcap,
    )
    from .sdtm import (
        read_sdtm_table as read_sdtm_table,
    )
    from .sdtm import (
        read_sdtm_text as read_sdtm_text,
    )
    from .xlsx import (
        read_xlsx as read_xlsx,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"ketascore.readers.{module}"), name)


__all__ = [
    "ColumnMapping",
    "FormatOptionError",
    "LoadedMapping",
    "MappingError",
    "Questionnaires",
    "ReadOptions",
    "RedcapDictionary",
    "load_mapping",
    "load_mapping_text",
    "load_questionnaires",
    "load_read_options",
    "load_redcap_dictionary",
]


class FormatOptionError(ValueError):
    """An option file (mapping, data dictionary, Questionnaire) that cannot be used.
    ``problems`` holds one message per problem; the CLI reports them as a usage error."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def load_read_options(
    *,
    map: str | Path | None = None,
    sheet: str | None = None,
    redcap_dictionary: str | Path | None = None,
    questionnaire: str | Path | Iterable[str | Path] | None = None,
    category: str | None = None,
    scales: Iterable[Any] = (),
) -> ReadOptions:
    """Read the option files named on the command line; every problem is collected and
    raised as FormatOptionError."""
    from .fhir import QuestionnaireError, load_questionnaires
    from .mapping import MappingError, load_mapping
    from .redcap import RedcapDictionaryError, load_redcap_dictionary

    problems: list[str] = []
    mapping = dictionary = questionnaires = None
    if map is not None:
        try:
            mapping = load_mapping(map)
        except MappingError as exc:
            problems.extend(exc.problems)
    if redcap_dictionary is not None:
        try:
            dictionary = load_redcap_dictionary(redcap_dictionary)
        except RedcapDictionaryError as exc:
            problems.append(str(exc))
    if questionnaire is not None:
        paths = [questionnaire] if isinstance(questionnaire, str | Path) else list(questionnaire)
        try:
            questionnaires = load_questionnaires(paths)
        except QuestionnaireError as exc:
            problems.append(str(exc))
    if problems:
        raise FormatOptionError(problems)
    return ReadOptions(
        mapping=mapping,
        sheet=sheet,
        redcap_dictionary=dictionary,
        questionnaire=questionnaires,
        category=category,
        scales=tuple(scales),
    )


# --------------------------------------------------------------------------------------
# Registration


def _xpt_table(data: bytes, file: str, out: ReadResult) -> Table | None:
    try:
        dataset = xpt.read_xport(data)
    except xpt.XptError as exc:
        out.issues.append(make_issue("parse-error", "xpt", file=file, error=str(exc)))
        return None
    if dataset.cut:
        line = len(dataset.rows) + 1
        error = dataset.cut_message()
        out.issues.append(make_issue("parse-error", "xpt", file=file, line=line, error=error))
    header = [v.name for v in dataset.variables]
    return Table(header, [(i, row) for i, row in enumerate(dataset.rows, start=1)])


def read_xpt(data: bytes, file: str, context: FormatContext) -> ReadResult:
    """A SAS transport file; issue lines are observation numbers."""
    from .layouts import records_from_table

    out = ReadResult(files=[file])
    table = _xpt_table(data, file, out)
    if table is not None:
        records_from_table(table, file, context, out, unit="observation")
    return out


def _read_sdtm_bytes(data: bytes, file: str, context: FormatContext) -> ReadResult:
    from .sdtm import read_sdtm_table, read_sdtm_text

    if not data.startswith(xpt.MAGIC):
        out = ReadResult(files=[file])
        text = decode(data, file, out.issues)
        if text is None:
            return out
        result = read_sdtm_text(text.removeprefix("\ufeff"), file, context)
        result.issues[:0] = out.issues
        return result
    out = ReadResult(files=[file])
    table = _xpt_table(data, file, out)
    if table is not None:
        checked = check_table(table, file, out.issues, required=())
        if checked is not None:
            read_sdtm_table(checked, file, context, out, unit="observation")
    return out


def _csv_like(name: str, text: str, requested: str | None) -> bool:
    if requested not in (None, "csv", "csv-long"):
        return False
    return detect_format(name, text) in ("csv", "csv-long")


def _first_line(text: str) -> str:
    """The text up to its first line break: the header of a CSV file is in it."""
    end = text.find("\n")
    return text if end < 0 else text[:end]


def _looks_like_sdtm(name: str, text: str, requested: str | None, ctx: FormatContext) -> bool:
    # a --TESTCD column (see layouts.sdtm_prefix) needs these letters in the first line
    if "TESTCD" not in _first_line(text).upper():
        return False
    from .layouts import sdtm_prefix

    return _csv_like(name, text, requested) and sdtm_prefix(split_header(text)) is not None


def _looks_like_redcap(name: str, text: str, requested: str | None, ctx: FormatContext) -> bool:
    # redcap.looks_like_redcap needs a redcap_... or a record_id column
    first = _first_line(text).casefold()
    if "redcap_" not in first and "record_id" not in first:
        return False
    from .redcap import looks_like_redcap

    return _csv_like(name, text, requested) and looks_like_redcap(split_header(text))


def _looks_like_fhir(name: str, text: str, requested: str | None, ctx: FormatContext) -> bool:
    # fhir.looks_like_fhir needs JSON: the text starts with { or [
    if text.lstrip()[:1] not in ("{", "["):
        return False
    from .fhir import looks_like_fhir

    return looks_like_fhir(name, text, requested, ctx)


def _deferred(module: str, name: str) -> Callable[[Any, str, FormatContext], ReadResult]:
    """A reader function that imports its module when it is first called."""

    def read(data: Any, file: str, context: FormatContext) -> ReadResult:
        reader = getattr(importlib.import_module(f"ketascore.readers.{module}"), name)
        result: ReadResult = reader(data, file, context)
        return result

    read.__name__ = read.__qualname__ = name
    return read


def _mapped_csv(name: str, text: str, requested: str | None, ctx: FormatContext) -> bool:
    return ctx.options.mapping is not None and _csv_like(name, text, requested)


register_format(
    FormatReader(
        "xlsx",
        read_bytes=_deferred("xlsx", "read_xlsx"),
        extensions=(".xlsx", ".xlsm"),
        description="Excel workbook (first sheet, or --sheet)",
    )
)
register_format(
    FormatReader(
        "xpt",
        read_bytes=read_xpt,
        extensions=(".xpt",),
        magic=(xpt.MAGIC,),
        description="SAS transport v5 (SDTM, or any table with --map)",
    )
)
register_format(
    FormatReader(
        "parquet",
        read_bytes=_deferred("parquet", "read_parquet"),
        extensions=(".parquet",),
        magic=(PARQUET_MAGIC,),
        description="Parquet table (wide, long, SDTM or with --map; needs pyarrow)",
    )
)
register_format(
    FormatReader(
        "fhir",
        read_text=_deferred("fhir", "read_fhir"),
        detect=_looks_like_fhir,
        description="FHIR R4 QuestionnaireResponse (resource, Bundle or NDJSON)",
    )
)
register_format(
    FormatReader(
        "sdtm",
        read_text=_deferred("sdtm", "read_sdtm_text"),
        read_bytes=_read_sdtm_bytes,
        detect=_looks_like_sdtm,
        description="CDISC SDTM QS/RS domain (CSV or .xpt)",
    )
)
register_format(
    FormatReader(
        "redcap",
        read_text=_deferred("redcap", "read_redcap"),
        detect=_looks_like_redcap,
        description='REDCap "export records" CSV',
    )
)
register_format(
    FormatReader(
        "csv-mapped",
        read_text=_deferred("layouts", "read_table_text"),
        detect=_mapped_csv,
        description="CSV read through a mapping file (--map)",
    )
)
