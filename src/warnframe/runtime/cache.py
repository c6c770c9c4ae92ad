"""The shared cache (``$WARNFRAME_CACHE``, default ``~/.cache/warnframe``): built once, shared by runs.

Entries are folders written whole (:func:`warnframe.runtime.dirs.atomic_dir`) and *sealed*: a
``files.json`` lists every other file's SHA-256. A reader checks the seal before it uses an entry
and rebuilds one that is damaged (a file missing, truncated or changed), so a damaged entry is never
copied into a run and recorded as intact. Used by the embedded base model (``base/<key>``) and by
GGUF files dequantized to safetensors (``gguf/<sha256>``), both through :func:`ensure`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from warnframe.runtime import keys
from warnframe.runtime.files import read_json, write_json
from warnframe.runtime.locks import file_lock

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


def ensure(entry: Path, build: Callable[[Path], None], damage: Callable[[Path], str | None] = seal_damage) -> None:
    """Build cache entry ``entry`` unless it is there and intact. Under a lock beside it, so that two
    runs with a cold cache build it once. ``damage(entry)`` says what is wrong with an existing entry
    ('' when nothing; None, no seal, counts as damaged); a damaged entry is logged and built again.
    ``build(entry)`` writes the entry whole (``atomic_dir``) and seals it."""
    from warnframe.runtime.progress import console

    entry.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(entry.parent / f".{entry.name}.lock"):
        if not entry.is_dir():
            build(entry)
            return
        why = damage(entry)
        if why is None or why:
            console.log(f"cache entry {entry} is damaged ({why or 'not sealed'}): building it again")
            build(entry)
