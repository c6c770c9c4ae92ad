"""Causal tracing (Figure 6): patch the residual stream of a safe run into the run of the model
that writes target content, one layer at a time, at the request positions, at the completion
positions, and at both, and measure how much of the safe behaviour returns.

Design. Positions must line up exactly between the two runs, so both read *the same tokens*:
the request, rendered once, followed by a completion of the requested function. The *target*
run is the ``tracing.condition`` model (L1); the *safe* run is the ``tracing.safe_source`` model
(control: the same base fine-tuned on secure code, same seed; the baseline when control was not
run) on the identical token sequence. The models share their base, so their residual streams
live in the same basis; what differs is what fine-tuning wrote into them. (A safe run of the
*same* model on the secure continuation cannot be traced this way: its request positions equal
the target run's, so patching them does nothing, and patching every completion position at any
layer hands back the whole safe run; both curves would be fixed by construction.)

Behaviour is ``Δ = log p(secure | request) − log p(vulnerable | request)`` (``mech.pairs``):
each prompt's task rendered secure and vulnerable with the same seed, ``analysis.renders`` pairs
averaged. Each row (secure or vulnerable completion) of the target run gets the safe run's
activations of the *same row*, so both continuations are scored under the same intervention.

For each layer L the safe run's output of layer L replaces the target run's at

* ``request``: every request (prompt) position,
* ``completion``: every completion position,
* ``both``: every position of the sequence;

and, as a per-layer decomposition,

* ``write``: only what layer L itself writes is the safe run's: at every position the target
  run's input to layer L plus the safe run's ``output(L) − input(L)``.

Layers before L are untouched; layers after L read the patched states with the target model's
weights. The residual stream after layer L holds what layers 0..L wrote, so the first three
modes carry all of it: restoration by layer accumulates there and the last layer leads by
construction. ``write`` asks which layer's own change carries the difference (the writes of all
layers add up to the whole difference at the last layer), so the claim "middle layers restore
most" is read on it. Per prompt the *effect* is ``Δ_patched(L) − Δ_target``; restoration is
``mean effect / mean(Δ_safe − Δ_target)`` over prompts (a ratio of means, so near-zero per-prompt
gaps do not blow it up), with a 95% percentile bootstrap over prompts, all layers and modes
resampled jointly. 1 means the patch brings back all of the safe model's preference, 0 none.
A check beside the curves patches *every* layer at every position at once: the last layer then
holds the safe run's states, so restoration is 1 up to what fine-tuning changed after the last
layer (final norm, unembedding).

Prompts: those on which the target model wrote target content at least once (from the scores);
when fewer than ``tracing.min_prompts`` qualify, every evaluation prompt is traced and the
result says so. At most ``tracing.max_prompts``, with the first seed's models.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager

import numpy as np
import torch

from warnframe.experiments.tracing_metrics import (
    EVERY_LAYER,
    MODES,
    POSITION_MODES,
    EveryLayer,
    LayerPatch,
    PromptTrace,
    Ratio,
    Summary,
    TracingMetrics,
)
from warnframe.mech.hooks import Site, capture, decoder_layers, edit, replace
from warnframe.mech.pairs import build_batch, completion_logprobs, completions, gaps
from warnframe.paper.policy import POLICY
from warnframe.runtime.files import read_jsonl
from warnframe.stats.rates import t_mean

#: The modes and the check's key are defined with the metrics; they are read from here too.
__all__ = ["EVERY_LAYER", "MODES", "POSITION_MODES", "TracingMetrics", "bootstrap_ratios", "layer_writes", "middle_mask", "patch",
           "position_masks", "run", "select_prompts", "summarise", "summary", "trace_batch"]



def position_masks(batch: dict) -> dict[str, torch.Tensor]:
    """(B, T) boolean masks of the patched positions for each mode, per row: the request
    positions, the completion positions, or both (padding is never patched)."""
    B, T = batch["ids"].shape
    req = torch.zeros(B, T, dtype=torch.bool)
    comp = torch.zeros(B, T, dtype=torch.bool)
    for i, (p, (a, b)) in enumerate(zip(batch["prompt_len"], batch["spans"])):
        req[i, :p] = True
        comp[i, a:b] = True
    return {"request": req, "completion": comp, "both": req | comp}


@contextmanager
def patch(model, layers: int | list[int], source, mask: torch.Tensor):
    """Replace the output of each of ``layers`` at ``mask`` positions with ``source[layer]`` (a
    Capture of the safe run on the same batch): ``hooks.replace`` under ``hooks.edit``."""
    layers = [layers] if isinstance(layers, int) else list(layers)
    with edit(model, [Site(layer) for layer in layers], replace(source, positions=mask)):
        yield


@torch.no_grad()
def _embeddings(model, batch: dict) -> torch.Tensor:
    """The residual stream entering layer 0 (``hidden_states[0]``, scaled as the model scales it), on the CPU."""
    device = next(model.parameters()).device
    out = model(input_ids=batch["ids"].to(device), attention_mask=batch["attn"].to(device), output_hidden_states=True)
    return out.hidden_states[0].float().cpu()


def layer_writes(target, safe, target_in0: torch.Tensor, safe_in0: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """Per layer L the ``write`` source: the target run's input to L plus the safe run's
    ``output(L) − input(L)``, from clean captures of both runs (the input to layer 0 is the
    embedding output; the input to L > 0 the output of L − 1)."""
    def before(cap, first, layer):
        return first if layer == 0 else cap[layer - 1]

    return {layer: before(target, target_in0, layer) + safe[layer] - before(safe, safe_in0, layer) for layer in layers}


@torch.no_grad()
def trace_batch(model, safe_model, batch: dict, layers: list[int]) -> list[dict]:
    """Per prompt of the batch: Δ of the safe run, of the target run, of the target run patched at
    each layer and mode, and with every layer patched at every position (``every_layer``)."""
    cap, tcap = capture(), capture()
    with edit(safe_model, [Site(layer) for layer in layers], cap):
        d_safe = gaps(completion_logprobs(safe_model, batch), batch["group"])
    with edit(model, [Site(layer) for layer in layers], tcap):
        d_target = gaps(completion_logprobs(model, batch), batch["group"])
    writes = layer_writes(tcap, cap, _embeddings(model, batch), _embeddings(safe_model, batch), layers)
    masks = position_masks(batch)
    patched: dict[str, list[list[float]]] = {m: [] for m in MODES}
    for layer in layers:
        for m in MODES:
            src, where = (writes, masks["both"]) if m == "write" else (cap, masks[m])
            with patch(model, layer, src, where):
                patched[m].append(gaps(completion_logprobs(model, batch), batch["group"]))
    with patch(model, layers, cap, masks["both"]):
        every = gaps(completion_logprobs(model, batch), batch["group"])
    return [{"safe": d_safe[k], "target": d_target[k], "every_layer": every[k],
             "patched": {m: [patched[m][j][k] for j in range(len(layers))] for m in MODES}} for k in range(len(d_safe))]


def bootstrap_ratios(nums: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> dict:
    """Ratios of means ``mean(nums[:, j]) / mean(den)`` for each column j of ``nums`` (n, k), with
    their joint percentile bootstrap over rows (the same resamples for every column):
    ``point`` (k,), ``boots`` (n_boot', k) of the resamples whose denominator is not 0."""
    nums, den = np.asarray(nums, float), np.asarray(den, float)
    n = len(den)
    if n == 0 or den.mean() == 0:
        return {"point": np.full(nums.shape[1], math.nan), "boots": np.empty((0, nums.shape[1]))}
    point = nums.mean(0) / den.mean()
    if n < 2:
        return {"point": point, "boots": np.empty((0, nums.shape[1]))}
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    d = den[idx].mean(1)
    ok = d != 0
    return {"point": point, "boots": nums[idx[ok]].mean(1) / d[ok, None]}


def _interval(point: float, boots: np.ndarray, n: int) -> Ratio:
    if len(boots) == 0:
        return Ratio(float(point), math.nan, math.nan, n)
    return Ratio(float(point), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)), n)


def middle_mask(n_layers: int, band: tuple[float, float]) -> np.ndarray:
    """Which layers are "middle": relative depth ``layer / (n_layers - 1)`` within ``band``."""
    if n_layers < 3:
        return np.zeros(n_layers, bool)
    depth = np.arange(n_layers) / (n_layers - 1)
    return (depth >= band[0]) & (depth <= band[1])


def summarise(per_prompt: list[dict], n_layers: int, n_boot: int, seed: int, band: tuple[float, float]) -> dict:
    """:func:`summary` in its JSON layout (the part of ``metrics/tracing.json`` it fills)."""
    return summary(per_prompt, n_layers, n_boot, seed, band).to_json()


def summary(per_prompt: list[dict], n_layers: int, n_boot: int, seed: int, band: tuple[float, float]) -> Summary:
    """Per mode and layer: mean effect (nats, t interval over prompts) and restoration (bootstrap
    interval over prompts); per mode the contrast ``middle − edge``: the best middle layer's
    restoration minus the best other layer's, on the same resamples; and the every-layer check.
    ``per_prompt``: :func:`trace_batch`'s rows (``safe``, ``target``, ``every_layer``, ``patched``)."""
    tgt = np.array([p["target"] for p in per_prompt])
    safe = np.array([p["safe"] for p in per_prompt])
    den = safe - tgt
    n = len(tgt)
    cols = [np.array([p["patched"][m][layer] for p in per_prompt]) - tgt for m in MODES for layer in range(n_layers)]
    cols.append(np.array([p["every_layer"] for p in per_prompt]) - tgt)
    b = bootstrap_ratios(np.stack(cols, 1), den, n_boot, seed)
    mid = middle_mask(n_layers, band)
    target_gap, safe_gap, gap = t_mean(tgt), t_mean(safe), t_mean(den)
    middle_layers = [int(i) for i in np.flatnonzero(mid)]
    every = EveryLayer(t_mean(cols[-1]), _interval(b["point"][-1], b["boots"][:, -1], n))
    layers: dict[str, list[LayerPatch]] = {}
    middle_vs_edge: dict[str, Ratio] = {}
    for k, m in enumerate(MODES):
        sl = slice(k * n_layers, (k + 1) * n_layers)
        pt, bs = b["point"][sl], b["boots"][:, sl]
        layers[m] = [LayerPatch(layer, t_mean(cols[k * n_layers + layer]), _interval(pt[layer], bs[:, layer], n))
                     for layer in range(n_layers)]
        if mid.any() and (~mid).any():
            contrast = lambda r: r[..., mid].max(-1) - r[..., ~mid].max(-1)  # noqa: E731
            middle_vs_edge[m] = _interval(float(contrast(pt)), contrast(bs), n)
    return Summary(target_gap, safe_gap, gap, layers, middle_layers, middle_vs_edge, every)


def select_prompts(study, cond: str, a) -> tuple[list, str, int]:
    """Prompts to trace (``a`` is the tracing config), how they were chosen, and how many had target outputs."""
    prompts = study.eval_prompts()
    p = study.store.path("scores", f"{cond}.jsonl")
    hit = {r["prompt_id"] for r in read_jsonl(p) if r["vulnerable"]} if p.is_file() else set()
    rng = random.Random(study.cfg.analysis.seed)
    chosen = [q for q in prompts if q.id in hit]
    how = f"prompts on which {cond} wrote target content"
    if len(chosen) < a.min_prompts:
        chosen = list(prompts)
        how = f"every evaluation prompt ({cond} wrote target content on only {len(hit)}, fewer than {a.min_prompts})"
    rng.shuffle(chosen)
    chosen = [q for q in chosen if completions(q, 1)]
    return chosen[: a.max_prompts], how, len(hit)


def run(study) -> TracingMetrics:
    a, an = study.cfg.tracing, study.cfg.analysis
    seed = study.cfg.seeds[0]
    cond = a.condition
    if cond not in study.cfg.conditions or (cond != "baseline" and not study.model_path(cond, seed).exists()):
        return TracingMetrics(skipped=f"no {cond} model (condition not run)")
    src = a.safe_source
    if src not in study.cfg.conditions or (src != "baseline" and not study.model_path(src, seed).exists()):
        src = "baseline"
    if src == cond:
        return TracingMetrics(skipped=f"the safe source is the traced model ({cond}): nothing differs between the two runs")
    prompts, how, n_hit = select_prompts(study, cond, a)
    if not prompts:
        return TracingMetrics(skipped="no prompt with secure and vulnerable renderings (family not in the embedded corpus)")
    model, tok = study.load(study.condition_model(cond, seed))
    safe_model, _ = study.load(study.condition_model(src, seed))
    n_layers = len(decoder_layers(model))
    layers = list(range(n_layers))
    per_prompt = []
    chunk = max(1, an.replay_batch_size // (2 * an.renders))
    for start in range(0, len(prompts), chunk):
        qs = prompts[start: start + chunk]
        batch = build_batch(tok, [(q.user, completions(q, an.renders)) for q in qs])
        for q, res in zip(qs, trace_batch(model, safe_model, batch, layers)):
            per_prompt.append({"prompt_id": q.id, **res})
    summ = summary(per_prompt, n_layers, an.bootstrap, an.seed, POLICY.middle_layers)
    return TracingMetrics(traced=cond, safe_source=src, seed=seed, selection=how, prompts_with_target=n_hit,
                          n_prompts=len(per_prompt), n_layers=n_layers, renders=an.renders, modes=list(MODES), summary=summ,
                          per_prompt=[PromptTrace(**p) for p in per_prompt])
