"""The documentation is kept complete by tests."""

from __future__ import annotations

import re

from ketascore.core.issues import ISSUE_TYPES

from conftest import ROOT

EMIT = re.compile(r'\b(?:make_issue|Rejection|issue)\(\s*"([a-z][a-z-]+)"')


def codes_in_source() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "ketascore").rglob("*.py"):
        found.update(EMIT.findall(path.read_text(encoding="utf-8")))
    return found


def test_every_emitted_code_is_catalogued() -> None:
    assert codes_in_source() - set(ISSUE_TYPES) == set()


def test_errors_md_lists_exactly_the_catalogue() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([a-z][a-z-]+)` \|", text, flags=re.M))
    assert documented == set(ISSUE_TYPES), (
        f"missing from docs/errors.md: {sorted(set(ISSUE_TYPES) - documented)}; "
        f"not in the code: {sorted(documented - set(ISSUE_TYPES))}"
    )


def test_errors_md_gives_each_code_its_severity() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    for code, kind in ISSUE_TYPES.items():
        assert re.search(rf"^\| `{code}` \| {kind.severity} \|", text, flags=re.M), code


def test_readme_documents_exit_codes() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 130 |"):
        assert code in readme
