"""Issue 17, item 6: the ADaM output is complete. STUDYID comes from --study-id or from the
data (SDTM STUDYID, a carried study id field), the group of --by is carried in its own
column, and a table without a study id says so. The SAS transport file is read back with
pyreadstat, a reader no one here wrote."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.writers.adam import COLUMNS, group_column

from conftest import DATA, EXAMPLE


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_study_id_from_the_option_and_the_group_column(runner: CliRunner) -> None:
    result = runner.invoke(
        cli,
        ["change", str(EXAMPLE / "hamd6.csv"), "--scale", "hamd6", "--by", "arm",
         "--format", "adam", "--study-id", "KET-TRD-01"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = _rows(result.stdout)
    header = next(csv.reader(io.StringIO(result.stdout)))
    assert header[:3] == ["STUDYID", "USUBJID", "ARM"] and header[3:] == list(COLUMNS[2:])
    assert {r["STUDYID"] for r in rows} == {"KET-TRD-01"}
    kt001 = [r for r in rows if r["USUBJID"] == "KT-001"]
    assert {r["ARM"] for r in kt001} == {"ketamine 0.1 mg/kg"}
    assert "no-study-id" not in result.stderr


def test_study_id_from_the_data_and_a_warning_without_one(runner: CliRunner) -> None:
    sdtm = runner.invoke(
        cli,
        ["change", str(DATA / "formats" / "sdtm-qs.csv"), "--scale", "phq9", "--format", "adam"],
    )
    assert {r["STUDYID"] for r in _rows(sdtm.stdout)} == {"KET-01"}  # SDTM STUDYID
    plain = runner.invoke(
        cli, ["change", str(EXAMPLE / "hamd6.csv"), "--scale", "hamd6", "--format", "adam"]
    )
    assert {r["STUDYID"] for r in _rows(plain.stdout)} == {""}
    assert plain.exit_code == 0  # a warning
    assert (
        "warning[no-study-id] hamd6: no record carries a study id, so STUDYID is empty; give "
        "it with --study-id (or carry a study_id field on the records)" in plain.stderr
    )


def test_study_id_applies_to_adam_only(runner: CliRunner) -> None:
    result = runner.invoke(
        cli, ["change", str(EXAMPLE), "--scale", "madrs", "--study-id", "X", "--format", "csv"]
    )
    assert result.exit_code == 2
    assert "--study-id applies to the ADaM output" in result.stderr


def test_group_column_names() -> None:
    assert group_column("arm") == "ARM"
    assert group_column("TRT01P") == "TRT01P"
    assert group_column("hamd17.anxious_depression") == "GROUP"
    assert group_column("treatment_arm") == "GROUP"  # more than 8 characters
    assert group_column("avisit") == "GROUP"  # a column of the table already


def test_sas_transport_with_the_group_column(runner: CliRunner, tmp_path: Path) -> None:
    pyreadstat = pytest.importorskip("pyreadstat")
    out = tmp_path / "adqs.xpt"
    result = runner.invoke(
        cli,
        ["change", str(EXAMPLE), "--scale", "madrs", "--by", "hamd17.anxious_depression",
         "--study-id", "KET-TRD-01", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame, meta = pyreadstat.read_xport(str(out))
    assert list(frame.columns)[:3] == ["STUDYID", "USUBJID", "GROUP"]
    assert meta.column_labels[2] == "Group: hamd17.anxious_depression"
    assert set(frame["GROUP"]) == {"yes", "no"} and set(frame["STUDYID"]) == {"KET-TRD-01"}
