"""Companion check files: rating checks added to a scale for one run (``--checks``).

A check file names a scale and adds rating-consistency checks to it, with the citations
behind them and worked examples. It keeps rules that a built-in scale should not carry for
everyone out of the scale file: a check that compares a rating with the previous one
(``change_from``) makes a scale one that a SQL query cannot score row by row, so the built-in
MADRS and HAM-D17 keep the fast table engine and ``ketascore sql``, and a run that wants the
swing checks asks for them (``--checks madrs-visit-swings``). A protocol's own checks are
written the same way.

Built-in check files live in ``scales/checks/``; ``resolve_check_set`` takes their id or the
path of a file of one's own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import Field, ValidationError

from ketascore.core import yamlsafe
from ketascore.core.model import Check, Citation, Example, Model, ScaleId, Text
from ketascore.core.scale import (
    Problem,
    Scale,
    ScaleError,
    compile_definition,
    format_problem,
    pydantic_problems,
)


class CheckSetDefinition(Model):
    """The contents of a check file."""

    id: ScaleId
    scale: ScaleId = Field(description="the id of the scale the checks are added to")
    name: str
    version: Text
    description: str | None = None
    citations: list[Citation] = Field(min_length=1)
    checks: list[Check] = Field(min_length=1)
    examples: list[Example] = Field(default_factory=list)


@dataclass(frozen=True)
class CheckSet:
    definition: CheckSetDefinition
    source: str
    sha256: str
    located: yamlsafe.Located | None = None

    @property
    def id(self) -> str:
        return self.definition.id

    @property
    def scale(self) -> str:
        return self.definition.scale

    def where(self, path: tuple[str | int, ...], message: str) -> str:
        return format_problem(self.source, self.located, Problem(path, message))


def check_sets_dir() -> Path:
    from ketascore.core.library import scales_dir

    return scales_dir() / "checks"


@cache
def builtin_check_files() -> dict[str, Path]:
    folder = check_sets_dir()
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def read_check_set_text(text: str, source: str) -> tuple[CheckSet | None, list[str]]:
    """The check set of a file's text, or the problems of its YAML and its shape, each as
    ``file:line:column: path: message``."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    try:
        located = yamlsafe.load(text)
    except yamlsafe.YamlError as exc:
        where = source if exc.line is None else f"{source}:{exc.line}:{exc.column}"
        return None, [f"{where}: {exc.message}"]
    if not isinstance(located.data, dict):
        return None, [f"{source}:1:1: (document): a check file holds a mapping of keys"]
    try:
        definition = CheckSetDefinition.model_validate(located.data)
    except ValidationError as exc:
        problems = pydantic_problems(exc, located.data)
        return None, [format_problem(source, located, p) for p in problems]
    return CheckSet(definition, source, sha, located), []


def read_check_set_file(
    path: str | Path, source: str | None = None
) -> tuple[CheckSet | None, list[str]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"{path}: cannot read check file: {exc}"]
    return read_check_set_text(text, source or str(path))


class UnknownCheckSetError(LookupError):
    pass


def resolve_check_set(name: str) -> CheckSet:
    """A built-in check file by id, or one's own by its path (ScaleError if it has
    problems, UnknownCheckSetError if there is no such file)."""
    from ketascore.core.library import looks_like_path

    files = builtin_check_files()
    if name in files and not looks_like_path(name):
        found, problems = read_check_set_file(files[name], f"scales/checks/{files[name].name}")
    elif looks_like_path(name) or Path(name).is_file():
        found, problems = read_check_set_file(name)
    else:
        known = ", ".join(files) or "none"
        raise UnknownCheckSetError(
            f"unknown check file {name!r}; built-in check files: {known}; or pass the path of "
            "a check file"
        )
    if found is None:
        raise ScaleError(name, problems)
    return found


def merge_check_set(scale: Scale, check_set: CheckSet) -> tuple[Scale | None, list[str]]:
    """``scale`` with the checks and citations of ``check_set`` added, or the problems of
    the combination, located in the check file."""
    d, extra = scale.definition, check_set.definition
    if extra.scale != scale.id:
        return None, [
            check_set.where(
                ("scale",), f"the checks are for scale {extra.scale!r}, not {scale.id!r}"
            )
        ]
    problems: list[str] = []
    base_keys = {c.key for c in d.citations}
    for j, citation in enumerate(extra.citations):
        if citation.key in base_keys:
            problems.append(
                check_set.where(
                    ("citations", j, "key"),
                    f"citation key {citation.key!r} is also a key of scale {scale.id}; "
                    "choose another",
                )
            )
    taken = {c.id for c in d.checks} | {f.id for f in d.flags}
    for j, check in enumerate(extra.checks):
        if check.id in taken:
            problems.append(
                check_set.where(
                    ("checks", j, "id"),
                    f"check id {check.id!r} is also a check or flag of scale {scale.id}",
                )
            )
    if problems:
        return None, problems
    merged = d.model_copy(
        update={
            "version": f"{d.version}+{extra.id}-{extra.version}",
            "citations": [*d.citations, *extra.citations],
            "checks": [*d.checks, *extra.checks],
        }
    )
    source = f"{scale.source} with {check_set.source} (sha256 {check_set.sha256})"
    combined, found = compile_definition(merged, source, scale.sha256)
    offset = len(d.checks)
    for problem in found:
        path = problem.path
        if len(path) >= 2 and path[0] == "checks" and isinstance(path[1], int):
            problems.append(
                check_set.where(("checks", path[1] - offset, *path[2:]), problem.message)
            )
        elif len(path) >= 2 and path[0] == "citations" and isinstance(path[1], int):
            offset_c = len(d.citations)
            problems.append(
                check_set.where(("citations", path[1] - offset_c, *path[2:]), problem.message)
            )
        else:  # pragma: no cover - the scale itself was checked when it was loaded
            problems.append(f"{scale.source}: {problem.message}")
    return (combined if not problems else None), problems


def with_check_sets(scale: Scale, check_sets: list[CheckSet]) -> Scale:
    """``scale`` with the checks of each check set added in turn (ScaleError if they do not
    fit)."""
    for check_set in check_sets:
        combined, problems = merge_check_set(scale, check_set)
        if combined is None:
            raise ScaleError(check_set.source, problems)
        scale = combined
    return scale
