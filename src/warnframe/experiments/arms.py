"""Extra fine-tuning arms beside the study's conditions: one model per arm and seed, trained by the
study's one trainer and sampled by its one generate→score path, each step resumable.

The dose-response stage (an arm per condition and fraction) and the remedies (an arm per remedy)
are built from these two calls; an arm is named ``<stage>.<what>`` (``dose.L1.f0.05``,
``remedy.mask``), its model lives in ``models/<arm>.s<seed>`` and its scored answers in
``arms/<arm>.s<seed>.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from warnframe.runtime import keys
from warnframe.runtime.files import read_jsonl, write_jsonl
from warnframe.runtime.progress import task
from warnframe.schema import Example, Prompt


def train(study, arm: str, cond: str, seed: int, examples: list[Example], *, unlikelihood_weight: float = 0.0,
          edit_factory=None) -> str:
    """Fine-tune the base on ``examples`` (``cond`` names the set they stand for) and return the
    model directory. Redone only when the examples, the fine-tuning config or the seed change."""
    dest = study.store.path("models", f"{arm}.s{seed}")
    study.finetune_one(cond, seed, examples=examples, dest=dest, stage=f"finetune.{arm}.s{seed}", extra_key=f".{arm}",
                       unlikelihood_weight=unlikelihood_weight, edit_factory=edit_factory)
    return str(dest)


def sample(study, arm: str, seed: int, source: str, *, n: int | None = None, prompts: list[Prompt] | None = None,
           condition: str | None = None) -> list[dict]:
    """The eval prompts (or ``prompts``) answered ``n`` times each (default
    ``sampling.samples_per_prompt``) by the model at ``source`` under the study's sampling
    settings, scored; rows as ``ScoredSample.record()`` with ``setting`` = ``arm``. Resumed from
    ``arms/<arm>.s<seed>.jsonl`` while the model files, prompts and sampling config are the same."""
    from warnframe.lm.evaluation import sample_and_score

    s = study.cfg.sampling
    n = n or s.samples_per_prompt
    prompts = prompts if prompts is not None else study.eval_prompts()
    path = study.store.path("arms", f"{arm}.s{seed}.jsonl")
    model_files = [p for p in Path(source).iterdir() if p.is_file()] if Path(source).is_dir() else []
    key = keys.key(study.cfg.digest("sampling"), seed, n, keys.fingerprint(model_files), [p.__dict__ for p in prompts])

    def run():
        model, tok = study.load(source)
        with task(f"sample {arm} seed {seed}", len(prompts) * n) as adv:
            rows = sample_and_score(model, tok, prompts, s, n=n, seed=seed, condition=condition or arm, setting=arm,
                                    progress=adv)
        write_jsonl(path, (r.record() for r in rows))
        return {"samples": len(rows), "vulnerable": sum(bool(r.vulnerable) for r in rows)}

    study.stage(f"sample.{arm}.s{seed}", key, run)
    return list(read_jsonl(path))


class LazyModel:
    """A model (and tokenizer) loaded on first use, dropped by :meth:`free`: a section that measures
    several things on one model loads it once, and not at all when every part is already done."""

    def __init__(self, study, source: str):
        self.study, self.source, self._m = study, source, None

    def get(self):
        if self._m is None:
            self._m = self.study.load(self.source)
        return self._m

    def free(self) -> None:
        self._m = None



def part(study, section: str, name: str, seed: int, spec: dict, fn):
    """Run ``fn()`` once per config and ``spec`` as stage ``<section>.<name>.s<seed>`` and keep its
    JSON result in ``<section>/parts/<name>.s<seed>.json`` (a resumable piece of a section)."""
    from warnframe.runtime.files import read_json, write_json

    path = study.store.path(section, "parts", f"{name}.s{seed}.json")
    key = keys.key(study.cfg.digest("corpus", "model", "pretrain", "finetune", "sampling"), seed, spec)

    def run():
        write_json(path, fn())

    study.stage(f"{section}.{name}.s{seed}", key, run)
    return read_json(path)
