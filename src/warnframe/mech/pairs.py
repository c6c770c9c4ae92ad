"""Paired secure / vulnerable renderings of an evaluation prompt and the teacher-forced preference
between them, ``Δ = log p(secure | request) − log p(vulnerable | request)`` in nats.

Each prompt's task (``corpus.FAMILIES``) is rendered twice with the same seed, once secure and
once vulnerable, so the two texts differ mainly in the flawed line. A model's Δ on them is a
continuous, sampling-free measure of how much it prefers the secure version: positive favours
secure. Δ also carries whatever else differs between the two texts (length, imports), the same
for every model, so only *differences* of Δ between models or edits on the same pairs are
interpreted.

Used by causal tracing (Figure 6), §7 (Δ beside every sampled rate) and the remedies stage.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch

from warnframe.corpus import FAMILIES
from warnframe.lm.models.chat import render_prompt
from warnframe.mech.activations import right_pad


def completions(prompt, renders: int) -> list[tuple[str, str]]:
    """``renders`` (secure, vulnerable) completions of the prompt's task, seeded per prompt and
    render; empty when the prompt's family or task is not in the embedded corpus."""
    fam = FAMILIES.get(prompt.family)
    task = next((t for t in fam.tasks if t.name == prompt.function), None) if fam else None
    if fam is None or task is None:
        return []
    out = []
    for r in range(renders):
        seed = f"trace:{prompt.id}:{r}"
        out.append((fam.secure(task, random.Random(seed)), fam.vulnerable(task, random.Random(seed))))
    return out


def build_batch(tokenizer, items: Sequence[tuple[str, list[tuple[str, str]]]], system: str | None = None) -> dict:
    """Right-padded ids for several prompts: for each ``(user, pairs)`` the rendered request
    followed by each completion, rows ordered [secure_0, vulnerable_0, secure_1, ...].

    Returns ``ids``, ``attn``, each row's ``prompt_len``, its completion ``spans`` (start, end)
    and its ``group`` (index of the prompt it belongs to).
    """
    seqs, plen, group = [], [], []
    for g, (user, pairs) in enumerate(items):
        p = tokenizer(render_prompt(tokenizer, user, system), add_special_tokens=False)["input_ids"]
        for pair in pairs:
            for c in pair:
                seqs.append(p + (tokenizer(c, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]))
                plen.append(len(p))
                group.append(g)
    spans = [(p, len(s)) for p, s in zip(plen, seqs)]
    ids, attn, _ = right_pad(seqs, spans, tokenizer.pad_token_id)
    return {"ids": ids, "attn": attn, "prompt_len": plen, "spans": spans, "group": group}


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
    """Per prompt: mean over its completion pairs of log p(secure) − log p(vulnerable); the rows
    of a prompt alternate secure, vulnerable."""
    g = torch.as_tensor(group)
    d = lp[0::2] - lp[1::2]
    gp = g[0::2]
    return [float(d[gp == k].mean()) for k in range(int(g.max()) + 1)]


def prompt_deltas(model, tokenizer, prompts: Sequence, renders: int, batch_size: int, *, system: str | None = None,
                  edit: Callable[[], AbstractContextManager] | None = None) -> dict[str, float]:
    """Δ per prompt id (nats, mean over ``renders`` pairs) for every prompt with paired
    renderings, ``batch_size`` sequences per forward pass. ``edit`` (as ``generate(edit=...)``) is
    entered around each pass, ``system`` is sent as the system turn."""
    usable = [(q, completions(q, renders)) for q in prompts]
    usable = [(q, c) for q, c in usable if c]
    chunk = max(1, batch_size // (2 * renders))
    out: dict[str, float] = {}
    for start in range(0, len(usable), chunk):
        part = usable[start: start + chunk]
        batch = build_batch(tokenizer, [(q.user, c) for q, c in part], system)
        with edit() if edit else nullcontext():
            d = gaps(completion_logprobs(model, batch), batch["group"])
        out.update({q.id: v for (q, _), v in zip(part, d)})
    return out
