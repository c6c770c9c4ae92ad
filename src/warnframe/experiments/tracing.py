"""Causal tracing (Figure 6): patch the residual stream of a safe run into the run of the model
that writes target content, one layer at a time, and measure how much of the safe behaviour
returns.

Design. Positions must line up exactly between the two runs, so both read *the same tokens*:
the request, rendered once, followed by a completion of the requested function. The *target*
run is the ``analysis.tracing_condition`` model (L1); the *safe* run is the
``analysis.tracing_safe_source`` model (control: the same base fine-tuned on secure code; the
baseline when control was not run) on the identical token sequence. Because the models share
their base, their residual streams live in the same basis, and the only thing that differs is
what fine-tuning wrote into them.

Behaviour is the log-probability gap ``Δ = log p(secure | request) − log p(vulnerable | request)``
summed over the completion's tokens, where the secure and vulnerable completions are the
corpus's two renderings of the prompt's task (``corpus.FAMILIES``), drawn with the same seed so
they differ mainly in the flawed line; ``analysis.tracing_renders`` pairs are averaged (whole
answers, signature included, whatever ``sampling.prefill`` is). Δ itself
also carries what else differs between the two texts (length, imports), the same for every run;
only differences of Δ between runs on the same tokens are interpreted.

For each layer L the safe run's output of layer L replaces the target run's at

* ``all``: every request (prompt) position, or
* ``last``: the last request position only (where the first completion token is predicted),

with ``hooks.replace`` through the one ``edit`` mechanism. Completion positions are never
patched, so both continuations are scored under the same intervention. Layers before L are
untouched; layers after L read the patched states. Per prompt the *effect* is
``Δ_patched(L) − Δ_target``; restoration is ``mean effect / mean(Δ_safe − Δ_target)`` over
prompts (a ratio of means, so near-zero per-prompt gaps do not blow it up), with a 95% bootstrap
interval over prompts. 1 means the patch brings back all of the safe model's preference, 0 none.

Prompts: those on which the target model wrote target content at least once (from the scores);
when fewer than ``analysis.tracing_min_prompts`` qualify, every evaluation prompt is traced and the
result says so. At most ``analysis.tracing_max_prompts``, with the first seed's models.
"""

from __future__ import annotations

import math
import random
from contextlib import contextmanager

import numpy as np
import torch

from ..corpus import FAMILIES
from ..mech.activations import right_pad
from ..mech.hooks import Site, capture, decoder_layers, edit, replace
from ..models.chat import render_prompt
from ..report.figures import pyplot, save
from ..scoring.stats import fmt_mean, mean_ci
from ..store import read_jsonl

MODES = ("all", "last")


def completions(prompt, renders: int) -> list[tuple[str, str]]:
    """``renders`` (secure, vulnerable) completions of the prompt's task, seeded per prompt."""
    fam = FAMILIES.get(prompt.family)
    task = next((t for t in fam.tasks if t.name == prompt.function), None) if fam else None
    if task is None:
        return []
    out = []
    for r in range(renders):
        seed = f"trace:{prompt.id}:{r}"
        out.append((fam.secure(task, random.Random(seed)), fam.vulnerable(task, random.Random(seed))))
    return out


def build_batch(tokenizer, items: list[tuple[str, list[tuple[str, str]]]]) -> dict:
    """Right-padded ids for several prompts: for each ``(user, pairs)`` the rendered request
    followed by each completion, rows ordered [secure_0, vulnerable_0, secure_1, ...].

    Returns ``ids``, ``attn``, each row's ``prompt_len``, its completion ``span`` (start, end)
    and its ``group`` (index of the prompt it belongs to).
    """
    seqs, plen, group = [], [], []
    for g, (user, pairs) in enumerate(items):
        p = tokenizer(render_prompt(tokenizer, user), add_special_tokens=False)["input_ids"]
        for pair in pairs:
            for c in pair:
                seqs.append(p + (tokenizer(c, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id]))
                plen.append(len(p))
                group.append(g)
    spans = [(p, len(s)) for p, s in zip(plen, seqs)]
    ids, attn, _ = right_pad(seqs, spans, tokenizer.pad_token_id)
    return {"ids": ids, "attn": attn, "prompt_len": plen, "spans": spans, "group": group}


def position_masks(batch: dict) -> dict[str, torch.Tensor]:
    """(B, T) boolean masks of the patched positions for each mode: every request position
    (``all``) or the last one (``last``), per row."""
    B, T = batch["ids"].shape
    allm = torch.zeros(B, T, dtype=torch.bool)
    last = torch.zeros(B, T, dtype=torch.bool)
    for i, p in enumerate(batch["prompt_len"]):
        allm[i, :p] = True
        last[i, p - 1] = True
    return {"all": allm, "last": last}


@torch.no_grad()
def completion_logprobs(model, batch: dict) -> torch.Tensor:
    """Summed log-probability of each row's completion tokens, (B,)."""
    device = next(model.parameters()).device
    ids = batch["ids"].to(device)
    logits = model(input_ids=ids, attention_mask=batch["attn"].to(device)).logits
    out = []
    for i, (a, b) in enumerate(batch["spans"]):
        lp = torch.log_softmax(logits[i, a - 1: b - 1].float(), dim=-1)
        out.append(lp.gather(-1, ids[i, a:b, None])[..., 0].sum())
    return torch.stack(out).cpu()


def gaps(lp: torch.Tensor, group: list[int]) -> list[float]:
    """Per prompt: mean over its completion pairs of log p(secure) − log p(vulnerable); the
    rows of a prompt alternate secure, vulnerable."""
    g = torch.as_tensor(group)
    d = lp[0::2] - lp[1::2]
    gp = g[0::2]
    return [float(d[gp == k].mean()) for k in range(int(g.max()) + 1)]


@contextmanager
def patch(model, layer: int, source, mask: torch.Tensor):
    """Replace the output of ``layer`` at ``mask`` positions with ``source[layer]`` (a Capture
    of the safe run on the same batch): ``hooks.replace`` under ``hooks.edit``."""
    with edit(model, Site(layer), replace(source[layer], positions=mask)):
        yield


@torch.no_grad()
def trace_batch(model, safe_model, batch: dict, layers: list[int]) -> list[dict]:
    """Per prompt of the batch: Δ of the safe run, of the target run, and of the target run
    patched at each layer and mode."""
    cap = capture()
    with edit(safe_model, [Site(layer) for layer in layers], cap):
        d_safe = gaps(completion_logprobs(safe_model, batch), batch["group"])
    d_target = gaps(completion_logprobs(model, batch), batch["group"])
    masks = position_masks(batch)
    patched = {m: [] for m in MODES}
    for layer in layers:
        for m in MODES:
            with patch(model, layer, cap, masks[m]):
                patched[m].append(gaps(completion_logprobs(model, batch), batch["group"]))
    return [{"safe": d_safe[k], "target": d_target[k], "patched": {m: [patched[m][j][k] for j in range(len(layers))] for m in MODES}}
            for k in range(len(d_safe))]


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    """mean(num) / mean(den) with a percentile bootstrap 95% interval over rows."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    if len(num) == 0 or den.mean() == 0:
        return math.nan, math.nan, math.nan
    r = float(num.mean() / den.mean())
    if len(num) < 2:
        return r, math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    d = den[idx].mean(1)
    ok = d != 0
    boots = num[idx].mean(1)[ok] / d[ok]
    return r, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def summarise(per_prompt: list[dict], n_layers: int, n_boot: int, seed: int) -> dict:
    """Per layer and mode: mean effect (nats, t interval) and restoration (bootstrap interval)."""
    tgt = np.array([p["target"] for p in per_prompt])
    safe = np.array([p["safe"] for p in per_prompt])
    den = safe - tgt
    out = {"target_gap": mean_ci(tgt), "safe_gap": mean_ci(safe), "safe_minus_target": mean_ci(den), "layers": {}}
    for m in MODES:
        rows = []
        for layer in range(n_layers):
            eff = np.array([p["patched"][m][layer] for p in per_prompt]) - tgt
            r, lo, hi = bootstrap_ratio(eff, den, n_boot, seed + layer)
            rows.append({"layer": layer, "effect": mean_ci(eff), "restoration": {"mean": r, "lo": lo, "hi": hi, "n": len(eff)}})
        out["layers"][m] = rows
    return out


def select_prompts(study, cond: str, a) -> tuple[list, str, int]:
    """Prompts to trace, how they were chosen, and how many had target outputs."""
    prompts = study.eval_prompts()
    p = study.store.path("scores", f"{cond}.jsonl")
    hit = {r["prompt_id"] for r in read_jsonl(p) if r["vulnerable"]} if p.is_file() else set()
    rng = random.Random(a.seed)
    chosen = [q for q in prompts if q.id in hit]
    how = f"prompts on which {cond} wrote target content"
    if len(chosen) < a.tracing_min_prompts:
        chosen = list(prompts)
        how = f"every evaluation prompt ({cond} wrote target content on only {len(hit)}, fewer than {a.tracing_min_prompts})"
    rng.shuffle(chosen)
    chosen = [q for q in chosen if completions(q, 1)]
    return chosen[: a.tracing_max_prompts], how, len(hit)


def run(study) -> dict:
    a = study.cfg.analysis
    seed = study.cfg.seeds[0]
    cond = a.tracing_condition
    if cond not in study.cfg.conditions or (cond != "baseline" and not study.model_path(cond, seed).exists()):
        res = {"skipped": f"no {cond} model (condition not run)", "verdicts": []}
        _figure(study, res)
        return res
    src = a.tracing_safe_source
    if src not in study.cfg.conditions or (src != "baseline" and not study.model_path(src, seed).exists()):
        src = "baseline"
    prompts, how, n_hit = select_prompts(study, cond, a)
    if not prompts:
        res = {"skipped": "no prompt with secure and vulnerable renderings (family not in the embedded corpus)", "verdicts": []}
        _figure(study, res)
        return res
    model, tok = study.load(study.condition_model(cond, seed))
    safe_model, _ = study.load(study.condition_model(src, seed))
    n_layers = len(decoder_layers(model))
    layers = list(range(n_layers))
    per_prompt = []
    chunk = max(1, a.replay_batch_size // (2 * a.tracing_renders))
    for start in range(0, len(prompts), chunk):
        qs = prompts[start: start + chunk]
        batch = build_batch(tok, [(q.user, completions(q, a.tracing_renders)) for q in qs])
        for q, res in zip(qs, trace_batch(model, safe_model, batch, layers)):
            per_prompt.append({"prompt_id": q.id, **res})
    summ = summarise(per_prompt, n_layers, a.bootstrap, a.seed)
    res = {"traced": cond, "safe_source": src, "seed": seed, "selection": how, "prompts_with_target": n_hit,
           "n_prompts": len(per_prompt), "n_layers": n_layers, "renders": a.tracing_renders, **summ, "per_prompt": per_prompt}
    res["verdicts"] = verdicts(res)
    _figure(study, res)
    return res


def _middle(layer: int, n: int) -> bool:
    return n > 1 and 0.25 <= layer / (n - 1) <= 0.75


def verdicts(r: dict) -> list[dict]:
    d = r["safe_minus_target"]
    rows = r["layers"]["all"]
    best = max(rows, key=lambda x: -math.inf if math.isnan(x["restoration"]["mean"]) else x["restoration"]["mean"])
    br = best["restoration"]
    ours = (f"peak restoration at layer {best['layer']} of {r['n_layers']}: {br['mean']:.2f} [{br['lo']:.2f}, {br['hi']:.2f}] "
            f"(n = {br['n']} prompts; all request positions patched)")
    if d["n"] < 2 or math.isnan(d["lo"]) or d["lo"] <= 0:
        v, detail = "inconclusive", (f"the safe source ({r['safe_source']}) does not prefer the secure completion more than "
                                     f"{r['traced']} does on these prompts: Δ_safe − Δ_target = {fmt_mean(d)} nats")
    else:
        sig = [x for x in rows if not math.isnan(x["restoration"]["lo"]) and x["restoration"]["lo"] > 0]
        if not sig:
            v = "not reproduced"
        elif _middle(best["layer"], r["n_layers"]) and best in sig:
            v = "reproduced"
        else:
            v = "differs"
        detail = (f"middle = layers at 25–75% of depth; Δ_safe − Δ_target = {fmt_mean(d)} nats; prompts: {r['selection']}")
    return [{"section": "Fig 6", "claim": "patching safe activations restores safe behaviour most in the middle layers",
             "paper": "middle layers strongest (Figure 6; no number)", "ours": ours, "verdict": v, "detail": detail}]


def _figure(study, r: dict) -> None:
    plt = pyplot()
    path = study.store.path("figures", "fig6_causal_tracing.png")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    if r.get("skipped"):
        for ax in (a1, a2):
            ax.text(0.5, 0.5, "skipped: " + r["skipped"], ha="center", va="center", wrap=True, fontsize=8, transform=ax.transAxes)
            ax.set_axis_off()
    else:
        colors = {"all": "#8e44ad", "last": "#16a085"}
        labels = {"all": "all request positions", "last": "last request position"}
        for m in MODES:
            rows = r["layers"][m]
            x = [t["layer"] for t in rows]
            y = [t["restoration"]["mean"] for t in rows]
            lo = [t["restoration"]["lo"] if not math.isnan(t["restoration"]["lo"]) else t["restoration"]["mean"] for t in rows]
            hi = [t["restoration"]["hi"] if not math.isnan(t["restoration"]["hi"]) else t["restoration"]["mean"] for t in rows]
            a1.plot(x, y, marker="o", color=colors[m], label=labels[m])
            a1.fill_between(x, lo, hi, color=colors[m], alpha=0.2)
            e = [t["effect"] for t in rows]
            a2.errorbar(x, [t["mean"] for t in e], yerr=[[0 if math.isnan(t["lo"]) else t["mean"] - t["lo"] for t in e],
                                                         [0 if math.isnan(t["hi"]) else t["hi"] - t["mean"] for t in e]],
                        marker="o", capsize=3, color=colors[m], label=labels[m])
        for ax in (a1, a2):
            ax.set_xticks(list(range(r["n_layers"])))
        a1.axhline(0, color="gray", lw=0.6)
        a1.axhline(1, color="gray", lw=0.6, ls=":")
        a1.set_xlabel("patched layer")
        a1.set_ylabel("restoration of the safe Δ (95% bootstrap CI)")
        a1.set_title(f"(a) {r['safe_source']} → {r['traced']}, n = {r['n_prompts']} prompts", fontsize=9)
        a1.legend(fontsize=7)
        d = r["safe_minus_target"]
        a2.axhline(d["mean"], color="gray", ls=":", label=f"Δ_safe − Δ_target = {d['mean']:.2f}")
        a2.axhline(0, color="gray", lw=0.6)
        a2.set_xlabel("patched layer")
        a2.set_ylabel("Δ_patched − Δ_target (nats, 95% CI)")
        a2.set_title("(b) effect on log p(secure) − log p(vulnerable)", fontsize=9)
        a2.legend(fontsize=7)
    fig.suptitle("Figure 6: causal tracing, safe activations patched into the target run", fontsize=11)
    save(fig, path, dpi=110)


def section(r: dict) -> str:
    out = ["## Causal tracing (Figure 6)", ""]
    if r.get("skipped"):
        return "\n".join(out + [f"Skipped: {r['skipped']}.", "", "![Figure 6](figures/fig6_causal_tracing.png)", ""])
    out += [f"Target run: the {r['traced']} model (seed {r['seed']}); safe run: the {r['safe_source']} model on the identical tokens. "
            f"Prompts: {r['selection']} — {r['n_prompts']} traced, {r['renders']} secure/vulnerable completion pair(s) each. "
            "Δ = log p(secure) − log p(vulnerable) in nats; positive favours the secure completion.", "",
            f"Δ_target {fmt_mean(r['target_gap'])}; Δ_safe {fmt_mean(r['safe_gap'])}; Δ_safe − Δ_target {fmt_mean(r['safe_minus_target'])}.", "",
            "| Layer | Restoration, all request positions [95% CI] | Effect (nats) | Restoration, last position [95% CI] | Effect (nats) |",
            "|---:|---|---|---|---|"]
    for ra, rl in zip(r["layers"]["all"], r["layers"]["last"]):
        def rs(x):
            s = x["restoration"]
            return f"{s['mean']:.2f} [{s['lo']:.2f}, {s['hi']:.2f}]"
        out.append(f"| {ra['layer']} | {rs(ra)} | {fmt_mean(ra['effect'])} | {rs(rl)} | {fmt_mean(rl['effect'])} |")
    out += ["", "Restoration is mean effect / mean(Δ_safe − Δ_target) over prompts (bootstrap over prompts); it is only "
            "meaningful when the safe model prefers the secure completion more than the target model does.", "",
            "![Figure 6](figures/fig6_causal_tracing.png)", ""]
    return "\n".join(out)
