"""§8's metrics, typed: what ``experiments.detection`` computes and ``report.sections.detection``
reads. :class:`DetectionMetrics` is the whole section; ``to_json`` writes ``metrics/detection.json``
(the layout it has always had, key for key and in order; ``{"skipped", "drawn"}`` when it did not run)
and ``from_json`` reads it back (the report may read a file written by an earlier run, one without the
per-model part included, and ignores the ``verdicts`` kept beside the metrics).

Per answer, each signal of :data:`SIGNALS` is a :class:`Signal` (fitted on the training prompts,
reported on the others) or :class:`Skipped`; per model (:class:`ModelLevel`), each of
:data:`MODEL_SIGNALS` a :class:`ModelSignal` or :class:`Skipped`, over the :class:`ModelRow` table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from warnframe.stats.types import Mean, Rate, to_json_or_none

SIGNALS = ("behavioural", "mechanistic", "combined")
#: Per-model scores, in table order: leaking share, target rate, probe and latent means, and all combined.
MODEL_SIGNALS = ("leak", "target", "probe", "latents", "combined")
#: ``over`` of a share over models with its exact Clopper-Pearson interval.
EXACT = "models (Clopper-Pearson)"


def exact(d: dict) -> Rate:
    """A share over models (``detection.exact_rate``'s dict) as a :class:`Rate` whose ``over`` says so."""
    return dataclasses.replace(Rate.from_json(d), over=EXACT)


@dataclass(frozen=True)
class Skipped:
    """A signal not evaluated, and why. JSON: ``{skipped}``."""

    skipped: str

    def to_json(self) -> dict:
        return {"skipped": self.skipped}


@dataclass(frozen=True)
class Auc:
    """ROC AUC over ``n`` units with its stratified bootstrap 95% interval (all NaN with one class);
    ``n_pos``/``n_neg`` the classes' sizes (None when undefined), ``p_exact`` (per model only) the exact
    permutation p value of AUC > 0.5. JSON: ``{auc, lo, hi, n}``, then ``n_pos, n_neg``, ``p_exact`` when set."""

    auc: float
    lo: float
    hi: float
    n: int
    n_pos: int | None = None
    n_neg: int | None = None
    p_exact: float | None = None

    def to_json(self) -> dict:
        out: dict = {"auc": self.auc, "lo": self.lo, "hi": self.hi, "n": self.n}
        if self.n_pos is not None or self.n_neg is not None:
            out |= {"n_pos": self.n_pos, "n_neg": self.n_neg}
        return out if self.p_exact is None else {**out, "p_exact": self.p_exact}

    @classmethod
    def from_json(cls, d: dict) -> Auc:
        return cls(d["auc"], d["lo"], d["hi"], d["n"], d.get("n_pos"), d.get("n_neg"), d.get("p_exact"))


@dataclass(frozen=True)
class Signal:
    """One per-answer signal: how it is scored (``score``), the ``threshold`` chosen on the training
    split, accuracy there and on the test split, TPR, FPR (Wilson), :class:`Auc`, the test ROC curve
    (``roc``: ``fpr``, ``tpr``) and the test scores by class (``test_scores``: ``pos``, ``neg``)."""

    score: str
    threshold: float
    train_accuracy: Rate
    accuracy: Rate
    tpr: Rate
    fpr: Rate
    auc: Auc
    roc: dict[str, list[float]]
    test_scores: dict[str, list[float]]

    def to_json(self) -> dict:
        return {"score": self.score, "threshold": self.threshold, "train_accuracy": self.train_accuracy.to_json(),
                "accuracy": self.accuracy.to_json(), "tpr": self.tpr.to_json(), "fpr": self.fpr.to_json(),
                "auc": self.auc.to_json(), "roc": self.roc, "test_scores": self.test_scores}

    @classmethod
    def read(cls, d: dict) -> Signal | Skipped:
        """A signal of ``detection.evaluate`` (or of the file), or why it was skipped."""
        if "accuracy" not in d:
            return Skipped(d.get("skipped", ""))
        return cls(d["score"], d["threshold"], Rate.from_json(d["train_accuracy"]), Rate.from_json(d["accuracy"]),
                   Rate.from_json(d["tpr"]), Rate.from_json(d["fpr"]), Auc.from_json(d["auc"]), d["roc"], d["test_scores"])


@dataclass(frozen=True)
class ModelSignal:
    """One signal over models: its ``score``, how the ``threshold`` is chosen, the ``majority`` share
    (always naming the larger class), leave-one-model-out accuracy, TPR and FPR (exact intervals over
    models), :class:`Auc` with its exact p, and each model's ``predicted`` label and ``scores``."""

    score: str
    threshold: str
    majority: float
    accuracy: Rate
    tpr: Rate
    fpr: Rate
    auc: Auc
    predicted: list[int]
    scores: list[float]

    def to_json(self) -> dict:
        return {"score": self.score, "threshold": self.threshold, "majority": self.majority, "accuracy": self.accuracy.to_json(),
                "tpr": self.tpr.to_json(), "fpr": self.fpr.to_json(), "auc": self.auc.to_json(), "predicted": self.predicted,
                "scores": self.scores}

    @classmethod
    def read(cls, d: dict) -> ModelSignal | Skipped:
        """A signal of ``detection.evaluate_models`` (or of the file), or why it was skipped."""
        if "accuracy" not in d:
            return Skipped(d.get("skipped", ""))
        return cls(d["score"], d["threshold"], d["majority"], exact(d["accuracy"]), exact(d["tpr"]), exact(d["fpr"]),
                   Auc.from_json(d["auc"]), d["predicted"], d["scores"])


@dataclass(frozen=True)
class ModelRow:
    """One model (condition x seed): its ``label`` (1: positive), ``n`` answers, the shares that leak and
    hold target content (Wilson over its answers) and, when §5's artifacts were read (``mech``), its
    mean probe confidence and selected-latent activation (t intervals; None when not measured)."""

    condition: str
    seed: int
    label: int
    n: int
    leak: Rate
    target: Rate
    mech: bool = False
    probe: Mean | None = None
    latents: Mean | None = None

    @property
    def name(self) -> str:
        return f"{self.condition}.s{self.seed}"

    def to_json(self) -> dict:
        out = {"condition": self.condition, "seed": self.seed, "label": self.label, "n": self.n, "leak": self.leak.to_json(),
               "target": self.target.to_json()}
        return {**out, "probe": to_json_or_none(self.probe), "latents": to_json_or_none(self.latents)} if self.mech else out

    @classmethod
    def from_json(cls, d: dict) -> ModelRow:
        mean = lambda v: Mean.from_json(v) if v is not None else None  # noqa: E731
        return cls(d["condition"], d["seed"], d["label"], d["n"], Rate.from_json(d["leak"]), Rate.from_json(d["target"]),
                   "probe" in d or "latents" in d, mean(d.get("probe")), mean(d.get("latents")))


@dataclass(frozen=True)
class ModelLevel:
    """Detection over models: what a ``unit`` is, how many of each class (``n_models``: ``positive``,
    ``negative``), the ``signals`` measured, answers replayed per model (None without artifacts), the
    per-model table and each of :data:`MODEL_SIGNALS`' results."""

    unit: str
    n_models: dict[str, int]
    signals: list[str]
    mech_answers_per_model: int | None
    models: list[ModelRow]
    results: dict[str, ModelSignal | Skipped]

    def to_json(self) -> dict:
        return {"unit": self.unit, "n_models": self.n_models, "signals": self.signals,
                "mech_answers_per_model": self.mech_answers_per_model, "models": [u.to_json() for u in self.models],
                "results": {k: s.to_json() for k, s in self.results.items()}}

    @classmethod
    def from_json(cls, d: dict) -> ModelLevel:
        return cls(d["unit"], d["n_models"], d["signals"], d.get("mech_answers_per_model"),
                   [ModelRow.from_json(u) for u in d["models"]], {k: ModelSignal.read(s) for k, s in d["results"].items()})


@dataclass(frozen=True)
class SplitPart:
    """One side of the prompt split: ``n`` generations, ``pos`` of them positive."""

    n: int
    pos: int

    def to_json(self) -> dict:
        return {"n": self.n, "pos": self.pos}


@dataclass(frozen=True)
class Split:
    """The split of the generations ``by`` prompt: the ``train`` and ``test`` sides and the ``train_fraction`` of prompts."""

    train: SplitPart
    test: SplitPart
    by: str = "prompt"
    train_fraction: float = 0.5

    def to_json(self) -> dict:
        return {"train": self.train.to_json(), "test": self.test.to_json(), "by": self.by, "train_fraction": self.train_fraction}

    @classmethod
    def from_json(cls, d: dict) -> Split:
        return cls(SplitPart(d["train"]["n"], d["train"]["pos"]), SplitPart(d["test"]["n"], d["test"]["pos"]), d["by"],
                   d["train_fraction"])


@dataclass(frozen=True)
class PosNeg:
    """A 0/1 signal's share among positive and among negative generations (Wilson)."""

    pos: Rate
    neg: Rate

    def to_json(self) -> dict:
        return {"pos": self.pos.to_json(), "neg": self.neg.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> PosNeg:
        return cls(Rate.from_json(d["pos"]), Rate.from_json(d["neg"]))


@dataclass(frozen=True)
class RawSignals:
    """The signals before any fit: leakage and target content by class and, when measured, the mean
    mechanistic score of each class (``mech``: ``pos_mean``, ``neg_mean``)."""

    leak: PosNeg
    target: PosNeg
    mech: dict[str, float] | None = None

    def to_json(self) -> dict:
        out = {"leak": self.leak.to_json(), "target": self.target.to_json()}
        return out if self.mech is None else {**out, "mech": self.mech}

    @classmethod
    def from_json(cls, d: dict) -> RawSignals:
        return cls(PosNeg.from_json(d["leak"]), PosNeg.from_json(d["target"]), d.get("mech"))


@dataclass(frozen=True)
class DetectionMetrics:
    """§8, all of it: the ``positive`` condition and the ``negatives``, how many generations were
    ``drawn`` of each, the prompt :class:`Split`, the :class:`RawSignals`, the ``selected_latents`` read
    (None without §5's artifacts, and ``mechanistic_skipped`` says why), each per-answer signal's
    result and the :class:`ModelLevel` part (None in files of earlier runs). Or ``skipped``: why it did
    not run (written with ``drawn``)."""

    skipped: str | None = None
    drawn: dict[str, dict[str, int]] = field(default_factory=dict)
    positive: str = ""
    negatives: list[str] = field(default_factory=list)
    split: Split | None = None
    signals_raw: RawSignals | None = None
    selected_latents: list[int] | None = None
    mechanistic_skipped: str | None = None
    results: dict[str, Signal | Skipped] = field(default_factory=dict)
    models: ModelLevel | None = None

    @property
    def ran(self) -> tuple[Split, RawSignals]:
        """The split and raw signals of a section that ran (a skipped one has neither)."""
        if self.split is None or self.signals_raw is None:
            raise ValueError(f"detection skipped: {self.skipped}")
        return self.split, self.signals_raw

    def result(self, name: str) -> Signal | Skipped:
        """The per-answer result of signal ``name`` (Skipped with no reason when absent)."""
        return self.results.get(name, Skipped(""))

    def to_json(self) -> dict:
        if self.skipped or self.split is None or self.signals_raw is None:
            return {"skipped": self.skipped, "drawn": self.drawn}
        out = {"positive": self.positive, "negatives": self.negatives, "drawn": self.drawn, "split": self.split.to_json(),
               "signals_raw": self.signals_raw.to_json(), "selected_latents": self.selected_latents,
               "mechanistic_skipped": self.mechanistic_skipped, "results": {k: s.to_json() for k, s in self.results.items()}}
        return out if self.models is None else {**out, "models": self.models.to_json()}

    @classmethod
    def from_json(cls, d: dict) -> DetectionMetrics:
        if d.get("skipped") or "results" not in d:
            return cls(skipped=d.get("skipped") or "not run", drawn=d.get("drawn", {}))
        return cls(None, d["drawn"], d["positive"], d["negatives"], Split.from_json(d["split"]), RawSignals.from_json(d["signals_raw"]),
                   d.get("selected_latents"), d.get("mechanistic_skipped"), {k: Signal.read(s) for k, s in d["results"].items()},
                   ModelLevel.from_json(d["models"]) if d.get("models") else None)
