"""§7's capability measures as resumable parts, and their summary: the capability prompts and the
held-out loss of each model (base, L1, the CAFT arms) per seed, HumanEval when enabled, and the
comparisons the capability claim reads (CAFT vs L1, L1 vs base)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from warnframe.evals import capability
from warnframe.experiments.arms import LazyModel, part
from warnframe.experiments.capability_metrics import Capability, CapabilityTests, HumanEval, LossInterval
from warnframe.stats.rates import fisher_test, t_mean
from warnframe.stats.types import Rate


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
                       vs: Callable) -> tuple[dict[str, Capability], dict[str, HumanEval], CapabilityTests]:
    """``(capability, humaneval, tests)``: per label the capable and parsing rates over its seeds'
    answers and the held-out loss with its interval; HumanEval pass@1; and the tests (Fisher's,
    ``vs``: the cluster-aware difference, and the held-out loss of CAFT − ``model`` paired over seeds)."""
    capab: dict[str, Capability] = {}
    for label in labels:
        if not cap.get(label):
            continue
        allrows = [r for piece in cap[label] for r in piece["rows"]]
        losses = [piece["heldout"]["loss"] for piece in cap[label]]
        # The base is one model (its seeds only resample answers): its interval is over held-out tasks;
        # a fine-tuned arm's is over its seeds' models.
        held = cap[label][0]["heldout"]
        if label == "base":
            ci = LossInterval(held.get("lo"), held.get("hi"), held.get("n"), held.get("over", "held-out tasks"))
        else:
            t = t_mean(losses)
            ci = LossInterval(t.lo, t.hi, t.n, "seeds (one model each), t interval")
        rates = capability.summarize_capability(allrows)
        capab[label] = Capability(Rate.from_json(rates["capable"]), Rate.from_json(rates["parses"]), sum(losses) / len(losses),
                                  ci, losses, held["examples"])
    tests = CapabilityTests()
    if "caft" in capab and model in capab:
        cap_rows = {label: [r for piece in cap[label] for r in piece["rows"]] for label in ("caft", model)}
        per_seed = {label: {piece["rows"][0]["seed"]: piece["heldout"]["loss"] for piece in cap[label] if piece["rows"]}
                    for label in ("caft", model)}
        shared = sorted(set(per_seed["caft"]) & set(per_seed[model]))
        # the same seed's data and sampling: a paired t interval over seeds
        tests = replace(tests, caft=fisher_test(capab["caft"].capable, capab[model].capable),
                        caft_cluster=vs(cap_rows["caft"], cap_rows[model], "ok"),
                        heldout=t_mean([per_seed["caft"][k] - per_seed[model][k] for k in shared]) if shared else None)
    if model in capab and "base" in capab:
        tests = replace(tests, model_vs_base=fisher_test(capab[model].capable, capab["base"].capable))
    heval: dict[str, HumanEval] = {}
    for label, parts in (he or {}).items():
        if parts:
            allrows = [r for p in parts for r in p["rows"]]
            probs = [{"task_id": t} for t in dict.fromkeys(r["task_id"] for r in allrows)]
            s = capability.pass_at_1(probs, allrows)
            heval[label] = HumanEval(s["pass@1"], Rate.from_json(s["completions"]), s["problems"], parts[0].get("sandbox"),
                                     parts[0].get("samples_per_problem"))
    if "caft" in heval and model in heval:
        tests = replace(tests, humaneval=fisher_test(heval["caft"].completions, heval[model].completions))
    return capab, heval, tests
