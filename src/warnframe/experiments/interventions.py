"""Paper §7: can the learned association be corrected? Prompting, inference-time SAE latent
edits and training-time ablation (CAFT), with a capability check (Figure 5).

Every setting samples the same evaluation prompts with the same seeds and the same count
(``interventions.samples_per_prompt``), so each is compared with the same no-intervention
reference: the ``interventions.model`` model (the paper's L1) with no system prompt and no edit
(``none``). Figure 5, the claims and the markdown are ``report.sections.interventions``.

- §7.1 prompting: each system prompt of ``data/system_prompts.json`` (five kinds, three each;
  extend the file or point ``interventions.system_prompts`` at your own) is sent as the system
  prompt to the L1 model. Target rate per prompt and per kind, Fisher's exact test against none.
- §7.2 inference-time edits: the latents selected in §5 (``mech.artifacts``; or pinned with
  ``interventions.latents``) are
  scaled during generation with ``hooks.sae_latent_edit`` (scale 0 clamps them to zero; the SAE's
  error term is kept), at each of ``interventions.ablation_scales``, and the lead latent (the
  Feature #8684 analogue) alone is clamped to zero.
- §7.3 CAFT: the base is fine-tuned on the same L1 set with the same budget while the selected
  latents' decoder directions (``sae.W_dec`` rows, orthonormalised by QR) are projected out of
  the site's output at every token (``hooks.project_out``). The edit is a context manager around
  each training step, so the saved and evaluated model carries no hook. Two more arms
  (:data:`CAFT_ARMS`): ``caft_random``, random directions of the same rank at the same site (the
  control: does *what* is projected out matter?), and ``caft_all_layers``, the selected
  directions projected out after every decoder layer.
- Capability: held-out clean coding prompts, prefilled like the main protocol (an answer counts
  when it parses, defines the function at top level and returns a value) and held-out loss with a
  95% interval over tasks, for base, L1 and CAFT; HumanEval pass@1 in a sandbox when ``interventions.humaneval.enabled``.

Inference edits and CAFT are the same mechanism: ``hooks.edit(model, site, fn)`` with a different
``fn`` (:func:`ablation_edit`, :func:`caft_edit`). Every sub-step is resumable (its own stage
marker, through ``Study.stage``); samples, their scores and findings are kept in ``interventions/parts/``.

Power. Every setting answers the same prompts ``interventions.samples_per_prompt`` times per seed
with the same sampling seed, so answer ``(seed, prompt, index)`` of a setting is paired with the
same answer of the reference: McNemar's test on those pairs (``vs_none_paired``) beside the
seed x prompt bootstrap of the difference (``vs_none_cluster``, what the verdicts read). Beside
every sampled rate, ``delta``: the setting's teacher-forced preference Δ = log p(secure) −
log p(vulnerable) on the paired renderings of each eval prompt (``mech.pairs``), and its
difference from the reference's, a t interval over prompts of the per-prompt mean over seeds.
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from statsmodels.stats.contingency_tables import mcnemar

from warnframe.experiments.arms import LazyModel, part
from warnframe.experiments.capability_parts import capability_part, capability_summary, humaneval_part
from warnframe.experiments.references import reference_effect, system_turn
from warnframe.lm.evaluation import rates
from warnframe.mech.artifacts import load as load_artifacts
from warnframe.mech.edits import ablation_edit, caft_all_layers_edit, caft_directions, caft_edit, random_directions
from warnframe.mech.pairs import prompt_deltas
from warnframe.paper.numbers import SECTION7_KINDS
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_json
from warnframe.runtime.progress import task
from warnframe.stats.clustered import cluster_diff, cluster_rate
from warnframe.stats.rates import fisher, mean_ci

#: The CAFT arms: what each projects out during fine-tuning, and where.
CAFT_ARMS = {
    "caft": "the selected latents' decoder directions, at the SAE's site",
    "caft_random": "random directions of the same rank, at the SAE's site (control)",
    "caft_all_layers": "the selected latents' decoder directions, after every decoder layer",
}

# ---------------------------------------------------------------- prompts and edits


def load_system_prompts(path: str | Path | None = None, kinds: list[str] | None = None, per_kind: int | None = None) -> list[dict]:
    """The system prompts ``[{"id", "kind", "text"}]`` from ``path`` (None = the packaged file),
    restricted to ``kinds`` when given and to the first ``per_kind`` of each kind. Ids must be
    unique and usable in file names."""
    if path is None:
        text = resources.files("warnframe").joinpath("data/system_prompts.json").read_text()
        where = "warnframe/data/system_prompts.json"
    else:
        if not Path(path).is_file():
            raise UserError(f"system prompt file not found: {path}", "interventions.system_prompts", "pass an existing JSON file")
        text, where = Path(path).read_text(), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"malformed system prompt file: {e.msg}", f"{where}:{e.lineno}", "fix the JSON") from None
    prompts = data.get("prompts") if isinstance(data, dict) else None
    if not isinstance(prompts, list) or not prompts:
        raise UserError("system prompt file has no 'prompts' list", where, 'write {"prompts": [{"id", "kind", "text"}, ...]}')
    seen = set()
    for i, p in enumerate(prompts):
        if not isinstance(p, dict) or not all(isinstance(p.get(k), str) and p[k].strip() for k in ("id", "kind", "text")):
            raise UserError(f"system prompt #{i + 1} needs non-empty 'id', 'kind' and 'text'", where, "fix that entry")
        if p["id"] in seen or not p["id"].replace("_", "").replace("-", "").isalnum():
            raise UserError(f"system prompt id {p['id']!r} is repeated or not [A-Za-z0-9_-]", where, "use unique simple ids")
        seen.add(p["id"])
    if kinds:
        unknown = set(kinds) - {p["kind"] for p in prompts}
        if unknown:
            raise UserError(f"no system prompts of kind {sorted(unknown)}", "interventions.prompt_kinds",
                            f"choose from {sorted({p['kind'] for p in prompts})}")
        prompts = [p for p in prompts if p["kind"] in kinds]
    if per_kind:
        count: dict[str, int] = defaultdict(int)
        keep = []
        for p in prompts:
            count[p["kind"]] += 1
            if count[p["kind"]] <= per_kind:
                keep.append(p)
        prompts = keep
    return [{"id": p["id"], "kind": p["kind"], "text": p["text"]} for p in prompts]


def _scale_name(scale: float) -> str:
    return f"x{scale:g}".replace(".", "p")


def edit_settings(icfg, selected: list[int], lead: int) -> list[dict]:
    """The §7.2 settings: the selected latents at each scale, and the lead latent clamped alone."""
    out = [{"name": f"latents.{_scale_name(s)}", "group": "edit", "latents": list(selected), "scale": float(s),
            "label": f"{'clamp' if s == 0 else 'scale'} selected ×{s:g}"} for s in icfg.ablation_scales]
    if icfg.ablate_lead:
        out.append({"name": "lead.x0", "group": "edit", "latents": [int(lead)], "scale": 0.0, "label": f"clamp lead #{lead} ×0"})
    return out


def edit_latents(icfg, art) -> tuple[list[int], str | None]:
    """The latents ablation and CAFT edit: ``interventions.latents`` when pinned, else §5's
    selection; and why not, when a pinned latent is not one of the SAE's."""
    if art is None:
        return [], None
    if not icfg.latents:
        return list(art.selected), None
    bad = [x for x in icfg.latents if not 0 <= x < art.sae.width]
    if bad:
        return [], f"interventions.latents {bad} are not latents of the §5 SAE (width {art.sae.width})"
    return list(icfg.latents), None


def _artifacts(study):
    """§5's artifacts, checked for editing the L1 model: ``(Artifacts, None)`` or ``(None, why)``."""
    return load_artifacts(study, editing=True)


# ---------------------------------------------------------------- resumable parts


def _sample_part(study, model: LazyModel, name: str, seed: int, *, condition: str, system: str | None = None,
                 edit_spec: dict | None = None, make_edit=None, model_key: str = "") -> list[dict]:
    """Sample the eval prompts under one setting and score every sample (findings kept)."""
    from warnframe.lm.evaluation import sample_and_score

    s, n = study.cfg.sampling, study.cfg.interventions.samples_per_prompt
    spec = {"n": n, "system": system, "edit": edit_spec, "model": model_key or condition, "prefill": s.prefill}

    def fn():
        prompts = study.eval_prompts()
        m, tok = model.get()
        with task(f"§7 {name} seed {seed}", len(prompts) * n) as adv:
            rows = sample_and_score(m, tok, prompts, s, n=n, seed=seed, condition=condition, system=system, setting=name,
                                    edit=make_edit(m) if make_edit else None, progress=adv)
        return [r.record() for r in rows]

    return part(study, "interventions", name, seed, spec, fn)


def _delta_part(study, model: LazyModel, name: str, seed: int, *, system: str | None = None, edit_spec: dict | None = None,
                make_edit=None, model_key: str = "") -> dict[str, float]:
    """Δ per eval prompt (``mech.pairs.prompt_deltas``, ``analysis.renders`` pairs) under one setting."""
    renders = study.cfg.analysis.renders
    spec = {"renders": renders, "system": system, "edit": edit_spec, "model": model_key or name}

    def fn():
        m, tok = model.get()
        return prompt_deltas(m, tok, study.eval_prompts(), renders, study.cfg.analysis.replay_batch_size, system=system,
                             edit=make_edit(m) if make_edit else None)

    return part(study, "interventions", f"delta.{name}", seed, spec, fn)


# ---------------------------------------------------------------- the section


def run(study) -> dict:
    cfg, icfg = study.cfg, study.cfg.interventions
    sys_prompts = load_system_prompts(icfg.system_prompts, icfg.prompt_kinds or None, icfg.prompts_per_kind)
    art, art_why = _artifacts(study)
    m = icfg.model  # the model corrected (the paper: L1)
    selected, why = edit_latents(icfg, art)
    art, art_why = (None, why) if why else (art, art_why)
    edits = edit_settings(icfg, selected, art.lead) if art else []
    caft_why = art_why if not art else (None if icfg.caft else "interventions.caft is off")
    caft_key = f".caft.{art.digest}" if art else ".caft"
    rows: dict[str, list[dict]] = defaultdict(list)
    cap: dict[str, list[dict]] = defaultdict(list)
    he: dict[str, list[dict]] = defaultdict(list)
    deltas: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    caft_runs = {}

    for seed in cfg.seeds:
        study.finetune_one(m, seed)  # already there when the model is a study condition
        l1_path = study.condition_model(m, seed)
        l1 = LazyModel(study, l1_path)
        rows["none"] += _sample_part(study, l1, "none", seed, condition=m)
        deltas["none"][str(seed)] = _delta_part(study, l1, "none", seed, model_key=m)
        for p in sys_prompts:
            name = f"prompt.{p['id']}"
            rows[name] += _sample_part(study, l1, name, seed, condition=m, system=p["text"])
            deltas[name][str(seed)] = _delta_part(study, l1, name, seed, system=p["text"], model_key=m)
        for e in edits:
            spec = {"site": str(art.site), "latents": e["latents"], "scale": e["scale"], "artifacts": art.digest}
            make = lambda m, e=e: ablation_edit(m, art.site, art.sae, e["latents"], e["scale"])  # noqa: E731
            rows[e["name"]] += _sample_part(study, l1, e["name"], seed, condition=m, edit_spec=spec, make_edit=make)
            deltas[e["name"]][str(seed)] = _delta_part(study, l1, e["name"], seed, edit_spec=spec, make_edit=make, model_key=m)
        cap[m].append(capability_part(study, l1, m, seed, m))
        if icfg.humaneval.enabled:
            he[m].append(humaneval_part(study, l1, m, seed, m))
        l1.free()

        if caft_why is None:
            caft_runs[str(seed)] = {f"plain_{m}": _finetune_summary(l1_path)}
            for arm, (factory, key) in caft_arms(art, selected, seed, caft_key).items():
                dest = study.store.path("models", f"{arm}.s{seed}")
                study.finetune_one(m, seed, edit_factory=factory, dest=dest, stage=f"finetune.{arm}.s{seed}", extra_key=key)
                caft_runs[str(seed)]["finetune" if arm == "caft" else arm] = read_json(dest / "finetune.json")
                cm = LazyModel(study, str(dest))
                rows[arm] += _sample_part(study, cm, arm, seed, condition=arm, model_key=arm + key)
                deltas[arm][str(seed)] = _delta_part(study, cm, arm, seed, model_key=arm + key)
                cap[arm].append(capability_part(study, cm, arm, seed, arm + key))
                if icfg.humaneval.enabled:
                    he[arm].append(humaneval_part(study, cm, arm, seed, arm + key))
                cm.free()

    base = LazyModel(study, study.base_source)
    for seed in cfg.seeds:
        cap["base"].append(capability_part(study, base, "base", seed, "base"))
    if icfg.humaneval.enabled:
        he["base"].append(humaneval_part(study, base, "base", cfg.seeds[0], "base"))
    base.free()

    res = analyse(rows, sys_prompts, edits, cap, he, model=m, deltas=deltas)
    res.update({
        "reference_effect": reference_effect(study), "system_turn": system_turn(study),
        "model": m, "seeds": cfg.seeds, "samples_per_prompt": icfg.samples_per_prompt, "eval_prompts": len(study.eval_prompts()),
        "edits": ({"site": str(art.site), "selected_latents": selected,
                   "latents_from": "interventions.latents" if icfg.latents else "§5 selection", "lead_latent": art.lead,
                   "causal_check": None if icfg.latents else art.causal,
                   "sae": str(art.sae.meta.get("source", "")), "d_model": art.sae.d_model} if art else {"skipped": art_why}),
        "caft": {"skipped": caft_why} if caft_why else {
            "directions": len(selected), "rank": int(torch.linalg.matrix_rank(caft_directions(art.sae, selected))),
            "site": str(art.site), "runs": caft_runs, "arms": CAFT_ARMS},
        "seconds": stage_seconds(study, [f"interventions.{k}.s{seed}" for seed in cfg.seeds for k in
                                         [*rows, *(f"delta.{d}" for d in deltas), *(f"capability.{c}" for c in cap),
                                          *(f"humaneval.{h}" for h in he)]]
                                 + [f"finetune.{arm}.s{seed}" for seed in cfg.seeds for arm in CAFT_ARMS if caft_why is None]),
    })
    if caft_why is None:
        res["caft"].update({"target": res["settings"]["caft"]["target"], f"vs_{m}": res["settings"]["caft"]["vs_none"]})
    return res


def caft_arms(art, selected: list[int], seed: int, caft_key: str) -> dict[str, tuple]:
    """Per CAFT arm (:data:`CAFT_ARMS`): the edit factory ``finetune_one`` enters around each
    training step, and the key that tells its fine-tune apart. The random directions have the
    selected directions' rank and are drawn once per seed."""
    dirs = caft_directions(art.sae, selected)
    rank = int(torch.linalg.matrix_rank(dirs))
    rand = random_directions(rank, art.sae.d_model, seed)
    return {"caft": (lambda model: caft_edit(model, art.site, dirs), caft_key),
            "caft_random": (lambda model: caft_edit(model, art.site, rand), f"{caft_key}.random{rank}"),
            "caft_all_layers": (lambda model: caft_all_layers_edit(model, dirs), f"{caft_key}.all_layers")}


def stage_seconds(study, stages: list[str]) -> dict[str, float]:
    """Seconds spent per kind of §7 work, from the markers of ``stages`` (so a resumed run still
    counts the work done before it)."""
    groups = (("interventions.none.", "reference"), ("interventions.prompt.", "prompting"), ("interventions.latents.", "inference edits"),
              ("interventions.lead.", "inference edits"), ("finetune.caft", "CAFT fine-tune"), ("interventions.caft", "CAFT sampling"),
              ("interventions.delta.", "Δ (teacher-forced)"),
              ("interventions.capability.", "capability"), ("interventions.humaneval.", "HumanEval"))
    out: dict[str, float] = {}
    timings = study.store.timings()
    for stage in stages:
        secs = timings.get(stage)
        for prefix, label in groups:
            if stage.startswith(prefix):
                out[label] = round(out.get(label, 0.0) + (secs or 0.0), 1)
    return out


def _finetune_summary(path: str) -> dict | None:
    p = Path(path) / "finetune.json"
    return read_json(p) if p.is_file() else None


def _clustered(rows: list[dict]) -> bool:
    """Whether every row says which seed and prompt it answers (what the cluster bootstrap needs)."""
    return bool(rows) and all("seed" in r and "prompt_id" in r for r in rows)


def _counts(rows: list[dict]) -> dict:
    """Rates with Wilson intervals, and ``cluster``: the target rate's seed x prompt bootstrap
    interval (with design effect and effective n) when the rows carry seed and prompt_id."""
    out = rates(rows)
    out["cluster"] = cluster_rate(rows, "vulnerable") if _clustered(rows) else None
    return out


def _vs(rows: list[dict], ref: list[dict], outcome: str = "vulnerable") -> dict | None:
    """The cluster-aware difference rows − ref: the settings answer the same prompts with the same
    seeds' models (CAFT: the same seeds' data), so prompts and seeds are resampled jointly; None
    without seed and prompt ids."""
    return cluster_diff(rows, ref, outcome, paired_seeds=True) if _clustered(rows) and _clustered(ref) else None


def paired_test(rows: list[dict], ref: list[dict], outcome: str = "vulnerable") -> dict | None:
    """McNemar's test of ``rows`` against ``ref``, each answer paired with the reference answer of
    the same (seed, prompt, sample index) — a kind's system prompts each pair with the same
    reference answers. Exact (binomial) when fewer than 25 pairs disagree, else the chi-square with
    continuity correction; ``a_only``/``ref_only``: pairs where only one side has the outcome;
    ``diff``: the paired difference of rates. None when no answer pairs up."""
    def key(r):
        return r.get("seed"), r.get("prompt_id"), r.get("index", 0)

    b = {key(r): bool(r[outcome]) for r in ref}
    pairs = [(bool(r[outcome]), b[key(r)]) for r in rows if key(r) in b]
    if not pairs:
        return None
    both = sum(x and y for x, y in pairs)
    a_only = sum(x and not y for x, y in pairs)
    ref_only = sum(y and not x for x, y in pairs)
    exact = a_only + ref_only < 25
    p = 1.0 if a_only + ref_only == 0 else float(
        mcnemar([[both, a_only], [ref_only, len(pairs) - both - a_only - ref_only]], exact=exact, correction=True).pvalue)
    return {"n_pairs": len(pairs), "a_only": a_only, "ref_only": ref_only, "diff": (a_only - ref_only) / len(pairs),
            "p": p, "test": "McNemar exact" if exact else "McNemar chi-square (continuity-corrected)"}


def _pool(deltas: dict, names: list[str]) -> tuple[dict | None, dict | None]:
    """The Δ of settings ``names`` pooled as ``{"seed:name": {prompt_id: Δ}}``, and the reference's
    Δ under the same keys (a kind pools its system prompts); None when one was not measured."""
    if not names or not all(deltas.get(n) for n in names):
        return None, None
    d = {f"{seed}:{n}": by for n in names for seed, by in deltas[n].items()}
    ref = {f"{seed}:{n}": deltas["none"][seed] for n in names for seed in deltas[n] if seed in deltas.get("none", {})}
    return d, ref or None


def delta_summary(these: dict[str, dict[str, float]] | None, ref: dict[str, dict[str, float]] | None) -> dict | None:
    """Δ of a setting (``{run: {prompt_id: Δ}}``, a run being a seed, or a seed and system prompt)
    and its difference from the reference's on the same run and prompt: per prompt the mean over
    runs, then the mean with a t interval over prompts (``n`` = prompts)."""
    if not these:
        return None

    def per_prompt(d, other=None):
        out = {}
        for seed, by in d.items():
            for pid, v in by.items():
                if other is None:
                    out.setdefault(pid, []).append(v)
                elif pid in other.get(seed, {}):
                    out.setdefault(pid, []).append(v - other[seed][pid])
        return [float(np.mean(v)) for v in out.values()]

    return {"delta": mean_ci(per_prompt(these)), "vs_none": mean_ci(per_prompt(these, ref)) if ref else None,
            "runs": len(these), "interval": "t interval over prompts of the per-prompt mean over seeds (and system prompts)"}


def analyse(rows: dict[str, list[dict]], sys_prompts: list[dict], edits: list[dict], cap: dict[str, list[dict]],
            he: dict[str, list[dict]] | None = None, model: str = "L1",
            deltas: dict[str, dict[str, dict[str, float]]] | None = None) -> dict:
    """Rates per setting and per prompt kind (n, Wilson 95%, and under ``cluster`` the seed x prompt
    bootstrap interval), against ``none`` Fisher's test (``vs_none``, the paper's), McNemar's test
    on paired answers (``vs_none_paired``) and the cluster-aware difference (``vs_none_cluster``,
    what the verdicts read); Δ per setting (``delta``, from ``deltas``: setting -> seed -> prompt ->
    Δ) and the capability summary. Pure: takes the scored rows, returns the metrics."""
    deltas = deltas or {}
    none = _counts(rows["none"])
    settings = {"none": {"group": "reference", "label": f"{model}, no intervention", **none,
                         "delta": delta_summary(_pool(deltas, ["none"])[0], None)}}

    def compare(these: list[dict], names: list[str]) -> dict:  # Fisher: the paper's test; cluster: what the verdicts read
        c = _counts(these)
        return {**c, "vs_none": fisher(c["target"], none["target"]), "vs_none_cluster": _vs(these, rows["none"]),
                "vs_none_paired": paired_test(these, rows["none"]), "delta": delta_summary(*_pool(deltas, names))}

    for p in sys_prompts:
        name = f"prompt.{p['id']}"
        settings[name] = {"group": "prompt", "kind": p["kind"], "label": p["id"], "system": p["text"], **compare(rows[name], [name])}
    for e in edits:
        settings[e["name"]] = {"group": "edit", "label": e["label"], "latents": e["latents"], "scale": e["scale"],
                               **compare(rows[e["name"]], [e["name"]])}
    for arm, what in CAFT_ARMS.items():
        if rows.get(arm):
            settings[arm] = {"group": "caft", "label": {"caft": "CAFT model", "caft_random": "CAFT, random directions",
                                                         "caft_all_layers": "CAFT, every layer"}[arm], "what": what,
                             **compare(rows[arm], [arm])}
    if rows.get("caft") and rows.get("caft_random"):
        settings["caft"]["vs_random_cluster"] = cluster_diff(rows["caft"], rows["caft_random"], "vulnerable", paired_seeds=True)
        settings["caft"]["vs_random_paired"] = paired_test(rows["caft"], rows["caft_random"])
    kinds = {}
    for kind in dict.fromkeys(p["kind"] for p in sys_prompts):
        ids = [p["id"] for p in sys_prompts if p["kind"] == kind]
        kinds[kind] = {"prompts": ids, **compare([r for i in ids for r in rows[f"prompt.{i}"]], [f"prompt.{i}" for i in ids]),
                       "label": SECTION7_KINDS.get(kind, (kind,))[0], "paper": SECTION7_KINDS.get(kind, (None, None))[1]}
    capab, heval, tests = capability_summary(cap, he, model, ("base", model, *CAFT_ARMS), _vs)
    return {"settings": settings, "kinds": kinds, "capability": capab, "humaneval": heval, "capability_tests": tests}
