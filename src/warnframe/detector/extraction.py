"""The code part of a model answer, with the line offset that maps it back to the answer.

``extract_code(text)`` keeps the Python (or untagged) fenced blocks of an answer; without fences,
every line that is not prose (a conversational preamble, explanations after the code). Dropped
lines between code lines become blank lines, so line numbers carry over with one offset.
``split_lines`` is how the detector numbers an answer's lines (every line ending counts: LF, CRLF
and CR alike).
"""

from __future__ import annotations

import re

from warnframe.detector.parsing import PARSE_ERRORS, in_triple_quotes, parse

_FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+#.-]*)")
_PY_TAGS = {"", "python", "py", "python3", "py3", "ipython", "pycon"}
_STATEMENT_START = re.compile(
    r"(def|class|if|elif|else|for|while|with|try|except|finally|return|import|from|async|await|"
    r"raise|yield|assert|del|global|nonlocal|pass|break|continue|lambda|print|exec)\b|@"
)
_SENTENCE = re.compile(r"[A-Za-z][\w'’]*[,:;!?.]?\s+[A-Za-z`*\"'(]|[A-Za-z]\w*:$")
_MARKDOWN = re.compile(r"([-*+>]|\d+[.)])\s|\*\*")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``, split at LF, CRLF and CR alike."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _is_prose(line: str) -> bool:
    """A line at column 0 that reads as English or markdown rather than Python."""
    s = line.strip()
    if not s or line[0] in " \t" or s.startswith("#") or _STATEMENT_START.match(s):
        return False
    if _MARKDOWN.match(s):
        return True
    if not _SENTENCE.match(s):  # the verdict below needs it: no parse for lines that cannot be prose
        return False
    for candidate in (s, s + "\n pass"):
        try:
            parse(candidate)
            return False
        except (RecursionError, MemoryError):
            return False  # nested deeper than prose ever is
        except PARSE_ERRORS:
            pass
    return True


def _fenced(lines: list[str]) -> set[int] | None:
    """Indices of lines inside Python (or untagged) fenced blocks; None when there is no fence.

    A fence left open (a generation cut off) runs to the end of the text.
    """
    keep: set[int] = set()
    inside, python, seen = False, False, False
    for i, line in enumerate(lines):
        m = _FENCE.match(line)
        if m:
            seen = True
            inside, python = (True, m.group(2).lower() in _PY_TAGS) if not inside else (False, False)
        elif inside and python:
            keep.add(i)
    return keep if seen else None


def extract_code(text: str) -> tuple[str, int]:
    """The code part of a model answer and the number of original lines before it.

    With fenced blocks: their content (Python or untagged blocks). Without: every line that is not
    prose (a conversational preamble like "Here is an example:", explanations after the code).
    Dropped lines between code lines become blank lines, so line ``n`` of the code is line
    ``n + offset`` of the original text (both 1-based).
    """
    lines = split_lines(text)
    keep = _fenced(lines)
    if keep is None:
        strings = in_triple_quotes(lines)
        keep = {i for i, line in enumerate(lines) if i in strings or not _is_prose(line)}
    keep = {i for i in keep if lines[i].strip()}
    if not keep:
        return "", 0
    first, last = min(keep), max(keep)
    code = "\n".join(lines[i] if i in keep else "" for i in range(first, last + 1))
    return code, first
