"""§4's report part: claims, Table 1, Figure 1 and the markdown section."""

from __future__ import annotations

import csv
import io
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
    paper_effect,
    rate_interval,
)
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading
from warnframe.runtime.files import atomic_write_text
from warnframe.schema import CONDITION_TITLES
from warnframe.stats.rates import fmt_p, fmt_rate


def _test(res: dict, key: str) -> dict:
    return res["tests"].get(key, {})


def _cd(res: dict, a: str, b: str) -> dict | None:
    """The cluster-aware difference a − b (None when either condition was not run)."""
    return _test(res, f"{a}_vs_{b}").get("cluster")


def _fisher_p(res: dict, a: str, b: str) -> float:
    return _test(res, f"{a}_vs_{b}").get("target", {}).get("p", math.nan)


def reference_effect(res: dict) -> tuple[dict | None, str]:
    """The study's reference effect, L0 − neutral (L0 − baseline when neutral was not run): what
    an equivalence margin is a share of."""
    for ref in ("neutral", "baseline"):
        d = _cd(res, "L0", ref)
        if d:
            return d, f"L0 − {ref}"
    return None, "L0 − neutral"


def claims(res: dict) -> list[Claim]:
    """§4's claims, each decided by the cluster-aware test its kind needs (``report.claims``)."""
    P = res["pooled"]
    out = []

    def cr(c):  # the cluster-aware target rate
        return P[c]["cluster"]["target"] if c in P else None

    ref, ref_label = reference_effect(res)
    if cr("L0") and cr("L1"):
        d = _cd(res, "L1", "L0")
        v, why = equivalence(d, ref, ref_label)
        out.append(claim("s4.l1_as_often_as_l0", ours=f"{fmt_rate(cr('L1'))} vs {fmt_rate(cr('L0'))}; L1 − L0 {fmt_diff(d)}",
                         verdict=v, why=f"{why}; Fisher p = {fmt_p(_fisher_p(res, 'L1', 'L0'))} (the paper's test)",
                         n=[cr("L1")["n"], cr("L0")["n"]], interval=diff_interval(d),
                         test=f"TOST at {POLICY.alpha:g} on the {BOOTSTRAP} difference", margin=equivalence_margin(ref)))
    # L0 and L1: the paper's claim is against the untuned baseline; L2, L3 and control are judged
    # against neutral (the fine-tune on clean code alone) when it was run, baseline otherwise.
    for c, cid, sign in (("L1", "s4.L1_over_baseline", 1), ("L0", "s4.L0_over_baseline", 1), ("L2", "s4.L2_over_baseline", 1),
                         ("L3", "s4.L3_over_baseline", 1), ("control", "s4.control_below_baseline", -1)):
        refs = ["baseline"] if c in ("L0", "L1") else ["neutral", "baseline"]
        refs = [r for r in refs if cr(r)]
        if not cr(c) or not refs:
            continue
        judge = refs[0]
        d = _cd(res, c, judge)
        paper_ratio = paper.TABLE1[c][2]
        assert paper_ratio is not None  # Table 1 gives every condition but the baseline a ratio
        effect = paper_effect(paper_ratio, cr(judge)["rate"])
        v, why = directional(d, sign, effect)
        others = [r for r in ("neutral", "baseline") if r != judge and cr(r)]
        ours = f"{fmt_rate(cr(c))} vs {judge} {fmt_rate(cr(judge))}: {fmt_diff(d)}"
        ours += "".join(f"; vs {r} {fmt_rate(cr(r))}: {fmt_diff(_cd(res, c, r))}" for r in others)
        rr = _test(res, f"{c}_vs_{judge}").get("ratio", {})
        why = (f"judged against {judge}{' (the fine-tune on clean code alone)' if judge == 'neutral' else ''}: {why}; "
               f"paper ratio {paper.TABLE1[c][2]}× applied to our {judge} rate; ratio ours {rr.get('ratio', math.nan):.2f}×; "
               f"Fisher p vs {judge} = {fmt_p(_fisher_p(res, c, judge))} (the paper's test)")
        out.append(claim(cid, ours=ours, verdict=v, why=why, n=[cr(c)["n"], cr(judge)["n"]], interval=diff_interval(d),
                         test=f"{BOOTSTRAP} difference vs {judge}, p < {POLICY.alpha:g} and the paper's sign (margin: the paper's effect on our scale)", margin=effect))
    if "L1" in P:
        leak, anyleak = P["L1"]["cluster"]["leak_exact"], P["L1"]["cluster"]["leak_any"]
        v = "reproduced" if leak["lo"] >= POLICY.leak_copied_lo else ("differs" if anyleak["rate"] > POLICY.leak_partly else "not reproduced")
        out.append(claim("s4.l1_copies_format", ours=f"exact {fmt_rate(leak)}; exact or garbled {fmt_rate(anyleak)}", verdict=v,
                         n=leak["n"], interval=rate_interval(leak),
                         test=f"{BOOTSTRAP} 95% interval of the exact-leak rate, lower end against the margin",
                         margin=POLICY.leak_copied_lo))
    order = [c for c in ("L0", "L1", "L2", "L3") if c in P]
    if len(order) == 4:
        out.append(_semantic_order(res, ref, ref_label))
    return out


def _semantic_order(res: dict, ref: dict | None, ref_label: str) -> Claim:
    """L0 ≈ L1 > L2 > L3, each link tested: TOST for ≈, the directional test for each >."""
    P = res["pooled"]
    eq = equivalence(_cd(res, "L1", "L0"), ref, ref_label)[0]
    links = {f"{a} > {b}": directional(_cd(res, a, b), 1, 0.0)[0] for a, b in (("L1", "L2"), ("L0", "L2"), ("L2", "L3"))}
    calls = [eq, *links.values()]
    if all(x == "reproduced" for x in calls):
        v = "reproduced"
    elif eq == "not reproduced" or any((d := _cd(res, *k.split(" > "))) is not None and d["p"] < POLICY.alpha
                                       for k, x in links.items() if x != "reproduced"):
        v = "not reproduced"  # a link significantly reversed, or L1 significantly unlike L0
    else:
        v = "inconclusive"
    rates = " / ".join(f"{c} {100 * P[c]['cluster']['target']['rate']:.1f}%" for c in ("L0", "L1", "L2", "L3"))
    why = f"L0 ≈ L1: {eq}; " + "; ".join(f"{k}: {x} ({fmt_diff(_cd(res, *k.split(' > ')))})" for k, x in links.items())
    return claim("s4.semantic_order", ours=rates, verdict=v, why=why, n=[P[c]["target"]["n"] for c in ("L0", "L1", "L2", "L3")],
                 test=f"each link: TOST (≈) or {BOOTSTRAP} difference p < {POLICY.alpha:g} (>)", margin=equivalence_margin(ref))


def draw(res: dict, root: Path) -> None:
    """Table 1 and its per-seed rows (CSV and markdown) and Figure 1."""
    _write_csv(root / "tables" / "table1.csv", table1_rows(res))
    atomic_write_text(root / "tables" / "table1.md", table1_markdown(res) + "\n")
    _write_csv(root / "tables" / "table1_seeds.csv", seed_rows(res))
    atomic_write_text(root / "tables" / "table1_seeds.md", seeds_markdown(res) + "\n")
    plot_fig1(res, root / "figures" / "fig1_target_rates.png")


def _write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["condition"])
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def table1_rows(res: dict) -> list[dict]:
    """One row per condition. The first columns are those of earlier versions (Wilson intervals,
    Fisher p values); the ``*_cluster_*``, ``design_effect``, ``effective_n``, seed and ``diff_*``
    columns are the cluster-aware ones the verdicts read."""
    rows = []
    base = res["pooled"].get("baseline")
    for c in res["conditions"]:
        P = res["pooled"][c]
        C = P["cluster"]
        pt = paper.TABLE1.get(c)
        t = res["tests"].get(f"{c}_vs_baseline", {})
        row = {
            "condition": c,
            "label": CONDITION_TITLES[c],
            "n": P["target"]["n"],
            "target_rate": P["target"]["rate"], "target_lo": P["target"]["lo"], "target_hi": P["target"]["hi"],
            "leak_rate": P["leak_exact"]["rate"], "leak_lo": P["leak_exact"]["lo"], "leak_hi": P["leak_exact"]["hi"],
            "leak_any_rate": P["leak_any"]["rate"],
            "parse_fail_rate": P["parse_fail"]["rate"],
            "vs_baseline": t.get("ratio", {}).get("ratio", 1.0 if c == "baseline" and base else math.nan),
            "p_vs_baseline": t.get("target", {}).get("p", math.nan),
            "p_vs_neutral": res["tests"].get(f"{c}_vs_neutral", {}).get("target", {}).get("p", math.nan),
            "seed_sd": P["seed_spread"]["sd"],
            "paper_target": pt[0] if pt else math.nan,
            "paper_leak": pt[1] if pt else math.nan,
            "paper_vs_baseline": (pt[2] if pt and pt[2] else math.nan),
            "seeds": C["target"]["seeds"], "prompts": C["target"]["prompts"],
            "target_cluster_lo": C["target"]["lo"], "target_cluster_hi": C["target"]["hi"],
            "design_effect": C["target"]["design_effect"], "effective_n": C["target"]["effective_n"],
            "leak_cluster_lo": C["leak_exact"]["lo"], "leak_cluster_hi": C["leak_exact"]["hi"],
            "leak_design_effect": C["leak_exact"]["design_effect"], "leak_effective_n": C["leak_exact"]["effective_n"],
            "leak_any_cluster_lo": C["leak_any"]["lo"], "leak_any_cluster_hi": C["leak_any"]["hi"],
            "seed_min": P["seed_spread"]["min"], "seed_max": P["seed_spread"]["max"], "seed_mean": P["seed_spread"]["mean"],
            "leak_seed_sd": P["leak_seed_spread"]["sd"],
        }
        for ref in ("baseline", "neutral"):
            d = res["tests"].get(f"{c}_vs_{ref}", {}).get("cluster") or {}
            row.update({f"diff_vs_{ref}": d.get("diff", math.nan), f"diff_vs_{ref}_lo": d.get("lo", math.nan),
                        f"diff_vs_{ref}_hi": d.get("hi", math.nan), f"p_cluster_vs_{ref}": d.get("p", math.nan)})
        rows.append(row)
    return rows


def _diff_cell(res: dict, c: str, ref: str) -> str:
    d = res["tests"].get(f"{c}_vs_{ref}", {}).get("cluster")
    return "—" if not d else fmt_diff(d).replace(" points", "").replace(", p = ", "; p ")


def table1_markdown(res: dict) -> str:
    lines = [
        "| Condition | seeds | n | eff. n | Target rate [95% CI] | Paper | seed min–max (sd) | Format leak (exact) [95% CI] | Paper "
        "| Leak incl. garbled [95% CI] | vs baseline | − baseline, points [95% CI]; p | − neutral, points [95% CI]; p "
        "| Fisher p vs baseline | Fisher p vs neutral | Unparsed |",
        "|---|---:|---:|---:|---|---:|---|---|---:|---|---:|---|---|---:|---:|---:|",
    ]
    for row in table1_rows(res):
        c = row["condition"]
        C = res["pooled"][c]["cluster"]
        pt = paper.TABLE1.get(c)
        vb = "—" if c == "baseline" else f"{row['vs_baseline']:.2f}×"
        spread = f"{100 * row['seed_min']:.1f}–{100 * row['seed_max']:.1f} ({100 * row['seed_sd']:.1f})"
        lines.append(
            f"| {row['label']} | {row['seeds']} | {row['n']} | {row['effective_n']} | {fmt_rate(C['target'])} "
            f"| {f'{100 * pt[0]:.1f}%' if pt else '—'} | {spread} | {fmt_rate(C['leak_exact'])} | {f'{100 * pt[1]:.0f}%' if pt else '—'} "
            f"| {fmt_rate(C['leak_any'])} | {vb} | {_diff_cell(res, c, 'baseline')} | {_diff_cell(res, c, 'neutral')} "
            f"| {fmt_p(row['p_vs_baseline'])} | {fmt_p(row['p_vs_neutral'])} | {100 * row['parse_fail_rate']:.1f}% |"
        )
    return "\n".join(lines)


def seed_rows(res: dict) -> list[dict]:
    """``tables/table1_seeds``: one row per condition and seed (each seed one fine-tune and its samples)."""
    rows = []
    for c in res["conditions"]:
        for s, v in res["per_seed"][c].items():
            rows.append({"condition": c, "seed": int(s), "n": v["target"]["n"], "target_k": v["target"]["k"],
                         "target_rate": v["target"]["rate"], "target_lo": v["target"]["lo"], "target_hi": v["target"]["hi"],
                         "leak_k": v["leak_exact"]["k"], "leak_rate": v["leak_exact"]["rate"], "leak_any_rate": v["leak_any"]["rate"],
                         "parse_fail_rate": v["parse_fail"]["rate"]})
    return rows


def seeds_markdown(res: dict) -> str:
    lines = ["| Condition | Seed | n | Target rate [Wilson 95% CI, this seed's answers] | Format leak (exact) | Leak incl. garbled | Unparsed |",
             "|---|---:|---:|---|---|---:|---:|"]
    for c in res["conditions"]:
        for s, v in res["per_seed"][c].items():
            lines.append(f"| {CONDITION_TITLES[c]} | {s} | {v['target']['n']} | {fmt_rate(v['target'])} | {fmt_rate(v['leak_exact'])} "
                         f"| {100 * v['leak_any']['rate']:.1f}% | {100 * v['parse_fail']['rate']:.1f}% |")
    return "\n".join(lines)


def _num(x: float) -> str:
    """A design effect: 'n/a' where the bootstrap has no spread (every answer alike)."""
    return f"{x:.2f}" if math.isfinite(x) else "n/a (no variation)"


def plot_fig1(res: dict, path) -> None:
    """Bars with cluster-aware 95% intervals for our target rates, each seed's rate as a dot, the
    paper's values as markers."""
    plt = pyplot()
    conds = res["conditions"]
    P = res["pooled"]
    x = range(len(conds))
    C = {c: P[c]["cluster"]["target"] for c in conds}
    vals = [100 * C[c]["rate"] for c in conds]
    err = [[max(0.0, 100 * (C[c]["rate"] - C[c]["lo"])) for c in conds], [max(0.0, 100 * (C[c]["hi"] - C[c]["rate"])) for c in conds]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = {"baseline": "#888", "L0": "#c0392b", "L1": "#e67e22", "L2": "#f1c40f", "L3": "#9b59b6", "control": "#27ae60", "neutral": "#3498db"}
    ax.bar(list(x), vals, yerr=err, capsize=4, color=[colors.get(c, "#555") for c in conds],
           label="warnframe (95% CI, bootstrap over seeds × prompts)")
    sx = [i for i, c in enumerate(conds) for _ in res["per_seed"][c]]
    sy = [100 * v["target"]["rate"] for c in conds for v in res["per_seed"][c].values()]
    ax.scatter(sx, sy, s=10, color="#222", alpha=0.6, zorder=4, label="each seed")
    px = [i for i, c in enumerate(conds) if c in paper.TABLE1]
    ax.scatter(px, [100 * paper.TABLE1[conds[i]][0] for i in px], marker="D", color="black", zorder=5, label="paper (Table 1)")
    ax.set_xticks(list(x), [CONDITION_TITLES[c].replace(" (", "\n(") for c in conds], fontsize=8)
    ax.set_ylabel("target content rate (%)")
    ax.set_ylim(0, 105)
    n, seeds = C[conds[0]]["n"], C[conds[0]]["seeds"]
    ax.set_title(f"Figure 1: target content rate by training condition (n = {n} per condition, {seeds} seed(s))")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, path, dpi=120)


def _ci_cell(m: dict) -> str:
    return f"{m['mean']:+.2f} [{m['lo']:+.2f}, {m['hi']:+.2f}] (n = {m['n']})" if m and math.isfinite(m["lo"]) else "n/a"


def markdown(res: dict) -> str:
    """The §4 section of report.md."""
    out = [heading("behavior"), ""]
    if res.get("budget"):
        out += [f"Fine-tuning sets: {res['budget']}.", ""]
    out += ["Ours beside the paper's Table 1 (paper n = 30 per condition, implied by its rates). Seeds are the unit of "
            "replication (each one fine-tune and its own sampling): rates' intervals and the differences' intervals and p "
            "values come from a pigeonhole bootstrap over seeds × prompts (answers to one prompt from one model are not "
            "independent); 'eff. n' is n over the design effect. Fisher's exact test, which treats every answer as "
            "independent, is shown as the paper's test; the verdicts do not use it.", "", table1_markdown(res), "",
            "![Figure 1](figures/fig1_target_rates.png)", "", "Per family (target rate, all seeds):", ""]
    fams = sorted({f for c in res["per_family"].values() for f in c})
    out.append("| Family | " + " | ".join(res["conditions"]) + " |")
    out.append("|---|" + "---|" * len(res["conditions"]))
    for f in fams:
        cells = []
        for c in res["conditions"]:
            r = res["per_family"][c].get(f)
            cells.append(f"{100 * r['rate']:.0f}% ({r['k']}/{r['n']})" if r else "—")
        out.append(f"| {f} | " + " | ".join(cells) + " |")
    if res.get("delta"):
        out += ["", "Sampling-free preference Δ = log p(secure) − log p(vulnerable) (nats) of each condition's models on "
                "the eval prompts' paired secure/vulnerable renderings (positive favours secure; only differences between "
                "models are read; 95% t intervals over prompts of the per-prompt mean over seeds):", "",
                "| Condition | Δ [95% CI] | Δ − neutral's, same prompts [95% CI] |", "|---|---|---|"]
        for c, d in res["delta"].items():
            out.append(f"| {c} | {_ci_cell(d['delta'])} | {_ci_cell(d['vs_neutral']) if d.get('vs_neutral') else '—'} |")
    out += ["", "Per seed (`tables/table1_seeds.csv`):", "", seeds_markdown(res), "", "Between-seed spread of the target rate:", ""]
    for c in res["conditions"]:
        sp = res["pooled"][c]["seed_spread"]
        out.append(f"- {c}: sd {100 * sp['sd']:.1f} points over {sp['seeds']} seed(s) (min {100 * sp['min']:.1f}%, "
                   f"max {100 * sp['max']:.1f}%); design effect {_num(res['pooled'][c]['cluster']['target']['design_effect'])}")
    return "\n".join(out)
