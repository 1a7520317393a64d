"""Scoring many files: worker processes, a deterministic merge, progress callbacks.

Each file is read and its records scored on their own in a worker; the main process then
merges the results in input order and applies what ``engine.score_records`` does across
records (identical records for the same subject, visit and scale merged with a warning,
differing ones replaced by one unscored result with an error). The output is the same,
byte for byte, whatever the number of workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ketascore.core.issues import Issue
from ketascore.core.library import ScaleSet
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import Scale
from ketascore.engines import ENDINGS, INTERRUPTS
from ketascore.engines.record import (
    answers_key,
    check_across_visits,
    conflict_result,
    duplicate_issue,
    record_location,
)
from ketascore.readers import DEFAULT_MAX_FILE_SIZE, walk_files

Progress = Callable[[int, int], None]  # (files done, records done)
Rows = Callable[[int, int], None]  # (records of one file scored, records of the file)
ROWS_EVERY = 2000


@dataclass
class Entry:
    """One record's result and what the merge needs to know about the record."""

    key: tuple[str, str, str] | None  # subject, visit, casefolded scale; None: no scale
    scale: str | None  # the record's scale as written
    items: dict[str, Any]  # the record's answers as read (compared when keys repeat)
    known: bool  # the scale resolved
    result: ScoreResult


@dataclass
class FileScore:
    name: str
    issues: list[Issue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # other ReadResult fields (hashes)
    entries: list[Entry] = field(default_factory=list)

    def __getstate__(self) -> tuple[Any, ...]:
        # plain data between processes: pydantic objects are slow to unpickle
        entries = [(e.key, e.scale, e.items, e.known, _pack(e.result)) for e in self.entries]
        return (self.name, self.issues, self.files, self.extra, entries)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.name, self.issues, self.files, self.extra, entries = state
        self.entries = [Entry(k, s, it, kn, _unpack(r)) for k, s, it, kn, r in entries]


_RESULT_FIELDS = tuple(f.name for f in dataclasses.fields(ScoreResult))


def _pack(result: ScoreResult) -> tuple[Any, ...]:
    values = []
    for name in _RESULT_FIELDS:
        value = getattr(result, name)
        if name == "source":
            value = (value.file, value.line, value.index)
        values.append(value)
    return tuple(values)


def _unpack(values: tuple[Any, ...]) -> ScoreResult:
    kwargs = dict(zip(_RESULT_FIELDS, values, strict=True))
    kwargs["source"] = Source(*kwargs["source"])
    return ScoreResult(**kwargs)


@dataclass
class BatchResult:
    results: list[ScoreResult]
    issues: list[Issue]  # reading issues, in input order
    files: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Settings:
    fmt: str | None = None
    scale_ids: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE
    chosen: Scale | None = None
    extra_missing: tuple[Any, ...] = ()
    read_options: Any = None


def _select(record: AnswerRecord, chosen: Scale | None) -> AnswerRecord | None:
    """As ``api.select_records``, one record at a time."""
    from ketascore.core.library import left_out

    if chosen is None:
        return record
    if record.scale is None:
        return record.model_copy(update={"scale": chosen.id})
    return None if left_out(record.scale, chosen) else record


def score_read(
    name: str, read: Any, settings: Settings, *, via_api: bool = True, rows: Rows | None = None
) -> FileScore:
    """Score the records of one file's ReadResult, each on its own; ``rows(done, total)``
    is told of the records scored every ``ROWS_EVERY`` records."""
    from ketascore import api
    from ketascore.engines.record import score_records

    known = ScaleSet([settings.chosen] if settings.chosen else [])
    api.drop_unscorable_tables(read, known, [settings.chosen] if settings.chosen else [])
    out = FileScore(name, list(read.issues), list(read.files))
    for attr in ("hashes",):
        if hasattr(read, attr):
            out.extra[attr] = getattr(read, attr)
    total = len(read.records)
    for done, record in enumerate(read.records):
        if rows is not None and done % ROWS_EVERY == 0:
            rows(done, total)
        rec = _select(record, settings.chosen)
        if rec is None:
            continue
        key = None if rec.scale is None else (rec.subject, rec.visit, rec.scale.casefold())
        is_known = rec.scale is not None and known.get(rec.scale) is not None
        if via_api:
            result = api.score([rec], scale=settings.chosen, extra_missing=settings.extra_missing)
        else:  # the same, without selecting again
            result = score_records([rec], known.get, extra_missing=settings.extra_missing)
        out.entries.append(Entry(key, rec.scale, rec.items, is_known, result[0]))
    if rows is not None:
        rows(total, total)
    return out


def score_path(path: str, settings: Settings, rows: Rows | None = None) -> FileScore:
    """Read one file (``-``: standard input) and score its records."""
    from ketascore import api

    kwargs: dict[str, Any] = {}
    if settings.read_options is not None:
        kwargs["options"] = settings.read_options
    read = api.read_answers(
        [path],
        input_format=settings.fmt,
        scales=[settings.chosen] if settings.chosen is not None else [],
        max_file_size=settings.max_file_size,
        **kwargs,
    )
    return score_read(path, read, settings, rows=rows)


QUICK_EXTENSIONS = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
QUICK_MAX_BYTES = 64 << 10


def read_quick(path: str, settings: Settings) -> Any:
    """``readers.read_file`` for one small JSON or YAML file, reading the simplest files
    with ``ketascore.readers.quickload`` (same records, same issues); every other file goes to
    ``read_file`` itself."""
    import hashlib

    from ketascore import readers
    from ketascore.readers import quickload
    from ketascore.readers.documents import records_from_document

    def slow() -> Any:
        kwargs: dict[str, Any] = {}
        if settings.read_options is not None:
            kwargs["options"] = settings.read_options
        return readers.read_file(
            path, settings.fmt, settings.scale_ids, settings.max_file_size, **kwargs
        )

    kind = QUICK_EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if kind is None or settings.fmt is not None:
        return slow()
    try:  # (os.open and one read: open() and its buffered read took 16 us a file, this 7)
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > min(
            settings.max_file_size, QUICK_MAX_BYTES
        ):
            return slow()
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.read(fd, info.st_size + 1)
        finally:
            os.close(fd)
    except OSError:
        return slow()
    if len(data) > info.st_size:  # (it grew since: read_file reads it whole)
        return slow()
    if not data.isascii() or b"\x00" in data:
        return slow()
    try:
        text = data.decode("ascii")
        claimed = readers.claimed_by_format(
            path, data, text, settings.scale_ids, settings.read_options
        )
        if claimed or readers.detect_format(path, text) != kind:
            return slow()
    except UnicodeDecodeError:  # pragma: no cover - checked as ASCII above
        return slow()

    def quick() -> Any:
        located = quickload.load_json(text) if kind == "json" else quickload.load_yaml(text)
        if located is None:
            return slow()
        out = readers.ReadResult(files=[path])
        if hasattr(out, "hashes"):
            out.hashes[path] = hashlib.sha256(data).hexdigest()
        out.records = records_from_document(located.data, located, path, out.issues)
        return out

    # (a failure of our own is reported as read_file reports one: the batch goes on)
    return readers.guarded(readers.display_name(path), quick)


def score_small(path: str, settings: Settings) -> FileScore:
    """Read one file of a folder (``read_quick``) and score its records."""
    return score_read(path, read_quick(path, settings), settings, via_api=False)


_WORKER_SETTINGS: Settings | None = None
_WORKER_STOP: Any = None  # an Event the main process sets on Ctrl-C


def _score_chunk(paths: list[str]) -> list[FileScore]:
    settings = _WORKER_SETTINGS
    assert settings is not None
    out = []
    for p in paths:
        if _WORKER_STOP is not None and _WORKER_STOP.is_set():
            break  # interrupted: nobody waits for the rest
        out.append(score_small(p, settings))
    return out


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP delivered only after the block (where the system can hold
    them)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, INTERRUPTS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


def _worker_init(settings: Settings, stop: Any = None) -> None:
    import gc

    global _WORKER_SETTINGS, _WORKER_STOP
    _WORKER_SETTINGS = settings  # given once, not with every chunk of files
    _WORKER_STOP = stop
    gc.disable()  # a worker keeps nothing between chunks: reference counting frees it all
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process handles Ctrl-C
    for sig in ENDINGS:  # the default, not the command's handler, forked (one ignored stays so)
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)
    if hasattr(signal, "pthread_sigmask"):  # (forked while they were held: _interrupts_held)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, INTERRUPTS)


def merge(files: Iterable[FileScore], chosen: Scale | None = None) -> BatchResult:
    """Results in input order, records of the same subject, visit and scale grouped as
    ``engine.score_records`` groups them."""
    known = ScaleSet([chosen] if chosen else [])
    issues: list[Issue] = []
    names: list[str] = []
    extra: dict[str, Any] = {}
    groups: dict[tuple[str, str, str], list[Entry]] = {}
    order: list[Entry | tuple[str, str, str]] = []
    for fs in files:
        issues.extend(fs.issues)
        names.extend(fs.files)
        for k, v in fs.extra.items():
            if isinstance(v, dict):
                extra.setdefault(k, {}).update(v)
        for entry in fs.entries:
            if entry.key is None:
                order.append(entry)
                continue
            if entry.key not in groups:
                groups[entry.key] = []
                order.append(entry.key)
            groups[entry.key].append(entry)
    results: list[ScoreResult] = []
    for item in order:
        if isinstance(item, Entry):
            results.append(item.result)
            continue
        group = groups[item]
        first = group[0]
        if len(group) == 1 or not first.known:
            results.append(first.result)
            continue
        assert first.scale is not None
        scale = known.get(first.scale)
        assert scale is not None
        sources = [e.result for e in group]
        places = [_where(r) for r in sources]
        if len({answers_key(_Items(e.items)) for e in group}) > 1:  # type: ignore[arg-type]
            results.append(conflict_result(_record_of(first.result), scale, places))
            continue
        result = first.result
        result.issues.append(duplicate_issue(_record_of(result), scale, places))
        results.append(result)
    check_across_visits(results, known.get)  # flags and checks over a subject's records
    return BatchResult(results, issues, names, extra)


@dataclass
class _Items:
    items: dict[str, Any]


def _record_of(result: ScoreResult) -> AnswerRecord:
    """The parts of the record a result was scored from that its issues cite."""
    return AnswerRecord(
        subject=result.subject,
        visit=result.visit,
        date=result.date,
        day=result.day,
        source=result.source,
        extra=dict(result.extra),
    )


def _where(result: ScoreResult) -> str:
    return record_location(_record_of(result))


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def collect_files(
    paths: Iterable[str | Path], include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> list[str | Issue]:
    return list(walk_files(paths, include, exclude))


def score_files(
    items: Iterable[str | Issue],
    settings: Settings,
    *,
    jobs: int = 1,
    progress: Progress | None = None,
    walked: Callable[[int], None] | None = None,
    chunk: int = 64,
    rows: Rows | None = None,
) -> BatchResult:
    """Read and score files (``-`` is standard input) with ``jobs`` worker processes.

    ``items`` may be a walk still under way: files go to the workers as they are found.
    ``walked(n)`` is called when the walk has found all ``n`` files; ``rows(done, total)``
    as the records of a single file are scored (a run of one big file)."""
    import gc

    # Results pile up by the thousand and none of them holds a cycle: the cyclic garbage
    # collector would only walk them over and over.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _score_files(items, settings, jobs, progress, walked, chunk, rows)
    finally:
        if enabled:
            gc.enable()


def _score_files(
    items: Iterable[str | Issue],
    settings: Settings,
    jobs: int,
    progress: Progress | None,
    walked: Callable[[int], None] | None,
    chunk: int,
    rows: Rows | None = None,
) -> BatchResult:
    seq: list[str | Issue] = []
    done_files = done_records = 0

    def tick(fs: FileScore) -> None:
        nonlocal done_files, done_records
        done_files += 1
        done_records += len(fs.entries)
        if progress is not None:
            progress(done_files, done_records)

    def in_order(scored: Iterator[FileScore]) -> Iterator[FileScore]:
        for item in seq:
            if isinstance(item, Issue):
                yield FileScore("", issues=[item])
                continue
            fs = next(scored)
            tick(fs)
            yield fs

    source = iter(items)
    paths: list[str] = []
    for item in source:  # the first files decide: a few are read here, more by workers
        seq.append(item)
        if isinstance(item, str):
            paths.append(item)
            if len(paths) > chunk:
                break
    if jobs <= 1 or len(paths) <= chunk or "-" in paths:
        for item in source:
            seq.append(item)
            if isinstance(item, str):
                paths.append(item)
        if walked is not None:
            walked(len(paths))
        if len(paths) == 1 or "-" in paths:  # (a large file's rows are counted as it goes)
            one = rows if len(paths) == 1 else None
            scored = (score_path(p, settings, one) for p in paths)
        else:  # (as a worker reads and scores them: 20,000 small files 1.6x as fast)
            scored = (score_small(p, settings) for p in paths)
        return merge(in_order(scored), settings.chosen)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    stop = context.Event()
    pool = ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_worker_init, initargs=(settings, stop)
    )
    try:
        # (the first submit forks every worker: a signal whose handler raises while
        # Python runs its fork handlers is "ignored", and the command would go on, so
        # Ctrl-C and SIGTERM wait until the workers are there; each unblocks them)
        with _interrupts_held():
            futures = [pool.submit(_score_chunk, paths[:])]
        pending: list[str] = []
        for item in source:
            seq.append(item)
            if isinstance(item, str):
                paths.append(item)
                pending.append(item)
                if len(pending) == chunk:
                    futures.append(pool.submit(_score_chunk, pending))
                    pending = []
        if pending:
            futures.append(pool.submit(_score_chunk, pending))
        if walked is not None:
            walked(len(paths))

        def pooled() -> Iterator[FileScore]:
            for future in futures:
                yield from future.result()

        result = merge(in_order(pooled()), settings.chosen)
    except BaseException:
        # Ctrl-C: queued chunks are dropped and running ones stop after their current
        # file. Workers are not killed: one killed while it sends a result would leave
        # the pool waiting for the rest of the message forever.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return result
