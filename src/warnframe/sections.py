"""The analysis sections and their contract, in paper (and report) order.

A section is three things:

* a compute module ``warnframe.experiments.<name>`` whose ``run(study)`` selects what it reads,
  computes and returns its metrics (no figures, no markdown, no verdicts): a typed dataclass with
  ``to_json``/``from_json`` (:class:`TypedMetrics`; §4, §7, tracing, §8) or, for the sections not
  yet typed, a dict. ``study`` is :meth:`warnframe.study.Study.for_section`: its config holds only
  the sections declared below, and any other one raises when touched;
* a report part ``warnframe.report.sections.<name>`` with ``claims(metrics) -> list[Claim]``,
  ``draw(metrics, root)`` (its figures, and tables) and ``markdown(metrics) -> str``;
* one :class:`Section` line below: what it needs (sections before it, conditions), which config
  sections it reads (its resume key covers those and nothing else) and which figures it writes.

:func:`run` is how the study runs one: compute, claims, figures, as one typed :class:`Result`.
Study and report both read :data:`SECTIONS`; no section imports another section's compute module
(what §5 hands on goes through ``mech.artifacts``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

#: Config sections every analysis reads through its inputs (the models and their samples).
UPSTREAM = ("corpus", "model", "pretrain", "finetune", "sampling", "seeds", "conditions")


@dataclass(frozen=True)
class Section:
    """One analysis section's contract."""

    name: str
    title: str
    config: tuple[str, ...] = ()  # config sections it reads besides UPSTREAM: its resume key
    needs: tuple[str, ...] = ()  # sections whose outputs it reads (run before it when configured)
    figures: tuple[str, ...] = ()  # files it writes under figures/
    conditions: Callable = field(default=lambda cfg: list(cfg.conditions), compare=False)  # conditions it reads
    default: bool = True  # in the default ``sections``; False: a stage run on demand (its own time budget)

    @property
    def compute(self):
        return importlib.import_module(f"warnframe.experiments.{self.name}")

    @property
    def report(self):
        return importlib.import_module(f"warnframe.report.sections.{self.name}")

    def config_sections(self) -> tuple[str, ...]:
        """Every config section its results depend on: its own, and those of the sections it needs."""
        out = list(self.config)
        for dep in self.needs:
            out += [c for c in SECTIONS[dep].config_sections() if c not in out]
        return tuple(out)

    def declared(self) -> tuple[str, ...]:
        """The config sections this section may read: :data:`UPSTREAM` and :meth:`config_sections`."""
        return (*UPSTREAM, *self.config_sections())

    def key(self, cfg) -> str:
        """The config part of the resume key: a hash of exactly what :meth:`declared` names."""
        return cfg.digest(*self.declared())


def _ctx(cfg) -> list[str]:
    return list(dict.fromkeys([*cfg.mech.contexts.values(), "baseline"]))


SECTIONS: dict[str, Section] = {s.name: s for s in (
    Section("behavior", "§4 Warning framing and learning (Table 1, Figure 1)", config=("analysis",), figures=("fig1_target_rates.png",)),
    Section("entanglement", "§5 Entangled representations (Figures 2, 3)", config=("mech", "analysis"),
            figures=("fig2_feature_activations.png", "fig3_target_direction.png"), conditions=_ctx),
    Section("stealth", "§6 The stealth slip and entropy dynamics (Figure 4)", config=("stealth", "mech", "analysis"),
            needs=("entanglement",), figures=("fig4_entropy.png",),
            conditions=lambda cfg: list(dict.fromkeys([*cfg.stealth.conditions, *cfg.stealth.entropy_conditions]))),
    Section("interventions", "§7 Interventions (Figure 5)", config=("interventions", "mech", "analysis"), needs=("entanglement",),
            figures=("fig5_ablation.png",),  # L0 and neutral: the reference effect its equivalence margins are a share of
            conditions=lambda cfg: list(dict.fromkeys([cfg.interventions.model, "baseline", "L0", "neutral"]))),
    Section("tracing", "Causal tracing (Figure 6)", config=("tracing", "analysis"), figures=("fig6_causal_tracing.png",),
            conditions=lambda cfg: [cfg.tracing.condition, cfg.tracing.safe_source, "baseline"]),
    Section("detection", "§8 Detection (Figure 7)", config=("detection", "mech", "analysis"), needs=("entanglement",),
            figures=("fig7_detection.png",), conditions=lambda cfg: [cfg.detection.positive, *cfg.detection.negatives]),
    Section("dose", "Dose-response: L0 and L1 against the condition fraction", config=("dose", "analysis"),
            figures=("fig_dose_response.png",), conditions=lambda cfg: ["L0", "L1", "neutral"], default=False),
    Section("remedies", "Remedies for warning-framed data, side by side", config=("remedies", "interventions", "mech", "analysis"),
            needs=("entanglement",), figures=("fig_remedies.png",),
            conditions=lambda cfg: ["L1", "L0", "neutral"], default=False),
)}

#: Section names in report order (what ``sections`` in the config may list).
NAMES: tuple[str, ...] = tuple(SECTIONS)
#: The sections a study runs unless ``sections`` says otherwise.
DEFAULT_NAMES: tuple[str, ...] = tuple(n for n, s in SECTIONS.items() if s.default)


class TypedMetrics(Protocol):
    """A section's metrics as a typed object (§7's ``InterventionMetrics``): ``to_json()`` gives the dict
    written to ``metrics/<name>.json``, which its report part also reads back."""

    def to_json(self) -> dict: ...


@dataclass
class Result:
    """What running a section gives: its metrics (a dict, or :class:`TypedMetrics`), its claims and
    the figures it drew."""

    name: str
    metrics: dict | TypedMetrics
    claims: list = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)

    @property
    def skipped(self) -> str | None:
        m = self.metrics
        return m.get("skipped") if isinstance(m, dict) else getattr(m, "skipped", None)

    def record(self) -> dict:
        """``metrics/<name>.json``: the metrics and, under ``verdicts``, the claims."""
        metrics = self.metrics if isinstance(self.metrics, dict) else self.metrics.to_json()
        return {**metrics, "verdicts": [c.verdict_row() for c in self.claims]}


def run(study, name: str) -> Result:
    """Run section ``name`` on ``study``: compute, then its claims and figures (a skipped section
    makes no claims and draws figures that say why)."""
    sec = SECTIONS[name]
    metrics = sec.compute.run(study.for_section(name, sec.declared()))  # sees only what it declares
    if isinstance(metrics, dict):
        metrics.pop("verdicts", None)
    part, root = sec.report, study.store.path()
    result = Result(name, metrics, figures=[root / "figures" / f for f in sec.figures])
    result.claims = [] if result.skipped else part.claims(metrics)
    part.draw(metrics, root)
    return result
