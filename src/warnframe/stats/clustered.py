"""Rates and differences that respect how answers are clustered: by seed and by prompt.

A condition's answers are seeds × prompts × samples. Answers of one fine-tuned model to one
prompt are not independent (one run had an intraclass correlation of 0.16 across prompts, a
design effect of 4.6), and a seed is one fine-tune: the unit of replication. Seeds and prompts are
*crossed* (every seed answers every prompt), so the interval comes from the pigeonhole bootstrap
for crossed random effects (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat.): seeds and
prompts are resampled independently, with replacement, and the rate is recomputed over all
their cells. It is written here because no library offers a crossed-design bootstrap of a ratio
estimator; it is a few lines of numpy over the seed × prompt count matrices.

Two conditions share their prompts (the same held-out requests) but not their models, so a
difference resamples prompts jointly (one draw for both) and seeds separately per condition.
The percentile intervals are at 95% (two-sided) and 90% (the TOST equivalence test at 5%: both
one-sided tests pass exactly when the 90% interval lies inside ±margin).

Every function is seeded: the same rows give the same interval on every run. The ``bootstrap_*``
functions return the typed :class:`~warnframe.stats.types.Rate` and ``Diff``; ``cluster_rate``,
``cluster_diff`` and ``cluster_mean_diff`` the same as the dicts the metrics files hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

from warnframe.stats.types import Clusters, Diff, Rate

#: Bootstrap replicates outside a study; the Monte-Carlo error of a 2.5% quantile at 4,000 is well
#: under a point. Inside a section, ``analysis.bootstrap`` and ``analysis.seed`` decide (:func:`settings`).
REPLICATES = 4000


@dataclass(frozen=True)
class Bootstrap:
    """How many replicates every interval draws, and from which seed."""

    replicates: int = REPLICATES
    seed: int = 0


_SETTINGS: ContextVar[Bootstrap] = ContextVar("bootstrap", default=Bootstrap())  # noqa: B039 - frozen


@contextmanager
def settings(replicates: int, seed: int) -> Iterator[Bootstrap]:
    """Every interval computed inside uses ``replicates`` and ``seed`` unless a call names its own:
    the study runs each section inside ``settings(analysis.bootstrap, analysis.seed)``, so one knob
    sets the replicates of every interval of a run."""
    token = _SETTINGS.set(Bootstrap(replicates, seed))
    try:
        yield _SETTINGS.get()
    finally:
        _SETTINGS.reset(token)


def _resolve(replicates: int | None, seed: int | None) -> tuple[int, int]:
    now = _SETTINGS.get()
    return (now.replicates if replicates is None else replicates), (now.seed if seed is None else seed)


@dataclass(frozen=True)
class Cells:
    """Successes ``k`` and answers ``n`` per seed (rows) and prompt (columns)."""

    k: np.ndarray
    n: np.ndarray
    seeds: tuple
    prompts: tuple


def cells(rows: Iterable[dict], outcome: str = "vulnerable", prompts: Sequence | None = None) -> Cells:
    """Count ``outcome`` (a truthy field of each row) by ``seed`` × ``prompt_id``. ``prompts``
    fixes the column order (to align two conditions); prompts absent from the rows get n = 0."""
    rows = list(rows)
    seeds = tuple(sorted({r["seed"] for r in rows}))
    prompts = tuple(prompts) if prompts is not None else tuple(sorted({r["prompt_id"] for r in rows}))
    si = {s: i for i, s in enumerate(seeds)}
    pi = {p: j for j, p in enumerate(prompts)}
    k = np.zeros((len(seeds), len(prompts)))
    n = np.zeros((len(seeds), len(prompts)))
    for r in rows:
        j = pi.get(r["prompt_id"])
        if j is None:
            continue
        n[si[r["seed"]], j] += 1
        k[si[r["seed"]], j] += bool(r[outcome])
    return Cells(k, n, seeds, prompts)


def _weights(rng: np.random.Generator, size: int, replicates: int) -> np.ndarray:
    """How often each of ``size`` units is drawn in each replicate (rows: replicates)."""
    return rng.multinomial(size, np.full(size, 1 / size), size=replicates).astype(float)


def _replicate_rates(c: Cells, seed_w: np.ndarray, prompt_w: np.ndarray) -> np.ndarray:
    # rate_b = (w_b' K v_b) / (w_b' N v_b): all cells of the drawn seeds and prompts
    num = np.einsum("bs,sp,bp->b", seed_w, c.k, prompt_w)
    den = np.einsum("bs,sp,bp->b", seed_w, c.n, prompt_w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _quantiles(x: np.ndarray) -> dict:
    x = x[np.isfinite(x)]
    if not len(x):
        return {"lo": math.nan, "hi": math.nan, "lo90": math.nan, "hi90": math.nan}
    lo, hi, lo90, hi90 = np.quantile(x, [0.025, 0.975, 0.05, 0.95])
    return {"lo": float(lo), "hi": float(hi), "lo90": float(lo90), "hi90": float(hi90)}


def design_effect(c: Cells, boot_var: float) -> float:
    """Bootstrap variance over the variance the same rate would have if every answer were
    independent (binomial): how many answers one answer is worth, inverted."""
    n = c.n.sum()
    p = c.k.sum() / n if n else math.nan
    binom = p * (1 - p) / n if n else math.nan
    return float(boot_var / binom) if binom and binom > 0 else math.nan


def bootstrap_rate(rows: Iterable[dict], outcome: str = "vulnerable", *, replicates: int | None = None,
                   seed: int | None = None) -> Rate:
    """The rate of ``outcome`` with a seed × prompt pigeonhole-bootstrap 95% interval; its
    ``clusters`` hold the design effect, effective n and each seed's own rate."""
    c = cells(rows, outcome)
    k, n = int(c.k.sum()), int(c.n.sum())
    over = f"95% pigeonhole bootstrap over {len(c.seeds)} seeds x {len(c.prompts)} prompts"
    per_seed = [{"seed": s, "k": int(c.k[i].sum()), "n": int(c.n[i].sum()),
                 "rate": float(c.k[i].sum() / c.n[i].sum()) if c.n[i].sum() else math.nan}
                for i, s in enumerate(c.seeds)]
    if not n:
        return Rate(k, n, math.nan, math.nan, math.nan, over, Clusters(len(c.seeds), len(c.prompts), math.nan, 0, per_seed))
    replicates, seed = _resolve(replicates, seed)
    rng = np.random.default_rng(seed)
    reps = _replicate_rates(c, _weights(rng, len(c.seeds), replicates), _weights(rng, len(c.prompts), replicates))
    q = _quantiles(reps)
    if k in (0, n):
        # no spread to resample when every answer agrees: the Wilson interval, the only honest one left
        from warnframe.stats.rates import wilson

        w = wilson(k, n)
        q["lo"], q["hi"] = min(q["lo"], w.lo), max(q["hi"], w.hi)
        over += " (Wilson where all answers agree)"
    deff = design_effect(c, float(np.nanvar(reps)))
    clusters = Clusters(len(c.seeds), len(c.prompts), deff, round(n / deff) if deff and deff > 0 else n, per_seed)
    return Rate(k, n, k / n, q["lo"], q["hi"], over, clusters)


def cluster_rate(rows: Iterable[dict], outcome: str = "vulnerable", *, replicates: int | None = None,
                 seed: int | None = None) -> dict:
    """:func:`bootstrap_rate` as ``{k, n, rate, seeds, prompts, interval, lo, hi, design_effect,
    effective_n, per_seed}``."""
    return bootstrap_rate(rows, outcome, replicates=replicates, seed=seed).to_json()


def _diff(reps: np.ndarray, diff: float, replicates: int, over: str) -> Diff:
    """The difference ``diff`` with the percentile intervals of its finite replicates ``reps`` and
    the two-sided bootstrap p of "no difference" (twice the smaller tail share at 0, at least
    1/replicates)."""
    reps = reps[np.isfinite(reps)]
    p = min(1.0, 2 * min(float((reps <= 0).mean()), float((reps >= 0).mean())))
    q = _quantiles(reps)
    return Diff(diff, q["lo"], q["hi"], q["lo90"], q["hi90"], max(p, 1 / replicates), over)


def bootstrap_diff(rows_a: Iterable[dict], rows_b: Iterable[dict], outcome: str = "vulnerable", *,
                   replicates: int | None = None, seed: int | None = None, paired_seeds: bool = False) -> Diff:
    """Difference of rates a − b: prompts resampled jointly (shared), seeds per condition — or,
    with ``paired_seeds`` and the same seeds on both sides (two settings of the same fine-tuned
    models, as in §7), seeds resampled jointly too, so the shared seed effect cancels."""
    rows_a, rows_b = list(rows_a), list(rows_b)
    prompts = sorted({r["prompt_id"] for r in rows_a} | {r["prompt_id"] for r in rows_b})
    ca, cb = cells(rows_a, outcome, prompts), cells(rows_b, outcome, prompts)
    na, nb = ca.n.sum(), cb.n.sum()
    if not na or not nb:
        return Diff.missing("no answers")
    d = float(ca.k.sum() / na - cb.k.sum() / nb)
    replicates, seed = _resolve(replicates, seed)
    rng = np.random.default_rng(seed)
    pw = _weights(rng, len(prompts), replicates)
    paired = paired_seeds and ca.seeds == cb.seeds
    wa = _weights(rng, len(ca.seeds), replicates)
    wb = wa if paired else _weights(rng, len(cb.seeds), replicates)
    reps = _replicate_rates(ca, wa, pw) - _replicate_rates(cb, wb, pw)
    seeds = f"{len(ca.seeds)} shared seeds" if paired else f"{len(ca.seeds)} + {len(cb.seeds)} seeds"
    return _diff(reps, d, replicates, f"pigeonhole bootstrap: {len(prompts)} shared prompts, {seeds}")


def cluster_diff(rows_a: Iterable[dict], rows_b: Iterable[dict], outcome: str = "vulnerable", *,
                 replicates: int | None = None, seed: int | None = None, paired_seeds: bool = False) -> dict:
    """:func:`bootstrap_diff` as ``{diff, lo, hi, lo90, hi90, p, interval}``."""
    return bootstrap_diff(rows_a, rows_b, outcome, replicates=replicates, seed=seed, paired_seeds=paired_seeds).to_json()


def _mean_cells(rows: list[dict], prompts: list[str], field: str = "delta") -> Cells:
    """Sums of ``field`` and counts per seed × prompt (for a seed × prompt mean)."""
    seeds = sorted({r["seed"] for r in rows})
    si, pi = {s: i for i, s in enumerate(seeds)}, {p: j for j, p in enumerate(prompts)}
    k, n = np.zeros((len(seeds), len(prompts))), np.zeros((len(seeds), len(prompts)))
    for r in rows:
        if r["prompt_id"] in pi and math.isfinite(r[field]):
            k[si[r["seed"]], pi[r["prompt_id"]]] += r[field]
            n[si[r["seed"]], pi[r["prompt_id"]]] += 1
    return Cells(k, n, tuple(seeds), tuple(prompts))


def cluster_mean(rows: list[dict], field: str = "delta", seed: int | None = None, replicates: int | None = None) -> dict:
    """The mean of ``field`` with a 95% pigeonhole bootstrap interval over seeds × prompts (the
    same resampling as :func:`cluster_rate`, for a continuous measure)."""
    prompts = sorted({r["prompt_id"] for r in rows})
    c = _mean_cells(rows, prompts, field)
    n = int(c.n.sum())
    if not n:
        return {"mean": math.nan, "lo": math.nan, "hi": math.nan, "n": 0, "seeds": 0, "prompts": 0, "interval": "no values"}
    replicates, seed = _resolve(replicates, seed)
    rng = np.random.default_rng(seed)
    reps = _replicate_rates(c, _weights(rng, len(c.seeds), replicates), _weights(rng, len(c.prompts), replicates))
    q = _quantiles(reps)
    return {"mean": float(c.k.sum() / n), "lo": q["lo"], "hi": q["hi"], "n": n, "seeds": len(c.seeds),
            "prompts": len(c.prompts), "interval": f"95% pigeonhole bootstrap over {len(c.seeds)} seeds x {len(c.prompts)} prompts"}


def bootstrap_mean_diff(a: list[dict], b: list[dict], field: str = "delta", seed: int | None = None,
                        replicates: int | None = None) -> Diff | None:
    """Mean of ``field`` in ``a`` minus in ``b``, prompts resampled jointly and seeds jointly when
    both have the same seeds (``bootstrap_diff``'s rule); None without values."""
    prompts = sorted({r["prompt_id"] for r in a} | {r["prompt_id"] for r in b})
    ca, cb = _mean_cells(a, prompts, field), _mean_cells(b, prompts, field)
    if not ca.n.sum() or not cb.n.sum():
        return None
    replicates, seed = _resolve(replicates, seed)
    rng = np.random.default_rng(seed)
    pw = _weights(rng, len(prompts), replicates)
    wa = _weights(rng, len(ca.seeds), replicates)
    wb = wa if ca.seeds == cb.seeds else _weights(rng, len(cb.seeds), replicates)
    reps = _replicate_rates(ca, wa, pw) - _replicate_rates(cb, wb, pw)
    seeds = f"{len(ca.seeds)} shared seeds" if ca.seeds == cb.seeds else f"{len(ca.seeds)} + {len(cb.seeds)} seeds"
    return _diff(reps, float(ca.k.sum() / ca.n.sum() - cb.k.sum() / cb.n.sum()), replicates,
                 f"pigeonhole bootstrap: {len(prompts)} shared prompts, {seeds}")


def cluster_mean_diff(a: list[dict], b: list[dict], field: str = "delta", seed: int | None = None,
                      replicates: int | None = None) -> dict | None:
    """:func:`bootstrap_mean_diff` as ``{diff, lo, hi, lo90, hi90, p, interval}`` (None without values)."""
    d = bootstrap_mean_diff(a, b, field, seed, replicates)
    return d.to_json() if d else None


def tost(diff: Diff, margin: float) -> dict:
    """Two one-sided tests of equivalence within ±``margin`` at 5%: equivalent when the 90%
    interval of the difference lies inside the margin."""
    ok = bool(-margin < diff.lo90 and diff.hi90 < margin) if math.isfinite(diff.lo90) else False
    return {"equivalent": ok, "margin": margin, "lo90": diff.lo90, "hi90": diff.hi90}
