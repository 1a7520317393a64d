"""Help for users who write their own scales: check a scale file completely."""

from __future__ import annotations

from pathlib import Path

from ketascore.engine import run_examples
from ketascore.library import builtin_files
from ketascore.scale import check_scale_text


def check_scale_text_all(text: str, source: str, *, allow_shadow: bool = False) -> list[str]:
    """Every problem of a scale file: schema, relations, and failing worked examples."""
    report = check_scale_text(text, source)
    problems = list(report.problems)
    scale = report.scale
    if scale is None:
        return problems
    builtin = builtin_files().get(scale.id)
    is_builtin_itself = builtin is not None and Path(source).resolve() == builtin.resolve()
    if builtin is not None and not is_builtin_itself and not allow_shadow:
        pos = report.located.position(("id",)) if report.located else None
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        problems.append(
            f"{where}: id: {scale.id!r} is the id of a built-in scale; choose another id, or "
            "pass --allow-shadow to use this file in its place"
        )
    if not scale.definition.examples:
        problems.append(
            f"{source}: examples: the scale has no worked examples; add at least one so that "
            "its rules are tested"
        )
    for failure in run_examples(scale):
        index = int(failure.split("]", 1)[0].split("[", 1)[1])
        pos = report.located.position(("examples", index)) if report.located else None
        where = f"{source}:{pos.line}:{pos.column}" if pos else source
        problems.append(f"{where}: {failure}")
    return problems


def check_scale_file(path: str | Path, *, allow_shadow: bool = False) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return [f"{path}: cannot read the file: {exc}"]
    return check_scale_text_all(text, str(path), allow_shadow=allow_shadow)
