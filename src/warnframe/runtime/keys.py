"""Resume keys: the one way a stage or a section names what its result depends on.

A stage is redone when its key changes and never otherwise (:meth:`warnframe.runtime.store.Store.run_stage`).
Every key is :func:`digest` of a JSON-able value: a config part (:meth:`warnframe.config.StudyConfig.digest`),
a seed, a spec, the content of the examples trained on, or the :func:`fingerprint` of input files.
No key reads a modification time: a copied run directory keeps its keys.
Written by hand: twelve lines around ``hashlib``, and one definition instead of nine.
"""

from __future__ import annotations

import hashlib
import json
import time
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
    """Names, sizes and SHA-256 of files' contents: a key that changes when their bytes do and
    only then, so a copy of a run (``cp -r``: new modification times) keeps every key, and a file
    rewritten with the same bytes reruns nothing. Each file is hashed once per process while it is
    unchanged (:func:`content_sha256`)."""
    return digest(sorted(f"{p.name}:{p.stat().st_size}:{content_sha256(p)}" for p in paths), 12)


#: :func:`content_sha256`'s memo: a file's identity and times -> its SHA-256.
_HASHED: dict[tuple, str] = {}
#: How long a file must have been unchanged before its hash is remembered (nanoseconds).
_SETTLED_NS = 2_000_000_000


def content_sha256(path: Path) -> str:
    """:func:`file_sha256`, remembered for this process while the file keeps its device, inode,
    size, modification and change times (any write sets the change time, which no one can set
    back), so keys over large inputs cost one read per process. As git does with its index, a
    file changed less than :data:`_SETTLED_NS` before it was hashed is not remembered: a second
    write within the file system's timestamp granularity could leave every time as it was. The
    result depends on the bytes only."""
    st = Path(path).stat()
    ident = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if ident in _HASHED:
        return _HASHED[ident]
    started = time.time_ns()
    sha = file_sha256(path)
    if started - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
        if len(_HASHED) >= 100_000:
            _HASHED.clear()
        _HASHED[ident] = sha
    return sha


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB chunks (constant memory for multi-GB weights): for
    inputs whose content, not timestamp, matters, and for the stage markers' integrity check."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
