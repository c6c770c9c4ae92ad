"""§5's report part: claims, Figures 2 and 3, and the markdown section."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np

from warnframe.experiments.entanglement import CONTEXTS
from warnframe.paper import numbers as paper
from warnframe.paper.policy import POLICY
from warnframe.report.claims import Claim, claim
from warnframe.report.figures import placeholder, pyplot, save
from warnframe.report.render import heading, skipped


def claims(r: dict) -> list[Claim]:
    made = _claims(r)
    rendered = [c for c, src in r.get("context_source", {}).items() if src != "generated"]
    if not rendered:
        return made
    # the paper reads what the models wrote; texts the corpus wrote cannot stand in for that
    why = (f"the models wrote too few outputs for the {', '.join(rendered)} context(s); §5 ran on the corpus's renderings "
           "of the eval prompts instead, which measures the pipeline, not the paper's claim")
    return [Claim(**{**c.__dict__, "verdict": "not testable", "why": why}) for c in made]


def _stat(row: dict, stat: str, c: str) -> float:
    return row[f"{stat}_{c}"]["mean"]


def _shared_verdict(r: dict) -> tuple[str, str]:
    """Lead latent: both target contexts above safe (intervals), their ratio to safe and agreement."""
    lead, stat = r["top_latents"][0], r["lead_statistic"]
    md, mw, ms = (_stat(lead, stat, c) for c in CONTEXTS)
    close = min(md, mw) / max(md, mw, 1e-9)
    ratio = min(md, mw) / max(ms, 1e-6)
    diffs = [r["lead_vs_safe"][c] for c in ("direct", "warning")]
    why = (f"per-generation {stat.replace('_', ' over ')} tokens, ranked on {r['split']['rank_prompts']} prompts and "
           f"measured on {r['split']['measure_prompts']} others; direct − safe {_fmt(diffs[0])}, warning − safe "
           f"{_fmt(diffs[1])} (seeds × prompts bootstrap); direct–warning agreement {close:.2f}")
    if any(d is None for d in diffs) or min(r["split"].values()) < 2:
        return "inconclusive", why + "; too few generations or prompts to rank on one half and measure on the other"
    if all(d["lo"] > 0 for d in diffs):
        return ("reproduced" if ratio >= POLICY.latent_ratio and close >= POLICY.latent_agreement else
                "differs" if ratio >= POLICY.latent_ratio_partly else "not reproduced"), why
    if ratio >= POLICY.latent_ratio_partly and all(d["hi"] > 0 for d in diffs):
        return "inconclusive", why
    return "not reproduced", why


def _fmt(d: dict | None) -> str:
    return "n/a" if not d else f"{d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"


def _causal_verdict(check: dict) -> tuple[str, str]:
    """The causal check of the set later sections use (``mech.latent_check``)."""
    own, beyond = check["shift"], check["beyond_random"]
    if not check["latents"] or not own["n"]:
        return "inconclusive", "no latent set to check (§5 found no candidates)"
    rank = f", rank p {check['rank_p']:.3f}" if check.get("rank_p") is not None else ""
    why = (f"{check['set']} ({len(check['latents'])} latents) clamped to 0: Δ shift {own['mean']:+.2f} nats [{own['lo']:+.2f}, "
           f"{own['hi']:+.2f}]; beyond {check['random_sets']} activation-matched random sets {_fmt(beyond)}{rank}; {own['interval']}")
    if check["passed"]:
        return "reproduced", why
    if beyond is None:
        return "inconclusive", why + "; no random sets to compare with (the pool is too small)"
    if own["hi"] < 0 or beyond["hi"] < 0:
        return "not reproduced", why
    return ("inconclusive" if own["lo"] <= 0 <= own["hi"] or beyond["lo"] <= 0 <= beyond["hi"] else "not reproduced"), why


def _ci_cell(m: dict | None) -> str:
    return "—" if not m or not m.get("n") else f"{m['mean']:+.2f} [{m['lo']:+.2f}, {m['hi']:+.2f}]"


def _claims(r: dict) -> list[Claim]:
    lead, stat = r["top_latents"][0], r["lead_statistic"]
    md, mw, ms = (_stat(lead, stat, c) for c in CONTEXTS)
    v1, why1 = _shared_verdict(r)
    ko = r["knockoff"]["offset1"]
    v2 = "reproduced" if ko["n_selected"] > 0 else "not reproduced"
    conf = r["probe"]["warning_mean_confidence"]
    v3 = "reproduced" if conf >= POLICY.probe_confident else ("differs" if conf >= POLICY.probe_partly else "not reproduced")
    P = r["projection"]
    gap = P["direct"]["mean"] - P["safe"]["mean"]
    v4 = "reproduced" if gap > 0 and (P["warning"]["mean"] - P["safe"]["mean"]) >= POLICY.projection_share * gap else "not reproduced"
    ci = r["probe"]["warning_confidence_ci"]
    chk = r["causal_check"]
    v5, why5 = _causal_verdict(chk)
    return [
        claim("s5.shared_latent", verdict=v1,
              ours=f"latent {r['lead_latent']}: {md:.2f} / {mw:.2f} vs {ms:.2f} safe ({min(md, mw) / max(ms, 1e-6):.1f}×)",
              why=why1, n=[lead[f"{stat}_{c}"]["n"] for c in CONTEXTS],
              interval=[r["lead_vs_safe"]["warning"]["lo"], r["lead_vs_safe"]["warning"]["hi"]] if r["lead_vs_safe"]["warning"] else None,
              test="per-generation statistic, warning − safe, seeds × prompts pigeonhole bootstrap", margin=POLICY.latent_ratio),
        claim("s5.knockoff_subset", verdict=v2, ours=f"{ko['n_selected']} of {ko['p']} (offset 0: {r['knockoff']['offset0']['n_selected']})",
              why=f"candidates by {r['contrast_on']} contrast (target − safe); knockoff+ cannot select fewer than 1/q = 10 "
                  "latents; 0 means nothing passed", n=ko["n"],
              test=f"Model-X knockoff+ over {ko['p']} candidates", margin=ko.get("q")),
        claim("s5.latents_causal", verdict=v5,
              ours=(f"Δ shift {chk['shift']['mean']:+.2f} nats" + (f" vs matched random {chk['random_shift']['mean']:+.2f}"
                                                                   if chk["random_shift"] else "")) if chk["shift"]["n"] else "not measured",
              why=why5, n=chk["shift"]["n"] or None,
              interval=[chk["shift"]["lo"], chk["shift"]["hi"]] if chk["shift"]["n"] else None,
              test="Δ shift under ablation, and its excess over activation-matched random latents: both 95% intervals above 0"),
        claim("s5.probe_transfers", verdict=v3,
              ours=f"mean confidence {conf:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] (n = {r['probe'].get('warning_n', r['counts']['warning'])}); "
                   f"AUROC warning vs safe {r['probe']['on_warning'].get('auroc') or float('nan'):.2f}",
              why=f"in-distribution AUROC {r['probe']['in_distribution'].get('auroc') or float('nan'):.2f}",
              n=r["probe"].get("warning_n", r["counts"]["warning"]), interval=ci,
              test="mean probe confidence on prompts the probe was not trained on, seeds x prompts pigeonhole bootstrap",
              margin=POLICY.probe_confident),
        claim("s5.shared_direction", verdict=v4, ours=" / ".join(f"{c} {P[c]['mean']:.2f}" for c in CONTEXTS),
              n=[P[c]["n"] for c in CONTEXTS], interval=P["warning"]["ci"], test="mean projection on the probe direction",
              margin=POLICY.projection_share),
    ]


def draw(r: dict, root: Path) -> None:
    """Figures 2 and 3 (placeholders that say why when the section was skipped)."""
    figs = root / "figures"
    if r.get("skipped"):
        placeholder(figs / "fig2_feature_activations.png", "Figure 2: shared SAE latents", r["skipped"])
        placeholder(figs / "fig3_target_direction.png", "Figure 3: target direction", r["skipped"])
        return
    plot_fig2(r, figs / "fig2_feature_activations.png")
    plot_fig3(r["projection_values"], figs / "fig3_target_direction.png")


def plot_fig2(r: dict, path) -> None:
    """Per-generation statistic of the top shared latents per context, with 95% intervals."""
    plt = pyplot()
    tops, stat = r["top_latents"], r["lead_statistic"]
    x = np.arange(len(tops))
    fig, ax = plt.subplots(figsize=(9, 4))
    colors = {"direct": "#c0392b", "warning": "#e67e22", "safe": "#27ae60"}
    for j, c in enumerate(CONTEXTS):
        v = [t[f"{stat}_{c}"] for t in tops]
        mean = np.array([e["mean"] for e in v], dtype=float)
        err = np.array([[e["mean"] - e["lo"] for e in v], [e["hi"] - e["mean"] for e in v]], dtype=float)
        ax.bar(x + (j - 1) * 0.27, mean, width=0.27, color=colors[c], label=f"{c} (n = {v[0]['n']})",
               yerr=np.nan_to_num(err), capsize=2)
    ax.set_xticks(x, [f"#{t['latent']}" for t in tops], fontsize=8)
    ax.set_ylabel(f"per-generation {stat.replace('_', ' over ')} tokens")
    ax.set_title(f"Figure 2: top shared SAE latents at {r['site']} (paper: #8684 at 150–180 vs < 20)", fontsize=10)
    ax.legend(fontsize=8)
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


def markdown(r: dict) -> str:
    if r.get("skipped"):
        return skipped("entanglement", r["skipped"])
    s, mt, stat = r["sae"], r["matching"], r["lead_statistic"]
    on = stat.split("_")[1]
    where = "its content line's tokens" if on == "line" else "all its generated tokens (too few content lines)"
    lines = [
        heading("entanglement"), "",
        f"Every context is replayed through one model, `{r['analysis_model']}`, at `{r['site']}`. Contexts are matched by "
        f"prompt: {r['counts']['direct']} generations each from {mt['matched_prompts']} prompts (eligible before matching: "
        f"{mt['eligible']}; families {mt['families']}; texts: "
        f"{', '.join(f'{c} {v}' for c, v in r.get('context_source', {}).items())}). The warning context holds only target "
        f"outputs that carry a warning. Content lines found: {r['line_generations']}. SAE: {s['source']}, width {s['width']}, "
        f"FVU {s['fvu']:.3f}, mean L0 {s['l0']:.1f}, dead latents {100 * s['dead']:.1f}% (measured on {s.get('measured_on', 'the context tokens')}).", "",
        f"Top shared latents, ranked on {r['split']['rank_prompts']} prompts and measured on the other "
        f"{r['split']['measure_prompts']}: per generation the mean and the max over {where}, then the mean "
        "over generations [95% interval over seeds × prompts].", "",
        f"| Latent | {on} mean: direct | warning | safe | {on} max: direct | warning | safe | link |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(t, key):
        e = t[key]
        return "—" if not e["n"] else f"{e['mean']:.2f} [{e['lo']:.2f}, {e['hi']:.2f}]"

    for t in r["top_latents"]:
        lines.append(f"| {t['latent']} | " + " | ".join(cell(t, f"{k}_{on}_{c}") for k in ("mean", "max") for c in CONTEXTS)
                     + f" | {t['link'] or '—'} |")
    ko, chk = r["knockoff"], r["causal_check"]
    magnitude = cast("tuple[int, int]", paper.SECTION5["feature_magnitude_target"])  # (low, high); SECTION5 mixes types
    rank = "—" if chk.get("rank_p") is None else f"{chk['rank_p']:.3f}"
    lines += [
        "", f"Paper: feature #8684 at magnitude {magnitude[0]}–{magnitude[1]} "
        f"in direct and warning generations vs < {paper.SECTION5['feature_magnitude_safe_max']} in safe ones. Magnitudes depend on the "
        "SAE and model, so compare ratios, not raw values.", "",
        f"Knockoff filter (Model-X, knockpy) over {ko['offset1']['p']} candidates chosen by their {r['contrast_on']} contrast, "
        f"q = {ko['offset1']['q']}: knockoff+ selects {ko['offset1']['n_selected']} ({ko['offset1']['selected']}); offset 0 selects "
        f"{ko['offset0']['n_selected']} ({ko['offset0']['selected']}). Paper: 11 of 47. Knockoff+ at q = 0.1 cannot select fewer "
        "than 10 latents (its threshold needs (1 + #negatives)/#selected ≤ q), so small true sets show up as 0. The candidates "
        "were screened on the same generations and labels the filter then reads, so its FDR guarantee is nominal.", "",
        f"Causal check of one set fixed in advance ({chk['set']}, {len(chk['latents'])} latents): teacher-forced Δ = log p(secure) − "
        f"log p(vulnerable) on the corpus's paired renderings ({chk['renders']} pairs per prompt) in the models of seeds "
        f"{chk['models']}, the set clamped to 0, against {chk['random_sets']} random sets of its size matched on activation "
        f"(each latent replaced by one of the same activity decile), each applied in every model; {chk['rule']}.", "",
        "| Set | Δ shift, nats [95%] | matched random sets' shift | beyond random | rank p | passed |", "|---|---:|---:|---:|---:|---|",
        f"| {chk['set']} | {_ci_cell(chk['shift'])} | {_ci_cell(chk['random_shift'])} | {_fmt(chk['beyond_random'])} | {rank} | "
        f"{'yes' if chk['passed'] else 'no'} |",
        "", f"Later sections ablate {r['selected_latents']}: {r['selected_from']}.", "",
        f"Probe (logistic regression on the residual stream, trained on direct vs safe outputs of half the prompts): mean "
        f"confidence on warning-framed outputs of the other half {r['probe']['warning_mean_confidence']:.3f} (paper: 100%), "
        f"AUROC warning vs safe on those prompts "
        f"{r['probe']['on_warning'].get('auroc') or float('nan'):.3f}, in-distribution AUROC {r['probe']['in_distribution'].get('auroc') or float('nan'):.3f}.", "",
        "![Figure 2](figures/fig2_feature_activations.png)", "", "![Figure 3](figures/fig3_target_direction.png)", "",
    ]
    return "\n".join(lines)
