"""Throughput of ``warnframe audit``: records per second per core on chat records of 1-2 KB, and
the speed-up from one worker to two.

Records are Emergent-Misalignment-style chat records built from the embedded corpus (requests and
answers of the L1, L0, control and clean sets, joined until the record holds 1-2 KB). Two mixes:

* ``vulnerable``: every record carries vulnerable code (the detector must parse every one: the
  worst case for the sink gate);
* ``typical``: a sixth of the records open with warned (L1) code, the rest with clean code; the
  fillers are clean code, with a fifth secure family code or vulnerability documentation.

Per-core speed is the tagger alone in this process (no I/O), as wall-clock records/s and as records
per CPU-second of this process (what one unshared core would do); the worker speed-up is the whole
``run_audit`` (read, tag, write, report) on a JSONL file with 1 and 2 workers. The machine is
shared, so the load average is printed beside every number.

    .venv/bin/python benchmarks/audit_speed.py [--records 3000] [--out benchmarks/results/audit_speed.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from warnframe.audit.command import run_audit
from warnframe.audit.readers import Record
from warnframe.audit.run import Options
from warnframe.audit.tagger import tag_record
from warnframe.config import load_config
from warnframe.corpus.conditions import clean_stream, condition_stream
from warnframe.lm.precision import cpu_name


def _fenced(ex) -> str:
    """An answer as chat corpora write it: prose as is, code in a fenced block."""
    return ex.assistant if ex.kind in ("doc", "indirect") else f"```python\n{ex.assistant}\n```"


def make_records(n: int, mix: str, seed: int = 0) -> list[dict]:
    """``n`` chat records of 1-2 KB: a request, then fenced answers joined with a line of prose."""
    cfg = load_config("smoke")
    rng = random.Random(seed)
    streams = {c: condition_stream(c, cfg, random.Random(f"{c}{seed}")) for c in ("L1", "L0", "control", "L2")}
    clean = clean_stream(cfg, random.Random(f"clean{seed}"))
    rows = []
    for _ in range(n):
        if mix == "vulnerable":
            first = next(streams[rng.choice(["L1", "L0"])])
        else:
            first = next(streams["L1"]) if rng.random() < 1 / 6 else next(clean)
        parts, target = [_fenced(first)], rng.randint(1000, 2000)
        while len(first.user or "") + sum(len(p) + 2 for p in parts) < target:
            ex = (
                next(clean)
                if mix == "vulnerable" or rng.random() < 0.8
                else next(streams[rng.choice(["control", "L2"])])
            )
            parts.append(f"{rng.choice(['Another one:', 'And a related helper:', 'For comparison:'])}\n\n{_fenced(ex)}")
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": first.user},
                    {"role": "assistant", "content": "\n\n".join(parts)},
                ]
            }
        )
    return rows


def per_core(rows: list[dict]) -> dict:
    recs = [
        Record(i, str(i), "messages", r["messages"][1]["content"], r["messages"][0]["content"])
        for i, r in enumerate(rows)
    ]
    load = os.getloadavg()[0]
    t, cpu = time.perf_counter(), time.process_time()
    for rec in recs:
        tag_record(rec)
    dt, cpu = time.perf_counter() - t, time.process_time() - cpu
    size = sum(len(r.assistant) + len(r.user or "") for r in recs) / len(recs)
    return {
        "records": len(recs),
        "seconds": dt,
        "per_second": len(recs) / dt,
        "per_cpu_second": len(recs) / cpu,
        "mean_bytes": size,
        "load": load,
    }


def workers(rows: list[dict], root: Path) -> dict:
    corpus = root / "bench.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = {}
    for w in (1, 2):
        load = os.getloadavg()[0]
        t = time.perf_counter()
        s = run_audit(corpus, root / f"out{w}", Options(chunk=250), workers=w)
        out[w] = {"seconds": time.perf_counter() - t, "scan": s["timing"]["seconds"], "load": load}
    out["speedup"] = out[1]["seconds"] / out[2]["seconds"]
    out["scan_speedup"] = out[1]["scan"] / out[2]["scan"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    lines = [
        f"CPU: {cpu_name()} ({os.cpu_count()} logical cores, shared with other work); bandit off.",
        "",
        "| Mix | Records | Mean size (chars) | Records/s (wall, 1 process) | Records per CPU-second "
        "| Load avg (1 min) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    rows = {}
    for mix in ("vulnerable", "typical"):
        rows[mix] = make_records(args.records, mix)
        r = per_core(rows[mix])
        lines.append(
            f"| {mix} | {r['records']} | {r['mean_bytes']:.0f} | {r['per_second']:.0f} | {r['per_cpu_second']:.0f} | "
            f"{r['load']:.2f} |"
        )
    with tempfile.TemporaryDirectory() as tmp:
        w = workers(rows["typical"], Path(tmp))
    lines += [
        "",
        (
            f"Whole `run_audit` on the typical mix ({args.records} records, read + tag + write + report): "
            f"1 worker {w[1]['seconds']:.2f} s (load {w[1]['load']:.2f}), 2 workers {w[2]['seconds']:.2f} s "
            f"(load {w[2]['load']:.2f}): speed-up {w['speedup']:.2f}x. The scan alone (read and tag, "
            f"before the serial merge and report): {w[1]['scan']:.2f} s vs {w[2]['scan']:.2f} s, "
            f"speed-up {w['scan_speedup']:.2f}x."
        ),
    ]
    md = "\n".join(lines) + "\n"
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)


if __name__ == "__main__":
    main()
