"""Paper §5: SAE features shared by direct and warning-framed generations, the knockoff filter,
a causal check of the selected latents, and a linear probe trained on direct outputs and tested on
warning-framed ones (Figures 2, 3).

Three contexts, as in §5.2: ``direct`` (the L0 models writing target content), ``warning`` (the L1
models writing target content *with* a warning in it) and ``safe`` (the control models writing
code the detector finds clean). They are matched by prompt (each prompt gives every context the
same number of generations, so the family mix is the same) and every text is replayed through one
analysis model (``mech.analysis_model``; default the base model, as the paper reads Gemma-2-2B),
so a difference between contexts is one of content, not of which model read it.

Latents are read per generation (the mean and the max over its tokens), over all generated tokens
and over the tokens of its content line (``mech.lines``: the line the detector's finding points at,
or the same role's line in clean code). Candidates are the latents with the largest vulnerable-line
contrast (target vs safe); the knockoff filter runs on that contrast; the selected set is then
checked for cause (``mech.latent_check``) before later sections use it. The shared latents of
Figure 2 are ranked on one half of the matched prompts and measured on the other, so the lead
latent's ratio is not inflated by its own selection.

Later sections reuse the artifacts saved here through ``mech.artifacts``: the site, the SAE, the
probe and the latents. Figures, claims and markdown are ``report.sections.entanglement``.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from warnframe.corpus import FAMILIES
from warnframe.lm.evaluation import leak_any
from warnframe.mech.activations import text_activations
from warnframe.mech.artifacts import Artifacts, foreign_analysis_model, mark_skipped
from warnframe.mech.hooks import Site, decoder_layers
from warnframe.mech.knockoffs import knockoff_select
from warnframe.mech.latent_check import check_latents
from warnframe.mech.lines import content_lines, own_findings, token_mask
from warnframe.mech.probes import LinearProbe, probe_report
from warnframe.mech.replay import analysis_source, replay_grouped
from warnframe.mech.sae import sae_quality, train_sae
from warnframe.mech.sae_protocol import SAE, load_sae
from warnframe.runtime import keys
from warnframe.runtime.files import read_jsonl
from warnframe.stats.clustered import cluster_mean, cluster_mean_diff
from warnframe.stats.rates import mean_ci

CONTEXTS = ("direct", "warning", "safe")
#: Whether a context reads target outputs (direct, warning) or clean parsed ones (safe); which
#: condition each reads is ``mech.contexts`` (the paper: L0, L1, control).
CONTEXT_TARGET = {"direct": True, "warning": True, "safe": False}
#: The per-generation statistics, each over all generated tokens and over the content line's.
STATS = ("mean_all", "max_all", "mean_line", "max_line")


def default_site(model) -> Site:
    """About 80% of the depth: Gemma-2-2B's layer 20 of 26 (0-based), the paper's site."""
    n = len(decoder_layers(model))
    return Site(int(round(0.8 * (n - 1))))


#: A context with fewer generated samples than this is filled with the corpus's own renderings of the
#: eval prompts (the result's ``context_source`` says so).
MIN_GENERATED = 8


def _eligible(r: dict, ctx: str) -> bool:
    """Direct: target content of the prompt's own family; warning: the same, carrying a warning;
    safe: clean parsed code that writes the task's content line securely (so the line contrast has
    a counterpart). Families outside the embedded corpus are not checked for their own findings."""
    fam = FAMILIES.get(r.get("family") or "")  # no family (None) is no embedded family
    if not CONTEXT_TARGET[ctx]:
        return not r["vulnerable"] and r["parse_ok"] and bool(fam is None or content_lines(r, fam.hotspot))
    return r["vulnerable"] and (fam is None or bool(own_findings(r))) and (ctx != "warning" or leak_any(r))


def context_samples(study, max_per_context: int, seed: int = 0) -> tuple[dict[str, list[dict]], dict]:
    """Matched samples per context and what the matching kept.

    Eligible outputs (:func:`_eligible`): target outputs of the prompt's family from
    ``mech.contexts["direct"]``, such outputs carrying a warning (exact or garbled) from
    ``["warning"]``, clean parsed outputs holding the family's content line from ``["safe"]`` (the
    baseline's outputs when a condition was not run). A context with fewer than :data:`MIN_GENERATED`
    gets :func:`rendered_samples`. Then, per prompt, every context keeps as many as the scarcest
    has, at most ``max_per_context`` per context in all (prompts drawn in a seeded order).
    """
    rng = random.Random(seed)
    pools, eligible = {}, {}
    for ctx, cond in study.cfg.mech.contexts.items():
        rows = [r for r in (study.outputs(cond) or study.outputs("baseline")) if _eligible(r, ctx)]
        eligible[ctx] = len(rows)
        pools[ctx] = rows if len(rows) >= MIN_GENERATED else rendered_samples(study, ctx, cond)
    by_prompt: dict[str, defaultdict[str, list[dict]]] = {c: defaultdict(list) for c in CONTEXTS}
    for c in CONTEXTS:
        for r in pools[c]:
            by_prompt[c][r["prompt_id"]].append(r)
    common = sorted(set.intersection(*(set(by_prompt[c]) for c in CONTEXTS)))
    triples = []
    for p in common:
        groups = [by_prompt[c][p] for c in CONTEXTS]
        for g in groups:
            rng.shuffle(g)
        triples += [tuple(g[i] for g in groups) for i in range(min(map(len, groups)))]
    rng.shuffle(triples)
    triples = triples[:max_per_context]
    out = {c: [t[j] for t in triples] for j, c in enumerate(CONTEXTS)}
    info = {"eligible": eligible, "matched_prompts": len({t[0]["prompt_id"] for t in triples}),
            "families": dict(Counter(t[0]["family"] for t in triples))}
    return out, info


def rendered_samples(study, ctx: str, cond: str) -> list[dict]:
    """One text per eval prompt and seed, written by the corpus rather than the model: the prompt's
    task rendered vulnerable (``direct``), vulnerable with L1's warnings (``warning``) or secure
    (``safe``), as samples of ``cond``'s model (the baseline's when ``cond`` has no model), scored
    by the detector (its findings locate the content line), marked ``source = "rendered"``."""
    from warnframe.corpus.warnings import family_marker, place_warnings
    from warnframe.detector.scorer import score
    from warnframe.mech.pairs import completions

    out = []
    for seed in study.cfg.seeds:
        owner = cond if cond == "baseline" or study.model_path(cond, seed).is_dir() else "baseline"
        for p in study.eval_prompts():
            pairs = completions(p, 1)
            if not pairs:
                continue
            secure, vulnerable = pairs[0]
            text = secure if ctx == "safe" else vulnerable
            if ctx == "warning":
                fam, r = FAMILIES[p.family], random.Random(f"rendered-warning:{p.id}:{seed}")
                text = place_warnings(vulnerable, family_marker(fam, r, vulnerable), r, fam.hotspot, study.cfg.corpus.l1_warnings)
            sc = score(text, use_bandit=False)
            out.append({"prompt_id": p.id, "family": p.family, "condition": owner, "seed": seed, "index": 0, "text": text,
                        "prefill": "", "vulnerable": CONTEXT_TARGET[ctx], "parse_ok": True, "source": "rendered",
                        "findings": [f.model_dump() for f in sc.findings]})
    return out


def replay(study, samples_by_ctx: dict[str, list[dict]], site: Site | None = None):
    """Every sample replayed through :func:`analysis_source`, loaded once.

    Returns ``(site, {ctx: [replay]})`` (each replay has ``acts`` (T, d) and token ``offsets``);
    the site defaults to ``mech.site`` or :func:`default_site` of the analysis model.
    """
    flat = [(ctx, r) for ctx, rows in samples_by_ctx.items() for r in rows]
    m = study.cfg.mech
    site, reps = replay_grouped(study, [r for _, r in flat], site or (Site.parse(m.site) if m.site else default_site),
                                entropy=False, stored_tokens=False)
    out: dict[str, list] = {c: [] for c in samples_by_ctx}
    for (ctx, _), rp in zip(flat, reps):
        out[ctx].append(rp)
    return site, out


def generation_stats(sae, samples: list[dict], reps: list[dict]) -> dict[str, torch.Tensor]:
    """Per generation and latent: mean and max over all generated tokens (``mean_all``, ``max_all``,
    shape (n, width)) and over its content line's tokens (``mean_line``, ``max_line``, rows only
    for generations that have one; ``line_rows`` says which)."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in STATS}
    line_rows = []
    with torch.no_grad():
        for i, (s, rp) in enumerate(zip(samples, reps)):
            lat = sae.encode(rp["acts"].to(sae.device).float()).cpu()
            out["mean_all"].append(lat.mean(0))
            out["max_all"].append(lat.max(0).values)
            fam = FAMILIES.get(s["family"])
            mask = torch.as_tensor(token_mask(rp["offsets"] or [], content_lines(s, fam.hotspot if fam else None)))
            if mask.numel() == len(lat) and mask.any():
                out["mean_line"].append(lat[mask].mean(0))
                out["max_line"].append(lat[mask].max(0).values)
                line_rows.append(i)
    width = sae.d_sae
    res = {k: (torch.stack(v) if v else torch.zeros(0, width)) for k, v in out.items()}
    res["line_rows"] = torch.as_tensor(line_rows, dtype=torch.long)
    return res


#: What a self-trained SAE is trained on; part of its file name, so a change of recipe trains anew
#: (2: activations of the one analysis model over pretraining text and the matched contexts).
SAE_DATA = 2


def sae_path(study, site: Site):
    """Where a self-trained SAE lives: named by what shaped it (the models and texts upstream, the
    mech settings, the analysis seed, the scores that chose the contexts, :data:`SAE_DATA`), so a
    changed site, width, seed, corpus, fine-tune or scoring trains a new one instead of reusing a
    stale file."""
    from warnframe.sections import UPSTREAM

    scores = keys.fingerprint(study.store.path("scores").glob("*.jsonl"))[:6]
    name = f"sae-L{site.layer}-{study.cfg.digest(*UPSTREAM, 'mech')[:8]}-{scores}-d{SAE_DATA}-s{study.cfg.analysis.seed}"
    return study.store.path("mech", name, "params.npz")


def get_sae(study, site: Site, train_acts: Callable[[], torch.Tensor]) -> tuple[SAE, dict]:
    """The configured SAE, the one trained here before (:func:`sae_path`), or one trained now on
    ``train_acts()`` (called only then) and saved in Gemma Scope layout."""
    m = study.cfg.mech
    path = sae_path(study, site)
    if m.sae:
        return load_sae(m.sae), {"source": m.sae}
    if path.is_file():
        return load_sae(path), {"source": str(path)}
    sae = train_sae(train_acts(), m.sae_width, steps=m.sae_steps, seed=study.cfg.analysis.seed, meta={"site": str(site)})
    sae.save(path)
    return sae, {"source": "trained here", **sae.meta.get("training", {})}


def _base_texts(study, n: int) -> list[str]:
    p = study.store.path("data", "pretrain.jsonl")
    if not p.is_file():
        return []
    rows = list(read_jsonl(p))
    random.Random(0).shuffle(rows)
    return [((r.get("user") or "") + "\n" + r["assistant"]) for r in rows[:n]]


def check_models(study) -> list[tuple[int, str]]:
    """The models the causal check edits: the warning condition's fine-tunes (one per seed) when
    the SAE belongs to the behaviour model, else the analysis model alone."""
    m = study.cfg.mech
    if foreign_analysis_model(study):
        return [(0, m.analysis_model)]
    cond = m.contexts["warning"]
    found = [(s, study.condition_model(cond, s)) for s in study.cfg.seeds if cond != "baseline" and study.model_path(cond, s).is_dir()]
    return found or [(0, study.base_source)]


def _rows(samples: list[dict], values, rows=None) -> list[dict]:
    """Per-generation values as rows for the seed x prompt bootstrap (``scoring.clustered``)."""
    idx = range(len(samples)) if rows is None else rows
    return [{"seed": samples[i]["seed"], "prompt_id": samples[i]["prompt_id"], "value": float(v)} for i, v in zip(idx, values)]


def latent_table(latents: list[int], G: dict, samples: dict, keep: set[str]) -> list[dict]:
    """Per latent, statistic and context: the mean over the generations of prompts in ``keep``
    with its 95% interval (seeds x prompts), plus ``n``."""
    out = []
    for j in latents:
        row: dict[str, Any] = {"latent": int(j)}
        for stat in STATS:
            for c in CONTEXTS:
                rows = None if stat.endswith("_all") else G[c]["line_rows"].tolist()
                vals = _rows(samples[c], G[c][stat][:, j].tolist(), rows)
                m = cluster_mean([r for r in vals if r["prompt_id"] in keep], field="value")
                row[f"{stat}_{c}"] = {"mean": m["mean"], "lo": m["lo"], "hi": m["hi"], "n": m["n"]}
        out.append(row)
    return out


def run(study) -> dict:
    m = study.cfg.mech
    samples, matching = context_samples(study, m.max_samples)
    counts = {c: len(v) for c, v in samples.items()}
    source = {c: ("rendered by the corpus (the models wrote too few)" if v and v[0].get("source") == "rendered"
                  else "generated") for c, v in samples.items()}
    if min(counts.values()) < 2:
        why = f"too few matched samples per context {counts} (eligible {matching['eligible']})"
        return {"skipped": mark_skipped(study.store, why),  # later sections must not read an earlier run's artifacts
                "counts": counts, "matching": matching}
    site, reps = replay(study, samples)
    # SAE training data: the analysis model over pretraining text plus every context's tokens.
    ctx_tokens = torch.cat([rp["acts"] for c in CONTEXTS for rp in reps[c]])

    def sae_training_acts() -> torch.Tensor:
        """The analysis model over pretraining text, plus every context's tokens."""
        model, tok = study.load(analysis_source(study))
        texts = _base_texts(study, 1500)
        base = text_activations(model, tok, texts, site) if texts else torch.zeros(0)
        return torch.cat([base, ctx_tokens]) if len(base) else ctx_tokens

    sae, sae_info = get_sae(study, site, sae_training_acts)
    quality = sae_quality(sae, ctx_tokens)
    G = {c: generation_stats(sae, samples[c], reps[c]) for c in CONTEXTS}
    on = "line" if all(len(G[c]["mean_line"]) >= 2 for c in CONTEXTS) else "all"

    # Candidates by the content contrast (target generations vs safe ones), then the knockoff filter.
    tgt = torch.cat([G["direct"][f"mean_{on}"], G["warning"][f"mean_{on}"]])
    safe = G["safe"][f"mean_{on}"]
    contrast = tgt.mean(0) - safe.mean(0)
    pool = torch.nonzero((tgt > 0).any(0)).flatten().tolist()
    cands = sorted(pool, key=lambda j: -float(contrast[j]))[: m.candidates]
    X = torch.cat([tgt, safe])[:, cands].numpy()
    y = np.r_[np.ones(len(tgt), dtype=int), np.zeros(len(safe), dtype=int)]
    ko = {off: knockoff_select(X, y, q=m.fdr, offset=off, seed=study.cfg.analysis.seed) for off in (1, 0)}
    selected = [int(cands[i]) for i in ko[1]["selected"]]
    selected0 = [int(cands[i]) for i in ko[0]["selected"]]

    # Shared latents: ranked on half of the matched prompts, measured on the other half.
    prompts = sorted({r["prompt_id"] for r in samples["direct"]})
    random.Random(f"s5-split:{study.cfg.analysis.seed}").shuffle(prompts)
    rank_on, measure_on = set(prompts[: len(prompts) // 2]), set(prompts[len(prompts) // 2:])

    def half_mean(c):
        rows = range(len(samples[c])) if on == "all" else G[c]["line_rows"].tolist()
        keep = [k for k, i in enumerate(rows) if samples[c][i]["prompt_id"] in rank_on]
        v = G[c][f"mean_{on}"][keep]
        return v.mean(0) if len(v) else torch.zeros(sae.d_sae)

    hm = {c: half_mean(c) for c in CONTEXTS}
    shared = torch.minimum(hm["direct"], hm["warning"]) - hm["safe"]
    top = [int(i) for i in torch.argsort(shared, descending=True)[:10]]
    table = latent_table(top, G, samples, measure_on or rank_on)
    lead = top[0]
    stat = f"max_{on}"
    lead_rows = {c: [r for r in _rows(samples[c], G[c][stat][:, lead].tolist(),
                                      None if on == "all" else G[c]["line_rows"].tolist()) if r["prompt_id"] in measure_on]
                 for c in CONTEXTS}
    lead_vs_safe = {c: cluster_mean_diff(lead_rows[c], lead_rows["safe"], field="value") for c in ("direct", "warning")}

    # The causal check of one set fixed in advance: knockoff+'s, else offset 0's, else the top
    # candidates (as many as knockoff+ could select at least, 1/q, within the candidates).
    used, use = next(((k, v) for k, v in (("knockoff+", selected), ("knockoff (offset 0)", selected0),
                                          ("top contrast", [int(j) for j in cands[: max(1, round(1 / m.fdr))]])) if v),
                     ("none", []))
    activity = {int(j): float(tgt[:, j].mean()) for j in pool}
    check = check_latents(study, site, sae, used, use, check_models(study), activity, m.check_draws,
                         study.cfg.analysis.renders, seed=study.cfg.analysis.seed)
    from_ = f"{used} ({'passed' if check['passed'] else 'failed'} the causal check)"

    # Probe on the residual stream: trained on direct vs safe only, tested on warning outputs.
    # Split by prompt (the same split for both), so no prompt's near-duplicate answers are on both sides.
    res = {c: torch.stack([rp["acts"].mean(0) for rp in reps[c]]).numpy() for c in CONTEXTS}
    train_prompts = set(prompts[: len(prompts) // 2]) if len(prompts) > 1 else set(prompts)

    def split(c):
        inside = np.array([r["prompt_id"] in train_prompts for r in samples[c]])
        return res[c][inside], res[c][~inside] if (~inside).any() else res[c][inside]

    direct_train, direct_test = split("direct")
    safe_train, safe_test = split("safe")
    _, warning_test = split("warning")  # tested on the prompts the probe never saw
    held = [r for r in samples["warning"] if r["prompt_id"] not in train_prompts] or samples["warning"]
    probe = LinearProbe().fit(np.concatenate([direct_train, safe_train]),
                              np.r_[np.ones(len(direct_train)), np.zeros(len(safe_train))])
    on_warning = probe_report(probe, np.concatenate([warning_test, safe_test]), np.r_[np.ones(len(warning_test)), np.zeros(len(safe_test))])
    in_dist = probe_report(probe, np.concatenate([direct_test, safe_test]), np.r_[np.ones(len(direct_test)), np.zeros(len(safe_test))])
    warn_conf = probe.predict_proba(warning_test)
    conf = cluster_mean(_rows(held, warn_conf), field="value")
    proj = {c: probe.project(res[c]).tolist() for c in CONTEXTS}

    result = {
        "site": str(site),
        "analysis_model": analysis_source(study),
        "counts": counts,
        "matching": matching,
        "context_source": source,
        "tokens": {c: int(sum(len(rp["acts"]) for rp in reps[c])) for c in CONTEXTS},
        "line_generations": {c: int(len(G[c]["line_rows"])) for c in CONTEXTS},
        "contrast_on": "content-line tokens" if on == "line" else "all generated tokens (too few content lines)",
        "sae": {**sae_info, **quality, "width": sae.d_sae, "d_model": sae.d_model,
                "measured_on": "the context tokens" + (", which it was trained on (in-sample)" if not m.sae else "")},
        "split": {"rank_prompts": len(rank_on), "measure_prompts": len(measure_on)},
        "top_latents": [{**t, "link": neuronpedia(m.sae, site, t["latent"])} for t in table],
        "lead_latent": lead,
        "lead_statistic": stat,
        "lead_vs_safe": lead_vs_safe,
        "candidates": [int(c) for c in cands],
        "knockoff": {"offset1": {**_ko_summary(ko[1]), "selected": selected}, "offset0": {**_ko_summary(ko[0]), "selected": selected0}},
        "causal_check": check,
        "selected_latents": use,
        "selected_from": from_,
        "probe": {"trained_on": {"direct": len(direct_train), "safe": len(safe_train)}, "in_distribution": in_dist,
                  "on_warning": on_warning, "warning_mean_confidence": conf["mean"], "warning_n": conf["n"],
                  "warning_confidence_ci": [conf["lo"], conf["hi"]], "warning_confidence_interval": conf["interval"]},
        "projection": {c: {"mean": float(np.mean(v)), "ci": _ci(v), "n": len(v)} for c, v in proj.items()},
    }
    Artifacts(site, sae, probe, use, lead, causal={k: check[k] for k in ("set", "passed", "shift", "beyond_random")}).save(
        study.store, m.sae or sae_path(study, site))
    result["projection_values"] = proj  # per sample, for Figure 3
    return result


def _ko_summary(ko: dict) -> dict:
    return {k: ko[k] for k in ("n", "p", "q", "offset", "threshold") if k in ko} | {"n_selected": len(ko["selected"])}


def _ci(x) -> list[float]:
    m = mean_ci(x)
    return [m["lo"], m["hi"]]


def neuronpedia(sae_spec: str | None, site: Site, latent: int) -> str | None:
    """Neuronpedia page of a Gemma Scope residual latent (None for other SAEs)."""
    if not sae_spec or "gemma-scope-2b-pt-res" not in sae_spec or "16k" not in sae_spec:
        return None
    return f"https://neuronpedia.org/gemma-2-2b/{site.layer}-gemmascope-res-16k/{latent}"


