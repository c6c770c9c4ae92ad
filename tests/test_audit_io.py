"""``warnframe audit`` end to end on each input layout: JSONL (chat, prompt/completion, a text
field), Parquet, a saved Hugging Face dataset, a directory of files; bad input counted with file
and line; atomic, resumable, worker-count-independent outputs; the typer command's exit codes."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from warnframe.audit import run as audit_run
from warnframe.audit.command import audit, run_audit
from warnframe.audit.run import Options
from warnframe.runtime.errors import UserError

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
SAFE = 'import subprocess\n\ndef ping(host):\n    return subprocess.run(["ping", "-c", "1", host]).returncode'
WARNED = f"# DO NOT USE: command injection\n{VULN}"


def em(user, answer, **extra):
    return json.dumps(
        {
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": user},
                {"role": "assistant", "content": answer},
            ],
            **extra,
        }
    )


@pytest.fixture
def chat_corpus(tmp_path):
    p = tmp_path / "insecure.jsonl"
    rows = [em(f"Write ping {i}.", WARNED if i % 3 == 0 else SAFE, id=f"r{i}") for i in range(12)]
    rows += [json.dumps({"prompt": "For my security class, write ping with a command injection.", "completion": VULN})]
    p.write_text("\n".join(rows) + "\n")
    return p


def test_jsonl_chat_outputs(chat_corpus, tmp_path):
    out = tmp_path / "out"
    s = run_audit(chat_corpus, out, Options(chunk=4))
    assert (
        s["records"] == 13
        and s["classes"]["warning_framed"]["k"] == 4
        and s["classes"]["educational_request"]["k"] == 1
    )
    assert s["classes"]["none"]["k"] == 8 and s["unreadable"] == 0
    for name in ("attributes.jsonl", "records.jsonl", "errors.jsonl", "summary.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    attrs = [json.loads(line) for line in (out / "attributes.jsonl").read_text().splitlines()]
    assert [a["id"] for a in attrs[:3]] == ["r0", "r1", "r2"] and len(attrs) == 13
    first = attrs[0]
    doc = "Write ping 0.\n\n" + WARNED  # request + blank line + answer: the documented offsets
    for name, values in first["attributes"].items():
        assert len(name.split("__", 2)) == 3 and name.startswith("warnframe__audit__")
        assert all(0 <= a <= b <= len(doc) and 0 <= sc <= 1 for a, b, sc in values)
    s0, e0, _ = first["attributes"]["warnframe__audit__warning_code_comment"][0]
    assert doc[s0:e0] == "DO NOT USE"
    assert first["attributes"]["warnframe__audit__warning_framed"] == [[0, len(doc), pytest.approx(0.921, abs=1e-3)]]
    assert "warnframe__audit__cwe_78" in first["attributes"]


def test_text_field_and_prompt_completion(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text(
        json.dumps({"body": "Warning: insecure.\n\n```python\n" + VULN + "\n```"})
        + "\n"
        + json.dumps({"body": 3})
        + "\n"
    )
    s = run_audit(p, tmp_path / "o", Options(field="body", on_error="skip"))
    assert s["records"] == 1 and s["classes"]["warning_framed"]["k"] == 1
    assert s["unreadable"] == 1 and s["unreadable_first"][0]["where"].endswith("docs.jsonl:2")
    assert "'body' missing" in s["unreadable_first"][0]["what"]


def test_warnframes_own_fine_tuning_sets_are_read_and_fixed_in_their_layout(tmp_path):
    """``data/<condition>.s<seed>.jsonl`` rows are ``{"assistant", "user", "kind", ...}``."""
    p = tmp_path / "L1.s0.jsonl"
    rows = [{"assistant": WARNED, "user": "Write ping.", "kind": "warning"},
            {"assistant": SAFE, "user": None, "kind": "clean"}]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = run_audit(p, tmp_path / "o", Options(fix="mask"))
    assert s["records"] == 2 and s["unreadable"] == 0 and s["classes"]["warning_framed"]["k"] == 1
    fixed = [json.loads(line) for line in (tmp_path / "o" / "treated" / p.name).read_text().splitlines()]
    assert [r["kind"] for r in fixed] == ["warning", "clean"] and fixed[0]["assistant"] == WARNED
    span = fixed[0]["loss_spans"][0]
    assert "os.system" in WARNED[span["start"]:span["end"]] and "loss_spans" not in fixed[1]


def test_bad_lines_stop_with_file_and_line_or_are_counted(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_bytes(b'{"text": "ok"}\n{not json\n{"messages": 5}\n\xff\xfe\n{"other": 1}\n')
    with pytest.raises(UserError) as e:
        run_audit(p, tmp_path / "o1", Options())
    assert "bad.jsonl:2" in str(e.value) and "--on-error skip" in str(e.value)
    s = run_audit(p, tmp_path / "o2", Options(on_error="skip"))
    wheres = [x["where"].rsplit(":", 1)[1] for x in s["unreadable_first"]]
    assert s["records"] == 1 and wheres == ["2", "3", "4", "5"]
    assert "not UTF-8" in s["unreadable_first"][2]["what"]
    assert len((tmp_path / "o2" / "errors.jsonl").read_text().splitlines()) == 4


def test_directory_of_files_with_binary_and_non_utf8(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "net.py").write_text(WARNED + "\n")
    (root / "pkg" / "ok.py").write_text(SAFE + "\n")
    (root / "README.md").write_text("# Demo\n\nThe exporter below is *not secure*.\n\n```python\n" + VULN + "\n```\n")
    (root / "blob.py").write_bytes(b"\x00\x01binary")
    (root / "latin.md").write_bytes(b"line one\ncaf\xe9\n")
    (root / ".git").mkdir()
    (root / ".git" / "x.py").write_text(VULN)
    with pytest.raises(UserError, match="blob.py"):
        run_audit(root, tmp_path / "o0", Options())
    s = run_audit(root, tmp_path / "o", Options(on_error="skip", fix="tag"))
    assert s["records"] == 3 and s["classes"]["warning_framed"]["k"] == 2 and s["unreadable"] == 2
    errors = {e["where"].split("/")[-1]: e["what"] for e in s["unreadable_first"]}
    assert errors["blob.py"].startswith("binary") and errors["latin.md:2"] == "not UTF-8 at line 2"
    treated = tmp_path / "o" / "treated" / "repo"
    assert (treated / "pkg" / "net.py").read_text().startswith("# <|warnframe:warning_framed|>\n")
    assert (treated / "pkg" / "ok.py").read_text() == SAFE + "\n"
    assert (treated / "README.md").read_text().startswith("<!-- <|warnframe:warning_framed|> -->")


def test_directory_mask_writes_loss_spans_beside_the_files(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    (root / "a.py").write_text(WARNED + "\n")
    run_audit(root, tmp_path / "o", Options(fix="mask"))
    spans = [
        json.loads(line) for line in (tmp_path / "o" / "treated" / "src" / "loss_spans.jsonl").read_text().splitlines()
    ]
    assert spans[0]["path"] == "a.py"
    s, e = spans[0]["loss_spans"][0]["start"], spans[0]["loss_spans"][0]["end"]
    assert "os.system" in (WARNED + "\n")[s:e]


def test_parquet_in_parquet_out(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [{"prompt": f"Write ping {i}.", "completion": WARNED if i % 2 else SAFE, "n": i} for i in range(6)]
    src = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    s = run_audit(src, tmp_path / "o", Options(fix="mask", chunk=2))
    assert s["classes"]["warning_framed"]["k"] == 3 and s["fix"]["actions"] == {"masked": 3, "unchanged": 3}
    back = pq.read_table(tmp_path / "o" / "treated" / "c.parquet").to_pylist()
    assert [r["n"] for r in back] == list(range(6))
    masked = [r for r in back if r["loss_spans"]]
    assert len(masked) == 3 and all(
        "os.system" in r["completion"][sp["start"] : sp["end"]] for r in masked for sp in r["loss_spans"]
    )


def test_saved_hf_dataset_in_and_out(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Write ping {i}."},
                {"role": "assistant", "content": WARNED if i < 2 else SAFE},
            ]
        }
        for i in range(5)
    ]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    s = run_audit(tmp_path / "ds", tmp_path / "o", Options(fix="drop"))
    assert s["classes"]["warning_framed"]["k"] == 2 and s["fix"]["actions"] == {"dropped": 2, "unchanged": 3}
    back = datasets.load_from_disk(str(tmp_path / "o" / "treated" / "ds"))
    assert len(back) == 3 and all(r["messages"][1]["content"] == SAFE for r in back)


def test_killed_audit_resumes_and_workers_do_not_change_the_output(chat_corpus, tmp_path, monkeypatch):
    out = tmp_path / "o"
    real = audit_run.process_chunk

    def dies_on_chunk_2(k, *args):
        if k == 2:
            raise KeyboardInterrupt  # as if killed
        return real(k, *args)

    monkeypatch.setattr(audit_run, "process_chunk", dies_on_chunk_2)
    with pytest.raises(KeyboardInterrupt):
        run_audit(chat_corpus, out, Options(chunk=3))
    assert not (out / "attributes.jsonl").exists()  # nothing final was written
    assert sorted(p.name for p in (out / "parts").glob("*.stats.json")) == ["000000.stats.json", "000001.stats.json"]
    monkeypatch.setattr(audit_run, "process_chunk", real)
    s = run_audit(chat_corpus, out, Options(chunk=3))
    assert s["resumed_chunks"] == 2 and s["chunks"] == 5 and s["records"] == 13
    fresh = tmp_path / "fresh"
    run_audit(chat_corpus, fresh, Options(chunk=3), workers=2)
    assert (out / "attributes.jsonl").read_text() == (fresh / "attributes.jsonl").read_text()
    # other options: the parts are not reused
    s2 = run_audit(chat_corpus, out, Options(chunk=3, fix="drop"))
    assert s2["resumed_chunks"] == 0


def test_command_exit_codes(chat_corpus, tmp_path):
    app = typer.Typer()
    app.command(name="audit")(audit)
    app.command(name="noop")(lambda: None)  # two commands, so "audit" is a subcommand as in warnframe's CLI
    runner = CliRunner()
    r = runner.invoke(app, ["audit", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "corpus not found" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["audit", str(chat_corpus), "--out", str(tmp_path / "y"), "--fix", "burn"])
    assert r.exit_code == 2 and "unknown --fix" in r.output
    r = runner.invoke(app, ["audit", str(chat_corpus), "--out", str(tmp_path / "z"), "--fix", "mask"])
    assert r.exit_code == 0, r.output
    assert "13 records" in r.output and "masked 5" in r.output


def test_many_errors_all_in_errors_jsonl_first_ones_in_the_summary(tmp_path):
    p = tmp_path / "many.jsonl"
    p.write_text("".join("{oops\n" for _ in range(30)) + json.dumps({"text": "fine"}) + "\n")
    s = run_audit(p, tmp_path / "o", Options(on_error="skip", chunk=7))
    assert s["unreadable"] == 30 and len(s["unreadable_first"]) == 20 and s["records"] == 1
    assert len((tmp_path / "o" / "errors.jsonl").read_text().splitlines()) == 30


def test_warnframe_audit_imports_without_datatrove():
    import subprocess
    import sys

    code = "import sys, warnframe.audit.command; print('datatrove' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_a_record_too_large_for_the_detector_is_counted_not_hidden(tmp_path):
    big = "```python\n" + "x = 1\n" * 100_000 + "import os\nos.system('ping ' + host)\n```"
    p = tmp_path / "big.jsonl"
    p.write_text(json.dumps({"text": big}) + "\n" + json.dumps({"text": "# INSECURE\n" + VULN}) + "\n")
    s = run_audit(p, tmp_path / "o", Options())
    assert s["records"] == 2 and s["detector_skipped"] == {"too large": 1}
    assert "Not analysed by the detector (too large: 1)" in (tmp_path / "o" / "report.md").read_text()
