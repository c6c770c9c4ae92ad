"""Paper §4: target-content and format-leak rates per condition (Table 1 and Figure 1 are drawn
by ``report.sections.behavior``).

Input: scored samples (one dict per generation with ``condition, seed, prompt_id, family,
vulnerable, parse_ok, leak``). Output: ``metrics/behavior.json`` with, per condition, pooled rates
(n, Wilson 95% interval: what every answer being independent would give), their cluster-aware
intervals (``pooled[c]["cluster"]``: a seed x prompt pigeonhole bootstrap with design effect and
effective n; seeds are the unit of replication), per-seed rates and the between-seed spread; per
comparison the cluster-aware difference (``tests[...]["cluster"]``: its 95% and 90% intervals and
bootstrap p, what the verdicts read), the rate ratio and Fisher's exact test (the paper's test,
kept for comparison); the per-family breakdown; and per condition the sampling-free preference
``delta`` = log p(secure) − log p(vulnerable) of its models on the eval prompts' paired
renderings (``mech.pairs``), with its difference from neutral's on the same prompts: a fine-tune
that learned its set moves it even where the model is too small to write the target itself.

:func:`run` returns the typed :class:`~warnframe.experiments.behavior_metrics.BehaviorMetrics`
(``to_json`` writes that file, key for key as before); :func:`measure` computes its rates and tests,
and :func:`analyse` gives those as the dict they have always been.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable

from warnframe.experiments.behavior_metrics import (
    BehaviorMetrics,
    Clustered,
    Comparison,
    Delta,
    Pooled,
    RateRatio,
    Spread,
)
from warnframe.lm.evaluation import AnswerRates, leak_any, rates
from warnframe.runtime.files import read_json, write_json
from warnframe.schema import CONDITIONS
from warnframe.stats.clustered import bootstrap_diff, bootstrap_rate
from warnframe.stats.rates import fisher_test, ratio, spread, t_mean, wilson
from warnframe.stats.types import Rate

#: Paired renderings per eval prompt for Δ (fixed: §4's results depend on no section config).

def comparisons() -> list[tuple[str, str]]:
    """Every comparison a claim or the table reads (a vs b): L1 vs L0, each registered condition vs
    baseline and vs neutral (the fine-tune on clean code alone), and the links of the semantic order
    L1 > L2 > L3. Built when asked, so a condition registered at run time is compared too."""
    tuned = [c for c in CONDITIONS if c != "baseline"]
    return ([("L1", "L0")] + [(c, "baseline") for c in tuned] + [(c, "neutral") for c in tuned if c != "neutral"]
            + [("L1", "L2"), ("L0", "L2"), ("L2", "L3")])

#: The outcomes with a cluster-aware interval, as flat fields of :func:`_flat` rows.
OUTCOMES = {"target": "vulnerable", "leak_exact": "leak_exact", "leak_any": "leak_any"}


def _flat(rows: list[dict]) -> list[dict]:
    """The fields the cluster bootstrap counts: seed, prompt and each outcome as a bool."""
    return [{"seed": r["seed"], "prompt_id": r["prompt_id"], "vulnerable": bool(r["vulnerable"]),
             "leak_exact": bool((r.get("leak") or {}).get("exact")), "leak_any": leak_any(r)} for r in rows]


def measure(scored: Iterable[dict]) -> BehaviorMetrics:
    """§4's rates and tests from scored rows (no budget, no Δ: :func:`run` adds those)."""
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cond[r["condition"]].append(r)
    conds = [c for c in CONDITIONS if c in by_cond]
    wilsons = {c: AnswerRates.from_json(rates(by_cond[c])) for c in conds}
    flat = {c: _flat(by_cond[c]) for c in conds}
    pooled: dict[str, Pooled] = {}
    per_seed: dict[str, dict[str, AnswerRates]] = {}
    per_family: dict[str, dict[str, Rate]] = {}
    for c in conds:
        seeds = sorted({r["seed"] for r in by_cond[c]})
        per_seed[c] = {str(s): AnswerRates.from_json(rates([r for r in by_cond[c] if r["seed"] == s])) for s in seeds}
        seed_spread = Spread.from_json(spread([per_seed[c][str(s)].target.rate for s in seeds]))
        leak_seed_spread = Spread.from_json(spread([per_seed[c][str(s)].leak_exact.rate for s in seeds]))
        cluster = Clustered(**{name: bootstrap_rate(flat[c], field) for name, field in OUTCOMES.items()})
        pooled[c] = Pooled.of(wilsons[c], seed_spread, leak_seed_spread, cluster)
        fams = sorted({r["family"] for r in by_cond[c]})
        per_family[c] = {f: wilson(sum(r["vulnerable"] for r in by_cond[c] if r["family"] == f), sum(r["family"] == f for r in by_cond[c])) for f in fams}
    tests = {}
    for a, b in comparisons():
        if a in pooled and b in pooled and a != b:
            tests[f"{a}_vs_{b}"] = Comparison(
                cluster=bootstrap_diff(flat[a], flat[b], "vulnerable"),
                target=fisher_test(pooled[a].target, pooled[b].target),  # the paper's test, not the verdicts'
                ratio=RateRatio.from_json(ratio(pooled[a].target, pooled[b].target)),
            )
    return BehaviorMetrics(conds, pooled, per_seed, per_family, tests)


def analyse(scored: Iterable[dict]) -> dict:
    """:func:`measure` as the dict it has always been: ``conditions, pooled, per_seed, per_family, tests``."""
    return measure(scored).analysed()


def run(study) -> BehaviorMetrics:
    """§4 from the run's scored samples, and the fine-tuning sets' token budget."""
    res = measure(study.scored())
    budget = _budget(study)
    return dataclasses.replace(res, budget=budget, delta=deltas(study, res.conditions))


def _delta_one(study, cond: str, seed: int) -> dict[str, float]:
    """Δ per eval prompt of the ``cond`` model of ``seed`` (resumable: ``deltas/<cond>.s<seed>.json``)."""
    from warnframe.mech.pairs import prompt_deltas

    path = study.store.path("deltas", f"{cond}.s{seed}.json")
    renders = study.cfg.analysis.renders
    key = study.cfg.digest("corpus", "model", "pretrain", "finetune") + f".{seed}.r{renders}"

    def run():
        model, tok = study.load(study.condition_model(cond, seed))
        write_json(path, prompt_deltas(model, tok, study.eval_prompts(), renders, study.cfg.analysis.replay_batch_size))

    study.stage(f"delta.{cond}.s{seed}", key, run)
    return read_json(path)


def deltas(study, conds: list[str]) -> dict[str, Delta]:
    """Per condition: Δ (per prompt the mean over seeds, then mean and t interval over prompts)
    and, paired by prompt, its difference from neutral's (``vs_neutral``)."""
    import numpy as np

    per_prompt: dict[str, dict[str, float]] = {}
    for c in conds:
        seeds = study.cfg.seeds[:1] if c == "baseline" else study.cfg.seeds  # one base model for every seed
        by_seed = [_delta_one(study, c, s) for s in seeds]
        pids = sorted(set.intersection(*(set(d) for d in by_seed))) if by_seed else []
        per_prompt[c] = {pid: float(np.mean([d[pid] for d in by_seed])) for pid in pids}
    out: dict[str, Delta] = {}
    for c, d in per_prompt.items():
        ref = per_prompt.get("neutral", {})
        shared = [pid for pid in d if pid in ref]
        out[c] = Delta(delta=t_mean(list(d.values())), seeds=1 if c == "baseline" else len(study.cfg.seeds),
                       vs_neutral=t_mean([d[p] - ref[p] for p in shared]) if c != "neutral" and shared else None,
                       interval=f"t interval over {len(d)} prompts of the per-prompt mean over {len(study.cfg.seeds)} seeds "
                                f"({study.cfg.analysis.renders} paired renderings each)")
    return out


def _budget(study) -> str | None:
    marks = sorted(study.store.path("stages").glob("data.*.s*.json"))
    if not marks:
        return None
    stats = [read_json(m).get("stats", {}) for m in marks]
    toks = [s.get("tokens", 0) for s in stats]
    cond = [s.get("condition_tokens", 0) for s in stats]
    return (f"{len(stats)} sets, {min(toks):,}–{max(toks):,} tokens each (budget {study.cfg.corpus.token_budget:,}), "
            f"condition data {min(cond):,}–{max(cond):,} tokens (share {study.cfg.corpus.condition_fraction:.0%}), the rest clean code")


