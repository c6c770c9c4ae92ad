"""Which SAE latents carry signal: candidate filtering, then Model-X knockoffs (paper §5.3).

The paper takes 47 high-activation candidate latents and keeps the 11 that pass the knockoff
filter at target FDR q = 0.1. :func:`candidate_latents` picks the candidates; then
:func:`knockoff_select` runs knockpy's Model-X filter (Gaussian knockoffs, lasso coefficient
difference statistic) with ``X`` the candidates' activations and ``y`` the context label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().float().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def candidate_latents(
    acts_by_context: Mapping[str, object], k: int = 47, targets: Sequence[str] = ("direct", "warning")
) -> np.ndarray:
    """Top-``k`` latents by mean activation over the target contexts, among those active there.

    ``acts_by_context`` maps a context name (``direct``, ``warning``, ``safe``) to its SAE latent
    activations, shape (rows, width). Returns latent indices, highest mean first (fewer than
    ``k`` when fewer latents ever fire in the target contexts).
    """
    missing = [t for t in targets if t not in acts_by_context]
    if missing:
        raise KeyError(f"no activations for target context(s) {missing}; have {sorted(acts_by_context)}")
    target = np.concatenate([_np(acts_by_context[t]) for t in targets], axis=0)
    mean = target.mean(0)
    active = np.flatnonzero((target > 0).any(0))
    order = active[np.argsort(-mean[active], kind="stable")]
    return order[:k]


def knockoff_select(X, y, q: float = 0.1, offset: int = 1, seed: int = 0) -> dict:
    """Model-X knockoff filter: the columns of ``X`` (n, p) that carry signal about ``y`` (n,).

    Gaussian knockoffs (covariance by Ledoit-Wolf, knockpy's default S-matrix) and the lasso
    coefficient-difference statistic W. A binary ``y`` is fitted by the cross-validated linear
    lasso too, not the logistic one: Model-X knockoffs assume nothing about y given X, so any
    statistic is valid, and this one is several times faster. Columns that
    are constant are dropped first (they carry no signal and break the covariance estimate);
    returned indices refer to the columns of the ``X`` passed in.

    ``offset=1`` is knockoff+, which controls the FDR exactly; it needs (1 + #negatives) /
    #selected ≤ q, so at q = 0.1 it selects either nothing or at least 1/q = 10 features.
    ``offset=0`` controls a modified FDR and can select fewer. Cost grows like p³: filter to
    candidates first (:func:`candidate_latents`).

    Returns ``selected`` (column indices, sorted), ``W`` (per column, None for dropped ones),
    ``threshold`` (None when no threshold meets q, so nothing is selected), ``n``, ``p``, ``q``,
    ``offset``, ``dropped`` (constant columns). Everything is plain JSON (no NaN or infinity).
    """
    from knockpy.knockoff_filter import KnockoffFilter
    from knockpy.knockoff_stats import data_dependent_threshhold

    X, y = _np(X), _np(y).ravel()
    n, p = X.shape
    if y.shape[0] != n:
        raise ValueError(f"X has {n} rows but y has {y.shape[0]}")
    varying = np.flatnonzero(X.std(0) > 0)
    W: list[float | None] = [None] * p
    result = {"n": n, "p": p, "q": q, "offset": offset, "dropped": sorted(set(range(p)) - set(varying.tolist()))}
    if len(varying) < 2 or len(np.unique(y)) < 2:
        return {**result, "selected": [], "W": W, "threshold": None}
    Xv = X[:, varying]
    Xv = (Xv - Xv.mean(0)) / Xv.std(0)
    state = np.random.get_state()  # knockpy samples from numpy's global generator
    np.random.seed(seed)
    try:
        kfilter = KnockoffFilter(ksampler="gaussian", fstat="lasso")
        kfilter.forward(X=Xv, y=y, fdr=q, fstat_kwargs={"y_dist": "gaussian"})
    finally:
        np.random.set_state(state)
    w = np.asarray(kfilter.W, dtype=np.float64)
    threshold = float(data_dependent_threshhold(w, fdr=q, offset=offset))
    for j, wj in zip(varying.tolist(), w.tolist()):
        W[j] = wj
    selected = varying[w >= threshold].tolist()
    return {**result, "selected": sorted(selected), "W": W, "threshold": threshold if math.isfinite(threshold) else None}
