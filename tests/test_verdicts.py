"""The verdict rules (report.claims): equivalence needs TOST against an established reference
effect, a directional claim needs its test, a run that cannot tell says "inconclusive", and §4's
claims read the cluster-aware differences, judging L2, L3 and control against neutral first."""

from __future__ import annotations

import math

import pytest

from warnframe.experiments import behavior
from warnframe.report import claims as C
from warnframe.report.sections import behavior as rep
from warnframe.stats.types import Diff


def diff(d, lo, hi, p, lo90=None, hi90=None):
    """A cluster_diff-shaped dict (90% bounds default to 80% of the way in from the 95% ones)."""
    lo90 = lo + 0.2 * (d - lo) if lo90 is None else lo90
    hi90 = hi - 0.2 * (hi - d) if hi90 is None else hi90
    return {"diff": d, "lo": lo, "hi": hi, "lo90": lo90, "hi90": hi90, "p": p}


ESTABLISHED = diff(0.30, 0.22, 0.38, 0.0003)  # L0 − neutral = 30 points: margin ±10 points


def test_equivalence_needs_an_established_reference_effect():
    close = diff(0.01, -0.04, 0.06, 0.7)
    assert C.equivalence(close, ESTABLISHED)[0] == "reproduced"
    assert C.equivalence_margin(ESTABLISHED) == pytest.approx(0.10)
    # The same tight difference with no reference effect to be equivalent about: inconclusive.
    for ref in (diff(0.02, -0.01, 0.05, 0.2), diff(0.0, 0.0, 0.0, 1.0), None):
        v, why = C.equivalence(close, ref)
        assert v == "inconclusive" and "not established" in why
    assert C.equivalence_margin(diff(0.02, -0.01, 0.05, 0.2)) is None


def test_equivalence_not_reproduced_or_inconclusive():
    assert C.equivalence(diff(-0.15, -0.22, -0.08, 0.001), ESTABLISHED)[0] == "not reproduced"
    wide = diff(0.02, -0.20, 0.24, 0.8)  # not significant, but far too wide to show equivalence
    v, why = C.equivalence(wide, ESTABLISHED)
    assert v == "inconclusive" and "neither" in why
    # An interval within the old ±15-point rule but outside a third of the effect is not equivalence.
    assert C.equivalence(diff(-0.05, -0.13, 0.03, 0.2, -0.12, 0.02), ESTABLISHED)[0] == "inconclusive"


def test_directional_pass_fail_inconclusive():
    effect = C.paper_effect(5.0, 0.025)  # the paper's 5x on a 2.5% reference: +10 points
    assert effect == pytest.approx(0.10)
    assert C.directional(diff(0.08, 0.05, 0.11, 0.0003), 1, effect)[0] == "reproduced"
    assert C.directional(diff(-0.08, -0.11, -0.05, 0.0003), -1, -0.01)[0] == "reproduced"
    # Not significant, and the interval covers both 0 and the paper's effect: the run cannot tell.
    v, why = C.directional(diff(0.03, -0.02, 0.12, 0.2), 1, effect)
    assert v == "inconclusive" and "covers both" in why
    # Not significant, and the paper's effect is excluded: not reproduced.
    v, why = C.directional(diff(0.0, -0.02, 0.02, 0.9), 1, effect)
    assert v == "not reproduced" and "excludes" in why
    # Significant the other way.
    v, why = C.directional(diff(-0.05, -0.08, -0.02, 0.001), 1, effect)
    assert v == "not reproduced" and "other way" in why
    assert C.directional({"diff": math.nan}, 1, effect)[0] == "inconclusive"


def test_non_inferiority():
    assert C.no_worse(diff(-0.01, -0.05, 0.03, 0.6), 0.1)[0] == "reproduced"
    assert C.no_worse(diff(-0.3, -0.4, -0.2, 0.001), 0.1)[0] == "not reproduced"
    assert C.no_worse(diff(-0.1, -0.25, 0.05, 0.3), 0.1)[0] == "inconclusive"
    assert C.no_worse(diff(0.2, 0.1, 0.3, 0.001), 0.1)[0] == "reproduced"  # a rise removes nothing
    assert C.no_worse(diff(0.0, -0.1, 0.1, 1.0), None)[0] == "inconclusive"


def test_rules_read_a_typed_diff_as_its_dict():
    cases = [diff(0.01, -0.04, 0.06, 0.7), diff(-0.15, -0.22, -0.08, 0.001), diff(0.03, -0.02, 0.12, 0.2)]
    for d in cases:
        t, ref = Diff.from_json(d), Diff.from_json(ESTABLISHED)
        assert C.equivalence(t, ref) == C.equivalence(d, ESTABLISHED) and C.no_worse(t, 0.1) == C.no_worse(d, 0.1)
        assert C.directional(t, 1, 0.1) == C.directional(d, 1, 0.1) and C.fmt_diff(t) == C.fmt_diff(d)
        assert C.diff_interval(t) == C.diff_interval(d) == [d["lo"], d["hi"]]
    assert C.equivalence_margin(Diff.from_json(ESTABLISHED)) == pytest.approx(0.10) and C.diff_interval(None) is None
    assert C.equivalence(Diff.missing("no answers"), ESTABLISHED)[0] == "inconclusive"


def test_not_testable_is_a_verdict():
    assert "not testable" in C.VERDICTS
    c = C.claim("s7.kind_{kind}", kind="safety", label="safety instruction", paper="no effect", ours="x",
                verdict="not testable", why="never saw a system turn")
    assert c.record()["verdict"] == "not testable"


# ---------------------------------------------------------------- §4 on synthetic clustered rows


def _cond(cond: str, rate: float, seeds=(0, 1, 2, 3, 4), prompts: int = 42, samples: int = 5) -> list[dict]:
    """Rows of one condition at ``rate``, spread over seeds x prompts (a permutation, so each cell
    gets about ``rate``; leaks on a tenth of L1's answers)."""
    n = len(seeds) * prompts * samples
    rows = []
    for i in range(n):
        seed, p = seeds[i % len(seeds)], (i // len(seeds)) % prompts
        rows.append({"condition": cond, "seed": seed, "prompt_id": f"p{p}", "family": "sql_injection", "index": i,
                     "vulnerable": i * 7919 % n < round(rate * n), "parse_ok": True,
                     "leak": {"exact": ["# WARNING"] if cond == "L1" and i % 10 == 0 else [], "fuzzy": []}})
    return rows


def _study(rates: dict[str, float]) -> dict:
    return behavior.analyse([r for c, x in rates.items() for r in _cond(c, x)])


RATES = {"baseline": 0.05, "L0": 0.40, "L1": 0.39, "L2": 0.10, "L3": 0.04, "control": 0.03, "neutral": 0.04}


def test_section4_reads_cluster_differences_and_judges_against_neutral():
    res = _study(RATES)
    P = res["pooled"]["L1"]
    assert P["cluster"]["target"]["seeds"] == 5 and P["cluster"]["target"]["n"] == 1050
    assert {"design_effect", "effective_n", "per_seed"} <= set(P["cluster"]["target"]) and len(res["per_seed"]["L1"]) == 5
    assert set(res["tests"]["L2_vs_neutral"]) == {"cluster", "target", "ratio"}
    v = {c.id: c for c in rep.claims(res)}
    assert v["s4.l1_as_often_as_l0"].verdict == "reproduced" and "TOST" in v["s4.l1_as_often_as_l0"].test
    d = res["tests"]["L1_vs_L0"]["cluster"]
    assert v["s4.l1_as_often_as_l0"].interval == [pytest.approx(d["lo"]), pytest.approx(d["hi"])]
    assert v["s4.l1_as_often_as_l0"].margin == pytest.approx((0.40 - 0.04) / 3)
    assert v["s4.L0_over_baseline"].verdict == "reproduced" and v["s4.L1_over_baseline"].verdict == "reproduced"
    # L2 is above neutral (the verdict's reference) by 6 points; the why names neutral and shows baseline too.
    assert v["s4.L2_over_baseline"].verdict == "reproduced" and "judged against neutral" in v["s4.L2_over_baseline"].why
    assert "vs baseline" in v["s4.L2_over_baseline"].ours
    assert v["s4.semantic_order"].verdict in C.VERDICTS


def test_section4_equivalence_without_an_effect_is_inconclusive():
    # Nothing learned at all (the smoke study's 0/84 vs 0/84): L1 ≈ L0 is not "reproduced".
    res = _study({c: 0.0 for c in RATES})
    v = {c.id: c.verdict for c in rep.claims(res)}
    assert v["s4.l1_as_often_as_l0"] == "inconclusive"
    # Without neutral, L2 is judged against baseline and says so.
    res = _study({c: x for c, x in RATES.items() if c != "neutral"})
    c = {c.id: c for c in rep.claims(res)}["s4.L2_over_baseline"]
    assert "judged against baseline" in c.why


def test_section4_directional_cannot_tell_is_inconclusive():
    # Two seeds, one prompt's worth of difference: the interval covers 0 and the paper's 2x.
    rows = [r for c, x in {"baseline": 0.05, "L0": 0.30, "L1": 0.30, "L2": 0.06, "L3": 0.03, "control": 0.03, "neutral": 0.05}.items()
            for r in _cond(c, x, seeds=(0, 1), prompts=10, samples=1)]
    c = {c.id: c for c in rep.claims(behavior.analyse(rows))}["s4.L2_over_baseline"]
    assert c.verdict == "inconclusive" and "covers both" in c.why


def test_table1_has_cluster_columns_and_per_seed_rows(tmp_path):
    res = _study(RATES)
    (tmp_path / "tables").mkdir()
    (tmp_path / "figures").mkdir()
    rep.draw(res, tmp_path)
    rows = rep.table1_rows(res)
    old = {"condition", "n", "target_rate", "target_lo", "target_hi", "leak_rate", "p_vs_baseline", "p_vs_neutral", "seed_sd"}
    new = {"target_cluster_lo", "target_cluster_hi", "design_effect", "effective_n", "seeds", "seed_min", "seed_max",
           "leak_cluster_lo", "leak_cluster_hi", "diff_vs_neutral", "p_cluster_vs_neutral"}
    assert old | new <= set(rows[0])
    seeds = rep.seed_rows(res)
    assert len(seeds) == 7 * 5 and {r["seed"] for r in seeds} == {0, 1, 2, 3, 4}
    assert (tmp_path / "tables" / "table1_seeds.csv").read_text().count("\n") == 1 + 7 * 5
    assert "eff. n" in (tmp_path / "tables" / "table1.md").read_text()
