"""Residual-stream activations over plain texts (SAE training data), and the padding and
decoder helpers that :mod:`warnframe.mech.replay` (stored samples) shares. One forward pass per
batch, hooks only at the layers asked for (never ``output_hidden_states``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from warnframe.mech.hooks import Site, capture, edit


def decoder_only(model):
    """The model without its output head (``base_model``): hooks on its layers fire the same."""
    return getattr(model, "base_model", model)


def right_pad(seqs: Sequence[Sequence[int]], spans: Sequence[tuple[int, int]], pad_id: int):
    """Right-padded ``(ids, attention_mask, span_mask)`` for a teacher-forced batch; ``span_mask``
    marks each row's ``[a, b)`` positions (the generated tokens)."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    mask = torch.zeros_like(ids, dtype=torch.bool)
    for i, (x, (a, b)) in enumerate(zip(seqs, spans)):
        ids[i, : len(x)] = torch.tensor(list(x))
        attn[i, : len(x)] = 1
        mask[i, a:b] = True
    return ids, attn, mask


@torch.no_grad()
def text_activations(model, tokenizer, texts: Sequence[str], site: str | int | Site, *, batch_size: int = 64, context: int = 256) -> torch.Tensor:
    """Activations at every non-pad token of plain texts, stacked ``(n_tokens, d_model)`` (SAE training)."""
    device = next(model.parameters()).device
    site = Site.parse(site)
    chunks = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True, truncation=True,
                        max_length=context, add_special_tokens=False, padding_side="right")
        cap = capture(enc["attention_mask"].bool())
        with edit(model, site, cap):
            decoder_only(model)(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        chunks.append(cap[site.layer])
    return torch.cat(chunks)
