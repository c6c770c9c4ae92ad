"""The run directory: atomic writes, JSONL records, stage markers that record their outputs, a lock.

* Every artifact is written to a temporary file (or directory) beside its final path and renamed into
  place, so a killed run never leaves a half-written file, and a reader never sees a directory
  missing while it is being replaced (:func:`atomic_dir` swaps the new directory in with one
  ``renameat2(RENAME_EXCHANGE)``).
* A stage runs through :meth:`Store.run_stage`: it is skipped when its marker ``stages/<name>.json``
  holds the same config key *and* every file the stage wrote is still there with the size and
  SHA-256 recorded; otherwise it is redone. The files a stage writes are the ones that pass through
  :func:`atomic_write_bytes` and :func:`atomic_dir` while it runs (a context variable collects them).
* :func:`run_lock` is an advisory ``flock`` on ``<run>/.lock``: two commands never write one run
  directory at once.
* Reading and writing errors become one-line :class:`~warnframe.errors.UserError` s naming the file
  (and line), never a traceback.
"""

from __future__ import annotations

import contextvars
import ctypes
import errno
import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import UserError

#: Files written during the running stage (None outside a stage); see :meth:`Store.run_stage`.
_written: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("warnframe_written", default=None)

_REPAIR = ("rerun the same command, which redoes the stage that wrote it (in a run made before stages recorded "
           "their outputs, delete that stage's marker under stages/ first)")


# ---- write errors --------------------------------------------------------------------------------
def write_error(path: Path | str, err: OSError) -> UserError:
    """The one-line error for an OSError met while writing ``path`` (disk full, read-only, ...)."""
    code = err.errno
    if code in (errno.ENOSPC, errno.EDQUOT):
        return UserError(f"cannot write {path}: no space left on the device", None,
                         "free space (or pass another --out) and rerun the same command; finished stages are kept")
    if code == errno.EROFS:
        return UserError(f"cannot write {path}: the file system is read-only", None,
                         "pass an --out on a writable disk; finished stages are kept")
    if code == errno.EFBIG:
        return UserError(f"cannot write {path}: file too large for the file-size limit (ulimit -f) or the file system",
                         None, "raise the limit (ulimit -f unlimited) or write to another disk, and rerun")
    if code in (errno.EACCES, errno.EPERM):
        return UserError(f"cannot write {path}: permission denied", None, "pass an --out you may write to")
    if code in (errno.ENOTDIR, errno.EEXIST):
        return UserError(f"cannot write {path}: a part of the path is a file, not a directory", None,
                         "pass a path whose parents are directories")
    if code == errno.EISDIR:
        return UserError(f"cannot write {path}: it is a directory", None, "pass a file path")
    return UserError(f"cannot write {path}: {err.strerror or err}", None, "check the disk and the path, then rerun")


def read_error(path: Path | str, err: OSError) -> UserError:
    """The one-line error for an OSError met while reading ``path``."""
    if isinstance(err, FileNotFoundError):
        return UserError(f"file not found: {path}", None, "check the path")
    if isinstance(err, IsADirectoryError):
        return UserError(f"{path} is a directory, not a file", None, "pass a file")
    if isinstance(err, PermissionError):
        return UserError(f"cannot read {path}: permission denied", None, "make it readable or pass another file")
    return UserError(f"cannot read {path}: {err.strerror or err}", None, "check the file and the disk")


def decode_error(path: Path | str, data: bytes, err: UnicodeDecodeError, line_offset: int = 0) -> UserError:
    """A UserError for bytes of ``path`` that are not UTF-8, naming the line and column."""
    line = line_offset + data.count(b"\n", 0, err.start) + 1
    col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
    return UserError(f"not UTF-8 text: byte 0x{data[err.start]:02x} at column {col}", f"{path}:{line}",
                     "is it a binary file? convert text to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


# ---- atomic writes -------------------------------------------------------------------------------
def _record(*paths: Path) -> None:
    written = _written.get()
    if written is not None:
        written.extend(paths)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename; an OSError (disk full,
    read-only, file too large) becomes a one-line UserError and leaves no partial file."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary readable files
        os.replace(tmp, path)
    except OSError as e:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise write_error(path, e) from None
    except BaseException:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        raise
    _record(path)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy a file atomically (and record it as an output of the running stage)."""
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        raise read_error(src, e) from None
    atomic_write_bytes(Path(dst), data)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise read_error(path, e) from None


def read_text(path: Path | str) -> str:
    """The UTF-8 text of ``path``; not UTF-8 or unreadable is a UserError naming file and line."""
    data = _read_bytes(Path(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise decode_error(path, data, e) from None


class DamagedJSON(UserError, json.JSONDecodeError):
    """A JSON file that is truncated, not JSON or not UTF-8: a one-line UserError naming the file
    and line, and still a ``json.JSONDecodeError`` for code that catches that."""

    def __init__(self, what: str, path: Path | str, doc: str, pos: int, fix: str):
        json.JSONDecodeError.__init__(self, what, doc, pos)  # msg, doc, pos, lineno, colno
        one_line = UserError(what, f"{path}:{self.lineno}", fix)
        self.what, self.where, self.fix, self.args = one_line.what, one_line.where, one_line.fix, one_line.args


def read_json(path: Path | str, fix: str = _REPAIR) -> Any:
    """One JSON document; damaged (truncated, not JSON, not UTF-8) is a :class:`DamagedJSON`
    naming the file and line and what to do (``fix``); missing or unreadable is a UserError."""
    data = _read_bytes(Path(path))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data[:e.start].decode("utf-8")
        raise DamagedJSON(f"damaged JSON (not UTF-8: byte 0x{data[e.start]:02x})", path, text, e.start, fix) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DamagedJSON(f"damaged JSON ({e.msg})", path, text, e.pos, fix) from None


def iter_lines(path: Path | str) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 file, read as a stream; a line that is not
    UTF-8 is a UserError naming the file and line. Use it for any user-supplied text file."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise read_error(path, e) from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise decode_error(path, raw, e, n - 1) from None


def write_jsonl(path: Path, rows: Iterable[Any]) -> None:
    lines = []
    for r in rows:
        if hasattr(r, "model_dump"):
            r = r.model_dump(mode="json")
        lines.append(json.dumps(r, default=str))
    atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def read_jsonl_numbered(path: Path) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` of each non-blank line; a malformed, too deeply nested or
    non-UTF-8 line, or one that is not an object, is a UserError naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"file not found: {path}", None, "check the path")
    for n, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"malformed JSON line: {e.msg}", f"{path}:{n}", "fix or remove that line") from None
        except RecursionError:
            raise UserError("JSON line nested too deeply", f"{path}:{n}", "fix or remove that line") from None
        if not isinstance(row, dict):
            raise UserError("JSONL line is not an object", f"{path}:{n}", "each line must be a JSON object")
        yield n, row


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield each record (see :func:`read_jsonl_numbered`)."""
    for _, row in read_jsonl_numbered(path):
        yield row


# ---- directories swapped in whole ----------------------------------------------------------------
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _libc_renameat2():
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28 or another libc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


_renameat2 = _libc_renameat2()


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap the names ``a`` and ``b`` (both must exist); OSError as the kernel says."""
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(b))


def _publish(tmp: Path, final: Path) -> None:
    """Make the finished directory ``tmp`` visible as ``final``; afterwards ``tmp`` holds what
    ``final`` held before (or nothing). ``final`` never goes missing once it exists, and two
    writers never fail each other: whoever publishes last wins, whole."""
    for _ in range(1000):
        if final.exists() or final.is_symlink():
            try:
                _exchange(tmp, final)
                return
            except FileNotFoundError:
                continue  # it vanished (removed by hand): rename below
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
                    raise
                return _publish_locked(tmp, final)  # a file system without RENAME_EXCHANGE
        try:
            os.rename(tmp, final)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # another writer published first: swap with it next time round
    raise OSError(errno.EBUSY, "could not publish the directory", str(final))


def _publish_locked(tmp: Path, final: Path) -> None:
    """Fallback where the kernel cannot exchange: move the old directory aside and the new one in,
    serialised by a lock so concurrent writers never lose a write. A reader can find ``final``
    missing for the instant between the two renames (only on such file systems)."""
    with file_lock(final.parent / f".{final.name}.lock"):
        old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
        os.rmdir(old)
        if final.exists():
            os.rename(final, old)
        os.rename(tmp, final)
        if old.exists():
            os.rename(old, tmp)


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


def _remove(path: Path) -> None:
    """Delete a replaced version once no :func:`reading` reader holds it (an exclusive ``flock`` on
    the directory itself waits for their shared ones)."""
    if path.is_dir() and not path.is_symlink():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            fd = None
        try:
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            shutil.rmtree(path, ignore_errors=True)
        finally:
            if fd is not None:
                os.close(fd)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def reading(final: Path) -> Iterator[Path]:
    """Read one version of an :func:`atomic_dir` directory, whole, while writers replace it.

    Yields a path to the directory as it was when opened (``/proc/self/fd/N`` on Linux): listing
    it and opening files under it all see that one version, and a writer does not delete it until
    the block ends (a shared ``flock`` on the directory). Plain path reads (``from_pretrained``)
    need no such care to see complete files; a *listing* of a directory being replaced does.
    """
    while True:
        try:
            fd = os.open(final, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise read_error(final, e) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_ino == os.stat(final).st_ino:
                break  # still the current version: no writer deletes it while we hold the lock
        except OSError as e:
            os.close(fd)
            raise read_error(final, e) from None
        os.close(fd)  # replaced between the open and the lock (and perhaps deleted): open the new one
    try:
        yield Path(f"/proc/self/fd/{fd}") if Path("/proc/self/fd").is_dir() else Path(final)
    finally:
        os.close(fd)


@contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling directory; swap it in as ``final`` only if the block succeeds.

    Readers (``from_pretrained(final)``, a directory listing) always find a complete ``final``:
    the old one until the swap, the new one after it, never none. A reader that opens several
    files across the instant of a swap can read some from each version (both complete); the run
    lock (:func:`run_lock`) keeps a second writer off a run directory, so that only happens on
    directories shared between runs (the base-model cache); a reader that lists the directory
    uses :func:`reading` to see one version whole. Concurrent writers all succeed; the last to
    finish is what stays. An OSError (disk full, read-only) becomes a one-line UserError.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    except OSError as e:
        raise write_error(final, e) from None
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o755)  # mkdtemp creates 0700; artifacts are ordinary readable directories
            written = [p for p in sorted(tmp.rglob("*")) if p.is_file()]
            _publish(tmp, final)
        except OSError as e:
            raise write_error(final, e) from None
        except Exception as e:  # safetensors and tokenizers report a full disk as their own errors
            if "No space left on device" in str(e) or "os error 28" in str(e):
                raise write_error(final, OSError(errno.ENOSPC, "No space left on device", str(final))) from None
            raise
        _record(*(final / p.relative_to(tmp) for p in written))
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)


# ---- the run lock --------------------------------------------------------------------------------
@contextmanager
def run_lock(root: Path | str) -> Iterator[Path]:
    """Hold the advisory lock ``<root>/.lock`` (``flock``) while the block runs; a second holder
    gets a UserError naming the PID, its start time and command. The lock goes with the process
    (killed or not), so a stale ``.lock`` file never blocks anyone."""
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
        raise UserError(f"run directory {root} is in use by {who}", str(path),
                        "wait for it to finish or pass another --out") from None
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


# ---- content hashes ------------------------------------------------------------------------------
def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, read in 1 MiB chunks (constant memory for multi-GB weights)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
        damaged). Every file written through this module while ``fn`` runs is recorded in the
        marker with its size and SHA-256. A repaired stage whose new outputs differ from the
        recorded ones invalidates the markers of the stages that finished after it (they rerun);
        identical outputs (runs are deterministic) keep them. ``mark=False`` (a non-main process
        under ``accelerate launch``) runs ``fn`` without writing the marker. ``fn`` may return a
        dict of extra marker fields.
        """
        old = self._read_marker(name)
        damaged = self.damaged(old) if old is not None and old.get("key") == key else None
        if damaged == []:
            return "skipped"
        if damaged and log:
            log(f"stage {name}: redoing it, {len(damaged)} output(s) missing or damaged: {', '.join(damaged[:3])}")
        t0 = time.perf_counter()
        token = _written.set([])
        try:
            extra = fn() or {}
            written = _written.get()
        finally:
            _written.reset(token)
        if not mark:
            return "repaired" if damaged else "ran"
        outputs = {}
        root = self.root.resolve()
        for p in dict.fromkeys(written):
            try:
                rel = p.resolve().relative_to(root).as_posix()
            except ValueError:  # outside the run directory (the shared base-model cache)
                continue
            if p.is_file():
                outputs[rel] = _fingerprint(p)
        finished = None
        if damaged and outputs == old.get("outputs"):
            finished = old.get("finished")  # reproduced bit for bit: what came after it still holds
        elif damaged:
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

    def timings(self) -> dict[str, float]:
        out = {}
        for m in sorted(self.path("stages").glob("*.json")):
            marker = self._read_marker(m.stem)
            if marker is not None:
                out[m.stem] = marker.get("seconds")
        return out
