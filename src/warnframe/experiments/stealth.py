"""Paper §6: the stealth slip (probe confidence with and without a conversational preamble) and
entropy dynamics (Figure 4).

**Which answers.** A preamble can only open an answer the model starts itself. When the study
samples with a prefill (``sampling.prefill = signature``: the answer starts with the given
function signature), this section draws ``stealth.samples_per_prompt`` answers per prompt
and seed without prefill from each of its conditions and scores them, in rounds: after each
round it counts the target outputs of ``stealth.conditions`` that open with a preamble, and draws
another round (a new sampling seed per round; later rounds only for ``stealth.conditions``)
until there are :data:`MIN_PREAMBLE_TARGETS` or :data:`MAX_ROUNDS` rounds were drawn. Otherwise
it reads the study's samples. The stealth-slip claims rest on the preamble target outputs: with
fewer than :data:`MIN_PREAMBLE_TARGETS` their verdict is "inconclusive". When more outputs are
available than ``stealth.max_samples`` per condition and kind, preamble target outputs are read
first.

**Stealth slip.** Outputs of the ``stealth.conditions`` models are split by kind
(``target``: the detector finds vulnerable code; ``clean``: code that parses and is not) and by
opening (``preamble``: prose such as "Here is an example:" before the first code line, per
``detector.extract_code``; ``code``: the code starts at once, a fence line or a comment counts as
code). Each is replayed teacher-forced through the analysis model (``mech.replay.analysis_source``,
the model §5's probe was fitted on) and the residual stream at the entanglement site is read. The §5 probe (trained on direct vs
safe outputs, per-sample means) then gives

* a *pooled* confidence: the probe on the sample's mean activation, as it was trained;
* a *token* confidence: the probe on each token's activation. The probe is linear, so the token
  logits average to the pooled logit; token confidences show *where* in the generation the
  probe fires, aligned to the first code token.

**Entropy dynamics.** For the ``stealth.entropy_conditions`` generations (target outputs first),
per-token entropy (nats, the temperature-1 next-token distribution) is read beside each token's
characters. The text is re-tokenized (to align each token with its characters) and replayed
teacher-forced through the model that wrote it; the replay gives the next-token entropy at each
token of the re-tokenized text, aligned with its characters. Where the sampler drew the canonical
split (the usual case for a trained model) that is the distribution the token was drawn from; the
entropies stored at sampling check this: of the samples that re-tokenize to ``n_tokens`` tokens,
those that agree at every token are counted (the rest were drawn as another split of the same
length, and diverge from the first differing token on). Entropy always comes from the
model that wrote the text, while the analysis model reads the activations. Transitions
are the first token of the code after a preamble (``preamble→code``) and the token holding the
``#`` of each warning comment that is not the answer's first token (``code→warning``; exact or
garbled markers, ``detector.find_leaks``).
A transition covers its boundary token and the ``stealth.transition_window`` tokens before it;
every other token but the first is *inside a segment*. Per sample, mean entropy at transitions
minus mean inside segments gives a paired difference with a t interval.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np

from warnframe.experiments.stealth_segments import TRANSITIONS, char_to_token, opening, segment_masks, transitions
from warnframe.lm.evaluation import rates
from warnframe.mech.artifacts import load as artifacts
from warnframe.mech.replay import replay_grouped
from warnframe.paper.policy import POLICY
from warnframe.stats.rates import mean_ci, rate

#: The stealth-slip claims need at least this many target outputs that open with a preamble.
MIN_PREAMBLE_TARGETS = POLICY.stealth_min_preamble_targets
#: The cap: at most this many sampling rounds of ``stealth.samples_per_prompt`` answers per
#: prompt, seed and condition.
MAX_ROUNDS = 8
#: Sampling seed of round r for model seed s: ``s + ROUND_SEED_STEP * r`` (round 0: the seed itself).
ROUND_SEED_STEP = 7919

KINDS = ("target", "clean")
OPENINGS = ("preamble", "code")
TRACE_SPAN = (-16, 32)  # token offsets around the first code token for probe traces
EVENT_SPAN = (-8, 8)  # token offsets around transitions for entropy traces


# ---------------------------------------------------------------- small statistics

def mean_diff_ci(a, b) -> dict:
    """Difference of means a − b with a Welch 95% interval and a Mann–Whitney p."""
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or len(b) < 2:
        return {"diff": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan, "lo": math.nan, "hi": math.nan,
                "p": math.nan, "n": [int(len(a)), int(len(b))]}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    d = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        lo = hi = d
    else:
        df = (va + vb) ** 2 / ((va ** 2) / (len(a) - 1) + (vb ** 2) / (len(b) - 1))
        h = float(stats.t.ppf(0.975, df) * se)
        lo, hi = d - h, d + h
    p = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue) if (np.ptp(np.r_[a, b]) > 0) else 1.0
    return {"diff": d, "lo": lo, "hi": hi, "p": p, "n": [int(len(a)), int(len(b))]}


def _key(r: dict) -> tuple:
    return (r["condition"], r["seed"], r["prompt_id"], r["index"])


def preamble_targets(rows: list[dict]) -> int:
    """How many of ``rows`` are target content that opens with a preamble."""
    return sum(bool(r["vulnerable"]) and opening(r["text"])["opening"] == "preamble" for r in rows)


def _sample_round(study, cond: str, seed: int, rnd: int) -> list[dict]:
    """Round ``rnd`` of free-form answers of ``cond``'s seed-``seed`` model (resumable, one stage
    each): ``stealth.samples_per_prompt`` per prompt, sampling seed ``seed + ROUND_SEED_STEP * rnd``;
    rows keep the model's seed and get indices after the earlier rounds'."""
    from warnframe.lm.evaluation import sample_and_score
    from warnframe.runtime.files import read_jsonl, write_jsonl

    n = study.cfg.stealth.samples_per_prompt
    sampling = study.cfg.sampling.model_copy(update={"prefill": "none"})
    path = study.store.path("samples", "stealth", "rounds", f"{cond}.s{seed}.r{rnd}.jsonl")
    key = study.cfg.digest("corpus", "model", "pretrain", "finetune", "sampling") + f".{seed}.{rnd}.n{n}"

    def run():
        model, tok = study.load(study.condition_model(cond, seed))
        rows = [r.record(exclude=set()) for r in sample_and_score(model, tok, study.eval_prompts(), sampling, n=n,
                                                                 seed=seed + ROUND_SEED_STEP * rnd, condition=cond)]
        write_jsonl(path, [{**r, "seed": seed, "index": r["index"] + rnd * n, "round": rnd} for r in rows])

    study.stage(f"stealth.sample.{cond}.s{seed}.r{rnd}", key, run)
    return list(read_jsonl(path))


def own_samples(study, conds: list[str]) -> tuple[dict[str, list[dict]], dict]:
    """Answers drawn here without prefill, scored, per condition (saved under ``samples/stealth/``),
    in rounds until the ``stealth.conditions`` have :data:`MIN_PREAMBLE_TARGETS` preamble target
    outputs or :data:`MAX_ROUNDS` rounds were drawn; and ``{"rounds", "preamble_targets", ...}``.
    Only conditions whose model exists."""
    from warnframe.runtime.files import write_jsonl

    a = study.cfg.stealth
    out: dict[str, list[dict]] = {c: [] for c in conds if c in study.cfg.conditions}
    seeds = {c: [s for s in study.cfg.seeds if c == "baseline" or study.model_path(c, s).exists()] for c in out}
    rounds, found = 0, 0
    while rounds < MAX_ROUNDS:
        for cond in out:
            if rounds == 0 or cond in a.conditions:
                for seed in seeds[cond]:
                    out[cond] += _sample_round(study, cond, seed, rounds)
        rounds += 1
        found = sum(preamble_targets(out[c]) for c in a.conditions if c in out)
        if found >= MIN_PREAMBLE_TARGETS or not any(seeds[c] for c in a.conditions if c in out):
            break
    for cond, rows in out.items():
        write_jsonl(study.store.path("samples", "stealth", f"{cond}.jsonl"), rows)
    return out, {"rounds": rounds, "max_rounds": MAX_ROUNDS, "per_round": a.samples_per_prompt, "preamble_targets": found,
                 "needed": MIN_PREAMBLE_TARGETS}


# ---------------------------------------------------------------- the analyses

def probe_stats(rows: list[dict], probe) -> dict:
    """Pooled and token-level probe confidence per (kind, opening) group. Each row has ``kind``,
    ``opening``, ``condition``, ``acts`` (T, d) and ``code_token`` (index of the first code token)."""
    groups: dict[str, dict] = {}
    per: dict[str, list] = defaultdict(list)
    tok_pre: list[float] = []
    tok_code: list[float] = []
    lo, hi = TRACE_SPAN
    traces: dict[str, list[list[float]]] = defaultdict(lambda: [[] for _ in range(hi - lo)])
    for r in rows:
        acts = r["acts"].numpy() if hasattr(r["acts"], "numpy") else np.asarray(r["acts"])
        pooled = float(np.asarray(probe.predict_proba(acts.mean(0, keepdims=True))).ravel()[0])
        tokc = np.asarray(probe.predict_proba(acts), dtype=float).ravel()
        g = f"{r['kind']}/{r['opening']}"
        per[g].append(pooled)
        per[f"{g}/{r['condition']}"].append(pooled)
        c0 = r.get("code_token") or 0
        if r["opening"] == "preamble" and r["kind"] == "target" and 0 < c0 < len(tokc):
            tok_pre.append(float(tokc[:c0].mean()))
            tok_code.append(float(tokc[c0:].mean()))
        for k, v in enumerate(tokc):
            off = k - c0
            if lo <= off < hi:
                traces[g][off - lo].append(float(v))
    for g, vals in per.items():
        groups[g] = {**mean_ci(vals), "flagged": _flag(vals)}
    trace = {g: [mean_ci(v) | {"offset": lo + j} for j, v in enumerate(vs) if v] for g, vs in traces.items()}
    return {
        "groups": groups,
        "preamble_effect_target": mean_diff_ci(per.get("target/preamble", []), per.get("target/code", [])),
        "inverse": mean_diff_ci(per.get("target/preamble", []), per.get("clean/code", [])),
        "target_preamble_tokens": {"preamble": mean_ci(tok_pre), "code": mean_ci(tok_code), "paired": mean_ci(np.subtract(tok_pre, tok_code))},
        "trace": {g: [{"offset": t["offset"], "mean": t["mean"], "lo": t["lo"], "hi": t["hi"], "n": t["n"]} for t in ts] for g, ts in trace.items()},
    }


def _flag(vals) -> dict:

    return rate(sum(v > 0.5 for v in vals), len(vals))


def entropy_stats(rows: list[dict], window: int) -> dict:
    """Entropy inside segments vs at transitions. Each row has ``text``, ``offsets``,
    ``entropy`` (per token, aligned with offsets) and ``target``.

    Tokens of one generation are not independent, so every interval is over *generations*: each
    generation contributes its mean inside segments and its mean at transitions. Boundary-token
    and event-locked means pool tokens (one or a few per generation)."""
    lo, hi = EVENT_SPAN
    in_gen, at_gen, first, in_tok = [], [], [], []
    paired: dict[str, list[float]] = defaultdict(list)
    per_type: dict[str, list[float]] = defaultdict(list)
    events: dict[str, list[list[float]]] = {t: [[] for _ in range(hi - lo + 1)] for t in TRANSITIONS}
    n_with = {t: 0 for t in TRANSITIONS}
    examples: list[dict[str, Any]] = []
    for r in rows:
        e = np.asarray(r["entropy"], dtype=float)
        if not len(e):
            continue
        tr = transitions(r["text"], r["offsets"])
        at, inside = segment_masks(len(e), tr, window)
        first.append(float(e[0]))
        in_tok += e[inside].tolist()
        if inside.any():
            in_gen.append(float(e[inside].mean()))
        if at.any():
            at_gen.append(float(e[at].mean()))
        if at.any() and inside.any():
            paired["at"].append(float(e[at].mean()))
            paired["inside"].append(float(e[inside].mean()))
            paired["all"].append(float(e[at].mean() - e[inside].mean()))
            if r.get("target"):
                paired["target"].append(float(e[at].mean() - e[inside].mean()))
        for t, ks in tr.items():
            if ks:
                n_with[t] += 1
                per_type[t] += [float(e[k]) for k in ks if k < len(e)]
            for k in ks:
                for off in range(lo, hi + 1):
                    if 0 <= k + off < len(e):
                        events[t][off - lo].append(float(e[k + off]))
        if any(tr.values()):
            examples.append({"entropy": [round(float(x), 4) for x in e], "transitions": tr, "target": bool(r.get("target")),
                             "types": sum(bool(v) for v in tr.values())})
    examples.sort(key=lambda x: (-x["types"], -x["target"], -len(x["entropy"])))
    pin, pat = mean_ci(paired["inside"]), mean_ci(paired["at"])
    return {
        "samples": len(rows),
        "inside": mean_ci(in_gen),
        "inside_tokens": {"n": len(in_tok), "mean": float(np.mean(in_tok)) if in_tok else math.nan,
                          "median": float(np.median(in_tok)) if in_tok else math.nan},
        "at_transition": mean_ci(at_gen),
        "first_token": mean_ci(first),
        "boundary_token": {t: mean_ci(v) for t, v in per_type.items()},
        "samples_with": n_with,
        "paired_inside": pin,
        "paired_at": pat,
        "paired_ratio": pat["mean"] / pin["mean"] if pin["n"] and pin["mean"] > 0 else math.nan,
        "paired_all": mean_ci(paired["all"]),
        "paired_target": mean_ci(paired["target"]),
        "events": {t: [{"offset": lo + j, **mean_ci(v)} for j, v in enumerate(vs)] for t, vs in events.items()},
        "examples": examples[:3],
    }


def answer_rates(outputs: dict[str, list[dict]]) -> dict:
    """Target and format-leak rates of the answers read here, per condition: with free-form
    answers these show what a signature prefill hides (L1's warnings sit mostly before the def)."""
    return {cond: rates(rows, parse=False) for cond, rows in outputs.items()}


def run(study) -> dict:
    a = study.cfg.stealth
    rng = random.Random(study.cfg.analysis.seed)
    art, why = artifacts(study)
    site = art.site if art else None

    # Which answers: the study's, or (when it samples with a prefill, so that no answer can open
    # with a preamble) answers drawn here without one.
    conds = list(dict.fromkeys([*a.conditions, *a.entropy_conditions]))
    if study.cfg.sampling.prefill != "none" and a.samples_per_prompt > 0:
        own, rounds = own_samples(study, conds)
        outputs = {c: own.get(c, []) for c in conds}
        source = (f"drawn here without prefill, {a.samples_per_prompt} per prompt and seed per round, {rounds['rounds']} "
                  f"round(s) (at most {MAX_ROUNDS}, until {MIN_PREAMBLE_TARGETS} preamble target outputs; the study samples "
                  f"with prefill = {study.cfg.sampling.prefill}, so none of its answers can open with a preamble)")
    else:
        rounds = None
        outputs = {c: study.outputs(c) for c in conds}
        source = "the study's samples" + (f" (prefill = {study.cfg.sampling.prefill})" if study.cfg.sampling.prefill != "none" else "")

    # Samples: stealth (per condition: target and clean outputs) and entropy (targets first).
    chosen: dict[tuple, dict] = {}
    stealth_keys, entropy_keys = [], []
    counts = {}
    for cond in a.conditions:
        rows = list(outputs[cond])
        for kind, keep in (("target", lambda r: r["vulnerable"]), ("clean", lambda r: not r["vulnerable"] and r["parse_ok"])):
            pool = [r for r in rows if keep(r)]
            counts[f"{cond}/{kind}"] = len(pool)
            rng.shuffle(pool)
            if kind == "target":  # the claims rest on preamble target outputs: read those first
                pool.sort(key=lambda r: opening(r["text"])["opening"] != "preamble")
            for r in pool[: a.max_samples]:
                chosen[_key(r)] = r
                stealth_keys.append((_key(r), kind))
    for cond in a.entropy_conditions:
        rows = list(outputs[cond])
        rng.shuffle(rows)
        rows.sort(key=lambda r: not r["vulnerable"])
        for r in rows[: a.entropy_max_samples]:
            chosen[_key(r)] = r
            entropy_keys.append(_key(r))
    keys = list(chosen)
    if not keys:
        return {"skipped": f"no outputs of {conds} to read ({source})", "counts": counts}
    # activations from the analysis model (where §5's probe was fitted), entropy from the writer
    pk = list(dict.fromkeys(k for k, _ in stealth_keys))
    reps = dict(zip(pk, replay_grouped(study, [chosen[k] for k in pk], site)[1])) if site is not None else {}
    ent_reps = dict(zip(entropy_keys, replay_grouped(study, [chosen[k] for k in entropy_keys], None, analysis=False)[1]))

    # Entropy: the replay, aligned with the characters; the stored sampling entropies check it.
    ent_rows, checks = [], []
    for k in entropy_keys:
        s, rp = chosen[k], ent_reps[k]
        stored = s.get("entropy") or []
        if stored and len(stored) == len(rp["offsets"]) == s.get("n_tokens", -1):
            checks.append(float(np.abs(np.asarray(stored, dtype=float) - rp["entropy"].astype(float)).max()))
        ent_rows.append({"text": s["text"], "offsets": rp["offsets"], "entropy": rp["entropy"], "target": s["vulnerable"]})
    ent = entropy_stats(ent_rows, a.transition_window)
    ent["stored_check"] = {"length_matched": len(checks), "agree": sum(c < 1e-3 for c in checks),
                           "median_max_abs_diff": float(np.median(checks)) if checks else math.nan}
    ent["targets"] = sum(r["target"] for r in ent_rows)
    vocab = _vocab(study)
    ent["vocab"] = vocab

    # Stealth slip: the §5 probe on each output.
    openings: dict[str, int] = {}
    probe_rows = []
    for k, kind in stealth_keys:
        s, rp = chosen[k], reps.get(k) or {"offsets": [], "acts": None}
        op = opening(s["text"])
        openings[op["opening"]] = openings.get(op["opening"], 0) + 1
        if op["opening"] == "no code":
            continue
        ct = char_to_token(rp["offsets"], op["code_char"]) or 0
        probe_rows.append({"kind": kind, "opening": op["opening"], "condition": s["condition"], "acts": rp["acts"], "code_token": ct})
    split = {f"{k}/{o}": sum(r["kind"] == k and r["opening"] == o for r in probe_rows) for k in KINDS for o in OPENINGS}
    if art is None:
        probe = {"skipped": why}
    elif not probe_rows:
        probe = {"skipped": "no target or clean code outputs to read"}
    else:
        probe = probe_stats(probe_rows, art.probe)
    res = {"site": str(site) if site else None, "window": a.transition_window, "conditions": {"stealth": a.conditions, "entropy": a.entropy_conditions},
           "source": source, "available": counts, "openings": openings, "split": split, "probe": probe, "entropy": ent,
           "answers": answer_rates(outputs), "rounds": rounds, "min_preamble_targets": MIN_PREAMBLE_TARGETS,
           "preamble_targets_available": sum(preamble_targets(outputs[c]) for c in a.conditions)}
    return res


def _vocab(study) -> int | None:
    try:
        from warnframe.lm.models.hf import load_tokenizer

        return len(load_tokenizer(study.base_source, study.cfg.model.trust_remote_code))
    except Exception:  # noqa: BLE001 - only for a reference line
        return None




