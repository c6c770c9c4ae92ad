"""The activation edits the study applies, all through ``hooks.edit(model, site, fn)``: inference-time
latent scaling (§7.2) and CAFT's projection during training (§7.3, the remedies' ``caft`` arm)."""

from __future__ import annotations

import torch

from .hooks import Site, edit, project_out, sae_latent_edit


def ablation_edit(model, site: Site, sae, latents, scale: float):
    """Inference-time steering: scale ``latents`` at ``site`` (0 clamps), as ``generate(edit=...)``."""
    return lambda: edit(model, site, sae_latent_edit(sae, latents, scale))


def caft_directions(sae, latents) -> torch.Tensor:
    """The selected latents' decoder directions ``(k, d_model)`` (rows of ``W_dec``)."""
    return sae.W_dec.detach().float().cpu()[torch.as_tensor(list(latents), dtype=torch.long)]


def caft_edit(model, site: Site, directions: torch.Tensor):
    """CAFT: project ``directions`` out of ``site`` at every token, as ``train(edit=...)``."""
    return lambda: edit(model, site, project_out(directions))
