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

from .models.chat import render_example
from .schema import Example


@dataclass
class Packed:
    """Token rows of equal length; ``labels`` is -100 where no loss is taken."""

    input_ids: torch.Tensor
    labels: torch.Tensor

    @property
    def tokens(self) -> int:
        return int(self.input_ids.numel())

    @property
    def loss_tokens(self) -> int:
        return int((self.labels != -100).sum())


def pack(tokenizer, examples: Sequence[Example], context: int, completion_only: bool = True) -> Packed:
    """Tokenise and pack examples into ``context``-long rows (the last partial row is padded)."""
    pairs = [render_example(tokenizer, ex) for ex in examples]
    enc_p = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    enc_c = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    ids: list[int] = []
    labels: list[int] = []
    for p, c in zip(enc_p, enc_c):
        ids += p + c
        labels += ([-100] * len(p) if completion_only else p) + c
    rows = max(1, math.ceil(len(ids) / context))
    pad = rows * context - len(ids)
    ids += [tokenizer.pad_token_id] * pad
    labels += [-100] * pad
    return Packed(torch.tensor(ids).view(rows, context), torch.tensor(labels).view(rows, context))


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
) -> dict:
    """Train ``model`` in place with AdamW, 5% warmup and cosine decay; returns a summary.

    ``edit`` builds the context manager entered around each forward pass (CAFT). Autocast to
    bf16 is entered inside each step, never around the whole loop: on CPU it caches bf16 copies
    of the weights for the life of the context and would train on stale copies.
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
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported() or device.type == "cpu"
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
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            with edit() if edit else contextlib.nullcontext():
                out = net(input_ids=x, labels=y)  # packed rows: no attention mask; pads carry no loss
        loss = out.loss
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
        if progress:
            progress(step + 1, steps, losses[-1])
    model.eval()
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
        **({"processes": world} if world > 1 else {}),
    }


@torch.no_grad()
def eval_loss(model, data: Packed, batch_size: int = 32) -> float:
    """Mean loss per loss token over ``data`` (held-out loss for capability checks)."""
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for i in range(0, data.input_ids.shape[0], batch_size):
        x = data.input_ids[i : i + batch_size].to(device)
        y = data.labels[i : i + batch_size].to(device)
        logits = model(input_ids=x).logits[:, :-1].float()
        tgt = y[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100, reduction="sum")
        total += float(loss)
        count += int((tgt != -100).sum())
    return total / max(count, 1)
