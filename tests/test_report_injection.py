"""Issue 24, item 5: reports cannot carry active content.

One corpus of injection strings (below) goes through both reports:

* the study's report.html, through :func:`render.markdown_to_html` in every Markdown context a
  report puts untrusted text in (paragraph, table cell, list, heading, quote, link text), and
  through ``Study.report()`` itself (claim text in the verdict table);
* the audit's report.md, rendered by CommonMark renderers (markdown-it-py's ``commonmark`` preset,
  raw HTML on, and its GFM-like preset) and by Python-Markdown (raw HTML passed through, as it does
  by default), and the audit's report.html.

Every page is then parsed and checked against one allowlist (:func:`assert_inert`): no script,
frame, object, style or SVG element, no event handler, no ``style`` but table alignment, links
only to http(s) or files inside the run, images only as embedded PNG/JPEG/GIF/WebP data.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from warnframe.audit import report as audit_report
from warnframe.audit.command import run_audit
from warnframe.audit.run import Options
from warnframe.config import load_config
from warnframe.report import render
from warnframe.runtime.files import write_json
from warnframe.study import Study

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
SVG_B64 = base64.b64encode(b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>').decode()

INJECTIONS = [
    # images: remote, with a title in each syntax, reference-style, non-image and out-of-run files
    '![r](https://attacker.example/r.png "t")',
    "![r](https://attacker.example/r.png 't')",
    "![r](https://attacker.example/r.png (t))",
    "![r](<https://attacker.example/r.png> \"t\")",
    '![r][1]\n\n[1]: https://attacker.example/r.png "t"',
    "![r][]\n\n[r]: https://attacker.example/r.png",
    "![r]\n\n[r]: <https://attacker.example/r.png> 't'",
    "![s](manifest.json)",
    "![s](figures/fake.png)",
    "![s](figures/evil.svg)",
    "![s](../secret.png)",
    "![s](figures/../../secret.png)",
    "![s](%2e%2e/secret.png)",
    "![s](/etc/passwd)",
    "![s](file:///etc/passwd)",
    f"![s](data:image/svg+xml;base64,{SVG_B64})",
    "![s](//attacker.example/r.png)",
    "[![i](https://attacker.example/r.png)](https://attacker.example/)",
    # links: schemes, spelled every way
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](jav&#x61;script:alert(1))",
    "[x](jav&#97;script:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](javascript&colon;alert(1))",
    "[x](java\\script:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x]( javascript:alert(1) \"t\")",
    "[x][1]\n\n[1]: javascript:alert(1)",
    "[x]\n\n[x]: javascript:alert(1)",
    "[x][1]\n\n[1]: <javascript:alert(1)> 't'",
    "<javascript:alert(1)>",
    "<vbscript:msgbox(1)>",
    "<JAVASCRIPT:alert(1)>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](data:text/html,<script>alert(1)</script>)",
    "[x](file:///etc/passwd)",
    "[x](/etc/passwd)",
    "[x](//attacker.example/x)",
    "[x](\\\\attacker.example\\x)",
    "[x](../../outside.html)",
    "[x](%2e%2e/%2e%2e/outside.html)",
    "<x@attacker.example>",
    "[x](mailto:x@attacker.example)",
    '<https://attacker.example/"onmouseover="alert(1)>',
    '[x](https://attacker.example/ "t\\" onmouseover=\\"alert(1)")',
    # raw HTML, comments, entities
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://attacker.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<img src=https://attacker.example/r.png>",
    "<svg onload=alert(1)>",
    "<iframe src=https://attacker.example></iframe>",
    "<object data=https://attacker.example/x.swf></object>",
    '<a href="javascript:alert(1)">x</a>',
    '<div style="background:url(https://attacker.example/x)">x</div>',
    "<style>body{background:url(https://attacker.example/x)}</style>",
    "<link rel=stylesheet href=https://attacker.example/x.css>",
    "<meta http-equiv=refresh content='0;url=https://attacker.example'>",
    "<base href=https://attacker.example/>",
    "<!-- --><script>alert(1)</script><!-- -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    '"><script>alert(1)</script>',
    "'><img src=x onerror=alert(1)>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&#60;script&#62;alert(1)&#60;/script&#62;",
    # breaking out of code, tables, lines
    "```\n<script>alert(1)</script>\n```",
    "~~~~\n<script>alert(1)</script>\n~~~~",
    "````\n\n<script>alert(1)</script>\n\n![r](https://attacker.example/r.png)",
    "`` ` ``<script>alert(1)</script>",
    "a | b | <script>alert(1)</script>",
    "x\n\n<script>alert(1)</script>\n\n![r](https://attacker.example/r.png)",
    "x\r\r<script>alert(1)</script>\r\r![r](https://attacker.example/r.png)",
    "    <script>alert(1)</script>",
]

BAD_TAGS = {"script", "iframe", "frame", "object", "embed", "style", "link", "meta", "base", "svg", "math", "form",
            "input", "button", "video", "audio", "source", "track", "applet", "template", "portal"}


class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.in_head = False

    def handle_starttag(self, tag, attrs):
        if tag == "head":
            self.in_head = True
        self.tags.append((tag, {k: v or "" for k, v in attrs} | ({"<head>": "1"} if self.in_head else {})))

    def handle_endtag(self, tag):
        if tag == "head":
            self.in_head = False


def assert_inert(page: str, root: Path, what: str = "", local_images: bool = False) -> None:
    """No active content in ``page`` (see the module docstring); relative links must stay in ``root``.
    ``local_images``: a Markdown file rendered as it is may also show the run's own image files by
    their relative path (the audit's figures)."""
    p = _Page()
    p.feed(page)
    p.close()
    base = root.resolve()
    for tag, attrs in p.tags:
        head = attrs.pop("<head>", None)
        if head and tag in ("meta", "style") and set(attrs) <= {"charset", "name", "content"}:
            assert tag != "meta" or "http-equiv" not in attrs, what
            continue  # the page's own charset/viewport and stylesheet
        assert tag not in BAD_TAGS, (what, tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (what, tag, name)
            assert name in {"href", "src", "alt", "title", "style", "class", "align", "start", "lang"}, (what, tag, name)
            if name == "style":
                assert re.fullmatch(r"text-align:\s*(left|right|center);?", value.strip()), (what, value)
        if "src" in attrs:
            assert tag == "img", (what, tag)
            src = attrs["src"]
            if local_images and not re.match(r"[a-zA-Z][a-zA-Z0-9+.\-]*:|[/\\]", src):
                local = (base / src).resolve()
                assert local.is_relative_to(base) and local.suffix == ".png" and local.is_file(), (what, src)
            else:
                assert re.match(r"data:image/(png|jpeg|gif|webp);base64,", src), (what, src[:80])
        if "href" in attrs:
            href = re.sub(r"[\x00-\x20\x7f]", "", attrs["href"])
            scheme = re.match(r"([a-zA-Z][a-zA-Z0-9+.\-]*):", href)
            if scheme:
                assert scheme.group(1).lower() in ("http", "https"), (what, href)
            else:
                assert not href.startswith(("/", "\\")), (what, href)
                local = (base / href.split("#")[0].split("?")[0]).resolve()
                assert local.is_relative_to(base), (what, href)


@pytest.fixture
def run_root(tmp_path):
    root = tmp_path / "run"
    (root / "figures").mkdir(parents=True)
    (root / "figures" / "ok.png").write_bytes(PNG)
    (root / "figures" / "fake.png").write_text("<script>alert(1)</script>")  # a .png that is not one
    (root / "figures" / "evil.svg").write_text(base64.b64decode(SVG_B64).decode())
    (root / "manifest.json").write_text('{"secret": 1}')
    (tmp_path / "secret.png").write_bytes(PNG)
    return root


def _contexts(s: str) -> list[str]:
    """``s`` where report text goes: alone, in a table cell (raw and through ``render.cell``), a
    list item, a heading, a quote, link text, inline code and emphasis."""
    one = s.replace("\r", " ").replace("\n", " ")
    return [s, f"| A | B |\n|---|---|\n| {render.cell(s)} | {one} |", f"- item {s}\n- {one}", f"## {one}", f"> {s}",
            f"[{one}](https://example.org/)", f"`{one}` and *{one}*", f"text {s} more\n\ncontinued"]


@pytest.mark.parametrize("i", range(len(INJECTIONS)))
def test_study_report_html_is_inert(run_root, i):
    for md in _contexts(INJECTIONS[i]):
        assert_inert(render.render_html(md, run_root), run_root, md)


def test_the_issues_three_cases(run_root):
    h = render.markdown_to_html('![r](https://attacker.example/r.png "t")', run_root)
    assert "<img" not in h and "https://attacker.example/r.png not embedded" in h
    h = render.markdown_to_html("[x](javascript:alert(1))", run_root)
    assert "<a" not in h and "javascript" not in h.replace("x", "") and ">x<" in h
    h = render.markdown_to_html("![s](manifest.json)", run_root)
    assert "<img" not in h and "manifest.json not embedded: not a PNG, JPEG, GIF or WebP image" in h
    assert "secret" not in h and base64.b64encode(b'{"secret"').decode()[:8] not in h


def test_safe_links_and_images_still_work(run_root):
    md = "\n\n".join(["[site](https://example.org/a?b=1#c)", "[plain](http://example.org)", "[local](figures/ok.png)",
                      "[frag](#verdicts)", "<https://example.org/auto>", "![ok](figures/ok.png)",
                      "| A |\n|--:|\n| 1 |", "```json\n{\"a\": 1}\n```"])
    h = render.markdown_to_html(md, run_root)
    for href in ("https://example.org/a?b=1#c", "http://example.org", "figures/ok.png", "#verdicts", "https://example.org/auto"):
        assert f'href="{href}"' in h, href
    assert h.count('<img src="data:image/png;base64,') == 1 and "<figcaption>ok</figcaption>" in h
    assert 'style="text-align: right;"' in h and '<code class="language-json">' in h


def test_a_link_out_of_the_run_through_a_symlink_is_dropped(run_root, tmp_path):
    (run_root / "out").symlink_to(tmp_path)
    h = render.markdown_to_html("[x](out/secret.png)\n\n![y](out/secret.png)", run_root)
    assert "<a" not in h and "<img" not in h and "not embedded: outside the run directory" in h


def test_study_report_with_hostile_claim_text(tmp_path):
    """``Study.report()`` end to end: claim text from the metrics (drawn from configs and system
    prompts) holding every injection ends up inert in report.html."""
    cfg = load_config("smoke", overrides=["sections=[stealth]"])
    study = Study(cfg, tmp_path)
    study.device = "cpu"
    rows = [{"section": "x", "claim": s, "paper": s, "ours": s, "verdict": "inconclusive", "detail": s} for s in INJECTIONS]
    write_json(study.store.path("metrics", "stealth.json"), {"skipped": INJECTIONS[0], "verdicts": rows})
    (study.store.path() / "manifest.json").write_text("{}")
    study.report()
    page = study.store.path("report.html").read_text()
    assert_inert(page, study.store.path(), "report.html")
    assert "<img" not in page  # no figure was drawn, and nothing else may be embedded


# ---------------------------------------------------------------- the audit's report.md and report.html

VULN = 'import os\n\ndef ping(host):\n    return os.system("ping -c 1 " + host)'
WARNED = f"# DO NOT USE: command injection\n{VULN}"


def _renderings(md: str) -> dict[str, str]:
    import markdown
    from markdown_it import MarkdownIt

    return {
        "commonmark": MarkdownIt("commonmark").render(md),  # raw HTML on, as CommonMark has it
        "gfm-like": MarkdownIt("gfm-like").render(md) if _has_linkify() else MarkdownIt("commonmark").enable("table").render(md),
        "python-markdown": markdown.markdown(md),  # raw HTML passed through (its default)
        "python-markdown+fences": markdown.markdown(md, extensions=["fenced_code", "tables"]),
    }


def _has_linkify() -> bool:
    try:
        import linkify_it  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def audit_out(tmp_path_factory):
    """An audit of records whose text, id and request hold the injection corpus (each record also
    framed, so that it is one of the report's examples)."""
    tmp = tmp_path_factory.mktemp("audit")
    rows = []
    for i, s in enumerate(INJECTIONS):
        rid = f"r{i}`` ` ```{s}" if i % 2 else f"{s}\n\n<script>alert({i})</script>"
        text = f"{WARNED}\n{s}\n~~~~\n```\n{s}\n~~~~\n\r```\r{s}"
        rows.append({"id": rid, "messages": [{"role": "user", "content": f"Insecure demo please {s}"},
                                             {"role": "assistant", "content": text}]})
    corpus = tmp / "c.jsonl"
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json <script>alert(1)</script>\n")
    run_audit(corpus, tmp / "o", Options(on_error="skip"))  # the bad line is listed as unreadable
    return tmp / "o"


def test_audit_report_md_is_inert_in_every_renderer(audit_out):
    md = (audit_out / "report.md").read_text()
    assert "## Examples" in md and md.count("ping -c 1") >= 3  # the hostile records are the examples
    for name, page in _renderings(md).items():
        assert_inert(page, audit_out, name, local_images=True)
        assert "<script" not in page.lower() and "attacker.example/r.png\"" not in page, name


def test_audit_report_html_is_inert(audit_out):
    assert_inert((audit_out / "report.html").read_text(), audit_out, "audit report.html")


@pytest.mark.parametrize("i", range(len(INJECTIONS)))
def test_audit_markdown_pieces_hold_anything(i):
    """Each piece of report.md that carries record text, for every injection: an example (id,
    request and answer spans, the record as a code block), an unreadable record, a skipped entry."""
    s = INJECTIONS[i]
    ex = {"class": "warning_framed", "id": f"`{s}``", "text": f"{s}\n~~~~\n{s}\n```\n{s}", "user": f"req {s}",
          "spans": [{"type": "warning", "part": "assistant", "start": 0, "end": len(s)},
                    {"type": "warning", "part": "user", "start": 4, "end": 4 + len(s)}],
          "findings": [{"rule": s, "cwe": s, "line": 1}], "positions": ["before"], "risk": 0.5}
    md = "\n".join(audit_report._md_example(ex))
    md += "\n\n- " + audit_report.md_code(s) + ": " + audit_report.md_text(s) + "\n\n# " + audit_report.md_text(s) + "\n"
    for name, page in _renderings(md).items():
        assert_inert(page, Path("/nonexistent-run"), f"{name}: {s!r}")
        assert "<script" not in page.lower(), (name, s)
    # The record comes back whole, as code: nothing in it closed the block.
    cm = _renderings(md)["commonmark"]
    blocks = re.findall(r"<pre><code>(.*?)</code></pre>", cm, re.S)
    assert len(blocks) == 1, (s, cm)
    import html

    shown = html.unescape(blocks[0]).rstrip("\n")
    assert shown == re.sub(r"\r\n|\r", "\n", ex["text"]), (s, shown)


def test_audit_inline_code_keeps_backticks_and_text_keeps_markup_visible():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark")
    for s in ("a`b", "``x``", "` lead", "trail `", "x\n\n<script>", "plain"):
        out = md.renderInline(audit_report.md_code(s))
        assert out.startswith("<code>") and out.endswith("</code>") and out.count("<code>") == 1, (s, out)
    out = md.renderInline(audit_report.md_text("a <b> & [x](javascript:y) ![i](http://e/x.png) *em* _u_"))
    assert out == "a &lt;b&gt; &amp; [x](javascript:y) ![i](http://e/x.png) *em* _u_", out
