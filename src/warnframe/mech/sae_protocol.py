"""What the study needs of a sparse autoencoder, whatever its architecture, and :func:`load_sae`.

Every SAE the study reads meets :class:`SAE`: ``encode`` (``(..., d_model) -> (..., d_sae)``),
``decode`` (back), ``directions`` (what each latent adds to the reconstruction per unit of
activation: the edits of §7 and CAFT use them), ``subset`` (an SAE of a few latents, for an edit
that touches a few of many), the sizes ``d_model`` and ``d_sae``, the ``device`` it computes on and
a JSON-able ``meta`` (``source``: where it was loaded from). :class:`BaseSAE` is an ``nn.Module``
that gives an architecture all of that but ``encode``, ``decode``, the sizes and ``from_spec``.

An SAE is named by a spec: a path or ``scheme://...``. :func:`load_sae` finds the architecture
in :data:`KINDS` (by scheme; for a path, by the files it is or holds) and calls its class's
``from_spec``. Adding an architecture is one class and one :func:`register` line at the end of
this module::

    register(SAEKind("mine", "warnframe.mech.mine:MySAE", schemes=("mine",), files=("mine.safetensors",)))

The class is imported only when a spec names it (an optional dependency stays optional).
"""

from __future__ import annotations

import copy
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from warnframe.runtime.errors import UserError


@runtime_checkable
class SAE(Protocol):
    """A sparse autoencoder as the study uses it."""

    meta: dict

    @property
    def d_model(self) -> int: ...

    @property
    def d_sae(self) -> int: ...

    @property
    def device(self) -> torch.device: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent activations ``(..., d_sae)`` of activations ``x`` ``(..., d_model)``."""
        ...

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """The reconstruction ``(..., d_model)`` of latent activations ``f`` ``(..., d_sae)``."""
        ...

    def directions(self, latents: Sequence[int] | torch.Tensor | None = None) -> torch.Tensor:
        """``(k, d_model)`` float32, on :attr:`device`: what each of ``latents`` (default all) adds
        to the reconstruction per unit of activation, so ``decode(f) = f @ directions() + decode(0)``."""
        ...

    def subset(self, latents: Sequence[int] | torch.Tensor, device: torch.device | str | None = None) -> SAE:
        """An SAE of only ``latents`` (in that order) on ``device``: ``encode`` gives their
        activations, exactly as in the full SAE; ``directions()`` their directions."""
        ...


def _index(latents, device) -> torch.Tensor:
    return torch.as_tensor(latents, dtype=torch.long).flatten().to(device)


class BaseSAE(nn.Module, ABC):
    """An ``nn.Module`` SAE: subclasses give ``encode``, ``decode`` and ``from_spec``; ``d_model``,
    ``d_sae`` and ``directions`` default to the shape and rows of a ``W_dec`` parameter
    ``(d_sae, d_model)``, and ``subset`` to the full encode read at ``latents`` (override them
    where that is wrong or slow)."""

    meta: dict
    W_dec: torch.Tensor  # a parameter of the subclasses that use the defaults

    @property
    def d_model(self) -> int:
        return self.W_dec.shape[1]

    @property
    def d_sae(self) -> int:
        return self.W_dec.shape[0]

    @property
    def width(self) -> int:
        """``d_sae`` (the name Gemma Scope's files and older callers use)."""
        return self.d_sae

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def decode(self, f: torch.Tensor) -> torch.Tensor: ...

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))

    def directions(self, latents=None) -> torch.Tensor:
        w = self.W_dec.detach().float()
        return w if latents is None else w[_index(latents, w.device)]

    def subset(self, latents, device=None) -> SAE:
        return LatentSubset(self, latents, device)

    @classmethod
    @abstractmethod
    def from_spec(cls, spec: str | Path) -> BaseSAE:
        """Load from a spec that :func:`kind_for` gave to this class (a subclass may take keyword
        options too, such as ``cache_dir``: :func:`load_sae` passes its own on)."""


class LatentSubset(BaseSAE):
    """Some latents of an SAE of any architecture: the full ``encode`` read at them (right for
    architectures whose latents are not independent, such as TopK). On another device it holds
    a copy of the SAE there; the SAE itself is never moved."""

    parent: BaseSAE
    idx: torch.Tensor

    def __init__(self, parent: BaseSAE, latents, device=None):
        super().__init__()
        if device is not None and torch.device(device) != parent.device:
            parent = copy.deepcopy(parent).to(device)
        self.parent = parent
        self.meta = parent.meta
        self.register_buffer("idx", _index(latents, parent.device))

    @property
    def d_model(self) -> int:
        return self.parent.d_model

    @property
    def d_sae(self) -> int:
        return len(self.idx)

    @property
    def device(self) -> torch.device:
        return self.parent.device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.parent.encode(x)[..., self.idx]

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        bias = self.parent.decode(torch.zeros(self.parent.d_sae, device=self.device))
        return f.float() @ self.directions() + bias

    def directions(self, latents=None) -> torch.Tensor:
        w = self.parent.directions(self.idx)
        return w if latents is None else w[_index(latents, w.device)]

    @classmethod
    def from_spec(cls, spec, **kwargs):
        raise TypeError("a LatentSubset is made with SAE.subset, not loaded")


# -- the registry --------------------------------------------------------------------------------


class SAEClass(Protocol):
    """What :func:`load_sae` needs of an architecture's class: a ``from_spec(spec, **options)``
    classmethod (its options are the architecture's own)."""

    from_spec: Callable[..., object]


@dataclass(frozen=True)
class SAEKind:
    """One architecture's entry: ``target`` is ``"module:Class"`` (a class with ``from_spec``);
    specs ``<scheme>://...`` for each of ``schemes`` are its; a local folder is its when it holds
    all of ``files``; a local file when its name is one of ``files`` or ends with one of ``suffixes``."""

    name: str
    target: str
    schemes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()

    def load_class(self) -> SAEClass:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def owns_file(self, path: Path) -> bool:
        return path.name in self.files or (bool(self.suffixes) and path.name.endswith(self.suffixes))

    def owns_dir(self, path: Path) -> bool:
        return bool(self.files) and all((path / f).is_file() for f in self.files)


#: The architectures :func:`load_sae` knows, first match wins.
KINDS: list[SAEKind] = []


def register(kind: SAEKind) -> SAEKind:
    """Add (or, by name, replace) an architecture."""
    KINDS[:] = [k for k in KINDS if k.name != kind.name] + [kind]
    return kind


def _forms() -> str:
    forms = [f"{s}://..." for k in KINDS for s in k.schemes]
    forms += [f"a {' + '.join(k.files)} folder ({k.name})" for k in KINDS if k.files]
    return "give " + ", ".join(forms)


def kind_for(spec: str | Path) -> SAEKind:
    """The architecture a spec names (a UserError when none does or a path does not exist)."""
    text = str(spec)
    scheme, sep, _ = text.partition("://")
    if sep:
        for k in KINDS:
            if scheme in k.schemes:
                return k
        raise UserError(f"unknown SAE scheme {scheme}://", text, _forms())
    path = Path(text).expanduser()
    if path.is_dir():
        found = next((k for k in KINDS if k.owns_dir(path)), None)
    else:
        found = next((k for k in KINDS if k.owns_file(path)), None)
        if not path.is_file():
            raise UserError(f"SAE file not found: {path}", None, _forms())
    if found is None:
        raise UserError(f"no known SAE format at {path}", None, _forms())
    return found


def load_sae(spec: str | Path, **kwargs) -> SAE:
    """Load the SAE ``spec`` names, whatever its architecture (see :data:`KINDS`); ``kwargs``
    (such as ``cache_dir``) go to its class's ``from_spec``."""
    sae = kind_for(spec).load_class().from_spec(spec, **kwargs)
    if not isinstance(sae, SAE):
        raise TypeError(f"{type(sae).__name__} does not meet the SAE protocol (mech.sae_protocol.SAE)")
    return sae


# One line per architecture.
register(SAEKind("gemma-scope", "warnframe.mech.sae:JumpReLUSAE", schemes=("hf",), files=("params.npz",), suffixes=(".npz",)))
register(SAEKind("saelens", "warnframe.mech.saelens:SAELensSAE", schemes=("saelens",),
                 files=("cfg.json", "sae_weights.safetensors")))
