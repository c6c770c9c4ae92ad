"""Where things sit in a text: code or prose lines, comments, docstrings, code blocks.

``layout(text, language, whole_file)`` splits a text into lines and says, for each, whether it is
code (and in which language) or prose, and where its comments and docstrings are, as character
spans of the text. Fenced Markdown blocks carry their language; a text without fences is split
by ``scoring.extract_code`` (the detector's own code/prose split), so both agree on what is code.
Beside fenced blocks, Markdown's indented code blocks (four spaces or a tab after a blank line)
are code too; prose in any script (Chinese, Russian...) is prose. ``Layout.language_of`` names a
block's programming language: its fence tag, a diff's file name, or a guess from its text.
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field

from warnframe.detector import extract_code

_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+#.-]*)")
#: Fence tags the layout reads as code (``FENCE_LANG`` gives each its comment syntax).
FENCE_TAGS = (
    "", "python", "py", "python3", "py3", "ipython", "pycon", "js", "javascript", "jsx", "ts", "typescript",
    "tsx", "node", "java", "c", "cpp", "c++", "cs", "csharp", "go", "golang", "rust", "rs", "php", "kotlin",
    "swift", "sql", "mysql", "postgresql", "psql", "plsql", "tsql", "sqlite", "sh", "bash", "shell", "zsh",
    "console", "shell-session", "ruby", "rb", "yaml", "yml", "dockerfile", "toml", "perl",
)
_LINE_COMMENT = {"python": ("#",), "shell": ("#",), "js": ("//",), "sql": ("--",)}
#: Fence tags and file suffixes -> the language's name (as reported); a tag not here is reported as written.
LANG_NAME = {
    "py": "python",
    "python3": "python",
    "py3": "python",
    "ipython": "python",
    "pycon": "python",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "ts": "typescript",
    "tsx": "typescript",
    "c++": "cpp",
    "cc": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "h": "c",
    "cs": "csharp",
    "c#": "csharp",
    "golang": "go",
    "rs": "rust",
    "rb": "ruby",
    "kt": "kotlin",
    "kts": "kotlin",
    "sh": "shell",
    "bash": "shell",
    "zsh": "shell",
    "console": "shell",
    "shell-session": "shell",
    "shellsession": "shell",
    "yml": "yaml",
    "ps1": "powershell",
    "pwsh": "powershell",
    "patch": "diff",
    "htm": "html",
    "xhtml": "html",
    "vue": "javascript",
    "svelte": "javascript",
    "mysql": "sql",
    "postgresql": "sql",
    "psql": "sql",
    "plsql": "sql",
    "tsql": "sql",
    "sqlite": "sql",
    "pl": "perl",
    "md": "markdown",
}
#: A language's name -> the comment syntax the layout reads it with (``FENCE_LANG``'s values).
_SYNTAX = {
    "python": "python",
    "javascript": "js",
    "typescript": "js",
    "java": "js",
    "c": "js",
    "cpp": "js",
    "csharp": "js",
    "go": "js",
    "rust": "js",
    "php": "js",
    "kotlin": "js",
    "swift": "js",
    "scala": "js",
    "dart": "js",
    "sql": "sql",
    "shell": "shell",
    "ruby": "shell",
    "perl": "shell",
    "yaml": "shell",
    "powershell": "shell",
}
#: Fence tags whose syntax no language name in ``_SYNTAX`` gives (an untagged fence reads as Python).
_TAG_SYNTAX = {"": "python", "dockerfile": "shell", "toml": "shell"}
#: The fence tags the layout reads as code -> their comment syntax (derived: a tag's language's
#: syntax); other tags are "other".
FENCE_LANG = {tag: _TAG_SYNTAX.get(tag) or _SYNTAX[LANG_NAME.get(tag, tag)] for tag in FENCE_TAGS}
#: Cheap signs of a language in code that has no tag, tried in order.
_GUESS = [
    ("php", re.compile(r"<\?php|\$_(?:GET|POST|REQUEST|COOKIE|SERVER)\b|\becho\s+\$|->\w+\(.*\$\w")),
    (
        "html",
        re.compile(
            r"^\s*<(?:!doctype|html|head|body|div|form|script|iframe|input|a\s|p>|span|meta|style)", re.I | re.M
        ),
    ),
    (
        "java",
        re.compile(
            r"\b(?:public|private|protected)\s+(?:static\s+)?(?:final\s+)?(?:class|void|[\w<>\[\]]+\s+\w+\s*\()"
            r"|\bSystem\.out\.|\bimport\s+java\.|\bnew\s+ProcessBuilder\b|\bRuntime\.getRuntime\("
        ),
    ),
    ("csharp", re.compile(r"\busing\s+System\b|\bConsole\.Write|\bnamespace\s+\w+\s*\{|\bvar\s+\w+\s*=\s*new\s")),
    ("go", re.compile(r"^\s*package\s+\w+\s*$|\bfunc\s+(?:\(\w+\s+\*?\w+\)\s*)?\w+\s*\(|\bfmt\.\w+\(|:=", re.M)),
    ("rust", re.compile(r"\bfn\s+\w+\s*\(|\blet\s+mut\b|\bimpl\s+\w+|\bunwrap\(\)")),
    ("c", re.compile(r"^\s*#include\s*[<\"]|\b(?:strcpy|sprintf|malloc|printf|gets)\s*\(", re.M)),
    (
        "javascript",
        re.compile(
            r"^\s*(?:const|let|var)\s+\w+\s*=|\bfunction\s*\w*\s*\(|=>|\bconsole\.log\(|\bdocument\."
            r"|\brequire\(\s*['\"]|\bmodule\.exports\b|\b(?:app|router)\.(?:get|post)\(",
            re.M,
        ),
    ),
    (
        "sql",
        re.compile(
            r"^\s*(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:TABLE|PROCEDURE)|GRANT|EXEC)\b", re.M
        ),
    ),
    ("ruby", re.compile(r"^\s*(?:require\s+['\"]|puts\s|end\s*$)|\bdo\s*\|\w+\|", re.M)),
    (
        "shell",
        re.compile(
            r"^\s*(?:\$\s+|sudo\s|curl\s|wget\s|export\s+\w+=|echo\s|chmod\s|apt(?:-get)?\s|npm\s|pip\s|cd\s)", re.M
        ),
    ),
    (
        "python",
        re.compile(
            r"^\s*(?:def|class)\s+\w+.*:\s*$|^\s*(?:import\s+\w+|from\s+[\w.]+\s+import)\b|\bprint\(|\bself\.", re.M
        ),
    ),
]
_DIFF_FILE = re.compile(r"^(?:\+\+\+|---)\s+(?:[ab]/)?(\S+)", re.M)


def guess_language(code: str) -> str:
    """The programming language ``code`` most likely is, by cheap signs (``_GUESS``); ``unknown``."""
    return next((name for name, sign in _GUESS if sign.search(code)), "unknown")


def language_name(tag: str) -> str:
    """A fence tag or file suffix as a language's name (``LANG_NAME``)."""
    tag = tag.lower().lstrip(".")
    return LANG_NAME.get(tag, tag)


def diff_lines(lines: list[str], first: int, last: int, tag: str = "") -> tuple[list[int], list[int]] | None:
    """The removed and the added lines of a unified diff in lines ``first..last``, or None when
    they are not a diff: a block tagged ``diff``/``patch``, one with a hunk header or ``---``/``+++``
    file headers, or one whose every line starts with ``-``, ``+`` or a space, with some of each."""
    body = lines[first : last + 1]
    minus = [first + i for i, ln in enumerate(body) if ln.startswith("-") and not ln.startswith("---")]
    plus = [first + i for i, ln in enumerate(body) if ln.startswith("+") and not ln.startswith("+++")]
    if not minus or not plus:
        return None
    headed = any(ln.startswith("@@") for ln in body) or (
        any(ln.startswith("--- ") for ln in body) and any(ln.startswith("+++ ") for ln in body)
    )
    shaped = all(not ln.strip() or ln[:1] in "-+ \t@\\" for ln in body)
    if language_name(tag) == "diff" or headed or (shaped and language_name(tag) not in _SYNTAX):
        return minus, plus
    return None


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
    tags: dict[int, str] = field(
        default_factory=dict
    )  # first line of a block -> its fence tag, lower-cased ("" if none)
    indented: list[tuple[int, int]] = field(default_factory=list)  # Markdown indented code blocks (first, last)

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

    def language_of(self, block: tuple[int, int]) -> str:
        """The programming language of a block: its fence tag, the file a diff changes, or a guess."""
        first, last = block
        fence = next((f for f in self.fenced if f[0] <= first <= f[1]), None)
        tag = self.tags.get(fence[0], "") if fence else self.tags.get(first, "")
        body = "\n".join(self.text[self.starts[first] : self.line_span(last, last)[1]].split("\n"))
        if language_name(tag) == "diff" or not tag:
            m = _DIFF_FILE.search(body)
            if m and "." in m.group(1).rsplit("/", 1)[-1]:
                return language_name(m.group(1).rsplit(".", 1)[-1])
        if tag and language_name(tag) != "diff":
            return language_name(tag)
        if tag:  # a diff without file names: its lines, without their +/- marks
            body = "\n".join(ln[1:] for ln in body.split("\n"))
        return guess_language(body)


_CODE_CHARS = re.compile(
    r"[={}\[\]]|\w\(|^\s*(?:#|//|--)|^\s*(?:def|class|import|from|return|if|elif|for|while|with|try|except|print)\b|^\s"
)
_WORD = re.compile(r"[(\"'“«]?[^\W_][\w'’-]*[)\"'”»]?[,.;:!?…]?")
#: Letters of scripts written without spaces (CJK, kana, Hangul) and their punctuation.
_CJK = re.compile(r"[\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uff00-\uffef]")
_STATEMENT = re.compile(r"\s*(?:return|import|from|if|elif|for|while|with|print|raise|assert|yield|del)\b")
_ASCII_CODE = re.compile(r"[=;{}\[\]]|\w\(|^\s*(?:#|//|--|/\*)|['\"`]")


def _reads_as_prose(line: str) -> bool:
    """A line at column 0 with no code punctuation, nearly all of it plain words (in any script that
    spaces its words), whatever ``extract_code`` made of it (it keeps "Hard-coded credentials are ..."
    or "Chapter 7" as code); or a line of Chinese or Japanese with no code punctuation. A short line
    counts only if it does not parse as Python either."""
    tokens = line.split()
    if not tokens:
        return False
    if _CJK.search(line) and not _ASCII_CODE.search(line):  # Chinese or Japanese prose: no spaces to count words by
        return not _STATEMENT.match(line)
    if _CODE_CHARS.search(line) or sum(bool(_WORD.fullmatch(t)) for t in tokens) < 0.8 * len(tokens):
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
    tags: dict[int, str] = {}
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
                if not inside:
                    tags[i + 1] = m.group(2).lower()
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
            if ".. " in text:
                _rst_directives(lines, kind, tags)
            if "@@" in text or "+++" in text:
                _unfenced_diffs(lines, kind, tags)
    out = Layout(text, starts, kind, lang, fenced=spans, tags=tags)
    if not (whole_file and language != "markdown"):
        if out.fenced:
            _find_indented(out, lines)
        _find_blocks(out, lines)
        _name_unfenced(out, lines)
        _find_comments(out, lines)
    else:
        _find_comments(out, lines)
        _find_blocks(out, lines)
    return out


_RST = re.compile(r"^(\s*)\.\.\s+([\w-]+)::\s*(\S*)")


def _rst_directives(lines: list[str], kind: list[str], tags: dict[int, str]) -> None:
    """reStructuredText directives in a text without fences: the indented body of ``code-block``
    (``code``, ``sourcecode``) is code in the language it names; the body of any other directive
    (``warning``, ``note``...) is prose."""
    i, n = 0, len(lines)
    while i < n:
        m = _RST.match(lines[i])
        if not m:
            i += 1
            continue
        indent, name, arg = len(m.group(1)), m.group(2).lower(), m.group(3)
        j = i + 1
        body = []
        while j < n and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            if lines[j].strip():
                body.append(j)
            j += 1
        code = name in ("code-block", "code", "sourcecode")
        kind[i] = "prose"
        for k in body:
            kind[k] = "code" if code else "prose"
        if code and body:
            tags[body[0]] = arg.lower()
        i = j


def _unfenced_diffs(lines: list[str], kind: list[str], tags: dict[int, str]) -> None:
    """A unified diff outside fences (file headers, hunks of ``-``/``+``/context lines) is code."""
    i, n = 0, len(lines)
    while i < n:
        if not (
            lines[i].startswith("@@ ")
            or (lines[i].startswith("--- ") and i + 1 < n and lines[i + 1].startswith("+++ "))
        ):
            i += 1
            continue
        first = i
        while i < n and (
            lines[i].startswith(("@@", "--- ", "+++ ", "-", "+", " ")) and lines[i].strip() or lines[i] == " "
        ):
            kind[i] = "code"
            i += 1
        tags.setdefault(first, "diff")


def _find_indented(out: Layout, lines: list[str]) -> None:
    """Markdown's indented code blocks outside the fences: lines indented by four spaces or a tab
    after a blank line, at least one with code punctuation and none that reads as prose."""
    i, n = 0, len(lines)
    while i < n:
        if (
            out.kind[i] != "prose"
            or not lines[i].startswith(("    ", "\t"))
            or not lines[i].strip()
            or (i and lines[i - 1].strip() and out.kind[i - 1] != "fence")
        ):
            i += 1
            continue
        j = last = i
        while (
            j + 1 < n
            and out.kind[j + 1] == "prose"
            and (lines[j + 1].startswith(("    ", "\t")) or not lines[j + 1].strip())
        ):
            j += 1
            if lines[j].strip():
                last = j
        run = [ln.strip() for ln in lines[i : last + 1] if ln.strip()]
        if any(_CODE_CHARS.search(ln) or ln.endswith((";", "{", "}")) for ln in run) and not any(
            _reads_as_prose(ln) and not ln.endswith((";", "{", "}")) for ln in run
        ):
            for k in range(i, last + 1):
                if lines[k].strip():
                    out.kind[k] = "code"
            out.indented.append((i, last))
        i = last + 1


def _name_unfenced(out: Layout, lines: list[str]) -> None:
    """Code outside fences is read as Python unless its text says it is another language (a guess:
    ``guess_language``); the comment syntax of its lines follows."""
    fenced_lines = {i for a, b, _tag in out.fenced for i in range(a, b + 1)}
    for a, b in out.blocks:
        if a in fenced_lines:
            continue
        syntax = _SYNTAX.get(guess_language("\n".join(lines[a : b + 1])), "python")
        if syntax != "python":
            for k in range(a, b + 1):
                out.lang[k] = syntax


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
