"""The shared cache (``$WARNFRAME_CACHE``, default ``~/.cache/warnframe``): built once, shared by runs.

Entries are folders written whole (:func:`warnframe.runtime.dirs.atomic_dir`) and *sealed*: a
``files.json`` lists every other file's SHA-256. A reader checks the seal before it uses an entry
and rebuilds one that is damaged (a file missing, truncated or changed), so a damaged entry is never
copied into a run and recorded as intact. Used by the embedded base model (``base/<key>``) and by
GGUF files dequantized to safetensors (``gguf/<sha256>``).
"""

from __future__ import annotations

import os
from pathlib import Path

from warnframe.runtime import keys
from warnframe.runtime.files import read_json, write_json

#: The file in a cache entry that lists every other file's SHA-256 (written when it is built).
SEAL = "files.json"


def cache_root() -> Path:
    return Path(os.environ.get("WARNFRAME_CACHE", Path.home() / ".cache" / "warnframe"))


def seal(folder: Path) -> None:
    """Record the SHA-256 of every file in ``folder`` (call it on the finished, not yet published folder)."""
    write_json(folder / SEAL, {f.name: keys.file_sha256(f) for f in sorted(folder.iterdir()) if f.is_file() and f.name != SEAL})


def seal_damage(folder: Path) -> str | None:
    """What is wrong with a sealed entry ('' when nothing); None when it holds no seal at all."""
    path = folder / SEAL
    if not path.is_file():
        return None
    try:
        want = read_json(path)
    except (OSError, ValueError):
        return f"{SEAL} unreadable"
    if not isinstance(want, dict):
        return f"{SEAL} unreadable"
    for name, digest in want.items():
        f = folder / name
        if not f.is_file() or keys.file_sha256(f) != digest:
            return f"{name} missing or changed"
    return ""
