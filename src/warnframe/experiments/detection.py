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

from ..mech.artifacts import load as artifacts
from ..mech.replay import replay_grouped
from ..scoring.stats import rate

SIGNALS = ("behavioural", "mechanistic", "combined")


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

    sae = art.sae
    _, reps = replay_grouped(study, rows, art.site)
    idx = torch.as_tensor(art.selected, dtype=torch.long)
    out = []
    with torch.no_grad():
        for rp in reps:
            f = sae.encode(rp["acts"].to(sae.W_enc.device).float())[:, idx.to(sae.W_enc.device)]
            out.append(float(f.sum(-1).mean()))
    return np.array(out)


def run(study) -> dict:
    a, an = study.cfg.detection, study.cfg.analysis
    rows, drawn = pick_samples(study)
    y = np.array([r["label"] for r in rows], dtype=int)
    if len(set(y.tolist())) < 2:
        return {"skipped": f"need generations of {a.positive} and of a clean model, got {drawn}", "drawn": drawn}
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
    res = {
        "positive": a.positive, "negatives": [c for c in a.negatives if c != a.positive], "drawn": drawn,
        "split": {"train": {"n": int(train.sum()), "pos": int(y[train].sum())}, "test": {"n": int((~train).sum()), "pos": int(y[~train].sum())},
                  "by": "prompt", "train_fraction": a.train_fraction},
        "signals_raw": {
            "leak": {"pos": rate(int(leak[y == 1].sum()), int((y == 1).sum())), "neg": rate(int(leak[y == 0].sum()), int((y == 0).sum()))},
            "target": {"pos": rate(int(target[y == 1].sum()), int((y == 1).sum())), "neg": rate(int(target[y == 0].sum()), int((y == 0).sum()))},
        },
        "selected_latents": art.selected if art else None,
        "mechanistic_skipped": None if art else why,
        "results": evaluate(X, y, train, an.bootstrap, an.seed),
    }
    if mech is not None:
        res["signals_raw"]["mech"] = {"pos_mean": float(mech[y == 1].mean()), "neg_mean": float(mech[y == 0].mean())}
    if "combined" not in res["results"]:
        res["results"]["combined"] = {"skipped": why or "no mechanistic signal"}
        res["results"]["mechanistic"] = {"skipped": why or "no mechanistic signal"}
    return res


