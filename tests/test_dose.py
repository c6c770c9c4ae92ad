"""The dose-response stage: arm sets at each fraction, reuse of the study's own models, claims at
every dose, and the stage end to end on the smoke preset."""

from __future__ import annotations

import json

import pytest

from warnframe.config import load_config
from warnframe.corpus.sources import build_finetune_set_from_source
from warnframe.experiments import dose
from warnframe.report.sections import dose as part


def _count(text: str) -> int:
    return len(text.split())


def test_arm_sets_hold_the_fraction_and_the_placement():
    cfg = load_config("smoke")
    for arm, f in (("L0", 0.1), ("L1", 0.4), ("L1_prompt", 0.4)):
        acfg = dose.arm_config(cfg, arm, f)
        assert cfg.corpus.condition_fraction != f or arm == "L1_prompt"  # the study's config is not changed
        examples, stats = build_finetune_set_from_source(dose.ARMS[arm][0], acfg, 0, _count)
        assert stats["condition_tokens"] == pytest.approx(f * cfg.corpus.token_budget, rel=0.25)
        warned = [e for e in examples if e.kind == "warning"]
        if arm == "L1_prompt":  # warning in the request, bare code in the answer
            assert warned and all("DO NOT USE" in e.user or "INSECURE" in e.user or "BAD PRACTICE" in e.user for e in warned)
        elif arm == "L1":
            assert warned and all("#" in e.assistant for e in warned)
        else:
            assert not warned


def test_the_study_model_is_reused_only_at_its_own_dose_and_placement():
    cfg = load_config("smoke")
    f = cfg.corpus.condition_fraction
    assert dose._is_study_model(cfg, "L0", f) and dose._is_study_model(cfg, "L1", f)
    assert not dose._is_study_model(cfg, "L1_prompt", f)
    assert not dose._is_study_model(cfg, "L0", f / 2)


def _diff(x, lo, hi, p):
    return {"diff": x, "lo": lo, "hi": hi, "lo90": lo + 0.2 * (hi - lo), "hi90": hi - 0.2 * (hi - lo), "p": p}


def _rate(r):
    return {"rate": r, "lo": r - 0.05, "hi": r + 0.05, "n": 400}


def test_claims_are_one_per_arm_and_dose_and_follow_the_equivalence_rule():
    m = {"seeds": [0, 1], "arms": ["L0", "L1"], "fractions": [0, 0.05, 0.4], "token_budget": 1000, "study_fraction": 0.05,
         "by_fraction": [
             {"fraction": 0, "rates": {"L0": _rate(0.05), "L1": _rate(0.05)}},
             # effect not established at the low dose: nothing to be equivalent about
             {"fraction": 0.05, "rates": {"L0": _rate(0.08), "L1": _rate(0.07)},
              "reference": _diff(0.03, -0.01, 0.07, 0.2), "vs_L0": {"L1": _diff(-0.01, -0.04, 0.02, 0.6)}},
             # a large effect, L1 within a third of it
             {"fraction": 0.4, "rates": {"L0": _rate(0.6), "L1": _rate(0.58)},
              "reference": _diff(0.55, 0.45, 0.65, 0.001), "vs_L0": {"L1": _diff(-0.02, -0.08, 0.04, 0.5)}},
         ]}
    cs = part.claims(m)
    assert [c.id for c in cs] == ["dose.l1_as_often_as_l0_0.05", "dose.l1_as_often_as_l0_0.4"]
    assert [c.verdict for c in cs] == ["inconclusive", "reproduced"]
    md = part.markdown(m)
    assert "L1 at 0.4" in md and "fig_dose_response.png" in md


def test_dose_stage_end_to_end_on_smoke(tmp_path, smoke_study):
    from warnframe.study import Study

    # smoke_study has pretrained the smoke base into the session's cache: this run reuses it
    cfg = load_config("smoke", overrides=["seeds=[0]", "conditions=[baseline, L0, L1, neutral]", "sections=[behavior, dose]",
                                          "dose.fractions=[0, 0.3]", "dose.conditions=[L0, L1]"])
    study = Study(cfg, tmp_path / "run")
    study.run()
    m = json.loads((tmp_path / "run" / "metrics" / "dose.json").read_text())
    assert [e["fraction"] for e in m["by_fraction"]] == [0, 0.3]
    assert (tmp_path / "run" / "figures" / "fig_dose_response.png").stat().st_size > 1000
    assert (tmp_path / "run" / "models" / "dose.L1.f0.3.s0" / "model.safetensors").is_file()
    top = m["by_fraction"][1]
    assert top["rates"]["L0"]["n"] == top["rates"]["L1"]["n"] == 42 * cfg.sampling.samples_per_prompt
    claims = json.loads((tmp_path / "run" / "metrics" / "claims.json").read_text())["claims"]
    assert any(c["id"] == "dose.l1_as_often_as_l0_0.3" for c in claims)
    # a rerun trains and samples nothing again
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "arms").iterdir()}
    Study(cfg, tmp_path / "run").run()
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run" / "arms").iterdir()} == before
