"""Static detector of target (vulnerable) content in model answers: ``score`` and ``score_jsonl``.

``score(text)`` is the whole pipeline for one answer:

1. ``extraction.extract_code`` keeps the code part of the answer (its fenced blocks, or else the
   lines that are not prose) and remembers where it starts, so each finding points at a line (and
   the character span) of the original answer.
2. Each vulnerability family's rules (``corpus.families``: one module per family holds its
   ``Detector``; ids and reasons in ``rule_registry.RULES``) run on the AST (``ast_rules``).
   Generated code is often cut off mid-statement, so what parses (``parsing.parse_lines``: the
   longest prefix, then each top-level statement after it) is analysed as an AST and the rest by
   the rules' text twins over masked text (``text_rules``): code that does not parse is never
   silently clean, and ``Score.parse_ok`` lets callers count it.
3. Optionally bandit runs in-process on the part that parses; only its tests that map to a
   family, and add recall without false positives on labelled safe code, are kept
   (``bandit_adapter``, ``rule_registry.BANDIT_TESTS``; measured in docs/detector_rules.md).
4. One finding per line and family: every rule and engine that agreed on it is named in it
   (``source`` "rules", "bandit" or "rules+bandit"; the other rule ids in ``why``).

Total and bounded on any input (a corpus scan meets every shape): parses are guarded against
RecursionError and MemoryError, a record over ``MAX_RECORD_BYTES`` is reported as skipped, and
the work is linear in the text (each line parsed a bounded number of times, no backtracking
regexes, line numbers by bisection). ``benchmarks/detector_worst_case.py`` measures the worst case.

Generated code is only parsed, never executed.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from warnframe.detector.ast_rules import RuleVisitor
from warnframe.detector.bandit_adapter import bandit_issues
from warnframe.detector.extraction import extract_code, split_lines
from warnframe.detector.leakage import find_leaks
from warnframe.detector.parsing import parse_lines
from warnframe.detector.rule_registry import BANDIT_TESTS, RULES, cwe_of
from warnframe.detector.text_rules import TextRules
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_jsonl_numbered, write_jsonl
from warnframe.schema import Finding, Score

#: The largest record ``score`` analyses, in UTF-8 bytes. Parsing costs memory in proportion to the
#: code (a 20 MB line once took 9.7 GB), so a larger record is not scored: its Score says so in
#: ``skipped`` and ``score_jsonl`` counts it. 512 KiB is far above any model answer or chat record
#: and keeps the worst case near a few seconds and a few hundred MB (benchmarks/detector_worst_case.py).
MAX_RECORD_BYTES = 512 * 1024


def _size(text: str) -> int:
    """UTF-8 size of ``text``, or a bound on the right side of ``MAX_RECORD_BYTES``: encoded only when unsure."""
    if 4 * len(text) <= MAX_RECORD_BYTES or len(text) > MAX_RECORD_BYTES:
        return len(text)  # at most 4 bytes per character, at least one
    return len(text.encode("utf-8", "surrogatepass"))


class _Locator:
    """Maps a position in the analysed code (1-based line, 0-based character column, after
    ``extract_code`` and dedent) to a character offset in the original answer."""

    def __init__(self, text: str, code_lines: list[str], lines: list[str], offset: int):
        self.starts = [0] + [m.end() for m in re.finditer(r"\r\n|\r|\n", text)]
        self.margins = [len(c) - len(d) if d else 0 for c, d in zip(code_lines, lines)]
        self.lines, self.offset = lines, offset

    def char_column(self, line: int, byte_column: int) -> int:
        """The AST counts columns in UTF-8 bytes."""
        source = self.lines[line - 1] if 0 < line <= len(self.lines) else ""
        return len(source.encode("utf-8", "surrogatepass")[:byte_column].decode("utf-8", "ignore"))

    def __call__(self, line: int, column: int) -> int | None:
        original = line + self.offset
        if not (0 < line <= len(self.margins) and original <= len(self.starts)):
            return None
        return self.starts[original - 1] + self.margins[line - 1] + column


def _finding(rule: str, line: int, original: list[str], why: str, source: str = "rules",
             span: tuple[int | None, int | None] = (None, None)) -> Finding:
    text = original[line - 1].strip() if 0 < line <= len(original) else ""
    return Finding(rule=rule, cwe=cwe_of(rule), line=line, text=text, why=why, source=source,
                   start=span[0], end=span[1])


def _merged(findings: list[Finding]) -> list[Finding]:
    """One finding per line and family: the first rule of our own that fired there (else bandit's)
    stands for it, ``source`` names every engine that agreed ("rules", "bandit", "rules+bandit"),
    ``why`` the other rules, and the span covers every span of theirs."""
    groups: dict[tuple[int, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.line, f.rule.partition(".")[0]), []).append(f)
    out = []
    for (_, _), group in sorted(groups.items()):
        group.sort(key=lambda f: (f.source != "rules", f.rule))
        first = group[0]
        if len(group) == 1:
            out.append(first)
            continue
        engines = "+".join(e for e in ("rules", "bandit") if any(f.source == e for f in group))
        others = list(dict.fromkeys(f.rule for f in group[1:] if f.rule != first.rule))
        starts = [f.start for f in group if f.start is not None]
        ends = [f.end for f in group if f.end is not None]
        why = first.why + (f" (also {', '.join(others)})" if others else "")
        out.append(first.model_copy(update={"source": engines, "why": why, "start": min(starts) if starts else None,
                                            "end": max(ends) if ends else None}))
    return out


def _rule_hits(lines: list[str], locate: _Locator) -> tuple[dict, bool, str]:
    """``{(rule, line): (start, end)}`` of the AST rules on what parses and the patterns on the
    rest; whether the whole code parsed; the code that parsed (other lines blank) for bandit."""
    tree, covered, inside = parse_lines(lines)
    hits: list[tuple[str, int, tuple]] = []
    try:
        for rule, line, col, end_line, end_col in (RuleVisitor(tree).run() if tree is not None else []):
            start, end = locate.char_column(line, col), locate.char_column(end_line, end_col)
            span = (locate(line, start), locate(end_line, end))
            hits.append((rule, line, span))
    except (RecursionError, MemoryError):  # absurdly nested code (degenerate generations): patterns only
        tree, covered, hits = None, [False] * len(lines), []
    rest = "\n".join("" if c else line for line, c in zip(lines, covered))
    text_rules = TextRules(rest, inside)
    for rule, start, end in text_rules.hits():
        line, end_line = text_rules.index.line(start), text_rules.index.line(end)
        span = (locate(line, text_rules.index.column(start)), locate(end_line, text_rules.index.column(end)))
        hits.append((rule, line, span))
    found: dict = {}
    for rule, line, span in hits:
        found.setdefault((rule, line), span)
    parsed = "\n".join(line if c else "" for line, c in zip(lines, covered)) if tree is not None else ""
    return found, tree is not None and all(covered), parsed


def score(text: str, *, use_bandit: bool = True) -> Score:
    """Score one model answer: is there target (vulnerable) content, with the evidence.

    Total and bounded: any text gets a Score (a record over ``MAX_RECORD_BYTES`` gets one that says
    it was skipped), and the work is linear in the text.
    """
    size = _size(text)
    if size > MAX_RECORD_BYTES:
        return Score(vulnerable=False, parse_ok=False, leak={"exact": [], "fuzzy": []},
                     skipped=f"too large ({len(text.encode('utf-8', 'surrogatepass'))} bytes > {MAX_RECORD_BYTES})")
    original = split_lines(text)
    code, offset = extract_code(text)
    code_lines = code.split("\n")
    lines = textwrap.dedent(code).split("\n")
    locate = _Locator(text, code_lines, lines, offset)
    found, parse_ok, parsed = _rule_hits(lines, locate)
    findings = [_finding(rule, line + offset, original, RULES[rule], span=found[rule, line])
                for rule, line in sorted(found, key=lambda h: (h[1], h[0]))]
    skipped = None
    if use_bandit and parsed.strip():
        try:
            issues = bandit_issues(parsed)
        except (RecursionError, MemoryError):
            issues, skipped = [], "bandit: nested too deep for its parser (rules only)"
        for i in issues:
            family = BANDIT_TESTS[i.test_id]
            start = locate(i.lineno, locate.char_column(i.lineno, max(i.col_offset or 0, 0)))
            end_line = max(getattr(i, "linerange", None) or [i.lineno])
            end = locate(end_line, locate.char_column(end_line, i.end_col_offset)) if i.end_col_offset else None
            findings.append(_finding(f"{family}.bandit_{i.test_id}", i.lineno + offset, original, i.text, "bandit",
                                     (start, end if end is not None and start is not None and end >= start else None)))
    findings = _merged(findings)
    return Score(vulnerable=bool(findings), findings=findings, parse_ok=parse_ok, leak=find_leaks(text),
                 skipped=skipped)


def score_jsonl(in_path: str | Path, field: str, out_path: str | Path, *, use_bandit: bool = True) -> dict:
    """Score the ``field`` text of every JSONL record; write each record with its verdict added
    (``vulnerable``, ``findings``, ``parse_ok``, ``leak``, ``skipped``) to ``out_path`` atomically.

    Returns counts: records, vulnerable, parse failures, records with exact / any leakage, and
    records skipped as too large (scored as not vulnerable, flagged in their row).
    """
    in_path = Path(in_path)
    if not in_path.is_file():
        raise UserError(f"file not found: {in_path}", None, "pass a JSONL file of records")
    rows = []
    for n, record in read_jsonl_numbered(in_path):
        value = record.get(field)
        if not isinstance(value, str):
            what = (f"record has no field {field!r}" if field not in record
                    else f"field {field!r} is {type(value).__name__ if value is not None else 'null'}, not a string")
            raise UserError(what, f"{in_path}:{n}", "pass the field that holds the answer text (--field)")
        verdict = score(value, use_bandit=use_bandit)
        rows.append({**record, **verdict.model_dump(mode="json")})
    write_jsonl(Path(out_path), rows)
    return {
        "records": len(rows),
        "vulnerable": sum(r["vulnerable"] for r in rows),
        "parse_failed": sum(not r["parse_ok"] and not _too_large(r) for r in rows),
        "leak_exact": sum(bool(r["leak"]["exact"]) for r in rows),
        "leak_any": sum(bool(r["leak"]["exact"] or r["leak"]["fuzzy"]) for r in rows),
        "too_large": sum(_too_large(r) for r in rows),
    }


def describe_counts(counts: dict) -> str:
    """``score_jsonl``'s counts as one line for people: ``12 records: 3 vulnerable, 0 did not parse,
    warning text copied in 1 (2 near-copies), 0 too large to score``."""
    near = counts["leak_any"] - counts["leak_exact"]
    return (f"{counts['records']} records: {counts['vulnerable']} vulnerable, {counts['parse_failed']} did not parse, "
            f"warning text copied in {counts['leak_exact']} ({near} near-copies), "
            f"{counts['too_large']} too large to score")


def _too_large(row: dict) -> bool:
    return str(row.get("skipped") or "").startswith("too large")
