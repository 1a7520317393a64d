"""Named outcome measures as data: their worked examples, their evaluation on scored records,
their file checks and the `ketascore clinic measure` command."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.clinic.measures import (
    add_months,
    builtin_measures,
    evaluate_measure,
    load_measure,
    load_measure_text,
    run_examples,
)
from ketascore.core.records import ScoreResult, Source
from ketascore.core.scale import ScaleError


@pytest.fixture
def clinic() -> Path:
    return Path(__file__).resolve().parents[2] / "examples" / "ketamine-clinic"


def test_the_three_measures_ship() -> None:
    assert builtin_measures() == ["cms159", "hedis-drr-e", "nhs-talking-therapies"]


@pytest.mark.parametrize("measure_id", ["cms159", "hedis-drr-e", "nhs-talking-therapies"])
def test_worked_examples_of_each_measure(measure_id: str) -> None:
    measure = load_measure(measure_id)
    assert len(measure.examples) >= 3
    assert all(e.source for e in measure.examples)
    assert run_examples(measure) == []


def test_a_wrong_expectation_is_reported() -> None:
    measure = load_measure("cms159")
    broken = measure.model_copy(
        update={
            "examples": [
                measure.examples[0].model_copy(update={"expect": measure.examples[1].expect})
            ]
        }
    )
    (failure,) = run_examples(broken)
    assert "remission is True, expected False" in failure


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        ("2023-03-01", 12, "2024-03-01"),
        ("2023-01-31", 1, "2023-02-28"),
        ("2024-02-29", 12, "2025-02-28"),
        ("2023-11-15", 3, "2024-02-15"),
    ],
)
def test_add_months(day: str, months: int, expected: str) -> None:
    assert add_months(dt.date.fromisoformat(day), months).isoformat() == expected


def phq(subject: str, date: str | None, total: float) -> ScoreResult:
    return ScoreResult(
        subject,
        f"v{date}",
        "phq9",
        "1.0",
        date=date,
        scores={"total": total},
        source=Source(file="p.csv", line=3),
    )


def test_cms159_over_scored_records_with_an_index_period() -> None:
    results = [
        phq("A", "2023-03-01", 15),
        phq("A", "2024-03-10", 3),
        phq("B", "2023-02-01", 20),
        phq("B", "2024-02-01", 12),
        phq("C", "2023-04-01", 8),  # never above 9: not in the denominator
        phq("D", "2022-12-01", 22),  # index before the period
        phq("D", "2023-12-01", 2),
        phq("E", None, 14),  # no date: reported, not used
    ]
    report = evaluate_measure(
        load_measure("cms159"), results, index_from="2023-01-01", index_to="2023-12-31"
    )
    (rate,) = report.rates
    assert (rate.numerator, rate.denominator, rate.rate) == (1, 2, 50)
    by = {p.subject: p for p in report.patients}
    assert by["A"].outcomes == {"remission": True}
    assert by["B"].outcomes == {"remission": False}
    assert not by["C"].in_population and "index" in (by["C"].reason or "")
    assert not by["D"].in_population
    assert [i.code for i in report.issues] == ["measure-no-date"]
    doc = report.to_dict()
    assert doc["measure"]["index_from"] == "2023-01-01"
    assert doc["patients"][0]["start"]["phq9"] == {
        "date": "2023-03-01",
        "visit": "v2023-03-01",
        "value": 15,
    }


MINIMAL = """\
id: mine
name: My measure
version: "1"
citations: [{key: me, text: My protocol}]
parts:
  - {id: phq9, scale: phq9, remission: {below: 5}, source: me}
outcomes:
  - {id: remission, label: Remission, met: [{all: remission}]}
"""


def test_a_measure_file_of_ones_own_loads() -> None:
    measure = load_measure_text(MINIMAL, "mine.yaml")
    assert measure.follow_up.pick == "latest"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("source: me}", "source: nobody}"),
            "mine.yaml:6:60: parts[0].source: unknown citation key 'nobody'",
        ),
        (
            ("met: [{all: remission}]", "met: [{all: response}]"),
            "mine.yaml:8:45: outcomes[0].met[0]: response needs response_percent on part 'phq9'",
        ),
        (
            ("met: [{all: remission}]", "met: [{all: remission, any: remission}]"),
            "mine.yaml:8:45: outcomes[0].met[0]: give exactly one of any, all or none",
        ),
        (
            ("remission: {below: 5}", "remission: {below: 5, above: 1}"),
            "mine.yaml:6:40: parts[0].remission: give exactly one comparison",
        ),
        (
            ('version: "1"', 'version: "1"\nfollow_up: {anchor_months: 12}'),
            "mine.yaml:4:12: follow_up: an anchor needs a window (from, to)",
        ),
    ],
)
def test_measure_file_problems_are_located(change: tuple[str, str], message: str) -> None:
    with pytest.raises(ScaleError) as err:
        load_measure_text(MINIMAL.replace(*change), "mine.yaml")
    assert message in err.value.problems


def test_cli_measure_on_the_example_clinic(runner: CliRunner, clinic: Path) -> None:
    result = runner.invoke(
        cli, ["clinic", "measure", "cms159", str(clinic / "ratings"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (rate,) = doc["rates"]
    assert (rate["numerator"], rate["denominator"]) == (6, 16)
    assert doc["measure"]["not_checked"].startswith("Rating data cannot check")


def test_cli_measure_csv_and_table(runner: CliRunner, clinic: Path) -> None:
    result = runner.invoke(
        cli,
        ["clinic", "measure", "nhs-talking-therapies", str(clinic / "ratings"), "--format", "csv"],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 16
    assert set(rows[0]) >= {"subject", "phq9_start", "gad7_end", "reliable_recovery"}
    table = runner.invoke(
        cli, ["clinic", "measure", "hedis-drr-e", str(clinic / "ratings"), "--format", "table"]
    )
    assert table.exit_code == 0
    assert "HEDIS DRR-E" in table.stdout and "Follow-up PHQ-9" in table.stdout


def test_cli_measure_usage_errors(runner: CliRunner, clinic: Path) -> None:
    unknown = runner.invoke(cli, ["clinic", "measure", "cms160", str(clinic / "ratings")])
    assert unknown.exit_code == 2
    assert "unknown measure 'cms160'" in unknown.output
    bad_date = runner.invoke(
        cli, ["clinic", "measure", "cms159", str(clinic / "ratings"), "--index-from", "1/2/23"]
    )
    assert bad_date.exit_code == 2
    assert "--index-from '1/2/23': write the date as YYYY-MM-DD" in bad_date.output


def test_cli_measures_lists_and_checks(runner: CliRunner, tmp_path: Path) -> None:
    listed = runner.invoke(cli, ["clinic", "measures", "--format", "json"])
    assert [m["id"] for m in json.loads(listed.stdout)["measures"]] == builtin_measures()
    (tmp_path / "mine.yaml").write_text(MINIMAL)
    ok = runner.invoke(cli, ["clinic", "measures", "--check", str(tmp_path / "mine.yaml")])
    assert ok.exit_code == 0 and "ok" in ok.output
    (tmp_path / "bad.yaml").write_text(MINIMAL.replace("source: me}", "source: x}"))
    bad = runner.invoke(cli, ["clinic", "measures", "--check", str(tmp_path / "bad.yaml")])
    assert bad.exit_code == 1
    assert "unknown citation key 'x'" in bad.output
