"""Output of ``ketascore model``: the JSON contract and the CSV of the LS-mean and contrast
tables."""

from __future__ import annotations

import csv
import io
from typing import Any

from ketascore.analysis.efficacy import EfficacyReport, to_contract
from ketascore.writers.jsontext import indented
from ketascore.writers.tabular import csv_cell

CSV_COLUMNS = (
    "analysis",
    "table",
    "visit",
    "group",
    "reference",
    "estimate",
    "se",
    "df",
    "lower",
    "upper",
    "p",
)


def efficacy_json(report: EfficacyReport) -> str:
    return indented(to_contract(report)) + "\n"


def efficacy_rows(report: EfficacyReport) -> list[dict[str, Any]]:
    """One row per LS mean and per contrast, of the MMRM and of the ANCOVA."""
    contract = to_contract(report)
    rows: list[dict[str, Any]] = []
    for x in contract["lsmeans"]:
        rows.append({"analysis": "mmrm", "table": "lsmean", "reference": None, "p": None, **x})
    for x in contract["contrasts"]:
        rows.append({"analysis": "mmrm", "table": "contrast", **x})
    ancova = contract.get("ancova")
    if ancova:
        for x in ancova["lsmeans"]:
            rows.append(
                {
                    "analysis": "ancova",
                    "table": "lsmean",
                    "visit": ancova["visit"],
                    "reference": None,
                    "df": ancova["df_error"],
                    "p": None,
                    **x,
                }
            )
        for x in ancova["contrasts"]:
            rows.append({"analysis": "ancova", "table": "contrast", "visit": ancova["visit"], **x})
    return rows


def efficacy_csv(report: EfficacyReport, *, escape_formulas: bool = True) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in efficacy_rows(report):
        writer.writerow([csv_cell(row.get(c), escape_formulas) for c in CSV_COLUMNS])
    return buf.getvalue()
