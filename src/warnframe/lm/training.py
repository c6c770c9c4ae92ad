"""The one training loop: pretraining, fine-tuning (full or LoRA) and CAFT.

Examples are rendered with ``models.chat``, tokenised, concatenated and cut into rows of the
context length (packing), so every step sees the same number of tokens whatever the condition.
CAFT is this loop with an activation edit switched on (``edit``): a context manager entered
around every forward pass, removed before the model is saved.

Under ``accelerate launch`` (or ``torchrun``) with more than one process the same loop runs data
parallel: every process draws the same seeded order of rows, takes its share of each step's
``batch_size`` rows, and gradients are averaged (DDP through ``accelerate.Accelerator``), so the
steps, tokens per step and schedule are those of one process. Only the main process should save
(:func:`is_main_process`); on one process nothing here touches accelerate.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers import get_cosine_schedule_with_warmup

from warnframe.lm.models.chat import render_example
from warnframe.runtime.errors import UserError
from warnframe.schema import Example


@dataclass
class Packed:
    """Token rows of equal length; ``labels`` is -100 where no likelihood loss is taken, and
    ``unlikely`` (when present) marks the tokens whose probability the unlikelihood term pushes
    down (their labels are -100)."""

    input_ids: torch.Tensor
    labels: torch.Tensor
    unlikely: torch.Tensor | None = None

    @property
    def tokens(self) -> int:
        return int(self.input_ids.numel())

    @property
    def loss_tokens(self) -> int:
        return int((self.labels != -100).sum())

    @property
    def unlikely_tokens(self) -> int:
        return 0 if self.unlikely is None else int(self.unlikely.sum())


def _span_kinds(tokenizer, completion: str, spans) -> tuple[list[int], list[str | None]]:
    """Token ids of ``completion`` and, per token, the kind of the loss span it overlaps (None:
    trained as usual). Spans are character offsets into the completion's assistant text, which
    the completion starts with."""
    if not getattr(tokenizer, "is_fast", False):
        raise UserError("loss spans need a fast tokenizer (character offsets)", type(tokenizer).__name__,
                        "use a model whose tokenizer has a tokenizer.json, or drop the loss_spans")
    enc = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)
    kinds: list[str | None] = []
    for a, b in enc["offset_mapping"]:
        hit = [s["kind"] for s in spans if a < s["end"] and b > s["start"]]
        kinds.append("mask" if "mask" in hit else (hit[0] if hit else None))
    return enc["input_ids"], kinds


def pack(tokenizer, examples: Sequence[Example], context: int, completion_only: bool = True) -> Packed:
    """Tokenise and pack examples into ``context``-long rows (the last partial row is padded).

    An example's ``loss_spans`` change its answer tokens: ``mask`` tokens get no loss,
    ``unlikelihood`` tokens get the unlikelihood term instead of the likelihood one.
    """
    pairs = [render_example(tokenizer, ex) for ex in examples]
    enc_p = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    enc_c = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    labels: list[int] = []
    unlikely: list[bool] = []
    for ex, (_, text), p, c in zip(examples, pairs, enc_p, enc_c):
        kinds: list[str | None] = [None] * len(c)
        if ex.loss_spans:
            c, kinds = _span_kinds(tokenizer, text, ex.loss_spans)
        ids += p + c
        labels += ([-100] * len(p) if completion_only else p) + [t if k is None else -100 for t, k in zip(c, kinds)]
        unlikely += [False] * len(p) + [k == "unlikelihood" for k in kinds]
    rows = max(1, math.ceil(len(ids) / context))
    pad = rows * context - len(ids)
    ids += [tokenizer.pad_token_id] * pad
    labels += [-100] * pad
    unlikely += [False] * pad
    ul = torch.tensor(unlikely).view(rows, context) if any(unlikely) else None
    return Packed(torch.tensor(ids).view(rows, context), torch.tensor(labels).view(rows, context), ul)


def unlikelihood_loss(logits: torch.Tensor, input_ids: torch.Tensor, unlikely: torch.Tensor) -> torch.Tensor:
    """Token-level unlikelihood (Welleck et al. 2019): mean of -log(1 - p(token)) over the marked
    tokens, each predicted from the position before it; 0 when none is marked."""
    mask = unlikely[:, 1:]
    if not bool(mask.any()):
        return logits.sum() * 0.0
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    p = logp[mask].exp().clamp(max=1 - 1e-6)
    return -torch.log1p(-p).mean()


def world_size() -> int:
    """Processes in this data-parallel job (1 unless started by accelerate launch / torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on the process that writes artifacts (rank 0), and always on a single process."""
    if world_size() <= 1:
        return True
    return int(os.environ.get("RANK", "0")) == 0


def wait_for_everyone() -> None:
    """A barrier across the data-parallel processes; does nothing on a single process."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def count_tokens(tokenizer) -> Callable[[str], int]:
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def train(
    model,
    data: Packed,
    *,
    epochs: float,
    lr: float,
    batch_size: int,
    seed: int,
    edit: Callable[[], contextlib.AbstractContextManager] | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    weight_decay: float = 0.01,
    precision: str = "auto",
    unlikelihood_weight: float = 1.0,
) -> dict:
    """Train ``model`` in place with AdamW, 5% warmup and cosine decay; returns a summary.

    ``edit`` builds the context manager entered around each forward pass (CAFT). ``precision``
    is ``auto`` (chosen by :mod:`warnframe.lm.precision`: bf16 autocast only where the hardware is
    faster with it), ``float32`` or ``bfloat16``. Autocast is entered inside each step, never
    around the whole loop: on CPU it caches bf16 copies of the weights for the life of the
    context and would train on stale copies. Tokens marked ``data.unlikely`` add
    ``unlikelihood_weight`` times the unlikelihood term to the loss. A loss that is not finite
    (a learning rate too high, ``.inf``) stops training with a one-line UserError naming the step
    (:func:`diverged`), before anything is saved.
    """
    g = torch.Generator().manual_seed(seed)
    rows = data.input_ids.shape[0]
    steps = max(1, math.ceil(epochs * rows / batch_size))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    sched = get_cosine_schedule_with_warmup(opt, max(1, steps // 20), steps)
    acc, net = None, model
    if world_size() > 1:
        from accelerate import Accelerator

        acc = Accelerator(cpu=next(model.parameters()).device.type == "cpu")
        net, opt = acc.prepare(model, opt)  # DDP wrapper; the parameters stay those of ``model``
    device = next(model.parameters()).device
    rank, world = (acc.process_index, acc.num_processes) if acc else (0, 1)
    chosen = _precision(model, data.input_ids[:batch_size].to(device), precision)
    order: list[int] = []
    model.train()
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        if len(order) < batch_size:
            perm = torch.randperm(rows, generator=g).tolist()
            order += perm
        idx, order = order[:batch_size], order[batch_size:]
        if world > 1:  # this process's share of the step's rows (at least one each)
            idx = idx[rank::world] or idx[rank % len(idx):][:1]
        x = data.input_ids[idx].to(device)
        y = data.labels[idx].to(device)
        with (torch.autocast(device.type, dtype=torch.bfloat16, enabled=chosen.autocast),
              edit() if edit else contextlib.nullcontext()):
            out = net(input_ids=x, labels=y)  # packed rows: no attention mask; pads carry no loss
        # A batch whose every label is masked has a 0/0 (NaN) likelihood loss: it contributes 0.
        loss = out.loss if bool((y[:, 1:] != -100).any()) else out.logits.sum() * 0.0
        if data.unlikely is not None:
            loss = loss + unlikelihood_weight * unlikelihood_loss(out.logits, x, data.unlikely[idx].to(device))
        if acc:
            acc.backward(loss)
            acc.clip_grad_norm_(params, 1.0)
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(acc.reduce(loss.detach(), "mean")) if acc else float(loss.detach()))
        if not math.isfinite(losses[-1]):  # every process sees the same reduced loss, so all stop here
            model.eval()
            raise diverged(f"the loss is {losses[-1]}", step + 1, steps, lr)
        if progress:
            progress(step + 1, steps, losses[-1])
    model.eval()
    if any(not bool(torch.isfinite(p).all()) for p in params):  # the last update (no loss after it to show it)
        raise diverged("the weights are no longer finite", steps, steps, lr)
    secs = time.perf_counter() - t0
    tail = losses[-max(1, len(losses) // 10):]
    return {
        "steps": steps,
        "rows": rows,
        "tokens_per_step": batch_size * data.input_ids.shape[1],
        "tokens_seen": steps * batch_size * data.input_ids.shape[1],
        "loss_tokens": data.loss_tokens,
        "final_loss": sum(tail) / len(tail),
        "first_loss": losses[0],
        "seconds": round(secs, 2),
        "tokens_per_second": round(steps * batch_size * data.input_ids.shape[1] / max(secs, 1e-9)),
        "precision": chosen.as_dict(),
        **({"unlikely_tokens": data.unlikely_tokens} if data.unlikely is not None else {}),
        **({"processes": world} if world > 1 else {}),
    }


def diverged(what: str, step: int, steps: int, lr: float) -> UserError:
    """The one-line error for a training loss or weights that are no longer finite numbers
    (nothing trained further from them, nor saved, would mean anything)."""
    return UserError(f"training diverged: {what} at step {step} of {steps} (learning rate {lr:g})",
                     None, "lower the learning rate (finetune.lr; pretrain.lr for the embedded base model) and rerun; "
                     "no model was saved")


_CHOSEN: dict[tuple, object] = {}


def _precision(model, batch: torch.Tensor, requested: str):
    """:func:`warnframe.lm.precision.choose`, measured once per process for a model shape, batch
    shape and device (the seeds and conditions of one study share the answer)."""
    from warnframe.lm.precision import choose

    key = (type(model).__name__, sum(p.numel() for p in model.parameters()), tuple(batch.shape), str(batch.device),
           requested)
    if key not in _CHOSEN:
        _CHOSEN[key] = choose(model, batch, requested)
    return _CHOSEN[key]
