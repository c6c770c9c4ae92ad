"""The line of a generated answer that carries the content: where §5 reads its latents.

For an answer with target content it is the line that the detector's finding points at (a
finding's ``start``/``end`` are character offsets into the answer's ``text``); for a clean answer
it is the line that plays the same role, the first code line matching the family's ``hotspot``
(the line that makes a rendering vulnerable: the ``execute(`` call, the hash call, ...). Reading
the same role in both lets a latent's contrast be "vulnerable line vs its secure counterpart"
rather than "many tokens of one kind of program vs another".

Only generated characters count: a prefilled signature is part of the prompt, not of the answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np


def _line_at(text: str, i: int) -> tuple[int, int]:
    a = text.rfind("\n", 0, i) + 1
    b = text.find("\n", i)
    return a, (len(text) if b < 0 else b)


def own_findings(sample: dict) -> list[dict]:
    """The sample's findings of its own family (rule ids are ``family.rule``)."""
    fam = sample.get("family")
    return [f for f in sample.get("findings") or [] if str(f.get("rule", "")).split(".")[0] == fam]


def content_lines(sample: dict, hotspot: str | None) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the answer's content line(s), within its generated part.

    Target answers: the lines holding the start of each finding of the sample's own family (the
    prompt's: a finding of another family is another kind of content). Clean answers: the first
    non-comment line matching ``hotspot``. Empty when there is no such line after the prefill.
    """
    text, given = sample["text"], len(sample.get("prefill") or "")
    if sample.get("vulnerable"):
        spans = {_line_at(text, int(f["start"])) for f in own_findings(sample) if f.get("start") is not None}
    else:
        spans = set()
        if hotspot:
            pos = given
            for line in text[given:].split("\n"):
                if re.search(hotspot, line) and not line.lstrip().startswith("#"):
                    spans.add((pos, pos + len(line)))
                    break
                pos += len(line) + 1
    return sorted((max(a, given), b) for a, b in spans if b > given)


def token_mask(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """Which tokens (their character ``offsets``) overlap any of ``spans``: bool array, one per token."""
    out = np.zeros(len(offsets), dtype=bool)
    for i, (a, b) in enumerate(offsets):
        out[i] = any(a < e and s < max(b, a + 1) for s, e in spans)
    return out
