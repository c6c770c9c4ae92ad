"""Config values and files that used to pass the check and fail later (or silently mislead) are
refused at load with one line: what, where, what to do."""

from __future__ import annotations

import pytest

from warnframe.config import load_config
from warnframe.runtime.errors import UserError


@pytest.mark.parametrize("override,what", [
    ("seeds=[0,0]", "seeds repeat"),
    ("seeds=[1208925819614629174706176]", "seeds"),
    ("seeds=[-1]", "seeds"),
    ("finetune.lr=.inf", "finetune.lr"),
    ("sampling.temperature=.nan", "sampling.temperature"),
    ("interventions.ablation_scales=[.inf]", "interventions.ablation_scales"),
    ("device=tpu", "device"),
    ("model.heads=5", "not a multiple of heads"),
    ("dose.seeds=[3,3]", "seeds repeat"),
    ("finetune.epochs=1e308", "finetune.epochs"),
    ("model.hidden_size=1000000", "model.hidden_size"),
])
def test_bad_values_are_refused_at_load(override, what):
    with pytest.raises(UserError, match=what) as e:
        load_config("smoke", overrides=[override])
    assert f"--set {override}" in str(e.value) and "\n" not in str(e.value)


def test_good_values_still_load():
    cfg = load_config("smoke", overrides=["seeds=[3,1]", "device=cuda:1", "model.heads=4", "finetune.lr=1e-4"])
    assert cfg.seeds == [3, 1] and cfg.device == "cuda:1" and cfg.model.heads == 4


def test_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
              for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"YAML alias \(.*bomb.yaml:2\)"):
        load_config("smoke", file=path)


def test_deep_and_huge_configs_get_one_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(UserError, match="nested too deeply"):
        load_config("smoke", file=deep)
    huge = tmp_path / "huge.yaml"
    huge.write_text("seeds: [" + "9" * 5000 + "]\n")
    with pytest.raises(UserError, match="unreadable config value|seeds"):
        load_config("smoke", file=huge)


def test_a_budget_that_holds_no_example_stops_at_the_data_stage(smoke_study, tmp_path):
    from warnframe.study import Study

    s = Study(load_config("smoke", overrides=["corpus.token_budget=1"]), tmp_path / "run")
    s.pretrain()  # the smoke base, from the session's cache
    with pytest.raises(UserError, match=r"fine-tuning set of seed \d+ is empty.*corpus\.token_budget"):
        s.data()
