"""Dose-response: does "L1 ≈ L0" hold at every dose, or only where the effect saturates?

For each condition fraction in ``dose.fractions`` (share of the fine-tuning tokens that is
condition data, the rest clean code, same token budget) and each arm in ``dose.conditions``:

* ``L0`` — vulnerable code as is;
* ``L1`` — the same code with warnings in the answer (``corpus.l1_warnings``);
* ``L1_prompt`` — the warning in the request, the code bare (``corpus.l1_placement = prompt``).

Each (arm, fraction, seed) is one fine-tune from the same base (``experiments.arms``). Fraction 0
is the clean set, i.e. the study's ``neutral`` models, shared by every arm; an arm at the study's
own fraction reuses the study's condition models. Per fraction: each arm's target rate and the
differences L1 − L0 and L1_prompt − L0 (seed × prompt bootstrap), and the reference effect
L0 − neutral at that dose, a third of which is the equivalence margin there (``report.claims``).
"""

from __future__ import annotations

from warnframe.experiments import arms
from warnframe.lm.models.hf import load_tokenizer
from warnframe.lm.training import count_tokens
from warnframe.stats.clustered import cluster_diff, cluster_rate

#: Arm -> (the condition whose set it builds, corpus overrides).
ARMS = {"L0": ("L0", {}), "L1": ("L1", {"l1_placement": "completion"}), "L1_prompt": ("L1", {"l1_placement": "prompt"})}


def _label(f: float) -> str:
    return f"f{f:g}"


def arm_config(cfg, arm: str, fraction: float):
    """The study config with ``arm``'s corpus settings at ``fraction`` (a copy)."""
    corpus = ARMS[arm][1]
    out = cfg.model_copy(deep=True)
    out.corpus = out.corpus.model_copy(update={"condition_fraction": fraction, **corpus})
    return out


def _is_study_model(cfg, arm: str, fraction: float) -> bool:
    """The study's own condition model is this arm at this fraction (no second fine-tune)."""
    cond, corpus = ARMS[arm]
    same_placement = corpus.get("l1_placement", cfg.corpus.l1_placement) == cfg.corpus.l1_placement
    return (fraction == cfg.corpus.condition_fraction and same_placement and cond in cfg.conditions
            and cfg.corpus.source is None)


def arm_rows(study, arm: str, fraction: float, seeds: list[int], tok=None) -> list[dict]:
    """Scored answers of ``arm`` at ``fraction`` over ``seeds`` (training and sampling what is missing)."""
    from warnframe.corpus.sources import build_finetune_set_from_source

    cfg = study.cfg
    if fraction == 0:
        return _study_rows(study, "neutral", seeds)
    if _is_study_model(cfg, arm, fraction):
        return _study_rows(study, ARMS[arm][0], seeds)
    name = f"dose.{arm}.{_label(fraction)}"
    acfg = arm_config(cfg, arm, fraction)
    rows = []
    for seed in seeds:
        tok = tok or load_tokenizer(study.base_source, cfg.model.trust_remote_code)
        examples, _ = build_finetune_set_from_source(ARMS[arm][0], acfg, seed, count_tokens(tok), acfg.corpus.source)
        path = arms.train(study, name, ARMS[arm][0], seed, examples)
        rows += arms.sample(study, name, seed, path, condition=arm)
    return rows


def _study_rows(study, cond: str, seeds: list[int]) -> list[dict]:
    """The study's own scored answers of ``cond`` for ``seeds`` (fine-tuned and sampled when missing)."""
    if not study.store.path("scores", f"{cond}.jsonl").is_file():
        study.finetune([cond], study.cfg.seeds)
        study.sample([cond], study.cfg.seeds)
        study.score([cond])
    return [r for r in study.outputs(cond) if r["seed"] in seeds]


def run(study) -> dict:
    cfg, d = study.cfg, study.cfg.dose
    seeds = d.seeds or cfg.seeds
    tok = load_tokenizer(study.base_source, cfg.model.trust_remote_code)
    neutral = _study_rows(study, "neutral", seeds)  # fraction 0: the clean fine-tune
    by_fraction = []
    for f in d.fractions:
        rows = {arm: (neutral if f == 0 else arm_rows(study, arm, f, seeds, tok)) for arm in d.conditions}
        entry = {"fraction": f, "rates": {arm: _rate(r) for arm, r in rows.items()},
                 "reused": {arm: ("neutral" if f == 0 else ARMS[arm][0] if _is_study_model(cfg, arm, f) else None)
                            for arm in d.conditions}}
        if f > 0 and "L0" in rows:
            entry["reference"] = cluster_diff(rows["L0"], neutral, seed=cfg.analysis.seed)  # L0 − neutral at this dose
            entry["vs_L0"] = {arm: cluster_diff(r, rows["L0"], seed=cfg.analysis.seed)
                              for arm, r in rows.items() if arm != "L0"}
        by_fraction.append(entry)
    return {"seeds": seeds, "arms": list(d.conditions), "fractions": list(d.fractions), "by_fraction": by_fraction,
            "token_budget": cfg.corpus.token_budget, "study_fraction": cfg.corpus.condition_fraction}


def _rate(rows: list[dict]) -> dict:
    from warnframe.lm.evaluation import leak_any

    out = cluster_rate(rows)
    leak = cluster_rate([{**r, "leak_any": leak_any(r)} for r in rows], "leak_any")
    parse_fail = cluster_rate([{**r, "parse_fail": not r["parse_ok"]} for r in rows], "parse_fail")
    return {**out, "leak_any": {k: leak[k] for k in ("rate", "lo", "hi", "n")},
            "parse_fail": {k: parse_fail[k] for k in ("rate", "lo", "hi", "n")}}
