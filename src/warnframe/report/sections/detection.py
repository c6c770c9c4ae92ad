"""§8's report part: claims, Figure 7 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...experiments.detection import SIGNALS
from ...scoring.stats import fmt_rate
from .. import paper
from ..claims import POLICY, Claim, claim, rate_interval
from ..figures import pyplot, save
from ..render import heading, skipped


def _v_auc(auc: dict) -> str:
    if math.isnan(auc.get("lo", math.nan)):
        return "inconclusive"
    return "reproduced" if auc["lo"] > POLICY.auc_separates else ("differs" if auc["lo"] > POLICY.chance else "not reproduced")


def _fmt_auc(auc: dict) -> str:
    return f"AUC {auc['auc']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] (n = {auc['n']})" if not math.isnan(auc["auc"]) else "AUC n/a"


def _auc_evidence(auc: dict) -> dict:
    return {"n": auc.get("n"), "interval": [auc.get("lo"), auc.get("hi")], "test": "ROC AUC on the test split, stratified bootstrap",
            "margin": POLICY.auc_separates}


def claims(r: dict) -> list[Claim]:
    R = r["results"]
    out = []
    c = R["combined"]
    target = paper.SECTION8["combined_detection_accuracy"]
    if "accuracy" in c:
        acc = c["accuracy"]
        v = ("reproduced" if acc["hi"] >= target and acc["lo"] >= POLICY.detection_accuracy_lo else
             ("differs" if acc["rate"] >= POLICY.detection_accuracy_partly else "not reproduced"))
        out.append(claim("s8.combined_detects", ours=f"test accuracy {fmt_rate(acc)}; {_fmt_auc(c['auc'])}", verdict=v,
                         why=f"balanced classes (chance {POLICY.chance:.0%}), threshold and weights fitted on other prompts; 'reproduced' = "
                             f"the interval reaches {target:.2f} and its lower end is at least {POLICY.detection_accuracy_lo:.2f}",
                         n=acc["n"], interval=rate_interval(acc), test="test-split accuracy, Wilson 95%",
                         margin=POLICY.detection_accuracy_lo))
    else:
        out.append(claim("s8.combined_detects", ours="not measured", verdict="inconclusive", why=c.get("skipped", "")))
    b = R["behavioural"]
    lk = r["signals_raw"]["leak"]
    if "auc" in b:
        out.append(claim("s8.behavioural_easy", verdict=_v_auc(b["auc"]),
                         ours=f"leak in L1 {fmt_rate(lk['pos'])} vs clean {fmt_rate(lk['neg'])}; test accuracy {fmt_rate(b['accuracy'])}; "
                              f"{_fmt_auc(b['auc'])}",
                         why=f"'reproduced' = AUC interval above {POLICY.auc_separates}; 'differs' = above chance only",
                         **_auc_evidence(b["auc"])))
    m = R["mechanistic"]
    if "auc" in m:
        out.append(claim("s8.latents_separate", ours=f"test accuracy {fmt_rate(m['accuracy'])}; {_fmt_auc(m['auc'])}",
                         verdict=_v_auc(m["auc"]), why=f"latents {r['selected_latents']}; 'reproduced' = AUC interval above {POLICY.auc_separates}",
                         **_auc_evidence(m["auc"])))
    else:
        out.append(claim("s8.latents_separate", ours="not measured", verdict="inconclusive", why=m.get("skipped", "")))
    return out


def draw(r: dict, root: Path) -> None:
    """Figure 7: behavioural signals, the mechanistic score on the test split, ROC curves."""
    plt = pyplot()

    path = root / "figures" / "fig7_detection.png"
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4.2))
    if r.get("skipped"):
        for ax in (a1, a2, a3):
            ax.text(0.5, 0.5, "skipped: " + r["skipped"], ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    else:
        S = r["signals_raw"]
        names = ["leak", "target"]
        for j, (cls, col) in enumerate((("pos", "#e67e22"), ("neg", "#27ae60"))):
            vals = [S[n][cls] for n in names]
            a1.bar(np.arange(2) + (j - 0.5) * 0.38, [100 * v["rate"] for v in vals], width=0.38, color=col,
                   yerr=[[100 * (v["rate"] - v["lo"]) for v in vals], [100 * (v["hi"] - v["rate"]) for v in vals]], capsize=4,
                   label=f"{r['positive']} (n = {vals[0]['n']})" if cls == "pos" else f"clean (n = {vals[0]['n']})")
        a1.scatter([-0.19], [100 * paper.SECTION8["l1_format_leak"]], marker="D", color="black", zorder=5, label="paper (L1 leak)")
        a1.set_xticks(range(2), ["format leakage", "target content"])
        a1.set_ylabel("% of generations (Wilson 95% CI)")
        a1.set_ylim(0, 105)
        a1.set_title("(a) behavioural signals", fontsize=9)
        a1.legend(fontsize=7)
        m = r["results"].get("mechanistic", {})
        if "test_scores" in m:
            ts = m["test_scores"]
            allv = ts["pos"] + ts["neg"]
            bins = np.linspace(min(allv), max(allv) + 1e-9, 25)
            a2.hist(ts["neg"], bins=bins, alpha=0.6, color="#27ae60", label=f"clean (n = {len(ts['neg'])})")
            a2.hist(ts["pos"], bins=bins, alpha=0.6, color="#e67e22", label=f"{r['positive']} (n = {len(ts['pos'])})")
            a2.axvline(m["threshold"], color="black", ls="--", label="threshold (train split)")
            a2.set_xlabel(f"mean activation of latents {r['selected_latents']}")
            a2.set_ylabel("test generations")
            a2.legend(fontsize=7)
        else:
            a2.text(0.5, 0.5, "mechanistic signal not measured:\n" + str(m.get("skipped", ""))[:150], ha="center", va="center",
                    wrap=True, fontsize=8, transform=a2.transAxes)
        a2.set_title("(b) mechanistic signal (test split)", fontsize=9)
        for name, col in zip(SIGNALS, ("#2980b9", "#8e44ad", "#c0392b")):
            s = r["results"].get(name, {})
            if "roc" in s:
                a3.plot(s["roc"]["fpr"], s["roc"]["tpr"], color=col,
                        label=f"{name}: acc {100 * s['accuracy']['rate']:.0f}%, AUC {s['auc']['auc']:.2f}")
        a3.plot([0, 1], [0, 1], color="gray", lw=0.6, ls=":")
        a3.set_xlabel("false positive rate")
        a3.set_ylabel("true positive rate")
        a3.set_title(f"(c) ROC on the test split (paper: combined accuracy {paper.SECTION8['combined_detection_accuracy']:.2f})", fontsize=9)
        a3.legend(fontsize=7, loc="lower right")
    fig.suptitle("Figure 7: detecting generations of the warning-trained model", fontsize=11)
    save(fig, path, dpi=110)


def markdown(r: dict) -> str:
    if r.get("skipped"):
        return skipped("detection", r["skipped"])
    out = [heading("detection"), ""]
    sp = r["split"]
    out += [f"Positives: generations of {r['positive']}; negatives drawn evenly from {r['negatives']} ({r['drawn']}). "
            f"Split by prompt: train {sp['train']['n']} generations ({sp['train']['pos']} positive), test {sp['test']['n']} "
            f"({sp['test']['pos']} positive). Scores, weights and thresholds come from the train split only.", ""]
    if r.get("mechanistic_skipped"):
        out += [f"Mechanistic signal not measured: {r['mechanistic_skipped']}.", ""]
    out += ["| Signal | Score | Test accuracy [95% CI] | TPR | FPR | ROC AUC [95% CI] | Train accuracy |", "|---|---|---|---|---|---|---|"]
    for name in SIGNALS:
        s = r["results"].get(name, {})
        if "accuracy" not in s:
            out.append(f"| {name} | — | skipped: {s.get('skipped', '')} | | | | |")
            continue
        out.append(f"| {name} | {s['score']} | {fmt_rate(s['accuracy'])} | {fmt_rate(s['tpr'])} | {fmt_rate(s['fpr'])} | "
                   f"{_fmt_auc(s['auc'])} | {fmt_rate(s['train_accuracy'])} |")
    S = r["signals_raw"]
    out += ["", f"Raw signals: format leakage {fmt_rate(S['leak']['pos'])} of {r['positive']} generations vs {fmt_rate(S['leak']['neg'])} "
            f"of clean ones (paper: {100 * paper.SECTION8['l1_format_leak']:.0f}% of L1 outputs); target content "
            f"{fmt_rate(S['target']['pos'])} vs {fmt_rate(S['target']['neg'])}"
            + (f"; selected latents' mean activation {S['mech']['pos_mean']:.3f} vs {S['mech']['neg_mean']:.3f}" if "mech" in S else "")
            + f". Paper: combined accuracy {paper.SECTION8['combined_detection_accuracy']:.2f} with simple thresholding.", "",
            "![Figure 7](figures/fig7_detection.png)", ""]
    return "\n".join(out)
