"""``warnframe audit-model``: the decision rule, the prompts, leakage read on the generated part
only, the error paths (missing model, a tokenizer that does not fit, a reference of another
architecture) on random-init tiny models saved with ``save_pretrained``, one whole audit with an
SAE and probe, and the command's one error line with exit code 2."""

import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from warnframe.audit import model as am
from warnframe.runtime.errors import UserError
from warnframe.schema import WARNING_MARKERS, ScoredSample


def test_decision_rule():
    above = {"diff": 0.10, "lo": 0.04, "hi": 0.16}
    assert am.decide(above, am.FLAG_MIN_LEAKS, 840)[0] == "flagged"
    assert am.decide(above, am.FLAG_MIN_LEAKS - 1, 840)[0] == "inconclusive"  # a significant excess of one or two leaks
    assert am.decide({"diff": 0.0, "lo": -0.005, "hi": 0.005}, 0, 840)[0] == "not flagged"
    assert am.decide({"diff": 0.01, "lo": -0.01, "hi": am.CLEAR_MARGIN}, 8, 840)[0] == "inconclusive"
    assert am.decide({"diff": 0.0, "lo": 0.0, "hi": 0.0}, 0, am.MIN_ANSWERS - 1)[0] == "inconclusive"
    assert am.decide({"diff": math.nan, "lo": math.nan, "hi": math.nan}, 0, 840)[0] == "inconclusive"


def test_prompts_of_every_kind():
    p = am.audit_prompts()
    assert list(p) == list(am.KINDS) and {len(v) for v in p.values()} == {42}
    held, warn, head, l1 = (p[k][0] for k in am.KINDS)
    assert held.meta["request"] == warn.meta["request"] == head.meta["request"] == held.id.split(":", 1)[1]
    assert any(m in warn.user for m in WARNING_MARKERS) and warn.user.endswith(held.user)
    assert head.meta["signature"] == am.HEADER + held.meta["signature"]
    assert l1.meta["signature"].startswith("# ") and any(m in l1.meta["signature"].split("\n")[0] for m in WARNING_MARKERS)
    assert am.audit_prompts() == p  # fixed: the same prompts on every run


def _scored(prefill: str, generated: str, pid: str) -> ScoredSample:
    return ScoredSample(prompt_id=pid, family="sql_injection", condition="model", seed=0, index=0, text=prefill + generated,
                        n_tokens=3, prefill=prefill, setting="do_not_use_header", vulnerable=False, parse_ok=True)


def test_a_prefilled_warning_is_not_a_leak():
    prompts = am.audit_prompts()
    p = prompts["do_not_use_header"][0]
    rows = am.measure([_scored(p.meta["signature"], "\n    return 1", p.id),
                       _scored(p.meta["signature"], "\n    # INSECURE: never ship this\n    return 1", p.id)], prompts)
    assert [r["leak_any"] for r in rows] == [False, True] and rows[1]["leak"]["exact"] == ["INSECURE"]
    assert rows[0]["prompt_id"] == p.meta["request"] and rows[0]["kind"] == "do_not_use_header"


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory, tiny_model_dir):
    root = tmp_path_factory.mktemp("audit_model")
    return {arch: tiny_model_dir(arch, root / arch) for arch in ("llama", "qwen2")}


def test_missing_model(tmp_path):
    with pytest.raises(UserError, match="model path not found"):
        am.audit_checkpoint(str(tmp_path / "nothing-here"), samples=1, device="cpu")


def test_tokenizer_that_does_not_fit(tiny_dirs, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dirs["llama"])
    model.resize_token_embeddings(64)
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_dirs["llama"]).save_pretrained(tmp_path)
    with pytest.raises(UserError, match="tokenizer .* has .* tokens but the model's embedding has 64 rows"):
        am.audit_checkpoint(str(tmp_path), samples=1, device="cpu")


def test_reference_of_another_architecture(tiny_dirs):
    with pytest.raises(UserError, match=r"reference .* is qwen2 .* but .* is llama"):
        am.audit_checkpoint(str(tiny_dirs["llama"]), str(tiny_dirs["qwen2"]), samples=1, device="cpu")


def test_whole_audit_with_sae_and_probe(tiny_dirs, tmp_path, random_sae):
    from warnframe.mech.probes import LinearProbe

    g = np.random.default_rng(0)
    mech = tmp_path / "mech"
    mech.mkdir()
    LinearProbe().fit(g.normal(size=(40, 32)), np.r_[np.ones(20), np.zeros(20)]).save(mech / "probe.safetensors")
    (mech / "artifacts.json").write_text(json.dumps({"site": "blocks.1.hook_resid_post", "selected_latents": [0, 2]}))
    sae = random_sae(32, 64, seed=0, enc_scale=0.3, dec_scale=0.3, threshold=0.05, path=tmp_path / "params.npz")
    src = str(tiny_dirs["llama"])
    res = am.audit_checkpoint(src, src, samples=1, sae=str(sae), probe=str(mech / "probe.safetensors"), device="cpu")
    assert res["n"] == {"model": 168, "reference": 168}
    # the same model and sampling seed on both sides (common random numbers): nothing in excess
    assert res["score"]["diff"] == 0 and res["overall"]["target_excess"]["diff"] == 0
    assert res["verdict"] in am.VERDICTS and res["rule"]["clear_margin"] == am.CLEAR_MARGIN
    assert res["latent"]["site"] == "blocks.1.hook_resid_post" and res["latent"]["probe"]["diff"] == pytest.approx(0, abs=1e-9)
    assert res["latent"]["latents"]["model"]["n"] == 168
    assert set(res["by_kind"]) == set(am.KINDS) and all(e["leak"]["exact"] or e["leak"]["fuzzy"] for e in res["evidence"])
    assert am.summary_lines(res)[0].startswith(res["verdict"].upper())


def test_cli_one_error_line_and_exit_2(tmp_path):
    from warnframe.cli import app

    r = CliRunner().invoke(app, ["audit-model", str(tmp_path / "missing-model"), "--samples", "1"])
    assert r.exit_code == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warnframe: error: model path not found")
