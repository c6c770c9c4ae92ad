"""Writes the SAELens fixtures ``tests/test_sae_protocol.py`` reads: one folder per architecture,
saved by SAELens itself (``SAE.save_model``: ``cfg.json`` + ``sae_weights.safetensors``), and
``reference.safetensors`` with inputs ``x`` and SAELens's own ``encode`` (``f``) and ``decode``
(``x_hat``) of them. Needs sae-lens (``pip install sae-lens``); run from the repository root:

    python tests/data/saelens/make_fixtures.py
"""

from pathlib import Path

import torch
from sae_lens import (
    GatedSAE,
    GatedSAEConfig,
    JumpReLUSAE,
    JumpReLUSAEConfig,
    StandardSAE,
    StandardSAEConfig,
    TopKSAE,
    TopKSAEConfig,
)
from safetensors.torch import save_file

HERE = Path(__file__).parent
D_IN, D_SAE = 8, 16


def build(name: str):
    meta = {"hook_name": "blocks.1.hook_resid_post", "model_name": "tiny"}
    if name == "standard":
        sae = StandardSAE(StandardSAEConfig(d_in=D_IN, d_sae=D_SAE))
    elif name == "jumprelu":
        sae = JumpReLUSAE(JumpReLUSAEConfig(d_in=D_IN, d_sae=D_SAE, apply_b_dec_to_input=False))
    elif name == "topk":
        sae = TopKSAE(TopKSAEConfig(d_in=D_IN, d_sae=D_SAE, k=3, rescale_acts_by_decoder_norm=True))
    else:
        sae = GatedSAE(GatedSAEConfig(d_in=D_IN, d_sae=D_SAE))
    for k, v in meta.items():
        setattr(sae.cfg.metadata, k, v)
    g = torch.Generator().manual_seed(len(name))
    with torch.no_grad():
        for pname, p in sae.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if pname.startswith("b_") or pname == "r_mag" else 1.0))
        if name == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE, generator=g))
    return sae, g


def main() -> None:
    for name in ("standard", "jumprelu", "topk", "gated"):
        sae, g = build(name)
        sae.save_model(HERE / name)
        x = torch.randn(6, D_IN, generator=g) * 2
        with torch.no_grad():
            f = sae.encode(x)
            x_hat = sae.decode(f)
        assert (f > 0).any() and (f == 0).any(), name
        save_file({"x": x, "f": f.contiguous(), "x_hat": x_hat.contiguous()}, HERE / name / "reference.safetensors")
        print(name, "active", int((f > 0).sum()), "of", f.numel())


if __name__ == "__main__":
    main()
