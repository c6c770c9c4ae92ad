"""The embedded model's pretraining corpus: mostly code (secure and a share of vulnerable family
code for train tasks, and clean code), as chat turns or bare code, and prose and tutorials that
name an API and then use it. Nothing from the held-out tasks appears."""

from __future__ import annotations

import random

from warnframe.config import StudyConfig
from warnframe.corpus.conditions import chat, clean_train_tasks, train_tasks
from warnframe.corpus.texts import clean_tutorial, doc_answer, general_prose, indirect_text, render_clean, tutorial
from warnframe.families import Family, Task
from warnframe.schema import Example

#: Share of pretraining code documents that are security-relevant (family tasks); the rest is clean.
PRETRAIN_SECURITY_SHARE = 0.4
#: Share of pretraining code documents shaped as a chat turn (request + answer); the rest are bare code.
PRETRAIN_CHAT_SHARE = 0.7
#: How pretraining prose divides: family tutorials (prose naming an API, then code), clean
#: tutorials, vulnerability documentation, fiction and news, general programming prose.
PRETRAIN_PROSE_MIX = (("tutorial", 0.45), ("clean_tutorial", 0.2), ("doc", 0.15), ("indirect", 0.05), ("general", 0.15))


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
            docs.append(chat(task, code, rng, cfg, kind, family))
        else:
            docs.append(Example(assistant=code, kind=kind, family=family, function=task.name))
    return docs
