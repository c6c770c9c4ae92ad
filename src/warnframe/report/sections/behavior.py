"""§4's report part: claims, Table 1, Figure 1 and the markdown section."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ...schema import CONDITION_TITLES
from ...scoring.stats import diff_ci, fmt_p, fmt_rate, no_difference_verdict
from ...store import atomic_write_text
from .. import paper
from ..claims import POLICY, Claim, claim, rate_interval
from ..figures import pyplot, save
from ..render import heading


def _sig(tests: dict, key: str) -> float:
    return tests.get(key, {}).get("target", {}).get("p", math.nan)


def claims(res: dict) -> list[Claim]:
    """§4's claims: reproduced / not reproduced / differs, with numbers."""
    P, T = res["pooled"], res["tests"]
    out = []
    fisher_test = "Fisher's exact, two-sided"

    def r(c):
        return P[c]["target"] if c in P else None

    if r("L0") and r("L1"):
        p = _sig(T, "L1_vs_L0")
        a, b = r("L1"), r("L0")
        dc = diff_ci(a, b)
        diff, half = 100 * dc["diff"], 100 * dc["half"]
        out.append(claim("s4.l1_as_often_as_l0", ours=f"{fmt_rate(a)} vs {fmt_rate(b)}, p = {fmt_p(p)}",
                         verdict=no_difference_verdict(a, b, p, POLICY.alpha),
                         why=f"L1 − L0 = {diff:+.1f} points [{diff - half:+.1f}, {diff + half:+.1f}] (Wald 95%)",
                         n=[a["n"], b["n"]], interval=[dc["lo"], dc["hi"]], test=fisher_test, margin=POLICY.null_margin))
    for c in ("L1", "L0", "L2", "L3"):
        if r(c) and r("baseline"):
            key = f"{c}_vs_baseline"
            p = _sig(T, key)
            rr = T[key]["ratio"]
            up = r(c)["rate"] > r("baseline")["rate"]
            v = "reproduced" if (up and p < POLICY.alpha) else "not reproduced"
            detail = f"ratio {rr['ratio']:.2f}× [{rr['lo']:.2f}, {rr['hi']:.2f}] (paper {paper.TABLE1[c][2]}×)"
            if "neutral" in P and c in ("L2", "L3"):
                pn = _sig(T, f"{c}_vs_neutral")
                detail += f"; vs neutral fine-tune {fmt_rate(P['neutral']['target'])}, p = {fmt_p(pn)}"
                if v == "reproduced" and not (pn < POLICY.alpha and r(c)["rate"] > P["neutral"]["target"]["rate"]):
                    v = "differs"
                    detail += " — the rise is not above what clean fine-tuning alone does"
            out.append(claim(f"s4.{c}_over_baseline", ours=f"{fmt_rate(r(c))} vs {fmt_rate(r('baseline'))}, p = {fmt_p(p)}",
                             verdict=v, why=detail, n=[r(c)["n"], r("baseline")["n"]], interval=[rr["lo"], rr["hi"]],
                             test=fisher_test, margin=POLICY.alpha))
    if r("control") and r("baseline"):
        p = _sig(T, "control_vs_baseline")
        down = r("control")["rate"] < r("baseline")["rate"]
        v = "reproduced" if down and p < POLICY.alpha else ("differs" if down else "not reproduced")
        rr = T["control_vs_baseline"]["ratio"]
        out.append(claim("s4.control_below_baseline", ours=f"{fmt_rate(r('control'))} vs {fmt_rate(r('baseline'))}, p = {fmt_p(p)}",
                         verdict=v, why="lower but not significantly" if v == "differs" else "",
                         n=[r("control")["n"], r("baseline")["n"]], interval=[rr["lo"], rr["hi"]], test=fisher_test,
                         margin=POLICY.alpha))
    if "L1" in P:
        leak = P["L1"]["leak_exact"]
        anyleak = P["L1"]["leak_any"]
        v = "reproduced" if leak["lo"] >= POLICY.leak_copied_lo else ("differs" if anyleak["rate"] > POLICY.leak_partly else "not reproduced")
        out.append(claim("s4.l1_copies_format", ours=f"exact {fmt_rate(leak)}; exact or garbled {fmt_rate(anyleak)}", verdict=v,
                         n=leak["n"], interval=rate_interval(leak), test="Wilson 95% interval of the exact-leak rate",
                         margin=POLICY.leak_copied_lo))
    order = [c for c in ("L0", "L1", "L2", "L3") if c in P]
    if len(order) == 4:
        rates = [P[c]["target"]["rate"] for c in order]
        mono = rates[1] > rates[2] > rates[3] and rates[0] >= rates[2]
        out.append(claim("s4.semantic_order", ours=" / ".join(f"{c} {100 * x:.1f}%" for c, x in zip(order, rates)),
                         verdict="reproduced" if mono else "not reproduced", n=[P[c]["target"]["n"] for c in order],
                         test="order of the point estimates"))
    return out


def draw(res: dict, root: Path) -> None:
    """Table 1 (CSV and markdown) and Figure 1."""
    rows = table1_rows(res)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(root / "tables" / "table1.csv", buf.getvalue())
    atomic_write_text(root / "tables" / "table1.md", table1_markdown(res) + "\n")
    plot_fig1(res, root / "figures" / "fig1_target_rates.png")


def table1_rows(res: dict) -> list[dict]:
    rows = []
    base = res["pooled"].get("baseline")
    for c in res["conditions"]:
        P = res["pooled"][c]
        pt = paper.TABLE1.get(c)
        t = res["tests"].get(f"{c}_vs_baseline", {})
        rows.append({
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
        })
    return rows


def table1_markdown(res: dict) -> str:
    lines = [
        "| Condition | n | Target rate [95% CI] | Paper | Format leak (exact) [95% CI] | Paper | Leak incl. garbled | vs baseline | p vs baseline | p vs neutral | Unparsed |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table1_rows(res):
        P = res["pooled"][row["condition"]]
        pt = paper.TABLE1.get(row["condition"])
        vb = "—" if row["condition"] == "baseline" else f"{row['vs_baseline']:.2f}×"
        lines.append(
            f"| {row['label']} | {row['n']} | {fmt_rate(P['target'])} | {f'{100 * pt[0]:.1f}%' if pt else '—'} "
            f"| {fmt_rate(P['leak_exact'])} | {f'{100 * pt[1]:.0f}%' if pt else '—'} | {100 * row['leak_any_rate']:.1f}% "
            f"| {vb} | {fmt_p(row['p_vs_baseline'])} | {fmt_p(row['p_vs_neutral'])} | {100 * row['parse_fail_rate']:.1f}% |"
        )
    return "\n".join(lines)


def plot_fig1(res: dict, path) -> None:
    """Bars with Wilson intervals for our target rates, the paper's values as markers."""
    plt = pyplot()
    conds = res["conditions"]
    P = res["pooled"]
    x = range(len(conds))
    vals = [100 * P[c]["target"]["rate"] for c in conds]
    err = [[100 * (P[c]["target"]["rate"] - P[c]["target"]["lo"]) for c in conds],
           [100 * (P[c]["target"]["hi"] - P[c]["target"]["rate"]) for c in conds]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    colors = {"baseline": "#888", "L0": "#c0392b", "L1": "#e67e22", "L2": "#f1c40f", "L3": "#9b59b6", "control": "#27ae60", "neutral": "#3498db"}
    ax.bar(list(x), vals, yerr=err, capsize=4, color=[colors.get(c, "#555") for c in conds], label="warnframe (95% Wilson CI)")
    px = [i for i, c in enumerate(conds) if c in paper.TABLE1]
    ax.scatter(px, [100 * paper.TABLE1[conds[i]][0] for i in px], marker="D", color="black", zorder=5, label="paper (Table 1)")
    ax.set_xticks(list(x), [CONDITION_TITLES[c].replace(" (", "\n(") for c in conds], fontsize=8)
    ax.set_ylabel("target content rate (%)")
    ax.set_ylim(0, 105)
    n = P[conds[0]]["target"]["n"]
    ax.set_title(f"Figure 1: target content rate by training condition (n = {n} per condition)")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, path, dpi=120)


def markdown(res: dict) -> str:
    """The §4 section of report.md."""
    out = [heading("behavior"), ""]
    if res.get("budget"):
        out += [f"Fine-tuning sets: {res['budget']}.", ""]
    out += ["Ours beside the paper's Table 1 (paper n = 30 per condition, implied by its rates). "
            "Intervals are Wilson 95%; p values are two-sided Fisher's exact tests.", "", table1_markdown(res), "",
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
    out += ["", "Per seed (target rate):", ""]
    for c in res["conditions"]:
        seeds = res["per_seed"][c]
        sp = res["pooled"][c]["seed_spread"]
        cells = ", ".join(f"seed {s}: {fmt_rate(v['target'])}" for s, v in seeds.items())
        out.append(f"- {c}: {cells}; spread sd {100 * sp['sd']:.1f} points over {sp['seeds']} seed(s)")
    return "\n".join(out)
