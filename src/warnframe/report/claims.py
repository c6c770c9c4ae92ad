"""Claims: the report's verdicts on the paper's statements, typed and built one way, and the one
policy that holds every decision threshold they use.

A :class:`Claim` says what the paper says (its text and value, from :mod:`warnframe.report.paper`),
what this run found (``ours``, with ``n`` and the 95% ``interval`` of the statistic the verdict
reads), how it was decided (``test`` and ``margin``) and the ``verdict`` with ``why``. Every section's
report part makes its claims with :func:`claim`; the study writes them all to ``metrics/claims.json``
and the report's verdict table is drawn from that file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..scoring.stats import NULL_MARGIN
from . import paper

#: The verdicts a claim can have.
VERDICTS = ("reproduced", "differs", "not reproduced", "inconclusive")


@dataclass(frozen=True)
class Policy:
    """Every threshold a verdict compares against, fixed before any run (never tuned to a result)."""

    alpha: float = 0.05  # significance level of every test
    null_margin: float = NULL_MARGIN  # "no difference" needs the difference's 95% half-width within this
    leak_copied_lo: float = 0.9  # §4: L1 copies the warning format when the exact-leak interval starts here
    leak_partly: float = 0.5  # §4: ... and 'differs' when more than this share leaks at all
    latent_ratio: float = 5.0  # §5: lead latent at least this many times its safe mean
    latent_ratio_partly: float = 2.0  # §5: 'differs' from this ratio up
    latent_agreement: float = 0.67  # §5: direct and warning means within this ratio of each other
    probe_confident: float = 0.9  # §5: mean probe confidence on warning-framed outputs
    probe_partly: float = 0.5  # §5: 'differs' from here up
    projection_share: float = 0.5  # §5: warning's projection gap at least this share of direct's
    paper_gap_share: float = 0.5  # §6: a significant difference at least this share of the paper's counts as reproduced
    low_entropy_nats: float = 1.0  # §6: "low entropy" = a mean below 1 nat (fewer than e ≈ 2.7 likely next tokens)
    spike_ratio: float = 1.5  # §6: a spike = transitions at least this many times the inside-segment mean
    middle_layers: tuple[float, float] = (0.25, 0.75)  # tracing: "middle" = this share of the depth
    detection_accuracy_lo: float = 0.85  # §8: the accuracy interval's lower end must reach this
    detection_accuracy_partly: float = 0.75  # §8: 'differs' from this accuracy up
    auc_separates: float = 0.9  # §8: an AUC interval above this separates the classes
    chance: float = 0.5  # §8: balanced classes


POLICY = Policy()


@dataclass
class Claim:
    """One paper statement beside this run's evidence. ``n`` is what the statistic is over (one count,
    or one per compared group); ``interval`` its 95% interval; ``margin`` the policy threshold used."""

    id: str
    section: str
    claim: str
    paper: str
    ours: str
    verdict: str
    why: str = ""
    n: int | list[int] | None = None
    interval: list[float] | None = None
    test: str | None = None
    margin: float | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"claim {self.id}: verdict {self.verdict!r} is not one of {VERDICTS}")
        if self.interval is not None:
            self.interval = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else float(v) for v in self.interval]

    def record(self) -> dict:
        """The ``metrics/claims.json`` row."""
        return asdict(self)

    def verdict_row(self) -> dict:
        """The row kept in ``metrics/<section>.json`` under ``verdicts`` (``detail`` is ``why``, the name
        earlier versions and ``warnframe run``'s summary read)."""
        row = self.record()
        row["detail"] = row.pop("why")
        return row

    @classmethod
    def from_row(cls, row: dict, index: int = 0) -> Claim:
        """A claim read back from a metrics or claims file (rows of earlier versions lack the new fields)."""
        return cls(id=row.get("id") or f"{row.get('section', '?')}.{index}", section=str(row.get("section", "")),
                   claim=row.get("claim", ""), paper=row.get("paper", ""), ours=row.get("ours", ""),
                   verdict=row.get("verdict", "inconclusive"), why=row.get("why", row.get("detail", "")) or "",
                   n=row.get("n"), interval=row.get("interval"), test=row.get("test"), margin=row.get("margin"))


def claim(id: str, *, ours: str, verdict: str, why: str = "", n=None, interval=None, test: str | None = None,
          margin: float | None = None, **fields) -> Claim:
    """The one way a claim is made: its section, text and paper value come from ``paper.CLAIMS[id]``
    (formatted with ``fields``, for claims about a configured count or kind)."""
    spec = paper.CLAIMS[id]
    return Claim(id=id.format(**fields), section=spec["section"], claim=spec["claim"].format(**fields),
                 paper=spec["paper"].format(**fields), ours=ours, verdict=verdict, why=why, n=n,
                 interval=list(interval) if interval is not None else None, test=test, margin=margin)


def rate_interval(r: dict) -> list[float]:
    """The Wilson 95% interval of a rate dict."""
    return [r["lo"], r["hi"]]
