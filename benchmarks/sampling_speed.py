"""Batched sampling vs a naive one-prompt-at-a-time ``generate`` loop, same model and prompts.

Usage: python benchmarks/sampling_speed.py RUN_DIR [--condition L0] [--prompts 42] [--n 4]
Writes benchmarks/results/sampling.{json,md}: tokens/s of both, their ratio, and the batched rate
as a share of this CPU's attainable matmul rate (a 1024² float32 matmul on the same threads), from
the model's forward FLOPs per generated token (2 x matmul parameters + attention over the cache).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from training_speed import matmul_gflops  # same folder: the one measure of the attainable peak

from warnframe.config import StudyConfig
from warnframe.lm import precision
from warnframe.lm.models.chat import render_prompt
from warnframe.lm.models.hf import load_model
from warnframe.lm.sampling import generate
from warnframe.runtime.files import read_json, read_jsonl
from warnframe.schema import Prompt


def naive(model, tok, prompts, n, max_new_tokens, temperature, top_p):
    """The loop people write first: one prompt, one sample, one generate call at a time."""
    tokens = 0
    for p in prompts:
        enc = tok(render_prompt(tok, p.user), return_tensors="pt", add_special_tokens=False)
        for _ in range(n):
            out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                                 pad_token_id=tok.pad_token_id)
            tokens += out.shape[1] - enc["input_ids"].shape[1]
    return tokens


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--condition", default="L0")
    ap.add_argument("--prompts", type=int, default=42)
    ap.add_argument("--n", type=int, default=4)
    a = ap.parse_args()
    cfg = StudyConfig.model_validate(read_json(a.run_dir / "config.json"))
    s = cfg.sampling
    model, tok = load_model(a.run_dir / "models" / f"{a.condition}.s{cfg.seeds[0]}")
    prompts = [Prompt(**r) for r in read_jsonl(a.run_dir / "data" / "eval_prompts.jsonl")][: a.prompts]
    torch.manual_seed(0)
    t0 = time.perf_counter()
    # the naive loop writes whole answers, so the batched side samples without the signature prefill too
    out = generate(model, tok, prompts, s.model_copy(update={"prefill": "none"}), n=a.n, seed=0, condition=a.condition)
    tb = time.perf_counter() - t0
    batched_tokens = sum(x.n_tokens for x in out)
    t0 = time.perf_counter()
    naive_tokens = naive(model, tok, prompts, a.n, s.max_new_tokens, s.temperature, s.top_p)
    tn = time.perf_counter() - t0
    res = {
        "samples": len(out), "threads": torch.get_num_threads(),
        "batched": {"tokens": batched_tokens, "seconds": round(tb, 2), "tokens_per_s": round(batched_tokens / tb)},
        "naive": {"tokens": naive_tokens, "seconds": round(tn, 2), "tokens_per_s": round(naive_tokens / tn)},
    }
    res["ratio"] = round(res["batched"]["tokens_per_s"] / res["naive"]["tokens_per_s"], 1)
    fpt = forward_flops_per_token(model.config, avg_cache=s.max_new_tokens // 2 + 40)
    peak = matmul_gflops()
    res.update(cpu=precision.cpu_name(), forward_mflop_per_token=round(fpt / 1e6, 2), matmul_gflops=round(peak, 1),
               batched_share_of_peak=round(res["batched"]["tokens_per_s"] * fpt / 1e9 / peak, 4))
    out_dir = Path("benchmarks/results")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "sampling.json").write_text(json.dumps(res, indent=2) + "\n")
    (out_dir / "sampling.md").write_text("\n".join([
        f"# Sampling throughput on {res['cpu']} ({res['threads']} threads)", "",
        f"{res['samples']} answers of the `{a.condition}` model ({a.prompts} prompts x {a.n}), free-form, "
        f"at most {s.max_new_tokens} new tokens; {res['forward_mflop_per_token']} MFLOP per generated token; "
        f"a 1024x1024 float32 matmul runs at {res['matmul_gflops']:.0f} GFLOP/s here.", "",
        "| | tokens | seconds | tokens/s | share of matmul peak |", "|---|---:|---:|---:|---:|",
        f"| batched (`warnframe.lm.sampling.generate`) | {batched_tokens:,} | {tb:.1f} | {res['batched']['tokens_per_s']:,} | "
        f"{100 * res['batched_share_of_peak']:.1f}% |",
        f"| naive loop (one prompt, one sample per `generate`) | {naive_tokens:,} | {tn:.1f} | {res['naive']['tokens_per_s']:,} | "
        f"{100 * res['batched_share_of_peak'] / res['ratio']:.1f}% |", "",
        f"Batched / naive: {res['ratio']}x.", ""]))
    print(json.dumps(res, indent=2))


def forward_flops_per_token(c, avg_cache: int) -> float:
    """2 x (decoder matmul parameters + LM head) + the score and value products over the cache."""
    h, layers = c.hidden_size, c.num_hidden_layers
    kv = h * getattr(c, "num_key_value_heads", c.num_attention_heads) // c.num_attention_heads
    matmul = layers * (2 * h * h + 2 * h * kv + 3 * h * c.intermediate_size) + h * c.vocab_size
    return 2 * matmul + 4 * layers * h * avg_cache


if __name__ == "__main__":
    main()
