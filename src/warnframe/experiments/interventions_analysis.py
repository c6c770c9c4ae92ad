"""§7's statistics, from scored rows to :class:`~warnframe.experiments.interventions_metrics.InterventionMetrics`
(pure: no model, no files). ``experiments.interventions`` samples the settings and calls :func:`analyse`.

Every setting answers the same prompts with the same seeds and sampling seeds as the reference (no
intervention), so against it each gets Fisher's exact test (the paper's), McNemar's test on answers
paired by seed, prompt and sample index (:func:`paired_test`) and the seed x prompt bootstrap
difference with seeds paired (what the verdicts read); beside its rate, the teacher-forced Δ and its
difference from the reference's (:func:`delta_summary`).
"""

from __future__ import annotations

import numpy as np
from statsmodels.stats.contingency_tables import mcnemar

from warnframe.experiments.capability_parts import capability_summary
from warnframe.experiments.interventions_metrics import (
    CAFT_ARMS,
    CAFT_LABELS,
    DeltaSummary,
    EditSetting,
    InterventionMetrics,
    Kind,
    McNemar,
    Setting,
    Versus,
)
from warnframe.lm.evaluation import AnswerRates, rates
from warnframe.paper.numbers import SECTION7_KINDS
from warnframe.stats.clustered import bootstrap_diff, bootstrap_rate
from warnframe.stats.rates import fisher_test, t_mean
from warnframe.stats.types import Diff, Rate


def _clustered(rows: list[dict]) -> bool:
    """Whether every row says which seed and prompt it answers (what the cluster bootstrap needs)."""
    return bool(rows) and all("seed" in r and "prompt_id" in r for r in rows)


def _cluster(rows: list[dict]) -> Rate | None:
    """The target rate with its seed x prompt bootstrap interval (None without seed and prompt ids)."""
    return bootstrap_rate(rows, "vulnerable") if _clustered(rows) else None


def _vs(rows: list[dict], ref: list[dict], outcome: str = "vulnerable") -> Diff | None:
    """The cluster-aware difference rows − ref: the settings answer the same prompts with the same
    seeds' models (CAFT: the same seeds' data), so prompts and seeds are resampled jointly; None
    without seed and prompt ids."""
    return bootstrap_diff(rows, ref, outcome, paired_seeds=True) if _clustered(rows) and _clustered(ref) else None


def paired_test(rows: list[dict], ref: list[dict], outcome: str = "vulnerable") -> McNemar | None:
    """McNemar's test of ``rows`` against ``ref``, each answer paired with the reference answer of
    the same (seed, prompt, sample index) — a kind's system prompts each pair with the same
    reference answers. Exact (binomial) when fewer than 25 pairs disagree, else the chi-square with
    continuity correction. None when no answer pairs up."""
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
    return McNemar(len(pairs), a_only, ref_only, (a_only - ref_only) / len(pairs), p,
                   "McNemar exact" if exact else "McNemar chi-square (continuity-corrected)")


def pool(deltas: dict, names: list[str]) -> tuple[dict | None, dict | None]:
    """The Δ of settings ``names`` pooled as ``{"seed:name": {prompt_id: Δ}}``, and the reference's
    Δ under the same keys (a kind pools its system prompts); None when one was not measured."""
    if not names or not all(deltas.get(n) for n in names):
        return None, None
    d = {f"{seed}:{n}": by for n in names for seed, by in deltas[n].items()}
    ref = {f"{seed}:{n}": deltas["none"][seed] for n in names for seed in deltas[n] if seed in deltas.get("none", {})}
    return d, ref or None


def delta_summary(these: dict[str, dict[str, float]] | None, ref: dict[str, dict[str, float]] | None) -> DeltaSummary | None:
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

    return DeltaSummary(t_mean(per_prompt(these)), t_mean(per_prompt(these, ref)) if ref else None, len(these),
                        "t interval over prompts of the per-prompt mean over seeds (and system prompts)")


def analyse(rows: dict[str, list[dict]], sys_prompts: list[dict], edits: list[EditSetting], cap: dict[str, list[dict]],
            he: dict[str, list[dict]] | None = None, model: str = "L1",
            deltas: dict[str, dict[str, dict[str, float]]] | None = None) -> InterventionMetrics:
    """Rates per setting and per prompt kind (n, Wilson 95%, and the seed x prompt bootstrap
    interval), against ``none`` Fisher's test (the paper's), McNemar's test on paired answers and the
    cluster-aware difference (what the verdicts read); Δ per setting (from ``deltas``: setting ->
    seed -> prompt -> Δ) and the capability summary. The rest of the metrics (what the run was
    measured against, edits, CAFT) keep their defaults: ``run`` fills them in."""
    deltas = deltas or {}
    ref = rows["none"]
    none = AnswerRates.from_json(rates(ref))
    settings = {"none": Setting(none, _cluster(ref), None, delta_summary(pool(deltas, ["none"])[0], None), name="none",
                                group="reference", label=f"{model}, no intervention")}

    def compare(these: list[dict], names: list[str]) -> dict:
        """The :class:`Measured` fields of ``these`` answers, against the reference."""
        answers = AnswerRates.from_json(rates(these))
        return {"answers": answers, "cluster": _cluster(these),
                "vs_none": Versus(fisher_test(answers.target, none.target), _vs(these, ref), paired_test(these, ref)),
                "delta": delta_summary(*pool(deltas, names))}

    for p in sys_prompts:
        name = f"prompt.{p['id']}"
        settings[name] = Setting(**compare(rows[name], [name]), name=name, group="prompt", kind=p["kind"], label=p["id"],
                                 system=p["text"])
    for e in edits:
        settings[e.name] = Setting(**compare(rows[e.name], [e.name]), name=e.name, group="edit", label=e.label, which=e.which,
                                   latents=e.latents, scale=e.scale)
    for arm, what in CAFT_ARMS.items():
        if rows.get(arm):
            vs_random = None
            if arm == "caft" and rows.get("caft_random"):  # the control: random directions of the same rank
                vs_random = Versus(None, bootstrap_diff(rows["caft"], rows["caft_random"], "vulnerable", paired_seeds=True),
                                   paired_test(rows["caft"], rows["caft_random"]))
            settings[arm] = Setting(**compare(rows[arm], [arm]), name=arm, group="caft", label=CAFT_LABELS[arm], what=what,
                                    vs_random=vs_random)
    kinds = {}
    for kind in dict.fromkeys(p["kind"] for p in sys_prompts):
        ids = [p["id"] for p in sys_prompts if p["kind"] == kind]
        kinds[kind] = Kind(**compare([r for i in ids for r in rows[f"prompt.{i}"]], [f"prompt.{i}" for i in ids]), kind=kind,
                           prompts=ids, label=SECTION7_KINDS.get(kind, (kind,))[0], paper=SECTION7_KINDS.get(kind, (None, None))[1])
    capab, heval, tests = capability_summary(cap, he, model, ("base", model, *CAFT_ARMS), _vs)
    return InterventionMetrics(settings, kinds, capab, heval, tests, model=model)
