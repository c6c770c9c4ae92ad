"""Residual-stream activations over the generated tokens of stored samples.

Each sample is replayed teacher-forced (prompt + its generated text) through the model that wrote
it, and the site's activations are kept at the generated positions only. One forward pass per
batch, hooks only at the layers asked for (never ``output_hidden_states``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..models.chat import render_prompt
from .hooks import Site, capture, edit


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
def generated_activations(
    model, tokenizer, prompts: dict, samples: Sequence[dict], site: str | int | Site, *, batch_size: int = 64,
    max_tokens: int | None = None, stored_tokens: bool = True,
) -> list[torch.Tensor]:
    """One ``(n_generated_tokens, d_model)`` float32 tensor per sample (CPU).

    With ``stored_tokens`` the sample's stored token ids are replayed (exactly what was generated);
    pass False when ``model`` is not the model that wrote the samples (another tokenizer), and the
    text is re-tokenised. Only the decoder runs (no output head: no vocabulary-sized logits).

    ``prompts`` maps prompt id -> Prompt; a sample is a dict with ``prompt_id``, ``text`` and an
    optional ``system``. ``max_tokens`` truncates each generation (None keeps it all).
    """
    device = next(model.parameters()).device
    site = Site.parse(site)
    out: list[torch.Tensor] = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start : start + batch_size]
        seqs, spans = [], []
        for s in batch:
            given = s.get("prefill") or ""
            prompt = render_prompt(tokenizer, prompts[s["prompt_id"]].user, s.get("system")) + given
            p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            g = (stored_tokens and s.get("tokens")) or tokenizer(s["text"][len(given):], add_special_tokens=False)["input_ids"]
            g = list(g)[: max_tokens or None] or [tokenizer.eos_token_id]
            seqs.append(p + g)
            spans.append((len(p), len(p) + len(g)))
        ids, attn, mask = right_pad(seqs, spans, tokenizer.pad_token_id)
        cap = capture(mask)
        with edit(model, site, cap):
            decoder_only(model)(input_ids=ids.to(device), attention_mask=attn.to(device))
        rows = cap[site.layer]
        sizes = [b - a for a, b in spans]
        out += list(torch.split(rows, sizes))
    return out


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
