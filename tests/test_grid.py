"""The condition × seed grid as submitit jobs (local executor): phases, one run directory, and
samples of every seed merged once by the gather job."""

from __future__ import annotations


def test_plan_phases():
    from warnframe.config import load_config
    from warnframe.grid import plan

    cfg = load_config("smoke", overrides=["conditions=[baseline, L1]", "seeds=[0, 1]"])
    phases = dict(plan(cfg, "report"))
    assert phases["prepare"] == [("data", None, None)]
    assert phases["finetune"] == [("finetune", ["L1"], [0]), ("finetune", ["L1"], [1])]
    assert len(phases["sample"]) == 4 and phases["gather"] == [("report", ["baseline", "L1"], [0, 1])]
    assert [p for p, _ in plan(cfg, "data")] == ["prepare"]


def test_grid_with_submitit_local_executor(tmp_path, monkeypatch, tiny_model_dir):
    from warnframe.config import load_config
    from warnframe.grid import run_grid
    from warnframe.runtime.files import read_json, read_jsonl

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    src = tiny_model_dir("llama", tmp_path / "llama")
    cfg = load_config("smoke", overrides=[
        f"model.source={src}", "conditions=[L1]", "seeds=[0, 1]", "corpus.families=[sql_injection]",
        "corpus.token_budget=800", "sampling.samples_per_prompt=1", "sampling.max_new_tokens=8",
        "sampling.cache_implementation=null", "finetune.method=full"])
    out = run_grid(cfg, tmp_path / "run", executor="local", until="score", log=lambda *_: None)
    jobs = read_json(out / "grid" / "jobs.json")
    assert [p["phase"] for p in jobs["phases"]] == ["prepare", "finetune", "sample", "gather"]
    assert (out / "models" / "L1.s0" / "config.json").is_file() and (out / "models" / "L1.s1").is_dir()
    scores = list(read_jsonl(out / "scores" / "L1.jsonl"))
    assert sorted({r["seed"] for r in scores}) == [0, 1]  # both seeds' samples merged, then scored once
    assert (out / "stages" / "sample.L1.s1.json").is_file()
