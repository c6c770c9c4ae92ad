"""Golden scores: what the detector says about the embedded study's own code, old package vs new.

The embedded study's results depend on the scorer, so a change to the detector must leave what
the families' generated samples score unchanged (or be a fix, shown and explained). This script
scores every family's vulnerable and secure renders (every task, several draws), the clean tasks'
renders, and every example of each fine-tuning condition's set and of the pretraining corpus at
the default config, and writes one JSON line per text: its verdict and its findings as
``(rule, line)`` pairs.

    # before the change: keep a copy of the package
    cp -r src/warnframe /tmp/old_wf/
    python benchmarks/detector_golden.py --texts /tmp/texts.jsonl          # generated once, by this checkout
    python benchmarks/detector_golden.py --dump /tmp/new.jsonl --from /tmp/texts.jsonl
    PYTHONPATH=/tmp/old_wf python benchmarks/detector_golden.py --dump /tmp/old.jsonl --from /tmp/texts.jsonl
    python benchmarks/detector_golden.py --compare /tmp/old.jsonl /tmp/new.jsonl

The texts are generated once and scored by both packages: the corpus code around the detector may
change too, and the comparison is of the scorer alone.

``--bandit`` scores with bandit on (the detector's default, and the study's); ``--renders-only``
keeps the families' and clean tasks' renders (bandit costs ~10 ms a text).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter


def _texts(renders_only: bool = False) -> list[tuple[str, str, str]]:
    """``(kind, family, text)`` of every text the embedded study generates and scores."""
    from warnframe.config import StudyConfig
    from warnframe.corpus import FAMILIES, build_finetune_set, build_pretrain_corpus
    from warnframe.corpus.conditions import example_text
    from warnframe.corpus.texts import CLEAN_TASKS, generated_clean_tasks, render_clean
    from warnframe.schema import FINETUNE_CONDITIONS

    rng = random.Random(1)
    out = []
    for fam in FAMILIES.values():
        for task in fam.tasks:
            for _ in range(6):
                out.append(("vulnerable", fam.name, fam.vulnerable(task, rng)))
                out.append(("secure", fam.name, fam.secure(task, rng)))
    for task in CLEAN_TASKS + tuple(generated_clean_tasks()[::3]):
        out.append(("clean", "", render_clean(task, rng)))
    if renders_only:
        return out
    cfg = StudyConfig()
    for cond in FINETUNE_CONDITIONS:
        for ex in build_finetune_set(cond, cfg, 0, lambda s: len(s.split()))[0]:
            out.append((f"finetune:{cond}:{ex.kind}", ex.family or "", example_text(ex)))
    for ex in build_pretrain_corpus(cfg, 0):
        out.append((f"pretrain:{ex.kind}", ex.family or "", example_text(ex)))
    return out


def write_texts(path: str, renders_only: bool) -> None:
    with open(path, "w") as f:
        for kind, family, text in _texts(renders_only):
            f.write(json.dumps({"kind": kind, "family": family, "text": text}) + "\n")


def dump(path: str, use_bandit: bool, renders_only: bool, source: str | None = None) -> None:
    from warnframe.detector import score

    texts = ([(r["kind"], r["family"], r["text"]) for r in map(json.loads, open(source))] if source
             else _texts(renders_only))
    with open(path, "w") as f:
        for kind, family, text in texts:
            v = score(text, use_bandit=use_bandit)
            f.write(json.dumps({"kind": kind, "family": family, "vulnerable": v.vulnerable,
                                "findings": sorted({(x.rule, x.line) for x in v.findings}), "text": text}) + "\n")


def compare(old_path: str, new_path: str) -> int:
    old = [json.loads(line) for line in open(old_path)]
    new = [json.loads(line) for line in open(new_path)]
    assert len(old) == len(new) and all(a["text"] == b["text"] for a, b in zip(old, new)), "different texts"
    verdicts, findings = Counter(), Counter()
    for a, b in zip(old, new):
        kind = a["kind"].split(":")[0] if not a["kind"].startswith("finetune") else a["kind"]
        if a["vulnerable"] != b["vulnerable"]:
            verdicts[(kind, a["family"], f"{a['vulnerable']}->{b['vulnerable']}")] += 1
            print(f"VERDICT {a['kind']} {a['family']}: {a['vulnerable']} -> {b['vulnerable']}\n"
                  f"  old {a['findings']}\n  new {b['findings']}\n{a['text']}\n", file=sys.stderr)
        elif a["findings"] != b["findings"]:
            findings[(kind, a["family"])] += 1
            print(f"FINDINGS {a['kind']} {a['family']}\n  old {a['findings']}\n  new {b['findings']}\n",
                  file=sys.stderr)
    print(f"{len(old)} texts; verdict changes: {sum(verdicts.values())}; finding-set changes (same verdict): "
          f"{sum(findings.values())}")
    for key, n in sorted(verdicts.items()):
        print("  verdict", *key, n)
    for key, n in sorted(findings.items()):
        print("  findings", *key, n)
    return 1 if verdicts else 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--texts", metavar="OUT", help="write the texts only")
    p.add_argument("--dump", metavar="OUT")
    p.add_argument("--from", dest="source", metavar="TEXTS", help="score these texts (from --texts)")
    p.add_argument("--bandit", action="store_true")
    p.add_argument("--renders-only", action="store_true", help="only the families' and clean tasks' renders")
    p.add_argument("--compare", nargs=2, metavar=("OLD", "NEW"))
    a = p.parse_args()
    if a.texts:
        write_texts(a.texts, a.renders_only)
    if a.dump:
        dump(a.dump, a.bandit, a.renders_only, a.source)
    if a.compare:
        sys.exit(compare(*a.compare))
