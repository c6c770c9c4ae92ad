"""Mechanistic interpretability: residual-stream sites and edits, JumpReLU SAEs, knockoff
selection of latents, linear probes. See each module's docstring."""

from warnframe.mech.hooks import Capture, Site, capture, decoder_layers, edit, project_out, replace, sae_latent_edit
from warnframe.mech.knockoffs import candidate_latents, knockoff_select
from warnframe.mech.probes import LinearProbe, probe_report
from warnframe.mech.sae import JumpReLUSAE, sae_quality, train_sae

__all__ = [
    "Capture", "JumpReLUSAE", "LinearProbe", "Site", "candidate_latents", "capture", "decoder_layers", "edit",
    "knockoff_select", "probe_report", "project_out", "replace", "sae_latent_edit", "sae_quality", "train_sae",
]
