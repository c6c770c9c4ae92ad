"""The run directory and its resumable stages: markers that record each stage's outputs.

* A stage runs through :meth:`Store.run_stage`: it is skipped when its marker ``stages/<name>.json``
  holds the same config key *and* every file the stage wrote is still there with the size and
  SHA-256 recorded; otherwise it is redone. The files a stage writes are the ones that pass through
  :func:`warnframe.runtime.files.atomic_write_bytes` and :func:`warnframe.runtime.dirs.atomic_dir` while it runs
  (the context variable :data:`warnframe.runtime.files.written_files` collects them).
* A repaired stage whose outputs changed invalidates the stages that finished after it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warnframe.runtime.errors import UserError
from warnframe.runtime.files import write_error, write_json, written_files
from warnframe.runtime.keys import file_sha256


def _fingerprint(path: Path) -> dict:
    return {"size": path.stat().st_size, "sha256": file_sha256(path)}


class Store:
    """A run directory and its stage markers."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"run directory {self.root} is a file", "--out", "pass a directory (new or a run's)")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.root, e) from None

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def _marker(self, stage: str) -> Path:
        return self.path("stages", f"{stage}.json")

    def _read_marker(self, stage: str) -> dict | None:
        m = self._marker(stage)
        try:
            data = json.loads(m.read_bytes())
        except (OSError, ValueError):  # missing, unreadable or damaged: the stage is not done
            return None
        return data if isinstance(data, dict) else None

    def done(self, stage: str, key: str) -> bool:
        """The stage finished for ``key`` and every output it recorded is intact."""
        marker = self._read_marker(stage)
        return marker is not None and marker.get("key") == key and not self.damaged(marker)

    def damaged(self, marker: dict) -> list[str]:
        """The outputs a marker recorded that are now missing or differ in size or SHA-256."""
        bad = []
        for rel, want in (marker.get("outputs") or {}).items():
            p = self.root / rel
            try:
                if p.stat().st_size != want["size"] or file_sha256(p) != want["sha256"]:
                    bad.append(rel)
            except OSError:
                bad.append(rel)
        return bad

    def mark(self, stage: str, key: str, seconds: float, outputs: dict | None = None, finished: float | None = None,
             **info: Any) -> None:
        """Write the stage's marker: its key, time, outputs (``{relpath: {size, sha256}}``) and info.
        ``finished`` is when its outputs were made (kept by a repair that reproduced them)."""
        write_json(self._marker(stage), {"key": key, "seconds": round(seconds, 3), "finished": finished or time.time(),
                                         "outputs": outputs or {}, **info})

    def run_stage(self, name: str, key: str, fn: Callable[[], dict | None], *, mark: bool = True,
                  log: Callable[[str], None] | None = None, **info: Any) -> str:
        """Run ``fn`` as stage ``name`` unless it is done for ``key`` with intact outputs.

        Returns ``"skipped"``, ``"ran"`` or ``"repaired"`` (redone because an output was missing or
        damaged). Every file written through :mod:`warnframe.runtime.files` or :mod:`warnframe.runtime.dirs` while
        ``fn`` runs is recorded in the marker with its size and SHA-256. A repaired stage whose new
        outputs differ from the recorded ones invalidates the markers of the stages that finished
        after it (they rerun); identical outputs (runs are deterministic) keep them. ``mark=False``
        (a non-main process under ``accelerate launch``) runs ``fn`` without writing the marker.
        ``fn`` may return a dict of extra marker fields.
        """
        old = self._read_marker(name)
        damaged = self.damaged(old) if old is not None and old.get("key") == key else None
        if damaged == []:
            return "skipped"
        if damaged and log:
            log(f"stage {name}: redoing it, {len(damaged)} output(s) missing or damaged: {', '.join(damaged[:3])}")
        t0 = time.perf_counter()
        token = written_files.set([])
        try:
            extra = fn() or {}
            written = written_files.get()
        finally:
            written_files.reset(token)
        if not mark:
            return "repaired" if damaged else "ran"
        outputs = {}
        root = self.root.resolve()
        assert written is not None  # the list set above, which fn appended to
        for p in dict.fromkeys(written):
            try:
                rel = p.resolve().relative_to(root).as_posix()
            except ValueError:  # outside the run directory (the shared base-model cache)
                continue
            if p.is_file():
                outputs[rel] = _fingerprint(p)
        finished = None
        if damaged and old is not None:  # damaged is only worked out for an existing marker
            if outputs == old.get("outputs"):
                finished = old.get("finished")  # reproduced bit for bit: what came after it still holds
            else:
                self._invalidate_after(old.get("finished", 0.0), except_stage=name, log=log)
        self.mark(name, key, time.perf_counter() - t0, outputs=outputs, finished=finished, **info, **extra)
        return "repaired" if damaged else "ran"

    def _invalidate_after(self, finished: float, except_stage: str, log=None) -> None:
        for m in sorted(self.path("stages").glob("*.json")):
            if m.stem == except_stage:
                continue
            marker = self._read_marker(m.stem)
            if marker is not None and marker.get("finished", 0.0) > finished:
                m.unlink(missing_ok=True)
                if log:
                    log(f"stage {m.stem}: will rerun, an earlier stage's outputs changed")

    def timings(self) -> dict[str, float | None]:
        """Seconds per finished stage (None where a marker lacks them)."""
        out: dict[str, float | None] = {}
        for m in sorted(self.path("stages").glob("*.json")):
            marker = self._read_marker(m.stem)
            if marker is not None:
                out[m.stem] = marker.get("seconds")
        return out
