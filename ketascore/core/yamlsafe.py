"""Safe YAML loading: data only, never code, with line and column of every node.

Scale files and answer files come from many hands. This module never constructs Python
objects from tags, limits how far aliases may expand (a "billion laughs" file is refused),
limits nesting depth, and reads booleans the YAML 1.2 way (only true/false), so an answer
``yes`` stays the string "yes" instead of becoming True.

How plain scalars become numbers (``numbers``):

- ``yaml``: as YAML 1.1 types them (scale files, whose numbers are checked by the models);
- ``grammar``: as ketascore's value grammar reads them (``ketascore.core.values``), whatever
  YAML's implicit typing would make of them: ``010`` is 10 (not octal 8), ``0x1F``,
  ``1_000``, ``1:30`` and ``.inf`` stay text (the grammar then rejects them), and a mapping
  key stays the text written (``010: 3`` names item "010", not item 8). Answer files and
  mapping files are read so;
- ``json``: the document must be JSON: flow style only, double-quoted strings and keys,
  plain scalars only JSON numbers, ``true``, ``false`` and ``null`` (``NaN`` and
  ``Infinity``, which Python's JSON reader accepts, stay text); anything else is refused.

In every mode an integer too long to convert (more than 4,300 digits) stays text, and a
key repeated in one mapping is refused.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from ketascore.core.values import is_number

Path_ = tuple[str | int, ...]
Numbers = Literal["yaml", "grammar", "json"]

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

    ``kind`` is "syntax" (not valid YAML), "unsafe" (a tag that would build objects),
    "limit" (aliases or nesting that would exhaust memory or the stack) or "duplicate" (a key
    repeated in one mapping)."""

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
_JSON_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}
# not JSON, but Python's JSON reader accepts them: kept as text, for the grammar to reject
_JSON_CONSTANTS = frozenset({"NaN", "Infinity", "-Infinity"})


def number_text(text: str) -> Any:
    """A number written in a file as an int or float; text that is too long to convert
    (an integer of more than 4,300 digits) stays text, for the value grammar to judge."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        return text


def _grammar_scalar(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A plain scalar as the value grammar reads it (see the module text)."""
    if node.tag not in _NUMBER_TAGS:
        return _scalar(loader, node)
    text = node.value
    if is_number(text):
        return number_text(text)
    return text


def _json_scalar(loader: _Loader, node: yaml.ScalarNode) -> Any:
    """A scalar of a JSON document, or YamlError if JSON has no such scalar."""
    if node.style == '"':
        return _scalar(loader, node)
    if node.style:  # single-quoted, literal or folded: YAML, not JSON
        raise YamlError("not JSON: a string in single quotes or a block", *_pos(node))
    text = node.value
    if _JSON_NUMBER.fullmatch(text):
        return number_text(text)
    if text in _JSON_LITERALS:
        return _JSON_LITERALS[text]
    if text in _JSON_CONSTANTS:
        return text
    raise YamlError(f"not JSON: unquoted value {text[:40]!r}", *_pos(node))


def _convert(
    loader: _Loader,
    root: yaml.Node,
    record_positions: bool,
    raw_keys: frozenset[str],
    numbers: Numbers = "yaml",
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
            if numbers == "json":
                return _json_scalar(loader, node)
            if numbers == "grammar" and not node.style:  # plain (the C parser says "")
                return _grammar_scalar(loader, node)
            return _scalar(loader, node)
        if node.tag not in _ALLOWED_TAGS:
            raise YamlError(f"tag {node.tag!r} is not allowed", *_pos(node), kind="unsafe")
        if numbers == "json" and not getattr(node, "flow_style", True):
            raise YamlError("not JSON: YAML block style", *_pos(node))
        if isinstance(node, yaml.SequenceNode):
            return [walk(child, (*path, i)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError("mapping keys must be plain values", *_pos(key_node))
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlError("merge keys (<<) are not supported", *_pos(key_node))
                if numbers == "json" and key_node.style != '"':
                    raise YamlError("not JSON: a key not in double quotes", *_pos(key_node))
                if numbers == "grammar" and not key_node.style and key_node.tag in _NUMBER_TAGS:
                    key = key_node.value  # a key is the text written: 010 is "010", not 8
                else:
                    key = _scalar(loader, key_node)
                key = "" if key is None else str(key)
                if key in out:
                    raise YamlError(f"duplicate key {key!r}", *_pos(key_node), kind="duplicate")
                if (
                    key in raw_keys
                    and isinstance(value_node, yaml.ScalarNode)
                    and (
                        value_node.tag in _NUMBER_TAGS
                        or (
                            numbers == "json"
                            and not value_node.style
                            and _JSON_NUMBER.fullmatch(value_node.value) is not None
                        )
                    )
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
    numbers: Numbers = "yaml",
) -> Located:
    """Parse one YAML (or JSON) document into plain data and node positions.

    Raises YamlError with the 1-based line and column of the problem. Values of ``raw_keys``
    that look like numbers are kept as the text written. ``numbers``: how plain scalars are
    typed (see the module text); ``json_numbers=True`` is ``numbers="json"``.
    """
    if json_numbers:
        numbers = "json"
    check_depth(text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Located(None, {})
        return _convert(loader, root, positions, raw_keys, numbers)
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
