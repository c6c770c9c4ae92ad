"""Resume keys: the one way a stage or a section names what its result depends on.

A stage is redone when its key changes and never otherwise (:meth:`warnframe.runtime.store.Store.run_stage`).
Every key is :func:`digest` of a JSON-able value: a config part (:meth:`warnframe.config.StudyConfig.digest`),
a seed, a spec, the content of the examples trained on, or the :func:`fingerprint` of input files.
Written by hand: twelve lines around ``hashlib``, and one definition instead of nine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path


def digest(obj, length: int = 16) -> str:
    """A short SHA-256 of ``obj`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def key(*parts) -> str:
    """The resume key of a stage made of ``parts`` (config digests, seeds, specs, fingerprints)."""
    return digest(list(parts))


def fingerprint(paths: Iterable[Path]) -> str:
    """Names, sizes and modification times of files: a key that changes when the files do, without
    reading them (a stage keyed on it reruns when its inputs are rewritten)."""
    return digest(sorted(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths), 12)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory for multi-GB weights): for
    inputs whose content, not timestamp, matters, and for the stage markers' integrity check."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
