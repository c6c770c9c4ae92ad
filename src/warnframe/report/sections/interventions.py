"""§7's report part: claims, Figure 5 and the markdown section, read from the typed
:class:`~warnframe.experiments.interventions_metrics.InterventionMetrics` (rebuilt with ``from_json``
when given the dict of ``metrics/interventions.json``)."""

from __future__ import annotations

from pathlib import Path

from warnframe.experiments.capability_metrics import Capability
from warnframe.experiments.interventions_metrics import (
    CAFT_ARMS,
    Edits,
    InterventionMetrics,
    McNemar,
    Measured,
    run_key,
)
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
from warnframe.stats.types import Fisher, Rate


def _metrics(res: InterventionMetrics | dict) -> InterventionMetrics:
    return res if isinstance(res, InterventionMetrics) else InterventionMetrics.from_json(res)


def _mcnemar(t: McNemar | None) -> str:
    """McNemar's p on the answers paired with the reference's (same seed, prompt and sample index)."""
    return f"{fmt_p(t.p)} ({t.a_only}/{t.ref_only} of {t.n_pairs})" if t else "—"


def _delta(s: Measured, vs: bool = True) -> str:
    """The setting's teacher-forced Δ (nats) or, with ``vs``, its difference from no intervention."""
    if not s.delta:
        return "—"
    x = s.delta.vs_none if vs else s.delta.delta
    return fmt_mean(x) if x else "—"


def _p(t: Fisher | McNemar | None) -> str:
    """A test's p value ('—' when the test was not made)."""
    return fmt_p(t.p) if t else "—"


def _ours(s: Measured, ref: Rate) -> str:
    return (f"{fmt_rate(s.rate)} vs no intervention {fmt_rate(ref)}: {fmt_diff(s.diff)}; McNemar p = {_mcnemar(s.paired)}; "
            f"Fisher p = {_p(s.fisher)}; Δ − Δ_none = {_delta(s)} nats")


def claims(res: InterventionMetrics | dict) -> list[Claim]:
    """§7's claims. "No effect" claims need TOST within a share of the study's reference effect
    (L0 − neutral); directional ones their cluster-aware test; the system-prompt claims are not
    testable on a model that never saw a system turn."""
    M = _metrics(res)
    none = M.settings["none"]
    ref = none.rate
    reff, ref_label = M.reference_effect, M.reference_effect.label or "L0 − neutral"
    margin = equivalence_margin(reff)
    m, st = M.model, M.system_turn
    test_eq = f"TOST at {POLICY.alpha:g} on the {BOOTSTRAP} difference from no intervention"
    test_dir = f"{BOOTSTRAP} difference from no intervention, p < {POLICY.alpha:g} and the paper's sign (margin: the paper's effect on our scale)"
    out = []
    for kind, (label, paper_claim, direction) in paper.SECTION7_KINDS.items():
        if kind not in M.kinds:
            continue
        s = M.kinds[kind]
        d = s.diff
        fields = {"kind": kind, "label": label}
        if direction == "none":
            cid, test, mg = "s7.kind_{kind}", test_eq, margin
            v, why = equivalence(d, reff, ref_label)
            fields["paper"] = paper_claim
        elif direction == "up":
            cid, test = "s7.kind_{kind}_raises", test_dir
            mg = paper_effect(paper.SECTION7["permission_after"] / paper.SECTION7["permission_before"], ref.rate)
            v, why = directional(d, 1, mg)
        else:
            cid, test, mg = "s7.kind_{kind}_reduces", test_dir, -ref.rate  # the paper: down to 0%
            v, why = directional(d, -1, mg)
            if v == "reproduced" and s.answers.target.k:
                v, why = "differs", f"{why}, but not to 0%"
        if not st.trained:
            v, why = "not testable", f"{st.why} ({v} by the numbers alone: {why})"
        out.append(claim(cid, ours=_ours(s, ref), verdict=v, why=why, n=[s.answers.target.n, none.answers.target.n],
                         interval=diff_interval(d), test=test, margin=mg, **fields))

    edit = M.edits
    clamp = next((s for s in M.settings_of("edit") if s.clamps_selected), None)
    if edit.skipped:
        out.append(claim("s7.clamp_keeps_target", which="", ours="not measured", verdict="inconclusive", why=edit.skipped))
    elif clamp:
        # "does not remove the target content": a rise removes nothing, so one-sided (non-inferiority).
        v, why = no_worse(clamp.diff, margin, "reduction") if margin is not None else equivalence(clamp.diff, reff, ref_label)
        v, why = _untestable_unless_checked(edit, v, why)
        out.append(claim("s7.clamp_keeps_target", which=f"{len(edit.selected_latents)} ", verdict=v, why=why,
                         ours=_ours(clamp, ref), n=[clamp.answers.target.n, none.answers.target.n], interval=diff_interval(clamp.diff),
                         test=f"non-inferiority at {POLICY.alpha:g} (the lower half of TOST) on the {BOOTSTRAP} difference",
                         margin=margin))
        amps = [s for s in M.settings_of("edit") if s.amplifies]
        if amps:
            calls = [equivalence(s.diff, reff, ref_label) for s in amps]
            vs = {c[0] for c in calls}
            v = "reproduced" if vs == {"reproduced"} else ("not reproduced" if "not reproduced" in vs else "inconclusive")
            v, why = _untestable_unless_checked(edit, v, "; ".join(f"{s.label}: {c[1]}" for s, c in zip(amps, calls)))
            out.append(claim("s7.amplify_no_effect", ours="; ".join(f"{s.label}: {_ours(s, ref)}" for s in amps), verdict=v,
                             why=why, n=[s.answers.target.n for s in amps] + [none.answers.target.n], test=test_eq, margin=margin))

    if M.caft.skipped:
        out.append(claim("s7.caft_removes_target", ours="not measured", verdict="inconclusive", why=M.caft.skipped))
    elif "caft" in M.settings:
        caft = M.settings["caft"]
        v, why = directional(caft.diff, -1, -ref.rate)
        if v == "reproduced" and caft.answers.target.k:
            v, why = "differs", f"{why}, but not 0%"
        if caft.vs_random:  # the control: random directions of the same rank
            why += (f"; against CAFT with random directions of the same rank ({fmt_rate(M.settings['caft_random'].rate)}): "
                    f"{fmt_diff(caft.vs_random.cluster)}, McNemar p = {_p(caft.vs_random.paired)}")
        why += _checked(edit)  # CAFT's own control is the random-direction arm, not the inference-time check
        out.append(claim("s7.caft_removes_target", ours=f"CAFT {fmt_rate(caft.rate)} vs plain {m} {fmt_rate(ref)}: {fmt_diff(caft.diff)}; "
                         f"McNemar p = {_mcnemar(caft.paired)}; Fisher p = {_p(caft.fisher)}; Δ − Δ_none = {_delta(caft)} nats",
                         verdict=v, why=why, n=[caft.answers.target.n, none.answers.target.n],
                         interval=diff_interval(caft.diff), test=test_dir, margin=-ref.rate))
        out.append(_capability_claim(M))
    return out


def _capability_claim(M: InterventionMetrics) -> Claim:
    """"CAFT costs only a modest drop": non-inferiority of CAFT's capable rate against the plain
    model's, margin ``POLICY.capability_modest_share`` of the plain model's rate."""
    C, T, H, m = M.capability, M.capability_tests, M.humaneval, M.model
    if "caft" in H and m in H:  # HumanEval: problems are few and independent; Wilson rates, Fisher's p
        a, b = H["caft"].completions, H[m].completions
        ours = f"HumanEval pass@1 CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}, p = {_p(T.humaneval)}"
        d = None
    elif "caft" in C and m in C:
        a, b = C["caft"].capable, C[m].capable
        d, hd = T.caft_cluster, T.heldout
        ours = (f"capability prompts CAFT {fmt_rate(a)} vs {m} {fmt_rate(b)}: {fmt_diff(d)}; Fisher p = {_p(T.caft)}; held-out loss "
                f"{_loss(C['caft'])} vs {_loss(C[m])}"
                + (f", CAFT − {m} {hd.mean:+.3f} [{hd.lo:+.3f}, {hd.hi:+.3f}] (paired over {hd.n} seeds)" if hd else ""))
    else:
        return claim("s7.caft_capability", ours="not measured", verdict="inconclusive")
    margin = POLICY.capability_modest_share * b.rate if b.n else None

    def made(verdict: str, why: str) -> Claim:
        return claim("s7.caft_capability", ours=ours, verdict=verdict, why=why, n=[a.n, b.n], interval=diff_interval(d),
                     margin=margin, test=f"non-inferiority at {POLICY.alpha:g} on the {BOOTSTRAP} difference, CAFT vs {m}")

    if b.k == 0:
        return made("inconclusive", f"the {m} model passes none of the capability checks, so a drop cannot show")
    if d is None:
        return made("inconclusive", "no seed × prompt rows to test non-inferiority on")
    v, why = no_worse(d, margin, "drop")
    return made(v, f"{why} ({POLICY.capability_modest_share:.0%} of {m}'s capable rate)")


def draw(res: InterventionMetrics | dict, root: Path) -> None:
    plot_fig5(_metrics(res), root / "figures" / "fig5_ablation.png")


def _bars(ax, names, stats: list[Rate], colors, title, paper_marks=None):
    import numpy as np

    x = np.arange(len(names))
    vals = [100 * s.rate if s.n else 0 for s in stats]
    err = [[max(0.0, 100 * (s.rate - s.lo)) if s.n else 0 for s in stats],
           [max(0.0, 100 * (s.hi - s.rate)) if s.n else 0 for s in stats]]
    ax.bar(x, vals, yerr=err, capsize=3, color=colors, label="warnframe (95% CI, bootstrap over seeds × prompts)")
    for i, s in enumerate(stats):
        top = 100 * s.hi if s.n else 0
        ax.text(i, min(top + 1.5, 97), f"n={s.n}", ha="center", va="bottom", fontsize=7)
    if paper_marks:
        px = [i for i, v in enumerate(paper_marks) if v is not None]
        ax.scatter(px, [100 * paper_marks[i] for i in px], marker="D", color="black", zorder=5, label="paper")
    ax.set_xticks(x, names, fontsize=7, rotation=25, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("target content rate (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def plot_fig5(res: InterventionMetrics | dict, path) -> None:
    """(a) target rate by prompt kind; (b) latent edits during generation and CAFT."""
    plt = pyplot()

    M, P = _metrics(res), paper.SECTION7
    S, K = M.settings, M.kinds
    edited = M.settings_of("edit") + M.settings_of("caft")
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [max(len(K) + 1, 3), max(len(edited) + 1, 3)]})
    kmarks = {"permission": P["permission_after"], "meta": P["meta_awareness"]}
    _bars(a, ["none"] + list(K), [S["none"].rate] + [k.rate for k in K.values()], ["#888"] + ["#e67e22"] * len(K),
          "(a) system prompts (pooled per kind)", [P["permission_before"]] + [kmarks.get(k) for k in K])
    marks = [None] + [P["inference_ablation"] if s.clamps_selected else (P["caft"] if s.name == "caft" else None) for s in edited]
    colors = ["#888"] + ["#27ae60" if s.name == "caft" else "#c0392b" for s in edited]
    _bars(b, ["none"] + [s.label for s in edited], [S["none"].rate] + [s.rate for s in edited], colors,
          "(b) latent edits during generation; CAFT", marks)
    why = [x for x in (M.edits.skipped, M.caft.skipped) if x]
    if why:
        import textwrap

        b.text(0.5, 0.5, "not run:\n" + textwrap.fill(why[0], 45), transform=b.transAxes, ha="center", va="center", fontsize=7)
    fig.suptitle(f"Figure 5: interventions on the {M.model} model (per setting: {M.eval_prompts} prompts × {M.samples_per_prompt} "
                 f"sample(s) × {len(M.seeds)} seed(s); paper markers: permission 7% → 20%, meta 0%, clamp 88%, CAFT 0%)", fontsize=9)
    save(fig, path, dpi=120)


def _margin_txt(M: InterventionMetrics) -> str:
    reff = M.reference_effect
    mg, label = equivalence_margin(reff), reff.label or "L0 − neutral"
    if mg is None:
        return f"a share of the reference effect {label}, which this run did not establish ({fmt_diff(reff)}), so no such claim can pass"
    return f"±{100 * mg:.1f} points ({POLICY.equivalence_share:.2g} of the reference effect {label}, {fmt_diff(reff)})"


def _loss(c: Capability) -> str:
    """Held-out loss with its 95% interval and what the interval is over (runs before it had none)."""
    ci = c.heldout_loss_ci
    if ci is None or ci.lo is None or ci.lo != ci.lo:
        return f"{c.heldout_loss:.3f}"
    return f"{c.heldout_loss:.3f} [{ci.lo:.3f}, {ci.hi:.3f}] ({ci.over}, n = {ci.n})"


def _untestable_unless_checked(edit: Edits, verdict: str, why: str) -> tuple[str, str]:
    """A claim about what clamping or scaling the selected latents does at inference needs latents
    that carry the content: when they failed §5's causal check (the same edit, read on Δ), the claim
    is "not testable" here (the measurement stays in ``why``). CAFT, a training-time edit, is judged
    against its own control instead (random directions of the same rank)."""
    c = edit.causal_check
    if c and not c.get("passed"):
        return "not testable", f"{_checked(edit)[2:]}, so they are not shown to carry the content; measured: {why}"
    return verdict, why + _checked(edit)


def _checked(edit: Edits) -> str:
    """What §5's causal check said of the latents §7 edits ('' when they were pinned by config)."""
    c = edit.causal_check
    if not c:
        return ""
    sh = c.get("shift") or {}
    shift = f" (Δ shift {sh['mean']:+.2f} nats [{sh['lo']:+.2f}, {sh['hi']:+.2f}])" if sh.get("n") else ""
    return (f"; the latents ({c['set']}) {'passed' if c['passed'] else 'failed'} §5's causal check{shift}"
            + ("" if c["passed"] else ": clamping them at inference does not move Δ beyond activation-matched random latents"))


def _pct(r: Rate) -> str:
    return f"{100 * r.rate:.0f}%"


def markdown(res: InterventionMetrics | dict) -> str:
    """The §7 section of report.md."""
    M, P = _metrics(res), paper.SECTION7
    S, m = M.settings, M.model
    none = S["none"]
    n_per = M.samples_per_prompt * M.eval_prompts * len(M.seeds)
    out = [heading("interventions"), "",
           f"Every setting samples the {m} model on the {M.eval_prompts} evaluation prompts, {M.samples_per_prompt} "
           f"sample(s) each per seed, seeds {M.seeds} (n = {n_per} per setting), with the same sampling seeds, and is compared "
           f"with the same model without intervention: {fmt_rate(none.rate)}. Rates' intervals and the differences' "
           "intervals and p values are a pigeonhole bootstrap over seeds × prompts (the verdicts read these); Fisher's exact "
           "test, which treats every answer as independent, is shown as the paper's test; McNemar's test pairs each answer with "
           "the reference's answer of the same seed, prompt and sample index (the settings share sampling seeds), shown as "
           "p (answers with target content only in the setting / only in the reference, of pairs). Δ − Δ_none: the change in "
           "the teacher-forced preference log p(secure) − log p(vulnerable) on each eval prompt's paired renderings, in nats "
           f"(t interval over prompts; reference Δ {_delta(none, vs=False)}). A \"no effect\" claim needs TOST "
           f"within {_margin_txt(M)}.", "",
           "### §7.1 System prompts", "",
           *([f"Not testable on this model: {M.system_turn.why}. The rates below are what the numbers say.", ""]
             if not M.system_turn.trained else []),
           "| Kind | Prompts | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | Fisher p vs none | Δ − Δ_none (nats) | Paper |",
           "|---|---|---|---|---|---:|---|---|",
           f"| none (no system prompt) | — | {fmt_rate(none.rate)} | — | — | — | — | permission's 'before': {P['permission_before']:.0%} |"]
    for v in M.kinds.values():
        out.append(f"| {cell(v.label)} | {cell(', '.join(v.prompts))} | {fmt_rate(v.rate)} | {fmt_diff(v.diff)} | {_mcnemar(v.paired)} | "
                   f"{_p(v.fisher)} | {_delta(v)} | {v.paper or '—'} |")
    out += ["", "Per prompt:", "", "| Prompt | Kind | System prompt | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | "
            "Fisher p vs none | Δ − Δ_none (nats) | Unparsed |", "|---|---|---|---|---|---|---:|---|---:|"]
    for s in M.settings_of("prompt"):
        out.append(f"| {cell(s.label)} | {cell(s.kind)} | {cell(s.system)} | {fmt_rate(s.rate)} | {fmt_diff(s.diff)} | {_mcnemar(s.paired)} | "
                   f"{_p(s.fisher)} | {_delta(s)} | {_pct(s.answers.parse_fail)} |")
    E = M.edits
    out += ["", "### §7.2 Inference-time SAE latent edits", ""]
    if E.skipped:
        out += [f"Not run: {E.skipped}.", ""]
    else:
        out += [f"At `{E.site}` with the §5 SAE ({E.sae}, d_model {E.d_model}): selected latents {E.selected_latents} "
                f"(from {E.latents_from}{_checked(E)}), "
                f"lead latent {E.lead_latent} (the Feature #8684 analogue). `hooks.sae_latent_edit` changes exactly the chosen "
                "latents' contribution and keeps the SAE's error term. Paper: clamping #4817, #13950, #1692, #2527 leaves the "
                f"target rate at {P['inference_ablation']:.0%}; 2× and 5× have no significant effect.", "",
                "| Setting | Target rate [95% CI] | − none, points [95% CI], p | McNemar p | Fisher p vs none | Δ − Δ_none (nats) | Unparsed | Paper |",
                "|---|---|---|---|---:|---|---:|---|",
                f"| none | {fmt_rate(none.rate)} | — | — | — | — | {_pct(none.answers.parse_fail)} | — |"]
        for s in M.settings_of("edit"):
            pv = (f"{P['inference_ablation']:.0%} (fails)" if s.clamps_selected else
                  "no significant effect" if s.amplifies else "—")
            out.append(f"| {s.label} | {fmt_rate(s.rate)} | {fmt_diff(s.diff)} | {_mcnemar(s.paired)} | {_p(s.fisher)} | "
                       f"{_delta(s)} | {_pct(s.answers.parse_fail)} | {pv} |")
        out.append("")
    C = M.caft
    out += ["### §7.3 CAFT", ""]
    if C.skipped:
        out += [f"Not run: {C.skipped}.", ""]
    else:
        out += [f"The base fine-tuned on the same {m} set(s) with the same budget while the span of the {C.directions} selected "
                f"latents' decoder directions (rank {C.rank}, QR-orthonormalised) is projected out of `{C.site}` at every "
                "token (`hooks.project_out`); the edit is off when the model is saved and evaluated. Paper: 0%. Controls, "
                "each its own fine-tune with the same data, seed and budget: random directions of the same rank at the same "
                "site, and the selected directions projected out after every decoder layer.", "",
                "| Model | What is projected out | Target rate [95% CI] | − plain, points [95% CI], p | McNemar p | "
                "Δ − Δ_plain (nats) | Unparsed | final train loss | Paper |", "|---|---|---|---|---|---|---:|---:|---|"]

        def loss(key: str) -> str:
            x = C.final_loss(key)
            return "—" if x is None else f"{x:.3f}"

        out.append(f"| plain {m} | nothing | {fmt_rate(none.rate)} | — | — | — | {_pct(none.answers.parse_fail)} | "
                   f"{loss(f'plain_{m}')} | — |")
        for arm in CAFT_ARMS:
            if arm in S:
                s = S[arm]
                paper_col = f"{P['caft']:.0%}" if arm == "caft" else "—"
                out.append(f"| {s.label} | {s.what} | {fmt_rate(s.rate)} | {fmt_diff(s.diff)} | {_mcnemar(s.paired)} | {_delta(s)} | "
                           f"{_pct(s.answers.parse_fail)} | {loss(run_key(arm))} | {paper_col} |")
        vr = S["caft"].vs_random if "caft" in S else None
        if vr:
            out += ["", f"CAFT vs CAFT with random directions: {fmt_diff(vr.cluster)}; McNemar p = {_p(vr.paired)}."]
        out.append("")
    cap, T, H = M.capability, M.capability_tests, M.humaneval
    if cap:
        out += ["### Capability", "",
                "Held-out clean coding prompts: the answer's code parses and defines and returns what was asked (static, nothing "
                "runs). Held-out loss: per clean task never seen in fine-tuning, the mean loss per answer token, "
                "then the mean over tasks [95% interval over tasks for the base, one model; over seeds for a fine-tuned arm].", "",
                "| Model | Capable [95% CI] | Parses [95% CI] | Held-out loss | HumanEval pass@1 [95% CI] |", "|---|---|---|---|---:|"]
        for label, c in cap.items():
            h = H.get(label)
            he_txt = f"{fmt_rate(h.completions)} ({h.problems} problems)" if h else "not run"
            out.append(f"| {label} | {fmt_rate(c.capable)} | {fmt_rate(c.parses)} | {_loss(c)} | {he_txt} |")
        tests = "; ".join(f"{name}: p = {fmt_p(p)}" for name, p in T.p_values(m))
        hd = T.heldout
        held = (f" Held-out loss caft vs {m}: {hd.mean:+.3f} [{hd.lo:+.3f}, {hd.hi:+.3f}] (paired t over {hd.n} seeds)."
                if hd else "")
        out += ["", f"Fisher's tests: {tests or 'none'}.{held} Paper: HumanEval pass@1 drops only modestly after CAFT (no number given)."
                + ("" if H else " HumanEval is opt-in (`interventions.humaneval.enabled=true`); its programs run only in a sandboxed subprocess."), ""]
    out += ["![Figure 5](figures/fig5_ablation.png)", ""]
    if M.seconds:
        out += ["Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in M.seconds.items()) + ".", ""]
    return "\n".join(out)
