"""The activation edits the study applies, all through ``hooks.edit(model, site, fn)``: inference-time
latent scaling (§7.2) and CAFT's projection during training (§7.3, the remedies' ``caft`` arm), at
the SAE's site or at every decoder layer, with the selected latents' directions or random ones of
the same rank (the control)."""

from __future__ import annotations

import torch

from warnframe.mech.hooks import Site, decoder_layers, edit, project_out, sae_latent_edit


def ablation_edit(model, site: Site, sae, latents, scale: float):
    """Inference-time steering: scale ``latents`` at ``site`` (0 clamps), as ``generate(edit=...)``."""
    return lambda: edit(model, site, sae_latent_edit(sae, latents, scale))


def caft_directions(sae, latents) -> torch.Tensor:
    """The selected latents' decoder directions ``(k, d_model)`` on the CPU (``sae.directions``:
    rows of ``W_dec`` for Gemma Scope's JumpReLU SAEs)."""
    return sae.directions(list(latents)).cpu()


def random_directions(rank: int, d_model: int, seed: int) -> torch.Tensor:
    """``rank`` orthonormal directions ``(rank, d_model)`` drawn uniformly (QR of a seeded
    Gaussian): CAFT's control, a subspace of the same rank that nothing selected."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d_model, rank, generator=g))
    return q.T.contiguous()


def caft_edit(model, site: Site, directions: torch.Tensor):
    """CAFT: project ``directions`` out of ``site`` at every token, as ``train(edit=...)``."""
    return lambda: edit(model, site, project_out(directions))


def caft_all_layers_edit(model, directions: torch.Tensor):
    """CAFT at every decoder layer's output: the span of ``directions`` is removed from the
    residual stream after each layer, so no later layer can write it back."""
    sites = [Site(i) for i in range(len(decoder_layers(model)))]
    return lambda: edit(model, sites, project_out(directions))
