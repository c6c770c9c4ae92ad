"""The smoke study end to end: artifacts, resume, and the held-out guarantee on real outputs."""

import json

from warnframe.runtime import keys
from warnframe.runtime.files import read_json, read_jsonl
from warnframe.schema import CONDITIONS


def test_every_artifact_of_the_behavioural_study(smoke_study):
    root = smoke_study.store.root
    for cond in CONDITIONS:
        rows = list(read_jsonl(root / "samples" / f"{cond}.jsonl"))
        assert rows and all(r["condition"] == cond for r in rows)
        assert all(len(r["entropy"]) == r["n_tokens"] for r in rows)
        scored = list(read_jsonl(root / "scores" / f"{cond}.jsonl"))
        assert len(scored) == len(rows) and {"vulnerable", "findings", "parse_ok", "leak"} <= set(scored[0])
    for f in ("manifest.json", "metrics/behavior.json", "tables/table1.csv", "tables/table1.md",
              "figures/fig1_target_rates.png", "report.md", "models/base/config.json"):
        assert (root / f).is_file(), f
    b = read_json(root / "metrics" / "behavior.json")
    n = b["pooled"]["L1"]["target"]["n"]
    assert n == len(list(read_jsonl(root / "samples" / "L1.jsonl")))
    assert "L1_vs_L0" in b["tests"] and "L2_vs_neutral" in b["tests"]
    # Seeds are the unit: cluster-aware rates and differences, per-seed rows in the tables.
    seeds = smoke_study.cfg.seeds
    assert len(seeds) >= 2 and b["pooled"]["L1"]["cluster"]["target"]["seeds"] == len(seeds)
    assert {"lo", "hi", "design_effect", "effective_n"} <= set(b["pooled"]["L1"]["cluster"]["leak_exact"])
    assert {"diff", "lo", "hi", "lo90", "hi90", "p"} <= set(b["tests"]["L1_vs_L0"]["cluster"])
    header = (root / "tables" / "table1.csv").read_text().splitlines()[0].split(",")
    assert {"target_lo", "p_vs_baseline", "target_cluster_lo", "design_effect", "effective_n", "seed_min", "p_cluster_vs_neutral"} <= set(header)
    per_seed = (root / "tables" / "table1_seeds.csv").read_text().splitlines()
    assert len(per_seed) == 1 + len(b["conditions"]) * len(seeds)
    assert (root / "tables" / "table1_seeds.md").is_file()
    man = read_json(root / "manifest.json")
    assert man["seeds"] == smoke_study.cfg.seeds and "torch" in man["versions"] and man["stage_seconds"]
    report = (root / "report.md").read_text()
    assert "Table 1" in report or "§4" in report
    assert "76.7%" in report  # the paper's L1 rate is shown beside ours


def test_rerun_redoes_nothing(smoke_study):
    marks = {p.name: p.read_text() for p in smoke_study.store.path("stages").glob("*.json")}
    smoke_study.run()
    after = {p.name: p.read_text() for p in smoke_study.store.path("stages").glob("*.json")}
    assert after == marks


def test_killed_stage_is_redone_and_only_it(smoke_study, tmp_path):
    store = smoke_study.store
    marker = store.path("stages", "sample.L2.s0.json")
    before = {p.name: p.read_text() for p in store.path("stages").glob("*.json") if p.name != marker.name}
    marker.unlink()  # as if the run had been killed before this stage finished
    smoke_study.run(until="sample")
    assert marker.is_file()
    after = {p.name: p.read_text() for p in store.path("stages").glob("*.json") if p.name != marker.name}
    assert after == before


def test_samples_answer_held_out_prompts(smoke_study):
    prompts = {r["id"]: r for r in read_jsonl(smoke_study.store.path("data", "eval_prompts.jsonl"))}
    names = {p["function"] for p in prompts.values()}
    for path in smoke_study.store.path("data").glob("*.s*.jsonl"):
        text = path.read_text()
        assert not any(f"{n}(" in text for n in names), path
    rows = list(read_jsonl(smoke_study.store.path("samples", "L0.jsonl")))
    assert {r["prompt_id"] for r in rows} == set(prompts)
    json.dumps(rows[0])


def test_merge_takes_configured_seeds_and_scores_follow_the_parts(smoke_study):
    store = smoke_study.store
    part = store.path("samples", "parts", "L0.s0.jsonl")
    stray = store.path("samples", "parts", "L0.s9.jsonl")  # a seed no longer in the config
    stray.write_text(part.read_text().replace('"seed": 0', '"seed": 9'))
    try:
        before = keys.fingerprint(smoke_study._parts("L0"))
        smoke_study._merge("L0")
        assert {r["seed"] for r in read_jsonl(store.path("samples", "L0.jsonl"))} == set(smoke_study.cfg.seeds)  # not 9
        same = keys.fingerprint(smoke_study._parts("L0"))
        part.write_text(part.read_text())  # rewritten with the same bytes (a copy, a touch): same key
        assert keys.fingerprint(smoke_study._parts("L0")) == same
        stray.unlink()
        assert keys.fingerprint(smoke_study._parts("L0")) == before  # the stray seed was never in the key
        stray.write_text(part.read_text().replace('"seed": 0', '"seed": 9'))
        lines = part.read_text().splitlines(keepends=True)
        part.write_text("".join(lines[:-1]))  # a part with other content (a resumed or grid job): new key
        try:
            assert keys.fingerprint(smoke_study._parts("L0")) != before
        finally:
            part.write_text("".join(lines))
    finally:
        stray.unlink()
        smoke_study._merge("L0")


def test_the_smoke_study_measures_something(smoke_study):
    """A pipeline that runs but measures nothing (a broken label mask, a wrong hook, an empty
    context) fails here: L0's training shows in its answers, §5 has all its contexts, §7 edits."""
    root = smoke_study.store.root
    b = read_json(root / "metrics" / "behavior.json")
    # L0's fine-tune moved its models' preference between the paired renderings away from the clean
    # fine-tune's (a broken label mask leaves both at the base model's). A smoke model is too small to
    # write the target itself, and its Δ moves toward secure (the longer rendering of the trained family).
    d = b["delta"]["L0"]["vs_neutral"]
    assert d["lo"] > 0 or d["hi"] < 0, d
    ent = read_json(root / "metrics" / "entanglement.json")
    assert not ent.get("skipped"), ent.get("skipped")
    assert min(ent["counts"].values()) >= 2 and ent["selected_latents"] and set(ent["context_source"]) == {"direct", "warning", "safe"}
    iv = read_json(root / "metrics" / "interventions.json")
    assert not iv["edits"].get("skipped") and not iv["caft"].get("skipped")
    assert all(not read_json(root / "metrics" / f"{s}.json").get("skipped") for s in smoke_study.cfg.sections)
