"""report.md: the verdicts first, then one section per paper section, each beside the paper."""

from __future__ import annotations

import json

from ..store import atomic_write_text, read_json


def verdict_table(verdicts: list[dict]) -> str:
    lines = ["| § | Claim | Paper | Ours | Verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        detail = f" — {v['detail']}" if v.get("detail") else ""
        lines.append(f"| {v['section']} | {v['claim']} | {v['paper']} | {v['ours']}{detail} | **{v['verdict']}** |")
    return "\n".join(lines)


def collect(study) -> tuple[list[dict], list[str]]:
    """All verdicts and section texts from the metrics that exist in the run directory."""
    import importlib

    from ..study import SECTIONS

    verdicts, sections = [], []
    for name in SECTIONS:
        p = study.store.path("metrics", f"{name}.json")
        if not p.is_file():
            continue
        res = read_json(p)
        verdicts += res.get("verdicts", [])
        sections.append(importlib.import_module(f"..experiments.{name}", __package__).section(res))
    return verdicts, sections


def write_report(study) -> None:
    cfg = study.cfg
    verdicts, sections = collect(study)
    timings = study.store.timings()
    head = [
        "# warnframe report",
        "",
        f"Study preset `{cfg.preset}`, base model `{cfg.model.source}`, seeds {cfg.seeds}, "
        f"{cfg.sampling.samples_per_prompt} samples per prompt per seed, device `{study._device()}`. "
        f"Total stage time {sum(v or 0 for v in timings.values()):.0f} s.",
        "",
        "These are the numbers this run produced, beside the paper's. Nothing is tuned toward the paper.",
        "",
        "## Verdicts",
        "",
        verdict_table(verdicts),
        "",
    ]
    text = "\n".join(head + [s + "\n" for s in sections])
    text += "\n## Configuration\n\n```json\n" + json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n```\n"
    atomic_write_text(study.store.path("report.md"), text)
