"""Faults and hostile inputs on whole commands: damaged artifacts are repaired by a rerun, a second
command on a run directory in use is refused, and a run directory received from someone else
cannot turn on remote code or choose a model to download."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from warnframe.cli import app

CLI = [sys.executable, "-m", "warnframe.cli"]


def _cli(args, cwd=None, timeout=600):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([*CLI, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def _same_config(study) -> list[str]:
    """The smoke study's config with only the behaviour section: stage keys do not depend on the
    list of sections, so every finished stage is found, and the rerun stays short."""
    assert "behavior" in study.cfg.sections
    return ["--preset", "smoke", "--set", "sections=[behavior]"]


def _copy(study, dest):
    shutil.copytree(study.store.root, dest, symlinks=True)  # copy2: times kept, so fingerprints hold
    return dest


# ---------------------------------------------------------------- damaged artifacts
def _tensors(path):
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        return {k: f.get_slice(k).get_shape() for k in f.keys()}  # noqa: SIM118 - safe_open is not iterable


def test_rerun_repairs_truncated_weights_and_metrics(smoke_study, tmp_path):
    run = _copy(smoke_study, tmp_path / "run")
    weights, metrics = run / "models" / "L1.s0" / "model.safetensors", run / "metrics" / "behavior.json"
    shapes, keys = _tensors(weights), set(json.loads(metrics.read_text()))
    for p in (weights, metrics):
        with p.open("r+b") as f:
            f.truncate(p.stat().st_size // 3)
    res = _cli(["run", *_same_config(smoke_study), "--out", str(run)])
    assert res.returncode == 0, res.stderr[-3000:]
    assert "redoing it" in res.stderr
    # Redone whole. (Bit for bit only where the fine-tune is deterministic: with precision "auto"
    # chosen by timing it can differ, and then every later stage is redone too.)
    assert _tensors(weights) == shapes and set(json.loads(metrics.read_text())) == keys
    marks = {p.name: p.read_text() for p in (run / "stages").glob("*.json")}
    again = _cli(["run", *_same_config(smoke_study), "--out", str(run)])
    assert again.returncode == 0 and "redoing" not in again.stderr, again.stderr[-3000:]
    assert {p.name: p.read_text() for p in (run / "stages").glob("*.json")} == marks  # nothing redone


def test_a_configured_condition_without_scores_is_an_error_not_a_missing_row(smoke_study, tmp_path):
    from warnframe.runtime.errors import UserError
    from warnframe.study import Study

    run = _copy(smoke_study, tmp_path / "run")
    (run / "scores" / "L2.jsonl").unlink()
    study = Study(smoke_study.cfg, run)
    with pytest.raises(UserError, match="no scores for configured condition 'L2'"):
        study.scored()
    with pytest.raises(UserError, match="warnframe score --condition L2"):
        study.outputs("L2")
    assert study.outputs("not-configured") == [] and {r["condition"] for r in study.scored(["L0"])} == {"L0"}


def test_damaged_metrics_of_an_unverifiable_stage_is_one_line(smoke_study, tmp_path):
    """A marker that recorded no outputs (a run from before they were recorded) cannot tell the
    damage; reading the file then fails with one line naming it, no traceback."""
    run = _copy(smoke_study, tmp_path / "run")
    metrics = run / "metrics" / "behavior.json"
    metrics.write_bytes(metrics.read_bytes()[:40])
    marker = run / "stages" / "analyse.behavior.json"
    legacy = json.loads(marker.read_text())
    legacy.pop("outputs", None)
    marker.write_text(json.dumps(legacy))
    res = _cli(["report", *_same_config(smoke_study), "--out", str(run)])
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("warnframe: error:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(errors) == 1 and "damaged JSON" in errors[0] and f"{metrics}:" in errors[0] and "rerun" in errors[0]


# ---------------------------------------------------------------- the run lock
def test_second_command_on_a_run_directory_in_use_is_refused(tmp_path):
    run = tmp_path / "run"
    script = (f"import time\nfrom warnframe.runtime.locks import run_lock\nwith run_lock({str(run)!r}):\n"
              "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        t0 = time.perf_counter()
        res = _cli(["data", "--preset", "smoke", "--out", str(run)])
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("warnframe: error:")]
        assert res.returncode == 2 and len(errors) == 1, res.stderr[-2000:]
        assert f"run directory {run} is in use by PID {holder.pid}" in errors[0] and "another --out" in errors[0]
        assert time.perf_counter() - t0 < 30 and not (run / "stages").exists()  # refused before any work
    finally:
        holder.kill()
        holder.wait()


# ---------------------------------------------------------------- trust: a hostile run directory
@pytest.fixture
def hostile_run(tmp_path):
    from warnframe.config import load_config

    run = tmp_path / "received"
    run.mkdir()
    cfg = load_config("smoke").model_dump(mode="json")
    cfg["model"]["trust_remote_code"] = True
    (run / "config.json").write_text(json.dumps(cfg))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "write a function that reads a file"}) + "\n")
    return run, prompts, cfg


def _capture(monkeypatch):
    """Replace the model-loading evaluation with a recorder of the config it would use."""
    seen = {}

    def fake(study, items, name, conds, seeds, **kw):
        seen.update(trust=study.cfg.model.trust_remote_code, source=study.cfg.model.source, conds=conds)
        return {"prompts": len(items), "conditions": {}}

    monkeypatch.setattr("warnframe.evals.eval_sets.evaluate", fake)
    monkeypatch.setattr("warnframe.lm.models.hf.load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    return seen


def test_evaluate_never_takes_trust_remote_code_from_the_run(hostile_run, monkeypatch):
    run, prompts, _ = hostile_run
    seen = _capture(monkeypatch)
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run)])
    assert res.exit_code == 0, res.output
    assert seen["trust"] is False and seen["source"] == "embedded"
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run), "--trust-remote-code"])
    assert res.exit_code == 0 and seen["trust"] is True  # the command line can turn it on


def test_evaluate_never_downloads_a_model_the_run_names(hostile_run, monkeypatch):
    run, prompts, cfg = hostile_run
    cfg["model"]["source"] = "evil-org/backdoor"
    (run / "config.json").write_text(json.dumps(cfg))
    seen = _capture(monkeypatch)
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run)])
    assert res.exit_code == 2 and not seen
    assert "evil-org/backdoor" in res.output and "--model" in res.output and len(res.output.strip().splitlines()) == 1
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run), "--model", "evil-org/backdoor"])
    assert res.exit_code == 0 and seen["source"] == "evil-org/backdoor" and seen["trust"] is False


def test_evaluate_never_follows_an_adapter_to_a_hub_model(hostile_run, monkeypatch):
    run, prompts, _ = hostile_run
    adapter = run / "models" / "L1.s0"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "evil-org/base"}))
    seen = _capture(monkeypatch)
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run), "--condition", "L1"])
    assert res.exit_code == 2 and not seen and "evil-org/base" in res.output and "adapter" in res.output
