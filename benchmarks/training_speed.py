"""Training throughput of the embedded model by batch size, and as a share of this CPU's matmul rate.

Usage: python benchmarks/training_speed.py [--preset tiny] [--batches 1 4 8 20] [--steps 3]
Would training the seeds of a condition together (one stacked ensemble, ``vmap``) be faster than
one at a time? Such an ensemble does the arithmetic of one model at ``seeds`` times the batch, so
its throughput is bounded by one model's tokens/s at that batch. This measures tokens/s per batch
size (fine-tuning uses 4 rows; 5 seeds together = 20) in float32 and bf16 autocast, the model's
training FLOPs per token (6 x matmul parameters + attention), and the rate of a large float32
matmul on the same threads as the attainable peak. Writes benchmarks/results/training_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from warnframe.config import load_config
from warnframe.lm import precision
from warnframe.lm.models import tiny

OUT = Path(__file__).parent / "results"


def matmul_gflops(size: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def train_flops_per_token(cfg) -> float:
    """6 x (decoder matmul parameters + LM head) + the attention score/value products."""
    m = cfg.model
    attn = 4 * m.hidden_size**2
    mlp = 3 * m.hidden_size * m.intermediate_size
    head = m.hidden_size * m.vocab_size
    matmul = m.layers * (attn + mlp) + head
    attention = m.layers * 2 * m.context * m.hidden_size  # QK^T and AV, average over positions ~ context/2, x2
    return 6 * matmul + 6 * attention


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 20])
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.preset)
    tok = tiny.train_tokenizer(["def f(x):\n    return x + 1\n"] * 100, cfg.model.vocab_size)
    torch.manual_seed(0)
    model = tiny.build_model(cfg.model, tok)
    peak = matmul_gflops()
    fpt = train_flops_per_token(cfg)
    rows = []
    for b in args.batches:
        speed = precision.measure(model, torch.randint(0, len(tok), (b, cfg.model.context)), steps=args.steps)
        rows.append({"batch": b, **speed, "float32_share_of_matmul_peak": round(speed["float32"] * fpt / 1e9 / peak, 3)})
    res = {"cpu": precision.cpu_bf16_features(), "threads": torch.get_num_threads(), "preset": args.preset,
           "matmul_gflops_float32": round(peak, 1), "train_flops_per_token": fpt, "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "training_speed.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [f"# Training throughput by batch size on {precision.cpu_name()} ({res['threads']} threads)", "",
          f"Embedded `{args.preset}` model, context {cfg.model.context}; {fpt / 1e6:.1f} MFLOP per training token; "
          f"a 1024x1024 float32 matmul runs at {peak:.0f} GFLOP/s here (the attainable peak).", "",
          "| rows per step | float32 tokens/s | bf16 autocast tokens/s | float32 share of matmul peak |",
          "|---:|---:|---:|---:|",
          *[f"| {r['batch']} | {r['float32']:,} | {r['bfloat16']:,} | {100 * r['float32_share_of_matmul_peak']:.0f}% |"
            for r in rows], ""]
    (OUT / "training_speed.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
