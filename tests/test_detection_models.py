"""§8 per model: leave-one-model-out accuracy with exact intervals, AUC over models with its exact
permutation p value, the verdict rule, and the section on a hand-made run with two seeds."""

import math
import shutil

import numpy as np
import pytest

from warnframe import sections as registry
from warnframe.experiments import detection
from warnframe.report.sections import detection as detection_report
from warnframe.runtime.files import read_jsonl, write_jsonl
from warnframe.stats.rates import rate


def _unit(label: int, leaks: int, n: int = 20, target: int = 0) -> dict:
    return {"condition": "L1" if label else "neutral", "seed": 0, "label": label, "n": n,
            "leak": rate(leaks, n), "target": rate(target, n)}


def test_models_separated_by_leakage():
    units = [_unit(1, k) for k in (3, 5, 8)] + [_unit(0, 0) for _ in range(4)]
    res = detection.evaluate_models(units, ["leak", "target"], 200, 0)
    leak = res["leak"]
    assert leak["accuracy"]["k"] == 7 and leak["accuracy"]["n"] == 7
    assert leak["accuracy"]["lo"] == pytest.approx(0.025 ** (1 / 7), abs=1e-6)  # Clopper-Pearson at 7/7
    assert leak["auc"]["auc"] == 1.0 and leak["auc"]["p_exact"] == pytest.approx(1 / math.comb(7, 3))
    assert res["target"]["auc"]["auc"] == 0.5  # all zero: no information
    assert "accuracy" in res["combined"] and res["probe"] == {"skipped": "not measured (no §5 artifacts)"}


def test_leave_one_out_never_sees_the_model_it_classifies():
    x = np.array([0.0, 0.0, 0.0, 0.5, 0.6, 0.0])
    y = np.array([0, 0, 0, 1, 1, 1])  # the last positive looks clean: no other model can say otherwise
    assert detection.loo_predictions(x, y).tolist() == [0, 0, 0, 1, 1, 0]


def test_uninformative_signals_give_chance_auc_not_below():
    units = [_unit(1, 0) for _ in range(2)] + [_unit(0, 0) for _ in range(6)]
    res = detection.evaluate_models(units, ["leak", "target"], 100, 0)
    c = res["combined"]
    assert c["auc"]["auc"] == 0.5 and c["accuracy"]["k"] == 6 and c["majority"] == 0.75  # the majority class, no better
    assert detection_report._v_models(c["accuracy"], c["majority"])[0] == "inconclusive"


def test_too_few_models_is_skipped():
    res = detection.evaluate_models([_unit(1, 3)] + [_unit(0, 0)] * 3, ["leak"], 10, 0)
    assert all("skipped" in v and "more seeds" in v["skipped"] for v in res.values())


def test_paper_accuracy_needs_23_units_and_the_model_verdicts():
    assert detection_report.min_units(0.96) == 23  # 22/23 = 0.9565 is the smallest k/n that rounds to 0.96
    ok = detection.exact_rate(60, 60)
    assert detection_report._v_models(ok)[0] == "reproduced"
    assert detection_report._v_models(detection.exact_rate(8, 8))[0] == "inconclusive"  # [0.63, 1]: too few models
    assert detection_report._v_models(detection.exact_rate(70, 100))[0] == "differs"
    assert detection_report._v_models(detection.exact_rate(70, 100), 0.75)[0] == "not reproduced"  # no better than the majority
    assert detection_report._v_models(detection.exact_rate(5, 10))[0] == "not reproduced"


@pytest.fixture(scope="module")
def two_seeds(tmp_path_factory, stealth_run):
    """The stealth fixture with a second seed: each fine-tuned model copied, its answers repeated."""
    study = stealth_run(tmp_path_factory.mktemp("det2"))
    for c in study.cfg.conditions:
        if c != "baseline":
            shutil.copytree(study.model_path(c, 0), study.model_path(c, 1))
        for kind in ("samples", "scores"):
            path = study.store.path(kind, f"{c}.jsonl")
            rows = list(read_jsonl(path))
            write_jsonl(path, rows + [{**r, "seed": 1} for r in rows])
    return study


def test_section_per_model_on_two_seeds(two_seeds, monkeypatch, fake_artifacts):
    monkeypatch.setattr(detection, "artifacts", lambda s: (fake_artifacts(s), None))
    res = registry.run(two_seeds, "detection").record()
    M = res["models"]
    assert M["n_models"] == {"positive": 2, "negative": 6} and M["signals"] == ["leak", "target", "probe", "latents"]
    assert all(set(u) >= {"leak", "target", "probe", "latents"} for u in M["models"])
    assert M["results"]["leak"]["accuracy"]["rate"] == 1.0  # the fixture's L1 answers carry warnings, clean ones never
    row = next(v for v in res["verdicts"] if v["id"] == "s8.model_level_detects")
    assert row["n"] == 8 and row["verdict"] == "inconclusive" and "Clopper-Pearson" in row["test"]
    md = detection_report.markdown(res)
    assert "### Per model" in md and "| L1.s1 | positive |" in md and "most likely meant the per-answer level" in md
