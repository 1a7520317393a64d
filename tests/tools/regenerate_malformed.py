"""Write tests/data/malformed/expected.yaml from what ketascore does now.

    python tests/tools/regenerate_malformed.py > tests/data/malformed/expected.yaml

Use it when a case is added; then read the diff of expected.yaml line by line: every
message in it is a promise to users.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from ketascore.cli import cli

CORPUS = Path(__file__).resolve().parents[1] / "data" / "malformed"
MADRS_CHANGE = ["--scale", "madrs", "--format", "json"]
CHANGE = {  # the cases run with `ketascore change`, and their options
    "no-baseline.csv": MADRS_CHANGE,
    "baseline-zero.csv": MADRS_CHANGE,
    "baseline-incomplete.csv": MADRS_CHANGE,
    "baseline-two-spellings.csv": MADRS_CHANGE,
    "baseline-same-day.csv": MADRS_CHANGE,
    "baseline-flagged-twice.csv": ["--scale", "phq9", "--format", "json"],
    "by-field-changes.csv": [*MADRS_CHANGE, "--by", "arm"],
}
HEADER = """\
# The malformed and hostile input corpus: each file of this folder, the command it is run
# with (from this folder), the exact issues it must give, the exit status, and how many
# records (for change: subjects' follow-up rows) are still scored. tests/test_malformed.py
# runs every case. Review a change to this file like a change to the rules: it is the
# contract of how bad input is reported.
"""


def main() -> None:
    os.chdir(CORPUS)
    runner = CliRunner(env={"COLUMNS": "120", "NO_COLOR": "1"})
    cases: list[dict[str, Any]] = []
    names = sorted(p.name for p in Path(".").iterdir() if p.is_file())
    for name in (n for n in names if n != "expected.yaml"):
        command = "change" if name in CHANGE else "score"
        extra = list(CHANGE.get(name, []))  # (a copy: no YAML aliases in the output)
        args = [command, name, *(extra or ["--format", "json"])]
        result = runner.invoke(cli, args)
        doc = json.loads(result.stdout)
        found = [(i["code"], i["message"]) for i in doc["issues"]]
        if command == "score":
            found += [(i["code"], i["message"]) for r in doc["results"] for i in r["issues"]]
            scored = doc["summary"]["scored"]
        else:
            scored = len([row for row in doc["rows"] if row["change"] is not None])
        cases.append(
            {
                "file": name,
                "args": extra,
                "command": command,
                "exit": int(result.exit_code),
                "scored": scored,
                "issues": [{"code": c, "message": m} for c, m in found],
            }
        )
    for name in sorted(p.name for p in Path("scales").iterdir()):
        result = runner.invoke(cli, ["scales", "check", f"scales/{name}"])
        cases.append(
            {
                "file": f"scales/{name}",
                "command": "scales check",
                "args": [],
                "exit": int(result.exit_code),
                "output": result.stdout.splitlines(),
            }
        )
    dump = yaml.safe_dump({"cases": cases}, sort_keys=False, width=1000, allow_unicode=True)
    print(HEADER + dump)


if __name__ == "__main__":
    main()
