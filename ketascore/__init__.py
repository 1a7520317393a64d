"""ketascore: score clinical rating scales from YAML definitions and report change from baseline.

The Python API (no click or rich needed)::

    from ketascore import load_scale, read_answers, score, compute_change

    madrs = load_scale("madrs")                 # a built-in id or the path of a scale file
    data = read_answers(["visits/"])            # records and reading issues
    results = score(data.records, scale=madrs)  # one ScoreResult per record
    report = compute_change(results, madrs, "total")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "AnswerRecord",
    "ChangeReport",
    "Issue",
    "ReadResult",
    "Scale",
    "ScaleError",
    "ScoreResult",
    "__version__",
    "builtin_scales",
    "compute_change",
    "held_scales",
    "load_scale",
    "read_answers",
    "score",
    "score_record",
]

_EXPORTS = {
    "AnswerRecord": "ketascore.core.records",
    "ChangeReport": "ketascore.analysis.change",
    "compute_change": "ketascore.analysis.change",
    "Issue": "ketascore.core.issues",
    "ReadResult": "ketascore.readers",
    "Scale": "ketascore.core.scale",
    "ScaleError": "ketascore.core.scale",
    "ScoreResult": "ketascore.core.records",
    "score_record": "ketascore.engines.record",
    "builtin_scales": "ketascore.api",
    "held_scales": "ketascore.api",
    "load_scale": "ketascore.api",
    "read_answers": "ketascore.api",
    "score": "ketascore.api",
}

if TYPE_CHECKING:
    from ketascore.analysis.change import ChangeReport, compute_change
    from ketascore.api import builtin_scales, held_scales, load_scale, read_answers, score
    from ketascore.core.issues import Issue
    from ketascore.core.records import AnswerRecord, ScoreResult
    from ketascore.core.scale import Scale, ScaleError
    from ketascore.engines.record import score_record
    from ketascore.readers import ReadResult


def __getattr__(name: str) -> Any:
    # imported on first use, so `ketascore --help` stays fast
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ketascore' has no attribute {name!r}")
