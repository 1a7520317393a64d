"""`ketascore scales`: list, show and check scale definitions."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
    UsageError,
    console,
    is_tty,
    load_scale_option,
)

# --------------------------------------------------------------------------------------
# scales


@cli.group()
def scales() -> None:
    """List, show and check scale definitions."""


@scales.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
def scales_list(fmt: str | None) -> None:
    """List the built-in scales."""
    from ketascore.core.library import builtin_ids, load_builtin
    from ketascore.writers.jsontext import one_line

    loaded = [load_builtin(i) for i in builtin_ids()]
    fmt = fmt or ("table" if is_tty(sys.stdout) else "json")
    if fmt == "json":
        click.echo(
            one_line(
                [
                    {
                        "id": s.id,
                        "name": s.name,
                        "version": s.version,
                        "rater": s.definition.rater,
                        "items": len(s.items),
                        "scores": {r.id: [r.lo, r.hi] for r in s.scores},
                        "licence": s.definition.licence.status,
                    }
                    for s in loaded
                ]
            )
        )
        return
    from ketascore.present.render import scales_table

    console().print(scales_table(loaded))


@scales.command("show")
@click.argument("scale")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
def scales_show(scale: str, fmt: str | None) -> None:
    """Show a scale's card: items, answers, scores and how they are computed, bands,
    outcomes, missing-data rules, flags, worked examples, licence and sources.

    SCALE is a built-in id (see `ketascore scales list`) or the path of a scale file.
    """
    loaded = load_scale_option(scale)
    fmt = fmt or ("table" if is_tty(sys.stdout) else "json")
    from ketascore.present.card import scale_card, scale_card_data

    if fmt == "json":
        from ketascore.writers.jsontext import one_line

        click.echo(one_line(scale_card_data(loaded)))
        return
    console().print(scale_card(loaded))


@scales.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--allow-shadow",
    is_flag=True,
    help="Allow a scale id that is also the id of a built-in scale.",
)
def scales_check(files: tuple[str, ...], allow_shadow: bool) -> None:
    """Check scale files: schema, items, scores, ranges, bands, and the worked examples.

    Every problem of every file is reported at once, as file:line:column: path: message.
    An id that is also the id of a built-in scale is a problem unless --allow-shadow is
    given. Exit code 1 if any file has a problem.
    """
    from ketascore.authoring import check_scale_file

    failed = False
    for name in files:
        problems = check_scale_file(name, allow_shadow=allow_shadow)
        if problems:
            failed = True
            for p in problems:
                click.echo(p)
            click.echo(f"{name}: {len(problems)} problem{'s' if len(problems) != 1 else ''}")
        else:
            click.echo(f"{name}: ok")
    if failed:
        sys.exit(Exit.PROBLEMS)


@scales.command("new")
@click.argument("scale_id", metavar="ID")
@click.option("--items", "n_items", type=int, required=True, help="Number of items.")
@click.option(
    "--range",
    "value_range",
    required=True,
    metavar="A-B",
    help="Range of every item, whole numbers from A to B (e.g. 0-3).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: ID.yaml). An existing file is never overwritten.",
)
def scales_new(scale_id: str, n_items: int, value_range: str, output: Path | None) -> None:
    """Write a commented starter scale file to edit.

    The starter has --items items rated over --range, their sum as the total, a placeholder
    citation and three worked examples; it passes `ketascore scales check` as written. Replace
    every TODO with what the scale's published source says (docs/scales.md describes the
    language).
    """
    from ketascore.authoring import StarterError, parse_range, starter_yaml
    from ketascore.writers.tabular import atomic_writer

    target = output if output is not None else Path(f"{scale_id}.yaml")
    try:
        lo, hi = parse_range(value_range)
        text = starter_yaml(scale_id, n_items, lo, hi, filename=str(target))
    except StarterError as exc:
        raise UsageError(str(exc)) from None
    if target.exists() or target.is_symlink():
        raise UsageError(
            f"refusing to overwrite {target}: it exists; choose another file with -o FILE"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"cannot write {target}: the folder {folder} does not exist")
    with atomic_writer(target) as fh:
        fh.write(text)
    click.echo(
        f"wrote {target}: {n_items} item{'s' if n_items != 1 else ''} rated {lo} to {hi}; "
        f"replace each TODO, then run: ketascore scales check {target}"
    )
