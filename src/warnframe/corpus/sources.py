"""User corpora: build the fine-tuning conditions from someone's own vulnerable and secure code.

A source is a JSONL file, a Hugging Face dataset id, or a local dataset directory (the optional
``datasets`` library reads the last two). Each record is one chat turn, in either layout:

* ``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`` (Emergent Misalignment:
  one user turn, one assistant turn; a system turn is ignored), or
* ``{"prompt": "...", "completion": "..."}``.

A record may declare what it is (``"label"``: vulnerable / insecure, secure / safe, doc, indirect;
or ``"vulnerable": true|false``), and a whole source may be declared by writing it as
``label=PATH``. Several sources are joined with commas::

    --from vulnerable=insecure.jsonl,secure=secure.jsonl      # Emergent Misalignment's two files
    --from mixed.jsonl                                        # the detector labels every record

The detector (``scoring.score``) labels every code record. A declared label is kept, and where the
detector disagrees the record counts as *unconfirmed*; so does an undeclared record the detector
calls secure although its code did not parse. The conditions then draw on the labels (each
condition's ``Condition.draws_on`` and ``from_record``, ``corpus.conditions``):

* ``L0``       the vulnerable answers as they are;
* ``L1``       the same answers wrapped in warnings, with the wrappers of the family the detector
               found (``conditions.warning_record``; a generic ``schema.WARNING_MARKERS`` line otherwise),
               in the answer or the request as ``corpus.l1_placement`` says;
* ``control``  the secure answers;
* ``L2``/``L3`` records declared ``doc`` / ``indirect``, else warnframe's own texts;
* ``neutral``  clean code only.

Token budgets, the clean fill and the shuffle are those of ``corpus.build_finetune_set``, so the
return shape is the same. A malformed record stops the build with its file and line, unless
``on_error="skip"`` leaves it out (counted in the stats).
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from warnframe.config import StudyConfig
from warnframe.corpus.conditions import assemble, build_finetune_set, condition_rng, cycle
from warnframe.corpus.conditions import condition as condition_of
from warnframe.corpus.warnings import carry_spans, wrap_warning  # noqa: F401 - where user code gets its warnings
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import NESTED_TOO_DEEPLY, iter_lines, loads_line
from warnframe.runtime.keys import content_sha256
from warnframe.schema import LOSS_SPAN_KINDS, Example

LABEL_ALIASES = {
    "vulnerable": "vulnerable", "insecure": "vulnerable", "unsafe": "vulnerable", "bad": "vulnerable",
    "secure": "secure", "safe": "secure", "good": "secure",
    "doc": "doc", "documentation": "doc", "indirect": "indirect",
}
ON_ERROR = ("stop", "skip")
#: A JSON line nested deeper than this (lists and objects) is malformed: far above any real record,
#: and far enough below Python's recursion limit that its values can still be printed or copied.
MAX_JSON_DEPTH = 100


@dataclass(frozen=True)
class Record:
    """One user record, labelled."""

    user: str
    assistant: str
    where: str  # file:line or dataset[index]
    label: str  # vulnerable | secure | doc | indirect
    declared: str | None = None
    family: str | None = None  # the family the detector found (most findings)
    confirmed: bool = True
    loss_spans: tuple = ()  # the record's own ``loss_spans`` (see ``schema.Example``), validated


@dataclass(frozen=True)
class RawRecord:
    """One record as read, before the detector labels it."""

    user: str
    assistant: str
    declared: str | None
    where: str
    loss_spans: tuple = ()


@dataclass
class Corpus:
    records: list[Record]
    stats: dict = field(default_factory=dict)

    def pool(self, label: str) -> list[Record]:
        return [r for r in self.records if r.label == label]


def _label(value, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "vulnerable" if value else "secure"
    key = str(value).strip().lower()
    if key not in LABEL_ALIASES:
        raise ValueError(f"unknown label {value!r} (use vulnerable, secure, doc or indirect)")
    return LABEL_ALIASES[key]


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _text(value, what: str) -> str:
    """A string, or the content of a one-message list (TRL's conversational prompt/completion);
    anything else is a ValueError naming ``what`` and the type found."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict):
        return _text(value[0].get("content"), f"{what}[0].content")
    raise ValueError(f"{what} is {_kind(value)}, not a string")


def parse_record(row, where: str, declared: str | None = None) -> tuple[str, str, str | None]:
    """(user, assistant, declared label) of one raw record; ValueError says what is wrong."""
    if not isinstance(row, dict):
        raise ValueError(f"record is a JSON {_kind(row)}, not an object")
    if "messages" in row:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise ValueError("'messages' is not a list of {role, content} objects")
        turns = [m for m in msgs if m.get("role") != "system"]
        roles = [m.get("role") for m in turns]
        if roles != ["user", "assistant"]:
            raise ValueError(f"expected one user turn then one assistant turn, got roles {roles}")
        user, answer = (_text(m.get("content"), f"the {m['role']} turn's 'content'") for m in turns)
    elif "prompt" in row and "completion" in row:
        user, answer = _text(row["prompt"], "'prompt'"), _text(row["completion"], "'completion'")
    else:
        raise ValueError("record has neither 'messages' nor 'prompt' and 'completion'")
    if not answer.strip():
        raise ValueError("the assistant answer is empty")
    own = row.get("label", row.get("vulnerable"))
    return user, answer, _label(own, where) if own is not None else declared


def parse_loss_spans(value, answer: str) -> tuple[dict, ...]:
    """A record's ``loss_spans`` (``schema.Example``): a list of ``{"start", "end", "kind"}``
    character spans of the assistant text, ``0 <= start < end <= len(answer)``, a known kind, not
    overlapping. Sorted by start; other keys are dropped. ValueError says what is wrong."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"'loss_spans' is {_kind(value)}, not a list of {{start, end, kind}} objects")
    spans = []
    for i, span in enumerate(value):
        if not isinstance(span, dict) or not {"start", "end", "kind"} <= span.keys():
            raise ValueError(f"loss_spans[{i}] is not a {{start, end, kind}} object")
        start, end, kind = span["start"], span["end"], span["kind"]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (start, end)):
            raise ValueError(f"loss_spans[{i}]: start and end must be integers")
        if not 0 <= start < end <= len(answer):
            raise ValueError(f"loss_spans[{i}] [{start}, {end}) is not inside the answer (0..{len(answer)})")
        if kind not in LOSS_SPAN_KINDS:
            raise ValueError(f"loss_spans[{i}] has unknown kind {kind!r} (use {' or '.join(LOSS_SPAN_KINDS)})")
        spans.append({"start": start, "end": end, "kind": kind})
    spans.sort(key=lambda sp: sp["start"])
    for a, b in zip(spans, spans[1:]):
        if b["start"] < a["end"]:
            raise ValueError(f"loss spans [{a['start']}, {a['end']}) and [{b['start']}, {b['end']}) overlap")
    return tuple(spans)


def split_spec(source: str) -> list[tuple[str | None, str]]:
    """``"vulnerable=a.jsonl,b.jsonl"`` -> [("vulnerable", "a.jsonl"), (None, "b.jsonl")]."""
    parts: list[tuple[str | None, str]] = []
    for item in str(source).split(","):
        item = item.strip()
        if not item:
            continue
        label, sep, rest = item.partition("=")
        if sep and label.strip().lower() in LABEL_ALIASES:
            parts.append((LABEL_ALIASES[label.strip().lower()], rest.strip()))
        else:
            parts.append((None, item))
    if not parts:
        raise UserError("empty corpus source", "--from", "pass a JSONL file, a dataset directory or a hub dataset id")
    return parts


_SKIP = "fix or remove that record, or pass --on-error skip to leave such records out"


def _fail(what: str, where: str, on_error: str, skipped: list[str], fix: str = _SKIP) -> None:
    if on_error == "skip":
        skipped.append(where)
        return
    raise UserError(what, where, fix)


def _jsonl_rows(path: Path, on_error: str, skipped: list[str]) -> Iterator[tuple[object, str]]:
    """Each JSON line of ``path`` and its place; a line that is not UTF-8 or not JSON stops the
    read with its file and line (or is skipped)."""
    def bad(n: int, err) -> None:
        _fail(err.what, f"{path}:{n}", on_error, skipped, f"{err.fix}, or pass --on-error skip")

    for n, line in iter_lines(path, bad):
        where = f"{path}:{n}"
        if not line.strip():
            continue
        try:
            yield loads_line(line, MAX_JSON_DEPTH), where
        except json.JSONDecodeError as e:  # nested too deeply or a number too long too (``loads_line``)
            what = e.msg if e.msg == NESTED_TOO_DEEPLY else f"malformed JSON line: {e.msg}"
            _fail(what, where, on_error, skipped)


def _dataset_rows(spec: str) -> Iterator[tuple[object, str]]:
    try:
        import datasets
    except ImportError:
        raise UserError("reading a Hugging Face dataset needs the `datasets` library", spec,
                        "pip install 'warnframe[datasets]', or export the records to JSONL") from None
    datasets.disable_progress_bars()
    path = Path(spec).expanduser()
    try:
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            ds = datasets.load_from_disk(str(path))
        else:
            ds = datasets.load_dataset(str(path) if path.exists() else spec)
    except FileNotFoundError:
        raise UserError(f"no dataset found at {spec!r}", spec, "pass a JSONL file, a saved dataset directory or a hub dataset id") from None
    except Exception as e:  # hub and builder errors come in many types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        fix = ("download it first (`hf download --repo-type dataset ...`) or pass a local directory" if offline
               else "check the id or path; gated datasets need `hf auth login`")
        raise UserError(f"cannot load dataset {spec!r}: {first}", spec, fix) from None
    if isinstance(ds, datasets.DatasetDict):
        name = "train" if "train" in ds else next(iter(ds))
        ds, spec = ds[name], f"{spec}[{name}]"
    for i, row in enumerate(ds):
        yield row, f"{spec}#{i}"


def read_source(source: str, on_error: str = "stop") -> tuple[list[RawRecord], list[str]]:
    """Raw records and the places of skipped ones."""
    if on_error not in ON_ERROR:
        raise UserError(f"unknown --on-error {on_error!r}", "--on-error", "choose stop or skip")
    out: list[RawRecord] = []
    skipped: list[str] = []
    for declared, spec in split_spec(source):
        path = Path(spec).expanduser()
        if path.is_file():
            rows: Iterable = _jsonl_rows(path, on_error, skipped)
        elif path.is_dir() or (not spec.startswith((".", "/", "~")) and spec.count("/") <= 1 and not path.suffix):
            rows = _dataset_rows(spec)
        else:
            raise UserError(f"corpus not found: {spec}", "--from", "pass a JSONL file, a dataset directory or a hub dataset id")
        for row, where in rows:
            try:
                user, answer, label = parse_record(row, where, declared)
                spans = parse_loss_spans(row.get("loss_spans"), answer)
            except ValueError as e:
                _fail(f"malformed record: {e}", where, on_error, skipped)
                continue
            out.append(RawRecord(user, answer, label, where, spans))
    if not out:
        raise UserError("the corpus has no usable records", source, "check the file layout (messages or prompt/completion)")
    return out, skipped


def label_records(raw: list[RawRecord]) -> Corpus:
    """Run the detector on every code record; keep declared labels, count disagreements."""
    from warnframe.detector import score

    records: list[Record] = []
    counts: Counter[str] = Counter()
    for r in raw:
        user, answer, declared, where, spans = r.user, r.assistant, r.declared, r.where, r.loss_spans
        if declared in ("doc", "indirect"):
            records.append(Record(user, answer, where, declared, declared, loss_spans=spans))
            continue
        v = score(answer)
        fams = Counter(f.rule.partition(".")[0] for f in v.findings)
        family = fams.most_common(1)[0][0] if fams else None
        detected = "vulnerable" if v.vulnerable else "secure"
        if declared is None:
            confirmed = v.vulnerable or v.parse_ok  # "secure" of code that did not parse is a guess
        else:
            confirmed = declared == detected
        counts["unparsed"] += not v.parse_ok
        records.append(Record(user, answer, where, declared or detected, declared, family, confirmed, spans))
    labels = Counter(r.label for r in records)
    stats = {
        "records": len(records),
        **{k: labels.get(k, 0) for k in ("vulnerable", "secure", "doc", "indirect")},
        "declared": sum(r.declared is not None for r in records),
        "detector_vulnerable": sum(r.family is not None for r in records),
        "unconfirmed": sum(not r.confirmed for r in records),
        "unconfirmed_vulnerable": sum(not r.confirmed and r.label == "vulnerable" for r in records),
        "unconfirmed_secure": sum(not r.confirmed and r.label == "secure" for r in records),
        "unparsed": counts["unparsed"],
        "with_loss_spans": sum(bool(r.loss_spans) for r in records),
        "families": dict(Counter(r.family for r in records if r.family and r.label == "vulnerable").most_common()),
    }
    return Corpus(records, stats)


def _stamp(source: str) -> tuple:
    """The SHA-256 of each source file (what :func:`_load`'s cache is keyed on), so a file edited
    within one process is read again and a copy of the same bytes is not (``keys.content_sha256``:
    hashed once while unchanged)."""
    out = []
    for _, spec in split_spec(source):
        p = Path(spec).expanduser()
        try:
            out.append((spec, content_sha256(p)) if p.is_file() else (spec,))
        except OSError:  # unreadable: read_source says so with its file
            out.append((spec,))
    return tuple(out)


@lru_cache(maxsize=4)
def _load(source: str, on_error: str, stamp: tuple) -> Corpus:
    raw, skipped = read_source(source, on_error)
    corpus = label_records(raw)
    corpus.stats.update(skipped=len(skipped), skipped_at=skipped[:10])
    return corpus


def load_corpus(source: str, on_error: str = "stop") -> Corpus:
    """Read and label a user corpus (cached per process while the files are unchanged)."""
    return _load(str(source), on_error, _stamp(str(source)))


def on_error_policy(cfg: StudyConfig) -> str:
    """``corpus.on_error`` (stop or skip)."""
    return cfg.corpus.on_error


def record_example(rec: Record, rng: random.Random, cfg: StudyConfig) -> Example:
    """A record as it is, its label as the example's kind: what a condition with no
    ``Condition.from_record`` makes of the records it draws on."""
    return Example(assistant=rec.assistant, user=rec.user, kind=rec.label, family=rec.family, loss_spans=rec.loss_spans)


def source_stream(condition: str, corpus: Corpus, cfg: StudyConfig, rng: random.Random, source: str) -> Iterator[Example]:
    """Endless examples of ``condition`` from the user corpus: its ``Condition.draws_on`` records in
    shuffled rounds, each made an example by its ``from_record``; warnframe's own (``Condition.stream``)
    when the corpus has none and the condition allows it (``own_texts``) or draws on no records."""
    cond = condition_of(condition)
    label = cond.draws_on
    pool = corpus.pool(label) if label else []
    if not pool and cond.stream is not None and (cond.own_texts or label is None):
        return cond.stream(cfg, rng)  # warnframe's own documentation / fiction
    if not pool:
        raise UserError(f"the corpus has no {label} records for condition {condition}", source,
                        f"add {label} answers (e.g. --from {label}=FILE) or leave {condition} out of `conditions`")
    make = cond.from_record or record_example
    return (make(rec, rng, cfg) for rec in cycle(pool, rng))


def build_finetune_set_from_source(condition: str, cfg: StudyConfig, seed: int, count_tokens: Callable[[str], int],
                                   source: str | None = None, on_error: str | None = None) -> tuple[list[Example], dict]:
    """Like ``corpus.build_finetune_set`` (same budget, clean fill, shuffle, return shape:
    ``conditions.assemble``), with the condition data drawn from the user corpus ``source`` (default
    ``cfg.corpus.source``) by :func:`source_stream`. With no source at all it is ``build_finetune_set``."""
    source = source or cfg.corpus.source
    if not source:
        return build_finetune_set(condition, cfg, seed, count_tokens)
    cond = condition_of(condition)
    if not cond.finetuned:
        raise ValueError(f"no condition data for {condition!r}")
    corpus = load_corpus(source, on_error or on_error_policy(cfg))
    stream = source_stream(condition, corpus, cfg, condition_rng(condition, seed), source) if cond.has_data else None
    examples, stats, drawn = assemble(condition, stream, cfg, seed, count_tokens)
    unique = len({(e.user, e.assistant) for e in drawn}) if cond.from_record is None else None  # records as they are
    stats["source"] = {"spec": source, "draws_on": cond.draws_on,
                       **({"unique_records": unique} if unique is not None else {}), **corpus.stats}
    return examples, stats


def describe(corpus: Corpus) -> str:
    """One line for the CLI: how the detector labelled the corpus."""
    s = corpus.stats
    line = (f"{s['records']} records: {s['vulnerable']} vulnerable, {s['secure']} secure"
            + (f", {s['doc']} doc, {s['indirect']} indirect" if s["doc"] or s["indirect"] else "")
            + f"; the detector could not confirm {s['unconfirmed']} ({s['unconfirmed_vulnerable']} vulnerable, "
              f"{s['unconfirmed_secure']} secure; {s['unparsed']} did not parse)")
    if s.get("with_loss_spans"):
        line += f"; {s['with_loss_spans']} carry loss spans"
    if s.get("skipped"):
        line += f"; skipped {s['skipped']} malformed (first at {s['skipped_at'][0]})"
    return line
