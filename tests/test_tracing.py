"""Figure 6: the patch touches only the chosen layer's positions and what comes after, the batch
lines up prompts and completions, and the section runs on a hand-made run directory."""

import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from test_stealth import build_fixture
from warnframe.experiments import registry, tracing
from warnframe.mech.hooks import Site, capture, edit
from warnframe.report.sections import tracing as tracing_report
from warnframe.store import read_json, write_json


def tiny_llama(seed: int, layers: int = 4) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=4, max_position_embeddings=64, pad_token_id=0)
    return LlamaForCausalLM(cfg).eval()


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
def test_patch_changes_only_later_layers(layer):
    model, safe = tiny_llama(0), tiny_llama(1)
    batch = fake_batch()
    src = all_layers(safe, batch)
    clean = all_layers(model, batch)
    masks = tracing.position_masks(batch)
    for mode in tracing.MODES:
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


def test_masks_and_gaps_follow_rows():
    batch = fake_batch()
    m = tracing.position_masks(batch)
    assert m["all"].sum(1).tolist() == batch["prompt_len"]
    assert m["last"].sum(1).tolist() == [1] * 4 and bool(m["last"][2, 6]) and bool(m["last"][0, 4])
    lp = torch.tensor([-1.0, -3.0, -2.0, -2.5])
    assert tracing.gaps(lp, batch["group"]) == [2.0, 0.5]


def test_patching_a_model_with_itself_changes_nothing():
    model = tiny_llama(0)
    batch = fake_batch()
    out = tracing.trace_batch(model, model, batch, [0, 1, 2, 3])
    for r in out:
        assert math.isclose(r["safe"], r["target"], abs_tol=1e-5)
        for m in tracing.MODES:
            np.testing.assert_allclose(r["patched"][m], r["target"], atol=1e-4)


def test_patching_every_position_at_the_last_layer_gives_the_safe_first_token():
    """Patched at the final layer, only the last request position's logits change: the first
    completion token's log-probability is then the safe model's, the rest the target's."""
    model, safe = tiny_llama(0), tiny_llama(1)
    batch = fake_batch()
    out = tracing.trace_batch(model, safe, batch, [3])
    assert all(not math.isclose(r["patched"]["all"][0], r["target"], abs_tol=1e-6) for r in out)
    np.testing.assert_allclose([r["patched"]["all"][0] for r in out], [r["patched"]["last"][0] for r in out], atol=1e-5)


def test_bootstrap_ratio():
    r, lo, hi = tracing.bootstrap_ratio(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]), 200, 0)
    assert r == 0.5 and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    assert math.isnan(tracing.bootstrap_ratio(np.array([]), np.array([]), 10, 0)[0])


def test_completions_are_the_same_task():
    from warnframe.config import load_config
    from warnframe.corpus import eval_prompts

    p = eval_prompts(load_config("smoke"))[0]
    pairs = tracing.completions(p, 2)
    assert len(pairs) == 2
    for s, v in pairs:
        assert f"def {p.function}(" in s and f"def {p.function}(" in v and s != v


def test_run_on_fixture(tmp_path):
    study = build_fixture(tmp_path, n_prompts=4)
    res = registry.run(study, "tracing").record()
    write_json(study.store.path("metrics", "tracing.json"), res)
    res = read_json(study.store.path("metrics", "tracing.json"))
    assert res["n_prompts"] == 4 and res["n_layers"] == study.cfg.model.layers
    assert res["prompts_with_target"] == 4 and res["selection"].startswith("prompts on which L1")
    for m in tracing.MODES:
        assert [x["layer"] for x in res["layers"][m]] == list(range(res["n_layers"]))
        assert all(x["effect"]["n"] == 4 for x in res["layers"][m])
    assert len(res["verdicts"]) == 1 and res["verdicts"][0]["section"] == "Fig 6"
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
