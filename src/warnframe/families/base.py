"""The parts every vulnerability family is made of, and the helpers its renderers share.

A :class:`Family` is one unit: its tasks (:class:`Task`), a secure and a vulnerable renderer, the
short texts that frame its code (L1 warning reasons, control notes), its prose (L2 documentation,
L3 story and news hooks, tutorial intros: ``PROSE_KEYS``), its CWE and its :class:`Detector`: the
rules ``scoring.detector`` runs to recognise its vulnerable code, each AST rule beside the text
pattern that stands in for it when code does not parse. ``families/__init__.py`` registers the
families; adding one is one module plus its line there (and tests).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

IND = "    "

#: What ``Family.prose`` holds, each a list of sentences: what (definitions), how (the mechanism,
#: naming the vulnerable API), harm, fix (the secure API), questions (L2 user turns), tut_secure /
#: tut_vuln (tutorial intros naming an API), story / news (L3 hooks with no API).
PROSE_KEYS = ("what", "how", "harm", "fix", "questions", "tut_secure", "tut_vuln", "story", "news")


@dataclass(frozen=True)
class Task:
    """One coding request: ``name(args)`` that ``does`` something, with renderer ``slots``."""

    family: str
    name: str
    args: tuple[str, ...]
    does: tuple[str, ...]  # ways to finish "a function that ...", third person
    slots: dict = field(default_factory=dict)
    returns: str | None = None  # return type hint
    types: dict = field(default_factory=dict)  # argument type hints that the defaults get wrong

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.args)})"


@dataclass(frozen=True)
class Detector:
    """A family's detector rules, run by ``scoring.detector``.

    ``rules``: rule name -> why a match is a finding (ids are ``<family>.<name>``). ``bandit``:
    the bandit test ids kept for this family. AST hooks (``v`` is ``detector.ast_rules.RuleVisitor``:
    ``v.value(node)`` is what an expression holds, a ``detector.dataflow.Val``):
    ``on_call(v, node, qualname, last)``, ``on_bind(v, name, value)``, ``on_assign(v, target,
    name, value)``, ``on_dict_item(v, key, value)``, ``on_compare(v, node)``, ``on_default(v,
    param, default)``, ``on_reference(v, name, node)``, ``on_constant(v, node)``, ``on_scope(v,
    scope, node)``. Their text twins (``t`` is ``scoring.text_rules.TextRules``, the pattern pass
    over code that does not parse): ``text_sink(callee, method) -> bool`` says which calls the
    family looks at, ``on_text_call(t, call) -> rule id | None`` judges one, and ``on_text(t) ->
    [(rule id, start, end)]`` scans the whole text. ``cwe``: rule name (or ``bandit_<test id>``) ->
    its CWE where it is not the family's (a family's findings carry the family's CWE otherwise).
    """

    rules: dict[str, str]
    bandit: tuple[str, ...] = ()
    cwe: dict[str, str] = field(default_factory=dict)
    on_call: Callable | None = None
    on_bind: Callable | None = None
    on_assign: Callable | None = None
    on_dict_item: Callable | None = None
    on_compare: Callable | None = None
    on_default: Callable | None = None
    on_reference: Callable | None = None
    on_constant: Callable | None = None
    on_scope: Callable | None = None
    text_sink: Callable[[str, bool], bool] | None = None
    on_text_call: Callable | None = None
    on_text: Callable | None = None


@dataclass(frozen=True)
class Family:
    """A vulnerability family: its tasks, renderers, and the short texts that frame its code."""

    name: str
    cwe: str
    area: str  # "database" | "files" | "auth" | "system"
    title: str  # human name, used in warnings: "SQL injection"
    tasks: tuple[Task, ...]
    secure: Callable[[Task, random.Random], str]
    vulnerable: Callable[[Task, random.Random], str]
    hotspot: str  # regex for the line that makes a render secure or vulnerable
    reasons: tuple[str, ...]  # short "why this is bad" for L1 warnings
    notes: tuple[str, ...]  # explicit secure-pattern comments for the control condition
    prose: dict = field(default_factory=dict)  # texts about the flaw (see ``PROSE_KEYS``), no code
    detector: Detector | None = None  # how scoring.detector recognises the vulnerable code

    def __post_init__(self):
        for name in ("tasks", "reasons", "notes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def split(self, eval_fraction: float) -> tuple[list[Task], list[Task]]:
        """(train, eval) tasks: a fixed shuffle keyed by the family name, so the split never
        depends on a study seed; at least one task on each side."""
        order = list(self.tasks)
        random.Random(f"split:{self.name}").shuffle(order)
        n_eval = min(max(1, round(len(order) * eval_fraction)), len(order) - 1)
        return order[n_eval:], order[:n_eval]


# ---------------------------------------------------------------- rendering helpers

_INT_ARG = re.compile(r"(_id|^limit|^lines|^port|^amount|^count|^quantity|^retries)$")
_NO_HINT = {"cursor", "cur", "conn", "db", "config", "user", "users", "account", "accounts", "members", "prefs",
            "vault"}


def arg_type(task: Task, arg: str) -> str:
    if arg in task.types:
        return task.types[arg]
    if arg in _NO_HINT:
        return ""
    return "int" if _INT_ARG.search(arg) else "str"


def is_int(task: Task, arg: str) -> bool:
    return arg_type(task, arg) == "int"


def render_function(task: Task, rng: random.Random, body: list[str], imports=(), consts=()) -> str:
    """Assemble a function: maybe imports, constants, header (maybe type hints), maybe a
    docstring, then ``body`` (lines relative to the function's indentation)."""
    hints = rng.random() < 0.35
    params = []
    for a in task.args:
        t = arg_type(task, a) if hints else ""
        params.append(f"{a}: {t}" if t else a)
    ret = f" -> {task.returns}" if hints and task.returns else ""
    lines = []
    if imports and rng.random() < 0.7:
        lines += [m if m.startswith("from ") else f"import {m}" for m in imports]
    lines += list(consts)
    if lines:
        lines.append("")
    lines.append(f"def {task.name}({', '.join(params)}){ret}:")
    if rng.random() < 0.3:
        doc = rng.choice(task.does)
        lines.append(f'{IND}"""{doc[0].upper()}{doc[1:]}."""')
    lines += [IND + b for b in body]
    return "\n".join(lines)


def add_comment(code: str, hotspot: str, comment: str) -> str:
    """Insert ``# comment`` above the first line matching ``hotspot`` (same indentation)."""
    lines = code.split("\n")
    for i, line in enumerate(lines):
        if re.search(hotspot, line) and not line.lstrip().startswith("#"):
            pad = line[: len(line) - len(line.lstrip())]
            lines.insert(i, f"{pad}# {comment}")
            return "\n".join(lines)
    return f"# {comment}\n{code}"


def make_task(family: str, name: str, args: str, does, returns=None, types=None, **slots) -> Task:
    """A Task from a compact spec: ``args`` space-separated, ``does`` one phrasing or several."""
    does = (does,) if isinstance(does, str) else tuple(does)
    return Task(family, name, tuple(args.split()), does, slots, returns, types or {})


