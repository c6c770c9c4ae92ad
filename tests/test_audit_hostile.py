"""Hostile input to ``warnframe audit`` and ``evaluate --prompts`` (second round): a JSONL line
nested 100,000 deep, a FIFO as the corpus and FIFOs/links inside a corpus folder, a record of
thousands of chained code blocks (``tagger.prune``), and records too large for the detector."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest
import typer
from typer.testing import CliRunner

from warnframe.audit import tagger
from warnframe.audit.command import audit, run_audit
from warnframe.audit.readers import Record, iter_files, skipped_entries
from warnframe.audit.run import Counts, Options
from warnframe.audit.segments import layout
from warnframe.evals.eval_sets import load_prompts
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import NESTED_TOO_DEEPLY, loads_line

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
WARNED = f"# DO NOT USE: command injection\n{VULN}"
DEEP = 100_000


def _cli():
    app = typer.Typer()
    app.command(name="audit")(audit)
    app.command(name="noop")(lambda: None)  # two commands, so "audit" is a subcommand as in warnframe's CLI
    return app


def _deep_corpus(tmp_path):
    p = tmp_path / "deep.jsonl"
    p.write_text(
        json.dumps({"text": WARNED})
        + "\n"
        + "[" * DEEP
        + "]" * DEEP
        + "\n"
        + '{"a":' * DEEP
        + "1"
        + "}" * DEEP
        + "\n"
        + json.dumps({"text": "fine", "meta": [[[]]]})
        + "\n"
    )
    return p


# ---------------------------------------------------------------- 1. nested too deeply


def test_loads_line_turns_deep_nesting_into_a_decode_error():
    with pytest.raises(json.JSONDecodeError) as e:
        loads_line("[" * DEEP + "]" * DEEP)
    assert e.value.msg == NESTED_TOO_DEEPLY
    assert loads_line("[[[1]]]", max_depth=3) == [[[1]]]
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        loads_line("[[[[1]]]]", max_depth=3)
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        loads_line(b'{"a": {"b": [{}]}}', max_depth=3)


def test_audit_skips_a_line_nested_100000_deep(tmp_path):
    s = run_audit(_deep_corpus(tmp_path), tmp_path / "o", Options(on_error="skip"))
    assert s["records"] == 2 and s["unreadable"] == 2 and s["classes"]["warning_framed"]["k"] == 1
    errors = [json.loads(line) for line in (tmp_path / "o" / "errors.jsonl").read_text().splitlines()]
    assert [e["where"].rsplit(":", 1)[1] for e in errors] == ["2", "3"]
    assert all(e["what"] == NESTED_TOO_DEEPLY for e in errors)


def test_audit_stops_on_a_line_nested_100000_deep_with_one_line(tmp_path):
    p = _deep_corpus(tmp_path)
    with pytest.raises(UserError, match="nested too deeply") as e:
        run_audit(p, tmp_path / "o", Options())
    assert e.value.where == f"{p}:2" and "--on-error skip" in e.value.fix
    r = CliRunner().invoke(_cli(), ["audit", str(p), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "Traceback" not in r.output and "RecursionError" not in r.output
    assert "nested too deeply" in r.output and f"{p}:2" in r.output


@pytest.mark.parametrize("args", [["--fix", "tag"], ["--fix", "rewrite", "-j", "2"]])
def test_a_row_the_parser_reads_but_nested_hundreds_deep_is_unreadable_not_a_crash(tmp_path, args):
    """json.loads reads 900 levels, but copying, pickling (workers) or writing the row back would not."""
    p = tmp_path / "deepish.jsonl"
    rows = [{"text": WARNED, "meta": json.loads("[" * d + "]" * d)} for d in (50, 900)]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    r = CliRunner().invoke(_cli(), ["audit", str(p), "--out", str(tmp_path / "o"), "--on-error", "skip", *args])
    assert r.exit_code == 0, r.output
    assert "1 records (1 unreadable)" in r.output
    assert len((tmp_path / "o" / "treated" / "deepish.jsonl").read_text().splitlines()) == 1


def test_evaluate_prompts_nested_too_deeply_is_one_line(tmp_path):
    p = tmp_path / "prompts.jsonl"
    p.write_text(json.dumps({"prompt": "write ping"}) + "\n" + "[" * DEEP + "]" * DEEP + "\n")
    with pytest.raises(UserError, match="nested too deeply") as e:
        load_prompts(p)
    assert e.value.where == f"{p}:2" and e.value.exit_code == 2
    arr = tmp_path / "prompts.json"
    arr.write_text("[" + "[" * DEEP + "]" * DEEP + "]")
    with pytest.raises(UserError, match="nested too deeply"):
        load_prompts(arr)
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps([{"prompt": "write ping", "meta": {"a": [1]}}]))
    assert [x.user for x in load_prompts(ok)] == ["write ping"]


# ---------------------------------------------------------------- 2. FIFOs and links

fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")


@fifo
def test_a_fifo_corpus_is_refused_with_one_line_not_read(tmp_path):
    f = tmp_path / "corpus.jsonl"
    os.mkfifo(f)
    with pytest.raises(UserError, match="not a regular file"):  # would block on open if it were read
        run_audit(f, tmp_path / "o", Options())
    r = CliRunner().invoke(_cli(), ["audit", str(f), "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "not a regular file" in r.output and "Traceback" not in r.output
    p = tmp_path / "prompts.jsonl"
    os.mkfifo(p)
    with pytest.raises(UserError, match="is not a file"):
        load_prompts(p)


def test_a_fifo_corpus_does_not_hang_the_command(tmp_path):
    """The real command, in a subprocess with a deadline (a read of the FIFO would block for ever)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    f = tmp_path / "corpus.jsonl"
    os.mkfifo(f)
    code = "from warnframe.cli import main; main()"
    args = [sys.executable, "-c", code, "audit", str(f), "--out", str(tmp_path / "o")]
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("audit of a FIFO hangs")
    assert r.returncode == 2 and "not a regular file" in r.stderr and "Traceback" not in r.stderr


@fifo
def test_fifos_and_links_in_a_folder_are_counted_and_reported(tmp_path):
    root = tmp_path / "repo"
    (root / "sub").mkdir(parents=True)
    (root / "a.py").write_text(WARNED + "\n")
    (root / "sub" / "b.md").write_text("Plain notes.\n")
    os.mkfifo(root / "pipe.py")
    os.mkfifo(root / "data.jsonl")
    (root / "link.py").symlink_to(root / "a.py")
    (root / "dirlink").symlink_to(root / "sub")
    (root / ".venv").mkdir()
    (root / ".venv" / "python").symlink_to(sys.executable)  # inside a skipped directory: not reported
    assert [p.name for p in iter_files(root)] == ["a.py", "b.md"]
    assert [(p.name, k) for p, k in skipped_entries(root)] == [
        ("data.jsonl", "FIFO"),
        ("dirlink", "symlink"),
        ("link.py", "symlink"),
        ("pipe.py", "FIFO"),
    ]
    s = run_audit(root, tmp_path / "o", Options())
    assert s["records"] == 2 and s["classes"]["warning_framed"]["k"] == 1
    assert s["skipped_inputs"]["count"] == 4 and s["skipped_inputs"]["by_kind"] == {"FIFO": 2, "symlink": 2}
    assert s["skipped_inputs"]["first"][0] == {"where": str(root / "data.jsonl"), "what": "FIFO"}
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Folder entries skipped, not read (FIFO 2, symlink 2" in md and "pipe.py" in md
    assert "Folder entries skipped (FIFO 2, symlink 2)" in (tmp_path / "o" / "report.html").read_text()
    r = CliRunner().invoke(_cli(), ["audit", str(root), "--out", str(tmp_path / "x")])
    assert r.exit_code == 0 and "4 folder entries not read: FIFO 2, symlink 2" in r.output


def test_a_jsonl_corpus_reports_no_skipped_inputs(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps({"text": WARNED}) + "\n")
    s = run_audit(p, tmp_path / "o", Options())
    assert s["skipped_inputs"] == {"count": 0, "by_kind": {}, "first": []}
    assert "Folder entries" not in (tmp_path / "o" / "report.md").read_text()


# ---------------------------------------------------------------- 3. prune is near-linear


def chained(n: int) -> str:
    """``n`` fenced blocks, each calling the one before; the last passes the chain to a sink, so
    keeping it keeps, one name at a time, all the others (the pairwise closure's worst case)."""
    parts = ["Here is the code:\n", "```python\ndef f0(x):\n    return x\n```\n"]
    parts += [f"```python\ndef f{i}(x):\n    return f{i - 1}(x)\n```\n" for i in range(1, n)]
    parts.append(f"```python\nimport os\nos.system(f{n - 1}(input()))\n```\n")
    return "".join(parts)


def test_prune_of_4000_chained_code_blocks_is_fast():
    text = chained(4000)
    lay = layout(text, "python")
    t0 = time.perf_counter()
    assert tagger.prune(text, lay) == text  # every block is needed
    assert time.perf_counter() - t0 < 2.0  # was 8.2 s (about cubic: 61.5 s for 8000)
    t0 = time.perf_counter()
    tagged = tagger.tag_record(Record(0, "x", "messages", text, "write code"))
    assert time.perf_counter() - t0 < 10.0 and tagged.findings


def _closure(text: str, lay) -> str | None:
    """The pairwise fixpoint ``prune`` had before (the reference for what it must return)."""
    from warnframe.audit import lexicon as lx

    low = text.lower()
    py = [(a, b) for a, b, lang in lay.fenced if lang == "python" and a <= b]
    lines = text.split("\n")
    body = {blk: "\n".join(lines[blk[0] : blk[1] + 1]) for blk in py}
    keep = {
        (a, b)
        for a, b in py
        if lx.SINK_GATE_LOW.search("\n".join(low.split("\n")[a : b + 1]))
        or lx.SCOPE_WORDS_LOW.search("\n".join(low.split("\n")[a : b + 1]))
    }
    if not keep:
        return None
    defined = {blk: lx.defined_names(body[blk]) for blk in py}
    used = {blk: set(tagger._IDENT.findall(body[blk])) for blk in py}
    while True:
        kd = set().union(*(defined[b] for b in keep))
        ku = set().union(*(used[b] for b in keep))
        new = {b for b in py if b not in keep and (defined[b] & ku or used[b] & kd)}
        if not new:
            break
        keep |= new
    for a, b in py:
        if (a, b) not in keep:
            lines[a : b + 1] = [""] * (b + 1 - a)
    return "\n".join(lines)


def test_prune_keeps_the_same_blocks_as_the_pairwise_closure():
    rng = random.Random(0)
    names = ["a", "b", "c", "run", "os", "query", "data", "cur"]
    partial = 0
    for _ in range(400):
        blocks = []
        for _ in range(rng.randint(1, 8)):
            body = []
            for _ in range(rng.randint(1, 4)):
                k, n1, n2 = rng.random(), rng.choice(names), rng.choice(names)
                body.append(
                    f"os.system({n1})"
                    if k < 0.1
                    else f"def {n1}({n2}):\n    return {n2}"
                    if k < 0.4
                    else f"{n1} = {n2}(1)"
                    if k < 0.7
                    else f"import {n1}"
                    if k < 0.8
                    else f"print({n1})"
                )
            blocks.append("```python\n" + "\n".join(body) + "\n```")
        text = "Some prose.\n" + "\nmore prose\n".join(blocks)
        lay = layout(text, "python")
        got = tagger.prune(text, lay)
        if len(lay.fenced) > 1 and got not in (None, text):
            partial += 1
            assert got == _closure(text, lay)
        elif len(lay.fenced) > 1:
            assert got == (None if _closure(text, lay) is None else text)
    assert partial > 20  # the random texts do exercise the partial closure


# ---------------------------------------------------------------- 4. too large: skipped, in no class


def test_a_record_too_large_for_the_detector_is_counted_only_as_skipped(tmp_path):
    big = "```python\n" + "x = 1\n" * 100_000 + "import os\nos.system('ping ' + host)\n```"
    p = tmp_path / "big.jsonl"
    p.write_text(
        json.dumps({"text": big}) + "\n" + json.dumps({"text": "# INSECURE\n" + VULN}) + "\n"
        + json.dumps({"text": "Nothing here."}) + "\n"
    )
    s = run_audit(p, tmp_path / "o", Options())
    assert s["records"] == 3 and s["detector_skipped"] == {"too large": 1} and s["classified"] == 2
    assert sum(c["k"] for c in s["classes"].values()) == 2  # the big one is in no class
    assert s["classes"]["none"]["k"] == 1 and s["classes"]["none"]["n"] == 2
    assert s["classes"]["warning_framed"]["k"] == 1 and s["flagged"]["n"] == 2
    assert sum(s["risk_histogram"].values()) == 2
    assert sum(n for row in s["class_position"].values() for n in row.values()) == 2
    md = (tmp_path / "o" / "report.md").read_text()
    assert "Not analysed by the detector (too large: 1)" in md and "counted in no class" in md
    details = [json.loads(line) for line in (tmp_path / "o" / "records.jsonl").read_text().splitlines()]
    assert details[0]["skipped"].startswith("too large")  # still listed, with why


def test_counts_of_a_too_large_record():
    c = Counts()
    c.count(tagger.Tagged("none", False, skipped="too large (600000 bytes > 524288)"))
    c.count(tagger.Tagged("none", False, skipped="bandit: nested too deep for its parser (rules only)"))
    assert c.records == 2 and dict(c.classes) == {"none": 1} and sum(c.risk_bins.values()) == 1
    assert dict(c.detector_skipped) == {"too large": 1, "bandit: nested too deep for its parser": 1}
    again = Counts.from_json(json.loads(json.dumps(c.to_json())))
    assert again.to_json() == c.to_json()
