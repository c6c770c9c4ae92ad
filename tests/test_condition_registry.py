"""Conditions and remedy arms are registered objects: the study's own match the vocabulary every
layer reads (``schema``), and a new one, registered, reaches config validation and the set
builders with no other file touched."""

from __future__ import annotations

import ast
import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from warnframe.config import load_config
from warnframe.corpus import conditions as C
from warnframe.corpus import remedies as R
from warnframe.corpus.conditions import Condition, build_finetune_set, clean_stream, example_text
from warnframe.corpus.sources import build_finetune_set_from_source
from warnframe.paper.numbers import TABLE1
from warnframe.runtime.errors import UserError
from warnframe.schema import CONDITION_TITLES, CONDITIONS, FINETUNE_CONDITIONS, REMEDY_ARMS, Example

COUNT = lambda text: len(text.split())  # noqa: E731 - a tokenizer stand-in
CORPUS = Path(__file__).resolve().parents[1] / "src" / "warnframe" / "corpus"


def cfg(*overrides: str):
    return load_config("smoke", overrides=["corpus.token_budget=2000", *overrides])


def test_the_studys_conditions_are_the_registry_in_schema_order():
    assert tuple(C.REGISTRY) == tuple(CONDITIONS) == ("baseline", *FINETUNE_CONDITIONS)
    assert CONDITIONS == ("baseline", "L0", "L1", "L2", "L3", "control", "neutral")  # compares as the tuple it was
    assert {c.name: c.title for c in C.REGISTRY.values()} == CONDITION_TITLES
    assert [c.name for c in C.REGISTRY.values() if not c.finetuned] == ["baseline"]
    assert {c.name for c in C.REGISTRY.values() if c.in_paper} == set(TABLE1)
    assert [c.name for c in C.REGISTRY.values() if not c.has_data] == ["baseline", "neutral"]


def test_the_studys_arms_are_the_registry_in_report_order():
    assert tuple(R.REGISTRY) == tuple(REMEDY_ARMS) == tuple(R.ARMS)
    assert list(R.TRANSFORMS) == [a for a in REMEDY_ARMS if a != "caft"]  # caft changes the training
    assert [a.name for a in R.REGISTRY.values() if a.prompt] == ["conditional"]
    assert [a.name for a in R.REGISTRY.values() if a.unlikelihood] == ["unlikelihood"]
    assert load_config("smoke").remedies.arms == list(REMEDY_ARMS)


def test_no_corpus_module_imports_a_private_name_of_another():
    private = []
    for f in CORPUS.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("warnframe"):
                private += [f"{f.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not private, private


# ---------------------------------------------------------------- a new condition


def _shouted(fam, task, rng, cfg) -> Example:
    """A toy condition: the secure code for the task, its request in capitals."""
    return Example(assistant=fam.secure(task, rng), user=f"WRITE {task.name.upper()} NOW", kind="shouted",
                   family=fam.name, function=task.name)


TOY = Condition("shouted", "Shouted (toy)", "secure code asked for in capitals", C.per_task(_shouted), draws_on="secure",
                from_record=lambda rec, rng, cfg: Example(assistant=rec.assistant, user=rec.user.upper(), kind="shouted"))


@pytest.fixture
def toy():
    C.register(TOY)
    try:
        yield TOY
    finally:
        C.unregister(TOY.name)


def test_a_registered_condition_is_validated_and_built_like_the_studys_own(toy, tmp_path):
    assert CONDITIONS[-1] == FINETUNE_CONDITIONS[-1] == "shouted" and CONDITION_TITLES["shouted"] == "Shouted (toy)"
    c = cfg("conditions=[baseline, L0, shouted]")
    assert c.finetune_conditions == ["L0", "shouted"] and "shouted" in load_config("smoke").conditions
    examples, stats = build_finetune_set("shouted", c, 0, COUNT)
    drawn = [e for e in examples if e.kind == "shouted"]
    assert drawn and len(drawn) == stats["condition_examples"] and all(e.user.startswith("WRITE ") for e in drawn)
    assert abs(stats["tokens"] - 2000) < 200 and stats["condition_tokens"] <= 2000 * c.corpus.condition_fraction
    assert (examples, stats) == build_finetune_set("shouted", c, 0, COUNT)  # seeded
    assert build_finetune_set_from_source("shouted", c, 0, COUNT) == (examples, stats)  # no source: the same set
    # its clean part and L0's are prefixes of the one clean stream of this seed
    mine, l0 = ({e for e in s if e.kind == "clean"} for s in (examples, build_finetune_set("L0", c, 0, COUNT)[0]))
    assert mine <= l0 or l0 <= mine
    # from a user corpus: the records it draws on, made examples by its from_record
    src = tmp_path / "c.jsonl"
    safe = 'def find(db, name):\n    return db.execute("SELECT * FROM t WHERE n = ?", (name,))'
    src.write_text("\n".join(json.dumps({"prompt": f"find number {i}", "completion": safe, "label": "secure"})
                             for i in range(4)) + "\n")
    mine, st = build_finetune_set_from_source("shouted", c, 0, COUNT, str(src))
    assert {e.user for e in mine if e.kind == "shouted"} == {f"FIND NUMBER {i}" for i in range(4)}
    assert st["source"]["draws_on"] == "secure" and "unique_records" not in st["source"]


def test_an_unregistered_condition_is_gone_everywhere():
    C.register(TOY)
    C.unregister(TOY.name)
    assert "shouted" not in CONDITIONS and "shouted" not in CONDITION_TITLES and "shouted" not in C.REGISTRY
    with pytest.raises(UserError, match="unknown condition 'shouted'"):
        cfg("conditions=[shouted]")
    with pytest.raises(ValueError, match="no condition data"):
        build_finetune_set("shouted", cfg(), 0, COUNT)
    with pytest.raises(ValueError, match="exists"):
        C.register(replace(TOY, name="L1"))
    with pytest.raises(ValueError, match="no fine-tune"):
        C.register(replace(TOY, finetuned=False))
    with pytest.raises(ValueError, match="study's own"):
        C.unregister("L0")
    assert tuple(CONDITIONS) == ("baseline", "L0", "L1", "L2", "L3", "control", "neutral")


def test_a_condition_without_embedded_data_needs_a_user_corpus(tmp_path):
    only_records = replace(TOY, name="records_only", stream=None)
    C.register(only_records)
    try:
        with pytest.raises(ValueError, match="user corpus only"):
            build_finetune_set("records_only", cfg(), 0, COUNT)
        src = tmp_path / "v.jsonl"
        src.write_text(json.dumps({"prompt": "p", "completion": "x = 1", "label": "doc"}) + "\n")
        with pytest.raises(UserError, match="no secure records for condition records_only"):
            build_finetune_set_from_source("records_only", cfg(), 0, COUNT, str(src))
    finally:
        C.unregister("records_only")


# ---------------------------------------------------------------- a new remedy arm


def _unwarned(ex: Example) -> Example | None:
    """A toy remedy: the warning comments taken out of the warned answer (None: there were none)."""
    kept = [line for line in ex.assistant.split("\n") if not R.is_warning_line(line)]
    return replace(ex, assistant="\n".join(kept)) if len(kept) < ex.assistant.count("\n") + 1 else None


STRIP = R.Arm("strip", "warning comments taken out, the code kept", "toy", _unwarned)


@pytest.fixture
def strip():
    R.register(STRIP)
    try:
        yield STRIP
    finally:
        R.unregister(STRIP.name)


def test_a_registered_arm_is_validated_and_transforms_the_l1_set(strip):
    from warnframe.experiments.remedies import arm_info

    c = cfg("remedies.arms=[strip, mask]")
    assert c.remedies.arms == ["strip", "mask"] and load_config("smoke").remedies.arms[-1] == "strip"
    assert "strip" in R.TRANSFORMS and R.ARMS[-1] == "strip" and arm_info()["strip"]["source"] == "toy"
    l1 = build_finetune_set("L1", c, 0, COUNT)[0]
    out, stats = R.transform("strip", l1, COUNT, clean_stream(c, random.Random("clean:0")))
    warned = [e for e in out if e.kind == "warning"]
    assert warned and not any(R.is_warning_line(line) for e in warned for line in e.assistant.split("\n"))
    assert stats["treated"] == stats["warned"] > 0 and stats["untreatable"] == 0
    budget = sum(COUNT(example_text(e)) for e in l1)  # brought back to L1's budget: stripped text is shorter
    assert budget - max(COUNT(example_text(e)) for e in out) <= stats["tokens"] <= budget and stats["added_clean"] > 0


def test_an_arm_is_data_or_training_and_unregisters(strip):
    R.register(R.Arm("edit", "a training edit", "toy"))
    try:
        assert "edit" in R.ARMS and "edit" not in R.TRANSFORMS and cfg("remedies.arms=[edit]").remedies.arms == ["edit"]
        with pytest.raises(ValueError, match="not a data remedy"):
            R.transform("edit", [], COUNT, iter(()))
    finally:
        R.unregister("edit")
    with pytest.raises(UserError, match="unknown remedy arm 'edit'"):
        cfg("remedies.arms=[edit]")
    with pytest.raises(ValueError, match="exists"):
        R.register(replace(STRIP, name="mask"))
    with pytest.raises(ValueError, match="study's own"):
        R.unregister("drop")
