"""Write the synthetic ketamine-clinic example (seeded, so the files are always the same).

Modelled on an outpatient clinic that treats treatment-resistant depression with esketamine
nasal spray (56 or 84 mg) or intravenous ketamine (0.5 mg/kg over 40 minutes) and measures
care as it goes: PHQ-9 and GAD-7 at intake, weekly during induction and monthly for fourteen
months (long enough for CMS159's twelve months +/- 60 days), MADRS and the C-SSRS screen at
intake and every three months, and a monitoring record for every dosing session (blood
pressure before dosing, at 40 minutes and at discharge, MOAA/S, CADSS, times, adverse
events). Sixteen patients; a few sessions break the esketamine label's monitoring rules and
a few answers are safety flags, so every part of `ketascore clinic` has something to show.
Every number here is invented.

Files written beside this script:
  ratings/phq9-gad7.csv   wide CSV, PHQ-9 (phq9_1 ... phq9_9) and GAD-7 (gad7_1 ... gad7_7)
  ratings/madrs.csv       wide CSV, MADRS (madrs_1 ... madrs_10)
  ratings/cssrs.csv       wide CSV, C-SSRS ideation (cssrs_1 ... cssrs_5 and intensity items)
  sessions.csv            one dosing session per row

Run:  python examples/ketamine-clinic/generate.py
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

SEED = 20240917
HERE = Path(__file__).resolve().parent
PATIENTS = 16
# PHQ-9 visits: intake, weekly in the induction month, then monthly (days after intake)
RATING_DAYS = [0, 7, 14, 21, 28, *range(60, 451, 30)]
MADRS_DAYS = [0, 28, 90, 180, 270, 360]
CSSRS_DAYS = [0, 90, 180, 270, 360]
# the fraction of the intake severity left at day d, by kind of patient
KINDS = {
    "remitter": lambda d: max(0.12, 1 - 0.8 * min(1, d / 60)),
    "responder": lambda d: max(0.35, 1 - 0.6 * min(1, d / 75)),
    "partial": lambda d: 1 - 0.3 * min(1, d / 90),
    "relapse": lambda d: 1 - 0.6 * min(1, d / 60) + 0.5 * max(0, min(1, (d - 180) / 120)),
    "non-responder": lambda d: 1.0 - 0.05 * min(1, d / 60),
}
KIND_OF = (
    ["remitter"] * 6
    + ["responder"] * 4
    + ["partial"] * 3
    + ["relapse", "non-responder"] * 1
    + ["non-responder"]
)


def spread(total: int, maxima: list[int], rng: random.Random) -> list[int]:
    """Item values within their maxima that add up to ``total`` (clipped to the maximum)."""
    total = max(0, min(total, sum(maxima)))
    values = [0] * len(maxima)
    for _ in range(total):
        open_ = [i for i, m in enumerate(maxima) if values[i] < m]
        weights = [maxima[i] - values[i] + 0.5 for i in open_]
        values[rng.choices(open_, weights)[0]] += 1
    return values


def clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def main() -> None:
    rng = random.Random(SEED)
    patients = []
    for n in range(1, PATIENTS + 1):
        esketamine = n % 3 != 0
        patients.append(
            {
                "subject": f"KC-{n:02d}",
                "kind": KIND_OF[n - 1],
                "start": dt.date(2023, 1, 9) + dt.timedelta(days=7 * rng.randrange(0, 26)),
                "phq9": rng.randint(11, 26),
                "gad7": rng.randint(6, 19),
                "madrs": rng.randint(26, 38),
                "drug": "esketamine" if esketamine else "ketamine",
                "dose": rng.choice([56, 84]) if esketamine else round(0.5 * rng.randint(58, 96)),
                "route": "intranasal" if esketamine else "intravenous",
                "sbp": rng.randint(112, 134),
                "dbp": rng.randint(68, 84),
            }
        )
    (HERE / "ratings").mkdir(exist_ok=True)

    # PHQ-9 and GAD-7 in one wide CSV
    rows = []
    for p in patients:
        left = KINDS[p["kind"]]
        for day in RATING_DAYS:
            if p["subject"] == "KC-16" and day > 150:  # lost to follow-up
                break
            fraction = left(day)
            phq = round(p["phq9"] * fraction + rng.gauss(0, 1.2))
            gad = round(p["gad7"] * fraction + rng.gauss(0, 1.0))
            flagged = p["subject"] in ("KC-04", "KC-15") and day <= 21
            # thoughts of self-harm (item 9) only in two patients' first weeks
            phq_items = spread(phq, [3] * 9 if flagged else [3] * 8 + [0], rng)
            if p["subject"] == "KC-15" and day == 14:
                phq_items[8] = 2
            cells = [str(v) for v in phq_items]
            if p["subject"] == "KC-07" and day == 28:
                cells[8] = ""  # item 9 left blank: the flag cannot be determined
            date = p["start"] + dt.timedelta(days=day)
            rows.append(
                [
                    p["subject"],
                    f"day{day}",
                    date.isoformat(),
                    day,
                    *cells,
                    *spread(gad, [3] * 7, rng),
                ]
            )
    with open(HERE / "ratings" / "phq9-gad7.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            ["subject", "visit", "date", "day"]
            + [f"phq9_{i}" for i in range(1, 10)]
            + [f"gad7_{i}" for i in range(1, 8)]
        )
        writer.writerows(rows)

    # MADRS every three months
    with open(HERE / "ratings" / "madrs.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "visit", "date", "day"] + [f"madrs_{i}" for i in range(1, 11)])
        for p in patients:
            for day in MADRS_DAYS:
                if p["subject"] == "KC-16" and day > 150:
                    break
                total = round(p["madrs"] * KINDS[p["kind"]](day) + rng.gauss(0, 2))
                items = spread(total, [6] * 9 + [4], rng)
                if p["subject"] == "KC-15" and day == 0:
                    items[9] = 4  # suicidal thoughts rated 4 at intake
                date = p["start"] + dt.timedelta(days=day)
                writer.writerow([p["subject"], f"day{day}", date.isoformat(), day, *items])

    # C-SSRS screen: no ideation, except a wish to be dead and one visit with intent
    with open(HERE / "ratings" / "cssrs.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        intensity = ["frequency", "duration", "controllability", "deterrents", "reasons"]
        writer.writerow(
            ["subject", "visit", "date", "day"]
            + [f"cssrs_{i}" for i in range(1, 6)]
            + [f"cssrs_{k}" for k in intensity]
        )
        for p in patients:
            for day in CSSRS_DAYS:
                if p["subject"] == "KC-16" and day > 150:
                    break
                answers = [0, 0, 0, 0, 0]
                extra = [""] * 5
                if p["subject"] == "KC-15" and day == 0:
                    answers, extra = [1, 1, 1, 1, 0], [3, 2, 2, 1, 3]
                elif p["subject"] == "KC-04" and day == 0:
                    answers, extra = [1, 0, 0, 0, 0], [2, 1, 1, 0, 0]
                date = p["start"] + dt.timedelta(days=day)
                writer.writerow(
                    [p["subject"], f"day{day}", date.isoformat(), day, *answers, *extra]
                )

    # dosing sessions: twice weekly for four weeks, weekly for four, then every other week
    # to month six
    session_days = [0, 3, 7, 10, 14, 17, 21, 24, 28, 35, 42, 49, *range(63, 181, 14)]
    with open(HERE / "sessions.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(
            [
                "subject",
                "session",
                "date",
                "drug",
                "dose_mg",
                "route",
                "dosed_at",
                "bp_pre",
                "bp_40min",
                "bp_discharge",
                "moaas_lowest",
                "moaas_discharge",
                "cadss_pre",
                "cadss_post",
                "cadss_discharge",
                "ready_to_leave_at",
                "adverse_events",
            ]
        )
        for p in patients:
            for k, day in enumerate(session_days, start=1):
                if p["subject"] == "KC-16" and day > 150:
                    break
                date = p["start"] + dt.timedelta(days=day + 1)
                dosed = 9 * 60 + rng.choice([0, 15, 30, 45, 60, 90, 120])
                sbp, dbp = p["sbp"] + rng.randint(-6, 6), p["dbp"] + rng.randint(-5, 5)
                rise_s, rise_d = rng.randint(6, 24), rng.randint(3, 14)
                fall_s, fall_d = rng.randint(8, 20), rng.randint(4, 12)
                moaas_low = rng.choice([5, 5, 4, 4, 3])
                cadss_pre = rng.choice([0, 0, 1])
                cadss_post = cadss_pre + max(0, round(rng.gauss(9, 5) * (1 if k < 9 else 0.6)))
                minutes = rng.choice([120, 125, 130, 135, 150])
                adverse = rng.choice([""] * 10 + ["nausea", "dizziness", "headache"])
                moaas_dc, cadss_dc, bp_40 = 5, 0, f"{sbp + rise_s}/{dbp + rise_d}"
                s, n = p["subject"], k
                if s == "KC-02" and n == 3:
                    sbp, dbp = 146, 92  # elevated before dosing
                    bp_40 = f"{sbp + rise_s}/{dbp + rise_d}"
                if s == "KC-05" and n == 6:
                    bp_40 = f"{sbp + 44}/{dbp + 27}"  # a large rise at 40 minutes
                    fall_s, fall_d = 44 - 18, 27 - 10
                if s == "KC-08" and n == 4:
                    minutes = 105  # left before two hours
                if s == "KC-10" and n == 2:
                    moaas_low, moaas_dc = 0, 4  # lost consciousness; still drowsy at discharge
                    adverse = (
                        "loss of consciousness for about 2 minutes; recovered without intervention"
                    )
                if s == "KC-11" and n == 5:
                    bp_40 = ""  # the 40-minute reading was not taken
                if s == "KC-13" and n == 7:
                    cadss_dc = 6  # dissociation not resolved when discharged
                discharge = (
                    f"{sbp + rise_s - fall_s}/{dbp + rise_d - fall_d}"
                    if not (s == "KC-14" and n == 9)
                    else f"{sbp + rise_s + 4}/{dbp + rise_d + 2}"  # still rising at discharge
                )
                writer.writerow(
                    [
                        s,
                        n,
                        date.isoformat(),
                        p["drug"],
                        p["dose"],
                        p["route"],
                        clock(dosed),
                        f"{sbp}/{dbp}",
                        bp_40,
                        discharge,
                        moaas_low,
                        moaas_dc,
                        cadss_pre,
                        cadss_post,
                        cadss_dc,
                        clock(dosed + minutes),
                        adverse,
                    ]
                )


if __name__ == "__main__":
    main()
