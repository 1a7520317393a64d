"""Write the synthetic ketamine-trial example (seeded, so the files are always the same).

Modelled on a single-infusion dose-finding trial in treatment-resistant depression: 100
patients randomised to ketamine 0.1, 0.2, 0.5 or 1.0 mg/kg or an active placebo
(midazolam); HAM-D17 rated at baseline only, HAM-D6 and MADRS rated before the infusion
(day 0, the baseline) and on days 1, 3, 7 and 14. Every number here is invented.

Files written beside this script:
  hamd17-baseline.csv   wide CSV, one row per patient (columns hamd17_1 ... hamd17_17)
  hamd6.csv             wide CSV, one row per patient and visit (hamd6_1 ... hamd6_6)
  madrs/<visit>.yaml    YAML, one file per visit holding a list of records
  late-entries/*.json   JSON, single records entered after the visit files were exported

Run:  python examples/generate_ketamine_trial.py
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path

SEED = 20190301
HERE = Path(__file__).resolve().parent / "ketamine-trial"  # (the data folder holds data only)
ARMS = [
    "ketamine 0.1 mg/kg",
    "ketamine 0.2 mg/kg",
    "ketamine 0.5 mg/kg",
    "ketamine 1.0 mg/kg",
    "midazolam",
]
VISITS = [("baseline", 0), ("day1", 1), ("day3", 3), ("day7", 7), ("day14", 14)]
SITES = ["site-A", "site-B", "site-C"]
# mean fraction of the baseline MADRS remaining at each visit, by arm
TRAJECTORY = {
    "ketamine 0.1 mg/kg": [1.0, 0.80, 0.85, 0.90, 0.95],
    "ketamine 0.2 mg/kg": [1.0, 0.70, 0.78, 0.86, 0.93],
    "ketamine 0.5 mg/kg": [1.0, 0.50, 0.60, 0.75, 0.88],
    "ketamine 1.0 mg/kg": [1.0, 0.45, 0.55, 0.72, 0.85],
    "midazolam": [1.0, 0.85, 0.88, 0.92, 0.95],
}

HAMD17_MAX = {
    1: 4,
    2: 4,
    3: 4,
    4: 2,
    5: 2,
    6: 2,
    7: 4,
    8: 4,
    9: 4,
    10: 4,
    11: 4,
    12: 2,
    13: 2,
    14: 2,
    15: 4,
    16: 2,
    17: 2,
}
ASF_ITEMS = [10, 11, 12, 13, 15, 17]


def spread(total: int, maxima: list[int], rng: random.Random) -> list[int]:
    """Item values within their maxima that add up to ``total`` (clipped to the maximum)."""
    total = max(0, min(total, sum(maxima)))
    values = [0] * len(maxima)
    for _ in range(total):
        open_ = [i for i, m in enumerate(maxima) if values[i] < m]
        weights = [maxima[i] - values[i] for i in open_]
        values[rng.choices(open_, weights)[0]] += 1
    return values


def main() -> None:
    rng = random.Random(SEED)
    patients = []
    for n in range(1, 101):
        arm = ARMS[(n - 1) % len(ARMS)]
        anxious = rng.random() < 0.45
        start = dt.date(2024, 1, 8) + dt.timedelta(days=rng.randrange(0, 540))
        severity = rng.gauss(0, 1)
        patients.append(
            {
                "subject": f"KT-{n:03d}",
                "arm": arm,
                "site": SITES[rng.randrange(len(SITES))],
                "anxious": anxious,
                "start": start,
                "severity": severity,
                "dropout": rng.choice([None] * 12 + ["day7", "day14"]),
                "response": rng.gauss(0, 0.12),
            }
        )

    # HAM-D17 at baseline: anxious patients have an anxiety/somatization factor >= 7
    with open(HERE / "hamd17-baseline.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        items = [str(i) for i in range(1, 16)] + ["16a", "16b", "17"]
        writer.writerow(
            ["subject", "visit", "day", "date", "arm", "site"] + [f"hamd17_{i}" for i in items]
        )
        for p in patients:
            asf_total = rng.randint(7, 12) if p["anxious"] else rng.randint(2, 6)
            asf = spread(asf_total, [HAMD17_MAX[i] for i in ASF_ITEMS], rng)
            others = [i for i in range(1, 18) if i not in ASF_ITEMS]
            rest_total = round(14 + 3 * p["severity"] + rng.gauss(0, 1.5))
            rest = spread(rest_total, [HAMD17_MAX[i] for i in others], rng)
            value = dict(zip(ASF_ITEMS, asf, strict=True)) | dict(zip(others, rest, strict=True))
            by_history = rng.random() < 0.7
            cells = [str(value[i]) for i in range(1, 16)]
            cells += [str(value[16]), "3"] if by_history else ["3", str(value[16])]
            cells += [str(value[17])]
            writer.writerow(
                [p["subject"], "baseline", 0, p["start"].isoformat(), p["arm"], p["site"], *cells]
            )

    # MADRS (YAML, one file per visit) and HAM-D6 (wide CSV) at every visit
    (HERE / "madrs").mkdir(exist_ok=True)
    (HERE / "late-entries").mkdir(exist_ok=True)
    hamd6_rows = []
    late = []
    for visit, day in VISITS:
        records = []
        for p in patients:
            if p["dropout"] and day >= dict(VISITS)[p["dropout"]]:
                continue
            fraction = TRAJECTORY[p["arm"]][[v for v, _ in VISITS].index(visit)]
            if day > 0:
                fraction = max(0.05, fraction + p["response"] + rng.gauss(0, 0.06))
                if p["anxious"]:
                    fraction = min(1.1, fraction + 0.04)
            base_madrs = 31 + 5 * p["severity"] + (2 if p["anxious"] else 0)
            madrs_total = round(base_madrs * fraction + rng.gauss(0, 1.5))
            madrs = spread(madrs_total, [6] * 10, rng)
            date = (p["start"] + dt.timedelta(days=day)).isoformat()
            record = {
                "subject": p["subject"],
                "visit": visit,
                "scale": "madrs",
                "day": day,
                "date": date,
                "arm": p["arm"],
                "items": {str(i + 1): v for i, v in enumerate(madrs)},
            }
            if visit == "day14" and p["subject"] in ("KT-007", "KT-058"):
                late.append(record)
            else:
                records.append(record)
            hamd6_total = round((12 + 2.5 * p["severity"]) * fraction + rng.gauss(0, 1))
            hamd6 = spread(hamd6_total, [4, 4, 4, 4, 4, 2], rng)
            hamd6_rows.append([p["subject"], visit, day, date, p["arm"], *hamd6])
        (HERE / "madrs" / f"{day:02d}-{visit}.yaml").write_text(to_yaml(records), encoding="utf-8")
    for record in late:
        name = f"{record['subject']}-{record['visit']}-madrs.json"
        (HERE / "late-entries" / name).write_text(
            json.dumps(record, indent=2) + "\n", encoding="utf-8"
        )
    hamd6_rows.sort(key=lambda r: (r[0], r[2]))
    with open(HERE / "hamd6.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            ["subject", "visit", "day", "date", "arm"] + [f"hamd6_{i}" for i in range(1, 7)]
        )
        writer.writerows(hamd6_rows)


def to_yaml(records: list[dict[str, object]]) -> str:
    """A small, fixed YAML layout (no PyYAML needed to run the generator)."""
    lines = [f"# MADRS ratings, visit {records[0]['visit'] if records else ''} (synthetic)"]
    for r in records:
        lines.append(f"- subject: {r['subject']}")
        for key in ("visit", "scale", "day", "date", "arm"):
            value = r[key]
            lines.append(f"  {key}: {json.dumps(value) if key == 'arm' else value}")
        items = r["items"]
        assert isinstance(items, dict)
        lines.append("  items: {" + ", ".join(f"{k}: {v}" for k, v in items.items()) + "}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
