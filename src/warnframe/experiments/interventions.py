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
This module samples and trains; the statistics are ``interventions_analysis``, the typed metrics
(:class:`~warnframe.experiments.interventions_metrics.InterventionMetrics`) ``interventions_metrics``.

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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import torch

from warnframe.experiments.arms import LazyModel, part
from warnframe.experiments.capability_parts import capability_part, humaneval_part
from warnframe.experiments.interventions_analysis import analyse
from warnframe.experiments.interventions_metrics import (
    CAFT_ARMS,
    LEAD,
    SELECTED,
    Caft,
    Edits,
    EditSetting,
    InterventionMetrics,
    run_key,
)
from warnframe.experiments.references import reference_diff, system_turn
from warnframe.mech.artifacts import Artifacts
from warnframe.mech.artifacts import load as load_artifacts
from warnframe.mech.edits import ablation_edit, caft_all_layers_edit, caft_directions, caft_edit, random_directions
from warnframe.mech.pairs import prompt_deltas
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_json
from warnframe.runtime.progress import task

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


def edit_settings(icfg, selected: list[int], lead: int) -> list[EditSetting]:
    """The §7.2 settings: the selected latents at each scale, and the lead latent clamped alone."""
    out = [EditSetting(SELECTED, list(selected), float(s), f"{'clamp' if s == 0 else 'scale'} selected ×{s:g}")
           for s in icfg.ablation_scales]
    if icfg.ablate_lead:
        out.append(EditSetting(LEAD, [int(lead)], 0.0, f"clamp lead #{lead} ×0"))
    return out


def edit_latents(icfg, art) -> tuple[list[int], str | None]:
    """The latents ablation and CAFT edit: ``interventions.latents`` when pinned, else §5's
    selection; and why not, when a pinned latent is not one of the SAE's."""
    if art is None:
        return [], None
    if not icfg.latents:
        return list(art.selected), None
    bad = [x for x in icfg.latents if not 0 <= x < art.sae.d_sae]
    if bad:
        return [], f"interventions.latents {bad} are not latents of the §5 SAE (width {art.sae.d_sae})"
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

#: The kinds of §7 work whose seconds ``InterventionMetrics.seconds`` reports, in its order.
WORK = ("reference", "prompting", "inference edits", "CAFT sampling", "Δ (teacher-forced)", "capability", "HumanEval",
        "CAFT fine-tune")


@dataclass
class StageLog:
    """The stages §7 ran (their marker names), each with its kind of work (one of :data:`WORK`) and
    seed: what :meth:`seconds` sums, from the markers, so a resumed run still counts earlier work."""

    stages: list[tuple[str, int, str]] = field(default_factory=list)

    def part(self, work: str, name: str, seed: int) -> None:
        """A resumable part (``arms.part`` names its stage ``interventions.<name>.s<seed>``)."""
        self.add(work, seed, f"interventions.{name}.s{seed}")

    def add(self, work: str, seed: int, stage: str) -> None:
        if work not in WORK:
            raise ValueError(f"unknown kind of §7 work {work!r}")
        self.stages.append((work, seed, stage))

    def seconds(self, timings: dict[str, float]) -> dict[str, float]:
        """Seconds per kind of work (rounded to 0.1 s as they are added up, seed by seed)."""
        order = {s: i for i, s in enumerate(dict.fromkeys(seed for _, seed, _ in self.stages))}
        out: dict[str, float] = {}
        for work in WORK:
            for _, _, stage in sorted((x for x in self.stages if x[0] == work), key=lambda x: order[x[1]]):
                out[work] = round(out.get(work, 0.0) + (timings.get(stage) or 0.0), 1)
        return out


def run(study) -> InterventionMetrics:
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
    edit_parts = _edit_parts(art, edits) if art else []
    caft_runs: dict[str, dict] = {}
    log = StageLog()

    def sample(model: LazyModel, work: str, name: str, seed: int, model_key: str, condition: str = m, **setting) -> None:
        """Sample setting ``name`` and measure its Δ (two resumable parts), logged as ``work`` and Δ."""
        rows[name] += _sample_part(study, model, name, seed, condition=condition, model_key=model_key, **setting)
        deltas[name][str(seed)] = _delta_part(study, model, name, seed, model_key=model_key, **setting)
        log.part(work, name, seed)
        log.part("Δ (teacher-forced)", f"delta.{name}", seed)

    def capability(model: LazyModel, label: str, seed: int, model_key: str) -> None:
        """The capability part of one model and seed, and its HumanEval part when enabled."""
        cap[label].append(capability_part(study, model, label, seed, model_key))
        log.part("capability", f"capability.{label}", seed)
        if icfg.humaneval.enabled:
            he[label].append(humaneval_part(study, model, label, seed, model_key))
            log.part("HumanEval", f"humaneval.{label}", seed)

    for seed in cfg.seeds:
        study.finetune_one(m, seed)  # already there when the model is a study condition
        l1_path = study.condition_model(m, seed)
        l1 = LazyModel(study, l1_path)
        sample(l1, "reference", "none", seed, m)
        for p in sys_prompts:
            sample(l1, "prompting", f"prompt.{p['id']}", seed, m, system=p["text"])
        for e, spec, make in edit_parts:
            sample(l1, "inference edits", e.name, seed, m, edit_spec=spec, make_edit=make)
        capability(l1, m, seed, m)
        l1.free()

        if caft_why is None:
            caft_runs[str(seed)] = {f"plain_{m}": _finetune_summary(l1_path)}
            for arm, (factory, key) in caft_arms(art, selected, seed, caft_key).items():
                dest, stage = study.store.path("models", f"{arm}.s{seed}"), f"finetune.{arm}.s{seed}"
                study.finetune_one(m, seed, edit_factory=factory, dest=dest, stage=stage, extra_key=key)
                log.add("CAFT fine-tune", seed, stage)
                caft_runs[str(seed)][run_key(arm)] = read_json(dest / "finetune.json")
                cm = LazyModel(study, str(dest))
                sample(cm, "CAFT sampling", arm, seed, arm + key, condition=arm)
                capability(cm, arm, seed, arm + key)
                cm.free()

    base = LazyModel(study, study.base_source)
    for seed in cfg.seeds:
        cap["base"].append(capability_part(study, base, "base", seed, "base"))
        log.part("capability", "capability.base", seed)
    if icfg.humaneval.enabled:  # the base is one model: HumanEval once
        he["base"].append(humaneval_part(study, base, "base", cfg.seeds[0], "base"))
        log.part("HumanEval", "humaneval.base", cfg.seeds[0])
    base.free()

    edited, caft = Edits(skipped=art_why), Caft(skipped=caft_why)
    if art:
        edited = Edits(None, str(art.site), selected, "interventions.latents" if icfg.latents else "§5 selection", art.lead,
                       None if icfg.latents else art.causal, str(art.sae.meta.get("source", "")), art.sae.d_model)
        if caft_why is None:
            rank = int(torch.linalg.matrix_rank(caft_directions(art.sae, selected)))
            caft = Caft(None, len(selected), rank, str(art.site), caft_runs, CAFT_ARMS)
    res = analyse(rows, sys_prompts, edits, cap, he, model=m, deltas=deltas)
    return replace(res, reference_effect=reference_diff(study), system_turn=system_turn(study), seeds=cfg.seeds,
                   samples_per_prompt=icfg.samples_per_prompt, eval_prompts=len(study.eval_prompts()), edits=edited, caft=caft,
                   seconds=log.seconds(study.store.timings()))


def _edit_parts(art: Artifacts, edits: list[EditSetting]) -> list[tuple[EditSetting, dict, Callable]]:
    """Per §7.2 setting: the spec its parts are keyed on and the edit entered while it samples."""
    return [(e, {"site": str(art.site), "latents": e.latents, "scale": e.scale, "artifacts": art.digest},
             lambda model, e=e: ablation_edit(model, art.site, art.sae, e.latents, e.scale)) for e in edits]


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


def _finetune_summary(path: str) -> dict | None:
    p = Path(path) / "finetune.json"
    return read_json(p) if p.is_file() else None
