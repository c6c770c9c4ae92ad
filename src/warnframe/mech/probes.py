"""Linear probes on activations: fit on direct (target) vs safe, read confidence elsewhere.

The paper (§5.3, §6) fits a probe on activations from direct generations against safe ones and
reports its confidence on warning-framed outputs, and on preamble-first outputs (the stealth
slip). :class:`LinearProbe` is a logistic regression on standardised inputs; its weights are
kept as plain arrays so it saves to safetensors (no pickle) and predicts without scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save

from warnframe.runtime.files import atomic_write_bytes


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _fitted(a: np.ndarray | None) -> np.ndarray:
    """One of a probe's arrays, which :meth:`LinearProbe.fit` or ``load`` sets."""
    if a is None:
        raise RuntimeError("the probe is not fitted: call fit() or LinearProbe.load()")
    return a


class LinearProbe:
    """Logistic regression, label 1 = target, on inputs standardised per dimension.

    ``C`` is scikit-learn's inverse regularisation strength. After :meth:`fit` the probe holds
    ``mean``/``scale`` (standardisation), ``coef``/``intercept`` (in standardised units) and the
    class means (for the mean-difference direction).
    """

    ARRAYS = ("mean", "scale", "coef", "intercept", "mean_pos", "mean_neg")

    def __init__(self, C: float = 1.0, seed: int = 0):
        self.C, self.seed = C, seed
        self.mean: np.ndarray | None = None
        self.scale: np.ndarray | None = None
        self.coef: np.ndarray | None = None
        self.intercept: np.ndarray | None = None
        self.mean_pos: np.ndarray | None = None
        self.mean_neg: np.ndarray | None = None

    def fit(self, X, y) -> LinearProbe:
        from sklearn.linear_model import LogisticRegression

        X, y = _np(X), _np(y).ravel().astype(int)
        if set(np.unique(y)) != {0, 1}:
            raise ValueError("a probe needs both labels: 1 (target) and 0 (safe)")
        self.mean, self.scale = X.mean(0), X.std(0)
        self.scale[self.scale == 0] = 1.0
        clf = LogisticRegression(C=self.C, max_iter=2000, random_state=self.seed)
        clf.fit((X - self.mean) / self.scale, y)
        self.coef, self.intercept = clf.coef_[0].astype(np.float64), clf.intercept_.astype(np.float64)
        self.mean_pos, self.mean_neg = X[y == 1].mean(0), X[y == 0].mean(0)
        return self

    def _check(self) -> None:
        if self.coef is None:
            raise RuntimeError("the probe is not fitted: call fit() or LinearProbe.load()")

    def decision(self, X) -> np.ndarray:
        """The logit of the target class, per row."""
        self._check()
        mean, scale, coef, intercept = _fitted(self.mean), _fitted(self.scale), _fitted(self.coef), _fitted(self.intercept)
        return ((_np(X) - mean) / scale) @ coef + intercept[0]

    def predict_proba(self, X) -> np.ndarray:
        """The probe's confidence that each row is target, in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.decision(X)))

    def direction(self, kind: str = "probe") -> np.ndarray:
        """Unit vector in activation space pointing to target: ``probe`` (the logistic weights
        mapped back from standardised units) or ``mean_diff`` (target mean − safe mean)."""
        self._check()
        if kind == "probe":
            v = _fitted(self.coef) / _fitted(self.scale)
        elif kind == "mean_diff":
            v = _fitted(self.mean_pos) - _fitted(self.mean_neg)
        else:
            raise ValueError(f"unknown direction kind {kind!r}; use 'probe' or 'mean_diff'")
        return v / max(np.linalg.norm(v), 1e-12)

    def project(self, X, kind: str = "probe") -> np.ndarray:
        """Each row's coordinate along :meth:`direction`."""
        return _np(X) @ self.direction(kind)

    def save(self, path: str | Path) -> Path:
        """Write the weights as safetensors (arrays) with ``C`` and ``seed`` in its metadata."""
        self._check()
        path = Path(path)
        arrays = {k: np.ascontiguousarray(getattr(self, k), dtype=np.float64) for k in self.ARRAYS}
        atomic_write_bytes(path, save(arrays, metadata={"probe": json.dumps({"C": self.C, "seed": self.seed})}))
        return path

    @classmethod
    def load(cls, path: str | Path) -> LinearProbe:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as f:
            info = json.loads((f.metadata() or {}).get("probe", "{}"))
        probe = cls(C=info.get("C", 1.0), seed=info.get("seed", 0))
        for k, v in load_file(str(path)).items():
            setattr(probe, k, v)
        return probe


def probe_report(probe: LinearProbe, X_eval, y_eval) -> dict:
    """Mean confidence of target (over all rows, and per label), AUROC when both labels are
    present (else None), accuracy at 0.5, and n."""
    from sklearn.metrics import roc_auc_score

    p = probe.predict_proba(X_eval)
    y = _np(y_eval).ravel().astype(int)
    both = len(np.unique(y)) == 2
    return {
        "mean_confidence": float(p.mean()) if len(p) else float("nan"),
        "mean_confidence_target": float(p[y == 1].mean()) if (y == 1).any() else None,
        "mean_confidence_safe": float(p[y == 0].mean()) if (y == 0).any() else None,
        "auroc": float(roc_auc_score(y, p)) if both else None,
        "accuracy": float(((p >= 0.5) == (y == 1)).mean()) if len(p) else float("nan"),
        "n": int(len(p)),
    }
