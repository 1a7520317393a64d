"""Loading the clinic's data files (measures, session rules): safe YAML, pydantic shape,
every problem as ``file:line:column: path: message``, like a scale file."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from ketascore.core.scale import Problem, ScaleError, load_model

M = TypeVar("M", bound=BaseModel)


def data_dir(kind: str) -> Path:
    """The folder of built-in files of one kind (``measures``, ``rules``)."""
    return Path(str(resources.files("ketascore.clinic").joinpath("data", kind)))


def builtin_files(kind: str) -> dict[str, Path]:
    return {p.stem: p for p in sorted(data_dir(kind).glob("*.yaml"))}


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScaleError(str(path), [f"{path}: cannot read the file: {exc}"]) from None


def resolve(kind: str, name: str, model: type[M], relations: Callable[[M], list[Problem]]) -> M:
    """A built-in file by id, or a file by path; unknown ids raise LookupError."""
    files = builtin_files(kind)
    if name in files:
        path = files[name]
        return load_model(read_text(path), f"{kind}/{path.name}", model, relations)
    if name.endswith((".yaml", ".yml")) or Path(name).is_file():
        return load_model(read_text(name), name, model, relations)
    raise LookupError(f"unknown {kind[:-1]} {name!r}; built-in: {', '.join(files)}")
