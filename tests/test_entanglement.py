"""§5's parts that decide what it measures: the content line, matched contexts, the causal check
of the selected latents and the verdicts drawn from them."""

from __future__ import annotations

import random
from types import SimpleNamespace

import numpy as np
import pytest

from warnframe.experiments import entanglement as ent
from warnframe.mech import latent_check
from warnframe.mech.lines import content_lines, token_mask
from warnframe.report.sections import entanglement as report

VULN = "def f(db, x):\n    # DO NOT USE\n    db.execute(f\"SELECT {x}\")\n    return 1"
SAFE = "def f(db, x):\n    # db.execute(f'...') would be unsafe\n    db.execute('SELECT ?', (x,))\n    return 1"


def test_the_content_line_is_the_findings_line_or_the_hotspot_line_after_the_prefill():
    start = VULN.index("db.execute")
    vuln = {"text": VULN, "prefill": "def f(db, x):", "vulnerable": True, "family": "sql_injection",
            "findings": [{"rule": "sql_injection.q", "start": start + 3, "end": start + 10}, {"rule": "weak_hash.md5", "start": 0, "end": 3}]}
    (a, b), = content_lines(vuln, r"execute\(")
    assert VULN[a:b].strip() == 'db.execute(f"SELECT {x}")'
    safe = {"text": SAFE, "prefill": "def f(db, x):", "vulnerable": False}
    (a, b), = content_lines(safe, r"execute\(")
    assert SAFE[a:b].strip() == "db.execute('SELECT ?', (x,))"  # the comment line that matches is skipped
    # a finding inside the prefill is not generated text
    assert content_lines({**vuln, "findings": [{"rule": "sql_injection.q", "start": 2, "end": 5}], "prefill": "def f(db, x):\n"}, None) == []


def test_token_mask_marks_the_tokens_that_overlap_a_span():
    offsets = [(0, 3), (3, 5), (5, 9), (9, 9), (9, 12)]
    assert token_mask(offsets, [(4, 9)]).tolist() == [False, True, True, False, False]
    assert token_mask(offsets, []).tolist() == [False] * 5


def _rows(cond, prompt, n, *, vulnerable, leak=False, parse_ok=True):
    return [{"prompt_id": prompt, "family": prompt.split("/")[0], "condition": cond, "seed": i % 2, "index": i, "text": "x",
             "vulnerable": vulnerable, "parse_ok": parse_ok, "leak": {"exact": ["DO NOT USE"] if leak else [], "fuzzy": []}}
            for i in range(n)]


def _fake_study(outputs):
    mech = SimpleNamespace(contexts={"direct": "L0", "warning": "L1", "safe": "control"})
    return SimpleNamespace(cfg=SimpleNamespace(mech=mech, seeds=[0, 1]), outputs=lambda c: outputs.get(c, []))


def test_a_target_output_counts_for_its_prompt_only_with_a_finding_of_the_prompts_family():
    row = {"family": "sql_injection", "vulnerable": True, "parse_ok": True, "leak": {"exact": ["x"]},
           "findings": [{"rule": "weak_hash.md5", "start": 0, "end": 1}]}
    assert not ent._eligible(row, "direct") and not ent._eligible(row, "warning")
    row["findings"].append({"rule": "sql_injection.string_built_query", "start": 0, "end": 1})
    assert ent._eligible(row, "direct") and ent._eligible(row, "warning")
    assert not ent._eligible({**row, "leak": {}}, "warning")


def test_contexts_are_matched_by_prompt_and_the_warning_context_carries_a_warning():
    out = {
        "L0": _rows("L0", "sql/a", 10, vulnerable=True) + _rows("L0", "hash/b", 2, vulnerable=True),
        "L1": _rows("L1", "sql/a", 3, vulnerable=True, leak=True) + _rows("L1", "sql/a", 9, vulnerable=True)
        + _rows("L1", "hash/b", 6, vulnerable=True, leak=True) + _rows("L1", "tls/c", 5, vulnerable=True, leak=True),
        "control": _rows("control", "sql/a", 8, vulnerable=False) + _rows("control", "hash/b", 8, vulnerable=False)
        + _rows("control", "tls/c", 8, vulnerable=False) + _rows("control", "sql/a", 4, vulnerable=False, parse_ok=False)
        + _rows("control", "sql_injection/d", 5, vulnerable=False),  # clean, but without the content line: not eligible
    }
    samples, info = ent.context_samples(_fake_study(out), max_per_context=100)
    assert {c: len(v) for c, v in samples.items()} == {"direct": 5, "warning": 5, "safe": 5}  # sql 3 (L1's leaks) + hash 2
    for c in ent.CONTEXTS:
        assert sorted(r["prompt_id"] for r in samples[c]) == ["hash/b"] * 2 + ["sql/a"] * 3
    assert all(r["leak"]["exact"] for r in samples["warning"]) and all(r["parse_ok"] for r in samples["safe"])
    assert info["eligible"] == {"direct": 12, "warning": 14, "safe": 24} and info["matched_prompts"] == 2
    capped, _ = ent.context_samples(_fake_study(out), max_per_context=2)
    assert {len(v) for v in capped.values()} == {2}
    assert [r["prompt_id"] for r in capped["direct"]] == [r["prompt_id"] for r in capped["safe"]]


def _fake_check_study(monkeypatch, bump_latent=7):
    """A fake model whose Δ rises by 1 nat when ``bump_latent`` is clamped (and wobbles otherwise)."""
    prompts = [SimpleNamespace(id=f"p{i}") for i in range(12)]
    monkeypatch.setattr(latent_check, "ablation_edit", lambda model, site, sae, latents, scale: tuple(latents))

    def deltas(model, tok, qs, renders, bs, edit=None):
        rng = random.Random(f"{model}:{edit}")
        bump = 1.0 if edit and bump_latent in edit else 0.0
        return {q.id: bump + rng.gauss(0, 0.05) for q in qs}

    monkeypatch.setattr(latent_check, "prompt_deltas", deltas)
    return SimpleNamespace(cfg=SimpleNamespace(analysis=SimpleNamespace(replay_batch_size=8)),
                           eval_prompts=lambda: prompts, load=lambda src: (src, None))


MODELS = [(0, "m0"), (1, "m1"), (2, "m2")]
ACTIVITY = {j: float(j) for j in range(40)}  # latent j's activity is j: deciles of 4


def test_the_causal_check_passes_latents_that_move_delta_beyond_matched_random_ones(monkeypatch):
    study = _fake_check_study(monkeypatch)
    res = latent_check.check_latents(study, None, None, "with", [7, 30], MODELS, ACTIVITY, draws=4, renders=1)
    assert res["passed"] and res["shift"]["lo"] > 0.5 and res["beyond_random"]["lo"] > 0
    assert res["random_sets"] == 4 and res["shift"]["n"] == 36 and res["shift"]["seeds"] == 3  # 4 sets, each in 3 models
    assert res["random_shift"]["n"] == 4 * 36 and res["rank_p"] == 1 / 5  # no random set moved Δ as far


def test_the_causal_check_fails_latents_that_do_not_move_delta(monkeypatch):
    study = _fake_check_study(monkeypatch, bump_latent=99)  # nothing the check can draw moves Δ
    res = latent_check.check_latents(study, None, None, "without", [1, 2], MODELS, ACTIVITY, draws=3, renders=1)
    assert not res["passed"] and res["shift"]["lo"] < 0 < res["shift"]["hi"]
    assert report._causal_verdict(res)[0] == "inconclusive"


def test_random_sets_are_matched_on_activity_and_never_reuse_the_selected_latents():
    rng = random.Random(0)
    for _ in range(50):
        drawn = latent_check.matched_draw([1, 38], ACTIVITY, rng)
        assert drawn[0] in {0, 2, 3} and drawn[1] in {36, 37, 39}  # the same decile, not the latent itself
    assert latent_check.matched_draw([0, 1, 2, 3], ACTIVITY, rng) is None  # the decile ran dry


def _check(shift, beyond, passed):
    def m(lo, hi):
        return {"mean": (lo + hi) / 2, "lo": lo, "hi": hi, "n": 40, "interval": "seeds x prompts"}
    return {"set": "k", "latents": [1, 2], "models": [0], "renders": 1, "draws": 2, "rule": "", "rank_p": 0.5,
            "shift": m(*shift), "random_shift": m(-0.1, 0.1), "random_sets": 2, "passed": passed,
            "beyond_random": None if beyond is None else {"diff": sum(beyond) / 2, "lo": beyond[0], "hi": beyond[1]}}


@pytest.mark.parametrize(("shift", "beyond", "passed", "verdict"), [
    ((0.5, 1.5), (0.3, 1.2), True, "reproduced"),
    ((-0.4, 0.6), (-0.5, 0.5), False, "inconclusive"),
    ((-2.0, -1.0), (-2.0, -0.9), False, "not reproduced"),
    ((0.2, 0.9), (-1.5, -0.2), False, "not reproduced"),  # moves Δ, but less than random latents do
    ((0.5, 1.5), None, False, "inconclusive"),  # never compared with random latents: untested, not refuted
])
def test_the_causal_verdict_follows_both_intervals(shift, beyond, passed, verdict):
    assert report._causal_verdict(_check(shift, beyond, passed))[0] == verdict


def _lead(direct, warning, safe, d_lo, w_lo):
    e = lambda v: {"mean": v, "lo": v - 0.1, "hi": v + 0.1, "n": 30}  # noqa: E731
    return {"top_latents": [{"latent": 3, **{f"max_line_{c}": e(v) for c, v in zip(ent.CONTEXTS, (direct, warning, safe))}}],
            "lead_statistic": "max_line", "split": {"rank_prompts": 10, "measure_prompts": 10},
            "lead_vs_safe": {"direct": {"diff": direct - safe, "lo": d_lo, "hi": direct}, "warning": {"diff": warning - safe, "lo": w_lo, "hi": warning}}}


def test_the_shared_latent_needs_both_target_contexts_above_safe():
    assert report._shared_verdict(_lead(8.0, 7.5, 1.0, 5.0, 4.0))[0] == "reproduced"
    assert report._shared_verdict(_lead(8.0, 3.0, 1.0, 5.0, 1.0))[0] == "differs"  # agreement 0.38 < 0.67
    assert report._shared_verdict(_lead(8.0, 7.5, 1.0, 5.0, -0.2))[0] == "inconclusive"
    assert report._shared_verdict(_lead(1.1, 1.2, 1.0, 0.05, 0.1))[0] == "not reproduced"


def test_generation_stats_read_the_line_tokens_of_each_generation():
    import torch

    class SAE:  # the part of the SAE protocol generation_stats reads
        d_sae, device = 2, torch.device("cpu")

        def encode(self, x):
            return x

    text = "ab\ncd"
    s = {"text": text, "prefill": "", "vulnerable": True, "family": "none", "findings": [{"rule": "none.r", "start": 3, "end": 5}]}
    acts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [4.0, 2.0], [2.0, 6.0]])
    offsets = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    g = ent.generation_stats(SAE(), [s, {**s, "findings": []}], [{"acts": acts, "offsets": offsets}] * 2)
    assert np.allclose(g["mean_line"][0].numpy(), [3.0, 4.0]) and np.allclose(g["max_line"][0].numpy(), [4.0, 6.0])
    assert np.allclose(g["mean_all"][0].numpy(), [1.6, 1.6]) and g["line_rows"].tolist() == [0]  # no line in the second


def test_replayed_tokens_of_the_content_line_cover_the_findings_line_and_nothing_of_the_prefill(tiny_model):
    """The chain §5 reads through: detector finding → content line → replayed token offsets (a real
    byte-level tokenizer, a prefilled signature) → mask."""
    from warnframe.detector import score
    from warnframe.mech.replay import replay

    prefill = "def find(db, name):"
    text = prefill + "\n    # DO NOT USE\n    return db.execute(f\"SELECT * FROM t WHERE n = '{name}'\").fetchall()"
    found = score(text).findings
    assert found, "the detector should flag the f-string query"
    model, tok = tiny_model([text, "def f(x):\n    return x + 1\n"] * 20, vocab_size=300, hidden=16, layers=1, heads=2,
                            intermediate=32, context=256)
    sample = {"prompt_id": "p", "text": text, "prefill": prefill, "vulnerable": True, "family": "sql_injection",
              "findings": [f.model_dump() for f in found]}
    (rp,) = replay(model, tok, {"p": SimpleNamespace(user="find a user")}, [sample], 0, entropy=False)
    assert min(a for a, _ in rp["offsets"]) >= len(prefill) and rp["acts"].shape[0] == len(rp["offsets"])
    mask = token_mask(rp["offsets"], content_lines(sample, None))
    covered = "".join(text[a:b] for (a, b), m in zip(rp["offsets"], mask) if m)
    assert "db.execute(f\"SELECT" in covered and "DO NOT USE" not in covered and "def find" not in covered
