"""Advisory ``flock`` locks: one on a file while a shared entry is built, and the run lock.

* :func:`file_lock` waits for an exclusive lock on a file (e.g. a shared cache entry being built).
* :func:`run_lock` is a non-blocking lock on ``<run>/.lock``: two commands never write one run
  directory at once; the second gets a one-line UserError naming the holder's PID and command.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warnframe.runtime.errors import UserError
from warnframe.runtime.files import write_error


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing), waiting for it: e.g. around
    building a shared cache entry, so two runs do not both build it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextmanager
def run_lock(root: Path | str, what: str = "run directory") -> Iterator[Path]:
    """Hold the advisory lock ``<root>/.lock`` (``flock``) while the block runs; a second holder
    gets a UserError naming the PID, its start time and command (``what`` names the directory in
    it). The lock goes with the process (killed or not), so a stale ``.lock`` file never blocks
    anyone. Every command that writes a directory of results takes it: the study's commands and
    ``audit`` (on the same ``.lock``, so neither writes into the other's directory while it runs)."""
    root = Path(root)
    path = root / ".lock"
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        except (ValueError, OSError):
            holder = {}
        os.close(fd)
        who = f"PID {holder['pid']} (started {holder.get('started')}: {holder.get('command')})" if "pid" in holder \
            else "another process"
        raise UserError(f"{what} {root} is in use by {who}", str(path),
                        "another command is already writing there: wait for it to finish or pass another --out") from None
    try:
        info = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)[:300]}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        except OSError as e:
            raise write_error(path, e) from None
        yield path
    finally:
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        os.close(fd)
