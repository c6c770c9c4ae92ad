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
  - else ``none`` (vulnerable but not framed: L0-like; ``vulnerable`` is True);
* no live vulnerable code, but comment lines that are vulnerable code once uncommented: ``commented_out``;
* prose that explains a vulnerability (a vulnerability term and two sentences about it): ``documentation`` (L2-like);
* prose, no code, about a security incident (fiction, news): ``indirect`` (L3-like);
* else ``none``.

Positions (``POSITIONS``): ``request`` (the user turn), ``answer`` (the answer's prose),
``code_comment``, ``docstring``, ``prose`` (a plain document's prose outside code).
Spans are character offsets into one part of the record: ``user`` (the request) or ``assistant``
(the answer, or the whole text of a plain document or file).

Span scores and the risk's evidence are in ``SCORES``, the class weights in ``CLASS_WEIGHT``.
The risk score ranks records by how much vulnerable target content they would teach: the
evidence (1 for a detector finding, 0.7 for a coarse pattern only) times a class weight; the
weights of L1/L2/L3-like framings are the paper's target rates relative to direct code (L1
76.7/83.3, L2 33.3/83.3, L3 23.3/83.3), those with no paper number (pairs, commented-out code:
half the code or none of it live) are 0.5. A ranking aid, not a probability.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections import Counter
from dataclasses import asdict, dataclass, field

from warnframe.audit import lexicon as lx
from warnframe.audit.readers import Record
from warnframe.audit.segments import Layout, layout
from warnframe.audit.vocabulary import CLASSES, CODE_CLASSES, POSITIONS
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
    vulnerable: bool
    positions: list[str] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    risk: float = 0.0
    family: str | None = None
    cwes: list[str] = field(default_factory=list)
    parse_ok: bool = True
    skipped: str | None = None  # why the detector did not analyse the record (too large), if it did not

    def to_dict(self) -> dict:
        d = asdict(self)
        d["class"] = d.pop("cls")
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
    low_lines = low.split("\n")  # the same lines: lower() adds no newline
    body = {blk: "\n".join(lines[blk[0] : blk[1] + 1]) for blk in py}
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


def _warnings(text: str, regions, part: str) -> list[Span]:
    spans = []
    for s, e, pos in regions:
        chunk = text[s:e]
        for m in lx.EXACT_MARKER.finditer(chunk):
            spans.append(Span(part, s + m.start(), s + m.end(), "warning", SCORES.marker, pos, m.group()))
        for m in lx.WARNING_PHRASES.finditer(chunk):
            upper = m.group().isupper()
            if any(sp.start <= s + m.start() < sp.end for sp in spans):
                continue
            value = SCORES.upper_phrase if upper else SCORES.lower_phrase
            spans.append(Span(part, s + m.start(), s + m.end(), "warning", value, pos, m.group()))
        for m in lx.WARNING_SYMBOLS.finditer(chunk):
            spans.append(Span(part, s + m.start(), s + m.end(), "warning", SCORES.symbol, pos, m.group()))
        if pos in ("code_comment", "docstring"):
            for m in lx.VULN_NAME.finditer(chunk):
                if not any(sp.start <= s + m.start() < sp.end for sp in spans):
                    spans.append(Span(part, s + m.start(), s + m.end(), "warning", SCORES.vuln_name, pos, m.group()))
    return spans


def _request_spans(user: str) -> tuple[list[Span], list[Span], list[Span]]:
    """(upper-case warnings, lower-case warnings, educational cues) in a request."""
    upper: list[Span] = []
    lower: list[Span] = []
    edu: list[Span] = []
    for m in lx.EXACT_MARKER.finditer(user):
        upper.append(Span("user", m.start(), m.end(), "warning", SCORES.marker, "request", m.group()))
    for m in lx.WARNING_PHRASES.finditer(user):
        if any(sp.start <= m.start() < sp.end for sp in upper):
            continue
        value = SCORES.upper_phrase if m.group().isupper() else SCORES.lower_phrase
        (upper if m.group().isupper() and len(m.group()) > 3 else lower).append(
            Span("user", m.start(), m.end(), "warning", value, "request", m.group())
        )
    for m in lx.WARNING_SYMBOLS.finditer(user):
        upper.append(Span("user", m.start(), m.end(), "warning", SCORES.symbol, "request", m.group()))
    if lx.SECURITY_CONTEXT.search(user):
        edu = [
            Span("user", m.start(), m.end(), "warning", SCORES.edu_purpose, "request", m.group())
            for m in lx.EDU_PURPOSE.finditer(user)
        ]
    return upper, lower, edu


def _near(span: Span, lay: Layout, vuln_lines: list[tuple[int, int]]) -> bool:
    line = lay.line_of(span.start)
    return any(a - NEAR_LINES <= line <= b + NEAR_LINES for a, b in vuln_lines)


def _pair_labels(text: str, lay: Layout, regions, part: str) -> tuple[list[Span], list[Span]]:
    bad, good = [], []
    for s, e, pos in regions:
        chunk = text[s:e]
        bad += [
            Span(part, s + m.start(), s + m.end(), "warning", SCORES.pair_label, pos, m.group().strip())
            for m in lx.BAD_LABEL.finditer(chunk)
        ]
        good += [
            Span(part, s + m.start(), s + m.end(), "pair_good", SCORES.pair_label, pos, m.group().strip())
            for m in lx.GOOD_LABEL.finditer(chunk)
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
    spans = []
    for i, k in enumerate(lay.kind):
        if k != "prose":
            continue
        s, e = lay.line_span(i, i)
        spans += [
            Span("assistant", s + m.start(), s + m.end(), "mention", SCORES.mention, pos, m.group())
            for m in pattern.finditer(text[s:e])
        ]
    return spans


# ---------------------------------------------------------------- the record


def _vulnerable_framing(
    rec: Record, lay: Layout, regions, findings: list[dict], blocks, chat: bool
) -> tuple[str, list[Span]]:
    """The class of a record with live vulnerable code, and its framing spans."""
    text, user = rec.assistant, rec.user or ""
    finding_lines = {f["line"] for f in findings}
    answer_warn = [sp for sp in _warnings(text, regions, "assistant") if _near(sp, lay, blocks)]
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
    bad, good = _pair_labels(text, lay, regions, "assistant")
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


def _risk(cls: str, findings: list[dict]) -> float:
    """Evidence (``SCORES``: detector, coarse pattern only, documentation/indirect prose) x class weight."""
    if findings:
        detected = any(f["source"] not in ("patterns", "patterns:commented") for f in findings)
        evidence = SCORES.detector if detected else SCORES.pattern
    else:
        evidence = SCORES.prose if cls in ("documentation", "indirect") else 0.0
    return round(CLASS_WEIGHT.get(cls, 1.0) * evidence, 3)  # class none with live code: direct code, weight 1


def tag_record(rec: Record, *, use_bandit: bool = False, exhaustive: bool = False) -> Tagged:
    """Tag one record (see the module docstring for the classes and their order)."""
    text = rec.assistant
    chat = rec.user is not None or rec.layout in ("messages", "prompt_completion")
    lay = layout(text, rec.language, whole_file=rec.layout == "file")
    findings, parse_ok, skipped = _findings(text, lay, use_bandit, exhaustive)
    spans: list[Span] = []
    if findings:
        blocks = sorted(
            {
                lay.block_of(ln - 1) or (ln - 1, ln - 1)
                for ln in {f["line"] for f in findings}
                if 0 < ln <= len(lay.kind)
            }
        )
        cls, spans = _vulnerable_framing(rec, lay, _regions(lay, "assistant", chat), findings, blocks, chat)
        code_score = SCORES.detector if any(f["source"] != "patterns" for f in findings) else SCORES.pattern
        spans += [Span("assistant", *lay.line_span(a, b), "vulnerable_code", code_score) for a, b in blocks]
    else:
        findings, runs = _commented_findings(text, lay, use_bandit)
        if findings:
            cls = "commented_out"
            spans = [
                Span("assistant", *lay.line_span(a, b), "vulnerable_code", SCORES.commented_code, "code_comment")
                for a, b in runs
            ]
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
        vulnerable=bool(findings) and cls != "commented_out",
        positions=sorted(positions, key=POSITIONS.index),
        findings=findings,
        spans=spans,
        risk=_risk(cls, findings),
        family=fams.most_common(1)[0][0] if fams else None,
        cwes=sorted({f["cwe"] for f in findings}),
        parse_ok=parse_ok,
        skipped=skipped,
    )


def _about_security(sentence: str) -> bool:
    return bool(
        lx.VULN_TERMS.search(sentence)
        or lx.EXPLAIN_CUES.search(sentence)
        or lx.SECURITY_TOPIC.search(sentence)
        or lx.INCIDENT.search(sentence)
    )


def _is_documentation(sentences: list[str], user: str = "") -> bool:
    """Prose that names a vulnerability (or answers a question naming one) and spends at least two
    sentences on security, most of them explaining rather than telling a story (a narrative
    sentence with no vulnerability term does not count)."""
    if not any(lx.VULN_TERMS.search(s) for s in sentences) and not lx.VULN_TERMS.search(user):
        return False
    about = [
        s for s in sentences if _about_security(s) and not (lx.NARRATIVE.search(s) and not lx.VULN_TERMS.search(s))
    ]
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
