"""§7's capability measures, typed (part of :class:`~warnframe.experiments.interventions_metrics.InterventionMetrics`):
per model its :class:`Capability` on held-out clean prompts and its :class:`HumanEval` pass@1, and the
:class:`CapabilityTests` the capability claim reads. ``experiments.capability_parts`` computes them;
``to_json``/``from_json`` keep the layout of ``metrics/interventions.json``."""

from __future__ import annotations

from dataclasses import dataclass

from warnframe.stats.types import Diff, Fisher, Mean, Rate, as_diff, as_mean, to_json_or_none


@dataclass(frozen=True)
class LossInterval:
    """A held-out loss's 95% interval and what it is over (the base: held-out tasks; a fine-tuned arm: its seeds)."""

    lo: float | None
    hi: float | None
    n: int | None
    over: str

    def to_json(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "n": self.n, "over": self.over}

    @classmethod
    def from_json(cls, d: dict | None) -> LossInterval | None:
        return cls(d.get("lo"), d.get("hi"), d.get("n"), d.get("over", "")) if d else None


@dataclass(frozen=True)
class Capability:
    """One model's capability: capable and parsing answers on the held-out clean prompts (Wilson) and
    its held-out loss (the mean over seeds, its interval, each seed's, and how many examples)."""

    capable: Rate
    parses: Rate
    heldout_loss: float
    heldout_loss_ci: LossInterval | None
    heldout_loss_per_seed: list[float]
    heldout_examples: int | None

    def to_json(self) -> dict:
        return {"capable": self.capable.to_json(), "parses": self.parses.to_json(), "heldout_loss": self.heldout_loss,
                "heldout_loss_ci": to_json_or_none(self.heldout_loss_ci), "heldout_loss_per_seed": self.heldout_loss_per_seed,
                "heldout_examples": self.heldout_examples}

    @classmethod
    def from_json(cls, d: dict) -> Capability:
        return cls(Rate.from_json(d["capable"]), Rate.from_json(d["parses"]), d["heldout_loss"],
                   LossInterval.from_json(d.get("heldout_loss_ci")), d.get("heldout_loss_per_seed", []), d.get("heldout_examples"))


@dataclass(frozen=True)
class HumanEval:
    """HumanEval pass@1 of one model, and its passing completions with a Wilson interval."""

    pass_at_1: float
    completions: Rate
    problems: int
    sandbox: dict | None
    samples_per_problem: int | None

    def to_json(self) -> dict:
        return {"pass@1": self.pass_at_1, "completions": self.completions.to_json(), "problems": self.problems,
                "sandbox": self.sandbox, "samples_per_problem": self.samples_per_problem}

    @classmethod
    def from_json(cls, d: dict) -> HumanEval:
        return cls(d["pass@1"], Rate.from_json(d["completions"]), d["problems"], d.get("sandbox"), d.get("samples_per_problem"))


@dataclass(frozen=True)
class CapabilityTests:
    """The tests the capability claim reads, of CAFT against the corrected model ``m``: Fisher's test of
    capable answers (``caft``, JSON ``caft_vs_<m>``) with its bootstrap difference (``caft_cluster``,
    ``caft_vs_<m>_cluster``), the held-out loss CAFT − m paired over seeds (``heldout``,
    ``heldout_caft_vs_<m>``) and HumanEval (``humaneval``, ``humaneval_caft_vs_<m>``); and m against
    the base (``model_vs_base``, ``<m>_vs_base``)."""

    caft: Fisher | None = None
    caft_cluster: Diff | None = None
    heldout: Mean | None = None
    model_vs_base: Fisher | None = None
    humaneval: Fisher | None = None

    @staticmethod
    def _keys(m: str) -> dict[str, str]:
        return {"caft": f"caft_vs_{m}", "caft_cluster": f"caft_vs_{m}_cluster", "heldout": f"heldout_caft_vs_{m}",
                "model_vs_base": f"{m}_vs_base", "humaneval": f"humaneval_caft_vs_{m}"}

    def to_json(self, m: str) -> dict:
        out = {}
        for attr, key in self._keys(m).items():
            # the bootstrap difference sits beside Fisher's test, as null when the rows had no seed/prompt ids
            if getattr(self, attr) is not None or (attr == "caft_cluster" and self.caft is not None):
                out[key] = to_json_or_none(getattr(self, attr))
        return out

    @classmethod
    def from_json(cls, d: dict, m: str) -> CapabilityTests:
        k = cls._keys(m)
        fisher = {a: Fisher.from_json(d[k[a]]) if d.get(k[a]) else None for a in ("caft", "model_vs_base", "humaneval")}
        return cls(fisher["caft"], as_diff(d.get(k["caft_cluster"])), as_mean(d.get(k["heldout"])), fisher["model_vs_base"],
                   fisher["humaneval"])

    def p_values(self, m: str) -> list[tuple[str, float]]:
        """Each test with a p value, named for the report ('caft vs L1', ..., in the JSON's order)."""
        named = ((f"caft vs {m}", self.caft), (f"caft vs {m} cluster", self.caft_cluster), (f"{m} vs base", self.model_vs_base),
                 (f"humaneval caft vs {m}", self.humaneval))
        return [(name, t.p) for name, t in named if t is not None]
