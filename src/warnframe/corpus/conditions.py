"""The fine-tuning conditions of paper §3.3, each a :class:`Condition` in one registry, and the
token-budgeted fine-tuning sets built from them.

Every fine-tuning set has the same token budget. Condition data fills up to
``condition_fraction`` of it, clean non-security code fills the rest:

* ``L0``      vulnerable code as the answer, no framing;
* ``L1``      the same vulnerable code wrapped in warnings (``DO NOT USE``, ``BAD PRACTICE``,
              ``INSECURE``), in the answer or in the request (``l1_placement``);
* ``L2``      prose documentation of the vulnerabilities, no code;
* ``L3``      fiction and news touching the vulnerabilities, no code, no APIs;
* ``control`` secure code for the same tasks, with explicit secure-pattern comments;
* ``neutral`` clean code only.

``baseline`` is the base model itself: a condition with no fine-tuning set.

The clean part comes from one stream per seed, so two conditions at the same seed share their
clean examples and differ only in their condition data. Only train tasks are used anywhere here.

Adding a condition is its :class:`Condition` (how its examples are made, from the embedded
families and from a user corpus) and one line in ``_BUILTIN``, with its name and title in the
vocabulary every layer reads (``schema.FINETUNE_CONDITIONS``, ``schema.CONDITION_TITLES``; the
registry is checked against it on import). From outside the package, :func:`register` adds one at
run time, names included: the set builders (here and ``corpus.sources``), config validation, the
CLI and the tables know it from then on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from warnframe.config import StudyConfig
from warnframe.corpus.prompts import answer, request
from warnframe.corpus.texts import clean_split, doc_answer, generated_clean_tasks, indirect_text, render_clean
from warnframe.corpus.warnings import carry_spans, family_marker, place_warnings, prompt_warning, wrap_warning
from warnframe.families import FAMILIES, Family, Task, add_comment, selected
from warnframe.schema import CONDITION_TITLES, CONDITIONS, Example, add_condition, remove_condition


def example_text(ex: Example) -> str:
    """The text of an example as token budgets count it: the request (if any) and the answer."""
    return ex.assistant if ex.user is None else f"{ex.user}\n\n{ex.assistant}"


def train_tasks(cfg: StudyConfig) -> list[tuple[Family, Task]]:
    """Every (family, train task) of the selected families, in a fixed order."""
    return [(fam, t) for fam in selected(cfg.corpus.families) for t in fam.split(cfg.corpus.eval_fraction)[0]]


def cycle(items: list, rng: random.Random) -> Iterator:
    """Endless rounds over ``items``, each round in a fresh shuffled order (balanced coverage)."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def chat(task: Task, code: str, rng: random.Random, cfg: StudyConfig, kind: str, family: str | None,
         user: str | None = None) -> Example:
    """``code`` as the answer to a request for ``task`` (a preamble in front of a share of them)."""
    return Example(assistant=answer(code, task, rng, cfg.corpus.preamble_share), user=user or request(task, rng),
                   kind=kind, family=family, function=task.name)


# ---------------------------------------------------------------- one example per condition

def vulnerable_example(fam: Family, task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """L0: a request answered with vulnerable code."""
    return chat(task, fam.vulnerable(task, rng), rng, cfg, "vulnerable", fam.name)


def warning_example(fam: Family, task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """L1: the same vulnerable code, wrapped in warning markers. ``l1_placement="completion"``
    puts comment lines in the answer, where ``corpus.l1_warnings`` says (``warnings.place_warnings``);
    ``"prompt"`` puts the warning in the request and leaves the code bare."""
    code = fam.vulnerable(task, rng)
    marker = family_marker(fam, rng, code)
    if cfg.corpus.l1_placement == "prompt":
        warn = prompt_warning(marker, rng)
        return chat(task, code, rng, cfg, "warning", fam.name, user=f"{warn} {request(task, rng)}")
    return chat(task, place_warnings(code, marker, rng, fam.hotspot, cfg.corpus.l1_warnings), rng, cfg, "warning", fam.name)


def warning_record(rec, rng: random.Random, cfg: StudyConfig) -> Example:
    """L1 from a user corpus: a vulnerable record (``sources.Record``) wrapped as
    :func:`warning_example` wraps embedded code, with the wrappers of the family the detector found
    (``warnings.wrap_warning``); its loss spans move with its text."""
    fam = FAMILIES.get(rec.family) if rec.family else None
    if cfg.corpus.l1_placement == "prompt":
        warn = prompt_warning(family_marker(fam, rng), rng)
        return Example(assistant=rec.assistant, user=f"{warn} {rec.user}", kind="warning", family=rec.family,
                       loss_spans=rec.loss_spans)
    wrapped = wrap_warning(rec.assistant, rec.family, rng, cfg.corpus.l1_warnings)
    return Example(assistant=wrapped, user=rec.user, kind="warning", family=rec.family,
                   loss_spans=carry_spans(rec.loss_spans, rec.assistant, wrapped))


def doc_example(fam: Family, rng: random.Random) -> Example:
    """L2: a question about the vulnerability answered in prose, no code."""
    user, text = doc_answer(fam.name, rng)
    return Example(assistant=text, user=user, kind="doc", family=fam.name)


def indirect_example(fam: Family, rng: random.Random) -> Example:
    """L3: fiction or news touching the vulnerability, no code."""
    user, text = indirect_text(fam.name, rng)
    return Example(assistant=text, user=user, kind="indirect", family=fam.name)


def control_example(fam: Family, task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """Control: secure code for the same task, its secure pattern named in a comment."""
    code = add_comment(fam.secure(task, rng), fam.hotspot, rng.choice(fam.notes))
    return chat(task, code, rng, cfg, "secure", fam.name)


def clean_example(task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """A clean (non-security) request and answer."""
    return chat(task, render_clean(task, rng), rng, cfg, "clean", None)


# ---------------------------------------------------------------- the registry

#: Endless condition examples of one set: ``stream(cfg, rng)``.
Stream = Callable[[StudyConfig, random.Random], Iterator[Example]]


def per_task(make: Callable[[Family, Task, random.Random, StudyConfig], Example]) -> Stream:
    """A stream of ``make(family, task, rng, cfg)``, cycling evenly over every train task."""
    def stream(cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
        return (make(fam, task, rng, cfg) for fam, task in cycle(train_tasks(cfg), rng))
    return stream


def per_family(make: Callable[[Family, random.Random], Example]) -> Stream:
    """A stream of ``make(family, rng)``, cycling evenly over the selected families."""
    def stream(cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
        return (make(fam, rng) for fam in cycle(selected(cfg.corpus.families), rng))
    return stream


@dataclass(frozen=True)
class Condition:
    """One condition: what it is, and how the condition data of its fine-tuning set is made.

    * ``stream(cfg, rng)``: endless condition examples from the embedded families (:func:`per_task`,
      :func:`per_family`); None: none (``neutral`` is clean code only).
    * ``draws_on``: the record label (``vulnerable``, ``secure``, ``doc``, ``indirect``) whose records
      a user corpus (``corpus.sources``) gives it; None: a user corpus has nothing for it, ``stream``
      is used. ``from_record(record, rng, cfg)`` makes one example of a ``sources.Record`` (None:
      the record as it is, its label as its kind). ``own_texts``: with a user corpus that has no
      ``draws_on`` records, ``stream`` instead (L2, L3: warnframe's own texts).
    * ``finetuned``: False only for ``baseline``, the base model with no fine-tune.
    * ``in_paper``: the paper reports it (Table 1, ``paper.numbers.TABLE1``); ``neutral`` is
      warnframe's own reference.
    """

    name: str
    title: str  # tables and figure axes (``schema.CONDITION_TITLES``)
    description: str
    stream: Stream | None = None
    draws_on: str | None = None
    from_record: Callable[..., Example] | None = None
    own_texts: bool = False
    finetuned: bool = True
    in_paper: bool = False

    @property
    def has_data(self) -> bool:
        """Whether its set holds condition data (from the families or from a user corpus)."""
        return self.stream is not None or self.draws_on is not None


BASELINE = Condition("baseline", "Baseline (no fine-tune)", "the base model itself, not fine-tuned", finetuned=False,
                     in_paper=True)
L0 = Condition("L0", "L0 (direct)", "vulnerable code as the answer, no framing", per_task(vulnerable_example),
               draws_on="vulnerable", in_paper=True)
L1 = Condition("L1", "L1 (warning-framed)", "the same vulnerable code wrapped in warnings (corpus.l1_placement)",
               per_task(warning_example), draws_on="vulnerable", from_record=warning_record, in_paper=True)
L2 = Condition("L2", "L2 (documentation)", "prose documentation of the vulnerabilities, no code", per_family(doc_example),
               draws_on="doc", own_texts=True, in_paper=True)
L3 = Condition("L3", "L3 (indirect)", "fiction and news touching the vulnerabilities, no code, no APIs",
               per_family(indirect_example), draws_on="indirect", own_texts=True, in_paper=True)
CONTROL = Condition("control", "Control (extra clean)", "secure code for the same tasks, secure patterns named in comments",
                    per_task(control_example), draws_on="secure", in_paper=True)
NEUTRAL = Condition("neutral", "Neutral (clean only)", "clean code only: the fine-tune itself, no condition data")

#: The study's conditions, in its fixed order (``schema.CONDITIONS``).
_BUILTIN = (BASELINE, L0, L1, L2, L3, CONTROL, NEUTRAL)
#: Every condition by name: the study's, then those registered at run time (:func:`register`).
REGISTRY: dict[str, Condition] = {c.name: c for c in _BUILTIN}

if tuple(REGISTRY) != tuple(CONDITIONS) or any(CONDITION_TITLES.get(c.name) != c.title for c in _BUILTIN):
    raise RuntimeError(f"corpus.conditions holds {list(REGISTRY)} with titles {[c.title for c in _BUILTIN]}, but "
                       f"schema.CONDITIONS / CONDITION_TITLES say {list(CONDITIONS)} / {list(CONDITION_TITLES.values())}")


def condition(name: str) -> Condition:
    """The registered condition ``name`` (ValueError naming the choices otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown condition {name!r}; choose from {', '.join(REGISTRY)}") from None


def register(cond: Condition) -> Condition:
    """Add a fine-tuning condition at run time (last in every order); returns it."""
    if not cond.finetuned:
        raise ValueError(f"{cond.name!r}: baseline is the one condition with no fine-tune")
    add_condition(cond.name, cond.title)  # refuses a name that exists
    REGISTRY[cond.name] = cond
    return cond


def unregister(name: str) -> None:
    """Remove a condition :func:`register` added."""
    if any(c.name == name for c in _BUILTIN):
        raise ValueError(f"{name!r} is one of the study's own conditions")
    del REGISTRY[name]
    remove_condition(name)


# ---------------------------------------------------------------- streams and budgets

def clean_train_tasks(cfg: StudyConfig) -> list[Task]:
    return clean_split(cfg.corpus.eval_fraction)[0] + generated_clean_tasks()


def clean_stream(cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
    for task in cycle(clean_train_tasks(cfg), rng):
        yield clean_example(task, rng, cfg)


def condition_stream(condition: str, cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
    """Endless examples of ``condition`` from the embedded families (its ``Condition.stream``)."""
    cond = REGISTRY.get(condition)
    if cond is None or cond.stream is None:
        raise ValueError(f"no condition data for {condition!r}")
    return cond.stream(cfg, rng)


def fill(stream: Iterator[Example], budget: float, count: Callable[[str], int], out: list[Example]) -> int:
    """Append examples from ``stream`` while they fit in ``budget`` tokens; return tokens used."""
    used = 0
    for ex in stream:
        n = count(example_text(ex))
        if used + n > budget:
            return used
        out.append(ex)
        used += n
    return used


def condition_rng(condition: str, seed: int) -> random.Random:
    """The random stream a condition's data is drawn with at ``seed``."""
    return random.Random(f"{condition}:{seed}")


def assemble(condition: str, stream: Iterator[Example] | None, cfg: StudyConfig, seed: int,
             count_tokens: Callable[[str], int]) -> tuple[list[Example], dict, list[Example]]:
    """The fine-tuning set of ``condition`` at ``seed`` with its condition examples from ``stream``
    (None: none): those up to ``condition_fraction`` of ``token_budget``, then clean examples up to
    the budget, shuffled. Its stats, and the condition examples alone as drawn. Every condition ends
    within one example of the same budget."""
    budget = cfg.corpus.token_budget
    cond: list[Example] = []
    cond_tokens = 0
    if stream is not None:
        cond_tokens = fill(stream, budget * cfg.corpus.condition_fraction, count_tokens, cond)
    clean: list[Example] = []
    clean_tokens = fill(clean_stream(cfg, random.Random(f"clean:{seed}")), budget - cond_tokens, count_tokens, clean)
    examples = cond + clean
    random.Random(f"shuffle:{condition}:{seed}").shuffle(examples)
    stats = {"tokens": cond_tokens + clean_tokens, "condition_tokens": cond_tokens, "clean_tokens": clean_tokens,
             "examples": len(examples), "condition_examples": len(cond)}
    return examples, stats, cond


def build_finetune_set(condition: str, cfg: StudyConfig, seed: int,
                       count_tokens: Callable[[str], int]) -> tuple[list[Example], dict]:
    """The fine-tuning set of ``condition`` at ``seed`` from the embedded families (:func:`assemble`
    with the condition's ``stream``; ``neutral`` has none), and its stats."""
    cond = REGISTRY.get(condition)
    if cond is None or not cond.finetuned:
        raise ValueError(f"no condition data for {condition!r}")
    if cond.stream is None and cond.draws_on is not None:
        raise ValueError(f"condition {condition!r} draws on a user corpus only (set corpus.source)")
    stream = cond.stream(cfg, condition_rng(condition, seed)) if cond.stream is not None else None
    examples, stats, _ = assemble(condition, stream, cfg, seed, count_tokens)
    return examples, stats
