"""§8: thresholds and weights come from the training split only, the prompt split is clean,
intervals are there, and the section runs on a hand-made run directory."""

import math

import numpy as np
import pytest

from warnframe import sections as registry
from warnframe.experiments import detection
from warnframe.report.sections import detection as detection_report
from warnframe.runtime.files import read_json, write_json


def test_best_threshold_maximises_training_accuracy():
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 0, 1, 1, 1])
    t = detection.best_threshold(s, y)
    assert 0.3 < t < 0.7 and ((s > t).astype(int) == y).all()
    t0 = detection.best_threshold(np.zeros(4), np.array([0, 1, 0, 1]))  # constant scores: accuracy 50% either way
    assert math.isfinite(t0)


def test_thresholds_and_weights_use_the_training_split_only():
    g = np.random.default_rng(0)
    n = 200
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    x = g.normal(size=n) + 1.5 * y
    b = np.c_[g.integers(0, 2, n) * y, g.integers(0, 2, n)]
    train = np.arange(n) % 2 == 0
    X = {"behavioural": b, "mechanistic": x[:, None], "combined": np.c_[b, x]}
    r1 = detection.evaluate(X, y, train, 100, 0)
    # wreck the test rows: nothing fitted may move
    x2, b2 = x.copy(), b.copy()
    x2[~train] = g.normal(size=(~train).sum()) * 10
    b2[~train] = 1 - b2[~train]
    r2 = detection.evaluate({"behavioural": b2, "mechanistic": x2[:, None], "combined": np.c_[b2, x2]}, y, train, 100, 0)
    for k in X:
        assert r1[k]["threshold"] == r2[k]["threshold"]
        assert r1[k]["score"] == r2[k]["score"]  # same coefficients
        assert r1[k]["train_accuracy"] == r2[k]["train_accuracy"]
        assert r1[k]["accuracy"]["n"] == (~train).sum()
    m = r1["mechanistic"]
    assert m["auc"]["lo"] <= m["auc"]["auc"] <= m["auc"]["hi"] and m["auc"]["auc"] > 0.75
    assert m["accuracy"]["lo"] <= m["accuracy"]["rate"] <= m["accuracy"]["hi"]


def test_one_class_training_split_is_skipped_not_a_crash():
    y = np.array([1, 1, 0, 0])
    train = np.array([True, True, False, False])
    r = detection.evaluate({"mechanistic": np.array([[1.0], [2.0], [0.0], [0.5]])}, y, train, 10, 0)
    assert "skipped" in r["mechanistic"]


def test_auc_ci_perfect_and_undefined():
    y = np.array([0, 0, 1, 1])
    a = detection.auc_ci(y, np.array([0.1, 0.2, 0.8, 0.9]), 100, 0)
    assert a["auc"] == 1.0 and a["lo"] == 1.0
    assert math.isnan(detection.auc_ci(np.array([1, 1]), np.array([0.1, 0.2]), 10, 0)["auc"])


@pytest.fixture(scope="module")
def study(tmp_path_factory, stealth_run):
    return stealth_run(tmp_path_factory.mktemp("det"))


def test_split_by_prompt_never_shares_a_prompt(study):
    rows, drawn = detection.pick_samples(study)
    assert drawn["positive"]["L1"] == 24 and sum(drawn["negative"].values()) == 24
    assert set(drawn["negative"]) == {"baseline", "neutral", "control"} and max(drawn["negative"].values()) - min(drawn["negative"].values()) <= 1
    train = detection.split_by_prompt(rows, 0.5, 0)
    tr = {r["prompt_id"] for r, t in zip(rows, train) if t}
    te = {r["prompt_id"] for r, t in zip(rows, train) if not t}
    assert tr and te and not tr & te


def test_run_on_fixture(study, monkeypatch, fake_artifacts):
    monkeypatch.setattr(detection, "artifacts", lambda s: (fake_artifacts(s), None))
    res = registry.run(study, "detection").record()
    write_json(study.store.path("metrics", "detection.json"), res)
    res = read_json(study.store.path("metrics", "detection.json"))
    for k in detection.SIGNALS:
        s = res["results"][k]
        assert s["accuracy"]["n"] == res["split"]["test"]["n"] and "auc" in s
    # L1 generations carry warnings in the fixture, clean ones never
    assert res["signals_raw"]["leak"]["neg"]["k"] == 0 and res["signals_raw"]["leak"]["pos"]["k"] > 0
    assert {v["section"] for v in res["verdicts"]} == {"8"} and len(res["verdicts"]) == 4
    assert study.store.path("figures", "fig7_detection.png").stat().st_size > 10_000
    assert "| combined |" in detection_report.markdown(res)


def test_run_without_mechanistic_signal(study, monkeypatch):
    monkeypatch.setattr(detection, "artifacts", lambda s: (None, "no §5 artifacts (test)"))
    res = registry.run(study, "detection").record()
    assert "accuracy" in res["results"]["behavioural"]
    assert res["results"]["mechanistic"] == {"skipped": "no §5 artifacts (test)"}
    assert [v["verdict"] for v in res["verdicts"]].count("inconclusive") == 3  # mechanistic, combined; one model per class
    assert "not measured" in detection_report.markdown(res)
    monkeypatch.setattr(study.cfg.detection, "negatives", ["L3"])  # not run: no negatives
    res = registry.run(study, "detection").record()
    assert res["skipped"] and "Skipped" in detection_report.markdown(res)
