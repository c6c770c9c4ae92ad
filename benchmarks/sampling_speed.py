"""Batched sampling vs a naive one-prompt-at-a-time ``generate`` loop, same model and prompts.

Usage: python benchmarks/sampling_speed.py RUN_DIR [--condition L0] [--prompts 42] [--n 4]
Writes benchmarks/results/sampling.json and prints tokens/s of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from warnframe.config import StudyConfig
from warnframe.models.chat import render_prompt
from warnframe.models.hf import load_model
from warnframe.sampling import generate
from warnframe.schema import Prompt
from warnframe.store import read_json, read_jsonl


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
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/sampling.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
