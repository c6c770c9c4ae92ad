"""Paper §4: target-content and format-leak rates per condition (Table 1 and Figure 1 are drawn
by ``report.sections.behavior``).

Input: scored samples (one dict per generation with ``condition, seed, prompt_id, family,
vulnerable, parse_ok, leak``). Output: ``metrics/behavior.json`` with, per condition, pooled rates
(n, Wilson 95% interval: what every answer being independent would give), their cluster-aware
intervals (``pooled[c]["cluster"]``: a seed x prompt pigeonhole bootstrap with design effect and
effective n; seeds are the unit of replication), per-seed rates and the between-seed spread; per
comparison the cluster-aware difference (``tests[...]["cluster"]``: its 95% and 90% intervals and
bootstrap p, what the verdicts read), the rate ratio and Fisher's exact test (the paper's test,
kept for comparison); and the per-family breakdown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ..evaluation import leak_any, rates
from ..schema import CONDITIONS
from ..scoring.clustered import cluster_diff, cluster_rate
from ..scoring.stats import fisher, rate, ratio, spread
from ..store import read_json

#: Every comparison a claim or the table reads (a vs b): L1 vs L0, each condition vs baseline and vs
#: neutral (the fine-tune on clean code alone), and the links of the semantic order L1 > L2 > L3.
COMPARISONS = ([("L1", "L0")] + [(c, "baseline") for c in CONDITIONS[1:]] + [(c, "neutral") for c in ("L0", "L1", "L2", "L3", "control")]
               + [("L1", "L2"), ("L0", "L2"), ("L2", "L3")])

#: The outcomes with a cluster-aware interval, as flat fields of :func:`_flat` rows.
OUTCOMES = {"target": "vulnerable", "leak_exact": "leak_exact", "leak_any": "leak_any"}


def _flat(rows: list[dict]) -> list[dict]:
    """The fields the cluster bootstrap counts: seed, prompt and each outcome as a bool."""
    return [{"seed": r["seed"], "prompt_id": r["prompt_id"], "vulnerable": bool(r["vulnerable"]),
             "leak_exact": bool((r.get("leak") or {}).get("exact")), "leak_any": leak_any(r)} for r in rows]


def analyse(scored: Iterable[dict]) -> dict:
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cond[r["condition"]].append(r)
    conds = [c for c in CONDITIONS if c in by_cond]
    pooled = {c: rates(by_cond[c]) for c in conds}
    flat = {c: _flat(by_cond[c]) for c in conds}
    per_seed: dict[str, dict] = {}
    per_family: dict[str, dict] = {}
    for c in conds:
        seeds = sorted({r["seed"] for r in by_cond[c]})
        per_seed[c] = {str(s): rates([r for r in by_cond[c] if r["seed"] == s]) for s in seeds}
        pooled[c]["seed_spread"] = spread([per_seed[c][str(s)]["target"]["rate"] for s in seeds])
        pooled[c]["leak_seed_spread"] = spread([per_seed[c][str(s)]["leak_exact"]["rate"] for s in seeds])
        pooled[c]["cluster"] = {name: cluster_rate(flat[c], field) for name, field in OUTCOMES.items()}
        fams = sorted({r["family"] for r in by_cond[c]})
        per_family[c] = {f: rate(sum(r["vulnerable"] for r in by_cond[c] if r["family"] == f), sum(r["family"] == f for r in by_cond[c])) for f in fams}
    tests = {}
    for a, b in COMPARISONS:
        if a in pooled and b in pooled and a != b:
            tests[f"{a}_vs_{b}"] = {
                "cluster": cluster_diff(flat[a], flat[b], "vulnerable"),
                "target": fisher(pooled[a]["target"], pooled[b]["target"]),  # the paper's test, not the verdicts'
                "ratio": ratio(pooled[a]["target"], pooled[b]["target"]),
            }
    return {"conditions": conds, "pooled": pooled, "per_seed": per_seed, "per_family": per_family, "tests": tests}


def run(study) -> dict:
    """§4 from the run's scored samples, and the fine-tuning sets' token budget."""
    res = analyse(study.scored())
    res["budget"] = _budget(study)
    return res


def _budget(study) -> str | None:
    marks = sorted(study.store.path("stages").glob("data.*.s*.json"))
    if not marks:
        return None
    stats = [read_json(m).get("stats", {}) for m in marks]
    toks = [s.get("tokens", 0) for s in stats]
    cond = [s.get("condition_tokens", 0) for s in stats]
    return (f"{len(stats)} sets, {min(toks):,}–{max(toks):,} tokens each (budget {study.cfg.corpus.token_budget:,}), "
            f"condition data {min(cond):,}–{max(cond):,} tokens (share {study.cfg.corpus.condition_fraction:.0%}), the rest clean code")


