"""Shared fixtures: the tiny models, random SAEs and hand-made §6 run directory that several test
files build, and one smoke study per test session, reused by every end-to-end test.

The builders are session-scoped factories (a fixture whose value is a function), so a fixture of any
scope can use them and each test says which size it needs; every call builds afresh, nothing is shared
between tests. Heavy imports (transformers, warnframe) stay inside the factories: collecting a test
file that needs none of them stays cheap.
"""

from __future__ import annotations

import math
import os
import random

import numpy as np
import pytest

# ---------------------------------------------------------------- tiny models


@pytest.fixture(scope="session")
def random_lm():
    """``make(arch="llama", *, seed=0, layers=3, vocab_size=100, heads=4, kv_heads=2, hidden=32,
    intermediate=64, context=64, **config)``: a random-init transformers causal LM (``llama``,
    ``gemma2`` with eager attention, ``qwen2`` or ``gpt2``) in eval mode, no tokenizer. ``config``
    goes to the architecture's config class as is (token ids, for one)."""
    import torch
    import transformers as T

    def make(arch: str = "llama", *, seed: int = 0, layers: int = 3, vocab_size: int = 100, heads: int = 4,
             kv_heads: int = 2, hidden: int = 32, intermediate: int = 64, context: int = 64, **config):
        if arch == "gpt2":  # GPT-2's own token ids (50256) lie outside a tiny vocabulary
            cfg = T.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, vocab_size=vocab_size, n_positions=context,
                               **{"bos_token_id": 1, "eos_token_id": 2, **config})
        else:
            common = dict(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                          num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab_size,
                          max_position_embeddings=context)
            if arch == "gemma2":
                common.update(head_dim=hidden // heads, sliding_window=64, attn_implementation="eager")
            cfg = {"llama": T.LlamaConfig, "gemma2": T.Gemma2Config, "qwen2": T.Qwen2Config}[arch](**{**common, **config})
        torch.manual_seed(seed)
        return T.AutoModelForCausalLM.from_config(cfg).eval()

    return make


@pytest.fixture(scope="session")
def tiny_llama(random_lm):
    """``make(seed, layers=4)``: a random Llama over token ids 0-49 (id 0 pads), no tokenizer."""

    def make(seed: int, layers: int = 4):
        return random_lm("llama", seed=seed, layers=layers, vocab_size=50, kv_heads=4, pad_token_id=0)

    return make


@pytest.fixture(scope="session")
def tiny_model():
    """``make(texts=None, *, seed=0, layers=3, hidden=32, heads=2, intermediate=64, vocab_size=320,
    context=192)`` → ``(model, tokenizer)``: the embedded tiny Llama (``warnframe.lm.models.tiny``) in
    eval mode, its byte-level BPE tokenizer trained on ``texts`` (by default the smoke preset's
    evaluation prompts and a little code)."""
    import torch

    from warnframe.config import ModelConfig, load_config
    from warnframe.corpus import eval_prompts
    from warnframe.lm.models import tiny

    def make(texts=None, *, seed: int = 0, layers: int = 3, hidden: int = 32, heads: int = 2, intermediate: int = 64,
             vocab_size: int = 320, context: int = 192):
        if texts is None:
            texts = [p.user for p in eval_prompts(load_config("smoke"))] * 3 + ["def f(x):\n    return x + 1\n"] * 5
        tok = tiny.train_tokenizer(texts, vocab_size)
        torch.manual_seed(seed)
        cfg = ModelConfig(vocab_size=vocab_size, hidden_size=hidden, layers=layers, heads=heads,
                          intermediate_size=intermediate, context=context)
        return tiny.build_model(cfg, tok).eval(), tok

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(random_lm):
    """``make(arch, path, chat_template=True)`` → ``path``: a ~50k-parameter random-init model of
    ``arch`` (see ``random_lm``) and a BPE tokenizer trained on smoke fine-tuning data, saved at
    ``path`` with ``save_pretrained``, for ``model.source=<path>``."""

    def make(arch: str, path, chat_template: bool = True):
        from warnframe.config import load_config
        from warnframe.corpus import build_finetune_set
        from warnframe.lm.models.tiny import train_tokenizer

        cfg = load_config("smoke", overrides=["corpus.token_budget=3000"])
        texts = [f"{e.user or ''}\n{e.assistant}" for c in ("L0", "control")
                 for e in build_finetune_set(c, cfg, 0, lambda t: len(t.split()))[0]]
        tok = train_tokenizer(texts, 400)
        if not chat_template:
            tok.chat_template = None
        model = random_lm(arch, seed=0, layers=2, heads=2, kv_heads=1, vocab_size=len(tok), context=256,
                          pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=None)
        model.save_pretrained(path)
        tok.save_pretrained(path)
        return path

    return make


# ---------------------------------------------------------------- random SAEs


@pytest.fixture(scope="session")
def random_sae():
    """``make(d, width=24, seed=1, *, enc_scale=1.0, dec_scale=None, bias_scale=0.0, threshold=0.0,
    path=None)``: a random JumpReLU SAE. ``W_enc`` ~ N(0, enc_scale), ``W_dec`` ~ N(0, dec_scale)
    (by default 1/sqrt(d): decoder rows of about unit norm), biases ~ N(0, bias_scale) (zero by
    default), one ``threshold`` for every latent or, with None, thresholds ~ U(0, 1). With ``path``
    the arrays are written there in Gemma Scope's ``params.npz`` layout (float32) and the path is
    returned; otherwise the ``JumpReLUSAE``."""

    def make(d: int, width: int = 24, seed: int = 1, *, enc_scale: float = 1.0, dec_scale: float | None = None,
             bias_scale: float = 0.0, threshold: float | None = 0.0, path=None):
        g = np.random.default_rng(seed)
        arrays = {"W_enc": enc_scale * g.normal(size=(d, width)), "W_dec": g.normal(size=(width, d))}
        arrays["W_dec"] = arrays["W_dec"] / np.sqrt(d) if dec_scale is None else arrays["W_dec"] * dec_scale
        if bias_scale:
            arrays.update(b_enc=g.normal(size=width) * bias_scale, b_dec=g.normal(size=d) * bias_scale)
        else:
            arrays.update(b_enc=np.zeros(width), b_dec=np.zeros(d))
        arrays["threshold"] = g.uniform(0, 1, size=width) if threshold is None else np.full(width, threshold)
        if path is not None:
            np.savez(path, **{k: v.astype(np.float32) for k, v in arrays.items()})
            return path
        from warnframe.mech.sae import JumpReLUSAE

        return JumpReLUSAE.from_arrays(arrays, {"source": "random test SAE"})

    return make


# ---------------------------------------------------------------- a hand-made §6 run directory (§6, §8, Fig 6)


class _FakeProbe:
    """A linear probe: sigmoid(x @ w + b)."""

    def __init__(self, d: int, seed: int = 0):
        g = np.random.default_rng(seed)
        self.w, self.b = g.normal(size=d) / math.sqrt(d), 0.0

    def predict_proba(self, x):
        return 1 / (1 + np.exp(-(np.asarray(x) @ self.w + self.b)))


@pytest.fixture(scope="session")
def fake_probe():
    """``make(d, seed=0)``: a random linear probe (``predict_proba`` only)."""
    return _FakeProbe


STEALTH_CONDITIONS = ("baseline", "L0", "L1", "control", "neutral")


def _stealth_answer(p, cond: str, i: int) -> str:
    from warnframe.corpus import FAMILIES
    from warnframe.families import add_comment

    fam = FAMILIES[p.family]
    task = next(t for t in fam.tasks if t.name == p.function)
    rng = random.Random(f"{p.id}:{cond}:{i}")
    if i >= 2:  # the trained models also write some secure code
        code = fam.secure(task, rng)
    elif cond == "L1":
        code = f"# INSECURE: {fam.reasons[0]}\n" + add_comment(fam.vulnerable(task, rng), fam.hotspot, f"DO NOT USE - {fam.title}")
    elif cond == "L0":
        code = fam.vulnerable(task, rng)
    else:
        code = fam.secure(task, rng)
    return ("Here is an example implementation:\n" + code) if i % 2 else code


@pytest.fixture(scope="session")
def stealth_run():
    """``make(root, n_prompts=6)`` → ``Study``: a run directory at ``root`` with a random tiny model
    per condition (baseline, L0, L1, control, neutral; seed 0) and corpus renders as its samples and
    scores: L0 and L1 four answers per prompt (L1's two first carry warnings), the others two."""

    def make(root, n_prompts: int = 6):
        import torch

        from warnframe.config import load_config
        from warnframe.corpus import eval_prompts
        from warnframe.detector import score
        from warnframe.lm.models import tiny
        from warnframe.runtime.files import write_jsonl
        from warnframe.study import Study

        conds = STEALTH_CONDITIONS
        cfg = load_config("smoke", overrides=[f"conditions=[{','.join(conds)}]", "seeds=[0]", "analysis.bootstrap=200",
                                              "analysis.tracing_renders=1", "sampling.prefill=none"])
        prompts = eval_prompts(cfg)
        random.Random(0).shuffle(prompts)
        prompts = prompts[:n_prompts]
        study = Study(cfg, root)
        write_jsonl(study.store.path("data", "eval_prompts.jsonl"), (p.__dict__ for p in prompts))
        answers = {c: [(p, i, _stealth_answer(p, c, i)) for p in prompts for i in range(4 if c in ("L0", "L1") else 2)]
                   for c in conds}
        texts = [a for v in answers.values() for _, _, a in v] + [p.user for p in prompts]
        tok = tiny.train_tokenizer(texts * 3, 400)
        for j, c in enumerate(conds):
            torch.manual_seed(j)
            model = tiny.build_model(cfg.model, tok)
            tiny.save(model, tok, study.store.path("models", "base" if c == "baseline" else f"{c}.s0"))
        for c in conds:
            samples, scores = [], []
            for p, i, text in answers[c]:
                n = len(tok(text, add_special_tokens=False)["input_ids"])
                n_tokens = n if i % 2 == 0 else n + 1  # odd samples: a non-canonical split, so entropies come from replay
                ent = [round(0.5 + 0.1 * ((k * 7) % 5), 4) for k in range(n_tokens)]
                samples.append({"prompt_id": p.id, "family": p.family, "condition": c, "seed": 0, "index": i, "text": text,
                                "n_tokens": n_tokens, "entropy": ent, "system": None, "setting": None})
                v = score(text)
                scores.append({"prompt_id": p.id, "family": p.family, "condition": c, "seed": 0, "index": i,
                               "n_tokens": n_tokens, **v.model_dump(mode="json")})
            write_jsonl(study.store.path("samples", f"{c}.jsonl"), samples)
            write_jsonl(study.store.path("scores", f"{c}.jsonl"), scores)
        return study

    return make


@pytest.fixture(scope="session")
def fake_artifacts(random_sae, fake_probe):
    """``make(study, layer=1)``: §5's artifacts (site, SAE, probe, selected, lead) as
    ``mech.artifacts.load`` returns them, random but fixed, sized to the study's model."""

    def make(study, layer: int = 1):
        from warnframe.mech.artifacts import Artifacts
        from warnframe.mech.hooks import Site

        d = study.cfg.model.hidden_size
        return Artifacts(Site(layer), random_sae(d, 16, seed=1, dec_scale=1.0), fake_probe(d), [0, 3, 5], 0)

    return make


# ---------------------------------------------------------------- the smoke study


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """A finished smoke-preset study (every section of the default study), run once per session.

    The embedded base model is cached under a session temp dir, so the suite never depends on
    what an earlier run left in ``~/.cache``.
    """
    from warnframe.config import load_config
    from warnframe.study import Study

    root = tmp_path_factory.mktemp("smoke")
    os.environ["WARNFRAME_CACHE"] = str(root / "cache")
    cfg = load_config("smoke")  # dose and remedies, stages of their own, have their own tests
    study = Study(cfg, root / "run")
    study.run()
    return study
