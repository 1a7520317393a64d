"""`ketascore scales show | check | new`: the card (golden files), one test per defect that
`scales check` finds (exact message and exit status), and the starter scale."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ketascore.cli import cli
from ketascore.core.library import builtin_ids, load_builtin

from conftest import ROOT, check_golden

SCALES = "tests/data/scales"


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


def run(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(cli, list(args), catch_exceptions=False)


# ---- scales check: one test per defect ------------------------------------------------

DEFECTS = {
    "schema": [
        f"{SCALES}/schema.yaml:17:18: scores[0].bands_sorce: unknown key 'bands_sorce'",
    ],
    "wrong-type": [
        f"{SCALES}/wrong-type.yaml:10:39: items[1].range[1]: expected a number, got 'three'",
    ],
    "yaml-syntax": [
        f"{SCALES}/yaml-syntax.yaml:12:1: while parsing a flow mapping: did not find expected "
        "',' or '}'",
    ],
    "bands-overlap": [
        f"{SCALES}/bands-overlap.yaml:20:27: scores[0].bands[1].min: bands 'low' (0-3) and "
        "'mid' (3-6) overlap",
    ],
    "bands-gap": [
        f"{SCALES}/bands-gap.yaml:21:28: scores[0].bands[2].min: gap between bands 'mid' "
        "(ends at 6) and 'high' (starts at 8)",
    ],
    "bands-range": [
        f"{SCALES}/bands-range.yaml:19:27: scores[0].bands[0].min: the first band starts at 1 "
        "but the score's minimum is 0",
    ],
    "bands-short": [
        f"{SCALES}/bands-short.yaml:21:36: scores[0].bands[2].max: the last band ends at 8 but "
        "the score's maximum is 9",
    ],
    "unknown-item": [
        f"{SCALES}/unknown-item.yaml:15:16: scores[0].of[2]: unknown item or score '4'",
    ],
    "declared-range": [
        f"{SCALES}/declared-range.yaml:16:12: scores[0].range: declared range 0-10 differs "
        "from the range computed from the items, 0-9",
    ],
    "example-fails": [
        f"{SCALES}/example-fails.yaml:23:5: examples[0] (Boundary of mid): score total: "
        "expected 5, got 4",
    ],
    "no-examples": [
        f"{SCALES}/no-examples.yaml: examples: the scale has no worked examples; add at least "
        "one so that its rules are tested",
    ],
    "shadow": [
        f"{SCALES}/shadow.yaml:2:5: id: 'phq9' is the id of a built-in scale; choose another "
        "id, or pass --allow-shadow to use this file in its place",
    ],
}


@pytest.mark.parametrize("name", sorted(DEFECTS))
def test_check_reports_each_defect_exactly(runner: CliRunner, name: str) -> None:
    path = f"{SCALES}/{name}.yaml"
    result = run(runner, "scales", "check", path)
    expected = DEFECTS[name]
    summary = f"{path}: {len(expected)} problem{'s' if len(expected) != 1 else ''}"
    assert result.output.splitlines() == [*expected, summary]
    assert result.exit_code == 1


def test_every_defect_file_differs_from_the_valid_base_by_its_defect(runner: CliRunner) -> None:
    result = run(runner, "scales", "check", f"{SCALES}/tiny.yaml")
    assert (result.exit_code, result.output) == (0, f"{SCALES}/tiny.yaml: ok\n")


def test_shadowing_a_builtin_is_allowed_with_the_flag(runner: CliRunner) -> None:
    result = run(runner, "scales", "check", "--allow-shadow", f"{SCALES}/shadow.yaml")
    assert (result.exit_code, result.output) == (0, f"{SCALES}/shadow.yaml: ok\n")


def test_a_builtin_file_itself_does_not_shadow(runner: CliRunner) -> None:
    result = run(runner, "scales", "check", "scales/phq9.yaml", "scales/cssrs.yaml")
    assert result.exit_code == 0
    assert result.output == "scales/phq9.yaml: ok\nscales/cssrs.yaml: ok\n"


def test_all_problems_of_all_files_are_reported_at_once(runner: CliRunner) -> None:
    several = f"{SCALES}/several.yaml"
    result = run(runner, "scales", "check", several, f"{SCALES}/tiny.yaml", f"{SCALES}/schema.yaml")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{several}:17:12: scores[0].range: declared range 0-12 differs from the range computed "
        "from the items, 0-9",
        f"{several}:21:27: scores[0].bands[1].min: bands 'low' (0-3) and 'mid' (3-6) overlap",
        f"{several}:25:13: scores[1].of[1]: unknown item or score '4'",
        f"{several}:18:19: scores[0].bands_source: unknown citation key 'source'",
        f"{several}: 4 problems",
        f"{SCALES}/tiny.yaml: ok",
        *DEFECTS["schema"],
        f"{SCALES}/schema.yaml: 1 problem",
    ]


def test_check_of_a_missing_file_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["scales", "check", f"{SCALES}/no-such-file.yaml"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_check_of_an_unreadable_file_reports_it(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"id: caf\xe9\n")
    result = run(runner, "scales", "check", str(bad))
    assert result.exit_code == 1
    assert result.output.startswith(f"{bad}: cannot read the file: ")


def test_every_builtin_scale_passes_check(runner: CliRunner) -> None:
    paths = [f"scales/{i}.yaml" for i in builtin_ids()]
    result = run(runner, "scales", "check", *paths)
    assert result.exit_code == 0, result.output
    assert result.output == "".join(f"{p}: ok\n" for p in paths)


# ---- scales show ------------------------------------------------------------------------


@pytest.mark.parametrize("scale", ["cssrs", "shaps", "gad7", "bprs"])
def test_show_table_golden(runner: CliRunner, scale: str) -> None:
    result = run(runner, "scales", "show", scale, "--format", "table")
    assert result.exit_code == 0
    check_golden(f"scales-show-{scale}.txt", result.output)


def test_show_table_of_a_user_file_golden(runner: CliRunner) -> None:
    result = run(runner, "scales", "show", f"{SCALES}/example-mood.yaml", "--format", "table")
    assert result.exit_code == 0
    check_golden("scales-show-example-mood.txt", result.output)


def test_show_json_golden(runner: CliRunner) -> None:
    result = run(runner, "scales", "show", f"{SCALES}/example-mood.yaml", "--format", "json")
    assert result.exit_code == 0
    # stored indented, so that a change to the card reads as a small diff
    pretty = json.dumps(json.loads(result.output), indent=2, ensure_ascii=False) + "\n"
    check_golden("scales-show-example-mood-json.txt", pretty)


def test_show_json_is_the_default_when_piped(runner: CliRunner) -> None:
    result = run(runner, "scales", "show", "gad7")
    assert json.loads(result.output)["id"] == "gad7"


@pytest.mark.parametrize("scale_id", builtin_ids())
def test_every_part_of_a_scale_appears_on_its_card(scale_id: str) -> None:
    wide = CliRunner(env={"COLUMNS": "3000", "NO_COLOR": "1", "TERM": "dumb"})
    d = load_builtin(scale_id).definition
    data = json.loads(run(wide, "scales", "show", scale_id, "--format", "json").output)
    table = run(wide, "scales", "show", scale_id, "--format", "table").output

    assert data["licence"]["status"] == d.licence.status
    assert f"Licence: {d.licence.status}" in table
    assert d.description is None or d.description in table
    assert [i["id"] for i in data["items"]] == [i.id for i in d.items]
    assert [s["id"] for s in data["scores"]] == [s.id for s in d.scores]
    assert [c["key"] for c in data["citations"]] == [c.key for c in d.citations]
    assert [f["id"] for f in data["flags"]] == [f.id for f in d.flags]
    assert [c["id"] for c in data["classifications"]] == [c.id for c in d.classifications]
    assert [e["description"] for e in data["examples"]] == [e.description for e in d.examples]
    assert data["answer_sets"].keys() == d.answer_sets.keys()
    for item in d.items:
        assert f"│ {item.id} " in table and item.label in table
        for code in item.missing_codes:
            assert code.label is None or code.label in table
    for answers in d.answer_sets.values():
        for answer in answers:
            assert f"│ {answer.label} " in table
    for score in d.scores:
        card = next(s for s in data["scores"] if s["id"] == score.id)
        assert f"│ {score.id} " in table and score.label in table
        assert card["formula"] in table
        assert card["missing"]["text"] in table
        assert [b["label"] for b in card["bands"]] == [b.label for b in score.bands]
        for band in score.bands:
            assert band.label in table
        if score.bands_source:
            assert f"[{score.bands_source}]" in table
        if score.response is not None:
            assert f"response: >= {score.response.reduction_percent}% reduction" in table
        if score.remission is not None:
            assert "remission: <" in table
        if score.applies_when is not None:
            assert f"only when {card['applies_when']}; otherwise not applicable" in table
    for flag in d.flags:
        assert f"Flag {flag.id}: " in table
    for cls in d.classifications:
        assert f"Classification {cls.id}: " in table
    for citation in d.citations:
        assert f"[{citation.key}] {' '.join(citation.text.split())}" in " ".join(table.split())
        assert citation.doi is None or f"doi:{citation.doi}" in table
        assert citation.url is None or citation.url in table
    for example in d.examples:
        assert example.description in table
    assert f"File: scales/{scale_id}.yaml" in table


def test_show_lists_answer_codes_and_item_codes(runner: CliRunner) -> None:
    data = json.loads(run(runner, "scales", "show", "gad7", "--format", "json").output)
    assert data["codes"] == {"loinc": "69737-5", "cdisc_category": "GAD-7 V2", "cdisc_domain": "QS"}
    first = data["items"][0]
    assert first["codes"] == {"loinc": "69725-0", "cdisc": "GAD0201"}
    assert first["answer_set"] == "frequency"
    assert first["answers"][1] == {"value": 1, "label": "Several days", "code": "LA6569-3"}
    assert data["scores"][0]["codes"] == {"loinc": "70274-6", "cdisc": "GAD0208"}


def test_show_describes_terms_and_missing_rules(runner: CliRunner) -> None:
    data = json.loads(
        run(runner, "scales", "show", f"{SCALES}/example-mood.yaml", "--format", "json").output
    )
    scores = {s["id"]: s for s in data["scores"]}
    assert scores["mood"]["formula"] == "sum of item 1, item 2, item 3, item 4 reversed, item 5"
    assert scores["mood"]["terms"][3] == {
        "ref": "4",
        "kind": "item",
        "recode": None,
        "reverse": True,
        "weight": 1,
    }
    assert scores["mood"]["terms"][4]["kind"] == "alternative"
    assert scores["mood"]["missing"] == {
        "text": "at least 4 of 5 items answered; prorated: sum x (maximum of all) / (maximum "
        "of those answered); a prorated total is rounded half up to a whole number",
        "required": 4,
        "of": 5,
        "method": "prorate_max",
        "rounding": {"method": "half_up", "decimals": 0},
        "source": "manual",
    }
    assert scores["frequent"]["formula"] == (
        "sum of items 1, 2, 3, each recoded {0->0, 1->0, 2->1, 3->1}"
    )
    assert scores["core"]["formula"] == "sum of items 1, 2, each x2"
    assert scores["energy"]["missing"]["text"] == (
        "at least 1 of 2 items answered (mean of those answered); the mean is rounded half up "
        "to 1 decimal"
    )
    assert scores["urge_strength"]["applies_when"] == "item selfharm = 1"
    assert data["classifications"][0]["source"] == "trial"


def test_show_formula_of_max_with_weights_and_of_scores() -> None:
    from ketascore.present.card import formula

    assert formula(load_builtin("cssrs"), "ideation_severity") == (
        "max of item 1, item 2 x2, item 3 x3, item 4 x4, item 5 x5"
    )
    assert formula(load_builtin("qids-sr16"), "appetite_weight") == "max of appetite, weight"
    assert formula(load_builtin("cgi-s"), "severity") == "the value of item 1"


def test_show_unknown_scale_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["scales", "show", "gad-7"])
    assert result.exit_code == 2
    assert "unknown scale 'gad-7' (did you mean gad7?)" in result.stderr


def test_card_text_is_never_read_as_markup(runner: CliRunner, tmp_path: Path) -> None:
    text = (ROOT / SCALES / "tiny.yaml").read_text()
    text = text.replace("label: First", 'label: "First [bold]x[/bold]"')
    path = tmp_path / "brackets.yaml"
    path.write_text(text)
    result = run(runner, "scales", "show", str(path), "--format", "table")
    assert "First [bold]x[/bold]" in result.output
    assert "[src]" in result.output


# ---- scales new -----------------------------------------------------------------------


def test_new_writes_a_starter_that_passes_check(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run(runner, "scales", "new", "my-scale", "--items", "4", "--range", "0-3")
    assert result.exit_code == 0
    assert result.output == (
        "wrote my-scale.yaml: 4 items rated 0 to 3; replace each TODO, then run: "
        "ketascore scales check my-scale.yaml\n"
    )
    text = (tmp_path / "my-scale.yaml").read_text()
    assert text.startswith("# A scale definition for ketascore")
    assert "TODO" in text
    assert [p.name for p in tmp_path.iterdir()] == ["my-scale.yaml"]  # no temporary file left
    check = run(runner, "scales", "check", "my-scale.yaml")
    assert (check.exit_code, check.output) == (0, "my-scale.yaml: ok\n")
    data = json.loads(run(runner, "scales", "show", "my-scale.yaml", "--format", "json").output)
    assert [i["id"] for i in data["items"]] == ["1", "2", "3", "4"]
    assert (data["scores"][0]["min"], data["scores"][0]["max"]) == (0, 12)
    assert len(data["examples"]) == 3


def test_new_refuses_to_overwrite(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "mine.yaml"
    target.write_text("my own work\n")
    result = runner.invoke(
        cli, ["scales", "new", "mine", "--items", "3", "--range", "1-5", "-o", str(target)]
    )
    assert result.exit_code == 2
    assert f"Error: refusing to overwrite {target}: it exists" in result.stderr
    assert target.read_text() == "my own work\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["phq9", "--items", "3", "--range", "0-3"], "'phq9' is the id of a built-in scale"),
        (["My Scale", "--items", "3", "--range", "0-3"], "scale id 'My Scale' must start with"),
        (["x", "--items", "0", "--range", "0-3"], "--items must be between 1 and 200, not 0"),
        (["x", "--items", "3", "--range", "3-0"], "the minimum 3 must be below the maximum 0"),
        (["x", "--items", "3", "--range", "0..3"], "range '0..3' is not of the form A-B"),
        (["x", "--items", "3", "--range", "0-3", "-o", "no/such/dir/x.yaml"], "does not exist"),
    ],
)
def test_new_usage_errors(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["scales", "new", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("n_items", "value_range"), [(1, "1-7"), (23, "0-4"), (5, "-2-2")])
def test_new_starters_of_other_shapes_pass_check(
    runner: CliRunner, tmp_path: Path, n_items: int, value_range: str
) -> None:
    target = tmp_path / "s.yaml"
    result = run(
        runner, "scales", "new", "s", "--items", str(n_items), "--range", value_range,
        "-o", str(target),
    )  # fmt: skip
    assert result.exit_code == 0
    assert run(runner, "scales", "check", str(target)).exit_code == 0


def _uncomment(text: str, keys: tuple[str, ...]) -> str:
    pattern = re.compile(r"^(\s*)# ((?:" + "|".join(re.escape(k) for k in keys) + r").*)$")
    return "\n".join(pattern.sub(r"\1\2", line) for line in text.splitlines()) + "\n"


def test_the_commented_parts_of_the_starter_are_valid(runner: CliRunner, tmp_path: Path) -> None:
    from ketascore.authoring import check_scale_text_all, starter_yaml

    text = starter_yaml("s", 4, 0, 3)
    optional = ("bands_source:", "bands:", "  - {label: TODO", "response:", "remission:")
    assert check_scale_text_all(_uncomment(text, optional), "s.yaml") == []
    # a missing-item rule changes what the "item missing" example must expect: check says so
    with_rule = _uncomment(
        text, ("missing:", "  max_missing:", "  method: prorate", "  rounding:", "  source:")
    )
    problems = check_scale_text_all(with_rule, "s.yaml")
    example = "examples[2] (Item 4 missing - every item is required, so there is no total)"
    assert [p.split(": ", 1)[1] for p in problems] == [
        f"{example}: score total: expected None, got 0",
        f"{example}: issue codes: expected ['insufficient-items'], got []",
    ]
