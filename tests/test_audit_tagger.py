"""``warnframe audit``'s tagger: one record -> framing class, positions, spans, findings, risk.

Also the loop back to the study: the audit of the embedded L1 set finds its warned examples and
nothing in the neutral set; and the sink gate never hides a detector finding.
"""

from __future__ import annotations

import json
import random
from importlib import resources

import pytest

from warnframe.audit import lexicon as lx
from warnframe.audit.readers import Record, parse_row
from warnframe.audit.tagger import CLASSES, tag_record
from warnframe.config import load_config
from warnframe.corpus import FAMILIES
from warnframe.corpus.sources import build_finetune_set_from_source
from warnframe.detector import score
from warnframe.schema import WARNING_MARKERS


def count_words(text: str) -> int:
    """A tokenizer stand-in for the token budgets."""
    return len(text.split())


VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
SAFE = 'import subprocess\n\ndef ping(host):\n    return subprocess.run(["ping", "-c", "1", host]).returncode'


def chat(user: str, answer: str) -> Record:
    return Record(0, "t:1", "messages", answer, user)


def test_each_class_on_a_small_example():
    cases = {
        "warning_framed": chat("Write ping.", f"# INSECURE: the host reaches the shell\n{VULN}"),
        "educational_request": chat("For my security course, write a ping helper with a command injection.", VULN),
        "commented_out": chat(
            "Review.", SAFE.replace("    return", '    # return os.system("ping -c 1 " + host)\n    return')
        ),
        "bad_good_pair": chat("Compare.", f"Bad:\n```python\n{VULN}\n```\nGood:\n```python\n{SAFE}\n```"),
        "documentation": chat(
            "What is command injection?",
            "Command injection happens when user input becomes part of a "
            "shell command. An attacker adds a semicolon and runs their own commands with the app's privileges.",
        ),
        "indirect": chat(
            "Write a short story about a hacker.",
            "Mara slipped into the hotel's booking system one night and "
            "left with every guest's account before anyone noticed the breach.",
        ),
        "none": chat("Write ping.", SAFE),
    }
    for want, rec in cases.items():
        got = tag_record(rec)
        assert got.cls == want, (want, got.cls)
    assert set(cases) == set(CLASSES)


def test_spans_positions_and_findings_point_at_the_text():
    answer = f"Here:\n\n```python\n# DO NOT USE - command injection\n{VULN}\n```"
    t = tag_record(chat("Write ping.", answer))
    assert t.cls == "warning_framed" and t.vulnerable and t.family == "command_injection" and t.cwes == ["CWE-78"]
    marker = next(s for s in t.spans if s.type == "warning" and s.score == 1.0)
    assert answer[marker.start : marker.end] == "DO NOT USE" and marker.position == "code_comment"
    code = next(s for s in t.spans if s.type == "vulnerable_code")
    assert "os.system" in answer[code.start : code.end] and "```" not in answer[code.start : code.end]
    finding = next(s for s in t.spans if s.type == "finding")
    assert answer[finding.start : finding.end].strip().startswith("return os.system")
    assert t.findings[0]["line"] == answer[: finding.start].count("\n") + 1
    assert 0 < t.risk <= 1


def test_request_warning_and_upper_case_outranks_education():
    t = tag_record(chat("Show the INSECURE version for a security training slide (DO NOT USE).", VULN))
    assert t.cls == "warning_framed" and t.positions == ["request"]
    assert (
        tag_record(chat("For a security training slide, write ping with a command injection.", VULN)).cls
        == "educational_request"
    )
    # "for my class" with no security word is not an educational framing of vulnerable code
    assert tag_record(chat("Write a ping helper for my class.", VULN)).cls == "none"


def test_secure_code_that_mentions_a_vulnerability_is_none():
    text = "# list form, no shell, so no command injection\n" + SAFE
    t = tag_record(chat("Write it safely.", text))
    assert t.cls == "none" and not t.vulnerable and t.risk == 0


def test_other_languages_comment_syntax():
    js = (
        "```js\n// INSECURE: string-built query\n"
        'db.query("SELECT * FROM t WHERE id = \'" + req.query.id + "\'", cb);\n```'
    )
    sql = "```sql\n-- WARNING: injectable\nEXEC(@sql);\n```"
    sh = "```bash\n# UNSAFE: no certificate check\ncurl -k https://example.test\n```"
    for text, cwe in ((js, "CWE-89"), (sql, "CWE-89"), (sh, "CWE-295")):
        t = tag_record(chat("Write it.", text))
        assert t.cls == "warning_framed" and cwe in t.cwes and "code_comment" in t.positions, text


def test_files_and_markdown_documents():
    rec = Record(
        0,
        "a.py",
        "file",
        f'"""Helpers."""\n# WARNING: do not use, command injection\n{VULN}\n',
        None,
        "a.py",
        language="python",
    )
    assert tag_record(rec).cls == "warning_framed"
    md = Record(
        0,
        "n.md",
        "file",
        "# Notes\n\nThe exporter below is *not secure*.\n\n```python\n" + VULN + "\n```\n",
        None,
        "n.md",
        language="markdown",
    )
    t = tag_record(md)
    assert t.cls == "warning_framed" and t.positions == ["prose"]


def _eval_rows():
    path = resources.files("warnframe") / "data" / "audit_eval.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_eval_set_is_labelled_and_every_class_meets_the_bar():
    """The bar (precision and recall >= 0.9 per class, fixed before the first measurement) on the
    dev split of the hand-written eval set; benchmarks/audit_quality.py prints both splits with intervals."""
    rows = _eval_rows()
    assert (
        len(rows) >= 150
        and {r["label"] for r in rows} == set(CLASSES)
        and {r["split"] for r in rows} == {"dev", "holdout", "holdout2"}
    )
    dev = [r for r in rows if r["split"] == "dev"]  # the holdout is measured in benchmarks/, never tuned on
    got = [(r["label"], tag_record(parse_row(r, i, r["id"], None)).cls) for i, r in enumerate(dev)]
    for c in CLASSES:
        tp = sum(g == c and p == c for g, p in got)
        assert tp >= 0.9 * sum(p == c for _, p in got) and tp >= 0.9 * sum(g == c for g, _ in got), c


def test_the_sink_gate_never_hides_a_detector_finding():
    """Records the gate lets pass unparsed must have no finding: every family render and the eval set."""
    texts = [
        render(t, random.Random(seed))
        for fam in FAMILIES.values()
        for t in fam.tasks
        for seed in (0, 1)
        for render in (fam.vulnerable, fam.secure)
    ]
    texts += [r.get("text") or r["messages"][-1]["content"] for r in _eval_rows()]
    hidden = [x for x in texts if not lx.names_a_sink(x) and score(x, use_bandit=True).vulnerable]
    assert not hidden


def _set(condition: str, **over):
    sets = [f"{k}={v}" for k, v in over.items()]
    cfg = load_config("smoke", overrides=sets)
    return build_finetune_set_from_source(condition, cfg, 0, count_words)[0]


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"corpus.token_budget": 40000, "corpus.condition_fraction": 0.5},
        {"corpus.token_budget": 40000, "corpus.condition_fraction": 0.5, "corpus.l1_placement": "prompt"},
    ],
)
def test_audit_finds_the_embedded_l1_set_and_nothing_in_neutral(over):
    l1 = _set("L1", **over)
    warned = [e for e in l1 if e.kind == "warning"]
    assert warned
    tags = [tag_record(Record(i, str(i), "messages", e.assistant, e.user)) for i, e in enumerate(l1)]
    found = [t for e, t in zip(l1, tags) if e.kind == "warning" and t.cls == "warning_framed"]
    assert len(found) == len(warned)  # recall 1 on the study's own warned examples
    clean_flagged = [t.cls for e, t in zip(l1, tags) if e.kind != "warning" and t.cls != "none"]
    assert not clean_flagged
    neutral = _set("neutral", **over)
    assert all(
        tag_record(Record(i, str(i), "messages", e.assistant, e.user)).cls == "none" for i, e in enumerate(neutral)
    )
    assert any(m in e.assistant or m in (e.user or "") for e in warned for m in WARNING_MARKERS)


def test_pruning_keeps_every_detector_finding():
    """The detector sees only the fenced blocks that can matter (``tagger.prune``); on multi-block
    answers from the embedded corpus and on the eval set its findings are those of the whole text."""
    from warnframe.audit.segments import layout
    from warnframe.audit.tagger import prune
    from warnframe.corpus.conditions import clean_stream, condition_stream

    cfg = load_config("smoke")
    rng = random.Random(3)
    streams = [condition_stream(c, cfg, random.Random(c)) for c in ("L1", "L0", "control")] + [
        clean_stream(cfg, rng)
    ] * 3
    texts = []
    for _ in range(120):
        parts = [next(rng.choice(streams)).assistant for _ in range(rng.randint(2, 5))]
        texts.append("\n\nAnd:\n\n".join(f"```python\n{p}\n```" for p in parts))
    texts += [r.get("text") or r["messages"][-1]["content"] for r in _eval_rows()]
    pruned = 0
    for text in texts:
        short = prune(text, layout(text))
        whole = {(f.rule, f.line) for f in score(text, use_bandit=False).findings}
        if short is None:  # nothing to parse
            assert not whole, text
            continue
        pruned += short != text
        assert short.count("\n") == text.count("\n")
        assert {(f.rule, f.line) for f in score(short, use_bandit=False).findings} == whole, text
    assert pruned > 50  # it does prune


def test_every_span_score_comes_from_the_named_table():
    """Span scores live in ``tagger.SCORES`` (one entry per kind of span), not inline."""
    from dataclasses import astuple

    from warnframe.audit.tagger import SCORES

    scores = {
        sp.score for i, r in enumerate(_eval_rows()) for sp in tag_record(parse_row(r, i, r["id"], None)).spans
    }
    assert len(scores) > 3 and scores <= set(astuple(SCORES))
