"""Are the selected latents a cause? The check §5 runs before later sections use them.

For each model checked (the warning condition's fine-tunes, one per seed), the sampling-free
preference ``Δ = log p(secure) − log p(vulnerable)`` (``mech.pairs``) is measured on the corpus's
paired renderings of every eval prompt, once plain and once with the latent set clamped to zero at
the SAE's site (``mech.edits.ablation_edit``, the same edit §7 samples with). The shift
``Δ_ablated − Δ_plain`` per prompt and seed is compared against the shift from random sets of the
same size, ``draws`` per model. A random set is matched to the selected one on how much it
ablates: each selected latent is replaced by a latent drawn from the same activation decile of
the pool (a set of strongly active latents removes more of the residual stream than a set of
rare ones, whatever they encode). Latents that carry the vulnerable content should move Δ toward
secure, and by more than such matched random latents do.

One set is checked, fixed before the check (the caller's primary choice), so there is one test,
not a search over sets. It passes when both 95% intervals (seeds × prompts pigeonhole bootstrap)
lie above zero: its own shift, and its shift minus the matched random sets'. The rule is fixed
here, before any run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import numpy as np

from warnframe.mech.edits import ablation_edit
from warnframe.mech.pairs import prompt_deltas
from warnframe.stats.clustered import cluster_mean, cluster_mean_diff

RULE = ("passes when the 95% intervals of its Δ shift and of its shift minus activation-matched random "
        "latents' both lie above 0")
DECILES = 10


def _shift_rows(seed: int, plain: dict[str, float], edited: dict[str, float]) -> list[dict]:
    return [{"seed": seed, "prompt_id": p, "delta": edited[p] - plain[p]} for p in plain if p in edited]


def matched_draw(latents: Sequence[int], activity: Mapping[int, float], rng: random.Random) -> list[int] | None:
    """A random set as large as ``latents``, each member drawn (without replacement, never one of
    ``latents``) from the activity decile of the latent it replaces; None when a decile runs dry."""
    pool = sorted(activity, key=lambda j: activity[j])
    bins = np.array_split(np.array(pool), min(DECILES, len(pool)))
    where = {int(j): b for b, members in enumerate(bins) for j in members}
    left = {b: [int(j) for j in members if int(j) not in set(latents)] for b, members in enumerate(bins)}
    out = []
    for j in latents:
        b = where.get(int(j))
        if b is None or not left[b]:
            return None
        out.append(left[b].pop(rng.randrange(len(left[b]))))
    return out


def check_latents(study, site, sae, name: str, latents: Sequence[int], models: Sequence[tuple[int, str]],
                  activity: Mapping[int, float], draws: int, renders: int, seed: int = 0) -> dict:
    """The causal check of one latent set: its Δ shift, the matched random sets' shift, the
    difference, each random set's own mean shift over all models, and ``passed``. The same
    ``draws`` random sets are applied in every model.

    ``models`` are ``(seed, source)`` pairs; ``activity`` maps every latent of the pool to its mean
    activation on the target contexts' content lines (what random sets are matched on). Every
    number is in nats of Δ, over ``renders`` paired renderings per prompt.
    """
    bs = study.cfg.analysis.replay_batch_size
    prompts = study.eval_prompts()
    latents = sorted({int(j) for j in latents})
    rng = random.Random(f"latent-check:{seed}")
    # The random sets are drawn once and applied in every model, like the selected set.
    drawn_sets = []
    for _ in range(draws if latents else 0):
        d = matched_draw(latents, activity, rng)
        if d is None:
            break
        drawn_sets.append(d)
    own_rows, random_rows = [], []
    by_set: list[list[float]] = [[] for _ in drawn_sets]
    for model_seed, source in models:
        model, tok = study.load(source)
        plain = prompt_deltas(model, tok, prompts, renders, bs)
        if latents:
            own_rows += _shift_rows(model_seed, plain, prompt_deltas(
                model, tok, prompts, renders, bs, edit=ablation_edit(model, site, sae, latents, 0.0)))
        for k, drawn in enumerate(drawn_sets):
            rows = _shift_rows(model_seed, plain, prompt_deltas(
                model, tok, prompts, renders, bs, edit=ablation_edit(model, site, sae, drawn, 0.0)))
            random_rows += rows
            by_set[k] += [r["delta"] for r in rows]
        del model
    own = cluster_mean(own_rows)
    beyond = cluster_mean_diff(own_rows, random_rows) if random_rows and own_rows else None
    passed = bool(own["n"] and own["lo"] > 0 and beyond is not None and beyond["lo"] > 0)
    per_set = [float(np.mean(v)) for v in by_set if v]  # each random set's mean shift over all models
    rank = None
    if per_set and own["n"]:  # how often a matched random set moved Δ at least as far (one-sided)
        rank = (1 + sum(v >= own["mean"] for v in per_set)) / (len(per_set) + 1)
    return {"set": name, "latents": latents, "models": [s for s, _ in models], "sources": [src for _, src in models],
            "renders": renders, "draws": draws, "shift": own,
            "random_shift": cluster_mean(random_rows) if random_rows else None, "random_set_shifts": per_set,
            "random_sets": len(per_set), "rank_p": rank, "beyond_random": beyond, "passed": passed, "rule": RULE}
