"""§7 with power: McNemar on answers paired by seed, prompt and sample index, Δ beside every rate,
and the CAFT controls (random directions of the same rank; every layer)."""

import math

import pytest
import torch
from scipy.stats import binomtest

from warnframe.experiments import interventions_analysis as iv
from warnframe.mech.edits import caft_all_layers_edit, random_directions
from warnframe.mech.hooks import Site, capture, edit


def _row(seed, pid, index, vulnerable):
    return {"seed": seed, "prompt_id": pid, "index": index, "vulnerable": vulnerable}


def test_paired_test_counts_discordant_pairs_only():
    ref = [_row(s, f"p{p}", 0, p < 10) for s in range(2) for p in range(20)]
    rows = [_row(s, f"p{p}", 0, 3 <= p < 10) for s in range(2) for p in range(20)]  # 3 prompts fixed per seed
    t = iv.paired_test(rows, ref)
    assert (t.n_pairs, t.a_only, t.ref_only) == (40, 0, 6) and t.test == "McNemar exact"
    assert t.diff == pytest.approx(-6 / 40)
    assert t.p == pytest.approx(binomtest(0, 6, 0.5).pvalue)
    assert iv.paired_test(ref, ref).p == 1.0
    # answers that pair with nothing are left out; nothing paired: None
    assert iv.paired_test(rows + [_row(9, "p0", 0, True)], ref).n_pairs == 40
    assert iv.paired_test([_row(9, "x", 0, True)], ref) is None
    # many discordant pairs: the chi-square
    big_ref = [_row(0, f"p{p}", i, True) for p in range(40) for i in range(3)]
    big = [_row(0, f"p{p}", i, p % 4 == 0) for p in range(40) for i in range(3)]
    tb = iv.paired_test(big, big_ref)
    assert tb.test.startswith("McNemar chi-square") and tb.ref_only == 90 and tb.p < 1e-10


def test_delta_summary_differences_on_the_same_seed_and_prompt():
    ref = {"0": {"a": -2.0, "b": -4.0, "c": 0.0}, "1": {"a": -2.0, "b": -6.0, "c": 1.0}}
    these = {"0": {"a": -1.0, "b": -3.0, "c": 1.0}, "1": {"a": -1.0, "b": -5.0, "c": 2.0}}
    d = iv.delta_summary(*iv.pool({"none": ref, "x": these}, ["x"]))
    assert d.vs_none.n == 3 and d.vs_none.mean == pytest.approx(1.0) and d.vs_none.sd == 0
    assert d.delta.mean == pytest.approx((-1 - 4 + 1.5) / 3)
    # a kind pools its system prompts, each against the reference of the same seed
    k = iv.delta_summary(*iv.pool({"none": ref, "x": these, "y": ref}, ["x", "y"]))
    assert k.vs_none.mean == pytest.approx(0.5) and k.runs == 4
    assert iv.delta_summary(*iv.pool({"none": ref}, ["x"])) is None


def test_random_directions_are_orthonormal_seeded_and_of_the_asked_rank():
    a = random_directions(5, 32, 0)
    assert a.shape == (5, 32)
    torch.testing.assert_close(a @ a.T, torch.eye(5), atol=1e-5, rtol=0)
    torch.testing.assert_close(a, random_directions(5, 32, 0))
    assert not torch.allclose(a, random_directions(5, 32, 1))


def test_caft_all_layers_removes_the_span_after_every_layer(tiny_llama):
    model = tiny_llama(0, layers=3)
    dirs = random_directions(4, 32, 3)
    ids = torch.randint(1, 50, (2, 9), generator=torch.Generator().manual_seed(0))
    sites = [Site(i) for i in range(3)]
    plain, cut = capture(), capture()
    with torch.no_grad():
        with edit(model, sites, plain):
            model(input_ids=ids)
        with caft_all_layers_edit(model, dirs)(), edit(model, sites, cut):
            model(input_ids=ids)
    for layer in range(3):
        assert cut[layer].matmul(dirs.T).abs().max() < 1e-4  # nothing left in the span
        assert plain[layer].matmul(dirs.T).abs().max() > 1e-2
    assert all(len(m._forward_hooks) == 0 for m in model.model.layers)  # off after the block
    assert math.isfinite(float(cut[2].sum()))
