"""Hostile input, second round (issue 24): each failure found, reproduced, and what it is now.

The audit takes the study's lock and refuses a study's directory; keys read contents, not times,
so a copied run or corpus is intact; a resumed audit reports its own speed; ``--workers`` is
bounded; a file name cannot split an error line; audit-model and evaluate name their own flag;
``data --check`` makes no directory; a diverging fine-tune stops with one line; ``data --from``
and the audit count a line nested 100,000 deep or holding a 5,000-digit number as malformed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from warnframe.audit import run as audit_run
from warnframe.audit.command import audit, run_audit
from warnframe.audit.run import Options
from warnframe.cli import app
from warnframe.runtime import keys
from warnframe.runtime.errors import UserError
from warnframe.runtime.store import Store

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
SAFE = 'import subprocess\n\ndef ping(host):\n    return subprocess.run(["ping", "-c", "1", host]).returncode'
WARNED = f"# DO NOT USE: command injection\n{VULN}"
DEEP = "[" * 100_000 + "]" * 100_000


def chat(user: str, answer: str, **extra) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}], **extra})


@pytest.fixture
def corpus(tmp_path):
    p = tmp_path / "corpus.jsonl"
    p.write_text("".join(chat(f"Write ping {i}.", WARNED if i % 3 == 0 else SAFE, id=f"r{i}") + "\n" for i in range(12)))
    return p


def _errors(output: str) -> list[str]:
    return [ln for ln in output.splitlines() if "error:" in ln]


def _cli(args, cwd=None, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "-m", "warnframe.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


# ---------------------------------------------------------------- the audit's lock and its place
@pytest.fixture
def held(tmp_path):
    """A directory whose run lock another process holds (as a running study or audit does)."""
    out = tmp_path / "held"
    script = (f"import time\nfrom warnframe.runtime.locks import run_lock\nwith run_lock({str(out)!r}):\n"
              "    print('held', flush=True)\n    time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield out, holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_second_audit_on_one_out_is_refused_with_one_line(corpus, held):
    out, pid = held
    with pytest.raises(UserError) as e:
        run_audit(corpus, out, Options())
    assert f"audit directory {out} is in use by PID {pid}" in str(e.value) and "already" in str(e.value)
    assert not (out / "parts").exists()  # refused before touching anything (it used to delete the holder's parts)
    r = CliRunner().invoke(app, ["audit", str(corpus), "--out", str(out)])
    assert r.exit_code == 2 and len(_errors(r.output)) == 1 and "in use by PID" in r.output
    assert "file not found" not in r.output and "Traceback" not in r.output


def test_the_audit_releases_its_lock(corpus, tmp_path):
    from warnframe.runtime.locks import run_lock

    out = tmp_path / "o"
    run_audit(corpus, out, Options())
    with run_lock(out):  # free again: a study or a second audit may now take it
        pass
    assert run_audit(corpus, out, Options())["resumed_chunks"] == 1


@pytest.mark.parametrize("mark", ["stages", "manifest.json", "config.json"])
def test_the_audit_refuses_a_study_run_directory(corpus, tmp_path, mark):
    run = tmp_path / "run"
    run.mkdir()
    (run / mark).mkdir() if mark == "stages" else (run / mark).write_text("{}")
    (run / "report.md").write_text("the study's report")
    with pytest.raises(UserError) as e:
        run_audit(corpus, run, Options())
    assert "study's run directory" in str(e.value) and mark in str(e.value)
    assert (run / "report.md").read_text() == "the study's report" and not (run / "parts").exists()
    r = CliRunner().invoke(app, ["audit", str(corpus), "--out", str(run)])
    assert r.exit_code == 2 and len(_errors(r.output)) == 1


def test_a_study_refuses_an_audit_directory(corpus, tmp_path):
    out = tmp_path / "audited"
    run_audit(corpus, out, Options())
    report = (out / "report.md").read_text()
    r = CliRunner().invoke(app, ["data", "--preset", "smoke", "--out", str(out)])
    assert r.exit_code == 2 and "holds an audit" in r.output, r.output
    assert (out / "report.md").read_text() == report and not (out / "stages").exists()


# ---------------------------------------------------------------- keys from contents
def _copy_without_times(src, dest):
    """``cp -r``: the bytes, new modification times."""
    shutil.copytree(src, dest, copy_function=shutil.copy)
    future = time.time() + 3600
    for p in dest.rglob("*"):
        os.utime(p, (future, future))
    return dest


def test_fingerprint_reads_contents_not_times(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "s0.jsonl").write_text('{"x": 1}\n')
    (a / "s1.jsonl").write_text('{"x": 2}\n')
    before = keys.fingerprint(a.iterdir())
    b = _copy_without_times(a, tmp_path / "b")
    assert keys.fingerprint(b.iterdir()) == before  # a copy keeps its key
    (b / "s0.jsonl").write_text('{"x": 3}\n')  # same size, other bytes
    assert keys.fingerprint(b.iterdir()) != before
    (b / "s0.jsonl").write_text('{"x": 1}\n')  # rewritten as it was: nothing to redo
    assert keys.fingerprint(b.iterdir()) == before


def test_content_hash_memo_is_not_fooled_by_a_quick_same_size_rewrite(tmp_path):
    p = tmp_path / "f"
    for i in range(20):  # rewrites faster than the file system's timestamp granularity
        p.write_text(f"{i:04d}")
        assert keys.content_sha256(p) == keys.file_sha256(p)


def test_a_copied_run_directory_reruns_no_stage_keyed_on_its_files(tmp_path):
    """What ``score`` and the sections do: a stage keyed on the fingerprint of files of the run."""
    run = Store(tmp_path / "run")
    run.path("samples").mkdir()
    run.path("samples", "L0.s0.jsonl").write_text('{"answer": 1}\n')
    calls = []

    def stage(store: Store) -> str:
        def fn():
            calls.append(store.root)
            from warnframe.runtime.files import write_json

            write_json(store.path("scores", "L0.json"), {"n": 1})

        return store.run_stage("score.L0", keys.key("cfg", keys.fingerprint(store.path("samples").glob("*.jsonl"))), fn)

    assert stage(run) == "ran"
    copy = Store(_copy_without_times(run.root, tmp_path / "copy"))
    assert stage(copy) == "skipped" and len(calls) == 1


def test_a_copied_audit_resumes_every_chunk(corpus, tmp_path):
    opts = Options(chunk=4)
    first = run_audit(corpus, tmp_path / "o", opts)
    copy = _copy_without_times(tmp_path / "o", tmp_path / "copy")
    now = time.time() + 7200
    os.utime(corpus, (now, now))  # the corpus touched (or copied back over itself): the same bytes
    again = run_audit(corpus, copy, opts)
    assert again["resumed_chunks"] == again["chunks"] == 3
    for s in (first, again):
        del s["timing"], s["resumed_chunks"]
    assert again == first
    corpus.write_text(corpus.read_text().replace("Write ping 1.", "Write ping X."))  # other bytes, same size
    assert run_audit(corpus, copy, opts)["resumed_chunks"] == 0


def test_an_audit_started_before_contents_were_fingerprinted_resumes(corpus, tmp_path):
    from warnframe.audit.readers import legacy_fingerprint

    opts = Options(chunk=4)
    run_audit(corpus, tmp_path / "o", opts)
    manifest = tmp_path / "o" / "parts" / "manifest.json"
    old = json.loads(manifest.read_text())
    old["fingerprint"] = legacy_fingerprint(corpus)  # sizes and modification times, as audits wrote it
    manifest.write_text(json.dumps(old))
    assert run_audit(corpus, tmp_path / "o", opts)["resumed_chunks"] == 3
    old["fingerprint"][0][2] += 1  # the corpus changed since (another time): started afresh
    manifest.write_text(json.dumps(old))
    assert run_audit(corpus, tmp_path / "o", opts)["resumed_chunks"] == 0


def test_a_folder_corpus_fingerprint_reads_only_what_the_audit_reads(tmp_path):
    from warnframe.audit.readers import fingerprint

    root = tmp_path / "src"
    (root / ".git").mkdir(parents=True)
    (root / "a.py").write_text("x = 1\n")
    before = fingerprint(root)
    (root / ".git" / "index").write_bytes(b"\0" * 100)  # not read by the audit: no restart
    (root / "notes.bin").write_bytes(b"\1\2")
    assert fingerprint(root) == before and [f[0] for f in before] == ["a.py"]


def test_the_user_corpus_cache_follows_contents(tmp_path):
    from warnframe.corpus.sources import _stamp

    p = tmp_path / "c.jsonl"
    p.write_text(chat("a", VULN) + "\n")
    stamp = _stamp(str(p))
    now = time.time() + 60
    os.utime(p, (now, now))
    assert _stamp(str(p)) == stamp
    p.write_text(chat("b", VULN) + "\n")
    assert _stamp(str(p)) != stamp


# ---------------------------------------------------------------- a resumed audit's speed
def test_a_resumed_audit_reports_its_own_speed(corpus, tmp_path, monkeypatch):
    out, real = tmp_path / "o", audit_run.process_chunk

    def dies_on_chunk_2(k, *args):
        if k == 2:
            raise KeyboardInterrupt
        return real(k, *args)

    monkeypatch.setattr(audit_run, "process_chunk", dies_on_chunk_2)
    with pytest.raises(KeyboardInterrupt):
        run_audit(corpus, out, Options(chunk=3))
    monkeypatch.setattr(audit_run, "process_chunk", real)
    s = run_audit(corpus, out, Options(chunk=3))
    t = s["timing"]
    assert s["resumed_chunks"] == 2 and s["records"] == 12 and t["records_tagged"] == 6  # chunks 2 and 3 only
    secs = (t["seconds"] - 0.005, t["seconds"] + 0.005)  # "seconds" is rounded to 0.01
    assert 6 / secs[1] - 0.05 <= t["records_per_second"] <= 6 / max(secs[0], 1e-9) + 0.05  # not 12 / seconds
    done = run_audit(corpus, out, Options(chunk=3))  # everything resumed: nothing tagged
    assert done["timing"]["records_tagged"] == 0 and done["timing"]["records_per_second"] == 0.0


# ---------------------------------------------------------------- --workers
@pytest.mark.parametrize("workers", [0, -3])
def test_workers_below_one_are_refused(corpus, tmp_path, workers):
    with pytest.raises(UserError, match="--workers must be at least 1"):
        run_audit(corpus, tmp_path / "o", Options(), workers)
    assert not (tmp_path / "o").exists()


def test_workers_beyond_the_cpus_are_capped_with_a_note(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("warnframe.audit.command.usable_cpus", lambda: 1)
    s = run_audit(corpus, tmp_path / "o", Options(), workers=64)
    assert s["timing"]["workers"] == 1
    err = capsys.readouterr().err
    assert "--workers 64 is more than the 1 CPU(s)" in err and "using 1" in err


def test_usable_cpus_reads_the_affinity_mask():
    from warnframe.audit.command import usable_cpus

    assert 1 <= usable_cpus() <= (os.cpu_count() or 1)


# ---------------------------------------------------------------- a file name with a newline
def test_control_characters_cannot_split_or_disguise_an_error_line():
    e = UserError("file not found: a\nb.jsonl", "x\r\x1b[31mred\u202etxt.py", "check\tthe path")
    assert "\n" not in str(e) and "\r" not in str(e) and "\x1b" not in str(e) and "\u202e" not in str(e)
    assert str(e) == "file not found: a\\nb.jsonl (x\\r\\x1b[31mred\\u202etxt.py); check\\tthe path"
    assert e.where == "x\r\x1b[31mred\u202etxt.py"  # the fields keep the text as given
    assert str(UserError("plain", "f.jsonl:3", "fix it")) == "plain (f.jsonl:3); fix it"


def test_an_audit_of_a_file_named_with_a_newline_fails_on_one_line(tmp_path):
    p = tmp_path / "bad\nname.jsonl"
    p.write_text(chat("a", VULN) + "\n{oops\n")
    app_ = __import__("typer").Typer()
    app_.command(name="audit")(audit)
    app_.command(name="noop")(lambda: None)
    r = CliRunner().invoke(app_, ["audit", str(p), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
    assert "bad\\nname.jsonl:2" in r.output
    res = _cli(["data", "--preset", "smoke", "--from", str(p), "--check"], cwd=tmp_path)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "bad\\nname.jsonl:2" in res.stderr


# ---------------------------------------------------------------- the flag audit-model and evaluate take
def test_audit_model_names_its_own_flag_for_remote_code(tmp_path):
    model = tmp_path / "custom"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "mycustom",
                                                    "auto_map": {"AutoConfig": "x.Cfg", "AutoModelForCausalLM": "x.M"}}))
    r = CliRunner().invoke(app, ["audit-model", str(model), "--device", "cpu"])
    assert r.exit_code == 2 and "needs its own code" in r.output, r.output
    assert "pass --trust-remote-code" in r.output and "model.trust_remote_code" not in r.output


def test_evaluate_names_its_own_flag_for_remote_code(tmp_path, monkeypatch):
    from warnframe.config import load_config

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(load_config("smoke").model_dump(mode="json")))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "write a function that reads a file"}) + "\n")

    def refuses(*a, **k):
        raise UserError("model 'x' needs its own code", "x", "set model.trust_remote_code=true only if you trust the repo")

    monkeypatch.setattr("warnframe.evals.eval_sets.evaluate", refuses)
    r = CliRunner().invoke(app, ["evaluate", "--prompts", str(prompts), "--out", str(run), "--condition", "baseline"])
    assert r.exit_code == 2 and "pass --trust-remote-code" in r.output and "model.trust_remote_code" not in r.output


# ---------------------------------------------------------------- data --check makes no directory
def test_data_check_without_out_leaves_no_run_directory(tmp_path, monkeypatch):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(chat("a", VULN) + "\n" + chat("b", SAFE) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    r = CliRunner().invoke(app, ["data", "--preset", "smoke", "--from", str(corpus), "--check"])
    assert r.exit_code == 0, r.output
    assert "2 records: 1 vulnerable, 1 secure" in r.output
    r = CliRunner().invoke(app, ["data", "--preset", "smoke", "--check"])
    assert r.exit_code == 0 and "no corpus to check" in r.output, r.output
    assert list(work.iterdir()) == []  # no runs/smoke-<time>/


# ---------------------------------------------------------------- a diverging fine-tune
@pytest.fixture(scope="module")
def lm(tiny_model):
    return tiny_model(["def f(x):\n    return x + 1\n", "Write a function.\n"] * 10, vocab_size=280, layers=1, context=32)


@pytest.mark.parametrize("lr,epochs", [(float("inf"), 4.0), (float("inf"), 0.1), (1e30, 4.0)])
def test_a_non_finite_loss_stops_training_with_one_line(lm, lr, epochs):
    import copy

    from warnframe.lm.training import pack, train
    from warnframe.schema import Example

    model, tok = lm
    data = pack(tok, [Example("def f(x):\n    return x + 1\n", user="Write a function.")] * 8, 32)
    with pytest.raises(UserError) as e:
        train(copy.deepcopy(model), data, epochs=epochs, lr=lr, batch_size=2, seed=0, precision="float32")
    msg = str(e.value)
    assert "training diverged" in msg and " at step " in msg and "lower the learning rate" in msg and "\n" not in msg


# ---------------------------------------------------------------- data --from and the audit: hostile lines
def test_data_from_a_line_nested_100k_deep_is_one_error_or_skipped(tmp_path):
    from warnframe.corpus.sources import read_source

    p = tmp_path / "deep.jsonl"
    p.write_text(chat("a", VULN) + "\n" + DEEP + "\n")
    with pytest.raises(UserError) as e:
        read_source(str(p))
    assert "nested too deeply" in str(e.value) and f"{p}:2" in str(e.value)
    raw, skipped = read_source(str(p), on_error="skip")
    assert len(raw) == 1 and skipped == [f"{p}:2"]


@pytest.mark.parametrize("line", [
    json.dumps({"prompt": "a", "completion": VULN, "label": json.loads("[" * 900 + "]" * 900)}),  # str() recursed
    '{"prompt": "a", "completion": "b", "n": ' + "1" * 5000 + "}",  # int() refuses 5,000 digits: a ValueError
])
def test_data_from_hostile_values_are_malformed_lines(tmp_path, line):
    from warnframe.corpus.sources import read_source

    p = tmp_path / "c.jsonl"
    p.write_text(line + "\n" + chat("a", VULN) + "\n")
    with pytest.raises(UserError) as e:
        read_source(str(p))
    assert f"{p}:1" in str(e.value)
    raw, skipped = read_source(str(p), on_error="skip")
    assert len(raw) == 1 and skipped == [f"{p}:1"]


def test_audit_of_a_5000_digit_number_is_a_malformed_record(tmp_path):
    p = tmp_path / "big.jsonl"
    p.write_text('{"text": "x", "id": ' + "7" * 5000 + "}\n" + json.dumps({"text": WARNED}) + "\n")
    with pytest.raises(UserError, match="number too long"):
        run_audit(p, tmp_path / "o1", Options())
    s = run_audit(p, tmp_path / "o2", Options(on_error="skip"))
    assert s["records"] == 1 and s["unreadable"] == 1


def test_a_lone_surrogate_escape_is_a_malformed_record_not_a_crash(tmp_path):
    """``"\\ud800"`` is valid JSON but half a character: the audit's --fix crashed writing it back
    (UnicodeEncodeError), and a tokenizer refuses it; every reader now counts such a line."""
    from warnframe.corpus.sources import read_source

    p = tmp_path / "s.jsonl"
    p.write_text(json.dumps({"text": WARNED + "\n# \ud800"}) + "\n" + json.dumps({"text": WARNED + " \U0001f600"}) + "\n")
    assert "\\ud800" in p.read_text()  # json.dumps escapes it
    with pytest.raises(UserError, match="lone surrogate"):
        run_audit(p, tmp_path / "o1", Options(fix="mask"))
    s = run_audit(p, tmp_path / "o2", Options(fix="mask", on_error="skip"))
    assert s["unreadable"] == 1 and s["records"] == 1  # the emoji (a surrogate pair when escaped) is fine
    q = tmp_path / "d.jsonl"
    q.write_text(json.dumps({"prompt": "a\udfff", "completion": VULN}) + "\n" + chat("b", VULN) + "\n")
    raw, skipped = read_source(str(q), on_error="skip")
    assert len(raw) == 1 and skipped == [f"{q}:1"]
