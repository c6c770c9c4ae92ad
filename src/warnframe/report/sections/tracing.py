"""The causal-tracing report part: its claim, Figure 6 (restoration and effect per layer for the
request, completion and all-positions patches, and each layer's own write) and the markdown section,
read from the typed :class:`~warnframe.experiments.tracing_metrics.TracingMetrics` (rebuilt with
``from_json`` when given the dict of ``metrics/tracing.json``)."""

from __future__ import annotations

import math
from pathlib import Path

from warnframe.experiments.tracing_metrics import MODES, Ratio, TracingMetrics
from warnframe.paper.policy import POLICY
from warnframe.report.claims import Claim, claim
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading, skipped
from warnframe.stats.rates import fmt_mean
from warnframe.stats.types import Mean

#: The mode whose curve carries the claim: each layer's own write. The residual patches accumulate
#: what layers 0..L wrote, so their last layer leads by construction.
CLAIM_MODE = "write"
LABELS = {"request": "request positions", "completion": "completion positions", "both": "all positions",
          "write": "layer's own write, all positions"}
COLORS = {"request": "#8e44ad", "completion": "#e67e22", "both": "#16a085", "write": "#2c3e50"}


def _metrics(r: TracingMetrics | dict) -> TracingMetrics:
    return r if isinstance(r, TracingMetrics) else TracingMetrics.from_json(r)


def _fmt(s: Ratio) -> str:
    if math.isnan(s.lo):
        return f"{s.mean:.2f}"
    return f"{s.mean:.2f} [{s.lo:.2f}, {s.hi:.2f}]"


def claims(r: TracingMetrics | dict) -> list[Claim]:
    M = _metrics(r)
    S = M.ran
    d = S.safe_minus_target
    rows = S.layers[CLAIM_MODE]
    best = S.best(CLAIM_MODE)
    br = best.restoration
    c = S.middle_vs_edge.get(CLAIM_MODE)
    mids = ", ".join(map(str, S.middle_layers)) or "none"
    comp = S.best("completion")
    ours = (f"{LABELS[CLAIM_MODE]} patched: peak restoration at layer {best.layer} of 0–{M.n_layers - 1}: {_fmt(br)}; "
            f"best middle layer ({mids}) − best other layer: {_fmt(c) if c else 'n/a'} (n = {br.n} prompts); "
            f"completion positions' residual patched: peak at layer {comp.layer}, {_fmt(comp.restoration)}")
    interval = [c.lo, c.hi] if c else None
    if d.n < 2 or math.isnan(d.lo) or d.lo <= 0:
        v, why = "inconclusive", (f"the safe source ({M.safe_source}) does not prefer the secure completion more than "
                                  f"{M.traced} does on these prompts: Δ_safe − Δ_target = {fmt_mean(d)} nats")
    elif not any(not math.isnan(x.restoration.lo) and x.restoration.lo > 0 for x in rows):
        v, why = "not reproduced", "no layer's restoration interval lies above 0"
    elif c is None or math.isnan(c.lo):
        v, why = "inconclusive", f"too few layers ({M.n_layers}) or prompts to contrast middle with other layers"
    elif c.lo > 0:
        v, why = "reproduced", "a middle layer restores more than every other layer (contrast interval above 0)"
    elif c.hi < 0:
        v, why = "differs", "layers outside the middle restore more (contrast interval below 0)"
    else:
        v, why = "inconclusive", "the middle-vs-other contrast interval covers 0"
    lo, hi = POLICY.middle_layers
    why += ("; read on each layer's own write: the residual after layer L holds what layers 0..L wrote, so residual "
            "patches accumulate and their last layer leads by construction"
            f"; middle = layers at {lo:.0%}–{hi:.0%} of depth; Δ_safe − Δ_target = {fmt_mean(d)} nats; "
            f"every layer patched at every position restores {_fmt(S.every_layer.restoration)}; prompts: {M.selection}")
    return [claim("fig6.middle_layers", ours=ours, verdict=v, why=why, n=br.n, interval=interval,
                  test="restoration ratio of means; contrast max(middle) − max(other), percentile bootstrap over prompts "
                       "(layers and modes resampled jointly)", margin=0.0)]


def _band(ax, x, stats: list[Ratio] | list[Mean], color: str, label: str, ls: str = "-") -> None:
    y = [s.mean for s in stats]
    lo = [s.mean if math.isnan(s.lo) else s.lo for s in stats]
    hi = [s.mean if math.isnan(s.hi) else s.hi for s in stats]
    ax.plot(x, y, marker="o", color=color, label=label, ls=ls)
    ax.fill_between(x, lo, hi, color=color, alpha=0.2)


def draw(r: TracingMetrics | dict, root: Path) -> None:
    """Figure 6: restoration (a) and effect in nats (b) per patched layer, one curve per mode."""
    M = _metrics(r)
    plt = pyplot()
    path = root / "figures" / "fig6_causal_tracing.png"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    if M.skipped:
        for ax in (a1, a2):
            ax.text(0.5, 0.5, "skipped: " + M.skipped, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    else:
        S = M.ran
        for m in MODES:
            rows = S.layers[m]
            x = [t.layer for t in rows]
            _band(a1, x, [t.restoration for t in rows], COLORS[m], LABELS[m], "--" if m == "write" else "-")
            _band(a2, x, [t.effect for t in rows], COLORS[m], LABELS[m], "--" if m == "write" else "-")
        for ax in (a1, a2):
            ax.set_xticks(list(range(M.n_layers)))
            ax.set_xlabel("patched layer")
            ax.axhline(0, color="gray", lw=0.6)
            for layer in S.middle_layers:
                ax.axvspan(layer - 0.5, layer + 0.5, color="gray", alpha=0.06, lw=0)
        a1.axhline(1, color="gray", lw=0.6, ls=":")
        a1.set_ylabel("restoration of the safe Δ (95% bootstrap CI)")
        a1.set_title(f"(a) {M.safe_source} → {M.traced}, n = {M.n_prompts} prompts (shaded: middle layers)", fontsize=9)
        a1.legend(fontsize=7)
        d = S.safe_minus_target
        a2.axhline(d.mean, color="gray", ls=":", label=f"Δ_safe − Δ_target = {d.mean:.2f}")
        a2.set_ylabel("Δ_patched − Δ_target (nats, 95% CI)")
        a2.set_title("(b) effect on log p(secure) − log p(vulnerable)", fontsize=9)
        a2.legend(fontsize=7)
    fig.suptitle("Figure 6: causal tracing, safe activations patched into the target run", fontsize=11)
    save(fig, path, dpi=110)


def markdown(r: TracingMetrics | dict) -> str:
    M = _metrics(r)
    if M.skipped:
        return skipped("tracing", M.skipped)
    S = M.ran
    out = [heading("tracing"), ""]
    out += [f"Target run: the {M.traced} model (seed {M.seed}); safe run: the {M.safe_source} model on the identical tokens. "
            f"Prompts: {M.selection} — {M.n_prompts} traced, {M.renders} secure/vulnerable completion pair(s) each. "
            "Δ = log p(secure) − log p(vulnerable) in nats; positive favours the secure completion.", "",
            f"Δ_target {fmt_mean(S.target_gap)}; Δ_safe {fmt_mean(S.safe_gap)}; Δ_safe − Δ_target {fmt_mean(S.safe_minus_target)}. "
            f"Check: every layer patched at every position at once restores {_fmt(S.every_layer.restoration)} "
            "(1 up to what fine-tuning changed after the last layer).", "",
            "| Layer | " + " | ".join(f"Restoration, {LABELS[m]} [95% CI]" for m in MODES) + f" | Effect, {LABELS[CLAIM_MODE]} (nats) |",
            "|---:|" + "---|" * (len(MODES) + 1)]
    for layer in range(M.n_layers):
        cells = [_fmt(S.layers[m][layer].restoration) for m in MODES]
        mark = " (middle)" if layer in S.middle_layers else ""
        out.append(f"| {layer}{mark} | " + " | ".join(cells) + f" | {fmt_mean(S.layers[CLAIM_MODE][layer].effect)} |")
    contrasts = [f"{LABELS[m]} {_fmt(c)}" for m, c in S.middle_vs_edge.items()]
    out += ["", "Restoration is mean effect / mean(Δ_safe − Δ_target) over prompts (percentile bootstrap over prompts); it is "
            "only meaningful when the safe model prefers the secure completion more than the target model does. The residual "
            "stream after layer L holds what layers 0..L wrote, so a patch there carries all of it: restoration by layer "
            "accumulates, and what the every-layer patch leaves short of 1 was changed after the last layer. The last column "
            "patches only what layer L itself writes (the target run's input to L plus the safe run's output − input of L); "
            "the claim reads it. "
            "Best middle layer − best other layer: " + ("; ".join(contrasts) or "n/a (too few layers)") + ".", "",
            "![Figure 6](figures/fig6_causal_tracing.png)", ""]
    return "\n".join(out)
