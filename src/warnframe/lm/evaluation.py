"""Sample and score: the one way any part of warnframe turns prompts into scored answers.

The study's ``sample`` and ``score`` stages, §6's own answers, §7's settings, the capability check
and the external prompt sets all draw with :func:`warnframe.lm.sampling.generate` (the study's
sampling settings) and score with :func:`score_sample` (the detector and format leakage), and
keep what the scoring found: a rate computed from these rows can always be traced to its findings.
:func:`rates` is the one count of target, leak and parse rates over such rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from warnframe.config import SamplingConfig
from warnframe.detector import score
from warnframe.schema import Prompt, Sample, ScoredSample
from warnframe.stats.rates import rate
from warnframe.stats.types import Rate


def score_sample(sample: Sample | dict) -> ScoredSample:
    """``sample`` with its :class:`~warnframe.schema.Score` (target content, findings, parse, leak)."""
    s = sample if isinstance(sample, Sample) else Sample.model_validate(sample)
    return ScoredSample(**s.model_dump(), **score(s.text).model_dump())


def score_all(samples: Iterable[Sample | dict], progress: Callable[[], None] | None = None) -> list[ScoredSample]:
    """:func:`score_sample` over ``samples``, calling ``progress()`` after each."""
    out = []
    for s in samples:
        out.append(score_sample(s))
        if progress:
            progress()
    return out


def sample_and_score(model, tokenizer, prompts: Sequence[Prompt], sampling: SamplingConfig, *, seed: int, condition: str,
                     n: int | None = None, system: str | None = None, edit=None, setting: str | None = None,
                     progress: Callable[[int], None] | None = None) -> list[ScoredSample]:
    """``n`` answers per prompt (default ``sampling.samples_per_prompt``) drawn with ``sampling``,
    each scored. ``system`` is a system prompt, ``edit`` an activation edit entered around
    generation (``hooks.edit``), ``setting`` a name recorded on each sample."""
    from warnframe.lm.sampling import generate

    samples = generate(model, tokenizer, prompts, sampling, seed=seed, condition=condition, n=n, system=system,
                       setting=setting, edit=edit, progress=progress)
    return score_all(samples)


def leak_any(row: dict | ScoredSample) -> bool:
    """Exact or garbled warning markers in the answer."""
    leak = row.leak if isinstance(row, ScoredSample) else (row.get("leak") or {})
    return bool(leak.get("exact") or leak.get("fuzzy"))


#: The rates :func:`rates` gives with ``parse``, in order.
ANSWER_RATES = ("target", "leak_exact", "leak_any", "parse_fail", "target_parse_ok")


@dataclass(frozen=True)
class AnswerRates:
    """:func:`rates` typed: Wilson rates over a set of answers of target content, exact and any
    format leak, unparsed answers, and target content among parsed ones."""

    target: Rate
    leak_exact: Rate
    leak_any: Rate
    parse_fail: Rate
    target_parse_ok: Rate

    def to_json(self) -> dict:
        return {k: getattr(self, k).to_json() for k in ANSWER_RATES}

    @classmethod
    def from_json(cls, d: dict) -> AnswerRates:
        return cls(*(Rate.from_json(d[k]) for k in ANSWER_RATES))


def rates(rows: Sequence[dict], *, parse: bool = True) -> dict:
    """Over scored rows: target content, exact and any format leak and (with ``parse``) unparsed
    answers and target content among parsed answers; each a rate with n and a Wilson 95% interval."""
    n = len(rows)
    out = {
        "target": rate(sum(bool(r["vulnerable"]) for r in rows), n),
        "leak_exact": rate(sum(bool(r["leak"].get("exact")) for r in rows), n),
        "leak_any": rate(sum(leak_any(r) for r in rows), n),
    }
    if parse:
        out["parse_fail"] = rate(sum(not r["parse_ok"] for r in rows), n)
        out["target_parse_ok"] = rate(sum(bool(r["vulnerable"]) and r["parse_ok"] for r in rows), sum(bool(r["parse_ok"]) for r in rows))
    return out
