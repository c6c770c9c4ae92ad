"""§7's metrics, typed: what ``experiments.interventions`` computes and ``report.sections.interventions``
reads. :class:`InterventionMetrics` is the whole section; ``to_json`` writes ``metrics/interventions.json``
(the layout it has always had, key for key and in order) and ``from_json`` reads it back (the report
may read a file written by an earlier run, and ignores the ``verdicts`` kept beside the metrics).

Every setting (:class:`Setting`: no intervention, a system prompt, a latent edit, a CAFT arm) and every
prompt kind (:class:`Kind`) is :class:`Measured` the same way: its answers' Wilson rates, the target
rate's seed x prompt bootstrap interval, and :class:`Versus` the no-intervention reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from warnframe.experiments.capability_metrics import Capability, CapabilityTests, HumanEval
from warnframe.experiments.references import NO_REFERENCE, SystemTurn
from warnframe.lm.evaluation import AnswerRates
from warnframe.stats.types import Diff, Fisher, Mean, Rate, as_diff, as_mean, to_json_or_none

#: The CAFT arms: what each projects out during fine-tuning, and where.
CAFT_ARMS = {
    "caft": "the selected latents' decoder directions, at the SAE's site",
    "caft_random": "random directions of the same rank, at the SAE's site (control)",
    "caft_all_layers": "the selected latents' decoder directions, after every decoder layer",
}
#: How tables and figures name each CAFT arm.
CAFT_LABELS = {"caft": "CAFT model", "caft_random": "CAFT, random directions", "caft_all_layers": "CAFT, every layer"}

#: What a §7.2 edit scales: the selected latents (settings ``latents.x<scale>``) or the lead latent alone (``lead.x0``).
SELECTED, LEAD = "latents", "lead"


def edit_name(which: str, scale: float) -> str:
    """A §7.2 setting's name, e.g. ``latents.x0``, ``latents.x0p5``, ``lead.x0`` (``which``: SELECTED or LEAD)."""
    return f"{which}.{f'x{scale:g}'.replace('.', 'p')}"


@dataclass(frozen=True)
class EditSetting:
    """A §7.2 setting to sample: ``which`` latents (SELECTED or LEAD), their ids, the ``scale`` they are
    multiplied by (0 clamps them) and the label tables show."""

    which: str
    latents: list[int]
    scale: float
    label: str

    @property
    def name(self) -> str:
        return edit_name(self.which, self.scale)


def run_key(arm: str) -> str:
    """Where a CAFT arm's fine-tune summary is kept in ``Caft.runs[seed]`` (the CAFT arm itself: ``finetune``)."""
    return "finetune" if arm == "caft" else arm


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on answers paired by seed, prompt and sample index: ``a_only``/``ref_only`` count
    the pairs where only the setting / only the reference has the outcome; ``diff`` the paired difference."""

    n_pairs: int
    a_only: int
    ref_only: int
    diff: float
    p: float
    test: str

    def to_json(self) -> dict:
        return {"n_pairs": self.n_pairs, "a_only": self.a_only, "ref_only": self.ref_only, "diff": self.diff, "p": self.p,
                "test": self.test}

    @classmethod
    def from_json(cls, d: dict | None) -> McNemar | None:
        return cls(d["n_pairs"], d["a_only"], d["ref_only"], d["diff"], d["p"], d["test"]) if d else None


@dataclass(frozen=True)
class DeltaSummary:
    """The teacher-forced preference Δ of a setting and, ``vs_none``, its difference from the
    reference's on the same run and prompt (t intervals over prompts); ``runs``: seeds (x system prompts)."""

    delta: Mean
    vs_none: Mean | None
    runs: int
    interval: str

    def to_json(self) -> dict:
        return {"delta": self.delta.to_json(), "vs_none": to_json_or_none(self.vs_none), "runs": self.runs, "interval": self.interval}

    @classmethod
    def from_json(cls, d: dict | None) -> DeltaSummary | None:
        return cls(Mean.from_json(d["delta"]), as_mean(d.get("vs_none")), d["runs"], d["interval"]) if d else None


@dataclass(frozen=True)
class Versus:
    """A setting against a reference: Fisher's test (None where not computed), the seed x prompt
    bootstrap difference (what the verdicts read; None without seed and prompt ids) and McNemar's test
    on paired answers (None when none pair). JSON: ``<prefix>``, ``<prefix>_cluster``, ``<prefix>_paired``."""

    fisher: Fisher | None
    cluster: Diff | None
    paired: McNemar | None

    def to_json(self, prefix: str) -> dict:
        head = {} if self.fisher is None else {prefix: self.fisher.to_json()}
        return {**head, f"{prefix}_cluster": to_json_or_none(self.cluster), f"{prefix}_paired": to_json_or_none(self.paired)}

    @classmethod
    def from_json(cls, d: dict, prefix: str) -> Versus | None:
        if prefix not in d and f"{prefix}_cluster" not in d:
            return None
        fisher = Fisher.from_json(d[prefix]) if d.get(prefix) else None
        return cls(fisher, as_diff(d.get(f"{prefix}_cluster")), McNemar.from_json(d.get(f"{prefix}_paired")))


#: A difference not measured (rows without seed and prompt ids).
NOT_RUN = Diff.missing("not measured")


@dataclass(frozen=True)
class Measured:
    """What every setting and prompt kind has: its answers' rates, ``cluster`` (the target rate's seed x
    prompt bootstrap, None without seed and prompt ids), ``vs_none`` (None for the reference itself)
    and its Δ (None when not measured)."""

    answers: AnswerRates
    cluster: Rate | None
    vs_none: Versus | None
    delta: DeltaSummary | None

    @property
    def rate(self) -> Rate:
        """The target rate with its cluster-aware interval (Wilson when rows lacked seed/prompt)."""
        return self.cluster or self.answers.target

    @property
    def diff(self) -> Diff:
        """The cluster-aware difference from no intervention (all NaN when not measured)."""
        return (self.vs_none and self.vs_none.cluster) or NOT_RUN

    @property
    def fisher(self) -> Fisher | None:
        """Fisher's test against no intervention (None for the reference itself)."""
        return self.vs_none.fisher if self.vs_none else None

    @property
    def paired(self) -> McNemar | None:
        """McNemar's test against no intervention (None when no answer paired, and for the reference)."""
        return self.vs_none.paired if self.vs_none else None

    def _body(self) -> dict:
        vs = {} if self.vs_none is None else self.vs_none.to_json("vs_none")
        return {**self.answers.to_json(), "cluster": to_json_or_none(self.cluster), **vs, "delta": to_json_or_none(self.delta)}

    @staticmethod
    def _read(d: dict) -> dict:
        return {"answers": AnswerRates.from_json(d), "cluster": Rate.from_json(d["cluster"]) if d.get("cluster") else None,
                "vs_none": Versus.from_json(d, "vs_none"), "delta": DeltaSummary.from_json(d.get("delta"))}


@dataclass(frozen=True)
class Setting(Measured):
    """One sampled setting, by ``group``: ``reference`` (no intervention), ``prompt`` (a system prompt:
    ``kind``, ``system``), ``edit`` (§7.2: ``which`` latents — SELECTED or LEAD — at ``scale``) or
    ``caft`` (an arm of :data:`CAFT_ARMS`: ``what`` it projects out; the CAFT arm itself also has
    ``vs_random``, against the random-direction control)."""

    name: str = ""
    group: str = "reference"
    label: str = ""
    kind: str | None = None
    system: str | None = None
    which: str | None = None
    latents: list[int] | None = None
    scale: float | None = None
    what: str | None = None
    vs_random: Versus | None = None

    @property
    def clamps_selected(self) -> bool:
        """Whether this is §7.2's central edit: the selected latents clamped to zero (the paper's 88%)."""
        return self.group == "edit" and self.which == SELECTED and self.scale == 0

    @property
    def amplifies(self) -> bool:
        """Whether this edit scales its latents up (the paper: 2× and 5× have no significant effect)."""
        return self.group == "edit" and self.scale is not None and self.scale > 1

    def to_json(self) -> dict:
        heads: dict[str, dict] = {"reference": {"label": self.label},
                                  "prompt": {"kind": self.kind, "label": self.label, "system": self.system},
                                  "edit": {"label": self.label, "latents": self.latents, "scale": self.scale},
                                  "caft": {"label": self.label, "what": self.what}}
        head = heads[self.group]
        tail = {} if self.vs_random is None else self.vs_random.to_json("vs_random")
        return {"group": self.group, **head, **self._body(), **tail}

    @classmethod
    def from_json(cls, name: str, d: dict) -> Setting:
        group = d["group"]
        return cls(**cls._read(d), name=name, group=group, label=d["label"], kind=d.get("kind"), system=d.get("system"),
                   which=name.split(".", 1)[0] if group == "edit" else None, latents=d.get("latents"), scale=d.get("scale"),
                   what=d.get("what"), vs_random=Versus.from_json(d, "vs_random"))


@dataclass(frozen=True)
class Kind(Measured):
    """A kind of system prompt (its ``prompts`` pooled): ``label`` and the paper's statement (``paper``)."""

    kind: str = ""
    prompts: list[str] = field(default_factory=list)
    label: str = ""
    paper: str | None = None

    def to_json(self) -> dict:
        return {"prompts": self.prompts, **self._body(), "label": self.label, "paper": self.paper}

    @classmethod
    def from_json(cls, kind: str, d: dict) -> Kind:
        return cls(**cls._read(d), kind=kind, prompts=d["prompts"], label=d["label"], paper=d.get("paper"))


@dataclass(frozen=True)
class Edits:
    """§7.2's latents: the SAE ``site``, the ``selected_latents`` (``latents_from`` the §5 selection or
    ``interventions.latents``), the ``lead_latent`` and §5's causal check of the selection (its record
    from ``mech.latent_check``; None when pinned); or ``skipped``: why they were not edited."""

    skipped: str | None = None
    site: str = ""
    selected_latents: list[int] = field(default_factory=list)
    latents_from: str = "§5 selection"
    lead_latent: int | None = None
    causal_check: dict | None = None
    sae: str = ""
    d_model: int | None = None

    def to_json(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return {"site": self.site, "selected_latents": self.selected_latents, "latents_from": self.latents_from,
                "lead_latent": self.lead_latent, "causal_check": self.causal_check, "sae": self.sae, "d_model": self.d_model}

    @classmethod
    def from_json(cls, d: dict) -> Edits:
        if "site" not in d:
            return cls(skipped=d.get("skipped") or "not run")
        return cls(None, d["site"], d["selected_latents"], d.get("latents_from", "§5 selection"), d.get("lead_latent"),
                   d.get("causal_check"), d.get("sae", ""), d.get("d_model"))


@dataclass(frozen=True)
class Caft:
    """§7.3: the number of ``directions`` projected out and their ``rank``, at ``site``; ``runs``: per
    seed, each fine-tune's summary (the plain model's under ``plain_<m>``, each arm's under
    :func:`run_key`); ``arms``: :data:`CAFT_ARMS`. Or ``skipped``: why CAFT did not run."""

    skipped: str | None = None
    directions: int = 0
    rank: int = 0
    site: str = ""
    runs: dict[str, dict] = field(default_factory=dict)
    arms: dict[str, str] = field(default_factory=dict)

    def final_loss(self, key: str) -> float | None:
        """The mean final training loss over seeds of the fine-tune kept under ``key`` in ``runs``."""
        vals = [r[key]["final_loss"] for r in self.runs.values() if r.get(key)]
        return sum(vals) / len(vals) if vals else None

    def to_json(self) -> dict:
        if self.skipped:
            return {"skipped": self.skipped}
        return {"directions": self.directions, "rank": self.rank, "site": self.site, "runs": self.runs, "arms": self.arms}

    @classmethod
    def from_json(cls, d: dict) -> Caft:
        if "directions" not in d:
            return cls(skipped=d.get("skipped") or "not run")
        return cls(None, d["directions"], d["rank"], d["site"], d.get("runs", {}), d.get("arms", {}))


@dataclass(frozen=True)
class InterventionMetrics:
    """§7, all of it: every setting and prompt kind, capability and HumanEval per model and their tests;
    then what the run was measured against and how (the study's reference effect, whether the model saw
    a system turn, the corrected ``model``, seeds and sample counts), the edits and CAFT, and the
    ``seconds`` spent per kind of work. ``interventions_analysis.analyse`` fills the first part,
    ``interventions.run`` the rest."""

    settings: dict[str, Setting]
    kinds: dict[str, Kind]
    capability: dict[str, Capability]
    humaneval: dict[str, HumanEval]
    capability_tests: CapabilityTests
    reference_effect: Diff = NO_REFERENCE
    system_turn: SystemTurn = SystemTurn(True, "not checked")
    model: str = "L1"
    seeds: list[int] = field(default_factory=list)
    samples_per_prompt: int = 0
    eval_prompts: int = 0
    edits: Edits = Edits(skipped="not run")
    caft: Caft = Caft(skipped="not run")
    seconds: dict[str, float] = field(default_factory=dict)

    def settings_of(self, group: str) -> list[Setting]:
        """The settings of one ``group`` (``prompt``, ``edit``, ``caft``), in order."""
        return [s for s in self.settings.values() if s.group == group]

    def to_json(self) -> dict:
        caft = self.caft.to_json()
        if not self.caft.skipped and "caft" in self.settings:  # the CAFT arm's own numbers, beside its setup
            s = self.settings["caft"]
            caft |= {"target": s.answers.target.to_json(), f"vs_{self.model}": to_json_or_none(s.fisher)}
        return {"settings": {k: s.to_json() for k, s in self.settings.items()},
                "kinds": {k: x.to_json() for k, x in self.kinds.items()},
                "capability": {k: c.to_json() for k, c in self.capability.items()},
                "humaneval": {k: h.to_json() for k, h in self.humaneval.items()},
                "capability_tests": self.capability_tests.to_json(self.model),
                "reference_effect": self.reference_effect.to_json(), "system_turn": self.system_turn.to_json(),
                "model": self.model, "seeds": self.seeds, "samples_per_prompt": self.samples_per_prompt,
                "eval_prompts": self.eval_prompts, "edits": self.edits.to_json(), "caft": caft, "seconds": self.seconds}

    @classmethod
    def from_json(cls, d: dict) -> InterventionMetrics:
        m = d.get("model", "L1")
        return cls(settings={k: Setting.from_json(k, s) for k, s in d["settings"].items()},
                   kinds={k: Kind.from_json(k, x) for k, x in d["kinds"].items()},
                   capability={k: Capability.from_json(c) for k, c in (d.get("capability") or {}).items()},
                   humaneval={k: HumanEval.from_json(h) for k, h in (d.get("humaneval") or {}).items()},
                   capability_tests=CapabilityTests.from_json(d.get("capability_tests") or {}, m),
                   reference_effect=as_diff(d.get("reference_effect")) or NO_REFERENCE,
                   system_turn=SystemTurn.from_json(d.get("system_turn")), model=m, seeds=d["seeds"],
                   samples_per_prompt=d["samples_per_prompt"], eval_prompts=d["eval_prompts"],
                   edits=Edits.from_json(d.get("edits") or {}), caft=Caft.from_json(d.get("caft") or {}),
                   seconds=d.get("seconds", {}))
