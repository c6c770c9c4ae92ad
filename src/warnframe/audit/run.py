"""The scan: read the corpus in chunks, tag each chunk (in a worker pool), checkpoint, merge.

Every chunk of ``chunk`` records is tagged as a unit and written to ``OUT/parts/NNNNNN.*``; its
statistics (:class:`ChunkStats`: :class:`Counts` of records by class, CWE, position...) are written
last, atomically, as ``.stats.json``, and mark the chunk done. A killed audit, run again
with the same corpus and options, skips the chunks that are done (``manifest.json`` holds the
corpus fingerprint and the options; anything different starts afresh). Workers receive chunks
through a bounded window (at most two per worker in flight), so memory stays flat however large
the corpus; results are merged in chunk order (:class:`AuditStats`), so the outputs do not depend
on ``--workers`` or on resuming.

Outputs (all written atomically): ``attributes.jsonl`` (dolma span attributes), ``records.jsonl``
(per record: class, positions, findings, spans, risk, what the fix did), ``errors.jsonl``,
``treated/`` (the treated corpus in the input's layout, with ``--fix``), ``summary.json``,
``report.md``, ``report.html``, ``figures/``.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import shutil
import tempfile
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from warnframe.audit.attributes import EXPERIMENT, attributes
from warnframe.audit.fix import DEFAULT_TAG, FIXES, Treated, treat
from warnframe.audit.readers import Bad, Record, detect_layout, fingerprint, iter_files, legacy_fingerprint, read_corpus
from warnframe.audit.tagger import CODE_CLASSES, Tagged, tag_record
from warnframe.runtime.dirs import atomic_dir
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import atomic_lines, atomic_path, read_json, write_json
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


# ---------------------------------------------------------------- statistics

#: The layout :meth:`ChunkStats.to_json` writes to ``parts/NNNNNN.stats.json``. A file with no
#: ``format`` is the first layout (one flat dict, counters keyed ``"class|cwe|position"``), which
#: :meth:`ChunkStats.from_json` still reads, so an audit interrupted before the change resumes.
STATS_FORMAT = 2
#: The key part of a record with no CWE (no finding) or no framing position.
MISSING = "-"
#: Why the detector skipped a record too large for it (``Counts.detector_skipped``): such a record
#: is counted there and in ``records`` only, in no class (its framing was never judged on its code).
TOO_LARGE = "too large"


def _rows(counter: Counter) -> list[list]:
    """A tuple-keyed counter as JSON rows ``[*key, count]``, in the counter's order."""
    return [[*key, n] for key, n in counter.items()]


def _from_rows(rows: Iterable[list]) -> Counter:
    out: Counter = Counter()
    for *key, n in rows:
        out[tuple(key)] += n
    return out


def _from_joined(flat: dict[str, int]) -> Counter:
    """A first-layout counter (keys ``"a|b"``) as a tuple-keyed one, in the same order."""
    out: Counter = Counter()
    for key, n in flat.items():
        out[tuple(key.split("|"))] += n
    return out


def too_large(tagged: Tagged) -> bool:
    """Did the detector skip the record as too large (so it is counted in no class)?"""
    return tagged.skipped is not None and tagged.skipped.startswith(TOO_LARGE)


@dataclass
class Counts:
    """Records counted by what the tagger found and what ``--fix`` did; every field adds up
    across chunks (:meth:`add`). A record counts once per CWE and once per position it has
    (``MISSING`` when it has none)."""

    records: int = 0
    vulnerable: int = 0  # records with live vulnerable code
    parse_failed: int = 0  # records the detector could not parse
    classes: Counter[str] = field(default_factory=Counter)  # class -> records
    vulnerable_by_class: Counter[str] = field(default_factory=Counter)  # class -> records with live vulnerable code
    vulnerable_unknown_by_class: Counter[str] = field(default_factory=Counter)  # class -> framed code the detector cannot score
    class_language: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, language of the framed code)
    class_cwe: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, CWE) -> records
    class_position: Counter[tuple[str, str]] = field(default_factory=Counter)  # (class, position) -> records
    class_cwe_position: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (class, CWE, position)
    risk_bins: Counter[int] = field(default_factory=Counter)  # risk decile 0..9 (a risk of 1 in 9) -> records
    sources: Counter[str] = field(default_factory=Counter)  # detector source (ast, bandit, patterns...) -> findings
    detector_skipped: Counter[str] = field(default_factory=Counter)  # why the detector skipped a record -> records
    actions: Counter[str] = field(default_factory=Counter)  # what --fix did (masked, dropped, unchanged...) -> records
    untreatable: Counter[str] = field(default_factory=Counter)  # why --fix could not treat a record -> records

    #: The counters keyed by one string (JSON objects) and by tuples (JSON rows ``[*key, count]``).
    BY_NAME: ClassVar[tuple[str, ...]] = (
        "classes", "vulnerable_by_class", "vulnerable_unknown_by_class", "sources", "detector_skipped", "actions",
        "untreatable",
    )
    BY_TUPLE: ClassVar[tuple[str, ...]] = ("class_cwe", "class_position", "class_cwe_position", "class_language")

    def count(self, tagged: Tagged) -> None:
        """Count one tagged record."""
        cls, cwes, positions = tagged.cls, tagged.cwes or [MISSING], tagged.positions or [MISSING]
        self.records += 1
        if too_large(tagged):
            self.detector_skipped[TOO_LARGE] += 1
            return
        self.classes[cls] += 1
        if tagged.vulnerable:
            self.vulnerable_by_class[cls] += 1
            self.vulnerable += 1
        elif tagged.vulnerable is None:  # records.jsonl: "vulnerable": "unknown"
            self.vulnerable_unknown_by_class[cls] += 1
        if tagged.language:
            self.class_language[cls, tagged.language] += 1
        self.parse_failed += not tagged.parse_ok
        if tagged.skipped:
            self.detector_skipped[tagged.skipped.split(" (")[0]] += 1
        self.risk_bins[min(9, int(tagged.risk * 10))] += 1
        for cwe in cwes:
            self.class_cwe[cls, cwe] += 1
        for pos in positions:
            self.class_position[cls, pos] += 1
            for cwe in cwes:
                self.class_cwe_position[cls, cwe, pos] += 1
        for f in tagged.findings:
            self.sources[f["source"]] += 1

    def count_fix(self, done: Treated) -> None:
        """Count what ``--fix`` did to one record."""
        self.actions[done.action] += 1
        if done.why:
            self.untreatable[done.why] += 1

    def add(self, other: Counts) -> None:
        """Add ``other``'s counts to these (keys new here go last, in ``other``'s order)."""
        self.records += other.records
        self.vulnerable += other.vulnerable
        self.parse_failed += other.parse_failed
        for name in (*self.BY_NAME, *self.BY_TUPLE, "risk_bins"):
            getattr(self, name).update(getattr(other, name))

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "vulnerable": self.vulnerable,
            "parse_failed": self.parse_failed,
            **{name: dict(getattr(self, name)) for name in self.BY_NAME},
            **{name: _rows(getattr(self, name)) for name in self.BY_TUPLE},
            "risk_bins": {str(b): n for b, n in self.risk_bins.items()},
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Counts:
        return cls(
            records=d["records"],
            vulnerable=d["vulnerable"],
            parse_failed=d["parse_failed"],
            **{name: Counter(d.get(name, {})) for name in cls.BY_NAME},
            **{name: _from_rows(d.get(name, [])) for name in cls.BY_TUPLE},
            risk_bins=Counter({int(b): n for b, n in d.get("risk_bins", {}).items()}),
        )

    @classmethod
    def from_first_layout(cls, d: dict[str, Any]) -> Counts:
        """The counts of a first-layout ``stats.json`` (``"|"``-joined keys; some counters absent
        in files older still)."""
        vulnerable_by_class: Counter = Counter()
        for (klass, vulnerable), n in _from_joined(d.get("class_vulnerable", {})).items():
            if vulnerable == "True":
                vulnerable_by_class[klass] += n
        return cls(
            records=d["records"],
            vulnerable=d["vulnerable"],
            parse_failed=d["parse_failed"],
            **{name: Counter(d.get(name, {})) for name in cls.BY_NAME if name != "vulnerable_by_class"},
            vulnerable_by_class=vulnerable_by_class,
            **{name: _from_joined(d.get(name, {})) for name in cls.BY_TUPLE},
            risk_bins=Counter({int(b): n for b, n in d.get("risk_bins", {}).items()}),
        )


@dataclass
class ChunkStats:
    """One chunk's statistics. Written last, as ``parts/NNNNNN.stats.json``, they mark the chunk
    done; an audit run again reads them back instead of tagging the chunk again."""

    chunk: int
    counts: Counts = field(default_factory=Counts)
    errors: list[dict] = field(default_factory=list)  # unreadable records {"where", "what"} (see :meth:`slim`)
    n_errors: int = 0  # how many records were unreadable (``errors`` may keep only the first)
    examples: dict[str, list[dict]] = field(default_factory=dict)  # class -> example records, in corpus order
    seconds: float = 0.0  # time spent tagging the chunk
    resumed: bool = False  # read back from an earlier, interrupted audit (not written to the file)

    def slim(self, shown: Counter, per_class: int) -> ChunkStats:
        """These statistics as kept in memory until the merge: the counts, the examples still
        needed (``shown`` counts those kept from earlier chunks, and is updated) and the first
        errors (all of them stay in the part file), so memory stays flat."""
        examples = {}
        for cls, exs in self.examples.items():
            examples[cls] = exs[: max(0, per_class - shown[cls])]
            shown[cls] += len(examples[cls])
        return ChunkStats(self.chunk, self.counts, self.errors[:ERRORS_SHOWN], self.n_errors, examples, self.seconds,
                          self.resumed)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATS_FORMAT,
            "chunk": self.chunk,
            "seconds": self.seconds,
            "counts": self.counts.to_json(),
            "n_errors": self.n_errors,
            "errors": self.errors,
            "examples": self.examples,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ChunkStats:
        """Read either layout (see :data:`STATS_FORMAT`)."""
        version = d.get("format", 1)
        if version not in (1, STATS_FORMAT):
            raise ValueError(f"unknown stats format {version!r}")
        counts = Counts.from_json(d["counts"]) if version == STATS_FORMAT else Counts.from_first_layout(d)
        errors = d.get("errors", [])
        return cls(
            chunk=d["chunk"],
            counts=counts,
            errors=errors,
            n_errors=d.get("n_errors", len(errors)),
            examples=d.get("examples", {}),
            seconds=d.get("seconds", 0.0),
        )


@dataclass
class AuditStats:
    """The whole scan's statistics: the chunks' merged in chunk order (:meth:`add`)."""

    per_class: int = 3  # examples kept per class
    counts: Counts = field(default_factory=Counts)
    chunks: int = 0  # chunks merged
    resumed_chunks: int = 0  # of which an earlier, interrupted audit had done
    fresh_records: int = 0  # records tagged by this audit (not read back from an interrupted one)
    tag_seconds: float = 0.0  # time spent tagging, summed over the chunks
    n_errors: int = 0  # unreadable records
    first_errors: list[dict] = field(default_factory=list)  # the first ERRORS_SHOWN of them
    examples: dict[str, list[dict]] = field(default_factory=dict)  # class -> the first per_class example records

    def add(self, chunk: ChunkStats) -> None:
        """Merge the next chunk's statistics."""
        self.counts.add(chunk.counts)
        self.chunks += 1
        self.resumed_chunks += chunk.resumed
        self.fresh_records += 0 if chunk.resumed else chunk.counts.records
        self.tag_seconds += chunk.seconds
        self.n_errors += chunk.n_errors
        self.first_errors += chunk.errors[: max(0, ERRORS_SHOWN - len(self.first_errors))]
        for cls, exs in chunk.examples.items():
            have = self.examples.setdefault(cls, [])
            have += exs[: max(0, self.per_class - len(have))]


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
        "vulnerable": tagged.to_dict()["vulnerable"],
        "language": tagged.language,
    }


def process_chunk(k: int, items: list, parts: str, source: str, opts: Options) -> ChunkStats:
    """Tag one chunk, write its part files, return its statistics (also written, last, as the done marker)."""
    parts_dir = Path(parts)
    stats = ChunkStats(k)
    t0 = time.perf_counter()
    with (
        atomic_lines(parts_dir / f"{k:06d}.attributes.jsonl") as attr_out,
        atomic_lines(parts_dir / f"{k:06d}.records.jsonl") as rec_out,
        atomic_lines(parts_dir / f"{k:06d}.treated.jsonl") as fix_out,
    ):
        for item in items:
            if isinstance(item, Bad):
                stats.errors.append({"where": item.where, "what": item.what})
                continue
            tagged = tag_record(item, use_bandit=opts.use_bandit, exhaustive=opts.exhaustive)
            stats.counts.count(tagged)
            shown = stats.examples.setdefault(tagged.cls, [])
            if len(shown) < opts.examples_per_class and tagged.cls != "none" and not too_large(tagged):
                shown.append(_example(item, tagged))
            attr_out(_dump(attributes(item, tagged, source, opts.experiment)))
            detail = {"id": item.id or item.where, "where": item.where, **tagged.to_dict()}
            if opts.fix:
                done = treat(item, tagged, opts.fix, opts.fix_classes, opts.tag_token)
                stats.counts.count_fix(done)
                detail["fix"] = {"action": done.action, **({"why": done.why} if done.why else {})}
                if done.row is not None:
                    fix_out(_dump({"row": done.row, **({"loss_spans": done.loss_spans} if done.loss_spans else {})}))
            rec_out(_dump(detail))
    stats.seconds = time.perf_counter() - t0
    stats.n_errors = len(stats.errors)
    write_json(parts_dir / f"{k:06d}.stats.json", stats.to_json())
    return stats


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


def _same_manifest(old, manifest: dict, corpus: Path) -> bool:
    """Does the manifest ``old`` (read back) describe the same corpus and options as ``manifest``?
    One written before fingerprints read contents matches while the corpus files keep their sizes
    and modification times (:func:`legacy_fingerprint`)."""
    new = json.loads(json.dumps(manifest))
    if old == new:
        return True
    if not isinstance(old, dict) or {**old, "fingerprint": None} != {**new, "fingerprint": None}:
        return False
    fp = old.get("fingerprint")
    return isinstance(fp, list) and bool(fp) and all(len(f) == 3 and isinstance(f[2], int) for f in fp) \
        and fp == json.loads(json.dumps(legacy_fingerprint(corpus)))


def _prepare_parts(out: Path, manifest: dict, corpus: Path) -> Path:
    parts = out / "parts"
    mpath = parts / "manifest.json"
    same = False
    if mpath.is_file():
        try:
            same = _same_manifest(read_json(mpath), manifest, corpus)
        except (json.JSONDecodeError, OSError):
            same = False
    if not same and parts.exists():
        shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    write_json(mpath, manifest)
    return parts


def scan(corpus: Path, out: Path, opts: Options, workers: int = 1) -> tuple[list[ChunkStats], int]:
    """Tag every chunk not already done; return the statistics of every chunk, in order, and how
    many chunks an earlier, interrupted audit had already done."""
    opts.validate()
    layout = detect_layout(corpus)
    parts = _prepare_parts(out, _manifest(corpus, opts), corpus)
    total = count_records(corpus, layout)
    source = corpus.name
    results: list[ChunkStats] = []
    shown: Counter = Counter()
    done_before = 0
    with task(f"audit {corpus.name}", total or 0) as advance:
        pool = _pool(workers) if workers > 1 else None
        try:
            window: deque = deque()

            def collect(block: bool) -> None:
                while window and (block or pool is None or window[0][1].ready() or len(window) >= 2 * workers):
                    n, res = window.popleft()
                    results.append((res.get() if pool else res).slim(shown, opts.examples_per_class))
                    advance(n)

            for k, chunk in enumerate(_chunks(read_corpus(corpus, opts.field), opts.chunk, opts.on_error)):
                marker = parts / f"{k:06d}.stats.json"
                if marker.is_file():
                    try:
                        earlier = ChunkStats.from_json(read_json(marker))
                        earlier.resumed = True
                        results.append(earlier.slim(shown, opts.examples_per_class))
                        done_before += 1
                        advance(len(chunk))
                        continue
                    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # damaged JSON: a ValueError
                        pass  # a damaged marker, or one in a layout not read: tag the chunk again
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
    results.sort(key=lambda s: s.chunk)
    return results, done_before


# ---------------------------------------------------------------- merging


def merge_stats(chunks: list[ChunkStats], per_class: int = 3) -> AuditStats:
    """One summary from the chunks' statistics (counts summed, examples in corpus order)."""
    total = AuditStats(per_class=per_class)
    for s in chunks:
        total.add(s)
    return total


def _part_rows(parts: Path, n: int, kind: str) -> Iterator[str]:
    for k in range(n):
        p = parts / f"{k:06d}.{kind}.jsonl"
        if p.is_file():
            with p.open(encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield line.rstrip("\n")


def write_outputs(corpus: Path, out: Path, chunks: list[ChunkStats]) -> None:
    """The merged attributes, per-record details and errors."""
    parts = out / "parts"
    for kind, name in (("attributes", "attributes.jsonl"), ("records", "records.jsonl")):
        with atomic_lines(out / name) as w:
            for line in _part_rows(parts, len(chunks), kind):
                w(line)
    with atomic_lines(out / "errors.jsonl") as w:
        for s in chunks:  # every error, from the part files (memory holds only the first few)
            for e in ChunkStats.from_json(read_json(parts / f"{s.chunk:06d}.stats.json")).errors:
                w(_dump(e))


def write_treated(corpus: Path, out: Path, chunks: list[ChunkStats], opts: Options) -> Path:
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
    with atomic_path(dest) as tmp:
        writer = None
        buf: list[dict] = []

        def flush():
            nonlocal writer, schema
            if not buf:
                return
            if "loss_spans" not in schema.names and any("loss_spans" in r for r in buf):
                schema = schema.append(pa.field("loss_spans", span))
            if writer is None:
                writer = pq.ParquetWriter(str(tmp), schema)
            writer.write_table(pa.Table.from_pylist(buf, schema=schema))
            buf.clear()

        for r in rows:
            buf.append(r)
            if len(buf) >= batch:
                flush()
        flush()
        if writer is None:
            pq.write_table(schema.empty_table(), str(tmp))
        else:
            writer.close()
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
