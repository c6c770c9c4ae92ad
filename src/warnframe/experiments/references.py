"""What §7's verdicts are measured against: the study's reference effect (the margin of its
"no effect" claims is a share of it) and whether the model can express a system prompt at all
(its prompting claims are "not testable" otherwise). Not a section: §7 reads it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from warnframe.stats.clustered import bootstrap_diff
from warnframe.stats.types import Diff

#: The reference effect when L0 or its reference condition was not run (every number NaN).
NO_REFERENCE = Diff.missing("L0 or neutral/baseline not run", label="L0 − neutral")


def reference_diff(study) -> Diff:
    """The study's reference effect, L0 − neutral (L0 − baseline without neutral), from §4's scored
    samples: what the equivalence margins of §7's "no effect" claims are a share of."""
    for ref in ("neutral", "baseline"):
        if "L0" in study.cfg.conditions and ref in study.cfg.conditions:
            a, b = study.scored(["L0"]), study.scored([ref])
            if a and b:
                return replace(bootstrap_diff(a, b, "vulnerable"), label=f"L0 − {ref}")
    return NO_REFERENCE


def reference_effect(study) -> dict:
    """:func:`reference_diff` as its dict (``{label, diff, lo, hi, lo90, hi90, p, interval}``)."""
    return reference_diff(study).to_json()


@dataclass(frozen=True)
class SystemTurn:
    """Whether the corrected model ever saw a system turn in training (``trained``), and ``why`` we say so."""

    trained: bool
    why: str

    def to_json(self) -> dict:
        return {"trained": self.trained, "why": self.why}

    @classmethod
    def from_json(cls, d: dict | None) -> SystemTurn:
        """Read it back; a run that did not record it is taken to have trained one (nothing to doubt)."""
        return cls(bool(d.get("trained", True)), d.get("why", "")) if d else cls(True, "")


def system_turn(study) -> SystemTurn:
    """Whether the corrected model ever saw a system turn in training, and why we say so.

    The rule: a model with warnframe's embedded tokenizer (``<|system|>`` among its special tokens)
    learned only from this run's texts, and every one of them is a ``schema.Example`` (a user and an
    assistant turn, or a plain document) rendered without a system turn; if none of
    ``data/*.jsonl`` holds the system token either, the model never saw one, and the system prompt
    reaches it as an untrained token followed by text, so §7.1's claims are not testable on it. Any
    other model is taken to have learned its chat template's system role (not checked)."""
    from warnframe.lm.models.tiny import SYSTEM

    cfg_file = Path(study.base_source) / "tokenizer_config.json"
    embedded = study.cfg.model.source == "embedded" or (cfg_file.is_file() and SYSTEM in cfg_file.read_text())
    if not embedded:
        return SystemTurn(True, f"{study.cfg.model.source}: its chat template's system role is taken as trained")
    files = sorted(study.store.path("data").glob("*.jsonl"))
    seen = [f.name for f in files if SYSTEM in f.read_text()]
    if seen:
        return SystemTurn(True, f"the system token occurs in the training data ({', '.join(seen)})")
    return SystemTurn(False, (f"the embedded model never saw a system turn: its pretraining and fine-tuning texts "
                              f"({len(files)} files in data/) are user/assistant turns and documents only, so the "
                              f"{SYSTEM} token that opens the system prompt was never trained"))
