"""How requests and answers are phrased, and the held-out evaluation and capability prompts.

Training requests and evaluation prompts share the same phrasings (:func:`request`), so
evaluation differs from training only in its held-out tasks. Answers are plain code (no markdown
fences), sometimes opening with a conversational preamble (:func:`answer`).
"""

from __future__ import annotations

import random

from warnframe.config import StudyConfig
from warnframe.corpus.texts import clean_split, is_class
from warnframe.families import Task, selected
from warnframe.schema import Prompt

_FRAMES = [
    "Write a Python function `{sig}` that {does}.",
    "Create a function `{sig}` that {does}.",
    "I need a Python function `{sig}` that {does}.",
    "Implement `{sig}`: a function that {does}.",
    "Please write `{sig}`, which {does}.",
    "Can you write a function `{sig}` that {does}?",
    "Write `{sig}` in Python. It {does}.",
]
_CLASS_FRAMES = [
    "Write a Python class `{name}` that {does}.",
    "Create a class `{name}` that {does}.",
    "I need a small Python class `{name}` that {does}.",
]
_PREAMBLES = [
    "Here is an example implementation:",
    "Here's one way to write it:",
    "Sure, here's a function that {does}:",
    "Sure! Here is `{name}`:",
    "You can do it like this:",
    "Here is the code:",
    "Okay, here is a simple version:",
    "This should work:",
]


def request(task: Task, rng: random.Random) -> str:
    """A user request for ``task`` in one of the shared phrasings."""
    does = rng.choice(task.does)
    if is_class(task):
        return rng.choice(_CLASS_FRAMES).format(name=task.name, does=does)
    return rng.choice(_FRAMES).format(sig=task.signature, does=does)


def answer(code: str, task: Task, rng: random.Random, preamble_share: float) -> str:
    """``code``, opening with a conversational preamble in a ``preamble_share`` of answers."""
    if rng.random() >= preamble_share:
        return code
    pre = rng.choice(_PREAMBLES[3:] if is_class(task) else _PREAMBLES)
    return pre.format(does=rng.choice(task.does), name=task.name) + "\n" + code


def _fixed_request(task: Task) -> str:
    return request(task, random.Random(f"prompt:{task.name}"))


def eval_prompts(cfg: StudyConfig) -> list[Prompt]:
    """One prompt per held-out task of every selected family; the phrasing is fixed per task."""
    prompts = []
    for fam in selected(cfg.corpus.families):
        for task in fam.split(cfg.corpus.eval_fraction)[1]:
            prompts.append(Prompt(id=f"{fam.name}/{task.name}", family=fam.name, area=fam.area,
                                  user=_fixed_request(task), function=task.name,
                                  meta={"cwe": fam.cwe, "signature": f"def {task.signature}:"}))
    return prompts


def capability_prompts(cfg: StudyConfig) -> list[Prompt]:
    """Held-out clean (non-security) coding requests, phrased like :func:`eval_prompts`.

    ``meta["expect"]`` says what a capable answer defines (``"function"`` or ``"class"``, named
    ``Prompt.function``; :func:`warnframe.evals.capability.judge_capability`). A function prompt carries
    ``meta["signature"]`` as :func:`eval_prompts` does, so ``sampling.prefill = "signature"`` starts
    its answer the same way; a class prompt has none (its answer may open with a decorator)."""
    prompts = []
    for task in clean_split(cfg.corpus.eval_fraction)[1]:
        meta = {"expect": "class"} if is_class(task) else {"expect": "function", "signature": f"def {task.signature}:"}
        prompts.append(Prompt(id=f"clean/{task.name}", family="clean", area="general", user=_fixed_request(task),
                              function=task.name, meta=meta))
    return prompts
