"""Figure 6: the patch touches only the chosen layer's positions and what comes after, the batch
lines up prompts and completions, and the section runs on a hand-made run directory."""

import copy
import math

import numpy as np
import pytest
import torch
from transformers import LlamaForCausalLM

from warnframe import sections as registry
from warnframe.experiments import tracing
from warnframe.mech import pairs
from warnframe.mech.hooks import Site, capture, edit
from warnframe.report.sections import tracing as tracing_report
from warnframe.runtime.files import read_json, write_json


def fake_batch(prompt_lens=(5, 7), comp_lens=(4, 3)) -> dict:
    """Two prompts, one (secure, vulnerable) pair each, right-padded."""
    g = torch.Generator().manual_seed(0)
    seqs, plen, group = [], [], []
    for k, p in enumerate(prompt_lens):
        pre = torch.randint(1, 50, (p,), generator=g).tolist()
        for c in comp_lens:
            seqs.append(pre + torch.randint(1, 50, (c,), generator=g).tolist())
            plen.append(p)
            group.append(k)
    width = max(map(len, seqs))
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    attn = torch.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        attn[i, : len(s)] = 1
    return {"ids": ids, "attn": attn, "prompt_len": plen, "spans": [(p, len(s)) for p, s in zip(plen, seqs)], "group": group}


@torch.no_grad()
def all_layers(model, batch, layer=None, source=None, mask=None):
    cap = capture()
    sites = [Site(i) for i in range(model.config.num_hidden_layers)]
    if layer is None:
        with edit(model, sites, cap):
            model(input_ids=batch["ids"], attention_mask=batch["attn"])
    else:
        with tracing.patch(model, layer, source, mask), edit(model, sites, cap):
            model(input_ids=batch["ids"], attention_mask=batch["attn"])
    return cap


@pytest.mark.parametrize("layer", [0, 2])
def test_patch_changes_only_later_layers(layer, tiny_llama):
    model, safe = tiny_llama(0), tiny_llama(1)
    batch = fake_batch()
    src = all_layers(safe, batch)
    clean = all_layers(model, batch)
    masks = tracing.position_masks(batch)
    for mode in tracing.POSITION_MODES:
        mask = masks[mode]
        got = all_layers(model, batch, layer, src, mask)
        for i in range(model.config.num_hidden_layers):
            if i < layer:
                torch.testing.assert_close(got[i], clean[i])  # earlier layers untouched
            elif i == layer:
                torch.testing.assert_close(got[i][mask], src[i][mask])  # patched positions hold the safe run
                torch.testing.assert_close(got[i][~mask], clean[i][~mask])  # the rest of that layer untouched
            else:
                assert not torch.allclose(got[i], clean[i])  # later layers read the patch
                # positions before the first patched one cannot see it (causal attention)
                first = int(mask[0].nonzero()[0])
                torch.testing.assert_close(got[i][:, :first], clean[i][:, :first])


def twin(model: LlamaForCausalLM, seed: int = 1) -> LlamaForCausalLM:
    """A copy of ``model`` whose decoder layers are perturbed but whose embedding, final norm and
    head are the same: patching its last layer's states everywhere gives exactly its logits."""
    safe = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in safe.model.layers.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return safe


def test_masks_and_gaps_follow_rows():
    batch = fake_batch()
    m = tracing.position_masks(batch)
    assert m["request"].sum(1).tolist() == batch["prompt_len"]
    assert m["completion"].sum(1).tolist() == [b - a for a, b in batch["spans"]]
    assert not (m["request"] & m["completion"]).any()
    assert torch.equal(m["both"], m["request"] | m["completion"]) and torch.equal(m["both"], batch["attn"].bool())
    lp = torch.tensor([-1.0, -3.0, -2.0, -2.5])
    assert pairs.gaps(lp, batch["group"]) == [2.0, 0.5]


def test_patching_a_model_with_itself_changes_nothing(tiny_llama):
    model = tiny_llama(0)
    batch = fake_batch()
    out = tracing.trace_batch(model, model, batch, [0, 1, 2, 3])
    for r in out:
        assert math.isclose(r["safe"], r["target"], abs_tol=1e-5)
        assert math.isclose(r["every_layer"], r["target"], abs_tol=1e-4)
        for m in tracing.MODES:
            np.testing.assert_allclose(r["patched"][m], r["target"], atol=1e-4)


def test_patching_everything_restores_the_safe_run_and_parts_do_not(tiny_llama):
    """With the head shared, every layer (or the last layer) patched at every position gives the
    safe run's Δ exactly: restoration 1 by construction. The request patch alone at the last layer
    changes nothing after the request; the completion patch there misses the first token only."""
    model = tiny_llama(0)
    safe = twin(model)
    batch = fake_batch()
    out = tracing.trace_batch(model, safe, batch, [0, 1, 2, 3])
    for r in out:
        assert not math.isclose(r["safe"], r["target"], abs_tol=1e-3)
        assert math.isclose(r["every_layer"], r["safe"], abs_tol=1e-4)
        assert math.isclose(r["patched"]["both"][3], r["safe"], abs_tol=1e-4)
        assert not math.isclose(r["patched"]["completion"][3], r["safe"], abs_tol=1e-4)
        assert not math.isclose(r["patched"]["request"][0], r["target"], abs_tol=1e-4)  # early request patch reaches the completion
        # the same embeddings: layer 0's own write is its whole output; later writes are not the whole residual
        assert math.isclose(r["patched"]["write"][0], r["patched"]["both"][0], abs_tol=1e-4)
        assert not math.isclose(r["patched"]["write"][3], r["patched"]["both"][3], abs_tol=1e-4)
    s = tracing.summarise([{"prompt_id": str(i), **r} for i, r in enumerate(out)], 4, 200, 0, (0.25, 0.75))
    assert s[tracing.EVERY_LAYER]["restoration"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert s["layers"]["both"][3]["restoration"]["mean"] == pytest.approx(1.0, abs=1e-3)
    assert s["middle_layers"] == [1, 2] and set(s["middle_vs_edge"]) == set(tracing.MODES)


def test_no_patch_restores_zero_and_intervals_cover():
    """Patched Δ equal to the target's: restoration 0 with a degenerate interval; half way: 0.5."""
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(8):
        t, s = rng.normal(-5, 1), rng.normal(3, 1)
        rows.append({"target": t, "safe": s, "every_layer": s,
                     "patched": {"request": [t] * 3, "completion": [t, (t + s) / 2, s], "both": [s] * 3, "write": [t, s, t]}})
    out = tracing.summarise(rows, 3, 300, 0, (0.25, 0.75))
    assert all(x["restoration"]["mean"] == pytest.approx(0) and x["restoration"]["hi"] == pytest.approx(0)
               for x in out["layers"]["request"])
    comp = [x["restoration"]["mean"] for x in out["layers"]["completion"]]
    assert comp == pytest.approx([0, 0.5, 1])
    assert out["middle_vs_edge"]["completion"]["mean"] == pytest.approx(-0.5)  # layer 2 (edge) restores more
    assert out["middle_vs_edge"]["write"]["mean"] == pytest.approx(1.0) and out["middle_vs_edge"]["write"]["lo"] == pytest.approx(1.0)
    assert out["middle_layers"] == [1]
    assert tracing_report.claims({**out, "n_layers": 3, "safe_source": "control", "traced": "L1", "selection": "test"})[0].verdict \
        == "reproduced"


def test_layer_write_is_the_targets_input_plus_the_safe_layers_change(tiny_llama):
    model, safe = tiny_llama(0), tiny_llama(1)
    batch = fake_batch()
    t, s = all_layers(model, batch), all_layers(safe, batch)
    t0, s0 = tracing._embeddings(model, batch), tracing._embeddings(safe, batch)
    w = tracing.layer_writes(t, s, t0, s0, [0, 1, 2, 3])
    torch.testing.assert_close(w[0], t0 + s[0] - s0)
    torch.testing.assert_close(w[2], t[1] + s[2] - s[1])
    # patched at layer 2, that layer's output is exactly the write wherever the sequence is
    got = all_layers(model, batch, 2, w, tracing.position_masks(batch)["both"])
    m = batch["attn"].bool()
    torch.testing.assert_close(got[2][m], w[2][m])
    torch.testing.assert_close(got[1], t[1])


def test_bootstrap_ratios():
    b = tracing.bootstrap_ratios(np.array([[1.0], [2.0], [3.0]]), np.array([2.0, 4.0, 6.0]), 200, 0)
    assert b["point"][0] == 0.5 and np.allclose(b["boots"], 0.5)
    assert math.isnan(tracing.bootstrap_ratios(np.empty((0, 1)), np.array([]), 10, 0)["point"][0])


def test_completions_are_the_same_task():
    from warnframe.config import load_config
    from warnframe.corpus import eval_prompts

    p = eval_prompts(load_config("smoke"))[0]
    got = pairs.completions(p, 2)
    assert len(got) == 2
    for s, v in got:
        assert f"def {p.function}(" in s and f"def {p.function}(" in v and s != v


def test_run_on_fixture(tmp_path, stealth_run):
    study = stealth_run(tmp_path, n_prompts=4)
    res = registry.run(study, "tracing").record()
    write_json(study.store.path("metrics", "tracing.json"), res)
    res = read_json(study.store.path("metrics", "tracing.json"))
    assert res["n_prompts"] == 4 and res["n_layers"] == study.cfg.model.layers
    assert res["prompts_with_target"] == 4 and res["selection"].startswith("prompts on which L1")
    for m in tracing.MODES:
        assert [x["layer"] for x in res["layers"][m]] == list(range(res["n_layers"]))
        assert all(x["effect"]["n"] == 4 for x in res["layers"][m])
    assert len(res["verdicts"]) == 1 and res["verdicts"][0]["section"] == "Fig 6"
    assert res["verdicts"][0]["verdict"] in ("reproduced", "differs", "not reproduced", "inconclusive")
    assert res["every_layer_both"]["restoration"]["n"] == 4
    assert study.store.path("figures", "fig6_causal_tracing.png").stat().st_size > 10_000
    assert "![Figure 6]" in tracing_report.markdown(res)
    # no target outputs: every prompt is traced, and the result says so
    study.cfg.tracing.min_prompts = 10
    res = registry.run(study, "tracing").record()
    assert res["selection"].startswith("every evaluation prompt")
    # no L1 model: skipped, never a crash
    study.cfg.conditions = ["baseline", "control"]
    res = registry.run(study, "tracing").record()
    assert res["skipped"] and "Skipped" in tracing_report.markdown(res)
