"""Typed statistics: a :class:`Rate` (k of n), a :class:`Diff` (a difference, with its p value) and a
:class:`Mean`, each with its 95% interval and ``over``: what that interval is over; and
:class:`Fisher`, the result of Fisher's exact test.

They are the seam between the statistics (``rates``, ``clustered``), the metrics files and the
verdict rules (``report.claims``). ``to_json`` writes, and ``from_json`` reads, the dict layout the
metrics files have always had, key for key and in the same order, so a file written before these
types existed reads back as the same value. :func:`as_rate`, :func:`as_diff` and :func:`as_mean`
take either form (a report part may still hold the dicts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: ``over`` of a rate with a Wilson interval: every answer counted as independent.
WILSON = "answers (Wilson)"
#: ``over`` of a mean with a t interval over its values.
T_INTERVAL = "values (t interval)"


@dataclass(frozen=True)
class Clusters:
    """How the answers of a cluster-bootstrap rate fall into seeds x prompts. ``design_effect``:
    the bootstrap variance over the binomial one; ``per_seed``: ``{"seed", "k", "n", "rate"}`` each."""

    seeds: int
    prompts: int
    design_effect: float
    effective_n: int
    per_seed: list[dict]


@dataclass(frozen=True)
class Rate:
    """``k`` of ``n`` answers (``rate`` = k/n, NaN when n = 0) with a 95% interval [``lo``, ``hi``].

    A Wilson rate has ``clusters`` None and ``over`` :data:`WILSON`; a seed x prompt bootstrap
    rate has its ``clusters`` and says in ``over`` how many seeds and prompts it resampled.
    JSON: ``{k, n, rate, lo, hi}``; a bootstrap rate adds ``seeds, prompts, interval`` (``over``)
    before ``lo`` and ``design_effect, effective_n, per_seed`` after ``hi``.
    """

    k: int
    n: int
    rate: float
    lo: float
    hi: float
    over: str = WILSON
    clusters: Clusters | None = None

    def to_json(self) -> dict:
        c = self.clusters
        if c is None:
            return {"k": self.k, "n": self.n, "rate": self.rate, "lo": self.lo, "hi": self.hi}
        return {"k": self.k, "n": self.n, "rate": self.rate, "seeds": c.seeds, "prompts": c.prompts, "interval": self.over,
                "lo": self.lo, "hi": self.hi, "design_effect": c.design_effect, "effective_n": c.effective_n,
                "per_seed": c.per_seed}

    @classmethod
    def from_json(cls, d: dict) -> Rate:
        clusters = None
        if "seeds" in d:
            clusters = Clusters(d["seeds"], d["prompts"], d.get("design_effect", math.nan), d.get("effective_n", d["n"]),
                                list(d.get("per_seed", [])))
        return cls(d["k"], d["n"], d["rate"], d["lo"], d["hi"], d.get("interval", WILSON), clusters)


@dataclass(frozen=True)
class Diff:
    """A difference a − b (``diff``) with its 95% [``lo``, ``hi``] and 90% [``lo90``, ``hi90``]
    intervals (the 90% one is what TOST reads) and the two-sided ``p`` of "no difference".

    ``label`` names it when it is a reference (e.g. "L0 − neutral"). JSON: ``{diff, lo, hi, lo90,
    hi90, p, interval}`` (``interval`` is ``over``), with ``label`` first when set.
    """

    diff: float
    lo: float
    hi: float
    lo90: float
    hi90: float
    p: float
    over: str = ""
    label: str | None = None

    @property
    def finite(self) -> bool:
        """Whether there was anything to compare (a NaN difference: no answers on a side)."""
        return math.isfinite(self.diff)

    def to_json(self) -> dict:
        head = {} if self.label is None else {"label": self.label}
        return {**head, "diff": self.diff, "lo": self.lo, "hi": self.hi, "lo90": self.lo90, "hi90": self.hi90, "p": self.p,
                "interval": self.over}

    @classmethod
    def from_json(cls, d: dict) -> Diff:
        """Read a difference; a missing number reads as NaN (hand-made and older dicts carry fewer keys)."""
        nan = math.nan
        return cls(d.get("diff", nan), d.get("lo", nan), d.get("hi", nan), d.get("lo90", nan), d.get("hi90", nan),
                   d.get("p", nan), d.get("interval", ""), d.get("label"))

    @classmethod
    def missing(cls, over: str, label: str | None = None) -> Diff:
        """A difference that could not be measured (every number NaN), and why in ``over``."""
        nan = math.nan
        return cls(nan, nan, nan, nan, nan, nan, over, label)


@dataclass(frozen=True)
class Mean:
    """The mean of ``n`` values with a 95% t interval [``lo``, ``hi``] (NaN when n < 2) and their
    standard deviation ``sd``. JSON: ``{n, mean, lo, hi, sd}``."""

    n: int
    mean: float
    lo: float
    hi: float
    sd: float
    over: str = T_INTERVAL

    def to_json(self) -> dict:
        return {"n": self.n, "mean": self.mean, "lo": self.lo, "hi": self.hi, "sd": self.sd}

    @classmethod
    def from_json(cls, d: dict) -> Mean:
        """Read a mean; missing numbers read as NaN (a cluster mean has no ``sd``)."""
        return cls(d.get("n", 0), d.get("mean", math.nan), d.get("lo", math.nan), d.get("hi", math.nan),
                   d.get("sd", math.nan), d.get("interval", T_INTERVAL))


@dataclass(frozen=True)
class Fisher:
    """Fisher's exact test of two rates (it treats every answer as independent). JSON: ``{odds_ratio, p}``."""

    odds_ratio: float
    p: float

    def to_json(self) -> dict:
        return {"odds_ratio": self.odds_ratio, "p": self.p}

    @classmethod
    def from_json(cls, d: dict) -> Fisher:
        return cls(d["odds_ratio"], d["p"])


def to_json_or_none(x) -> dict | None:
    """``x.to_json()``, or None for None (an optional statistic)."""
    return None if x is None else x.to_json()


def as_rate(r: Rate | dict) -> Rate:
    """``r`` as a :class:`Rate` (read from its dict layout when it is one)."""
    return r if isinstance(r, Rate) else Rate.from_json(r)


def as_diff(d: Diff | dict | None) -> Diff | None:
    """``d`` as a :class:`Diff`; None for None or an empty dict (nothing measured)."""
    if isinstance(d, Diff) or d is None:
        return d
    return Diff.from_json(d) if d else None


def as_mean(m: Mean | dict | None) -> Mean | None:
    """``m`` as a :class:`Mean`; None for None or an empty dict."""
    if isinstance(m, Mean) or m is None:
        return m
    return Mean.from_json(m) if m else None
