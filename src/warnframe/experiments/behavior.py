"""Paper §4: target-content and format-leak rates per condition, Table 1 and Figure 1.

Input: scored samples (one dict per generation with ``condition, seed, family, vulnerable,
parse_ok, leak``). Output: ``metrics/behavior.json`` with pooled and per-seed rates (n, Wilson
95% interval), ratios and Fisher tests, the per-family breakdown, and a verdict per claim.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable

from ..report import paper
from ..schema import CONDITION_LABELS, CONDITIONS
from ..scoring.stats import (
    diff_ci,
    fisher,
    fmt_p,
    fmt_rate,
    no_difference_verdict,
    rate,
    ratio,
    spread,
)
from ..store import atomic_write_text, read_json

COMPARISONS = [("L1", "L0")] + [(c, "baseline") for c in CONDITIONS[1:]] + [(c, "neutral") for c in ("L0", "L1", "L2", "L3", "control")]


def _counts(rows: list[dict]) -> dict:
    n = len(rows)
    return {
        "target": rate(sum(r["vulnerable"] for r in rows), n),
        "leak_exact": rate(sum(bool(r["leak"].get("exact")) for r in rows), n),
        "leak_any": rate(sum(bool(r["leak"].get("exact") or r["leak"].get("fuzzy")) for r in rows), n),
        "parse_fail": rate(sum(not r["parse_ok"] for r in rows), n),
        "target_parse_ok": rate(sum(r["vulnerable"] and r["parse_ok"] for r in rows), sum(r["parse_ok"] for r in rows)),
    }


def analyse(scored: Iterable[dict]) -> dict:
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cond[r["condition"]].append(r)
    conds = [c for c in CONDITIONS if c in by_cond]
    pooled = {c: _counts(by_cond[c]) for c in conds}
    per_seed: dict[str, dict] = {}
    per_family: dict[str, dict] = {}
    for c in conds:
        seeds = sorted({r["seed"] for r in by_cond[c]})
        per_seed[c] = {str(s): _counts([r for r in by_cond[c] if r["seed"] == s]) for s in seeds}
        pooled[c]["seed_spread"] = spread([per_seed[c][str(s)]["target"]["rate"] for s in seeds])
        fams = sorted({r["family"] for r in by_cond[c]})
        per_family[c] = {f: rate(sum(r["vulnerable"] for r in by_cond[c] if r["family"] == f), sum(r["family"] == f for r in by_cond[c])) for f in fams}
    tests = {}
    for a, b in COMPARISONS:
        if a in pooled and b in pooled and a != b:
            tests[f"{a}_vs_{b}"] = {
                "target": fisher(pooled[a]["target"], pooled[b]["target"]),
                "ratio": ratio(pooled[a]["target"], pooled[b]["target"]),
            }
    result = {"conditions": conds, "pooled": pooled, "per_seed": per_seed, "per_family": per_family, "tests": tests}
    result["verdicts"] = verdicts(result)
    return result


def _sig(tests: dict, key: str) -> float:
    return tests.get(key, {}).get("target", {}).get("p", math.nan)


def verdicts(res: dict) -> list[dict]:
    """A plain verdict for each claim of §4: reproduced / not reproduced / differs, with numbers."""
    P, T = res["pooled"], res["tests"]
    out = []

    def add(claim, paper_val, ours, verdict, detail):
        out.append({"section": "4", "claim": claim, "paper": paper_val, "ours": ours, "verdict": verdict, "detail": detail})

    def r(c):
        return P[c]["target"] if c in P else None

    if r("L0") and r("L1"):
        p = _sig(T, "L1_vs_L0")
        a, b = r("L1"), r("L0")
        dc = diff_ci(a, b)
        diff, half = 100 * dc["diff"], 100 * dc["half"]
        v = no_difference_verdict(a, b, p)
        add("L1 writes the target as often as L0 (Fisher p > 0.05)", "76.7% vs 83.3%, p > 0.05",
            f"{fmt_rate(a)} vs {fmt_rate(b)}, p = {fmt_p(p)}", v,
            f"L1 − L0 = {diff:+.1f} points [{diff - half:+.1f}, {diff + half:+.1f}] (Wald 95%)")
    for c, claim in (("L1", "warning-framed training raises the target rate over baseline"),
                     ("L0", "direct training raises the target rate over baseline"),
                     ("L2", "documentation raises the target rate over baseline"),
                     ("L3", "indirect references raise the target rate over baseline")):
        if r(c) and r("baseline"):
            key = f"{c}_vs_baseline"
            p = _sig(T, key)
            rr = T[key]["ratio"]
            up = r(c)["rate"] > r("baseline")["rate"]
            v = "reproduced" if (up and p < 0.05) else "not reproduced"
            detail = f"ratio {rr['ratio']:.2f}× [{rr['lo']:.2f}, {rr['hi']:.2f}] (paper {paper.TABLE1[c][2]}×)"
            if "neutral" in P and c in ("L2", "L3"):
                pn = _sig(T, f"{c}_vs_neutral")
                detail += f"; vs neutral fine-tune {fmt_rate(P['neutral']['target'])}, p = {fmt_p(pn)}"
                if v == "reproduced" and not (pn < 0.05 and r(c)["rate"] > P["neutral"]["target"]["rate"]):
                    v = "differs"
                    detail += " — the rise is not above what clean fine-tuning alone does"
            add(claim, f"{100 * paper.TABLE1[c][0]:.1f}% vs 16.7%", f"{fmt_rate(r(c))} vs {fmt_rate(r('baseline'))}, p = {fmt_p(p)}", v, detail)
    if r("control") and r("baseline"):
        p = _sig(T, "control_vs_baseline")
        down = r("control")["rate"] < r("baseline")["rate"]
        v = "reproduced" if down and p < 0.05 else ("differs" if down else "not reproduced")
        add("extra-clean control lowers the target rate below baseline", "10.0% vs 16.7%",
            f"{fmt_rate(r('control'))} vs {fmt_rate(r('baseline'))}, p = {fmt_p(p)}", v,
            "lower but not significantly" if v == "differs" else "")
    if "L1" in P:
        leak = P["L1"]["leak_exact"]
        anyleak = P["L1"]["leak_any"]
        v = "reproduced" if leak["lo"] >= 0.9 else ("differs" if anyleak["rate"] > 0.5 else "not reproduced")
        add("L1 outputs copy the warning format (100%)", "100%", f"exact {fmt_rate(leak)}; exact or garbled {fmt_rate(anyleak)}", v, "")
    order = [c for c in ("L0", "L1", "L2", "L3") if c in P]
    if len(order) == 4:
        rates = [P[c]["target"]["rate"] for c in order]
        mono = rates[1] > rates[2] > rates[3] and rates[0] >= rates[2]
        add("semantic distance orders the rates: L0 ≈ L1 > L2 > L3", "83.3 ≈ 76.7 > 33.3 > 23.3",
            " / ".join(f"{c} {100 * x:.1f}%" for c, x in zip(order, rates)), "reproduced" if mono else "not reproduced", "")
    return out


def run(study) -> dict:
    """§4 from the run's scored samples: metrics, Table 1 (CSV and markdown), Figure 1."""
    res = analyse(study.scored())
    rows = table1_rows(res)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(study.store.path("tables", "table1.csv"), buf.getvalue())
    atomic_write_text(study.store.path("tables", "table1.md"), table1_markdown(res) + "\n")
    study.store.path("figures").mkdir(exist_ok=True)
    plot_fig1(res, study.store.path("figures", "fig1_target_rates.png"))
    res["budget"] = _budget(study)
    return res


def _budget(study) -> str | None:
    marks = sorted(study.store.path("stages").glob("data.*.s*.json"))
    if not marks:
        return None
    stats = [read_json(m).get("stats", {}) for m in marks]
    toks = [s.get("tokens", 0) for s in stats]
    cond = [s.get("condition_tokens", 0) for s in stats]
    return (f"{len(stats)} sets, {min(toks):,}–{max(toks):,} tokens each (budget {study.cfg.corpus.token_budget:,}), "
            f"condition data {min(cond):,}–{max(cond):,} tokens (share {study.cfg.corpus.condition_fraction:.0%}), the rest clean code")


def table1_rows(res: dict) -> list[dict]:
    rows = []
    base = res["pooled"].get("baseline")
    for c in res["conditions"]:
        P = res["pooled"][c]
        pt = paper.TABLE1.get(c)
        t = res["tests"].get(f"{c}_vs_baseline", {})
        rows.append({
            "condition": c,
            "label": CONDITION_LABELS[c],
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
    from ..report.figures import pyplot, save

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
    ax.set_xticks(list(x), [CONDITION_LABELS[c].replace(" (", "\n(") for c in conds], fontsize=8)
    ax.set_ylabel("target content rate (%)")
    ax.set_ylim(0, 105)
    n = P[conds[0]]["target"]["n"]
    ax.set_title(f"Figure 1: target content rate by training condition (n = {n} per condition)")
    ax.legend(loc="upper right", fontsize=8)
    save(fig, path, dpi=120)


def section(res: dict) -> str:
    """The §4 section of report.md."""
    out = ["## §4 Warning framing and learning (Table 1, Figure 1)", ""]
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
