"""Class 4 of issue #16: outputs never destroy.

-o, --provenance, --pdf and the provenance sidecar never overwrite a file the command
reads (answer files, --scale, --map, --windows, data dictionaries, questionnaires), two
outputs never share a path, a device, a fifo or a link to one is never replaced, an
existing output keeps its permissions, and an output and its sidecar appear together or
not at all."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from ketascore.cli import cli

ROOT = Path(__file__).resolve().parents[2]
FORMATS = ROOT / "tests" / "data" / "formats"
PHQ9 = ",".join(f"phq9_{i}" for i in range(1, 10))


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """A folder of inputs and option files, each holding its own text to compare after."""
    (tmp_path / "ratings.csv").write_text(
        f"subject,visit,day,{PHQ9}\nS1,baseline,0,2,2,2,2,2,2,2,2,2\nS1,day1,1,1,1,1,1,1,1,1,1,1\n"
    )
    shutil.copy(ROOT / "scales" / "phq9.yaml", tmp_path / "my-phq9.yaml")
    (tmp_path / "windows.yaml").write_text(
        "windows:\n  - {name: baseline, from: -7, to: 0, target: 0}\n"
        "  - {name: day1, from: 1, to: 3, target: 1}\n"
    )
    shutil.copy(FORMATS / "mapped-phq9.yaml", tmp_path / "map.yaml")
    shutil.copy(FORMATS / "mapped-phq9.csv", tmp_path / "mapped.csv")
    shutil.copy(FORMATS / "redcap-phq9-dictionary.csv", tmp_path / "dict.csv")
    shutil.copy(FORMATS / "redcap-phq9.csv", tmp_path / "export.csv")
    shutil.copy(FORMATS / "fhir-questionnaire-ordinal.json", tmp_path / "q.json")
    shutil.copy(FORMATS / "fhir-ordinal-response.json", tmp_path / "r.json")
    return tmp_path


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["score", "ratings.csv", "-o"], "ratings.csv"),
        (["score", "ratings.csv", "--format", "csv", "--provenance"], "ratings.csv"),
        (["score", "ratings.csv", "--scale", "my-phq9.yaml", "-o"], "my-phq9.yaml"),
        (
            ["score", "ratings.csv", "--scale", "my-phq9.yaml", "--format", "csv", "--provenance"],
            "my-phq9.yaml",
        ),
        (["score", "mapped.csv", "--map", "map.yaml", "-o"], "map.yaml"),
        (["score", "export.csv", "--redcap-dictionary", "dict.csv", "-o"], "dict.csv"),
        (["score", "r.json", "--questionnaire", "q.json", "-o"], "q.json"),
        (
            ["change", "ratings.csv", "--scale", "phq9", "--windows", "windows.yaml", "-o"],
            "windows.yaml",
        ),
        (["change", "ratings.csv", "--scale", "my-phq9.yaml", "-o"], "my-phq9.yaml"),
        (
            ["change", "mapped.csv", "--scale", "phq9", "--map", "map.yaml", "--provenance"],
            "map.yaml",
        ),
        (["sql", "my-phq9.yaml", "-o"], "my-phq9.yaml"),
    ],
)
def test_an_output_never_overwrites_a_file_the_command_reads(
    runner: CliRunner,
    study: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    target: str,
) -> None:
    monkeypatch.chdir(study)
    before = _snapshot(study)
    result = runner.invoke(cli, [*args, target])
    assert result.exit_code == 2, result.output
    assert "refusing to write" in result.stderr
    assert _snapshot(study) == before


def test_an_output_reached_by_a_link_or_inside_an_input_folder(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(study)
    (study / "out.json").symlink_to(study / "ratings.csv")
    os.link(study / "map.yaml", study / "hard.yaml")
    before = _snapshot(study)
    for args in (
        ["score", "ratings.csv", "-o", "out.json"],
        ["score", "mapped.csv", "--map", "map.yaml", "-o", "hard.yaml"],
        ["score", ".", "-o", "scores.json"],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2 and "refusing to write" in result.stderr, args
    assert _snapshot(study) == before


@pytest.mark.parametrize(
    "args",
    [
        ["score", "ratings.csv", "-o", "x.json", "--provenance", "x.json"],
        ["score", "ratings.csv", "-o", "x.csv", "--provenance", "x.csv.provenance.json"],
        ["change", "ratings.csv", "--scale", "phq9", "-o", "x.csv", "--provenance", "x.csv"],
        [
            "change",
            "ratings.csv",
            "--scale",
            "phq9",
            "--format",
            "adam",
            "-o",
            "x.xpt",
            "--provenance",
            "./x.xpt.provenance.json",
        ],
        [
            "report",
            "ratings.csv",
            "--scale",
            "phq9",
            "--no-plots",
            "-o",
            "r.html",
            "--pdf",
            "r.html",
        ],
    ],
)
def test_two_outputs_never_share_a_path(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(study)
    before = _snapshot(study)
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "written twice" in result.stderr or "--pdf is drawn" in result.stderr
    assert _snapshot(study) == before


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="fifos")
@pytest.mark.parametrize("option", ["-o", "--provenance"])
def test_a_fifo_or_a_link_to_one_is_never_replaced(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch, option: str
) -> None:
    monkeypatch.chdir(study)
    os.mkfifo("pipe.csv")
    Path("link.csv").symlink_to(study / "pipe.csv")
    for target in ("pipe.csv", "link.csv"):
        result = runner.invoke(
            cli, ["change", "ratings.csv", "--scale", "phq9", "--format", "csv", option, target]
        )
        assert result.exit_code == 2 and "not a regular file" in result.stderr
    assert stat.S_ISFIFO(os.lstat("pipe.csv").st_mode) and Path("link.csv").is_symlink()


def test_a_link_to_a_regular_file_is_followed_and_kept(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(study)
    (study / "results").mkdir()
    Path("latest.csv").symlink_to(study / "results" / "run1.csv")  # (dangling until written)
    result = runner.invoke(cli, ["score", "ratings.csv", "-o", "latest.csv", "-q"])
    assert result.exit_code == 0, result.output
    assert Path("latest.csv").is_symlink()
    assert (study / "results" / "run1.csv").read_text().startswith("subject,visit")
    assert Path("latest.csv.provenance.json").exists()  # beside the name given


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_an_existing_output_keeps_its_permissions(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch, mode: int
) -> None:
    monkeypatch.chdir(study)
    for name in ("scores.csv", "scores.csv.provenance.json"):
        Path(name).write_text("old\n")
        os.chmod(name, mode)
    result = runner.invoke(cli, ["score", "ratings.csv", "-o", "scores.csv", "-q"])
    assert result.exit_code == 0, result.output
    for name in ("scores.csv", "scores.csv.provenance.json"):
        assert stat.S_IMODE(os.stat(name).st_mode) == mode, name
        assert Path(name).read_text() != "old\n"


def test_an_output_and_its_sidecar_appear_together_or_not_at_all(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sidecar fails to be written: the output is not written either (and an old pair
    is kept as it was)."""
    import ketascore.writers.outputs as outputs

    monkeypatch.chdir(study)
    real = outputs.Output

    def failing(path: Path, write: object, **kwargs: object) -> object:
        if str(path).endswith(".provenance.json"):

            def fail(fh: object) -> None:
                raise OSError(28, "No space left on device")

            return real(path, fail, **kwargs)  # type: ignore[arg-type]
        return real(path, write, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs, "Output", failing)
    before = _snapshot(study)
    for args in (
        ["score", "ratings.csv", "-o", "new.csv"],
        ["change", "ratings.csv", "--scale", "phq9", "--format", "adam", "-o", "new.xpt"],
        [
            "change",
            "ratings.csv",
            "--scale",
            "phq9",
            "--format",
            "csv",
            "--provenance",
            "p.json",
            "-o",
            "new2.csv",
        ],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "No space left on device" in result.stderr
        assert _snapshot(study) == before
    assert not [p for p in study.iterdir() if p.name.startswith(".")]


def test_a_report_and_its_pdf_appear_together(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    import ketascore.writers.outputs as outputs

    monkeypatch.chdir(study)
    real = os.replace

    def replace(src: str, dst: object) -> None:
        if str(dst).endswith(".pdf"):
            raise OSError(5, "Input/output error")
        real(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(outputs.os, "replace", replace)
    result = runner.invoke(
        cli, ["report", "ratings.csv", "--scale", "phq9", "-o", "r.html", "--pdf", "r.pdf"]
    )
    assert result.exit_code == 2 and "Input/output error" in result.stderr
    assert not Path("r.html").exists() and not Path("r.pdf").exists()


def test_outputs_still_write_normally(
    runner: CliRunner, study: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(study)
    for args, files in (
        (["score", "ratings.csv", "-o", "a.json"], ["a.json"]),
        (
            ["score", "ratings.csv", "-o", "a.csv", "--provenance", "p.json"],
            ["a.csv", "a.csv.provenance.json", "p.json"],
        ),
        (
            ["change", "ratings.csv", "--scale", "phq9", "--format", "adam", "-o", "a.xpt"],
            ["a.xpt", "a.xpt.provenance.json"],
        ),
        (
            [
                "change",
                "ratings.csv",
                "--scale",
                "phq9",
                "--format",
                "table",
                "--provenance",
                "t.json",
            ],
            ["t.json"],
        ),
        (["sql", "phq9", "-o", "q.sql"], ["q.sql"]),
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (args, result.output)
        for name in files:
            assert Path(name).stat().st_size > 0, name
    provenance = json.loads(Path("a.xpt.provenance.json").read_text())
    assert provenance["command"] == "ketascore change"
    assert Path("a.xpt").read_bytes().startswith(b"HEADER RECORD*******LIBRARY HEADER RECORD")
