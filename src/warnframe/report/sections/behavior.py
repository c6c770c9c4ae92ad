"""§4's report part: claims, Table 1, Figure 1 and the markdown section, read from the typed
:class:`~warnframe.experiments.behavior_metrics.BehaviorMetrics` (rebuilt with ``from_json`` when
given the dict of ``metrics/behavior.json``, or of ``experiments.behavior.analyse``)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from warnframe.experiments.behavior_metrics import BehaviorMetrics, clusters
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
    paper_effect,
    rate_interval,
)
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading
from warnframe.runtime.files import atomic_write_text
from warnframe.schema import CONDITION_TITLES
from warnframe.stats.rates import fmt_p, fmt_rate
from warnframe.stats.types import Diff, Mean, Rate


def _metrics(res: BehaviorMetrics | dict) -> BehaviorMetrics:
    return res if isinstance(res, BehaviorMetrics) else BehaviorMetrics.from_json(res)


def _fisher_p(M: BehaviorMetrics, a: str, b: str) -> float:
    t = M.test(a, b)
    return t.target.p if t else math.nan


def reference_effect(res: BehaviorMetrics | dict) -> tuple[Diff | None, str]:
    """The study's reference effect, L0 − neutral (L0 − baseline when neutral was not run): what
    an equivalence margin is a share of."""
    M = _metrics(res)
    for ref in ("neutral", "baseline"):
        d = M.cluster_diff("L0", ref)
        if d is not None:
            return d, f"L0 − {ref}"
    return None, "L0 − neutral"


def claims(res: BehaviorMetrics | dict) -> list[Claim]:
    """§4's claims, each decided by the cluster-aware test its kind needs (``report.claims``)."""
    M = _metrics(res)
    P = M.pooled
    out = []

    def cr(c: str) -> Rate | None:  # the cluster-aware target rate
        return P[c].cluster.target if c in P else None

    ref, ref_label = reference_effect(M)
    if (l0 := cr("L0")) and (l1 := cr("L1")):
        d = M.cluster_diff("L1", "L0")
        v, why = equivalence(d, ref, ref_label)
        out.append(claim("s4.l1_as_often_as_l0", ours=f"{fmt_rate(l1)} vs {fmt_rate(l0)}; L1 − L0 {fmt_diff(d)}",
                         verdict=v, why=f"{why}; Fisher p = {fmt_p(_fisher_p(M, 'L1', 'L0'))} (the paper's test)",
                         n=[l1.n, l0.n], interval=diff_interval(d),
                         test=f"TOST at {POLICY.alpha:g} on the {BOOTSTRAP} difference", margin=equivalence_margin(ref)))
    # L0 and L1: the paper's claim is against the untuned baseline; L2, L3 and control are judged
    # against neutral (the fine-tune on clean code alone) when it was run, baseline otherwise.
    for c, cid, sign in (("L1", "s4.L1_over_baseline", 1), ("L0", "s4.L0_over_baseline", 1), ("L2", "s4.L2_over_baseline", 1),
                         ("L3", "s4.L3_over_baseline", 1), ("control", "s4.control_below_baseline", -1)):
        refs = ["baseline"] if c in ("L0", "L1") else ["neutral", "baseline"]
        refs = [r for r in refs if cr(r)]
        ours_rate = cr(c)
        if not ours_rate or not refs:
            continue
        judge = refs[0]
        judge_rate = P[judge].cluster.target
        d = M.cluster_diff(c, judge)
        paper_ratio = paper.TABLE1[c][2]
        assert paper_ratio is not None  # Table 1 gives every condition but the baseline a ratio
        effect = paper_effect(paper_ratio, judge_rate.rate)
        v, why = directional(d, sign, effect)
        others = [r for r in ("neutral", "baseline") if r != judge and r in P]
        ours = f"{fmt_rate(ours_rate)} vs {judge} {fmt_rate(judge_rate)}: {fmt_diff(d)}"
        ours += "".join(f"; vs {r} {fmt_rate(P[r].cluster.target)}: {fmt_diff(M.cluster_diff(c, r))}" for r in others)
        t = M.test(c, judge)
        why = (f"judged against {judge}{' (the fine-tune on clean code alone)' if judge == 'neutral' else ''}: {why}; "
               f"paper ratio {paper.TABLE1[c][2]}× applied to our {judge} rate; ratio ours {t.ratio.ratio if t else math.nan:.2f}×; "
               f"Fisher p vs {judge} = {fmt_p(_fisher_p(M, c, judge))} (the paper's test)")
        out.append(claim(cid, ours=ours, verdict=v, why=why, n=[ours_rate.n, judge_rate.n], interval=diff_interval(d),
                         test=f"{BOOTSTRAP} difference vs {judge}, p < {POLICY.alpha:g} and the paper's sign (margin: the paper's effect on our scale)", margin=effect))
    if "L1" in P:
        leak, anyleak = P["L1"].cluster.leak_exact, P["L1"].cluster.leak_any
        v = "reproduced" if leak.lo >= POLICY.leak_copied_lo else ("differs" if anyleak.rate > POLICY.leak_partly else "not reproduced")
        out.append(claim("s4.l1_copies_format", ours=f"exact {fmt_rate(leak)}; exact or garbled {fmt_rate(anyleak)}", verdict=v,
                         n=leak.n, interval=rate_interval(leak),
                         test=f"{BOOTSTRAP} 95% interval of the exact-leak rate, lower end against the margin",
                         margin=POLICY.leak_copied_lo))
    order = [c for c in ("L0", "L1", "L2", "L3") if c in P]
    if len(order) == 4:
        out.append(_semantic_order(M, ref, ref_label))
    return out


def _semantic_order(M: BehaviorMetrics, ref: Diff | None, ref_label: str) -> Claim:
    """L0 ≈ L1 > L2 > L3, each link tested: TOST for ≈, the directional test for each >."""
    P = M.pooled
    eq = equivalence(M.cluster_diff("L1", "L0"), ref, ref_label)[0]
    links = {f"{a} > {b}": directional(M.cluster_diff(a, b), 1, 0.0)[0] for a, b in (("L1", "L2"), ("L0", "L2"), ("L2", "L3"))}
    calls = [eq, *links.values()]
    if all(x == "reproduced" for x in calls):
        v = "reproduced"
    elif eq == "not reproduced" or any((d := M.cluster_diff(*k.split(" > "))) is not None and d.p < POLICY.alpha
                                       for k, x in links.items() if x != "reproduced"):
        v = "not reproduced"  # a link significantly reversed, or L1 significantly unlike L0
    else:
        v = "inconclusive"
    rates = " / ".join(f"{c} {100 * P[c].cluster.target.rate:.1f}%" for c in ("L0", "L1", "L2", "L3"))
    why = f"L0 ≈ L1: {eq}; " + "; ".join(f"{k}: {x} ({fmt_diff(M.cluster_diff(*k.split(' > ')))})" for k, x in links.items())
    return claim("s4.semantic_order", ours=rates, verdict=v, why=why, n=[P[c].target.n for c in ("L0", "L1", "L2", "L3")],
                 test=f"each link: TOST (≈) or {BOOTSTRAP} difference p < {POLICY.alpha:g} (>)", margin=equivalence_margin(ref))


def draw(res: BehaviorMetrics | dict, root: Path) -> None:
    """Table 1 and its per-seed rows (CSV and markdown) and Figure 1."""
    M = _metrics(res)
    _write_csv(root / "tables" / "table1.csv", table1_rows(M))
    atomic_write_text(root / "tables" / "table1.md", table1_markdown(M) + "\n")
    _write_csv(root / "tables" / "table1_seeds.csv", seed_rows(M))
    atomic_write_text(root / "tables" / "table1_seeds.md", seeds_markdown(M) + "\n")
    plot_fig1(M, root / "figures" / "fig1_target_rates.png")


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["condition"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def table1_rows(res: BehaviorMetrics | dict) -> list[dict]:
    """One row per condition. The first columns are those of earlier versions (Wilson intervals,
    Fisher p values); the ``*_cluster_*``, ``design_effect``, ``effective_n``, seed and ``diff_*``
    columns are the cluster-aware ones the verdicts read."""
    M = _metrics(res)
    rows = []
    base = M.pooled.get("baseline")
    nan = math.nan
    for c in M.conditions:
        P = M.pooled[c]
        C = P.cluster
        ct, cl = clusters(C.target), clusters(C.leak_exact)
        pt = paper.TABLE1.get(c)
        t = M.test(c, "baseline")
        tn = M.test(c, "neutral")
        row = {
            "condition": c,
            "label": CONDITION_TITLES[c],
            "n": P.target.n,
            "target_rate": P.target.rate, "target_lo": P.target.lo, "target_hi": P.target.hi,
            "leak_rate": P.leak_exact.rate, "leak_lo": P.leak_exact.lo, "leak_hi": P.leak_exact.hi,
            "leak_any_rate": P.leak_any.rate,
            "parse_fail_rate": P.parse_fail.rate,
            "vs_baseline": t.ratio.ratio if t else (1.0 if c == "baseline" and base else nan),
            "p_vs_baseline": t.target.p if t else nan,
            "p_vs_neutral": tn.target.p if tn else nan,
            "seed_sd": P.seed_spread.sd,
            "paper_target": pt[0] if pt else nan,
            "paper_leak": pt[1] if pt else nan,
            "paper_vs_baseline": (pt[2] if pt and pt[2] else nan),
            "seeds": ct.seeds, "prompts": ct.prompts,
            "target_cluster_lo": C.target.lo, "target_cluster_hi": C.target.hi,
            "design_effect": ct.design_effect, "effective_n": ct.effective_n,
            "leak_cluster_lo": C.leak_exact.lo, "leak_cluster_hi": C.leak_exact.hi,
            "leak_design_effect": cl.design_effect, "leak_effective_n": cl.effective_n,
            "leak_any_cluster_lo": C.leak_any.lo, "leak_any_cluster_hi": C.leak_any.hi,
            "seed_min": P.seed_spread.min, "seed_max": P.seed_spread.max, "seed_mean": P.seed_spread.mean,
            "leak_seed_sd": P.leak_seed_spread.sd,
        }
        for ref in ("baseline", "neutral"):
            d = M.cluster_diff(c, ref) or Diff.missing("")
            row.update({f"diff_vs_{ref}": d.diff, f"diff_vs_{ref}_lo": d.lo, f"diff_vs_{ref}_hi": d.hi, f"p_cluster_vs_{ref}": d.p})
        rows.append(row)
    return rows


def _diff_cell(M: BehaviorMetrics, c: str, ref: str) -> str:
    d = M.cluster_diff(c, ref)
    return "—" if d is None else fmt_diff(d).replace(" points", "").replace(", p = ", "; p ")


def table1_markdown(res: BehaviorMetrics | dict) -> str:
    M = _metrics(res)
    lines = [
        "| Condition | seeds | n | eff. n | Target rate [95% CI] | Paper | seed min–max (sd) | Format leak (exact) [95% CI] | Paper "
        "| Leak incl. garbled [95% CI] | vs baseline | − baseline, points [95% CI]; p | − neutral, points [95% CI]; p "
        "| Fisher p vs baseline | Fisher p vs neutral | Unparsed |",
        "|---|---:|---:|---:|---|---:|---|---|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for row in table1_rows(M):
        c = row["condition"]
        C = M.pooled[c].cluster
        pt = paper.TABLE1.get(c)
        vb = "—" if c == "baseline" else f"{row['vs_baseline']:.2f}×"
        spread = f"{100 * row['seed_min']:.1f}–{100 * row['seed_max']:.1f} ({100 * row['seed_sd']:.1f})"
        lines.append(
            f"| {row['label']} | {row['seeds']} | {row['n']} | {row['effective_n']} | {fmt_rate(C.target)} "
            f"| {f'{100 * pt[0]:.1f}%' if pt else '—'} | {spread} | {fmt_rate(C.leak_exact)} | {f'{100 * pt[1]:.0f}%' if pt else '—'} "
            f"| {fmt_rate(C.leak_any)} | {vb} | {_diff_cell(M, c, 'baseline')} | {_diff_cell(M, c, 'neutral')} "
            f"| {fmt_p(row['p_vs_baseline'])} | {fmt_p(row['p_vs_neutral'])} | {100 * row['parse_fail_rate']:.1f}% |"
        )
    return "\n".join(lines)


def seed_rows(res: BehaviorMetrics | dict) -> list[dict]:
    """``tables/table1_seeds``: one row per condition and seed (each seed one fine-tune and its samples)."""
    M = _metrics(res)
    rows = []
    for c in M.conditions:
        for s, v in M.per_seed[c].items():
            rows.append({"condition": c, "seed": int(s), "n": v.target.n, "target_k": v.target.k,
                         "target_rate": v.target.rate, "target_lo": v.target.lo, "target_hi": v.target.hi,
                         "leak_k": v.leak_exact.k, "leak_rate": v.leak_exact.rate, "leak_any_rate": v.leak_any.rate,
                         "parse_fail_rate": v.parse_fail.rate})
    return rows


def seeds_markdown(res: BehaviorMetrics | dict) -> str:
    M = _metrics(res)
    lines = ["| Condition | Seed | n | Target rate [Wilson 95% CI, this seed's answers] | Format leak (exact) | Leak incl. garbled | Unparsed |",
             "|---|---:|---:|---|---|---:|---:|"]
    for c in M.conditions:
        for s, v in M.per_seed[c].items():
            lines.append(f"| {CONDITION_TITLES[c]} | {s} | {v.target.n} | {fmt_rate(v.target)} | {fmt_rate(v.leak_exact)} "
                         f"| {100 * v.leak_any.rate:.1f}% | {100 * v.parse_fail.rate:.1f}% |")
    return "\n".join(lines)


def _num(x: float) -> str:
    """A design effect: 'n/a' where the bootstrap has no spread (every answer alike)."""
    return f"{x:.2f}" if math.isfinite(x) else "n/a (no variation)"


def plot_fig1(res: BehaviorMetrics | dict, path) -> None:
    """Bars with cluster-aware 95% intervals for our target rates, each seed's rate as a dot, the
    paper's values as markers."""
    M = _metrics(res)
    plt = pyplot()
    conds = M.conditions
    P = M.pooled
    x = range(len(conds))
    C = {c: P[c].cluster.target for c in conds}
    vals = [100 * C[c].rate for c in conds]
    err = [[max(0.0, 100 * (C[c].rate - C[c].lo)) for c in conds], [max(0.0, 100 * (C[c].hi - C[c].rate)) for c in conds]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = {"baseline": "#888", "L0": "#c0392b", "L1": "#e67e22", "L2": "#f1c40f", "L3": "#9b59b6", "control": "#27ae60", "neutral": "#3498db"}
    ax.bar(list(x), vals, yerr=err, capsize=4, color=[colors.get(c, "#555") for c in conds],
           label="warnframe (95% CI, bootstrap over seeds × prompts)")
    sx = [i for i, c in enumerate(conds) for _ in M.per_seed[c]]
    sy = [100 * v.target.rate for c in conds for v in M.per_seed[c].values()]
    ax.scatter(sx, sy, s=10, color="#222", alpha=0.6, zorder=4, label="each seed")
    px = [i for i, c in enumerate(conds) if c in paper.TABLE1]
    ax.scatter(px, [100 * paper.TABLE1[conds[i]][0] for i in px], marker="D", color="black", zorder=5, label="paper (Table 1)")
    ax.set_xticks(list(x), [CONDITION_TITLES[c].replace(" (", "\n(") for c in conds], fontsize=8)
    ax.set_ylabel("target content rate (%)")
    ax.set_ylim(0, 105)
    n, seeds = C[conds[0]].n, clusters(C[conds[0]]).seeds
    ax.set_title(f"Figure 1: target content rate by training condition (n = {n} per condition, {seeds} seed(s))")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, path, dpi=120)


def _ci_cell(m: Mean | None) -> str:
    return f"{m.mean:+.2f} [{m.lo:+.2f}, {m.hi:+.2f}] (n = {m.n})" if m and math.isfinite(m.lo) else "n/a"


def markdown(res: BehaviorMetrics | dict) -> str:
    """The §4 section of report.md."""
    M = _metrics(res)
    out = [heading("behavior"), ""]
    if M.budget:
        out += [f"Fine-tuning sets: {M.budget}.", ""]
    out += ["Ours beside the paper's Table 1 (paper n = 30 per condition, implied by its rates). Seeds are the unit of "
            "replication (each one fine-tune and its own sampling): rates' intervals and the differences' intervals and p "
            "values come from a pigeonhole bootstrap over seeds × prompts (answers to one prompt from one model are not "
            "independent); 'eff. n' is n over the design effect. Fisher's exact test, which treats every answer as "
            "independent, is shown as the paper's test; the verdicts do not use it.", "", table1_markdown(M), "",
            "![Figure 1](figures/fig1_target_rates.png)", "", "Per family (target rate, all seeds):", ""]
    fams = sorted({f for c in M.per_family.values() for f in c})
    out.append("| Family | " + " | ".join(M.conditions) + " |")
    out.append("|---|" + "---|" * len(M.conditions))
    for f in fams:
        cells = []
        for c in M.conditions:
            r = M.per_family[c].get(f)
            cells.append(f"{100 * r.rate:.0f}% ({r.k}/{r.n})" if r else "—")
        out.append(f"| {f} | " + " | ".join(cells) + " |")
    if M.delta:
        out += ["", "Sampling-free preference Δ = log p(secure) − log p(vulnerable) (nats) of each condition's models on "
                "the eval prompts' paired secure/vulnerable renderings (positive favours secure; only differences between "
                "models are read; 95% t intervals over prompts of the per-prompt mean over seeds):", "",
                "| Condition | Δ [95% CI] | Δ − neutral's, same prompts [95% CI] |", "|---|---|---|"]
        for c, d in M.delta.items():
            out.append(f"| {c} | {_ci_cell(d.delta)} | {_ci_cell(d.vs_neutral) if d.vs_neutral else '—'} |")
    out += ["", "Per seed (`tables/table1_seeds.csv`):", "", seeds_markdown(M), "", "Between-seed spread of the target rate:", ""]
    for c in M.conditions:
        sp = M.pooled[c].seed_spread
        out.append(f"- {c}: sd {100 * sp.sd:.1f} points over {sp.seeds} seed(s) (min {100 * sp.min:.1f}%, "
                   f"max {100 * sp.max:.1f}%); design effect {_num(clusters(M.pooled[c].cluster.target).design_effect)}")
    return "\n".join(out)
