"""Directories swapped in whole: readers never see one half-written or missing.

* :func:`atomic_dir` builds a directory (a saved model, say) in a temporary sibling and swaps it in
  with one ``renameat2(RENAME_EXCHANGE)``; where the file system cannot exchange, it moves the old
  one aside under a :func:`~warnframe.runtime.locks.file_lock`.
* :func:`reading` holds one version of such a directory open (a shared ``flock``) while a writer
  replaces it, so a listing sees that version whole.
* The files of a published directory are recorded as outputs of the running stage
  (:func:`warnframe.runtime.files.record_written`).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from warnframe.runtime.files import read_error, record_written, write_error
from warnframe.runtime.locks import file_lock

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
        record_written(*(final / p.relative_to(tmp) for p in written))
    finally:
        if tmp.exists() or tmp.is_symlink():
            _remove(tmp)
