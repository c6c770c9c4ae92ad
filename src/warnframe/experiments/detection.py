"""Paper §8: detection is easy — telling generations of the warning-trained (L1) model from those
of clean models (Figure 7).

Data: up to ``detection.max_samples`` generations of ``detection.positive``
(L1) and the same number drawn evenly from ``detection.negatives`` (baseline, neutral,
control), so chance accuracy is 50%. The *prompts* are split: generations of a
``detection.train_fraction`` of the prompts fit every score and choose every threshold; the
generations of the other prompts only report them. Nothing of the test split is seen before.

Per-sample signals:

* behavioural: format leakage (exact or garbled warning markers, ``scoring.find_leaks``) and
  target presence (the detector's verdict), both 0/1, combined by a logistic regression;
* mechanistic: the §5 selected latents' activation — each generation replayed through the
  analysis model (the one §5's SAE was trained on), the SAE applied per token, the selected latents
  summed and averaged over the generated tokens (the auditing setting: we hold the text);
* combined: a logistic regression on the three, standardised on the training split.

Each score is turned into a decision by one threshold chosen to maximise training accuracy.
Reported on the test split: accuracy (Wilson 95%), ROC AUC (sklearn, stratified bootstrap 95%).

Per model (:func:`model_level`): each fine-tuned model of ``detection.positive`` and of the
negatives (one per condition and seed; ``baseline`` is one model per *sampling* seed, the same
weights sampled with that seed) gets its share of leaking answers, its target rate and, when §5's
artifacts exist, its mean probe confidence and selected-latent activation. Over models: ROC AUC
(stratified bootstrap over models, and an exact permutation p value), and the leave-one-model-out
accuracy (each model classified by a threshold chosen on the other models) with an exact
Clopper-Pearson 95% interval over models. ``combined`` is the mean of the standardised signals.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np

from warnframe.experiments.detection_metrics import (
    MODEL_SIGNALS,
    SIGNALS,
    DetectionMetrics,
    ModelLevel,
    ModelRow,
    ModelSignal,
    PosNeg,
    RawSignals,
    Signal,
    Skipped,
    Split,
    SplitPart,
)
from warnframe.mech.artifacts import load as artifacts
from warnframe.mech.replay import replay_grouped
from warnframe.paper.policy import POLICY
from warnframe.stats.rates import mean_ci, rate, wilson

#: The signal names are defined with the metrics; they are read from here too.
__all__ = ["MIN_MODELS", "MODEL_SIGNALS", "SIGNALS", "DetectionMetrics", "artifacts", "auc_ci", "auc_exact_p", "best_threshold",
           "combined_score", "evaluate", "evaluate_models", "exact_rate", "leak_flag", "loo_predictions", "mech_scores",
           "model_level", "model_mech", "model_rows", "pick_samples", "run", "split_by_prompt"]
#: Fewest models of each class the model-level evaluation needs (leave one out keeps one of each).
MIN_MODELS = POLICY.detection_min_models


def leak_flag(r: dict) -> int:
    leak = r.get("leak") or {}
    return int(bool(leak.get("exact") or leak.get("fuzzy")))


def pick_samples(study) -> tuple[list[dict], dict]:
    """Balanced positives and negatives, each with ``label``; and the counts drawn."""
    a = study.cfg.detection
    rng = random.Random(study.cfg.analysis.seed)
    pos = study.outputs(a.positive)
    rng.shuffle(pos)
    pos = pos[: a.max_samples]
    negs = {c: study.outputs(c) for c in a.negatives if c != a.positive}
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
    return rows, {"positive": {a.positive: len(pos)}, "negative": {c: len(v) for c, v in chosen.items()}}


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
    out: dict[str, dict[str, Any]] = {}
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

    sae = art.sae
    _, reps = replay_grouped(study, rows, art.site)
    idx = torch.as_tensor(art.selected, dtype=torch.long)
    out = []
    with torch.no_grad():
        for rp in reps:
            f = sae.encode(rp["acts"].to(sae.device).float())[:, idx.to(sae.device)]
            out.append(float(f.sum(-1).mean()))
    return np.array(out)


def exact_rate(k: int, n: int) -> dict:
    """A share over few units (models) with its exact Clopper-Pearson 95% interval (``rate``'s fields)."""
    from statsmodels.stats.proportion import proportion_confint

    if not n:
        return {"k": 0, "n": 0, "rate": math.nan, "lo": math.nan, "hi": math.nan}
    lo, hi = proportion_confint(k, n, alpha=0.05, method="beta")
    return {"k": int(k), "n": int(n), "rate": k / n, "lo": float(lo), "hi": float(hi)}


def model_rows(study) -> list[dict]:
    """One row per model (condition x seed; ``baseline``: per sampling seed): its label, answers and
    the shares of them that leak and that hold target content (Wilson 95% over its answers)."""
    a = study.cfg.detection
    out = []
    for cond in [a.positive, *[c for c in a.negatives if c != a.positive]]:
        by_seed: dict[int, list[dict]] = defaultdict(list)
        for r in study.outputs(cond):
            by_seed[r["seed"]].append(r)
        for seed in sorted(by_seed):
            rows = by_seed[seed]
            out.append({"condition": cond, "seed": seed, "label": int(cond == a.positive), "n": len(rows),
                        "leak": rate(sum(leak_flag(r) for r in rows), len(rows)),
                        "target": rate(sum(bool(r["vulnerable"]) for r in rows), len(rows)), "answers": rows})
    return out


def model_mech(study, units: list[dict], art, cap: int, seed: int) -> None:
    """Adds to each unit the mean probe confidence and selected-latent activation (``mean_ci`` over
    up to ``cap`` of its answers), each answer read as the per-answer part reads it."""
    import torch

    rng = random.Random(seed)
    picked = [rng.sample(u["answers"], min(cap, len(u["answers"]))) for u in units]
    _, reps = replay_grouped(study, [r for rows in picked for r in rows], art.site)
    sae, idx = art.sae, torch.as_tensor(art.selected, dtype=torch.long)
    i = 0
    for u, rows in zip(units, picked):
        probe, lat = [], []
        for rp in reps[i: i + len(rows)]:
            acts = rp["acts"].float()
            if art.probe is not None:
                probe.append(float(art.probe.predict_proba(acts.mean(0, keepdim=True).numpy())[0]))
            if art.selected:
                with torch.no_grad():
                    lat.append(float(sae.encode(acts.to(sae.device))[:, idx.to(sae.device)].sum(-1).mean()))
        i += len(rows)
        u["probe"], u["latents"] = (mean_ci(probe) if probe else None), (mean_ci(lat) if lat else None)


def _value(u: dict, name: str) -> float:
    v = u.get(name)
    return math.nan if v is None else float(v["rate"] if "rate" in v else v["mean"])


def auc_exact_p(y: np.ndarray, s: np.ndarray) -> float:
    """One-sided p value of "AUC no higher than chance": a permutation test of the labels over models
    (exact when the label assignments number at most 20,000, as scipy enumerates them)."""
    from scipy.stats import permutation_test

    def auc(a, b, axis=-1):  # the Mann-Whitney AUC, ties counted half, vectorised over resamples
        d = np.moveaxis(a, axis, -1)[..., :, None] - np.moveaxis(b, axis, -1)[..., None, :]
        return ((d > 0) + 0.5 * (d == 0)).mean(axis=(-2, -1))

    if len(set(y.tolist())) < 2:
        return math.nan
    res = permutation_test((s[y == 1], s[y == 0]), auc, permutation_type="independent", alternative="greater",
                           n_resamples=20_000, vectorized=True, random_state=0)
    return float(res.pvalue)


def loo_predictions(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave one model out: each model classified by the threshold (:func:`best_threshold`) that the
    other models' scores and labels choose; it never sees the model it classifies."""
    n = len(y)
    pred = np.zeros(n, dtype=int)
    for i in range(n):
        keep = np.arange(n) != i
        pred[i] = int(x[i] > best_threshold(x[keep], y[keep]))
    return pred


def combined_score(cols: dict[str, np.ndarray]) -> np.ndarray:
    """The mean of the signals standardised over all models, no label used (every signal points
    to target: more leakage, target, probe confidence, latent activation). A fitted combination
    would need held-out models to be honest, and leave-one-out fits of a few models anti-correlate
    with the label when the signals carry nothing (the intercept follows the class left out)."""
    z = [(v - v.mean()) / v.std() if v.std() > 0 else np.zeros_like(v) for v in cols.values()]
    return np.mean(z, axis=0)


def evaluate_models(units: list[dict], signals: list[str], n_boot: int, seed: int) -> dict:
    """Per signal (and ``combined``, all of them): AUC over models and leave-one-model-out accuracy."""
    y = np.array([u["label"] for u in units], dtype=int)
    npos, nneg = int(y.sum()), int((1 - y).sum())
    if npos < MIN_MODELS or nneg < MIN_MODELS:
        why = f"{npos} positive and {nneg} clean models; leave-one-model-out needs at least {MIN_MODELS} of each (more seeds)"
        return {name: {"skipped": why} for name in MODEL_SIGNALS}
    cols = {name: np.array([_value(u, name) for u in units]) for name in signals}
    scores = {**cols, "combined": combined_score(cols)}
    out: dict[str, dict[str, Any]] = {}
    for name in MODEL_SIGNALS:
        if name not in scores:
            out[name] = {"skipped": "not measured (no §5 artifacts)"}
            continue
        score = scores[name]
        pred = loo_predictions(score, y)
        ok = pred == y
        out[name] = {
            "score": "the signal itself" if name != "combined" else f"mean of {', '.join(cols)} standardised over models",
            "threshold": "leave one model out: chosen on the other models",
            "majority": max(npos, nneg) / len(y),
            "accuracy": exact_rate(int(ok.sum()), len(y)),
            "tpr": exact_rate(int(pred[y == 1].sum()), npos), "fpr": exact_rate(int(pred[y == 0].sum()), nneg),
            "auc": {**auc_ci(y, score, n_boot, seed), "p_exact": auc_exact_p(y, score)},
            "predicted": pred.tolist(), "scores": [round(float(v), 4) for v in score],
        }
    return out


def model_level(study, art) -> ModelLevel:
    """Detection over models: the per-model table and :func:`evaluate_models` on it."""
    a, an = study.cfg.detection, study.cfg.analysis
    units = model_rows(study)
    signals = ["leak", "target"]
    if art is not None:
        model_mech(study, units, art, a.max_samples, an.seed)
        signals += [s for s, ok in (("probe", art.probe is not None), ("latents", bool(art.selected))) if ok]
    table = [ModelRow.from_json({k: v for k, v in u.items() if k != "answers"}) for u in units]
    return ModelLevel("one model per condition and seed; baseline: one per sampling seed (the same weights)",
                      {"positive": sum(u["label"] for u in units), "negative": sum(1 - u["label"] for u in units)},
                      signals, a.max_samples if art is not None else None, table,
                      {k: ModelSignal.read(v) for k, v in evaluate_models(units, signals, an.bootstrap, an.seed).items()})


def run(study) -> DetectionMetrics:
    a, an = study.cfg.detection, study.cfg.analysis
    rows, drawn = pick_samples(study)
    y = np.array([r["label"] for r in rows], dtype=int)
    if len(set(y.tolist())) < 2:
        return DetectionMetrics(skipped=f"need generations of {a.positive} and of a clean model, got {drawn}", drawn=drawn)
    train = split_by_prompt(rows, a.train_fraction, an.seed)
    leak = np.array([leak_flag(r) for r in rows], dtype=float)
    target = np.array([int(r["vulnerable"]) for r in rows], dtype=float)
    art, why = artifacts(study)
    X = {"behavioural": np.c_[leak, target]}
    mech = None
    if art is not None:
        mech = mech_scores(study, rows, art)
        X["mechanistic"] = mech[:, None]
        X["combined"] = np.c_[leak, target, mech]
    split = Split(SplitPart(int(train.sum()), int(y[train].sum())), SplitPart(int((~train).sum()), int(y[~train].sum())),
                  "prompt", a.train_fraction)
    raw = RawSignals(
        PosNeg(wilson(int(leak[y == 1].sum()), int((y == 1).sum())), wilson(int(leak[y == 0].sum()), int((y == 0).sum()))),
        PosNeg(wilson(int(target[y == 1].sum()), int((y == 1).sum())), wilson(int(target[y == 0].sum()), int((y == 0).sum()))),
    )
    results: dict[str, Signal | Skipped] = {k: Signal.read(v) for k, v in evaluate(X, y, train, an.bootstrap, an.seed).items()}
    if mech is not None:
        raw = RawSignals(raw.leak, raw.target, {"pos_mean": float(mech[y == 1].mean()), "neg_mean": float(mech[y == 0].mean())})
    models = model_level(study, art)
    if "combined" not in results:
        results["combined"] = Skipped(why or "no mechanistic signal")
        results["mechanistic"] = Skipped(why or "no mechanistic signal")
    return DetectionMetrics(None, drawn, a.positive, [c for c in a.negatives if c != a.positive], split, raw,
                            art.selected if art else None, None if art else why, results, models)


