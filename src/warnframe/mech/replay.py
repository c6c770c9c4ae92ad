"""Replay of stored samples: the one teacher-forced pass that every section reads samples through.

A sample (prompt + its answer) is fed back through a model, and per sample this gives the site's
activations at the generated tokens, the entropy of the distribution that predicted each generated
token, and each token's character span in the answer. :func:`replay` does it for one loaded model;
:func:`replay_grouped` for samples of several models, loading each model once.

A sample's ``prefill`` (the start of the answer that was given, not generated) is part of the
prompt, tokenized with it as at sampling; only the generated rest has tokens here, and its offsets
still point into the whole ``text``. Sequences are right-padded, so positions are as unpadded.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from warnframe.lm.models.chat import render_prompt
from warnframe.mech.activations import decoder_only, right_pad
from warnframe.mech.hooks import Site, capture, edit


@torch.no_grad()
def replay(model, tokenizer, prompts: dict, samples: Sequence[dict], site: str | int | Site | None = None, *,
           batch_size: int = 32, entropy: bool = True, stored_tokens: bool = False, max_tokens: int | None = None) -> list[dict]:
    """Per sample ``{"offsets", "entropy", "acts"}``.

    * ``acts``: the site's activations ``(T, d)`` float32 on the CPU (None without a site);
    * ``entropy``: nats (float32 array, one per generated token) of the next-token distribution that
      predicts each generated token (None with ``entropy=False``: then only the decoder runs, no
      vocabulary-sized logits);
    * ``offsets``: each generated token's ``(start, end)`` characters in ``text`` (None when the
      stored token ids are replayed).

    With ``stored_tokens`` a sample's stored ``tokens`` are replayed (exactly what was generated);
    otherwise, or when ``model`` did not write the samples (another tokenizer), the text is
    re-tokenised. ``prompts`` maps prompt id -> Prompt; ``max_tokens`` truncates each generation.
    """
    if site is None and not entropy:
        raise ValueError("replay without a site and without entropy reads nothing")
    site = Site.parse(site) if site is not None else None
    device = next(model.parameters()).device
    out: list[dict] = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start: start + batch_size]
        seqs, spans, offs = [], [], []
        for s in batch:
            given = s.get("prefill") or ""
            p = tokenizer(render_prompt(tokenizer, prompts[s["prompt_id"]].user, s.get("system")) + given,
                          add_special_tokens=False)["input_ids"]
            if stored_tokens and s.get("tokens"):
                g, o = list(s["tokens"]), None
            else:
                enc = tokenizer(s["text"][len(given):], add_special_tokens=False, return_offsets_mapping=True)
                g, o = enc["input_ids"], [(a + len(given), b + len(given)) for a, b in enc["offset_mapping"]]
            if max_tokens:
                g, o = g[:max_tokens], (o[:max_tokens] if o is not None else None)
            if not g:
                g, o = [tokenizer.eos_token_id], ([(len(given), len(given))] if o is not None else None)
            seqs.append(p + g)
            spans.append((len(p), len(p) + len(g)))
            offs.append(o)
        ids, attn, mask = right_pad(seqs, spans, tokenizer.pad_token_id)
        cap = capture(mask) if site is not None else None
        net = model if entropy else decoder_only(model)
        with edit(model, site, cap) if site is not None and cap is not None else contextlib.nullcontext():
            res = net(input_ids=ids.to(device), attention_mask=attn.to(device))
        rows = (torch.split(cap[site.layer], [b - a for a, b in spans]) if site is not None and cap is not None
                else [None] * len(batch))
        for i, (a, b) in enumerate(spans):
            ent = None
            if entropy:
                lp = torch.log_softmax(res.logits[i, a - 1: b - 1].float(), dim=-1)
                ent = (-(lp.exp() * lp).sum(-1)).cpu().numpy().astype(np.float32)
            out.append({"offsets": offs[i], "entropy": ent, "acts": rows[i]})
        del res
    return out


def analysis_source(study) -> str:
    """The one model that reads texts for the mechanistic sections (§5's SAE and probe, §6, §8):
    ``mech.analysis_model``, else the study's base model."""
    return study.cfg.mech.analysis_model or study.base_source


def replay_grouped(study, samples: Sequence[dict], site: Site | Callable | None = None, *, analysis: bool = True,
                   entropy: bool = True, stored_tokens: bool | None = None) -> tuple[Site | None, list[dict]]:
    """:func:`replay` for samples of several (condition, seed) models, each model loaded once.

    With ``analysis`` every sample is replayed through :func:`analysis_source`, loaded once (the
    activations §5's SAE and probe were fitted on and later sections read them with); without,
    through the model that wrote each sample (entropy of the writer). ``site`` may be a callable that picks the site from the first model loaded.
    ``stored_tokens`` defaults to: replay the stored tokens when the model is the writer and no
    entropy (offsets) is wanted. Returns the site and one replay per sample, in order.
    """
    prompts = {p.id: p for p in study.eval_prompts()}
    mech = analysis_source(study) if analysis else None
    stored = (not mech and not entropy) if stored_tokens is None else stored_tokens
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(samples):
        groups[(s["condition"], s["seed"])].append(i)
    by_source: dict[str, list[tuple]] = defaultdict(list)
    for unit in sorted(groups):
        by_source[mech or study.condition_model(*unit)].append(unit)
    out: list[dict | None] = [None] * len(samples)
    bs = study.cfg.analysis.replay_batch_size
    pick = site if callable(site) else None  # picks the site from the first model loaded
    chosen: Site | None = None if callable(site) else site
    for source, units in by_source.items():
        model, tok = study.load(source)
        if pick is not None:
            chosen, pick = pick(model), None
        for unit in units:
            idx = groups[unit]
            for i, r in zip(idx, replay(model, tok, prompts, [samples[i] for i in idx], chosen, batch_size=bs,
                                        entropy=entropy, stored_tokens=stored)):
                out[i] = r
        del model
    done = [r for r in out if r is not None]
    assert len(done) == len(out)  # every sample is in one (condition, seed) unit, replayed above
    return chosen, done
