"""Linear-time helpers for scanning code as text: a string/comment mask and a line index.

The detector's pattern rules (for code that does not parse) and the leakage check run regexes
over untrusted text of any shape. A regex that embeds a string-literal pattern retries that
pattern from every quote it meets, and an unterminated literal then scans to the end of its line
or of the text each time: quadratic, and a corpus scan meets such inputs. ``mask`` lexes the text
once, left to right, and replaces the *body* of every string literal by ``MASK`` characters
(newlines kept) and every comment by spaces, so the rules' regexes see only delimiters and code,
and each literal's text is read back from the original at the same offsets.

Written by hand because ``tokenize`` stops at the first error, and generated code is often cut
off mid-statement; this lexer never fails and never looks back more than a run of backslashes.
"""

from __future__ import annotations

import bisect
import re

#: What a string body's characters become in the masked text (no regex class of the rules matches it).
MASK = "\x01"
#: A string literal in masked text, any prefix; its body is MASK characters (and kept newlines).
#: Possessive and anchored at a literal's start, so a match attempt never backtracks.
MASKED_STRING = re.compile(
    rf"(?<![\w])[rRbBuUfF]{{0,2}}+(?:'''[{MASK}\n]*+'''|\"\"\"[{MASK}\n]*+\"\"\"|'[{MASK}\n]*+'|\"[{MASK}\n]*+\")"
)

_START = re.compile(r"[#'\"]")
TRIPLE = re.compile(r"\"\"\"|'''")
_SINGLE_BODY = {q: re.compile(rf"(?:[^{q}\\\n]|\\[\s\S])*+") for q in "'\""}
_NOT_NEWLINE = re.compile(r"[^\n]")


def _triple_end(text: str, quote: str, start: int) -> int:
    """Index of the closing triple quote of a literal whose body starts at ``start`` (len(text) if none)."""
    while True:
        end = text.find(quote, start)
        if end < 0:
            return len(text)
        slashes = end
        while slashes > start and text[slashes - 1] == "\\":
            slashes -= 1
        if (end - slashes) % 2 == 0:
            return end
        start = end + 1


def mask(text: str, inside: str | None = None) -> str:
    """``text`` with string bodies replaced by ``MASK`` (newlines kept) and comments by spaces.

    Same length and same line breaks as ``text``, so offsets and line numbers carry over. An
    unterminated single-quoted literal ends at its line's end, a triple-quoted one at the text's.
    ``inside`` (a triple quote): the text starts inside a literal with that delimiter (a window
    cut in the middle of a docstring).
    """
    out, last, i = [], 0, 0
    if inside:
        close = _triple_end(text, inside, 0)
        out.append(_NOT_NEWLINE.sub(MASK, text[:close]))
        last, i = close, min(len(text), close + len(inside))
    while m := _START.search(text, i):
        j = m.start()
        if text[j] == "#":
            end = text.find("\n", j)
            end = len(text) if end < 0 else end
            out += [text[last:j], " " * (end - j)]
            last = i = end
            continue
        quote = text[j]
        if text.startswith(quote * 3, j):
            body = j + 3
            close = _triple_end(text, quote * 3, body)
            i = min(len(text), close + 3)
        else:
            body = j + 1
            run = _SINGLE_BODY[quote].match(text, body)
            assert run is not None  # the pattern (a starred group) matches the empty string
            close = run.end()
            i = close + 1 if close < len(text) and text[close] == quote else close
        out += [text[last:body], _NOT_NEWLINE.sub(MASK, text[body:close])]
        last = close
    out.append(text[last:])
    return "".join(out)


class LineIndex:
    """Line and column of a character offset, by bisection over precomputed line starts."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line(self, pos: int) -> int:
        """1-based line of offset ``pos``."""
        return bisect.bisect_right(self.starts, pos)

    def column(self, pos: int) -> int:
        """0-based column (in characters) of offset ``pos``."""
        return pos - self.starts[self.line(pos) - 1]

    def offset(self, line: int, column: int = 0) -> int:
        """Offset of 1-based ``line`` and 0-based ``column``."""
        return self.starts[min(max(line, 1), len(self.starts)) - 1] + column
