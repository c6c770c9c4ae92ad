import json
import subprocess
import sys

import pytest

from warnframe.config import load_config
from warnframe.runtime.errors import UserError


def test_presets_and_overrides():
    cfg = load_config("smoke", overrides=["finetune.lr=1e-4", "seeds=[3, 4]", "corpus.l1_placement=prompt"])
    assert cfg.finetune.lr == 1e-4 and cfg.seeds == [3, 4] and cfg.corpus.l1_placement == "prompt"
    assert cfg.digest("finetune") != load_config("smoke").digest("finetune")
    assert cfg.digest("model") == load_config("smoke").digest("model")


@pytest.mark.parametrize("overrides,needle", [
    (["corpus.condition_fraction=1.5"], "corpus.condition_fraction"),
    (["conditions=[L0, L9]"], "L9"),
    (["finetune.nope=1"], "finetune.nope"),
    (["noequals"], "key=value"),
])
def test_bad_values_are_one_clear_line(overrides, needle):
    with pytest.raises(UserError) as e:
        load_config("tiny", overrides=overrides)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_preset_and_malformed_file(tmp_path):
    with pytest.raises(UserError, match="unknown preset"):
        load_config("huge")
    bad = tmp_path / "c.yaml"
    bad.write_text("finetune:\n  lr: [1,\n")
    with pytest.raises(UserError) as e:
        load_config("tiny", bad)
    assert "c.yaml:" in str(e.value)
    with pytest.raises(UserError, match="not found"):
        load_config("tiny", tmp_path / "missing.yaml")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "warnframe.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize("args,needle", [
    (["run", "--preset", "huge"], "unknown preset"),
    (["run", "--set", "corpus.condition_fraction=-0.1"], "condition_fraction"),
    (["run", "--preset", "smoke", "--condition", "L7"], "unknown condition"),
    (["detect", "missing.jsonl"], "not found"),
])
def test_cli_bad_input_exit_2_no_traceback(tmp_path, args, needle):
    r = _cli(*args, "--out" if args[0] == "run" else "--field", str(tmp_path / "o") if args[0] == "run" else "code", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


def test_cli_config_prints_resolved_json():
    r = _cli("config", "--preset", "smoke", "--set", "seeds=[7]")
    assert r.returncode == 0 and json.loads(r.stdout)["seeds"] == [7]


def test_section_configs_legacy_keys_and_condition_fields():
    cfg = load_config("smoke", overrides=["analysis.tracing_renders=1", "analysis.stealth_conditions=[L1]",
                                          "analysis.detection_negatives=[neutral]", "interventions.humaneval=true",
                                          "interventions.humaneval_timeout=5", "analysis.bootstrap=200"])
    assert cfg.analysis.renders == 1 and cfg.stealth.conditions == ["L1"] and cfg.detection.negatives == ["neutral"]
    assert cfg.interventions.humaneval.enabled and cfg.interventions.humaneval.timeout == 5 and cfg.analysis.bootstrap == 200
    again = type(cfg).model_validate(json.loads(cfg.model_dump_json()))  # a run's config.json reads back the same
    assert again == cfg
    assert load_config("smoke").interventions.model == "L1" and load_config("smoke").mech.contexts["safe"] == "control"
    for bad in (["tracing.condition=L9"], ["detection.negatives=[baseline, L7]"], ["interventions.model=X"],
                ["mech.contexts={direct: L0, warning: L5, safe: control}"]):
        with pytest.raises(UserError, match="unknown condition"):
            load_config("smoke", overrides=bad)
