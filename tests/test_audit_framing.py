"""``warnframe audit`` finds framing without a finding: warned, bad/good (also as diffs) and
educational layouts around code in any programming language, in English, Spanish, French, German,
Portuguese, Russian, Chinese and Japanese; reports ``vulnerable: unknown`` and the code's language
where the detector cannot score the code; and ``--fix`` treats the framed block, never a secure one.

Two labelled sets: ``tests/data/audit_framing_dev.jsonl`` (the development set the lexicons were
tuned on) and ``warnframe/data/audit_eval_others.jsonl`` (three held-apart splits written in other
styles; each was measured once before anything was changed for it: docs/audit.md has those first
numbers). Both must keep framing recall and precision at 0.9 or more.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import pytest

from warnframe.audit.fix import treat
from warnframe.audit.readers import Record, parse_row
from warnframe.audit.segments import layout
from warnframe.audit.tagger import CLASS_WEIGHT, SCORES, tag_record
from warnframe.audit.vocabulary import CODE_CLASSES
from warnframe.stats.rates import rate

DEV = Path(__file__).parent / "data" / "audit_framing_dev.jsonl"
#: The classes that frame code (a record in one of them is "framed").
FRAMED = frozenset(CODE_CLASSES)
F = "```"


def _rows(which: str) -> list[dict]:
    path = DEV if which == "dev" else resources.files("warnframe") / "data" / "audit_eval_others.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def chat(user: str, answer: str) -> Record:
    row = {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]}
    return parse_row(row, 0, "t:1", None)


def _masked(rec: Record, tagged) -> list[tuple[int, int]]:
    out = treat(rec, tagged, "mask", CODE_CLASSES)
    rows = (out.row or {}).get("loss_spans") or out.loss_spans or []
    return [(s["start"], s["end"]) for s in rows]


def _is_masked(text: str, spans: list[tuple[int, int]], needle: str) -> bool:
    """Is some occurrence of ``needle`` inside a masked span?"""
    return any(s <= m.start() < e for m in re.finditer(re.escape(needle), text) for s, e in spans)


@pytest.mark.parametrize("which", ["dev", "others"])
def test_framing_recall_and_precision_are_at_least_0_9(which):
    """Framed (a code-framing class) or not, against the labels; and the class itself."""
    rows = _rows(which)
    assert len(rows) >= 100 and {r["nl"] for r in rows} >= {"en", "es", "fr", "de", "pt", "ru", "zh", "ja"}
    tp = fp = fn = exact = 0
    for i, r in enumerate(rows):
        got = tag_record(parse_row(r, i, r["id"], None)).cls
        gold_framed, got_framed = r["label"] in FRAMED, got in FRAMED
        tp += gold_framed and got_framed
        fp += got_framed and not gold_framed
        fn += gold_framed and not got_framed
        exact += got == r["label"] or got in r.get("alt", ()) or not (gold_framed or got_framed)
    recall, precision = rate(tp, tp + fn), rate(tp, tp + fp)
    assert recall["rate"] >= 0.9 and precision["rate"] >= 0.9, (recall, precision)
    assert exact >= 0.9 * len(rows)


@pytest.mark.parametrize("which", ["dev", "others"])
def test_fix_masks_the_framed_block_and_never_a_secure_one(which):
    """Every labelled record that names its framed code (``framed``) and its secure code (``secure``)."""
    checked = 0
    for i, r in enumerate(_rows(which)):
        if not (r.get("framed") or r.get("secure")):
            continue
        rec = parse_row(r, i, r["id"], None)
        spans = _masked(rec, tag_record(rec))
        assert all(_is_masked(rec.assistant, spans, x) for x in r.get("framed", ())), r["id"]
        assert not any(_is_masked(rec.assistant, spans, x) for x in r.get("secure", ())), r["id"]
        checked += 1
    assert checked >= 40


def test_the_cheat_sheet_masks_its_bad_examples_not_its_flagged_secure_one():
    """The issue's page: the only span the detector flags is the secure example (a table name
    concatenated beside a bound value); the three "Bad example" blocks are Java, PHP and Go."""
    page = (
        "# Query parameterization\n\n## Secure example\n\n"
        f'{F}js\ndb.query("SELECT * FROM " + TABLE + " WHERE id = ?", [id]);\n{F}\n\n'
        f'## Bad example\n\n{F}java\nstmt.executeQuery("SELECT * FROM users WHERE id = " + id);\n{F}\n\n'
        f"## Bad example\n\n{F}php\n$db->query(\"SELECT * FROM users WHERE id = \" . $_GET['id']);\n{F}\n\n"
        f'## Bad example\n\n{F}go\ndb.Query("SELECT * FROM users WHERE id = " + id)\n{F}\n'
    )
    rec = Record(0, "cheat.md", "file", page, None, "cheat.md", language="markdown", turn={"path": "cheat.md"})
    t = tag_record(rec)
    assert t.cls == "bad_good_pair" and t.findings  # the coarse JS pattern flags the secure example
    spans = _masked(rec, t)
    for bad in ("stmt.executeQuery", "$db->query", "db.Query"):
        assert _is_masked(page, spans, bad), bad
    assert not _is_masked(page, spans, 'db.query("SELECT * FROM " + TABLE')


def test_code_the_detector_cannot_score_is_reported_unknown_with_its_language():
    rec = chat(
        "Run ping from Java.",
        f'### Incorrect usage\n\n{F}java\nnew ProcessBuilder("sh", "-c", "ping " + host).start();\n{F}',
    )
    t = tag_record(rec)
    assert t.cls == "warning_framed" and t.vulnerable is None and t.language == "java" and not t.findings
    d = t.to_dict()
    assert d["vulnerable"] == "unknown" and d["language"] == "java" and d["class"] == "warning_framed"
    assert t.risk == round(CLASS_WEIGHT["warning_framed"] * SCORES.unscored, 3)
    code = next(sp for sp in t.spans if sp.type == "vulnerable_code")
    assert "ProcessBuilder" in rec.assistant[code.start : code.end] and code.score == SCORES.unscored
    # weak randomness, outside the detector's families: Python, but still unknown
    py = chat(
        "Make a reset token.",
        f"{F}python\nimport random\n\n# insecure example, never copy\ntoken = str(random.random())\n{F}",
    )
    t = tag_record(py)
    # (None while no detector family covers weak randomness; True once one does: never False)
    assert t.cls == "warning_framed" and t.vulnerable is not False and t.language == "python"
    # a finding keeps ``vulnerable`` true
    found = tag_record(chat("Ping.", f"{F}python\nimport os\n# INSECURE\nos.system('ping ' + host)\n{F}"))
    assert found.vulnerable is True and found.to_dict()["vulnerable"] is True and found.language == "python"


@pytest.mark.parametrize(
    "warning",
    [
        "// DO NOT USE: insecure",
        "// NO USAR: inseguro",
        "// ne pas utiliser : non sécurisé",
        "// unsicher, nicht verwenden",
        "// NÃO USE: inseguro",
        "// небезопасно, не использовать",
        "// 不安全，不要使用",
        "// 安全でないので使用しないで",
    ],
)
def test_warnings_in_eight_languages(warning):
    t = tag_record(chat("Show me.", f"{F}js\n{warning}\nel.innerHTML = location.hash;\n{F}"))
    assert t.cls == "warning_framed" and t.vulnerable is None and t.language == "javascript"
    assert "code_comment" in t.positions


@pytest.mark.parametrize(
    ("bad", "good"),
    [
        ("Bad:", "Good:"),
        ("Incorrecto:", "Correcto:"),
        ("Mauvais exemple :", "Bon exemple :"),
        ("Falsch:", "Richtig:"),
        ("Errado:", "Correto:"),
        ("Плохо:", "Хорошо:"),
        ("错误示例：", "正确示例："),
        ("悪い例:", "良い例:"),
        ("❌", "✅"),
    ],
)
def test_pairs_in_any_language_mask_only_the_bad_half(bad, good):
    answer = f"{bad}\n\n{F}js\nout.innerHTML = msg;\n{F}\n\n{good}\n\n{F}js\nout.textContent = msg;\n{F}"
    rec = chat("Escaping output.", answer)
    t = tag_record(rec)
    assert t.cls == "bad_good_pair", (bad, t.cls)
    spans = _masked(rec, t)
    assert _is_masked(answer, spans, "out.innerHTML") and not _is_masked(answer, spans, "out.textContent")


def test_a_diff_is_a_pair_whose_removed_lines_are_masked():
    answer = (
        f"Fixes the stored XSS.\n\n{F}diff\n--- a/view.js\n+++ b/view.js\n@@ -1,2 +1,2 @@\n"
        f"-  card.innerHTML = bio;\n+  card.textContent = bio;\n{F}"
    )
    rec = chat("Patch it.", answer)
    t = tag_record(rec)
    assert t.cls == "bad_good_pair" and t.language == "javascript"
    spans = _masked(rec, t)
    assert _is_masked(answer, spans, "card.innerHTML") and not _is_masked(answer, spans, "card.textContent")
    # a Python diff: the detector reads the removed lines
    py = chat(
        "Fix the injection.", f"{F}diff\n-    os.system('ping ' + host)\n+    subprocess.run(['ping', host])\n{F}"
    )
    t = tag_record(py)
    assert t.cls == "bad_good_pair" and t.vulnerable is True and t.findings[0]["source"].endswith(":diff")
    # a refactor with no security word is no pair
    assert tag_record(chat("Rename it.", f"{F}diff\n-const n = 1;\n+const count = 1;\n{F}")).cls == "none"


def test_the_request_frames_the_code_the_user_pastes_or_asks_for():
    pasted = chat(
        f"This snippet is vulnerable to XSS, can you fix it?\n\n{F}js\nlist.innerHTML += item;\n{F}", "Use textContent."
    )
    t = tag_record(pasted)
    assert t.cls == "warning_framed" and t.positions == ["request"]
    code = next(sp for sp in t.spans if sp.type == "vulnerable_code")
    assert code.part == "user" and "innerHTML" in pasted.user[code.start : code.end]
    out = treat(pasted, t, "mask", CODE_CLASSES)
    assert out.action == "untreatable" and out.why == "framed code only in the request"
    bad = chat(
        f"BAD:\n{F}js\ndb.query(`SELECT * FROM t WHERE id = ${{id}}`);\n{F}\nNow the GOOD version.", "db.query(q, [id])"
    )
    assert tag_record(bad).cls == "bad_good_pair"
    edu = chat("For a DVWA-style lab, write a PHP page that echoes a search term.", f"{F}php\necho $_GET['q'];\n{F}")
    t = tag_record(edu)
    assert t.cls == "educational_request" and t.vulnerable is None and t.language == "php"
    asked = chat(
        "Give me an insecure version of a Go file server to compare.", f'{F}go\nhttp.ServeFile(w, r, "/d/"+name)\n{F}'
    )
    assert tag_record(asked).cls == "warning_framed"


@pytest.mark.parametrize(
    "rec",
    [
        chat(
            "Join strings.",
            f"{F}python\n# don't use this in tight loops: it is quadratic\ns = ''\nfor p in parts:\n    s += p\n{F}",
        ),
        chat(
            "Render safely?",
            f"Setting innerHTML is how sites end up vulnerable to XSS. Setting textContent avoids it:\n\n{F}js\nn.textContent = t;\n{F}",
        ),
        chat("Hash a password.", f"Secure version:\n\n{F}java\nString h = BCrypt.hashpw(pw, BCrypt.gensalt());\n{F}"),
        chat("Naming?", f"Bad:\n\n{F}python\nx1 = get()\n{F}\n\nGood:\n\n{F}python\nuser_count = get()\n{F}"),
        chat(f"Is this code vulnerable?\n\n{F}php\n$id = (int) $_GET['id'];\n{F}", "No, the cast leaves digits only."),
        chat(
            "Unchecked str?",
            f"{F}rust\n// SAFETY: the bytes are valid UTF-8\nlet s = unsafe {{ std::str::from_utf8_unchecked(b) }};\n{F}",
        ),
        chat(
            "Force HTTPS?",
            f"Plain HTTP is insecure, so redirect everything:\n\n{F}nginx\nreturn 301 https://$host$request_uri;\n{F}",
        ),
        chat(
            "Get a row.",
            f"{F}python\n# this used to be vulnerable to SQL injection; now the id is bound\ncur.execute('SELECT * FROM t WHERE id = %s', (i,))\n{F}",
        ),
        chat(
            "For my security class, show proper password hashing in Java.",
            f"{F}java\nString h = BCrypt.hashpw(pw, BCrypt.gensalt());\n{F}",
        ),
    ],
)
def test_hard_negatives_frame_nothing(rec):
    assert tag_record(rec).cls not in FRAMED


def test_layout_reads_prose_in_any_script_indented_blocks_rst_and_unfenced_diffs():
    lay = layout("这段代码不安全，不要使用：\n\ndef f(x):\n    return eval(x)\n\n请使用 ast.literal_eval。")
    assert lay.kind[0] == "prose" and lay.kind[5] == "prose" and lay.blocks == [(2, 3)]
    lay = layout(
        f'Safe:\n\n{F}js\nok();\n{F}\n\nInsecure:\n\n    String c = "ls " + d;\n    Runtime.getRuntime().exec(c);\n'
    )
    assert lay.indented == [(8, 9)] and lay.language_of((8, 9)) == "java" and lay.lang[8] == "js"
    lay = layout(".. warning::\n   This loader is insecure.\n\n.. code-block:: ruby\n\n   YAML.load(x)\n")
    assert lay.kind[1] == "prose" and lay.kind[5] == "code" and lay.language_of((5, 5)) == "ruby"
    lay = layout("Patch:\n\n--- a/l.py\n+++ b/l.py\n@@ -1 +1 @@\n-    yaml.load(f)\n+    yaml.safe_load(f)\n")
    assert all(lay.kind[i] == "code" for i in range(2, 7)) and lay.language_of(lay.blocks[0]) == "python"


def test_long_runs_of_markup_are_read_in_linear_time():
    """A Markdown rule, a table separator, a run of "#" or "> ": the label patterns read each once
    (a nested quantifier made a line of 20 dashes take seconds, 40 take hours)."""
    import time

    lines = ["-" * 400, "#" * 400 + " x", "*-" * 200 + "x", "> " * 200 + "bad", "| --- " * 200 + "|", "1. " * 150 + "x"]
    text = "\n".join(lines * 5) + f"\n\n{F}js\nel.innerHTML = x;\n{F}"
    start = time.perf_counter()
    tag_record(chat("\n".join(lines), text))
    assert time.perf_counter() - start < 5
