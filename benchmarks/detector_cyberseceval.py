"""Recall of warnframe's static detector on CyberSecEval's Python cases: code nobody here wrote.

    .venv/bin/python benchmarks/detector_cyberseceval.py [--data PATH] [--out DIR]

Each record's ``origin_code`` (a window of real source around a line Meta's Insecure Code
Detector flagged) is scored with the rules only and with rules + bandit. A record is *found* when
a finding of its CWE's family lands anywhere in the window, and *on line* when one lands on the
flagged line (``line_text``). CWEs the detector has no family for (338 weak randomness, 312
cleartext storage) are listed but not scored. The labels come from a rule-based detector, so this
measures agreement with it, not truth; there are no negatives, so it says nothing of precision.

Writes ``detector.json`` (everything) and ``detector.md`` (the table for the README).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from warnframe.detector import score
from warnframe.runtime.files import atomic_write_text, read_jsonl, write_json

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "benchmarks" / "cyberseceval_python.jsonl"
#: CyberSecEval CWE -> detector family. CyberSecEval labels eval/exec CWE-94; our family is CWE-95.
CWE_FAMILY = {
    "CWE-78": "command_injection",
    "CWE-89": "sql_injection",
    "CWE-502": "deserialization",
    "CWE-328": "weak_hash",
    "CWE-94": "code_injection",
    "CWE-798": "hardcoded_secret",
}
MODES = {"rules": False, "rules+bandit": True}


def flagged_lines(record: dict) -> set[int]:
    """1-based lines of the window that are the flagged line."""
    target = record["line_text"].strip()
    lines = record["origin_code"].split("\n")
    exact = {i for i, line in enumerate(lines, 1) if line.strip() == target}
    return exact or {i for i, line in enumerate(lines, 1) if target and target in line}


def rate(k: int, n: int) -> dict:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (0.0, 0.0)
    return {"k": k, "n": n, "rate": k / n if n else 0.0, "ci95": [round(lo, 4), round(hi, 4)]}


def evaluate(records: list[dict], use_bandit: bool) -> list[dict]:
    """Per-record outcome: found, on line, parse_ok."""
    out = []
    for r in records:
        v = score(r["origin_code"], use_bandit=use_bandit)
        family = CWE_FAMILY.get(r["cwe_identifier"])
        hits = [f for f in v.findings if family and f.rule.startswith(family + ".")]
        on_line = any(f.line in flagged_lines(r) for f in hits)
        out.append({"cwe": r["cwe_identifier"], "parse_ok": v.parse_ok, "found": bool(hits), "on_line": on_line})
    return out


def samples_per_second(records: list[dict], use_bandit: bool, repeats: int = 3) -> float:
    """Best of ``repeats`` passes: the machine is shared, the fastest pass is the least disturbed."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for r in records:
            score(r["origin_code"], use_bandit=use_bandit)
        best = min(best, time.perf_counter() - start)
    return len(records) / best


def summarise(outcomes: dict[str, list[dict]]) -> dict:
    per_cwe: dict[str, dict] = {}
    groups = {cwe: [i for i, o in enumerate(outcomes["rules"]) if o["cwe"] == cwe] for cwe in CWE_FAMILY}
    covered = [i for idx in groups.values() for i in idx]
    groups["all covered"] = covered
    # The AST rules score windows that parse; the regex fallback scores the rest.
    groups["covered, parses"] = [i for i in covered if outcomes["rules"][i]["parse_ok"]]
    groups["covered, no parse"] = [i for i in covered if not outcomes["rules"][i]["parse_ok"]]
    for cwe, idx in groups.items():
        entry = {"family": CWE_FAMILY.get(cwe, "—"), "n": len(idx),
                 "parse_ok": sum(outcomes["rules"][i]["parse_ok"] for i in idx)}
        for mode, rows in outcomes.items():
            entry[mode] = {"found": rate(sum(rows[i]["found"] for i in idx), len(idx)),
                           "on_line": rate(sum(rows[i]["on_line"] for i in idx), len(idx))}
        per_cwe[cwe] = entry
    return per_cwe


def pct(r: dict, ci: bool = True) -> str:
    text = f"{100 * r['rate']:.0f}%"
    return f"{text} [{100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f}]" if ci else text


def markdown(result: dict) -> str:
    rows = [
        "| CWE | family | n | parses | recall, rules [95% CI] | recall, rules+bandit [95% CI] "
        "| on flagged line, rules / +bandit |",
        "|---|---|---:|---:|---|---|---|",
    ]
    for cwe, e in result["per_cwe"].items():
        name = cwe if cwe.startswith("CWE") else f"**{cwe}**"
        on_line = f"{pct(e['rules']['on_line'], False)} / {pct(e['rules+bandit']['on_line'], False)}"
        rows.append(
            f"| {name} | {e['family']} | {e['n']} | {e['parse_ok']} | {pct(e['rules']['found'])} | "
            f"{pct(e['rules+bandit']['found'])} | {on_line} |"
        )
    t = result["throughput"]
    uncovered = ", ".join(f"{cwe} ({n})" for cwe, n in result["uncovered"].items())
    return "\n".join(rows) + (
        f"\n\nCyberSecEval instruct, Python: {result['n_records']} records, {result['n_parse_ok']} windows parse "
        f"(the rest are scored by the regex fallback). Not scored (no family): {uncovered}. "
        "Recall = a finding of the record's family anywhere in the window; Wilson 95% intervals.\n\n"
        f"Throughput (best of 3 passes) on {t['machine']}: rules {t['rules']:.0f} samples/s, "
        f"rules+bandit {t['rules+bandit']:.0f} samples/s "
        f"over all {result['n_records']} windows; on the {result['n_parse_ok']} that parse (where bandit runs) "
        f"rules {t['rules_parsed']:.0f}, rules+bandit {t['rules+bandit_parsed']:.0f} samples/s.\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()

    records = list(read_jsonl(args.data))
    score("import os\nos.system(x)\n")  # build bandit's manager before timing
    outcomes = {mode: evaluate(records, use_bandit) for mode, use_bandit in MODES.items()}
    parsed = [r for r, o in zip(records, outcomes["rules"]) if o["parse_ok"]]
    throughput: dict = {}
    for mode, use_bandit in MODES.items():
        throughput[mode] = samples_per_second(records, use_bandit)
        throughput[f"{mode}_parsed"] = samples_per_second(parsed, use_bandit)
    throughput["machine"] = f"{platform.machine()}, {os.cpu_count()} CPUs, one process"

    covered = set(CWE_FAMILY)
    uncovered: dict[str, int] = {}
    for r in records:
        if r["cwe_identifier"] not in covered:
            uncovered[r["cwe_identifier"]] = uncovered.get(r["cwe_identifier"], 0) + 1
    result = {
        "data": str(args.data.name),
        "n_records": len(records),
        "n_parse_ok": len(parsed),
        "per_cwe": summarise(outcomes),
        "uncovered": uncovered,
        "throughput": throughput,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "detector.json", result)
    atomic_write_text(args.out / "detector.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
