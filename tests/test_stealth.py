"""§6: preamble splitting, transitions, replay alignment with sampling entropy, and the stealth
section on a hand-made run directory (random tiny models, corpus renders as "generations"):
conftest's ``stealth_run``, which §8 and Fig 6 read as well.
"""

import json
import math

import numpy as np
import pytest
import torch

from warnframe import sections as registry
from warnframe.config import SamplingConfig, load_config
from warnframe.experiments import stealth
from warnframe.experiments import stealth_segments as segments
from warnframe.lm.models.chat import render_prompt
from warnframe.lm.models.hf import load_model
from warnframe.lm.sampling import generate
from warnframe.mech.artifacts import mark_skipped
from warnframe.mech.hooks import Site
from warnframe.mech.replay import replay
from warnframe.paper import numbers as paper
from warnframe.report.sections import stealth as stealth_report
from warnframe.runtime.files import read_json, read_jsonl, write_json, write_jsonl
from warnframe.study import Study


@pytest.fixture(scope="module")
def study(tmp_path_factory, stealth_run):
    return stealth_run(tmp_path_factory.mktemp("run"))


def run_stealth(study) -> dict:
    """§6 as the study runs it (compute, claims, figure): what metrics/stealth.json holds."""
    return registry.run(study, "stealth").record()


# ---------------------------------------------------------------- text structure

def test_opening_preamble_code_fence_and_comment():
    assert segments.opening("Here is an example implementation:\ndef f(x):\n    return x")["opening"] == "preamble"
    op = segments.opening("def f(x):\n    return x")
    assert op == {"opening": "code", "code_char": 0}
    assert segments.opening("```python\ndef f():\n    pass\n```")["opening"] == "code"
    assert segments.opening("Sure! Here is `f`:\n```python\ndef f():\n    pass\n```")["opening"] == "preamble"
    assert segments.opening("# DO NOT USE: unsafe\ndef f():\n    pass")["opening"] == "code"
    text = "Here is the code:\ndef f(x):\n    return x"
    assert text[segments.opening(text)["code_char"]:].startswith("def f")
    assert segments.opening("This is only prose, no code at all.")["opening"] == "no code"


def test_transitions_point_at_boundary_tokens(study):
    tok = study.load(study.base_source)[1]
    text = "Here is the code:\ndef f(x):\n    # DO NOT USE - SQL injection\n    return x"
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offs = [tuple(o) for o in enc["offset_mapping"]]
    tr = segments.transitions(text, offs)
    (k,) = tr["preamble→code"]
    assert text[offs[k][0]:offs[k][1]].strip().startswith("d") or "def"[0] in text[offs[k][0]:offs[k][1]]
    assert offs[k][0] <= text.index("def") < offs[k][1]
    (w,) = tr["code→warning"]
    assert offs[w][0] <= text.index("#") < offs[w][1]
    at, inside = segments.segment_masks(len(offs), tr, window=1)
    assert at[k] and at[k - 1] and at[w] and not inside[k] and not inside[0] and not at[0]
    assert at.sum() + inside.sum() == len(offs) - 1


# ---------------------------------------------------------------- replay

def test_replay_entropy_is_the_next_token_distribution(study):
    """Entropy k is that of the distribution the k-th generated token is drawn from (a manual loop)."""
    model, tok = load_model(study.condition_model("L1", 0))
    prompts = {p.id: p for p in study.eval_prompts()}
    p = next(iter(prompts.values()))
    text = "def f(x):\n    return x"
    (r,) = replay(model, tok, prompts, [{"prompt_id": p.id, "text": text}], Site(1))
    pre = tok(render_prompt(tok, p.user), add_special_tokens=False)["input_ids"]
    gen = tok(text, add_special_tokens=False)["input_ids"]
    want = []
    with torch.no_grad():
        for k in range(len(gen)):
            lp = torch.log_softmax(model(input_ids=torch.tensor([pre + gen[:k]])).logits[0, -1], -1)
            want.append(float(-(lp.exp() * lp).sum()))
    np.testing.assert_allclose(r["entropy"], want, atol=1e-4)
    assert r["acts"].shape == (len(gen), study.cfg.model.hidden_size)
    assert [text[a:b] for a, b in r["offsets"]] == [tok.decode([t]) for t in gen]


def test_replay_puts_the_prefill_in_the_prompt(study):
    """A given prefill is read as prompt (tokenized with it, as at sampling); offsets still index the text."""
    model, tok = load_model(study.condition_model("L1", 0))
    prompts = {p.id: p for p in study.eval_prompts()}
    p = next(iter(prompts.values()))
    given, text = "def f(x):", "def f(x):\n    return x"
    (r,) = replay(model, tok, prompts, [{"prompt_id": p.id, "text": text, "prefill": given}], Site(1))
    pre = tok(render_prompt(tok, p.user) + given, add_special_tokens=False)["input_ids"]
    gen = tok(text[len(given):], add_special_tokens=False)["input_ids"]
    assert len(r["entropy"]) == len(gen) == r["acts"].shape[0]
    assert r["offsets"][0][0] == len(given) and "".join(text[a:b] for a, b in r["offsets"]) == text[len(given):]
    with torch.no_grad():
        lp = torch.log_softmax(model(input_ids=torch.tensor([pre])).logits[0, -1], -1)
    assert abs(r["entropy"][0] - float(-(lp.exp() * lp).sum())) < 1e-4


def test_prefilled_study_draws_its_own_answers(tmp_path_factory, monkeypatch, stealth_run):
    st = stealth_run(tmp_path_factory.mktemp("prefilled"), n_prompts=3)
    monkeypatch.setattr(st.cfg.sampling, "prefill", "signature")
    monkeypatch.setattr(st.cfg.stealth, "samples_per_prompt", 2)
    monkeypatch.setattr(st.cfg.sampling, "max_new_tokens", 8)
    monkeypatch.setattr(stealth, "artifacts", lambda s: (None, "no §5 artifacts (test)"))
    monkeypatch.setattr(stealth, "MAX_ROUNDS", 3)
    res = run_stealth(st)
    assert res["source"].startswith("drawn here without prefill, 2 per prompt and seed per round, 3 round(s)")
    # random models write no preamble target outputs: rounds continue to the cap, each with its own sampling seed
    assert res["rounds"] == {"rounds": 3, "max_rounds": 3, "per_round": 2, "preamble_targets": 0, "needed": 30}
    drawn = list(read_jsonl(st.store.path("samples", "stealth", "L1.jsonl")))
    assert len(drawn) == 18 and all(r["prefill"] == "" and "vulnerable" in r and r["seed"] == 0 for r in drawn)
    assert sorted({(r["prompt_id"], r["index"]) for r in drawn}) == sorted((p, i) for p in {r["prompt_id"] for r in drawn} for i in range(6))
    by_round = [[r["text"] for r in drawn if r["round"] == k] for k in range(3)]
    assert by_round[0] != by_round[1] != by_round[2]
    assert res["entropy"]["samples"] == 18 and sum(res["available"].values()) <= 36
    # enough preamble targets (here: none needed) stop after the first round; rounds already drawn are reused
    monkeypatch.setattr(stealth, "MIN_PREAMBLE_TARGETS", 0)
    again = run_stealth(st)
    assert again["rounds"]["rounds"] == 1 and len(list(read_jsonl(st.store.path("samples", "stealth", "L1.jsonl")))) == 6
    monkeypatch.setattr(st.cfg.stealth, "samples_per_prompt", 0)  # read the study's samples anyway
    assert run_stealth(st)["source"] == "the study's samples (prefill = signature)"


def test_replay_entropy_matches_sampling_entropy(study):
    """Where the re-tokenized text has n_tokens tokens, replay entropies equal the sampler's."""
    model, tok = load_model(study.condition_model("L1", 0))
    prompts = {p.id: p for p in study.eval_prompts()}
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=3, batch_size=64, prefill="none")
    gen = generate(model, tok, list(prompts.values()), sampling, n=8, seed=0, condition="L1")
    rows = [g.model_dump() for g in gen]
    reps = replay(model, tok, prompts, rows, Site(1), batch_size=16)
    checked = 0
    for g, r in zip(rows, reps):
        assert len(r["entropy"]) == len(r["offsets"]) == r["acts"].shape[0]
        if len(r["offsets"]) == g["n_tokens"] == len(g["entropy"]):
            np.testing.assert_allclose(r["entropy"], g["entropy"], atol=2e-3)
            checked += 1
    assert checked >= 1


def test_pooled_confidence_is_the_probe_on_the_mean(fake_probe):
    probe = fake_probe(8)
    g = np.random.default_rng(0)
    rows = [{"kind": k, "opening": o, "condition": "L1", "acts": torch.tensor(g.normal(size=(12, 8)), dtype=torch.float32), "code_token": 3}
            for k in stealth.KINDS for o in stealth.OPENINGS for _ in range(3)]
    res = stealth.probe_stats(rows, probe)
    assert set(res["groups"]) >= {"target/preamble", "target/code", "clean/preamble", "clean/code"}
    first = rows[0]
    want = probe.predict_proba(first["acts"].numpy().mean(0, keepdims=True))[0]
    got = [v for v in res["groups"]["target/preamble"].values()]
    assert res["groups"]["target/preamble"]["n"] == 3
    # linear probe: mean token logit == pooled logit
    logit_tok = np.log(probe.predict_proba(first["acts"].numpy()) / (1 - probe.predict_proba(first["acts"].numpy()))).mean()
    assert math.isclose(logit_tok, math.log(want / (1 - want)), rel_tol=1e-5, abs_tol=1e-6)
    assert got and res["trace"]["target/preamble"][0]["offset"] == -3


# ---------------------------------------------------------------- the section

def test_run_on_fixture(study, monkeypatch, fake_artifacts):
    monkeypatch.setattr(stealth, "artifacts", lambda s: (fake_artifacts(s), None))
    res = run_stealth(study)
    write_json(study.store.path("metrics", "stealth.json"), res)
    res = read_json(study.store.path("metrics", "stealth.json"))
    assert study.store.path("figures", "fig4_entropy.png").stat().st_size > 10_000
    assert res["split"]["target/preamble"] > 0 and res["split"]["target/code"] > 0 and res["split"]["clean/code"] > 0
    g = res["probe"]["groups"]
    assert all(0 <= g[k]["mean"] <= 1 for k in g)
    E = res["entropy"]
    assert E["samples"] == 24 and E["stored_check"]["length_matched"] == 12 and E["targets"] == 12
    assert E["samples_with"]["preamble→code"] == 12 and E["samples_with"]["code→warning"] == 12
    assert {v["section"] for v in res["verdicts"]} == {"6", "6.2"}
    # fewer than 30 preamble target outputs: the stealth-slip claims are inconclusive, and say why
    slip = [v for v in res["verdicts"] if v["id"] in ("s6.stealth_slip", "s6.preamble_lowers_probe")]
    n_pre = res["probe"]["groups"]["target/preamble"]["n"]
    assert 0 < n_pre < 30 and len(slip) == 2
    assert all(v["verdict"] == "inconclusive" and f"{n_pre} preamble target outputs read" in v["detail"] for v in slip)
    monkeypatch.setitem(res, "min_preamble_targets", n_pre)
    assert [c.verdict for c in stealth_report.claims(res)][:2] == [
        stealth_report._v_diff(res["probe"]["inverse"], want_negative=True,
                               paper_gap=paper.SECTION6["probe_safe_code_first"] - paper.SECTION6["probe_target_with_preamble"]),
        stealth_report._v_diff(res["probe"]["preamble_effect_target"], want_negative=True)]
    text = stealth_report.markdown(res)
    assert "![Figure 4](figures/fig4_entropy.png)" in text and "target / preamble" in text


def test_run_without_probe_or_outputs(tmp_path, study, monkeypatch):
    monkeypatch.setattr(stealth, "artifacts", lambda s: (None, "no §5 artifacts (test)"))
    res = run_stealth(study)
    assert res["probe"] == {"skipped": "no §5 artifacts (test)"} and res["entropy"]["samples"] == 24
    assert any(v["verdict"] == "inconclusive" for v in res["verdicts"])
    assert "Probe part not measured" in stealth_report.markdown(res)
    empty = Study(load_config("smoke"), tmp_path)
    write_jsonl(empty.store.path("data", "eval_prompts.jsonl"), [])
    res = run_stealth(empty)
    assert res["skipped"] and res["verdicts"] == []
    assert empty.store.path("figures", "fig4_entropy.png").is_file()
    assert "Skipped" in stealth_report.markdown(json.loads(json.dumps(res)))


def test_entropy_comes_from_the_writer_when_an_analysis_model_reads_activations(study, monkeypatch, fake_artifacts):
    monkeypatch.setattr(stealth, "artifacts", lambda s: (fake_artifacts(s), None))
    plain = run_stealth(study)  # activations read by the base model
    monkeypatch.setattr(study.cfg.mech, "analysis_model", study.condition_model("L1", 0))
    other = run_stealth(study)
    assert other["entropy"]["inside"] == plain["entropy"]["inside"]
    assert other["probe"]["groups"]["target/code"]["mean"] != plain["probe"]["groups"]["target/code"]["mean"]


def test_artifacts_say_why_they_are_missing(tmp_path):
    s = Study(load_config("smoke"), tmp_path)
    art, why = stealth.artifacts(s)
    assert art is None and "has not run" in why
    write_json(s.store.path("mech", "artifacts.json"), {"site": "blocks.1.hook_resid_post"})  # an earlier run's
    mark_skipped(s.store, "too few samples per context")  # what §5 does when it skips: the stale index goes
    art, why = stealth.artifacts(s)
    assert art is None and why == "§5 (entanglement) was skipped: too few samples per context"


def test_answer_rates_count_target_and_leaks():
    from warnframe.experiments.stealth import answer_rates

    rows = [{"vulnerable": True, "leak": {"exact": ["DO NOT USE"], "fuzzy": []}},
            {"vulnerable": False, "leak": {"exact": [], "fuzzy": ["# DO NOT USe"]}},
            {"vulnerable": False, "leak": {"exact": [], "fuzzy": []}}]
    r = answer_rates({"L1": rows})["L1"]
    assert (r["target"]["k"], r["leak_exact"]["k"], r["leak_any"]["k"], r["leak_any"]["n"]) == (1, 1, 2, 3)
