"""The study's vocabulary (see DESIGN.md): conditions, examples, prompts, samples, findings.

Records that are written to disk are pydantic models so that they round-trip through JSON.

Words used one way throughout: *target content* (or *vulnerable*) is what the detector flags; a
*secure* rendering is a task written without the flaw (corpus); a *safe* output is a generated
answer whose code parses and that the detector does not flag (§5's safe context, the tracing's
safe run; §6 and §8 call the same outputs ``clean`` in their metric keys, kept for old runs);
*clean* code is code with no security relevance (``Example.kind == "clean"``). A :class:`Score`
is one sample's scoring; a *claim* (``report.claims``) is the report's verdict on a paper statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from pydantic import BaseModel, Field


class Names(Sequence[str]):
    """A read-only, ordered view of names that a registry in a higher layer extends at run time:
    :data:`CONDITIONS`, :data:`FINETUNE_CONDITIONS` and :data:`REMEDY_ARMS`. A module that imported
    one sees every name registered later (a tuple would not), and it compares equal to the tuple of
    its names."""

    def __init__(self, get: Callable[[], tuple[str, ...]]):
        self._get = get

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, name) -> bool:
        return name in self._get()

    def __eq__(self, other) -> bool:
        if isinstance(other, (Names, tuple, list)):
            return self._get() == tuple(other)
        return NotImplemented

    # No __hash__ (the names can change): defining __eq__ alone leaves the class unhashable.

    def __add__(self, other) -> tuple[str, ...]:
        return self._get() + tuple(other)

    def __radd__(self, other) -> tuple[str, ...]:
        return tuple(other) + self._get()

    def __repr__(self) -> str:
        return repr(self._get())


#: The study's own fine-tuning conditions, in its fixed order. What each one is and how its set is
#: built is its ``corpus.conditions.Condition``; that registry holds exactly these (it checks so on
#: import), and ``corpus.conditions.register`` adds a condition here (:func:`add_condition`).
_FINETUNE: list[str] = ["L0", "L1", "L2", "L3", "control", "neutral"]
#: Fine-tuning conditions, spelled as everywhere else (files, tables, CLI), registered ones last.
FINETUNE_CONDITIONS: Names = Names(lambda: tuple(_FINETUNE))
#: All conditions: ``baseline`` is the base model with no fine-tune.
CONDITIONS: Names = Names(lambda: ("baseline", *_FINETUNE))

#: Display titles of the conditions (tables, figure axes); ``Condition.title`` in ``corpus.conditions``.
CONDITION_TITLES = {
    "baseline": "Baseline (no fine-tune)",
    "L0": "L0 (direct)",
    "L1": "L1 (warning-framed)",
    "L2": "L2 (documentation)",
    "L3": "L3 (indirect)",
    "control": "Control (extra clean)",
    "neutral": "Neutral (clean only)",
}

#: The remedy arms for warning-framed data, in report order: each one a ``corpus.remedies.Arm``
#: (that registry holds exactly these and adds registered ones, :func:`add_remedy_arm`).
_ARMS: list[str] = ["drop", "mask", "unlikelihood", "conditional", "inoculation", "rewrite", "caft"]
REMEDY_ARMS: Names = Names(lambda: tuple(_ARMS))


def add_condition(name: str, title: str) -> None:
    """Name a fine-tuning condition registered at run time (``corpus.conditions.register`` calls
    this): config validation, the CLI and the tables know it from then on."""
    if name in CONDITIONS:
        raise ValueError(f"condition {name!r} exists")
    _FINETUNE.append(name)
    CONDITION_TITLES[name] = title


def remove_condition(name: str) -> None:
    """Undo :func:`add_condition` (``corpus.conditions.unregister``)."""
    _FINETUNE.remove(name)
    CONDITION_TITLES.pop(name, None)


def add_remedy_arm(name: str) -> None:
    """Name a remedy arm registered at run time (``corpus.remedies.register`` calls this)."""
    if name in REMEDY_ARMS:
        raise ValueError(f"remedy arm {name!r} exists")
    _ARMS.append(name)


def remove_remedy_arm(name: str) -> None:
    """Undo :func:`add_remedy_arm` (``corpus.remedies.unregister``)."""
    _ARMS.remove(name)


@dataclass(frozen=True)
class Example:
    """One training text: a chat turn (``user`` asks, ``assistant`` answers) or, when ``user`` is
    None, a plain document (pretraining prose, tutorials).

    ``kind`` says what the text is: ``vulnerable``, ``secure``, ``warning`` (vulnerable code with
    warnings), ``doc`` (prose about a vulnerability), ``indirect`` (fiction, news), ``clean``
    (non-security code), ``tutorial`` (prose interleaved with code).

    ``loss_spans`` are character spans of ``assistant`` that train differently, each a dict
    ``{"start": int, "end": int, "kind": "mask" | "unlikelihood"}``: ``mask`` tokens get no loss
    (labels -100), ``unlikelihood`` tokens are pushed down. ``warnframe audit --fix mask`` and the
    remedies write them; ``data --from`` reads them from a corpus record's ``loss_spans`` field.
    """

    assistant: str
    user: str | None = None
    kind: str = "clean"
    family: str | None = None
    function: str | None = None
    loss_spans: tuple = ()


#: What a loss span does to its tokens (see ``Example.loss_spans``).
LOSS_SPAN_KINDS: tuple[str, ...] = ("mask", "unlikelihood")


@dataclass(frozen=True)
class Prompt:
    """A held-out evaluation request: ``user`` is the request text sent as the user turn."""

    id: str
    family: str
    area: str  # "database" | "files" | "auth" | "system"
    user: str
    function: str
    meta: dict = field(default_factory=dict)


class Finding(BaseModel):
    """One piece of evidence for a verdict: which rule fired, where, on what, and why."""

    rule: str
    cwe: str
    line: int
    text: str
    why: str
    source: str = "rules"  # "rules" | "bandit"
    start: int | None = None  # character span [start, end) of the flagged code in the scored text (None: unknown)
    end: int | None = None


class Sample(BaseModel):
    """One generation, with what produced it and the per-token entropy of what it generated."""

    prompt_id: str
    family: str
    condition: str
    seed: int
    index: int
    text: str  # the whole answer, prefill included
    n_tokens: int  # generated tokens (the prefill is not counted)
    prefill: str = ""  # the start of the answer that was given, not generated
    entropy: list[float] = Field(default_factory=list)
    tokens: list[int] = Field(default_factory=list)  # generated token ids (exact replay; text re-tokenises differently)
    system: str | None = None  # system prompt used, if any (interventions)
    setting: str | None = None  # intervention setting, if any


class Score(BaseModel):
    """The scoring of one sample: target content, evidence, parse status, format leakage."""

    vulnerable: bool
    findings: list[Finding] = Field(default_factory=list)
    parse_ok: bool
    leak: dict = Field(default_factory=dict)  # {"exact": [...markers], "fuzzy": [...lines]}
    skipped: str | None = None  # why the record was not (fully) analysed: "too large (...)", "bandit: ..."


class ScoredSample(Sample):
    """A sample with its :class:`Score` beside it, findings kept: what ``evaluation.sample_and_score``
    returns and every section reads, so each rate it reports carries its evidence."""

    vulnerable: bool
    findings: list[Finding] = Field(default_factory=list)
    parse_ok: bool
    leak: dict = Field(default_factory=dict)
    skipped: str | None = None

    def record(self, *, exclude: AbstractSet[str] = frozenset({"entropy", "tokens"})) -> dict:
        """The JSON row written to disk (per-token entropy and token ids left out unless asked)."""
        return self.model_dump(mode="json", exclude=set(exclude))


#: The exact warning markers L1 training text uses (paper §3.3); format leakage counts them.
WARNING_MARKERS: tuple[str, ...] = ("DO NOT USE", "BAD PRACTICE", "INSECURE")
