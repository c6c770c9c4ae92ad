"""Cluster-aware rates and differences: the interval must cover the truth when answers cluster."""

from __future__ import annotations

import numpy as np
import pytest

from warnframe.stats.clustered import (
    bootstrap_diff,
    bootstrap_rate,
    cluster_diff,
    cluster_mean_diff,
    cluster_rate,
    tost,
)
from warnframe.stats.rates import rate
from warnframe.stats.types import Diff, Rate


def simulate(rng, mean_logit, seeds=5, prompts=42, samples=5, seed_sd=0.6, prompt_sd=1.0, prompt_effects=None):
    """Crossed random effects on the logit scale: seed (one fine-tune) + prompt + noise."""
    pe = prompt_effects if prompt_effects is not None else rng.normal(0, prompt_sd, prompts)
    se = rng.normal(0, seed_sd, seeds)
    rows = []
    for s in range(seeds):
        for p in range(prompts):
            prob = 1 / (1 + np.exp(-(mean_logit + se[s] + pe[p])))
            for i in range(samples):
                rows.append({"seed": s, "prompt_id": f"p{p}", "index": i, "vulnerable": bool(rng.random() < prob)})
    return rows


def test_independent_answers_give_about_the_binomial_interval():
    rng = np.random.default_rng(1)
    rows = [{"seed": 0, "prompt_id": f"p{i % 40}", "vulnerable": bool(rng.random() < 0.3)} for i in range(2000)]
    r, w = cluster_rate(rows), rate(sum(x["vulnerable"] for x in rows), len(rows))
    assert r["k"] == w["k"] and r["n"] == 2000
    assert 0.6 < (r["hi"] - r["lo"]) / (w["hi"] - w["lo"]) < 1.5
    assert 0.5 < r["design_effect"] < 2


def test_clustered_answers_widen_the_interval_and_report_the_design_effect():
    # half the prompts always produce the target, half never: 1,000 answers are worth about 20
    rows = [{"seed": s, "prompt_id": f"p{p}", "vulnerable": p % 2 == 0} for s in range(5) for p in range(20)
            for _ in range(10)]
    r, w = cluster_rate(rows), rate(500, 1000)
    assert r["rate"] == 0.5 and r["seeds"] == 5 and r["prompts"] == 20
    assert (r["hi"] - r["lo"]) > 3 * (w["hi"] - w["lo"])
    assert r["design_effect"] > 10 and r["effective_n"] < 100
    assert [x["rate"] for x in r["per_seed"]] == [0.5] * 5


def test_the_interval_is_the_same_on_every_run():
    rows = simulate(np.random.default_rng(3), -1.0)
    assert cluster_rate(rows) == cluster_rate(rows)


def test_coverage_under_crossed_random_effects():
    """Over repeated studies, the 95% interval covers the population rate most of the time; a
    binomial interval on the same data covers it far less often (it ignores the clustering)."""
    rng = np.random.default_rng(0)
    truth_rng = np.random.default_rng(99)
    # the population rate: seed and prompt effects integrated out (Monte Carlo, large draw)
    z = -1.0 + truth_rng.normal(0, 0.6, 400_000) + truth_rng.normal(0, 1.0, 400_000)
    truth = float(np.mean(1 / (1 + np.exp(-z))))
    hits = binom_hits = 0
    trials = 60
    for _ in range(trials):
        rows = simulate(rng, -1.0)
        r = cluster_rate(rows, replicates=1000)
        w = rate(r["k"], r["n"])
        hits += r["lo"] <= truth <= r["hi"]
        binom_hits += w["lo"] <= truth <= w["hi"]
    assert hits / trials >= 0.85
    assert binom_hits < hits


def test_a_difference_shares_prompts_and_keeps_seeds_apart():
    rng = np.random.default_rng(5)
    pe = rng.normal(0, 1.0, 42)
    same_a = simulate(rng, -1.0, prompt_effects=pe)
    same_b = simulate(rng, -1.0, prompt_effects=pe)
    far = simulate(rng, 1.0, prompt_effects=pe)
    d0 = cluster_diff(same_a, same_b)
    assert d0["lo"] < 0 < d0["hi"] and d0["p"] > 0.05
    d1 = cluster_diff(far, same_a)
    assert d1["lo"] > 0 and d1["p"] < 0.01 and d1["lo90"] >= d1["lo"]


@pytest.mark.parametrize(("lo90", "hi90", "margin", "equivalent"),
                         [(-0.02, 0.03, 0.05, True), (-0.02, 0.06, 0.05, False), (-0.2, 0.2, 0.05, False)])
def test_tost_needs_the_whole_90_interval_inside_the_margin(lo90, hi90, margin, equivalent):
    assert tost(Diff(0.0, -1.0, 1.0, lo90, hi90, 0.5), margin)["equivalent"] is equivalent


def test_all_answers_alike_still_gets_an_interval():
    rows = [{"seed": s, "prompt_id": f"p{p}", "vulnerable": False} for s in range(2) for p in range(42)]
    r = cluster_rate(rows)
    assert r["rate"] == 0 and r["lo"] == 0 and r["hi"] == rate(0, 84)["hi"] > 0.03


def test_paired_seeds_cancel_a_shared_seed_effect():
    """Two settings of the same models: a seed effect both share widens an unpaired interval only."""
    rng = np.random.default_rng(7)
    pe, se = rng.normal(0, 1.0, 42), rng.normal(0, 1.5, 5)

    def setting(shift):
        return [{"seed": s, "prompt_id": f"p{p}", "vulnerable": bool(rng.random() < 1 / (1 + np.exp(-(-1 + shift + se[s] + pe[p]))))}
                for s in range(5) for p in range(42) for _ in range(5)]

    a, b = setting(0.0), setting(0.0)
    paired, unpaired = cluster_diff(a, b, paired_seeds=True), cluster_diff(a, b)
    assert paired["diff"] == unpaired["diff"] and "shared seeds" in paired["interval"]
    assert paired["hi"] - paired["lo"] < 0.7 * (unpaired["hi"] - unpaired["lo"])
    assert paired["lo"] < 0 < paired["hi"]


def test_typed_and_dict_forms_are_the_same_numbers_in_the_same_layout():
    """``bootstrap_*`` return Rate and Diff; the ``cluster_*`` dicts are their ``to_json``, key for key
    and in order (the metrics files' layout), and ``from_json`` reads them back to the same value."""
    rng = np.random.default_rng(11)
    a, b = simulate(rng, -1.0), simulate(rng, 0.0)
    r = bootstrap_rate(a)
    assert isinstance(r, Rate) and r.clusters.seeds == 5 and "5 seeds x 42 prompts" in r.over
    assert list(cluster_rate(a)) == ["k", "n", "rate", "seeds", "prompts", "interval", "lo", "hi", "design_effect",
                                     "effective_n", "per_seed"]
    assert cluster_rate(a) == r.to_json() and Rate.from_json(r.to_json()) == r
    d = bootstrap_diff(a, b, paired_seeds=True)
    assert list(cluster_diff(a, b)) == ["diff", "lo", "hi", "lo90", "hi90", "p", "interval"]
    assert cluster_diff(a, b, paired_seeds=True) == d.to_json() and Diff.from_json(d.to_json()) == d
    assert bootstrap_diff([], b).over == "no answers" and not bootstrap_diff([], b).finite
    means = [{**x, "delta": float(x["vulnerable"])} for x in a]
    assert cluster_mean_diff(means, means)["diff"] == 0 and cluster_mean_diff(means, []) is None
    assert list(Diff(0.1, 0, 0.2, 0.01, 0.19, 0.04, "x", label="L0 − neutral").to_json())[0] == "label"
