"""Provenance: which rules and which data produced an output.

Every output records the ketascore version, each scale's id, version and the sha256 of its
definition file, and the name and sha256 of each input file, so that a score can be traced
to the exact rules and data that produced it. No timestamps: the same input gives the same
provenance, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ketascore import __version__
from ketascore.core.scale import Scale


def build_provenance(
    scales: Iterable[Scale], hashes: dict[str, str], command: str
) -> dict[str, Any]:
    unique = {s.id: s for s in scales}
    return {
        "ketascore_version": __version__,
        "command": command,
        "scales": [
            {
                "id": s.id,
                "version": s.version,
                "sha256": s.sha256,
                "source": s.source,
            }
            for s in sorted(unique.values(), key=lambda s: s.id)
        ],
        "inputs": [{"file": name, "sha256": hashes[name]} for name in sorted(hashes)],
    }


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks (raises OSError when it cannot be read)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
