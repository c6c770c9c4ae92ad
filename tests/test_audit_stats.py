"""The audit's statistics (``audit.run``): counted per chunk, merged across chunks and workers in
chunk order, written as each chunk's done marker and read back on resume, in the current layout
and in the first one (``"|"``-joined keys), so an audit interrupted before the change resumes."""

from __future__ import annotations

import json
from collections import Counter

from warnframe.audit.command import run_audit
from warnframe.audit.readers import Record
from warnframe.audit.run import STATS_FORMAT, ChunkStats, Counts, Options, merge_stats
from warnframe.audit.tagger import tag_record

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
SAFE = 'import subprocess\n\ndef ping(host):\n    return subprocess.run(["ping", "-c", "1", host]).returncode'
WARNED = f"# DO NOT USE: command injection\n{VULN}"

#: A part file the first layout wrote (``warnframe audit --on-error skip --fix drop --chunk 7``,
#: examples left out).
FIRST_LAYOUT = {
    "chunk": 1,
    "records": 6,
    "errors": [{"where": "chat.jsonl:8", "what": "malformed JSON line: Expecting property name"}],
    "classes": {"warning_framed": 4, "none": 2},
    "class_cwe": {"warning_framed|CWE-78": 4, "none|-": 1, "none|CWE-78": 1},
    "class_cwe_position": {
        "warning_framed|CWE-78|answer": 2,
        "warning_framed|CWE-78|code_comment": 2,
        "none|-|-": 1,
        "none|CWE-78|-": 1,
    },
    "class_position": {"warning_framed|answer": 2, "warning_framed|code_comment": 2, "none|-": 2},
    "vulnerable": 5,
    "parse_failed": 0,
    "sources": {"rules": 5},
    "actions": {"dropped": 4, "unchanged": 2},
    "untreatable": {},
    "examples": {"warning_framed": [], "none": []},
    "risk_bins": {"9": 5, "0": 1},
    "class_vulnerable": {"warning_framed|True": 4, "none|False": 1, "none|True": 1},
    "detector_skipped": {},
    "seconds": 0.0188,
    "n_errors": 1,
}


def _chat(i: int, answer: str) -> Record:
    return Record(i, f"t:{i}", "messages", answer, f"Write ping {i}.")


def _first_layout(stats: ChunkStats) -> dict:
    """``stats`` as the first layout wrote them (for the resume test)."""
    c = stats.counts
    vulnerable = Counter({f"{k}|True": n for k, n in c.vulnerable_by_class.items()})
    vulnerable.update({f"{k}|False": n - c.vulnerable_by_class[k] for k, n in c.classes.items()})
    return {
        "chunk": stats.chunk,
        "records": c.records,
        "errors": stats.errors,
        "classes": dict(c.classes),
        "class_cwe": {"|".join(k): n for k, n in c.class_cwe.items()},
        "class_cwe_position": {"|".join(k): n for k, n in c.class_cwe_position.items()},
        "class_position": {"|".join(k): n for k, n in c.class_position.items()},
        "vulnerable": c.vulnerable,
        "parse_failed": c.parse_failed,
        "sources": dict(c.sources),
        "actions": dict(c.actions),
        "untreatable": dict(c.untreatable),
        "examples": stats.examples,
        "risk_bins": {str(b): n for b, n in c.risk_bins.items()},
        "class_vulnerable": {k: n for k, n in vulnerable.items() if n},
        "detector_skipped": dict(c.detector_skipped),
        "seconds": stats.seconds,
        "n_errors": stats.n_errors,
    }


def test_counts_of_a_record_by_class_cwe_and_position():
    c = Counts()
    c.count(tag_record(_chat(0, WARNED)))
    c.count(tag_record(_chat(1, SAFE)))
    assert c.records == 2 and c.vulnerable == 1 and c.classes == {"warning_framed": 1, "none": 1}
    assert c.vulnerable_by_class == {"warning_framed": 1}
    assert c.class_cwe == {("warning_framed", "CWE-78"): 1, ("none", "-"): 1}
    assert c.class_position == {("warning_framed", "code_comment"): 1, ("none", "-"): 1}
    assert c.class_cwe_position == {("warning_framed", "CWE-78", "code_comment"): 1, ("none", "-", "-"): 1}
    assert sum(c.risk_bins.values()) == 2 and c.risk_bins[0] == 1


def test_chunk_stats_round_trip_and_keep_their_order():
    s = ChunkStats(3, errors=[{"where": "x:1", "what": "bad"}], n_errors=1, seconds=0.5)
    for i, answer in enumerate([SAFE, WARNED, VULN, WARNED]):
        s.counts.count(tag_record(_chat(i, answer)))
    d = json.loads(json.dumps(s.to_json()))  # as written and read back
    assert d["format"] == STATS_FORMAT and "|" not in json.dumps(d["counts"])
    back = ChunkStats.from_json(d)
    assert back == s
    for name in (*Counts.BY_NAME, *Counts.BY_TUPLE, "risk_bins"):
        assert list(getattr(back.counts, name)) == list(getattr(s.counts, name)), name  # order: ties in the summary


def test_the_first_layout_is_still_read():
    s = ChunkStats.from_json(FIRST_LAYOUT)
    c = s.counts
    assert s.chunk == 1 and s.n_errors == 1 and s.errors[0]["where"] == "chat.jsonl:8" and s.seconds == 0.0188
    assert c.records == 6 and c.vulnerable == 5 and c.vulnerable_by_class == {"warning_framed": 4, "none": 1}
    assert list(c.class_cwe_position) == [
        ("warning_framed", "CWE-78", "answer"),
        ("warning_framed", "CWE-78", "code_comment"),
        ("none", "-", "-"),
        ("none", "CWE-78", "-"),
    ]
    assert c.class_position[("none", "-")] == 2 and c.risk_bins == {9: 5, 0: 1} and c.actions["dropped"] == 4
    older = {k: v for k, v in FIRST_LAYOUT.items() if k not in ("class_vulnerable", "detector_skipped", "n_errors")}
    s = ChunkStats.from_json(older)  # files older still lacked some counters
    assert s.n_errors == 1 and not s.counts.vulnerable_by_class and not s.counts.detector_skipped


def test_merge_sums_in_chunk_order_and_keeps_the_first_examples_and_errors():
    records = [_chat(i, [WARNED, SAFE, VULN][i % 3]) for i in range(9)]
    chunks, whole = [], Counts()
    for k in range(3):
        s = ChunkStats(k, errors=[{"where": f"c{k}", "what": "bad"}] * 15, n_errors=15, seconds=1.0)
        for rec in records[3 * k : 3 * k + 3]:
            t = tag_record(rec)
            s.counts.count(t)
            whole.count(t)
            s.examples.setdefault(t.cls, []).append({"id": rec.where})
        chunks.append(s)
    merged = merge_stats(chunks, per_class=2)
    assert merged.counts == whole and merged.chunks == 3 and merged.tag_seconds == 3.0
    assert merged.n_errors == 45 and len(merged.first_errors) == 20 and merged.first_errors[-1]["where"] == "c1"
    assert [e["id"] for e in merged.examples["warning_framed"]] == ["t:0", "t:3"]


def test_slim_keeps_the_examples_still_needed():
    shown: Counter = Counter()
    a = ChunkStats(0, examples={"warning_framed": [{"id": 1}, {"id": 2}]}, errors=[{}] * 30, n_errors=30)
    b = ChunkStats(1, examples={"warning_framed": [{"id": 3}, {"id": 4}]})
    sa, sb = a.slim(shown, 3), b.slim(shown, 3)
    assert len(sa.errors) == 20 and sa.n_errors == 30
    assert sb.examples["warning_framed"] == [{"id": 3}] and shown["warning_framed"] == 3


def test_an_audit_started_before_the_layout_change_resumes(tmp_path):
    corpus = tmp_path / "c.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Write ping {i}."},
                          {"role": "assistant", "content": [WARNED, SAFE, VULN][i % 3]}]} for i in range(10)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{oops\n")
    opts = Options(chunk=3, on_error="skip", fix="mask")
    fresh = run_audit(corpus, tmp_path / "fresh", opts)
    parts = tmp_path / "fresh" / "parts"
    for p in sorted(parts.glob("*.stats.json")):  # rewrite the markers as the first layout wrote them
        p.write_text(json.dumps(_first_layout(ChunkStats.from_json(json.loads(p.read_text())))))
    again = run_audit(corpus, tmp_path / "fresh", opts)
    assert again["resumed_chunks"] == again["chunks"] == 4
    for s in (fresh, again):
        del s["timing"], s["resumed_chunks"]
    # the first layout had no language of the framed code: a resume from it reports none, the rest is equal
    assert again.pop("class_language") == {} and fresh.pop("class_language")["warning_framed"]
    assert again == fresh and fresh["unreadable"] == 1 and fresh["classes"]["warning_framed"]["k"] == 4


def test_a_marker_in_an_unknown_layout_is_tagged_again(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"text": WARNED}) + "\n")
    run_audit(corpus, tmp_path / "o", Options())
    (tmp_path / "o" / "parts" / "000000.stats.json").write_text(json.dumps({"format": 99, "chunk": 0}))
    s = run_audit(corpus, tmp_path / "o", Options())
    assert s["resumed_chunks"] == 0 and s["records"] == 1
