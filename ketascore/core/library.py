"""The built-in scales, and resolving a ``--scale`` argument (a built-in id or a file path)."""

from __future__ import annotations

import difflib
from functools import cache
from importlib import resources
from pathlib import Path

from ketascore.core.scale import Scale, ScaleError, load_scale_file, load_scale_text


def close_ids(name: str, known: list[str]) -> list[str]:
    """The known scale ids a mistyped one may mean (the "did you mean" of ``--scale`` and of
    a record's scale field): those as close as the closest (difflib's ratio within 0.1 of
    it, and at least 0.6), at most three, the closest first. ``phq-9`` gives phq9 alone,
    not phq8 and phq15 as well."""
    folded = name.casefold()
    ratios = {k: difflib.SequenceMatcher(None, folded, k.casefold()).ratio() for k in known}
    best = max(ratios.values(), default=0.0)
    close = [k for k, r in ratios.items() if r >= max(0.6, best - 0.1)]
    return sorted(close, key=lambda k: -ratios[k])[:3]


class UnknownScaleError(LookupError):
    def __init__(self, name: str, known: list[str]):
        self.name = name
        close = close_ids(name, known)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        super().__init__(
            f"unknown scale {name!r}{hint}; built-in scales: {', '.join(known)}; "
            "or pass the path of a scale YAML file"
        )


def scales_dir() -> Path:
    """The folder of built-in scale files: inside the installed package, else the checkout."""
    packaged = resources.files("ketascore").joinpath("scales")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "scales"


@cache
def builtin_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(scales_dir().glob("*.yaml"))}


def builtin_ids() -> list[str]:
    return list(builtin_files())


@cache
def load_builtin(scale_id: str) -> Scale:
    files = builtin_files()
    if scale_id not in files:
        raise UnknownScaleError(scale_id, list(files))
    path = files[scale_id]
    scale = load_scale_text(path.read_text(encoding="utf-8"), f"scales/{path.name}")
    if scale.id != scale_id:  # pragma: no cover - guarded by the test suite
        raise ScaleError(str(path), [f"{path}: id {scale.id!r} differs from the file name"])
    return scale


def looks_like_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name or "\\" in name


def resolve_scale(name: str) -> Scale:
    """A built-in scale by id, or a user's scale by the path of its YAML file."""
    if looks_like_path(name) or (Path(name).is_file() and name not in builtin_files()):
        return load_scale_file(name)
    return load_builtin(name)


class ScaleSet:
    """The scales a run may use: the built-ins plus any loaded from files, by id."""

    def __init__(self, extra: list[Scale] | None = None):
        self._extra = {s.id: s for s in extra or []}

    def ids(self) -> list[str]:
        return sorted(set(builtin_ids()) | set(self._extra))

    def get(self, scale_id: str) -> Scale | None:
        """The scale of an id, whatever its case (a record's ``MADRS`` is ``madrs``)."""
        if scale_id in self._extra:
            return self._extra[scale_id]
        if scale_id in builtin_files():
            return load_builtin(scale_id)
        folded = scale_id.casefold()
        for known in self.ids():
            if known.casefold() == folded and known != scale_id:
                return self.get(known)
        return None


def left_out(scale_id: str, chosen: Scale) -> bool:
    """With ``chosen`` analysed (``--scale``), whether a record naming ``scale_id`` is left
    out: it names another scale, known or not. A record naming an unknown id close to the
    chosen one (a typo such as ``madrss`` for ``madrs``) is kept, to be reported with its
    "did you mean" rather than dropped unseen."""
    if scale_id.casefold() == chosen.id.casefold():
        return False
    known = ScaleSet([chosen])
    return known.get(scale_id) is not None or not close_ids(scale_id, [chosen.id])
