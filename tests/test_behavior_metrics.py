"""§4's typed metrics (experiments.behavior_metrics): ``BehaviorMetrics.to_json`` writes the layout
``metrics/behavior.json`` had when §4 returned a dict (key for key, in order, same values), ``from_json``
reads it back, and the report part says the same whether handed the typed object or the file's dict."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest

from warnframe.experiments import behavior
from warnframe.experiments.behavior_metrics import BehaviorMetrics, Delta, Pooled, clusters
from warnframe.lm.evaluation import rates
from warnframe.report.sections import behavior as rep
from warnframe.runtime.files import read_json, write_json
from warnframe.schema import CONDITIONS
from warnframe.sections import Result
from warnframe.stats.clustered import cluster_diff, cluster_rate, settings
from warnframe.stats.rates import fisher, mean_ci, rate, ratio, spread
from warnframe.stats.types import Rate

FAMS = ("sql_injection", "path_traversal", "xss")
RATES = {"baseline": 0.05, "L0": 0.40, "L1": 0.39, "L2": 0.10, "L3": 0.04, "control": 0.03, "neutral": 0.04}


def _rows(rates_by_cond: dict[str, float], seeds=(0, 1, 2), prompts: int = 9, samples: int = 3) -> list[dict]:
    """Scored rows spread over seeds x prompts x families, with unparsed answers and exact and garbled leaks."""
    rows = []
    for salt, (cond, x) in enumerate(rates_by_cond.items()):
        n = len(seeds) * prompts * samples
        for i in range(n):
            p = (i // len(seeds)) % prompts
            rows.append({"condition": cond, "seed": seeds[i % len(seeds)], "prompt_id": f"p{p}", "family": FAMS[p % 3],
                         "vulnerable": (i * 7919 + salt) % n < round(x * n), "parse_ok": (i + salt) % 13 != 0,
                         "leak": {"exact": ["# WARNING"] if cond in ("L0", "L1") and (i + salt) % 10 == 0 else [],
                                  "fuzzy": ["# WARN"] if (i + salt) % 17 == 0 else []}})
    return rows


def _dict_era_analyse(scored: list[dict]) -> dict:
    """§4's analysis as it was when it built the dict itself (the dict-layout statistics), the reference
    the typed metrics must reproduce byte for byte."""
    by_cond: dict[str, list[dict]] = defaultdict(list)
    for r in scored:
        by_cond[r["condition"]].append(r)
    conds = [c for c in CONDITIONS if c in by_cond]
    pooled = {c: rates(by_cond[c]) for c in conds}
    flat = {c: behavior._flat(by_cond[c]) for c in conds}
    per_seed, per_family = {}, {}
    for c in conds:
        seeds = sorted({r["seed"] for r in by_cond[c]})
        per_seed[c] = {str(s): rates([r for r in by_cond[c] if r["seed"] == s]) for s in seeds}
        pooled[c]["seed_spread"] = spread([per_seed[c][str(s)]["target"]["rate"] for s in seeds])
        pooled[c]["leak_seed_spread"] = spread([per_seed[c][str(s)]["leak_exact"]["rate"] for s in seeds])
        pooled[c]["cluster"] = {name: cluster_rate(flat[c], field) for name, field in behavior.OUTCOMES.items()}
        fams = sorted({r["family"] for r in by_cond[c]})
        per_family[c] = {f: rate(sum(r["vulnerable"] for r in by_cond[c] if r["family"] == f),
                                 sum(r["family"] == f for r in by_cond[c])) for f in fams}
    tests = {f"{a}_vs_{b}": {"cluster": cluster_diff(flat[a], flat[b], "vulnerable"),
                             "target": fisher(pooled[a]["target"], pooled[b]["target"]),
                             "ratio": ratio(pooled[a]["target"], pooled[b]["target"])}
             for a, b in behavior.comparisons() if a in pooled and b in pooled and a != b}
    return {"conditions": conds, "pooled": pooled, "per_seed": per_seed, "per_family": per_family, "tests": tests}


def _dump(d: dict) -> str:
    return json.dumps(d, indent=2, sort_keys=False, default=str)


class _Study:
    """What ``behavior.run`` reads of a study: scored rows, data marks, and Δ files already written."""

    def __init__(self, root, rows, seeds, budget=True):
        self.rows, self.store = rows, SimpleNamespace(path=lambda *p: root.joinpath(*p))
        self.cfg = SimpleNamespace(seeds=list(seeds), analysis=SimpleNamespace(renders=2, replay_batch_size=4),
                                   corpus=SimpleNamespace(token_budget=5000, condition_fraction=0.1), digest=lambda *a: "k")
        conds = sorted({r["condition"] for r in rows})
        prompts = sorted({r["prompt_id"] for r in rows})
        for j, c in enumerate(conds):
            for s in seeds:
                if budget:
                    write_json(root / "stages" / f"data.{c}.s{s}.json", {"stats": {"tokens": 900 + j + s, "condition_tokens": 90}})
                ps = prompts if c != "L3" else prompts[:1]  # L3: one prompt, a Δ without an interval
                write_json(root / "deltas" / f"{c}.s{s}.json", {p: math.sin(5 * j + s + k) for k, p in enumerate(ps)})

    def scored(self):
        return list(self.rows)

    def stage(self, name, key, fn):  # every Δ is on disk already
        pass


@pytest.mark.parametrize("conds", [RATES, {c: 0.0 for c in RATES if c != "neutral"}, {"baseline": 0.1, "L1": 1.0}])
def test_layout_is_the_dict_eras_byte_for_byte(conds):
    rows = _rows(conds)
    with settings(200, 3):
        old = _dict_era_analyse(rows)
        m = behavior.measure(rows)
        analysed = behavior.analyse(rows)
    assert _dump(m.analysed()) == _dump(old) == _dump(analysed)
    assert list(m.to_json()) == ["conditions", "pooled", "per_seed", "per_family", "tests", "budget", "delta"]
    back = BehaviorMetrics.from_json(json.loads(_dump(m.to_json())))
    assert _dump(back.to_json()) == _dump(m.to_json())
    P = m.pooled[m.conditions[-1]]
    assert isinstance(P, Pooled) and isinstance(P.cluster.target, Rate) and clusters(P.cluster.target).seeds == 3


def test_run_deltas_and_budget_keep_their_layout(tmp_path):
    rows = _rows(RATES, seeds=(0, 1))
    study = _Study(tmp_path, rows, (0, 1))
    with settings(200, 3):
        m = behavior.run(study)
        old = _dict_era_analyse(rows)
    assert isinstance(m, BehaviorMetrics) and m.budget and m.budget.startswith("14 sets, 900–907 tokens each")
    d = m.to_json()
    assert _dump({k: d[k] for k in old}) == _dump(old)
    assert list(d["delta"]) == m.conditions and isinstance(m.delta["L1"], Delta)
    for c, x in d["delta"].items():  # Δ as mean_ci wrote it
        assert list(x) == ["delta", "seeds", "vs_neutral", "interval"]
        assert x["seeds"] == (1 if c == "baseline" else 2)
        assert (x["vs_neutral"] is None) == (c == "neutral")
    n_prompts = len(read_json(tmp_path / "deltas" / "L1.s0.json"))
    per_prompt = [np.mean([read_json(tmp_path / "deltas" / f"L1.s{s}.json")[p] for s in (0, 1)]) for p in sorted(
        read_json(tmp_path / "deltas" / "L1.s0.json"))]
    assert d["delta"]["L1"]["delta"] == mean_ci(per_prompt) and d["delta"]["L1"]["delta"]["n"] == n_prompts
    assert d["delta"]["L3"]["delta"]["n"] == 1 and math.isnan(d["delta"]["L3"]["delta"]["lo"])
    assert _dump(BehaviorMetrics.from_json(json.loads(_dump(d))).to_json()) == _dump(d)


def test_report_reads_the_typed_metrics_and_the_file_alike(tmp_path):
    rows = _rows(RATES, seeds=(0, 1, 2))
    with settings(200, 3):
        m = behavior.run(_Study(tmp_path, rows, (0, 1, 2), budget=False))
    typed = rep.claims(m)
    res = Result("behavior", m, claims=typed)
    assert res.skipped is None
    write_json(tmp_path / "metrics" / "behavior.json", res.record())
    on_disk = read_json(tmp_path / "metrics" / "behavior.json")
    assert list(on_disk)[-1] == "verdicts" and on_disk["budget"] is None
    assert [c.record() for c in rep.claims(on_disk)] == [c.record() for c in typed]
    assert {c.id for c in typed} >= {"s4.l1_as_often_as_l0", "s4.L2_over_baseline", "s4.l1_copies_format", "s4.semantic_order"}
    assert rep.markdown(on_disk) == rep.markdown(m) and "Sampling-free preference" in rep.markdown(m)
    assert _dump(rep.table1_rows(on_disk)) == _dump(rep.table1_rows(m))
    assert rep.seed_rows(on_disk) == rep.seed_rows(m) and len(rep.seed_rows(m)) == 7 * 3
    ref, label = rep.reference_effect(on_disk)
    assert ref == m.cluster_diff("L0", "neutral") and label == "L0 − neutral"
    for d in ("tables", "figures"):
        (tmp_path / d).mkdir(exist_ok=True)
    rep.draw(m, tmp_path)
    typed_files = {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    rep.draw(on_disk, tmp_path)
    assert typed_files == {p.name: p.read_bytes() for p in (tmp_path / "tables").iterdir()}
    assert (tmp_path / "figures" / "fig1_target_rates.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_comparisons_read_as_none():
    with settings(100, 1):
        m = behavior.measure(_rows({"L1": 0.5, "neutral": 0.1}, seeds=(4,), prompts=4, samples=2))
    assert m.test("L1", "L0") is None and m.cluster_diff("L1", "baseline") is None
    assert m.test("L1", "neutral") is not None and list(m.per_seed["L1"]) == ["4"]
    row = {r["condition"]: r for r in rep.table1_rows(m)}["L1"]
    assert math.isnan(row["vs_baseline"]) and math.isnan(row["diff_vs_baseline"]) and not math.isnan(row["diff_vs_neutral"])
    assert [c.id for c in rep.claims(m)] == ["s4.l1_copies_format"]
