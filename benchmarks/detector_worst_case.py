"""Worst case of the static detector (and leakage check) per record, by input shape and size.

    .venv/bin/python benchmarks/detector_worst_case.py [--sizes 16384,131072,524288] [--out DIR]

Each shape is an input a corpus scan can meet and that once made ``scoring.score`` crash or hang
(issue 14: deep nesting, huge lines, many lines, backtracking bait) or that is its heaviest normal
work (many statements or many findings). For each shape and size it reports the time of one
``score`` call (rules only, and rules + bandit at the largest size) and the peak memory traced
during it (``tracemalloc``: Python allocations, which include the AST and the parser's arena), and
the growth exponent between the two largest sizes (1 = linear). The largest size is the record cap
``MAX_RECORD_BYTES``; anything above it is skipped in constant time.

Writes ``detector_worst_case.json`` and ``detector_worst_case.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
import tracemalloc
from pathlib import Path

from warnframe.detector import score
from warnframe.detector.scorer import MAX_RECORD_BYTES
from warnframe.runtime.files import atomic_write_text, write_json

ROOT = Path(__file__).resolve().parents[1]


def _repeat(unit: str):
    return lambda n: (unit * (n // len(unit) + 1))[:n]


#: name -> (what it is, n -> text of about n characters)
SHAPES = {
    "concat": ("3,000+-term string concatenation (RecursionError before)",
               lambda n: "x = " + " + ".join(['"a"'] * (n // 7))),
    "unary": ("unary operators (MemoryError before)", lambda n: "x = " + "-" * (n - 5) + "1"),
    "open_calls": ("`f(` repeated (210 s at 200 KB before)", _repeat("f(")),
    "sink_calls": ("`eval(` repeated: every call a sink", _repeat("eval(")),
    "decorators": ("decorator lines (quadratic before)", _repeat("@d\n")),
    "brackets": ("`[` repeated", _repeat("[")),
    "long_word": ("one identifier (regex backtracking bait)", _repeat("a")),
    "unterminated": ("one line with an unterminated literal", lambda n: "x = '" + "a" * (n - 5)),
    "escaped_quotes": ("`'\\'` repeated: literals that never end", _repeat("'\\'")),
    "triple_quotes": ('`"""a` repeated', _repeat('"""a')),
    "dotted": ("a dotted chain without a call", _repeat("a.")),
    "many_lines": ("many short statements (parses: AST rules)", _repeat("x = 1\n")),
    "broken_lines": ("many lines that do not parse", _repeat("x = (\n")),
    "prose": ("prose lines", _repeat("This is a sentence about the code.\n")),
    "comments": ("comment lines with quotes", _repeat("# don't do this\n")),
    "sql_hits": ("a SQL finding on every line (does not parse)", _repeat('cur.execute("SELECT " + x\n')),
    "secret_hits": ("a hard-coded secret on every line (parses)", _repeat('password = "hunter2"\n')),
    "warnings": ("warning-shaped comment lines (leakage)", _repeat("# INSECURE BAD PRACTICE DO NOT USE\n")),
}


def _cpu() -> str:
    try:
        model = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
        return model.split(":", 1)[1].strip()
    except (OSError, StopIteration):
        return platform.machine()


def measure(text: str, use_bandit: bool) -> dict:
    start = time.perf_counter()
    v = score(text, use_bandit=use_bandit)
    seconds = time.perf_counter() - start
    tracemalloc.start()
    score(text, use_bandit=use_bandit)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {"seconds": round(seconds, 3), "peak_mb": round(peak / 2**20, 1), "findings": len(v.findings),
            "parse_ok": v.parse_ok, "skipped": v.skipped}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default=f"16384,131072,{MAX_RECORD_BYTES}")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    score("import os\nos.system(x)\n")  # build bandit's manager before timing

    rows = {}
    for name, (what, make) in SHAPES.items():
        runs = {n: measure(make(n), use_bandit=False) for n in sizes}
        top = sizes[-1]
        runs_bandit = measure(make(top), use_bandit=True)
        a, b = sizes[-2:] if len(sizes) > 1 else (top, top)
        ta, tb = max(runs[a]["seconds"], 1e-3), max(runs[b]["seconds"], 1e-3)
        growth = math.log(tb / ta) / math.log(b / a) if b > a else float("nan")
        rows[name] = {"what": what, "rules": runs, "rules+bandit": runs_bandit, "growth": round(growth, 2)}
        print(name, {n: r["seconds"] for n, r in runs.items()}, "bandit", runs_bandit["seconds"], flush=True)

    result = {"sizes": sizes, "cap_bytes": MAX_RECORD_BYTES, "shapes": rows,
              "machine": f"{_cpu()}, {os.cpu_count()} CPUs, one process",
              "over_cap": measure("x" * (4 * MAX_RECORD_BYTES), use_bandit=True)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "detector_worst_case.json", result)
    atomic_write_text(args.out / "detector_worst_case.md", markdown(result))
    print(markdown(result))


def markdown(result: dict) -> str:
    sizes = result["sizes"]
    kb = [f"{n // 1024} KB" for n in sizes]
    head = ["shape", *[f"s at {k}" for k in kb], f"s at {kb[-1]} +bandit", f"peak MB at {kb[-1]}", "growth"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    worst = 0.0
    for name, r in result["shapes"].items():
        top = r["rules"][sizes[-1]] if sizes[-1] in r["rules"] else r["rules"][str(sizes[-1])]
        times = [(r["rules"].get(n) or r["rules"][str(n)])["seconds"] for n in sizes]
        worst = max(worst, r["rules+bandit"]["seconds"], *times)
        rows.append(f"| {name}: {r['what']} | " + " | ".join(f"{t:.2f}" for t in times)
                    + f" | {r['rules+bandit']['seconds']:.2f} | {top['peak_mb']:.0f} | {r['growth']:.2f} |")
    over = result["over_cap"]
    return "\n".join(rows) + (
        f"\n\nOne `score` call per cell, {result['machine']}. Growth: exponent of time between the two largest sizes "
        f"(1 = linear; small times are noisy). Largest size = the record cap ({result['cap_bytes']} bytes); worst time "
        f"of any cell: {worst:.2f} s. A record over the cap (here {4 * result['cap_bytes']} bytes) is skipped in "
        f"{over['seconds']:.3f} s and {over['peak_mb']:.0f} MB with `skipped` = \"{over['skipped']}\".\n"
    )


if __name__ == "__main__":
    main()
