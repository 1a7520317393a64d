"""Benchmarks of ketascore against a peer (biopsykit) and an I/O floor (bare polars).

    python benchmarks/run.py                 # every case, 3 runs each
    python benchmarks/run.py --runs 5 --cases wide1m,folder
    python benchmarks/run.py --skip-peer     # no peer environment

The data sets are generated (seeded) under benchmarks/.data/. The peer runs in its own
virtual environment, benchmarks/.venv-peer, created on first use with `pip install
biopsykit`. Each case runs as a whole command in a fresh process; wall time and peak
resident memory (of the process and its workers) are measured, and the medians printed
with the ratios and the targets. In the 1M-row case ketascore, the floor and the peer take
turns run by run, so that a change in the machine's speed touches all three alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
PEER_VENV = HERE / ".venv-peer"
VISITS = ["baseline", "week1", "week2", "week4"]

MEASURE = r"""
import resource, subprocess, sys, time, json
t = time.perf_counter()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = usage.ru_utime + usage.ru_stime  # the command and its workers
print(json.dumps({"wall": wall, "cpu": cpu, "peak_mib": usage.ru_maxrss / 1024, "rc": rc}))
"""

PEER_SCRIPT = r"""
import sys
import pandas as pd
from biopsykit.questionnaires import phq

df = pd.read_csv(sys.argv[1], dtype={"subject": str, "visit": str})
items = df[[f"phq9_{i}" for i in range(1, 10)]]
items.columns = [f"PHQ_{i}" for i in range(1, 10)]
total = phq(items)
out = pd.DataFrame({"subject": df["subject"], "visit": df["visit"], "total": total.iloc[:, 0]})
out.to_csv(sys.argv[2], index=False)
"""

FLOOR_SCRIPT = r"""
import sys
import polars as pl

df = pl.read_csv(sys.argv[1], infer_schema=False)
items = [pl.col(c).cast(pl.Int64, strict=False) for c in df.columns if c.startswith("phq9_")]
df.select("subject", "visit", pl.sum_horizontal(items).alias("total")).write_csv(sys.argv[2])
"""


# --------------------------------------------------------------------------------------
# Data sets


def wide_csv(path: Path, subjects: int, seed: int = 20240601, block: int = 250_000) -> Path:
    """PHQ-9 wide CSV: subjects x 4 visits, items 0-3, 1% of answers blank."""
    import numpy as np

    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write("subject,visit," + ",".join(f"phq9_{i}" for i in range(1, 10)) + "\n")
        for lo in range(0, subjects, block):
            hi = min(subjects, lo + block)
            n = (hi - lo) * 4
            values = rng.integers(0, 4, size=(n, 9)).astype("U1")
            values[rng.random((n, 9)) < 0.01] = ""
            ids = np.repeat(np.arange(lo, hi), 4)
            lines = [f"S{ids[i]:07d},{VISITS[i % 4]}," + ",".join(values[i]) for i in range(n)]
            fh.write("\n".join(lines) + "\n")
    tmp.rename(path)
    return path


def folder(path: Path, files: int, seed: int = 7) -> Path:
    """One visit per file, half JSON and half YAML, in site/subject folders."""
    import random

    if path.exists() and sum(1 for _ in path.rglob("*.*")) >= files:
        return path
    rng = random.Random(seed)
    for i in range(files):
        s, visit = i // 4, VISITS[i % 4]
        sub = path / f"site{s % 20:02d}" / f"S{s:06d}"
        sub.mkdir(parents=True, exist_ok=True)
        items = {str(k): rng.randint(0, 3) for k in range(1, 10)}
        if i % 2:
            doc = {"subject": f"S{s:06d}", "visit": visit, "scale": "phq9", "items": items}
            (sub / f"{visit}.json").write_text(json.dumps(doc, indent=2))
        else:
            lines = [f"subject: S{s:06d}", f"visit: {visit}", "scale: phq9", "items:"]
            lines += [f"  {k}: {v}" for k, v in items.items()]
            (sub / f"{visit}.yaml").write_text("\n".join(lines) + "\n")
    return path


def small_yaml(path: Path) -> Path:
    path.write_text(
        "subject: S1\nvisit: baseline\nscale: phq9\nitems: {1: 1, 2: 2, 3: 0, 4: 1, 5: 2, "
        "6: 0, 7: 1, 8: 0, 9: 0}\n"
    )
    return path


# --------------------------------------------------------------------------------------
# Running


def measure(cmd: list[str], runs: int) -> dict[str, float]:
    return measure_turns({"": cmd}, runs)[""]


def measure_turns(cmds: dict[str, list[str]], runs: int) -> dict[str, dict[str, float]]:
    """Medians of ``runs`` runs of each command, the commands taking turns run by run (a
    change in the machine's speed, common on shared machines, then touches each alike)."""
    seen: dict[str, dict[str, list[float]]] = {
        name: {"wall": [], "cpu": [], "peak_mib": []} for name in cmds
    }
    for _ in range(runs):
        for name, cmd in cmds.items():
            out = subprocess.run(
                [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True
            )
            m = json.loads(out.stdout)
            if m["rc"] not in (0, 1):
                raise SystemExit(f"command failed ({m['rc']}): {' '.join(cmd)}")
            for key, values in seen[name].items():
                values.append(m[key])
    return {
        name: {**{key: statistics.median(v) for key, v in got.items()}, "runs": runs}
        for name, got in seen.items()
    }


def peer_python() -> Path | None:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print("creating the peer environment (pip install biopsykit) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "biopsykit"], check=True)
    return python


def compile_package() -> None:
    """Compile ketascore's modules to bytecode, as `pip install` does for an installed package:
    an editable install under PYTHONDONTWRITEBYTECODE=1 would otherwise compile them from
    source in every measured command (about 0.1 s), which no user's installed copy does."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("ketascore")
    if spec is not None and spec.origin is not None:
        compileall.compile_dir(str(Path(spec.origin).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default="wide1m,jsonl,wide10m,folder,change,cold")
    parser.add_argument("--skip-peer", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    DATA.mkdir(exist_ok=True)
    out_dir = DATA / "out"
    out_dir.mkdir(exist_ok=True)
    ks = shutil.which("ketascore", path=str(Path(sys.executable).parent)) or "ketascore"
    compile_package()
    rows: list[tuple[str, dict[str, float], str]] = []

    def record(name: str, m: dict[str, float], target: str) -> None:
        rows.append((name, m, target))
        if "cpu" in m:
            load = os.getloadavg()[0]
            print(
                f"{name:<46} {m['wall']:8.3f} s wall {m['cpu']:7.3f} s cpu "
                f"{m['peak_mib']:6.0f} MiB  load {load:4.1f}   {target}",
                flush=True,
            )
        else:
            print(f"{name:<46} {m['wall']:8.3f}{'':34}{target}", flush=True)

    if cases & {"wide1m", "jsonl", "change"}:
        wide = wide_csv(DATA / "phq9-1m.csv", 250_000)
    if "wide1m" in cases:
        ks_csv = str(out_dir / "ks.csv")
        cmds = {
            "ours": [ks, "score", str(wide), "--format", "csv", "-q", "-o", ks_csv],
            "floor": [sys.executable, "-c", FLOOR_SCRIPT, str(wide), str(out_dir / "floor.csv")],
        }
        if not args.skip_peer:
            python = peer_python()
            assert python is not None
            cmds["peer"] = [str(python), "-c", PEER_SCRIPT, str(wide), str(out_dir / "peer.csv")]
        got = measure_turns(cmds, args.runs)
        ours, floor = got["ours"], got["floor"]
        record("ketascore score 1M rows -> csv", ours, "<= 500 MiB")
        record("polars read-sum-write 1M rows (I/O floor)", floor, "")
        record(
            "  ratio ketascore / floor",
            {"wall": ours["wall"] / floor["wall"]},
            "<= 2x",
        )
        if "peer" in got:
            record("biopsykit (peer) 1M rows -> csv", got["peer"], "")
            record(
                "  ratio peer / ketascore",
                {"wall": got["peer"]["wall"] / ours["wall"]},
                ">= 5x",
            )
    if "jsonl" in cases:  # (piping JSON into other tools; no target in the issues)
        cmd = [ks, "score", str(wide), "--format", "jsonl", "-q", "-o", str(out_dir / "ks.jsonl")]
        record("ketascore score 1M rows -> JSON Lines", measure(cmd, args.runs), "")
    if "wide10m" in cases:
        big = wide_csv(DATA / "phq9-10m.csv", 2_500_000)
        cmd = [ks, "score", str(big), "--format", "csv", "-q", "-o", str(out_dir / "ks10.csv")]
        record("ketascore score 10M rows -> csv", measure(cmd, 1), "completes, <= 1024 MiB")
    if "folder" in cases:
        tree = folder(DATA / "folder-20k", 20_000)
        cmd = [
            ks,
            "score",
            str(tree),
            "--jobs",
            "2",
            "--format",
            "csv",
            "-q",
            "-o",
            str(out_dir / "folder.csv"),
        ]
        m = measure(cmd, args.runs)
        record("ketascore score folder of 20,000 files -j 2", m, "")
        record(
            "  files per second",
            {"wall": 20_000 / m["wall"]},
            ">= 5,000",
        )
    if "change" in cases:
        cmd = [
            ks,
            "change",
            str(wide),
            "--scale",
            "phq9",
            "--format",
            "csv",
            "-o",
            str(out_dir / "change.csv"),
        ]
        record("ketascore change 1M rows -> csv", measure(cmd, args.runs), "<= 3 s")
    if "cold" in cases:
        small = small_yaml(DATA / "one.yaml")
        cmd = [ks, "score", str(small), "-q", "-o", str(out_dir / "one.json")]
        record("ketascore score one small YAML (cold start)", measure(cmd, args.runs), "<= 0.3 s")
    info = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "python": platform.python_version(),
        "runs": args.runs,
        "load_average": os.getloadavg(),
        "results": [{"case": n, **m, "target": t} for n, m, t in rows],
    }
    print(json.dumps({k: v for k, v in info.items() if k != "results"}))
    if args.json:
        args.json.write_text(json.dumps(info, indent=2) + "\n")


if __name__ == "__main__":
    main()
