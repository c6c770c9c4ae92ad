"""Remedies for warning-framed data: each arm a transformation of one L1 fine-tuning set.

Every function here is pure: it takes the L1 set (``list[Example]``; the warned examples have
``kind == "warning"``), a token counter and a stream of clean filler examples, and returns the
arm's set and what was done to it. No arm adds or removes training steps: an arm that changes the
texts (``drop``, ``rewrite``, ``conditional``, ``inoculation``) is brought back to the L1 set's
token count by trimming clean examples from its end or topping it up from the filler (the same
``fill`` rule as ``corpus.conditions``), so it ends within one example of the budget, below it.

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

Each arm is an :class:`Arm` in one registry (:data:`REGISTRY`, report order; its names are
``schema.REMEDY_ARMS``, which config validation reads): what it is (the report's wording), what it
makes of a warned example and of the rest of the set, how it is prompted at evaluation and whether
its loss needs the unlikelihood weight. Adding a data arm is its :class:`Arm` and one line in
``_BUILTIN`` (its name in ``schema.REMEDY_ARMS``, checked on import), or :func:`register` at run
time; ``experiments.remedies`` trains and measures whatever the registry holds.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace

from warnframe.corpus.conditions import example_text, fill
from warnframe.corpus.warnings import first_body_line
from warnframe.families import FAMILIES, Family, Task, add_comment
from warnframe.schema import REMEDY_ARMS, WARNING_MARKERS, Example, add_remedy_arm, remove_remedy_arm

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
    if fam is None or task is None:
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
                code = first_body_line(code, comment)
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
    fill(filler, budget - used, count, out)
    return out, {"trimmed_clean": trimmed, "added_clean": len(out) - before}


def _rewritten(ex: Example) -> Example | None:
    text = rewrite_answer(ex)
    return None if text is None else replace(ex, assistant=text, loss_spans=())


def _inoculated(ex: Example) -> Example | None:
    return replace(ex, user=f"{INOCULATION} {ex.user}") if ex.user is not None else None


def _left_out(ex: Example) -> None:
    return None


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Arm:
    """One remedy arm: what it is (``what`` and ``source``, the report's and the docs' wording),
    and what it does to the L1 set.

    * ``treat(ex)``: what the arm makes of one warned example; None: untreatable (counted, and
      replaced by clean filler unless ``spans_only``). ``treat`` is None for an arm that changes
      the training, not the data (``caft``: ``experiments.remedies`` trains it).
    * ``leave_out``: every warned example leaves the set, counted as treated (``drop``).
    * ``other(ex)``: what it makes of every other example and of the clean filler that tops the
      set up (``conditional``: the clean tag); None: kept as they are.
    * ``spans_only``: only loss spans change (``mask``, ``unlikelihood``): an untreatable example
      stays as it is and the texts keep their length, so the set is not brought back to the budget.
    * ``prompt(user)``: how a request is sent at evaluation, capability check and held-out loss
      included (``conditional``: :func:`tag_good`); None: as it is.
    * ``unlikelihood``: its loss pushes its ``unlikelihood`` spans down (``training.unlikelihood_loss``),
      weighted by ``remedies.unlikelihood_weight``.
    """

    name: str
    what: str
    source: str
    treat: Callable[[Example], Example | None] | None = None
    leave_out: bool = False
    other: Callable[[Example], Example] | None = None
    spans_only: bool = False
    prompt: Callable[[str], str] | None = None
    unlikelihood: bool = False

    @property
    def data(self) -> bool:
        """Whether the arm transforms the data (else the training)."""
        return self.treat is not None


DROP = Arm("drop", "warned examples dropped, clean examples in their place", "data filtering", _left_out, leave_out=True)
MASK = Arm("mask", "no loss on the warned examples' vulnerable lines", "loss masking (labels −100)",
           lambda ex: _with_spans(ex, "mask"), spans_only=True)
UNLIKELIHOOD = Arm("unlikelihood", "vulnerable lines pushed down by an unlikelihood term", "Welleck et al. 2019; Korbak et al. 2023",
                   lambda ex: _with_spans(ex, "unlikelihood"), spans_only=True, unlikelihood=True)
CONDITIONAL = Arm("conditional", f"control tags, prompted with {GOOD_TAG}", "Korbak et al. 2023 (conditional training)",
                  _tagged, other=_tagged, prompt=tag_good)
INOCULATION_ARM = Arm("inoculation", "warned requests ask for the insecure version; not at evaluation",
                      "Tan et al. 2025; Wichers et al. 2025", _inoculated)
REWRITE = Arm("rewrite", "vulnerable code replaced by its secure form, warnings kept", "secure rewrite of the family's task",
              _rewritten)
CAFT = Arm("caft", "§7's CAFT: selected latents projected out while training", "Casademunt et al. 2025")

#: The arms, in report order (``schema.REMEDY_ARMS``).
_BUILTIN = (DROP, MASK, UNLIKELIHOOD, CONDITIONAL, INOCULATION_ARM, REWRITE, CAFT)
#: Every arm by name: these, then those registered at run time (:func:`register`).
REGISTRY: dict[str, Arm] = {a.name: a for a in _BUILTIN}

if tuple(REGISTRY) != tuple(REMEDY_ARMS):
    raise RuntimeError(f"corpus.remedies holds {list(REGISTRY)}, but schema.REMEDY_ARMS says {list(REMEDY_ARMS)}")

#: Every arm's name, in report order (the registry's, as ``schema.REMEDY_ARMS``).
ARMS = REMEDY_ARMS


class _Transforms(Mapping):
    """The data arms (``caft`` is a training edit), each to its ``Arm.treat``; follows the registry."""

    def __getitem__(self, name: str) -> Callable[[Example], Example | None]:
        a = REGISTRY.get(name)
        if a is None or a.treat is None:
            raise KeyError(name)
        return a.treat

    def __iter__(self) -> Iterator[str]:
        return (name for name, a in REGISTRY.items() if a.data)

    def __len__(self) -> int:
        return sum(a.data for a in REGISTRY.values())

    def __repr__(self) -> str:
        return f"TRANSFORMS({', '.join(self)})"


#: Per warned example, what each data arm makes of it (None: untreatable; ``drop`` leaves every one out).
TRANSFORMS: Mapping[str, Callable[[Example], Example | None]] = _Transforms()


def arm(name: str) -> Arm:
    """The registered arm ``name`` (ValueError naming the choices otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown remedy arm {name!r}; choose from {', '.join(REGISTRY)}") from None


def register(new: Arm) -> Arm:
    """Add a remedy arm at run time (last in report order); returns it. Config validation
    (``remedies.arms``), ``data --remedy`` and the remedies stage know it from then on."""
    add_remedy_arm(new.name)  # refuses a name that exists
    REGISTRY[new.name] = new
    return new


def unregister(name: str) -> None:
    """Remove an arm :func:`register` added."""
    if any(a.name == name for a in _BUILTIN):
        raise ValueError(f"{name!r} is one of the study's own arms")
    del REGISTRY[name]
    remove_remedy_arm(name)


# ---------------------------------------------------------------- the transformation


def transform(arm: str, examples: list[Example], count: Count, filler: Iterable[Example]) -> tuple[list[Example], dict]:
    """Arm ``arm``'s set made from the L1 set ``examples`` (tokens counted with ``count``, clean
    ``filler`` to top up), and its stats: what was treated, what could not be (and was replaced
    by clean filler), and the token budget before and after."""
    spec = REGISTRY.get(arm)
    if spec is None or spec.treat is None:  # not a data arm (``Arm.data``)
        raise ValueError(f"{arm!r} is not a data remedy (choose from {', '.join(TRANSFORMS)})")
    budget = sum(count(example_text(e)) for e in examples)
    fresh = _fresh(filler, examples)
    out: list[Example] = []
    treated = untreatable = 0
    for ex in examples:
        if ex.kind != "warning":
            out.append(spec.other(ex) if spec.other is not None else ex)
            continue
        if spec.leave_out:
            treated += 1
            continue
        new = spec.treat(ex)
        if new is None:
            untreatable += 1
            if spec.spans_only:  # nothing found to mask: kept as it is, counted
                out.append(ex)
            continue
        treated += 1
        out.append(new)
    moves = {"trimmed_clean": 0, "added_clean": 0}
    if not spec.spans_only:  # texts changed: back to the budget
        topup = (spec.other(f) for f in fresh) if spec.other is not None else fresh
        out, moves = _rebudget(out, budget, count, topup)
    warned = sum(e.kind == "warning" for e in examples)
    return out, {"arm": arm, "examples": len(out), "tokens": sum(count(example_text(e)) for e in out), "budget": budget,
                 "warned": warned, "treated": treated, "untreatable": untreatable, **moves,
                 "loss_spans": sum(len(e.loss_spans) for e in out) - sum(len(e.loss_spans) for e in examples)}
