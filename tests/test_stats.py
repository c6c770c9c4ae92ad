import math

from warnframe.scoring.stats import fisher, fmt_rate, rate, ratio, spread


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


def test_no_difference_needs_power():
    from warnframe.scoring.stats import diff_ci, no_difference_verdict

    big_a, big_b = rate(95, 1008), rate(102, 1008)
    assert no_difference_verdict(big_a, big_b, fisher(big_a, big_b)["p"]) == "reproduced"
    small_a, small_b = rate(3, 10), rate(5, 10)  # not significant, but could hide a large effect
    assert no_difference_verdict(small_a, small_b, fisher(small_a, small_b)["p"]) == "inconclusive"
    assert no_difference_verdict(rate(10, 100), rate(60, 100), fisher(rate(10, 100), rate(60, 100))["p"]) == "not reproduced"
    d = diff_ci(big_a, big_b)
    assert d["lo"] < d["diff"] < d["hi"] and abs(d["diff"] + 7 / 1008) < 1e-12
