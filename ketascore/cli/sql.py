"""`ketascore sql`: print the SQL query that scores a scale inside a database."""

from __future__ import annotations

from pathlib import Path

import click

from ketascore.cli import cli
from ketascore.cli.common import UsageError, emit, load_scale_option, plan_outputs, scale_file


@cli.command("sql")
@click.argument("scale")
@click.option(
    "--dialect",
    default="duckdb",
    show_default=True,
    help="SQL dialect: duckdb, spark, databricks or postgres.",
)
@click.option(
    "--table",
    default="answers",
    show_default=True,
    help="The table (or view) to score: one row per subject and visit, one column per item.",
)
@click.option(
    "--map",
    "map_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Column map (YAML): subject, visit, items {item: column}, missing_codes [...].",
)
@click.option("--carry", multiple=True, help="Copy this column to the output (repeat for several).")
@click.option(
    "--numeric-items",
    is_flag=True,
    help="Item columns have a numeric type (skips reading them as text; labels then cannot occur).",
)
@click.option(
    "--merge-duplicates",
    "order_by",
    metavar="COLUMN",
    help="Merge rows of the same subject and visit as `ketascore score` does, keeping the "
    "first by COLUMN, and order the output by first appearance.",
)
@click.option(
    "--keep-unrated",
    is_flag=True,
    help="Also return rows where no item holds anything (and rows without subject or visit).",
)
@click.option(
    "--details",
    is_flag=True,
    help="Add the columns not_applicable and issue_items (the item of each issue).",
)
@click.option("--compact", is_flag=True, help="Print the query on one line.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the query to FILE instead of stdout.",
)
def sql_cmd(
    scale: str,
    dialect: str,
    table: str,
    map_file: Path | None,
    carry: tuple[str, ...],
    numeric_items: bool,
    order_by: str | None,
    keep_unrated: bool,
    details: bool,
    compact: bool,
    output: Path | None,
) -> None:
    """Print a SQL query that scores SCALE in a database, as `ketascore score` would.

    \b
    The query reads TABLE (one row per subject and visit; item columns named
    <scale>_<item>, e.g. phq9_1, unless --map says otherwise) and returns the
    columns of `ketascore score --format csv`: per score its value, band, items
    answered and whether it was prorated, then classifications, flags and the
    codes of the issues that explain every empty score.

    \b
    Example:
      ketascore sql phq9 --dialect spark --table ratings > phq9.sql
    """
    from ketascore.engines.sql import (
        DIALECTS,
        ColumnMap,
        SqlError,
        TableLayout,
        compile_scale,
        read_column_map,
    )

    loaded = load_scale_option(scale)
    if dialect not in DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    try:
        columns = read_column_map(map_file) if map_file else ColumnMap()
        kinds = {}
        if numeric_items:
            kinds = {columns.item_column(loaded, i): "number" for i in loaded.items}
        layout = TableLayout(kinds=kinds, carry=list(carry), order=order_by)
        compiled = compile_scale(
            loaded,
            dialect,
            table=table,
            columns=columns,
            layout=layout,
            skip_unrated=not keep_unrated,
            duplicates=order_by is not None,
            details=details,
        )
        text = compiled.sql(pretty=not compact)
    except SqlError as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # a table name or a query sqlglot cannot write
        raise UsageError(f"cannot write the query: {exc}") from None
    read = [str(f) for f in (scale_file(scale), map_file) if f is not None]
    if output is not None:
        plan_outputs([("-o", output)], read, [])
    emit(text.rstrip("\n") + ";\n", output, read)
