"""Sites in the residual stream and the one mechanism that edits them.

A :class:`Site` names a place in the residual stream the way SAELens and TransformerLens spell
it: ``blocks.{L}.hook_resid_post`` is the output of decoder layer ``L``. In transformers that is
``hidden_states[L + 1]`` of ``output_hidden_states`` for every layer but the last (the last
entry has the model's final norm applied; the hook sees the output before it).

Every intervention is an *edit*: a function ``fn(h, layer) -> h' | None`` applied by
:func:`edit` to the hidden states ``h`` (batch, tokens, d_model) that leave the layer. ``None``
leaves the activations untouched (reading only). The constructors below build such functions:

- :func:`capture` records activations (teacher-forced passes and generation),
- :func:`sae_latent_edit` clamps or scales SAE latents, keeping the SAE's error term,
- :func:`project_out` removes a subspace at every token (CAFT, during fine-tuning),
- :func:`replace` patches stored activations into a run (causal tracing).

Edits nest: two ``with edit(...)`` blocks on the same layer run in the order they were entered,
so a capture entered after a clamp sees the clamped activations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from warnframe.runtime.errors import UserError

#: An edit function: gets the layer's output hidden states and the layer index, returns new
#: hidden states of the same shape, or None to leave them as they are.
EditFn = Callable[[torch.Tensor, int], "torch.Tensor | None"]

_SITE_RE = re.compile(r"^blocks\.(\d+)\.hook_resid_post$")


@dataclass(frozen=True, order=True)
class Site:
    """The residual stream after decoder layer ``layer``: ``blocks.{layer}.hook_resid_post``."""

    layer: int

    @classmethod
    def parse(cls, spec: str | int | Site) -> Site:
        """Accept ``"blocks.20.hook_resid_post"``, a bare layer index, or a Site."""
        if isinstance(spec, Site):
            return spec
        if isinstance(spec, int) and spec >= 0:
            return cls(spec)
        m = _SITE_RE.match(str(spec).strip())
        if not m:
            raise UserError(
                f"unknown site {spec!r}", None, "write it as blocks.<layer>.hook_resid_post, e.g. blocks.20.hook_resid_post"
            )
        return cls(int(m.group(1)))

    def __str__(self) -> str:
        return f"blocks.{self.layer}.hook_resid_post"


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder layers, found from its structure.

    The decoder stack is the ``nn.ModuleList`` of identical blocks that holds the most
    parameters: ``model.layers`` (Llama, Gemma 2, Qwen 2), ``transformer.h`` (GPT-2), the same
    under peft's ``base_model.model``. Lists nested inside a block (MoE experts) hold fewer.
    """
    best, best_size = None, -1
    for mod in model.modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        if len({type(child) for child in mod}) != 1:
            continue
        size = sum(p.numel() for p in mod.parameters())
        if size > best_size:
            best, best_size = mod, size
    if best is None:
        raise UserError(
            f"no decoder layers found in {type(model).__name__}", None, "pass a transformers causal LM"
        )
    return best


def _as_sites(sites: str | int | Site | Sequence[str | int | Site]) -> list[Site]:
    if isinstance(sites, (str, int, Site)):
        return [Site.parse(sites)]
    return [Site.parse(s) for s in sites]


def _make_hook(fn: EditFn, layer: int):
    def hook(module, args, output):
        h = output if isinstance(output, torch.Tensor) else output[0]
        new = fn(h, layer)
        if new is None:
            return None
        if new.shape != h.shape:
            raise ValueError(f"edit at layer {layer} changed the shape {tuple(h.shape)} -> {tuple(new.shape)}")
        new = new.to(h.dtype)
        if isinstance(output, torch.Tensor):
            return new
        return (new, *output[1:])

    return hook


@contextmanager
def edit(model: nn.Module, sites: str | int | Site | Sequence[str | int | Site], fn: EditFn) -> Iterator[None]:
    """Apply ``fn`` to the output of each site's layer while the block runs.

    Works for forward passes, ``model.generate`` (with KV cache the prefill call has the whole
    prompt, each later call one token) and training (gradients flow through ``fn``). The hooks
    are removed on exit, also when the block raises.
    """
    layers = decoder_layers(model)
    handles = []
    try:
        for site in _as_sites(sites):
            if site.layer >= len(layers):
                raise UserError(f"site {site} is past the model's {len(layers)} layers", None, "pick a smaller layer")
            handles.append(layers[site.layer].register_forward_hook(_make_hook(fn, site.layer)))
        yield
    finally:
        for handle in handles:
            handle.remove()


class Capture(Mapping):
    """An edit that records activations; read them as ``cap[layer]`` after the run.

    Without a mask, each call's ``(B, T, D)`` chunk is kept and ``cap[layer]`` concatenates them
    along tokens: one teacher-forced pass gives ``(B, T, D)``; one ``generate`` call gives the
    prompt then each generated token (``skip_prefill=True`` drops the prompt call so only the
    generated tokens remain). With a ``(B, T)`` boolean mask only those positions are kept and
    ``cap[layer]`` stacks them as rows ``(n, D)``, also across several passes. Use one Capture
    per forward pass or ``generate`` call, or :meth:`clear` it in between.
    """

    def __init__(self, mask: torch.Tensor | None = None, *, to_cpu: bool = True, float32: bool = True,
                 skip_prefill: bool = False):
        self.mask = mask
        self.to_cpu, self.float32, self.skip_prefill = to_cpu, float32, skip_prefill
        self._chunks: dict[int, list[torch.Tensor]] = {}
        self._calls: dict[int, int] = {}

    def __call__(self, h: torch.Tensor, layer: int) -> None:
        calls = self._calls[layer] = self._calls.get(layer, 0) + 1
        if self.skip_prefill and calls == 1:
            return None
        x = h.detach()
        if self.mask is not None:
            if tuple(self.mask.shape) != tuple(x.shape[:2]):
                raise ValueError(f"capture mask has shape {tuple(self.mask.shape)}, activations {tuple(x.shape[:2])}")
            x = x[self.mask.to(x.device)]
        if self.float32:
            x = x.float()
        if self.to_cpu:
            x = x.cpu()
        self._chunks.setdefault(layer, []).append(x)
        return None

    def __getitem__(self, layer: int) -> torch.Tensor:
        chunks = self._chunks[layer]
        return torch.cat(chunks, dim=0 if self.mask is not None else 1)

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._chunks))

    def __len__(self) -> int:
        return len(self._chunks)

    def clear(self) -> None:
        self._chunks.clear()
        self._calls.clear()


def capture(mask: torch.Tensor | None = None, *, to_cpu: bool = True, float32: bool = True,
            skip_prefill: bool = False) -> Capture:
    """An edit that reads activations (see :class:`Capture`)."""
    return Capture(mask, to_cpu=to_cpu, float32=float32, skip_prefill=skip_prefill)


def sae_latent_edit(sae, latents: Sequence[int] | torch.Tensor, scale: float) -> EditFn:
    """Scale chosen SAE latents (``scale=0`` clamps them to zero), keeping the SAE error term.

    With ``f`` the chosen latents' activations and ``W`` their decoder rows, the edit adds
    ``(scale - 1) * f @ W`` to ``h``: exactly their contribution changes, everything the SAE
    does not reconstruct stays. ``sae`` is any :class:`~warnframe.mech.sae_protocol.SAE`
    (``W`` is its ``directions``).
    """
    cache: dict[torch.device, tuple] = {}

    def fn(h: torch.Tensor, layer: int) -> torch.Tensor | None:
        if scale == 1:
            return None
        if h.device not in cache:
            sub = sae.subset(latents, h.device)
            cache[h.device] = (sub, sub.directions())
        sub, w = cache[h.device]
        f = sub.encode(h.float())
        return h + ((scale - 1) * (f @ w)).to(h.dtype)

    return fn


def _orthonormal_basis(directions: torch.Tensor, rtol: float = 1e-4) -> torch.Tensor:
    """Orthonormal basis (D, r) of the span of the rows of ``directions`` (k, D), via QR."""
    d = torch.as_tensor(directions).detach().float()
    if d.ndim == 1:
        d = d[None]
    q, r = torch.linalg.qr(d.T)
    diag = r.diagonal().abs()
    keep = diag > rtol * diag.max().clamp_min(1e-30)
    return q[:, keep]


def project_out(directions: torch.Tensor) -> EditFn:
    """Remove the span of ``directions`` (k, D) from ``h`` at every token (CAFT).

    The directions are orthonormalised (QR; dependent ones dropped) and ``h - (h Q) Qᵀ`` is
    returned, differentiable, so it can stay on during fine-tuning.
    """
    basis = _orthonormal_basis(directions)
    cache: dict[torch.device, torch.Tensor] = {}

    def fn(h: torch.Tensor, layer: int) -> torch.Tensor:
        q = cache.get(h.device)
        if q is None:
            q = cache[h.device] = basis.to(h.device)
        hf = h.float()
        return (hf - (hf @ q) @ q.T).to(h.dtype)

    return fn


def _position_mask(positions, batch: int, tokens: int, device: torch.device) -> torch.Tensor | None:
    if positions is None:
        return None
    pos = torch.as_tensor(positions, device=device)
    if pos.dtype == torch.bool:
        return pos.expand(batch, tokens) if pos.ndim == 1 else pos
    mask = torch.zeros(tokens, dtype=torch.bool, device=device)
    mask[pos.long()] = True
    return mask.expand(batch, tokens)


def replace(source_acts: torch.Tensor | Mapping[int, torch.Tensor], positions=None) -> EditFn:
    """Patch stored activations into the run (causal tracing).

    ``source_acts`` is a ``(B, T, D)`` tensor (batch 1 broadcasts), or a mapping layer -> tensor
    such as a :class:`Capture` for several sites. ``positions`` limits the patch to some
    tokens: a list of token indices, a ``(T,)`` or ``(B, T)`` boolean mask; None patches all.
    A call whose token count differs from the source's (the one-token steps of cached
    generation) passes through unchanged, so under ``generate`` only the prompt is patched.
    """

    def fn(h: torch.Tensor, layer: int) -> torch.Tensor | None:
        src = source_acts if isinstance(source_acts, torch.Tensor) else source_acts[layer]
        if src.shape[1] != h.shape[1]:
            return None
        src = src.to(device=h.device, dtype=h.dtype).expand_as(h)
        mask = _position_mask(positions, h.shape[0], h.shape[1], h.device)
        if mask is None:
            return src.clone()
        return torch.where(mask[..., None], src, h)

    return fn
