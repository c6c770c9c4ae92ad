"""§7's typed metrics: ``to_json`` keeps the layout of metrics/interventions.json (keys and order),
``from_json`` reads it back to the same metrics, the section's seconds come from an explicit record
of its stages, and a section's ``Result`` takes typed metrics."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from warnframe.config import load_config
from warnframe.experiments import interventions as iv
from warnframe.experiments.capability_metrics import CapabilityTests
from warnframe.experiments.interventions_metrics import LEAD, SELECTED, Caft, Edits, InterventionMetrics, edit_name
from warnframe.sections import Result
from warnframe.stats.types import Diff, Fisher


def _rows(k: int, n: int, seeds: int = 3, prompts: int = 10) -> list[dict]:
    return [{"vulnerable": i * 7919 % n < k, "parse_ok": True, "leak": {"exact": [], "fuzzy": []}, "seed": i % seeds,
             "prompt_id": f"p{(i // seeds) % prompts}", "index": i // (seeds * prompts)} for i in range(n)]


def _cap(k: int, n: int, loss: float) -> list[dict]:
    rows = [{**r, "ok": r["vulnerable"]} for r in _rows(k, n)]
    return [{"rows": [r for r in rows if r["seed"] == s], "heldout": {"loss": loss + s / 100, "examples": 4}} for s in range(3)]


def _metrics() -> InterventionMetrics:
    prompts = iv.load_system_prompts(per_kind=1)
    edits = iv.edit_settings(load_config("smoke").interventions, [1, 2], 1)
    rows = {"none": _rows(60, 120), "caft": _rows(5, 120), "caft_random": _rows(55, 120)}
    rows |= {f"prompt.{p['id']}": _rows(50 + i, 120) for i, p in enumerate(prompts)}
    rows |= {e.name: _rows(62, 120) for e in edits}
    deltas = {name: {str(s): {f"p{p}": 0.1 * p - s for p in range(10)} for s in range(3)} for name in rows}
    res = iv.analyse(rows, prompts, edits, {"base": _cap(90, 120, 1.0), "L1": _cap(80, 120, 1.1), "caft": _cap(78, 120, 1.2)},
                     deltas=deltas)
    return replace(res, seeds=[0, 1, 2], samples_per_prompt=4, eval_prompts=10,
                   edits=Edits(site="blocks.1.hook_resid_post", selected_latents=[1, 2], lead_latent=1, sae="x", d_model=32),
                   caft=Caft(directions=2, rank=2, site="blocks.1.hook_resid_post", runs={"0": {"plain_L1": None}}),
                   reference_effect=Diff(0.3, 0.2, 0.4, 0.22, 0.38, 0.001, "test", label="L0 − neutral"), seconds={"reference": 1.0})


def test_to_json_keeps_the_layout_and_from_json_reads_it_back():
    res = _metrics()
    js = res.to_json()
    assert list(js) == ["settings", "kinds", "capability", "humaneval", "capability_tests", "reference_effect", "system_turn",
                        "model", "seeds", "samples_per_prompt", "eval_prompts", "edits", "caft", "seconds"]
    assert list(js["settings"]["prompt.safety_1"]) == [
        "group", "kind", "label", "system", "target", "leak_exact", "leak_any", "parse_fail", "target_parse_ok", "cluster",
        "vs_none", "vs_none_cluster", "vs_none_paired", "delta"]
    assert list(js["settings"]["none"])[:2] == ["group", "label"] and "vs_none" not in js["settings"]["none"]
    assert list(js["settings"]["caft"])[-2:] == ["vs_random_cluster", "vs_random_paired"]
    assert list(js["kinds"]["meta"])[0] == "prompts" and list(js["kinds"]["meta"])[-2:] == ["label", "paper"]
    assert set(js["capability_tests"]) == {"caft_vs_L1", "caft_vs_L1_cluster", "heldout_caft_vs_L1", "L1_vs_base"}
    assert js["caft"]["target"] == js["settings"]["caft"]["target"] and js["caft"]["vs_L1"] == js["settings"]["caft"]["vs_none"]
    assert list(js["reference_effect"])[0] == "label"
    text = json.dumps(js)
    back = InterventionMetrics.from_json({**json.loads(text), "verdicts": []})  # as the report reads it from disk
    assert json.dumps(back.to_json()) == text
    assert back.settings["latents.x0"].which == SELECTED and back.settings["lead.x0"].which == LEAD
    assert [s.name for s in back.settings_of("edit") if s.clamps_selected] == ["latents.x0"]


def test_edit_names_and_capability_test_keys():
    assert [edit_name(SELECTED, 0.0), edit_name(SELECTED, 0.5), edit_name(LEAD, 0.0)] == ["latents.x0", "latents.x0p5", "lead.x0"]
    t = CapabilityTests(caft=Fisher(1.0, 0.5), model_vs_base=Fisher(2.0, 0.01))
    # the bootstrap difference sits beside Fisher's test even when it could not be computed
    assert t.to_json("L1") == {"caft_vs_L1": {"odds_ratio": 1.0, "p": 0.5}, "caft_vs_L1_cluster": None,
                               "L1_vs_base": {"odds_ratio": 2.0, "p": 0.01}}
    assert CapabilityTests.from_json(t.to_json("L1"), "L1") == t
    assert t.p_values("L1") == [("caft vs L1", 0.5), ("L1 vs base", 0.01)]


def test_stage_log_sums_seconds_per_kind_of_work_in_report_order():
    log = iv.StageLog()
    for seed in (3, 1):
        log.part("Δ (teacher-forced)", "delta.none", seed)
        log.part("reference", "none", seed)
        log.add("CAFT fine-tune", seed, f"finetune.caft.s{seed}")
    log.part("capability", "capability.base", 3)
    timings = {"interventions.none.s3": 1.04, "interventions.none.s1": 1.04, "interventions.delta.none.s3": 2.0,
               "finetune.caft.s3": 10.0, "finetune.caft.s1": 20.0}
    assert log.seconds(timings) == {"reference": 2.0, "Δ (teacher-forced)": 2.0, "capability": 0.0, "CAFT fine-tune": 30.0}
    assert list(log.seconds(timings)) == ["reference", "Δ (teacher-forced)", "capability", "CAFT fine-tune"]
    with pytest.raises(ValueError, match="unknown kind"):
        log.part("sampling", "none", 0)


def test_a_result_records_typed_metrics_with_its_verdicts():
    from warnframe.report.sections import interventions as report

    res = _metrics()
    r = Result("interventions", res, report.claims(res))
    assert r.skipped is None and Result("x", {"skipped": "why"}).skipped == "why"
    rec = r.record()
    assert {k: v for k, v in rec.items() if k != "verdicts"} == res.to_json()
    assert [v["id"] for v in rec["verdicts"]][:1] == ["s7.kind_safety"]
