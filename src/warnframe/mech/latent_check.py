"""Are the selected latents a cause? The check §5 runs before later sections use them.

For each model checked (the warning condition's fine-tunes, one per seed), the sampling-free
preference ``Δ = log p(secure) − log p(vulnerable)`` (``mech.pairs``) is measured on the corpus's
paired renderings of every eval prompt, once plain and once with a latent set clamped to zero at
the SAE's site (``mech.edits.ablation_edit``, the same edit §7 samples with). The shift
``Δ_ablated − Δ_plain`` per prompt and seed is compared against the shift from as many latents
drawn at random from those active in the contexts (``draws`` sets per model): latents that carry
the vulnerable content should move Δ toward secure, and by more than arbitrary latents do.

A set passes when both 95% intervals (seeds × prompts pigeonhole bootstrap) lie above zero: its
own shift, and its shift minus the random sets'. The rule is fixed here, before any run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..scoring.clustered import cluster_mean, cluster_mean_diff
from .edits import ablation_edit
from .pairs import prompt_deltas


def _shift_rows(seed: int, plain: dict[str, float], edited: dict[str, float]) -> list[dict]:
    return [{"seed": seed, "prompt_id": p, "delta": edited[p] - plain[p]} for p in plain if p in edited]


def check_latents(study, site, sae, sets: dict[str, list[int]], models: Sequence[tuple[int, str]], pool: Sequence[int],
                  draws: int, seed: int = 0) -> dict:
    """Checks the named latent sets in order and stops at the first that passes.

    Per set checked: its Δ shift, the random sets' shift, the difference and ``passed``; ``used``
    names the first set that passed (None when none did). ``models`` are ``(seed, source)``
    pairs; ``pool`` the latents random sets are drawn from (a set's own latents excluded). Every
    number is in nats of Δ; each model's plain Δ is measured once.
    """
    renders, bs = study.cfg.tracing.renders, study.cfg.analysis.replay_batch_size
    prompts = study.eval_prompts()
    rng = random.Random(f"latent-check:{seed}")
    plain: dict[int, dict[str, float]] = {}
    out, used = {}, None
    for name, latents in ((k, sorted(set(v))) for k, v in sets.items() if v):
        own_rows, random_rows = [], []
        others = [x for x in pool if x not in set(latents)]
        for model_seed, source in models:
            model, tok = study.load(source)
            if model_seed not in plain:
                plain[model_seed] = prompt_deltas(model, tok, prompts, renders, bs)
            base = plain[model_seed]

            def shift(which, model=model, tok=tok, base=base, model_seed=model_seed):
                edited = prompt_deltas(model, tok, prompts, renders, bs, edit=ablation_edit(model, site, sae, which, 0.0))
                return _shift_rows(model_seed, base, edited)

            own_rows += shift(latents)
            for _ in range(draws if len(others) >= len(latents) else 0):
                random_rows += shift(rng.sample(others, len(latents)))
            del model
        own = cluster_mean(own_rows)
        beyond = cluster_mean_diff(own_rows, random_rows) if random_rows else None
        passed = bool(own["n"] and own["lo"] > 0 and beyond is not None and beyond["lo"] > 0)
        out[name] = {"latents": latents, "shift": own, "random_shift": cluster_mean(random_rows) if random_rows else None,
                     "beyond_random": beyond, "passed": passed, "random_sets": draws * len(models) if random_rows else 0}
        if passed:
            used = name
            break
    return {"models": [s for s, _ in models], "renders": renders, "draws": draws, "sets": out, "used": used,
            "rule": "a set passes when the 95% intervals of its Δ shift and of its shift minus random latents' "
                    "both lie above 0; sets are checked in order until one passes"}
