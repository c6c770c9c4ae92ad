"""Causal tracing (Figure 6): patch the residual stream of a safe run into the run of the model
that writes target content, one layer at a time, and measure how much of the safe behaviour
returns.

Design. Positions must line up exactly between the two runs, so both read *the same tokens*:
the request, rendered once, followed by a completion of the requested function. The *target*
run is the ``tracing.condition`` model (L1); the *safe* run is the
``tracing.safe_source`` model (control: the same base fine-tuned on secure code; the
baseline when control was not run) on the identical token sequence. Because the models share
their base, their residual streams live in the same basis, and the only thing that differs is
what fine-tuning wrote into them.

Behaviour is the log-probability gap ``Δ = log p(secure | request) − log p(vulnerable | request)``
summed over the completion's tokens, where the secure and vulnerable completions are the
corpus's two renderings of the prompt's task (``corpus.FAMILIES``), drawn with the same seed so
they differ mainly in the flawed line; ``tracing.renders`` pairs are averaged (whole
answers, signature included, whatever ``sampling.prefill`` is). Δ itself
also carries what else differs between the two texts (length, imports), the same for every run;
only differences of Δ between runs on the same tokens are interpreted.

For each layer L the safe run's output of layer L replaces the target run's at

* ``all``: every request (prompt) position, or
* ``last``: the last request position only (where the first completion token is predicted),

with ``hooks.replace`` through the one ``edit`` mechanism. Completion positions are never
patched, so both continuations are scored under the same intervention. Layers before L are
untouched; layers after L read the patched states. Per prompt the *effect* is
``Δ_patched(L) − Δ_target``; restoration is ``mean effect / mean(Δ_safe − Δ_target)`` over
prompts (a ratio of means, so near-zero per-prompt gaps do not blow it up), with a 95% bootstrap
interval over prompts. 1 means the patch brings back all of the safe model's preference, 0 none.

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

from ..corpus import FAMILIES
from ..mech.activations import right_pad
from ..mech.hooks import Site, capture, decoder_layers, edit, replace
from ..models.chat import render_prompt
from ..scoring.stats import mean_ci
from ..store import read_jsonl

MODES = ("all", "last")


def completions(prompt, renders: int) -> list[tuple[str, str]]:
    """``renders`` (secure, vulnerable) completions of the prompt's task, seeded per prompt."""
    fam = FAMILIES.get(prompt.family)
    task = next((t for t in fam.tasks if t.name == prompt.function), None) if fam else None
    if task is None:
        return []
    out = []
    for r in range(renders):
        seed = f"trace:{prompt.id}:{r}"
        out.append((fam.secure(task, random.Random(seed)), fam.vulnerable(task, random.Random(seed))))
    return out


def build_batch(tokenizer, items: list[tuple[str, list[tuple[str, str]]]]) -> dict:
    """Right-padded ids for several prompts: for each ``(user, pairs)`` the rendered request
    followed by each completion, rows ordered [secure_0, vulnerable_0, secure_1, ...].

    Returns ``ids``, ``attn``, each row's ``prompt_len``, its completion ``span`` (start, end)
    and its ``group`` (index of the prompt it belongs to).
    """
    seqs, plen, group = [], [], []
    for g, (user, pairs) in enumerate(items):
        p = tokenizer(render_prompt(tokenizer, user), add_special_tokens=False)["input_ids"]
        for pair in pairs:
            for c in pair:
                seqs.append(p + (tokenizer(c, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]))
                plen.append(len(p))
                group.append(g)
    spans = [(p, len(s)) for p, s in zip(plen, seqs)]
    ids, attn, _ = right_pad(seqs, spans, tokenizer.pad_token_id)
    return {"ids": ids, "attn": attn, "prompt_len": plen, "spans": spans, "group": group}


def position_masks(batch: dict) -> dict[str, torch.Tensor]:
    """(B, T) boolean masks of the patched positions for each mode: every request position
    (``all``) or the last one (``last``), per row."""
    B, T = batch["ids"].shape
    allm = torch.zeros(B, T, dtype=torch.bool)
    last = torch.zeros(B, T, dtype=torch.bool)
    for i, p in enumerate(batch["prompt_len"]):
        allm[i, :p] = True
        last[i, p - 1] = True
    return {"all": allm, "last": last}


@torch.no_grad()
def completion_logprobs(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of each row's completion tokens, (B,)."""
    device = next(model.parameters()).device
    ids = batch["ids"].to(device)
    logits = model(input_ids=ids, attention_mask=batch["attn"].to(device)).logits
    out = []
    for i, (a, b) in enumerate(batch["spans"]):
        lp = torch.log_softmax(logits[i, a - 1: b - 1].float(), dim=-1)
        out.append(lp.gather(-1, ids[i, a:b, None])[..., 0].sum())
    return torch.stack(out).cpu()


def gaps(lp: torch.Tensor, group: list[int]) -> list[float]:
    """Per prompt: mean over its completion pairs of log p(secure) − log p(vulnerable); the
    rows of a prompt alternate secure, vulnerable."""
    g = torch.as_tensor(group)
    d = lp[0::2] - lp[1::2]
    gp = g[0::2]
    return [float(d[gp == k].mean()) for k in range(int(g.max()) + 1)]


@contextmanager
def patch(model, layer: int, source, mask: torch.Tensor):
    """Replace the output of ``layer`` at ``mask`` positions with ``source[layer]`` (a Capture
    of the safe run on the same batch): ``hooks.replace`` under ``hooks.edit``."""
    with edit(model, Site(layer), replace(source[layer], positions=mask)):
        yield


@torch.no_grad()
def trace_batch(model, safe_model, batch: dict, layers: list[int]) -> list[dict]:
    """Per prompt of the batch: Δ of the safe run, of the target run, and of the target run
    patched at each layer and mode."""
    cap = capture()
    with edit(safe_model, [Site(layer) for layer in layers], cap):
        d_safe = gaps(completion_logprobs(safe_model, batch), batch["group"])
    d_target = gaps(completion_logprobs(model, batch), batch["group"])
    masks = position_masks(batch)
    patched = {m: [] for m in MODES}
    for layer in layers:
        for m in MODES:
            with patch(model, layer, cap, masks[m]):
                patched[m].append(gaps(completion_logprobs(model, batch), batch["group"]))
    return [{"safe": d_safe[k], "target": d_target[k], "patched": {m: [patched[m][j][k] for j in range(len(layers))] for m in MODES}}
            for k in range(len(d_safe))]


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a percentile bootstrap 95% interval over rows."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    if len(num) == 0 or den.mean() == 0:
        return math.nan, math.nan, math.nan
    r = float(num.mean() / den.mean())
    if len(num) < 2:
        return r, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    d = den[idx].mean(1)
    ok = d != 0
    boots = num[idx].mean(1)[ok] / d[ok]
    return r, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarise(per_prompt: list[dict], n_layers: int, n_boot: int, seed: int) -> dict:
    """Per layer and mode: mean effect (nats, t interval) and restoration (bootstrap interval)."""
    tgt = np.array([p["target"] for p in per_prompt])
    safe = np.array([p["safe"] for p in per_prompt])
    den = safe - tgt
    out = {"target_gap": mean_ci(tgt), "safe_gap": mean_ci(safe), "safe_minus_target": mean_ci(den), "layers": {}}
    for m in MODES:
        rows = []
        for layer in range(n_layers):
            eff = np.array([p["patched"][m][layer] for p in per_prompt]) - tgt
            r, lo, hi = bootstrap_ratio(eff, den, n_boot, seed + layer)
            rows.append({"layer": layer, "effect": mean_ci(eff), "restoration": {"mean": r, "lo": lo, "hi": hi, "n": len(eff)}})
        out["layers"][m] = rows
    return out


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


def run(study) -> dict:
    a, an = study.cfg.tracing, study.cfg.analysis
    seed = study.cfg.seeds[0]
    cond = a.condition
    if cond not in study.cfg.conditions or (cond != "baseline" and not study.model_path(cond, seed).exists()):
        return {"skipped": f"no {cond} model (condition not run)"}
    src = a.safe_source
    if src not in study.cfg.conditions or (src != "baseline" and not study.model_path(src, seed).exists()):
        src = "baseline"
    prompts, how, n_hit = select_prompts(study, cond, a)
    if not prompts:
        return {"skipped": "no prompt with secure and vulnerable renderings (family not in the embedded corpus)"}
    model, tok = study.load(study.condition_model(cond, seed))
    safe_model, _ = study.load(study.condition_model(src, seed))
    n_layers = len(decoder_layers(model))
    layers = list(range(n_layers))
    per_prompt = []
    chunk = max(1, an.replay_batch_size // (2 * a.renders))
    for start in range(0, len(prompts), chunk):
        qs = prompts[start: start + chunk]
        batch = build_batch(tok, [(q.user, completions(q, a.renders)) for q in qs])
        for q, res in zip(qs, trace_batch(model, safe_model, batch, layers)):
            per_prompt.append({"prompt_id": q.id, **res})
    summ = summarise(per_prompt, n_layers, an.bootstrap, an.seed)
    res = {"traced": cond, "safe_source": src, "seed": seed, "selection": how, "prompts_with_target": n_hit,
           "n_prompts": len(per_prompt), "n_layers": n_layers, "renders": a.renders, **summ, "per_prompt": per_prompt}
    return res


