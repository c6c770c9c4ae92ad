"""The detector and the leakage check are total and bounded (issue 14): each input shape that once
crashed or hung scores in bounded time, a record over the size cap is reported, never dropped,
and bad JSONL gives one clear line."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest

from warnframe.detector import find_leaks, score, score_jsonl
from warnframe.detector.scorer import MAX_RECORD_BYTES
from warnframe.runtime.errors import UserError

#: Seconds one record of up to ~100 KB may take here (a shared 2-core machine; today ~0.1 s).
BOUND = 3.0


def timed(text: str, **kw):
    start = time.perf_counter()
    result = score(text, **kw)
    return result, time.perf_counter() - start


@pytest.mark.timeout(60)
def test_long_string_concatenation_scores_instead_of_recursion_error():
    text = "x = " + " + ".join(['"a"'] * 3000) + "\n"  # RecursionError from _is_prose before
    for use_bandit in (False, True):
        v, seconds = timed(text, use_bandit=use_bandit)
        assert seconds < BOUND and v.skipped is None and not v.vulnerable


@pytest.mark.timeout(60)
def test_deep_unary_operators_score_instead_of_memory_error():
    v, seconds = timed("x = " + "-" * 100_000 + "1\n")  # MemoryError before
    assert seconds < BOUND and not v.vulnerable


@pytest.mark.timeout(60)
def test_many_open_calls_are_linear():
    _, seconds = timed("f(" * 100_000, use_bandit=False)  # 210 s before
    assert seconds < BOUND
    v, seconds = timed("eval(" * 20_000 + "x", use_bandit=False)  # every call a sink
    assert seconds < BOUND and v.vulnerable


@pytest.mark.timeout(60)
def test_decorator_lines_are_linear():
    _, small = timed("@d\n" * 4000, use_bandit=False)  # 47 s before, quadratic
    _, large = timed("@d\n" * 16_000, use_bandit=False)
    assert small < BOUND and large < 4 * BOUND


@pytest.mark.timeout(60)
def test_backtracking_shapes_are_linear():
    shapes = [
        "a" * 100_000,  # one long word: _SECRET_ASSIGN / _SECRET_COMPARE backtracked on it
        "x = '" + "a" * 100_000,  # unterminated literal
        "'\\'" * 30_000,  # escaped quotes: every quote started a literal that ran to the line's end
        '"""a' * 25_000,  # triple quotes, odd count
        "a." * 50_000,  # a dotted chain without a call
        'password = "hunter2"\ncur.execute("SELECT " + x\n' * 2000,  # many pattern hits, lines counted
        "x = 1\n" * 20_000 + "os.system(cmd\n",  # many assignments before a sink
        "# INSECURE BAD PRACTICE DO NOT USE\n" * 3000 + '"""' + "DO NOT USE\n" * 3000,  # leakage
    ]
    for text in shapes:
        _, seconds = timed(text, use_bandit=False)
        assert seconds < BOUND, text[:40]


@pytest.mark.timeout(60)
def test_huge_line_is_reported_as_too_large_in_bounded_memory():
    text = "x = '" + "a" * 20_000_000 + "'\n"  # 9.7 GB of memory before
    tracemalloc.start()
    try:
        v, seconds = timed(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert seconds < BOUND and peak < 2 * len(text)
    assert not v.vulnerable and not v.parse_ok
    assert v.skipped == f"too large ({len(text)} bytes > {MAX_RECORD_BYTES})"


def test_record_at_the_cap_is_scored_and_one_byte_over_is_skipped():
    code = "import os\nos.system(cmd)\n"
    filler = "#" * (MAX_RECORD_BYTES - len(code) - 1) + "\n"
    assert score(filler + code, use_bandit=False).vulnerable
    over = score(filler + code + "\n", use_bandit=False)
    assert over.skipped.startswith("too large") and not over.vulnerable
    # Multi-byte characters count as bytes, not characters.
    assert score("é" * (MAX_RECORD_BYTES // 2 + 1), use_bandit=False).skipped.startswith("too large")


def test_null_bytes_and_lone_surrogates_are_scored():
    for text in ("import os\x00\nos.system(cmd)\n", "x = '\ud800'\nos.system(cmd)\n"):
        v = score(text)
        assert any(f.rule == "command_injection.shell_command" for f in v.findings), v


def test_find_leaks_is_bounded_on_long_warning_lines():
    start = time.perf_counter()
    leaks = find_leaks("# " + "INSECUER " * 50_000 + "\n" + '"""' * 10_001)
    assert time.perf_counter() - start < BOUND and leaks["exact"] == []


def test_score_jsonl_counts_and_flags_a_too_large_record(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    big = "x = 1\n" * (MAX_RECORD_BYTES // 6 + 1)
    src.write_text(json.dumps({"text": big}) + "\n" + json.dumps({"text": "eval(x)"}) + "\n")
    counts = score_jsonl(src, "text", out, use_bandit=False)
    assert counts["records"] == 2 and counts["too_large"] == 1 and counts["vulnerable"] == 1
    assert counts["parse_failed"] == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0]["skipped"].startswith("too large") and rows[1]["skipped"] is None


@pytest.mark.parametrize("content", [b"\x00\x01\xff\xfe binary", "{\"text\": \"caf\xe9\"}\n".encode("latin-1")])
def test_score_jsonl_on_binary_or_latin1_is_one_user_error(tmp_path, content):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(json.dumps({"text": "x = 1"}).encode() + b"\n" + content)
    with pytest.raises(UserError, match=r"bad\.jsonl:2") as e:
        score_jsonl(src, "text", tmp_path / "out.jsonl")
    assert "\n" not in str(e.value) and "UTF-8" in str(e.value)
    assert not (tmp_path / "out.jsonl").exists()


def test_score_jsonl_non_string_field_is_named_as_such(tmp_path):
    src = tmp_path / "s.jsonl"
    src.write_text(json.dumps({"text": ["a", "list"]}) + "\n" + json.dumps({"text": None}) + "\n")
    with pytest.raises(UserError, match=r"field 'text' is list, not a string.*s\.jsonl:1"):
        score_jsonl(src, "text", tmp_path / "out.jsonl")
    src.write_text(json.dumps({"text": None}) + "\n")
    with pytest.raises(UserError, match=r"field 'text' is null, not a string"):
        score_jsonl(src, "text", tmp_path / "out.jsonl")


def test_score_jsonl_deeply_nested_json_is_one_user_error(tmp_path):
    src = tmp_path / "deep.jsonl"
    src.write_text('{"text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(UserError, match=r"deep\.jsonl:1"):
        score_jsonl(src, "text", tmp_path / "out.jsonl")
