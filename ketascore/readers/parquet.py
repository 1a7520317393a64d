"""Parquet tables (read with pyarrow), laid out like CSV: wide, long, SDTM or through a
mapping file. Rows are numbered from 1 (the first data row)."""

from __future__ import annotations

import io
import math
from typing import Any

from ketascore.core.issues import make_issue
from ketascore.core.values import float_cell
from ketascore.readers import FormatContext, ReadResult, Table, is_blank

MAGIC = b"PAR1"


def table_cell(value: Any) -> Any:
    """A Parquet (or DataFrame) cell as the readers take it: NaN is missing, dates are ISO
    text."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "isoformat"):  # dates and timestamps: ISO text, as in CSV
        return value.isoformat()
    return value


def _values(column: Any) -> list[Any]:
    """A column's values as Python objects; a column holding a value Python has no object
    for (a date before year 1 or after 9999, a timestamp or duration beyond its range) as
    pyarrow writes each value as text, so that the value grammar and the date check reject
    that value (it stopped the reading of the file). A FLOAT (32-bit) or FLOAT16 column's
    values are ``Float32`` or ``Float16``: an id of it is exact below 2^24 or 2^11 only."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    try:
        values = list(column.to_pylist())
    except (OverflowError, ValueError):
        return list(column.cast(pa.string()).to_pylist())
    kind = float_kind(column.type)
    return [float_cell(v, kind) for v in values] if kind else values


def float_kind(arrow_type: Any) -> str | None:
    """The column plan's kind of a narrow floating-point Arrow type (``float``: 32-bit,
    ``half``: 16-bit; ``values.NARROW_KINDS``), else None (a double is ``number``)."""
    import pyarrow as pa  # type: ignore[import-untyped,unused-ignore]

    if pa.types.is_float32(arrow_type):
        return "float"
    if pa.types.is_float16(arrow_type):
        return "half"
    return None


def read_parquet(data: bytes, file: str, context: FormatContext) -> ReadResult:
    from .layouts import records_from_table

    out = ReadResult(files=[file])
    try:
        import pyarrow.parquet as pq  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        out.issues.append(make_issue("file-format", "needs-pyarrow", file=file))
        return out
    try:
        table = pq.read_table(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        out.issues.append(make_issue("parse-error", "parquet", file=file, error=str(exc)))
        return out
    header = [str(name) for name in table.column_names]
    try:
        columns = [_values(table.column(i)) for i in range(table.num_columns)]
    except Exception as exc:  # a column pyarrow can neither convert nor write as text
        out.issues.append(make_issue("parse-error", "parquet", file=file, error=str(exc)))
        return out
    rows = []
    for n in range(1, table.num_rows + 1):
        cells = [table_cell(col[n - 1]) for col in columns]
        if not all(is_blank(c) for c in cells):  # a row with nothing in it is no row
            rows.append((n, cells))
    records_from_table(Table(header, rows), file, context, out, unit="row")
    return out
