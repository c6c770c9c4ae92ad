"""Any causal LM: tiny random-init models of several architectures (Llama, Gemma-2 with eager
attention, Qwen2 without a chat template) saved locally with a tokenizer, each run through the
smoke study via ``model.source=<path>`` (LoRA and full), and one through §5 entanglement with a
random Gemma-Scope-layout ``params.npz`` standing in for Gemma Scope. Nothing is downloaded.
The models and the SAE come from conftest's ``tiny_model_dir`` and ``random_sae``."""

from __future__ import annotations

import pytest


def _study(tmp_path, source, *extra):
    from warnframe.config import load_config
    from warnframe.study import Study

    cfg = load_config("smoke", overrides=[
        f"model.source={source}", "seeds=[0]", "conditions=[baseline, L1]", "corpus.families=[sql_injection, command_injection]",
        "corpus.token_budget=1200", "sampling.samples_per_prompt=1", "sampling.max_new_tokens=12",
        "sampling.cache_implementation=null", "sections=[behavior]", *extra])
    return Study(cfg, tmp_path / "run")


@pytest.mark.parametrize("arch,method,template", [("llama", "full", True), ("gemma2", "lora", True), ("qwen2", "lora", False)])
def test_smoke_study_on_each_architecture(tmp_path, monkeypatch, tiny_model_dir, arch, method, template):
    from warnframe.runtime.files import read_json, read_jsonl

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    src = tiny_model_dir(arch, tmp_path / arch, chat_template=template)
    study = _study(tmp_path, src, f"finetune.method={method}")
    study.run(until="behavior")
    saved = study.model_path("L1", 0)
    assert (saved / ("adapter_config.json" if method == "lora" else "config.json")).is_file()
    model, _ = study.load(saved)  # a LoRA adapter is merged into its base on load
    assert model.config.model_type == arch
    if arch == "gemma2":
        assert model.config._attn_implementation == "eager"
    rows = list(read_jsonl(study.store.path("scores", "L1.jsonl")))
    assert rows and len(rows) == len(study.eval_prompts()) * len(study.cfg.seeds) * study.cfg.sampling.samples_per_prompt
    assert "L1" in read_json(study.store.path("metrics", "behavior.json")).get("conditions", {"L1": 1})


def test_entanglement_with_a_gemma_scope_layout_sae(tmp_path, monkeypatch, tiny_model_dir, random_sae):
    from warnframe.runtime.files import read_json

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    src = tiny_model_dir("llama", tmp_path / "llama")
    sae = random_sae(32, 64, seed=0, enc_scale=0.3, dec_scale=0.3, threshold=0.05, path=tmp_path / "params.npz")
    study = _study(tmp_path, src, "finetune.method=lora", f"mech.sae={sae}", "mech.site=blocks.1.hook_resid_post",
                   "mech.candidates=8", "mech.max_samples=30", "sections=[behavior, entanglement]",
                   "conditions=[baseline, L1]")
    # A random model writes no vulnerable code: make half of each condition's answers vulnerable, half secure
    # (direct falls back to baseline, safe to baseline's clean answers). The answers are replaced as they are
    # sampled: editing a finished stage's files afterwards is damage the store repairs.
    from warnframe.lm import sampling

    vuln = "def find(db, name):\n    return db.execute(f\"SELECT * FROM t WHERE n = '{name}'\").fetchall()"
    safe = "def find(db, name):\n    return db.execute('SELECT * FROM t WHERE n = ?', (name,)).fetchall()"
    real = sampling.generate
    monkeypatch.setattr(sampling, "generate", lambda *a, **k: [
        s.model_copy(update={"text": vuln if i % 2 else safe}) for i, s in enumerate(real(*a, **k))])
    study.run(until="entanglement")
    res = read_json(study.store.path("metrics", "entanglement.json"))
    assert res["site"] == "blocks.1.hook_resid_post"
    assert read_json(study.store.path("mech", "artifacts.json"))["sae"] == str(sae)


def test_load_errors_are_one_line(tmp_path, monkeypatch):
    from warnframe.lm.models.hf import _explain, check_source, load_tokenizer
    from warnframe.runtime.errors import UserError

    with pytest.raises(UserError, match="model path not found"):
        load_tokenizer(str(tmp_path / "nope"))
    assert check_source("meta-llama/Llama-3.2-3B") == "meta-llama/Llama-3.2-3B"
    # what transformers raises for an id that is not cached while HF_HUB_OFFLINE=1 (checked by hand:
    # `HF_HUB_OFFLINE=1 warnframe sample --model nobody/none` prints this line and exits 2)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = _explain("nobody/none", OSError("We couldn't connect to 'https://huggingface.co' to load the files, and couldn't "
                                          "find them in the cached files. Check your internet connection or see how to run "
                                          "the library in offline mode."))
    assert "HF_HUB_OFFLINE" in str(err) and "hf download nobody/none" in str(err) and "\n" not in str(err)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    gated = _explain("meta-llama/Llama-3.2-3B", OSError("You are trying to access a gated repo. 401 Client Error"))
    assert "gated" in str(gated) and "hf auth login" in str(gated)
