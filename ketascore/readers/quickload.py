"""A fast reading of the simplest answer files, exactly as ``yamlsafe.load`` reads them.

Most answer files of a study folder are tiny, machine-written JSON or YAML: one record,
numbers, short labels. Parsing them with the full YAML machinery costs more than scoring
them. This module reads a strict subset of JSON (quoted keys, no escapes, no exponents) and
of block YAML (two levels of ``key: value``, plain scalars that can only mean one thing) into
the same data and node positions as ``yamlsafe.load(text, raw_keys={"subject", "visit"})``;
anything outside the subset gives None and the caller uses the full loader. The tests check
both readings agree.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from ketascore.core.yamlsafe import Located, Position

RAW_KEYS = frozenset({"subject", "visit"})
MAX_DEPTH = 8
MAX_SCALAR = 100  # characters of a number, key or plain scalar (and digits in JSON)

_JSON_TOKEN = re.compile(
    r"""([ \n]*)(?:
    ("[^"\\\x00-\x1f\x7f]*")
    |(-?(?:0|[1-9][0-9]{0,99})(?:\.[0-9]{1,100})?)(?![0-9A-Za-z_.+-])
    |(true|false|null)(?![0-9A-Za-z_])
    |([{}\[\]:,])
    |$)""",
    re.X,
)
_LITERALS = {"true": True, "false": False, "null": None}


def _tokens(text: str) -> list[tuple[str, str, int, int]] | None:
    """(kind, text, line, column) of each token; None outside the subset.

    The tokens are taken by ``findall`` (one call, tuples of groups: half the time of a
    match object's methods per token) and placed by adding up the lengths: a character the
    subset does not know is skipped by ``findall``, so the lengths then fall short of the
    text's and the text is refused. A line break can only be in the space between tokens."""
    out: list[tuple[str, str, int, int]] = []
    at = 0
    line, line_start = 1, 0
    for space, string, number, literal, punct in _JSON_TOKEN.findall(text):
        if space:
            breaks = space.count("\n")
            if breaks:
                line += breaks
                line_start = at + space.rindex("\n") + 1
            at += len(space)
        if string:
            kind, value = "str", string
        elif number:
            kind, value = "num", number
        elif literal:
            kind, value = "lit", literal
        elif punct:
            kind, value = "punct", punct
            if punct in ":," and text[at + 1 : at + 2] not in (" ", "\n"):
                return None  # YAML wants a space after these
        else:  # the end
            return out if at == len(text) else None
        out.append((kind, value, line, at - line_start + 1))
        at += len(value)
    return None


def load_json(text: str) -> Located | None:
    """Simple JSON as yamlsafe reads it, or None."""
    if not text.isascii() or "\r" in text or "\t" in text:
        return None
    tokens = _tokens(text)
    if not tokens:
        return None
    positions: dict[tuple[str | int, ...], Position] = {}
    at = 0

    def value(path: tuple[str | int, ...], raw: bool = False) -> Any:
        nonlocal at
        if len(path) > MAX_DEPTH:
            raise ValueError
        kind, tok, line, col = tokens[at]
        at += 1
        positions[path] = Position(line, col)
        if kind == "str":
            return tok[1:-1]
        if kind == "num":
            if raw:
                return tok
            return float(tok) if "." in tok else int(tok)
        if kind == "lit":
            return _LITERALS[tok]
        if tok == "{":
            out: dict[str, Any] = {}
            if tokens[at][1] == "}":
                at += 1
                return out
            while True:
                kkind, key, _, _ = tokens[at]
                if kkind != "str" or tokens[at + 1][1] != ":":
                    raise ValueError
                key = key[1:-1]
                if key in out:
                    raise ValueError  # duplicate keys: the full loader reports them
                at += 2
                out[key] = value((*path, key), raw=key in RAW_KEYS)
                sep = tokens[at][1]
                at += 1
                if sep == "}":
                    return out
                if sep != ",":
                    raise ValueError
        if tok == "[":
            items: list[Any] = []
            if tokens[at][1] == "]":
                at += 1
                return items
            while True:
                items.append(value((*path, len(items))))
                sep = tokens[at][1]
                at += 1
                if sep == "]":
                    return items
                if sep != ",":
                    raise ValueError
        raise ValueError

    try:
        data = value(())
    except (ValueError, IndexError):
        return None
    if at != len(tokens) or not isinstance(data, dict | list):
        return None
    return Located(data, positions)


_NULL_OR_BOOL = frozenset(
    {"null", "Null", "NULL", "true", "True", "TRUE", "false", "False", "FALSE"}
)
_LINE = re.compile(r"( *)([A-Za-z0-9_][A-Za-z0-9_-]*):(?: +(\S(?:[^:#\x00-\x1f\x7f]*\S)?))?")
_KEY_TEXT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*|0|[1-9][0-9]*|[1-9][0-9]*[A-Za-z][A-Za-z0-9]*")
_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)\.[0-9]+")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9 _.-]*")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DIGITS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_BAD_VALUE_CHARS = re.compile(r"['\"{}\[\]&*!|>%@`,]|\s-|  ")


def _scalar(text: str, raw: bool) -> tuple[bool, Any]:
    """(understood, value) of a plain YAML scalar (not a longer one: a number of 5,000
    digits is no int Python makes; the full loader reads it)."""
    if len(text) > MAX_SCALAR:
        return False, None
    return _short_scalar(text, raw)


@functools.lru_cache(maxsize=4096)
def _short_scalar(text: str, raw: bool) -> tuple[bool, Any]:
    """``_scalar`` of a text of at most MAX_SCALAR characters. Cached (a folder's files hold
    the same few answers over and over; the values are immutable): 50 -> 35 us a file."""
    if _BAD_VALUE_CHARS.search(text):
        return False, None
    if raw and (_DIGITS.fullmatch(text) or _INT.fullmatch(text) or _FLOAT.fullmatch(text)):
        return True, text  # identifiers keep their text: subject 007 stays "007"
    if _INT.fullmatch(text):
        return True, int(text)
    if _FLOAT.fullmatch(text):
        return True, float(text)
    if text in _NULL_OR_BOOL:
        return False, None
    if _WORD.fullmatch(text):
        return True, text
    if _DATE.fullmatch(text):
        return True, text  # a date reads back as the same text, valid or not
    return False, None


def _key(text: str) -> str | None:
    """A key as the full loader reads it (``01`` is ``1``), or None outside the subset."""
    return None if len(text) > MAX_SCALAR else _short_key(text)


@functools.lru_cache(maxsize=1024)
def _short_key(text: str) -> str | None:
    if not _KEY_TEXT.fullmatch(text) or text in _NULL_OR_BOOL:
        return None
    if text[0].isdigit() and text.isdigit():
        return str(int(text))
    return text


def load_yaml(text: str) -> Located | None:
    """Simple block YAML (a mapping of scalars and mappings of scalars) as yamlsafe reads
    it, or None."""
    if not text.isascii() or "\r" in text or "\t" in text or not text.endswith("\n"):
        return None
    lines = text.split("\n")[:-1]
    if not lines:
        return None
    data: dict[str, Any] = {}
    positions: dict[tuple[str | int, ...], Position] = {(): Position(1, 1)}
    nested: dict[str, Any] | None = None
    nested_key = ""
    indent = 0
    for number, line in enumerate(lines, start=1):
        m = _LINE.fullmatch(line)
        if m is None:
            return None
        lead, raw_value = len(m.group(1)), m.group(3)
        key = _key(m.group(2))
        if key is None:
            return None
        if lead == 0:
            if nested is not None and not nested:
                return None
            nested = None
            if key in data:
                return None
            if raw_value is None:  # a nested mapping follows
                nested, nested_key, indent = {}, key, -1
                data[key] = nested
                continue
            ok, value = _scalar(raw_value, key in RAW_KEYS)
            if not ok:
                return None
            data[key] = value
            positions[(key,)] = Position(number, m.start(3) + 1)
            continue
        if nested is None or raw_value is None:
            return None
        if indent == -1:
            indent = lead
            positions[(nested_key,)] = Position(number, lead + 1)
        elif lead != indent:
            return None
        if key in nested:
            return None
        ok, value = _scalar(raw_value, key in RAW_KEYS)
        if not ok:
            return None
        nested[key] = value
        positions[(nested_key, key)] = Position(number, m.start(3) + 1)
    if nested is not None and not nested:
        return None
    return Located(data, positions)
