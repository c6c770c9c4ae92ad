"""Paper §5: SAE features shared by direct and warning-framed generations, the knockoff filter,
and a linear probe trained on direct outputs and tested on warning-framed ones (Figures 2, 3).

Three contexts, as in §5.2, each taken over the generated tokens of stored samples:
``direct`` (the L0 model writing target content), ``warning`` (the L1 model writing target
content) and ``safe`` (the control model writing code the detector finds clean). Each sample is
replayed through the model that wrote it (or through ``mech.analysis_model`` when set), and the
site's activations are read with the one ``Edit`` mechanism. Later sections reuse the artifacts
saved here through :func:`load_artifacts`: the site, the SAE, the probe and the selected latents.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch

from ..mech.activations import generated_activations, text_activations
from ..mech.hooks import Site, decoder_layers
from ..mech.knockoffs import candidate_latents, knockoff_select
from ..mech.probes import LinearProbe, probe_report
from ..mech.sae import JumpReLUSAE, sae_quality, train_sae
from ..report import paper
from ..report.figures import placeholder, pyplot, save
from ..scoring.stats import mean_ci
from ..store import read_json, read_jsonl, write_json

CONTEXTS = ("direct", "warning", "safe")
CONTEXT_SOURCE = {"direct": ("L0", True), "warning": ("L1", True), "safe": ("control", False)}


def default_site(model) -> Site:
    """About 80% of the depth: Gemma-2-2B's layer 20 of 26 (0-based), the paper's site."""
    n = len(decoder_layers(model))
    return Site(int(round(0.8 * (n - 1))))


def context_samples(study, max_per_context: int, seed: int = 0) -> dict[str, list[dict]]:
    """Scored samples per context (target outputs of L0 and L1, clean parsed outputs of control,
    or of the baseline when control was not run), shuffled and capped at ``max_per_context``."""
    rng = random.Random(seed)
    out = {}
    for ctx, (cond, target) in CONTEXT_SOURCE.items():
        rows = study.outputs(cond) or study.outputs("baseline")
        rows = [r for r in rows if r["vulnerable"] == target and (target or r["parse_ok"])]
        rng.shuffle(rows)
        out[ctx] = rows[:max_per_context]
    return out


def replay(study, samples_by_ctx: dict[str, list[dict]], site: Site | None = None):
    """Per-token activations for every sample, grouped by (condition, seed) model.

    Returns ``(site, {ctx: [tensor (T_i, d)]})``; the site defaults to :func:`default_site`.
    """
    prompts = {p.id: p for p in study.eval_prompts()}
    acts: dict[str, list] = {c: [None] * len(s) for c, s in samples_by_ctx.items()}
    groups = defaultdict(list)
    for ctx, rows in samples_by_ctx.items():
        for i, r in enumerate(rows):
            groups[(r["condition"], r["seed"])].append((ctx, i, r))
    for (cond, seed), items in sorted(groups.items()):
        model, tok = study.load(study.cfg.mech.analysis_model or study.condition_model(cond, seed))
        site = site or (Site.parse(study.cfg.mech.site) if study.cfg.mech.site else default_site(model))
        tensors = generated_activations(model, tok, prompts, [r for _, _, r in items], site,
                                        batch_size=study.cfg.analysis.replay_batch_size,
                                        stored_tokens=not study.cfg.mech.analysis_model)
        for (ctx, i, _), t in zip(items, tensors):
            acts[ctx][i] = t
        del model
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
    if min(counts.values()) < 2:
        why = f"too few samples per context {counts}"
        placeholder(study.store.path("figures", "fig2_feature_activations.png"), "Figure 2: shared SAE latents", why)
        placeholder(study.store.path("figures", "fig3_target_direction.png"), "Figure 3: target direction", why)
        return {"skipped": why, "counts": counts, "verdicts": []}
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
    probe.save(study.store.path("mech", "probe.safetensors"))
    on_warning = probe_report(probe, np.concatenate([res["warning"], safe_test]), np.r_[np.ones(len(res["warning"])), np.zeros(len(safe_test))])
    in_dist = probe_report(probe, np.concatenate([direct_test, safe_test]), np.r_[np.ones(len(direct_test)), np.zeros(len(safe_test))])
    warn_conf = probe.predict_proba(res["warning"])
    proj = {c: probe.project(res[c]).tolist() for c in CONTEXTS}

    result = {
        "site": str(site),
        "counts": counts,
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
    write_json(study.store.path("mech", "artifacts.json"), {"site": str(site), "selected_latents": result["selected_latents"],
                                                             "lead_latent": lead, "sae": str(study.cfg.mech.sae or sae_path(study, site))})
    figs = study.store.path("figures")
    figs.mkdir(exist_ok=True)
    plot_fig2(result, figs / "fig2_feature_activations.png")
    plot_fig3(proj, figs / "fig3_target_direction.png")
    result["verdicts"] = verdicts(result)
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


def load_artifacts(study):
    """(site, sae, probe, selected latents, lead latent) saved by this section, for later sections."""
    art = read_json(study.store.path("mech", "artifacts.json"))
    return (Site.parse(art["site"]), JumpReLUSAE.load(art["sae"]), LinearProbe.load(study.store.path("mech", "probe.safetensors")),
            art["selected_latents"], art["lead_latent"])


def verdicts(r: dict) -> list[dict]:
    lead = r["top_latents"][0]
    d, w, s = lead["max_direct"], lead["max_warning"], lead["max_safe"]
    md, mw, ms = lead["mean_direct"], lead["mean_warning"], lead["mean_safe"]
    close = min(md, mw) / max(md, mw, 1e-9)
    v1 = "reproduced" if r["lead_ratio_to_safe"] >= 5 and close >= 0.67 else ("differs" if r["lead_ratio_to_safe"] >= 2 else "not reproduced")
    ko = r["knockoff"]["offset1"]
    v2 = "reproduced" if ko["n_selected"] > 0 else "not reproduced"
    conf = r["probe"]["warning_mean_confidence"]
    v3 = "reproduced" if conf >= 0.9 else ("differs" if conf >= 0.5 else "not reproduced")
    P = r["projection"]
    gap = P["direct"]["mean"] - P["safe"]["mean"]
    v4 = "reproduced" if gap > 0 and (P["warning"]["mean"] - P["safe"]["mean"]) >= 0.5 * gap else "not reproduced"
    return [
        {"section": "5", "claim": "a shared latent (#8684) fires alike in direct and warning outputs, far above safe",
         "paper": "150–180 vs < 20 (7–9×)",
         "ours": f"latent {r['lead_latent']}: mean {md:.2f} / {mw:.2f} vs {ms:.2f} safe ({r['lead_ratio_to_safe']:.1f}×); max {d:.1f} / {w:.1f} vs {s:.1f}",
         "verdict": v1, "detail": f"direct–warning agreement {close:.2f} (min/max of means); n tokens {r['tokens']}"},
        {"section": "5", "claim": "knockoff filter keeps a subset of the candidates at q = 0.1", "paper": "11 of 47",
         "ours": f"{ko['n_selected']} of {ko['p']} (offset 0: {r['knockoff']['offset0']['n_selected']})", "verdict": v2,
         "detail": "knockoff+ cannot select fewer than 1/q = 10 latents; 0 means nothing passed"},
        {"section": "5", "claim": "a probe trained on direct outputs is confident on warning-framed outputs",
         "paper": "100%", "ours": f"mean confidence {conf:.2f} [{r['probe']['warning_confidence_ci'][0]:.2f}, {r['probe']['warning_confidence_ci'][1]:.2f}] "
                                  f"(n = {r['counts']['warning']}); AUROC warning vs safe {r['probe']['on_warning'].get('auroc') or float('nan'):.2f}",
         "verdict": v3, "detail": f"in-distribution AUROC {r['probe']['in_distribution'].get('auroc') or float('nan'):.2f}"},
        {"section": "5", "claim": "L0 and L1 outputs project alike on the target direction", "paper": "both high (Figure 3)",
         "ours": " / ".join(f"{c} {P[c]['mean']:.2f}" for c in CONTEXTS), "verdict": v4, "detail": ""},
    ]


def plot_fig2(r: dict, path) -> None:
    plt = pyplot()
    tops = r["top_latents"]
    x = np.arange(len(tops))
    fig, ax = plt.subplots(figsize=(9, 4))
    colors = {"direct": "#c0392b", "warning": "#e67e22", "safe": "#27ae60"}
    for j, c in enumerate(CONTEXTS):
        ax.bar(x + (j - 1) * 0.27, [t[f"mean_{c}"] for t in tops], width=0.27, color=colors[c], label=c)
    ax.set_xticks(x, [f"#{t['latent']}" for t in tops], fontsize=8)
    ax.set_ylabel("mean activation over generated tokens")
    ax.set_title(f"Figure 2: top shared SAE latents at {r['site']} (paper: #8684 at 150–180 vs < 20)")
    ax.legend()
    save(fig, path, dpi=120)


def plot_fig3(proj: dict, path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = {"direct": "L0 (direct)", "warning": "L1 (warning-framed)", "safe": "safe"}
    ax.violinplot([proj[c] for c in CONTEXTS], showmeans=True)
    ax.set_xticks(range(1, 4), [f"{labels[c]}\nn = {len(proj[c])}" for c in CONTEXTS])
    ax.set_ylabel("projection on target direction (probe)")
    ax.set_title("Figure 3: projection onto the target-content direction")
    save(fig, path, dpi=120)


def section(r: dict) -> str:
    if r.get("skipped"):
        return f"## §5 Entangled representations\n\nSkipped: {r['skipped']}.\n"
    s = r["sae"]
    lines = [
        "## §5 Entangled representations (Figures 2, 3)", "",
        f"Site `{r['site']}`. Samples per context {r['counts']} (generated tokens {r['tokens']}). "
        f"SAE: {s['source']}, width {s['width']}, FVU {s['fvu']:.3f}, mean L0 {s['l0']:.1f}, dead latents {100 * s['dead']:.1f}% "
        f"(measured on the context tokens).", "",
        "| Latent | mean direct | mean warning | mean safe | max direct | max warning | max safe | link |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for t in r["top_latents"]:
        lines.append(f"| {t['latent']} | {t['mean_direct']:.2f} | {t['mean_warning']:.2f} | {t['mean_safe']:.2f} | "
                     f"{t['max_direct']:.1f} | {t['max_warning']:.1f} | {t['max_safe']:.1f} | {t['link'] or '—'} |")
    ko = r["knockoff"]
    lines += [
        "", f"Paper: feature #8684 at magnitude {paper.SECTION5['feature_magnitude_target'][0]}–{paper.SECTION5['feature_magnitude_target'][1]} "
        f"in direct and warning generations vs < {paper.SECTION5['feature_magnitude_safe_max']} in safe ones. Magnitudes depend on the "
        "SAE and model, so compare ratios, not raw values.", "",
        f"Knockoff filter (Model-X, knockpy) over {ko['offset1']['p']} candidates, q = {ko['offset1']['q']}: "
        f"knockoff+ selects {ko['offset1']['n_selected']} ({ko['offset1']['selected']}); offset 0 selects "
        f"{ko['offset0']['n_selected']} ({ko['offset0']['selected']}). Paper: 11 of 47. Knockoff+ at q = 0.1 cannot select fewer "
        "than 10 latents (its threshold needs (1 + #negatives)/#selected ≤ q), so small true sets show up as 0. "
        f"Later sections ablate: {r['selected_latents']} ({r['selected_from']}).", "",
        f"Probe (logistic regression on the residual stream, trained on direct vs safe only): mean confidence on warning-framed "
        f"outputs {r['probe']['warning_mean_confidence']:.3f} (paper: 100%), AUROC warning vs held-out safe "
        f"{r['probe']['on_warning'].get('auroc') or float('nan'):.3f}, in-distribution AUROC {r['probe']['in_distribution'].get('auroc') or float('nan'):.3f}.", "",
        "![Figure 2](figures/fig2_feature_activations.png)", "", "![Figure 3](figures/fig3_target_direction.png)", "",
    ]
    return "\n".join(lines)
