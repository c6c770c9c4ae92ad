"""Claims: the report's verdicts on the paper's statements, typed and built one way (the thresholds
they use are :data:`warnframe.paper.policy.POLICY`).

A :class:`Claim` says what the paper says (its text and value, from :mod:`warnframe.paper.numbers`),
what this run found (``ours``, with ``n`` and the 95% ``interval`` of the statistic the verdict
reads), how it was decided (``test`` and ``margin``) and the ``verdict`` with ``why``. Every section's
report part makes its claims with :func:`claim`; the study writes them all to ``metrics/claims.json``
and the report's verdict table is drawn from that file.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from warnframe.paper import numbers as paper
from warnframe.paper.policy import POLICY, VERDICTS
from warnframe.stats.clustered import tost
from warnframe.stats.rates import fmt_p
from warnframe.stats.types import Diff, Rate, as_diff, as_rate


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


def rate_interval(r: Rate | dict) -> list[float]:
    """The 95% interval of a rate (Wilson or cluster bootstrap, whichever ``r`` is)."""
    r = as_rate(r)
    return [r.lo, r.hi]


# ---------------------------------------------------------------- verdict rules
#
# Every rule reads a :class:`~warnframe.stats.types.Diff` (``diff, lo, hi`` at 95%, ``lo90, hi90``,
# ``p``; e.g. from ``stats.clustered.bootstrap_diff``), or its dict layout, and returns
# ``(verdict, why)``. Evidence decides, never its absence: "no effect" needs an equivalence test,
# "raises" needs its test, and a run that cannot tell (the interval covers both no effect and the
# paper's effect) says "inconclusive".

BOOTSTRAP = "pigeonhole bootstrap over seeds x prompts"


def fmt_diff(d: Diff | dict | None) -> str:
    """'+1.2 points [-0.3, +2.5], p = 0.120' (a cluster difference in percentage points)."""
    d = as_diff(d)
    if d is None or not d.finite:
        return "difference n/a"
    return f"{100 * d.diff:+.1f} points [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}], p = {fmt_p(d.p)}"


def diff_interval(d: Diff | dict | None) -> list[float] | None:
    """The 95% interval of a difference (None when there is none)."""
    d = as_diff(d)
    return [d.lo, d.hi] if d else None


def established(ref: Diff | dict | None) -> bool:
    """A reference effect is established when its 95% interval lies above 0."""
    ref = as_diff(ref)
    return ref is not None and math.isfinite(ref.lo) and ref.lo > 0


def equivalence_margin(ref: Diff | dict | None) -> float | None:
    """``POLICY.equivalence_share`` of the reference effect (None when it is not established)."""
    ref = as_diff(ref)
    return POLICY.equivalence_share * ref.diff if ref is not None and established(ref) else None


def equivalence(d: Diff | dict | None, ref: Diff | dict | None, ref_label: str = "L0 − neutral") -> tuple[str, str]:
    """A claim of equivalence or no effect: reproduced only by TOST within ±margin (margin from the
    reference effect ``ref``); not reproduced when the difference is significant and outside it;
    inconclusive when the reference effect is not established or the run cannot tell."""
    d, ref = as_diff(d), as_diff(ref)
    margin = equivalence_margin(ref)
    if ref is None or margin is None:
        return "inconclusive", (f"the reference effect {ref_label} is not established ({fmt_diff(ref)}): "
                                "nothing to be equivalent about")
    if d is None or not d.finite:
        return "inconclusive", "no answers to compare"
    t = tost(d, margin)
    span = f"90% interval [{100 * t['lo90']:+.1f}, {100 * t['hi90']:+.1f}] points"
    bound = f"±{100 * margin:.1f} points ({POLICY.equivalence_share:.2g} of {ref_label} {100 * ref.diff:+.1f})"
    if t["equivalent"]:
        return "reproduced", f"TOST: {span} inside {bound}"
    if d.p < POLICY.alpha:
        return "not reproduced", f"the difference is significant ({fmt_diff(d)}) and not within {bound}"
    return "inconclusive", f"neither equivalent ({span} not inside {bound}) nor significantly different"


def no_worse(d: Diff | dict | None, margin: float | None, what: str = "drop") -> tuple[str, str]:
    """Non-inferiority ("does not remove", "only a modest drop"): reproduced when the 90% interval's
    lower end is above −margin (one-sided test at 5%); not reproduced when the 95% interval lies
    wholly below −margin; else inconclusive."""
    d = as_diff(d)
    if margin is None or d is None or not d.finite:
        return "inconclusive", "no margin or no answers to compare"
    bound = f"{100 * margin:.1f} points"
    if d.lo90 > -margin:
        return "reproduced", f"non-inferiority: the 90% interval's lower end {100 * d.lo90:+.1f} is above −{bound}"
    if d.hi < -margin:
        return "not reproduced", f"the {what} is larger than {bound}: 95% interval [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}]"
    return "inconclusive", f"a {what} of more than {bound} is neither shown nor excluded"


def paper_effect(paper_ratio: float, ref_rate: float) -> float:
    """The paper's effect on this run's scale: its rate ratio applied to our reference rate,
    ``(ratio − 1) × ref_rate`` (the tiny model's rates are far below the paper's, so its points
    are not ours; its ratios can be)."""
    return (paper_ratio - 1) * ref_rate


def directional(d: Diff | dict | None, sign: int, effect: float) -> tuple[str, str]:
    """A directional claim (``sign`` +1 raises, −1 lowers): reproduced when its test passes
    (p < alpha, right sign); inconclusive when the 95% interval covers both no effect and the
    paper's ``effect`` (on our scale); otherwise not reproduced."""
    d = as_diff(d)
    if d is None or not d.finite:
        return "inconclusive", "no answers to compare"
    if d.p < POLICY.alpha and sign * d.diff > 0:
        return "reproduced", f"significantly {'higher' if sign > 0 else 'lower'}: {fmt_diff(d)}"
    covers0, covers_paper = d.lo <= 0 <= d.hi, d.lo <= effect <= d.hi
    paper_txt = f"the paper's effect on our scale {100 * effect:+.1f} points"
    if covers0 and covers_paper:
        return "inconclusive", f"the interval covers both no effect and {paper_txt}: {fmt_diff(d)}"
    if d.p < POLICY.alpha:
        return "not reproduced", f"significantly the other way: {fmt_diff(d)}"
    return "not reproduced", f"no significant effect, and the interval excludes {paper_txt}: {fmt_diff(d)}"
