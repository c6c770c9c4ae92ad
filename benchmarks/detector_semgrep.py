"""Semgrep OSS's taint mode against the detector's own dataflow, on BenchmarkPython: the measurement
behind the choice of engine (docs/detector_rules.md, "Why an analysis of our own").

    pip install semgrep            # in a separate environment: not a warnframe dependency
    .venv/bin/python benchmarks/detector_semgrep.py --root /tmp/bp --semgrep /path/to/semgrep

Semgrep's registry needs the network, so the rules are written here in taint mode with the
detector's own sources (Flask's ``request``), sinks and sanitisers, one rule per family the
Benchmark has (hashes are a plain pattern rule). Every test file of a claimed category is scanned
once in one semgrep run (``--metrics off``, one job), and a file counts as flagged when a rule of
its category's family matches in it. Reports TPR, FPR and the Benchmark score per category beside
the detector's rules, and the wall time of semgrep's run against the detector's. Writes
``detector_semgrep.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from detector_owasp import CATEGORY_FAMILY, confusion, families, load_benchmark  # noqa: E402

from warnframe.runtime.files import atomic_write_text  # noqa: E402

_SOURCES = """
    pattern-sources:
      - pattern: flask.request.$A
      - pattern: flask.request.$A(...)
      - pattern: flask.request.$A.$B(...)
"""
_PROPAGATORS = """
    pattern-propagators:
      - pattern: $L.append($X)
        from: $X
        to: $L
      - pattern: $L.set($S, $K, $X)
        from: $X
        to: $L
      - pattern: $L[$K] = $X
        from: $X
        to: $L
"""


def _taint(rule: str, sinks: list[str], sanitizers: tuple[str, ...] = ()) -> str:
    sink_text = "\n".join(f"      - patterns:\n          - pattern: {s}\n          - focus-metavariable: $X" for s in sinks)
    sanitizer_text = ("    pattern-sanitizers:\n" + "\n".join(f"      - pattern: {s}" for s in sanitizers) + "\n"
                      if sanitizers else "")
    return (f"  - id: {rule}\n    mode: taint\n    languages: [python]\n    severity: ERROR\n    message: {rule}\n"
            f"{_SOURCES}{_PROPAGATORS}{sanitizer_text}    pattern-sinks:\n{sink_text}\n")


RULES = "rules:\n" + "".join([
    _taint("command_injection", ["os.system($X)", "os.popen($X, ...)", "subprocess.$F($X, ..., shell=True, ...)",
                                 "subprocess.$F($X, ...)"], ("shlex.quote(...)",)),
    _taint("sql_injection", ["$C.execute($X)", "$C.executemany($X, ...)"]),
    _taint("path_traversal", ["open($X, ...)", "codecs.open($X, ...)", "os.path.exists($X)", "$X.exists()",
                              "$X.read_text(...)", "$X.read_bytes(...)"],
           ("os.path.basename(...)", "werkzeug.utils.secure_filename(...)")),
    _taint("code_injection", ["eval($X, ...)", "exec($X, ...)"]),
    _taint("deserialization", ["pickle.loads($X, ...)", "yaml.load($X, Loader=yaml.Loader)",
                               "yaml.load($X, Loader=yaml.UnsafeLoader)"]),
]) + """  - id: weak_hash
    languages: [python]
    severity: ERROR
    message: weak hash
    pattern-either:
      - pattern: hashlib.md5(...)
      - pattern: hashlib.sha1(...)
      - pattern: hashlib.new("md5", ...)
      - pattern: hashlib.new("sha1", ...)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--semgrep", default=shutil.which("semgrep") or "semgrep")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    cases = load_benchmark(args.root)
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules.yml"
        rules.write_text(RULES)
        files = [str(args.root / "testcode" / f"{c['name']}.py") for c in cases]
        version = subprocess.run([args.semgrep, "--version"], capture_output=True, text=True).stdout.strip()
        start = time.perf_counter()
        run = subprocess.run([args.semgrep, "scan", "--config", str(rules), "--json", "--metrics", "off", "--jobs", "1",
                              "--disable-version-check", "--quiet", *files], capture_output=True, text=True)
        semgrep_s = time.perf_counter() - start
        found: dict[str, set[str]] = {}
        for r in json.loads(run.stdout)["results"]:
            found.setdefault(Path(r["path"]).stem, set()).add(r["check_id"].rpartition(".")[2])
        start = time.perf_counter()
        ours = [families(c["text"], False) for c in cases]
        ours_s = time.perf_counter() - start
    rows = ["| category | semgrep taint (TPR / FPR / score) | detector rules (TPR / FPR / score) |", "|---|---|---|"]
    for cat in CATEGORY_FAMILY:
        idx = [i for i, c in enumerate(cases) if c["category"] == cat]
        sg = confusion([cases[i] for i in idx], [cases[i]["family"] in found.get(cases[i]["name"], set()) for i in idx])
        us = confusion([cases[i] for i in idx], [cases[i]["family"] in ours[i] for i in idx])
        cell = lambda e: f"{100 * e['tpr']['rate']:.0f}% / {100 * e['fpr']['rate']:.0f}% / **{e['score']:+.2f}**"  # noqa: E731
        rows.append(f"| {cat} | {cell(sg)} | {cell(us)} |")
    text = (f"# Semgrep OSS taint mode vs the detector on BenchmarkPython\n\nsemgrep {version}, rules in "
            f"`benchmarks/detector_semgrep.py` (taint mode, the detector's sources, sinks and sanitisers).\n\n"
            + "\n".join(rows)
            + f"\n\n{len(cases)} files: semgrep {semgrep_s:.1f} s wall in one run (one job), "
              f"{len(cases) / semgrep_s:.0f} files/s; the detector's rules {ours_s:.1f} s, {len(cases) / ours_s:.0f} files/s "
              f"(one process, same machine, same moment).\n")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "detector_semgrep.md", text)
    print(text)


if __name__ == "__main__":
    main()
