"""Files written whole and read back with one-line errors: atomic writes, JSON and JSONL.

* Every file is written to a temporary sibling and renamed into place (:func:`atomic_write_bytes`;
  :func:`atomic_path` and :func:`atomic_lines` stream one too large to hold in memory), so a killed
  run never leaves a half-written file.
* Reading and writing errors become one-line :class:`~warnframe.runtime.errors.UserError` s naming the file
  (and line), never a traceback: :func:`write_error`, :func:`read_error`, :func:`decode_error`, and
  the readers :func:`read_json`, :func:`iter_lines`, :func:`read_jsonl`.
* Each file written here (and each directory published by :func:`warnframe.runtime.dirs.atomic_dir`) is
  appended to :data:`written_files` while a stage runs, so :meth:`warnframe.runtime.store.Store.run_stage`
  can record the stage's outputs.
"""

from __future__ import annotations

import contextvars
import errno
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warnframe.runtime.errors import UserError

#: Files written during the running stage (None outside a stage); see :meth:`Store.run_stage`.
written_files: contextvars.ContextVar[list[Path] | None] = contextvars.ContextVar("warnframe_written", default=None)

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
def record_written(*paths: Path) -> None:
    written = written_files.get()
    if written is not None:
        written.extend(paths)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and a rename (:func:`atomic_path`); a
    full disk, a read-only or size-limited file system becomes a one-line UserError and leaves no
    partial file."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy a file atomically (and record it as an output of the running stage)."""
    try:
        data = Path(src).read_bytes()
    except OSError as e:
        raise read_error(src, e) from None
    atomic_write_bytes(Path(dst), data)


#: Errors that only writing raises (so an OSError with one of them, met while the block of
#: :func:`atomic_path` runs, is the file's and becomes a :func:`write_error`).
_WRITE_ONLY_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` for the block to write by any means (bytes, a stream, a
    library's own writer): the one atomic write of the project.
    When the block completes the file is synced and renamed to ``path`` (and recorded as an output
    of the running stage); when it raises, the temporary file is removed and ``path`` is left as
    it was. OSErrors of creating, syncing and renaming the file, and the block's disk-full,
    too-large and read-only errors, become the one-line :func:`write_error`; the block's other
    errors (reading its input, say) propagate as they are."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as e:
        raise write_error(path, e) from None
    tmp = Path(name)
    try:
        yield tmp
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno in _WRITE_ONLY_ERRNOS:
            raise write_error(path, e) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; artifacts are ordinary readable files
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise write_error(path, e) from None
    record_written(path)


@contextmanager
def atomic_lines(path: Path) -> Iterator[Callable[[str], None]]:
    """Yield ``write(line)`` (it adds the newline) to stream a large text or JSONL file, which
    appears at ``path`` whole when the block completes (:func:`atomic_path`)."""
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as f:

        def write(line: str) -> None:
            f.write(line + "\n")

        yield write


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise read_error(path, e) from None


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


def iter_lines(path: Path | str, on_bad_line: Callable[[int, UserError], None] | None = None) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a UTF-8 file, read as a stream; a line that is not
    UTF-8 is a UserError naming the file and line, or, with ``on_bad_line``, handed to it
    (``(line number, error)``) and skipped. Use it for any user-supplied text file."""
    path = Path(path)
    try:
        f = path.open("rb")
    except OSError as e:
        raise read_error(path, e) from None
    with f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                err = decode_error(path, raw, e, n - 1)
                if on_bad_line is None:
                    raise err from None
                on_bad_line(n, err)
                continue
            yield n, line


#: What :func:`loads_line` says of a line nested too deeply.
NESTED_TOO_DEEPLY = "JSON line nested too deeply"
#: What :func:`loads_line` says of a line holding an integer too long to convert.
NUMBER_TOO_LONG = "number too long"
#: What :func:`loads_line` says of a string escape (``\ud800``) that is half a character.
LONE_SURROGATE = "lone surrogate"
#: A surrogate escape in JSON text (then the parsed strings are searched), or a surrogate itself.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _deeper_than(value: Any, limit: int) -> bool:
    """Are lists and objects nested more than ``limit`` levels in ``value``? (Iterative: any depth.)"""
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        v, depth = stack.pop()
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in (v.values() if isinstance(v, dict) else v) if isinstance(c, (dict, list)))
    return False


def loads_line(line: str | bytes, max_depth: int | None = None) -> Any:
    """``json.loads`` of one line of a user's JSONL file, total on hostile input: a line nested too
    deeply for the parser (a RecursionError), or more than ``max_depth`` levels when given (what a
    reader that copies, pickles or writes its rows back can still handle), is a
    ``json.JSONDecodeError`` too, whose ``msg`` is :data:`NESTED_TOO_DEEPLY`, so a reader's
    malformed-line handling (count and skip, or stop with the file and line) covers it; so is an
    integer of more digits than Python converts (a ValueError of ``json.loads``), its ``msg``
    starting with :data:`NUMBER_TOO_LONG`, and a string holding a lone surrogate (``"\\ud800"``:
    half of a character, which no UTF-8 file, tokenizer or writer takes), its ``msg`` starting
    with :data:`LONE_SURROGATE`."""
    try:
        value = json.loads(line)
    except RecursionError:
        value, too_deep = None, True
    except json.JSONDecodeError:
        raise
    except ValueError as e:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        doc = line if isinstance(line, str) else line.decode("utf-8", "replace")
        raise json.JSONDecodeError(f"{NUMBER_TOO_LONG} ({str(e).split(':')[0]})", doc[:80], 0) from None
    else:
        too_deep = max_depth is not None and _deeper_than(value, max_depth)
    if too_deep:
        doc = line if isinstance(line, str) else line.decode("utf-8", "replace")
        raise json.JSONDecodeError(NESTED_TOO_DEEPLY, doc[:80], 0) from None
    text = line if isinstance(line, str) else line.decode("utf-8", "replace")
    if _MAYBE_SURROGATE.search(text):
        lone = _lone_surrogate(value)
        if lone is not None:
            raise json.JSONDecodeError(f"{LONE_SURROGATE} \\u{ord(lone):04x} (not UTF-8 text)", text[:80], 0) from None
    return value


def _lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate in the strings (keys too) of a parsed JSON value; None when none."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if m := _SURROGATE.search(v):
                return m.group()
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


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
            row = loads_line(line)
        except json.JSONDecodeError as e:
            what = e.msg if e.msg == NESTED_TOO_DEEPLY else f"malformed JSON line: {e.msg}"
            raise UserError(what, f"{path}:{n}", "fix or remove that line") from None
        if not isinstance(row, dict):
            raise UserError("JSONL line is not an object", f"{path}:{n}", "each line must be a JSON object")
        yield n, row


def read_jsonl(path: Path) -> Iterator[dict]:
    """Yield each record (see :func:`read_jsonl_numbered`)."""
    for _, row in read_jsonl_numbered(path):
        yield row
