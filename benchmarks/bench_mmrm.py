"""Benchmark: the fev_data MMRM (issue 15: "fitting the fev_data MMRM takes under 2 s").

    python benchmarks/bench_mmrm.py              # 7 runs per case
    python benchmarks/bench_mmrm.py --runs 15

Cases, each timed as the median of the runs:

  ketascore-fit   ketascore.analysis.mmrm.fit_mmrm on fev_data: FEV1 = ARMCD AVISIT
                  ARMCD*AVISIT RACE SEX, REML, unstructured covariance over 4 visits,
                  Satterthwaite DF, LS means and Type 3 tests (in one process, data read once)
  ketascore-cli   the whole command `ketascore model fev_data.csv ... --format json
                  --analyses mmrm` in a fresh process (start-up, reading, fit, output)
  statsmodels     the peer: statsmodels MixedLM, REML, the same fixed effects with a random
                  intercept per subject (statsmodels cannot fit an unstructured residual
                  covariance, statsmodels issue #6304: this is the nearest model it fits), fit
                  and summary, in one process, data read once

The data is ../shared/reference/analysis/fev_data.csv (200 subjects x 4 visits, 537 FEV1
values). Prints the medians and the ratio ketascore / statsmodels.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEV = HERE.parent.parent / "shared" / "reference" / "analysis" / "fev_data.csv"

MODEL = [
    "--outcome", "FEV1", "--by", "ARMCD", "--factor", "RACE", "--factor", "SEX",
    "--terms", "ARMCD AVISIT ARMCD*AVISIT RACE SEX",
    "--ref", "ARMCD=PBO", "--ref", "RACE=Asian", "--ref", "SEX=Male",
]  # fmt: skip


def time_ketascore_fit(runs: int) -> list[float]:
    from ketascore.analysis.longdata import read_table
    from ketascore.analysis.mmrm import MMRMSpec, fit_mmrm

    table = read_table(FEV)
    spec = MMRMSpec(
        outcome="FEV1",
        subject="USUBJID",
        visit="AVISIT",
        group="ARMCD",
        terms=("ARMCD", "AVISIT", "ARMCD*AVISIT", "RACE", "SEX"),
        factors=("RACE", "SEX"),
        references={"ARMCD": "PBO", "AVISIT": "VIS1", "RACE": "Asian", "SEX": "Male"},
    )
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fit_mmrm(table, spec)
        times.append(time.perf_counter() - start)
        assert result.converged and abs((result.neg2_log_likelihood or 0) - 3386.4499) < 1e-3
    return times


def time_ketascore_cli(runs: int) -> list[float]:
    command = [sys.executable, "-m", "ketascore.cli", "model", str(FEV), *MODEL]
    command += ["--format", "json", "--analyses", "mmrm"]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(done.stderr.decode())
    return times


def time_statsmodels(runs: int) -> list[float] | None:
    try:
        import pandas as pd
        import statsmodels.formula.api as smf
    except ImportError:
        print("statsmodels (and pandas) are not installed: no peer", file=sys.stderr)
        return None
    import warnings

    data = pd.read_csv(FEV).dropna(subset=["FEV1"])
    formula = (
        "FEV1 ~ C(ARMCD, Treatment('PBO')) * C(AVISIT, Treatment('VIS1'))"
        " + C(RACE, Treatment('Asian')) + C(SEX, Treatment('Male'))"
    )
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = smf.mixedlm(formula, data, groups=data["USUBJID"])
            fit = model.fit(reml=True)
            fit.summary()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    if not FEV.is_file():
        raise SystemExit(f"{FEV} is not present")
    fit = statistics.median(time_ketascore_fit(args.runs))
    cli = statistics.median(time_ketascore_cli(args.runs))
    peer_times = time_statsmodels(args.runs)
    print(f"ketascore fit (REML, UN, Satterthwaite)   median {fit:.3f} s")
    print(f"ketascore model (whole command)           median {cli:.3f} s")
    if peer_times is not None:
        peer = statistics.median(peer_times)
        print(f"statsmodels MixedLM (random intercept)    median {peer:.3f} s")
        print(f"ratio ketascore fit / statsmodels fit     {fit / peer:.2f}")
    print("target: the fit under 2 s", "(met)" if fit < 2 else "(NOT met)")


if __name__ == "__main__":
    main()
