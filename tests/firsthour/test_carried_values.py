"""Issue 17, items 3 and 4: values carried forward and analysis windows are visible.

- In the terminal table a carried value is marked (LOCF †, BOCF ‡) and footnoted.
- The summary's n for the values and for the change describe one population: at a visit
  after the baseline, the subjects with a baseline and a value there (observed or carried).
- A record outside every analysis window is reported.
- --impute bocf carries the baseline forward for a subject with no post-baseline value (as
  admiral's ``derive_locf_records`` carries the last value, baseline included, for the
  CDISC pilot's ADAS-Cog data), DTYPE BOCF; beside LOCF of post-baseline values.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.analysis.change import compute_change
from ketascore.analysis.windows import load_windows_text
from ketascore.cli import cli
from ketascore.core.library import load_builtin
from ketascore.core.records import ScoreResult, Source

from conftest import EXAMPLE


def res(subject: str, visit: str, total: float | None, day: int) -> ScoreResult:
    return ScoreResult(
        subject=subject,
        visit=visit,
        scale="madrs",
        scale_version="1.0",
        scores={"total": total},
        day=day,
        source=Source(file="v.csv", line=day + 2),
    )


@pytest.fixture(scope="module")
def madrs() -> Any:
    return load_builtin("madrs")


STUDY = [
    # S1: drops out after day 1; S2: complete; S3: baseline only; S4: no baseline
    res("S1", "baseline", 30, 0),
    res("S1", "day1", 14, 1),
    res("S2", "baseline", 20, 0),
    res("S2", "day1", 18, 1),
    res("S2", "week1", 10, 7),
    res("S3", "baseline", 40, 0),
    res("S4", "day1", 12, 1),
    res("S4", "week1", 11, 7),
]


def test_the_summary_counts_one_population_at_each_visit(madrs: Any) -> None:
    for impute in (None, "locf", ["locf", "bocf"]):
        report = compute_change(STUDY, madrs, impute=impute)
        for s in report.summary:
            if not s.is_baseline:  # S4 has no baseline: in neither n nor n_change
                assert s.n == s.n_change, (impute, s.visit)
    plain = {s.visit: s for s in compute_change(STUDY, madrs).summary}
    assert (plain["week1"].n, plain["week1"].mean, plain["week1"].n_imputed) == (1, 10, 0)
    locf = {s.visit: s for s in compute_change(STUDY, madrs, impute="locf").summary}
    assert (locf["week1"].n, locf["week1"].mean, locf["week1"].n_imputed) == (2, 12, 1)
    both = {s.visit: s for s in compute_change(STUDY, madrs, impute=["locf", "bocf"]).summary}
    assert (both["week1"].n, both["week1"].n_imputed, both["day1"].n_imputed) == (3, 2, 1)
    assert both["baseline"].n == 3 and both["baseline"].is_baseline


def test_bocf_carries_the_baseline_of_a_subject_with_no_post_baseline_value(madrs: Any) -> None:
    report = compute_change(STUDY, madrs, impute="bocf")
    rows = [(r.subject, r.visit, r.value, r.change, r.imputed) for r in report.rows]
    assert rows == [
        ("S1", "day1", 14, -16, None),  # S1 has a post-baseline value: bocf leaves it
        ("S2", "day1", 18, -2, None),
        ("S2", "week1", 10, -10, None),
        ("S3", "day1", 40, 0, "BOCF"),
        ("S3", "week1", 40, 0, "BOCF"),
    ]
    s3 = report.rows[-1]
    assert (s3.source_visit, s3.response, s3.remission) == ("baseline", False, False)
    assert s3.note == "baseline carried forward from baseline (day 0); no post-baseline value"
    both = compute_change(STUDY, madrs, impute=["locf", "bocf"])
    assert [(r.subject, r.visit, r.imputed) for r in both.rows if r.imputed] == [
        ("S1", "week1", "LOCF"),
        ("S3", "day1", "BOCF"),
        ("S3", "week1", "BOCF"),
    ]
    with pytest.raises(ValueError, match="unknown imputation 'wocf'"):
        compute_change(STUDY, madrs, impute="wocf")


def test_records_outside_every_window_are_reported(madrs: Any) -> None:
    plan = load_windows_text(
        "windows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: day1, from: 1, to: 2, target: 1}\n",
        "w.yaml",
    )
    report = compute_change([*STUDY[:2], res("S1", "unscheduled", 25, 30)], madrs, windows=plan)
    (issue,) = report.issues
    assert (issue.code, issue.severity) == ("outside-windows", "warning")
    assert issue.message == (
        "v.csv:32: subject S1, visit unscheduled, madrs: study day 30 falls in no analysis "
        "window; not analysed; widen a window in the windows file if the record belongs to "
        "the analysis"
    )


def test_the_terminal_table_marks_and_footnotes_carried_values(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        ["change", str(EXAMPLE), "--scale", "madrs", "--impute", "locf", "--format", "table"],
    )
    assert result.exit_code == 0
    text = result.stdout
    kt001 = next(line for line in text.splitlines() if "KT-001" in line)
    assert "33† (+6%)" in kt001  # KT-001 has no day-14 record: day 7's 33 carried
    words = " ".join(text.split())
    assert (
        "† LOCF, last observation carried forward: the subject's last observed post-baseline "
        "value" in words
    )
    day14 = next(line for line in text.splitlines() if line.startswith("│ day14"))
    assert "100 (11†)" in day14
    assert (
        "n (k†): n subjects with a value, k of them carried forward; the mean, the change and "
        "the counts include them" in words
    )


def test_bocf_in_the_terminal_and_in_adam(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    items = ",".join(f"madrs_{k}" for k in range(1, 11))
    data.write_text(
        f"subject,visit,day,{items}\n"
        + "S1,baseline,0," + ",".join("3" * 10) + "\n"
        + "S1,day1,1," + ",".join("1" * 10) + "\n"
        + "S2,baseline,0," + ",".join("4" * 10) + "\n"
    )  # fmt: skip
    args = ["change", str(data), "--scale", "madrs", "--impute", "bocf", "--impute", "locf"]
    table = runner.invoke(cli, [*args, "--format", "table"]).stdout
    assert "40‡ (0%)" in table
    assert "‡ BOCF, baseline observation carried forward" in " ".join(table.split())
    adam = runner.invoke(cli, [*args, "--format", "adam", "--study-id", "KT-2024"]).stdout
    rows = list(csv.DictReader(io.StringIO(adam)))
    s2 = [
        (r["AVISIT"], r["AVAL"], r["CHG"], r["DTYPE"], r["ABLFL"])
        for r in rows
        if r["USUBJID"] == "S2"
    ]
    assert s2 == [("baseline", "40", "", "", "Y"), ("day1", "40", "0", "BOCF", "")]
