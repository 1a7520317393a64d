"""The layout shows the architecture (docs/architecture.md): the core imports no other
package of ketascore; readers, writers and presentation never import an engine; no module
imports another's private names; module-level imports make no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "ketascore"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, top_level_only: bool) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) of each import in module ``name``."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found += [(a.name, []) for a in node.names]
    return [(m, names) for m, names in found if m.split(".")[0] == "ketascore"]


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_private_names_cross_modules() -> None:
    bad = [
        f"{name} imports {names} from {module}"
        for name in MODULES
        for module, names in _imports(name, top_level_only=False)
        if module != name and [n for n in names if n.startswith("_") and not n.startswith("__")]
    ]
    assert not bad, "\n".join(bad)


def test_the_core_and_the_outer_packages_keep_their_places() -> None:
    """The core imports only the core (and the version); readers, writers and presentation
    never import an engine or the command line."""
    refused = {
        "core": lambda target: target not in ("core", ""),
        "readers": lambda target: target in ("engines", "cli", "api"),
        "writers": lambda target: target in ("engines", "cli", "api"),
        "present": lambda target: target in ("engines", "cli", "api"),
    }
    bad = []
    for name in MODULES:
        rule = refused.get(_package(name))
        if rule is None:
            continue
        for module, _ in _imports(name, top_level_only=False):
            if rule(_package(module)):
                bad.append(f"{name} imports {module}")
    assert not bad, "\n".join(bad)


def test_module_level_imports_make_no_cycle() -> None:
    graph = {
        name: {m for m, _ in _imports(name, top_level_only=True) if m in MODULES and m != name}
        for name in MODULES
    }
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (cycle := visit(nxt, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for name in sorted(graph):
        if name not in state and (cycle := visit(name, [])):
            raise AssertionError(" -> ".join(cycle))
