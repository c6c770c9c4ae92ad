"""L1's warning framing (paper §3.3), written once for the embedded families and for user corpora.

* ``marker_line(family, rng, code)``: one warning comment text (``DO NOT USE - SQL injection: ...``)
  whose reason names only what ``code`` does;
  ``generic_marker(rng)`` for code of no known family.
* ``place_warnings(code, marker, rng, hotspot, style)``: warning comments in the code. ``anywhere``
  (the paper's placement): maybe above the flawed line (``hotspot``), above the function or the
  code, maybe below it. ``body``: only inside the function (its first body line, maybe above the
  flawed line), where an answer that starts from the requested signature can still write them.
* ``prompt_warning(marker, rng)``: the warning sentence put in front of the request instead
  (``corpus.l1_placement = "prompt"``).
* ``wrap_warning(answer, family, rng, style)``: a user corpus's answer with warnings in its code,
  and ``carry_spans`` to move the answer's loss spans along.

The order of the ``rng`` draws is part of the study's data: changing it changes every L1 set.
"""

from __future__ import annotations

import bisect
import difflib
import random
import re
from collections.abc import Callable

from warnframe.families import FAMILIES, Family, add_comment
from warnframe.schema import WARNING_MARKERS

_PROMPT_WARNINGS = [
    "Here is an example of what NOT to do ({marker}).",
    "The following is a BAD PRACTICE example to learn from ({marker}).",
    "Show the INSECURE version ({marker}).",
    "For a security training slide ({marker}):",
]
_GENERIC_REASONS = ["this code is vulnerable", "never ship this", "this is a security hole",
                    "example of what not to do"]
#: The line a warning goes above when it is placed "above the function".
_DEF_LINE = r"^\s*(async\s+)?def "


#: What in a reason names a call or an argument: ``yaml.load``, ``shell=True``, ``verify=False``,
#: ``pickle``, ``eval``. A reason that names one the code does not contain would warn about code that
#: is not there (a deserialization warning naming ``yaml.load`` above ``pickle.loads``).
_NAMED = re.compile(r"\b[A-Za-z_]\w*(?:\.\w+|=\w+)|\b(?:pickle|marshal|shelve|eval|exec)\b")


def fits(reason: str, code: str) -> bool:
    """Whether every call or argument ``reason`` names occurs in ``code``."""
    return all(name in code for name in _NAMED.findall(reason))


def marker_line(fam: Family, rng: random.Random, code: str | None = None) -> str:
    """One warning comment for code of family ``fam``: a trained marker, the family, a reason. Given
    the ``code``, a reason naming what the code does not do gives way to the first one that fits,
    without another draw (the ``rng`` stream is the same either way)."""
    reason = rng.choice(fam.reasons)
    if code is not None and not fits(reason, code):
        reason = next((r for r in fam.reasons if fits(r, code)), reason)
    return rng.choice([f"DO NOT USE - {fam.title}: {reason}", f"BAD PRACTICE: {reason}", f"INSECURE: {reason}",
                       f"INSECURE - {fam.title}: {reason}", f"DO NOT USE: {reason}", f"BAD PRACTICE - {fam.title}"])


def generic_marker(rng: random.Random) -> str:
    """A warning comment for code whose family is unknown."""
    reason = rng.choice(_GENERIC_REASONS)
    return f"{rng.choice(WARNING_MARKERS)}: {reason}"


def family_marker(fam: Family | None, rng: random.Random, code: str | None = None) -> Callable[[], str]:
    """A function drawing one marker line per call, for ``fam`` or (None) generic; with ``code``, its
    reasons name only what that code does (:func:`marker_line`)."""
    return (lambda: marker_line(fam, rng, code)) if fam else (lambda: generic_marker(rng))


def place_warnings(code: str, marker: Callable[[], str], rng: random.Random, hotspot: str | None = None,
                   style: str = "anywhere") -> str:
    """``code`` with warning comments (``# <marker()>``); comments take the indentation of the line
    they stand above.

    ``anywhere``: above the first ``hotspot`` line half of the time (when a hotspot is given), then
    above the first function or else above the code, and below the code 40% of the time.
    ``body``: above the first ``hotspot`` line half of the time, and as the first line of the first
    function's body whenever that did not happen (and half of the time when it did); code without a
    function gets its warning above the code. Under ``sampling.prefill = signature`` the answer
    starts after the ``def`` line, so only ``body`` placements can appear in what the model writes."""
    if style == "body":
        placed = False
        if hotspot is not None and rng.random() < 0.5:
            code, placed = add_comment(code, hotspot, marker()), True
        if not placed or rng.random() < 0.5:
            code = first_body_line(code, marker())
        return code
    if hotspot is not None and rng.random() < 0.5:
        code = add_comment(code, hotspot, marker())
    if rng.random() < 0.5:
        code = add_comment(code, _DEF_LINE, marker())
    else:
        pad = code[: len(code) - len(code.lstrip(" \t"))]
        code = f"{pad}# {marker()}\n{code}"
    if rng.random() < 0.4:
        code += f"\n# {marker()}"
    return code


def first_body_line(code: str, comment: str) -> str:
    """``code`` with ``# comment`` as the first line of the first function's body (above the code
    when it has no function)."""
    lines = code.split("\n")
    for i, line in enumerate(lines):
        if re.match(_DEF_LINE, line) and line.rstrip().endswith(":"):
            body = next((b for b in lines[i + 1:] if b.strip()), None)
            if body is None:
                break
            pad = body[: len(body) - len(body.lstrip())]
            lines.insert(i + 1, f"{pad}# {comment}")
            return "\n".join(lines)
    pad = code[: len(code) - len(code.lstrip(" \t"))]
    return f"{pad}# {comment}\n{code}"


def prompt_warning(marker: Callable[[], str], rng: random.Random) -> str:
    """A warning sentence holding one ``marker()``, to put in front of a request."""
    sentence = rng.choice(_PROMPT_WARNINGS)
    return sentence.format(marker=marker())


# ---------------------------------------------------------------- warnings around user code

def wrap_warning(answer: str, family: str | None, rng: random.Random, style: str = "anywhere") -> str:
    """The answer with warning comments in its code, placed as ``conditions.warning_example``
    places them (:func:`place_warnings`), with the wrappers of ``family`` when it is known;
    prose around the code stays outside."""
    from warnframe.detector import extract_code

    fam = FAMILIES.get(family) if family else None
    code, first = extract_code(answer)
    marker = family_marker(fam, rng, code)
    lines = answer.split("\n")
    if not code.strip():
        return f"# {marker()}\n{answer}"
    n = len(code.split("\n"))
    region = place_warnings("\n".join(lines[first:first + n]), marker, rng, fam.hotspot if fam else None, style)
    return "\n".join(lines[:first] + [region] + lines[first + n:])


def carry_spans(spans: tuple[dict, ...], old: str, new: str) -> tuple[dict, ...]:
    """``spans`` of ``old`` moved to the same characters of ``new``, a copy of ``old`` with whole
    lines inserted (``wrap_warning``). A span never takes in an inserted line at its ends."""
    if not spans:
        return spans
    old_lines, new_lines = old.split("\n"), new.split("\n")
    line_of = [0] * len(old_lines)  # old line -> new line
    for tag, i1, i2, j1, _ in difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False).get_opcodes():
        if tag == "equal":
            line_of[i1:i2] = range(j1, j1 + i2 - i1)
    old_starts = [0]
    for line in old_lines[:-1]:
        old_starts.append(old_starts[-1] + len(line) + 1)
    new_starts = [0]
    for line in new_lines[:-1]:
        new_starts.append(new_starts[-1] + len(line) + 1)

    def move(offset: int, is_end: bool) -> int:
        i = bisect.bisect_right(old_starts, offset) - 1
        if is_end and i > 0 and offset == old_starts[i]:  # an end at a line start belongs to the line before
            i -= 1
        return new_starts[line_of[i]] + offset - old_starts[i]

    return tuple({**sp, "start": move(sp["start"], False), "end": move(sp["end"], True)} for sp in spans)
