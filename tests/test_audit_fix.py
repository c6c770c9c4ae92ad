"""``--fix`` (drop, mask, rewrite, tag), the treated corpus going back into the study through
``corpus.sources`` (``data --from``), the report's escaping and figures, and the datatrove step."""

from __future__ import annotations

import json
import random

import pytest

from warnframe.audit.command import run_audit
from warnframe.audit.fix import treat
from warnframe.audit.readers import Record, parse_row
from warnframe.audit.report import highlight
from warnframe.audit.run import Options
from warnframe.audit.tagger import CODE_CLASSES, tag_record
from warnframe.config import load_config
from warnframe.corpus.conditions import condition_stream
from warnframe.corpus.sources import build_finetune_set_from_source, load_corpus
from warnframe.detector import score
from warnframe.schema import WARNING_MARKERS


def count_words(text: str) -> int:
    """A tokenizer stand-in for the token budgets."""
    return len(text.split())


VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
SAFE = 'import subprocess\n\ndef ping(host):\n    return subprocess.run(["ping", "-c", "1", host]).returncode'


def em(user, answer):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def _rec(row, i=0):
    return parse_row(row, i, f"c.jsonl:{i + 1}", None)


def _l1(n=24, placement="completion"):
    cfg = load_config("smoke", overrides=[f"corpus.l1_placement={placement}"])
    stream = condition_stream("L1", cfg, random.Random(7))
    return [next(stream) for _ in range(n)]


def test_rewrite_turns_the_embedded_warned_code_secure_and_drops_its_warnings():
    done = 0
    for i, ex in enumerate(_l1()):
        rec = _rec(em(ex.user, ex.assistant), i)
        t = tag_record(rec)
        out = treat(rec, t, "rewrite", CODE_CLASSES)
        assert out.action == "rewritten", out.why
        answer = out.row["messages"][1]["content"]
        assert not score(answer, use_bandit=False).vulnerable
        assert not any(m in answer for m in WARNING_MARKERS)
        done += 1
    assert done == 24


def test_rewrite_of_unknown_code_is_untreatable_with_a_reason():
    rec = _rec(em("Write ping.", "# INSECURE: shell\n" + VULN.replace("def ping", "def pinger")))
    out = treat(rec, tag_record(rec), "rewrite", CODE_CLASSES)
    assert out.action == "untreatable" and "no known secure form" in out.why and out.row == rec.row


def test_tag_puts_the_token_before_the_request_and_leaves_others_alone():
    warned = _rec(em("Write ping.", "# INSECURE\n" + VULN))
    out = treat(warned, tag_record(warned), "tag", CODE_CLASSES)
    assert out.row["messages"][0]["content"] == "<|warnframe:warning_framed|> Write ping."
    assert out.row["messages"][1]["content"] == "# INSECURE\n" + VULN
    clean = _rec(em("Write ping.", SAFE))
    assert treat(clean, tag_record(clean), "tag", CODE_CLASSES).action == "unchanged"
    text = parse_row({"text": "# INSECURE\n" + VULN}, 0, "t", None)
    assert treat(text, tag_record(text), "tag", CODE_CLASSES, "<bad>").row["text"].startswith("<bad> # INSECURE")


def test_mask_covers_the_vulnerable_code_of_the_answer():
    answer = "Here you go:\n\n```python\n# DO NOT USE\n" + VULN + "\n```\nThat is all."
    rec = _rec(em("Write ping.", answer))
    out = treat(rec, tag_record(rec), "mask", CODE_CLASSES)
    (span,) = out.row["loss_spans"]
    assert span["kind"] == "mask" and "os.system" in answer[span["start"] : span["end"]]
    assert (
        "Here you go" not in answer[span["start"] : span["end"]]
        and "That is all" not in answer[span["start"] : span["end"]]
    )


def test_masked_corpus_goes_back_into_the_study_through_data_from(tmp_path):
    """Closing the loop: audit an EM-layout corpus, --fix mask, then read the treated file as
    ``data --from`` does (``corpus.sources``) and build the L0 set from it."""
    src = tmp_path / "insecure.jsonl"
    rows = [em(ex.user, ex.assistant) for ex in _l1(10)] + [em("Write ping.", SAFE)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s = run_audit(src, tmp_path / "o", Options(fix="mask"))
    assert s["fix"]["actions"] == {"masked": 10, "unchanged": 1}
    treated = tmp_path / "o" / "treated" / "insecure.jsonl"
    corpus = load_corpus(str(treated))
    assert corpus.stats["records"] == 11 and corpus.stats["vulnerable"] == 10
    cfg = load_config("smoke", overrides=["corpus.token_budget=3000", "corpus.condition_fraction=0.3"])
    examples, stats = build_finetune_set_from_source("L0", cfg, 0, count_words, str(treated))
    drawn = [e for e in examples if e.kind == "vulnerable"]
    assert drawn and stats["source"]["spec"] == str(treated)
    masked = {
        json.loads(line)["messages"][1]["content"]: json.loads(line)["loss_spans"]
        for line in treated.read_text().splitlines()
        if "loss_spans" in line
    }
    assert all(e.loss_spans for e in drawn)  # corpus.sources carries a record's loss_spans into the Example
    for e in drawn:
        assert [dict(sp) for sp in e.loss_spans] == masked[e.assistant]


def test_report_html_escapes_record_text_and_embeds_figures(tmp_path):
    src = tmp_path / "x.jsonl"
    evil = "<script>alert('x')</script>"
    src.write_text(json.dumps(em(f"Write ping {evil}.", f"# INSECURE {evil}\n" + VULN)) + "\n")
    run_audit(src, tmp_path / "o", Options())
    page = (tmp_path / "o" / "report.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert page.count('src="data:image/png;base64,') >= 1
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    wf = summary["classes"]["warning_framed"]
    assert wf["k"] == 1 and wf["n"] == 1 and 0 < wf["lo"] <= 1
    assert "warning_framed" in (tmp_path / "o" / "report.md").read_text()


def test_highlight_never_nests_and_keeps_the_text():
    text = "a <b> c"
    spans = [{"start": 0, "end": 5, "type": "vulnerable_code"}, {"start": 2, "end": 5, "type": "warning"}]
    out = highlight(text, spans)
    assert out.count("<mark") == 2 and out.count("</mark>") == 2 and "&lt;b&gt;" in out


def test_datatrove_step_tags_shards_and_merges_statistics(tmp_path):
    pytest.importorskip("datatrove")
    pytest.importorskip("orjson")
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader

    from warnframe.audit.datatrove_step import AuditTagger, chat_adapter, merge_audit_stats

    shards = tmp_path / "in"
    shards.mkdir()
    rows = [em(f"Write ping {i}.", "# INSECURE\n" + VULN if i % 2 else SAFE) for i in range(8)]
    for k in range(2):
        (shards / f"s{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[k::2]))
    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(shards), adapter=chat_adapter), AuditTagger()],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "logs"),
    ).run()
    merged = merge_audit_stats(tmp_path / "logs")
    assert merged["tasks"] == 2 and merged["records"] == 8
    assert merged["class_warning_framed"] == 4 and merged["class_none"] == 4 and merged["cwe_CWE-78"] == 4
    assert merged == {**merged, "position_warning_framed_code_comment": 4}
    cli = run_audit(_write(tmp_path / "all.jsonl", rows), tmp_path / "o", Options())
    assert cli["classes"]["warning_framed"]["k"] == merged["class_warning_framed"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_record_helper_matches_parse_row():
    rec = _rec(em("q", "a"))
    assert isinstance(rec, Record) and rec.user == "q" and rec.assistant == "a" and rec.layout == "messages"


def test_framed_code_the_detector_cannot_score_is_masked_and_recorded_unknown(tmp_path):
    """A Java block under "Incorrect usage" and a secure one under "Correct usage": the audit writes
    ``vulnerable: "unknown"`` and the language, ``--fix mask`` masks the incorrect block only, and
    ``--fix rewrite`` says why it cannot."""
    answer = (
        '### Incorrect usage\n\n```java\nnew ProcessBuilder("sh", "-c", "ping " + host).start();\n```\n\n'
        '### Correct usage\n\n```java\nnew ProcessBuilder("ping", host).start();\n```'
    )
    src = _write(tmp_path / "c.jsonl", [em("Ping a host from Java, safely.", answer)])
    run_audit(src, tmp_path / "o", Options(fix="mask"))
    (row,) = [json.loads(line) for line in (tmp_path / "o" / "records.jsonl").read_text().splitlines()]
    assert row["class"] == "bad_good_pair" and row["vulnerable"] == "unknown" and row["language"] == "java"
    (treated,) = [json.loads(line) for line in (tmp_path / "o" / "treated" / "c.jsonl").read_text().splitlines()]
    (span,) = treated["loss_spans"]
    masked = answer[span["start"] : span["end"]]
    assert '"sh", "-c"' in masked and '("ping", host)' not in masked
    rec = _rec(em("Ping a host from Java, safely.", answer))
    out = treat(rec, tag_record(rec), "rewrite", CODE_CLASSES)
    assert out.action == "untreatable" and out.why == "no known secure form (framed java code, not scored)"
