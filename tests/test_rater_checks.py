"""Rating checks of the MADRS and HAM-D17, the companion check files (--checks), and the
summary of rating-check hits per rater and per site (analysis.raters) in `ketascore
change` (table and JSON) and the study report."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.analysis.raters import summarise_rating_checks
from ketascore.authoring import check_scale_file
from ketascore.cli import cli
from ketascore.core.checksets import (
    builtin_check_files,
    resolve_check_set,
    with_check_sets,
)
from ketascore.core.issues import make_issue
from ketascore.core.library import load_builtin
from ketascore.core.records import AnswerRecord, ScoreResult
from ketascore.engines.record import score_records
from ketascore.engines.sql import SqlError, compile_scale
from ketascore.present.raters import rating_check_lines, rows

MADRS_ITEMS = [str(i) for i in range(1, 11)]
HEADER = "subject,visit,day,Rater,SiteID," + ",".join(f"madrs_{i}" for i in MADRS_ITEMS)


def madrs_row(subject: str, visit: str, day: int, rater: str, site: str, items: list[int]) -> str:
    return ",".join([subject, visit, str(day), rater, site, *map(str, items)])


# S1 (rater R1, site A): varied ratings, no check holds at either visit.
# S2 (rater R2, site A): baseline all 3 (identical_ratings), day 1 apparent 6 / reported 0.
# S3 (rater R2, site B): 38 at baseline, 8 the next day - a swing of 30 (with --checks).
# S4 (no rater, site B): varied, no check.
ROWS = [
    madrs_row("S1", "baseline", 0, "R1", "A", [4, 4, 3, 3, 2, 2, 3, 3, 3, 1]),
    madrs_row("S1", "day1", 1, "R1", "A", [3, 3, 2, 2, 2, 2, 2, 2, 2, 0]),
    madrs_row("S2", "baseline", 0, "R2", "A", [3] * 10),
    madrs_row("S2", "day1", 1, "R2", "A", [6, 0, 2, 2, 2, 2, 2, 2, 2, 0]),
    madrs_row("S3", "baseline", 0, "R2", "B", [4, 4, 4, 4, 4, 4, 4, 4, 4, 2]),
    madrs_row("S3", "day1", 1, "R2", "B", [1, 1, 1, 1, 1, 1, 1, 1, 0, 0]),
    madrs_row("S4", "baseline", 0, "", "B", [4, 3, 3, 3, 3, 2, 3, 3, 3, 1]),
    madrs_row("S4", "day1", 1, "", "B", [2, 2, 2, 1, 1, 1, 1, 1, 1, 0]),
]


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    path = tmp_path / "trial.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


def checks_of(result: ScoreResult) -> list[str]:
    return sorted(str(i.params["check"]) for i in result.issues if i.code == "rating-check")


# --------------------------------------------------------------------------------------
# The rule sets


def test_madrs_and_hamd17_checks_stay_within_one_rating_so_sql_compiles_them() -> None:
    for scale_id, checks in (
        ("madrs", ["identical_ratings", "sadness_opposite_ends"]),
        ("hamd17", ["identical_ratings"]),
    ):
        scale = load_builtin(scale_id)
        assert [c.id for c in scale.checks] == checks
        assert scale.across_visits == ()
        assert "rating-check" in compile_scale(scale, "duckdb").text


def test_swing_checks_come_from_companion_files_and_make_the_scale_record_by_record() -> None:
    assert set(builtin_check_files()) >= {"madrs-visit-swings", "hamd17-visit-swings"}
    for name, scale_id in (("madrs-visit-swings", "madrs"), ("hamd17-visit-swings", "hamd17")):
        base = load_builtin(scale_id)
        check_set = resolve_check_set(name)
        scale = with_check_sets(base, [check_set])
        assert scale.id == scale_id
        assert scale.across_visits == ("large_swing",)
        assert scale.version == f"{base.version}+{name}-1.0"
        assert check_set.sha256 in scale.source and scale.sha256 == base.sha256
        with pytest.raises(SqlError, match="large_swing"):
            compile_scale(scale, "duckdb")


@pytest.mark.parametrize("name", ["madrs-visit-swings", "hamd17-visit-swings"])
def test_builtin_check_files_pass_their_worked_examples(name: str) -> None:
    assert check_scale_file(builtin_check_files()[name]) == []


def test_the_madrs_checks_on_records() -> None:
    scale = load_builtin("madrs")
    records = [
        AnswerRecord(
            subject=f"S{n}",
            visit="v",
            scale="madrs",
            items=dict(zip(MADRS_ITEMS, items, strict=True)),
        )
        for n, items in enumerate(
            (
                [2] * 10,  # identical
                [6, 0, 1, 1, 1, 1, 1, 1, 1, 1],  # opposite ends
                [0, 6, 1, 1, 1, 1, 1, 1, 1, 1],  # the other way round
                [6, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # five apart: nothing
                [6, 0, 6, 6, 6, 6, 6, 6, 6, None],  # item 10 missing: no identical check
            )
        )
    ]
    got = [checks_of(r) for r in score_records(records, {"madrs": scale}.get)]
    assert got == [
        ["identical_ratings"],
        ["sadness_opposite_ends"],
        ["sadness_opposite_ends"],
        [],
        ["sadness_opposite_ends"],
    ]


# --------------------------------------------------------------------------------------
# The summary per rater and site


def result_of(
    subject: str, checks: list[str], extra: dict[str, Any], scale: str = "madrs"
) -> ScoreResult:
    issues = [make_issue("rating-check", check=c, label=c, condition="x") for c in checks]
    return ScoreResult(
        subject=subject, visit="v", scale=scale, scale_version="1", issues=issues, extra=extra
    )


def test_summary_counts_records_flags_and_checks_per_rater_and_site() -> None:
    scale = load_builtin("madrs")
    results = [
        result_of("1", [], {"RATER": "R10", "site_id": "A"}),
        result_of("2", ["identical_ratings"], {"RATER": "R2", "site_id": "A"}),
        result_of("3", ["identical_ratings", "sadness_opposite_ends"], {"RATER": "R2"}),
        result_of("4", [], {"RATER": " ", "site_id": "B"}),
        result_of("5", ["identical_ratings"], {"RATER": "R2"}, scale="hamd17"),  # another scale
        ScoreResult(
            subject="6",
            visit="v",
            scale="madrs",
            scale_version="1",
            extra={"RATER": "R2"},
            issues=[make_issue("conflicting-records", scale="madrs", count=2, places=["a", "b"])],
        ),
    ]
    summary = summarise_rating_checks(results, scale)
    assert summary is not None
    assert summary.to_dict() == {
        "scale": "madrs",
        "checks": [
            {"id": "identical_ratings", "label": "All ten items rated the same"},
            {
                "id": "sadness_opposite_ends",
                "label": "Apparent and reported sadness at opposite ends of the range "
                "(one 0, the other 6)",
            },
        ],
        "records": 4,
        "flagged": 2,
        "flagged_percent": 50.0,
        "hits": {"identical_ratings": 2, "sadness_opposite_ends": 1},
        "not_checked": 1,
        "by": [
            {
                "role": "rater",
                "field": "RATER",
                "groups": [
                    {
                        "value": "R2",
                        "records": 2,
                        "flagged": 2,
                        "flagged_percent": 100.0,
                        "hits": {"identical_ratings": 2, "sadness_opposite_ends": 1},
                    },
                    {
                        "value": "R10",  # natural order: R2 before R10
                        "records": 1,
                        "flagged": 0,
                        "flagged_percent": 0.0,
                        "hits": {"identical_ratings": 0, "sadness_opposite_ends": 0},
                    },
                    {
                        "value": None,  # a blank rater is not recorded
                        "records": 1,
                        "flagged": 0,
                        "flagged_percent": 0.0,
                        "hits": {"identical_ratings": 0, "sadness_opposite_ends": 0},
                    },
                ],
            },
            {
                "role": "site",
                "field": "site_id",
                "groups": [
                    {
                        "value": "A",
                        "records": 2,
                        "flagged": 1,
                        "flagged_percent": 50.0,
                        "hits": {"identical_ratings": 1, "sadness_opposite_ends": 0},
                    },
                    {
                        "value": "B",
                        "records": 1,
                        "flagged": 0,
                        "flagged_percent": 0.0,
                        "hits": {"identical_ratings": 0, "sadness_opposite_ends": 0},
                    },
                    {
                        "value": None,
                        "records": 1,
                        "flagged": 1,
                        "flagged_percent": 100.0,
                        "hits": {"identical_ratings": 1, "sadness_opposite_ends": 1},
                    },
                ],
            },
        ],
    }
    assert rows(summary)[:2] == [
        ["all records", "4", "2 (50%)", "2", "1"],
        ["rater R2", "2", "2 (100%)", "2", "1"],
    ]
    assert rows(summary)[3][0] == "rater (not recorded)"
    lines = rating_check_lines(summary)
    assert lines[1] == "Rating checks of madrs, per rater and site"
    assert any("1 record could not be scored" in line for line in lines)


def test_summary_without_fields_named_fields_and_scales_without_checks() -> None:
    scale = load_builtin("madrs")
    results = [result_of("1", ["identical_ratings"], {"arm": "ketamine", "evaluator": "E1"})]
    summary = summarise_rating_checks(results, scale, site_field="arm")
    assert summary is not None
    assert [(b.role, b.field, [g.value for g in b.groups]) for b in summary.by] == [
        ("rater", "evaluator", ["E1"]),
        ("site", "arm", ["ketamine"]),
    ]
    bare = summarise_rating_checks([result_of("1", [], {})], scale)
    assert bare is not None and bare.by == [] and bare.overall.records == 1
    assert any("No rater or site field" in line for line in rating_check_lines(bare))
    assert summarise_rating_checks(results, load_builtin("phq9")) is None
    assert summarise_rating_checks([], scale) is not None  # nothing checked: zeros
    assert rating_check_lines(None) == []


# --------------------------------------------------------------------------------------
# The command line


def test_change_json_and_table_summarise_the_checks_per_rater_and_site(
    runner: CliRunner, trial: Path
) -> None:
    result = run(runner, "change", str(trial), "--scale", "madrs", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["rating_checks"]
    assert (summary["records"], summary["flagged"], summary["hits"]) == (
        8,
        2,
        {"identical_ratings": 1, "sadness_opposite_ends": 1},
    )
    by = {b["role"]: b for b in summary["by"]}
    assert by["rater"]["field"] == "Rater" and by["site"]["field"] == "SiteID"
    raters = {g["value"]: (g["records"], g["flagged"]) for g in by["rater"]["groups"]}
    assert raters == {"R1": (2, 0), "R2": (4, 2), None: (2, 0)}
    sites = {g["value"]: (g["records"], g["flagged"]) for g in by["site"]["groups"]}
    assert sites == {"A": (4, 2), "B": (4, 0)}

    swings = run(
        runner,
        "change",
        str(trial),
        "--scale",
        "madrs",
        "--checks",
        "madrs-visit-swings",
        "--format",
        "json",
    )
    doc = json.loads(swings.stdout)
    assert doc["rating_checks"]["hits"]["large_swing"] == 1
    assert doc["scale_version"].endswith("+madrs-visit-swings-1.0")
    (prov,) = doc["provenance"]["scales"]
    assert "scales/checks/madrs-visit-swings.yaml" in prov["source"]

    table = run(runner, "change", str(trial), "--scale", "madrs", "--format", "table")
    assert "Raters from the field Rater; sites from the field SiteID." in " ".join(
        table.stdout.split()
    )
    assert "Rating checks of madrs, per rater and site" in table.stdout
    assert "rater R2" in table.stdout and "site B" in table.stdout
    assert "rater (not recorded)" in table.stdout


def test_change_of_a_scale_without_checks_has_no_summary(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "phq.csv"
    data.write_text(
        "subject,visit,rater," + ",".join(f"phq9_{i}" for i in range(1, 10)) + "\n"
        "S1,baseline,R1,1,1,1,1,1,1,1,1,1\nS1,week1,R1,0,0,0,0,0,0,0,0,0\n",
        encoding="utf-8",
    )
    result = run(runner, "change", str(data), "--scale", "phq9", "--format", "json")
    assert "rating_checks" not in json.loads(result.stdout)
    table = run(runner, "change", str(data), "--scale", "phq9", "--format", "table")
    assert "Rating checks" not in table.stdout


def test_report_has_the_rating_check_table(runner: CliRunner, trial: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = run(
        runner,
        "report",
        str(trial),
        "--scale",
        "madrs",
        "--checks",
        "madrs-visit-swings",
        "--no-plots",
        "-o",
        str(out),
    )
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "<h3>Rating checks of madrs, per rater and site</h3>" in text
    assert "<th>large_swing</th>" in text
    assert "<td>rater R2</td>" in text and "<td>site A</td>" in text
    assert "scales/checks/madrs-visit-swings.yaml" in text  # provenance


def test_score_with_checks_adds_them_and_reports_them(runner: CliRunner, trial: Path) -> None:
    result = run(
        runner,
        "score",
        str(trial),
        "--scale",
        "madrs",
        "--checks",
        "madrs-visit-swings",
        "--format",
        "json",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    hits = {
        (r["subject"], r["visit"]): sorted(
            i["message"].split("rating check ")[1].split()[0] for i in r["issues"]
        )
        for r in json.loads(result.stdout)["results"]
    }
    assert hits[("S3", "day1")] == ["large_swing"]
    assert hits[("S2", "baseline")] == ["identical_ratings"]
    assert hits[("S2", "day1")] == ["sadness_opposite_ends"]
    assert hits[("S1", "day1")] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["change", "{trial}", "--scale", "madrs", "--checks", "nope"],
            "unknown check file 'nope'",
        ),
        (
            ["change", "{trial}", "--scale", "hamd17", "--checks", "madrs-visit-swings"],
            "its checks are for scale madrs, which is not a scale of this run (--scale: hamd17)",
        ),
        (
            ["score", "{trial}", "--checks", "madrs-visit-swings"],
            "give it with --scale",
        ),
        (
            ["report", "{trial}", "--scale", "phq9", "--checks", "hamd17-visit-swings"],
            "its checks are for scale hamd17",
        ),
    ],
)
def test_checks_option_refusals(
    runner: CliRunner, trial: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, [a.replace("{trial}", str(trial)) for a in args])
    assert result.exit_code == 2
    assert message in result.output


CHECK_FILE = """\
id: my-protocol
scale: madrs
name: Protocol checks
version: "1"
citations: [{key: dqp, text: The data review plan of the trial}]
checks:
  - id: fall_of_10
    label: Total down by 10 or more since the previous rating
    when: {score: total, change_from: previous, at_most: -10}
    source: dqp
  - id: tension_high
    label: Inner tension at 6
    when: {item: 3, equals: 6}
    source: dqp
examples:
  - description: Inner tension 6
    answers: {1: 2, 2: 2, 3: 6, 4: 2, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2, 10: 0}
    expect: {issues: [rating-check]}
"""


def test_a_users_check_file(runner: CliRunner, trial: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my-protocol.yaml"
    mine.write_text(CHECK_FILE, encoding="utf-8")
    checked = run(runner, "scales", "check", str(mine))
    assert checked.exit_code == 0 and checked.output == f"{mine}: ok\n"
    result = run(
        runner, "change", str(trial), "--scale", "madrs", "--checks", str(mine), "--format", "json"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["rating_checks"]
    assert [c["id"] for c in summary["checks"]] == [
        "identical_ratings",
        "sadness_opposite_ends",
        "fall_of_10",
        "tension_high",
    ]
    assert summary["hits"]["fall_of_10"] == 3  # S1 28 -> 20; S2 30 -> 20; S3 38 -> 8; S4 28 -> 12
    assert summary["hits"]["tension_high"] == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("item: 3, equals: 6", "item: 99, equals: 6"),
            ":13:18: checks[1].when.item: unknown item '99'",
        ),
        (
            ("key: dqp", "key: montgomery1979"),
            ":5:19: citations[0].key: citation key 'montgomery1979' is also a key",
        ),
        (
            ("id: tension_high", "id: identical_ratings"),
            ":11:9: checks[1].id: check id 'identical_ratings' is also a check",
        ),
        (("scale: madrs", "scale: phq9"), ":13:11: checks[1].when: item 3 can never be = 6"),
        (("source: dqp\n  - id: t", "source: nowhere\n  - id: t"), "unknown citation key"),
        (("expect: {issues: [rating-check]}", "expect: {issues: []}"), "examples[0]"),
        (('version: "1"', 'version: "1"\nitems: []'), "unknown key"),
    ],
)
def test_problems_of_a_check_file_are_located(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(CHECK_FILE.replace(*change), encoding="utf-8")
    problems = check_scale_file(path)
    assert problems, change
    assert any(expected in p for p in problems), problems


def test_sql_of_the_builtin_scales_still_prints(runner: CliRunner) -> None:
    for scale_id in ("madrs", "hamd17"):
        result = run(runner, "sql", scale_id)
        assert result.exit_code == 0 and "SELECT" in result.stdout


def test_check_files_are_told_apart_from_scale_files() -> None:
    # a check file is told apart from a scale file by its scale key and no items
    from ketascore.authoring import is_check_set_text

    assert is_check_set_text(CHECK_FILE)
    assert not is_check_set_text(textwrap.dedent("id: x\nitems: []\nscale: y\n"))
    assert not is_check_set_text(":\n - [")


def test_the_table_engine_gives_the_same_summary(trial: Path) -> None:
    pytest.importorskip("duckdb")
    from ketascore.api import score_paths

    scale = load_builtin("madrs")
    summaries = []
    for engine in ("table", "record"):
        with score_paths([trial], scale=scale, engine=engine) as scored:
            results = list(scored.results())
        summary = summarise_rating_checks(results, scale)
        assert summary is not None
        summaries.append(summary.to_dict())
    assert summaries[0] == summaries[1]
    assert summaries[0]["hits"] == {"identical_ratings": 1, "sadness_opposite_ends": 1}


@pytest.mark.parametrize("columns", [60, 120])
def test_the_rating_check_table_fits_the_terminal(trial: Path, columns: int) -> None:
    from rich.cells import cell_len

    runner = CliRunner(env={"COLUMNS": str(columns), "NO_COLOR": "1", "TERM": "dumb"})
    args = ["change", str(trial), "--scale", "madrs", "--checks", "madrs-visit-swings"]
    result = runner.invoke(cli, [*args, "--format", "table"], catch_exceptions=False)
    text = result.stdout[result.stdout.index("Rating checks of madrs") :]
    assert max(cell_len(line.rstrip()) for line in text.splitlines()) <= columns
    assert "…" not in text
    assert "rater (not recorded)" in text  # a whole row label, never cut
    if columns < 100:  # the check ids give way to numbers, explained under the table
        assert "1 = identical_ratings (All ten items rated the same)" in " ".join(text.split())
    else:
        assert "┃ identical_ratings ┃" in text
