"""Rates with n and a Wilson 95% interval, Fisher's exact test, and seed spread.

Thin wrappers over statsmodels and scipy so every table reports the same fields. :func:`wilson`,
:func:`fisher_test` and :func:`t_mean` give the typed :class:`~warnframe.stats.types.Rate`,
``Fisher`` and ``Mean``; :func:`rate`, :func:`fisher` and :func:`mean_ci` the same as the dicts the
metrics files hold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint

from warnframe.stats.types import Fisher, Mean, Rate, as_mean, as_rate


def wilson(k: int, n: int) -> Rate:
    """k of n with a Wilson 95% interval (NaN when n = 0)."""
    if n == 0:
        return Rate(0, 0, math.nan, math.nan, math.nan)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return Rate(int(k), int(n), k / n, float(lo), float(hi))


def rate(k: int, n: int) -> dict:
    """:func:`wilson` as ``{"k", "n", "rate", "lo", "hi"}``."""
    return wilson(k, n).to_json()


def fisher_test(a: Rate | dict, b: Rate | dict) -> Fisher:
    """Two-sided Fisher's exact test of two rates (NaN when either has no answers)."""
    a, b = as_rate(a), as_rate(b)
    if not a.n or not b.n:
        return Fisher(math.nan, math.nan)
    res = fisher_exact([[a.k, a.n - a.k], [b.k, b.n - b.k]], alternative="two-sided")
    return Fisher(float(res.statistic), float(res.pvalue))


def fisher(a: Rate | dict, b: Rate | dict) -> dict:
    """:func:`fisher_test` as ``{"odds_ratio", "p"}``."""
    return fisher_test(a, b).to_json()


def ratio(a: Rate | dict, b: Rate | dict) -> dict:
    """Rate ratio a/b with a 95% interval (Katz log method; +0.5 correction when a count is 0)."""
    a, b = as_rate(a), as_rate(b)
    ka, na, kb, nb = float(a.k), float(a.n), float(b.k), float(b.n)
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


def fmt_rate(r: Rate | dict, digits: int = 1) -> str:
    """'76.7% [62.1, 86.2] (23/30)'."""
    r = as_rate(r)
    if not r.n:
        return "n/a (0)"
    return f"{100 * r.rate:.{digits}f}% [{100 * r.lo:.{digits}f}, {100 * r.hi:.{digits}f}] ({r.k}/{r.n})"


def fmt_p(p: float) -> str:
    if math.isnan(p):
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def t_mean(x) -> Mean:
    """The mean of the non-NaN values of ``x`` with a 95% t interval (NaN when n < 2)."""
    from scipy import stats

    x = np.asarray([v for v in np.asarray(x, dtype=float).ravel() if not math.isnan(v)])
    n = len(x)
    if n == 0:
        return Mean(0, math.nan, math.nan, math.nan, math.nan)
    m = float(x.mean())
    if n < 2:
        return Mean(1, m, math.nan, math.nan, math.nan)
    sd = float(x.std(ddof=1))
    h = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)) if sd > 0 else 0.0
    return Mean(n, m, m - h, m + h, sd)


def mean_ci(x) -> dict:
    """:func:`t_mean` as ``{"n", "mean", "lo", "hi", "sd"}``."""
    return t_mean(x).to_json()


def fmt_mean(s: Mean | dict | None, digits: int = 2) -> str:
    """'0.42 [0.31, 0.53] (n = 12)'."""
    s = as_mean(s)
    if s is None or not s.n:
        return "n/a (n = 0)"
    if math.isnan(s.lo):
        return f"{s.mean:.{digits}f} (n = {s.n})"
    return f"{s.mean:.{digits}f} [{s.lo:.{digits}f}, {s.hi:.{digits}f}] (n = {s.n})"
