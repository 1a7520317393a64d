"""The documented Python API: load scales, read answers, score them."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ketascore.core.library import ScaleSet, builtin_ids, resolve_scale
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.core.scale import Scale
from ketascore.engines.record import score_records
from ketascore.readers import DEFAULT_MAX_FILE_SIZE, ReadOptions, ReadResult, read_paths


def builtin_scales() -> list[str]:
    """Ids of the scales that ship with ketascore."""
    return builtin_ids()


def load_scale(id_or_path: str | Path) -> Scale:
    """A built-in scale by id (``"madrs"``) or a scale YAML file by path.

    Raises ``ScaleError`` (with every problem of the file) or ``UnknownScaleError``.
    """
    return resolve_scale(str(id_or_path))


def read_answers(
    paths: str | Path | Iterable[str | Path],
    *,
    input_format: str | None = None,
    scales: Iterable[Scale] = (),
    include: Iterable[str] = (),
    exclude: Iterable[str] = (),
    max_file_size: int = DEFAULT_MAX_FILE_SIZE,
    options: ReadOptions | None = None,
) -> ReadResult:
    """Read answer records from files and folders. Problems are returned as issues.

    ``options`` carries what the clinical-format readers need (a column mapping, a sheet, a
    REDCap dictionary, FHIR Questionnaires, an SDTM category); build it with
    ``ketascore.readers.formats.load_read_options``.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    scales = list(scales)
    ids = ScaleSet(scales).ids()
    options = options or ReadOptions()
    options = dataclasses.replace(options, scales=(*options.scales, *scales))
    return read_paths(
        paths,
        input_format,
        ids,
        include=include,
        exclude=exclude,
        max_file_size=max_file_size,
        options=options,
    )


def select_records(
    records: Iterable[AnswerRecord], scale: Scale | None
) -> tuple[list[AnswerRecord], int]:
    """With a scale chosen, records without a scale field take it and records of other
    scales are left out. Returns the records to score and how many were left out."""
    if scale is None:
        return list(records), 0
    chosen: list[AnswerRecord] = []
    skipped = 0
    for record in records:
        if record.scale is None:
            chosen.append(record.model_copy(update={"scale": scale.id}))
        elif record.scale.casefold() == scale.id:
            chosen.append(record)
        else:
            skipped += 1
    return chosen, skipped


def score(
    records: Iterable[AnswerRecord],
    *,
    scale: Scale | None = None,
    scales: Iterable[Scale] = (),
    extra_missing: Iterable[Any] = (),
) -> list[ScoreResult]:
    """Score records. With ``scale``, only that scale's records are scored (records that name
    no scale are taken as that scale); otherwise each record's own ``scale`` field decides."""
    chosen, _ = select_records(records, scale)
    known = ScaleSet([*scales, *([scale] if scale else [])])
    return score_records(chosen, known.get, extra_missing=extra_missing)
