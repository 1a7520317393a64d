"""`ketascore model` from the command line: the JSON contract, CSV and table outputs, the
example study, ADaM input and bad input."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("scipy")

from ketascore.cli import cli

from conftest import EXAMPLE, ROOT

FEV = ROOT.parent / "shared" / "reference" / "analysis" / "fev_data.csv"
FEV_MODEL = [
    "--outcome", "FEV1", "--by", "ARMCD", "--factor", "RACE", "--factor", "SEX",
    "--terms", "ARMCD AVISIT ARMCD*AVISIT RACE SEX",
    "--ref", "ARMCD=PBO", "--ref", "RACE=Asian", "--ref", "SEX=Male",
]  # fmt: skip
CONTRACT = [
    "model", "n", "fit", "covariance", "fixed_effects", "type3", "lsmeans", "contrasts",
    "issues", "provenance",
]  # fmt: skip


def write_trial(
    path: Path,
    *,
    subjects: int = 40,
    visits: tuple[str, ...] = ("week1", "week2", "week4"),
    arms: tuple[str, ...] = ("placebo", "active"),
    seed: int = 11,
    edit: Any = None,
) -> Path:
    """A small synthetic long table: subject, visit, arm, baseline, change, response."""
    rng = random.Random(seed)
    rows = []
    for i in range(subjects):
        arm = arms[i % len(arms)]
        baseline = rng.randint(22, 40)
        subject_effect = rng.gauss(0, 3)
        for k, visit in enumerate(visits):
            effect = -2.0 * (k + 1) - (4.0 if arm == "active" else 0.0)
            change = round(effect + subject_effect + rng.gauss(0, 2) - 0.1 * (baseline - 30), 1)
            rows.append(
                {
                    "subject": f"S{i + 1:03d}",
                    "visit": visit,
                    "arm": arm,
                    "baseline": baseline,
                    "change": change,
                    "response": "Y" if change <= -baseline / 2 else "N",
                    "site": f"site{i % 3 + 1}",
                }
            )
    if edit is not None:
        rows = edit(rows)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, ["model", *args], catch_exceptions=False)


@pytest.fixture
def fev() -> Path:
    if not FEV.is_file():
        pytest.skip("../shared/reference/analysis is not present")
    return FEV


def test_json_contract_on_fev(runner: CliRunner, fev: Path) -> None:
    result = run(runner, str(fev), *FEV_MODEL, "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert list(data)[: len(CONTRACT)] == CONTRACT
    assert set(data["n"]) == {"subjects", "observations_used", "observations_read"}
    assert data["n"]["observations_used"] == 537 and data["n"]["observations_read"] == 800
    assert {"neg2_log_likelihood", "aic", "bic", "converged"} <= set(data["fit"])
    assert data["fit"]["converged"] is True
    assert round(data["fit"]["neg2_log_likelihood"], 4) == 3386.4499
    assert data["covariance"]["structure"] == "un"
    assert set(data["covariance"]["parameters"][0]) == {"name", "estimate"}
    assert set(data["fixed_effects"][0]) == {"term", "levels", "estimate", "se", "df", "t", "p"}
    assert set(data["type3"][0]) == {"term", "num_df", "den_df", "f", "p"}
    assert set(data["lsmeans"][0]) == {"visit", "group", "estimate", "se", "df", "lower", "upper"}
    keys = {"visit", "group", "reference", "estimate", "se", "df", "lower", "upper", "p"}
    assert set(data["contrasts"][0]) == keys
    vis4 = next(c for c in data["contrasts"] if c["visit"] == "VIS4")
    assert (vis4["group"], vis4["reference"]) == ("TRT", "PBO")
    assert round(vis4["estimate"], 4) == 4.3985  # SAS PROC MIXED
    assert data["provenance"]["inputs"][0]["file"] == str(fev)
    assert data["model"]["covariance"] == "un" and data["model"]["method"] == "REML"


def test_csv_of_lsmeans_and_contrasts(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "trial.csv")
    out = tmp_path / "out.csv"
    result = run(runner, str(table), "--by", "arm", "-o", str(out))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert list(rows[0]) == [
        "analysis", "table", "visit", "group", "reference", "estimate", "se", "df", "lower",
        "upper", "p",
    ]  # fmt: skip
    kinds = {(r["analysis"], r["table"]) for r in rows}
    assert kinds == {("mmrm", "lsmean"), ("mmrm", "contrast"), ("ancova", "lsmean"),
                     ("ancova", "contrast")}  # fmt: skip
    contrasts = [r for r in rows if r["table"] == "contrast" and r["analysis"] == "mmrm"]
    assert [r["visit"] for r in contrasts] == ["week1", "week2", "week4"]
    assert all(r["group"] == "placebo" and r["reference"] == "active" for r in contrasts)
    assert (tmp_path / "out.csv.provenance.json").is_file()


@pytest.mark.parametrize(("dose", "why"), [("x", "not a number"), ("nan", "not a finite")])
def test_a_dose_that_is_not_a_finite_number_is_a_usage_error(
    runner: CliRunner, tmp_path: Path, dose: str, why: str
) -> None:
    table = write_trial(tmp_path / "trial.csv")
    args = ("--by", "arm", "--dose", "placebo=0", "--dose", f"active={dose}")
    result = run(runner, str(table), *args)
    assert result.exit_code == 2 and f"--dose active={dose}: the dose is {why}" in result.output


def test_table_output_and_reference(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "trial.csv")
    result = run(runner, str(table), "--by", "arm", "--reference", "placebo", "--format", "table")
    assert result.exit_code == 0, result.output
    assert "LS means" in result.stdout
    assert "active - placebo" in result.stdout
    assert "ANCOVA of change at week4" in result.stdout
    assert "Hedges' g" in result.stdout


def test_responders_with_strata(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "trial.csv", subjects=60)
    result = run(
        runner, str(table), "--by", "arm", "--reference", "placebo", "--strata", "site",
        "--factor", "site", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (response,) = data["responders"]
    (comparison,) = response["comparisons"]
    assert comparison["group"] == "active" and comparison["reference"] == "placebo"
    assert comparison["cmh"]["strata"] == 3
    assert 0 <= comparison["fisher_p"] <= 1
    assert comparison["newcombe"]["lower"] < comparison["difference"]
    assert "site" in data["model"]["terms"]


def test_example_study_arms_at_day1(runner: CliRunner) -> None:
    result = run(
        runner, str(EXAMPLE), "--scale", "madrs", "--by", "arm", "--reference", "midazolam",
        "--visit", "day1", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"]["terms"] == ["arm", "visit", "arm*visit", "baseline"]
    assert data["model"]["primary_visit"] == "day1"
    assert data["n"]["subjects"] == 100
    day1 = [c for c in data["contrasts"] if c["visit"] == "day1"]
    assert {c["reference"] for c in day1} == {"midazolam"} and len(day1) == 4
    high = next(c for c in day1 if c["group"] == "ketamine 1.0 mg/kg")
    assert high["estimate"] < -5 and high["p"] < 0.001
    assert {r["outcome"] for r in data["responders"]} == {"response", "remission"}
    assert len(data["effect_sizes"]) == 4
    assert data["provenance"]["scales"][0]["id"] == "madrs"


def test_example_study_anxious_depression(runner: CliRunner) -> None:
    result = run(
        runner, str(EXAMPLE), "--scale", "hamd6", "--by", "hamd17.anxious_depression",
        "--visits", "day1,day3", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [c["visit"] for c in data["contrasts"]] == ["day1", "day3"]
    assert {(c["group"], c["reference"]) for c in data["contrasts"]} == {("yes", "no")}
    assert data["covariance"]["visits"] == ["day1", "day3"]
    assert data["model"]["primary_visit"] == "day3"


def test_adam_table_defaults(runner: CliRunner, tmp_path: Path) -> None:
    def adam(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for param in ("HAMD6", "MADRS"):
            for r in rows:
                out.append(
                    {
                        "USUBJID": r["subject"], "PARAMCD": param, "AVISIT": r["visit"],
                        "TRT01P": r["arm"], "BASE": r["baseline"],
                        "AVAL": r["baseline"] + r["change"], "CHG": r["change"],
                        "CRIT1FL": r["response"],
                    }
                )  # fmt: skip
        return out

    table = write_trial(tmp_path / "adqs.csv", edit=adam)
    result = run(runner, str(table), "--format", "json")
    assert result.exit_code == 2
    assert "several parameters (HAMD6, MADRS); choose one with --param" in result.output
    result = run(runner, str(table), "--param", "MADRS", "--format", "json")
    assert result.exit_code == 0, result.output
    model = json.loads(result.stdout)["model"]
    assert (model["subject"], model["visit"], model["outcome"], model["group"]) == (
        "USUBJID", "AVISIT", "CHG", "TRT01P",
    )  # fmt: skip
    assert model["terms"] == ["TRT01P", "AVISIT", "TRT01P*AVISIT", "BASE"]
    assert json.loads(result.stdout)["responders"][0]["outcome"] == "response"


# --- bad input ------------------------------------------------------------------------------


def test_group_with_one_level(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv", arms=("active",))
    result = run(runner, str(table), "--by", "arm")
    assert result.exit_code == 2
    assert "the group variable 'arm' has one level ('active')" in result.output
    assert "Traceback" not in result.output


def test_visit_without_data(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv")
    result = run(
        runner, str(table), "--by", "arm", "--visits", "week1,week2,week4,week8",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (issue,) = [i for i in data["issues"] if i["code"] == "model-visit-empty"]
    assert issue["visit"] == "week8"
    assert data["covariance"]["visits"] == ["week1", "week2", "week4"]


def test_missing_covariate_counts_rows_dropped(runner: CliRunner, tmp_path: Path) -> None:
    def blank(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows[:5]:
            r["baseline"] = ""
        return rows

    table = write_trial(tmp_path / "t.csv", edit=blank)
    result = run(runner, str(table), "--by", "arm", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["n"]["observations_used"] == 120 - 5
    messages = [i["message"] for i in data["issues"] if i["code"] == "model-rows-dropped"]
    assert "5 row(s) with an outcome have no baseline; not used in the model" in messages[0]


def test_singular_design(runner: CliRunner, tmp_path: Path) -> None:
    def copy(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["twice"] = 2 * r["baseline"]
        return rows

    table = write_trial(tmp_path / "t.csv", edit=copy)
    result = run(
        runner, str(table), "--by", "arm", "--covariate", "baseline", "--covariate", "twice",
        "--format", "json", "--analyses", "mmrm",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (issue,) = [i for i in data["issues"] if i["code"] == "model-singular"]
    assert "twice" in issue["message"]
    assert data["fit"]["converged"] is True


def test_one_visit_and_a_factor_of_one_level(runner: CliRunner, tmp_path: Path) -> None:
    # a term whose only level is its reference has no Type 3 hypothesis: it was an internal
    # error (a maximum over no eigenvalues), not a term left out of the Type 3 table
    table = write_trial(tmp_path / "t.csv", visits=("week1",))
    result = run(runner, str(table), "--by", "arm", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fit"]["converged"] is True
    assert [t["term"] for t in data["type3"]] == ["arm", "baseline"]
    assert [c["visit"] for c in data["contrasts"]] == ["week1"]

    def one_site(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "site": "site1"} for r in rows]

    table = write_trial(tmp_path / "s.csv", edit=one_site)
    result = run(runner, str(table), "--by", "arm", "--factor", "site", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert "site" not in [t["term"] for t in data["type3"]]
    assert [i["code"] for i in data["issues"]] == ["model-one-level"]


def test_two_rows_at_one_visit(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv", edit=lambda rows: [*rows, dict(rows[0])])
    result = run(runner, str(table), "--by", "arm")
    assert result.exit_code == 2
    assert "subject S001 has more than one row at visit week1" in result.output


def test_subject_in_two_groups(runner: CliRunner, tmp_path: Path) -> None:
    """A subject whose arm changes between visits was analysed in both groups, in silence;
    it is in no group, as `change --by` (and `model --scale`) treat it: an ambiguous-group
    error naming its rows, its rows left out with a count, the rest analysed, exit 1."""

    def switch(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[2]["arm"] = "active"  # S001 (placebo) at week4
        return rows

    table = write_trial(tmp_path / "t.csv", edit=switch)
    whole = json.loads(
        run(runner, str(write_trial(tmp_path / "w.csv")), "--by", "arm", "--format", "json").stdout
    )
    result = run(runner, str(table), "--by", "arm", "--format", "json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    (torn,) = [i for i in data["issues"] if i["code"] == "ambiguous-group"]
    assert torn["subject"] == "S001" and torn["severity"] == "error"
    assert "week1: placebo (row 1), week4: active (row 3)" in torn["message"]
    assert "model-rows-dropped" in [i["code"] for i in data["issues"]]
    assert data["n"]["observations_used"] == whole["n"]["observations_used"] - 3  # S001's
    assert data["n"]["subjects"] == whole["n"]["subjects"] - 1
    assert data["fit"]["converged"] is True


def test_text_covariate_is_named(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv")
    result = run(runner, str(table), "--by", "arm", "--covariate", "site")
    assert result.exit_code == 2
    assert "'site' is not numeric" in result.output and "--factor" in result.output


def test_bad_cells_at_the_primary_visit_name_the_tables_row(
    runner: CliRunner, tmp_path: Path
) -> None:
    # the per-visit analyses read a table of the primary visit's rows: a bad response flag
    # was reported at that table's row (2, not 6), and a text covariate or outcome that the
    # MMRM did not read (--analyses without mmrm) stopped with an internal error
    def bad(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[5]["response"] = "maybe"  # S002 at week4
        rows[8]["baseline"] = "high"  # S003 at week4
        return rows

    table = write_trial(tmp_path / "t.csv", edit=bad)
    result = run(runner, str(table), "--by", "arm", "--covariate", "none", "--response",
                 "response")  # fmt: skip
    assert result.exit_code == 2
    assert "response at row 6: 'maybe' is not a yes/no flag" in result.output
    for analyses in ("ancova", "effect"):
        result = run(runner, str(table), "--by", "arm", "--analyses", analyses)
        assert result.exit_code == 2, result.output
        assert "'baseline' is not numeric at row 9 ('high')" in result.output

    def text_outcome(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[6]["change"] = "abc"
        return rows

    table = write_trial(tmp_path / "o.csv", edit=text_outcome)
    for analyses in ("ancova", "effect", "responders"):
        result = run(runner, str(table), "--by", "arm", "--analyses", analyses)
        assert result.exit_code == 2, result.output
        assert "the outcome 'change' is not numeric at row 7 ('abc')" in result.output


def test_numbers_too_large_to_analyse(runner: CliRunner, tmp_path: Path) -> None:
    # an outcome of 1e300 overflowed (numpy warnings, then an internal error); a covariate of
    # 1e16 was taken for a combination of the others (a false model-not-hierarchical)
    def huge(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "change": f"{r['change']}e300"} for r in rows]

    table = write_trial(tmp_path / "t.csv", edit=huge)
    for analyses in ("mmrm,ancova,effect", "effect"):
        result = run(runner, str(table), "--by", "arm", "--analyses", analyses)
        assert result.exit_code == 2, result.output
        assert "the outcome 'change' at row 1 is " in result.output
        assert "too large to analyse" in result.output and "Warning" not in result.output

    def large(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "baseline": r["baseline"] * 10**15} for r in rows]

    table = write_trial(tmp_path / "c.csv", edit=large)
    result = run(runner, str(table), "--by", "arm")
    assert result.exit_code == 2, result.output
    assert "'baseline' at row 1 is " in result.output and "too large" in result.output


def test_outcome_or_subject_as_a_variable_of_the_model(runner: CliRunner, tmp_path: Path) -> None:
    # the outcome as a covariate gave a misleading model-not-converged ("try a simpler
    # covariance structure"); as a factor, a fit of one column per value that ran for minutes
    table = write_trial(tmp_path / "t.csv")
    for option in (["--covariate", "change"], ["--covariate", "CHANGE"], ["--factor", "change"],
                   ["--terms", "arm visit arm*visit change"]):  # fmt: skip
        result = run(runner, str(table), "--by", "arm", *option)
        assert result.exit_code == 2, result.output
        assert "the outcome 'change' is also named as an explanatory variable" in result.output
    result = run(runner, str(table), "--by", "arm", "--factor", "subject")
    assert result.exit_code == 2, result.output
    assert "the subject 'subject' is also named as an explanatory variable" in result.output


def test_unknown_column(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv")
    result = run(runner, str(table), "--by", "treatment")
    assert result.exit_code == 2
    assert "no column 'treatment'" in result.output


def test_without_the_stats_extra(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a)
    )
    result = run(runner, str(write_trial(tmp_path / "t.csv")), "--by", "arm")
    assert result.exit_code == 2
    assert "pip install 'ketascore[stats]'" in result.output


def test_non_convergence_is_an_issue_not_numbers(runner: CliRunner, tmp_path: Path) -> None:
    # every subject is seen at one visit only: the covariances of an unstructured matrix are
    # not identified, and the fit cannot converge
    def one_visit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        visits = ["week1", "week2", "week4"]
        return [r for r in rows if int(r["subject"][1:]) % 3 == visits.index(r["visit"])]

    table = write_trial(tmp_path / "t.csv", edit=one_visit)
    result = run(runner, str(table), "--by", "arm", "--analyses", "mmrm", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["fit"]["converged"] is False
    assert data["fit"]["neg2_log_likelihood"] is None
    assert data["lsmeans"] == [] and data["contrasts"] == [] and data["fixed_effects"] == []
    assert data["covariance"]["parameters"] == []
    (issue,) = data["issues"]
    assert issue["code"] == "model-not-converged" and issue["severity"] == "error"
    assert "no estimates are reported" in issue["message"]


def test_outcome_of_zeros_is_not_converged(runner: CliRunner, tmp_path: Path) -> None:
    # every change 0 and every baseline 0: X'V^-1X became singular during the fit, an
    # internal error; then the fit was not converged ("try a simpler covariance
    # structure"); now the model is said to fit the outcome exactly, and reports no numbers
    def zeros(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, "change": 0, "baseline": 0} for r in rows]

    table = write_trial(tmp_path / "t.csv", edit=zeros)
    for covariance in ("un", "csh"):
        result = run(
            runner, str(table), "--by", "arm", "--analyses", "mmrm", "--covariance", covariance,
            "--format", "json",
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        data = json.loads(result.stdout)
        assert data["fit"]["converged"] is False and data["lsmeans"] == []
        (issue,) = [i for i in data["issues"] if i["code"] == "model-exact-fit"]
        assert issue["message"].startswith("the model fits change exactly")
        assert "model-not-converged" not in [i["code"] for i in data["issues"]]


def test_report_has_the_efficacy_section(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = runner.invoke(
        cli,
        [
            "report", str(EXAMPLE), "--scale", "madrs", "--by", "arm", "--visit", "day1",
            "--no-plots", "--model", "-o", str(out),
        ],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    assert "<h3>Efficacy analysis</h3>" in text
    assert "MMRM: differences in LS means" in text
    assert "ANCOVA of change at day1" in text


def test_parquet_and_xpt_tables_give_the_same_model(runner: CliRunner, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    from ketascore.readers.xpt import Variable, write_xport

    source = write_trial(tmp_path / "trial.csv")
    rows = list(csv.DictReader(source.read_text(encoding="utf-8").splitlines()))
    columns = ["subject", "visit", "arm", "baseline", "change"]
    numeric = {"baseline", "change"}
    pq.write_table(
        pa.table({c: [float(r[c]) if c in numeric else r[c] for r in rows] for c in columns}),
        tmp_path / "trial.parquet",
    )
    with open(tmp_path / "trial.xpt", "wb") as fh:
        write_xport(
            fh,
            "ADQS",
            [Variable(c, numeric=c in numeric, length=8 if c in numeric else 20) for c in columns],
            [[float(r[c]) if c in numeric else r[c] for c in columns] for r in rows],
        )
    outputs = []
    for name in ("trial.csv", "trial.parquet", "trial.xpt"):
        result = run(runner, str(tmp_path / name), "--by", "arm", "--format", "json")
        assert result.exit_code == 0, (name, result.output)
        data = json.loads(result.stdout)
        outputs.append((data["fit"]["neg2_log_likelihood"], data["contrasts"]))
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_screening_visit_is_not_a_repeated_measure(runner: CliRunner, tmp_path: Path) -> None:
    """A visit before the baseline (study day -7) has no change from baseline, so the MMRM
    of change analyses the visits after the baseline only."""
    rng = random.Random(5)
    lines = ["subject,visit,day,arm," + ",".join(f"phq9_{i}" for i in range(1, 10))]
    for s in range(24):
        arm = ("placebo", "active")[s % 2]
        base = [rng.randint(1, 3) for _ in range(9)]
        for visit, day, drop in (("screening", -7, 0), ("baseline", 0, 0), ("week1", 7, 1),
                                 ("week2", 14, 2)):  # fmt: skip
            extra = drop + (arm == "active")
            answers = [max(0, b - rng.randint(0, extra)) for b in base]
            lines.append(f"S{s},{visit},{day},{arm}," + ",".join(map(str, answers)))
    table = tmp_path / "phq9.csv"
    table.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run(runner, str(table), "--scale", "phq9", "--by", "arm", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["covariance"]["visits"] == ["week1", "week2"]
    assert data["n"]["observations_used"] == 48
    args = ("--scale", "phq9", "--by", "arm", "--outcome", "value", "--format", "json")
    result = run(runner, str(table), *args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["covariance"]["visits"] == ["week1", "week2"]


def test_levels_spelled_two_ways_are_reported(runner: CliRunner, tmp_path: Path) -> None:
    """A factor's levels that differ only by case or spacing (site 'north' and 'North')
    are analysed as written, with a warning naming them."""

    def sites(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            r["site"] = ("north", "North", "south")[int(r["subject"][1:]) % 3]
        return rows

    table = write_trial(tmp_path / "t.csv", edit=sites)
    result = run(runner, str(table), "--by", "arm", "--factor", "site", "--format", "json")
    assert result.exit_code == 0, result.output
    (issue,) = [i for i in json.loads(result.stdout)["issues"] if i["code"] == "level-spelling"]
    assert issue["message"].startswith("site has levels 'North', 'north' that differ only")


def test_levels_are_in_the_same_order_in_every_run() -> None:
    """Levels that natural order does not tell apart are ordered by their text, whatever
    the run's string hashing (a set's order, and so the reference level, changed with it)."""
    code = (
        "from ketascore.analysis.longdata import natural_levels; "
        "print(natural_levels(['north', 'North', 'NORTH', 'south', 'n orth']))"
    )
    seen = set()
    for seed in ("1", "2", "3", "4"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        seen.add(out.stdout.strip())
    assert seen == {"['n orth', 'NORTH', 'North', 'north', 'south']"}


def scaled(column: str, factor: float) -> Any:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{**r, column: float(r[column]) * factor} for r in rows]

    return edit


def fit_summary(runner: CliRunner, table: Path) -> dict[str, Any]:
    result = run(runner, str(table), "--by", "arm", "--covariate", "baseline", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fit"]["converged"] is True and not data["issues"]
    return {
        "type3": {t["term"]: (t["f"], t["p"]) for t in data["type3"]},
        "ancova": {t["term"]: (t["f"], t["p"]) for t in data["ancova"]["type3"]},
        "lsmeans": [m["estimate"] for m in data["lsmeans"]],
        "baseline": next(f["estimate"] for f in data["fixed_effects"] if f["term"] == "baseline"),
    }


@pytest.mark.parametrize("factor", [1e-14, 1e-6, 1e4, 1e10])
def test_an_outcome_in_other_units_gives_the_same_tests(
    runner: CliRunner, tmp_path: Path, factor: float
) -> None:
    """Tolerances relative to the data, not absolute: an outcome in units of 1e-8 lost every
    Type 3 test without a word (an absolute rank tolerance), and one of 1e-14 did not
    converge (an absolute floor on the starting variances). Scaling the outcome scales the
    estimates and leaves every test as it was."""
    plain = fit_summary(runner, write_trial(tmp_path / "plain.csv"))
    other = fit_summary(runner, write_trial(tmp_path / "scaled.csv", edit=scaled("change", factor)))
    for key in ("type3", "ancova"):
        assert other[key].keys() == plain[key].keys()
        for term, (f, p) in plain[key].items():
            assert other[key][term] == (pytest.approx(f, rel=1e-6), pytest.approx(p, rel=1e-5))
    assert other["lsmeans"] == pytest.approx([m * factor for m in plain["lsmeans"]], rel=1e-6)


@pytest.mark.parametrize("factor", [1e-15, 1e-6, 1e6, 1e12])
def test_a_covariate_in_other_units_gives_the_same_tests(
    runner: CliRunner, tmp_path: Path, factor: float
) -> None:
    """A covariate measured in large units lost its Type 3 test without a word; in units of
    1e-20 it was taken for a combination of the others (an absolute tolerance)."""
    plain = fit_summary(runner, write_trial(tmp_path / "plain.csv"))
    other = fit_summary(
        runner, write_trial(tmp_path / "scaled.csv", edit=scaled("baseline", factor))
    )
    for key in ("type3", "ancova"):
        assert other[key].keys() == plain[key].keys()
        for term, (f, p) in plain[key].items():
            assert other[key][term] == (pytest.approx(f, rel=1e-6), pytest.approx(p, rel=1e-5))
    assert other["lsmeans"] == pytest.approx(plain["lsmeans"], rel=1e-6)
    assert other["baseline"] == pytest.approx(plain["baseline"] / factor, rel=1e-6)


def test_a_covariate_too_small_to_analyse_is_named(runner: CliRunner, tmp_path: Path) -> None:
    table = write_trial(tmp_path / "t.csv", edit=scaled("baseline", 1e-17))
    result = run(runner, str(table), "--by", "arm", "--covariate", "baseline")
    assert result.exit_code == 2
    assert "every value of the covariate 'baseline' is below 1e-15" in result.output
    assert "express the column in other units" in result.output


def test_the_order_of_the_rows_does_not_matter(runner: CliRunner, tmp_path: Path) -> None:
    """Every number of the efficacy table is a function of the rows, not of their order (a
    table sorted by visit, by arm, or not at all)."""

    def shuffled(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        random.Random(5).shuffle(rows)
        return rows

    outputs = []
    for name, edit in (("plain", None), ("shuffled", shuffled)):
        table = write_trial(tmp_path / f"{name}.csv", edit=edit)
        args = ("--by", "arm", "--covariate", "baseline", "--response", "response")
        result = run(runner, str(table), *args, "--format", "json")
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        del data["provenance"], data["model"]["source"]  # (the file's name)
        outputs.append(data)
    plain, other = outputs
    assert _close(other, plain)


def _close(a: Any, b: Any) -> bool:
    """Equal, numbers within 1e-9 relative (sums of squares in another order round
    otherwise in the last digits)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return bool(a == b)


@pytest.mark.parametrize("covariance", ["cs", "csh", "ar1", "arh1", "toep", "toeph"])
def test_every_structure_fits_an_outcome_in_other_units(
    runner: CliRunner, tmp_path: Path, covariance: str
) -> None:
    """The heterogeneous structures (CSH, ARH(1), TOEPH) did not converge on an outcome in
    units of 1e-4 (their numerical derivatives stepped by at least 1e-6, more than such a
    variance) or of 1e4 (the Hessian's eigenvalues then span 20 orders of magnitude, and the
    test of positive definiteness failed on rounding). The tests are the same to SAS's
    convergence criterion, which is relative to -2 log L and so stops at a slightly
    different iteration in other units."""

    def fit(table: Path) -> dict[str, float]:
        result = run(
            runner, str(table), "--by", "arm", "--covariance", covariance, "--format", "json"
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["fit"]["converged"] is True and not data["issues"], data["issues"]
        return {t["term"]: t["f"] for t in data["type3"]}

    plain = fit(write_trial(tmp_path / "plain.csv"))
    for factor in (1e-4, 1e4):
        other = fit(write_trial(tmp_path / f"{factor}.csv", edit=scaled("change", factor)))
        assert other == pytest.approx(plain, rel=1e-3)
