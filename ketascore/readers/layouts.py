"""Which layout a table has, and the records it gives: SDTM, a mapping file, long or wide.

Shared by every tabular source (CSV text, spreadsheets, SAS transport files)."""

from __future__ import annotations

from ketascore.readers import (
    FormatContext,
    ReadResult,
    Table,
    check_table,
    records_long,
    records_wide,
)

from .tables import known_scales, read_mapped_table


def sdtm_prefix(header: list[str]) -> str | None:
    """``QS`` or ``RS`` (or another domain prefix) when a ``--TESTCD`` column is present."""
    upper = [h.upper() for h in header]
    for prefix in ("QS", "RS", "FT"):
        if f"{prefix}TESTCD" in upper:
            return prefix
    for h in upper:
        if len(h) == 8 and h.endswith("TESTCD"):
            return h[:2]
    return None


def records_from_table(
    table: Table, file: str, context: FormatContext, out: ReadResult, *, unit: str = "line"
) -> None:
    """Records of a table of any source, by its layout."""
    mapping = context.options.mapping
    if sdtm_prefix(table.header) is not None or mapping is not None:
        checked = check_table(table, file, out.issues, required=())
        if checked is None:
            return
        if sdtm_prefix(table.header) is not None:
            from .sdtm import read_sdtm_table

            read_sdtm_table(checked, file, context, out, unit=unit)
        else:
            read_mapped_table(checked, file, mapping, context, out, unit=unit)
        return
    checked = check_table(table, file, out.issues)
    if checked is None:
        return
    folded = {h.casefold() for h in table.header}
    if {"scale", "item", "value"} <= folded:
        records_long(checked, file, out)
    else:
        ids = set(context.scale_ids) | {s.id for s in known_scales(context)}
        records_wide(checked, file, ids, out)


def read_table_text(text: str, file: str, context: FormatContext) -> ReadResult:
    """CSV text of any layout (SDTM, through a mapping file, long or wide)."""
    from ketascore.readers import csv_table

    out = ReadResult(files=[file])
    table = csv_table(text, file, out.issues)
    if table is not None:
        records_from_table(table, file, context, out)
    return out
