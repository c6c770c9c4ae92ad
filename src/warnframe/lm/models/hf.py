"""Load any causal LM (hub id or local path, full weights or a LoRA adapter) the same way.

The embedded model, a fine-tuned condition model and Llama-3.2-3B all come through
``load_model``; failures (gated repo, no network, missing path) become one clear UserError.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from warnframe.lm.models.gguf import is_gguf, materialize
from warnframe.runtime.errors import UserError

#: Architectures whose attention (logit soft-capping) is only right in the eager implementation.
EAGER_ATTENTION = ("gemma2", "gemma3", "gemma3_text")

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> str:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch device string. Under ``accelerate launch``
    or ``torchrun`` (``LOCAL_RANK`` set) a bare ``cuda`` means this process's own GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("a CUDA device was asked for but none is available", "--set device=" + device,
                        "pick `--set device=cpu` or run on a GPU machine")
    local = os.environ.get("LOCAL_RANK")
    if device == "cuda" and local is not None and torch.cuda.device_count() > 1:
        device = f"cuda:{int(local) % torch.cuda.device_count()}"
    return device


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on") or \
        os.environ.get("TRANSFORMERS_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_source(source: str | Path) -> str:
    """A local path must exist; anything else is taken as a hub id (``owner/name``). A GGUF file
    (a ``.gguf`` path or a shipped short name) becomes its dequantized folder in the cache."""
    src = str(source)
    if is_gguf(src):
        return str(materialize(src))
    path = Path(src).expanduser()
    if path.exists():
        return str(path)
    if src.startswith((".", "/", "~")) or src.count("/") > 1 or "\\" in src:
        raise UserError(f"model path not found: {src}", src, "pass an existing directory or a hub id (owner/name)")
    return src


def _explain(source: str, err: Exception) -> UserError:
    text = str(err)
    low = text.lower()
    if "repo id must be in the form" in low or "repo_id must" in low:  # huggingface_hub's HFValidationError
        # A local path that check_source found but from_pretrained did not: it vanished in between
        # (another process replacing it), and transformers then took the path for a hub id.
        if Path(source).expanduser().is_absolute() or os.sep in source.strip("/"):
            return UserError(f"model directory {source} vanished while it was being loaded", source,
                             "is another warnframe writing that directory? wait for it, then rerun")
        return UserError(f"{source!r} is neither an existing directory nor a hub id (owner/name)", source,
                         "pass an existing directory or a hub id")
    if _offline() and ("offline" in low or "cache" in low or "connection" in low or "resolve" in low or "not found" in low):
        return UserError(f"{source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set", source,
                         f"run `hf download {source}` on a machine with network (or unset HF_HUB_OFFLINE), or pass a local path")
    if "gated" in low or "401" in low or "403" in low or "restricted" in low:
        return UserError(f"model {source!r} is gated", source, "accept its licence on the hub and run `hf auth login`, or pass a local path")
    if "offline" in low or "connection" in low or "resolve" in low or "network" in low or "couldn't connect" in low:
        return UserError(f"cannot reach the hub to fetch {source!r}", source,
                         "download it first and set HF_HUB_OFFLINE=1, or pass a local path")
    if "not a valid model identifier" in low or "does not appear to have" in low or "404" in low or "not found" in low:
        return UserError(f"no model found at {source!r}", source, "pass an existing local directory or a valid hub id")
    if "trust_remote_code" in low:
        return UserError(f"model {source!r} needs its own code", source, "set model.trust_remote_code=true only if you trust the repo")
    return UserError(f"cannot load model {source!r}: {text.splitlines()[0] if text else type(err).__name__}", source, "check the path or id")


def load_tokenizer(source: str | Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    source = check_source(source)
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise _explain(str(source), e) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return tok


PICKLED = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


def _refuse_pickle(folder: Path) -> None:
    """One line for a local model whose weights are pickled only (warnframe reads safetensors)."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickled = sorted(p.name for pattern in PICKLED for p in folder.glob(pattern))
    if pickled:
        raise UserError(f"model weights in {folder} are pickled ({pickled[0]}); warnframe loads safetensors only", str(folder),
                        "convert them once in a trusted environment: model.save_pretrained(dir, safe_serialization=True)")


def load_model(source: str | Path, *, device: str = "cpu", dtype: str = "float32", trust_remote_code: bool = False):
    """(model, tokenizer) in eval mode on ``device``. A directory holding ``adapter_config.json``
    is a LoRA adapter: its base is loaded and the adapter merged in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    src = check_source(source)
    adapter = Path(src) / "adapter_config.json"
    # safetensors only: a pickled checkpoint (pytorch_model.bin) can run code when it is read
    kwargs = {"dtype": DTYPES[dtype], "trust_remote_code": trust_remote_code, "use_safetensors": True}
    _refuse_pickle(Path(src))
    try:
        base_src = check_source(json.loads(adapter.read_text())["base_model_name_or_path"]) if adapter.is_file() else src
        model_type = AutoConfig.from_pretrained(base_src, trust_remote_code=trust_remote_code).model_type
        if model_type in EAGER_ATTENTION:
            kwargs["attn_implementation"] = "eager"  # soft-capped attention logits need eager attention
        if adapter.is_file():
            from peft import PeftModel

            base = AutoModelForCausalLM.from_pretrained(base_src, **kwargs)
            model = PeftModel.from_pretrained(base, src).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(src, **kwargs)
    except (OSError, ValueError, KeyError) as e:
        raise _explain(src, e) from None
    tok = load_tokenizer(src, trust_remote_code)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model.to(device).eval(), tok
