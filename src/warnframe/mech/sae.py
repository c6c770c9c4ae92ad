"""JumpReLU sparse autoencoders in Gemma Scope's ``params.npz`` layout: load, save, train, assess.

The file format is Gemma Scope's, for their SAEs and for the ones we train ourselves::

    W_enc (d_model, width)  b_enc (width,)  threshold (width,)
    W_dec (width, d_model)  b_dec (d_model,)

    pre = x @ W_enc + b_enc;  f = relu(pre) * (pre > threshold);  x_hat = f @ W_dec + b_dec

Next to ``params.npz`` a JSON sidecar (``params.json``) carries metadata: site, sizes, where it
came from, training statistics. Nothing is pickled.

:class:`JumpReLUSAE` is one architecture of :mod:`warnframe.mech.sae_protocol` (specs: a
``params.npz`` path or its folder, ``hf://``); other architectures (SAELens: ``mech.saelens``)
load through :func:`~warnframe.mech.sae_protocol.load_sae`. :func:`sae_quality` takes any of them.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from warnframe.mech.sae_protocol import SAE, BaseSAE, kind_for, load_sae
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import atomic_write_bytes, write_json

PARAM_NAMES = ("W_enc", "W_dec", "b_enc", "b_dec", "threshold")


class JumpReLUSAE(BaseSAE):
    """A JumpReLU SAE; ``meta`` is a JSON-able dict (site, source, training stats)."""

    def __init__(self, d_model: int, width: int, meta: dict | None = None):
        super().__init__()
        self.W_enc = nn.Parameter(torch.zeros(d_model, width))
        self.W_dec = nn.Parameter(torch.zeros(width, d_model))
        self.b_enc = nn.Parameter(torch.zeros(width))
        self.b_dec = nn.Parameter(torch.zeros(d_model))
        self.threshold = nn.Parameter(torch.zeros(width))
        self.meta = dict(meta or {})

    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict | None = None) -> JumpReLUSAE:
        """Build from a mapping with the five Gemma Scope arrays (numpy or torch)."""
        missing = [k for k in PARAM_NAMES if k not in arrays]
        if missing:
            raise UserError(f"SAE parameters lack {', '.join(missing)}", None, "expect Gemma Scope's params.npz layout")
        d_model, width = np.shape(arrays["W_enc"])
        sae = cls(d_model, width, meta)
        with torch.no_grad():
            for name in PARAM_NAMES:
                value = torch.as_tensor(np.asarray(arrays[name], dtype=np.float32))
                getattr(sae, name).copy_(value.reshape(getattr(sae, name).shape))
        return sae

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        pre = x.to(self.W_enc.dtype) @ self.W_enc + self.b_enc
        return torch.relu(pre) * (pre > self.threshold)

    def subset(self, latents, device: torch.device | str | None = None) -> JumpReLUSAE:
        """A float32 SAE of only ``latents`` (their encoder columns, biases, thresholds and decoder
        rows), on ``device``: encodes just those latents, for edits that touch a few of many
        (JumpReLU latents are independent, so this equals the full encode read at ``latents``)."""
        idx = torch.as_tensor(latents, dtype=torch.long).flatten().to(self.W_enc.device)
        sub = JumpReLUSAE(self.d_model, len(idx), self.meta)
        with torch.no_grad():
            for name, value in (("W_enc", self.W_enc[:, idx]), ("b_enc", self.b_enc[idx]), ("threshold", self.threshold[idx]),
                                ("W_dec", self.W_dec[idx]), ("b_dec", self.b_dec)):
                setattr(sub, name, nn.Parameter(value.detach().float().to(device or self.W_enc.device), requires_grad=False))
        return sub

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    # -- files -------------------------------------------------------------------------------

    @classmethod
    def load(cls, spec: str | Path, cache_dir: str | Path | None = None) -> JumpReLUSAE:
        """Load from a local ``params.npz`` (or its folder), ``hf://<owner>/<repo>/<folder>``
        (e.g. ``hf://google/gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71``), or any spec
        :func:`~warnframe.mech.sae_protocol.load_sae` knows whose SAE is a JumpReLU or ReLU one
        (``saelens://<release>/<sae_id>``, needs sae-lens; a local SAELens folder), converted.
        Callers that take any architecture use ``load_sae``."""
        if kind_for(spec).name == "gemma-scope":
            return cls.from_spec(spec, cache_dir=cache_dir)
        sae = load_sae(spec)
        if isinstance(sae, JumpReLUSAE):
            return sae
        if hasattr(sae, "to_jumprelu"):
            return sae.to_jumprelu()
        raise UserError(f"{spec} is not a JumpReLU SAE ({type(sae).__name__})", None, "load it with mech.sae_protocol.load_sae")

    @classmethod
    def from_spec(cls, spec: str | Path, cache_dir: str | Path | None = None) -> JumpReLUSAE:
        """A ``params.npz`` path (or its folder) or ``hf://<owner>/<repo>/<folder>``."""
        text = str(spec)
        if text.startswith("hf://"):
            return cls._load_npz(_hub_download(text, cache_dir), {"source": text})
        path = Path(spec)
        if path.is_dir():
            path = path / "params.npz"
        if not path.is_file():
            raise UserError(f"SAE file not found: {path}", None, "give a params.npz path, hf://owner/repo/folder or saelens://release/sae_id")
        return cls._load_npz(path, {"source": str(spec)})

    @classmethod
    def _load_npz(cls, path: Path, meta: dict) -> JumpReLUSAE:
        sidecar = Path(path).with_suffix(".json")
        if sidecar.is_file():
            meta = {**json.loads(sidecar.read_text()), **meta}
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read SAE file {path}: {e}", None, "check it is a numpy .npz archive") from None
        return cls.from_arrays(arrays, meta)

    def save(self, path: str | Path) -> Path:
        """Write ``params.npz`` (float32, Gemma Scope layout) and its ``params.json`` sidecar.

        ``path`` is a folder (``<path>/params.npz``) or a file name ending in ``.npz``.
        Returns the ``.npz`` path.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path / "params.npz"
        buf = io.BytesIO()
        np.savez(buf, **{k: getattr(self, k).detach().float().cpu().numpy() for k in PARAM_NAMES})
        atomic_write_bytes(path, buf.getvalue())
        write_json(path.with_suffix(".json"), {**self.meta, "d_model": self.d_model, "width": self.d_sae})
        return path


def _hub_download(spec: str, cache_dir: str | Path | None) -> Path:
    parts = spec.removeprefix("hf://").strip("/").split("/")
    if len(parts) < 3:
        raise UserError(f"bad hub SAE spec {spec!r}", None, "write hf://<owner>/<repo>/<folder> or .../params.npz")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    if not filename.endswith(".npz"):
        filename += "/params.npz"
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    offline = os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}
    try:
        return Path(hf_hub_download(repo_id, filename, cache_dir=cache_dir, local_files_only=offline))
    except (EntryNotFoundError, HfHubHTTPError, OSError, ValueError) as e:
        why = "offline (HF_HUB_OFFLINE is set) and not in the local cache" if offline else type(e).__name__
        raise UserError(
            f"cannot get {filename} from {repo_id}: {why}", spec,
            "connect to the network and unset HF_HUB_OFFLINE, or download params.npz and pass its local path",
        ) from None


# -- training ------------------------------------------------------------------------------


def train_sae(
    acts: torch.Tensor,
    width: int,
    *,
    l0_target: float = 32,
    steps: int = 300,
    batch_size: int = 512,
    lr: float = 4e-3,
    seed: int = 0,
    meta: dict | None = None,
) -> JumpReLUSAE:
    """Train an SAE on ``acts`` (N, d) and return it as a JumpReLU SAE.

    Recipe: BatchTopK (Bussmann, Leask & Nanda 2024). Each step keeps the ``l0_target × batch``
    largest ReLU pre-activations of the batch and zeroes the rest; the loss is plain squared
    error; decoder rows are kept at unit norm; ``W_enc`` starts as ``W_decᵀ`` and inputs are
    centred and scaled so that E‖x − mean‖² = d. For inference BatchTopK is replaced by a
    JumpReLU with one global threshold, the smallest activation BatchTopK keeps, averaged over
    8 fresh batches after training; that is the SAE returned and saved, in Gemma Scope's
    layout, and what :func:`sae_quality` measures. Why this and not ReLU + L1 or a JumpReLU trained with a
    straight-through estimator: sparsity is set directly (no penalty coefficient to tune or
    steer), there is no L1 shrinkage, and it reaches a usable reconstruction in a few hundred
    CPU steps (decoder rows start at data points, which helps at so few steps). Centring and
    scale are folded back into the weights. Seeded; runs on the device of ``acts``.

    Cost: one step is a dense (batch × d × width) encode and decode plus their gradients. On
    2 CPU cores, 300 steps of 512 rows at d = 192, width 2048 take about 18 CPU-seconds. On a
    busy machine one torch thread (``torch.set_num_threads(1)``) can be several times faster.
    """
    start = time.perf_counter()
    x_all = torch.as_tensor(acts).detach().float()
    n, d = x_all.shape
    device = x_all.device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    mean = x_all.mean(0)
    scale = math.sqrt(d / ((x_all - mean).pow(2).sum(-1).mean().item() + 1e-12))
    x_all = (x_all - mean) * scale  # centred, so b_dec starts at 0
    batch = min(batch_size, n)
    keep = min(int(l0_target * batch), batch * width)

    def sample() -> torch.Tensor:
        return x_all[torch.randint(0, n, (batch,), generator=gen).to(device)]

    # Decoder rows start at random data points (plus a little noise): faster than random init.
    w_dec = x_all[torch.randint(0, n, (width,), generator=gen).to(device)].cpu()
    w_dec = w_dec + 0.1 * torch.randn(width, d, generator=gen)
    w_dec /= w_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    W_enc = w_dec.T.clone().to(device).requires_grad_()
    W_dec = w_dec.to(device).requires_grad_()
    b_enc = torch.zeros(width, device=device, requires_grad=True)
    b_dec = torch.zeros(d, device=device, requires_grad=True)
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, 5 * (1 - s / steps)))  # decay over last 20%

    def preacts(x: torch.Tensor) -> torch.Tensor:
        return torch.relu(torch.addmm(b_enc, x - b_dec, W_enc))

    def kth(pre: torch.Tensor) -> torch.Tensor:  # the smallest activation BatchTopK keeps
        flat = pre.detach().flatten()
        return flat.kthvalue(flat.numel() - keep + 1).values

    for _ in range(steps):
        x = sample()
        pre = preacts(x)
        f = pre * (pre >= kth(pre)) * (pre > 0)
        loss = torch.nn.functional.mse_loss(torch.addmm(b_dec, f, W_dec), x, reduction="sum") / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            W_dec /= W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    with torch.no_grad():  # the JumpReLU threshold: BatchTopK's cut-off averaged over fresh batches
        threshold = torch.stack([kth(preacts(sample())) for _ in range(8)]).mean().item()

    with torch.no_grad():  # fold centring and scale: x_n = (x - mean) * scale
        mean = mean.to(device)
        arrays = {
            "W_enc": W_enc * scale,
            "b_enc": b_enc - (mean * scale + b_dec) @ W_enc,
            "W_dec": W_dec / scale,
            "b_dec": b_dec / scale + mean,
            "threshold": torch.full((width,), threshold),
        }
    stats = {
        "recipe": "batchtopk -> jumprelu (global threshold)", "l0_target": l0_target, "steps": steps,
        "batch_size": batch, "lr": lr, "seed": seed, "n_train": n, "threshold": threshold,
        "seconds": round(time.perf_counter() - start, 2),
    }
    return JumpReLUSAE.from_arrays({k: v.cpu() for k, v in arrays.items()}, {**(meta or {}), "training": stats})


@torch.no_grad()
def sae_quality(sae: SAE, acts: torch.Tensor, batch_size: int = 8192) -> dict:
    """Fraction of variance unexplained (FVU), mean L0, fraction of dead latents (never fire on
    ``acts``), and n, computed on ``acts`` (N, d) in batches on the SAE's device."""
    x_all = torch.as_tensor(acts).detach().float().reshape(-1, sae.d_model)
    device = sae.device
    mean = x_all.mean(0).to(device)
    sse = sst = l0 = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.bool, device=device)
    for chunk in x_all.split(batch_size):
        x = chunk.to(device)
        f = sae.encode(x)
        sse += (sae.decode(f).float() - x).pow(2).sum().item()
        sst += (x - mean).pow(2).sum().item()
        active = f > 0
        l0 += active.sum().item()
        fired |= active.any(0)
    n = x_all.shape[0]
    return {
        "fvu": sse / sst if sst > 0 else float("nan"),
        "l0": l0 / n if n else float("nan"),
        "dead": 1.0 - fired.float().mean().item(),
        "n": n,
    }
