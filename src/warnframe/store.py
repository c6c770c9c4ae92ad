"""The run directory: atomic writes, JSONL records, and stage completion markers.

Every artifact is written to a temporary file in the same directory and renamed into place, so a
killed run never leaves a half-written file. A stage is complete when its marker
``stages/<name>.json`` exists with the same config key; ``Store.done`` checks exactly that.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary readable files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    lines = []
    for r in rows:
        if hasattr(r, "model_dump"):
            r = r.model_dump(mode="json")
        lines.append(json.dumps(r, default=str))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield each record; a malformed line is a UserError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}", None, "check the path")
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"malformed JSON line: {e.msg}", f"{path}:{n}", "fix or remove that line") from None
            if not isinstance(row, dict):
                raise UserError("JSONL line is not an object", f"{path}:{n}", "each line must be a JSON object")
            yield row


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; rename it to ``final`` only if the block succeeds."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        if final.exists():
            import shutil

            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)


class Store:
    """A run directory and its stage markers."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _marker(self, stage: str) -> Path:
        return self.path("stages", f"{stage}.json")

    def done(self, stage: str, key: str) -> bool:
        m = self._marker(stage)
        if not m.is_file():
            return False
        try:
            return read_json(m).get("key") == key
        except (json.JSONDecodeError, OSError):
            return False

    def mark(self, stage: str, key: str, seconds: float, **info: Any) -> None:
        write_json(self._marker(stage), {"key": key, "seconds": round(seconds, 3), "finished": time.time(), **info})

    def timings(self) -> dict[str, float]:
        out = {}
        for m in sorted(self.path("stages").glob("*.json")):
            try:
                out[m.stem] = read_json(m).get("seconds")
            except (json.JSONDecodeError, OSError):
                continue
        return out
