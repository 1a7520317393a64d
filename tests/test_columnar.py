"""The columnar engine gives exactly the record engine's results (a differential test over
every built-in scale), and the columnar CSV path gives byte-identical output."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("numpy")  # the columnar engine's one dependency

from ketascore.core.library import builtin_ids, load_builtin
from ketascore.core.records import AnswerRecord, ScoreResult, Source
from ketascore.core.scale import Scale
from ketascore.engines.columnar import RawColumn, Rows, score_table
from ketascore.engines.record import score_record

from conftest import budget

SETTINGS = settings(
    max_examples=budget(40), suppress_health_check=[HealthCheck.too_slow], deadline=None
)
JUNK = ["", " ", "NA", "n/a", ".", "junk", "-1", "2.5", "1e9", "nan", "inf", " 2 ", "02", "+1"]


def clean_values(scale: Scale, item_id: str) -> st.SearchStrategy[Any]:
    """Answers the columns score themselves: values, blanks, missing codes, labels."""
    rule = scale.items[item_id]
    allowed = rule.allowed_values()
    choices = [st.sampled_from(allowed)] * 6 + [
        st.sampled_from([str(v) for v in allowed]),
        st.none(),
        st.just(""),
    ]
    if rule.answer_labels:
        choices.append(st.sampled_from(list(rule.answer_labels)))
    if rule.missing_values:
        choices.append(st.sampled_from(sorted(rule.missing_values)))
    return st.one_of(*choices)


def raw_values(scale: Scale, item_id: str) -> st.SearchStrategy[Any]:
    rule = scale.items[item_id]
    allowed = rule.allowed_values()
    choices: list[st.SearchStrategy[Any]] = [
        st.sampled_from(allowed),
        st.sampled_from([str(v) for v in allowed]),
        st.sampled_from([float(v) for v in allowed]),
        st.none(),
        st.sampled_from(JUNK),
        st.integers(-3, 12),
        st.floats(-2, 12),
        st.sampled_from([float("nan"), float("inf")]),
        st.booleans(),
    ]
    if rule.answer_labels:
        labels = list(rule.answer_labels)
        choices.append(st.sampled_from(labels + [x.upper() + "  " for x in labels]))
    if rule.codes:
        choices.append(st.sampled_from(sorted(rule.codes)))
    if rule.missing_values:
        choices.append(st.sampled_from(sorted(rule.missing_values)))
        choices.append(st.sampled_from([str(v) for v in sorted(rule.missing_values)]))
    if rule.missing_labels:
        choices.append(st.sampled_from(sorted(rule.missing_labels)))
    # mostly valid answers, so that scores are computed often
    return st.one_of(st.sampled_from(allowed), st.sampled_from(allowed), st.one_of(*choices))


@st.composite
def tables(draw: st.DrawFn) -> tuple[Scale, list[str], list[dict[str, Any]], tuple[Any, ...]]:
    scale = load_builtin(draw(st.sampled_from(builtin_ids())))
    ids = list(scale.items)
    present = [i for i in ids if draw(st.integers(0, 9)) > 0]
    keys = [draw(st.sampled_from([i, i.upper()])) for i in present]
    if draw(st.integers(0, 30)) == 0:
        keys.append("no-such-item")
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        row = {}
        messy = draw(st.integers(0, 3)) == 0
        for item_id, key in zip(present, keys, strict=False):
            values = raw_values if messy else clean_values
            row[key] = draw(values(scale, item_id))
        if "no-such-item" in keys:
            row["no-such-item"] = draw(st.sampled_from(["", "1"]))
        rows.append(row)
    extra = draw(st.sampled_from([(), (9,), ("refused",), (7, "9")]))
    return scale, keys, rows, extra


def records_of(scale: Scale, rows: list[dict[str, Any]]) -> list[AnswerRecord]:
    return [
        AnswerRecord(
            subject=f"S{i}",
            visit="v1",
            scale=scale.id,
            items=row,
            source=Source(file="t.csv", line=i + 2),
        )
        for i, row in enumerate(rows)
    ]


def as_dict(result: ScoreResult) -> dict[str, Any]:
    out = dataclasses.asdict(result)
    out["issues"] = [i.as_dict() for i in result.issues]
    out["source"] = result.source.model_dump()
    return out


def same(a: Any, b: Any) -> bool:
    """Equal, and equal in type (16 is not 16.0), recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


STATS = {"rows": 0, "columnar": 0}


@SETTINGS
@given(table=tables())
def test_columnar_equals_record_engine(
    table: tuple[Scale, list[str], list[dict[str, Any]], tuple[Any, ...]],
) -> None:
    scale, keys, rows, extra = table
    records = records_of(scale, rows)
    columns = {key: RawColumn.from_values(row[key] for row in rows) for key in keys}
    meta = Rows(
        [r.subject for r in records],
        [r.visit for r in records],
        sources=[r.source for r in records],
    )
    scored = score_table(scale, meta, columns, record_at=records.__getitem__, extra_missing=extra)
    STATS["rows"] += len(records)
    STATS["columnar"] += len(records) - len(scored.overrides)
    for i, record in enumerate(records):
        expected = as_dict(score_record(scale, record, extra_missing=extra))
        got = as_dict(scored.result_at(i))
        assert same(got, expected), (i, rows[i], got, expected)


def test_the_differential_test_reaches_the_columns() -> None:
    # most rows of the differential test must be scored by the columns, not the fallback
    if STATS["rows"]:
        assert STATS["columnar"] > STATS["rows"] / 4, STATS


def test_every_builtin_scale_columnar_on_its_examples() -> None:
    for scale_id in builtin_ids():
        scale = load_builtin(scale_id)
        examples = scale.definition.examples
        if not examples:
            continue
        keys = sorted({str(k) for ex in examples for k in ex.answers})
        rows = [
            {k: {str(a): b for a, b in ex.answers.items()}.get(k) for k in keys} for ex in examples
        ]
        records = records_of(scale, rows)
        columns = {k: RawColumn.from_values(r[k] for r in rows) for k in keys}
        meta = Rows(
            [r.subject for r in records],
            [r.visit for r in records],
            sources=[r.source for r in records],
        )
        scored = score_table(scale, meta, columns, record_at=records.__getitem__)
        for i, record in enumerate(records):
            assert same(as_dict(scored.result_at(i)), as_dict(score_record(scale, record)))


# --------------------------------------------------------------------------------------
# The command line: the columnar CSV path writes what the record path writes


def nasty_csv(seed: int, delimiter: str = ";", crlf: bool = True) -> str:
    """A wide PHQ-9 file with blank, ragged and unusable rows, labels, duplicates, dates."""
    import random

    rng = random.Random(seed)
    header = ["subject", "visit", "date", "day", "arm", *(f"phq9_{i}" for i in range(1, 11))]
    lines = ["\ufeff" + delimiter.join(header)]
    values = ["0", "1", "2", "3", "", "  2", "Several days", "9", "x", "1.5", "NA", "3 ", "-1"]
    for i in range(300):
        r = rng.random()
        if r < 0.02:
            lines.append("")
            continue
        if r < 0.04:
            lines.append(delimiter * 3)
            continue
        if r < 0.05:
            lines.append(delimiter.join(["S1", "v1", "1", "2"]))
            continue
        subject = rng.choice([f"S{i}", f"S{i}", " S7 ", "", "S5", "S,9", "-S3", "S\u00e9"])
        visit = rng.choice(["base", "w1", " w2", "week 4"])
        date = rng.choice(["", "2024-01-02", "2024-13-40", " 2024-02-03"])
        day = rng.choice(["", "3", "x", "2.5"])
        arm = rng.choice(["", "A", "B ", " \u00e9", "=1+1"])
        items = [
            rng.choice(values) if rng.random() < 0.25 else rng.choice("0123") for _ in range(10)
        ]
        lines.append(delimiter.join([subject, visit, date, day, arm, *items]))
    return ("\r\n" if crlf else "\n").join(lines) + "\n"


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
@pytest.mark.parametrize("seed,delimiter,crlf", [(1, ";", True), (2, ",", False), (3, "\t", False)])
def test_cli_columnar_output_is_byte_identical(
    tmp_path: Path,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    seed: int,
    delimiter: str,
    crlf: bool,
) -> None:
    import ketascore.cli.score as score_cli
    from ketascore.cli import cli
    from ketascore.engines import columnar

    text = nasty_csv(seed, delimiter, crlf)
    if delimiter == ",":
        text = text.replace("S,9", "S9")
    path = tmp_path / "visits.csv"
    path.write_bytes(text.encode("utf-8"))
    used: list[bool] = []
    real = columnar.read_wide_csv_file

    def spy(*a: Any, **k: Any) -> Any:
        table = real(*a, **k)
        used.append(table is not None)
        return table

    monkeypatch.setattr(columnar, "read_wide_csv_file", spy)
    outputs = []
    for threshold in (10**12, 0):
        monkeypatch.setattr(score_cli, "COLUMNAR_MIN_BYTES", threshold)
        result = runner.invoke(cli, ["score", str(path), "--format", fmt])
        outputs.append((result.exit_code, result.stdout, result.stderr))
    assert used == [True]
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == 1


@pytest.mark.parametrize(
    "chunk_bytes,in_memory",
    # one chunk; many; streamed from disk; from bytes in memory
    [(1 << 20, 1 << 30), (700, 1 << 30), (500, 0), (600, -1)],
)
def test_columnar_reading_issues_equal_the_readers(
    tmp_path: Path, chunk_bytes: int, in_memory: int
) -> None:
    from ketascore.api import read_answers, score
    from ketascore.core.library import ScaleSet
    from ketascore.engines import columnar

    text = nasty_csv(5)
    path = tmp_path / "v.csv"
    path.write_bytes(text.encode("utf-8"))
    known = ScaleSet([])
    if in_memory < 0:
        table = columnar.read_wide_csv(
            path.read_bytes(), str(path), known.get, known.ids(), chunk_bytes=chunk_bytes
        )
    else:
        table = columnar.read_wide_csv_file(
            str(path), known.get, known.ids(), chunk_bytes=chunk_bytes, in_memory=in_memory
        )
    assert table is not None
    data = read_answers([path])
    assert table.issues == data.issues
    expected = score(data.records)
    got = list(table.results())
    assert [as_dict(r) for r in got] == [as_dict(r) for r in expected]


@pytest.mark.parametrize(
    "text",
    [
        'subject,visit,phq9_1\n"S1",v,1\n',  # quotes: the csv module decides
        "subject,visit,phq9_1,madrs_1\nS1,v,1,2\n",  # two scales
        "subject,visit,phq9_1\rS1,v,1\r",  # old Mac line breaks
        "subject,subject,phq9_1\nS1,v,1\n",  # a bad header
    ],
)
def test_columnar_declines_what_the_record_path_decides(text: str) -> None:
    from ketascore.core.library import ScaleSet
    from ketascore.engines import columnar

    known = ScaleSet([])
    data = text.encode("utf-8")
    assert columnar.read_wide_csv(data, "x.csv", known.get, known.ids()) is None


def trial_csv(seed: int) -> str:
    """Subjects x visits of PHQ-9 with gaps: no baseline, a zero baseline, bad values."""
    import random

    rng = random.Random(seed)
    lines = ["subject,visit,arm," + ",".join(f"phq9_{i}" for i in range(1, 10))]
    for s in rng.sample(range(1, 400), 120):
        visits = ["baseline", "week1", "Week2", "week4"]
        rng.shuffle(visits)
        for visit in visits[: rng.randint(1, 4)]:
            zeros = rng.random() < 0.05
            items = ["0"] * 9 if zeros else [rng.choice("0123") for _ in range(9)]
            for _ in range(rng.choice([0, 0, 0, 1, 2])):
                items[rng.randrange(9)] = rng.choice(["", "", "7", "x"])
            lines.append(f"S{s},{visit},{rng.choice('AB')}," + ",".join(items))
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--summary"],
        ["--baseline", "week1"],
        ["--response-percent", "30", "--remission-at-most", "7"],
        ["--baseline", "Week2", "--summary", "--no-escape-formulas"],
    ],
)
def test_cli_change_columnar_is_byte_identical(
    tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    import ketascore.cli.score as score_cli
    from ketascore.cli import cli
    from ketascore.engines import columnar

    path = tmp_path / "trial.csv"
    path.write_text(trial_csv(len(args)))
    used: list[bool] = []
    real = columnar.change_csv_columnar

    def spy(*a: Any, **k: Any) -> Any:
        made = real(*a, **k)
        used.append(made is not None)
        return made

    monkeypatch.setattr(columnar, "change_csv_columnar", spy)
    outputs = []
    for threshold in (10**12, 0):
        monkeypatch.setattr(score_cli, "COLUMNAR_MIN_BYTES", threshold)
        target = tmp_path / f"out{threshold}.csv"
        result = runner.invoke(
            cli,
            ["change", str(path), "--scale", "phq9", "--format", "csv", "-o", str(target), *args],
        )
        side = target.with_name(target.name + ".provenance.json").read_text()
        outputs.append((result.exit_code, target.read_bytes(), side.count("sha256")))
    assert used == [True]
    assert outputs[0] == outputs[1]
    assert outputs[0][1].count(b"\n") > 4


@SETTINGS
@given(
    ids=st.lists(
        st.text(alphabet="Ss0129-_a", min_size=1, max_size=6), min_size=1, max_size=30, unique=True
    )
)
def test_natural_order_shortcut_agrees_with_natural_key(ids: list[str]) -> None:
    from ketascore.analysis.change import natural_key
    from ketascore.engines.columnar import _natural_is_sorted

    by_bytes = sorted(ids, key=lambda t: t.encode())
    if _natural_is_sorted(by_bytes):
        assert sorted(by_bytes, key=natural_key) == by_bytes


def test_duplicates_in_a_file_grouped_by_subject(tmp_path: Path) -> None:
    """Rows sorted by subject take the short way to duplicates: same results."""

    lines = ["subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10))]
    for s in range(1, 60):
        visits = ["baseline", "week1", "week2"]
        if s % 7 == 0:
            visits.insert(2, "baseline")  # the same visit again, same answers
        if s % 11 == 0:
            visits.append("week1")  # again, other answers
        for v in visits:
            answers = [str((s + i + (v == "week1" and len(visits) > 3)) % 4) for i in range(9)]
            if s % 11 == 0 and v == "week1" and lines[-1].startswith(f"S{s:04d},week2"):
                answers[0] = "3" if answers[0] != "3" else "2"
            lines.append(f"S{s:04d},{v}," + ",".join(answers))
    got = chunked_results_equal_the_record_engine(tmp_path / "grouped.csv", lines, 900)
    codes = {i.code for r in got for i in r.issues}
    assert {"duplicate-record", "conflicting-records"} <= codes


def test_a_carried_column_named_like_a_score_column_is_left_out_in_both_paths(
    tmp_path: Path, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ketascore.cli.score as score_cli
    from ketascore.cli import cli

    path = tmp_path / "v.csv"
    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    rows = "".join(f"S{i},v1,x{i},A," + ",".join(["1"] * 9) + "\n" for i in range(50))
    path.write_text(f"subject,visit,total,site,{items}\n{rows}")
    outputs = []
    for threshold in (10**12, 0):
        monkeypatch.setattr(score_cli, "COLUMNAR_MIN_BYTES", threshold)
        outputs.append(runner.invoke(cli, ["score", str(path), "--format", "csv"]).stdout)
    assert outputs[0] == outputs[1]
    header, first = outputs[0].splitlines()[:2]
    assert header.endswith(",flags,issues,site") and first.endswith(",suicidal_ideation,,A")


def test_cell_keys_depend_on_the_text_alone() -> None:
    """A text's key is the same whatever the other cells of its chunk hold (duplicates are
    found across chunks by these keys), and long texts that differ get different keys."""
    import numpy as np

    from ketascore.engines import columnar

    def keys(texts: list[str]) -> list[int]:
        data = "".join(texts).encode()
        a = np.frombuffer(data, dtype=np.uint8)
        ends = np.cumsum([len(t.encode()) for t in texts])
        starts = np.concatenate(([0], ends[:-1]))
        return columnar._hash_cells(a, columnar.Cells(starts, ends)).tolist()

    alone = {t: keys([t])[0] for t in ["S1", "S00000000", "S000000012", "baseline"]}
    mixed = keys(["S1", "S00000000", "S000000012", "baseline"])
    assert mixed == list(alone.values())
    # ids whose last two digits swap must not collide (they did when a byte was mixed in
    # without first multiplying: 25,000 subjects gave 4,000 keys)
    ids = [f"S{i:08d}" for i in range(25_000)]
    assert len(set(keys(ids))) == len(ids)


def test_duplicates_across_chunks_of_different_subject_lengths(tmp_path: Path) -> None:
    """The same short subject in a chunk of long subjects and in a chunk of short ones:
    still one group (a conflict here), as the record engine finds it."""

    items = ",".join(f"phq9_{i}" for i in range(1, 10))
    lines = [f"subject,visit,{items}", "S1,baseline," + ",".join("1" * 9)]
    lines += [f"S{i:012d},baseline," + ",".join("2" * 9) for i in range(40)]
    lines += [f"T{i},baseline," + ",".join("0" * 9) for i in range(40)]
    lines.append("S1,baseline," + ",".join("3" * 9))
    got = chunked_results_equal_the_record_engine(tmp_path / "mixed.csv", lines, 600)
    assert "conflicting-records" in {i.code for r in got for i in r.issues}


def chunked_results_equal_the_record_engine(
    path: Path, lines: list[str], chunk_bytes: int
) -> list[Any]:
    """Write ``lines`` to ``path``, read it in columns in chunks of ``chunk_bytes``, check
    that the results are the record engine's, and return them."""
    from ketascore.api import read_answers, score
    from ketascore.core.library import ScaleSet
    from ketascore.engines import columnar

    path.write_text("\n".join(lines) + "\n")
    known = ScaleSet([])
    table = columnar.read_wide_csv_file(str(path), known.get, known.ids(), chunk_bytes=chunk_bytes)
    assert table is not None
    expected = score(read_answers([path]).records)
    got = list(table.results())
    assert [as_dict(r) for r in got] == [as_dict(r) for r in expected]
    return got
