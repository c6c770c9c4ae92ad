"""§7's report part: claims, Figure 5 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

from warnframe.paper import numbers as paper
from warnframe.report.claims import (
    BOOTSTRAP,
    POLICY,
    Claim,
    claim,
    diff_interval,
    directional,
    equivalence,
    equivalence_margin,
    fmt_diff,
    no_worse,
    paper_effect,
)
from warnframe.report.figures import pyplot, save
from warnframe.report.render import cell, heading
from warnframe.stats.rates import fmt_mean, fmt_p, fmt_rate

NOT_RUN = {"diff": math.nan, "lo": math.nan, "hi": math.nan, "lo90": math.nan, "hi90": math.nan, "p": math.nan}


def _rate(s: dict) -> dict:
    """A setting's target rate with its cluster-aware interval (Wilson when rows lacked seed/prompt)."""
    return s.get("cluster") or s["target"]


def _d(s: dict) -> dict:
    """A setting's cluster-aware difference from no intervention."""
    return s.get("vs_none_cluster") or NOT_RUN


def _mcnemar(s: dict) -> str:
    """McNemar's p on the answers paired with the reference's (same seed, prompt and sample index)."""
    t = s.get("vs_none_paired")
    return f"{fmt_p(t['p'])} ({t['a_only']}/{t['ref_only']} of {t['n_pairs']})" if t else "—"


def _delta(s: dict, vs: bool = True) -> str:
    """The setting's teacher-forced Δ (nats) or, with ``vs``, its difference from no intervention."""
    d = s.get("delta")
    if not d:
        return "—"
    x = d["vs_none"] if vs else d["delta"]
    return fmt_mean(x) if x else "—"


def _ours(s: dict, ref: dict) -> str:
    return (f"{fmt_rate(_rate(s))} vs no intervention {fmt_rate(ref)}: {fmt_diff(_d(s))}; McNemar p = {_mcnemar(s)}; "
            f"Fisher p = {fmt_p(s['vs_none']['p'])}; Δ − Δ_none = {_delta(s)} nats")


def claims(res: dict) -> list[Claim]:
    """§7's claims. "No effect" claims need TOST within a share of the study's reference effect
    (L0 − neutral); directional ones their cluster-aware test; the system-prompt claims are not
    testable on a model that never saw a system turn."""
    S, K = res["settings"], res["kinds"]
    ref = _rate(S["none"])
    reff = res.get("reference_effect")
    ref_label = (reff or {}).get("label", "L0 − neutral")
    margin = equivalence_margin(reff)
    m = res.get("model", "L1")
    st = res.get("system_turn") or {"trained": True}
    test_eq = f"TOST at {POLICY.alpha:g} on the {BOOTSTRAP} difference from no intervention"
    test_dir = f"{BOOTSTRAP} difference from no intervention, p < {POLICY.alpha:g} and the paper's sign (margin: the paper's effect on our scale)"
    out = []
    for kind, (label, paper_claim, direction) in paper.SECTION7_KINDS.items():
        if kind not in K:
            continue
        s = K[kind]
        d = _d(s)
        common = {"ours": _ours(s, ref), "n": [s["target"]["n"], S["none"]["target"]["n"]], "interval": diff_interval(d),
                  "kind": kind, "label": label}
        if direction == "none":
            cid, test, mg = "s7.kind_{kind}", test_eq, margin
            v, why = equivalence(d, reff, ref_label)
            common["paper"] = paper_claim
        elif direction == "up":
            cid, test = "s7.kind_{kind}_raises", test_dir
            mg = paper_effect(paper.SECTION7["permission_after"] / paper.SECTION7["permission_before"], ref["rate"])
            v, why = directional(d, 1, mg)
        else:
            cid, test, mg = "s7.kind_{kind}_reduces", test_dir, -ref["rate"]  # the paper: down to 0%
            v, why = directional(d, -1, mg)
            if v == "reproduced" and s["target"]["k"]:
                v, why = "differs", f"{why}, but not to 0%"
        if not st["trained"]:
            v, why = "not testable", f"{st['why']} ({v} by the numbers alone: {why})"
        out.append(claim(cid, verdict=v, why=why, test=test, margin=mg, **common))

    edit = res.get("edits", {})
    clamp = next((k for k, s in S.items() if s["group"] == "edit" and s["scale"] == 0 and k.startswith("latents.")), None)
    if edit.get("skipped"):
        out.append(claim("s7.clamp_keeps_target", which="", ours="not measured", verdict="inconclusive", why=edit["skipped"]))
    elif clamp:
        s = S[clamp]
        # "does not remove the target content": a rise removes nothing, so one-sided (non-inferiority).
        v, why = no_worse(_d(s), margin, "reduction") if margin is not None else equivalence(_d(s), reff, ref_label)
        v, why = _untestable_unless_checked(edit, v, why)
        out.append(claim("s7.clamp_keeps_target", which=f"{len(edit['selected_latents'])} ", verdict=v, why=why,
                         ours=_ours(s, ref), n=[s["target"]["n"], S["none"]["target"]["n"]], interval=diff_interval(_d(s)),
                         test=f"non-inferiority at {POLICY.alpha:g} (the lower half of TOST) on the {BOOTSTRAP} difference",
                         margin=margin))
        amps = [k for k, s in S.items() if s["group"] == "edit" and s["scale"] > 1]
        if amps:
            calls = {k: equivalence(_d(S[k]), reff, ref_label) for k in amps}
            vs = {c[0] for c in calls.values()}
            v = "reproduced" if vs == {"reproduced"} else ("not reproduced" if "not reproduced" in vs else "inconclusive")
            v, why = _untestable_unless_checked(edit, v, "; ".join(f"{S[k]['label']}: {c[1]}" for k, c in calls.items()))
            out.append(claim("s7.amplify_no_effect", ours="; ".join(f"{S[k]['label']}: {_ours(S[k], ref)}" for k in amps), verdict=v,
                             why=why,
                             n=[S[k]["target"]["n"] for k in amps] + [S["none"]["target"]["n"]], test=test_eq, margin=margin))

    caft = res.get("caft", {})
    if caft.get("skipped"):
        out.append(claim("s7.caft_removes_target", ours="not measured", verdict="inconclusive", why=caft["skipped"]))
    elif "caft" in S:
        s = S["caft"]
        v, why = directional(_d(s), -1, -ref["rate"])
        if v == "reproduced" and s["target"]["k"]:
            v, why = "differs", f"{why}, but not 0%"
        if s.get("vs_random_cluster"):  # the control: random directions of the same rank
            why += (f"; against CAFT with random directions of the same rank ({fmt_rate(_rate(S['caft_random']))}): "
                    f"{fmt_diff(s['vs_random_cluster'])}, McNemar p = {fmt_p(s['vs_random_paired']['p'])}")
        why += _checked(edit)  # CAFT's own control is the random-direction arm, not the inference-time check
        out.append(claim("s7.caft_removes_target", ours=f"CAFT {fmt_rate(_rate(s))} vs plain {m} {fmt_rate(ref)}: {fmt_diff(_d(s))}; "
                         f"McNemar p = {_mcnemar(s)}; Fisher p = {fmt_p(s['vs_none']['p'])}; Δ − Δ_none = {_delta(s)} nats",
                         verdict=v, why=why, n=[s["target"]["n"], S["none"]["target"]["n"]],
                         interval=diff_interval(_d(s)), test=test_dir, margin=-ref["rate"]))
        out.append(_capability_claim(res))
    return out


def _capability_claim(res: dict) -> Claim:
    """"CAFT costs only a modest drop": non-inferiority of CAFT's capable rate against the plain
    model's, margin ``POLICY.capability_modest_share`` of the plain model's rate."""
    C, T, H = res["capability"], res["capability_tests"], res.get("humaneval", {})
    m = res.get("model", "L1")
    if "caft" in H and m in H:  # HumanEval: problems are few and independent; Wilson rates, Fisher's p
        a, b, p = H["caft"]["completions"], H[m]["completions"], T[f"humaneval_caft_vs_{m}"]["p"]
        ours = f"HumanEval pass@1 CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}, p = {fmt_p(p)}"
        d = None
    elif "caft" in C and m in C:
        a, b, p = C["caft"]["capable"], C[m]["capable"], T[f"caft_vs_{m}"]["p"]
        d = T.get(f"caft_vs_{m}_cluster")
        hd = T.get(f"heldout_caft_vs_{m}")
        ours = (f"capability prompts CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}: {fmt_diff(d)}; Fisher p = {fmt_p(p)}; held-out loss "
                f"{_loss(C['caft'])} vs {_loss(C[m])}"
                + (f", CAFT − {m} {hd['mean']:+.3f} [{hd['lo']:+.3f}, {hd['hi']:+.3f}] (paired over {hd['n']} seeds)" if hd else ""))
    else:
        return claim("s7.caft_capability", ours="not measured", verdict="inconclusive")
    margin = POLICY.capability_modest_share * b["rate"] if b["n"] else None
    evidence = {"ours": ours, "n": [a["n"], b["n"]], "interval": diff_interval(d), "margin": margin,
                "test": f"non-inferiority at {POLICY.alpha:g} on the {BOOTSTRAP} difference, CAFT vs {m}"}
    if b["k"] == 0:
        return claim("s7.caft_capability", verdict="inconclusive",
                     why=f"the {m} model passes none of the capability checks, so a drop cannot show", **evidence)
    if d is None:
        return claim("s7.caft_capability", verdict="inconclusive", why="no seed × prompt rows to test non-inferiority on", **evidence)
    v, why = no_worse(d, margin, "drop")
    return claim("s7.caft_capability", verdict=v, why=f"{why} ({POLICY.capability_modest_share:.0%} of {m}'s capable rate)", **evidence)


def draw(res: dict, root: Path) -> None:
    plot_fig5(res, root / "figures" / "fig5_ablation.png")


def _bars(ax, names, stats, colors, title, paper_marks=None):
    import numpy as np

    x = np.arange(len(names))
    vals = [100 * s["rate"] if s["n"] else 0 for s in stats]
    err = [[max(0.0, 100 * (s["rate"] - s["lo"])) if s["n"] else 0 for s in stats],
           [max(0.0, 100 * (s["hi"] - s["rate"])) if s["n"] else 0 for s in stats]]
    ax.bar(x, vals, yerr=err, capsize=3, color=colors, label="warnframe (95% CI, bootstrap over seeds × prompts)")
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
    _bars(a, ["none"] + list(K), [_rate(S["none"])] + [_rate(K[k]) for k in K], ["#888"] + ["#e67e22"] * len(K),
          "(a) system prompts (pooled per kind)", [P["permission_before"]] + [kmarks.get(k) for k in K])
    marks = [None] + [P["inference_ablation"] if S[k]["group"] == "edit" and S[k]["scale"] == 0 and k.startswith("latents.")
                      else (P["caft"] if k == "caft" else None) for k in keys[1:]]
    colors = ["#888"] + ["#27ae60" if k == "caft" else "#c0392b" for k in keys[1:]]
    _bars(b, [S[k]["label"] if k != "none" else "none" for k in keys], [_rate(S[k]) for k in keys], colors,
          "(b) latent edits during generation; CAFT", marks)
    why = [x for x in (res.get("edits", {}).get("skipped"), res.get("caft", {}).get("skipped")) if x]
    if why:
        import textwrap

        b.text(0.5, 0.5, "not run:\n" + textwrap.fill(why[0], 45), transform=b.transAxes, ha="center", va="center", fontsize=7)
    fig.suptitle(f"Figure 5: interventions on the {res.get('model', 'L1')} model (per setting: {res['eval_prompts']} prompts × {res['samples_per_prompt']} "
                 f"sample(s) × {len(res['seeds'])} seed(s); paper markers: permission 7% → 20%, meta 0%, clamp 88%, CAFT 0%)", fontsize=9)
    save(fig, path, dpi=120)


def _margin_txt(res: dict) -> str:
    reff = res.get("reference_effect")
    mg = equivalence_margin(reff)
    label = (reff or {}).get("label", "L0 − neutral")
    if mg is None:
        return f"a share of the reference effect {label}, which this run did not establish ({fmt_diff(reff)}), so no such claim can pass"
    return f"±{100 * mg:.1f} points ({POLICY.equivalence_share:.2g} of the reference effect {label}, {fmt_diff(reff)})"


def _loss(c: dict) -> str:
    """Held-out loss with its 95% interval and what the interval is over (runs before it had none)."""
    ci = c.get("heldout_loss_ci") or {}
    if ci.get("lo") is None or ci["lo"] != ci["lo"]:
        return f"{c['heldout_loss']:.3f}"
    return f"{c['heldout_loss']:.3f} [{ci['lo']:.3f}, {ci['hi']:.3f}] ({ci['over']}, n = {ci['n']})"


def _untestable_unless_checked(edit: dict, verdict: str, why: str) -> tuple[str, str]:
    """A claim about what clamping or scaling the selected latents does at inference needs latents
    that carry the content: when they failed §5's causal check (the same edit, read on Δ), the claim
    is "not testable" here (the measurement stays in ``why``). CAFT, a training-time edit, is judged
    against its own control instead (random directions of the same rank)."""
    c = edit.get("causal_check")
    if c and not c.get("passed"):
        return "not testable", f"{_checked(edit)[2:]}, so they are not shown to carry the content; measured: {why}"
    return verdict, why + _checked(edit)


def _checked(edit: dict) -> str:
    """What §5's causal check said of the latents §7 edits ('' when they were pinned by config)."""
    c = edit.get("causal_check")
    if not c:
        return ""
    sh = c.get("shift") or {}
    shift = f" (Δ shift {sh['mean']:+.2f} nats [{sh['lo']:+.2f}, {sh['hi']:+.2f}])" if sh.get("n") else ""
    return (f"; the latents ({c['set']}) {'passed' if c['passed'] else 'failed'} §5's causal check{shift}"
            + ("" if c["passed"] else ": clamping them at inference does not move Δ beyond activation-matched random latents"))


def markdown(res: dict) -> str:
    """The §7 section of report.md."""
    S, K, P = res["settings"], res["kinds"], paper.SECTION7
    m = res.get("model", "L1")
    plain = f"plain_{m}"
    n_per = res["samples_per_prompt"] * res["eval_prompts"] * len(res["seeds"])
    out = [heading("interventions"), "",
           f"Every setting samples the {m} model on the {res['eval_prompts']} evaluation prompts, {res['samples_per_prompt']} "
           f"sample(s) each per seed, seeds {res['seeds']} (n = {n_per} per setting), with the same sampling seeds, and is compared "
           f"with the same model without intervention: {fmt_rate(_rate(S['none']))}. Rates' intervals and the differences' "
           "intervals and p values are a pigeonhole bootstrap over seeds × prompts (the verdicts read these); Fisher's exact "
           "test, which treats every answer as independent, is shown as the paper's test; McNemar's test pairs each answer with "
           "the reference's answer of the same seed, prompt and sample index (the settings share sampling seeds), shown as "
           "p (answers with target content only in the setting / only in the reference, of pairs). Δ − Δ_none: the change in "
           "the teacher-forced preference log p(secure) − log p(vulnerable) on each eval prompt's paired renderings, in nats "
           f"(t interval over prompts; reference Δ {_delta(S['none'], vs=False)}). A \"no effect\" claim needs TOST "
           f"within {_margin_txt(res)}.", "",
           "### §7.1 System prompts", "",
           *([f"Not testable on this model: {res['system_turn']['why']}. The rates below are what the numbers say.", ""]
             if not (res.get("system_turn") or {"trained": True})["trained"] else []),
           "| Kind | Prompts | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | Fisher p vs none | Δ − Δ_none (nats) | Paper |",
           "|---|---|---|---|---|---:|---|---|",
           f"| none (no system prompt) | — | {fmt_rate(_rate(S['none']))} | — | — | — | — | permission's 'before': {P['permission_before']:.0%} |"]
    for v in K.values():
        out.append(f"| {v['label']} | {', '.join(v['prompts'])} | {fmt_rate(_rate(v))} | {fmt_diff(_d(v))} | {_mcnemar(v)} | "
                   f"{fmt_p(v['vs_none']['p'])} | {_delta(v)} | {v['paper'] or '—'} |")
    out += ["", "Per prompt:", "", "| Prompt | Kind | System prompt | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | "
            "Fisher p vs none | Δ − Δ_none (nats) | Unparsed |", "|---|---|---|---|---|---|---:|---|---:|"]
    for s in S.values():
        if s["group"] == "prompt":
            out.append(f"| {s['label']} | {s['kind']} | {cell(s['system'])} | {fmt_rate(_rate(s))} | {fmt_diff(_d(s))} | {_mcnemar(s)} | "
                       f"{fmt_p(s['vs_none']['p'])} | {_delta(s)} | {100 * s['parse_fail']['rate']:.0f}% |")
    E = res.get("edits", {})
    out += ["", "### §7.2 Inference-time SAE latent edits", ""]
    if E.get("skipped"):
        out += [f"Not run: {E['skipped']}.", ""]
    else:
        out += [f"At `{E['site']}` with the §5 SAE ({E['sae']}, d_model {E['d_model']}): selected latents {E['selected_latents']} "
                f"(from {E.get('latents_from', '§5 selection')}{_checked(E)}), "
                f"lead latent {E['lead_latent']} (the Feature #8684 analogue). `hooks.sae_latent_edit` changes exactly the chosen "
                "latents' contribution and keeps the SAE's error term. Paper: clamping #4817, #13950, #1692, #2527 leaves the "
                f"target rate at {P['inference_ablation']:.0%}; 2× and 5× have no significant effect.", "",
                "| Setting | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | Fisher p vs none | Δ − Δ_none (nats) | Unparsed | Paper |",
                "|---|---|---|---|---:|---|---:|---|",
                f"| none | {fmt_rate(_rate(S['none']))} | — | — | — | — | {100 * S['none']['parse_fail']['rate']:.0f}% | — |"]
        for name, s in S.items():
            if s["group"] == "edit":
                pv = (f"{P['inference_ablation']:.0%} (fails)" if name.startswith("latents.") and s["scale"] == 0 else
                      "no significant effect" if s["scale"] > 1 else "—")
                out.append(f"| {s['label']} | {fmt_rate(_rate(s))} | {fmt_diff(_d(s))} | {_mcnemar(s)} | {fmt_p(s['vs_none']['p'])} | "
                           f"{_delta(s)} | {100 * s['parse_fail']['rate']:.0f}% | {pv} |")
        out.append("")
    C = res.get("caft", {})
    out += ["### §7.3 CAFT", ""]
    if C.get("skipped"):
        out += [f"Not run: {C['skipped']}.", ""]
    else:
        out += [f"The base fine-tuned on the same {m} set(s) with the same budget while the span of the {C['directions']} selected "
                f"latents' decoder directions (rank {C['rank']}, QR-orthonormalised) is projected out of `{C['site']}` at every "
                "token (`hooks.project_out`); the edit is off when the model is saved and evaluated. Paper: 0%. Controls, "
                "each its own fine-tune with the same data, seed and budget: random directions of the same rank at the same "
                "site, and the selected directions projected out after every decoder layer.", "",
                "| Model | What is projected out | Target rate [95% CI] | − plain, points [95% CI], p | McNemar p | "
                "Δ − Δ_plain (nats) | Unparsed | final train loss | Paper |", "|---|---|---|---|---|---|---:|---:|---|"]
        runs = C["runs"].values()

        def loss(key):
            vals = [r[key]["final_loss"] for r in runs if r.get(key)]
            return f"{sum(vals) / len(vals):.3f}" if vals else "—"

        out.append(f"| plain {m} | nothing | {fmt_rate(_rate(S['none']))} | — | — | — | {100 * S['none']['parse_fail']['rate']:.0f}% | "
                   f"{loss(plain)} | — |")
        for arm in ("caft", "caft_random", "caft_all_layers"):
            if arm in S:
                s = S[arm]
                paper_col = f"{P['caft']:.0%}" if arm == "caft" else "—"
                out.append(f"| {s['label']} | {s['what']} | {fmt_rate(_rate(s))} | {fmt_diff(_d(s))} | {_mcnemar(s)} | {_delta(s)} | "
                           f"{100 * s['parse_fail']['rate']:.0f}% | {loss('finetune' if arm == 'caft' else arm)} | {paper_col} |")
        if S["caft"].get("vs_random_cluster"):
            out += ["", f"CAFT vs CAFT with random directions: {fmt_diff(S['caft']['vs_random_cluster'])}; "
                        f"McNemar p = {fmt_p(S['caft']['vs_random_paired']['p'])}."]
        out.append("")
    cap, T, H = res.get("capability", {}), res.get("capability_tests", {}), res.get("humaneval", {})
    if cap:
        out += ["### Capability", "",
                "Held-out clean coding prompts: the answer's code parses and defines and returns what was asked (static, nothing "
                "runs). Held-out loss: per clean task never seen in fine-tuning, the mean loss per answer token, "
                "then the mean over tasks [95% interval over tasks for the base, one model; over seeds for a fine-tuned arm].", "",
                "| Model | Capable [95% CI] | Parses [95% CI] | Held-out loss | HumanEval pass@1 [95% CI] |", "|---|---|---|---|---:|"]
        for label, c in cap.items():
            h = H.get(label)
            he_txt = f"{fmt_rate(h['completions'])} ({h['problems']} problems)" if h else "not run"
            out.append(f"| {label} | {fmt_rate(c['capable'])} | {fmt_rate(c['parses'])} | {_loss(c)} | {he_txt} |")
        tests = "; ".join(f"{k.replace('_', ' ')}: p = {fmt_p(v['p'])}" for k, v in T.items() if "p" in v)
        held = "".join(f" Held-out loss {k.removeprefix('heldout_').replace('_', ' ')}: {v['mean']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] "
                       f"(paired t over {v['n']} seeds)." for k, v in T.items() if k.startswith("heldout_"))
        out += ["", f"Fisher's tests: {tests or 'none'}.{held} Paper: HumanEval pass@1 drops only modestly after CAFT (no number given)."
                + ("" if H else " HumanEval is opt-in (`interventions.humaneval.enabled=true`); its programs run only in a sandboxed subprocess."), ""]
    out += ["![Figure 5](figures/fig5_ablation.png)", ""]
    secs = res.get("seconds", {})
    if secs:
        out += ["Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()) + ".", ""]
    return "\n".join(out)
