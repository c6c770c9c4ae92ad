"""SAELens SAEs (``sae-lens`` on PyPI) as :class:`~warnframe.mech.sae_protocol.SAE`: from a folder
SAELens saved (``SAE.save_model``: ``cfg.json`` + ``sae_weights.safetensors``) or
``saelens://<release>/<sae_id>`` (SAELens's own pretrained directory; needs sae-lens installed).

The folder is read without sae-lens, and encode and decode are SAELens 6's inference formulas::

    x' = x - b_dec (when apply_b_dec_to_input)    pre = x' @ W_enc + b_enc
    standard: f = relu(pre)          jumprelu: f = relu(pre) * (pre > threshold)
    topk:     f = the k largest of pre (times ‖W_dec row‖ with rescale_acts_by_decoder_norm), relu'd, rest 0
    gated:    f = (x' @ W_enc + b_gate > 0) * relu(x' @ (W_enc * exp(r_mag)) + b_mag)
    x_hat = f @ W_dec + b_dec       (topk with rescale: (f / ‖W_dec row‖) @ W_dec + b_dec)

Parameters are held in float32. Configs older than SAELens 6 are read as SAELens reads them
(``architecture`` defaults to standard, or topk for a ``topk`` activation). Not supported (a
UserError says so): per-input normalisation (``layer_norm``, ``constant_norm_rescale``,
``covariance_whitening`` not folded), ``hook_z`` reshaping, a fine-tuning scaling factor, and
architectures other than the four above. ``expected_average_only_in`` is, as in SAELens at
inference, not applied: ``saelens://`` folds its factor when SAELens knows it; a saved folder
expects inputs already scaled.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from warnframe.mech.sae_protocol import BaseSAE
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import atomic_write_bytes, write_json

CFG = "cfg.json"
WEIGHTS = "sae_weights.safetensors"
#: Per architecture: its parameters, and which of them have one entry per latent (dim 0, or 1 for W_enc).
PARAMS = {
    "standard": ("W_enc", "W_dec", "b_enc", "b_dec"),
    "jumprelu": ("W_enc", "W_dec", "b_enc", "b_dec", "threshold"),
    "topk": ("W_enc", "W_dec", "b_enc", "b_dec"),
    "gated": ("W_enc", "W_dec", "b_dec", "b_gate", "b_mag", "r_mag"),
}
PER_LATENT = ("W_dec", "b_enc", "threshold", "b_gate", "b_mag", "r_mag")
NO_NORM = ("none", "expected_average_only_in")


def _defaulted(cfg: dict) -> dict:
    """``cfg`` with SAELens's defaults for fields older configs lack (``handle_pre_6_0_config``)."""
    cfg = dict(cfg)
    act = cfg.get("activation_fn", cfg.get("activation_fn_str"))
    k = (cfg.get("activation_fn_kwargs") or {}).get("k")
    if "architecture" not in cfg:
        cfg["architecture"] = "topk" if act == "topk" and k is not None else "standard"
    if cfg["architecture"] == "topk" and cfg.get("k") is None and k is not None:
        cfg["k"] = k
    hook = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name") or cfg.get("hook_point") or ""
    cfg.setdefault("reshape_activations", "hook_z" if "hook_z" in hook else "none")
    cfg.setdefault("apply_b_dec_to_input", True)
    cfg.setdefault("normalize_activations", "none")
    return cfg


class SAELensSAE(BaseSAE):
    """An SAELens SAE (standard, jumprelu, topk or gated); ``cfg`` is SAELens's config dict."""

    # parameters (registered by name in __init__; each architecture has those in PARAMS)
    W_enc: torch.Tensor
    W_dec: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor
    threshold: torch.Tensor
    b_gate: torch.Tensor
    b_mag: torch.Tensor
    r_mag: torch.Tensor

    def __init__(self, cfg: dict, state: dict, meta: dict | None = None, where: str = "SAELens SAE"):
        super().__init__()
        cfg = _defaulted(cfg)
        arch = cfg["architecture"]
        if arch not in PARAMS:
            raise UserError(f"SAELens architecture {arch!r} is not supported here", where,
                            f"use one of {', '.join(PARAMS)}, or add a class and a register line in mech/sae_protocol.py")
        if cfg["normalize_activations"] not in NO_NORM:
            raise UserError(f"SAELens normalize_activations={cfg['normalize_activations']!r} (per-input normalisation) "
                            "is not supported", where, "fold it into the weights (SAELens fold_activation_*) and save again")
        if cfg["reshape_activations"] != "none":
            raise UserError(f"SAELens reshape_activations={cfg['reshape_activations']!r} is not supported", where,
                            "use an SAE of the residual stream")
        state = dict(state)
        if "log_threshold" in state and "threshold" not in state:  # older JumpReLU checkpoints
            state["threshold"] = torch.exp(state.pop("log_threshold"))
        scale = state.pop("scaling_factor", None)
        scale = state.pop("finetuning_scaling_factor", scale)
        if scale is not None and not torch.allclose(scale.float(), torch.ones_like(scale.float())):
            raise UserError("SAELens fine-tuning scaling factors are not supported", where, "fold it into W_dec and save again")
        missing = [k for k in PARAMS[arch] if k not in state]
        if missing:
            raise UserError(f"SAELens {arch} SAE lacks {', '.join(missing)}", where, f"expect {WEIGHTS} as SAELens saves it")
        d_in, d_sae = state["W_enc"].shape
        if (cfg.get("d_in", d_in), cfg.get("d_sae", d_sae)) != (d_in, d_sae) or tuple(state["W_dec"].shape) != (d_sae, d_in):
            raise UserError(f"SAELens weights are W_enc {tuple(state['W_enc'].shape)}, W_dec {tuple(state['W_dec'].shape)} "
                            f"but cfg says d_in {cfg.get('d_in')}, d_sae {cfg.get('d_sae')}", where, "check the folder")
        if arch == "topk" and not cfg.get("k"):
            raise UserError("SAELens topk SAE without k", where, "set k in cfg.json")
        self.cfg = {**cfg, "d_in": int(d_in), "d_sae": int(d_sae)}
        self.architecture = arch
        for name in PARAMS[arch]:
            self.register_parameter(name, nn.Parameter(torch.as_tensor(state[name]).detach().float().clone(), requires_grad=False))
        md = cfg.get("metadata") or {}
        self.meta = {"architecture": arch, **{k: md[k] for k in ("model_name", "hook_name") if md.get(k)}, **(meta or {})}

    @property
    def _rescale(self) -> bool:
        return self.architecture == "topk" and bool(self.cfg.get("rescale_acts_by_decoder_norm"))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.W_enc.dtype)
        if self.cfg["apply_b_dec_to_input"]:
            x = x - self.b_dec
        if self.architecture == "gated":
            gate = (x @ self.W_enc + self.b_gate) > 0
            return gate * torch.relu(x @ (self.W_enc * self.r_mag.exp()) + self.b_mag)
        pre = x @ self.W_enc + self.b_enc
        if self.architecture == "jumprelu":
            return torch.relu(pre) * (pre > self.threshold)
        if self.architecture == "topk":
            if self._rescale:
                pre = pre * self.W_dec.norm(dim=-1)
            values, idx = torch.topk(pre, k=int(self.cfg["k"]), dim=-1, sorted=False)
            return torch.zeros_like(pre).scatter_(-1, idx, values.relu())
        return torch.relu(pre)

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        if self._rescale:
            f = f / self.W_dec.norm(dim=-1)
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec

    def directions(self, latents=None) -> torch.Tensor:
        w = self.W_dec.detach().float()
        if self._rescale:
            w = w / w.norm(dim=-1, keepdim=True)
        return w if latents is None else w[torch.as_tensor(latents, dtype=torch.long).flatten().to(w.device)]

    def subset(self, latents, device=None):
        """Sliced (independent latents), except TopK, whose latents compete: its full encode read at ``latents``."""
        if self.architecture == "topk":
            return super().subset(latents, device)
        idx = torch.as_tensor(latents, dtype=torch.long).flatten().to(self.W_enc.device)
        state = {n: (p[:, idx] if n == "W_enc" else p[idx] if n in PER_LATENT else p).detach() for n, p in self.named_parameters()}
        return SAELensSAE({**self.cfg, "d_sae": len(idx)}, state, self.meta).to(device or self.W_enc.device)

    def to_jumprelu(self):
        """This SAE as a :class:`~warnframe.mech.sae.JumpReLUSAE` (standard and jumprelu only), the
        input's ``- b_dec`` folded into ``b_enc``."""
        from warnframe.mech.sae import JumpReLUSAE

        if self.architecture not in ("standard", "jumprelu"):
            raise UserError(f"a SAELens {self.architecture} SAE is not a JumpReLU SAE", self.meta.get("source"),
                            "load it with mech.sae_protocol.load_sae")
        with torch.no_grad():
            b_enc = self.b_enc - (self.b_dec @ self.W_enc if self.cfg["apply_b_dec_to_input"] else 0)
            threshold = self.threshold if self.architecture == "jumprelu" else torch.zeros_like(self.b_enc)
            arrays = {"W_enc": self.W_enc, "W_dec": self.W_dec, "b_enc": b_enc, "b_dec": self.b_dec, "threshold": threshold}
            return JumpReLUSAE.from_arrays({k: v.detach().cpu() for k, v in arrays.items()}, dict(self.meta))

    # -- files -------------------------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: str | Path, **kwargs) -> SAELensSAE:
        """``saelens://<release>/<sae_id>`` or a folder SAELens saved (or a file in it)."""
        text = str(spec)
        if text.startswith("saelens://"):
            return cls.from_pretrained(text)
        path = Path(text).expanduser()
        return cls.from_dir(path if path.is_dir() else path.parent, source=text)

    @classmethod
    def from_dir(cls, path: str | Path, source: str | None = None) -> SAELensSAE:
        """Read ``cfg.json`` and ``sae_weights.safetensors`` as SAELens's ``save_model`` writes them."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        path = Path(path)
        where = str(path)
        for name in (CFG, WEIGHTS):
            if not (path / name).is_file():
                raise UserError(f"SAELens folder lacks {name}: {path}", None, "give a folder written by SAELens's save_model")
        try:
            cfg = json.loads((path / CFG).read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {path / CFG}: {e}", None, "check it is SAELens's cfg.json") from None
        if not isinstance(cfg, dict):
            raise UserError(f"{path / CFG} is not a JSON object", None, "check it is SAELens's cfg.json")
        try:
            state = load_file(path / WEIGHTS)
        except (OSError, SafetensorError) as e:
            raise UserError(f"cannot read {path / WEIGHTS}: {e}", None, "check it is a safetensors file") from None
        return cls(cfg, state, {"source": source or where}, where)

    @classmethod
    def from_sae_lens(cls, sae, source: str) -> SAELensSAE:
        """From a loaded ``sae_lens.SAE``."""
        return cls(sae.cfg.to_dict(), {k: v.detach().cpu() for k, v in sae.state_dict().items()}, {"source": source}, source)

    @classmethod
    def from_pretrained(cls, spec: str) -> SAELensSAE:
        """``saelens://<release>/<sae_id>`` through SAELens's pretrained directory (downloads)."""
        release, _, sae_id = spec.removeprefix("saelens://").partition("/")
        try:
            from sae_lens import SAE
        except ImportError:
            raise UserError("saelens:// specs need SAELens", spec,
                            "pip install sae-lens, or give a folder SAELens saved, or an hf:// spec") from None
        loaded = SAE.from_pretrained(release, sae_id, device="cpu")
        return cls.from_sae_lens(loaded[0] if isinstance(loaded, tuple) else loaded, spec)  # older SAELens: (sae, cfg, sparsity)

    def save(self, path: str | Path) -> Path:
        """Write the folder SAELens reads (``SAE.load_from_disk``): ``cfg.json`` and
        ``sae_weights.safetensors`` (float32). Returns the folder."""
        from safetensors.torch import save

        path = Path(path)
        atomic_write_bytes(path / WEIGHTS, save({k: v.detach().float().cpu().contiguous() for k, v in self.named_parameters()}))
        write_json(path / CFG, {**self.cfg, "dtype": "float32", "device": "cpu"})
        return path
