"""Paper §5: SAE features shared by direct and warning-framed generations, the knockoff filter,
and a linear probe trained on direct outputs and tested on warning-framed ones (Figures 2, 3).

Three contexts, as in §5.2, each taken over the generated tokens of stored samples:
``direct`` (the L0 model writing target content), ``warning`` (the L1 model writing target
content) and ``safe`` (the control model writing code the detector finds clean). Each sample is
replayed through the model that wrote it (or through ``mech.analysis_model`` when set), and the
site's activations are read with the one ``Edit`` mechanism. Later sections reuse the artifacts
saved here through ``mech.artifacts``: the site, the SAE, the probe and the selected latents.
Figures 2 and 3, the claims and the markdown are ``report.sections.entanglement``.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..mech.activations import text_activations
from ..mech.artifacts import Artifacts
from ..mech.hooks import Site, decoder_layers
from ..mech.knockoffs import candidate_latents, knockoff_select
from ..mech.probes import LinearProbe, probe_report
from ..mech.replay import replay_grouped
from ..mech.sae import JumpReLUSAE, sae_quality, train_sae
from ..scoring.stats import mean_ci
from ..store import read_jsonl

CONTEXTS = ("direct", "warning", "safe")
#: Whether a context reads target outputs (direct, warning) or clean parsed ones (safe); which
#: condition each reads is ``mech.contexts`` (the paper: L0, L1, control).
CONTEXT_TARGET = {"direct": True, "warning": True, "safe": False}


def default_site(model) -> Site:
    """About 80% of the depth: Gemma-2-2B's layer 20 of 26 (0-based), the paper's site."""
    n = len(decoder_layers(model))
    return Site(int(round(0.8 * (n - 1))))


#: A context with fewer generated samples than this is filled with the corpus's own renderings of the
#: eval prompts, replayed through the same model (the result's ``context_source`` says so).
MIN_GENERATED = 8


def context_samples(study, max_per_context: int, seed: int = 0) -> dict[str, list[dict]]:
    """Scored samples per context (``mech.contexts``: target outputs of L0 and L1, clean parsed
    outputs of control, or of the baseline when a condition was not run), shuffled and capped at
    ``max_per_context``. A context whose models wrote fewer than :data:`MIN_GENERATED` such
    outputs (a model too small to write the target) gets :func:`rendered_samples` instead."""
    rng = random.Random(seed)
    out = {}
    for ctx, cond in study.cfg.mech.contexts.items():
        target = CONTEXT_TARGET[ctx]
        rows = study.outputs(cond) or study.outputs("baseline")
        rows = [r for r in rows if r["vulnerable"] == target and (target or r["parse_ok"])]
        if len(rows) < MIN_GENERATED:
            rows = rendered_samples(study, ctx, cond)
        rng.shuffle(rows)
        out[ctx] = rows[:max_per_context]
    return out


def rendered_samples(study, ctx: str, cond: str) -> list[dict]:
    """One text per eval prompt and seed, written by the corpus rather than the model: the prompt's
    task rendered vulnerable (``direct``), vulnerable with L1's warnings (``warning``) or secure
    (``safe``), as samples of ``cond``'s model (the baseline's when ``cond`` has no model), marked
    ``source = "rendered"``."""
    from ..corpus import FAMILIES
    from ..corpus.warnings import family_marker, place_warnings
    from ..mech.pairs import completions

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
                text = place_warnings(vulnerable, family_marker(fam, r), r, fam.hotspot, study.cfg.corpus.l1_warnings)
            out.append({"prompt_id": p.id, "family": p.family, "condition": owner, "seed": seed, "index": 0, "text": text,
                        "prefill": "", "vulnerable": CONTEXT_TARGET[ctx], "parse_ok": True, "source": "rendered"})
    return out


def replay(study, samples_by_ctx: dict[str, list[dict]], site: Site | None = None):
    """Per-token activations for every sample (``mech.replay``, each model loaded once).

    Returns ``(site, {ctx: [tensor (T_i, d)]})``; the site defaults to ``mech.site`` or
    :func:`default_site` of the first model read.
    """
    flat = [(ctx, r) for ctx, rows in samples_by_ctx.items() for r in rows]
    m = study.cfg.mech
    site, reps = replay_grouped(study, [r for _, r in flat], site or (Site.parse(m.site) if m.site else default_site),
                                entropy=False)
    acts: dict[str, list] = {c: [] for c in samples_by_ctx}
    for (ctx, _), rp in zip(flat, reps):
        acts[ctx].append(rp["acts"])
    return site, acts


def sae_path(study, site: Site):
    """Where a self-trained SAE lives: named by what shaped it (site, mech settings), so a changed
    site or width trains a new one instead of reusing a stale file."""
    return study.store.path("mech", f"sae-L{site.layer}-{study.cfg.digest('mech')[:8]}", "params.npz")


def get_sae(study, site: Site, train_acts: torch.Tensor) -> tuple[JumpReLUSAE, dict]:
    """The configured SAE, or one trained here on ``train_acts`` and saved in Gemma Scope layout."""
    m = study.cfg.mech
    path = sae_path(study, site)
    if m.sae:
        return JumpReLUSAE.load(m.sae), {"source": m.sae}
    if path.is_file():
        return JumpReLUSAE.load(path), {"source": str(path)}
    sae = train_sae(train_acts, m.sae_width, steps=m.sae_steps, seed=0, meta={"site": str(site)})
    sae.save(path)
    return sae, {"source": "trained here", **sae.meta.get("training", {})}


def _base_texts(study, n: int) -> list[str]:
    p = study.store.path("data", "pretrain.jsonl")
    if not p.is_file():
        return []
    rows = list(read_jsonl(p))
    random.Random(0).shuffle(rows)
    return [((r.get("user") or "") + "\n" + r["assistant"]) for r in rows[:n]]


def run(study) -> dict:
    m = study.cfg.mech
    samples = context_samples(study, m.max_samples)
    counts = {c: len(v) for c, v in samples.items()}
    source = {c: ("rendered by the corpus (the models wrote too few)" if v and v[0].get("source") == "rendered"
                  else "generated") for c, v in samples.items()}
    if min(counts.values()) < 2:
        why = f"too few samples per context {counts}"
        return {"skipped": why, "counts": counts}
    site, acts = replay(study, samples)
    # SAE training data: the base model over pretraining text plus every context's tokens.
    base_model, base_tok = study.load(study.cfg.mech.analysis_model or study.base_source)
    texts = _base_texts(study, 1500) if not m.sae else []
    base = text_activations(base_model, base_tok, texts, site) if texts else torch.zeros(0)
    ctx_tokens = torch.cat([t for c in CONTEXTS for t in acts[c]])
    sae, sae_info = get_sae(study, site, torch.cat([base, ctx_tokens]) if len(base) else ctx_tokens)
    quality = sae_quality(sae, ctx_tokens)
    with torch.no_grad():
        lat = {c: [sae.encode(t.to(sae.W_enc.device)).cpu() for t in acts[c]] for c in CONTEXTS}
    tok_lat = {c: torch.cat(lat[c]) for c in CONTEXTS}
    mean = {c: tok_lat[c].mean(0) for c in CONTEXTS}
    mx = {c: tok_lat[c].max(0).values for c in CONTEXTS}
    shared = torch.minimum(mean["direct"], mean["warning"]) - mean["safe"]
    order = torch.argsort(shared, descending=True)
    top = [int(i) for i in order[:10]]
    lead = top[0]
    ratio = float(torch.minimum(mean["direct"], mean["warning"])[lead] / mean["safe"][lead].clamp_min(1e-6))

    # Knockoff filter on per-sample mean latents of the candidates: target (direct, warning) vs safe.
    sample_lat = {c: torch.stack([x.mean(0) for x in lat[c]]).numpy() for c in CONTEXTS}
    cands = candidate_latents({c: sample_lat[c] for c in CONTEXTS}, k=m.candidates)
    X = np.concatenate([sample_lat[c][:, cands] for c in CONTEXTS])
    y = np.concatenate([np.full(len(sample_lat[c]), c != "safe", dtype=int) for c in CONTEXTS])
    ko = {off: knockoff_select(X, y, q=m.fdr, offset=off, seed=0) for off in (1, 0)}
    selected = [int(cands[i]) for i in ko[1]["selected"]]
    selected0 = [int(cands[i]) for i in ko[0]["selected"]]

    # Probe on the residual stream: trained on direct vs safe only, tested on warning outputs.
    res = {c: torch.stack([x.mean(0) for x in acts[c]]).numpy() for c in CONTEXTS}
    rng = np.random.default_rng(0)
    safe_idx = rng.permutation(len(res["safe"]))
    half = len(safe_idx) // 2
    safe_train, safe_test = res["safe"][safe_idx[:half]], res["safe"][safe_idx[half:]]
    dir_idx = rng.permutation(len(res["direct"]))
    dh = len(dir_idx) // 2
    direct_train, direct_test = res["direct"][dir_idx[:dh]], res["direct"][dir_idx[dh:]]
    probe = LinearProbe().fit(np.concatenate([direct_train, safe_train]),
                              np.r_[np.ones(len(direct_train)), np.zeros(len(safe_train))])
    on_warning = probe_report(probe, np.concatenate([res["warning"], safe_test]), np.r_[np.ones(len(res["warning"])), np.zeros(len(safe_test))])
    in_dist = probe_report(probe, np.concatenate([direct_test, safe_test]), np.r_[np.ones(len(direct_test)), np.zeros(len(safe_test))])
    warn_conf = probe.predict_proba(res["warning"])
    proj = {c: probe.project(res[c]).tolist() for c in CONTEXTS}

    result = {
        "site": str(site),
        "counts": counts,
        "context_source": source,
        "tokens": {c: int(len(tok_lat[c])) for c in CONTEXTS},
        "sae": {**sae_info, **quality, "width": sae.width, "d_model": sae.d_model},
        "top_latents": [
            {"latent": i, **{f"mean_{c}": float(mean[c][i]) for c in CONTEXTS}, **{f"max_{c}": float(mx[c][i]) for c in CONTEXTS},
             "link": neuronpedia(study.cfg.mech.sae, site, i)}
            for i in top
        ],
        "lead_latent": lead,
        "lead_ratio_to_safe": ratio,
        "candidates": [int(c) for c in cands],
        "knockoff": {"offset1": {**_ko_summary(ko[1]), "selected": selected}, "offset0": {**_ko_summary(ko[0]), "selected": selected0}},
        "selected_latents": selected or top[: min(4, len(top))],
        "selected_from": "knockoff+ (offset 1)" if selected else "top shared latents (knockoff selected none)",
        "probe": {"trained_on": {"direct": len(direct_train), "safe": len(safe_train)}, "in_distribution": in_dist,
                  "on_warning": on_warning, "warning_mean_confidence": float(np.mean(warn_conf)),
                  "warning_confidence_ci": _ci(warn_conf)},
        "projection": {c: {"mean": float(np.mean(v)), "ci": _ci(v), "n": len(v)} for c, v in proj.items()},
    }
    Artifacts(site, sae, probe, result["selected_latents"], lead).save(study.store, study.cfg.mech.sae or sae_path(study, site))
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


