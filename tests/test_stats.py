import math

from warnframe.stats.rates import fisher, fmt_mean, fmt_rate, mean_ci, rate, ratio, spread, t_mean, wilson
from warnframe.stats.types import WILSON, Mean, Rate, as_diff, as_mean, as_rate


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


def test_typed_rates_and_means_read_and_write_the_dict_layout():
    r = wilson(23, 30)
    assert isinstance(r, Rate) and r.over == WILSON and r.clusters is None
    assert rate(23, 30) == r.to_json() and list(r.to_json()) == ["k", "n", "rate", "lo", "hi"]
    assert as_rate(rate(23, 30)) == r and as_rate(r) is r
    assert fmt_rate(r) == fmt_rate(rate(23, 30)) and fisher(r, wilson(5, 30)) == fisher(rate(23, 30), rate(5, 30))
    m = t_mean([1.0, 2.0, 4.0, math.nan])
    assert isinstance(m, Mean) and m.n == 3 and mean_ci([1.0, 2.0, 4.0]) == m.to_json()
    assert list(m.to_json()) == ["n", "mean", "lo", "hi", "sd"] and Mean.from_json(m.to_json()) == m
    assert fmt_mean(m) == fmt_mean(m.to_json()) and fmt_mean(None) == fmt_mean(t_mean([])) == "n/a (n = 0)"
    assert as_diff(None) is None and as_diff({}) is None and as_mean({}) is None
    assert math.isnan(as_diff({"diff": 0.1}).lo) and as_diff({"diff": 0.1}).finite
