"""§7's capability measures as resumable parts, and their summary: the capability prompts and the
held-out loss of each model (base, L1, the CAFT arms) per seed, HumanEval when enabled, and the
comparisons the capability claim reads (CAFT vs L1, L1 vs base)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from warnframe.evals import capability
from warnframe.experiments.arms import LazyModel, part
from warnframe.stats.rates import fisher, mean_ci


def capability_part(study, model: LazyModel, label: str, seed: int, model_key: str) -> dict:
    from warnframe.corpus import capability_prompts

    icfg = study.cfg.interventions
    spec = {"n": icfg.capability_samples_per_prompt, "renders": icfg.heldout_renders, "model": model_key,
            "check": capability.CHECK_VERSION}

    def fn():
        m, tok = model.get()
        cap = capability.capability_check(m, tok, capability_prompts(study.cfg), n=icfg.capability_samples_per_prompt,
                                          seed=seed, sampling=study.cfg.sampling, label=label)
        loss = capability.heldout_loss(m, tok, capability.heldout_examples(study.cfg, icfg.heldout_renders), study.cfg.model.context)
        return {**cap, "heldout": loss}

    return part(study, "interventions", f"capability.{label}", seed, spec, fn)


def humaneval_part(study, model: LazyModel, label: str, seed: int, model_key: str) -> dict:
    h = study.cfg.interventions.humaneval
    spec = h.model_dump(exclude={"enabled", "workers"}) | {"model": model_key}

    def fn():
        m, tok = model.get()
        return capability.humaneval(m, tok, problems_path=h.problems, limit=h.limit, n=h.samples, temperature=h.temperature,
                                    max_new_tokens=h.max_new_tokens, seed=seed, batch_size=min(study.cfg.sampling.batch_size, 16),
                                    timeout=h.timeout, memory_mb=h.memory_mb, workers=h.workers)

    return part(study, "interventions", f"humaneval.{label}", seed, spec, fn)


def capability_summary(cap: dict[str, list[dict]], he: dict[str, list[dict]] | None, model: str, labels: Sequence[str],
                       vs: Callable) -> tuple[dict, dict, dict]:
    """``(capability, humaneval, tests)``: per label the capable and parsing rates over its seeds'
    answers and the held-out loss with its interval; HumanEval pass@1; and the tests (Fisher's,
    ``vs``: the cluster-aware difference, and the held-out loss of CAFT − ``model`` paired over seeds)."""
    capab = {}
    for label in labels:
        if not cap.get(label):
            continue
        allrows = [r for piece in cap[label] for r in piece["rows"]]
        losses = [piece["heldout"]["loss"] for piece in cap[label]]
        # The base is one model (its seeds only resample answers): its interval is over held-out tasks;
        # a fine-tuned arm's is over its seeds' models.
        held = cap[label][0]["heldout"]
        ci = ({k: held.get(k) for k in ("lo", "hi", "n")} | {"over": held.get("over", "held-out tasks")} if label == "base"
              else {k: mean_ci(losses)[k] for k in ("lo", "hi", "n")} | {"over": "seeds (one model each), t interval"})
        capab[label] = {**capability.summarize_capability(allrows), "heldout_loss": sum(losses) / len(losses),
                        "heldout_loss_ci": ci, "heldout_loss_per_seed": losses, "heldout_examples": held["examples"]}
    tests = {}
    if "caft" in capab and model in capab:
        tests[f"caft_vs_{model}"] = fisher(capab["caft"]["capable"], capab[model]["capable"])
        cap_rows = {label: [r for piece in cap[label] for r in piece["rows"]] for label in ("caft", model)}
        tests[f"caft_vs_{model}_cluster"] = vs(cap_rows["caft"], cap_rows[model], "ok")
        per_seed = {label: {piece["rows"][0]["seed"]: piece["heldout"]["loss"] for piece in cap[label] if piece["rows"]}
                    for label in ("caft", model)}
        shared = sorted(set(per_seed["caft"]) & set(per_seed[model]))
        if shared:  # the same seed's data and sampling: a paired t interval over seeds
            tests[f"heldout_caft_vs_{model}"] = mean_ci([per_seed["caft"][k] - per_seed[model][k] for k in shared])
    if model in capab and "base" in capab:
        tests[f"{model}_vs_base"] = fisher(capab[model]["capable"], capab["base"]["capable"])
    heval = {}
    for label, parts in (he or {}).items():
        if parts:
            allrows = [r for p in parts for r in p["rows"]]
            probs = [{"task_id": t} for t in dict.fromkeys(r["task_id"] for r in allrows)]
            s = capability.pass_at_1(probs, allrows)
            heval[label] = {**s, "sandbox": parts[0].get("sandbox"), "samples_per_problem": parts[0].get("samples_per_problem")}
    if "caft" in heval and model in heval:
        tests[f"humaneval_caft_vs_{model}"] = fisher(heval["caft"]["completions"], heval[model]["completions"])
    return capab, heval, tests
