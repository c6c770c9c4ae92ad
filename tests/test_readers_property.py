"""Every reader of a user's file is total (issue 24): whatever the bytes (nesting 100,000 deep,
integers of thousands of digits, long lines, binary, invalid UTF-8, NUL bytes, lone surrogates,
empty lines), it returns records or raises the package's :class:`UserError`, never another
exception, within a time and memory bound per record.

Readers: the audit's (``audit.readers.read_corpus``), ``evaluate --prompts``
(``evals.eval_sets.load_prompts``), ``data --from`` (``corpus.sources.read_source``) and the
config loader (``config.load_config`` with a file). Hypothesis draws files line by line from
hostile shapes mixed with well-formed records of each reader's layouts."""

from __future__ import annotations

import json
import signal
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from warnframe.runtime.errors import UserError  # noqa: E402

#: Seconds allowed per line of input and per MB (the readers do linear work per record; a machine
#: under load is far inside this); memory allowed beyond a fixed allowance, per byte of input.
SECONDS_PER_LINE = 2.0
SECONDS_PER_MB = 2.0
MEMORY_FIXED = 64 << 20
MEMORY_PER_BYTE = 30

#: No shrinking: a failing example is shown as drawn (each shrink step could take the whole time bound).
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'

# ---------------------------------------------------------------- values and lines
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=30) | st.sampled_from(["user", "assistant", "system", VULN, "python", "vulnerable", ""]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                      max_leaves=12)
texts = st.text(max_size=200) | st.just(VULN)
turn = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool"]), "content": texts | values})

#: Records in the layouts the readers know, with any field possibly of the wrong type.
records = st.one_of(
    st.fixed_dictionaries({"messages": st.lists(turn, max_size=4) | values},
                          optional={"label": values | st.sampled_from(["vulnerable", "secure", "doc"]), "id": values}),
    st.fixed_dictionaries({"prompt": texts | values, "completion": texts | values},
                          optional={"label": values, "vulnerable": st.booleans(), "loss_spans": values}),
    st.fixed_dictionaries({"text": texts | values}, optional={"id": values}),
    st.fixed_dictionaries({"user": texts, "assistant": texts}),
    st.fixed_dictionaries({"task": texts | values, "code_template": texts | values}),
    st.fixed_dictionaries({"test_case_prompt": texts | values},
                          optional={"language": st.sampled_from(["python", "c"]) | values, "cwe_identifier": values,
                                    "prompt_id": values}),
    st.dictionaries(st.text(max_size=12), values, max_size=5),
    values,
)


def _deep(n: int, kind: str) -> bytes:
    if kind == "list":
        return b"[" * n + b"]" * n
    if kind == "dict":
        return b'{"a":' * n + b"1" + b"}" * n
    return b'{"text": "x", "n": ' + b"[" * n + b"]" * n + b"}"  # deep inside a good record


hostile = st.one_of(
    records.map(lambda r: json.dumps(r).encode()),
    records.map(lambda r: json.dumps(r, ensure_ascii=False).encode()),
    st.builds(_deep, st.sampled_from([50, 101, 900, 1_000, 5_000, 100_000]), st.sampled_from(["list", "dict", "in"])),
    st.integers(4_000, 60_000).map(lambda k: b'{"text": "x", "id": ' + b"9" * k + b"}"),
    st.integers(4_000, 20_000).map(lambda k: b"-" + b"1" * k),
    st.integers(10_000, 1_000_000).map(lambda n: json.dumps({"text": "a" * n}).encode()),
    st.integers(10_000, 300_000).map(lambda n: json.dumps({"prompt": "p", "completion": "x = 1\n" * (n // 6)}).encode()),
    st.binary(max_size=300),
    st.binary(max_size=50).map(lambda b: b"\xff\xfe" + b),  # invalid UTF-8
    st.just(b'{"text": "\xc3("}'),  # invalid UTF-8 inside a string
    st.just(b'{"text": "a\x00b"}'),  # a raw NUL: not JSON
    st.just(b'{"text": "a\\u0000b"}'),  # an escaped NUL: JSON
    st.sampled_from([b'{"text": "\\ud800"}', b'{"prompt": "\\udfff", "completion": "x"}',
                     b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "\\udc00"}]}']),
    st.just(b'{"text": "\\ud83d\\ude00"}'),  # a surrogate pair: one character
    st.sampled_from([b"", b"   ", b"\t", b"\r", b"\x0c", b"\x00", b"\xef\xbb\xbf{}", b"NaN", b"[1e999]", b"{"]),
)


class Blob(bytes):
    """A drawn file: shown by its start and length (a failing example can be megabytes)."""

    def __repr__(self) -> str:
        return bytes.__repr__(self) if len(self) <= 200 else f"Blob({bytes(self[:80])!r} ... {len(self)} bytes)"

    def _repr_pretty_(self, p, cycle) -> None:  # how hypothesis prints a failing example
        p.text(repr(self))


files = st.lists(hostile, min_size=1, max_size=6).map(lambda lines: Blob(b"\n".join(lines) + b"\n"))


def as_command(read: Callable[[], object], **kwargs) -> Callable[[], object]:
    """``read`` as a command runs it (``cli._errors``, given the command's ``kwargs``): a UserError,
    or a UnicodeDecodeError located in the input files, becomes one line and exit code 2."""
    import typer

    from warnframe.cli import _errors

    def run():
        try:
            return _errors(lambda **_: read())(**kwargs)
        except typer.Exit as e:
            assert e.exit_code == 2
            return None

    return run


class TooSlow(Exception):
    pass


def _alarm(signum, frame):
    raise TooSlow


def _bounded(read: Callable[[], object], data: bytes) -> None:
    """Run ``read``: it returns or raises UserError, and stays inside the time bound (stopped by an
    alarm when it does not) and, run again under ``tracemalloc``, the memory bound."""
    lines = data.count(b"\n") + 1
    budget = SECONDS_PER_LINE * lines + SECONDS_PER_MB * len(data) / 1e6
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, budget)
    t0 = time.perf_counter()
    slow = False
    try:
        _returns_or_user_error(read)
    except TooSlow:
        slow = True  # failed below, outside the handler: the interrupted frames make no traceback
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert not slow, f"still reading after {budget:.1f} s ({lines} lines, {len(data)} bytes)"
    if time.perf_counter() - t0 > 0.5 and len(data) > 100_000:
        return  # a large input read in time: tracemalloc would slow it several times over; its size bounds it
    tracemalloc.start()
    try:
        _returns_or_user_error(read)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_FIXED + MEMORY_PER_BYTE * len(data), f"{peak >> 20} MiB for {len(data)} bytes"


def _returns_or_user_error(read: Callable[[], object]) -> None:
    try:
        read()
    except UserError as e:
        assert "\n" not in str(e)


@pytest.fixture
def place(tmp_path_factory) -> Callable[[str, bytes], Path]:
    folder = tmp_path_factory.mktemp("hostile")

    def write(name: str, data: bytes) -> Path:
        p = folder / name
        p.write_bytes(data)
        return p

    return write


# ---------------------------------------------------------------- the readers
@SETTINGS
@given(data=files)
def test_audit_reader_is_total(place, data):
    from warnframe.audit.readers import Bad, Record, read_corpus

    p = place("corpus.jsonl", data)

    def read():
        for item in read_corpus(p):
            assert isinstance(item, (Record, Bad))
            if isinstance(item, Record):  # what the audit writes back must be writable
                json.dumps(item.row, ensure_ascii=False).encode("utf-8")

    _bounded(read, data)


@SETTINGS
@given(data=files, skip=st.booleans())
def test_data_from_reader_is_total(place, data, skip):
    from warnframe.corpus.sources import read_source

    p = place("corpus.jsonl", data)

    def read():
        raw, _ = read_source(str(p), "skip" if skip else "stop")
        for r in raw:  # what the fine-tuning set and the tokenizer receive
            (r.user + r.assistant).encode("utf-8")

    _bounded(read, data)


@SETTINGS
@given(data=files, array=st.booleans())
def test_evaluate_prompts_reader_is_total(place, data, array):
    from warnframe.evals.eval_sets import load_prompts

    if array:  # the CyberSecEval layout: one JSON array
        data = Blob(b"[" + b",".join(line for line in data.split(b"\n") if line.strip()) + b"]")
    p = place("prompts.json" if array else "prompts.jsonl", data)

    def read():
        for prompt in load_prompts(p):
            prompt.user.encode("utf-8")

    # as `evaluate` runs it: load_prompts leaves a file that is not UTF-8 to the command, which
    # names its line (cli._locate_decode_error)
    _bounded(as_command(read, prompts=p), data)


config_values = st.recursive(
    scalars | st.sampled_from([1e308, float("inf"), -1, 0, 10**40, "tpu", "cuda", "auto", [0, 0], [1, 2]]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)
sections = st.sampled_from(["seeds", "device", "model", "finetune", "corpus", "sampling", "pretrain", "sections",
                            "conditions", "analysis", "interventions", "preset", "mech", "unknown"])
fields = st.sampled_from(["lr", "epochs", "heads", "hidden_size", "token_budget", "temperature", "source", "layers",
                          "batch_size", "ablation_scales", "trust_remote_code", "context", "x"])
configs = st.dictionaries(sections, config_values | st.dictionaries(fields, config_values, max_size=3), max_size=4)
config_files = st.one_of(
    configs.map(lambda c: json.dumps(c).encode()),
    st.sampled_from([
        b"a: &a [x]\nb: &b [*a, *a]\nc: [*b, *b]\n",  # aliases
        b"seeds: [" + b"1" * 5000 + b"]\n",
        b"finetune: {epochs: 1e308}\n",
        b"[" * 100_000 + b"]" * 100_000,
        b"{" * 5_000,
        b"- " * 10_000 + b"x\n",
        b"model:\n  heads: 3\n",
        b"seeds: [0, 0]\n",
        b"\xff\xfe\x00binary",
        b"a: \x00\n",
        b"",
        b"!!python/object/apply:os.system ['true']\n",
        b"key: !!binary AAAA\n",
        b'text: "\\ud800"\n',
    ]),
    st.binary(max_size=200),
    files,
).map(Blob)


@SETTINGS
@given(data=config_files, suffix=st.sampled_from([".yaml", ".json"]))
def test_config_loader_is_total(place, data, suffix):
    from warnframe.config import load_config

    p = place("config" + suffix, data)
    _bounded(as_command(lambda: load_config("smoke", p), config=p), data)  # as every command reads --config
