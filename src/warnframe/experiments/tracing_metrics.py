"""Causal tracing's metrics (Figure 6), typed: what ``experiments.tracing`` computes and
``report.sections.tracing`` reads. :class:`TracingMetrics` is the whole section; ``to_json`` writes
``metrics/tracing.json`` (the layout it has always had, key for key and in order, ``{"skipped": why}``
when it did not run) and ``from_json`` reads it back (the report may read a file written by an earlier
run, and ignores the ``verdicts`` kept beside the metrics).

Per mode (:data:`MODES`) and patched layer a :class:`LayerPatch`: the mean effect on Δ (a t interval
over prompts) and the :class:`Ratio` of restoration (a percentile bootstrap over prompts); the
:class:`Summary` over layers; and per prompt its :class:`PromptTrace`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from warnframe.stats.types import Mean

#: The residual patches: the request positions, the completion positions, every position.
POSITION_MODES = ("request", "completion", "both")
#: Every mode traced: the residual patches and each layer's own ``write``.
MODES = (*POSITION_MODES, "write")
#: The check beside the curves: every layer patched at every position at once (its JSON key).
EVERY_LAYER = "every_layer_both"


@dataclass(frozen=True)
class Ratio:
    """A ratio of means over ``n`` prompts (``mean``) with its 95% percentile bootstrap interval
    [``lo``, ``hi``] (NaN without resamples). JSON: ``{mean, lo, hi, n}``."""

    mean: float
    lo: float
    hi: float
    n: int

    def to_json(self) -> dict:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}

    @classmethod
    def from_json(cls, d: dict) -> Ratio:
        return cls(d["mean"], d["lo"], d["hi"], d["n"])


@dataclass(frozen=True)
class LayerPatch:
    """One layer patched in one mode: the mean ``effect`` Δ_patched − Δ_target (nats, t interval over
    prompts) and the ``restoration`` of the safe Δ it brings. JSON: ``{layer, effect, restoration}``."""

    layer: int
    effect: Mean
    restoration: Ratio

    @property
    def sort_key(self) -> float:
        """The restoration, NaN as −∞ (what "the best layer" maximises)."""
        return -math.inf if math.isnan(self.restoration.mean) else self.restoration.mean

    def to_json(self) -> dict:
        return {"layer": self.layer, "effect": self.effect.to_json(), "restoration": self.restoration.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> LayerPatch:
        return cls(d["layer"], Mean.from_json(d["effect"]), Ratio.from_json(d["restoration"]))


@dataclass(frozen=True)
class EveryLayer:
    """The check: every layer patched at every position at once (its effect and restoration)."""

    effect: Mean
    restoration: Ratio

    def to_json(self) -> dict:
        return {"effect": self.effect.to_json(), "restoration": self.restoration.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> EveryLayer:
        return cls(Mean.from_json(d["effect"]), Ratio.from_json(d["restoration"]))


@dataclass(frozen=True)
class Summary:
    """What ``tracing.summary`` computes over prompts: Δ of the target run, of the safe run and their
    difference (t intervals); per mode one :class:`LayerPatch` per layer; the ``middle_layers``; per mode
    (when there are middle and other layers) ``middle_vs_edge``, the best middle layer's restoration
    minus the best other layer's; and the :class:`EveryLayer` check."""

    target_gap: Mean
    safe_gap: Mean
    safe_minus_target: Mean
    layers: dict[str, list[LayerPatch]]
    middle_layers: list[int]
    middle_vs_edge: dict[str, Ratio]
    every_layer: EveryLayer

    def best(self, mode: str) -> LayerPatch:
        """The layer of ``mode`` that restores most (the first of equals; NaN counts as least)."""
        return max(self.layers[mode], key=lambda x: x.sort_key)

    def to_json(self) -> dict:
        return {"target_gap": self.target_gap.to_json(), "safe_gap": self.safe_gap.to_json(),
                "safe_minus_target": self.safe_minus_target.to_json(),
                "layers": {m: [x.to_json() for x in rows] for m, rows in self.layers.items()},
                "middle_layers": self.middle_layers, "middle_vs_edge": {m: c.to_json() for m, c in self.middle_vs_edge.items()},
                EVERY_LAYER: self.every_layer.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> Summary:
        return cls(Mean.from_json(d["target_gap"]), Mean.from_json(d["safe_gap"]), Mean.from_json(d["safe_minus_target"]),
                   {m: [LayerPatch.from_json(x) for x in rows] for m, rows in d["layers"].items()}, list(d["middle_layers"]),
                   {m: Ratio.from_json(c) for m, c in d["middle_vs_edge"].items()}, EveryLayer.from_json(d[EVERY_LAYER]))


@dataclass(frozen=True)
class PromptTrace:
    """One traced prompt: Δ of the safe run, of the target run, with every layer patched, and per mode
    of the target run patched at each layer (``patched[mode][layer]``)."""

    prompt_id: str
    safe: float
    target: float
    every_layer: float
    patched: dict[str, list[float]]

    def to_json(self) -> dict:
        return {"prompt_id": self.prompt_id, "safe": self.safe, "target": self.target, "every_layer": self.every_layer,
                "patched": self.patched}

    @classmethod
    def from_json(cls, d: dict) -> PromptTrace:
        return cls(d["prompt_id"], d["safe"], d["target"], d["every_layer"], d["patched"])


@dataclass(frozen=True)
class TracingMetrics:
    """The section, all of it: the ``traced`` model and the ``safe_source`` (first ``seed``), how the
    prompts were chosen (``selection``; ``prompts_with_target`` had target outputs), ``n_prompts`` traced
    over ``n_layers`` with ``renders`` pairs each, the ``modes``, the :class:`Summary` and ``per_prompt``.
    Or ``skipped``: why it did not run (then only that is written)."""

    skipped: str | None = None
    traced: str = ""
    safe_source: str = ""
    seed: int = 0
    selection: str = ""
    prompts_with_target: int = 0
    n_prompts: int = 0
    n_layers: int = 0
    renders: int = 0
    modes: list[str] = field(default_factory=lambda: list(MODES))
    summary: Summary | None = None
    per_prompt: list[PromptTrace] = field(default_factory=list)

    @property
    def ran(self) -> Summary:
        """The summary of a section that ran (a skipped one has none)."""
        if self.summary is None:
            raise ValueError(f"tracing skipped: {self.skipped}")
        return self.summary

    def to_json(self) -> dict:
        if self.skipped or self.summary is None:
            return {"skipped": self.skipped}
        return {"traced": self.traced, "safe_source": self.safe_source, "seed": self.seed, "selection": self.selection,
                "prompts_with_target": self.prompts_with_target, "n_prompts": self.n_prompts, "n_layers": self.n_layers,
                "renders": self.renders, "modes": self.modes, **self.summary.to_json(),
                "per_prompt": [p.to_json() for p in self.per_prompt]}

    @classmethod
    def from_json(cls, d: dict) -> TracingMetrics:
        """Read ``metrics/tracing.json`` (or a part of it: a summary with ``n_layers``, ``safe_source``,
        ``traced`` and ``selection`` is enough for the claim)."""
        if d.get("skipped") or "layers" not in d:
            return cls(skipped=d.get("skipped") or "not run")
        return cls(None, d["traced"], d["safe_source"], d.get("seed", 0), d["selection"], d.get("prompts_with_target", 0),
                   d.get("n_prompts", 0), d["n_layers"], d.get("renders", 0), list(d.get("modes", MODES)), Summary.from_json(d),
                   [PromptTrace.from_json(p) for p in d.get("per_prompt", [])])
