import json
import multiprocessing as mp
import os
import time

import pytest

from warnframe.runtime.dirs import atomic_dir
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import atomic_write_text, read_json, read_jsonl, write_json, write_jsonl
from warnframe.runtime.locks import run_lock
from warnframe.runtime.store import Store, file_sha256


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
    with pytest.raises(RuntimeError), atomic_dir(final) as d:
        (d / "w").write_text("half")
        raise RuntimeError("killed")
    assert (final / "w").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_atomic_dir_replaces_whole_and_leaves_nothing_beside(tmp_path):
    final = tmp_path / "model"
    with atomic_dir(final) as d:
        (d / "a").write_text("1")
        (d / "b").write_text("1")
    with atomic_dir(final) as d:
        (d / "a").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["a"] and (final / "a").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert oct(final.stat().st_mode & 0o777) == "0o755"


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


def test_latin1_and_binary_lines_name_file_and_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    with pytest.raises(UserError) as e:
        list(read_jsonl(p))
    assert f"{p}:2" in str(e.value) and "not UTF-8" in str(e.value) and "0xe9" in str(e.value)
    b = tmp_path / "b.json"
    b.write_bytes(b"\n\n\x89PNG\r\n\x1a\n")
    with pytest.raises(UserError) as e:
        read_json(b)
    assert f"{b}:3" in str(e.value) and "0x89" in str(e.value)


def test_truncated_json_names_file_line_and_what_to_do(tmp_path):
    p = tmp_path / "metrics" / "behavior.json"
    write_json(p, {"rates": {"L0": [0.1, 0.2]}, "n": 40})
    p.write_bytes(p.read_bytes()[:20])
    with pytest.raises(UserError) as e:
        read_json(p)
    msg = str(e.value)
    assert str(p) in msg and "damaged JSON" in msg and "rerun" in msg and "\n" not in msg
    assert isinstance(e.value, json.JSONDecodeError)  # callers that catch that still do


# ---------------------------------------------------------------- stage markers record outputs
def _stage(store, name, key, files, calls, content=None):
    """A stage that writes ``files`` (relative paths) with content; counts its runs in ``calls``."""
    def fn():
        calls[name] = calls.get(name, 0) + 1
        for rel in files:
            atomic_write_text(store.path(rel), (content or {}).get(rel, f"{name}:{rel}\n" * 50))
        return {"rows": len(files)}
    return store.run_stage(name, key, fn)


def test_run_stage_records_outputs_and_skips_when_intact(tmp_path):
    s, calls = Store(tmp_path), {}
    assert _stage(s, "score.L0", "k", ["scores/L0.jsonl"], calls) == "ran"
    marker = json.loads(s.path("stages", "score.L0.json").read_text())
    out = marker["outputs"]["scores/L0.jsonl"]
    assert out == {"size": s.path("scores/L0.jsonl").stat().st_size, "sha256": file_sha256(s.path("scores/L0.jsonl"))}
    assert marker["rows"] == 1
    assert _stage(s, "score.L0", "k", ["scores/L0.jsonl"], calls) == "skipped" and calls["score.L0"] == 1
    assert _stage(s, "score.L0", "k2", ["scores/L0.jsonl"], calls) == "ran" and calls["score.L0"] == 2


@pytest.mark.parametrize("damage", ["delete", "truncate", "same-size-flip"])
def test_run_stage_redoes_a_stage_whose_output_is_damaged(tmp_path, damage):
    s, calls = Store(tmp_path), {}
    _stage(s, "score.L0", "k", ["scores/L0.jsonl", "scores/extra.json"], calls)
    good = s.path("scores/L0.jsonl").read_bytes()
    p = s.path("scores/L0.jsonl")
    if damage == "delete":
        p.unlink()
    elif damage == "truncate":
        p.write_bytes(good[:10])
    else:  # same size, one byte different: only the hash can tell
        p.write_bytes(good[:-2] + b"X\n")
    assert not s.done("score.L0", "k")
    assert _stage(s, "score.L0", "k", ["scores/L0.jsonl", "scores/extra.json"], calls) == "repaired"
    assert p.read_bytes() == good and calls["score.L0"] == 2
    assert _stage(s, "score.L0", "k", ["scores/L0.jsonl", "scores/extra.json"], calls) == "skipped"


def test_atomic_dir_outputs_are_recorded_file_by_file(tmp_path):
    s = Store(tmp_path)

    def fn():
        with atomic_dir(s.path("models", "L1.s0")) as d:
            (d / "model.safetensors").write_bytes(b"w" * 1000)
            (d / "config.json").write_text("{}")

    s.run_stage("finetune.L1.s0", "k", fn)
    outs = json.loads(s.path("stages", "finetune.L1.s0.json").read_text())["outputs"]
    assert sorted(outs) == ["models/L1.s0/config.json", "models/L1.s0/model.safetensors"]
    with s.path("models/L1.s0/model.safetensors").open("r+b") as f:
        f.truncate(100)
    assert s.damaged(json.loads(s.path("stages", "finetune.L1.s0.json").read_text())) == ["models/L1.s0/model.safetensors"]
    assert s.run_stage("finetune.L1.s0", "k", fn) == "repaired"
    assert s.path("models/L1.s0/model.safetensors").stat().st_size == 1000


def test_changed_upstream_invalidates_later_stages_identical_keeps_them(tmp_path):
    s, calls = Store(tmp_path), {}
    _stage(s, "finetune.L1.s0", "k", ["models/L1.s0/w"], calls)
    time.sleep(0.01)
    _stage(s, "sample.L1.s0", "k", ["samples/parts/L1.s0.jsonl"], calls)
    _stage(s, "score.L1", "k", ["scores/L1.jsonl"], calls)

    # damaged, regenerated identically (deterministic): the later stages stay done
    s.path("models/L1.s0/w").write_text("junk")
    assert _stage(s, "finetune.L1.s0", "k", ["models/L1.s0/w"], calls) == "repaired"
    assert _stage(s, "sample.L1.s0", "k", ["samples/parts/L1.s0.jsonl"], calls) == "skipped"
    assert _stage(s, "score.L1", "k", ["scores/L1.jsonl"], calls) == "skipped"

    # damaged, regenerated differently: every stage that finished after it reruns
    time.sleep(0.01)
    s.path("models/L1.s0/w").unlink()
    assert _stage(s, "finetune.L1.s0", "k", ["models/L1.s0/w"], calls, {"models/L1.s0/w": "other weights\n"}) == "repaired"
    assert not s.path("stages", "sample.L1.s0.json").exists()
    assert _stage(s, "sample.L1.s0", "k", ["samples/parts/L1.s0.jsonl"], calls) == "ran"
    assert _stage(s, "score.L1", "k", ["scores/L1.jsonl"], calls) == "ran"
    assert calls == {"finetune.L1.s0": 3, "sample.L1.s0": 2, "score.L1": 2}


def test_marker_damaged_or_outside_files_are_handled(tmp_path):
    s, calls = Store(tmp_path / "run"), {}
    outside = tmp_path / "cache" / "x"

    def fn():
        atomic_write_text(outside, "cached")
        atomic_write_text(s.path("a"), "a")

    s.run_stage("pretrain", "k", fn)
    assert list(json.loads(s.path("stages", "pretrain.json").read_text())["outputs"]) == ["a"]
    s.path("stages", "pretrain.json").write_text('{"key": "k", "outp')  # a truncated marker: not done
    assert not s.done("pretrain", "k") and s.run_stage("pretrain", "k", fn) == "ran"
    assert _stage(s, "x", "k", [], calls) == "ran" and _stage(s, "x", "k", [], calls) == "skipped"


def test_store_on_a_file_is_a_user_error(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        Store(f)
    with pytest.raises(UserError, match="not a directory"):
        Store(f / "run")


# ---------------------------------------------------------------- the run lock
def _hold_lock(root, ready, release):
    with run_lock(root):
        ready.set()
        release.wait(20)


def test_run_lock_names_the_holder_and_frees_on_exit(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(UserError) as e, run_lock(tmp_path):
            pass
        msg = str(e.value)
        assert f"in use by PID {p.pid}" in msg and "started" in msg and "--out" in msg
    finally:
        release.set()
        p.join(20)
    with run_lock(tmp_path):  # free again once the holder is gone
        pass


def test_run_lock_is_freed_by_a_killed_holder(tmp_path):
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    p.start()
    assert ready.wait(30)
    os.kill(p.pid, 9)
    p.join(20)
    with run_lock(tmp_path):
        pass


# ---------------------------------------------------------------- two writers and a reader
def _writer(final, who, n, errors):
    from warnframe.runtime.dirs import atomic_dir

    lost = 0
    for i in range(n):
        try:
            with atomic_dir(__import__("pathlib").Path(final)) as d:
                for name in ("config.json", "model.safetensors", "tokenizer.json"):
                    (d / name).write_text(f"{who}:{i}:" + "x" * 200)
        except Exception as e:  # noqa: BLE001 - counted and reported by the test
            lost += 1
            errors.put(f"{type(e).__name__}: {e}")
    errors.put(("lost", who, lost))


def _reader(final, n, out):
    """Reads as ``from_pretrained`` does (each file by path) and as a listing reader does (through
    ``reading``): counts a directory found missing, a file missing or incomplete, and a listing
    that is not one whole version."""
    from pathlib import Path

    from warnframe.runtime.dirs import reading

    names = ["config.json", "model.safetensors", "tokenizer.json"]
    missing = partial = mixed = 0
    for i in range(n):
        try:
            if i % 2:
                texts = [Path(final, x).read_text() for x in names]
            else:
                with reading(Path(final)) as d:
                    listed = sorted(os.listdir(d))
                    texts = [(d / x).read_text() for x in listed]
                    if listed != names or len({t.rsplit(":", 1)[0] for t in texts}) != 1:
                        mixed += 1
        except (FileNotFoundError, __import__("warnframe.runtime.errors").errors.UserError):
            missing += 1
            continue
        if any(not t.endswith("x" * 200) for t in texts):
            partial += 1
    out.put(("reader", missing, partial, mixed))


def test_atomic_dir_two_writers_and_a_reader_lose_nothing_and_never_see_absence(tmp_path):
    final = tmp_path / "models" / "base"
    with atomic_dir(final) as d:
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (d / name).write_text("seed:0:" + "x" * 200)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(final), w, 300, q)) for w in ("A", "B")]
    procs.append(ctx.Process(target=_reader, args=(str(final), 3000, q)))
    for p in procs:
        p.start()
    results = [q.get(timeout=120) for _ in range(3)]
    for p in procs:
        p.join(30)
    errors = [r for r in results if isinstance(r, str)]
    assert not errors, errors[:3]
    lost = {r[1]: r[2] for r in results if r[0] == "lost"}
    reader = next(r for r in results if r[0] == "reader")
    assert lost == {"A": 0, "B": 0}
    assert reader[1:] == (0, 0, 0)  # never missing, never a partial file, a listing always one version
    assert sorted(p.name for p in final.parent.iterdir()) == ["base"]  # no temporary left beside it
