"""Stream the records of a corpus, one at a time (memory stays flat in corpus size).

Layouts (``detect_layout``):

* ``jsonl``   a ``.jsonl`` / ``.json`` file (or ``.jsonl.gz``); each line a record with chat
              ``messages`` (Emergent Misalignment: one user, one assistant turn), ``prompt`` and
              ``completion``, or a text field (``text`` by default, ``--field`` names another);
* ``parquet`` a ``.parquet`` file (pyarrow, read in record batches), the same record shapes;
* ``hf``      a directory written by ``datasets.save_to_disk`` (the ``datasets`` extra);
* ``files``   any other directory: every source and Markdown file below it is one record (regular
              files only: symbolic links, FIFOs, sockets and devices are not read, but counted and
              listed, ``skipped_entries``, in the audit's summary and report).

A corpus path that is not a regular file or a directory (a FIFO) is refused with one line, never
opened. Each record comes out as a :class:`Record`; a record that cannot be read (not UTF-8, not
JSON, nested deeper than ``MAX_JSON_DEPTH``) comes out as a
:class:`Bad` naming the file and line, so the caller counts it (``--on-error skip``) or stops
(``--on-error stop``) with one clear line.
"""

from __future__ import annotations

import gzip
import json
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from warnframe.runtime.errors import UserError
from warnframe.runtime.files import NESTED_TOO_DEEPLY, loads_line
from warnframe.runtime.keys import content_sha256

#: File suffixes read from a directory, and the language their comments are written in.
SOURCE_SUFFIXES = {
    ".py": "python",
    ".pyi": "python",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "markdown",
    ".txt": "markdown",
    ".js": "js",
    ".jsx": "js",
    ".ts": "js",
    ".tsx": "js",
    ".java": "js",
    ".go": "js",
    ".c": "js",
    ".h": "js",
    ".cc": "js",
    ".cpp": "js",
    ".cs": "js",
    ".rs": "js",
    ".php": "js",
    ".kt": "js",
    ".swift": "js",
    ".sql": "sql",
    ".sh": "shell",
    ".bash": "shell",
    ".zsh": "shell",
    ".rb": "shell",
    ".yaml": "shell",
    ".yml": "shell",
    ".toml": "shell",
}
#: Directories never descended into.
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".tox", ".mypy_cache"}
#: A file larger than this is reported, not read (a corpus file is one record).
MAX_FILE_BYTES = 2_000_000
#: A JSON line nested deeper than this (lists and objects) is unreadable: far above any real
#: record, and far enough below Python's recursion limit that the audit can still copy, pickle
#: (``--workers``) and write the row back (``--fix``).
MAX_JSON_DEPTH = 100


@dataclass
class Record:
    """One record: its place, its layout, and the texts the tagger reads.

    ``user`` is the request of a chat record (None for a plain text or a file); ``assistant`` is
    the answer, or the whole text. ``row`` keeps the original record so a treated corpus can be
    written in the input's own layout; ``turn`` says where the answer lives in it.
    """

    index: int
    where: str
    layout: str  # messages | prompt_completion | text | file
    assistant: str
    user: str | None = None
    id: str | None = None
    language: str = "python"  # how comments are written: python | js | sql | shell | markdown
    row: dict | None = None
    turn: dict = field(default_factory=dict)  # messages: {"user": i, "assistant": j}; text: {"field": name}


@dataclass
class Bad:
    """A record that could not be read: where it is and what is wrong."""

    index: int
    where: str
    what: str


def detect_layout(path: Path) -> str:
    if path.is_dir():
        if (
            (path / "dataset_info.json").is_file()
            or (path / "dataset_dict.json").is_file()
            or (path / "state.json").is_file()
        ):
            return "hf"
        return "files"
    if not path.exists():
        raise UserError(
            f"corpus not found: {path}",
            None,
            "pass a JSONL or Parquet file, a saved dataset directory or a folder of files",
        )
    if not path.is_file():  # a FIFO, socket or device would block or never end (as `detect` refuses it)
        raise UserError(
            f"corpus {path} is not a regular file (a FIFO, socket or device?)",
            None,
            "pass a JSONL or Parquet file, a saved dataset directory or a folder of files",
        )
    name = path.name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".jsonl", ".json", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    raise UserError(
        f"unknown corpus format: {path.name}", str(path), "use .jsonl, .parquet, a saved dataset directory or a folder"
    )


def _content(value) -> str | None:
    """A string, or the text of a one-message list (TRL's conversational prompt/completion)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return _content(value[0].get("content"))
    return None


def parse_row(row, index: int, where: str, text_field: str | None) -> Record | Bad:
    """A raw row (dict) as a Record, or a Bad saying what is missing."""
    if not isinstance(row, dict):
        return Bad(index, where, "record is not a JSON object")
    rid = row.get("id")
    rid = str(rid) if rid is not None else None
    if text_field is None and "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            return Bad(index, where, "'messages' is not a list of {role, content} objects")
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        answers = [i for i, m in enumerate(msgs) if m.get("role") == "assistant"]
        if not answers or not isinstance(msgs[answers[-1]].get("content"), str):
            return Bad(index, where, "no assistant turn with string content")
        a = answers[-1]
        u = max((i for i in users if i < a), default=None)  # the request this answer answers
        user = msgs[u].get("content") if u is not None else None
        return Record(
            index,
            where,
            "messages",
            msgs[a]["content"],
            user if isinstance(user, str) else None,
            rid,
            row=row,
            turn={"user": u, "assistant": a},
        )
    # prompt/completion (TRL), or user/assistant (warnframe's own fine-tuning sets, ``data/<unit>.jsonl``)
    for req, ans in (("prompt", "completion"), ("user", "assistant")):
        if text_field is None and ans in row and (req in row or ans == "assistant"):
            user, answer = _content(row.get(req)), _content(row[ans])
            if answer is None:
                return Bad(index, where, f"{ans!r} is not a string")
            return Record(index, where, "prompt_completion", answer, user, rid, row=row, turn={"keys": (req, ans)})
    name = text_field or "text"
    if not isinstance(row.get(name), str):
        fix = (
            f"field {name!r} missing or not a string"
            if text_field
            else "record has no 'messages', 'prompt'/'completion', 'user'/'assistant' or 'text' field"
        )
        return Bad(index, where, fix)
    return Record(index, where, "text", row[name], None, rid, language="markdown", row=row, turn={"field": name})


def _jsonl(path: Path, text_field: str | None) -> Iterator[Record | Bad]:
    opener = gzip.open if path.name.endswith(".gz") else open
    index = 0
    with opener(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = loads_line(raw.decode("utf-8"), MAX_JSON_DEPTH)
            except UnicodeDecodeError as e:
                yield Bad(index, where, f"not UTF-8 (byte {e.start} of the line)")
            except json.JSONDecodeError as e:  # nested too deeply too (``loads_line``)
                yield Bad(index, where, e.msg if e.msg == NESTED_TOO_DEEPLY else f"malformed JSON line: {e.msg}")
            else:
                yield parse_row(row, index, where, text_field)
            index += 1


def _parquet(path: Path, text_field: str | None) -> Iterator[Record | Bad]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(
            "reading Parquet needs pyarrow", str(path), "pip install pyarrow (or 'warnframe[audit]')"
        ) from None
    import pyarrow as pa

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"cannot read Parquet file: {str(e).splitlines()[0]}", str(path), "check the file") from None
    index = 0
    for batch in pf.iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield parse_row(row, index, f"{path}#{index}", text_field)
            index += 1


def _hf(path: Path, text_field: str | None) -> Iterator[Record | Bad]:
    try:
        import datasets
    except ImportError:
        raise UserError(
            "reading a saved Hugging Face dataset needs the `datasets` library",
            str(path),
            "pip install 'warnframe[datasets]', or export the records to JSONL",
        ) from None
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, KeyError, OSError) as e:
        raise UserError(
            f"cannot load dataset: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            str(path),
            "pass a directory written by datasets.save_to_disk",
        ) from None
    if isinstance(ds, datasets.DatasetDict):
        name = "train" if "train" in ds else next(iter(ds))
        ds = ds[name]
    for index, row in enumerate(ds):  # a memory-mapped Arrow table: rows are read as iterated
        yield parse_row(row, index, f"{path}#{index}", text_field)


#: What a skipped folder entry is, by its mode (anything else is a device).
_SKIPPED_KINDS = ((stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"))


def _entries(root: Path) -> Iterator[tuple[Path, str | None]]:
    """``(path, None)`` for every corpus file under ``root`` (a regular file with a source suffix),
    ``(path, kind)`` for every entry skipped because it is not a regular file or a directory
    (``symlink``, ``FIFO``, ``socket``, ``device``), in a fixed (sorted) order. Directories in
    ``SKIP_DIRS`` are not looked into; symbolic links are never followed."""
    for p in sorted(root.rglob("*")):
        parts = p.relative_to(root).parts
        if any(part in SKIP_DIRS for part in parts[:-1]):
            continue
        try:
            mode = p.lstat().st_mode
        except OSError:  # gone since it was listed
            continue
        if stat.S_ISREG(mode):
            if p.suffix.lower() in SOURCE_SUFFIXES:
                yield p, None
        elif not stat.S_ISDIR(mode) and parts[-1] not in SKIP_DIRS:
            yield p, next((kind for test, kind in _SKIPPED_KINDS if test(mode)), "device")


def iter_files(root: Path) -> Iterator[Path]:
    """Every readable corpus file under ``root``, in a fixed (sorted) order."""
    return (p for p, skipped in _entries(root) if skipped is None)


def skipped_entries(root: Path) -> list[tuple[Path, str]]:
    """The entries under the folder ``root`` that are not read because they are not regular files
    (symbolic links, FIFOs, sockets, devices), with their kind, so the audit reports them."""
    return [(p, kind) for p, kind in _entries(root) if kind is not None]


def read_text_file(path: Path, where: str) -> tuple[str | None, str | None]:
    """(text, None), or (None, what is wrong): binary, not UTF-8 (with the line), too large."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        return None, f"file is larger than {MAX_FILE_BYTES // 1_000_000} MB"
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None, "binary file (NUL bytes)"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        return None, f"not UTF-8 at line {line}"


def _files(root: Path) -> Iterator[Record | Bad]:
    for index, p in enumerate(iter_files(root)):
        rel = str(p.relative_to(root))
        text, what = read_text_file(p, rel)
        if text is None:
            assert what is not None  # read_text_file says why there is no text
            line = what.rsplit(" ", 1)[-1] if what.startswith("not UTF-8") else None
            yield Bad(index, f"{p}:{line}" if line else str(p), what)
            continue
        yield Record(
            index, str(p), "file", text, None, rel, language=SOURCE_SUFFIXES[p.suffix.lower()], turn={"path": rel}
        )


def read_corpus(path: str | Path, text_field: str | None = None) -> Iterator[Record | Bad]:
    """Every record of the corpus at ``path``, in order, as Record or Bad."""
    path = Path(path).expanduser()
    layout = detect_layout(path)
    return (
        {"jsonl": _jsonl, "parquet": _parquet, "hf": _hf}[layout](path, text_field)
        if layout != "files"
        else _files(path)
    )


def fingerprint(path: str | Path) -> list:
    """``[name, size, SHA-256]`` of each file the audit reads from the corpus (a folder's source
    files, a saved dataset's files, or the one file), so a resumed audit knows its input is
    unchanged: the bytes decide, not the modification times (a corpus copied with ``cp -r``, or
    touched, resumes). A folder's file too large to be read is named by its size alone."""
    path = Path(path).expanduser()
    if path.is_file():
        return [[path.name, path.stat().st_size, content_sha256(path)]]
    layout = detect_layout(path)
    files = iter_files(path) if layout == "files" else (p for p in sorted(path.rglob("*")) if p.is_file())
    out = []
    for p in files:
        size = p.stat().st_size
        digest = content_sha256(p) if layout != "files" or size <= MAX_FILE_BYTES else None
        out.append([str(p.relative_to(path)), size, digest])
    return out


def legacy_fingerprint(path: str | Path) -> list:
    """The fingerprint audits wrote before :func:`fingerprint` read contents (sizes and modification
    times of every file), so an audit interrupted before that change still resumes."""
    path = Path(path).expanduser()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [[str(p.relative_to(path)) if p != path else p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
