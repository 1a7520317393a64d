"""Safe YAML loading: data only, never code, with line and column of every node.

Scale files and answer files come from many hands. This module never constructs Python
objects from tags, limits how far aliases may expand (a "billion laughs" file is refused),
limits nesting depth, and reads booleans the YAML 1.2 way (only true/false), so an answer
``yes`` stays the string "yes" instead of becoming True.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

MAX_NODES = 200_000
MAX_DEPTH = 100

_BaseLoader: type[yaml.SafeLoader]
try:  # the C parser is much faster; fall back to pure Python where libyaml is missing
    _BaseLoader = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[valid-type,misc]
    """SafeLoader with YAML 1.2 booleans (yes/no/on/off stay strings)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_ALLOWED_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class YamlError(ValueError):
    """A YAML document that cannot be used; ``line`` and ``column`` are 1-based.

    ``kind`` is "syntax" (not valid YAML), "unsafe" (a tag that would build objects) or
    "limit" (aliases or nesting that would exhaust memory or the stack)."""

    def __init__(
        self,
        message: str,
        line: int | None = None,
        column: int | None = None,
        kind: str = "syntax",
    ):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.kind = kind


@dataclass(frozen=True)
class Position:
    line: int
    column: int


@dataclass
class Located:
    """Plain data plus the position of each node, keyed by its path from the root."""

    data: Any
    positions: dict[Path_, Position]

    def position(self, path: Path_) -> Position | None:
        """Position of ``path`` or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return None


def _mark(node: yaml.Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _scalar(loader: _Loader, node: yaml.ScalarNode) -> Any:
    if node.tag not in _ALLOWED_TAGS:
        raise YamlError(f"tag {node.tag!r} is not allowed", *_pos(node), kind="unsafe")
    try:
        value = loader.construct_object(node)
    except (ValueError, OverflowError):
        if node.tag == "tag:yaml.org,2002:timestamp":
            return node.value  # looks like a date but is not one (2025-13-40): keep the text
        raise YamlError(f"cannot read value {node.value!r}", *_pos(node)) from None
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if isinstance(value, bytes):  # pragma: no cover - !!binary is not in _ALLOWED_TAGS
        raise YamlError("binary values are not allowed", *_pos(node))
    return value


def _pos(node: yaml.Node) -> tuple[int, int]:
    p = _mark(node)
    return p.line, p.column


_NUMBER_TAGS = {"tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
# a JSON number (RFC 8259), which YAML reads as text when it has an exponent and no point
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def _convert(
    loader: _Loader,
    root: yaml.Node,
    record_positions: bool,
    raw_keys: frozenset[str],
    json_numbers: bool = False,
) -> Located:
    positions: dict[Path_, Position] = {}
    budget = [MAX_NODES]

    def walk(node: yaml.Node, path: Path_) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise YamlError(
                f"document expands to more than {MAX_NODES:,} values (aliases nested too deep?)",
                *_pos(node),
                kind="limit",
            )
        if len(path) > MAX_DEPTH:
            raise YamlError(
                f"document is nested more than {MAX_DEPTH} levels deep", *_pos(node), kind="limit"
            )
        if record_positions:
            positions[path] = _mark(node)
        if isinstance(node, yaml.ScalarNode):
            if json_numbers and not node.style:  # a plain scalar (the C parser says "")
                number = _JSON_NUMBER.fullmatch(node.value)
                if number is not None:
                    text = node.value
                    return float(text) if number.group(1) or number.group(2) else int(text)
            return _scalar(loader, node)
        if node.tag not in _ALLOWED_TAGS:
            raise YamlError(f"tag {node.tag!r} is not allowed", *_pos(node), kind="unsafe")
        if isinstance(node, yaml.SequenceNode):
            return [walk(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError("mapping keys must be plain values", *_pos(key_node))
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError("merge keys (<<) are not supported", *_pos(key_node))
                key = _scalar(loader, key_node)
                key = "" if key is None else str(key)
                if key in out:
                    raise YamlError(f"duplicate key {key!r}", *_pos(key_node))
                if (
                    key in raw_keys
                    and isinstance(value_node, yaml.ScalarNode)
                    and value_node.tag in _NUMBER_TAGS
                ):
                    # identifiers keep their text: subject 007 stays "007", not 7
                    if record_positions:
                        positions[(*path, key)] = _mark(value_node)
                    out[key] = value_node.value
                    continue
                out[key] = walk(value_node, (*path, key))
            return out
        raise YamlError("unsupported YAML node", *_pos(node))  # pragma: no cover

    return Located(walk(root, ()), positions)


_BRACKETS = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def flow_depth(text: str) -> int:
    """Deepest nesting of [ and { brackets (strings are not skipped: an upper bound)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return text.count("[") + text.count("{")
    depth = deepest = 0
    for step in map(_STEP.__getitem__, _BRACKETS.sub("", text)):
        depth += step
        if depth > deepest:
            deepest = depth
    return deepest


def check_depth(text: str) -> None:
    """Refuse deeply nested documents before a parser recurses into them."""
    if flow_depth(text) > MAX_DEPTH:
        raise YamlError(f"document is nested more than {MAX_DEPTH} levels deep", kind="limit")


def load(
    text: str,
    *,
    positions: bool = True,
    raw_keys: frozenset[str] = frozenset(),
    json_numbers: bool = False,
) -> Located:
    """Parse one YAML (or JSON) document into plain data and node positions.

    Raises YamlError with the 1-based line and column of the problem. Values of ``raw_keys``
    that look like numbers are kept as the text written. ``json_numbers``: the document is
    JSON, whose unquoted numbers are numbers (YAML reads ``1e5`` as text).
    """
    check_depth(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Located(None, {})
        return _convert(loader, root, positions, raw_keys, json_numbers)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context and "constructor" not in type(exc).__name__.lower():
            problem = f"{exc.context}: {problem}" if exc.context not in problem else problem
        raise YamlError(
            problem.strip(), mark.line + 1 if mark else None, mark.column + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).strip()) from None
    except RecursionError:
        raise YamlError(
            f"document is nested more than {MAX_DEPTH} levels deep", kind="limit"
        ) from None
    finally:
        loader.dispose()
