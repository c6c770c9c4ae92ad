"""The scan: read the corpus in chunks, tag each chunk (in a worker pool), checkpoint, merge.

Every chunk of ``chunk`` records is tagged as a unit and written to ``OUT/parts/NNNNNN.*``; its
``.stats.json`` is written last, atomically, and marks the chunk done. A killed audit, run again
with the same corpus and options, skips the chunks that are done (``manifest.json`` holds the
corpus fingerprint and the options; anything different starts afresh). Workers receive chunks
through a bounded window (at most two per worker in flight), so memory stays flat however large
the corpus; results are merged in chunk order, so the outputs do not depend on ``--workers``.

Outputs (all written atomically): ``attributes.jsonl`` (dolma span attributes), ``records.jsonl``
(per record: class, positions, findings, spans, risk, what the fix did), ``errors.jsonl``,
``treated/`` (the treated corpus in the input's layout, with ``--fix``), ``summary.json``,
``report.md``, ``report.html``, ``figures/``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from warnframe.audit.attributes import EXPERIMENT, attributes
from warnframe.audit.fix import DEFAULT_TAG, FIXES, treat
from warnframe.audit.readers import Bad, Record, detect_layout, fingerprint, iter_files, read_corpus
from warnframe.audit.tagger import CODE_CLASSES, tag_record
from warnframe.runtime.dirs import atomic_dir
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_json, write_json
from warnframe.runtime.progress import task

ON_ERROR = ("stop", "skip")
#: Errors kept by name in the summary (all of them go to errors.jsonl).
ERRORS_SHOWN = 20


@dataclass(frozen=True)
class Options:
    """Everything that decides an audit's output (a resumed audit must have the same)."""

    field: str | None = None
    fix: str | None = None
    fix_classes: tuple[str, ...] = CODE_CLASSES
    on_error: str = "stop"
    use_bandit: bool = False
    exhaustive: bool = False
    chunk: int = 500
    experiment: str = EXPERIMENT
    tag_token: str = DEFAULT_TAG
    examples_per_class: int = 3

    def validate(self) -> None:
        if self.on_error not in ON_ERROR:
            raise UserError(f"unknown --on-error {self.on_error!r}", "--on-error", "choose stop or skip")
        if self.fix is not None and self.fix not in FIXES:
            raise UserError(f"unknown --fix {self.fix!r}", "--fix", f"choose {', '.join(FIXES)}")
        if self.chunk < 1:
            raise UserError("--chunk must be at least 1", "--chunk", "pass a positive number of records")


# ---------------------------------------------------------------- writing


@contextmanager
def atomic_lines(path: Path) -> Iterator:
    """Yield ``write(line)``; the file appears at ``path`` only when the block completes.

    ``files.atomic_write_text`` needs the whole text in memory; this streams (outputs of a large
    corpus are large), with the same temporary-file-and-rename discipline.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield lambda line: f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)


# ---------------------------------------------------------------- one chunk


def _example(rec: Record, tagged) -> dict:
    return {
        "id": rec.id or rec.where,
        "where": rec.where,
        "class": tagged.cls,
        "user": rec.user,
        "text": rec.assistant,
        "spans": [asdict(s) for s in tagged.spans],
        "findings": tagged.findings,
        "positions": tagged.positions,
        "risk": tagged.risk,
    }


def process_chunk(k: int, items: list, parts: str, source: str, opts: Options) -> dict:
    """Tag one chunk, write its part files, return its statistics (also written, last, as the done marker)."""
    parts_dir = Path(parts)
    stats: dict = {
        "chunk": k,
        "records": 0,
        "errors": [],
        "classes": Counter(),
        "class_cwe": Counter(),
        "class_cwe_position": Counter(),
        "class_position": Counter(),
        "vulnerable": 0,
        "parse_failed": 0,
        "sources": Counter(),
        "actions": Counter(),
        "untreatable": Counter(),
        "examples": {},
        "risk_bins": Counter(),
        "class_vulnerable": Counter(),
        "detector_skipped": Counter(),
        "seconds": 0.0,
    }
    t0 = time.perf_counter()
    with (
        atomic_lines(parts_dir / f"{k:06d}.attributes.jsonl") as attr_out,
        atomic_lines(parts_dir / f"{k:06d}.records.jsonl") as rec_out,
        atomic_lines(parts_dir / f"{k:06d}.treated.jsonl") as fix_out,
    ):
        for item in items:
            if isinstance(item, Bad):
                stats["errors"].append({"where": item.where, "what": item.what})
                continue
            tagged = tag_record(item, use_bandit=opts.use_bandit, exhaustive=opts.exhaustive)
            stats["records"] += 1
            stats["classes"][tagged.cls] += 1
            stats["class_vulnerable"][f"{tagged.cls}|{tagged.vulnerable}"] += 1
            stats["vulnerable"] += tagged.vulnerable
            stats["parse_failed"] += not tagged.parse_ok
            if tagged.skipped:
                stats["detector_skipped"][tagged.skipped.split(" (")[0]] += 1
            stats["risk_bins"][str(min(9, int(tagged.risk * 10)))] += 1
            for cwe in tagged.cwes or ["-"]:
                stats["class_cwe"][f"{tagged.cls}|{cwe}"] += 1
            for pos in tagged.positions or ["-"]:
                stats["class_position"][f"{tagged.cls}|{pos}"] += 1
                for cwe in tagged.cwes or ["-"]:
                    stats["class_cwe_position"][f"{tagged.cls}|{cwe}|{pos}"] += 1
            for f in tagged.findings:
                stats["sources"][f["source"]] += 1
            shown = stats["examples"].setdefault(tagged.cls, [])
            if len(shown) < opts.examples_per_class and tagged.cls != "none":
                shown.append(_example(item, tagged))
            attr_out(_dump(attributes(item, tagged, source, opts.experiment)))
            detail = {"id": item.id or item.where, "where": item.where, **tagged.to_dict()}
            if opts.fix:
                done = treat(item, tagged, opts.fix, opts.fix_classes, opts.tag_token)
                stats["actions"][done.action] += 1
                if done.why:
                    stats["untreatable"][done.why] += 1
                detail["fix"] = {"action": done.action, **({"why": done.why} if done.why else {})}
                if done.row is not None:
                    fix_out(_dump({"row": done.row, **({"loss_spans": done.loss_spans} if done.loss_spans else {})}))
            rec_out(_dump(detail))
    stats["seconds"] = time.perf_counter() - t0
    stats["n_errors"] = len(stats["errors"])
    write_json(parts_dir / f"{k:06d}.stats.json", stats)
    return stats


def _slim(stats: dict, shown: Counter, per_class: int) -> dict:
    """A chunk's statistics as kept in memory until the merge: counters, the examples still
    needed, the first errors (all of them stay in the part file), so memory stays flat."""
    examples = {}
    for cls, exs in stats["examples"].items():
        examples[cls] = exs[: max(0, per_class - shown[cls])]
        shown[cls] += len(examples[cls])
    return {**stats, "examples": examples, "errors": stats["errors"][:ERRORS_SHOWN]}


# ---------------------------------------------------------------- the whole scan


def count_records(corpus: Path, layout: str) -> int | None:
    """How many records to expect (for the progress bar); None when that would cost a second read."""
    try:
        if layout == "jsonl" and not corpus.name.endswith(".gz"):
            with corpus.open("rb") as f:
                return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        if layout == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(corpus).metadata.num_rows
        if layout == "files":
            return sum(1 for _ in iter_files(corpus))
    except (OSError, ValueError, ImportError):  # the count is only for the bar; the read itself reports errors
        return None
    return None


def _pool(workers: int):
    """A worker pool forked from a server process that has the tagger imported: workers start in
    milliseconds, and no thread of this process (the progress bar's) is forked."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["warnframe.audit.run"])
    return ctx.Pool(workers)


def _chunks(records: Iterable, size: int, on_error: str) -> Iterator[list]:
    chunk: list = []
    for item in records:
        if isinstance(item, Bad) and on_error == "stop":
            raise UserError(
                f"unreadable record: {item.what}",
                item.where,
                "fix or remove it, or pass --on-error skip to count such records and go on",
            )
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _manifest(corpus: Path, opts: Options) -> dict:
    return {"corpus": str(corpus.resolve()), "fingerprint": fingerprint(corpus), "options": asdict(opts)}


def _prepare_parts(out: Path, manifest: dict) -> Path:
    parts = out / "parts"
    mpath = parts / "manifest.json"
    same = False
    if mpath.is_file():
        try:
            same = json.loads(json.dumps(read_json(mpath))) == json.loads(json.dumps(manifest))
        except (json.JSONDecodeError, OSError):
            same = False
    if not same and parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_json(mpath, manifest)
    return parts


def scan(corpus: Path, out: Path, opts: Options, workers: int = 1) -> tuple[list[dict], int]:
    """Tag every chunk not already done; return the statistics of every chunk, in order, and how
    many chunks an earlier, interrupted audit had already done."""
    opts.validate()
    layout = detect_layout(corpus)
    parts = _prepare_parts(out, _manifest(corpus, opts))
    total = count_records(corpus, layout)
    source = corpus.name
    results: list[dict] = []
    shown: Counter = Counter()
    done_before = 0
    with task(f"audit {corpus.name}", total or 0) as advance:
        pool = _pool(workers) if workers > 1 else None
        try:
            window: deque = deque()

            def collect(block: bool) -> None:
                while window and (block or pool is None or window[0][1].ready() or len(window) >= 2 * workers):
                    n, res = window.popleft()
                    results.append(_slim(res.get() if pool else res, shown, opts.examples_per_class))
                    advance(n)

            for k, chunk in enumerate(_chunks(read_corpus(corpus, opts.field), opts.chunk, opts.on_error)):
                marker = parts / f"{k:06d}.stats.json"
                if marker.is_file():
                    try:
                        results.append(_slim(read_json(marker), shown, opts.examples_per_class))
                        done_before += 1
                        advance(len(chunk))
                        continue
                    except (json.JSONDecodeError, OSError):
                        pass  # a damaged marker: tag the chunk again
                if pool is None:
                    window.append((len(chunk), process_chunk(k, chunk, str(parts), source, opts)))
                else:
                    window.append((len(chunk), pool.apply_async(process_chunk, (k, chunk, str(parts), source, opts))))
                collect(block=False)
            collect(block=True)
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
    results.sort(key=lambda s: s["chunk"])
    return results, done_before


# ---------------------------------------------------------------- merging


def merge_stats(chunks: list[dict], per_class: int = 3) -> dict:
    """One summary from the chunks' statistics (counters summed, examples in corpus order)."""
    total = {"records": 0, "vulnerable": 0, "parse_failed": 0, "chunks": len(chunks), "tag_seconds": 0.0}
    counters = {
        k: Counter()
        for k in (
            "classes",
            "class_cwe",
            "class_position",
            "class_cwe_position",
            "sources",
            "actions",
            "untreatable",
            "risk_bins",
            "class_vulnerable",
            "detector_skipped",
        )
    }
    examples: dict[str, list] = {}
    errors: list = []
    for s in chunks:
        for k in ("records", "vulnerable", "parse_failed"):
            total[k] += s[k]
        total["tag_seconds"] += s.get("seconds", 0.0)
        errors += s["errors"][: max(0, ERRORS_SHOWN - len(errors))]
        for k, c in counters.items():
            c.update(s.get(k, {}))
        for cls, exs in s["examples"].items():
            have = examples.setdefault(cls, [])
            have += exs[: max(0, per_class - len(have))]
    total["errors"] = sum(s.get("n_errors", len(s["errors"])) for s in chunks)
    total.update({k: dict(c) for k, c in counters.items()})
    total["examples"] = examples
    total["error_list"] = errors
    return total


def _part_rows(parts: Path, n: int, kind: str) -> Iterator[str]:
    for k in range(n):
        p = parts / f"{k:06d}.{kind}.jsonl"
        if p.is_file():
            with p.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield line.rstrip("\n")


def write_outputs(corpus: Path, out: Path, chunks: list[dict]) -> None:
    """The merged attributes, per-record details and errors."""
    parts = out / "parts"
    for kind, name in (("attributes", "attributes.jsonl"), ("records", "records.jsonl")):
        with atomic_lines(out / name) as w:
            for line in _part_rows(parts, len(chunks), kind):
                w(line)
    with atomic_lines(out / "errors.jsonl") as w:
        for s in chunks:  # every error, from the part files (memory holds only the first few)
            for e in read_json(parts / f"{s['chunk']:06d}.stats.json")["errors"]:
                w(_dump(e))


def write_treated(corpus: Path, out: Path, chunks: list[dict], opts: Options) -> Path:
    """The treated corpus in the input's own layout, under ``OUT/treated/``."""
    layout = detect_layout(corpus)
    rows = (json.loads(line) for line in _part_rows(out / "parts", len(chunks), "treated"))
    dest_root = out / "treated"
    dest_root.mkdir(parents=True, exist_ok=True)
    if layout == "jsonl":
        name = corpus.name.removesuffix(".gz")
        dest = dest_root / name
        with atomic_lines(dest) as w:
            for r in rows:
                w(_dump(r["row"]))
        return dest
    if layout == "parquet":
        return _write_parquet(corpus, dest_root / corpus.name, (r["row"] for r in rows))
    if layout == "hf":
        return _write_hf(out / "parts", len(chunks), dest_root / corpus.name)
    dest = dest_root / corpus.name
    with atomic_dir(dest) as tmp, (tmp / "loss_spans.jsonl").open("w", encoding="utf-8") as spans:
        for r in rows:
            p = tmp / r["row"]["path"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(r["row"]["text"], encoding="utf-8")
            if r.get("loss_spans"):
                spans.write(_dump({"path": r["row"]["path"], "loss_spans": r["loss_spans"]}) + "\n")
    return dest


def _write_parquet(corpus: Path, dest: Path, rows: Iterator[dict], batch: int = 1000) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.ParquetFile(corpus).schema_arrow
    span = pa.list_(pa.struct([("start", pa.int64()), ("end", pa.int64()), ("kind", pa.string())]))
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    os.close(fd)
    writer = None
    try:
        buf: list[dict] = []

        def flush():
            nonlocal writer, schema
            if not buf:
                return
            if "loss_spans" not in schema.names and any("loss_spans" in r for r in buf):
                schema = schema.append(pa.field("loss_spans", span))
            if writer is None:
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(pa.Table.from_pylist(buf, schema=schema))
            buf.clear()

        for r in rows:
            buf.append(r)
            if len(buf) >= batch:
                flush()
        flush()
        if writer is None:
            pq.write_table(schema.empty_table(), tmp)
        else:
            writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


def _treated_rows(parts: str, n: int) -> Iterator[dict]:
    for line in _part_rows(Path(parts), n, "treated"):
        yield json.loads(line)["row"]


def _write_hf(parts: Path, n: int, dest: Path) -> Path:
    """A saved dataset built from the treated rows as a stream (Arrow on disk, never all in memory)."""
    import datasets

    datasets.disable_progress_bars()
    with atomic_dir(dest) as tmp, tempfile.TemporaryDirectory(dir=dest.parent) as cache:
        # a fresh cache directory: datasets would otherwise reuse a generator's earlier output
        ds = datasets.Dataset.from_generator(_treated_rows, gen_kwargs={"parts": str(parts), "n": n}, cache_dir=cache)
        ds.save_to_disk(str(tmp))
    return dest
