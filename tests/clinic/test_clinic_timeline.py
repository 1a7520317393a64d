"""The patient timeline: one self-contained HTML page, checked in a real browser."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.api import read_answers, score
from ketascore.cli import cli
from ketascore.clinic.sessions import evaluate_sessions, load_rules, read_sessions
from ketascore.clinic.timeline import build_timeline, charted_score
from ketascore.core.library import ScaleSet, load_builtin
from ketascore.present.timeline import render_timeline


@pytest.fixture
def clinic() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    clinic = Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"
    runner = CliRunner()
    out = tmp_path_factory.mktemp("timeline") / "KC-15.html"
    result = runner.invoke(
        cli,
        [
            "clinic",
            "timeline",
            str(clinic / "ratings"),
            "--sessions",
            str(clinic / "sessions.csv"),
            "--patient",
            "KC-15",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_the_page_is_self_contained(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "@import" not in text and "url(" not in text


def test_the_page_shows_every_scale_sessions_rci_and_alerts(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.count('<svg class="chart"') == 4  # PHQ-9, GAD-7, MADRS, C-SSRS
    for name in ("PHQ-9", "GAD-7", "MADRS", "C-SSRS"):
        assert name in text
    assert "moderately severe (15-19)" in text  # PHQ-9 bands shaded and labelled
    assert text.count('stroke="#b0bec5"') >= 4 * 21  # 21 sessions drawn on each chart
    assert "unchanged" in text and "Jacobson &amp; Truax" in text
    assert "Active suicidal ideation with intent" in text
    assert "@page { size: A4" in text


def test_the_same_data_give_the_same_bytes(page: Path, tmp_path: Path) -> None:
    clinic = Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"
    results = score(read_answers(clinic / "ratings").records)
    sessions = evaluate_sessions(read_sessions(clinic / "sessions.csv")[0], load_rules())
    timeline = build_timeline("KC-15", results, ScaleSet().get, sessions)
    assert render_timeline(timeline) == page.read_text(encoding="utf-8")
    assert [s.scale for s in timeline.series] == ["gad7", "phq9", "madrs", "cssrs"]


def test_charted_score_is_the_first_with_bands() -> None:
    assert charted_score(load_builtin("cssrs")) == "ideation_severity"
    assert charted_score(load_builtin("hamd17")) == "total"


def test_cli_timeline_usage(runner: CliRunner, clinic: Path) -> None:
    unknown = runner.invoke(
        cli, ["clinic", "timeline", str(clinic / "ratings"), "--patient", "KC-1", "-o", "x.html"]
    )
    assert unknown.exit_code == 2
    assert "no records or sessions of patient 'KC-1' (did you mean" in unknown.output
    piped = runner.invoke(
        cli,
        ["clinic", "timeline", str(clinic / "ratings"), "--patient", "KC-01", "--format", "json"],
    )
    assert piped.exit_code == 0
    assert '"subject": "KC-01"' in piped.stdout


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(*args: str) -> None:
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-dev-shm-usage",
            *args,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_chromium_renders_the_page(page: Path, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "page.png"
    _chromium("--window-size=760,1100", f"--screenshot={shot}", page.as_uri())
    image = Image.open(shot).convert("RGB")
    assert image.size == (760, 1100)
    colours = image.getcolors(maxcolors=1 << 20) or []
    assert len(colours) > 50  # text, bands and lines were drawn, not a blank page
    # the red of a flagged score and the band fills are on the page
    pixels = {c for _, c in colours}
    assert (198, 40, 40) in pixels  # #c62828
    assert (255, 235, 238) in pixels  # #ffebee, the top band


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
def test_chromium_prints_the_page_on_one_sheet(page: Path, tmp_path: Path) -> None:
    pdf = tmp_path / "page.pdf"
    _chromium("--no-pdf-header-footer", f"--print-to-pdf={pdf}", page.as_uri())
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 1
