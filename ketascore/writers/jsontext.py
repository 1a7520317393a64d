"""JSON indented by two spaces: the bytes of ``json.dumps(value, ensure_ascii=False,
allow_nan=False, indent=2)``, written by orjson where it writes the same; and JSON on one
line (JSON Lines), as ``json.dumps(value, ensure_ascii=False, allow_nan=False)`` writes it.

The standard library encodes indented JSON in Python (its C encoder takes no indent): a
1M-row ``ketascore score --format json`` spent about 45 s there, where JSON Lines (the C
encoder) took 18 s in all. orjson writes the same text 25 times faster, except for two
things, which are left to the standard library: a float below 1e-4 (orjson writes
``0.00001`` and ``1e-9`` where Python writes ``1e-05`` and ``1e-09``; found in its text,
with a test that no other float differs) and what orjson refuses (an integer beyond 64
bits, a key that is no text, a string that is no Unicode text)."""

from __future__ import annotations

import json
import re
from typing import Any

# where orjson's text may differ from the standard library's: a small float's digits
_SMALL_FLOAT = re.compile(rb"\de-|0\.0000")


def indented(value: Any) -> str:
    """``value`` as ``json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)``
    writes it. (A NaN or an infinity, which that refuses, is written as null by orjson:
    results and documents hold none.)"""
    try:
        import orjson
    except ImportError:  # (an optional speed: the standard library writes the same)
        return _stdlib(value)
    try:
        text = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:
        return _stdlib(value)
    # (the regular expression alone took 10 us for a result's 600 bytes: most texts hold
    # neither of its literal parts, which the bytes' own search rules out in 1 us)
    if (b"e-" in text or b"0.0000" in text) and _SMALL_FLOAT.search(text):
        return _stdlib(value)
    return text.decode("utf-8")


def _stdlib(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)


# (json.dumps with options builds an encoder at every call: a third of a result's line)
_LINE = json.JSONEncoder(ensure_ascii=False, allow_nan=False)


def one_line(value: Any) -> str:
    """``value`` on one line, as ``json.dumps(value, ensure_ascii=False, allow_nan=False)``
    writes it (the standard library's C encoder)."""
    return _LINE.encode(value)
