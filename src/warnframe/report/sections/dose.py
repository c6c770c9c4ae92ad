"""The dose-response stage's report part: "L1 ≈ L0" at each dose, figures/fig_dose_response.png."""

from __future__ import annotations

import math
from pathlib import Path

from warnframe.report.claims import BOOTSTRAP, Claim, claim, diff_interval, equivalence, equivalence_margin, fmt_diff
from warnframe.report.figures import placeholder, pyplot, save
from warnframe.report.render import heading, skipped

_ARM_CLAIM = {"L1": "dose.l1_as_often_as_l0_{fraction}", "L1_prompt": "dose.l1_prompt_as_often_as_l0_{fraction}"}
_LABEL = {"L0": "L0 (direct)", "L1": "L1 (warning in the answer)", "L1_prompt": "L1 (warning in the request)"}


def claims(m: dict) -> list[Claim]:
    out = []
    for e in m["by_fraction"]:
        if e["fraction"] == 0 or "vs_L0" not in e:
            continue
        ref = e["reference"]
        for arm, d in e["vs_L0"].items():
            if arm not in _ARM_CLAIM:
                continue
            verdict, why = equivalence(d, ref, f"L0 − neutral at {e['fraction']:g}")
            r, r0 = e["rates"][arm], e["rates"]["L0"]
            out.append(claim(_ARM_CLAIM[arm], fraction=f"{e['fraction']:g}", verdict=verdict, why=why,
                             ours=f"{100 * r['rate']:.1f}% vs {100 * r0['rate']:.1f}%: {fmt_diff(d)}",
                             n=[r["n"], r0["n"]], interval=diff_interval(d), test=f"TOST, {BOOTSTRAP}",
                             margin=equivalence_margin(ref)))
    return out


def draw(m: dict, root: Path) -> None:
    path = Path(root) / "figures" / "fig_dose_response.png"
    if m.get("skipped"):
        placeholder(path, "Dose-response", m["skipped"])
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [e["fraction"] for e in m["by_fraction"]]
    for i, arm in enumerate(m["arms"]):
        r = [e["rates"][arm] for e in m["by_fraction"]]
        y = [100 * x["rate"] for x in r]
        err = [[100 * (x["rate"] - x["lo"]) for x in r], [100 * (x["hi"] - x["rate"]) for x in r]]
        ax.errorbar([x * (1 + 0.03 * (i - 1)) if x else x for x in xs], y, yerr=err, marker="o", capsize=3,
                    label=_LABEL.get(arm, arm))
    ax.set_xscale("symlog", linthresh=0.02)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{x:g}" for x in xs])
    ax.set_xlabel("condition fraction of the fine-tuning tokens (0 = clean fine-tune, neutral)")
    ax.set_ylabel("target content rate (%)")
    ax.set_title(f"Dose-response ({len(m['seeds'])} seeds per point; 95% intervals over seeds x prompts)")
    ax.axvline(m["study_fraction"], color="grey", ls=":", lw=1)
    ax.legend(fontsize=8)
    save(fig, path)


def _cell(r: dict) -> str:
    return f"{100 * r['rate']:.1f}% [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]" if math.isfinite(r["rate"]) else "n/a"


def markdown(m: dict) -> str:
    if m.get("skipped"):
        return skipped("dose", m["skipped"])
    arms = m["arms"]
    lines = [heading("dose"), "",
             f"Each point: {len(m['seeds'])} seeds (one fine-tune each from the same base, token budget "
             f"{m['token_budget']:,}), every eval prompt; rates with 95% intervals over seeds × prompts. Fraction 0 is "
             f"the clean fine-tune (neutral); the study's own dose is {m['study_fraction']:g}. The equivalence margin "
             "at each dose is a third of L0 − neutral there.", "",
             "![Dose-response](figures/fig_dose_response.png)", "",
             "| fraction | " + " | ".join(_LABEL.get(a, a) for a in arms) + " | L0 − neutral | "
             + " | ".join(f"{a} − L0" for a in arms if a != "L0") + " |",
             "|---:|" + "---|" * (len(arms) + 1 + sum(a != "L0" for a in arms))]
    for e in m["by_fraction"]:
        diffs = [fmt_diff(e.get("vs_L0", {}).get(a)) if e["fraction"] else "—" for a in arms if a != "L0"]
        ref = fmt_diff(e.get("reference")) if e["fraction"] else "—"
        lines.append(f"| {e['fraction']:g} | " + " | ".join(_cell(e["rates"][a]) for a in arms) + f" | {ref} | "
                     + " | ".join(diffs) + " |")
    verdicts: dict[str, list[str]] = {"reproduced": [], "not reproduced": [], "inconclusive": []}
    for e in m["by_fraction"]:
        for arm, d in e.get("vs_L0", {}).items() if e["fraction"] else ():
            verdicts[equivalence(d, e["reference"])[0]].append(f"{arm} at {e['fraction']:g}")
    lines += ["", f"\"L1 ≈ L0\" (TOST) holds for {', '.join(verdicts['reproduced']) or 'no arm at any dose'}; "
              f"it breaks (a significant difference outside the margin) for {', '.join(verdicts['not reproduced']) or 'none'}; "
              f"undecided for {', '.join(verdicts['inconclusive']) or 'none'}."]
    return "\n".join(lines)
