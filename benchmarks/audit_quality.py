"""Precision and recall of ``warnframe audit``'s framing classes on the labelled eval set.

The set (src/warnframe/data/audit_eval.jsonl, hand-written, not produced by warnframe.corpus) has
a ``label`` per record. Pass thresholds were fixed before the first measurement: a class passes
when both its precision and its recall are at least 0.90 (point estimates); the Wilson 95%
intervals say how much that rests on. Also: position accuracy (is the labelled position among
those the tagger reports) and a confusion matrix.

    .venv/bin/python benchmarks/audit_quality.py [--out benchmarks/results/audit_quality.md] [--bandit]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from importlib import resources
from pathlib import Path

from warnframe.audit.readers import parse_row
from warnframe.audit.tagger import CLASSES, tag_record
from warnframe.stats.rates import rate

THRESHOLD = 0.90
HEADER = """# warnframe audit: framing-class quality

Splits, in the order they were written:

* `dev` (192): written first, measured, then the tagger was improved on general grounds and re-measured
  (in-sample, optimistic);
* `holdout` (66): written after that, measured once (benchmarks/results/audit_quality.md keeps that
  first measurement), then the general gaps it showed were fixed (now in-sample too);
* `holdout2` (47): written after those fixes and measured once: the out-of-sample number;
* `all`: the three together.

"""


def _pct(r: dict) -> str:
    return "n/a" if not r["n"] else f"{r['rate']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] ({r['k']}/{r['n']})"


def load_rows(split: str | None = None) -> list[dict]:
    """The eval records (``split``: dev, holdout, holdout2, or None for all)."""
    path = resources.files("warnframe") / "data" / "audit_eval.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if split is None or r.get("split") == split]


def evaluate(use_bandit: bool = False, split: str | None = None) -> dict:
    rows = load_rows(split)
    pairs, pos_hits, pos_n, misses = [], 0, 0, []
    for i, row in enumerate(rows):
        rec = parse_row(row, i, row["id"], None)
        t = tag_record(rec, use_bandit=use_bandit)
        pairs.append((row["label"], t.cls))
        if row.get("position") and row["label"] == t.cls:
            pos_n += 1
            pos_hits += row["position"] in t.positions
        if row["label"] != t.cls:
            misses.append({"id": row["id"], "label": row["label"], "got": t.cls, "note": row["note"]})
    per_class = {}
    for c in CLASSES:
        tp = sum(1 for gold, got in pairs if gold == c and got == c)
        predicted = sum(1 for _, got in pairs if got == c)
        actual = sum(1 for gold, _ in pairs if gold == c)
        p, r = rate(tp, predicted), rate(tp, actual)
        per_class[c] = {
            "precision": p,
            "recall": r,
            "pass": bool(predicted and actual and p["rate"] >= THRESHOLD and r["rate"] >= THRESHOLD),
        }
    return {
        "split": split or "all",
        "records": len(rows),
        "per_class": per_class,
        "confusion": Counter(f"{g}->{p}" for g, p in pairs),
        "position": rate(pos_hits, pos_n),
        "misses": misses,
        "accuracy": rate(sum(g == p for g, p in pairs), len(pairs)),
    }


def markdown(res: dict) -> str:
    lines = [
        f"### Split: {res['split']}",
        "",
        (
            f"Eval set: {res['records']} hand-labelled records; pass = precision and recall >= {THRESHOLD:.2f} "
            "(fixed before measuring). Intervals: Wilson 95%."
        ),
        "",
        "| Class | Precision [95% CI] (k/n) | Recall [95% CI] (k/n) | Pass |",
        "|---|---|---|---|",
    ]
    for c, v in res["per_class"].items():
        lines.append(f"| {c} | {_pct(v['precision'])} | {_pct(v['recall'])} | {'yes' if v['pass'] else 'no'} |")
    lines += [
        "",
        (
            f"Accuracy over all classes: {_pct(res['accuracy'])}; the labelled position is among the reported "
            f"positions for {_pct(res['position'])} of the correctly classed records that have one."
        ),
        "",
        "Misclassified records:",
        "",
    ]
    lines += [f"- `{m['id']}` ({m['note']}): labelled {m['label']}, tagged {m['got']}" for m in res["misses"]] or [
        "- none"
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="also write the table as Markdown here")
    ap.add_argument("--bandit", action="store_true", help="run bandit inside the detector too")
    args = ap.parse_args()
    md = HEADER + "\n".join(markdown(evaluate(args.bandit, split)) for split in ("dev", "holdout", "holdout2", None))
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(md)


if __name__ == "__main__":
    main()
