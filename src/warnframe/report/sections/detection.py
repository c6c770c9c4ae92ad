"""§8's report part: claims, Figure 7 and the markdown section, read from the typed
:class:`~warnframe.experiments.detection_metrics.DetectionMetrics` (rebuilt with ``from_json`` when given
the dict of ``metrics/detection.json``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from warnframe.experiments.detection_metrics import MODEL_SIGNALS, SIGNALS, Auc, DetectionMetrics, ModelSignal, Signal
from warnframe.paper import numbers as paper
from warnframe.paper.policy import POLICY
from warnframe.report.claims import Claim, claim, rate_interval
from warnframe.report.figures import pyplot, save
from warnframe.report.render import heading, skipped
from warnframe.stats.rates import fmt_mean, fmt_rate
from warnframe.stats.types import Mean, Rate, as_rate

#: Models the paper trains: one per condition (§3.3: L0-L3, control) and the baseline.
PAPER_MODELS = 6


def _metrics(r: DetectionMetrics | dict) -> DetectionMetrics:
    return r if isinstance(r, DetectionMetrics) else DetectionMetrics.from_json(r)


def _v_auc(auc: Auc) -> str:
    if math.isnan(auc.lo):
        return "inconclusive"
    return "reproduced" if auc.lo > POLICY.auc_separates else ("differs" if auc.lo > POLICY.chance else "not reproduced")


def _fmt_auc(auc: Auc) -> str:
    return f"AUC {auc.auc:.3f} [{auc.lo:.3f}, {auc.hi:.3f}] (n = {auc.n})" if not math.isnan(auc.auc) else "AUC n/a"


def _auc_evidence(auc: Auc) -> dict:
    return {"n": auc.n, "interval": [auc.lo, auc.hi], "test": "ROC AUC on the test split, stratified bootstrap",
            "margin": POLICY.auc_separates}


def min_units(value: float, digits: int = 2) -> int:
    """The fewest classified units whose accuracy k/n rounds to ``value``: what a reported accuracy
    says about what it was counted over."""
    return next(n for n in range(1, 10_000) if any(round(k / n, digits) == value for k in range(n + 1)))


def _v_models(acc: Rate | dict, majority: float = POLICY.chance) -> tuple[str, str]:
    """Model-level accuracy against the paper's: its exact interval must reach the target and start
    at ``POLICY.detection_accuracy_lo``; an interval below the target 'differs' (when it lies above
    ``majority``, the accuracy of always naming the larger class: the classes of models are not
    balanced) or is 'not reproduced'; one that covers both the target and less cannot tell."""
    acc = as_rate(acc)
    target = paper.SECTION8["combined_detection_accuracy"]
    if acc.hi >= target:
        if acc.lo >= POLICY.detection_accuracy_lo:
            return "reproduced", f"the exact interval reaches {target:.2f} and starts at {POLICY.detection_accuracy_lo:.2f} or above"
        return "inconclusive", (f"the exact interval over {acc.n} models covers {target:.2f} and accuracies below "
                                f"{POLICY.detection_accuracy_lo:.2f}: too few models to tell")
    if acc.lo > majority:
        return "differs", f"above the majority share ({majority:.0%}) but the interval stays below {target:.2f}"
    return "not reproduced", f"the interval stays below {target:.2f} and reaches the majority share ({majority:.0%})"


def model_claim(r: DetectionMetrics | dict) -> Claim:
    """The model-level claim, on the combined score (leak and target only when §5's artifacts are missing)."""
    M = _metrics(r).models
    c = M.results.get("combined") if M else None
    if not isinstance(c, ModelSignal):
        why = c.skipped if c else "model-level detection not computed (an earlier run)"
        return claim("s8.model_level_detects", ours="not measured", verdict="inconclusive", why=why)
    assert M is not None
    acc, auc = c.accuracy, c.auc
    verdict, why = _v_models(acc, c.majority)
    return claim("s8.model_level_detects", ours=f"leave-one-model-out accuracy {fmt_rate(acc)}; {_fmt_auc(auc)}, exact p = {auc.p_exact:.3g}",
                 verdict=verdict, why=f"signals {', '.join(M.signals)}; {M.unit}; {why}", n=acc.n,
                 interval=rate_interval(acc), test="leave-one-model-out accuracy, Clopper-Pearson 95% over models",
                 margin=POLICY.detection_accuracy_lo)


def claims(r: DetectionMetrics | dict) -> list[Claim]:
    D = _metrics(r)
    _, raw = D.ran
    R = D.results
    out = []
    c = R["combined"]
    target = paper.SECTION8["combined_detection_accuracy"]
    if isinstance(c, Signal):
        acc = c.accuracy
        v = ("reproduced" if acc.hi >= target and acc.lo >= POLICY.detection_accuracy_lo else
             ("differs" if acc.rate >= POLICY.detection_accuracy_partly else "not reproduced"))
        out.append(claim("s8.combined_detects", ours=f"test accuracy {fmt_rate(acc)}; {_fmt_auc(c.auc)}", verdict=v,
                         why=f"balanced classes (chance {POLICY.chance:.0%}), threshold and weights fitted on other prompts; 'reproduced' = "
                             f"the interval reaches {target:.2f} and its lower end is at least {POLICY.detection_accuracy_lo:.2f}",
                         n=acc.n, interval=rate_interval(acc), test="test-split accuracy, Wilson 95%",
                         margin=POLICY.detection_accuracy_lo))
    else:
        out.append(claim("s8.combined_detects", ours="not measured", verdict="inconclusive", why=c.skipped))
    b = R["behavioural"]
    lk = raw.leak
    if isinstance(b, Signal):
        out.append(claim("s8.behavioural_easy", verdict=_v_auc(b.auc),
                         ours=f"leak in L1 {fmt_rate(lk.pos)} vs clean {fmt_rate(lk.neg)}; test accuracy {fmt_rate(b.accuracy)}; "
                              f"{_fmt_auc(b.auc)}",
                         why=f"'reproduced' = AUC interval above {POLICY.auc_separates}; 'differs' = above chance only",
                         **_auc_evidence(b.auc)))
    m = R["mechanistic"]
    if isinstance(m, Signal):
        out.append(claim("s8.latents_separate", ours=f"test accuracy {fmt_rate(m.accuracy)}; {_fmt_auc(m.auc)}",
                         verdict=_v_auc(m.auc), why=f"latents {D.selected_latents}; 'reproduced' = AUC interval above {POLICY.auc_separates}",
                         **_auc_evidence(m.auc)))
    else:
        out.append(claim("s8.latents_separate", ours="not measured", verdict="inconclusive", why=m.skipped))
    out.append(model_claim(D))
    return out


def draw(r: DetectionMetrics | dict, root: Path) -> None:
    """Figure 7: behavioural signals, the mechanistic score on the test split, ROC curves."""
    D = _metrics(r)
    plt = pyplot()

    path = root / "figures" / "fig7_detection.png"
    fig, (a1, a2, a3, a4) = plt.subplots(1, 4, figsize=(18, 4.2))
    if D.skipped:
        for ax in (a1, a2, a3, a4):
            ax.text(0.5, 0.5, "skipped: " + D.skipped, ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    else:
        _, S = D.ran
        for j, (cls, col) in enumerate((("pos", "#e67e22"), ("neg", "#27ae60"))):
            vals: list[Rate] = [getattr(x, cls) for x in (S.leak, S.target)]
            a1.bar(np.arange(2) + (j - 0.5) * 0.38, [100 * v.rate for v in vals], width=0.38, color=col,
                   yerr=[[100 * (v.rate - v.lo) for v in vals], [100 * (v.hi - v.rate) for v in vals]], capsize=4,
                   label=f"{D.positive} (n = {vals[0].n})" if cls == "pos" else f"clean (n = {vals[0].n})")
        a1.scatter([-0.19], [100 * paper.SECTION8["l1_format_leak"]], marker="D", color="black", zorder=5, label="paper (L1 leak)")
        a1.set_xticks(range(2), ["format leakage", "target content"])
        a1.set_ylabel("% of generations (Wilson 95% CI)")
        a1.set_ylim(0, 105)
        a1.set_title("(a) behavioural signals", fontsize=9)
        a1.legend(fontsize=7)
        m = D.result("mechanistic")
        if isinstance(m, Signal):
            ts = m.test_scores
            allv = ts["pos"] + ts["neg"]
            bins = np.linspace(min(allv), max(allv) + 1e-9, 25)
            a2.hist(ts["neg"], bins=bins, alpha=0.6, color="#27ae60", label=f"clean (n = {len(ts['neg'])})")
            a2.hist(ts["pos"], bins=bins, alpha=0.6, color="#e67e22", label=f"{D.positive} (n = {len(ts['pos'])})")
            a2.axvline(m.threshold, color="black", ls="--", label="threshold (train split)")
            a2.set_xlabel(f"mean activation of latents {D.selected_latents}")
            a2.set_ylabel("test generations")
            a2.legend(fontsize=7)
        else:
            a2.text(0.5, 0.5, "mechanistic signal not measured:\n" + str(m.skipped)[:150], ha="center", va="center",
                    wrap=True, fontsize=8, transform=a2.transAxes)
        a2.set_title("(b) mechanistic signal (test split)", fontsize=9)
        for name, col in zip(SIGNALS, ("#2980b9", "#8e44ad", "#c0392b")):
            s = D.result(name)
            if isinstance(s, Signal):
                a3.plot(s.roc["fpr"], s.roc["tpr"], color=col,
                        label=f"{name}: acc {100 * s.accuracy.rate:.0f}%, AUC {s.auc.auc:.2f}")
        a3.plot([0, 1], [0, 1], color="gray", lw=0.6, ls=":")
        a3.set_xlabel("false positive rate")
        a3.set_ylabel("true positive rate")
        a3.set_title(f"(c) ROC on the test split (paper: combined accuracy {paper.SECTION8['combined_detection_accuracy']:.2f})", fontsize=9)
        a3.legend(fontsize=7, loc="lower right")
        _draw_models(a4, D)
    fig.suptitle("Figure 7: detecting generations of the warning-trained model", fontsize=11)
    save(fig, path, dpi=110)


def _draw_models(ax, D: DetectionMetrics) -> None:
    """(d) each model's share of leaking answers (Wilson 95%), by class."""
    M = D.models
    if not M:
        ax.text(0.5, 0.5, "model-level detection not computed", ha="center", va="center", fontsize=8, transform=ax.transAxes)
        return
    for j, u in enumerate(M.models):
        v = u.leak
        ax.errorbar([j], [100 * v.rate], yerr=[[100 * (v.rate - v.lo)], [100 * (v.hi - v.rate)]], fmt="o",
                    color="#e67e22" if u.label else "#27ae60", capsize=3)
    ax.set_xticks(range(len(M.models)), [u.name for u in M.models], rotation=60, fontsize=7)
    ax.set_ylabel("% of the model's answers that leak (Wilson 95%)")
    c = M.results["combined"]
    acc = c.accuracy if isinstance(c, ModelSignal) else None
    ax.set_title("(d) per model" + (f": leave-one-out accuracy {100 * acc.rate:.0f}% ({acc.k}/{acc.n})" if acc else
                                     " (too few models to classify)"), fontsize=9)


def markdown(r: DetectionMetrics | dict) -> str:
    D = _metrics(r)
    if D.skipped:
        return skipped("detection", D.skipped)
    sp, S = D.ran
    out = [heading("detection"), ""]
    out += [f"Positives: generations of {D.positive}; negatives drawn evenly from {D.negatives} ({D.drawn}). "
            f"Split by prompt: train {sp.train.n} generations ({sp.train.pos} positive), test {sp.test.n} "
            f"({sp.test.pos} positive). Scores, weights and thresholds come from the train split only.", ""]
    if D.mechanistic_skipped:
        out += [f"Mechanistic signal not measured: {D.mechanistic_skipped}.", ""]
    out += ["| Signal | Score | Test accuracy [95% CI] | TPR | FPR | ROC AUC [95% CI] | Train accuracy |", "|---|---|---|---|---|---|---|"]
    for name in SIGNALS:
        s = D.result(name)
        if not isinstance(s, Signal):
            out.append(f"| {name} | — | skipped: {s.skipped} | | | | |")
            continue
        out.append(f"| {name} | {s.score} | {fmt_rate(s.accuracy)} | {fmt_rate(s.tpr)} | {fmt_rate(s.fpr)} | "
                   f"{_fmt_auc(s.auc)} | {fmt_rate(s.train_accuracy)} |")
    out += ["", f"Raw signals: format leakage {fmt_rate(S.leak.pos)} of {D.positive} generations vs {fmt_rate(S.leak.neg)} "
            f"of clean ones (paper: {100 * paper.SECTION8['l1_format_leak']:.0f}% of L1 outputs); target content "
            f"{fmt_rate(S.target.pos)} vs {fmt_rate(S.target.neg)}"
            + (f"; selected latents' mean activation {S.mech['pos_mean']:.3f} vs {S.mech['neg_mean']:.3f}" if S.mech is not None else "")
            + f". Paper: combined accuracy {paper.SECTION8['combined_detection_accuracy']:.2f} with simple thresholding.", ""]
    out += model_markdown(D) + ["![Figure 7](figures/fig7_detection.png)", ""]
    return "\n".join(out)


def _fmt_model_value(v: Mean | None) -> str:
    return "—" if v is None else fmt_mean(v, 3)


def model_markdown(r: DetectionMetrics | dict) -> list[str]:
    """The model-level table, its results beside the per-answer ones, and which level the paper meant."""
    D = _metrics(r)
    M = D.models
    target = paper.SECTION8["combined_detection_accuracy"]
    if not M:
        return ["Model-level detection was not computed (metrics of an earlier version).", ""]
    out = ["### Per model", "",
           f"Each model scored from its answers ({M.unit}; {M.n_models['positive']} {D.positive} models, "
           f"{M.n_models['negative']} clean). Leak and target: share of the model's answers (Wilson 95% over its answers)"
           + (f"; probe and latents: mean over up to {M.mech_answers_per_model} of its answers (t 95%)" if M.mech_answers_per_model else "")
           + ".", "",
           "| Model | Label | Answers | Leak | Target | Probe | Latents |", "|---|---|---|---|---|---|---|"]
    for u in M.models:
        out.append(f"| {u.name} | {'positive' if u.label else 'clean'} | {u.n} | {fmt_rate(u.leak)} | "
                   f"{fmt_rate(u.target)} | {_fmt_model_value(u.probe)} | {_fmt_model_value(u.latents)} |")
    out += ["", "Over models: accuracy with the threshold chosen on the other models (leave one model out), Clopper-Pearson "
            "95% over models; ROC AUC with a stratified bootstrap over models (degenerate when the classes separate) and the "
            "exact permutation p value of AUC > 0.5.", "",
            "| Signal (over models) | Score | Accuracy [exact 95%] | Majority share | TPR | FPR | ROC AUC [bootstrap] | exact p |",
            "|---|---|---|---|---|---|---|---|"]
    for name in MODEL_SIGNALS:
        ms = M.results.get(name)
        if not isinstance(ms, ModelSignal):
            out.append(f"| {name} | — | skipped: {ms.skipped if ms else ''} | | | | | |")
            continue
        out.append(f"| {name} | {ms.score} | {fmt_rate(ms.accuracy)} | {100 * ms.majority:.0f}% | {fmt_rate(ms.tpr)} | "
                   f"{fmt_rate(ms.fpr)} | {_fmt_auc(ms.auc)} | {ms.auc.p_exact:.3g} |")
    level = next((n for n in ("combined", "behavioural") if isinstance(D.result(n), Signal)), None)
    best = D.result(level) if level else None
    per_answer = f"{fmt_rate(best.accuracy)} ({level})" if isinstance(best, Signal) else "not measured"
    c = M.results["combined"]
    per_model = c.accuracy if isinstance(c, ModelSignal) else None
    need = min_units(target)
    out += ["", f"**The paper's {target:.2f} beside both levels.** Per answer: {per_answer}; per model: "
            + (f"{fmt_rate(per_model)} (combined)" if per_model else "not measured") + f". An accuracy that rounds to {target:.2f} needs at least "
            f"{need} classified units; the paper trains one model per condition ({PAPER_MODELS} models with the baseline), so its "
            f"{target:.2f} can only have been counted over generations: the paper most likely meant the per-answer level. "
            "Per model, a run needs that many models (conditions x seeds) before an accuracy like it can even be stated.", ""]
    return out
