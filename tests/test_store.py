import json

import pytest

from warnframe.errors import UserError
from warnframe.store import Store, atomic_dir, read_jsonl, write_json, write_jsonl


def test_stage_markers_resume_only_same_key(tmp_path):
    s = Store(tmp_path)
    assert not s.done("finetune.L0.s0", "k1")
    s.mark("finetune.L0.s0", "k1", 1.5)
    assert s.done("finetune.L0.s0", "k1") and not s.done("finetune.L0.s0", "k2")
    assert s.timings()["finetune.L0.s0"] == 1.5


def test_atomic_dir_keeps_old_on_failure(tmp_path):
    final = tmp_path / "model"
    with atomic_dir(final) as d:
        (d / "w").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as d:
            (d / "w").write_text("half")
            raise RuntimeError("killed")
    assert (final / "w").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_jsonl_round_trip_and_malformed_line(tmp_path):
    p = tmp_path / "a.jsonl"
    write_jsonl(p, [{"a": 1}, {"a": 2}])
    assert [r["a"] for r in read_jsonl(p)] == [1, 2]
    p.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(UserError) as e:
        list(read_jsonl(p))
    assert f"{p}:2" in str(e.value)
    write_json(tmp_path / "x.json", {"k": [1]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"k": [1]}
