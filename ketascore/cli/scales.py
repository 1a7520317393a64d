"""`ketascore scales`: list, show and check scale definitions."""

from __future__ import annotations

import sys

import click

from ketascore.cli import cli
from ketascore.cli.common import (
    Exit,
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
    from ketascore.library import builtin_ids, load_builtin
    from ketascore.output import dumps

    loaded = [load_builtin(i) for i in builtin_ids()]
    fmt = fmt or ("table" if is_tty(sys.stdout) else "json")
    if fmt == "json":
        click.echo(
            dumps(
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
    from ketascore.render import scales_table

    console().print(scales_table(loaded))


@scales.command("show")
@click.argument("scale")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), help="Output format.")
def scales_show(scale: str, fmt: str | None) -> None:
    """Show a scale: items, scores, bands, outcomes, rules, licence and sources."""
    loaded = load_scale_option(scale)
    fmt = fmt or ("table" if is_tty(sys.stdout) else "json")
    from ketascore.card import scale_card, scale_card_data

    if fmt == "json":
        from ketascore.output import dumps

        click.echo(dumps(scale_card_data(loaded)))
        return
    console().print(scale_card(loaded))


@scales.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--allow-shadow",
    is_flag=True,
    help="Allow a scale id that is also the id of a built-in scale.",
)
def scales_check(files: tuple[str, ...], allow_shadow: bool) -> None:
    """Check scale files: schema, items, scores, ranges, bands, and the worked examples.

    Every problem is reported, with file:line:column. Exit code 1 if any file has one.
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
