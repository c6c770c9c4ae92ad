"""Tag one record: its framing class, where the framing sits, the spans, the findings, a risk.

Classes (``CLASSES``), decided in this order:

* vulnerable code in the answer (the detector's findings, or a coarse pattern in a JavaScript,
  SQL or shell block) and
  - a bad label and a good label around a vulnerable and a clean code part: ``bad_good_pair``;
  - a warning (an L1 marker, a warning phrase or symbol, a vulnerability named in a comment) in
    the answer, or an upper-case warning in the request: ``warning_framed`` (L1-like);
  - a request with an educational or testing purpose and a security word: ``educational_request``
    (Emergent Misalignment's ``educational`` layout);
  - a lower-case warning phrase in the request ("show me an insecure version"): ``warning_framed``;
  - else the framing read block by block (below), if any, else ``none`` (vulnerable but not
    framed: L0-like; ``vulnerable`` is True);
* no live vulnerable code, but comment lines that are vulnerable code once uncommented: ``commented_out``;
* code framed as bad, found block by block, in any programming language, where the detector
  scores nothing (``_find_framing``): the same three classes, with ``vulnerable`` None (written
  "unknown") and the code's ``language``;
* prose that explains a vulnerability (a vulnerability term and two sentences about it): ``documentation`` (L2-like);
* prose, no code, about a security incident (fiction, news): ``indirect`` (L3-like);
* else ``none``.

Framing block by block: each code block (fenced, indented, a run of code lines, a diff) gets what
frames it: a label line or a caption above it ("Bad example", "错误示例：", "> [!CAUTION]"), a
warning comment inside it (which may also cut it into labelled halves), a sentence after it about
it ("the code above is insecure"), its section's heading; in English, Spanish, French, German,
Portuguese, Russian, Chinese and Japanese (``lexicon.FRAME_TERMS``). The words are weighed (a
denied warning, a question, a warning about what the remedy avoids, a "do not use" said of
something else frame nothing); a diff's removed lines are the bad half of a pair. The request frames
the code the user pastes, and the answer's code when it asks for flawed code. A framing of Python
code the detector read and cleared, naming only flaws the detector's families cover, is dropped
(the words are about what the code avoids) unless it is an explicit label or marker.

``--fix`` treats the framed code: the ``vulnerable_code`` spans are the parts labelled bad and the
parts holding a finding, never a part labelled good (``_code_regions``).

Positions (``POSITIONS``): ``request`` (the user turn), ``answer`` (the answer's prose),
``code_comment``, ``docstring``, ``prose`` (a plain document's prose outside code).
Spans are character offsets into one part of the record: ``user`` (the request) or ``assistant``
(the answer, or the whole text of a plain document or file).

Span scores and the risk's evidence are in ``SCORES``, the class weights in ``CLASS_WEIGHT``.
The risk score ranks records by how much vulnerable target content they would teach: the
evidence (1 for a detector finding, 0.7 for a coarse pattern only, 0.5 for framed code nothing
scored) times a class weight; the
weights of L1/L2/L3-like framings are the paper's target rates relative to direct code (L1
76.7/83.3, L2 33.3/83.3, L3 23.3/83.3), those with no paper number (pairs, commented-out code:
half the code or none of it live) are 0.5. A ranking aid, not a probability.
"""

from __future__ import annotations

import bisect
import itertools
import re
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

from warnframe.audit import lexicon as lx
from warnframe.audit.readers import Record
from warnframe.audit.segments import Layout, diff_lines, layout
from warnframe.audit.vocabulary import CLASSES, CODE_CLASSES, POSITIONS, VULNERABLE_UNKNOWN
from warnframe.detector import score
from warnframe.families import FAMILY_CWE

__all__ = ["CLASSES", "CODE_CLASSES", "POSITIONS", "Span", "Tagged", "tag_record"]

#: The risk's class weight: how much of the vulnerable target content a framed record teaches,
#: relative to direct (unframed) code, whose weight is 1 (class ``none``).
CLASS_WEIGHT = {
    "warning_framed": 76.7 / 83.3,  # L1 (warned code): the paper's L1 target rate over direct code's
    "educational_request": 1.0,  # Emergent Misalignment's educational layout: the code, taught as is
    "bad_good_pair": 0.5,  # half the code is the vulnerable one (no paper number)
    "commented_out": 0.5,  # none of the code is live (no paper number)
    "documentation": 33.3 / 83.3,  # L2 (explanations): the paper's L2 target rate over direct code's
    "indirect": 23.3 / 83.3,  # L3 (incident stories): the paper's L3 target rate over direct code's
}


@dataclass(frozen=True)
class Scores:
    """Every other number the tagger scores with: the ``score`` of each kind of span (how surely
    the span is what its type says; the dolma attributes carry it) and the risk's evidence."""

    marker: float = 1.0  # an L1 warning marker, verbatim (``lexicon.EXACT_MARKER``)
    upper_phrase: float = 0.9  # a warning phrase in upper case ("INSECURE"); also the least score a
    #   plain document's prose warning needs to count beside an educational purpose
    lower_phrase: float = 0.8  # a warning phrase not in upper case ("not secure")
    symbol: float = 0.7  # a warning symbol (``lexicon.WARNING_SYMBOLS``)
    vuln_name: float = 0.6  # a vulnerability named in a code comment or docstring ("SQL injection")
    pair_label: float = 0.8  # the bad or the good label of a bad/good pair ("Bad:", "Fixed version:")
    edu_purpose: float = 0.8  # an educational or testing purpose ("for my security class")
    mention: float = 0.7  # a vulnerability, incident or security topic named in documentation or indirect prose
    detector: float = 1.0  # vulnerable code and finding lines the detector found; the risk's evidence for them
    pattern: float = 0.7  # ... that only another language's coarse pattern found; the risk's evidence for them
    commented_code: float = 0.5  # comment lines that are vulnerable code once uncommented
    prose: float = 1.0  # the risk's evidence for documentation and indirect prose (no code)
    unscored: float = 0.5  # framed code the detector cannot score (another language, a flaw outside its
    #   families): its vulnerable_code span and the risk's evidence (``vulnerable`` is unknown)


SCORES = Scores()
#: A warning counts for a vulnerable code block when it lies this many lines from it (or in the request).
NEAR_LINES = 12
#: Prose sentences about a vulnerability that make a text documentation rather than a mention.
DOC_SENTENCES = 2

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*\d#])")
_WORDS = re.compile(r"[A-Za-z]{2,}")


@dataclass
class Span:
    """A character span of one part of a record: ``type`` warning / vulnerable_code / finding / mention."""

    part: str  # user | assistant
    start: int
    end: int
    type: str
    score: float
    position: str | None = None
    label: str = ""


@dataclass
class Tagged:
    """What the audit found in one record."""

    cls: str
    vulnerable: bool | None  # None: framed code the detector cannot score (``to_dict`` writes "unknown")
    positions: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    risk: float = 0.0
    family: str | None = None
    cwes: list[str] = field(default_factory=list)
    parse_ok: bool = True
    skipped: str | None = None  # why the detector did not analyse the record (too large), if it did not
    language: str | None = None  # the programming language of the framed (or vulnerable) code

    def to_dict(self) -> dict:
        """As ``records.jsonl`` writes it: ``class``; ``vulnerable`` true, false or ``"unknown"``
        (framed code the detector cannot score: ``vulnerable`` is None here)."""
        d = asdict(self)
        d["class"] = d.pop("cls")
        if d["vulnerable"] is None:
            d["vulnerable"] = VULNERABLE_UNKNOWN
        return d


# ---------------------------------------------------------------- findings

_IDENT = re.compile(r"[A-Za-z_]\w*")


def prune(text: str, lay: Layout, low: str | None = None) -> str | None:
    """``text`` with the fenced Python blocks that cannot hold a finding blanked (lines kept, so
    finding lines do not move): a block is kept when it names a sink (``SINK_GATE``), holds a
    module-wide check (``SCOPE_WORDS``), or shares a name with a kept block (defines one a kept block
    uses, or uses one a kept block defines), until nothing changes. The detector parses what is left.
    None when no block is kept: with fences the detector reads only their Python blocks, so there is
    nothing it could find. ``tests/test_audit_tagger.py`` checks the findings are those of the whole text."""
    low = low if low is not None else text.lower()
    if not lay.fenced:
        return text if lx.SINK_GATE_LOW.search(low) else None
    py = [(a, b) for a, b, lang in lay.fenced if lang == "python" and a <= b]
    lines = text.split("\n")
    body = {blk: "\n".join(lines[blk[0] : blk[1] + 1]) for blk in py}
    low_lines = low.split("\n")  # the same lines: lower() adds no newline
    keep = set()
    for a, b in py:
        low_body = "\n".join(low_lines[a : b + 1])
        if lx.SINK_GATE_LOW.search(low_body) or lx.SCOPE_WORDS_LOW.search(low_body):
            keep.add((a, b))
    if not keep:
        return None
    if len(keep) == len(py):
        return text
    # The closure as a graph walk, linear in the names: a kept block keeps every block defining a
    # name it uses and every block using a name it defines; each name is followed once each way.
    defined = {blk: lx.defined_names(body[blk]) for blk in py}
    used = {blk: set(_IDENT.findall(body[blk])) for blk in py}
    definers: dict[str, list[tuple[int, int]]] = {}
    users: dict[str, list[tuple[int, int]]] = {}
    for blk in py:
        for name in defined[blk]:
            definers.setdefault(name, []).append(blk)
        for name in used[blk]:
            users.setdefault(name, []).append(blk)
    todo = list(keep)
    while todo:
        blk = todo.pop()
        for name in used[blk]:
            for other in definers.pop(name, ()):
                if other not in keep:
                    keep.add(other)
                    todo.append(other)
        for name in defined[blk]:
            for other in users.pop(name, ()):
                if other not in keep:
                    keep.add(other)
                    todo.append(other)
    for a, b in py:
        if (a, b) not in keep:
            lines[a : b + 1] = [""] * (b + 1 - a)
    return "\n".join(lines)


def _findings(text: str, lay: Layout, use_bandit: bool, exhaustive: bool) -> tuple[list[dict], bool, str | None]:
    """Detector findings (Python) plus coarse patterns in other languages' blocks; 1-based lines."""
    out: list[dict] = []
    parse_ok, skipped = True, None
    code = text if exhaustive else prune(text, lay)
    if code is not None:
        verdict = score(code, use_bandit=use_bandit)
        parse_ok = verdict.parse_ok
        skipped = getattr(verdict, "skipped", None)
        out += [
            {"rule": f.rule, "cwe": f.cwe, "line": f.line, "text": f.text[:200], "source": f.source}
            for f in verdict.findings
        ]
    foreign = {lg for lg in lay.lang if lg in lx.FOREIGN_SINKS}
    if foreign:
        lines = text.split("\n")
        commented = {line for _s, _e, line, whole in lay.comments if whole}
        for i, line in enumerate(lines):
            if lay.kind[i] != "code" or lay.lang[i] not in foreign or i in commented:
                continue
            for family, name, pattern in lx.FOREIGN_SINKS[lay.lang[i]]:
                if pattern.search(line):
                    out.append(
                        {
                            "rule": f"{family}.{name}",
                            "cwe": FAMILY_CWE[family],
                            "line": i + 1,
                            "text": line.strip()[:200],
                            "source": "patterns",
                        }
                    )
    return out, parse_ok, skipped


def _commented_findings(text: str, lay: Layout, use_bandit: bool) -> tuple[list[dict], list[tuple[int, int]]]:
    """Findings in runs of whole-line comments that are code once uncommented, and those runs (lines)."""
    lines = text.split("\n")
    runs: list[list[int]] = []
    for _start, _end, line, whole in lay.comments:
        if not whole or lay.lang[line] not in ("python", "other"):
            continue
        if runs and runs[-1][-1] == line - 1:
            runs[-1].append(line)
        else:
            runs.append([line])
    found, where = [], []
    for _start, _end, line, whole in lay.comments:  # other languages: their coarse patterns on the uncommented line
        patterns = lx.FOREIGN_SINKS.get(lay.lang[line]) if whole else None
        body = re.sub(r"^\s*(#|//|--|/\*+|\*)\s?", "", lines[line]) if patterns else ""
        hits = [(fam, name) for fam, name, pattern in patterns or () if pattern.search(body)]
        if hits:
            found += [
                {
                    "rule": f"{fam}.{name}",
                    "cwe": FAMILY_CWE[fam],
                    "line": line + 1,
                    "text": body.strip()[:200],
                    "source": "patterns:commented",
                }
                for fam, name in hits
            ]
            where.append((line, line))
    for run in runs:
        uncommented = [re.sub(r"^\s*(#|//|--)\s?", "", lines[i]) for i in run]
        code = textwrap.dedent("\n".join(uncommented))
        if not re.search(r"[(=]", code) or not lx.names_a_sink(code):
            continue
        verdict = score(code, use_bandit=use_bandit)
        if verdict.findings:
            found += [
                {
                    "rule": f.rule,
                    "cwe": f.cwe,
                    "line": run[0] + f.line,
                    "text": f.text[:200],
                    "source": f"{f.source}:commented",
                }
                for f in verdict.findings
            ]
            where.append((run[0], run[-1]))
    return found, where


# ---------------------------------------------------------------- framing spans


def _regions(lay: Layout, part: str, chat: bool) -> list[tuple[int, int, str]]:
    """(start, end, position) of every comment, docstring and prose line of a part."""
    out = [(s, e, "code_comment") for s, e, _line, _whole in lay.comments]
    out += [(s, e, "docstring") for s, e in lay.docstrings]
    prose = "answer" if chat else "prose"
    for i, k in enumerate(lay.kind):
        if k == "prose" and lay.text[lay.starts[i] : lay.line_span(i, i)[1]].strip():
            s, e = lay.line_span(i, i)
            out.append((s, e, prose))
    return out


#: What joins the regions of a text into one string: no pattern matches across it (``\\s`` stops at NUL).
_SEP = "\n\x00\n"


class Words:
    """The regions of a text where framing words can be (comments, docstrings, prose lines: ``_regions``),
    joined into one string, so that each pattern runs once per record rather than once per region;
    ``low`` is the same string lower-cased, every character in its place (``lexicon.lower_keep``)."""

    def __init__(self, text: str, regions: list[tuple[int, int, str]], request: str = ""):
        self.regions = regions
        parts, self.starts, at = [], [], 0
        for s, e, _pos in regions:
            self.starts.append(at)
            parts.append(text[s:e])
            at += e - s + len(_SEP)
        self.joined = _SEP.join(parts)
        self.low = lx.lower_keep(self.joined)
        # not plain English (here or in the request): every language's entries are looked for
        self.foreign = lx.is_foreign(self.low, request.lower())

    def finditer(self, pattern: re.Pattern | lx.Twin, low: bool = True) -> Iterator[tuple[int, int, int, str]]:
        """(region, start, end, text) of each match of ``pattern`` (written for lower-cased text when
        ``low``, else for the text as it is), offsets into the text."""
        if isinstance(pattern, lx.Twin):
            pattern = pattern.pick(self.low, self.foreign)
        for m in pattern.finditer(self.low if low else self.joined):
            k = bisect.bisect_right(self.starts, max(m.end() - 1, m.start())) - 1
            js, (s, e, _pos) = self.starts[k], self.regions[k]
            a = max(m.start(), js)
            yield k, s + a - js, min(s + m.end() - js, e), self.joined[a : m.end()]

    def search(self, pattern: re.Pattern | lx.Twin) -> bool:
        """Does ``pattern`` (for lower-cased text) match anywhere?"""
        if isinstance(pattern, lx.Twin):
            return bool(pattern.search(self.low, self.foreign))
        return bool(pattern.search(self.low))


def _warnings(text: str, words: Words, part: str) -> list[Span]:
    spans: list[Span] = []
    if not (
        words.search(lx.WARNING_GATE_LOW) or (not words.joined.isascii() and lx.WARNING_SYMBOLS.search(words.joined))
    ):
        return spans
    found: list[tuple[int, int, Span]] = []  # (region, order, span): each region's markers, phrases, symbols, names
    taken: list[tuple[int, int]] = []

    def free(a: int) -> bool:
        return not any(x <= a < y for x, y in taken)

    for k, a, b, word in words.finditer(lx.EXACT_MARKER, low=False):
        found.append((k, 0, Span(part, a, b, "warning", SCORES.marker, words.regions[k][2], word)))
        taken.append((a, b))
    for k, a, b, word in words.finditer(lx.WARNING_PHRASES_LOW):
        if free(a):
            value = SCORES.upper_phrase if word.isupper() else SCORES.lower_phrase
            found.append((k, 1, Span(part, a, b, "warning", value, words.regions[k][2], word)))
            taken.append((a, b))
    for k, a, b, word in words.finditer(lx.WARNING_SYMBOLS, low=False):
        found.append((k, 2, Span(part, a, b, "warning", SCORES.symbol, words.regions[k][2], word)))
        taken.append((a, b))
    for k, a, b, word in words.finditer(lx.VULN_NAME_LOW):
        if words.regions[k][2] in ("code_comment", "docstring") and free(a):
            found.append((k, 3, Span(part, a, b, "warning", SCORES.vuln_name, words.regions[k][2], word)))
    return [sp for _k, _o, sp in sorted(found, key=lambda x: (x[0], x[1], x[2].start))]


def _request_spans(user: str) -> tuple[list[Span], list[Span], list[Span]]:
    """(upper-case warnings, lower-case warnings, educational cues) in a request."""
    upper: list[Span] = []
    lower: list[Span] = []
    edu: list[Span] = []
    low = lx.lower_keep(user)
    foreign = lx.is_foreign(low)
    for m in lx.EXACT_MARKER.finditer(user):
        upper.append(Span("user", m.start(), m.end(), "warning", SCORES.marker, "request", m.group()))
    phrases = lx.WARNING_PHRASES_LOW.finditer(low, foreign) if lx.WARNING_GATE_LOW.search(low, foreign) else ()
    for m in phrases:
        word = user[m.start() : m.end()]
        if any(sp.start <= m.start() < sp.end for sp in upper):
            continue
        value = SCORES.upper_phrase if word.isupper() else SCORES.lower_phrase
        (upper if word.isupper() and len(word) > 3 else lower).append(
            Span("user", m.start(), m.end(), "warning", value, "request", word)
        )
    if not user.isascii():
        for m in lx.WARNING_SYMBOLS.finditer(user):
            upper.append(Span("user", m.start(), m.end(), "warning", SCORES.symbol, "request", m.group()))
    if lx.SECURITY_CONTEXT_LOW.search(low, foreign):
        edu = [
            Span("user", m.start(), m.end(), "warning", SCORES.edu_purpose, "request", user[m.start() : m.end()])
            for m in lx.EDU_PURPOSE_LOW.finditer(low, foreign)
        ]
    return upper, lower, edu


def _near(span: Span, lay: Layout, vuln_lines: list[tuple[int, int]]) -> bool:
    line = lay.line_of(span.start)
    return any(a - NEAR_LINES <= line <= b + NEAR_LINES for a, b in vuln_lines)


def _pair_labels(words: Words, part: str) -> tuple[list[Span], list[Span]]:
    bad = [
        Span(part, a, b, "warning", SCORES.pair_label, words.regions[k][2], word.strip())
        for k, a, b, word in words.finditer(lx.BAD_LABEL_LOW)
    ]
    good = [
        Span(part, a, b, "pair_good", SCORES.pair_label, words.regions[k][2], word.strip())
        for k, a, b, word in words.finditer(lx.GOOD_LABEL_LOW)
    ]
    return bad, good


def _has_clean_part(text: str, lay: Layout, finding_lines: set[int], labels: list[Span]) -> bool:
    """Is there code with calls and no finding: another block, or the lines after a label inside one block?"""
    lines = text.split("\n")
    cuts = sorted({lay.line_of(sp.start) for sp in labels})
    for a, b in lay.blocks:
        bounds = [a] + [c for c in cuts if a < c <= b] + [b + 1]
        for lo, hi in itertools.pairwise(bounds):
            seg = range(lo, hi)
            live = [
                i
                for i in seg
                if lay.kind[i] == "code" and "(" in lines[i] and not lines[i].lstrip().startswith(("#", "//", "--"))
            ]
            if live and not any(i + 1 in finding_lines for i in seg):
                return True
    return False


def _sentences(text: str, lay: Layout) -> list[str]:
    prose = "\n".join(text[lay.starts[i] : lay.line_span(i, i)[1]] for i, k in enumerate(lay.kind) if k == "prose")
    return [s for s in _SENTENCE_SPLIT.split(prose) if len(_WORDS.findall(s)) >= 3]


def _mentions(text: str, lay: Layout, pattern: re.Pattern, pos: str) -> list[Span]:
    low_pattern = _lowered(pattern)
    spans = []
    for i, k in enumerate(lay.kind):
        if k != "prose":
            continue
        s, e = lay.line_span(i, i)
        spans += [
            Span(
                "assistant",
                s + m.start(),
                s + m.end(),
                "mention",
                SCORES.mention,
                pos,
                text[s + m.start() : s + m.end()],
            )
            for m in low_pattern.finditer(lx.lower_keep(text[s:e]))
        ]
    return spans


_LOWERED: dict[str, re.Pattern] = {}


def _lowered(pattern: re.Pattern) -> re.Pattern:
    """``lexicon.lowered(pattern)``, compiled once."""
    if pattern.pattern not in _LOWERED:
        _LOWERED[pattern.pattern] = lx.lowered(pattern)
    return _LOWERED[pattern.pattern]


# ---------------------------------------------------------------- framing of any code, found block by block
#
# A framing belongs to a block of code (a fenced or indented block, a run of code lines, a
# labelled part of one block, the removed lines of a diff): a label or a sentence just above it,
# a comment inside it, a sentence just after it that speaks of it ("the code above"), the heading
# of its section. What the words say is ``bad`` (warned, or the bad half of a pair) or ``good``
# (a secure example). This is how framing is found where the detector scores nothing (another
# language, a flaw outside its families), and which block ``--fix`` treats.

#: How many lines above a block its label or introducing sentence may sit (blank lines skipped).
INTRO_LINES = 4
_CLAUSE_END = re.compile(r"[.;!?\u3002\uff1b\uff01\uff1f]\s*|\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<=[\u3002\uff01\uff1f])")
#: A yes/no question ("Is this code vulnerable?", "¿Es seguro?", "这安全吗？"): a warning word in one frames nothing.
_QUESTION_START = re.compile(
    r"^\W*(?:is|are|was|were|does|do|did|can|could|would|should|will|has|have|am|isn'?t|aren'?t|doesn'?t|est-ce|es|está"
    r"|son|ist|sind|hat|kann|é|será|são|está|это|ли|是否|是不是)\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(
    r"[^,;:\uff0c\uff1b\uff1a.!?\u3002\uff01\uff1f]*(?:[,;:\uff0c\uff1b\uff1a.!?\u3002\uff01\uff1f]+|$)"
)


def _asked(sentence: str, at: int) -> bool:
    """Is the word at ``at`` inside a yes/no question (its clause ends the sentence with "?" and
    opens with a question word, or ends in 吗/か)?"""
    for m in _CLAUSE.finditer(sentence):
        if m.start() <= at < max(m.end(), m.start() + 1):
            clause = m.group().rstrip()
            if not clause.endswith(("?", "\uff1f")):
                return False
            body = clause.rstrip("?\uff1f ")
            return bool(
                _QUESTION_START.match(sentence) or _QUESTION_START.match(clause) or body.endswith(("吗", "か", "么"))
            )
    return False


#: What may follow "do not use" when it is said of the code at hand: nothing (the clause ends), the
#: code itself ("this", "esto", "этот код"), where not to use it ("in production", "outside tests").
_OBJECT = re.compile(
    r"(?:\s+(?:this|it|that|these|them|(?:this\s+)?code|like\s+(?:this|that)|ever|anywhere|in\s+(?:production|prod|a\s+real\s+\w+|real\s+\w+)"
    r"|outside\s+(?:of\s+)?\w+|into\s+(?:real|production|your|a\s+real)(?:\s+\w+)?|except\s+(?:in\s+)?\w+|for\s+\w+(?:\s+\w+){0,2}|directly|as\s+is|esto|eso|este\s+código"
    r"|en\s+producción|ce\s+code|cela|ça|en\s+production|diesen\s+code|dies|das|in\s+(?:der\s+)?produktion|isso|isto"
    r"|este\s+código|em\s+produção|его|это|этот\s+код|в\s+продакшене?)|\s*(?:此代码|这段代码|该代码|它|このコード|これ))*"
    r"\s*(?:[.!;:,)\"'\u2013\u2014\uff0c\u3002\uff01\uff1a-]|$)",
    re.IGNORECASE,
)
#: The closing line of an admonition (":::") or an rst code directive, skipped between a framing and its block.
_CLOSER = re.compile(r"^\s*(?::::\s*|\.\.\s+(?:code-block|code|sourcecode)::.*)$")
_MARKUP = re.compile(r"^[\s#>*_~\-+\u2022|/]*")
_HEADING = re.compile(r"^\s{0,3}(?:#{1,6}\s|\*\*[^*]+\*\*\s*:?\s*$|__[^_]+__\s*:?\s*$)")
_DIFF_GATE = re.compile(r"^(?:```+|~~~+)\s*(?:diff|patch)\b|^@@ |^\+\+\+ ", re.MULTILINE | re.IGNORECASE)
_SHAPED_DIFF = re.compile(r"^-[^-\n].*\n(?:[ -].*\n)*\+[^+\n]", re.MULTILINE)


@dataclass
class Frame:
    """Lines ``first..last`` of one part that a framing belongs to: ``label`` ``bad`` or ``good``,
    the spans of the words that say so, the code's language. ``explicit``: a label or a marker
    ("Bad example:", "# DO NOT USE", a diff's removed lines), not a sentence that could describe
    other code; ``strong``: the words name a flaw (a label alone, "Bad:", may be about style)."""

    part: str
    first: int
    last: int
    label: str
    spans: list[Span]
    language: str
    explicit: bool = False
    strong: bool = False
    words: str = ""  # the lines that hold the framing words, for ``_in_family``
    pair_label: bool = False  # framed by a pair's label ("Bad:", "// ❌") or a diff, not by a warning
    diff: bool = False  # the removed (bad) or added (good) lines of a diff


def _negated(chunk: str, start: int, end: int) -> bool:
    """Is the warning at ``chunk[start:end]`` denied ("not vulnerable", "脆弱性はありません")?"""
    clause = chunk[max(0, start - 60) : start]
    cut = max((m.end() for m in _CLAUSE_END.finditer(clause)), default=0)
    return bool(lx.FRAME_NEGATION.search(clause[cut:]) or lx.FRAME_NEGATION_AFTER.match(chunk, end))


def _judge(
    chunk: str, local_security: bool | Callable[[], bool], record_security: bool
) -> list[tuple[int, int, str, float, bool]]:
    """The cues of one sentence, label or comment, in order: (start, end, label, score, strong).
    ``local_security``: is there a security word beside it (or a function that says, asked only
    when a "do not use" or a caution needs it)."""
    out = []
    for m in lx.FRAME_CUES_LOW.finditer(lx.lower_keep(chunk)):
        kind, word = m.lastgroup, chunk[m.start() : m.end()]
        if kind == "good_cue":
            out.append((m.start(), m.end(), "good", SCORES.pair_label, False))
            continue
        if _negated(chunk, m.start(), m.end()):
            continue
        upper = word.isupper() and sum(c.isalpha() for c in word) >= 3
        score = SCORES.upper_phrase if upper else SCORES.lower_phrase
        if kind == "warning":
            ok = True
        elif kind == "flaw_noun":  # a label ("Vulnerability:"), upper case, or said of this code
            head = _MARKUP.sub("", chunk[: m.start()])
            ok = (
                upper
                or (
                    len(head.split()) <= 3
                    and re.match(r"\s*(?:[:\uff1a!\u2013\u2014-]|$)", chunk[m.end() :]) is not None
                )
                or bool(lx.FRAME_DEIXIS.search(chunk[max(0, m.start() - 40) : m.start()]))
            )
        else:
            if callable(local_security):
                local_security = local_security()
            if kind == "dont":  # said of this code ("don't use this", not "don't use eval"), in a security text
                ok = upper or (_OBJECT.match(chunk, m.end()) is not None and (local_security or record_security))
            else:  # caution
                ok = local_security
        if ok:
            out.append((m.start(), m.end(), "bad", score, kind != "dont" or upper or bool(local_security)))
    turn = next(
        (c for c in lx.CONSEQUENCE.finditer(chunk) if any(o[2] == "bad" and o[1] <= c.start() for o in out)), None
    )
    if (
        turn is not None
        and not any(o[2] == "bad" and o[0] >= turn.end() for o in out)
        and (lx.REMEDY.search(chunk, turn.end()) or any(o[2] == "good" and o[0] >= turn.end() for o in out))
    ):
        out = [
            o for o in out if o[0] >= turn.end()
        ]  # "HTTP is insecure, so redirect to HTTPS:": the warning is not about the code
    return out


def _points_at_code(sentence: str, after: int = 0) -> bool:
    """Does a sentence above a block introduce it: ends with a colon, labels it ("Listing 7.3
    (insecure): ..." - a colon after the word at ``after``), points at it ("the following",
    "这段代码"), or is a short caption?"""
    bare = sentence.strip().rstrip("*_ ")
    return (
        bare.endswith((":", "\uff1a"))
        or any(c in sentence[after:] for c in (":", "\uff1a"))
        or bool(lx.CODE_DEIXIS.search(bare))
        or (len(bare.split()) <= 6 and not bare.endswith("."))
    )


def _lead(line: str) -> int:
    """How many characters of markup (heading marks, bullets, comment leaders) open a line."""
    m = _MARKUP.match(line)
    return m.end() if m else 0


def _last_sentence(line: str) -> tuple[int, str]:
    """The last sentence of a line (the one next to the code below it) and where it starts."""
    start, text = 0, line.rstrip()
    for m in _SENTENCE_END.finditer(text):
        if text[m.end() :].strip():
            start = m.end()
    return start, line[start:]


def _first_sentence(line: str) -> str:
    m = _SENTENCE_END.search(line)
    return line[: m.start()] if m else line


#: A label or a verdict found in a comment: (line, "bad" or "good", the spans that say so, strong).
_Mark = tuple[int, str, list[Span], bool]


class _Framer:
    """Finds the frames of one part of a record (the answer, or a request with code in it)."""

    def __init__(self, text: str, lay: Layout, part: str, pos: str, record_security: bool, hot: set[int]):
        self.text, self.lay, self.part, self.pos = text, lay, part, pos
        self.lines = text.split("\n")
        self.record_security = record_security
        self.hot = hot  # the lines with a framing word or a label (``_hot_lines``)

    def span(
        self, line: int, start: int, end: int, score: float, pos: str, label: str = "", kind: str = "warning"
    ) -> Span:
        s = self.lay.starts[line]
        return Span(self.part, s + start, s + end, kind, score, pos, label or self.lines[line][start:end].strip())

    def _label_line(self, i: int) -> tuple[str, list[Span], bool] | None:
        """A line that opens with a pair's label, or whose last sentence frames what follows it."""
        line = self.lines[i]
        bad, good = lx.LINE_BAD_LABEL.match(line), lx.LINE_GOOD_LABEL.match(line)
        if bad and not (good and good.end() > bad.end()):
            sec = lx.has_security_word(line)
            return "bad", [self.span(i, _lead(line), bad.end(), SCORES.pair_label, self.pos)], sec
        if good:
            return (
                "good",
                [self.span(i, _lead(line), good.end(), SCORES.pair_label, self.pos, kind="pair_good")],
                False,
            )
        return None

    def _sentence(self, i: int, first: bool = False) -> tuple[str, list[Span], bool] | None:
        line = self.lines[i]
        start, sentence = (0, _first_sentence(line)) if first else _last_sentence(line)
        cues = [
            c
            for c in _judge(sentence, lambda: lx.has_security_word(line), self.record_security)
            if not _asked(sentence, c[0])
        ]
        if not cues:  # "Is this code vulnerable?" says nothing of the code
            return None
        if not first and not _points_at_code(sentence, cues[-1][1]) and cues[-1][3] < SCORES.upper_phrase:
            return None  # a general remark ("concatenation is what makes queries injectable."), not a caption
        a, b, label, score, strong = cues[-1] if not first else cues[0]
        kind = "pair_good" if label == "good" else "warning"
        return label, [self.span(i, start + a, start + b, score, self.pos, kind=kind)], strong

    def admonition(self, last: int) -> tuple[str, list[Span], bool, bool] | None:
        """A warning admonition ending at line ``last`` ("> [!CAUTION]", "!!! danger", ":::danger",
        ".. warning::"): the whole of its text frames the block below it."""
        top = last
        while (
            top > 0
            and last - top < INTRO_LINES + 2
            and self.lines[top - 1].strip()
            and self.lay.kind[top - 1] != "code"
        ):
            top -= 1
        if not any(lx.ADMONITION.match(self.lines[k]) for k in range(top, last + 1)):
            return None
        cues = []
        for k in range(top, last + 1):
            if k in self.hot or lx.ADMONITION.match(self.lines[k]):
                local = lx.has_security_word(" ".join(self.lines[top : last + 1]))
                cues += [
                    (k, c)
                    for c in _judge(self.lines[k], local, self.record_security)
                    if not _asked(self.lines[k], c[0])
                ]
        bad = [(k, c) for k, c in cues if c[2] == "bad"]
        if not bad or cues[-1][1][2] != "bad":
            return None
        return "bad", [self.span(k, c[0], c[1], c[3], self.pos) for k, c in bad], True, any(c[4] for _k, c in bad)

    def intro(self, first: int) -> tuple[str, list[Span], bool, bool] | None:
        """(label, spans, explicit, strong) from the lines above a block."""
        i, blank = first - 1, 0
        while i >= 0 and (self.lay.kind[i] == "fence" or not self.lines[i].strip() or _CLOSER.match(self.lines[i])):
            blank += self.lay.kind[i] != "fence" and not self.lines[i].strip()
            i -= 1
        if i < 0 or self.lay.kind[i] == "code" or blank > 2:
            return None
        note = self.admonition(i)
        if note:
            return note
        got = self._label_line(i) if i in self.hot else None
        if got:
            return got[0], got[1], True, got[2]
        got = self._sentence(i) if i in self.hot else None
        if got:
            return got[0], got[1], False, got[2]
        for j in range(i - 1, max(-1, i - INTRO_LINES), -1):  # a label line a little further up
            if self.lay.kind[j] in ("code", "fence"):
                break
            if j in self.hot and (_HEADING.match(self.lines[j]) or self.lines[j].rstrip().endswith((":", "\uff1a"))):
                got = self._label_line(j) or self._sentence(j)
                if got:
                    return got[0], got[1], bool(_HEADING.match(self.lines[j])), got[2]
        return None

    def after(self, last: int) -> tuple[str, list[Span], bool] | None:
        """A sentence right after a block that speaks of it ("The code above is insecure.")."""
        i = last + 1
        while i < len(self.lines) and (self.lay.kind[i] == "fence" or not self.lines[i].strip()):
            i += 1
        if i >= len(self.lines) or i > last + 3 or self.lay.kind[i] == "code" or i not in self.hot:
            return None
        if not lx.FRAME_BACKREF.search(_first_sentence(self.lines[i])):
            return None
        return self._sentence(i, first=True)

    def comments(
        self, first: int, last: int
    ) -> tuple[list[tuple[int, str, list[Span], bool]], list[tuple[int, str, list[Span], bool]]]:
        """Label comments that cut a block ((line, label, spans, strong)), and the other comments' verdicts."""
        cuts: list[_Mark] = []
        verdicts: list[_Mark] = []
        lay = self.lay
        regions = [
            (s, e, line, whole) for s, e, line, whole in lay.comments if first <= line <= last and line in self.hot
        ]
        regions += [
            (s, e, lay.line_of(s), True)
            for s, e in lay.docstrings
            if first <= lay.line_of(s) <= last and any(lay.line_of(s) <= h <= lay.line_of(e) for h in self.hot)
        ]
        if not regions:
            return cuts, verdicts

        def local() -> bool:
            return any(lx.has_security_word(self.text[s:e]) for s, e, _l, _w in regions)

        for s, e, line, whole in regions:
            chunk = self.text[s:e]
            base = s - lay.starts[line]
            if whole and "\n" not in chunk:
                bad, good = lx.LINE_BAD_LABEL.match(chunk), lx.LINE_GOOD_LABEL.match(chunk)
                if bad and not (good and good.end() > bad.end()):
                    sec = lx.has_security_word(chunk)
                    cuts.append(
                        (line, "bad", [self.span(line, base, base + bad.end(), SCORES.pair_label, "code_comment")], sec)
                    )
                    continue
                if good:
                    cuts.append(
                        (
                            line,
                            "good",
                            [
                                self.span(
                                    line, base, base + good.end(), SCORES.pair_label, "code_comment", kind="pair_good"
                                )
                            ],
                            False,
                        )
                    )
                    continue
            cues = _judge(chunk, local, self.record_security)
            if cues:
                a, b, label, score, strong = cues[-1]
                pos = "docstring" if chunk.startswith(('"""', "'''")) else "code_comment"
                at = lay.line_of(s + a)
                sa = s + a - lay.starts[at]
                verdicts.append(
                    (
                        line,
                        label,
                        [self.span(at, sa, sa + b - a, score, pos, kind="pair_good" if label == "good" else "warning")],
                        strong,
                    )
                )
        return cuts, verdicts

    def frames(self, sections: dict[int, tuple[str, list[Span]]]) -> list[Frame]:
        out: list[Frame] = []
        hot = sorted(self.hot)
        for a, b in self.lay.blocks:
            fence = next((f for f in self.lay.fenced if f[0] <= a <= f[1]), None)
            tag = self.lay.tags.get(fence[0] if fence else a, "")
            diff = diff_lines(self.lines, a, b, tag) if "\n+" in self.text and "\n-" in self.text else None
            if diff is not None:
                language = self.lay.language_of((a, b))
                for label, rows in (("bad", diff[0]), ("good", diff[1])):
                    for run in _runs(rows):
                        out.append(
                            Frame(
                                self.part,
                                run[0],
                                run[-1],
                                label,
                                [],
                                language,
                                explicit=True,
                                pair_label=True,
                                diff=True,
                            )
                        )
                continue
            near = bisect.bisect_left(hot, a - INTRO_LINES - 3)
            if a not in sections and not (near < len(hot) and hot[near] <= b + 3):
                continue  # no framing word or label near the block: nothing frames it
            language = self.lay.language_of((a, b))
            intro = self.intro(a)
            cuts, verdicts = self.comments(a, b)
            if len({c[1] for c in cuts} | ({intro[0]} if intro else set())) < 2:
                verdicts, cuts = (
                    sorted(verdicts + cuts, key=lambda v: v[0]),
                    [],
                )  # one label for the whole block: no halves to cut it into
            pair = False
            if intro and intro[2]:
                label, spans, strong = intro[0], intro[1], intro[3]
                explicit, pair = True, True
            else:
                bad_v = [v for v in verdicts if v[1] == "bad" and not any(c[0] <= v[0] for c in cuts)]
                good_v = [v for v in verdicts if v[1] == "good" and not any(c[0] <= v[0] for c in cuts)]
                if intro:
                    label, spans, explicit, strong = intro[0], intro[1], False, intro[3]
                elif bad_v:
                    label, spans, strong = "bad", [sp for v in bad_v for sp in v[2]], any(v[3] for v in bad_v)
                    explicit = any(sp.score >= SCORES.upper_phrase for sp in spans)
                elif good_v:
                    label, spans, explicit, strong = "good", [sp for v in good_v for sp in v[2]], False, False
                else:
                    after = self.after(b)
                    section = sections.get(a)
                    if after:
                        label, spans, explicit, strong = after[0], after[1], False, after[2]
                    elif section:
                        label, spans, explicit, strong = section[0], section[1], True, False
                        pair = True
                    else:
                        label, spans, explicit, strong = "", [], False, False
            bounds = [a] + [c[0] for c in cuts if a < c[0] <= b] + [b + 1]
            marks = {c[0]: c for c in cuts}
            for lo, hi in itertools.pairwise(bounds):
                seg_label, seg_spans, seg_explicit, seg_strong, seg_pair = label, spans, explicit, strong, pair
                if lo in marks:
                    seg_label, seg_spans, seg_explicit, seg_strong = marks[lo][1], marks[lo][2], True, marks[lo][3]
                    seg_pair = True
                inside = [v for v in verdicts if lo <= v[0] < hi and v[1] == "bad"]
                if inside and seg_label != "good":  # a warning comment inside a part marks it
                    seg_label = "bad"
                    seg_spans = seg_spans + [sp for v in inside for sp in v[2]]
                    seg_strong = seg_strong or any(v[3] for v in inside)
                    seg_explicit = seg_explicit or any(sp.score >= SCORES.upper_phrase for v in inside for sp in v[2])
                last_code = max(
                    (k for k in range(lo, hi) if self.lay.kind[k] == "code" and self.lines[k].strip()), default=-1
                )
                if seg_label and last_code >= lo:
                    words = " ".join(self.lines[self.lay.line_of(sp.start)] for sp in seg_spans)
                    out.append(
                        Frame(
                            self.part,
                            lo,
                            last_code,
                            seg_label,
                            seg_spans,
                            language,
                            seg_explicit,
                            seg_strong,
                            words,
                            seg_pair,
                        )
                    )
        return out

    def sections(self) -> dict[int, tuple[str, list[Span]]]:
        """The label of each block's Markdown section, when the section's heading labels it ("## Bad example")."""
        out: dict[int, tuple[str, list[Span]]] = {}
        current: tuple[str, list[Span]] | None = None
        starts = {a for a, _b in self.lay.blocks}
        for i, line in enumerate(self.lines):
            if self.lay.kind[i] == "prose" and line.lstrip().startswith("#") and _HEADING.match(line):
                got = (self._label_line(i) or self._sentence(i)) if i in self.hot else None
                current = (got[0], got[1]) if got else None
            elif i in starts and current:
                out[i] = current
        return out


def _runs(rows: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for r in rows:
        if out and out[-1][-1] == r - 1:
            out[-1].append(r)
        else:
            out.append([r])
    return out


def _hot_lines(lay: Layout, words: Words) -> set[int]:
    """The lines that hold a framing word or open with a pair's label (``lexicon.HOT_LOW``): the
    only ones the block-by-block reading looks at."""
    return {lay.line_of(a) for _k, a, _b, _w in words.finditer(lx.HOT_LOW)}


def _has_diff(text: str) -> bool:
    return bool(
        (("```" in text or "@@" in text or "+++" in text) and _DIFF_GATE.search(text))
        or ("\n-" in text and "\n+" in text and _SHAPED_DIFF.search(text))
    )


def _part_frames(
    text: str, lay: Layout, part: str, pos: str, record_security: bool, hot: set[int] | None = None
) -> list[Frame]:
    if hot is None:
        hot = _hot_lines(lay, Words(text, _regions(lay, part, pos != "prose")))
    framer = _Framer(text, lay, part, pos, record_security, hot)
    return framer.frames(framer.sections() if "#" in text else {})


def _in_family(words: str) -> bool:
    """Does a framing name only flaws the detector's families cover (so a clean verdict on Python
    code answers it)?"""
    return bool(lx.IN_FAMILY.search(words)) and not lx.OUT_OF_FAMILY.search(words)


def _request_words(user: str, record_security: bool) -> tuple[list[Span], list[Span], list[Span]]:
    """(upper-case warnings, lower-case warnings that ask for or state a flaw, educational cues) of a
    request, in any language; a question ("is this vulnerable?") states nothing."""
    upper: list[Span] = []
    lower: list[Span] = []
    for m in lx.EXACT_MARKER.finditer(user):
        upper.append(Span("user", m.start(), m.end(), "warning", SCORES.marker, "request", m.group()))
    for sentence_start, sentence in _split_sentences(user):
        local = lx.has_security_word(sentence)
        for a, b, label, value, _strong in _judge(sentence, local, record_security):
            if label != "bad" or _asked(sentence, a):
                continue
            start, end = sentence_start + a, sentence_start + b
            if any(sp.start <= start < sp.end for sp in upper):
                continue
            word = user[start:end]
            sp = Span("user", start, end, "warning", value, "request", word)
            (upper if word.isupper() and len(word) > 3 else lower).append(sp)
    edu: list[Span] = []
    if record_security or lx.SECURITY_CONTEXT.search(user):  # "for my class" with no security word is just a class
        edu = [
            Span("user", m.start(), m.end(), "warning", SCORES.edu_purpose, "request", m.group())
            for m in itertools.chain(lx.EDU_PURPOSE.finditer(user), lx.FRAME_EDU.finditer(user))
        ]
        seen: set[int] = set()
        edu = [sp for sp in edu if not (sp.start in seen or seen.add(sp.start))]  # type: ignore[func-returns-value]
    return upper, lower, edu


def _split_sentences(text: str) -> list[tuple[int, str]]:
    out, start = [], 0
    for m in re.finditer(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])|\n", text):
        if text[start : m.start()].strip():
            out.append((start, text[start : m.start()]))
        start = m.end()
    if text[start:].strip():
        out.append((start, text[start:]))
    return out


def _asks_good(user: str, bad: list[Frame]) -> bool:
    """Does a request that labels its code bad ask for a good version (a good label or cue beside its own)?"""
    labels = {(sp.start, sp.end) for f in bad for sp in f.spans}
    return bool(lx.ASKS_FIX.search(user)) or any(
        not any(a <= m.start() < b for a, b in labels) for m in lx.ASKS_GOOD.finditer(user)
    )


def _asks_flaw(user: str) -> bool:
    """Does a request ask for flawed code (names a flaw, not denied), or name a place built to be vulnerable?"""
    if lx.FRAME_VENUE.search(user):
        return True
    for m in lx.FRAME_FLAW.finditer(user):
        if not _negated(user, m.start(), m.end()):
            return True
    return False


@dataclass
class Framing:
    """What the block-by-block reading found in a record."""

    cls: str
    spans: list[Span]
    framed: list[Frame]  # the code the framing belongs to (bad frames, or the request's target blocks)
    good: list[Frame]


def _find_framing(
    rec: Record, lay: Layout, words: Words, chat: bool, findings_lines: set[int]
) -> tuple[Framing | None, list[Frame]]:
    """The framing of a record read block by block (any language, with or without a finding), and
    every answer frame (for ``--fix``'s target); None when nothing frames code."""
    text, user = rec.assistant, rec.user or ""
    in_request = bool(user) and bool(lx.REQUEST_FRAME_LOW.search(lx.lower_keep(user)))
    # the answer's lines are read when it may frame code as bad, or when the request frames it (its good labels count then)
    hot = _hot_lines(lay, words) if in_request or words.search(lx.BAD_SIDE_LOW) else set()
    in_answer = bool(hot) or _has_diff(text)
    if not (in_answer or in_request):
        return None, []
    # a security text: a security word in the request or the answer's prose and comments, or a finding
    record_security = bool(findings_lines) or lx.has_security_word(user) or words.search(lx.FRAME_SECURITY_LOW)
    pos = "answer" if chat else "prose"
    frames = _part_frames(text, lay, "assistant", pos, record_security, hot) if in_answer else []
    bad = [f for f in frames if f.label == "bad"]
    good = [f for f in frames if f.label == "good"]
    diffs_bad = [f for f in bad if f.diff]  # a diff's removed lines
    labelled_bad = [f for f in bad if not f.diff]
    request_frames: list[Frame] = []
    upper: list[Span] = []
    lower: list[Span] = []
    edu: list[Span] = []
    if in_request:
        upper, lower, edu = _request_words(user, record_security)
        if "```" in user or "\n    " in user or "\n\t" in user:
            ulay = layout(user)
            if ulay.blocks:
                ufr = _part_frames(user, ulay, "user", "request", record_security)
                request_frames = [f for f in ufr if f.label == "bad"]
                said = [sp for sp in upper + lower if sp.score >= SCORES.lower_phrase]
                if said and not request_frames:  # "this snippet is insecure": the code the user pastes
                    covered = {(f.first, f.last) for f in ufr}
                    request_frames = [
                        Frame(
                            "user", a, b, "bad", said, ulay.language_of((a, b)), words=" ".join(sp.label for sp in said)
                        )
                        for a, b in ulay.blocks
                        if (a, b) not in covered
                    ]
    lines = text.split("\n")

    def risky(f: Frame) -> bool:  # a label alone ("Bad:") frames security only on code that touches it
        return bool(lx.RISKY_CODE.search("\n".join(lines[f.first : f.last + 1])))

    # a pair: bad and good halves (labelled, or a diff) in a security text; or the bad half in the request
    if (labelled_bad and [f for f in good if not f.diff] and (record_security or any(map(risky, labelled_bad)))) or (
        diffs_bad and record_security
    ):
        spans = [sp for f in bad + good for sp in f.spans] or _security_spans(rec, chat)
        return Framing("bad_good_pair", spans, bad, good), frames
    if any(f.pair_label for f in request_frames) and (good or _asks_good(user, request_frames)):
        return Framing(
            "bad_good_pair", [sp for f in request_frames + good for sp in f.spans], request_frames, good
        ), frames
    warned = [f for f in labelled_bad if f.strong or record_security or risky(f)]
    warned = [f for f in warned if f.explicit or not _vetoed(f, lay, findings_lines, user)]
    if warned:
        return Framing("warning_framed", [sp for f in warned for sp in f.spans], warned, good), frames
    if request_frames:
        return Framing("warning_framed", [sp for f in request_frames for sp in f.spans], request_frames, good), frames
    # the request frames the answer's code: every block not labelled good
    good_lines = {k for f in good for k in range(f.first, f.last + 1)}
    targets = [
        Frame("assistant", a, b, "bad", [], lay.language_of((a, b)))
        for a, b in lay.blocks
        if not any(a <= k <= b for k in good_lines) and _is_code_block(lay, a, b)
    ]
    if not targets:
        return None, frames
    if upper:
        cls, spans = "warning_framed", upper
    elif edu and _asks_flaw(user):
        cls, spans = "educational_request", edu
    elif (
        lower
        and lx.PRODUCE.search(user)
        and not any(
            s.rstrip().endswith(("?", "\uff1f"))
            for _a, s in _split_sentences(user)
            if any(_a <= sp.start < _a + len(s) for sp in lower)
        )
    ):  # "give me an insecure version", not "why is my code insecure?"
        cls, spans = "warning_framed", lower
    else:
        return None, frames
    for f in targets:
        f.spans, f.words = spans, user
    targets = [f for f in targets if not _vetoed(f, lay, findings_lines, user)]
    if not targets:
        return None, frames
    return Framing(cls, spans, targets, good), frames


def _is_code_block(lay: Layout, a: int, b: int) -> bool:
    """Is a block code worth framing (not a shell prompt that installs a package)?"""
    body = lay.text[lay.starts[a] : lay.line_span(b, b)[1]]
    return not re.fullmatch(
        r"\s*(?:\$\s*)?(?:pip3?|npm|yarn|apt(?:-get)?|brew|go\s+get|cargo)\s+(?:install|add)\b[^\n]*\s*", body
    )


def _vetoed(f: Frame, lay: Layout, findings_lines: set[int], user: str) -> bool:
    """A sentence or request framing Python code the detector read and found clean, naming only
    flaws the detector's families cover: the detector's verdict stands (the words are about what
    the code avoids). Explicit labels and markers are never vetoed."""
    if f.part != "assistant" or f.language not in ("python", "unknown") or lay.lang[f.first] != "python":
        return False
    if lay.fenced and not any(a <= f.first <= b and lang == "python" for a, b, lang in lay.fenced):
        return False  # with fences the detector reads only the Python blocks: it never read this one
    if any(f.first + 1 <= ln <= f.last + 1 for ln in findings_lines):
        return False
    return _in_family(f"{f.words} {user}")


def _security_spans(rec: Record, chat: bool) -> list[Span]:
    """The security words that make a diff a fix (the first in the request, else in the answer's prose)."""
    user = rec.user or ""
    m = lx.FRAME_SECURITY.search(user)
    if m:
        return [Span("user", m.start(), m.end(), "warning", SCORES.lower_phrase, "request", m.group())]
    m = lx.FRAME_SECURITY.search(rec.assistant)
    if m:
        return [
            Span(
                "assistant",
                m.start(),
                m.end(),
                "warning",
                SCORES.lower_phrase,
                "answer" if chat else "prose",
                m.group(),
            )
        ]
    return []


# ---------------------------------------------------------------- the record


def _vulnerable_framing(
    rec: Record, lay: Layout, words: Words, findings: list[dict], blocks, chat: bool
) -> tuple[str, list[Span]]:
    """The class of a record with live vulnerable code, and its framing spans."""
    text, user = rec.assistant, rec.user or ""
    finding_lines = {f["line"] for f in findings}
    answer_warn = [sp for sp in _warnings(text, words, "assistant") if _near(sp, lay, blocks)]
    upper, lower, edu = _request_spans(user)
    if not chat:  # a plain document states its purpose in its own prose
        edu = [
            Span(sp.part, sp.start, sp.end, "warning", SCORES.edu_purpose, sp.position, sp.label)
            for sp in _mentions(text, lay, lx.EDU_PURPOSE, "prose")
            if _near(sp, lay, blocks)
        ]
        edu = edu if lx.SECURITY_CONTEXT.search("\n".join(_sentences(text, lay))) else []
        if edu:  # ... and describes the code there: its lower-case words belong to the purpose
            answer_warn = [sp for sp in answer_warn if sp.position != "prose" or sp.score >= SCORES.upper_phrase]
    bad, good = _pair_labels(words, "assistant")
    if bad and good and _has_clean_part(text, lay, finding_lines, bad + good):
        return "bad_good_pair", bad + good
    if answer_warn or upper:
        return "warning_framed", answer_warn + upper
    if edu:
        return "educational_request", edu
    if lower:
        return "warning_framed", lower
    return "none", []


def _prose_framing(rec: Record, lay: Layout, chat: bool) -> tuple[str, list[Span]]:
    """The class of a record with no vulnerable code: documentation, indirect or none."""
    text, user = rec.assistant, rec.user or ""
    has_code = any(k == "code" for k in lay.kind)
    sentences = _sentences(text, lay)
    # documentation needs a vulnerability term in its prose or request, indirect (no code) an incident or story word
    if not lx.PROSE_SECURITY_LOW.search(("\n".join(sentences) if has_code else text).lower() + "\n" + user.lower()):
        return "none", []
    pos = "answer" if chat else "prose"
    if _is_documentation(sentences, user):
        return "documentation", _mentions(text, lay, lx.VULN_TERMS, pos)
    if not has_code and _is_indirect(text, user):
        return "indirect", _mentions(text, lay, lx.INCIDENT, pos) or _mentions(text, lay, lx.SECURITY_TOPIC, pos)
    return "none", []


def _risk(cls: str, findings: list[dict], vulnerable: bool | None = False) -> float:
    """Evidence (``SCORES``: detector, coarse pattern only, framed code nothing scored, documentation/indirect
    prose) x class weight."""
    if vulnerable is None:
        evidence = SCORES.unscored
    elif findings:
        detected = any(f["source"] not in ("patterns", "patterns:commented") for f in findings)
        evidence = SCORES.detector if detected else SCORES.pattern
    else:
        evidence = SCORES.prose if cls in ("documentation", "indirect") else 0.0
    return round(CLASS_WEIGHT.get(cls, 1.0) * evidence, 3)  # class none with live code: direct code, weight 1


def _code_regions(
    lay: Layout, blocks: list[tuple[int, int]], finding_lines: set[int], frames: list[Frame]
) -> list[tuple[int, int, bool]]:
    """The code ``--fix`` treats, as (first line, last line, holds a finding): the part of each
    block holding a finding, less the parts labelled good (a secure example the detector flags is
    never the target), and every part labelled bad (a framed block the detector cannot score)."""
    good = {k for f in frames if f.label == "good" and f.part == "assistant" for k in range(f.first, f.last + 1)}
    bad = [f for f in frames if f.label == "bad" and f.part == "assistant"]
    found = {ln - 1 for ln in finding_lines}
    out: set[tuple[int, int]] = set()
    for a, b in blocks:
        for line in sorted(k for k in found if a <= k <= b and k not in good):
            frame = next((f for f in bad if f.first <= line <= f.last), None)
            if frame is not None:
                out.add((frame.first, frame.last))
                continue
            lo = hi = line
            while lo > a and lo - 1 not in good:
                lo -= 1
            while hi < b and hi + 1 not in good:
                hi += 1
            out.add((lo, hi))
    out |= {(f.first, f.last) for f in bad}
    merged: list[list[int]] = []
    for a, b in sorted(out):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b, any(a <= k <= b for k in found)) for a, b in merged]


def _diff_findings(text: str, frames: list[Frame], use_bandit: bool) -> list[dict]:
    """Detector findings on the removed lines of Python diffs (without their ``-``), at their lines."""
    lines = text.split("\n")
    out: list[dict] = []
    for f in frames:
        if not (f.diff and f.label == "bad" and f.part == "assistant" and f.language in ("python", "unknown")):
            continue
        rows = list(range(f.first, f.last + 1))
        code = textwrap.dedent("\n".join(lines[k][1:] for k in rows))
        if not lx.names_a_sink(code):
            continue
        for hit in score(code, use_bandit=use_bandit).findings:
            if 0 < hit.line <= len(rows):
                out.append(
                    {
                        "rule": hit.rule,
                        "cwe": hit.cwe,
                        "line": rows[hit.line - 1] + 1,
                        "text": hit.text[:200],
                        "source": f"{hit.source}:diff",
                    }
                )
    return out


def tag_record(rec: Record, *, use_bandit: bool = False, exhaustive: bool = False) -> Tagged:
    """Tag one record (see the module docstring for the classes and their order)."""
    text = rec.assistant
    chat = rec.user is not None or rec.layout in ("messages", "prompt_completion")
    lay = layout(text, rec.language, whole_file=rec.layout == "file")
    findings, parse_ok, skipped = _findings(text, lay, use_bandit, exhaustive)
    words = Words(text, _regions(lay, "assistant", chat), rec.user or "")
    spans: list[Span] = []
    vulnerable: bool | None = False
    language: str | None = None
    if findings:
        finding_lines = {f["line"] for f in findings}
        blocks = sorted({lay.block_of(ln - 1) or (ln - 1, ln - 1) for ln in finding_lines if 0 < ln <= len(lay.kind)})
        cls, spans = _vulnerable_framing(rec, lay, words, findings, blocks, chat)
        framing, frames = _find_framing(rec, lay, words, chat, finding_lines)
        if framing is not None and (cls == "none" or (framing.cls == "bad_good_pair" != cls)):
            # framed in a way the lexicons near a finding miss, or a pair the block labels show
            cls, spans = framing.cls, framing.spans
            frames = frames + [f for f in framing.framed if f not in frames]
        code_score = SCORES.detector if any(f["source"] != "patterns" for f in findings) else SCORES.pattern
        regions = _code_regions(lay, blocks, finding_lines, frames) if frames else [(a, b, True) for a, b in blocks]
        spans += [
            Span("assistant", *lay.line_span(a, b), "vulnerable_code", code_score if hit else SCORES.unscored)
            for a, b, hit in regions
        ]
        vulnerable = True
        language = lay.language_of(next(((a, b) for a, b, hit in regions if hit), blocks[0]))
    else:
        findings, runs = _commented_findings(text, lay, use_bandit)
        if findings:
            cls = "commented_out"
            spans = [
                Span("assistant", *lay.line_span(a, b), "vulnerable_code", SCORES.commented_code, "code_comment")
                for a, b in runs
            ]
        else:
            framing, frames = _find_framing(rec, lay, words, chat, set())
            if framing is not None:
                cls, spans = framing.cls, list(framing.spans)
                findings = _diff_findings(text, framing.framed, use_bandit)
                hit = {f["line"] - 1 for f in findings}
                for fr in framing.framed:
                    part_lay = lay if fr.part == "assistant" else layout(rec.user or "")
                    found = any(fr.first <= k <= fr.last for k in hit) and fr.part == "assistant"
                    spans.append(
                        Span(
                            fr.part,
                            *part_lay.line_span(fr.first, fr.last),
                            "vulnerable_code",
                            SCORES.detector if found else SCORES.unscored,
                        )
                    )
                vulnerable = True if findings else None
                language = framing.framed[0].language
            else:
                cls, spans = _prose_framing(rec, lay, chat)
    for f in findings:
        if 0 < f["line"] <= len(lay.kind):
            spans.append(
                Span(
                    "assistant",
                    *lay.line_span(f["line"] - 1, f["line"] - 1),
                    "finding",
                    SCORES.detector if f["source"] != "patterns" else SCORES.pattern,
                    label=f["rule"],
                )
            )
    positions = {sp.position for sp in spans if sp.position and sp.type in ("warning", "pair_good", "mention")}
    if cls == "commented_out":
        positions.add("code_comment")
    fams = Counter(f["rule"].partition(".")[0] for f in findings)
    return Tagged(
        cls=cls,
        vulnerable=vulnerable if cls != "commented_out" else False,
        positions=sorted(positions, key=POSITIONS.index),
        findings=findings,
        spans=spans,
        risk=_risk(cls, findings, vulnerable),
        family=fams.most_common(1)[0][0] if fams else None,
        cwes=sorted({f["cwe"] for f in findings}),
        parse_ok=parse_ok,
        skipped=skipped,
        language=language,
    )


def _about_security(sentence: str) -> bool:
    """A vulnerability term, an explaining word, a security topic or an incident (on lower-cased text)."""
    return bool(lx.ABOUT_SECURITY_LOW.search(sentence))


def _is_documentation(sentences: list[str], user: str = "") -> bool:
    """Prose that names a vulnerability (or answers a question naming one) and spends at least two
    sentences on security, most of them explaining rather than telling a story (a narrative
    sentence with no vulnerability term does not count)."""
    lows = [s.lower() for s in sentences]
    terms = [bool(lx.VULN_TERMS_LOW.search(s)) for s in lows]
    if not any(terms) and not lx.VULN_TERMS_LOW.search(user.lower()):
        return False
    about = [s for s, term in zip(lows, terms) if _about_security(s) and not (lx.NARRATIVE_LOW.search(s) and not term)]
    return len(about) >= DOC_SENTENCES and len(about) * 2 >= len(sentences)


def _is_indirect(text: str, user: str) -> bool:
    """Prose with no code that touches a security incident: an incident word and a story, news or
    security setting; or a story or news item (asked for, or marked in the text) on a security theme."""
    user = user or ""
    narrative = lx.NARRATIVE.search(text) or lx.NARRATIVE.search(user)
    if lx.INCIDENT.search(text):
        return bool(narrative or lx.SECURITY_TOPIC.search(text) or len(lx.INCIDENT.findall(text)) >= 2)
    theme = lx.INCIDENT.search(user) or lx.SECURITY_TOPIC.search(text) or lx.SECURITY_TOPIC.search(user)
    return bool(narrative and theme)
