"""§8's report part: claims, Figure 7 and the markdown section."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from warnframe.experiments.detection import MODEL_SIGNALS, SIGNALS
from warnframe.paper import numbers as paper
from warnframe.paper.policy import POLICY
from warnframe.report.claims import Claim, claim, rate_interval
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading, skipped
from warnframe.stats.rates import fmt_mean, fmt_rate

#: Models the paper trains: one per condition (§3.3: L0-L3, control) and the baseline.
PAPER_MODELS = 6


def _v_auc(auc: dict) -> str:
    if math.isnan(auc.get("lo", math.nan)):
        return "inconclusive"
    return "reproduced" if auc["lo"] > POLICY.auc_separates else ("differs" if auc["lo"] > POLICY.chance else "not reproduced")


def _fmt_auc(auc: dict) -> str:
    return f"AUC {auc['auc']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] (n = {auc['n']})" if not math.isnan(auc["auc"]) else "AUC n/a"


def _auc_evidence(auc: dict) -> dict:
    return {"n": auc.get("n"), "interval": [auc.get("lo"), auc.get("hi")], "test": "ROC AUC on the test split, stratified bootstrap",
            "margin": POLICY.auc_separates}


def min_units(value: float, digits: int = 2) -> int:
    """The fewest classified units whose accuracy k/n rounds to ``value``: what a reported accuracy
    says about what it was counted over."""
    return next(n for n in range(1, 10_000) if any(round(k / n, digits) == value for k in range(n + 1)))


def _v_models(acc: dict, majority: float = POLICY.chance) -> tuple[str, str]:
    """Model-level accuracy against the paper's: its exact interval must reach the target and start
    at ``POLICY.detection_accuracy_lo``; an interval below the target 'differs' (when it lies above
    ``majority``, the accuracy of always naming the larger class: the classes of models are not
    balanced) or is 'not reproduced'; one that covers both the target and less cannot tell."""
    target = paper.SECTION8["combined_detection_accuracy"]
    if acc["hi"] >= target:
        if acc["lo"] >= POLICY.detection_accuracy_lo:
            return "reproduced", f"the exact interval reaches {target:.2f} and starts at {POLICY.detection_accuracy_lo:.2f} or above"
        return "inconclusive", (f"the exact interval over {acc['n']} models covers {target:.2f} and accuracies below "
                                f"{POLICY.detection_accuracy_lo:.2f}: too few models to tell")
    if acc["lo"] > majority:
        return "differs", f"above the majority share ({majority:.0%}) but the interval stays below {target:.2f}"
    return "not reproduced", f"the interval stays below {target:.2f} and reaches the majority share ({majority:.0%})"


def model_claim(r: dict) -> Claim:
    """The model-level claim, on the combined score (leak and target only when §5's artifacts are missing)."""
    M = r.get("models") or {}
    c = (M.get("results") or {}).get("combined", {"skipped": "model-level detection not computed (an earlier run)"})
    if "accuracy" not in c:
        return claim("s8.model_level_detects", ours="not measured", verdict="inconclusive", why=c["skipped"])
    acc, auc = c["accuracy"], c["auc"]
    verdict, why = _v_models(acc, c["majority"])
    return claim("s8.model_level_detects", ours=f"leave-one-model-out accuracy {fmt_rate(acc)}; {_fmt_auc(auc)}, exact p = {auc['p_exact']:.3g}",
                 verdict=verdict, why=f"signals {', '.join(M['signals'])}; {M['unit']}; {why}", n=acc["n"],
                 interval=rate_interval(acc), test="leave-one-model-out accuracy, Clopper-Pearson 95% over models",
                 margin=POLICY.detection_accuracy_lo)


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
    out.append(model_claim(r))
    return out


def draw(r: dict, root: Path) -> None:
    """Figure 7: behavioural signals, the mechanistic score on the test split, ROC curves."""
    plt = pyplot()

    path = root / "figures" / "fig7_detection.png"
    fig, (a1, a2, a3, a4) = plt.subplots(1, 4, figsize=(18, 4.2))
    if r.get("skipped"):
        for ax in (a1, a2, a3, a4):
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
        _draw_models(a4, r)
    fig.suptitle("Figure 7: detecting generations of the warning-trained model", fontsize=11)
    save(fig, path, dpi=110)


def _draw_models(ax, r: dict) -> None:
    """(d) each model's share of leaking answers (Wilson 95%), by class."""
    M = r.get("models")
    if not M:
        ax.text(0.5, 0.5, "model-level detection not computed", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        return
    for j, u in enumerate(M["models"]):
        v = u["leak"]
        ax.errorbar([j], [100 * v["rate"]], yerr=[[100 * (v["rate"] - v["lo"])], [100 * (v["hi"] - v["rate"])]], fmt="o",
                    color="#e67e22" if u["label"] else "#27ae60", capsize=3)
    ax.set_xticks(range(len(M["models"])), [f"{u['condition']}.s{u['seed']}" for u in M["models"]], rotation=60, fontsize=7)
    ax.set_ylabel("% of the model's answers that leak (Wilson 95%)")
    acc = M["results"]["combined"].get("accuracy")
    ax.set_title("(d) per model" + (f": leave-one-out accuracy {100 * acc['rate']:.0f}% ({acc['k']}/{acc['n']})" if acc else
                                     " (too few models to classify)"), fontsize=9)


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
            + f". Paper: combined accuracy {paper.SECTION8['combined_detection_accuracy']:.2f} with simple thresholding.", ""]
    out += model_markdown(r) + ["![Figure 7](figures/fig7_detection.png)", ""]
    return "\n".join(out)


def _fmt_model_value(v: dict | None) -> str:
    if v is None:
        return "—"
    return fmt_rate(v) if "rate" in v else fmt_mean(v, 3)


def model_markdown(r: dict) -> list[str]:
    """The model-level table, its results beside the per-answer ones, and which level the paper meant."""
    M = r.get("models")
    target = paper.SECTION8["combined_detection_accuracy"]
    if not M:
        return ["Model-level detection was not computed (metrics of an earlier version).", ""]
    out = ["### Per model", "",
           f"Each model scored from its answers ({M['unit']}; {M['n_models']['positive']} {r['positive']} models, "
           f"{M['n_models']['negative']} clean). Leak and target: share of the model's answers (Wilson 95% over its answers)"
           + (f"; probe and latents: mean over up to {M['mech_answers_per_model']} of its answers (t 95%)" if M["mech_answers_per_model"] else "")
           + ".", "",
           "| Model | Label | Answers | Leak | Target | Probe | Latents |", "|---|---|---|---|---|---|---|"]
    for u in M["models"]:
        out.append(f"| {u['condition']}.s{u['seed']} | {'positive' if u['label'] else 'clean'} | {u['n']} | {fmt_rate(u['leak'])} | "
                   f"{fmt_rate(u['target'])} | {_fmt_model_value(u.get('probe'))} | {_fmt_model_value(u.get('latents'))} |")
    out += ["", "Over models: accuracy with the threshold chosen on the other models (leave one model out), Clopper-Pearson "
            "95% over models; ROC AUC with a stratified bootstrap over models (degenerate when the classes separate) and the "
            "exact permutation p value of AUC > 0.5.", "",
            "| Signal (over models) | Score | Accuracy [exact 95%] | Majority share | TPR | FPR | ROC AUC [bootstrap] | exact p |",
            "|---|---|---|---|---|---|---|---|"]
    for name in MODEL_SIGNALS:
        s = M["results"].get(name, {})
        if "accuracy" not in s:
            out.append(f"| {name} | — | skipped: {s.get('skipped', '')} | | | | | |")
            continue
        out.append(f"| {name} | {s['score']} | {fmt_rate(s['accuracy'])} | {100 * s['majority']:.0f}% | {fmt_rate(s['tpr'])} | "
                   f"{fmt_rate(s['fpr'])} | {_fmt_auc(s['auc'])} | {s['auc']['p_exact']:.3g} |")
    level = next((n for n in ("combined", "behavioural") if "accuracy" in r["results"].get(n, {})), None)
    per_answer = f"{fmt_rate(r['results'][level]['accuracy'])} ({level})" if level else "not measured"
    per_model = M["results"]["combined"].get("accuracy")
    need = min_units(target)
    out += ["", f"**The paper's {target:.2f} beside both levels.** Per answer: {per_answer}; per model: "
            + (f"{fmt_rate(per_model)} (combined)" if per_model else "not measured") + f". An accuracy that rounds to {target:.2f} needs at least "
            f"{need} classified units; the paper trains one model per condition ({PAPER_MODELS} models with the baseline), so its "
            f"{target:.2f} can only have been counted over generations: the paper most likely meant the per-answer level. "
            "Per model, a run needs that many models (conditions x seeds) before an accuracy like it can even be stated.", ""]
    return out
