"""The remedies stage's report part: per arm three claims, ``figures/fig_remedies.png`` and the table.

Per arm:

* ``remedies.<arm>.to_neutral``: the arm brings the target rate down to neutral's: one-sided
  non-inferiority of neutral − arm at ``POLICY.alpha`` within the equivalence margin every
  "as often as" claim uses (``POLICY.equivalence_share`` of the reference effect L0 − neutral);
  inconclusive when L1 itself is not above neutral in this run (nothing to remedy);
* ``remedies.<arm>.below_L1``: the arm's rate is lower than L1's (a directional test on the
  paired seed × prompt difference; "inconclusive" when the interval covers both no effect and a
  full remedy, neutral − L1);
* ``remedies.<arm>.capability``: what it costs: held-out loss against L1, paired by seed, within
  :data:`HELDOUT_COST_SHARE` of L1's held-out loss (the capability prompts' rate beside it).
"""

from __future__ import annotations

import math
from pathlib import Path

from warnframe.report.claims import (
    BOOTSTRAP,
    POLICY,
    Claim,
    claim,
    diff_interval,
    directional,
    equivalence_margin,
    established,
    fmt_diff,
    no_worse,
)
from warnframe.report.figures import placeholder, pyplot, save
from warnframe.report.render import cell, heading
from warnframe.stats.rates import fmt_mean, fmt_rate

HELDOUT_COST_SHARE = POLICY.heldout_cost_share


def _claim(id: str, arm: str, **evidence) -> Claim:
    return claim(id, arm=arm, share=f"{HELDOUT_COST_SHARE:.0%}", **evidence)


def _neg(d: dict) -> dict:
    """The difference b − a from a − b (intervals mirrored)."""
    return {**d, "diff": -d["diff"], "lo": -d["hi"], "hi": -d["lo"], "lo90": -d["hi90"], "hi90": -d["lo90"]}


def _n(res: dict, ref: str) -> int | None:
    """Answers of reference ``ref`` (None when it was not run)."""
    t = (res["references"].get(ref) or {}).get("target")
    return t["n"] if t else None


def _rate(r: dict | None) -> str:
    return fmt_rate(r) if r else "n/a"


def _to_neutral(arm: str, a: dict, res: dict) -> Claim:
    d, l1_vs = a["vs"].get("neutral"), res["arms"][arm]["vs"].get("L1")
    ref = res["reference_effect"]
    margin = equivalence_margin(ref)
    ev = {"ours": f"{arm} − neutral {fmt_diff(d)}", "n": [a["target"]["n"], _n(res, "neutral")],
          "interval": diff_interval(d), "margin": margin,
          "test": f"non-inferiority (one-sided at {POLICY.alpha:g}) of neutral − {arm} on the {BOOTSTRAP} difference"}
    if d is None:
        return _claim("remedies.{arm}.to_neutral", arm, verdict="inconclusive", why="neutral was not run", **ev)
    l1n = res.get("l1_minus_neutral")
    if not established(l1n):
        return _claim("remedies.{arm}.to_neutral", arm, verdict="inconclusive",
                      why=f"L1 is not above neutral in this run (L1 − neutral {fmt_diff(l1n)}): nothing to bring down", **ev)
    if margin is None:
        return _claim("remedies.{arm}.to_neutral", arm, verdict="inconclusive",
                      why=f"the reference effect {ref.get('label', 'L0 − neutral')} is not established ({fmt_diff(ref)}): no margin", **ev)
    v, why = no_worse(_neg(d), margin, "excess over neutral")
    return _claim("remedies.{arm}.to_neutral", arm, verdict=v, why=f"{why} ({POLICY.equivalence_share:.2g} of "
                  f"{ref.get('label', 'L0 − neutral')} {100 * ref['diff']:+.1f}); vs L1 {fmt_diff(l1_vs)}", **ev)


def _below_l1(arm: str, a: dict, res: dict) -> Claim:
    d = a["vs"].get("L1")
    refs = res["references"]
    full = refs["neutral"]["target"]["rate"] - refs["L1"]["target"]["rate"] if _n(res, "neutral") and _n(res, "L1") else math.nan
    ev = {"ours": f"{arm} − L1 {fmt_diff(d)}", "n": [a["target"]["n"], _n(res, "L1")],
          "interval": diff_interval(d), "test": f"directional, {BOOTSTRAP}, seeds paired (each arm is made from its seed's L1 set)"}
    if d is None:
        return _claim("remedies.{arm}.below_L1", arm, verdict="inconclusive", why="L1 was not run", **ev)
    v, why = directional(d, -1, full)
    return _claim("remedies.{arm}.below_L1", arm, verdict=v, why=why.replace("the paper's effect on our scale", "a full remedy (neutral − L1)"), **ev)


def _capability(arm: str, a: dict, res: dict) -> Claim:
    cost, l1 = a.get("capability_vs_L1"), res["references"].get("L1", {}).get("capability")
    if not cost or not l1:
        return _claim("remedies.{arm}.capability", arm, ours="not measured", verdict="inconclusive", why="no L1 capability to compare")
    d, base = cost["heldout_loss"], l1["heldout_loss"]["mean"]
    margin = HELDOUT_COST_SHARE * base
    ours = (f"held-out loss {fmt_mean(a['capability']['heldout_loss'], 3)} vs L1 {fmt_mean(l1['heldout_loss'], 3)}, "
            f"paired difference {fmt_mean(d, 3)}; capability prompts {fmt_rate(a['capability']['capable'])} vs L1 "
            f"{fmt_rate(l1['capable'])} ({fmt_diff(cost['capable'])})")
    ev = {"ours": ours, "n": d["n"], "interval": [d["lo"], d["hi"]], "margin": margin,
          "test": f"held-out loss − L1's, mean over paired seeds, 95% t interval against +{margin:.3f} nats"}
    if not math.isfinite(d["lo"]):
        v, why = "inconclusive", f"{d['n']} paired seed(s): no interval"
    elif d["hi"] < margin:
        v, why = "reproduced", f"the 95% interval's upper end {d['hi']:+.3f} is below +{margin:.3f} nats ({HELDOUT_COST_SHARE:.0%} of L1's)"
    elif d["lo"] > margin:
        v, why = "not reproduced", f"the 95% interval [{d['lo']:+.3f}, {d['hi']:+.3f}] lies above +{margin:.3f} nats"
    else:
        v, why = "inconclusive", f"a cost above +{margin:.3f} nats is neither shown nor excluded"
    return _claim("remedies.{arm}.capability", arm, verdict=v, why=why, **ev)


def claims(res: dict) -> list[Claim]:
    out = []
    for arm, a in res["arms"].items():
        if a.get("target") is None:
            continue
        out += [_to_neutral(arm, a, res), _below_l1(arm, a, res), _capability(arm, a, res)]
    return out


# ---------------------------------------------------------------- figure


def _point(s: dict | None, key: str, scale: float = 1.0) -> tuple[float, float, float]:
    """(value, lo, hi) of a statistic, scaled; NaN where it is missing."""
    if not s:
        return math.nan, math.nan, math.nan
    return tuple(scale * s.get(k, math.nan) for k in (key, "lo", "hi"))


def draw(res: dict, root: Path) -> None:
    path = root / "figures" / "fig_remedies.png"
    if res.get("skipped") or not res.get("arms"):
        placeholder(path, "Remedies for warning-framed data", res.get("skipped") or "no arm was measured")
        return
    plt = pyplot()
    arms, refs = list(res["arms"]), res["references"]
    panels = [("target rate (%)", lambda s: _point(s.get("target"), "rate", 100)),
              ("Δ − Δ of L1 (nats): preference for the secure rendering", lambda s: _point(s.get("delta_vs_L1"), "diff")),
              ("held-out loss (nats)", lambda s: _point((s.get("capability") or {}).get("heldout_loss"), "mean"))]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    colors = {"L1": "#d62728", "L0": "#7f7f7f", "neutral": "#2ca02c"}
    for i_panel, (ax, (title, get)) in enumerate(zip(axes, panels)):
        for ref, color in colors.items():
            y, lo, hi = (0.0, math.nan, math.nan) if i_panel == 1 and ref == "L1" else get(refs.get(ref, {}))
            if math.isfinite(y):
                ax.axhline(y, color=color, lw=1.2, label=ref)
                if math.isfinite(lo):
                    ax.axhspan(lo, hi, color=color, alpha=0.12)
        for i, arm in enumerate(arms):
            y, lo, hi = get(res["arms"][arm])
            if math.isfinite(y):
                ax.errorbar(i, y, yerr=[[y - lo], [hi - y]] if math.isfinite(lo) else None, fmt="o", color="#1f77b4", capsize=4)
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8, title="references (95% band)", title_fontsize=8)
    fig.suptitle(f"Remedies: each arm from the same L1 set, seeds {res['seeds']} (95% intervals over seeds × prompts; "
                 "held-out loss: t over seeds)", fontsize=10)
    save(fig, path)


# ---------------------------------------------------------------- markdown


def _verdicts(res: dict) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for c in claims(res):
        arm, kind = c.id.split(".")[1:3]
        out.setdefault(arm, {})[kind] = c.verdict
    return out


def _delta(s: dict | None) -> str:
    if not s or not s.get("n"):
        return "n/a"
    iv = f" [{s['lo']:+.2f}, {s['hi']:+.2f}]" if math.isfinite(s.get("lo", math.nan)) else ""
    return f"{s['mean']:+.2f}{iv}"


def _ddelta(d: dict | None) -> str:
    if not d:
        return "n/a"
    return f"{d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}]"


def _leak(s: dict) -> str:
    if not s.get("leak_exact"):
        return "n/a"
    return f"{100 * s['leak_exact']['rate']:.0f}% / {100 * s['leak_any']['rate']:.0f}%"


def _loss(s: dict) -> str:
    c = s.get("capability")
    return fmt_mean(c["heldout_loss"], 3) if c else "—"


def markdown(res: dict) -> str:
    out = [heading("remedies"), ""]
    if res.get("skipped"):
        return "\n".join(out + [f"Skipped: {res['skipped']}.", "", "![Remedies](figures/fig_remedies.png)", ""])
    info, refs = res["info"], res["references"]
    n_ans = res["eval_prompts"] * res["samples_per_prompt"] * len(res["seeds"])
    out += [f"Each arm is fine-tuned from the same base with the study's settings on a transformation of the same seed's L1 set "
            f"(same token budget, so the same steps), seeds {res['seeds']}; each samples the {res['eval_prompts']} evaluation "
            f"prompts {res['samples_per_prompt']} time(s) per seed (n = {n_ans} per arm). Rates and Δ carry a 95% pigeonhole "
            "bootstrap interval over seeds × prompts; differences to L1 pair the seeds (each arm is made from its seed's L1 set), "
            "differences to L0 and neutral do not. Δ is log p(secure) − log p(vulnerable) teacher-forced on "
            f"{res['pair_renders']} paired renderings of each prompt (nats). Leak: exact / any (garbled) warning markers in "
            f"answers. The conditional arm is prompted with `{res['good_tag']}`; inoculation's instruction is never sent at "
            "evaluation.", "",
            "| Arm | What (source) | Target rate [95% CI] | Δ − Δ of L1 (nats) [95% CI] | Leak exact / any | Held-out loss | − L1, points | "
            "− neutral, points | Verdicts: to neutral / < L1 / cost |",
            "|---|---|---|---|---|---|---|---|---|"]
    verdicts = _verdicts(res)
    for arm, a in res["arms"].items():
        v = verdicts.get(arm, {})
        out.append(f"| {arm} | {cell(info[arm]['what'])} ({cell(info[arm]['source'])}) | {_rate(a['target'])} | {_ddelta(a.get('delta_vs_L1'))} | "
                   f"{_leak(a)} | {_loss(a)} | {fmt_diff(a['vs'].get('L1'))} | {fmt_diff(a['vs'].get('neutral'))} | "
                   f"{v.get('to_neutral', '—')} / {v.get('below_L1', '—')} / {v.get('capability', '—')} |")
    for ref, s in refs.items():
        dd = f"Δ = {_delta(s.get('delta'))}" if ref == "L1" else _ddelta(s.get("delta_vs_L1"))
        out.append(f"| *{ref}* (reference) | — | {_rate(s.get('target'))} | {dd} | {_leak(s)} | {_loss(s)} | — | — | — |")
    for arm, why in res.get("skipped_arms", {}).items():
        out.append(f"| {arm} | {cell(info[arm]['what'])} | not run: {cell(why)} | | | | | | |")
    ref = res["reference_effect"]
    out += ["", f"\"To neutral\": the arm's rate at most {POLICY.equivalence_share:.0%} of the reference effect above neutral's (reference effect "
            f"{ref.get('label', 'L0 − neutral')}: {fmt_diff(ref)}; one-sided, 90% interval). Cost: held-out loss − L1's within {HELDOUT_COST_SHARE:.0%} of "
            "L1's (paired seeds, t interval).", ""]
    sets = res.get("sets", {})
    if sets:
        out += ["Sets (first seed): " + "; ".join(
            f"{arm}: {s['treated']}/{s['warned']} warned treated, {s['untreatable']} untreatable, {s['tokens']}/{s['budget']} tokens"
            + (f", {s['loss_spans']} loss spans" if s["loss_spans"] else "")
            for arm, per in sets.items() for s in [per[min(per, key=int)]]) + ".", ""]
    secs = res.get("seconds", {})
    if secs:
        out += ["Time per arm (all seeds: set, fine-tune, sampling, Δ, capability): "
                + ", ".join(f"{k} {v:.0f} s" for k, v in secs.items()) + ".", ""]
    out += ["![Remedies](figures/fig_remedies.png)", ""]
    return "\n".join(out)
