"""The detector on OWASP's BenchmarkPython and on the development set: TPR, FPR, score, precision.

    # BenchmarkPython (1,230 labelled test cases): a checkout, or the files of a mirror
    git -C <mirror> archive HEAD testcode expectedresults-0.1.csv results | tar -x -C /tmp/bp
    .venv/bin/python benchmarks/detector_owasp.py --root /tmp/bp [--out benchmarks/results] [--noise DIR]

For every test case of a category whose CWE the detector claims (cmdi, sqli, pathtraver,
deserialization, hash, codeinj), the test file is scored whole and counts as *flagged* when a
finding of the category's family is in it, three ways:

- **rules**: the detector's own rules (``score(text, use_bandit=False)``);
- **rules + bandit**: the detector as ``warnframe detect`` runs it by default (the kept bandit tests);
- **bandit alone**: bandit (the installed version, every test) with each test counted for the
  category of its CWE (``BANDIT_CATEGORY``: B601-B607/B609 command, B102/B307 eval, B301/B302/
  B506/B614 deserialisation, B303/B304/B305/B324 hash and ciphers, B608/B610/B611 SQL, B202 tar;
  the import blacklist B4xx is left out), and, when the checkout has it, the bandit run OWASP
  published (``results/BenchmarkPython-Bandit.sarif``) counted the same way. The test files use
  Python 3.12 syntax (f-strings that reuse their quotes): bandit under an older Python cannot
  parse them and reports nothing there, so ``--bandit-cli PATH`` also runs a bandit installed
  under Python 3.12+ (its JSON output) as a third bandit column.

TPR = flagged vulnerable / vulnerable, FPR = flagged safe / safe, the Benchmark score = TPR - FPR;
Wilson 95% intervals. Then each bandit test on its own: how many vulnerable cases it finds that the
rules miss, and how many labelled safe cases it flags (BenchmarkPython's safe cases, the
development set's fixed versions, the embedded families' secure renders): the table behind the
kept tests (``rule_registry.BANDIT_TESTS``). Then the development set (``DEV_SET`` in
tests/test_detector_dataflow.py: vulnerable functions and their fixed versions) with recall and
precision, and throughput (rules only) on the 1-2 KB test files. ``--noise DIR``: findings per
1,000 files on a directory of unlabelled library code (rate of each rule, for the helper-name
heuristics' cost). Writes ``detector_owasp.md`` (and the numbers as JSON with ``--json PATH``).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import logging
import os
import platform
import random
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from statsmodels.stats.proportion import proportion_confint

from warnframe.detector import BANDIT_TESTS, score
from warnframe.runtime.files import atomic_write_text, write_json

ROOT = Path(__file__).resolve().parents[1]
#: BenchmarkPython category -> detector family (the categories whose CWE a family claims).
CATEGORY_FAMILY = {"cmdi": "command_injection", "sqli": "sql_injection", "pathtraver": "path_traversal",
                   "deserialization": "deserialization", "hash": "weak_hash", "codeinj": "code_injection"}
#: Bandit test -> family, for bandit alone (every test bandit has for the family's CWE, no import blacklist).
BANDIT_CATEGORY = {**{t: "command_injection" for t in ("B601", "B602", "B603", "B604", "B605", "B606", "B607",
                                                        "B609")},
                   "B102": "code_injection", "B307": "code_injection",
                   **{t: "deserialization" for t in ("B301", "B302", "B506", "B614")},
                   "B303": "weak_hash", "B324": "weak_hash", "B304": "weak_hash", "B305": "weak_hash",
                   **{t: "sql_injection" for t in ("B608", "B610", "B611")}, "B202": "path_traversal",
                   "B612": "code_injection", **{t: "tls_verify_off" for t in ("B323", "B501", "B507")},
                   **{t: "hardcoded_secret" for t in ("B105", "B106", "B107")}}


def rate(k: int, n: int) -> dict:
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (0.0, 0.0)
    return {"k": k, "n": n, "rate": round(k / n, 4) if n else 0.0, "ci95": [round(lo, 4), round(hi, 4)]}


class AllBandit:
    """Bandit with every test, reused for every file."""

    def __init__(self):
        logging.getLogger("bandit").setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from bandit.core import config, manager
        self.manager = manager.BanditManager(config.BanditConfig(), "file", quiet=True)

    def tests(self, code: str) -> set[str]:
        m = self.manager
        m.results, m.skipped = [], []
        m._parse_file("<sample>", io.BytesIO(code.encode()), ["<sample>"])
        return {i.test_id for i in m.results}


def cli_tests(bandit: str, files: list[Path]) -> dict[str, set[str]]:
    """Test ids per file stem from a bandit executable (one run, JSON)."""
    import subprocess

    run = subprocess.run([bandit, "-q", "-f", "json", *map(str, files)], capture_output=True, text=True)
    out: dict[str, set[str]] = defaultdict(set)
    for r in json.loads(run.stdout)["results"]:
        out[Path(r["filename"]).stem].add(r["test_id"])
    return out


def families(text: str, use_bandit: bool) -> set[str]:
    return {f.rule.partition(".")[0] for f in score(text, use_bandit=use_bandit).findings}


def load_benchmark(root: Path) -> list[dict]:
    rows = [r for r in csv.reader(open(root / "expectedresults-0.1.csv")) if r and not r[0].startswith("#")]
    out = []
    for name, category, real, _cwe in rows:
        if category in CATEGORY_FAMILY:
            out.append({"name": name, "category": category, "family": CATEGORY_FAMILY[category],
                        "vulnerable": real.strip() == "true", "text": (root / "testcode" / f"{name}.py").read_text()})
    return out


def sarif_tests(root: Path) -> dict[str, set[str]] | None:
    path = root / "results" / "BenchmarkPython-Bandit.sarif"
    if not path.is_file():
        return None
    out: dict[str, set[str]] = defaultdict(set)
    for res in json.loads(path.read_text())["runs"][0]["results"]:
        uri = res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        out[Path(uri).stem].add(res["ruleId"])
    return out


def dev_set() -> list[tuple[str, str, str, str]]:
    spec = importlib.util.spec_from_file_location("_dev", ROOT / "tests" / "test_detector_dataflow.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DEV_SET


def secure_renders(n_draws: int = 3) -> list[tuple[str, str]]:
    from warnframe.families import FAMILIES

    rng = random.Random(0)
    return [(fam.name, fam.secure(task, rng)) for fam in FAMILIES.values() for task in fam.tasks for _ in range(n_draws)]


def confusion(cases: list[dict], flagged: list[bool]) -> dict:
    pos = [f for c, f in zip(cases, flagged) if c["vulnerable"]]
    neg = [f for c, f in zip(cases, flagged) if not c["vulnerable"]]
    tpr, fpr = rate(sum(pos), len(pos)), rate(sum(neg), len(neg))
    tp, fp = sum(pos), sum(neg)
    return {"tpr": tpr, "fpr": fpr, "score": round(tpr["rate"] - fpr["rate"], 4), "precision": rate(tp, tp + fp)}


def benchmark(cases: list[dict], bandit: AllBandit, sarif: dict[str, set[str]] | None,
              cli: dict[str, set[str]] | None = None) -> tuple[dict, dict]:
    per_case = []
    for c in cases:
        tests = bandit.tests(c["text"])
        per_case.append({"rules": families(c["text"], False), "rules+bandit": families(c["text"], True),
                         "bandit": {BANDIT_CATEGORY[t] for t in tests if t in BANDIT_CATEGORY}, "tests": tests,
                         "sarif": ({BANDIT_CATEGORY[t] for t in sarif.get(c["name"], ()) if t in BANDIT_CATEGORY}
                                   if sarif is not None else set()),
                         "cli": ({BANDIT_CATEGORY[t] for t in cli.get(c["name"], ()) if t in BANDIT_CATEGORY}
                                 if cli is not None else set()),
                         "cli_tests": set(cli.get(c["name"], ())) if cli is not None else None})
    modes = ["rules", "rules+bandit", "bandit"] + (["cli"] if cli is not None else []) + (
        ["sarif"] if sarif is not None else [])
    table: dict = {}
    for category in CATEGORY_FAMILY:
        idx = [i for i, c in enumerate(cases) if c["category"] == category]
        table[category] = {m: confusion([cases[i] for i in idx], [cases[i]["family"] in per_case[i][m] for i in idx])
                           for m in modes}
        table[category]["n"] = {"vulnerable": sum(cases[i]["vulnerable"] for i in idx),
                                "safe": sum(not cases[i]["vulnerable"] for i in idx)}
    table["average"] = {m: {"score": round(sum(table[c][m]["score"] for c in CATEGORY_FAMILY) / len(CATEGORY_FAMILY), 4),
                            "tpr": round(sum(table[c][m]["tpr"]["rate"] for c in CATEGORY_FAMILY) / len(CATEGORY_FAMILY), 4),
                            "fpr": round(sum(table[c][m]["fpr"]["rate"] for c in CATEGORY_FAMILY) / len(CATEGORY_FAMILY), 4)}
                        for m in modes}
    return table, {"cases": cases, "per_case": per_case}


def bandit_tests_table(bench: dict, dev: list, renders: list, bandit: AllBandit) -> dict:
    """Per bandit test mapped to a family: vulnerable cases it finds that the rules miss, safe cases it flags."""
    rows: dict[str, Counter] = defaultdict(Counter)
    for c, r in zip(bench["cases"], bench["per_case"]):
        for t in r["cli_tests"] if r["cli_tests"] is not None else r["tests"]:
            fam = BANDIT_CATEGORY.get(t)
            if fam != c["family"]:
                continue
            if c["vulnerable"]:
                rows[t]["bench_tp"] += 1
                rows[t]["bench_tp_added"] += fam not in r["rules"]
            else:
                rows[t]["bench_fp"] += 1
                rows[t]["bench_fp_added"] += fam not in r["rules"]
    for _, family, vulnerable, fixed in dev:
        for text, label in ((vulnerable, True), (fixed, False)):
            rules = families(text, False)
            for t in bandit.tests(text):
                if BANDIT_CATEGORY.get(t) != family:
                    continue
                key = "dev_tp" if label else "dev_fp"
                rows[t][key] += 1
                rows[t][key + "_added"] += family not in rules
    for family, text in renders:
        for t in bandit.tests(text):
            if BANDIT_CATEGORY.get(t) == family:
                rows[t]["secure_render_fp"] += 1
    return {t: dict(rows[t]) for t in sorted(BANDIT_CATEGORY)}


def dev_scores(dev: list, bandit: AllBandit) -> dict:
    out: dict = {}
    modes = {"rules": lambda t: families(t, False), "rules+bandit": lambda t: families(t, True),
             "bandit": lambda t: {BANDIT_CATEGORY[x] for x in bandit.tests(t) if x in BANDIT_CATEGORY}}
    fams = sorted({f for _, f, _, _ in dev})
    for mode, found in modes.items():
        per: dict = {}
        for fam in fams + ["all"]:
            rows = [(f, v, x) for _, f, v, x in dev if fam in ("all", f)]
            tp = sum(f in found(v) for f, v, _ in rows)
            fp = sum(f in found(x) for f, _, x in rows)
            per[fam] = {"recall": rate(tp, len(rows)), "fixed_flagged": rate(fp, len(rows)),
                        "precision": rate(tp, tp + fp)}
        out[mode] = per
    return out


def throughput(texts: list[str], repeats: int = 3) -> float:
    """Records per CPU-second, rules only, best of ``repeats`` passes (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for t in texts:
            score(t, use_bandit=False)
        best = min(best, time.process_time() - start)
    return len(texts) / best


def noise(directory: Path, limit: int) -> dict:
    files = sorted(p for p in directory.rglob("*.py") if p.is_file())
    random.Random(0).shuffle(files)
    counts: Counter = Counter()
    n = 0
    for p in files[:limit]:
        try:
            text = p.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if not 200 <= len(text) <= 200_000:
            continue
        n += 1
        for rule in {f.rule for f in score(text, use_bandit=False).findings}:
            counts[rule] += 1
    return {"files": n, "per_1000_files": {r: round(1000 * k / n, 1) for r, k in counts.most_common()}}


def _cli_version(bandit: str) -> str:
    import re
    import subprocess

    out = subprocess.run([bandit, "--version"], capture_output=True, text=True).stdout
    python = re.search(r"python version = (\S+)", out)
    version = out.split("\n")[0].strip()
    return f"{version}, Python {python.group(1)}" if python else version


def pct(r: dict, ci: bool = True) -> str:
    text = f"{100 * r['rate']:.0f}%"
    return f"{text} [{100 * r['ci95'][0]:.0f}–{100 * r['ci95'][1]:.0f}]" if ci else text


def markdown(result: dict) -> str:
    modes = [m for m in ("rules", "rules+bandit", "bandit", "cli", "sarif") if m in result["benchmark"]["cmdi"]]
    names = {"rules": "rules", "rules+bandit": "rules + bandit (default)",
             "bandit": f"bandit {result['bandit']} alone (Python {platform.python_version()})",
             "cli": f"bandit alone ({result.get('bandit_cli', '')})", "sarif": "bandit 1.8.6 alone (OWASP's run)"}
    out = ["## BenchmarkPython, per category (TPR / FPR / score = TPR − FPR)", "",
           "| category | n (vuln / safe) | " + " | ".join(names[m] for m in modes) + " |",
           "|---|---|" + "---|" * len(modes)]
    for cat in CATEGORY_FAMILY:
        e = result["benchmark"][cat]
        cells = [f"{pct(e[m]['tpr'], False)} / {pct(e[m]['fpr'], False)} / **{e[m]['score']:+.2f}**" for m in modes]
        out.append(f"| {cat} | {e['n']['vulnerable']} / {e['n']['safe']} | " + " | ".join(cells) + " |")
    avg = result["benchmark"]["average"]
    out.append("| **average** | | " + " | ".join(
        f"{100 * avg[m]['tpr']:.0f}% / {100 * avg[m]['fpr']:.0f}% / **{avg[m]['score']:+.2f}**" for m in modes) + " |")
    out += ["", "TPR and FPR with Wilson 95% intervals:", "",
            "| category | mode | TPR [95% CI] | FPR [95% CI] |", "|---|---|---|---|"]
    for cat in CATEGORY_FAMILY:
        for m in modes:
            e = result["benchmark"][cat][m]
            out.append(f"| {cat} | {names[m]} | {pct(e['tpr'])} | {pct(e['fpr'])} |")
    out += ["", "## Each bandit test on its own", "",
            "Vulnerable cases it finds (of them, missed by the rules) and safe cases it flags (of them, not "
            "flagged by the rules), on BenchmarkPython (" + ("the Python 3.12 bandit's run" if result.get("bandit_cli")
                                                              else "the in-process bandit") + ") and the development "
            "set; flags on the embedded families' secure renders. Kept: " + ", ".join(sorted(BANDIT_TESTS)) + ".", "",
            "| test | family | Benchmark TP (added) | Benchmark FP (added) | dev TP (added) | dev FP (added) | "
            "secure renders flagged | kept |", "|---|---|---|---|---|---|---|---|"]
    for t, r in result["bandit_tests"].items():
        out.append(f"| {t} | {BANDIT_CATEGORY[t]} | {r.get('bench_tp', 0)} ({r.get('bench_tp_added', 0)}) | "
                   f"{r.get('bench_fp', 0)} ({r.get('bench_fp_added', 0)}) | {r.get('dev_tp', 0)} ({r.get('dev_tp_added', 0)}) | "
                   f"{r.get('dev_fp', 0)} ({r.get('dev_fp_added', 0)}) | {r.get('secure_render_fp', 0)} | "
                   f"{'yes' if t in BANDIT_TESTS else 'no'} |")
    out += ["", f"## Development set ({result['dev_n']} vulnerable functions and their fixed versions; tuned on)", "",
            "| family | n | mode | recall [95% CI] | fixed versions flagged [95% CI] | precision [95% CI] |",
            "|---|---|---|---|---|---|"]
    for fam in result["dev"]["rules"]:
        for m in ("rules", "rules+bandit", "bandit"):
            e = result["dev"][m][fam]
            out.append(f"| {fam} | {e['recall']['n']} | {m} | {pct(e['recall'])} | {pct(e['fixed_flagged'])} | "
                       f"{pct(e['precision'])} |")
    t = result["throughput"]
    out += ["", f"## Throughput (rules only, one process, {t['machine']})", "",
            f"{t['records_per_s']:.0f} records per CPU-second on the {t['n']} BenchmarkPython test files of 1–2 KB "
            f"(mean {t['mean_bytes']:.0f} bytes; best of 3 passes)."]
    if result.get("noise"):
        nz = result["noise"]
        out += ["", f"## Unlabelled library code ({nz['files']} files)", "",
                "Files with a finding of each rule, per 1,000 files (rules only):", "",
                "| rule | per 1,000 files |", "|---|---:|"]
        out += [f"| {r} | {k} |" for r, k in nz["per_1000_files"].items()]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True, help="BenchmarkPython files (testcode/, expectedresults-0.1.csv)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--noise", type=Path, help="a directory of unlabelled Python code")
    ap.add_argument("--noise-limit", type=int, default=3000)
    ap.add_argument("--json", type=Path, help="also write every number here")
    ap.add_argument("--bandit-cli", help="a bandit executable installed under Python 3.12+ (a column of its own)")
    args = ap.parse_args()

    from bandit import __version__ as bandit_version

    cases = load_benchmark(args.root)
    bandit = AllBandit()
    cli = cli_tests(args.bandit_cli, [args.root / "testcode" / f"{c['name']}.py" for c in cases]) \
        if args.bandit_cli else None
    table, bench = benchmark(cases, bandit, sarif_tests(args.root), cli)
    dev = dev_set()
    sized = [c["text"] for c in cases if 1000 <= len(c["text"].encode()) <= 2048]
    result = {
        "bandit": bandit_version,
        "bandit_cli": _cli_version(args.bandit_cli) if args.bandit_cli else None,
        "benchmark": table,
        "bandit_tests": bandit_tests_table(bench, dev, secure_renders(), bandit),
        "dev_n": len(dev),
        "dev": dev_scores(dev, bandit),
        "throughput": {"records_per_s": round(throughput(sized), 1), "n": len(sized),
                       "mean_bytes": sum(len(t.encode()) for t in sized) / max(len(sized), 1),
                       "machine": f"{platform.machine()}, {os.cpu_count()} CPUs"},
    }
    if args.noise:
        result["noise"] = noise(args.noise, args.noise_limit)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.json:
        write_json(args.json, result)
    atomic_write_text(args.out / "detector_owasp.md", markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
