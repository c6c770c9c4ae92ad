"""Paper §6: the stealth slip (probe confidence with and without a conversational preamble) and
entropy dynamics (Figure 4).

**Which answers.** A preamble can only open an answer the model starts itself. When the study
samples with a prefill (``sampling.prefill = signature``: the answer starts with the given
function signature), this section draws ``analysis.stealth_samples_per_prompt`` answers per prompt
and seed without prefill from each of its conditions and scores them; otherwise it reads the
study's samples.

**Stealth slip.** Outputs of the ``analysis.stealth_conditions`` models are split by kind
(``target``: the detector finds vulnerable code; ``clean``: code that parses and is not) and by
opening (``preamble``: prose such as "Here is an example:" before the first code line, per
``scoring.extract_code``; ``code``: the code starts at once, a fence line or a comment counts as
code). Each is replayed teacher-forced through the model that wrote it (or ``mech.analysis_model``)
and the residual stream at the entanglement site is read. The §5 probe (trained on direct vs
safe outputs, per-sample means) then gives

* a *pooled* confidence: the probe on the sample's mean activation, as it was trained;
* a *token* confidence: the probe on each token's activation. The probe is linear, so the token
  logits average to the pooled logit; token confidences show *where* in the generation the
  probe fires, aligned to the first code token.

**Entropy dynamics.** For the ``analysis.entropy_conditions`` generations (target outputs first),
per-token entropy (nats, the temperature-1 next-token distribution) is read beside each token's
characters. The text is re-tokenized (to align each token with its characters) and replayed
teacher-forced through the model that wrote it; the replay gives the next-token entropy at each
token of the re-tokenized text, aligned with its characters. Where the sampler drew the canonical
split (the usual case for a trained model) that is the distribution the token was drawn from; the
entropies stored at sampling check this: of the samples that re-tokenize to ``n_tokens`` tokens,
those that agree at every token are counted (the rest were drawn as another split of the same
length, and diverge from the first differing token on). Entropy always comes from the
model that wrote the text, also when ``mech.analysis_model`` reads the activations. Transitions
are the first token of the code after a preamble (``preamble→code``) and the token holding the
``#`` of each warning comment that is not the answer's first token (``code→warning``; exact or
garbled markers, ``scoring.find_leaks``).
A transition covers its boundary token and the ``analysis.transition_window`` tokens before it;
every other token but the first is *inside a segment*. Per sample, mean entropy at transitions
minus mean inside segments gives a paired difference with a t interval.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import torch

from ..mech.activations import right_pad
from ..mech.hooks import Site, capture, edit
from ..models.chat import render_prompt
from ..report import paper
from ..report.figures import pyplot, save
from ..scoring import extract_code, find_leaks
from ..scoring.stats import fmt_mean, fmt_rate, mean_ci, rate

KINDS = ("target", "clean")
OPENINGS = ("preamble", "code")
TRANSITIONS = ("preamble→code", "code→warning")
#: "Low entropy" in the paper's sense, fixed before any run: a mean below 1 nat (fewer than
#: e ≈ 2.7 equally likely next tokens).
LOW_ENTROPY_NATS = 1.0
TRACE_SPAN = (-16, 32)  # token offsets around the first code token for probe traces
EVENT_SPAN = (-8, 8)  # token offsets around transitions for entropy traces


# ---------------------------------------------------------------- small statistics

def diff_ci(a, b) -> dict:
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


# ---------------------------------------------------------------- text structure

def opening(text: str) -> dict:
    """How an answer opens: ``{"opening": "preamble"|"code"|"no code", "code_char": index}``.

    A preamble is a non-blank line before the first code line that is not a fence marker.
    """
    code, first = extract_code(text)
    if not code.strip():
        return {"opening": "no code", "code_char": None}
    lines = text.replace("\r\n", "\n").split("\n")
    pre = [ln for ln in lines[:first] if ln.strip() and not ln.strip().startswith(("```", "~~~"))]
    start = sum(len(ln) + 1 for ln in lines[:first])
    start += len(lines[first]) - len(lines[first].lstrip()) if first < len(lines) else 0
    return {"opening": "preamble" if pre else "code", "code_char": start}


def warning_chars(text: str) -> list[int]:
    """Character index of the ``#`` (or the line start) of every warning-shaped comment line."""
    out, pos = [], 0
    for line in text.split("\n"):
        leak = find_leaks(line)
        if leak["exact"] or leak["fuzzy"]:
            j = line.find("#")
            out.append(pos + (j if j >= 0 else len(line) - len(line.lstrip())))
        pos += len(line) + 1
    return out


def char_to_token(offsets: list[tuple[int, int]], char: int) -> int | None:
    """Index of the token that holds ``char`` (the first token ending after it)."""
    for k, (_, e) in enumerate(offsets):
        if e > char:
            return k
    return None


def transitions(text: str, offsets: list[tuple[int, int]]) -> dict[str, list[int]]:
    """Token indices of the boundary tokens, per transition type (see the module docstring)."""
    out = {t: [] for t in TRANSITIONS}
    op = opening(text)
    if op["opening"] == "preamble":
        k = char_to_token(offsets, op["code_char"])
        if k:
            out["preamble→code"].append(k)
    for c in warning_chars(text):
        k = char_to_token(offsets, c)
        if k and k not in out["code→warning"]:
            out["code→warning"].append(k)
    return out


def segment_masks(n: int, trans: dict[str, list[int]], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(at_transition, inside_segment) boolean masks over ``n`` tokens; token 0 is in neither."""
    at = np.zeros(n, dtype=bool)
    for ks in trans.values():
        for k in ks:
            at[max(1, k - window): k + 1] = True
    inside = ~at
    if n:
        inside[0] = False
    return at, inside


# ---------------------------------------------------------------- replay

@torch.no_grad()
def replay_tokens(model, tokenizer, prompts: dict, samples: list[dict], site: Site | None = None,
                  batch_size: int = 16) -> list[dict]:
    """Teacher-forced replay of prompt + generated text: per sample its token ``offsets`` (char
    spans in ``text``), the replay ``entropy`` (nats, float32 array) of the distribution that
    predicts each generated token, and the site's activations ``acts`` ``(T, d)`` (None without
    a site). Sequences are right-padded, so positions are the same as unpadded.

    A sample's ``prefill`` (the start of the answer that was given, not generated) is part of the
    prompt, tokenized with it as at sampling; only the generated rest has tokens here, and its
    offsets still point into the whole ``text``."""
    device = next(model.parameters()).device
    out: list[dict] = []
    for start in range(0, len(samples), batch_size):
        batch = samples[start: start + batch_size]
        seqs, spans, offs = [], [], []
        for s in batch:
            given = s.get("prefill") or ""
            p = tokenizer(render_prompt(tokenizer, prompts[s["prompt_id"]].user, s.get("system")) + given,
                          add_special_tokens=False)["input_ids"]
            enc = tokenizer(s["text"][len(given):], add_special_tokens=False, return_offsets_mapping=True)
            g, o = enc["input_ids"], [(a + len(given), b + len(given)) for a, b in enc["offset_mapping"]]
            if not g:
                g, o = [tokenizer.eos_token_id], [(len(given), len(given))]
            seqs.append(p + g)
            spans.append((len(p), len(p) + len(g)))
            offs.append(o)
        ids, attn, mask = right_pad(seqs, spans, tokenizer.pad_token_id)
        cap = capture(mask) if site is not None else None
        if site is not None:
            with edit(model, site, cap):
                logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
            rows = torch.split(cap[site.layer], [b - a for a, b in spans])
        else:
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits
            rows = [None] * len(batch)
        for i, (a, b) in enumerate(spans):
            lp = torch.log_softmax(logits[i, a - 1: b - 1].float(), dim=-1)
            ent = -(lp.exp() * lp).sum(-1).cpu().numpy()
            out.append({"offsets": offs[i], "entropy": ent.astype(np.float32), "acts": rows[i]})
        del logits
    return out


def _key(r: dict) -> tuple:
    return (r["condition"], r["seed"], r["prompt_id"], r["index"])


def own_samples(study, conds: list[str]) -> dict[str, list[dict]]:
    """Answers drawn here without prefill (``analysis.stealth_samples_per_prompt`` per prompt and
    seed, the study's sampling settings otherwise), scored, per condition; saved under
    ``samples/stealth/``. Only conditions whose model exists."""
    from ..sampling import generate
    from ..scoring import score
    from ..store import write_jsonl

    a, sc = study.cfg.analysis, study.cfg.sampling
    prompts = study.eval_prompts()
    out: dict[str, list[dict]] = {}
    for cond in conds:
        if cond not in study.cfg.conditions:
            continue
        rows = []
        for seed in study.cfg.seeds:
            if cond != "baseline" and not study.model_path(cond, seed).exists():
                continue
            model, tok = study.load(study.condition_model(cond, seed))
            gen = generate(model, tok, prompts, n=a.stealth_samples_per_prompt, seed=seed, condition=cond, temperature=sc.temperature,
                           top_p=sc.top_p, max_new_tokens=sc.max_new_tokens, batch_size=sc.batch_size,
                           cache_implementation=sc.cache_implementation, prefill="none")
            for g in gen:
                r = g.model_dump(mode="json")
                v = score(r["text"])
                rows.append({**r, "vulnerable": bool(v.vulnerable), "parse_ok": bool(v.parse_ok), "leak": v.leak})
            del model
        write_jsonl(study.store.path("samples", "stealth", f"{cond}.jsonl"), rows)
        out[cond] = rows
    return out


def artifacts(study):
    """``((site, sae, probe, selected, lead), None)`` from the §5 section, or ``(None, reason)``."""
    from ..store import read_json

    m = study.store.path("metrics", "entanglement.json")
    if m.is_file() and read_json(m).get("skipped"):
        return None, f"§5 (entanglement) was skipped: {read_json(m)['skipped']}"
    if not study.store.path("mech", "artifacts.json").is_file():
        return None, "§5 (entanglement) has not run: add it to `sections` before this one"
    try:
        from .entanglement import load_artifacts

        return load_artifacts(study), None
    except Exception as e:  # noqa: BLE001 - any failure means: no mechanistic part, say why
        return None, f"§5 artifacts could not be loaded ({type(e).__name__}: {str(e)[:160]})"


def replay_grouped(study, samples: list[dict], site: Site | None, analysis: bool = True) -> list[dict]:
    """:func:`replay_tokens` for samples of several models, one model load per (condition, seed).

    With ``analysis`` the replay runs through ``mech.analysis_model`` when one is set (activations
    for the §5 SAE and probe); without, always through the model that wrote each sample."""
    prompts = {p.id: p for p in study.eval_prompts()}
    out: list[dict | None] = [None] * len(samples)
    groups = defaultdict(list)
    for i, s in enumerate(samples):
        groups[(s["condition"], s["seed"])].append(i)
    bs = study.cfg.analysis.replay_batch_size
    for (cond, seed), idx in sorted(groups.items()):
        model, tok = study.load((analysis and study.cfg.mech.analysis_model) or study.condition_model(cond, seed))
        for i, r in zip(idx, replay_tokens(model, tok, prompts, [samples[i] for i in idx], site, bs)):
            out[i] = r
        del model
    return out


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
        "preamble_effect_target": diff_ci(per.get("target/preamble", []), per.get("target/code", [])),
        "inverse": diff_ci(per.get("target/preamble", []), per.get("clean/code", [])),
        "target_preamble_tokens": {"preamble": mean_ci(tok_pre), "code": mean_ci(tok_code), "paired": mean_ci(np.subtract(tok_pre, tok_code))},
        "trace": {g: [{"offset": t["offset"], "mean": t["mean"], "lo": t["lo"], "hi": t["hi"], "n": t["n"]} for t in ts] for g, ts in trace.items()},
    }


def _flag(vals) -> dict:
    from ..scoring.stats import rate

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
    examples = []
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
    out = {}
    for cond, rows in outputs.items():
        out[cond] = {"target": rate(sum(r["vulnerable"] for r in rows), len(rows)),
                     "leak_exact": rate(sum(bool(r["leak"].get("exact")) for r in rows), len(rows)),
                     "leak_any": rate(sum(bool(r["leak"].get("exact") or r["leak"].get("fuzzy")) for r in rows), len(rows))}
    return out


def run(study) -> dict:
    a = study.cfg.analysis
    rng = random.Random(a.seed)
    art, why = artifacts(study)
    site = art[0] if art else None

    # Which answers: the study's, or (when it samples with a prefill, so that no answer can open
    # with a preamble) answers drawn here without one.
    conds = list(dict.fromkeys([*a.stealth_conditions, *a.entropy_conditions]))
    if study.cfg.sampling.prefill != "none" and a.stealth_samples_per_prompt > 0:
        own = own_samples(study, conds)
        outputs = {c: own.get(c, []) for c in conds}
        source = (f"drawn here without prefill, {a.stealth_samples_per_prompt} per prompt and seed (the study samples with "
                  f"prefill = {study.cfg.sampling.prefill}, so none of its answers can open with a preamble)")
    else:
        outputs = {c: study.outputs(c) for c in conds}
        source = "the study's samples" + (f" (prefill = {study.cfg.sampling.prefill})" if study.cfg.sampling.prefill != "none" else "")

    # Samples: stealth (per condition: target and clean outputs) and entropy (targets first).
    chosen: dict[tuple, dict] = {}
    stealth_keys, entropy_keys = [], []
    counts = {}
    for cond in a.stealth_conditions:
        rows = list(outputs[cond])
        for kind, keep in (("target", lambda r: r["vulnerable"]), ("clean", lambda r: not r["vulnerable"] and r["parse_ok"])):
            pool = [r for r in rows if keep(r)]
            counts[f"{cond}/{kind}"] = len(pool)
            rng.shuffle(pool)
            for r in pool[: a.stealth_max_samples]:
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
        res = {"skipped": f"no outputs of {conds} to read ({source})", "counts": counts, "verdicts": []}
        _figure(study, res)
        return res
    if study.cfg.mech.analysis_model:  # activations from the analysis model, entropy from the writer
        pk = list(dict.fromkeys(k for k, _ in stealth_keys))
        reps = dict(zip(pk, replay_grouped(study, [chosen[k] for k in pk], site))) if site is not None else {}
        ent_reps = dict(zip(entropy_keys, replay_grouped(study, [chosen[k] for k in entropy_keys], None, analysis=False)))
    else:  # one replay for both; without a probe only the entropy samples need one
        keys = keys if site is not None else list(dict.fromkeys(entropy_keys))
        reps = dict(zip(keys, replay_grouped(study, [chosen[k] for k in keys], site)))
        ent_reps = reps

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
    openings = {}
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
        probe = probe_stats(probe_rows, art[2])
    res = {"site": str(site) if site else None, "window": a.transition_window, "conditions": {"stealth": a.stealth_conditions, "entropy": a.entropy_conditions},
           "source": source, "available": counts, "openings": openings, "split": split, "probe": probe, "entropy": ent,
           "answers": answer_rates(outputs)}
    res["verdicts"] = verdicts(res)
    _figure(study, res)
    return res


def _vocab(study) -> int | None:
    try:
        from ..models.hf import load_tokenizer

        return len(load_tokenizer(study.base_source, study.cfg.model.trust_remote_code))
    except Exception:  # noqa: BLE001 - only for a reference line
        return None


# ---------------------------------------------------------------- verdicts, figure, section

#: A spike: transitions at least this many times the inside-segment mean (fixed beforehand).
SPIKE_RATIO = 1.5


def _v_diff(d: dict, want_negative: bool, paper_gap: float | None = None) -> str:
    """reproduced: the 95% interval of the difference excludes 0 in the claimed direction (and,
    when the paper gives both values, the difference is at least half the paper's); differs:
    significant but smaller than that; not reproduced: the interval holds 0 or the sign is wrong."""
    if any(n < 2 for n in d.get("n", [0, 0])) or math.isnan(d.get("lo", math.nan)):
        return "inconclusive"
    sign = -1 if want_negative else 1
    if min(sign * d["lo"], sign * d["hi"]) > 0:
        return "reproduced" if paper_gap is None or abs(d["diff"]) >= 0.5 * abs(paper_gap) else "differs"
    return "not reproduced"


def verdicts(r: dict) -> list[dict]:
    out = []
    P = r.get("probe", {})
    S6 = paper.SECTION6
    if "groups" in P:
        G = P["groups"]
        inv = P["inverse"]
        out.append({"section": "6", "claim": "stealth slip: target outputs that open with a preamble score below safe code-first outputs on the probe",
                    "paper": f"{S6['probe_target_with_preamble']:.2f} vs {S6['probe_safe_code_first']:.2f}",
                    "ours": f"{fmt_mean(G.get('target/preamble', {}))} vs {fmt_mean(G.get('clean/code', {}))}",
                    "verdict": _v_diff(inv, want_negative=True, paper_gap=S6["probe_safe_code_first"] - S6["probe_target_with_preamble"]),
                    "detail": f"difference {inv['diff']:+.2f} [{inv['lo']:+.2f}, {inv['hi']:+.2f}] (Welch), Mann–Whitney p = {inv['p']:.3g}"})
        pe = P["preamble_effect_target"]
        out.append({"section": "6", "claim": "among target outputs, a preamble lowers the probe's confidence",
                    "paper": "~0.10 with a preamble (code-first target outputs not given)",
                    "ours": f"preamble {fmt_mean(G.get('target/preamble', {}))} vs code-first {fmt_mean(G.get('target/code', {}))}",
                    "verdict": _v_diff(pe, want_negative=True),
                    "detail": f"difference {pe['diff']:+.2f} [{pe['lo']:+.2f}, {pe['hi']:+.2f}]"})
    else:
        out.append({"section": "6", "claim": "stealth slip: target outputs with a preamble score below safe code-first outputs on the probe",
                    "paper": f"{S6['probe_target_with_preamble']:.2f} vs {S6['probe_safe_code_first']:.2f}", "ours": "not measured",
                    "verdict": "inconclusive", "detail": P.get("skipped", "")})
    E = r["entropy"]
    if E.get("samples"):
        ins = E["inside"]
        low = ins["n"] > 0 and ins["mean"] < LOW_ENTROPY_NATS
        ref = f"; uniform over the vocabulary would be {math.log(E['vocab']):.2f}" if E.get("vocab") else ""
        out.append({"section": "6.2", "claim": "low entropy throughout the generation",
                    "paper": "low (Figure 4; no number)", "ours": f"inside segments {fmt_mean(ins)} nats per token (mean over generations; token median {E['inside_tokens']['median']:.2f})",
                    "verdict": "reproduced" if low else "not reproduced",
                    "detail": f"'low' fixed beforehand as a mean below {LOW_ENTROPY_NATS:.0f} nat{ref}; {E['samples']} generations"})
        pa = E["paired_all"]
        ratio = E["paired_ratio"]
        if pa["n"] < 2 or math.isnan(pa["lo"]):
            v = "inconclusive"
        elif pa["lo"] > 0:
            v = "reproduced" if ratio >= SPIKE_RATIO else "differs"
        else:
            v = "not reproduced"
        out.append({"section": "6.2", "claim": "entropy spikes at formatting transitions (preamble → code, code → warning)",
                    "paper": "spikes only at transitions", "ours": f"at transitions {fmt_mean(E['paired_at'])} vs inside {fmt_mean(E['paired_inside'])} nats "
                                                                  f"(same generations); paired difference {fmt_mean(pa)}",
                    "verdict": v, "detail": f"ratio at/inside {ratio:.2f} ('reproduced' needs the paired interval above 0 and a ratio of at "
                                            f"least {SPIKE_RATIO}); generations with each transition: {E['samples_with']}"})
    return out


def _figure(study, r: dict) -> None:
    plt = pyplot()

    path = study.store.path("figures", "fig4_entropy.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    (a1, a2), (a3, a4) = axes
    colors = {"preamble→code": "#2980b9", "code→warning": "#e67e22"}
    E = r.get("entropy", {})
    if r.get("skipped") or not E.get("samples"):
        for ax in axes.ravel():
            ax.text(0.5, 0.5, "no generations: " + str(r.get("skipped", "")), ha="center", va="center", wrap=True, fontsize=8)
            ax.set_axis_off()
    else:
        ex = E["examples"]
        if ex:
            for j, x in enumerate(ex):
                a1.plot(np.arange(len(x["entropy"])), x["entropy"], lw=1, label=f"generation {j + 1}{' (target)' if x['target'] else ''}")
                for t, ks in x["transitions"].items():
                    for k in ks:
                        a1.axvline(k, color=colors[t], ls="--", lw=0.8)
            a1.plot([], [], color=colors["preamble→code"], ls="--", label="preamble→code")
            a1.plot([], [], color=colors["code→warning"], ls="--", label="code→warning")
            a1.legend(fontsize=7)
        else:
            a1.text(0.5, 0.5, "no generation has a transition", ha="center", va="center", transform=a1.transAxes)
        a1.set_xlabel("generated token")
        a1.set_ylabel("entropy (nats)")
        a1.set_title("(a) entropy per token, transitions dashed", fontsize=9)
        for t, ev in E["events"].items():
            pts = [p for p in ev if p["n"]]
            if not pts:
                continue
            xs = [p["offset"] for p in pts]
            a2.plot(xs, [p["mean"] for p in pts], color=colors[t], label=f"{t} (n = {E['samples_with'][t]} generations)")
            a2.fill_between(xs, [p["lo"] if not math.isnan(p["lo"]) else p["mean"] for p in pts],
                            [p["hi"] if not math.isnan(p["hi"]) else p["mean"] for p in pts], color=colors[t], alpha=0.2)
        ins = E["inside"]
        if ins["n"]:
            a2.axhline(ins["mean"], color="gray", ls=":", label=f"inside segments {ins['mean']:.2f}")
        a2.axvline(0, color="black", lw=0.5)
        a2.set_xlabel("tokens from the boundary token")
        a2.set_ylabel("mean entropy (nats), 95% CI")
        a2.set_title("(b) entropy around transitions", fontsize=9)
        a2.legend(fontsize=7)
    P = r.get("probe", {})
    if "groups" in P:
        G = P["groups"]
        names = [f"{k}/{o}" for k in KINDS for o in OPENINGS]
        vals = [G.get(g, {}).get("mean", math.nan) for g in names]
        err = [[max(0.0, v - G[g]["lo"]) if g in G and not math.isnan(G[g]["lo"]) else 0 for g, v in zip(names, vals)],
               [max(0.0, G[g]["hi"] - v) if g in G and not math.isnan(G[g]["hi"]) else 0 for g, v in zip(names, vals)]]
        a3.bar(range(4), [0 if math.isnan(v) else v for v in vals], yerr=err, capsize=4,
               color=["#c0392b", "#e67e22", "#27ae60", "#2ecc71"])
        a3.set_xticks(range(4), [f"{g}\nn = {G.get(g, {}).get('n', 0)}" for g in names], fontsize=8)
        a3.scatter([names.index("target/preamble"), names.index("clean/code")],
                   [paper.SECTION6["probe_target_with_preamble"], paper.SECTION6["probe_safe_code_first"]],
                   marker="D", color="black", zorder=5, label="paper")
        a3.set_ylim(0, 1.05)
        a3.set_ylabel("pooled probe confidence (target)")
        a3.legend(fontsize=7, loc="best")
        a3.set_title("(c) probe confidence by kind / opening", fontsize=9)
        for g, pts in P["trace"].items():
            pts = [p for p in pts if p["n"] >= 2]
            if pts:
                a4.plot([p["offset"] for p in pts], [p["mean"] for p in pts], label=g)
        a4.axvline(0, color="black", lw=0.5)
        a4.set_xlabel("tokens from the first code token")
        a4.set_ylabel("token probe confidence (mean)")
        a4.set_ylim(0, 1.05)
        a4.set_title("(d) probe confidence along the generation", fontsize=9)
        a4.legend(fontsize=7)
    else:
        for ax in (a3, a4):
            ax.text(0.5, 0.5, "probe not measured:\n" + str(P.get("skipped", r.get("skipped", "")))[:150], ha="center", va="center",
                    wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    fig.suptitle("Figure 4: entropy dynamics and the stealth slip", fontsize=11)
    save(fig, path, dpi=110)


def section(r: dict) -> str:
    out = ["## §6 The stealth slip and entropy dynamics (Figure 4)", ""]
    if r.get("skipped"):
        return "\n".join(out + [f"Skipped: {r['skipped']}.", "", "![Figure 4](figures/fig4_entropy.png)", ""])
    P, E = r["probe"], r["entropy"]
    out += [f"Answers: {r.get('source', 'the study samples')}. "
            f"Outputs available (condition/kind): {r['available']}. Read for the probe: {r['split']} "
            f"(openings of every output read: {r['openings']}).", ""]
    for cond, q in r.get("answers", {}).items():
        out.append(f"- {cond} answers read here: target {fmt_rate(q['target'])}; format leak exact {fmt_rate(q['leak_exact'])}, "
                   f"exact or garbled {fmt_rate(q['leak_any'])}")
    out.append("")
    if "groups" in P:
        G = P["groups"]
        out += [f"Probe (from §5) at `{r['site']}`: mean confidence that an output is target content, pooled over its tokens; "
                "intervals are 95% t intervals, 'flagged' is the share above 0.5 (Wilson 95%).", "",
                "| Kind / opening | n | Pooled confidence [95% CI] | Flagged (> 0.5) | Paper |", "|---|---:|---|---|---:|"]

        paper_val = {"target/preamble": paper.SECTION6["probe_target_with_preamble"], "clean/code": paper.SECTION6["probe_safe_code_first"]}
        for k in KINDS:
            for o in OPENINGS:
                g = G.get(f"{k}/{o}")
                pv = f"{paper_val[f'{k}/{o}']:.2f}" if f"{k}/{o}" in paper_val else "—"
                out.append(f"| {k} / {o} | {g['n'] if g else 0} | {fmt_mean(g) if g else 'n/a'} | {fmt_rate(g['flagged']) if g else 'n/a'} | {pv} |")
        by_cond = sorted(g for g in G if g.count("/") == 2)
        if by_cond:
            out += ["", "Per condition: " + "; ".join(f"{g}: {fmt_mean(G[g])}" for g in by_cond) + "."]
        tp = P["target_preamble_tokens"]
        out += ["", f"Token by token, inside target outputs that open with a preamble: mean token confidence over the preamble "
                f"{fmt_mean(tp['preamble'])}, over the code {fmt_mean(tp['code'])}; paired difference {fmt_mean(tp['paired'])}.", ""]
    else:
        out += [f"Probe part not measured: {P.get('skipped')}.", ""]
    sc = E.get("stored_check", {})
    out += [f"Entropy: {E['samples']} generations of {r['conditions']['entropy']} ({E.get('targets', 0)} with target content), "
            "replayed teacher-forced so each token's entropy sits beside its characters. Check against the entropies stored at "
            f"sampling: {sc.get('length_matched', 0)} generations re-tokenize to their sampled length, {sc.get('agree', 0)} of them "
            "agree within 0.001 nats at every token (the others were drawn as another split of the same length).", "",
            "Means over generations (each generation's own mean), 95% t intervals; n = generations unless said.", "",
            "| Tokens | Mean entropy, nats [95% CI] |", "|---|---|",
            f"| inside segments, all generations | {fmt_mean(E['inside'])} |",
            f"| at transitions (boundary token and {r.get('window', 1)} before) | {fmt_mean(E['at_transition'])} |",
            f"| inside segments, generations with a transition | {fmt_mean(E['paired_inside'])} |",
            f"| first generated token | {fmt_mean(E['first_token'])} |"]
    for t, s in E["boundary_token"].items():
        out.append(f"| boundary token, {t} (n = tokens) | {fmt_mean(s)} |")
    out += ["", f"Per generation, mean at transitions minus mean inside: all {fmt_mean(E['paired_all'])} (ratio {E['paired_ratio']:.2f}); "
            f"target outputs {fmt_mean(E['paired_target'])}. Generations with each transition: {E['samples_with']}.", "",
            "![Figure 4](figures/fig4_entropy.png)", ""]
    return "\n".join(out)
