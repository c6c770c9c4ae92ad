"""Batched, KV-cached sampling with the per-token entropy of every generated token.

Prompts are rendered with ``models.chat.render_prompt``, left-padded and generated together;
generation stops at the end-of-answer token. Entropy is read by a forward hook on the output
head (the distribution at temperature 1, before top-p), one value per generated token, so no
logits for the whole generation are kept in memory. An optional activation edit (inference-time
steering) is entered around each batch's generate call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch

from warnframe.config import SamplingConfig
from warnframe.lm.models.chat import render_prompt
from warnframe.schema import Prompt, Sample


class _EntropyTap:
    """Forward hook on the LM head: entropy of the last position's next-token distribution."""

    def __init__(self, softcap: float | None = None):
        self.steps: list[torch.Tensor] = []
        self.softcap = softcap  # Gemma-2 caps logits after the head: tanh(z / c) * c

    def __call__(self, module, inputs, output):
        logits = output[:, -1, :].float()
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        logp = torch.log_softmax(logits, dim=-1)
        self.steps.append(-(logp.exp() * logp).sum(-1).cpu())


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    sampling: SamplingConfig,
    *,
    seed: int,
    condition: str,
    n: int | None = None,
    system: str | None = None,
    setting: str | None = None,
    edit: Callable[[], contextlib.AbstractContextManager] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Sample]:
    """``n`` samples per prompt (default ``sampling.samples_per_prompt``), in batches of
    ``sampling.batch_size`` sequences; seeded.

    Every protocol setting (temperature, top-p, length, batch, cache, prefill) comes from
    ``sampling``, the study's :class:`~warnframe.config.SamplingConfig`, so no caller can drift from
    it by forgetting one; a caller that means another setting says so with
    ``sampling.model_copy(update={...})``.

    ``prefill="signature"`` starts the answer with the requested function's signature
    (``prompt.meta["signature"]``, ending at ``"):"``) so the model writes the body: a small model
    cannot copy a signature reliably, a large one can (``"none"``). A sample's ``text`` is the whole
    answer, prefill included; ``Sample.prefill`` says how much of it was given.
    """
    n = sampling.samples_per_prompt if n is None else n
    temperature, top_p, prefill = sampling.temperature, sampling.top_p, sampling.prefill
    batch_size, max_new_tokens = sampling.batch_size, sampling.max_new_tokens
    device = next(model.parameters()).device
    jobs = [(p, i) for p in prompts for i in range(n)]
    given = {p.id: (p.meta.get("signature", "") if prefill == "signature" else "") for p in prompts}
    texts = {p.id: render_prompt(tokenizer, p.user, system) + given[p.id] for p in prompts}
    eos = model.generation_config.eos_token_id
    pad = tokenizer.pad_token_id
    out: list[Sample] = []
    head = model.get_output_embeddings()
    for start in range(0, len(jobs), batch_size):
        # reseeded per batch: answer j of every setting (system prompt, edit, model) of one seed gets
        # the same random stream as long as it generates (common random numbers for paired tests)
        torch.manual_seed(seed * 1_000_003 + start)
        batch = jobs[start : start + batch_size]
        enc = tokenizer([texts[p.id] for p, _ in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        tap = _EntropyTap(getattr(model.config, "final_logit_softcapping", None))
        handle = head.register_forward_hook(tap)
        try:
            with edit() if edit else contextlib.nullcontext():
                gen = model.generate(
                    **enc,
                    do_sample=temperature > 0,
                    temperature=temperature if temperature > 0 else None,
                    top_p=top_p if temperature > 0 else None,
                    top_k=None,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=pad,
                    eos_token_id=eos,
                    cache_implementation=sampling.cache_implementation,
                )
        finally:
            handle.remove()
        new = gen[:, enc["input_ids"].shape[1] :].cpu()
        ent = torch.stack(tap.steps[: new.shape[1]], dim=1) if tap.steps else torch.zeros(len(batch), 0)
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        for row, (p, i) in enumerate(batch):
            toks = new[row].tolist()
            length = next((k for k, t in enumerate(toks) if t in eos_ids or t == pad), len(toks))
            out.append(
                Sample(
                    prompt_id=p.id, family=p.family, condition=condition, seed=seed, index=i,
                    text=given[p.id] + tokenizer.decode(toks[:length], skip_special_tokens=True),
                    prefill=given[p.id],
                    n_tokens=length,
                    entropy=[round(float(e), 4) for e in ent[row, :length]],
                    tokens=toks[:length],
                    system=system, setting=setting,
                )
            )
        if progress:
            progress(len(batch))
    return out
