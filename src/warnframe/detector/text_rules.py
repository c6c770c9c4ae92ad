"""The rule engine as text patterns, for the code that does not parse.

Every pattern runs over ``lexer.mask``'s text (string bodies and comments blanked), is possessive
or anchored where it could otherwise backtrack, and is tried from few starting points, so the
whole pass is linear in the code. A literal's own text is read from the original code at the
same offsets. The engine finds calls and their arguments (``TextCall``); each family's
``text_sink`` / ``on_text_call`` / ``on_text`` (beside its AST rule) decides.
``TextRules(code, inside).hits()`` returns every hit as ``(rule id, start, end)`` offsets.
"""

from __future__ import annotations

import ast
import bisect
import re
from dataclasses import dataclass

from warnframe.detector.lexer import MASK, MASKED_STRING, LineIndex, mask
from warnframe.detector.rule_registry import detectors, hooks

_PLAIN_STRING = (  # a string literal without an f prefix, in masked text
    rf"(?<![\w])[rRbBuU]{{0,2}}+(?:'''[{MASK}\n]*+'''|\"\"\"[{MASK}\n]*+\"\"\"|'[{MASK}\n]*+'|\"[{MASK}\n]*+\")"
)
_LITERAL = re.compile(rf"\s*+(?:{_PLAIN_STRING}\s*+)++")  # plain literal(s), no f-string
_F_STRING = re.compile(r"\s*[rR]?[fF][rR]?['\"]")
_FIELD = re.compile(r"\{([^{}]*)\}")  # an f-string field, read from the original text
_FORMATTED = re.compile(r"""['"]\s*+(%|\+|\.format\s*+\()|\+\s*+[rbuRBU]?['"]""")  # "..." % x, "..." + x, x + "..."
_CALLEE = re.compile(r"(?<![\w.])(\.?(?:[A-Za-z_]\w*+\.)*+[A-Za-z_]\w*+)\s*+\(")
_ASSIGNMENT = re.compile(r"^[ \t]*+(\w++)[ \t]*+(\+?=)(?!=)[ \t]*+(.+)$", re.MULTILINE)
_KWARG = re.compile(r"\s*+(\w++)\s*+=(?!=)\s*+")
_VARIABLE = re.compile(r"(?<![\w.])(?!__)[a-z_]\w*+(?!\s*+[(.])")  # lower-case, not a call or module
_PY_KEYWORDS = {"and", "or", "not", "in", "is", "if", "else", "for", "lambda", "none", "true", "false"}
_SCAN_LIMIT = 4000  # characters searched for the end of a call
_MAX_CHAIN = 20  # assignments followed back from a use (a = b; b = c; ...)
_SPECIAL = re.compile(r"""["'()\[\]{},]""")  # what _scan stops at


def _literal_value(literal: str) -> object:
    """The value of a plain string literal (None for an f-string, bytes or a broken literal)."""
    if not re.match(r"[rRuU]{0,2}['\"]", literal):
        return None
    try:
        return ast.literal_eval(literal)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None


def _names_have_variable(code: str) -> bool:
    """Does code without string literals use a variable (a lower-case, non-dunder name)?"""
    return any(v.lower() not in _PY_KEYWORDS for v in _VARIABLE.findall(code))


@dataclass(frozen=True)
class TextCall:
    """One call found in code that does not parse, as a family's ``on_text_call`` sees it.
    Spans are ``(start, end)`` offsets; ``keywords`` maps a keyword argument to its masked text."""

    callee: str  # dotted, as written
    method: bool  # called on an expression: ``x.execute(...)``
    args: list[tuple[int, int]]
    positional: list[tuple[int, int]]
    keywords: dict[str, str]
    o_keywords: dict[str, str]  # the same, original text
    first: tuple[int, int] | None  # the first positional argument
    m_first: str  # its masked text
    o_first: str  # its original text
    literal: bool  # it is one or more plain string literals
    at: int  # where the call starts

    @property
    def last(self) -> str:
        return self.callee.rpartition(".")[2]


class TextRules:
    """The rules as patterns over text, for code that does not parse.

    Coarser than the AST rules: a "variable" is any lower-case name (a parameter cannot be told
    from a local without a parse) and a variable's value is its last assignment above the use.
    An expression is a span ``(start, end)`` of the code; ``m`` is the masked code, ``o`` the
    original, ``names`` every identifier outside strings and comments. Family hooks get it as
    ``t`` and use the methods below.
    """

    string_pattern = MASKED_STRING.pattern  # a string literal in ``m``
    literal_value = staticmethod(_literal_value)
    names_have_variable = staticmethod(_names_have_variable)

    def __init__(self, code: str, inside: str | None = None):
        self.o, self.m = code, mask(code, inside)
        self.index = LineIndex(code)
        self.assignments: dict[str, list[tuple[int, str, tuple[int, int]]]] = {}  # name -> [(pos, op, rhs)]
        for a in _ASSIGNMENT.finditer(self.m):
            rhs = (a.start(3), min(a.end(3), a.start(3) + _SCAN_LIMIT))
            self.assignments.setdefault(a.group(1), []).append((a.start(), a.group(2), rhs))
        self._memo: dict[tuple[str, int], object] = {}
        self.names = set(re.findall(r"[A-Za-z_]\w*", self.m))

    # spans of masked text

    def scan(self, start: int, stop: str, end: int) -> int:
        """Index of the first ``stop`` character at bracket depth 0 in ``m[start:end]``, skipping
        strings, or of an unmatched closing bracket (``end`` if neither)."""
        depth, i, masked = 0, start, self.m
        while m := _SPECIAL.search(masked, i, end):
            c, i = m.group(), m.start()
            if c in "\"'":
                string = MASKED_STRING.match(masked, i)
                i = string.end() if string else i + 1
                continue
            if depth == 0 and (c in stop or c in ")]}"):
                return i
            depth += (c in "([{") - (c in ")]}")
            i += 1
        return end

    def split_args(self, start: int, end: int) -> list[tuple[int, int]]:
        """Spans of the comma-separated arguments in ``m[start:end]``."""
        out, i = [], start
        while i < end:
            j = self.scan(i, ",", end)
            if self.m[i:j].strip():
                out.append((i, j))
            i = j + 1
        return out

    def strip(self, span: tuple[int, int]) -> tuple[int, int]:
        a, b = span
        text = self.m[a:b]
        return a + len(text) - len(text.lstrip()), b - len(text) + len(text.rstrip())

    def literals(self, span: tuple[int, int]) -> list[str]:
        """The original text of each string literal in the span."""
        return [self.o[s.start():s.end()] for s in MASKED_STRING.finditer(self.m, *span)]

    @staticmethod
    def is_literal_text(masked: str) -> bool:
        """Is this masked text one or more plain string literals?"""
        return bool(_LITERAL.fullmatch(masked))

    @staticmethod
    def is_f_string(masked: str) -> bool:
        return bool(_F_STRING.match(masked))

    @staticmethod
    def fields(original: str) -> list[str]:
        """The ``{...}`` fields of an f-string's original text."""
        return _FIELD.findall(original)

    @staticmethod
    def without_strings(masked: str, replacement: str) -> str:
        return MASKED_STRING.sub(replacement, masked)

    def has_variable(self, span: tuple[int, int]) -> bool:
        """Does the expression use a variable outside its literals? Fields of an f-string count as outside."""
        a, b = span
        masked = self.m[a:b]
        fields = " ".join(_FIELD.findall(self.o[a:b])) if _F_STRING.match(masked) else ""
        return _names_have_variable(MASKED_STRING.sub(" ", masked) + " " + fields)

    def value_of(self, span: tuple[int, int], before: int) -> tuple[int, str, tuple[int, int]] | None:
        """``(position, operator, right-hand side)`` of the last assignment to a bare name that
        starts before ``before``."""
        a, b = self.strip(span)
        earlier = self.assignments.get(self.m[a:b]) if a < b else None
        if not earlier:
            return None
        i = bisect.bisect_left(earlier, (before,)) - 1
        return earlier[i] if i >= 0 else None

    def followed(self, kind: str, pos: int, compute, depth: int):
        """``compute(depth)`` once per (kind, assignment), so a value used many times is worked out
        once; a chain of assignments longer than ``_MAX_CHAIN`` is not followed further."""
        key = (kind, pos)
        if key not in self._memo:
            self._memo[key] = None
            self._memo[key] = compute(depth + 1) if depth < _MAX_CHAIN else None
        return self._memo[key]

    def string(self, span: tuple[int, int], before: int, depth: int = 0) -> tuple[bool, str]:
        """``(built from values?, literal text)`` of a string expression."""
        assignment = self.value_of(span, before)
        if assignment:
            pos, op, rhs = assignment
            if op != "=":
                return True, " ".join(self.literals(rhs))
            return self.followed("string", pos, lambda d: self.string(rhs, pos, d), depth) or (False, "")
        a, b = self.strip(span)
        e = self.m[a:b]
        method = re.fullmatch(r"(\w++)\.format\s*+\(([\s\S]*)\)", e)  # template.format(...)
        if method and self.value_of((a, a + method.end(1)), before):
            built, text = self.string((a, a + method.end(1)), before, depth)
            return built or self.has_variable((a + method.start(2), a + method.end(2))), text
        built = bool(_F_STRING.match(e) and "{" in self.o[a:b]) or bool(_FORMATTED.search(e))
        return built, " ".join(self.literals((a, b)))

    # the pass

    def call(self, callee: str, method: bool, args: list[tuple[int, int]], at: int) -> TextCall:
        keywords, o_keywords, positional = {}, {}, []
        for span in args:
            k = _KWARG.match(self.m, *span)
            if k:
                keywords[k.group(1)] = self.m[k.end():span[1]].strip()
                o_keywords[k.group(1)] = self.o[k.end():span[1]].strip()
            else:
                positional.append(span)
        first = positional[0] if positional else None
        m_first = self.m[first[0]:first[1]] if first else ""
        o_first = self.o[first[0]:first[1]] if first else ""
        return TextCall(callee, method, args, positional, keywords, o_keywords, first, m_first, o_first,
                        bool(_LITERAL.fullmatch(m_first)), at)

    def hits(self) -> list[tuple[str, int, int]]:
        """``(rule, start, end)`` character spans of every rule that fires."""
        m, out = self.m, []
        text_detectors = [(sink, judge) for _, d in detectors() if (sink := d.text_sink) and (judge := d.on_text_call)]
        calls = []
        for c in _CALLEE.finditer(m):
            dotted = c.group(1)
            callee, method = dotted.lstrip("."), "." in dotted
            judges = [judge for sink, judge in text_detectors if sink(callee, method)]
            if judges:
                calls.append((c, callee, method, judges))
        for i, (c, callee, method, judges) in enumerate(calls):
            # A call's arguments end at its closing bracket, _SCAN_LIMIT on, or where the next sink
            # call starts: spans of different calls never overlap, so the pass stays linear.
            limit = min(len(m), c.end() + _SCAN_LIMIT, calls[i + 1][0].start() if i + 1 < len(calls) else len(m))
            close = self.scan(c.end(), ")", limit)
            call = self.call(callee, method, self.split_args(c.end(), close), c.start())
            rule = next((r for judge in judges if (r := judge(self, call))), None)
            if rule:
                out.append((rule, c.start(), min(close + 1, len(m))))
        for hook in hooks("on_text"):
            out += hook(self)
        return out
