"""Does a verdict survive a second run? The default study twice, with disjoint seed sets.

Usage: python benchmarks/replication.py [--preset tiny] [--seeds 5] [--out runs/replication]
       [--set key=value ...] [--parallel] [--compare-only]
Runs ``warnframe run`` into ``OUT/a`` with seeds 0..k-1 and into ``OUT/b`` with seeds k..2k-1
(the same base model, cached; everything else identical), reads both ``metrics/claims.json`` and
reports the share of claims whose verdict agrees, with a Wilson 95% interval over claims, and
every claim that differs. Writes benchmarks/results/replication.json and replication.md.
``--parallel`` runs the two studies at once, one thread each (on 2 cores that is faster than two
threads each one after the other); ``--compare-only`` reads two finished runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from warnframe.stats.rates import fmt_rate, rate

OUT = Path(__file__).parent / "results"


def claims(run: Path) -> dict[str, dict]:
    rows = json.loads((run / "metrics" / "claims.json").read_text())
    rows = rows["claims"] if isinstance(rows, dict) else rows
    return {c["id"]: c for c in rows}


def study_cmd(preset: str, seeds: list[int], out: Path, sets: list[str]) -> list[str]:
    return [sys.executable, "-m", "warnframe.cli", "run", "--preset", preset, "--out", str(out),
            "--set", f"seeds={json.dumps(seeds)}", *[a for s in sets for a in ("--set", s)]]


def run_studies(runs: dict[str, list[str]], parallel: bool) -> dict[str, float]:
    """Run each command (all at once, one thread each, with ``parallel``); wall seconds per run."""
    import os

    env = {**os.environ, "OMP_NUM_THREADS": "1"} if parallel else None
    secs, t0 = {}, time.perf_counter()
    procs = {}
    for name, cmd in runs.items():
        procs[name] = subprocess.Popen(cmd, env=env)
        if not parallel:
            if procs[name].wait():
                raise SystemExit(f"run {name} failed")
            secs[name] = time.perf_counter() - t0
            t0 = time.perf_counter()
    for name, p in procs.items() if parallel else ():
        if p.wait():
            raise SystemExit(f"run {name} failed")
        secs[name] = time.perf_counter() - t0
    return secs


def _marked_seconds(run: Path) -> float:
    """A finished run's summed stage seconds (its manifest), for --compare-only."""
    return sum(json.loads((run / "manifest.json").read_text())["stage_seconds"].values())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--seeds", type=int, default=5, help="seeds per run (the two runs' sets are disjoint)")
    ap.add_argument("--out", type=Path, default=Path("runs/replication"))
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--parallel", action="store_true", help="run both studies at once, one thread each")
    ap.add_argument("--compare-only", action="store_true", help="only compare two finished runs under OUT")
    args = ap.parse_args()
    k = args.seeds
    runs = {name: study_cmd(args.preset, seeds, args.out / name, args.sets)
            for name, seeds in (("a", list(range(k))), ("b", list(range(k, 2 * k))))}
    secs = ({n: _marked_seconds(args.out / n) for n in runs} if args.compare_only else run_studies(runs, args.parallel))
    a, b = claims(args.out / "a"), claims(args.out / "b")
    common = sorted(set(a) & set(b))
    differ = [{"id": i, "claim": a[i].get("claim", ""), "a": a[i]["verdict"], "b": b[i]["verdict"]}
              for i in common if a[i]["verdict"] != b[i]["verdict"]]
    agree = rate(len(common) - len(differ), len(common))
    res = {"preset": args.preset, "seeds_per_run": k, "claims": len(common), "agree": agree, "differ": differ,
           "only_in_one": sorted(set(a) ^ set(b)), "seconds": {n: round(s, 1) for n, s in secs.items()},
           "interval": "Wilson 95% over claims"}
    OUT.mkdir(exist_ok=True)
    (OUT / "replication.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [f"# Replication: two `{args.preset}` studies, seeds 0–{k - 1} vs {k}–{2 * k - 1}", "",
          f"Verdicts agree on {fmt_rate(agree)} of claims (Wilson 95% over claims). "
          f"Time: {res['seconds']['a']:.0f} s and {res['seconds']['b']:.0f} s "
          f"({'summed stage seconds' if args.compare_only else 'wall'}).", ""]
    if differ:
        md += ["| claim | run a | run b |", "|---|---|---|", *[f"| {d['id']} | {d['a']} | {d['b']} |" for d in differ]]
    (OUT / "replication.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
