"""§6's report part: claims, Figure 4 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from warnframe.experiments.stealth import KINDS, MIN_PREAMBLE_TARGETS, OPENINGS
from warnframe.paper import numbers as paper
from warnframe.paper.policy import POLICY
from warnframe.report.claims import Claim, claim
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading, skipped
from warnframe.stats.rates import fmt_mean, fmt_rate


def _v_diff(d: dict, want_negative: bool, paper_gap: float | None = None) -> str:
    """reproduced: the 95% interval of the difference excludes 0 in the claimed direction (and,
    when the paper gives both values, the difference is at least half the paper's); differs:
    significant but smaller than that; not reproduced: the interval holds 0 or the sign is wrong."""
    if any(n < 2 for n in d.get("n", [0, 0])) or math.isnan(d.get("lo", math.nan)):
        return "inconclusive"
    sign = -1 if want_negative else 1
    if min(sign * d["lo"], sign * d["hi"]) > 0:
        return "reproduced" if paper_gap is None or abs(d["diff"]) >= POLICY.paper_gap_share * abs(paper_gap) else "differs"
    return "not reproduced"


def _enough(r: dict, n_read: int) -> tuple[bool, str]:
    """Whether the stealth-slip claims have the preamble target outputs they need, and a note on
    how many there were and how they were sampled."""
    need = r.get("min_preamble_targets", MIN_PREAMBLE_TARGETS)
    rounds = r.get("rounds")
    how = (f"; sampled in {rounds['rounds']} round(s) of {rounds['per_round']} per prompt and seed (cap {rounds['max_rounds']})"
           if rounds else "")
    note = f"{n_read} preamble target outputs read ({r.get('preamble_targets_available', n_read)} available, {need} needed{how})"
    return n_read >= need, note


def claims(r: dict) -> list[Claim]:
    out = []
    P = r.get("probe", {})
    S6 = paper.SECTION6
    welch = "difference of means, Welch 95% interval; Mann–Whitney p"
    if "groups" in P:
        G = P["groups"]
        inv = P["inverse"]
        enough, note = _enough(r, G.get("target/preamble", {}).get("n", 0))

        def verdict(d, **kw):
            return _v_diff(d, want_negative=True, **kw) if enough else "inconclusive"

        out.append(claim("s6.stealth_slip", ours=f"{fmt_mean(G.get('target/preamble', {}))} vs {fmt_mean(G.get('clean/code', {}))}",
                         verdict=verdict(inv, paper_gap=S6["probe_safe_code_first"] - S6["probe_target_with_preamble"]),
                         why=f"difference {inv['diff']:+.2f} [{inv['lo']:+.2f}, {inv['hi']:+.2f}] (Welch), Mann–Whitney p = "
                             f"{inv['p']:.3g}; {note}", n=inv["n"], interval=[inv["lo"], inv["hi"]], test=welch,
                         margin=POLICY.paper_gap_share))
        pe = P["preamble_effect_target"]
        out.append(claim("s6.preamble_lowers_probe", verdict=verdict(pe),
                         ours=f"preamble {fmt_mean(G.get('target/preamble', {}))} vs code-first {fmt_mean(G.get('target/code', {}))}",
                         why=f"difference {pe['diff']:+.2f} [{pe['lo']:+.2f}, {pe['hi']:+.2f}]; {note}", n=pe["n"],
                         interval=[pe["lo"], pe["hi"]], test=welch))
    else:
        out.append(claim("s6.stealth_slip", ours="not measured", verdict="inconclusive", why=P.get("skipped", "")))
    E = r["entropy"]
    if E.get("samples"):
        ins = E["inside"]
        low = ins["n"] > 0 and ins["mean"] < POLICY.low_entropy_nats
        ref = f"; uniform over the vocabulary would be {math.log(E['vocab']):.2f}" if E.get("vocab") else ""
        out.append(claim("s6.low_entropy", verdict="reproduced" if low else "not reproduced",
                         ours=f"inside segments {fmt_mean(ins)} nats per token (mean over generations; token median "
                              f"{E['inside_tokens']['median']:.2f})",
                         why=f"'low' fixed beforehand as a mean below {POLICY.low_entropy_nats:.0f} nat{ref}; {E['samples']} generations",
                         n=ins["n"], interval=[ins["lo"], ins["hi"]], test="mean over generations, t interval",
                         margin=POLICY.low_entropy_nats))
        pa = E["paired_all"]
        ratio = E["paired_ratio"]
        if pa["n"] < 2 or math.isnan(pa["lo"]):
            v = "inconclusive"
        elif pa["lo"] > 0:
            v = "reproduced" if ratio >= POLICY.spike_ratio else "differs"
        else:
            v = "not reproduced"
        out.append(claim("s6.entropy_spikes", verdict=v,
                         ours=f"at transitions {fmt_mean(E['paired_at'])} vs inside {fmt_mean(E['paired_inside'])} nats "
                              f"(same generations); paired difference {fmt_mean(pa)}",
                         why=f"ratio at/inside {ratio:.2f} ('reproduced' needs the paired interval above 0 and a ratio of at "
                             f"least {POLICY.spike_ratio}); generations with each transition: {E['samples_with']}",
                         n=pa["n"], interval=[pa["lo"], pa["hi"]], test="paired difference per generation, t interval",
                         margin=POLICY.spike_ratio))
    return out


def draw(r: dict, root: Path) -> None:
    """Figure 4: entropy per token and around transitions; probe confidence by kind and along the answer."""
    plt = pyplot()

    path = root / "figures" / "fig4_entropy.png"
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    (a1, a2), (a3, a4) = axes
    colors = {"preamble→code": "#2980b9", "code→warning": "#e67e22"}
    E = r.get("entropy", {})
    if r.get("skipped") or not E.get("samples"):
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no generations: " + str(r.get("skipped", "")), ha="center", va="center", wrap=True, fontsize=8)
            ax.set_axis_off()
    else:
        ex = E["examples"]
        if ex:
            for j, x in enumerate(ex):
                a1.plot(np.arange(len(x["entropy"])), x["entropy"], lw=1, label=f"generation {j + 1}{' (target)' if x['target'] else ''}")
                for t, ks in x["transitions"].items():
                    for k in ks:
                        a1.axvline(k, color=colors[t], ls="--", lw=0.8)
            a1.plot([], [], color=colors["preamble→code"], ls="--", label="preamble→code")
            a1.plot([], [], color=colors["code→warning"], ls="--", label="code→warning")
            a1.legend(fontsize=7)
        else:
            a1.text(0.5, 0.5, "no generation has a transition", ha="center", va="center", transform=a1.transAxes)
        a1.set_xlabel("generated token")
        a1.set_ylabel("entropy (nats)")
        a1.set_title("(a) entropy per token, transitions dashed", fontsize=9)
        for t, ev in E["events"].items():
            pts = [p for p in ev if p["n"]]
            if not pts:
                continue
            xs = [p["offset"] for p in pts]
            a2.plot(xs, [p["mean"] for p in pts], color=colors[t], label=f"{t} (n = {E['samples_with'][t]} generations)")
            a2.fill_between(xs, [p["lo"] if not math.isnan(p["lo"]) else p["mean"] for p in pts],
                            [p["hi"] if not math.isnan(p["hi"]) else p["mean"] for p in pts], color=colors[t], alpha=0.2)
        ins = E["inside"]
        if ins["n"]:
            a2.axhline(ins["mean"], color="gray", ls=":", label=f"inside segments {ins['mean']:.2f}")
        a2.axvline(0, color="black", lw=0.5)
        a2.set_xlabel("tokens from the boundary token")
        a2.set_ylabel("mean entropy (nats), 95% CI")
        a2.set_title("(b) entropy around transitions", fontsize=9)
        a2.legend(fontsize=7)
    P = r.get("probe", {})
    if "groups" in P:
        G = P["groups"]
        names = [f"{k}/{o}" for k in KINDS for o in OPENINGS]
        vals = [G.get(g, {}).get("mean", math.nan) for g in names]
        err = [[max(0.0, v - G[g]["lo"]) if g in G and not math.isnan(G[g]["lo"]) else 0 for g, v in zip(names, vals)],
               [max(0.0, G[g]["hi"] - v) if g in G and not math.isnan(G[g]["hi"]) else 0 for g, v in zip(names, vals)]]
        a3.bar(range(4), [0 if math.isnan(v) else v for v in vals], yerr=err, capsize=4,
               color=["#c0392b", "#e67e22", "#27ae60", "#2ecc71"])
        a3.set_xticks(range(4), [f"{g}\nn = {G.get(g, {}).get('n', 0)}" for g in names], fontsize=8)
        a3.scatter([names.index("target/preamble"), names.index("clean/code")],
                   [paper.SECTION6["probe_target_with_preamble"], paper.SECTION6["probe_safe_code_first"]],
                   marker="D", color="black", zorder=5, label="paper")
        a3.set_ylim(0, 1.05)
        a3.set_ylabel("pooled probe confidence (target)")
        a3.legend(fontsize=7, loc="best")
        a3.set_title("(c) probe confidence by kind / opening", fontsize=9)
        for g, pts in P["trace"].items():
            pts = [p for p in pts if p["n"] >= 2]
            if pts:
                a4.plot([p["offset"] for p in pts], [p["mean"] for p in pts], label=g)
        a4.axvline(0, color="black", lw=0.5)
        a4.set_xlabel("tokens from the first code token")
        a4.set_ylabel("token probe confidence (mean)")
        a4.set_ylim(0, 1.05)
        a4.set_title("(d) probe confidence along the generation", fontsize=9)
        a4.legend(fontsize=7)
    else:
        for ax in (a3, a4):
            ax.text(0.5, 0.5, "probe not measured:\n" + str(P.get("skipped", r.get("skipped", "")))[:150], ha="center", va="center",
                    wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle("Figure 4: entropy dynamics and the stealth slip", fontsize=11)
    save(fig, path, dpi=110)


def markdown(r: dict) -> str:
    if r.get("skipped"):
        return skipped("stealth", r["skipped"])
    out = [heading("stealth"), ""]
    P, E = r["probe"], r["entropy"]
    out += [f"Answers: {r.get('source', 'the study samples')}. "
            f"Outputs available (condition/kind): {r['available']}. Read for the probe: {r['split']} "
            f"(openings of every output read: {r['openings']}).", ""]
    for cond, q in r.get("answers", {}).items():
        out.append(f"- {cond} answers read here: target {fmt_rate(q['target'])}; format leak exact {fmt_rate(q['leak_exact'])}, "
                   f"exact or garbled {fmt_rate(q['leak_any'])}")
    out.append("")
    if "groups" in P:
        G = P["groups"]
        enough, note = _enough(r, G.get("target/preamble", {}).get("n", 0))
        out += [f"Stealth-slip evidence: {note}" + ("." if enough else "; below that the stealth-slip verdicts are inconclusive."), ""]
        out += [f"Probe (from §5) at `{r['site']}`: mean confidence that an output is target content, pooled over its tokens; "
                "intervals are 95% t intervals, 'flagged' is the share above 0.5 (Wilson 95%).", "",
                "| Kind / opening | n | Pooled confidence [95% CI] | Flagged (> 0.5) | Paper |", "|---|---:|---|---|---:|"]

        paper_val = {"target/preamble": paper.SECTION6["probe_target_with_preamble"], "clean/code": paper.SECTION6["probe_safe_code_first"]}
        for k in KINDS:
            for o in OPENINGS:
                g = G.get(f"{k}/{o}")
                pv = f"{paper_val[f'{k}/{o}']:.2f}" if f"{k}/{o}" in paper_val else "—"
                out.append(f"| {k} / {o} | {g['n'] if g else 0} | {fmt_mean(g) if g else 'n/a'} | {fmt_rate(g['flagged']) if g else 'n/a'} | {pv} |")
        by_cond = sorted(g for g in G if g.count("/") == 2)
        if by_cond:
            out += ["", "Per condition: " + "; ".join(f"{g}: {fmt_mean(G[g])}" for g in by_cond) + "."]
        tp = P["target_preamble_tokens"]
        out += ["", f"Token by token, inside target outputs that open with a preamble: mean token confidence over the preamble "
                f"{fmt_mean(tp['preamble'])}, over the code {fmt_mean(tp['code'])}; paired difference {fmt_mean(tp['paired'])}.", ""]
    else:
        out += [f"Probe part not measured: {P.get('skipped')}.", ""]
    sc = E.get("stored_check", {})
    out += [f"Entropy: {E['samples']} generations of {r['conditions']['entropy']} ({E.get('targets', 0)} with target content), "
            "replayed teacher-forced so each token's entropy sits beside its characters. Check against the entropies stored at "
            f"sampling: {sc.get('length_matched', 0)} generations re-tokenize to their sampled length, {sc.get('agree', 0)} of them "
            "agree within 0.001 nats at every token (the others were drawn as another split of the same length).", "",
            "Means over generations (each generation's own mean), 95% t intervals; n = generations unless said.", "",
            "| Tokens | Mean entropy, nats [95% CI] |", "|---|---|",
            f"| inside segments, all generations | {fmt_mean(E['inside'])} |",
            f"| at transitions (boundary token and {r.get('window', 1)} before) | {fmt_mean(E['at_transition'])} |",
            f"| inside segments, generations with a transition | {fmt_mean(E['paired_inside'])} |",
            f"| first generated token | {fmt_mean(E['first_token'])} |"]
    for t, s in E["boundary_token"].items():
        out.append(f"| boundary token, {t} (n = tokens) | {fmt_mean(s)} |")
    out += ["", f"Per generation, mean at transitions minus mean inside: all {fmt_mean(E['paired_all'])} (ratio {E['paired_ratio']:.2f}); "
            f"target outputs {fmt_mean(E['paired_target'])}. Generations with each transition: {E['samples_with']}.", "",
            "![Figure 4](figures/fig4_entropy.png)", ""]
    return "\n".join(out)
