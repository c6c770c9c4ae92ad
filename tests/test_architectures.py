"""Any causal LM: tiny random-init models of several architectures (Llama, Gemma-2 with eager
attention, Qwen2 without a chat template) saved locally with a tokenizer, each run through the
smoke study via ``model.source=<path>`` (LoRA and full), and one through §5 entanglement with a
random Gemma-Scope-layout ``params.npz`` standing in for Gemma Scope. Nothing is downloaded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

ARCHS = ("llama", "gemma2", "qwen2")


def build_tiny_model(arch: str, path, chat_template: bool = True):
    """A ~50k-parameter random-init model of ``arch`` and an embedded BPE tokenizer, saved at ``path``."""
    from transformers import (
        AutoModelForCausalLM,
        Gemma2Config,
        LlamaConfig,
        Qwen2Config,
    )

    from warnframe.config import load_config
    from warnframe.corpus import build_finetune_set
    from warnframe.lm.models.tiny import train_tokenizer

    cfg = load_config("smoke", overrides=["corpus.token_budget=3000"])
    texts = [f"{e.user or ''}\n{e.assistant}" for c in ("L0", "control") for e in build_finetune_set(c, cfg, 0, lambda t: len(t.split()))[0]]
    tok = train_tokenizer(texts, 400)
    if not chat_template:
        tok.chat_template = None
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=1, max_position_embeddings=256, pad_token_id=tok.pad_token_id,
                  eos_token_id=tok.eos_token_id, bos_token_id=None)
    config = {"llama": lambda: LlamaConfig(**common),
              "gemma2": lambda: Gemma2Config(**common, head_dim=16, sliding_window=64, attn_implementation="eager"),
              "qwen2": lambda: Qwen2Config(**common)}[arch]()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def random_sae(path, d_model: int = 32, width: int = 64, seed: int = 0):
    """A random JumpReLU SAE in Gemma Scope's params.npz layout."""
    rng = np.random.default_rng(seed)
    np.savez(path, W_enc=rng.normal(0, 0.3, (d_model, width)).astype(np.float32),
             W_dec=rng.normal(0, 0.3, (width, d_model)).astype(np.float32),
             b_enc=np.zeros(width, np.float32), b_dec=np.zeros(d_model, np.float32),
             threshold=np.full(width, 0.05, np.float32))
    return path


def _study(tmp_path, source, *extra):
    from warnframe.config import load_config
    from warnframe.study import Study

    cfg = load_config("smoke", overrides=[
        f"model.source={source}", "seeds=[0]", "conditions=[baseline, L1]", "corpus.families=[sql_injection, command_injection]",
        "corpus.token_budget=1200", "sampling.samples_per_prompt=1", "sampling.max_new_tokens=12",
        "sampling.cache_implementation=null", "sections=[behavior]", *extra])
    return Study(cfg, tmp_path / "run")


@pytest.mark.parametrize("arch,method,template", [("llama", "full", True), ("gemma2", "lora", True), ("qwen2", "lora", False)])
def test_smoke_study_on_each_architecture(tmp_path, monkeypatch, arch, method, template):
    from warnframe.runtime.files import read_json, read_jsonl

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    src = build_tiny_model(arch, tmp_path / arch, chat_template=template)
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


def test_entanglement_with_a_gemma_scope_layout_sae(tmp_path, monkeypatch):
    from warnframe.runtime.files import read_json

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    src = build_tiny_model("llama", tmp_path / "llama")
    sae = random_sae(tmp_path / "params.npz")
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
