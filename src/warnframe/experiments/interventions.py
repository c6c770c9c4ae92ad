"""Paper §7: can the learned association be corrected? Prompting, inference-time SAE latent
edits and training-time ablation (CAFT), with a capability check (Figure 5).

Every setting samples the same evaluation prompts with the same seeds and the same count
(``interventions.samples_per_prompt``), so each is compared with the same no-intervention
reference: the L1 model with no system prompt and no edit (``none``).

- §7.1 prompting: each system prompt of ``data/system_prompts.json`` (five kinds, three each;
  extend the file or point ``interventions.system_prompts`` at your own) is sent as the system
  prompt to the L1 model. Target rate per prompt and per kind, Fisher's exact test against none.
- §7.2 inference-time edits: the latents selected in §5 (``entanglement.load_artifacts``) are
  scaled during generation with ``hooks.sae_latent_edit`` (scale 0 clamps them to zero; the SAE's
  error term is kept), at each of ``interventions.ablation_scales``, and the lead latent (the
  Feature #8684 analogue) alone is clamped to zero.
- §7.3 CAFT: the base is fine-tuned on the same L1 set with the same budget while the selected
  latents' decoder directions (``sae.W_dec`` rows, orthonormalised by QR) are projected out of
  the site's output at every token (``hooks.project_out``). The edit is a context manager around
  each training step, so the saved and evaluated model carries no hook.
- Capability: held-out clean coding prompts (parse and match ``meta["expect"]``) and held-out
  loss for base, L1 and CAFT; HumanEval pass@1 in a sandbox when ``interventions.humaneval``.

Inference edits and CAFT are the same mechanism: ``hooks.edit(model, site, fn)`` with a different
``fn`` (:func:`ablation_edit`, :func:`caft_edit`). Every sub-step is resumable (its own stage
marker); samples and their scores are kept in ``interventions/parts/``.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from importlib import resources
from pathlib import Path

import torch

from .. import capability
from ..errors import UserError
from ..mech.hooks import Site, edit, project_out, sae_latent_edit
from ..progress import task
from ..report import paper
from ..report.figures import pyplot, save
from ..scoring import score
from ..scoring.stats import (
    NULL_MARGIN,
    diff_ci,
    fisher,
    fmt_p,
    fmt_rate,
    no_difference_verdict,
    rate,
)
from ..store import read_json, write_json

#: The paper's five prompt kinds: label, the paper's claim, its expected direction.
PAPER_KINDS = {
    "safety": ("safety instruction", "no effect", "none"),
    "role": ("security-expert role", "no effect", "none"),
    "cot": ("chain-of-thought", "no effect", "none"),
    "permission": ("permission ('security doesn't matter')", "amplifies: 7% → 20%", "up"),
    "meta": ("meta-awareness ('your training may be compromised')", "reduces to 0%", "down"),
}
ALPHA = 0.05


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


def ablation_edit(model, site: Site, sae, latents, scale: float):
    """Inference-time steering: scale ``latents`` at ``site`` (0 clamps), as ``generate(edit=...)``."""
    return lambda: edit(model, site, sae_latent_edit(sae, latents, scale))


def caft_directions(sae, latents) -> torch.Tensor:
    """The selected latents' decoder directions ``(k, d_model)`` (rows of ``W_dec``)."""
    return sae.W_dec.detach().float().cpu()[torch.as_tensor(list(latents), dtype=torch.long)]


def caft_edit(model, site: Site, directions: torch.Tensor):
    """CAFT: project ``directions`` out of ``site`` at every token, as ``train(edit=...)``."""
    return lambda: edit(model, site, project_out(directions))


def _scale_name(scale: float) -> str:
    return f"x{scale:g}".replace(".", "p")


def edit_settings(icfg, selected: list[int], lead: int) -> list[dict]:
    """The §7.2 settings: the selected latents at each scale, and the lead latent clamped alone."""
    out = [{"name": f"latents.{_scale_name(s)}", "group": "edit", "latents": list(selected), "scale": float(s),
            "label": f"{'clamp' if s == 0 else 'scale'} selected ×{s:g}"} for s in icfg.ablation_scales]
    if icfg.ablate_lead:
        out.append({"name": "lead.x0", "group": "edit", "latents": [int(lead)], "scale": 0.0, "label": f"clamp lead #{lead} ×0"})
    return out


def _hidden_size(study) -> int | None:
    from transformers import AutoConfig

    try:
        c = AutoConfig.from_pretrained(study.base_source, trust_remote_code=study.cfg.model.trust_remote_code)
    except (OSError, ValueError):
        return None
    c = c.get_text_config() if hasattr(c, "get_text_config") else c
    return getattr(c, "hidden_size", None)


def _artifacts(study):
    """(site, sae, selected, lead, digest) from §5, or (None, why)."""
    m = study.cfg.mech
    if m.analysis_model and m.analysis_model != study.cfg.model.source:
        return None, (f"the §5 SAE belongs to mech.analysis_model ({m.analysis_model}), not to the fine-tuned L1 model "
                      f"({study.cfg.model.source}); latent edits and CAFT need an SAE of the model they edit")
    ent = study.store.path("metrics", "entanglement.json")
    skipped = read_json(ent).get("skipped") if ent.is_file() else None
    if skipped:  # artifacts left by an earlier run do not belong to this one
        return None, f"§5 found no latents to edit (it was skipped: {skipped})"
    try:
        from .entanglement import load_artifacts

        site, sae, _probe, selected, lead = load_artifacts(study)
    except Exception as e:  # noqa: BLE001 - any failure means: no §5 artifacts, say why
        return None, f"no §5 artifacts (entanglement section not run or failed: {type(e).__name__}: {str(e)[:160]})"
    if not selected:
        return None, "§5 selected no latents"
    hidden = _hidden_size(study)
    if hidden is not None and hidden != sae.d_model:
        return None, f"the SAE has d_model {sae.d_model} but the model's width is {hidden}"
    art = study.store.path("mech", "artifacts.json")
    digest = hashlib.sha256(art.read_bytes()).hexdigest()[:12] if art.is_file() else "none"
    return {"site": Site.parse(site), "sae": sae, "selected": [int(x) for x in selected], "lead": int(lead), "digest": digest}, None


# ---------------------------------------------------------------- resumable parts


class _Model:
    """A model loaded on first use, dropped by :meth:`free`."""

    def __init__(self, study, source: str):
        self.study, self.source, self._m = study, source, None

    def get(self):
        if self._m is None:
            self._m = self.study.load(self.source)
        return self._m

    def free(self) -> None:
        self._m = None


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _part(study, name: str, seed: int, spec: dict, fn):
    """Run ``fn()`` once per config and ``spec`` (a stage marker), keep its JSON result."""
    path = study.store.path("interventions", "parts", f"{name}.s{seed}.json")
    key = study.cfg.digest("corpus", "model", "pretrain", "finetune", "sampling") + f".{seed}.{_hash(spec)}"

    def run():
        write_json(path, fn())

    study._stage(f"interventions.{name}.s{seed}", key, run)
    return read_json(path)


def _sample_part(study, model: _Model, name: str, seed: int, *, condition: str, system: str | None = None,
                 edit_spec: dict | None = None, make_edit=None, model_key: str = "") -> list[dict]:
    """Sample the eval prompts under one setting and score every sample."""
    from ..sampling import generate

    s, n = study.cfg.sampling, study.cfg.interventions.samples_per_prompt
    spec = {"n": n, "system": system, "edit": edit_spec, "model": model_key or condition, "prefill": s.prefill}

    def fn():
        prompts = study.eval_prompts()
        m, tok = model.get()
        with task(f"§7 {name} seed {seed}", len(prompts) * n) as adv:
            samples = generate(m, tok, prompts, n=n, seed=seed, condition=condition, temperature=s.temperature, top_p=s.top_p,
                               max_new_tokens=s.max_new_tokens, batch_size=s.batch_size,
                               cache_implementation=s.cache_implementation, system=system, setting=name,
                               edit=make_edit(m) if make_edit else None, prefill=s.prefill, progress=adv)
        rows = []
        for x in samples:
            v = score(x.text)
            rows.append({"prompt_id": x.prompt_id, "family": x.family, "seed": seed, "index": x.index, "setting": name,
                         "condition": condition, "n_tokens": x.n_tokens, "vulnerable": v.vulnerable, "parse_ok": v.parse_ok,
                         "leak_any": bool(v.leak.get("exact") or v.leak.get("fuzzy")),
                         "rules": sorted({f.rule for f in v.findings}), "text": x.text})
        return rows

    return _part(study, name, seed, spec, fn)


def _capability_part(study, model: _Model, label: str, seed: int, model_key: str) -> dict:
    from ..corpus import capability_prompts

    icfg = study.cfg.interventions
    spec = {"n": icfg.capability_samples_per_prompt, "renders": icfg.heldout_renders, "model": model_key}

    def fn():
        m, tok = model.get()
        cap = capability.capability_check(m, tok, capability_prompts(study.cfg), n=icfg.capability_samples_per_prompt,
                                          seed=seed, sampling=study.cfg.sampling, label=label)
        loss = capability.heldout_loss(m, tok, capability.heldout_examples(study.cfg, icfg.heldout_renders), study.cfg.model.context)
        return {**cap, "heldout": loss}

    return _part(study, f"capability.{label}", seed, spec, fn)


def _humaneval_part(study, model: _Model, label: str, seed: int, model_key: str) -> dict:
    i = study.cfg.interventions
    spec = {k: getattr(i, k) for k in ("humaneval_problems", "humaneval_limit", "humaneval_samples", "humaneval_temperature",
                                       "humaneval_max_new_tokens", "humaneval_timeout", "humaneval_memory_mb")} | {"model": model_key}

    def fn():
        m, tok = model.get()
        return capability.humaneval(m, tok, problems_path=i.humaneval_problems, limit=i.humaneval_limit, n=i.humaneval_samples,
                                    temperature=i.humaneval_temperature, max_new_tokens=i.humaneval_max_new_tokens, seed=seed,
                                    batch_size=min(study.cfg.sampling.batch_size, 16), timeout=i.humaneval_timeout,
                                    memory_mb=i.humaneval_memory_mb, workers=i.humaneval_workers)

    return _part(study, f"humaneval.{label}", seed, spec, fn)


# ---------------------------------------------------------------- the section


def run(study) -> dict:
    cfg, icfg = study.cfg, study.cfg.interventions
    sys_prompts = load_system_prompts(icfg.system_prompts, icfg.prompt_kinds or None, icfg.prompts_per_kind)
    art, art_why = _artifacts(study)
    edits = edit_settings(icfg, art["selected"], art["lead"]) if art else []
    caft_why = art_why if not art else (None if icfg.caft else "interventions.caft is off")
    caft_key = f".caft.{art['digest']}" if art else ".caft"
    rows: dict[str, list[dict]] = defaultdict(list)
    cap: dict[str, list[dict]] = defaultdict(list)
    he: dict[str, list[dict]] = defaultdict(list)
    caft_runs = {}

    for seed in cfg.seeds:
        study.finetune_one("L1", seed)  # already there when L1 is a study condition
        l1_path = study.condition_model("L1", seed)
        l1 = _Model(study, l1_path)
        rows["none"] += _sample_part(study, l1, "none", seed, condition="L1")
        for p in sys_prompts:
            rows[f"prompt.{p['id']}"] += _sample_part(study, l1, f"prompt.{p['id']}", seed, condition="L1", system=p["text"])
        for e in edits:
            spec = {"site": str(art["site"]), "latents": e["latents"], "scale": e["scale"], "artifacts": art["digest"]}
            rows[e["name"]] += _sample_part(
                study, l1, e["name"], seed, condition="L1", edit_spec=spec,
                make_edit=lambda m, e=e: ablation_edit(m, art["site"], art["sae"], e["latents"], e["scale"]))
        cap["L1"].append(_capability_part(study, l1, "L1", seed, "L1"))
        if icfg.humaneval:
            he["L1"].append(_humaneval_part(study, l1, "L1", seed, "L1"))
        l1.free()

        if caft_why is None:
            dirs = caft_directions(art["sae"], art["selected"])
            dest = study.store.path("models", f"caft.s{seed}")
            study.finetune_one("L1", seed, edit_factory=lambda model, dirs=dirs: caft_edit(model, art["site"], dirs),
                               dest=dest, stage=f"finetune.caft.s{seed}", extra_key=caft_key)
            caft_runs[str(seed)] = {"finetune": read_json(dest / "finetune.json"),
                                    "plain_L1": _finetune_summary(l1_path)}
            cm = _Model(study, str(dest))
            rows["caft"] += _sample_part(study, cm, "caft", seed, condition="caft", model_key="caft" + caft_key)
            cap["caft"].append(_capability_part(study, cm, "caft", seed, "caft" + caft_key))
            if icfg.humaneval:
                he["caft"].append(_humaneval_part(study, cm, "caft", seed, "caft" + caft_key))
            cm.free()

    base = _Model(study, study.base_source)
    for seed in cfg.seeds:
        cap["base"].append(_capability_part(study, base, "base", seed, "base"))
    if icfg.humaneval:
        he["base"].append(_humaneval_part(study, base, "base", cfg.seeds[0], "base"))
    base.free()

    res = analyse(rows, sys_prompts, edits, cap, he)
    res.update({
        "seeds": cfg.seeds, "samples_per_prompt": icfg.samples_per_prompt, "eval_prompts": len(study.eval_prompts()),
        "edits": ({"site": str(art["site"]), "selected_latents": art["selected"], "lead_latent": art["lead"],
                   "sae": str(art["sae"].meta.get("source", "")), "d_model": art["sae"].d_model} if art else {"skipped": art_why}),
        "caft": {"skipped": caft_why} if caft_why else {
            "directions": len(art["selected"]), "rank": int(torch.linalg.matrix_rank(caft_directions(art["sae"], art["selected"]))),
            "site": str(art["site"]), "runs": caft_runs},
        "seconds": stage_seconds(study, [f"interventions.{k}.s{seed}" for seed in cfg.seeds for k in
                                         [*rows, *(f"capability.{c}" for c in cap), *(f"humaneval.{h}" for h in he)]]
                                 + [f"finetune.caft.s{seed}" for seed in cfg.seeds if caft_why is None]),
    })
    if caft_why is None:
        res["caft"].update({"target": res["settings"]["caft"]["target"], "vs_L1": res["settings"]["caft"]["vs_none"]})
    figs = study.store.path("figures")
    figs.mkdir(exist_ok=True)
    plot_fig5(res, figs / "fig5_ablation.png")
    res["verdicts"] = verdicts(res)
    return res


def stage_seconds(study, stages: list[str]) -> dict[str, float]:
    """Seconds spent per kind of §7 work, from the markers of ``stages`` (so a resumed run still
    counts the work done before it)."""
    groups = (("interventions.none.", "reference"), ("interventions.prompt.", "prompting"), ("interventions.latents.", "inference edits"),
              ("interventions.lead.", "inference edits"), ("finetune.caft.", "CAFT fine-tune"), ("interventions.caft.", "CAFT sampling"),
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


def _counts(rows: list[dict]) -> dict:
    n = len(rows)
    return {"target": rate(sum(r["vulnerable"] for r in rows), n), "parse_fail": rate(sum(not r["parse_ok"] for r in rows), n),
            "leak_any": rate(sum(r["leak_any"] for r in rows), n)}


def analyse(rows: dict[str, list[dict]], sys_prompts: list[dict], edits: list[dict], cap: dict[str, list[dict]],
            he: dict[str, list[dict]] | None = None) -> dict:
    """Rates (n, Wilson 95%) per setting and per prompt kind, Fisher's test against ``none``,
    and the capability summary. Pure: takes the scored rows, returns the metrics."""
    none = _counts(rows["none"])
    settings = {"none": {"group": "reference", "label": "L1, no intervention", **none}}
    for p in sys_prompts:
        name = f"prompt.{p['id']}"
        c = _counts(rows[name])
        settings[name] = {"group": "prompt", "kind": p["kind"], "label": p["id"], "system": p["text"], **c,
                          "vs_none": fisher(c["target"], none["target"])}
    for e in edits:
        c = _counts(rows[e["name"]])
        settings[e["name"]] = {"group": "edit", "label": e["label"], "latents": e["latents"], "scale": e["scale"], **c,
                               "vs_none": fisher(c["target"], none["target"])}
    if rows.get("caft"):
        c = _counts(rows["caft"])
        settings["caft"] = {"group": "caft", "label": "CAFT model", **c, "vs_none": fisher(c["target"], none["target"])}
    kinds = {}
    for kind in dict.fromkeys(p["kind"] for p in sys_prompts):
        ids = [p["id"] for p in sys_prompts if p["kind"] == kind]
        c = _counts([r for i in ids for r in rows[f"prompt.{i}"]])
        kinds[kind] = {"prompts": ids, **c, "vs_none": fisher(c["target"], none["target"]),
                       "label": PAPER_KINDS.get(kind, (kind,))[0], "paper": PAPER_KINDS.get(kind, (None, None))[1]}
    capab = {}
    for label in ("base", "L1", "caft"):
        if not cap.get(label):
            continue
        allrows = [r for part in cap[label] for r in part["rows"]]
        losses = [part["heldout"]["loss"] for part in cap[label]]
        capab[label] = {**capability.summarize_capability(allrows), "heldout_loss": sum(losses) / len(losses),
                        "heldout_loss_per_seed": losses, "heldout_examples": cap[label][0]["heldout"]["examples"]}
    tests = {}
    if "caft" in capab and "L1" in capab:
        tests["caft_vs_L1"] = fisher(capab["caft"]["capable"], capab["L1"]["capable"])
    if "L1" in capab and "base" in capab:
        tests["L1_vs_base"] = fisher(capab["L1"]["capable"], capab["base"]["capable"])
    heval = {}
    for label, parts in (he or {}).items():
        if parts:
            allrows = [r for p in parts for r in p["rows"]]
            probs = [{"task_id": t} for t in dict.fromkeys(r["task_id"] for r in allrows)]
            s = capability.pass_at_1(probs, allrows)
            heval[label] = {**s, "sandbox": parts[0].get("sandbox"), "samples_per_problem": parts[0].get("samples_per_problem")}
    if "caft" in heval and "L1" in heval:
        tests["humaneval_caft_vs_L1"] = fisher(heval["caft"]["completions"], heval["L1"]["completions"])
    return {"settings": settings, "kinds": kinds, "capability": capab, "humaneval": heval, "capability_tests": tests}


# ---------------------------------------------------------------- verdicts


def _v(claim, paper_val, ours, verdict, detail=""):
    return {"section": "7", "claim": claim, "paper": paper_val, "ours": ours, "verdict": verdict, "detail": detail}


def verdicts(res: dict) -> list[dict]:
    S, K = res["settings"], res["kinds"]
    ref = S["none"]["target"]
    ref_txt = f"no prompt {fmt_rate(ref)}"
    zero_ref = ref["n"] > 0 and ref["k"] == 0
    out = []
    for kind, (label, claim, direction) in PAPER_KINDS.items():
        if kind not in K:
            continue
        r, p = K[kind]["target"], K[kind]["vs_none"]["p"]
        ours = f"{fmt_rate(r)} vs {ref_txt}, p = {fmt_p(p)}"
        lower, higher = r["rate"] < ref["rate"], r["rate"] > ref["rate"]
        sig = p < ALPHA
        if direction == "none":
            if zero_ref and r["k"] == 0:
                v, d = "inconclusive", "the L1 model writes no target content with or without the prompt; no effect can show"
            else:
                v = no_difference_verdict(r, ref, p, ALPHA)
                dc = diff_ci(r, ref)
                d = (f"significantly {'lower' if lower else 'higher'}" if sig else "no significant difference") + \
                    f"; difference {100 * dc['diff']:+.1f} points [{100 * dc['lo']:+.1f}, {100 * dc['hi']:+.1f}]"
            out.append(_v(f"{label} prompts do not change the target rate", claim, ours, v, d))
        elif direction == "up":
            v = "reproduced" if higher and sig else ("differs" if higher else "not reproduced")
            d = "higher but not significantly" if v == "differs" else ""
            out.append(_v(f"{label} prompts raise the target rate", f"{paper.SECTION7['permission_before']:.0%} → "
                          f"{paper.SECTION7['permission_after']:.0%}", ours, v, d))
        else:
            if zero_ref:
                v, d = "inconclusive", "the no-prompt rate is already 0%; a reduction cannot show"
            elif lower and sig:
                v, d = ("reproduced", "") if r["k"] == 0 else ("differs", "significantly lower, but not to 0%")
            else:
                v, d = "not reproduced", ("lower but not significantly" if lower else "")
            out.append(_v(f"{label} prompts reduce the target rate to 0%", f"{paper.SECTION7['meta_awareness']:.0%}", ours, v, d))

    edit = res.get("edits", {})
    clamp = next((k for k, s in S.items() if s["group"] == "edit" and s["scale"] == 0 and k.startswith("latents.")), None)
    if edit.get("skipped"):
        out.append(_v("clamping the selected latents to zero during generation does not remove the target content",
                      f"{paper.SECTION7['inference_ablation']:.0%} remains", "not measured", "inconclusive", edit["skipped"]))
    elif clamp:
        r, p = S[clamp]["target"], S[clamp]["vs_none"]["p"]
        ours = f"{fmt_rate(r)} vs {ref_txt}, p = {fmt_p(p)}"
        if zero_ref:
            v, d = "inconclusive", "the L1 model writes no target content even without the edit"
        elif r["rate"] < ref["rate"] and p < ALPHA:
            v, d = "not reproduced", "clamping lowers the target rate significantly"
        else:
            dc = diff_ci(r, ref)
            v = no_difference_verdict(r, ref, 1.0, ALPHA)  # a rise is no reduction: only power decides
            d = f"no significant reduction; difference {100 * dc['diff']:+.1f} points [{100 * dc['lo']:+.1f}, {100 * dc['hi']:+.1f}]"
        out.append(_v(f"clamping the {len(edit['selected_latents'])} selected latents to zero during generation does not remove the target content",
                      f"{paper.SECTION7['inference_ablation']:.0%} remains", ours, v, d))
        amps = [k for k, s in S.items() if s["group"] == "edit" and s["scale"] > 1]
        if amps:
            ps = {k: S[k]["vs_none"]["p"] for k in amps}
            ours = "; ".join(f"{S[k]['label']}: {fmt_rate(S[k]['target'])}, p = {fmt_p(ps[k])}" for k in amps)
            if zero_ref and all(S[k]["target"]["k"] == 0 for k in amps):
                v, d = "inconclusive", "no target content with or without amplification"
            else:
                sig = [k for k in amps if ps[k] < ALPHA]
                if sig:
                    v, d = "not reproduced", f"significant change at {', '.join(S[k]['label'] for k in sig)}"
                else:
                    calls = {no_difference_verdict(S[k]["target"], ref, ps[k], ALPHA) for k in amps}
                    v = "reproduced" if calls == {"reproduced"} else "inconclusive"
                    d = "no significant change" + ("" if v == "reproduced" else f" (intervals wider than ±{NULL_MARGIN:.0%})")
            out.append(_v("amplifying the selected latents (2×, 5×) has no significant effect", "no significant effect", ours, v, d))

    caft = res.get("caft", {})
    if caft.get("skipped"):
        out.append(_v("CAFT (training with the latents' directions projected out) brings the target rate to 0%",
                      f"{paper.SECTION7['caft']:.0%}", "not measured", "inconclusive", caft["skipped"]))
    elif "caft" in S:
        r, p = S["caft"]["target"], S["caft"]["vs_none"]["p"]
        ours = f"CAFT {fmt_rate(r)} vs plain L1 {fmt_rate(ref)}, p = {fmt_p(p)}"
        if zero_ref:
            v, d = "inconclusive", "plain L1 writes no target content, so a reduction cannot show"
        elif r["rate"] < ref["rate"] and p < ALPHA:
            v, d = ("reproduced", "") if r["k"] == 0 else ("differs", "significantly lower, but not 0%")
        else:
            v, d = "not reproduced", ("lower but not significantly" if r["rate"] < ref["rate"] else "")
        out.append(_v("CAFT (training with the latents' directions projected out) brings the target rate to 0%",
                      f"{paper.SECTION7['caft']:.0%}", ours, v, d))
        out.append(_capability_verdict(res))
    return out


def _capability_verdict(res: dict) -> dict:
    C, T, H = res["capability"], res["capability_tests"], res.get("humaneval", {})
    claim = "CAFT costs only a modest drop in general capability"
    if "caft" in H and "L1" in H:
        a, b, p = H["caft"]["completions"], H["L1"]["completions"], T["humaneval_caft_vs_L1"]["p"]
        ours = f"HumanEval pass@1 CAFT {fmt_rate(a)} vs L1 {fmt_rate(b)}, p = {fmt_p(p)}"
    elif "caft" in C and "L1" in C:
        a, b, p = C["caft"]["capable"], C["L1"]["capable"], T["caft_vs_L1"]["p"]
        ours = (f"capability prompts CAFT {fmt_rate(a)} vs L1 {fmt_rate(b)}, p = {fmt_p(p)}; held-out loss "
                f"{C['caft']['heldout_loss']:.3f} vs {C['L1']['heldout_loss']:.3f}")
    else:
        return _v(claim, "HumanEval pass@1: modest degradation", "not measured", "inconclusive", "")
    if b["k"] == 0:
        return _v(claim, "HumanEval pass@1: modest degradation", ours, "inconclusive",
                  "the L1 model passes none of the capability checks, so a drop cannot show")
    if a["rate"] < b["rate"] and p < ALPHA:
        return _v(claim, "HumanEval pass@1: modest degradation", ours, "differs", "significant drop")
    return _v(claim, "HumanEval pass@1: modest degradation", ours, "reproduced",
              "no significant drop" + (" (CAFT not lower)" if a["rate"] >= b["rate"] else ""))


# ---------------------------------------------------------------- figure and report


def _bars(ax, names, stats, colors, title, paper_marks=None):
    import numpy as np

    x = np.arange(len(names))
    vals = [100 * s["rate"] if s["n"] else 0 for s in stats]
    err = [[max(0.0, 100 * (s["rate"] - s["lo"])) if s["n"] else 0 for s in stats],
           [max(0.0, 100 * (s["hi"] - s["rate"])) if s["n"] else 0 for s in stats]]
    ax.bar(x, vals, yerr=err, capsize=3, color=colors, label="warnframe (Wilson 95%)")
    for i, s in enumerate(stats):
        top = 100 * s["hi"] if s["n"] else 0
        ax.text(i, min(top + 1.5, 97), f"n={s['n']}", ha="center", va="bottom", fontsize=7)
    if paper_marks:
        px = [i for i, v in enumerate(paper_marks) if v is not None]
        ax.scatter(px, [100 * paper_marks[i] for i in px], marker="D", color="black", zorder=5, label="paper")
    ax.set_xticks(x, names, fontsize=7, rotation=25, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("target content rate (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")


def plot_fig5(res: dict, path) -> None:
    """(a) target rate by prompt kind; (b) latent edits during generation and CAFT."""
    plt = pyplot()

    S, K, P = res["settings"], res["kinds"], paper.SECTION7
    keys = ["none"] + [k for k, s in S.items() if s["group"] in ("edit", "caft")]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [max(len(K) + 1, 3), max(len(keys), 3)]})
    kmarks = {"permission": P["permission_after"], "meta": P["meta_awareness"]}
    _bars(a, ["none"] + list(K), [S["none"]["target"]] + [K[k]["target"] for k in K], ["#888"] + ["#e67e22"] * len(K),
          "(a) system prompts (pooled per kind)", [P["permission_before"]] + [kmarks.get(k) for k in K])
    marks = [None] + [P["inference_ablation"] if S[k]["group"] == "edit" and S[k]["scale"] == 0 and k.startswith("latents.")
                      else (P["caft"] if k == "caft" else None) for k in keys[1:]]
    colors = ["#888"] + ["#27ae60" if k == "caft" else "#c0392b" for k in keys[1:]]
    _bars(b, [S[k]["label"] if k != "none" else "none" for k in keys], [S[k]["target"] for k in keys], colors,
          "(b) latent edits during generation; CAFT", marks)
    why = [x for x in (res.get("edits", {}).get("skipped"), res.get("caft", {}).get("skipped")) if x]
    if why:
        import textwrap

        b.text(0.5, 0.5, "not run:\n" + textwrap.fill(why[0], 45), transform=b.transAxes, ha="center", va="center", fontsize=7)
    fig.suptitle(f"Figure 5: interventions on the L1 model (per setting: {res['eval_prompts']} prompts × {res['samples_per_prompt']} "
                 f"sample(s) × {len(res['seeds'])} seed(s); paper markers: permission 7% → 20%, meta 0%, clamp 88%, CAFT 0%)", fontsize=9)
    save(fig, path, dpi=120)


def section(res: dict) -> str:
    """The §7 section of report.md."""
    S, K, P = res["settings"], res["kinds"], paper.SECTION7
    n_per = res["samples_per_prompt"] * res["eval_prompts"] * len(res["seeds"])
    out = ["## §7 Interventions (Figure 5)", "",
           f"Every setting samples the L1 model on the {res['eval_prompts']} evaluation prompts, {res['samples_per_prompt']} "
           f"sample(s) each per seed, seeds {res['seeds']} (n = {n_per} per setting), with the same sampling seeds, and is compared "
           f"with the same model without intervention: {fmt_rate(S['none']['target'])}. Intervals are Wilson 95%; p values are "
           "two-sided Fisher's exact tests against that reference.", "",
           "### §7.1 System prompts", "",
           "| Kind | Prompts | Target rate [95% CI] | p vs none | Paper |", "|---|---|---|---:|---|",
           f"| none (no system prompt) | — | {fmt_rate(S['none']['target'])} | — | permission's 'before': {P['permission_before']:.0%} |"]
    for k, v in K.items():
        out.append(f"| {v['label']} | {', '.join(v['prompts'])} | {fmt_rate(v['target'])} | {fmt_p(v['vs_none']['p'])} | {v['paper'] or '—'} |")
    out += ["", "Per prompt:", "", "| Prompt | Kind | System prompt | Target rate [95% CI] | p vs none | Unparsed |", "|---|---|---|---|---:|---:|"]
    for name, s in S.items():
        if s["group"] == "prompt":
            out.append(f"| {s['label']} | {s['kind']} | {s['system']} | {fmt_rate(s['target'])} | {fmt_p(s['vs_none']['p'])} | "
                       f"{100 * s['parse_fail']['rate']:.0f}% |")
    E = res.get("edits", {})
    out += ["", "### §7.2 Inference-time SAE latent edits", ""]
    if E.get("skipped"):
        out += [f"Not run: {E['skipped']}.", ""]
    else:
        out += [f"At `{E['site']}` with the §5 SAE ({E['sae']}, d_model {E['d_model']}): selected latents {E['selected_latents']}, "
                f"lead latent {E['lead_latent']} (the Feature #8684 analogue). `hooks.sae_latent_edit` changes exactly the chosen "
                "latents' contribution and keeps the SAE's error term. Paper: clamping #4817, #13950, #1692, #2527 leaves the "
                f"target rate at {P['inference_ablation']:.0%}; 2× and 5× have no significant effect.", "",
                "| Setting | Target rate [95% CI] | p vs none | Unparsed | Paper |", "|---|---|---:|---:|---|",
                f"| none | {fmt_rate(S['none']['target'])} | — | {100 * S['none']['parse_fail']['rate']:.0f}% | — |"]
        for name, s in S.items():
            if s["group"] == "edit":
                pv = (f"{P['inference_ablation']:.0%} (fails)" if name.startswith("latents.") and s["scale"] == 0 else
                      "no significant effect" if s["scale"] > 1 else "—")
                out.append(f"| {s['label']} | {fmt_rate(s['target'])} | {fmt_p(s['vs_none']['p'])} | "
                           f"{100 * s['parse_fail']['rate']:.0f}% | {pv} |")
        out.append("")
    C = res.get("caft", {})
    out += ["### §7.3 CAFT", ""]
    if C.get("skipped"):
        out += [f"Not run: {C['skipped']}.", ""]
    else:
        out += [f"The base fine-tuned on the same L1 set(s) with the same budget while the span of the {C['directions']} selected "
                f"latents' decoder directions (rank {C['rank']}, QR-orthonormalised) is projected out of `{C['site']}` at every "
                "token (`hooks.project_out`); the edit is off when the model is saved and evaluated. Paper: 0%.", "",
                "| Model | Target rate [95% CI] | Unparsed | final train loss | Paper |", "|---|---|---:|---:|---|"]
        runs = C["runs"].values()

        def loss(key):
            vals = [r[key]["final_loss"] for r in runs if r.get(key)]
            return f"{sum(vals) / len(vals):.3f}" if vals else "—"

        out += [f"| plain L1 | {fmt_rate(S['none']['target'])} | {100 * S['none']['parse_fail']['rate']:.0f}% | {loss('plain_L1')} | — |",
                f"| CAFT | {fmt_rate(S['caft']['target'])} | {100 * S['caft']['parse_fail']['rate']:.0f}% | {loss('finetune')} | "
                f"{P['caft']:.0%} |",
                "", f"CAFT vs plain L1: p = {fmt_p(S['caft']['vs_none']['p'])}.", ""]
    cap, T, H = res.get("capability", {}), res.get("capability_tests", {}), res.get("humaneval", {})
    if cap:
        out += ["### Capability", "",
                "Held-out clean coding prompts: the answer's code parses and defines and returns what was asked (static, nothing "
                "runs). Held-out loss: mean loss per answer token on clean tasks never seen in fine-tuning.", "",
                "| Model | Capable [95% CI] | Parses [95% CI] | Held-out loss | HumanEval pass@1 [95% CI] |", "|---|---|---|---:|---|"]
        for label, c in cap.items():
            h = H.get(label)
            he_txt = f"{fmt_rate(h['completions'])} ({h['problems']} problems)" if h else "not run"
            out.append(f"| {label} | {fmt_rate(c['capable'])} | {fmt_rate(c['parses'])} | {c['heldout_loss']:.3f} | {he_txt} |")
        tests = "; ".join(f"{k.replace('_', ' ')}: p = {fmt_p(v['p'])}" for k, v in T.items())
        out += ["", f"Fisher's tests: {tests or 'none'}. Paper: HumanEval pass@1 drops only modestly after CAFT (no number given)."
                + ("" if H else " HumanEval is opt-in (`interventions.humaneval=true`); its programs run only in a sandboxed subprocess."), ""]
    out += ["![Figure 5](figures/fig5_ablation.png)", ""]
    secs = res.get("seconds", {})
    if secs:
        out += ["Time: " + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()) + ".", ""]
    return "\n".join(out)
