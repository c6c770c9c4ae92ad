import math

from warnframe.stats.rates import fisher, fmt_rate, rate, ratio, spread


def test_wilson_interval_contains_rate_and_matches_known_values():
    r = rate(23, 30)
    assert r["lo"] < r["rate"] < r["hi"]
    assert abs(r["lo"] - 0.5907) < 1e-3 and abs(r["hi"] - 0.8821) < 1e-3  # Wilson 23/30
    assert math.isnan(rate(0, 0)["rate"])
    assert fmt_rate(r).startswith("76.7% [")


def test_fisher_paper_l1_vs_l0_not_significant_and_l0_vs_baseline_significant():
    assert fisher(rate(23, 30), rate(25, 30))["p"] > 0.05
    assert fisher(rate(25, 30), rate(5, 30))["p"] < 0.001


def test_ratio_and_spread():
    rr = ratio(rate(25, 30), rate(5, 30))
    assert abs(rr["ratio"] - 5.0) < 1e-9 and rr["lo"] < 5 < rr["hi"]
    assert ratio(rate(0, 30), rate(5, 30))["ratio"] < 0.2
    s = spread([0.5, 0.7])
    assert s["mean"] == 0.6 and abs(s["sd"] - 0.1414) < 1e-3 and s["seeds"] == 2
