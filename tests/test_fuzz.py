"""Fuzzing: random and mutated inputs never cause a traceback; every record is either scored
or carries an issue; the same input always gives the same output.

CI runs a short budget; KETASCORE_FUZZ=50 runs fifty times as many examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ketascore.cli import cli
from ketascore.core.scale import check_scale_text
from ketascore.readers import read_text

from conftest import ROOT, budget

FUZZ = settings(max_examples=budget(40), suppress_health_check=list(HealthCheck))
SEEDS = [
    (ROOT / "tests" / "data" / "study" / "madrs.yaml").read_text(),
    (ROOT / "tests" / "data" / "study" / "hamd17.csv").read_text(),
    (ROOT / "tests" / "data" / "malformed" / "quoted-newline.csv").read_text(),
    '[{"subject": "A", "visit": "v", "scale": "phq9", "items": {"1": 2, "9": "Several days"}}]',
    "subject,visit,scale,item,value\nS1,v,phq9,1,2\nS1,v,phq9,2,x\n",
    # the shapes of the clinical readers (#16): SDTM results to reconcile, a FHIR form of
    # two scales, a REDCap export
    (ROOT / "tests" / "data" / "malformed" / "sdtm-results-disagree.csv").read_text(),
    (ROOT / "tests" / "data" / "malformed" / "fhir-two-scales.json").read_text(),
    (ROOT / "tests" / "data" / "formats" / "redcap-phq9.csv").read_text(),
]
SCALE_SEED = (ROOT / "scales" / "phq9.yaml").read_text()
NASTY = [
    "",
    "\x00",
    "\ufeff",
    "&a",
    "*a",
    "!!python/none",
    "[",
    "{",
    "'",
    '"',
    ",",
    ";",
    "\t",
    "\r\n",
    "\n- ",
    ": ",
    "1e308",
    "nan",
    "-1",
    "999999999999999999999",
    "  ",
    "#",
    "\\",
]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str]) -> str:
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=5)))
        if action == "insert":
            text = text[:pos] + piece + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 20)) :]
        else:
            text = text[:pos] + piece + text[pos + len(piece) :]
    return text


def _score_cli(tmp_path: Path, name: str, data: bytes) -> Any:
    path = tmp_path / name
    path.write_bytes(data)
    runner = CliRunner()
    return runner.invoke(cli, ["score", str(path), "--format", "json", "--quiet"])


def _check(result: Any) -> dict[str, Any]:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert result.exit_code in (0, 1), result.output
    doc: dict[str, Any] = json.loads(result.stdout)
    for r in doc["results"]:
        scored = any(v is not None for v in r["scores"].values())
        assert scored or r["issues"], r
    return doc


@FUZZ
@given(text=mutated(SEEDS), ext=st.sampled_from(["yaml", "json", "csv", "jsonl", "txt"]))
def test_mutated_answer_files_never_crash(tmp_path_factory: Any, text: str, ext: str) -> None:
    tmp_path = tmp_path_factory.mktemp("fuzz")
    first = _check(_score_cli(tmp_path, f"in.{ext}", text.encode("utf-8", "surrogatepass")))
    second = _check(_score_cli(tmp_path, f"in.{ext}", text.encode("utf-8", "surrogatepass")))
    assert first == second


@FUZZ
@given(data=st.binary(max_size=600), ext=st.sampled_from(["yaml", "json", "csv"]))
def test_random_bytes_never_crash(tmp_path_factory: Any, data: bytes, ext: str) -> None:
    _check(_score_cli(tmp_path_factory.mktemp("fuzz"), f"in.{ext}", data))


@FUZZ
@given(text=mutated([SCALE_SEED]))
def test_mutated_scale_files_never_crash(text: str) -> None:
    report = check_scale_text(text, "fuzz.yaml")
    assert (report.scale is None) == bool(report.problems) or report.scale is not None
    for problem in report.problems:
        assert problem.startswith("fuzz.yaml")


@FUZZ
@given(
    fmt=st.sampled_from(["yaml", "json", "jsonl", "csv", "csv-long"]),
    text=mutated(SEEDS),
)
def test_every_reader_accepts_any_text(fmt: str, text: str) -> None:
    result = read_text(text, "in", fmt, ["phq9", "madrs", "hamd17"])
    for issue in result.issues:
        assert issue.message and issue.code
