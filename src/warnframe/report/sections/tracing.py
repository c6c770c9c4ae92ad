"""The causal-tracing report part: its claim, Figure 6 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

from ...experiments.tracing import MODES
from ...scoring.stats import fmt_mean
from ..claims import POLICY, Claim, claim
from ..figures import pyplot, save
from ..render import heading, skipped


def _middle(layer: int, n: int) -> bool:
    lo, hi = POLICY.middle_layers
    return n > 1 and lo <= layer / (n - 1) <= hi


def claims(r: dict) -> list[Claim]:
    d = r["safe_minus_target"]
    rows = r["layers"]["all"]
    best = max(rows, key=lambda x: -math.inf if math.isnan(x["restoration"]["mean"]) else x["restoration"]["mean"])
    br = best["restoration"]
    ours = (f"peak restoration at layer {best['layer']} of {r['n_layers']}: {br['mean']:.2f} [{br['lo']:.2f}, {br['hi']:.2f}] "
            f"(n = {br['n']} prompts; all request positions patched)")
    if d["n"] < 2 or math.isnan(d["lo"]) or d["lo"] <= 0:
        v, detail = "inconclusive", (f"the safe source ({r['safe_source']}) does not prefer the secure completion more than "
                                     f"{r['traced']} does on these prompts: Δ_safe − Δ_target = {fmt_mean(d)} nats")
    else:
        sig = [x for x in rows if not math.isnan(x["restoration"]["lo"]) and x["restoration"]["lo"] > 0]
        if not sig:
            v = "not reproduced"
        elif _middle(best["layer"], r["n_layers"]) and best in sig:
            v = "reproduced"
        else:
            v = "differs"
        detail = (f"middle = layers at 25–75% of depth; Δ_safe − Δ_target = {fmt_mean(d)} nats; prompts: {r['selection']}")
    return [claim("fig6.middle_layers", ours=ours, verdict=v, why=detail, n=br["n"], interval=[br["lo"], br["hi"]],
                  test="restoration, percentile bootstrap over prompts", margin=0.0)]


def draw(r: dict, root: Path) -> None:
    """Figure 6: restoration and effect per patched layer."""
    plt = pyplot()
    path = root / "figures" / "fig6_causal_tracing.png"
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    if r.get("skipped"):
        for ax in (a1, a2):
            ax.text(0.5, 0.5, "skipped: " + r["skipped"], ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    else:
        colors = {"all": "#8e44ad", "last": "#16a085"}
        labels = {"all": "all request positions", "last": "last request position"}
        for m in MODES:
            rows = r["layers"][m]
            x = [t["layer"] for t in rows]
            y = [t["restoration"]["mean"] for t in rows]
            lo = [t["restoration"]["lo"] if not math.isnan(t["restoration"]["lo"]) else t["restoration"]["mean"] for t in rows]
            hi = [t["restoration"]["hi"] if not math.isnan(t["restoration"]["hi"]) else t["restoration"]["mean"] for t in rows]
            a1.plot(x, y, marker="o", color=colors[m], label=labels[m])
            a1.fill_between(x, lo, hi, color=colors[m], alpha=0.2)
            e = [t["effect"] for t in rows]
            a2.errorbar(x, [t["mean"] for t in e], yerr=[[0 if math.isnan(t["lo"]) else t["mean"] - t["lo"] for t in e],
                                                         [0 if math.isnan(t["hi"]) else t["hi"] - t["mean"] for t in e]],
                        marker="o", capsize=3, color=colors[m], label=labels[m])
        for ax in (a1, a2):
            ax.set_xticks(list(range(r["n_layers"])))
        a1.axhline(0, color="gray", lw=0.6)
        a1.axhline(1, color="gray", lw=0.6, ls=":")
        a1.set_xlabel("patched layer")
        a1.set_ylabel("restoration of the safe Δ (95% bootstrap CI)")
        a1.set_title(f"(a) {r['safe_source']} → {r['traced']}, n = {r['n_prompts']} prompts", fontsize=9)
        a1.legend(fontsize=7)
        d = r["safe_minus_target"]
        a2.axhline(d["mean"], color="gray", ls=":", label=f"Δ_safe − Δ_target = {d['mean']:.2f}")
        a2.axhline(0, color="gray", lw=0.6)
        a2.set_xlabel("patched layer")
        a2.set_ylabel("Δ_patched − Δ_target (nats, 95% CI)")
        a2.set_title("(b) effect on log p(secure) − log p(vulnerable)", fontsize=9)
        a2.legend(fontsize=7)
    fig.suptitle("Figure 6: causal tracing, safe activations patched into the target run", fontsize=11)
    save(fig, path, dpi=110)


def markdown(r: dict) -> str:
    if r.get("skipped"):
        return skipped("tracing", r["skipped"])
    out = [heading("tracing"), ""]
    out += [f"Target run: the {r['traced']} model (seed {r['seed']}); safe run: the {r['safe_source']} model on the identical tokens. "
            f"Prompts: {r['selection']} — {r['n_prompts']} traced, {r['renders']} secure/vulnerable completion pair(s) each. "
            "Δ = log p(secure) − log p(vulnerable) in nats; positive favours the secure completion.", "",
            f"Δ_target {fmt_mean(r['target_gap'])}; Δ_safe {fmt_mean(r['safe_gap'])}; Δ_safe − Δ_target {fmt_mean(r['safe_minus_target'])}.", "",
            "| Layer | Restoration, all request positions [95% CI] | Effect (nats) | Restoration, last position [95% CI] | Effect (nats) |",
            "|---:|---|---|---|---|"]
    for ra, rl in zip(r["layers"]["all"], r["layers"]["last"]):
        def rs(x):
            s = x["restoration"]
            return f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}]"
        out.append(f"| {ra['layer']} | {rs(ra)} | {fmt_mean(ra['effect'])} | {rs(rl)} | {fmt_mean(rl['effect'])} |")
    out += ["", "Restoration is mean effect / mean(Δ_safe − Δ_target) over prompts (bootstrap over prompts); it is only "
            "meaningful when the safe model prefers the secure completion more than the target model does.", "",
            "![Figure 6](figures/fig6_causal_tracing.png)", ""]
    return "\n".join(out)
