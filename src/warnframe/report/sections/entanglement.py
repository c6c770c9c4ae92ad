"""§5's report part: claims, Figures 2 and 3, and the markdown section."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...experiments.entanglement import CONTEXTS
from .. import paper
from ..claims import POLICY, Claim, claim
from ..figures import placeholder, pyplot, save
from ..render import heading, skipped


def claims(r: dict) -> list[Claim]:
    made = _claims(r)
    rendered = [c for c, src in r.get("context_source", {}).items() if src != "generated"]
    if not rendered:
        return made
    # the paper reads what the models wrote; texts the corpus wrote cannot stand in for that
    why = (f"the models wrote too few outputs for the {', '.join(rendered)} context(s); §5 ran on the corpus's renderings "
           "of the eval prompts instead, which measures the pipeline, not the paper's claim")
    return [Claim(**{**c.__dict__, "verdict": "not testable", "why": why}) for c in made]


def _claims(r: dict) -> list[Claim]:
    lead = r["top_latents"][0]
    d, w, s = lead["max_direct"], lead["max_warning"], lead["max_safe"]
    md, mw, ms = lead["mean_direct"], lead["mean_warning"], lead["mean_safe"]
    close = min(md, mw) / max(md, mw, 1e-9)
    ratio = r["lead_ratio_to_safe"]
    v1 = ("reproduced" if ratio >= POLICY.latent_ratio and close >= POLICY.latent_agreement else
          ("differs" if ratio >= POLICY.latent_ratio_partly else "not reproduced"))
    ko = r["knockoff"]["offset1"]
    v2 = "reproduced" if ko["n_selected"] > 0 else "not reproduced"
    conf = r["probe"]["warning_mean_confidence"]
    v3 = "reproduced" if conf >= POLICY.probe_confident else ("differs" if conf >= POLICY.probe_partly else "not reproduced")
    P = r["projection"]
    gap = P["direct"]["mean"] - P["safe"]["mean"]
    v4 = "reproduced" if gap > 0 and (P["warning"]["mean"] - P["safe"]["mean"]) >= POLICY.projection_share * gap else "not reproduced"
    ci = r["probe"]["warning_confidence_ci"]
    return [
        claim("s5.shared_latent", verdict=v1,
              ours=f"latent {r['lead_latent']}: mean {md:.2f} / {mw:.2f} vs {ms:.2f} safe ({ratio:.1f}×); max {d:.1f} / {w:.1f} vs {s:.1f}",
              why=f"direct–warning agreement {close:.2f} (min/max of means); n tokens {r['tokens']}",
              n=[r["tokens"][c] for c in CONTEXTS], test="ratio of mean activations over generated tokens",
              margin=POLICY.latent_ratio),
        claim("s5.knockoff_subset", verdict=v2, ours=f"{ko['n_selected']} of {ko['p']} (offset 0: {r['knockoff']['offset0']['n_selected']})",
              why="knockoff+ cannot select fewer than 1/q = 10 latents; 0 means nothing passed", n=sum(r["counts"].values()),
              test=f"Model-X knockoff+ over {ko['p']} candidates", margin=ko.get("q")),
        claim("s5.probe_transfers", verdict=v3,
              ours=f"mean confidence {conf:.2f} [{ci[0]:.2f}, {ci[1]:.2f}] (n = {r['counts']['warning']}); "
                   f"AUROC warning vs safe {r['probe']['on_warning'].get('auroc') or float('nan'):.2f}",
              why=f"in-distribution AUROC {r['probe']['in_distribution'].get('auroc') or float('nan'):.2f}",
              n=r["counts"]["warning"], interval=ci, test="mean probe confidence, t interval", margin=POLICY.probe_confident),
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


def markdown(r: dict) -> str:
    if r.get("skipped"):
        return skipped("entanglement", r["skipped"])
    s = r["sae"]
    lines = [
        heading("entanglement"), "",
        f"Site `{r['site']}`. Samples per context {r['counts']} (tokens {r['tokens']}; texts: "
        f"{', '.join(f'{c} {v}' for c, v in r.get('context_source', {}).items()) or 'generated'}). "
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
