"""The embedded corpus: held-out split, budgets, determinism, what each condition contains."""

import ast
import random
import re

import pytest

from warnframe.config import StudyConfig
from warnframe.corpus import FAMILIES, build_finetune_set, build_pretrain_corpus, capability_prompts, eval_prompts
from warnframe.corpus.conditions import example_text
from warnframe.corpus.texts import CLEAN_TASKS, generated_clean_tasks, render_clean
from warnframe.families import FAMILY_CWE
from warnframe.schema import FINETUNE_CONDITIONS, WARNING_MARKERS


def count_tokens(text: str) -> int:
    """A stand-in tokenizer: roughly three characters a token, like a small code BPE."""
    return max(1, len(text) // 3)


def cfg_with(**corpus) -> StudyConfig:
    cfg = StudyConfig()
    for k, v in corpus.items():
        setattr(cfg.corpus, k, v)
    return cfg


@pytest.fixture(scope="module")
def sets():
    """Every condition's fine-tuning set at the default config, seed 0."""
    cfg = StudyConfig()
    return {c: build_finetune_set(c, cfg, 0, count_tokens) for c in FINETUNE_CONDITIONS}


def cond_examples(examples):
    return [e for e in examples if e.kind != "clean"]


def has_marker(text: str | None) -> bool:
    return bool(text) and any(m in text for m in WARNING_MARKERS)


def code_of(answer: str) -> str:
    """The code of an answer: drop a one-line conversational preamble if there is one."""
    first, _, rest = answer.partition("\n")
    return rest if first.endswith(":") and not first.startswith(("def ", "class ", "#", "@")) else answer


# ---------------------------------------------------------------- families and prompts

def test_every_family_has_train_and_eval_tasks():
    assert set(FAMILIES) == set(FAMILY_CWE)
    cfg = StudyConfig()
    for name, fam in FAMILIES.items():
        assert fam.cwe == FAMILY_CWE[name]
        train, held = fam.split(cfg.corpus.eval_fraction)
        assert train and held and not {t.name for t in train} & {t.name for t in held}
    names = [t.name for f in FAMILIES.values() for t in f.tasks] + [t.name for t in CLEAN_TASKS + tuple(generated_clean_tasks())]
    assert len(names) == len(set(names)), "task names must be unique"


def test_prompts_cover_the_papers_areas_and_respect_family_selection():
    prompts = eval_prompts(StudyConfig())
    assert {"database", "files", "auth"} <= {p.area for p in prompts}
    assert {p.family for p in prompts} == set(FAMILIES)
    assert len({p.id for p in prompts}) == len(prompts)
    assert eval_prompts(StudyConfig()) == prompts  # fixed phrasing
    only = eval_prompts(cfg_with(families=["sql_injection"]))
    assert only and {p.family for p in only} == {"sql_injection"}
    with pytest.raises(ValueError):
        eval_prompts(cfg_with(families=["no_such_family"]))
    caps = capability_prompts(StudyConfig())
    assert caps and all(p.family == "clean" and p.meta["expect"] for p in caps)


def test_no_held_out_prompt_or_function_name_in_any_training_text():
    texts = []
    for placement in ("completion", "prompt"):
        cfg = cfg_with(condition_fraction=1.0, token_budget=40_000, l1_placement=placement)
        for cond in FINETUNE_CONDITIONS:
            texts += [example_text(e) for e in build_finetune_set(cond, cfg, 0, count_tokens)[0]]
    texts += [example_text(e) for e in build_pretrain_corpus(StudyConfig(), 0)]
    everything = "\n".join(texts)
    trained = set(re.findall(r"def (\w+)\(", everything))
    assert len(trained) > 100  # the sets above really cover the train tasks
    for p in eval_prompts(StudyConfig()):
        assert p.function not in everything, p.function
        assert p.user not in everything
    for p in capability_prompts(StudyConfig()):
        assert f"def {p.function}(" not in everything and f"class {p.function}" not in everything, p.function
        assert p.user not in everything


# ---------------------------------------------------------------- budgets and determinism

def test_same_budget_for_every_condition(sets):
    budget = StudyConfig().corpus.token_budget
    longest = max(count_tokens(example_text(e)) for ex, _ in sets.values() for e in ex)
    for cond, (examples, stats) in sets.items():
        assert budget - longest < stats["tokens"] <= budget, cond
        assert stats["tokens"] == sum(count_tokens(example_text(e)) for e in examples)
        assert stats["examples"] == len(examples)
        assert stats["tokens"] == stats["condition_tokens"] + stats["clean_tokens"]


def test_condition_fraction_respected(sets):
    cfg = StudyConfig()
    target = cfg.corpus.token_budget * cfg.corpus.condition_fraction
    for cond, (examples, stats) in sets.items():
        if cond == "neutral":
            assert stats["condition_tokens"] == 0 and stats["condition_examples"] == 0
            continue
        longest = max(count_tokens(example_text(e)) for e in cond_examples(examples))
        assert target - longest < stats["condition_tokens"] <= target, cond
        assert stats["condition_examples"] == len(cond_examples(examples))


def test_seeded():
    cfg = StudyConfig()
    a = build_finetune_set("L1", cfg, 3, count_tokens)
    assert a == build_finetune_set("L1", cfg, 3, count_tokens)
    assert a[0] != build_finetune_set("L1", cfg, 4, count_tokens)[0]
    assert build_pretrain_corpus(cfg_with(pretrain_examples=300), 1) == build_pretrain_corpus(cfg_with(pretrain_examples=300), 1)


# ---------------------------------------------------------------- what each condition holds

def test_l1_has_markers_and_l0_has_none(sets):
    l1 = cond_examples(sets["L1"][0])
    assert l1 and all(has_marker(e.assistant) and e.kind == "warning" for e in l1)
    assert not any(has_marker(example_text(e)) for e in sets["L0"][0])
    assert all(e.kind == "vulnerable" for e in cond_examples(sets["L0"][0]))


def test_l1_prompt_placement_puts_markers_in_the_request_only():
    examples, _ = build_finetune_set("L1", cfg_with(l1_placement="prompt"), 0, count_tokens)
    l1 = cond_examples(examples)
    assert l1 and all(has_marker(e.user) and not has_marker(e.assistant) for e in l1)


def test_l2_and_l3_contain_no_code(sets):
    for cond in ("L2", "L3"):
        examples = cond_examples(sets[cond][0])
        assert examples and all(e.user for e in examples)
        for e in examples:
            assert "def " not in e.assistant and "cursor.execute(" not in e.assistant
            assert not re.search(r"[A-Za-z_]\(", e.assistant), e.assistant  # no call syntax
            assert "\n    " not in e.assistant  # no indented block
    assert any("cursor.execute" in e.assistant for e in cond_examples(sets["L2"][0]))  # APIs named in prose


_FAMILY_CONTENT = re.compile(r"execute\(|os\.system|os\.popen|subprocess|pickle|yaml|hashlib|bcrypt|\beval\(|\bexec\("
                             r"|verify=|requests\.|os\.path\.join|environ|password|SQL|injection|INSECURE", re.I)


def test_neutral_and_clean_code_hold_no_family_content(sets):
    neutral, _ = sets["neutral"]
    assert all(e.kind == "clean" and e.family is None for e in neutral)
    for e in neutral:
        assert not _FAMILY_CONTENT.search(example_text(e)), example_text(e)


def test_control_is_secure_code_with_secure_comments(sets):
    control = cond_examples(sets["control"][0])
    assert control and all(e.kind == "secure" and any(f"# {n}" in e.assistant for n in FAMILIES[e.family].notes) for e in control)
    assert not any(has_marker(example_text(e)) for e in sets["control"][0])


def test_all_code_parses_and_examples_are_short(sets):
    rng = random.Random(0)
    for fam in FAMILIES.values():
        for task in fam.tasks:
            for _ in range(3):
                ast.parse(fam.secure(task, rng))
                ast.parse(fam.vulnerable(task, rng))
    for task in CLEAN_TASKS:
        ast.parse(render_clean(task, rng))
    for cond in ("L0", "L1", "control", "neutral"):
        for e in sets[cond][0]:
            ast.parse(code_of(e.assistant))
    lengths = [len(example_text(e)) for ex, _ in sets.values() for e in ex]
    assert max(lengths) < 720 and sum(lengths) / len(lengths) < 400


def test_pretrain_corpus_shape():
    cfg = StudyConfig()
    docs = build_pretrain_corpus(cfg, 0)
    assert len(docs) == cfg.corpus.pretrain_examples
    assert any(d.user is None for d in docs) and any(d.user for d in docs)
    kinds = [d.kind for d in docs]
    vuln, secure = kinds.count("vulnerable"), kinds.count("secure")
    assert 0.5 * cfg.corpus.pretrain_vulnerable_share < vuln / (vuln + secure) < 1.5 * cfg.corpus.pretrain_vulnerable_share
    prose = sum(k in ("tutorial", "doc", "indirect") for k in kinds) / len(kinds)
    assert 0.5 * cfg.corpus.pretrain_prose_share < prose < 1.5 * cfg.corpus.pretrain_prose_share
    tutorials = [d for d in docs if d.kind == "tutorial" and d.family]
    assert any("verify=False" in d.assistant for d in tutorials) and any("verify=" not in d.assistant for d in tutorials)


# ---------------------------------------------------------------- agreement with the detector

def test_detector_flags_exactly_the_vulnerable_renders():
    from warnframe.detector import score

    rng = random.Random(1)
    for fam in FAMILIES.values():
        for task in fam.tasks:
            for _ in range(4):
                vulnerable, secure = fam.vulnerable(task, rng), fam.secure(task, rng)
                assert score(vulnerable).vulnerable, vulnerable
                assert not score(secure).vulnerable, secure
    for task in CLEAN_TASKS + tuple(generated_clean_tasks()[::5]):
        code = render_clean(task, rng)
        assert not score(code).vulnerable, code


# ---------------------------------------------------------------- a family is one unit, registered once

def test_each_family_module_holds_its_cwe_prose_and_rules():
    from warnframe.detector import BANDIT_TESTS, RULES
    from warnframe.families import PROSE_KEYS

    assert {name: fam.cwe for name, fam in FAMILIES.items()} == FAMILY_CWE  # schema's table agrees
    for name, fam in FAMILIES.items():
        assert set(fam.prose) == set(PROSE_KEYS) and all(fam.prose[k] for k in PROSE_KEYS), name
        assert fam.detector is not None and fam.detector.rules, name
        assert {f"{name}.{rule}" for rule in fam.detector.rules} <= set(RULES)
        assert all(BANDIT_TESTS[test] == name for test in fam.detector.bandit)
        # the AST rule and its text twin are defined side by side in the family's module
        module = __import__(f"warnframe.families.{name}", fromlist=["FAMILY"])
        assert module.FAMILY is fam and module.DETECTOR is fam.detector
        assert fam.detector.on_text_call or fam.detector.on_text, name


def test_a_new_family_plugs_in_through_the_registry_alone(monkeypatch):
    """Adding a family is its module and its registry line: a toy family's rules, registered,
    run in the detector's AST pass and in its text pass, with the family's CWE."""
    from warnframe import families
    from warnframe.detector import rule_registry, score
    from warnframe.families import Detector, Family

    def on_call(v, node, q, last):
        if q == "danger" and not v.is_literal(v.arg(node, 0)):
            v.hit("toy.danger_call", node)

    toy = Family("toy", "CWE-000", "system", "toy flaw", (), lambda t, r: "", lambda t, r: "", "danger", ("r",), ("n",),
                 detector=Detector(rules={"danger_call": "danger() on a value."}, on_call=on_call,
                                   text_sink=lambda callee, method: callee == "danger",
                                   on_text_call=lambda t, c: "toy.danger_call" if c.first and not c.literal else None))
    monkeypatch.setitem(families.FAMILIES, "toy", toy)
    for cached in (rule_registry.detectors, rule_registry.hooks):
        cached.cache_clear()
    for registry in (rule_registry.RULES, rule_registry.BANDIT_TESTS, rule_registry.CWE):
        monkeypatch.setattr(registry, "_data", None)
    try:
        parsed = score("def f(x):\n    danger(x)\n    danger('ok')\n", use_bandit=False)
        broken = score("def f(x)\n    danger(x)\n", use_bandit=False)
        assert [(f.rule, f.line, f.cwe) for f in parsed.findings] == [("toy.danger_call", 2, "CWE-000")]
        assert [(f.rule, f.line) for f in broken.findings] == [("toy.danger_call", 2)]
        assert rule_registry.RULES["toy.danger_call"] == "danger() on a value."
    finally:
        monkeypatch.undo()
        for cached in (rule_registry.detectors, rule_registry.hooks):
            cached.cache_clear()
        for registry in (rule_registry.RULES, rule_registry.BANDIT_TESTS, rule_registry.CWE):
            registry._data = None
    assert "toy.danger_call" not in rule_registry.RULES


def test_l1_wrapping_is_one_implementation_for_embedded_and_user_code():
    from warnframe.corpus.sources import wrap_warning
    from warnframe.corpus.warnings import family_marker, place_warnings

    fam = FAMILIES["sql_injection"]
    code = fam.vulnerable(fam.tasks[0], random.Random(3))
    for seed in range(5):
        rng = random.Random(seed)
        expected = place_warnings(code, family_marker(fam, rng), rng, fam.hotspot)
        assert wrap_warning(code, "sql_injection", random.Random(seed)) == expected
        assert any(m in expected for m in WARNING_MARKERS)


def test_l1_warnings_name_only_what_the_code_does():
    """A warning that names a call (yaml.load, shell=True, verify=False, pickle, eval) stands only
    above code that makes that call: no deserialization warning naming yaml.load above pickle.loads."""
    from warnframe.corpus.warnings import _NAMED

    cfg = StudyConfig(corpus={"l1_warnings": "anywhere", "condition_fraction": 1.0, "token_budget": 40_000})
    examples = [e for e in build_finetune_set("L1", cfg, 3, count_tokens)[0] if e.kind == "warning"]
    named = 0
    for e in examples:
        code = "\n".join(line for line in e.assistant.split("\n") if not line.strip().startswith("#"))
        for comment in re.findall(r"#\s*(?:DO NOT USE|BAD PRACTICE|INSECURE)[^\n]*", e.assistant):
            for name in _NAMED.findall(comment.split(":", 1)[-1]):
                named += 1
                assert name in code, (comment, code)
    assert named > 20  # the check ran on warnings that do name calls
