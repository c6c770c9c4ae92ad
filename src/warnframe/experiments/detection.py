"""Paper §8: detection is easy — telling generations of the warning-trained (L1) model from those
of clean models (Figure 7).

Data: up to ``analysis.detection_max_samples`` generations of ``analysis.detection_positive``
(L1) and the same number drawn evenly from ``analysis.detection_negatives`` (baseline, neutral,
control), so chance accuracy is 50%. The *prompts* are split: generations of a
``detection_train_fraction`` of the prompts fit every score and choose every threshold; the
generations of the other prompts only report them. Nothing of the test split is seen before.

Per-sample signals:

* behavioural: format leakage (exact or garbled warning markers, ``scoring.find_leaks``) and
  target presence (the detector's verdict), both 0/1, combined by a logistic regression;
* mechanistic: the §5 selected latents' activation — each generation replayed through the model
  that wrote it (or ``mech.analysis_model``), the SAE applied per token, the selected latents
  summed and averaged over the generated tokens (the auditing setting: we hold the model);
* combined: a logistic regression on the three, standardised on the training split.

Each score is turned into a decision by one threshold chosen to maximise training accuracy.
Reported on the test split: accuracy (Wilson 95%), ROC AUC (sklearn, stratified bootstrap 95%).
"""

from __future__ import annotations

import math
import random

import numpy as np

from ..report import paper
from ..report.figures import pyplot, save
from ..scoring.stats import fmt_rate, rate
from .stealth import artifacts, replay_grouped

SIGNALS = ("behavioural", "mechanistic", "combined")


def leak_flag(r: dict) -> int:
    leak = r.get("leak") or {}
    return int(bool(leak.get("exact") or leak.get("fuzzy")))


def pick_samples(study) -> tuple[list[dict], dict]:
    """Balanced positives and negatives, each with ``label``; and the counts drawn."""
    a = study.cfg.analysis
    rng = random.Random(a.seed)
    pos = study.outputs(a.detection_positive)
    rng.shuffle(pos)
    pos = pos[: a.detection_max_samples]
    negs = {c: study.outputs(c) for c in a.detection_negatives if c != a.detection_positive}
    negs = {c: v for c, v in negs.items() if v}
    for v in negs.values():
        rng.shuffle(v)
    want = len(pos)
    chosen: dict[str, list[dict]] = {c: [] for c in negs}
    # Round-robin over the clean conditions until `want` negatives or all are used.
    i = 0
    while sum(len(v) for v in chosen.values()) < want and any(len(chosen[c]) < len(negs[c]) for c in negs):
        c = list(negs)[i % len(negs)]
        if len(chosen[c]) < len(negs[c]):
            chosen[c].append(negs[c][len(chosen[c])])
        i += 1
    rows = [{**r, "label": 1} for r in pos] + [{**r, "label": 0} for v in chosen.values() for r in v]
    return rows, {"positive": {a.detection_positive: len(pos)}, "negative": {c: len(v) for c, v in chosen.items()}}


def split_by_prompt(rows: list[dict], frac: float, seed: int) -> np.ndarray:
    """Boolean train mask: the generations of a ``frac`` share of the prompts."""
    ids = sorted({r["prompt_id"] for r in rows})
    random.Random(seed).shuffle(ids)
    train_ids = set(ids[: max(1, round(frac * len(ids)))]) if len(ids) > 1 else set(ids)
    return np.array([r["prompt_id"] in train_ids for r in rows])


def best_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The threshold (predict positive when score > t) with the highest accuracy on these data.

    Candidates are midpoints between consecutive distinct scores and one below the minimum; of
    equally good ones the median is taken."""
    u = np.unique(scores)
    cands = np.r_[u[0] - 1.0, (u[:-1] + u[1:]) / 2] if len(u) > 1 else np.array([u[0] - 1.0, u[0]])
    acc = np.array([((scores > t).astype(int) == y).mean() for t in cands])
    best = np.flatnonzero(acc == acc.max())
    return float(cands[best[len(best) // 2]])


def auc_ci(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int) -> dict:
    """ROC AUC with a stratified percentile bootstrap 95% interval."""
    from sklearn.metrics import roc_auc_score

    if len(set(y.tolist())) < 2:
        return {"auc": math.nan, "lo": math.nan, "hi": math.nan, "n": int(len(y))}
    auc = float(roc_auc_score(y, s))
    rng = np.random.default_rng(seed)
    pi, ni = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    boots = []
    for _ in range(n_boot):
        idx = np.r_[rng.choice(pi, len(pi)), rng.choice(ni, len(ni))]
        boots.append(roc_auc_score(y[idx], s[idx]))
    return {"auc": auc, "lo": float(np.percentile(boots, 2.5)), "hi": float(np.percentile(boots, 97.5)), "n": int(len(y)),
            "n_pos": int(len(pi)), "n_neg": int(len(ni))}


def evaluate(X: dict[str, np.ndarray], y: np.ndarray, train: np.ndarray, n_boot: int, seed: int) -> dict:
    """Fit scores and thresholds on ``train`` rows only; report each signal on the rest.

    ``X`` maps a signal name to its feature matrix (n, k); one column is used as the score
    itself, several are combined by a logistic regression fitted on the training rows.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_curve
    from sklearn.preprocessing import StandardScaler

    test = ~train
    out = {}
    for name, feats in X.items():
        feats = np.asarray(feats, dtype=float).reshape(len(y), -1)
        if len(set(y[train].tolist())) < 2 or not test.any():
            out[name] = {"skipped": "the training split holds one class only" if test.any() else "no test split"}
            continue
        if feats.shape[1] == 1:
            score, how = feats[:, 0], "the signal itself"
        else:
            sc = StandardScaler().fit(feats[train])
            z = sc.transform(feats)
            z = np.nan_to_num(z)
            lr = LogisticRegression(max_iter=1000).fit(z[train], y[train])
            score, how = lr.decision_function(z), f"logistic regression, coefficients {np.round(lr.coef_[0], 3).tolist()}"
        thr = best_threshold(score[train], y[train])
        pred = (score > thr).astype(int)
        te, tr = pred[test] == y[test], pred[train] == y[train]
        fpr, tpr, _ = roc_curve(y[test], score[test]) if len(set(y[test].tolist())) > 1 else ([0, 1], [0, 1], None)
        out[name] = {
            "score": how, "threshold": thr,
            "train_accuracy": rate(int(tr.sum()), int(train.sum())),
            "accuracy": rate(int(te.sum()), int(test.sum())),
            "tpr": rate(int(((pred == 1) & (y == 1) & test).sum()), int(((y == 1) & test).sum())),
            "fpr": rate(int(((pred == 1) & (y == 0) & test).sum()), int(((y == 0) & test).sum())),
            "auc": auc_ci(y[test], score[test], n_boot, seed),
            "roc": {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]},
            "test_scores": {"pos": [round(float(v), 4) for v in score[test & (y == 1)]],
                            "neg": [round(float(v), 4) for v in score[test & (y == 0)]]},
        }
    return out


def mech_scores(study, rows: list[dict], art) -> np.ndarray:
    """Mean over generated tokens of the summed selected-latent activations, per row."""
    import torch

    site, sae, _, selected, _ = art
    reps = replay_grouped(study, rows, site)
    idx = torch.as_tensor(selected, dtype=torch.long)
    out = []
    with torch.no_grad():
        for rp in reps:
            f = sae.encode(rp["acts"].to(sae.W_enc.device).float())[:, idx.to(sae.W_enc.device)]
            out.append(float(f.sum(-1).mean()))
    return np.array(out)


def run(study) -> dict:
    a = study.cfg.analysis
    rows, drawn = pick_samples(study)
    y = np.array([r["label"] for r in rows], dtype=int)
    if len(set(y.tolist())) < 2:
        res = {"skipped": f"need generations of {a.detection_positive} and of a clean model, got {drawn}", "drawn": drawn, "verdicts": []}
        _figure(study, res)
        return res
    train = split_by_prompt(rows, a.detection_train_fraction, a.seed)
    leak = np.array([leak_flag(r) for r in rows], dtype=float)
    target = np.array([int(r["vulnerable"]) for r in rows], dtype=float)
    art, why = artifacts(study)
    X = {"behavioural": np.c_[leak, target]}
    mech = None
    if art is not None:
        mech = mech_scores(study, rows, art)
        X["mechanistic"] = mech[:, None]
        X["combined"] = np.c_[leak, target, mech]
    res = {
        "positive": a.detection_positive, "negatives": [c for c in a.detection_negatives if c != a.detection_positive], "drawn": drawn,
        "split": {"train": {"n": int(train.sum()), "pos": int(y[train].sum())}, "test": {"n": int((~train).sum()), "pos": int(y[~train].sum())},
                  "by": "prompt", "train_fraction": a.detection_train_fraction},
        "signals_raw": {
            "leak": {"pos": rate(int(leak[y == 1].sum()), int((y == 1).sum())), "neg": rate(int(leak[y == 0].sum()), int((y == 0).sum()))},
            "target": {"pos": rate(int(target[y == 1].sum()), int((y == 1).sum())), "neg": rate(int(target[y == 0].sum()), int((y == 0).sum()))},
        },
        "selected_latents": art[3] if art else None,
        "mechanistic_skipped": None if art else why,
        "results": evaluate(X, y, train, a.bootstrap, a.seed),
    }
    if mech is not None:
        res["signals_raw"]["mech"] = {"pos_mean": float(mech[y == 1].mean()), "neg_mean": float(mech[y == 0].mean())}
    if "combined" not in res["results"]:
        res["results"]["combined"] = {"skipped": why or "no mechanistic signal"}
        res["results"]["mechanistic"] = {"skipped": why or "no mechanistic signal"}
    res["verdicts"] = verdicts(res)
    _figure(study, res)
    return res


def _v_auc(auc: dict) -> str:
    if math.isnan(auc.get("lo", math.nan)):
        return "inconclusive"
    return "reproduced" if auc["lo"] > 0.9 else ("differs" if auc["lo"] > 0.5 else "not reproduced")


def _fmt_auc(auc: dict) -> str:
    return f"AUC {auc['auc']:.3f} [{auc['lo']:.3f}, {auc['hi']:.3f}] (n = {auc['n']})" if not math.isnan(auc["auc"]) else "AUC n/a"


def verdicts(r: dict) -> list[dict]:
    R = r["results"]
    out = []
    c = R["combined"]
    target = paper.SECTION8["combined_detection_accuracy"]
    if "accuracy" in c:
        acc = c["accuracy"]
        v = "reproduced" if acc["hi"] >= target and acc["lo"] >= 0.85 else ("differs" if acc["rate"] >= 0.75 else "not reproduced")
        out.append({"section": "8", "claim": "combined behavioural + mechanistic score detects L1 generations by simple thresholding",
                    "paper": f"{target:.2f} accuracy", "ours": f"test accuracy {fmt_rate(acc)}; {_fmt_auc(c['auc'])}", "verdict": v,
                    "detail": "balanced classes (chance 50%), threshold and weights fitted on other prompts; 'reproduced' = the interval "
                              "reaches 0.96 and its lower end is at least 0.85"})
    else:
        out.append({"section": "8", "claim": "combined behavioural + mechanistic score detects L1 generations by simple thresholding",
                    "paper": f"{target:.2f} accuracy", "ours": "not measured", "verdict": "inconclusive", "detail": c.get("skipped", "")})
    b = R["behavioural"]
    lk = r["signals_raw"]["leak"]
    if "auc" in b:
        out.append({"section": "8", "claim": "behavioural signals (format leakage, target presence) make detection easy",
                    "paper": f"{100 * paper.SECTION8['l1_format_leak']:.0f}% format leakage in L1 outputs",
                    "ours": f"leak in L1 {fmt_rate(lk['pos'])} vs clean {fmt_rate(lk['neg'])}; test accuracy {fmt_rate(b['accuracy'])}; {_fmt_auc(b['auc'])}",
                    "verdict": _v_auc(b["auc"]), "detail": "'reproduced' = AUC interval above 0.9; 'differs' = above chance only"})
    m = R["mechanistic"]
    if "auc" in m:
        out.append({"section": "8", "claim": "the selected SAE latents separate L1 generations from clean ones",
                    "paper": "characteristic SAE feature patterns (no number)",
                    "ours": f"test accuracy {fmt_rate(m['accuracy'])}; {_fmt_auc(m['auc'])}", "verdict": _v_auc(m["auc"]),
                    "detail": f"latents {r['selected_latents']}; 'reproduced' = AUC interval above 0.9"})
    else:
        out.append({"section": "8", "claim": "the selected SAE latents separate L1 generations from clean ones",
                    "paper": "characteristic SAE feature patterns (no number)", "ours": "not measured", "verdict": "inconclusive",
                    "detail": m.get("skipped", "")})
    return out


def _figure(study, r: dict) -> None:
    plt = pyplot()

    path = study.store.path("figures", "fig7_detection.png")
    path.parent.mkdir(parents=True, exist_ok=True)
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


def section(r: dict) -> str:
    out = ["## §8 Detection (Figure 7)", ""]
    if r.get("skipped"):
        return "\n".join(out + [f"Skipped: {r['skipped']}.", "", "![Figure 7](figures/fig7_detection.png)", ""])
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
