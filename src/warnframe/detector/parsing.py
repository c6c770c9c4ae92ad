"""Parsing untrusted, often cut-off generated code into as much AST as possible.

``parse`` is ``ast.parse`` without SyntaxWarnings; ``PARSE_ERRORS`` is everything a parse of
untrusted text can raise. ``parse_lines`` returns the AST of every part of the code that parses
and which lines it covers, so that the rest can go to the text patterns (``text_rules``): the
whole text first; else the longest prefix that parses, then each top-level statement after it on
its own. Each line is parsed a bounded number of times (``_PARSE_ATTEMPTS`` per segment), so the
work stays linear whatever the input. A text that starts inside a triple-quoted literal (a window
cut in the middle of a docstring) has the lines up to the closing quote left to the patterns.

Generated code is only parsed, never executed.
"""

from __future__ import annotations

import ast
import re
import warnings

from warnframe.detector.lexer import TRIPLE, mask


def parse(source: str) -> ast.Module:
    """``ast.parse`` without the SyntaxWarnings that generated code triggers (``1abc``, bad escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return ast.parse(source)


#: Parse attempts per top-level segment: each retry parses the lines above the reported error.
_PARSE_ATTEMPTS = 3
#: What a parse of untrusted code can raise besides a clean SyntaxError: null bytes (ValueError),
#: nesting deeper than the parser or the AST builder allows (RecursionError, MemoryError).
PARSE_ERRORS = (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError)
_CONTINUATION = re.compile(r"(else|elif|except|finally)\b")
_PAD_LINES = 300


def in_triple_quotes(lines: list[str]) -> set[int]:
    """Indices of lines that continue a triple-quoted string (never prose, whatever they say)."""
    inside, out = None, set()
    for i, line in enumerate(lines):
        if inside:
            out.add(i)
        for quote in re.findall(r'"""|\'\'\'', line):
            inside = quote if inside is None else (None if quote == inside else inside)
    return out


def _try_parse(source: str) -> tuple[ast.Module | None, int | None]:
    """``(tree, None)``, or ``(None, line of the error)`` (None when the error has no line)."""
    try:
        return parse(source), None
    except SyntaxError as e:
        return None, e.lineno
    except PARSE_ERRORS:
        return None, None


def _segments(lines: list[str], first: int = 0) -> list[tuple[int, int]]:
    """``[start, end)`` line ranges of top-level statements from line ``first`` on: a new segment
    starts at a line at column 0 that is not a comment, a closing bracket, inside a triple-quoted
    string, an ``else``-like continuation or the line after a decorator."""
    strings = {first + i for i in in_triple_quotes(lines[first:])}
    starts, previous = [], ""
    for i in range(first, len(lines)):
        line = lines[i]
        if not line.strip() or line[0] in " \t#)]}" or i in strings:
            continue
        if not _CONTINUATION.match(line) and not previous.startswith("@"):
            starts.append(i)
        previous = line
    if first < len(lines) and (not starts or starts[0] != first):
        starts.insert(0, first)
    return list(zip(starts, starts[1:] + [len(lines)]))


def _parse_segment(lines: list[str], start: int, end: int, error_line: int | None = None) -> tuple[list[ast.stmt], int]:
    """The statements of the longest prefix of ``lines[start:end]`` found to parse, and where it
    ends. A SyntaxError at line k means every prefix that contains line k fails too, so a retry
    parses the lines before it; at most ``_PARSE_ATTEMPTS`` parses, so the work stays linear.
    ``error_line``: the segment was already parsed whole and failed there (its line in the segment)."""
    n = end - start if error_line is None else min(end - start - 1, error_line - 1)
    at_end = error_line is not None and error_line >= end - start
    # A segment near the top is parsed behind blank lines, so that its line numbers come out right
    # without a walk of its tree (``ast.increment_lineno``); further down the walk is cheaper than
    # parsing that many blank lines again for every segment.
    pad = start if start <= _PAD_LINES else 0
    for _ in range(_PARSE_ATTEMPTS):
        if n <= 0:
            break
        tree, error_line = _try_parse("\n" * pad + "\n".join(lines[start:start + n]))
        if error_line is not None:
            error_line -= pad
        if tree is not None:
            if start > pad:
                ast.increment_lineno(tree, start)
            return tree.body, start + n
        if at_end and (error_line or n) >= n:
            break  # failing at the last line again: each retry would drop one line (decorators)
        at_end = (error_line or n) >= n
        n = min(n - 1, (error_line or n) - 1)
    return [], start


def parse_lines(lines: list[str]) -> tuple[ast.Module | None, list[bool], str | None]:
    """The AST of every part of ``lines`` that parses, which lines it covers, and the triple
    quote whose literal the text starts inside of (``_starts_inside_string``), if any.

    The whole text first (nearly always enough); else the longest prefix that parses, and after
    it each top-level segment on its own: whole, or with at most ``_REPAIRS`` lines it fails at
    replaced by stand-ins (``_repaired``: a line the running Python cannot read costs only that
    line), or else the longest prefix of it that parses (a generation cut off mid-function keeps
    the function's first part). Every line is parsed a bounded number of
    times, whatever the input. When the text starts inside a triple-quoted literal, the lines up
    to the one that closes it are left to the patterns.
    """
    code = "\n".join(lines)
    tree, error_line = _try_parse(code)
    if tree is not None:
        return tree, [True] * len(lines), None
    inside = _starts_inside_string(code)
    first = code.count("\n", 0, code.find(inside)) + 1 if inside else 0
    # The longest prefix first, in one piece (a cut-off generation: nearly all of it), then each
    # top-level segment after it.
    body, stop = _parse_segment(lines, first, len(lines), error_line if first == 0 else None)
    if stop < len(lines) and lines[stop][:1] in (" ", "\t") and body:
        # The prefix ends inside a top-level statement (a function cut before a line that does not
        # parse): that statement is parsed again on its own below, where stand-ins can save the rest.
        start = max((s for s, _ in _segments(lines, first) if s <= stop), default=first)
        body = [st for st in body if st.lineno - 1 < start]
        stop = start
    covered = [first <= i < stop for i in range(len(lines))]
    for start, end in _segments(lines, stop):
        pad = start if start <= _PAD_LINES else 0
        tree, error_line = _try_parse("\n" * pad + "\n".join(lines[start:end]))
        repaired = _repaired(lines, start, end, error_line - pad if error_line is not None else None) \
            if tree is None else None
        if tree is not None or repaired is not None:
            if tree is not None and start > pad:
                ast.increment_lineno(tree, start)
            statements, stand_ins = (tree.body, set()) if tree is not None else repaired  # type: ignore[misc]
            body += statements
            covered[start:end] = [i not in stand_ins for i in range(start, end)]
            continue
        statements, stop = _parse_segment(lines, start, end, error_line - pad if error_line is not None else None)
        body += statements
        covered[start:stop] = [True] * (stop - start)
    return (ast.Module(body=body, type_ignores=[]) if body else None), covered, inside


#: Lines a parse may replace by a stand-in (``_repaired``) before it falls back to prefixes and segments.
_REPAIRS = 4
_OPEN, _CLOSE = re.compile(r"[(\[{]"), re.compile(r"[)\]}]")


def _repaired(lines: list[str], start: int, end: int, error_line: int | None) -> tuple[list[ast.stmt], set[int]] | None:
    """The statements of ``lines[start:end]`` (a top-level segment that does not parse) with the
    few lines a parse fails at replaced by stand-ins, and which lines those are; None when
    ``_REPAIRS`` stand-ins are not enough.

    A single line the running Python cannot read (a Python 3.12 f-string that reuses its quotes, a
    sentence of prose inside a code block, a line cut off) would otherwise cost the AST, and with
    it the dataflow, of everything after it in its function. Each stand-in keeps the line's
    indentation: ``pass``, or ``''`` inside brackets (an element, or a piece of an implicit string
    concatenation). The replaced lines go to the text patterns like any line that does not parse.
    A segment that fails at its last line is a cut-off statement: the longest prefix serves it, as
    before. At most ``_REPAIRS`` parses of the segment, so the work stays linear.
    """
    work, replaced = lines[start:end], set()
    pad = start if start <= _PAD_LINES else 0
    if error_line is None or error_line >= len(work):
        return None  # failing at its last line: a cut-off statement, which the longest prefix handles
    for _ in range(_REPAIRS):
        i = error_line - 1 if error_line is not None else -1
        if not 0 <= i < len(work) or i in replaced:
            return None
        before = mask("\n".join(work[:i]))
        depth = len(_OPEN.findall(before)) - len(_CLOSE.findall(before))
        line = work[i]
        work[i] = line[: len(line) - len(line.lstrip())] + ("''" if depth > 0 else "pass")
        replaced.add(i)
        tree, error_line = _try_parse("\n" * pad + "\n".join(work))
        if tree is not None:
            if start > pad:
                ast.increment_lineno(tree, start)
            return tree.body, {start + j for j in replaced}
        error_line = error_line - pad if error_line is not None else None
    return None


_PHASE_LINES = 50  # lines judged on each side of the first triple quote


def _is_code_line(s: str) -> bool:
    """Does one stripped line read as (part of) Python rather than prose?"""
    if s.startswith("#") or s[0] in ")]}" or s.endswith(("(", "[", "{", ",", "\\")) or _CONTINUATION.match(s):
        return True
    return any(_try_parse(candidate)[0] is not None for candidate in (s, s + "\n pass"))


def _code_evidence(region: str) -> int:
    """Lines that read as code minus lines that read as prose (of the first ``_PHASE_LINES``)."""
    lines = [line.strip() for line in region.split("\n") if line.strip()][:_PHASE_LINES]
    return sum(1 if _is_code_line(line) else -1 for line in lines)


def _starts_inside_string(code: str) -> str | None:
    """The triple quote that closes a literal begun before ``code`` (a window cut in the middle of
    a docstring), else None: the text before the first triple quote reads less like code than the
    text between it and the next one."""
    first = TRIPLE.search(code)
    if first is None:
        return None
    after = code.find(first.group(), first.end())
    inside = code[first.end():after if after >= 0 else len(code)]
    return first.group() if _code_evidence(inside) > _code_evidence(code[:first.start()]) else None
