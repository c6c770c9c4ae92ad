"""Figure 6's and §8's typed metrics: ``to_json`` writes the layout of the metrics files key for key and
in order (``{"skipped": ...}`` forms included), ``from_json`` reads it back, and the report parts read
the typed object and its dict alike."""

import json

import numpy as np

from warnframe.experiments import detection, tracing
from warnframe.experiments.detection_metrics import DetectionMetrics, ModelSignal, Signal, Skipped
from warnframe.experiments.tracing_metrics import TracingMetrics
from warnframe.report.sections import detection as detection_report
from warnframe.report.sections import tracing as tracing_report
from warnframe.stats.rates import rate


def _same(a: dict, b: dict) -> bool:
    """Equal as written: the same keys in the same order and the same values (NaN included)."""
    return json.dumps(a) == json.dumps(b)


def _tracing_dict() -> dict:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        t, s = rng.normal(-5, 1), rng.normal(3, 1)
        rows.append({"prompt_id": f"p{i}", "safe": s, "target": t, "every_layer": s,
                     "patched": {"request": [t] * 3, "completion": [t, (t + s) / 2, s], "both": [s] * 3, "write": [t, s, t]}})
    summ = tracing.summarise(rows, 3, 100, 0, (0.25, 0.75))
    return {"traced": "L1", "safe_source": "control", "seed": 0, "selection": "test", "prompts_with_target": 6, "n_prompts": 6,
            "n_layers": 3, "renders": 1, "modes": list(tracing.MODES), **summ, "per_prompt": rows}


def test_tracing_round_trip_and_report_reads_both():
    d = _tracing_dict()
    m = TracingMetrics.from_json(d)
    assert _same(m.to_json(), d)
    assert m.ran.best("completion").layer == 2 and m.ran.middle_layers == [1]
    assert [c.record() for c in tracing_report.claims(m)] == [c.record() for c in tracing_report.claims(d)]
    assert tracing_report.markdown(m) == tracing_report.markdown(d)
    # the file keeps the verdicts beside the metrics; reading ignores them
    assert _same(TracingMetrics.from_json({**d, "verdicts": []}).to_json(), d)


def test_tracing_skipped():
    m = TracingMetrics(skipped="no L1 model (condition not run)")
    assert m.to_json() == {"skipped": "no L1 model (condition not run)"}
    assert TracingMetrics.from_json({**m.to_json(), "verdicts": []}) == m
    assert "Skipped" in tracing_report.markdown(m)


def _detection_dict(mech: bool) -> dict:
    g = np.random.default_rng(0)
    n = 40
    y = np.r_[np.ones(n // 2), np.zeros(n // 2)].astype(int)
    x = g.normal(size=n) + 1.5 * y
    b = np.c_[g.integers(0, 2, n) * y, g.integers(0, 2, n)]
    train = np.arange(n) % 2 == 0
    X = {"behavioural": b, **({"mechanistic": x[:, None], "combined": np.c_[b, x]} if mech else {})}
    results = detection.evaluate(X, y, train, 50, 0)
    if not mech:  # as ``run`` adds them: combined first
        results |= {"combined": {"skipped": "no §5 artifacts"}, "mechanistic": {"skipped": "no §5 artifacts"}}
    units = [{"condition": "L1" if k < 3 else "neutral", "seed": k, "label": int(k < 3), "n": 10, "leak": rate(5 if k < 3 else 0, 10),
              "target": rate(1, 10)} for k in range(7)]
    table = [{**u, "probe": None, "latents": None} if mech else u for u in units]
    signals = ["leak", "target"]
    return {"positive": "L1", "negatives": ["baseline", "neutral"], "drawn": {"positive": {"L1": 20}, "negative": {"baseline": 10, "neutral": 10}},
            "split": {"train": {"n": 20, "pos": 10}, "test": {"n": 20, "pos": 10}, "by": "prompt", "train_fraction": 0.5},
            "signals_raw": {"leak": {"pos": rate(8, 20), "neg": rate(0, 20)}, "target": {"pos": rate(3, 20), "neg": rate(1, 20)},
                            **({"mech": {"pos_mean": 1.5, "neg_mean": 0.1}} if mech else {})},
            "selected_latents": [0, 3] if mech else None, "mechanistic_skipped": None if mech else "no §5 artifacts",
            "results": results,
            "models": {"unit": "one model per condition and seed", "n_models": {"positive": 3, "negative": 4}, "signals": signals,
                       "mech_answers_per_model": 4 if mech else None, "models": table,
                       "results": detection.evaluate_models(units, signals, 50, 0)}}


def test_detection_round_trip_and_report_reads_both():
    for mech in (True, False):
        d = _detection_dict(mech)
        m = DetectionMetrics.from_json(d)
        assert _same(m.to_json(), d)
        assert isinstance(m.results["behavioural"], Signal) and isinstance(m.results["mechanistic"], Signal if mech else Skipped)
        assert m.models is not None and isinstance(m.models.results["leak"], ModelSignal)
        assert m.models.results["probe"] == Skipped("not measured (no §5 artifacts)")
        assert [c.record() for c in detection_report.claims(m)] == [c.record() for c in detection_report.claims(d)]
        assert detection_report.markdown(m) == detection_report.markdown(d)
    # an earlier run's file, without the per-model part
    old = {k: v for k, v in _detection_dict(True).items() if k != "models"}
    m = DetectionMetrics.from_json(old)
    assert m.models is None and _same(m.to_json(), old)
    assert "not computed" in detection_report.markdown(m) and detection_report.claims(m)[-1].verdict == "inconclusive"


def test_detection_skipped_keeps_what_was_drawn():
    d = {"skipped": "need generations of L1 and of a clean model", "drawn": {"positive": {"L1": 4}, "negative": {}}}
    m = DetectionMetrics.from_json({**d, "verdicts": []})
    assert m.skipped and _same(m.to_json(), d)
    assert "Skipped" in detection_report.markdown(m)
