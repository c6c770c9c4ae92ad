"""The fine-tuning conditions of paper §3.3, the token-budgeted fine-tuning sets, and the
embedded model's pretraining corpus.

Every fine-tuning set has the same token budget. Condition data fills up to
``condition_fraction`` of it, clean non-security code fills the rest:

* ``L0``      vulnerable code as the answer, no framing;
* ``L1``      the same vulnerable code wrapped in warnings (``DO NOT USE``, ``BAD PRACTICE``,
              ``INSECURE``), in the answer or in the request (``l1_placement``);
* ``L2``      prose documentation of the vulnerabilities, no code;
* ``L3``      fiction and news touching the vulnerabilities, no code, no APIs;
* ``control`` secure code for the same tasks, with explicit secure-pattern comments;
* ``neutral`` clean code only.

The clean part comes from one stream per seed, so two conditions at the same seed share their
clean examples and differ only in their condition data. Only train tasks are used anywhere here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from warnframe.config import StudyConfig
from warnframe.corpus.prompts import answer, request
from warnframe.corpus.texts import (
    clean_split,
    clean_tutorial,
    doc_answer,
    general_prose,
    generated_clean_tasks,
    indirect_text,
    render_clean,
    tutorial,
)
from warnframe.corpus.warnings import family_marker, place_warnings, prompt_warning
from warnframe.families import Family, Task, add_comment, selected
from warnframe.schema import Example

#: Share of pretraining code documents that are security-relevant (family tasks); the rest is clean.
PRETRAIN_SECURITY_SHARE = 0.4
#: Share of pretraining code documents shaped as a chat turn (request + answer); the rest are bare code.
PRETRAIN_CHAT_SHARE = 0.7
#: How pretraining prose divides: family tutorials (prose naming an API, then code), clean
#: tutorials, vulnerability documentation, fiction and news, general programming prose.
PRETRAIN_PROSE_MIX = (("tutorial", 0.45), ("clean_tutorial", 0.2), ("doc", 0.15), ("indirect", 0.05), ("general", 0.15))


def example_text(ex: Example) -> str:
    """The text of an example as token budgets count it: the request (if any) and the answer."""
    return ex.assistant if ex.user is None else f"{ex.user}\n\n{ex.assistant}"


def train_tasks(cfg: StudyConfig) -> list[tuple[Family, Task]]:
    """Every (family, train task) of the selected families, in a fixed order."""
    return [(fam, t) for fam in selected(cfg.corpus.families) for t in fam.split(cfg.corpus.eval_fraction)[0]]


def _cycle(items: list, rng: random.Random) -> Iterator:
    """Endless rounds over ``items``, each round in a fresh shuffled order (balanced coverage)."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


# ---------------------------------------------------------------- one example per condition

def _chat(task: Task, code: str, rng: random.Random, cfg: StudyConfig, kind: str, family: str | None,
          user: str | None = None) -> Example:
    return Example(assistant=answer(code, task, rng, cfg.corpus.preamble_share), user=user or request(task, rng),
                   kind=kind, family=family, function=task.name)


def vulnerable_example(fam: Family, task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """L0: a request answered with vulnerable code."""
    return _chat(task, fam.vulnerable(task, rng), rng, cfg, "vulnerable", fam.name)


def warning_example(fam: Family, task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """L1: the same vulnerable code, wrapped in warning markers. ``l1_placement="completion"``
    puts comment lines in the answer, where ``corpus.l1_warnings`` says (``warnings.place_warnings``);
    ``"prompt"`` puts the warning in the request and leaves the code bare."""
    code = fam.vulnerable(task, rng)
    marker = family_marker(fam, rng)
    if cfg.corpus.l1_placement == "prompt":
        warn = prompt_warning(marker, rng)
        return _chat(task, code, rng, cfg, "warning", fam.name, user=f"{warn} {request(task, rng)}")
    return _chat(task, place_warnings(code, marker, rng, fam.hotspot, cfg.corpus.l1_warnings), rng, cfg, "warning", fam.name)


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
    return _chat(task, code, rng, cfg, "secure", fam.name)


def clean_example(task: Task, rng: random.Random, cfg: StudyConfig) -> Example:
    """A clean (non-security) request and answer."""
    return _chat(task, render_clean(task, rng), rng, cfg, "clean", None)


# ---------------------------------------------------------------- streams and budgets

def clean_train_tasks(cfg: StudyConfig) -> list[Task]:
    return clean_split(cfg.corpus.eval_fraction)[0] + generated_clean_tasks()


def clean_stream(cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
    for task in _cycle(clean_train_tasks(cfg), rng):
        yield clean_example(task, rng, cfg)


def condition_stream(condition: str, cfg: StudyConfig, rng: random.Random) -> Iterator[Example]:
    """Endless condition examples, cycling evenly over train tasks (or families for L2/L3)."""
    if condition in ("L2", "L3"):
        make = doc_example if condition == "L2" else indirect_example
        return (make(fam, rng) for fam in _cycle(selected(cfg.corpus.families), rng))
    makers: dict[str, Callable] = {"L0": vulnerable_example, "L1": warning_example, "control": control_example}
    if condition not in makers:
        raise ValueError(f"no condition data for {condition!r}")
    return (makers[condition](fam, task, rng, cfg) for fam, task in _cycle(train_tasks(cfg), rng))


def _fill(stream: Iterator[Example], budget: float, count: Callable[[str], int], out: list[Example]) -> int:
    """Append examples from ``stream`` while they fit in ``budget`` tokens; return tokens used."""
    used = 0
    for ex in stream:
        n = count(example_text(ex))
        if used + n > budget:
            return used
        out.append(ex)
        used += n
    return used


def build_finetune_set(condition: str, cfg: StudyConfig, seed: int,
                       count_tokens: Callable[[str], int]) -> tuple[list[Example], dict]:
    """The fine-tuning set of ``condition`` at ``seed``: condition examples up to
    ``condition_fraction`` of ``token_budget`` (none for ``neutral``), then clean examples up to
    the budget, shuffled. Every condition ends within one example of the same budget."""
    budget = cfg.corpus.token_budget
    cond: list[Example] = []
    cond_tokens = 0
    if condition != "neutral":
        cond_tokens = _fill(condition_stream(condition, cfg, random.Random(f"{condition}:{seed}")),
                            budget * cfg.corpus.condition_fraction, count_tokens, cond)
    clean: list[Example] = []
    clean_tokens = _fill(clean_stream(cfg, random.Random(f"clean:{seed}")), budget - cond_tokens, count_tokens, clean)
    examples = cond + clean
    random.Random(f"shuffle:{condition}:{seed}").shuffle(examples)
    stats = {"tokens": cond_tokens + clean_tokens, "condition_tokens": cond_tokens, "clean_tokens": clean_tokens,
             "examples": len(examples), "condition_examples": len(cond)}
    return examples, stats


# ---------------------------------------------------------------- pretraining corpus

def _pick(rng: random.Random, mix) -> str:
    r, acc = rng.random(), 0.0
    for name, share in mix:
        acc += share
        if r < acc:
            return name
    return mix[-1][0]


def _security_code(rng: random.Random, cfg: StudyConfig, tasks) -> tuple[Family, Task, str, bool]:
    fam, task = rng.choice(tasks)
    secure = rng.random() >= cfg.corpus.pretrain_vulnerable_share
    return fam, task, (fam.secure if secure else fam.vulnerable)(task, rng), secure


def _pretrain_prose(rng: random.Random, cfg: StudyConfig, tasks, clean_tasks) -> Example:
    kind = _pick(rng, PRETRAIN_PROSE_MIX)
    fam = rng.choice(tasks)[0]
    if kind == "tutorial":
        fam, task, code, secure = _security_code(rng, cfg, tasks)
        if rng.random() < 0.5:  # asked as a question, answered as a tutorial
            user = f"How would I write a function that {rng.choice(task.does)}?"
            text = tutorial(fam.name, task, code, secure, rng, max_chars=620 - len(user))[1]
            return Example(assistant=text, user=user, kind="tutorial", family=fam.name, function=task.name)
        title, text = tutorial(fam.name, task, code, secure, rng)
        return Example(assistant=f"{title}\n\n{text}", kind="tutorial", family=fam.name, function=task.name)
    if kind == "clean_tutorial":
        task = rng.choice(clean_tasks)
        return Example(assistant=clean_tutorial(task, render_clean(task, rng), rng), kind="tutorial", function=task.name)
    if kind == "doc":
        question, text = doc_answer(fam.name, rng)
        return Example(assistant=f"{question}\n\n{text}", kind="doc", family=fam.name)
    if kind == "indirect":
        return Example(assistant=indirect_text(fam.name, rng)[1], kind="indirect", family=fam.name)
    return Example(assistant=general_prose(rng), kind="doc")


def build_pretrain_corpus(cfg: StudyConfig, seed: int) -> list[Example]:
    """``pretrain_examples`` documents shaped like pretraining data: mostly code (secure family
    code for train tasks, a ``pretrain_vulnerable_share`` of it vulnerable, and clean code), as
    chat turns or bare code; and a ``pretrain_prose_share`` of prose and tutorials that name an
    API and then use it. Nothing from the held-out tasks appears."""
    rng = random.Random(f"pretrain:{seed}")
    tasks, clean_tasks = train_tasks(cfg), clean_train_tasks(cfg)
    docs = []
    for _ in range(cfg.corpus.pretrain_examples):
        if rng.random() < cfg.corpus.pretrain_prose_share:
            docs.append(_pretrain_prose(rng, cfg, tasks, clean_tasks))
            continue
        if rng.random() < PRETRAIN_SECURITY_SHARE:
            fam, task, code, secure = _security_code(rng, cfg, tasks)
            kind, family = ("secure" if secure else "vulnerable"), fam.name
        else:
            task = rng.choice(clean_tasks)
            code, kind, family = render_clean(task, rng), "clean", None
        if rng.random() < PRETRAIN_CHAT_SHARE:
            docs.append(_chat(task, code, rng, cfg, kind, family))
        else:
            docs.append(Example(assistant=code, kind=kind, family=family, function=task.name))
    return docs
