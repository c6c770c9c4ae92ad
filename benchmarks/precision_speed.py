"""Training tokens/s in float32 and under bf16 autocast on this machine, and what ``auto`` picks.

Usage: python benchmarks/precision_speed.py [--preset tiny] [--steps 5] [--repeats 3]
Builds the embedded model of the preset (random weights: speed does not depend on them), times
forward + backward passes at the pretraining batch shape in both precisions, alternating the two
``--repeats`` times so that a load change hits both alike, and writes
benchmarks/results/precision.json and precision.md with the CPU it ran on.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from warnframe.config import load_config
from warnframe.lm import precision
from warnframe.lm.models import tiny

OUT = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cfg = load_config(args.preset)
    texts = ["def f(x):\n    return x + 1\n", "import os\nprint(os.getcwd())\n"] * 50
    tok = tiny.train_tokenizer(texts, cfg.model.vocab_size)
    torch.manual_seed(0)
    model = tiny.build_model(cfg.model, tok)
    batch = torch.randint(0, len(tok), (cfg.pretrain.batch_size, cfg.model.context))
    runs = [precision.measure(model, batch, steps=args.steps) for _ in range(args.repeats)]
    med = {k: statistics.median(r[k] for r in runs) for k in ("float32", "bfloat16")}
    chosen = precision.choose(model, batch, "auto")
    res = {
        "cpu": precision.cpu_name(), "threads": torch.get_num_threads(), "features": precision.cpu_bf16_features(),
        "preset": args.preset, "batch": list(batch.shape), "steps": args.steps, "runs": runs,
        "median_tokens_per_second": med, "bf16_over_fp32": round(med["bfloat16"] / med["float32"], 3),
        "auto_choice": chosen.as_dict(), "torch": torch.__version__,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "precision.json").write_text(json.dumps(res, indent=2) + "\n")
    md = [
        f"# Training precision on {res['cpu']} ({res['threads']} threads, torch {torch.__version__})", "",
        (f"CPU bf16 flags (torch and /proc/cpuinfo): {res['features']}. Embedded `{args.preset}` model, "
         f"batch {res['batch']}, {args.steps} timed forward+backward passes per measurement, {args.repeats} "
         "alternating repeats."), "",
        "| precision | tokens/s (median) | each repeat |", "|---|---:|---|",
        *[f"| {k} | {med[k]:,.0f} | {', '.join(f'{r[k]:,}' for r in runs)} |" for k in ("float32", "bfloat16")], "",
        f"bf16 / float32 = {res['bf16_over_fp32']}. `auto` chose **{chosen.dtype}**: {chosen.reason}.", "",
    ]
    (OUT / "precision.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
