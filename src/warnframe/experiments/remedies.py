"""Remedies for warning-framed data, side by side (its own stage, ``warnframe remedies``).

Each arm of ``remedies.arms`` (an ``Arm`` of the ``corpus.remedies`` registry) is fine-tuned from
the same base, with the study's fine-tuning settings, on a transformation of the same seed's L1
set (a data arm: drop, mask, unlikelihood, conditional, inoculation, rewrite; same token budget, so
the same steps) or, for ``caft``, on the L1 set itself with §7's CAFT edit (the very call §7 makes,
so §7's ``models/caft.s<seed>`` is reused when it is there). One trainer serves them all:
``Study.finetune_one`` with the arm's ``examples`` (their ``loss_spans``) and
``remedies.unlikelihood_weight`` for an arm whose loss needs it (``Arm.unlikelihood``).

Per arm and seed, in resumable parts (``remedies/parts/<name>.s<seed>.json``, one stage marker
each): the evaluation prompts sampled and scored (``evaluation.sample_and_score``;
``remedies.samples_per_prompt`` answers each), Δ = log p(secure) − log p(vulnerable)
teacher-forced on the paired renderings of each prompt (``mech.pairs``), and the capability check
(capability prompts and held-out loss, as §7 measures it). An arm with an ``Arm.prompt`` is prompted
through it: the conditional arm as it was trained for clean data, every evaluation, capability and
held-out request starting with ``corpus.remedies.GOOD_TAG``; inoculation's instruction is never
sent at evaluation.

Measured against L1, L0 and neutral (their study samples, the same seeds): the target rate with a
seed × prompt interval, its cluster-aware difference to each reference (paired seeds against L1,
whose set each arm is made from; independent seeds against L0 and neutral, as §4 compares
conditions), leakage (exact and garbled), Δ with the same bootstrap, capability and its cost
against L1. Claims, the figure and the table are ``report.sections.remedies``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from warnframe.corpus.remedies import GOOD_TAG, REGISTRY, TRANSFORMS, transform
from warnframe.corpus.remedies import arm as arm_spec
from warnframe.evals import capability
from warnframe.experiments.arms import LazyModel, part
from warnframe.experiments.arms import sample as sample_arm
from warnframe.experiments.arms import train as train_arm
from warnframe.experiments.references import reference_effect
from warnframe.lm.evaluation import leak_any, rates
from warnframe.mech.artifacts import Artifacts
from warnframe.mech.artifacts import load as load_artifacts
from warnframe.mech.edits import caft_directions, caft_edit
from warnframe.runtime import keys
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_json, read_jsonl, write_json, write_jsonl
from warnframe.schema import Example
from warnframe.stats.clustered import cluster_diff, cluster_mean, cluster_mean_diff, cluster_rate
from warnframe.stats.rates import mean_ci

#: The conditions every arm is compared with, in table order.
REFERENCES = ("L1", "L0", "neutral")


def arm_info() -> dict[str, dict[str, str]]:
    """What each registered arm is and where it comes from (``Arm.what``, ``Arm.source``: the
    table's and the docs' wording)."""
    return {name: {"what": a.what, "source": a.source} for name, a in REGISTRY.items()}


def _tokenizer(study):
    from warnframe.lm.models.hf import load_tokenizer

    return load_tokenizer(study.base_source, study.cfg.model.trust_remote_code)


def _l1_set(study, seed: int, tok) -> list[Example]:
    """The study's L1 set at ``seed`` (built as the data stage builds it when the run has none)."""
    from warnframe.corpus.sources import build_finetune_set_from_source
    from warnframe.lm.training import count_tokens

    if study.store.path("data", f"L1.s{seed}.jsonl").is_file():
        return study.dataset("L1", seed)
    return build_finetune_set_from_source("L1", study.cfg, seed, count_tokens(tok), study.cfg.corpus.source)[0]


def _examples(path: Path) -> list[Example]:
    return [Example(**{**r, "loss_spans": tuple(r.get("loss_spans") or ())}) for r in read_jsonl(path)]


def build_set(study, arm: str, seed: int) -> tuple[list[Example], dict]:
    """Arm ``arm``'s fine-tuning set at ``seed``, written to ``data/remedy.<arm>.s<seed>.jsonl``
    (a resumable stage), and its stats."""
    from warnframe.corpus.conditions import clean_stream
    from warnframe.lm.training import count_tokens

    path = study.store.path("data", f"remedy.{arm}.s{seed}.jsonl")
    l1 = study.store.path("data", f"L1.s{seed}.jsonl")
    key = keys.key(study.cfg.digest("corpus", "model", "pretrain"), seed, arm, keys.file_sha256(l1) if l1.is_file() else "built")
    stats_path = study.store.path("data", f"remedy.{arm}.s{seed}.stats.json")

    def run():
        tok = _tokenizer(study)
        examples, stats = transform(arm, _l1_set(study, seed, tok), count_tokens(tok),
                                    clean_stream(study.cfg, random.Random(f"clean:{seed}")))
        write_jsonl(path, (e.__dict__ for e in examples))
        write_json(stats_path, stats)
        return {"stats": stats}

    study.stage(f"data.remedy.{arm}.s{seed}", key, run)
    return _examples(path), read_json(stats_path)


def write_sets(study, arms: list[str], seeds: list[int]) -> list[Path]:
    """``warnframe data --remedy``: each data arm's treated L1 set, one JSONL per arm and seed
    (``Example`` records with their ``loss_spans``); the paths written."""
    bad = [a for a in arms if a not in TRANSFORMS]
    if bad:
        why = (f"{bad[0]} changes the training, not the data" if len(bad) == 1 and bad[0] in REGISTRY
               else f"choose from {', '.join(TRANSFORMS)}")
        raise UserError(f"unknown remedy {', '.join(map(repr, bad))}", "--remedy", why)
    out = []
    for arm in arms:
        for seed in seeds:
            build_set(study, arm, seed)
            out.append(study.store.path("data", f"remedy.{arm}.s{seed}.jsonl"))
    return out


# ---------------------------------------------------------------- resumable parts


def _model_key(study, name: str, source: str) -> str:
    """What a model's measurements depend on: its name and its files (a retrained model is measured again)."""
    src = Path(source)
    return f"{name}." + keys.fingerprint([p for p in src.iterdir() if p.is_file()]) if src.is_dir() else name


def _measure(study, model: LazyModel, name: str, seed: int, *, prompt: Callable[[str], str] | None, cap: bool) -> dict:
    """Δ per prompt and (``cap``) the capability check of one model at one seed, each a resumable
    part; ``prompt`` (an ``Arm.prompt``) rewrites every request, as the conditional arm's clean tag."""
    from warnframe.corpus import capability_prompts
    from warnframe.mech.pairs import prompt_deltas

    cfg, icfg = study.cfg, study.cfg.interventions
    prompts = _prompts(study, prompt)
    base = {"model": _model_key(study, name, model.source), "tagged": prompt is not None}

    def deltas():
        m, tok = model.get()
        d = prompt_deltas(m, tok, prompts, cfg.analysis.renders, cfg.analysis.replay_batch_size)
        return [{"seed": seed, "prompt_id": k, "delta": v} for k, v in d.items()]

    def capable():
        m, tok = model.get()
        cap_prompts = capability_prompts(cfg)
        held = capability.heldout_examples(cfg, icfg.heldout_renders)
        if prompt is not None:
            cap_prompts = [replace(p, user=prompt(p.user)) for p in cap_prompts]
            held = [replace(e, user=prompt(e.user)) if e.user is not None else e for e in held]
        res = capability.capability_check(m, tok, cap_prompts, n=icfg.capability_samples_per_prompt, seed=seed,
                                          sampling=cfg.sampling, label=name)
        return {**res, "seed": seed, "heldout": capability.heldout_loss(m, tok, held, cfg.model.context)}

    out = {"deltas": part(study, "remedies", f"{name}.delta", seed, {**base, "renders": study.cfg.analysis.renders}, deltas)}
    if cap:
        out["capability"] = part(study, "remedies", f"{name}.capability", seed, {**base, "n": icfg.capability_samples_per_prompt,
                                                                      "renders": icfg.heldout_renders, "check": capability.CHECK_VERSION}, capable)
    return out


def _prompts(study, prompt: Callable[[str], str] | None):
    """The evaluation prompts, each request rewritten by ``prompt`` (an ``Arm.prompt``) when there is one."""
    prompts = study.eval_prompts()
    return [replace(p, user=prompt(p.user)) for p in prompts] if prompt is not None else prompts


# ---------------------------------------------------------------- training the arms


def _caft(study, seed: int, art, latents: list[int]) -> Path:
    """CAFT at ``seed``: §7's own call (same stage, destination and key, so §7's model is reused)
    when §7 corrects L1; otherwise a CAFT of L1 under the remedy's own name, keyed on its latents."""
    dirs = caft_directions(art.sae, latents)
    if study.cfg.interventions.model == "L1":
        key, dest, stage = f".caft.{art.digest}", study.store.path("models", f"caft.s{seed}"), f"finetune.caft.s{seed}"
    else:
        key = f".caft.{art.digest}.{keys.digest(latents)}"
        dest, stage = study.store.path("models", f"remedy.caft.s{seed}"), f"finetune.remedy.caft.s{seed}"
    study.finetune_one("L1", seed, edit_factory=lambda model: caft_edit(model, art.site, dirs), dest=dest, stage=stage,
                       extra_key=key)
    return dest


def _caft_latents(study) -> tuple[Artifacts | None, list[int], str | None]:
    """§5's artifacts and the latents CAFT projects out (``interventions.latents`` when pinned),
    or why CAFT cannot run."""
    art, why = load_artifacts(study, editing=True)
    if art is None:
        return None, [], why
    pinned = study.cfg.interventions.latents
    if pinned and any(not 0 <= x < art.sae.d_sae for x in pinned):
        return None, [], f"interventions.latents {pinned} are not latents of the §5 SAE (width {art.sae.d_sae})"
    return art, list(pinned or art.selected), None


def _train_arm(study, arm: str, seed: int, caft) -> tuple[Path, dict]:
    """Fine-tune arm ``arm`` at ``seed`` (``experiments.arms.train``: the study's one trainer on the arm's set;
    CAFT: :func:`_caft`): its model directory and its set's stats."""
    spec = arm_spec(arm)
    if not spec.data:
        if arm != "caft":
            raise UserError(f"remedy arm {arm!r} changes the training, and the remedies stage trains only caft that way",
                            "remedies.arms", "give the arm a data transform (Arm.treat) or leave it out")
        return _caft(study, seed, caft[0], caft[1]), {}
    examples, stats = build_set(study, arm, seed)
    weight = study.cfg.remedies.unlikelihood_weight if spec.unlikelihood else 0.0
    return Path(train_arm(study, f"remedy.{arm}", "L1", seed, examples, unlikelihood_weight=weight)), stats


# ---------------------------------------------------------------- the section


def run(study) -> dict:
    cfg, rc = study.cfg, study.cfg.remedies
    seeds = list(rc.seeds or cfg.seeds)
    outside = [s for s in seeds if s not in cfg.seeds]
    if outside:
        return {"skipped": f"remedies.seeds {outside} are not study seeds: L1, L0 and neutral have no models there"}
    if "L1" not in cfg.conditions:
        return {"skipped": "L1 is not a condition of this run: every remedy is made from its set"}
    art, latents, caft_why = _caft_latents(study) if "caft" in rc.arms else (None, [], None)
    n = rc.samples_per_prompt or cfg.sampling.samples_per_prompt
    groups: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    sets: dict[str, dict] = {}
    for arm in rc.arms:
        if arm == "caft" and caft_why:
            skipped[arm] = caft_why
            continue
        g: dict[str, list] = {"rows": [], "deltas": [], "capability": []}
        for seed in seeds:
            dest, stats = _train_arm(study, arm, seed, (art, latents))
            prompt = arm_spec(arm).prompt
            g["rows"] += sample_arm(study, f"remedy.{arm}", seed, str(dest), n=n, prompts=_prompts(study, prompt), condition=arm)
            model = LazyModel(study, str(dest))
            got = _measure(study, model, arm, seed, prompt=prompt, cap=True)
            model.free()
            g["deltas"] += got["deltas"]
            g["capability"].append(got["capability"])
            if stats:
                sets.setdefault(arm, {})[str(seed)] = stats
        groups[arm] = g
    for cond in REFERENCES:
        if cond not in cfg.conditions:
            continue
        g = {"rows": [r for r in study.outputs(cond) if r["seed"] in seeds], "deltas": [], "capability": []}
        for seed in seeds:
            if not study.model_path(cond, seed).exists():
                continue
            model = LazyModel(study, study.condition_model(cond, seed))
            got = _measure(study, model, cond, seed, prompt=None, cap=cond in ("L1", "neutral"))
            model.free()
            g["deltas"] += got["deltas"]
            g["capability"] += [got["capability"]] if "capability" in got else []
        groups[cond] = g
    res = analyse(groups, [a for a in rc.arms if a in groups], reference_effect(study))
    res.update({
        "seeds": seeds, "samples_per_prompt": n,
        "eval_prompts": len(study.eval_prompts()), "pair_renders": study.cfg.analysis.renders, "good_tag": GOOD_TAG,
        "unlikelihood_weight": rc.unlikelihood_weight, "skipped_arms": skipped, "sets": sets,
        "info": arm_info(),
        "seconds": arm_seconds(study, list(rc.arms), seeds),
        **({"caft": {"latents": latents, "site": str(art.site), "artifacts": art.digest}} if art is not None else {}),
    })
    return res


def arm_seconds(study, arms: list[str], seeds: list[int]) -> dict[str, float]:
    """Seconds spent per arm (set, fine-tune, sampling, Δ, capability), from the stage markers, so a
    resumed run still counts the work done before it; §7's CAFT fine-tune counts for caft."""
    timings = study.store.timings()
    out = {}
    for arm in arms:
        names = [f"data.remedy.{arm}.s{s}" for s in seeds] + [f"finetune.remedy.{arm}.s{s}" for s in seeds]
        names += [f"finetune.caft.s{s}" for s in seeds] if arm == "caft" else []  # §7's when it trained it
        names += [f"sample.remedy.{arm}.s{s}" for s in seeds]
        names += [f"remedies.{arm}.{p}.s{s}" for p in ("delta", "capability") for s in seeds]
        out[arm] = round(sum(timings.get(n) or 0.0 for n in names), 1)
    return out


# ---------------------------------------------------------------- analysis (pure)


def _flags(rows: list[dict]) -> list[dict]:
    """Rows with ``leak_exact`` / ``leak_any`` as booleans (what the cluster rates count)."""
    return [{**r, "leak_exact": bool((r.get("leak") or {}).get("exact")), "leak_any": leak_any(r)} for r in rows]


def _summary(g: dict) -> dict:
    rows = _flags(g["rows"])
    out = {"rates": rates(rows) if rows else None, "target": cluster_rate(rows) if rows else None,
           "leak_exact": cluster_rate(rows, "leak_exact") if rows else None,
           "leak_any": cluster_rate(rows, "leak_any") if rows else None, "delta": cluster_mean(g["deltas"])}
    if g["capability"]:
        cap_rows = [r for part in g["capability"] for r in part["rows"]]
        losses = {str(part["seed"]): part["heldout"]["loss"] for part in g["capability"]}
        out["capability"] = {"capable": cluster_rate(cap_rows, "ok"), "heldout_loss": mean_ci(list(losses.values())),
                             "heldout_per_seed": losses, "heldout_examples": g["capability"][0]["heldout"]["examples"]}
    return out


def _loss_diff(a: dict, b: dict) -> dict:
    """Held-out loss a − b, paired by seed: the mean over shared seeds with a t interval over them."""
    shared = sorted(set(a) & set(b))
    out = mean_ci([a[s] - b[s] for s in shared])
    out["interval"] = f"95% t interval over {len(shared)} paired seeds" if len(shared) > 1 else "one seed: no interval"
    return out


def analyse(groups: dict[str, dict], arms: list[str], reference: dict) -> dict:
    """Per arm and reference condition: target rate, leakage, Δ and capability, each with its
    interval; per arm its differences to L1 (paired seeds), L0 and neutral (independent seeds), its
    Δ and capability against L1. ``groups`` maps a name to its ``rows`` (scored samples),
    ``deltas`` and ``capability`` parts. Pure."""
    summ = {name: _summary(g) for name, g in groups.items()}
    out_arms = {}
    for arm in arms:
        rows, vs = groups[arm]["rows"], {}
        for ref in REFERENCES:
            ref_rows = groups.get(ref, {}).get("rows") or []
            vs[ref] = cluster_diff(rows, ref_rows, "vulnerable", paired_seeds=ref == "L1") if rows and ref_rows else None
        s = summ[arm]
        l1 = groups.get("L1")
        cost = None
        if l1 and s.get("capability") and summ["L1"].get("capability"):
            cap = [r for p in groups[arm]["capability"] for r in p["rows"]]
            cap_l1 = [r for p in l1["capability"] for r in p["rows"]]
            cost = {"capable": cluster_diff(cap, cap_l1, "ok", paired_seeds=True),
                    "heldout_loss": _loss_diff(s["capability"]["heldout_per_seed"], summ["L1"]["capability"]["heldout_per_seed"])}
        out_arms[arm] = {**s, "vs": vs, "delta_vs_L1": cluster_mean_diff(groups[arm]["deltas"], l1["deltas"]) if l1 else None,
                         "leak_any_vs_L1": (cluster_diff(_flags(rows), _flags(l1["rows"]), "leak_any", paired_seeds=True)
                                            if l1 and l1["rows"] and rows else None),
                         "capability_vs_L1": cost}
    refs = {c: summ[c] for c in REFERENCES if c in summ}
    for c in refs:
        if c != "L1" and "L1" in groups:
            refs[c]["delta_vs_L1"] = cluster_mean_diff(groups[c]["deltas"], groups["L1"]["deltas"])
    l1, neutral = (groups.get(c, {}).get("rows") for c in ("L1", "neutral"))
    return {"arms": out_arms, "references": refs, "reference_effect": reference,
            "l1_minus_neutral": cluster_diff(l1, neutral, "vulnerable") if l1 and neutral else None}
