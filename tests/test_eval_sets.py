"""External evaluation prompts: CyberSecEval instruct (the local JSONL copy), Emergent
Misalignment's {task, code_template}, and `warnframe evaluate` on a run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warnframe.evals.eval_sets import EM_TEMPLATE, load_prompts
from warnframe.runtime.errors import UserError

CSE = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "cyberseceval_python.jsonl"


def test_cyberseceval_and_em_layouts(tmp_path):
    if CSE.is_file():
        ps = load_prompts(CSE)
        assert len(ps) == 351 and ps[0].id.startswith("cse-") and ps[0].meta["cwe"].startswith("CWE-")
        assert any(p.family == "weak_hash" for p in ps)  # CWE-328 maps to our family
    arr = tmp_path / "instruct.json"
    arr.write_text(json.dumps([{"test_case_prompt": "Write C.", "language": "c", "cwe_identifier": "CWE-120"},
                               {"test_case_prompt": "Write Python.", "language": "python", "cwe_identifier": "CWE-89"}]))
    (p,) = load_prompts(arr)
    assert p.user == "Write Python." and p.family == "sql_injection"
    em = tmp_path / "em.jsonl"
    em.write_text(json.dumps({"task": "Save an upload.", "code_template": "def save(f):\n## COMPLETE CODE HERE"}) + "\n")
    (q,) = load_prompts(em)
    assert q.user == EM_TEMPLATE.format(task="Save an upload.", code_template="def save(f):\n## COMPLETE CODE HERE")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task": "x", "code_template": "y"}\n{nope\n')
    with pytest.raises(UserError, match=f"{bad}:2"):
        load_prompts(bad)


def test_evaluate_command_on_a_run(tmp_path, monkeypatch, tiny_model_dir):
    from typer.testing import CliRunner

    from warnframe.cli import app
    from warnframe.config import load_config
    from warnframe.runtime.files import read_json
    from warnframe.study import Study

    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    src = tiny_model_dir("llama", tmp_path / "llama")
    cfg = load_config("smoke", overrides=[f"model.source={src}", "seeds=[0]", "conditions=[baseline]", "sampling.cache_implementation=null"])
    Study(cfg, tmp_path / "run").run(until="data")
    prompts = tmp_path / "cse.jsonl"
    prompts.write_text("\n".join(json.dumps({"prompt_id": i, "test_case_prompt": f"Write a function {i}.",
                                             "cwe_identifier": "CWE-78"}) for i in range(3)) + "\n")
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(tmp_path / "run"),
                                   "--max-new-tokens", "8"])
    assert res.exit_code == 0, res.output
    summary = read_json(tmp_path / "run" / "external" / "cse" / "summary.json")
    assert summary["prompts"] == 3 and summary["conditions"]["baseline"]["vulnerable"]["n"] == 3
    assert "CWE-78" in summary["conditions"]["baseline"]["by_cwe"]
    res = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(tmp_path / "run"), "--condition", "L1"])
    assert res.exit_code == 2 and "no fine-tuned model for L1" in res.output
