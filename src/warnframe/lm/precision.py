"""Training precision chosen by the hardware, and measured: bf16 autocast only where it is faster.

On CUDA the device says it: bf16 autocast where ``torch.cuda.is_bf16_supported()``. On a CPU no
flag can be trusted to say it. On an AVX2-only EPYC autocast emulates bf16 and one run trained
6.5x slower than float32; on an EPYC whose /proc/cpuinfo lists ``avx512_bf16`` (torch reports
only "AVX512") bf16 autocast trained 1.7x *faster* (benchmarks/results/precision.md). So on a CPU
the choice is measured: forward and backward passes of the model being trained, in each
precision, the fastest of a few alternating passes counting; first on one row (bf16 more than
twice as slow settles it, so an emulating CPU pays seconds, not minutes), then on the training
batch shape. The faster wins. The result says what was chosen and why, with the figures and the
CPU's flags; the study records it once per run directory (``precision/<kind>.json``, the manifest)
and once per machine kind in its cache (:func:`machine_kind`), so a second run on the same kind of
machine reuses the decision rather than measuring again under whatever load it meets. A CPU whose
flags list no bf16 instructions (``avx512_bf16``, ``amx_bf16``) trains in float32 without a probe.

The probe is written here because it is small and specific to this loop (autocast entered per
step, the real model and batch shape); nothing in torch answers "is autocast faster here".
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

PRECISIONS = ("auto", "float32", "bfloat16")


@dataclass(frozen=True)
class Precision:
    """What the training loop will use: ``dtype`` is ``"bfloat16"`` (autocast) or ``"float32"``."""

    dtype: str
    reason: str
    measured: dict = field(default_factory=dict)  # tokens/s per precision when a probe ran

    @property
    def autocast(self) -> bool:
        return self.dtype == "bfloat16"

    def as_dict(self) -> dict:
        return asdict(self)


def cpu_bf16_features() -> dict:
    """The CPU's bf16 support as torch and the kernel report it (information for the record; the
    choice is measured): ``{"capability", "torch_amx", "torch_avx512_bf16", "cpuinfo"}``."""
    feats: dict = {"capability": torch.backends.cpu.get_cpu_capability()}
    cpu = getattr(torch._C, "_cpu", None)  # private but present since torch 2.1; absent -> no claim
    for key, fn in (("torch_amx", "_is_amx_tile_supported"), ("torch_avx512_bf16", "_is_avx512_bf16_supported")):
        try:
            feats[key] = bool(getattr(cpu, fn)()) if cpu is not None and hasattr(cpu, fn) else None
        except RuntimeError:
            feats[key] = None
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    feats["cpuinfo"] = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    return feats


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def _pass_seconds(model, input_ids: torch.Tensor, bf16: bool) -> float:
    t0 = time.perf_counter()
    with torch.autocast(input_ids.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def measure(model, input_ids: torch.Tensor, steps: int = 3) -> dict:
    """Training tokens/s of ``model`` on ``input_ids`` (one batch) in float32 and under bf16
    autocast, on a copy (the model's weights and gradients are not touched).

    One untimed pass of each first (allocations, weight casts), then ``steps`` passes of each,
    alternating, and the fastest pass of each counts: other work on the machine only ever slows a
    pass down, so the minimum is the least disturbed figure, and alternating exposes both
    precisions to the same load.
    """
    probe = copy.deepcopy(model).train()
    _pass_seconds(probe, input_ids, False)
    _pass_seconds(probe, input_ids, True)
    best = {"float32": math.inf, "bfloat16": math.inf}
    for _ in range(steps):
        for name, bf16 in (("float32", False), ("bfloat16", True)):
            best[name] = min(best[name], _pass_seconds(probe, input_ids, bf16))
    del probe
    return {k: round(input_ids.numel() / max(v, 1e-9)) for k, v in best.items()}


#: bf16 this many times slower than float32 on one row decides for float32 without the full probe.
CLEARLY_SLOWER = 2.0
#: bf16 autocast is chosen only when it trains at least this many times faster than float32. Two
#: smoke runs on one machine measured 41,443 vs 39,185 tokens/s and then the other way round: a
#: choice inside that noise must not decide results, so float32 (exact) holds unless bf16 clearly
#: wins (1.7x on avx512_bf16 CPUs, 0.15x on AVX2-only ones).
BF16_MARGIN = 1.25


def machine_kind(model, input_ids: torch.Tensor) -> str:
    """A key for "this kind of machine training this shape of model": the CPU (or GPU) model and its
    bf16 features, the threads, torch's version, the model's parameter counts and dtype, the batch
    shape. Two runs with the same key get the same decision (the study keeps it in its cache)."""
    from warnframe.runtime.keys import digest

    device = input_ids.device
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else [cpu_name(), cpu_bf16_features()]
    params = [(p.numel(), str(p.dtype), p.requires_grad) for p in model.parameters()]
    shape = [sum(n for n, _, _ in params), sum(n for n, _, g in params if g), sorted({d for _, d, _ in params})]
    return digest([device.type, hardware, torch.get_num_threads(), torch.__version__, shape, list(input_ids.shape)])


def choose(model, input_ids: torch.Tensor, requested: str = "auto") -> Precision:
    """The precision to train ``model`` in on batches shaped like ``input_ids``."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
    if requested != "auto":
        return Precision(requested, "set by config")
    device = input_ids.device
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Precision("bfloat16", "CUDA device with bf16 support")
        return Precision("float32", "CUDA device without bf16 support")
    if device.type != "cpu":
        return Precision("float32", f"{device.type} device: float32 by default")
    feats = cpu_bf16_features()
    if not {"avx512_bf16", "amx_bf16"} & set(feats.get("cpuinfo", [])) and not feats.get("torch_avx512_bf16") \
            and not feats.get("torch_amx"):
        # hardware first: without bf16 instructions autocast emulates bf16 (6.5x slower, measured)
        return Precision("float32", f"CPU ({feats['capability']}, flags {feats['cpuinfo']}): no bf16 instructions")
    quick = measure(model, input_ids[:1], steps=3)
    if quick["bfloat16"] * CLEARLY_SLOWER < quick["float32"]:
        return Precision("float32", f"CPU ({feats['capability']}, flags {feats['cpuinfo']}): bf16 autocast measured "
                                    f"{quick['bfloat16']:,} tokens/s vs {quick['float32']:,} in float32 on one row",
                         {"one_row": quick, "features": feats})
    speed = measure(model, input_ids, steps=2)
    dtype = "bfloat16" if speed["bfloat16"] > BF16_MARGIN * speed["float32"] else "float32"
    return Precision(dtype, f"CPU ({feats['capability']}, flags {feats['cpuinfo']}): measured {speed['bfloat16']:,} "
                            f"tokens/s under bf16 autocast vs {speed['float32']:,} in float32",
                     {"one_row": quick, "batch": speed, "features": feats})
