"""Where things sit in a text: code or prose lines, comments, docstrings, code blocks.

``layout(text, language, whole_file)`` splits a text into lines and says, for each, whether it is
code (and in which language) or prose, and where its comments and docstrings are, as character
spans of the text. Fenced Markdown blocks carry their language; a text without fences is split
by ``scoring.extract_code`` (the detector's own code/prose split), so both agree on what is code.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field

from warnframe.detector import extract_code

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+#.-]*)")
#: Fence tags -> the comment syntax of their language.
FENCE_LANG = {
    "": "python",
    "python": "python",
    "py": "python",
    "python3": "python",
    "py3": "python",
    "ipython": "python",
    "pycon": "python",
    "js": "js",
    "javascript": "js",
    "jsx": "js",
    "ts": "js",
    "typescript": "js",
    "tsx": "js",
    "node": "js",
    "java": "js",
    "c": "js",
    "cpp": "js",
    "c++": "js",
    "cs": "js",
    "csharp": "js",
    "go": "js",
    "golang": "js",
    "rust": "js",
    "rs": "js",
    "php": "js",
    "kotlin": "js",
    "swift": "js",
    "sql": "sql",
    "mysql": "sql",
    "postgresql": "sql",
    "psql": "sql",
    "plsql": "sql",
    "tsql": "sql",
    "sqlite": "sql",
    "sh": "shell",
    "bash": "shell",
    "shell": "shell",
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "ruby": "shell",
    "rb": "shell",
    "yaml": "shell",
    "yml": "shell",
    "dockerfile": "shell",
    "toml": "shell",
    "perl": "shell",
}
_LINE_COMMENT = {"python": ("#",), "shell": ("#",), "js": ("//",), "sql": ("--",)}
_TRIPLE = re.compile(r"(\"\"\"|''')[\s\S]*?(?:\1|\Z)")


@dataclass
class Layout:
    """A text cut into lines: ``kind[i]`` is ``code``, ``prose`` or ``fence``; ``lang[i]`` the
    language of a code line; ``comments`` / ``docstrings`` character spans; ``blocks`` runs of
    code lines as (first line, last line) (0-based, inclusive)."""

    text: str
    starts: list[int]
    kind: list[str]
    lang: list[str]
    comments: list[tuple[int, int, int, bool]] = field(default_factory=list)  # (start, end, line, whole-line?)
    docstrings: list[tuple[int, int]] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    fenced: list[tuple[int, int, str]] = field(default_factory=list)  # content lines (first, last) of each fenced block

    def line_of(self, pos: int) -> int:
        """0-based line of a character offset."""
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def line_span(self, first: int, last: int) -> tuple[int, int]:
        """Character span of lines ``first..last`` (0-based, inclusive), without the last newline."""
        end = self.starts[last + 1] - 1 if last + 1 < len(self.starts) else len(self.text)
        return self.starts[first], end

    def block_of(self, line: int) -> tuple[int, int] | None:
        return next((b for b in self.blocks if b[0] <= line <= b[1]), None)


_CODE_CHARS = re.compile(
    r"[={}\[\]]|\w\(|^\s*(?:#|//|--)|^\s*(?:def|class|import|from|return|if|elif|for|while|with|try|except|print)\b|^\s"
)
_WORD = re.compile(r"[(\"'“]?[A-Za-z0-9][A-Za-z0-9'’-]*[)\"'”]?[,.;:!?]?")


def _reads_as_prose(line: str) -> bool:
    """A line at column 0 with no code punctuation, nearly all of it plain words: English, whatever
    ``extract_code`` made of it (it keeps "Hard-coded credentials are ..." or "Chapter 7" as code).
    A short line counts only if it does not parse as Python either."""
    tokens = line.split()
    if not tokens or _CODE_CHARS.search(line) or sum(bool(_WORD.fullmatch(t)) for t in tokens) < 0.8 * len(tokens):
        return False
    if len(tokens) >= 6:
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            ast.parse(line)  # parsed only, never run
        return False
    except (SyntaxError, ValueError):
        return True


def _starts(lines: list[str]) -> list[int]:
    out, pos = [], 0
    for line in lines:
        out.append(pos)
        pos += len(line) + 1
    return out


def _inline_comment(line: str, token: str) -> int | None:
    """Offset of a trailing ``token`` comment outside string quotes, or None."""
    i = line.find(token)
    while i != -1:
        before = line[:i]
        quoted = before.count('"') % 2 or before.count("'") % 2 or before.count("`") % 2
        glued = i > 0 and not line[i - 1].isspace()
        if not quoted and not glued:
            return i
        i = line.find(token, i + 1)
    return None


def layout(text: str, language: str = "markdown", whole_file: bool = False) -> Layout:
    """Cut ``text`` into code and prose lines, with its comments, docstrings and code blocks.

    ``whole_file``: a source file is code from top to bottom, in ``language``.
    """
    lines = text.split("\n")
    starts = _starts(lines)
    n = len(lines)
    kind, lang = ["prose"] * n, ["python"] * n
    spans: list[tuple[int, int, str]] = []
    if whole_file and language != "markdown":
        kind, lang = ["code"] * n, [language] * n
    else:
        fenced, inside, tag, opened = False, False, "python", 0
        for i, line in enumerate(lines):
            m = _FENCE.match(line)
            if m:
                fenced = True
                if inside:
                    spans.append((opened + 1, i - 1, tag))
                inside, tag = (True, FENCE_LANG.get(m.group(2).lower(), "other")) if not inside else (False, "python")
                opened = i
                kind[i] = "fence"
            elif inside:
                kind[i], lang[i] = "code", tag
        if inside:  # a fence left open runs to the end
            spans.append((opened + 1, n - 1, tag))
        if not fenced:
            code, first = extract_code(text)
            for j, code_line in enumerate(code.split("\n") if code else []):
                if code_line.strip() and first + j < n and not _reads_as_prose(lines[first + j]):
                    kind[first + j] = "code"
    out = Layout(text, starts, kind, lang, fenced=spans)
    _find_comments(out, lines)
    _find_blocks(out, lines)
    return out


def _find_comments(out: Layout, lines: list[str]) -> None:
    in_block_comment = False
    for i, line in enumerate(lines):
        if out.kind[i] != "code":
            continue
        lg = out.lang[i]
        s = out.starts[i]
        stripped = line.lstrip()
        pad = len(line) - len(stripped)
        if lg == "js" or in_block_comment:  # /* ... */ comments, possibly over several lines
            if in_block_comment:
                end = line.find("*/")
                out.comments.append((s, s + (end + 2 if end >= 0 else len(line)), i, True))
                in_block_comment = end < 0
                continue
            if stripped.startswith(("/*", "*")):
                end = line.find("*/", pad + 2)
                out.comments.append((s + pad, s + (end + 2 if end >= 0 else len(line)), i, True))
                in_block_comment = stripped.startswith("/*") and end < 0
                continue
        for token in _LINE_COMMENT.get(lg, ("#", "//", "--")):
            if stripped.startswith(token):
                out.comments.append((s + pad, s + len(line), i, True))
                break
            j = _inline_comment(line, token) if lg != "other" else None
            if j is not None:
                out.comments.append((s + j, s + len(line), i, False))
                break
    text = out.text
    for m in _TRIPLE.finditer(text):
        at = out.line_of(m.start())
        if out.kind[at] == "code" and out.lang[at] == "python":
            out.docstrings.append((m.start(), m.end()))


def _find_blocks(out: Layout, lines: list[str]) -> None:
    """Runs of code lines; blank lines between two code lines of one run belong to it."""
    i, n = 0, len(lines)
    while i < n:
        if out.kind[i] != "code" or not lines[i].strip():
            i += 1
            continue
        j = last = i
        while j + 1 < n and (out.kind[j + 1] == "code" or (not lines[j + 1].strip() and out.kind[j + 1] != "fence")):
            j += 1
            if out.kind[j] == "code" and lines[j].strip():
                last = j
        out.blocks.append((i, last))
        i = j + 1
