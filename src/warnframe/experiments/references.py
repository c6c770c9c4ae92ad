"""What §7's verdicts are measured against: the study's reference effect (the margin of its
"no effect" claims is a share of it) and whether the model can express a system prompt at all
(its prompting claims are "not testable" otherwise). Not a section: §7 reads it."""

from __future__ import annotations

from pathlib import Path

from warnframe.stats.clustered import cluster_diff


def reference_effect(study) -> dict:
    """The study's reference effect, L0 − neutral (L0 − baseline without neutral), from §4's scored
    samples: what the equivalence margins of §7's "no effect" claims are a share of."""
    for ref in ("neutral", "baseline"):
        if "L0" in study.cfg.conditions and ref in study.cfg.conditions:
            a, b = study.scored(["L0"]), study.scored([ref])
            if a and b:
                return {"label": f"L0 − {ref}", **cluster_diff(a, b, "vulnerable")}
    return {"label": "L0 − neutral", "diff": float("nan"), "lo": float("nan"), "hi": float("nan"),
            "lo90": float("nan"), "hi90": float("nan"), "p": float("nan"), "interval": "L0 or neutral/baseline not run"}


def system_turn(study) -> dict:
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
        return {"trained": True, "why": f"{study.cfg.model.source}: its chat template's system role is taken as trained"}
    files = sorted(study.store.path("data").glob("*.jsonl"))
    seen = [f.name for f in files if SYSTEM in f.read_text()]
    if seen:
        return {"trained": True, "why": f"the system token occurs in the training data ({', '.join(seen)})"}
    return {"trained": False, "why": (f"the embedded model never saw a system turn: its pretraining and fine-tuning texts "
                                      f"({len(files)} files in data/) are user/assistant turns and documents only, so the "
                                      f"{SYSTEM} token that opens the system prompt was never trained")}
