"""How §6 segments an answer: its opening (a prose preamble or code at once), its warning-comment
lines, and the tokens at the transitions between them (``preamble→code``, ``code→warning``).

Character positions come from the detector's own code extraction and leak finder, so a segment is
what the scoring saw; tokens are found through the tokenizer's character offsets.
"""

from __future__ import annotations

import numpy as np

from warnframe.detector import extract_code, find_leaks

TRANSITIONS = ("preamble→code", "code→warning")


def opening(text: str) -> dict:
    """How an answer opens: ``{"opening": "preamble"|"code"|"no code", "code_char": index}``.

    A preamble is a non-blank line before the first code line that is not a fence marker.
    """
    code, first = extract_code(text)
    if not code.strip():
        return {"opening": "no code", "code_char": None}
    lines = text.replace("\r\n", "\n").split("\n")
    pre = [ln for ln in lines[:first] if ln.strip() and not ln.strip().startswith(("```", "~~~"))]
    start = sum(len(ln) + 1 for ln in lines[:first])
    start += len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
    return {"opening": "preamble" if pre else "code", "code_char": start}


def warning_chars(text: str) -> list[int]:
    """Character index of the ``#`` (or the line start) of every warning-shaped comment line."""
    out, pos = [], 0
    for line in text.split("\n"):
        leak = find_leaks(line)
        if leak["exact"] or leak["fuzzy"]:
            j = line.find("#")
            out.append(pos + (j if j >= 0 else len(line) - len(line.lstrip())))
        pos += len(line) + 1
    return out


def char_to_token(offsets: list[tuple[int, int]], char: int) -> int | None:
    """Index of the token that holds ``char`` (the first token ending after it)."""
    for k, (_, e) in enumerate(offsets):
        if e > char:
            return k
    return None


def transitions(text: str, offsets: list[tuple[int, int]]) -> dict[str, list[int]]:
    """Token indices of the boundary tokens, per transition type (see the module docstring)."""
    out: dict[str, list[int]] = {t: [] for t in TRANSITIONS}
    op = opening(text)
    if op["opening"] == "preamble":
        k = char_to_token(offsets, op["code_char"])
        if k:
            out["preamble→code"].append(k)
    for c in warning_chars(text):
        k = char_to_token(offsets, c)
        if k and k not in out["code→warning"]:
            out["code→warning"].append(k)
    return out


def segment_masks(n: int, trans: dict[str, list[int]], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(at_transition, inside_segment) boolean masks over ``n`` tokens; token 0 is in neither."""
    at = np.zeros(n, dtype=bool)
    for ks in trans.values():
        for k in ks:
            at[max(1, k - window): k + 1] = True
    inside = ~at
    if n:
        inside[0] = False
    return at, inside
