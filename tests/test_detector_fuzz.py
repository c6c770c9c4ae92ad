"""Fuzzing the detector and the leakage check (issue 14): random bytes, truncations of real
answers, deep nesting, huge lines and many lines all get a Score in bounded time, with findings
that point inside the text. Each strategy is small enough that the file runs in ~10 s."""

from __future__ import annotations

import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from warnframe.corpus import FAMILIES
from warnframe.detector import find_leaks, score
from warnframe.detector.scorer import MAX_RECORD_BYTES

#: Seconds one record may take (inputs here are at most ~150 KB; today they take well under 1 s).
BOUND = 3.0
FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))


def _renders() -> list[str]:
    rng = random.Random(0)
    out = []
    for fam in FAMILIES.values():
        for task in fam.tasks[:3]:
            out += [fam.vulnerable(task, rng), fam.secure(task, rng)]
    return out


RENDERS = _renders()
OPENERS = ["(", "[", "{", "f(", "eval(", "-", "not ", "lambda: ", "x + ", "if x:\n ", '"""', "'", "@d\n", "    "]
PIECES = ["os.system(cmd)", "cur.execute(f\"SELECT {x}\")", "'", '"', "\\", "#", "(", ")", "\n", "\t", "    ", "=",
          "password = 'x'", "```python\n", "```", "DO NOT USE", "\x00", "\ud800", "é", "def f(a):", "'''", '"""']


def check(text: str, use_bandit: bool = False) -> None:
    start = time.perf_counter()
    v = score(text, use_bandit=use_bandit)
    leaks = find_leaks(text)
    seconds = time.perf_counter() - start
    assert seconds < BOUND, (seconds, text[:80])
    assert v.skipped is None or v.skipped.startswith(("too large", "bandit"))
    n_lines = text.replace("\r\n", "\n").replace("\r", "\n").count("\n") + 1
    for f in v.findings:
        assert 1 <= f.line <= n_lines, (f, text[:80])
        if f.start is not None:
            assert 0 <= f.start <= len(text) and (f.end is None or f.start <= f.end <= len(text)), f
    assert set(leaks) == {"exact", "fuzzy"}


@FUZZ
@given(st.binary(max_size=4000), st.sampled_from(["utf-8", "latin-1"]))
def test_random_bytes(data, encoding):
    check(data.decode(encoding, errors="replace"), use_bandit=True)


@FUZZ
@given(st.sampled_from(RENDERS), st.floats(0, 1), st.floats(0, 1))
def test_truncations_of_real_answers(code, a, b):
    i, j = sorted((int(a * len(code)), int(b * len(code))))
    check(code[i:], use_bandit=True)
    check(code[:j] + code[i:])  # a piece cut out of the middle


@FUZZ
@given(st.lists(st.sampled_from(OPENERS), min_size=1, max_size=3), st.integers(1, 20_000))
def test_deep_nesting(openers, depth):
    check("".join(openers) * depth)


@FUZZ
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4), st.integers(1, 40_000))
def test_huge_lines(pieces, repeat):
    check("x = " + "".join(p.replace("\n", " ") for p in pieces) * repeat)


@FUZZ
@given(st.lists(st.sampled_from(PIECES + RENDERS[:4]), min_size=1, max_size=6), st.integers(1, 4000))
def test_many_lines(pieces, repeat):
    check("\n".join(pieces * repeat)[: MAX_RECORD_BYTES // 4])


def test_over_the_cap_is_skipped_not_dropped():
    v = score("x" * (MAX_RECORD_BYTES + 1))
    assert v.skipped.startswith("too large") and v.findings == [] and not v.vulnerable
