"""Rates with n and a Wilson 95% interval, Fisher's exact test, and seed spread.

Thin wrappers over statsmodels and scipy so every table reports the same fields.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint


def rate(k: int, n: int) -> dict:
    """``{"k", "n", "rate", "lo", "hi"}`` with a Wilson 95% interval (NaN when n = 0)."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": math.nan, "lo": math.nan, "hi": math.nan}
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return {"k": int(k), "n": int(n), "rate": k / n, "lo": float(lo), "hi": float(hi)}


def fisher(a: dict, b: dict) -> dict:
    """Two-sided Fisher's exact test of two rates (dicts from ``rate``)."""
    if not a["n"] or not b["n"]:
        return {"odds_ratio": math.nan, "p": math.nan}
    table = [[a["k"], a["n"] - a["k"]], [b["k"], b["n"] - b["k"]]]
    res = fisher_exact(table, alternative="two-sided")
    return {"odds_ratio": float(res.statistic), "p": float(res.pvalue)}


def ratio(a: dict, b: dict) -> dict:
    """Rate ratio a/b with a 95% interval (Katz log method; +0.5 correction when a count is 0)."""
    ka, na, kb, nb = a["k"], a["n"], b["k"], b["n"]
    if not na or not nb:
        return {"ratio": math.nan, "lo": math.nan, "hi": math.nan}
    if ka == 0 or kb == 0:
        ka, kb, na, nb = ka + 0.5, kb + 0.5, na + 0.5, nb + 0.5
    r = (ka / na) / (kb / nb)
    se = math.sqrt(max(1 / ka - 1 / na + 1 / kb - 1 / nb, 0.0))
    return {"ratio": r, "lo": r * math.exp(-1.96 * se), "hi": r * math.exp(1.96 * se)}


def spread(values: Sequence[float]) -> dict:
    """Across seeds: min, max, mean and sample standard deviation (0 for one seed)."""
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return {"min": math.nan, "max": math.nan, "mean": math.nan, "sd": math.nan, "seeds": 0}
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0
    return {"min": min(vals), "max": max(vals), "mean": mean, "sd": sd, "seeds": len(vals)}


def fmt_rate(r: dict, digits: int = 1) -> str:
    """'76.7% [62.1, 86.2] (23/30)'."""
    if not r["n"]:
        return "n/a (0)"
    return f"{100 * r['rate']:.{digits}f}% [{100 * r['lo']:.{digits}f}, {100 * r['hi']:.{digits}f}] ({r['k']}/{r['n']})"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def mean_ci(x) -> dict:
    """``{"n", "mean", "lo", "hi", "sd"}``: the mean with a 95% t interval (NaN when n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in np.asarray(x, dtype=float).ravel() if not math.isnan(v)])
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": math.nan, "lo": math.nan, "hi": math.nan, "sd": math.nan}
    m = float(x.mean())
    if n < 2:
        return {"n": 1, "mean": m, "lo": math.nan, "hi": math.nan, "sd": math.nan}
    sd = float(x.std(ddof=1))
    h = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if sd > 0 else 0.0
    return {"n": n, "mean": m, "lo": m - h, "hi": m + h, "sd": sd}


def fmt_mean(s: dict, digits: int = 2) -> str:
    """'0.42 [0.31, 0.53] (n = 12)'."""
    if not s or not s.get("n"):
        return "n/a (n = 0)"
    if math.isnan(s["lo"]):
        return f"{s['mean']:.{digits}f} (n = {s['n']})"
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}] (n = {s['n']})"
