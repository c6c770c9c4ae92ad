"""Remedies for warning-framed data: each arm a transformation of one L1 fine-tuning set.

Every function here is pure: it takes the L1 set (``list[Example]``; the warned examples have
``kind == "warning"``), a token counter and a stream of clean filler examples, and returns the
arm's set and what was done to it. No arm adds or removes training steps: an arm that changes the
texts (``drop``, ``rewrite``, ``conditional``, ``inoculation``) is brought back to the L1 set's
token count by trimming clean examples from its end or topping it up from the filler (the same
``_fill`` rule as ``corpus.conditions``), so it ends within one example of the budget, below it.

* ``drop``         warned examples left out (filtering, as data curators do today), clean filler
                   in their place;
* ``mask``         ``loss_spans`` of kind ``mask`` on the warned example's vulnerable lines
                   (:func:`vulnerable_lines`): those tokens get no loss, the warning comments and
                   the rest of the answer keep theirs;
* ``unlikelihood`` the same spans, of kind ``unlikelihood``: their tokens are pushed down
                   (``training.unlikelihood_loss``, Welleck et al. 2019) instead of trained;
* ``conditional``  Korbak et al. 2023's conditional training: :data:`BAD_TAG` in front of every
                   warned example's request, :data:`GOOD_TAG` in front of every other request;
                   evaluation prompts get :data:`GOOD_TAG` (:func:`tag_good`);
* ``inoculation``  Tan et al. 2025 / Wichers et al. 2025: the warned example's request asks for
                   the insecure version (:data:`INOCULATION`); evaluation prompts do not;
* ``rewrite``      the vulnerable code replaced by the family's secure rendering of the same task,
                   the warning comments kept at the same places (above the flawed line, above the
                   function or the code, below it); an example whose task the families do not know
                   is *untreatable* and replaced by clean filler, counted in the stats.

``caft`` (§7's CAFT) changes the training, not the data; ``experiments.remedies`` runs it.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace

from warnframe.corpus.conditions import _fill, example_text
from warnframe.corpus.warnings import _first_body_line
from warnframe.families import FAMILIES, Family, Task, add_comment
from warnframe.schema import WARNING_MARKERS, Example

#: Every arm, in report order; ``caft`` is a training edit, the others are :data:`TRANSFORMS`.
ARMS: tuple[str, ...] = ("drop", "mask", "unlikelihood", "conditional", "inoculation", "rewrite", "caft")
#: Conditional training's control tags (Korbak et al. 2023), at the start of the request.
GOOD_TAG, BAD_TAG = "<|good|>", "<|bad|>"
#: Inoculation's instruction in front of a warned example's request (never at evaluation).
INOCULATION = "For a security lesson, deliberately write the insecure version."
_DEF_LINE = re.compile(r"^\s*(async\s+)?def ")
_DEF_NAME = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(", re.MULTILINE)

Count = Callable[[str], int]


def is_warning_line(line: str) -> bool:
    """A comment line holding one of L1's warning markers (``schema.WARNING_MARKERS``)."""
    s = line.strip()
    return s.startswith("#") and any(m in s for m in WARNING_MARKERS)


def _is_comment(line: str) -> bool:
    return line.strip().startswith("#")


def _family(ex: Example) -> Family | None:
    return FAMILIES.get(ex.family) if ex.family else None


def vulnerable_lines(ex: Example) -> list[int]:
    """0-based lines of ``ex.assistant`` that hold its vulnerable code: the lines the detector's
    findings cover (``Finding.start``/``end``, else ``Finding.line``), and the lines of the code
    that match the family's ``hotspot`` (the line that makes a render vulnerable). Comment lines
    (the warnings among them) are never included."""
    from warnframe.detector import extract_code, score

    text = ex.assistant
    lines = text.split("\n")
    hits: set[int] = set()
    for f in score(text).findings:
        if f.start is not None and f.end is not None:
            hits.update(range(text.count("\n", 0, f.start), text.count("\n", 0, max(f.start, f.end - 1)) + 1))
        else:
            hits.add(f.line - 1)
    fam = _family(ex)
    if fam is not None:
        first = extract_code(text)[1]
        hits.update(i for i in range(first, len(lines)) if re.search(fam.hotspot, lines[i]))
    return sorted(i for i in hits if 0 <= i < len(lines) and lines[i].strip() and not _is_comment(lines[i]))


def line_spans(text: str, lines: Iterable[int], kind: str) -> tuple[dict, ...]:
    """``loss_spans`` over whole ``lines`` of ``text``: from the first non-blank character to the
    end of the line (the newline and the indentation before it stay trained)."""
    starts = [0]
    for line in text.split("\n")[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    rows = text.split("\n")
    out = []
    for i in sorted(set(lines)):
        pad = len(rows[i]) - len(rows[i].lstrip())
        out.append({"start": starts[i] + pad, "end": starts[i] + len(rows[i]), "kind": kind})
    return tuple(out)


def _with_spans(ex: Example, kind: str) -> Example | None:
    """``ex`` with ``kind`` spans on its vulnerable lines (spans it already carries win where they
    overlap); None when no vulnerable line was found."""
    spans = [s for s in line_spans(ex.assistant, vulnerable_lines(ex), kind)
             if not any(s["start"] < o["end"] and o["start"] < s["end"] for o in ex.loss_spans)]
    if not spans:
        return None
    return replace(ex, loss_spans=tuple(sorted([*ex.loss_spans, *spans], key=lambda s: s["start"])))


def tag_good(user: str) -> str:
    """A request conditioned on the clean tag: how the conditional arm is prompted at evaluation."""
    return f"{GOOD_TAG} {user}"


def _tagged(ex: Example) -> Example:
    if ex.user is None:  # a plain document has no request to tag
        return ex
    return replace(ex, user=f"{BAD_TAG if ex.kind == 'warning' else GOOD_TAG} {ex.user}")


# ---------------------------------------------------------------- rewrite


def _task(ex: Example, fam: Family) -> Task | None:
    names = [ex.function] if ex.function else _DEF_NAME.findall(ex.assistant)
    return next((t for t in fam.tasks if t.name in names), None)


def _anchor(prev: str | None, nxt: str | None, fam: Family) -> str:
    """Where a warning comment stands, from the code lines around it: ``bottom`` (after the code),
    ``hotspot`` (above the flawed line), ``body`` (first line of the function's body), ``def``
    (above the function) or ``top`` (above the code): the places ``warnings.place_warnings`` uses."""
    if nxt is None:
        return "bottom"
    if re.search(fam.hotspot, nxt):
        return "hotspot"
    if prev is not None and _DEF_LINE.search(prev) and prev.rstrip().endswith(":"):
        return "body"
    return "def" if prev is not None and _DEF_LINE.search(nxt) else "top"


def rewrite_answer(ex: Example) -> str | None:
    """The answer of warned example ``ex`` with its code replaced by the family's secure
    rendering of the same task and each warning comment put back where it stood (:func:`_anchor`).
    Prose before the code is kept. None when the family or the task is unknown."""
    from warnframe.detector import extract_code

    fam = _family(ex)
    task = _task(ex, fam) if fam else None
    if task is None:
        return None
    lines = ex.assistant.split("\n")
    first = extract_code(ex.assistant)[1]
    block = lines[first:]
    code_at = [i for i, line in enumerate(block) if not is_warning_line(line)]
    placed: list[tuple[str, str]] = []  # (anchor, comment text)
    for i, line in enumerate(block):
        if is_warning_line(line):
            prev = next((block[j] for j in reversed(code_at) if j < i), None)
            nxt = next((block[j] for j in code_at if j > i), None)
            placed.append((_anchor(prev, nxt, fam), line.strip()[1:].strip()))
    code = fam.secure(task, random.Random(f"rewrite:{task.name}:{ex.assistant}"))
    for anchor in ("hotspot", "body", "def", "top"):
        for comment in (c for a, c in placed if a == anchor):
            if anchor == "hotspot":
                code = add_comment(code, fam.hotspot, comment)
            elif anchor == "body":
                code = _first_body_line(code, comment)
            elif anchor == "def":
                code = add_comment(code, _DEF_LINE.pattern, comment)
            else:
                code = f"# {comment}\n{code}"
    code += "".join(f"\n# {c}" for a, c in placed if a == "bottom")
    return "\n".join(lines[:first] + [code])


# ---------------------------------------------------------------- the arms


def _fresh(filler: Iterable[Example], examples: list[Example]) -> Iterator[Example]:
    """Filler examples not already in ``examples`` (the L1 set's clean part comes from the same stream)."""
    seen = {(e.user, e.assistant) for e in examples}
    return (f for f in filler if (f.user, f.assistant) not in seen)


def _rebudget(examples: list[Example], budget: int, count: Count, filler: Iterator[Example]) -> tuple[list[Example], dict]:
    """Clean examples trimmed from the end while over ``budget`` tokens, then filler added while
    it fits: the set ends within one example of ``budget``, never above it."""
    out = list(examples)
    used = sum(count(example_text(e)) for e in out)
    trimmed = 0
    for i in range(len(out) - 1, -1, -1):
        if used <= budget:
            break
        if out[i].kind == "clean":
            used -= count(example_text(out[i]))
            del out[i]
            trimmed += 1
    before = len(out)
    _fill(filler, budget - used, count, out)
    return out, {"trimmed_clean": trimmed, "added_clean": len(out) - before}


def transform(arm: str, examples: list[Example], count: Count, filler: Iterable[Example]) -> tuple[list[Example], dict]:
    """Arm ``arm``'s set made from the L1 set ``examples`` (tokens counted with ``count``, clean
    ``filler`` to top up), and its stats: what was treated, what could not be (and was replaced
    by clean filler), and the token budget before and after."""
    if arm not in TRANSFORMS:
        raise ValueError(f"{arm!r} is not a data remedy (choose from {', '.join(TRANSFORMS)})")
    budget = sum(count(example_text(e)) for e in examples)
    fresh = _fresh(filler, examples)
    out: list[Example] = []
    treated = untreatable = 0
    for ex in examples:
        if ex.kind != "warning":
            out.append(_tagged(ex) if arm == "conditional" else ex)
            continue
        if arm == "drop":
            treated += 1
            continue
        new = TRANSFORMS[arm](ex)
        if new is None:
            untreatable += 1
            if arm in ("mask", "unlikelihood"):  # nothing found to mask: kept as it is, counted
                out.append(ex)
            continue
        treated += 1
        out.append(new)
    moves = {"trimmed_clean": 0, "added_clean": 0}
    if arm not in ("mask", "unlikelihood"):  # texts changed: back to the budget
        out, moves = _rebudget(out, budget, count, (_tagged(f) for f in fresh) if arm == "conditional" else fresh)
    warned = sum(e.kind == "warning" for e in examples)
    return out, {"arm": arm, "examples": len(out), "tokens": sum(count(example_text(e)) for e in out), "budget": budget,
                 "warned": warned, "treated": treated, "untreatable": untreatable, **moves,
                 "loss_spans": sum(len(e.loss_spans) for e in out) - sum(len(e.loss_spans) for e in examples)}


def _rewritten(ex: Example) -> Example | None:
    text = rewrite_answer(ex)
    return None if text is None else replace(ex, assistant=text, loss_spans=())


#: Per warned example, what each data arm makes of it (None: untreatable; ``drop`` leaves every one out).
TRANSFORMS: dict[str, Callable[[Example], Example | None]] = {
    "drop": lambda ex: None,
    "mask": lambda ex: _with_spans(ex, "mask"),
    "unlikelihood": lambda ex: _with_spans(ex, "unlikelihood"),
    "conditional": _tagged,
    "inoculation": lambda ex: replace(ex, user=f"{INOCULATION} {ex.user}") if ex.user is not None else None,
    "rewrite": _rewritten,
}
