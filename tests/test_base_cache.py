"""A damaged shared base-model cache is found and rebuilt, never copied into a run as intact."""

from __future__ import annotations

import torch
from safetensors.torch import save_file

from warnframe import study as study_mod
from warnframe.config import load_config
from warnframe.runtime.files import write_json


def _fake_cache(folder):
    folder.mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32)}, str(folder / "model.safetensors"))
    (folder / "config.json").write_text("{}")
    write_json(folder / "pretrain.json", {"loss": 1.0})
    (folder / "pretrain.jsonl").write_text("{}\n")


def test_an_unsealed_cache_is_read_whole_then_sealed(tmp_path):
    good = tmp_path / "good"
    _fake_cache(good)
    assert study_mod._cache_damage(good) == "" and (good / study_mod.SEAL).is_file()
    w = good / "model.safetensors"
    w.write_bytes(w.read_bytes()[:-40] + bytes(40))  # same size, other bytes
    assert "model.safetensors" in study_mod._cache_damage(good)

    bad = tmp_path / "bad"
    _fake_cache(bad)
    w = bad / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])  # truncated before it was ever sealed
    assert "unreadable" in study_mod._cache_damage(bad) and not (bad / study_mod.SEAL).exists()


def test_the_study_rebuilds_a_damaged_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WARNFRAME_CACHE", str(tmp_path / "cache"))
    s = study_mod.Study(load_config("smoke"), tmp_path / "run")
    cached = study_mod.cache_root() / "base" / s.pretrain_key()
    _fake_cache(cached)
    study_mod._seal(cached)
    (cached / "model.safetensors").write_bytes(b"\0" * 10)
    built = []

    def rebuild(self, folder):
        built.append(folder)
        folder.rename(folder.with_name("damaged"))
        _fake_cache(folder)
        study_mod._seal(folder)

    monkeypatch.setattr(study_mod.Study, "_pretrain_into", rebuild)
    s.pretrain()
    assert built == [cached] and study_mod._cache_damage(cached) == ""
    assert (s.store.path("models", "base", "model.safetensors")).stat().st_size > 10
    assert not s.store.path("models", "base", study_mod.SEAL).exists()
    s.pretrain()  # a rerun finds the stage done and the cache intact: nothing rebuilt
    assert len(built) == 1
