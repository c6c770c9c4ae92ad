"""§4's metrics, typed: what ``experiments.behavior`` computes and ``report.sections.behavior`` reads.
:class:`BehaviorMetrics` is the whole section; ``to_json`` writes ``metrics/behavior.json`` (the layout
it has always had, key for key and in order) and ``from_json`` reads it back (the report may read a
file written by an earlier run, and ignores the ``verdicts`` kept beside the metrics).

Per condition: its answers' Wilson :class:`AnswerRates`, pooled (:class:`Pooled`: with the between-seed
:class:`Spread` and the seed x prompt bootstrap rates of :class:`Clustered`) and per seed, and the
target rate per family; per comparison a vs b a :class:`Comparison` (the cluster-aware difference
the verdicts read, Fisher's test and the rate ratio); per condition its preference :class:`Delta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from warnframe.lm.evaluation import AnswerRates
from warnframe.stats.types import Clusters, Diff, Fisher, Mean, Rate, as_mean, to_json_or_none

#: The answer rates ``lm.evaluation.rates`` gives, in its order.
#: The outcomes with a seed x prompt bootstrap rate (:class:`Clustered`), in order.
CLUSTERED = ("target", "leak_exact", "leak_any")


def clusters(r: Rate) -> Clusters:
    """A bootstrap rate's seeds x prompts (design effect, effective n, per seed); every rate of
    :class:`Clustered` has them."""
    if r.clusters is None:
        raise ValueError(f"not a seed x prompt bootstrap rate: {r}")
    return r.clusters


@dataclass(frozen=True)
class Spread:
    """A rate across seeds (``stats.rates.spread``): min, max, mean, sample sd (0 for one seed; all
    NaN, ``seeds`` 0, when no seed had answers). JSON: ``{min, max, mean, sd, seeds}``."""

    min: float
    max: float
    mean: float
    sd: float
    seeds: int

    def to_json(self) -> dict:
        return {"min": self.min, "max": self.max, "mean": self.mean, "sd": self.sd, "seeds": self.seeds}

    @classmethod
    def from_json(cls, d: dict) -> Spread:
        return cls(d["min"], d["max"], d["mean"], d["sd"], d["seeds"])


@dataclass(frozen=True)
class Clustered:
    """The seed x prompt pigeonhole-bootstrap rates of the target and of exact and any format leak
    (each with its :class:`~warnframe.stats.types.Clusters`: see :func:`clusters`)."""

    target: Rate
    leak_exact: Rate
    leak_any: Rate

    def to_json(self) -> dict:
        return {k: getattr(self, k).to_json() for k in CLUSTERED}

    @classmethod
    def from_json(cls, d: dict) -> Clustered:
        return cls(*(Rate.from_json(d[k]) for k in CLUSTERED))


@dataclass(frozen=True)
class Pooled(AnswerRates):
    """A condition's answers over all its seeds: the Wilson :class:`AnswerRates`, the between-seed spread
    of the target and exact-leak rates, and the cluster-aware rates (what the verdicts read)."""

    seed_spread: Spread
    leak_seed_spread: Spread
    cluster: Clustered

    def to_json(self) -> dict:
        return {**super().to_json(), "seed_spread": self.seed_spread.to_json(),
                "leak_seed_spread": self.leak_seed_spread.to_json(), "cluster": self.cluster.to_json()}

    @classmethod
    def of(cls, rates: AnswerRates, seed_spread: Spread, leak_seed_spread: Spread, cluster: Clustered) -> Pooled:
        """The pooled ``rates`` with their spreads and cluster-aware rates."""
        r = rates
        return cls(r.target, r.leak_exact, r.leak_any, r.parse_fail, r.target_parse_ok, seed_spread, leak_seed_spread, cluster)

    @classmethod
    def from_json(cls, d: dict) -> Pooled:
        return cls.of(AnswerRates.from_json(d), Spread.from_json(d["seed_spread"]), Spread.from_json(d["leak_seed_spread"]),
                      Clustered.from_json(d["cluster"]))


@dataclass(frozen=True)
class RateRatio:
    """The target-rate ratio a/b with its 95% interval (``stats.rates.ratio``: Katz log method).
    JSON: ``{ratio, lo, hi}``."""

    ratio: float
    lo: float
    hi: float

    def to_json(self) -> dict:
        return {"ratio": self.ratio, "lo": self.lo, "hi": self.hi}

    @classmethod
    def from_json(cls, d: dict) -> RateRatio:
        return cls(d["ratio"], d["lo"], d["hi"])


@dataclass(frozen=True)
class Comparison:
    """Condition a against b (JSON key ``<a>_vs_<b>``): the seed x prompt bootstrap difference of
    target rates a − b (``cluster``: what the verdicts read), Fisher's exact test of the target rates
    (``target``: the paper's test, kept for comparison) and their ratio."""

    cluster: Diff
    target: Fisher
    ratio: RateRatio

    def to_json(self) -> dict:
        return {"cluster": self.cluster.to_json(), "target": self.target.to_json(), "ratio": self.ratio.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Comparison:
        return cls(Diff.from_json(d["cluster"]), Fisher.from_json(d["target"]), RateRatio.from_json(d["ratio"]))


@dataclass(frozen=True)
class Delta:
    """A condition's sampling-free preference Δ = log p(secure) − log p(vulnerable): per prompt the
    mean over its ``seeds`` models, then the mean with a t interval over prompts; ``vs_neutral`` its
    difference from neutral's on the same prompts (None for neutral itself, or when none is shared);
    ``interval``: what the intervals are over."""

    delta: Mean
    seeds: int
    vs_neutral: Mean | None
    interval: str

    def to_json(self) -> dict:
        return {"delta": self.delta.to_json(), "seeds": self.seeds, "vs_neutral": to_json_or_none(self.vs_neutral),
                "interval": self.interval}

    @classmethod
    def from_json(cls, d: dict) -> Delta:
        return cls(Mean.from_json(d["delta"]), d["seeds"], as_mean(d.get("vs_neutral")), d["interval"])


@dataclass(frozen=True)
class BehaviorMetrics:
    """§4, all of it: the ``conditions`` that have answers (registry order), per condition its
    :class:`Pooled` rates, its :class:`AnswerRates` per seed (keyed by the seed as its JSON key, a string)
    and its target rate per family; the :class:`Comparison` of each pair compared (``<a>_vs_<b>``);
    then the fine-tuning sets' token ``budget`` (None without data marks) and each condition's
    :class:`Delta`. ``behavior.measure`` fills the first part, ``behavior.run`` the rest."""

    conditions: list[str]
    pooled: dict[str, Pooled]
    per_seed: dict[str, dict[str, AnswerRates]]
    per_family: dict[str, dict[str, Rate]]
    tests: dict[str, Comparison]
    budget: str | None = None
    delta: dict[str, Delta] = field(default_factory=dict)

    def test(self, a: str, b: str) -> Comparison | None:
        """The comparison a vs b (None when either condition was not run)."""
        return self.tests.get(f"{a}_vs_{b}")

    def cluster_diff(self, a: str, b: str) -> Diff | None:
        """The cluster-aware difference of target rates a − b (None when either condition was not run)."""
        t = self.test(a, b)
        return t.cluster if t else None

    def analysed(self) -> dict:
        """The part ``behavior.analyse`` has always returned: conditions, pooled, per_seed,
        per_family and tests (no budget, no Δ)."""
        return {"conditions": self.conditions, "pooled": {c: p.to_json() for c, p in self.pooled.items()},
                "per_seed": {c: {s: r.to_json() for s, r in d.items()} for c, d in self.per_seed.items()},
                "per_family": {c: {f: r.to_json() for f, r in d.items()} for c, d in self.per_family.items()},
                "tests": {k: t.to_json() for k, t in self.tests.items()}}

    def to_json(self) -> dict:
        return {**self.analysed(), "budget": self.budget, "delta": {c: d.to_json() for c, d in self.delta.items()}}

    @classmethod
    def from_json(cls, d: dict) -> BehaviorMetrics:
        return cls(conditions=list(d["conditions"]), pooled={c: Pooled.from_json(p) for c, p in d["pooled"].items()},
                   per_seed={c: {s: AnswerRates.from_json(r) for s, r in x.items()} for c, x in d["per_seed"].items()},
                   per_family={c: {f: Rate.from_json(r) for f, r in x.items()} for c, x in d["per_family"].items()},
                   tests={k: Comparison.from_json(t) for k, t in d["tests"].items()}, budget=d.get("budget"),
                   delta={c: Delta.from_json(x) for c, x in (d.get("delta") or {}).items()})
