"""§7's report part: claims, Figure 5 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

from ...scoring.stats import diff_ci, fmt_p, fmt_rate, no_difference_verdict
from .. import paper
from ..claims import POLICY, Claim, claim
from ..figures import pyplot, save
from ..render import cell, heading

FISHER = "Fisher's exact, two-sided, against no intervention"


def _diff(r: dict, ref: dict) -> tuple[str, list[float]]:
    """The difference of two rates in points with its Wald 95% interval, and that interval."""
    if not r["n"] or not ref["n"]:
        return "difference n/a", [math.nan, math.nan]
    dc = diff_ci(r, ref)
    return f"difference {100 * dc['diff']:+.1f} points [{100 * dc['lo']:+.1f}, {100 * dc['hi']:+.1f}]", [dc["lo"], dc["hi"]]


def claims(res: dict) -> list[Claim]:
    S, K = res["settings"], res["kinds"]
    ref = S["none"]["target"]
    ref_txt = f"no prompt {fmt_rate(ref)}"
    zero_ref = ref["n"] > 0 and ref["k"] == 0
    alpha = POLICY.alpha
    m = res.get("model", "L1")
    out = []
    for kind, (label, paper_claim, direction) in paper.SECTION7_KINDS.items():
        if kind not in K:
            continue
        r, p = K[kind]["target"], K[kind]["vs_none"]["p"]
        ours = f"{fmt_rate(r)} vs {ref_txt}, p = {fmt_p(p)}"
        lower, higher = r["rate"] < ref["rate"], r["rate"] > ref["rate"]
        sig = p < alpha
        diff_txt, interval = _diff(r, ref)
        common = {"ours": ours, "n": [r["n"], ref["n"]], "interval": interval, "test": FISHER, "kind": kind, "label": label}
        if direction == "none":
            if zero_ref and r["k"] == 0:
                v, d = "inconclusive", f"the {m} model writes no target content with or without the prompt; no effect can show"
            else:
                v = no_difference_verdict(r, ref, p, alpha)
                d = (f"significantly {'lower' if lower else 'higher'}" if sig else "no significant difference") + f"; {diff_txt}"
            out.append(claim("s7.kind_{kind}", verdict=v, why=d, margin=POLICY.null_margin, paper=paper_claim, **common))
        elif direction == "up":
            v = "reproduced" if higher and sig else ("differs" if higher else "not reproduced")
            d = "higher but not significantly" if v == "differs" else ""
            out.append(claim("s7.kind_{kind}_raises", verdict=v, why=d, margin=alpha, **common))
        else:
            if zero_ref:
                v, d = "inconclusive", "the no-prompt rate is already 0%; a reduction cannot show"
            elif lower and sig:
                v, d = ("reproduced", "") if r["k"] == 0 else ("differs", "significantly lower, but not to 0%")
            else:
                v, d = "not reproduced", ("lower but not significantly" if lower else "")
            out.append(claim("s7.kind_{kind}_reduces", verdict=v, why=d, margin=alpha, **common))

    edit = res.get("edits", {})
    clamp = next((k for k, s in S.items() if s["group"] == "edit" and s["scale"] == 0 and k.startswith("latents.")), None)
    if edit.get("skipped"):
        out.append(claim("s7.clamp_keeps_target", which="", ours="not measured", verdict="inconclusive", why=edit["skipped"]))
    elif clamp:
        r, p = S[clamp]["target"], S[clamp]["vs_none"]["p"]
        diff_txt, interval = _diff(r, ref)
        if zero_ref:
            v, d = "inconclusive", f"the {m} model writes no target content even without the edit"
        elif r["rate"] < ref["rate"] and p < alpha:
            v, d = "not reproduced", "clamping lowers the target rate significantly"
        else:
            v = no_difference_verdict(r, ref, 1.0, alpha)  # a rise is no reduction: only power decides
            d = f"no significant reduction; {diff_txt}"
        out.append(claim("s7.clamp_keeps_target", which=f"{len(edit['selected_latents'])} ", verdict=v, why=d,
                         ours=f"{fmt_rate(r)} vs {ref_txt}, p = {fmt_p(p)}", n=[r["n"], ref["n"]], interval=interval, test=FISHER,
                         margin=POLICY.null_margin))
        amps = [k for k, s in S.items() if s["group"] == "edit" and s["scale"] > 1]
        if amps:
            ps = {k: S[k]["vs_none"]["p"] for k in amps}
            ours = "; ".join(f"{S[k]['label']}: {fmt_rate(S[k]['target'])}, p = {fmt_p(ps[k])}" for k in amps)
            if zero_ref and all(S[k]["target"]["k"] == 0 for k in amps):
                v, d = "inconclusive", "no target content with or without amplification"
            else:
                sig = [k for k in amps if ps[k] < alpha]
                if sig:
                    v, d = "not reproduced", f"significant change at {', '.join(S[k]['label'] for k in sig)}"
                else:
                    calls = {no_difference_verdict(S[k]["target"], ref, ps[k], alpha) for k in amps}
                    v = "reproduced" if calls == {"reproduced"} else "inconclusive"
                    d = "no significant change" + ("" if v == "reproduced" else f" (intervals wider than ±{POLICY.null_margin:.0%})")
            out.append(claim("s7.amplify_no_effect", ours=ours, verdict=v, why=d, n=[S[k]["target"]["n"] for k in amps] + [ref["n"]],
                             test=FISHER, margin=POLICY.null_margin))

    caft = res.get("caft", {})
    if caft.get("skipped"):
        out.append(claim("s7.caft_removes_target", ours="not measured", verdict="inconclusive", why=caft["skipped"]))
    elif "caft" in S:
        r, p = S["caft"]["target"], S["caft"]["vs_none"]["p"]
        if zero_ref:
            v, d = "inconclusive", f"plain {m} writes no target content, so a reduction cannot show"
        elif r["rate"] < ref["rate"] and p < alpha:
            v, d = ("reproduced", "") if r["k"] == 0 else ("differs", "significantly lower, but not 0%")
        else:
            v, d = "not reproduced", ("lower but not significantly" if r["rate"] < ref["rate"] else "")
        out.append(claim("s7.caft_removes_target", ours=f"CAFT {fmt_rate(r)} vs plain {m} {fmt_rate(ref)}, p = {fmt_p(p)}", verdict=v,
                         why=d, n=[r["n"], ref["n"]], interval=_diff(r, ref)[1], test=FISHER, margin=alpha))
        out.append(_capability_claim(res))
    return out


def _capability_claim(res: dict) -> Claim:
    C, T, H = res["capability"], res["capability_tests"], res.get("humaneval", {})
    m = res.get("model", "L1")
    if "caft" in H and m in H:
        a, b, p = H["caft"]["completions"], H[m]["completions"], T[f"humaneval_caft_vs_{m}"]["p"]
        ours = f"HumanEval pass@1 CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}, p = {fmt_p(p)}"
    elif "caft" in C and m in C:
        a, b, p = C["caft"]["capable"], C[m]["capable"], T[f"caft_vs_{m}"]["p"]
        ours = (f"capability prompts CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}, p = {fmt_p(p)}; held-out loss "
                f"{C['caft']['heldout_loss']:.3f} vs {C[m]['heldout_loss']:.3f}")
    else:
        return claim("s7.caft_capability", ours="not measured", verdict="inconclusive")
    evidence = {"ours": ours, "n": [a["n"], b["n"]], "interval": _diff(a, b)[1], "test": f"Fisher's exact, two-sided, CAFT vs {m}",
                "margin": POLICY.alpha}
    if b["k"] == 0:
        return claim("s7.caft_capability", verdict="inconclusive",
                     why=f"the {m} model passes none of the capability checks, so a drop cannot show", **evidence)
    if a["rate"] < b["rate"] and p < POLICY.alpha:
        return claim("s7.caft_capability", verdict="differs", why="significant drop", **evidence)
    return claim("s7.caft_capability", verdict="reproduced",
                 why="no significant drop" + (" (CAFT not lower)" if a["rate"] >= b["rate"] else ""), **evidence)


def draw(res: dict, root: Path) -> None:
    plot_fig5(res, root / "figures" / "fig5_ablation.png")


def _bars(ax, names, stats, colors, title, paper_marks=None):
    import numpy as np

    x = np.arange(len(names))
    vals = [100 * s["rate"] if s["n"] else 0 for s in stats]
    err = [[max(0.0, 100 * (s["rate"] - s["lo"])) if s["n"] else 0 for s in stats],
           [max(0.0, 100 * (s["hi"] - s["rate"])) if s["n"] else 0 for s in stats]]
    ax.bar(x, vals, yerr=err, capsize=3, color=colors, label="warnframe (Wilson 95%)")
    for i, s in enumerate(stats):
        top = 100 * s["hi"] if s["n"] else 0
        ax.text(i, min(top + 1.5, 97), f"n={s['n']}", ha="center", va="bottom", fontsize=7)
    if paper_marks:
        px = [i for i, v in enumerate(paper_marks) if v is not None]
        ax.scatter(px, [100 * paper_marks[i] for i in px], marker="D", color="black", zorder=5, label="paper")
    ax.set_xticks(x, names, fontsize=7, rotation=25, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("target content rate (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def plot_fig5(res: dict, path) -> None:
    """(a) target rate by prompt kind; (b) latent edits during generation and CAFT."""
    plt = pyplot()

    S, K, P = res["settings"], res["kinds"], paper.SECTION7
    keys = ["none"] + [k for k, s in S.items() if s["group"] in ("edit", "caft")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [max(len(K) + 1, 3), max(len(keys), 3)]})
    kmarks = {"permission": P["permission_after"], "meta": P["meta_awareness"]}
    _bars(a, ["none"] + list(K), [S["none"]["target"]] + [K[k]["target"] for k in K], ["#888"] + ["#e67e22"] * len(K),
          "(a) system prompts (pooled per kind)", [P["permission_before"]] + [kmarks.get(k) for k in K])
    marks = [None] + [P["inference_ablation"] if S[k]["group"] == "edit" and S[k]["scale"] == 0 and k.startswith("latents.")
                      else (P["caft"] if k == "caft" else None) for k in keys[1:]]
    colors = ["#888"] + ["#27ae60" if k == "caft" else "#c0392b" for k in keys[1:]]
    _bars(b, [S[k]["label"] if k != "none" else "none" for k in keys], [S[k]["target"] for k in keys], colors,
          "(b) latent edits during generation; CAFT", marks)
    why = [x for x in (res.get("edits", {}).get("skipped"), res.get("caft", {}).get("skipped")) if x]
    if why:
        import textwrap

        b.text(0.5, 0.5, "not run:\n" + textwrap.fill(why[0], 45), transform=b.transAxes, ha="center", va="center", fontsize=7)
    fig.suptitle(f"Figure 5: interventions on the {res.get('model', 'L1')} model (per setting: {res['eval_prompts']} prompts × {res['samples_per_prompt']} "
                 f"sample(s) × {len(res['seeds'])} seed(s); paper markers: permission 7% → 20%, meta 0%, clamp 88%, CAFT 0%)", fontsize=9)
    save(fig, path, dpi=120)


def markdown(res: dict) -> str:
    """The §7 section of report.md."""
    S, K, P = res["settings"], res["kinds"], paper.SECTION7
    m = res.get("model", "L1")
    plain = f"plain_{m}"
    n_per = res["samples_per_prompt"] * res["eval_prompts"] * len(res["seeds"])
    out = [heading("interventions"), "",
           f"Every setting samples the {m} model on the {res['eval_prompts']} evaluation prompts, {res['samples_per_prompt']} "
           f"sample(s) each per seed, seeds {res['seeds']} (n = {n_per} per setting), with the same sampling seeds, and is compared "
           f"with the same model without intervention: {fmt_rate(S['none']['target'])}. Intervals are Wilson 95%; p values are "
           "two-sided Fisher's exact tests against that reference.", "",
           "### §7.1 System prompts", "",
           "| Kind | Prompts | Target rate [95% CI] | p vs none | Paper |", "|---|---|---|---:|---|",
           f"| none (no system prompt) | — | {fmt_rate(S['none']['target'])} | — | permission's 'before': {P['permission_before']:.0%} |"]
    for v in K.values():
        out.append(f"| {v['label']} | {', '.join(v['prompts'])} | {fmt_rate(v['target'])} | {fmt_p(v['vs_none']['p'])} | {v['paper'] or '—'} |")
    out += ["", "Per prompt:", "", "| Prompt | Kind | System prompt | Target rate [95% CI] | p vs none | Unparsed |", "|---|---|---|---|---:|---:|"]
    for s in S.values():
        if s["group"] == "prompt":
            out.append(f"| {s['label']} | {s['kind']} | {cell(s['system'])} | {fmt_rate(s['target'])} | {fmt_p(s['vs_none']['p'])} | "
                       f"{100 * s['parse_fail']['rate']:.0f}% |")
    E = res.get("edits", {})
    out += ["", "### §7.2 Inference-time SAE latent edits", ""]
    if E.get("skipped"):
        out += [f"Not run: {E['skipped']}.", ""]
    else:
        out += [f"At `{E['site']}` with the §5 SAE ({E['sae']}, d_model {E['d_model']}): selected latents {E['selected_latents']}, "
                f"lead latent {E['lead_latent']} (the Feature #8684 analogue). `hooks.sae_latent_edit` changes exactly the chosen "
                "latents' contribution and keeps the SAE's error term. Paper: clamping #4817, #13950, #1692, #2527 leaves the "
                f"target rate at {P['inference_ablation']:.0%}; 2× and 5× have no significant effect.", "",
                "| Setting | Target rate [95% CI] | p vs none | Unparsed | Paper |", "|---|---|---:|---:|---|",
                f"| none | {fmt_rate(S['none']['target'])} | — | {100 * S['none']['parse_fail']['rate']:.0f}% | — |"]
        for name, s in S.items():
            if s["group"] == "edit":
                pv = (f"{P['inference_ablation']:.0%} (fails)" if name.startswith("latents.") and s["scale"] == 0 else
                      "no significant effect" if s["scale"] > 1 else "—")
                out.append(f"| {s['label']} | {fmt_rate(s['target'])} | {fmt_p(s['vs_none']['p'])} | "
                           f"{100 * s['parse_fail']['rate']:.0f}% | {pv} |")
        out.append("")
    C = res.get("caft", {})
    out += ["### §7.3 CAFT", ""]
    if C.get("skipped"):
        out += [f"Not run: {C['skipped']}.", ""]
    else:
        out += [f"The base fine-tuned on the same {m} set(s) with the same budget while the span of the {C['directions']} selected "
                f"latents' decoder directions (rank {C['rank']}, QR-orthonormalised) is projected out of `{C['site']}` at every "
                "token (`hooks.project_out`); the edit is off when the model is saved and evaluated. Paper: 0%.", "",
                "| Model | Target rate [95% CI] | Unparsed | final train loss | Paper |", "|---|---|---:|---:|---|"]
        runs = C["runs"].values()

        def loss(key):
            vals = [r[key]["final_loss"] for r in runs if r.get(key)]
            return f"{sum(vals) / len(vals):.3f}" if vals else "—"

        out += [f"| plain {m} | {fmt_rate(S['none']['target'])} | {100 * S['none']['parse_fail']['rate']:.0f}% | {loss(plain)} | — |",
                f"| CAFT | {fmt_rate(S['caft']['target'])} | {100 * S['caft']['parse_fail']['rate']:.0f}% | {loss('finetune')} | "
                f"{P['caft']:.0%} |",
                "", f"CAFT vs plain {m}: p = {fmt_p(S['caft']['vs_none']['p'])}.", ""]
    cap, T, H = res.get("capability", {}), res.get("capability_tests", {}), res.get("humaneval", {})
    if cap:
        out += ["### Capability", "",
                "Held-out clean coding prompts: the answer's code parses and defines and returns what was asked (static, nothing "
                "runs). Held-out loss: mean loss per answer token on clean tasks never seen in fine-tuning.", "",
                "| Model | Capable [95% CI] | Parses [95% CI] | Held-out loss | HumanEval pass@1 [95% CI] |", "|---|---|---|---:|---|"]
        for label, c in cap.items():
            h = H.get(label)
            he_txt = f"{fmt_rate(h['completions'])} ({h['problems']} problems)" if h else "not run"
            out.append(f"| {label} | {fmt_rate(c['capable'])} | {fmt_rate(c['parses'])} | {c['heldout_loss']:.3f} | {he_txt} |")
        tests = "; ".join(f"{k.replace('_', ' ')}: p = {fmt_p(v['p'])}" for k, v in T.items())
        out += ["", f"Fisher's tests: {tests or 'none'}. Paper: HumanEval pass@1 drops only modestly after CAFT (no number given)."
                + ("" if H else " HumanEval is opt-in (`interventions.humaneval.enabled=true`); its programs run only in a sandboxed subprocess."), ""]
    out += ["![Figure 5](figures/fig5_ablation.png)", ""]
    secs = res.get("seconds", {})
    if secs:
        out += ["Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()) + ".", ""]
    return "\n".join(out)
