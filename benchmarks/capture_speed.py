"""Activation capture at one site plus SAE encoding, against a plain forward pass.

Usage: python benchmarks/capture_speed.py RUN_DIR [--condition L1]
Replays the condition's stored samples teacher-forced three ways (plain forward; forward with a
capture at the study's site; capture plus SAE encoding) and reports tokens/s and the overhead.
Writes benchmarks/results/capture.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from warnframe.lm.models.hf import load_model
from warnframe.mech.activations import right_pad
from warnframe.mech.hooks import Site, capture, edit
from warnframe.mech.sae import JumpReLUSAE
from warnframe.runtime.files import read_json, read_jsonl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--condition", default="L1")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    art = read_json(a.run_dir / "mech" / "artifacts.json")
    site, sae = Site.parse(art["site"]), JumpReLUSAE.load(art["sae"])
    cfg = read_json(a.run_dir / "config.json")
    model, tok = load_model(a.run_dir / "models" / f"{a.condition}.s{cfg['seeds'][0]}")
    rows = list(read_jsonl(a.run_dir / "samples" / f"{a.condition}.jsonl"))[:512]
    seqs = [r["tokens"] or [tok.eos_token_id] for r in rows]
    ids, attn, mask = right_pad(seqs, [(0, len(s)) for s in seqs], tok.pad_token_id)
    tokens = int(attn.sum())

    def plain():
        model(input_ids=ids, attention_mask=attn)

    def captured(encode: bool):
        cap = capture(mask)
        with edit(model, site, cap):
            model(input_ids=ids, attention_mask=attn)
        if encode:
            sae.encode(cap[site.layer])

    timings = {}
    with torch.no_grad():
        plain()  # warm-up
        for name, fn in (("forward", plain), ("forward+capture", lambda: captured(False)), ("forward+capture+sae", lambda: captured(True))):
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            timings[name] = {"seconds": round(best, 4), "tokens_per_s": round(tokens / best)}
    res = {"tokens": tokens, "sequences": len(seqs), "site": str(site), "sae_width": sae.width, "threads": torch.get_num_threads(),
           **timings, "capture_overhead": round(timings["forward+capture"]["seconds"] / timings["forward"]["seconds"] - 1, 3)}
    Path("benchmarks/results").mkdir(parents=True, exist_ok=True)
    Path("benchmarks/results/capture.json").write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
