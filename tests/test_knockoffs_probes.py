"""Knockoff selection of latents and linear probes, on synthetic data with a known answer."""

import json
import time

import numpy as np
import pytest
import torch

from warnframe.mech.knockoffs import candidate_latents, knockoff_select
from warnframe.mech.probes import LinearProbe, probe_report

TRUE = [1, 4, 12, 21, 34]  # signal columns among 40; column 0 is constant


def _signal_data(n=400, p=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    X[:, 0] = 2.0
    logit = 2.0 * X[:, TRUE] @ np.array([1, -1, 1, 1, -1])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


def test_knockoffs_find_the_signals():
    import knockpy.knockoff_filter  # noqa: F401  (import time is not the filter's time)

    X, y = _signal_data()
    start = time.perf_counter()
    res = knockoff_select(X, y, q=0.1, offset=0, seed=0)
    assert time.perf_counter() - start < 2
    assert (res["n"], res["p"], res["q"], res["offset"]) == (400, 40, 0.1, 0)
    assert res["dropped"] == [0] and res["W"][0] is None and len(res["W"]) == 40
    assert len(set(res["selected"]) & set(TRUE)) >= 4
    assert len(set(res["selected"]) - set(TRUE)) <= 2
    assert all(res["W"][j] >= res["threshold"] for j in res["selected"])
    assert knockoff_select(X, y, q=0.1, offset=0, seed=0)["selected"] == res["selected"]  # seeded


def test_knockoff_plus_selects_none_or_at_least_one_over_q():
    X, y = _signal_data(seed=1)
    res = knockoff_select(torch.from_numpy(X), torch.from_numpy(y), q=0.1, offset=1, seed=0)
    assert len(res["selected"]) == 0 or len(res["selected"]) >= 10
    assert (res["threshold"] is None) == (len(res["selected"]) == 0)
    json.dumps(res, allow_nan=False)  # plain JSON


def test_knockoffs_degenerate_inputs():
    X = np.ones((30, 4))
    res = knockoff_select(X, np.arange(30) % 2)
    assert res["selected"] == [] and res["dropped"] == [0, 1, 2, 3] and res["threshold"] is None
    with pytest.raises(ValueError):
        knockoff_select(np.zeros((5, 3)), np.zeros(4))


def test_candidate_latents():
    rng = np.random.default_rng(0)
    width = 30
    direct = np.zeros((20, width))
    warning = np.zeros((10, width))
    safe = rng.uniform(0, 50, size=(20, width))  # safe activations do not count
    direct[:, [3, 7, 11]] = [9.0, 5.0, 1.0]
    warning[:, [3, 7, 11, 20]] = [9.0, 5.0, 1.0, 30.0]
    picked = candidate_latents({"direct": direct, "warning": warning, "safe": safe}, k=3)
    assert picked.tolist() == [20, 3, 7]  # 20: mean 10 over the 30 target rows
    everything = candidate_latents({"direct": torch.from_numpy(direct), "warning": warning}, k=47)
    assert sorted(everything.tolist()) == [3, 7, 11, 20]  # only latents that fire
    with pytest.raises(KeyError):
        candidate_latents({"direct": direct}, k=3)


def _probe_data(n=300, d=16, seed=0):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, d)) * 0.5 + 3.0 * y[:, None] * u + 1.0
    return X, y, u


def test_probe_fit_predict_direction(tmp_path):
    X, y, u = _probe_data()
    probe = LinearProbe(C=1.0).fit(X, y)
    p = probe.predict_proba(X)
    assert p.shape == (len(y),) and p[y == 1].mean() > 0.9 and p[y == 0].mean() < 0.1
    for kind in ("probe", "mean_diff"):
        v = probe.direction(kind)
        assert np.linalg.norm(v) == pytest.approx(1.0) and v @ u > 0.9
    proj = probe.project(X)
    assert proj.shape == (len(y),) and proj[y == 1].mean() > proj[y == 0].mean() + 2

    rep = probe_report(probe, X, y)
    assert rep["auroc"] > 0.99 and rep["accuracy"] > 0.95 and rep["n"] == len(y)
    only_target = probe_report(probe, torch.from_numpy(X[y == 1]), y[y == 1])
    assert only_target["auroc"] is None and only_target["mean_confidence"] > 0.9
    assert only_target["mean_confidence_safe"] is None

    path = probe.save(tmp_path / "probe.safetensors")
    from safetensors.numpy import load_file

    assert set(load_file(str(path))) == set(LinearProbe.ARRAYS)
    again = LinearProbe.load(path)
    np.testing.assert_allclose(again.predict_proba(X), p)
    assert again.C == 1.0


def test_probe_needs_both_labels_and_a_fit():
    X, y, _ = _probe_data(n=20)
    with pytest.raises(ValueError):
        LinearProbe().fit(X, np.ones_like(y))
    with pytest.raises(RuntimeError):
        LinearProbe().predict_proba(X)
