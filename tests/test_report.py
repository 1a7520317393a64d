"""`ketascore report`: one self-contained HTML file (and optionally a PDF) with the study
summary, the change tables, the pictures, the data issues and the provenance."""

from __future__ import annotations

import hashlib
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.core.library import load_builtin

from conftest import ROOT

EXAMPLE = "examples/ketamine-trial"
STUDY = "tests/data/study"
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "area", "base", "wbr", "source"}


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


class Page(HTMLParser):
    """Checks that tags nest properly and collects text, tags and attributes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    assert page.stack == [], f"unclosed tags: {page.stack}"
    return page


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def example_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, str, Path]:
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("report") / "report.html"
    runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        result = runner.invoke(
            cli,
            [
                "report",
                EXAMPLE,
                "--scale",
                "madrs",
                "--by",
                "arm",
                "--visit",
                "day1",
                "-o",
                str(out),
                "--pdf",
                str(out.with_suffix(".pdf")),
            ],
            catch_exceptions=False,
        )
    return result, out.read_text(encoding="utf-8"), out


def test_report_is_written_and_valid(example_report: Any) -> None:
    result, text, out = example_report
    assert result.exit_code == 0, result.output
    assert result.stderr == f"Wrote {out}\nWrote {out.with_suffix('.pdf')}\n"
    assert text.startswith('<!DOCTYPE html>\n<html lang="en">')
    page = parse(text)
    assert page.tags.count("svg") == 4
    assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF-")


def test_report_is_self_contained(example_report: Any) -> None:
    _, text, _ = example_report
    page = parse(text)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert "http:" not in text and "https:" not in text and "//" not in text
    assert "@import" not in text
    assert re.findall(r"url\((?!#)", text) == []
    assert not [name for name, _ in page.attrs if name in ("src", "srcset", "action")]
    hrefs = [value for name, value in page.attrs if name in ("href", "xlink:href")]
    assert hrefs and all(value and value.startswith("#") for value in hrefs)
    ids = [value for name, value in page.attrs if name == "id"]
    assert len(ids) == len(set(ids)), "ids must be unique across the inline pictures"
    assert set(hrefs) <= {f"#{i}" for i in ids}


def test_report_summary_and_tables(example_report: Any) -> None:
    _, text, _ = example_report
    page = parse(text)
    facts = dict((row[0], row[1]) for row in page.tables[0])
    assert facts["Input files"] == "9"
    assert facts["Records read"] == "1070 (hamd17 100, hamd6 485, madrs 485)"
    assert facts["Subjects"] == "100"
    assert facts["Visits"] == "baseline, day1, day3, day7, day14"
    assert facts["Issues"] == "0 errors, 0 warnings"
    assert facts["MADRS total score: groups by arm"].startswith("ketamine 0.1 mg/kg (20), ")
    summary = page.tables[1]
    assert summary[0] == [
        "Visit",
        "Day",
        "arm",
        "n",
        "Mean (SD)",
        "Change (SD)",
        "95% CI of change",
        "Responders",
        "Remitters",
    ]
    rows = {(r[0], r[2]): r for r in summary[1:]}
    assert rows["day1", "ketamine 0.5 mg/kg"][3:] == [
        "20",
        "16.5 (4.1)",
        "-14.9 (5.2)",  # -297/20 = -14.85: half away from zero (present.numbers)
        "-17.3 to -12.4",
        "9/20 (45%)",
        "1/20 (5%)",
    ]
    assert rows["baseline", "midazolam"][1:5] == ["0", "midazolam", "20", "33.3 (4.8)"]
    subjects = page.tables[2]
    assert subjects[0] == ["Subject", "arm", "Baseline", "day1", "day3", "day7", "day14"]
    assert [r[0] for r in subjects[1:]] == [f"KT-{n:03d}" for n in range(1, 101)]
    assert subjects[14][0] == "KT-014" and subjects[14][3] == "12 (-65%) R"


def test_report_pictures_and_provenance(example_report: Any) -> None:
    _, text, _ = example_report
    page = parse(text)
    words = " ".join(page.text)
    for title in (
        "MADRS total score by arm",
        "MADRS total score: each subject by arm",
        "MADRS total score: percent change from baseline to day1",
        "MADRS total score: severity bands at each visit by arm",
    ):
        assert title in words
    assert "No data issues" in words  # (the folder holds data only)
    madrs = load_builtin("madrs")
    provenance = page.tables[-2:]
    assert provenance[0][1] == ["madrs", madrs.version, "scales/madrs.yaml", madrs.sha256]
    inputs = {row[0]: row[1] for row in provenance[1][1:]}
    assert len(inputs) == 9
    for name, digest in inputs.items():
        assert name.startswith(EXAMPLE + "/")
        assert digest == sha256(name)


def test_report_is_the_same_byte_for_byte(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    for name in ("a", "b"):
        result = run(
            runner, "report", STUDY, "--scale", "madrs", "-o", str(tmp_path / f"{name}.html")
        )
        assert result.exit_code == 1  # the study has a record with a missing item
    assert (tmp_path / "a.html").read_bytes() == (tmp_path / "b.html").read_bytes()


def test_report_lists_data_issues(runner: CliRunner) -> None:
    pytest.importorskip("matplotlib")
    result = run(runner, "report", STUDY, "--scale", "madrs")  # to stdout
    assert result.exit_code == 1
    page = parse(result.stdout)
    issues = next(t for t in page.tables if t[0][:2] == ["Severity", "Code"])
    assert issues[1][:5] == [
        "error",
        "insufficient-items",
        "tests/data/study/madrs-day3.csv:4",
        "S10",
        "day3",
    ]
    assert "complete the missing items" in issues[1][5]
    assert "error[insufficient-items]" in result.stderr


def test_report_with_two_scales(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.html"
    result = run(
        runner,
        "report",
        EXAMPLE,
        "--scale",
        "madrs",
        "--scale",
        "hamd6",
        "--by",
        "hamd17.anxious_depression",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    page = parse(out.read_text(encoding="utf-8"))
    words = " ".join(page.text)
    assert "HAM-D6 total score: change from baseline" in words
    assert "No distribution picture: hamd6 total has no severity bands" in words
    assert page.tags.count("svg") == 4 + 3
    facts = dict((row[0], row[1]) for row in page.tables[0])
    assert facts["HAM-D6 total score: groups by hamd17.anxious_depression"] == (
        "anxious_depression: no (51), anxious_depression: yes (49)"
    )
    scales = [row[0] for row in page.tables[-2][1:]]
    assert scales == ["hamd17", "hamd6", "madrs"]


def test_report_without_matplotlib(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = tmp_path / "r.html"
    result = runner.invoke(cli, ["report", STUDY, "--scale", "madrs", "-o", str(out)])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: pictures need matplotlib, which is not installed; install it with: "
        "pip install 'ketascore[plot]'; or make a report of tables only with --no-plots\n"
    )
    assert not out.exists()
    result = runner.invoke(cli, ["report", STUDY, "--scale", "madrs", "--no-plots", "-o", str(out)])
    assert result.exit_code == 1, result.output  # the study's missing item
    page = parse(out.read_text(encoding="utf-8"))
    assert "svg" not in page.tags
    assert "Pictures left out (--no-plots)." in " ".join(page.text)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--visit", "day9"], "--visit day9: no madrs change from baseline at that visit"),
        (["--no-plots", "--pdf", "r.pdf"], "--pdf is drawn with matplotlib"),
        (["--score", "sum"], "scale madrs has no score 'sum'"),
    ],
)
def test_report_usage_errors(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    pytest.importorskip("matplotlib")
    args = [str(tmp_path / a) if a.endswith(".pdf") else a for a in args]
    result = runner.invoke(
        cli, ["report", STUDY, "--scale", "madrs", "-o", str(tmp_path / "r.html"), *args]
    )
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_report_refuses_to_overwrite_an_input(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["report", STUDY, "--scale", "madrs", "--no-plots", "-o", f"{STUDY}/r.html"]
    )
    assert result.exit_code == 2
    assert "refusing to write" in result.stderr
    assert not Path(STUDY, "r.html").exists()


def test_report_with_analysis_windows_and_locf(runner: CliRunner, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from test_plot import windowed_study

    data, windows = windowed_study(tmp_path)
    out = tmp_path / "r.html"
    result = run(
        runner,
        "report",
        str(data),
        "--scale",
        "madrs",
        "--windows",
        str(windows),
        "--impute",
        "locf",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    words = " ".join(parse(out.read_text(encoding="utf-8")).text)
    assert "week1" in words and "v9" not in words
    assert "Includes values carried forward (LOCF)" in words
