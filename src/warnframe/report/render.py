"""report.md and report.html: the verdicts first, then one section per paper section, each beside
the paper, then the figure index and the configuration.

report.html is self-contained: the figures are embedded as base64 ``data:`` URIs and the
stylesheet is inline, so the one file can be mailed or archived. It is converted from report.md
by :func:`markdown_to_html`, a small converter for exactly the constructs the report uses
(headings, paragraphs, pipe tables, images, bullet and numbered lists, fenced code blocks, inline
code, bold, italics, links) — no third-party markdown package.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from ..store import atomic_write_text, read_json

#: The paper's seven figures: number, the section that draws it (as ``figures/fig<N>_*.png``).
FIGURES = (
    (1, "behavior"), (2, "entanglement"), (3, "entanglement"), (4, "stealth"),
    (5, "interventions"), (6, "tracing"), (7, "detection"),
)


def figure_files(root: Path) -> dict[int, str | None]:
    """Figure number -> its file relative to the run directory (None when not drawn)."""
    out = {}
    for n, _ in FIGURES:
        found = sorted((root / "figures").glob(f"fig{n}_*.png"))
        out[n] = f"figures/{found[0].name}" if found else None
    return out


def verdict_table(verdicts: list[dict]) -> str:
    lines = ["| § | Claim | Paper | Ours | Verdict |", "|---|---|---|---|---|"]
    for v in verdicts:
        detail = f" — {v['detail']}" if v.get("detail") else ""
        lines.append(f"| {v['section']} | {v['claim']} | {v['paper']} | {v['ours']}{detail} | **{v['verdict']}** |")
    return "\n".join(lines)


def collect(study) -> tuple[list[dict], list[str]]:
    """Verdicts and section texts of the configured sections whose metrics exist (in paper order)."""
    import importlib

    from ..study import SECTIONS

    verdicts, sections = [], []
    for name in (s for s in SECTIONS if s in study.cfg.sections):
        p = study.store.path("metrics", f"{name}.json")
        if not p.is_file():
            continue
        res = read_json(p)
        verdicts += res.get("verdicts", [])
        sections.append(importlib.import_module(f"..experiments.{name}", __package__).section(res))
    return verdicts, sections


def _tally(verdicts: list[dict]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
    return ", ".join(f"{k} {n}" for k, n in sorted(counts.items(), key=lambda x: -x[1])) or "none"


def figure_index(root: Path, body: str) -> str:
    """Which of the seven figures this run drew; figures not shown in a section are shown here."""
    files = figure_files(root)
    lines = ["## Figures", "", "| Figure | File | Drawn by |", "|---|---|---|"]
    extra = []
    for n, sec in FIGURES:
        rel = files[n]
        lines.append(f"| Figure {n} | {'`' + rel + '`' if rel else 'not drawn'} | {sec}{'' if rel else ' (section not run, or skipped before drawing)'} |")
        if rel and f"({rel})" not in body:
            extra.append(f"![Figure {n}]({rel})")
    known = {v for v in files.values() if v}
    for p in sorted((root / "figures").glob("*.png")) if (root / "figures").is_dir() else []:
        rel = f"figures/{p.name}"
        if rel not in known and f"({rel})" not in body:
            extra.append(f"![{p.stem}]({rel})")
    if extra:
        lines += ["", "Figures not shown in a section above:", ""] + [e + "\n" for e in extra]
    return "\n".join(lines)


def write_report(study) -> None:
    cfg = study.cfg
    verdicts, sections = collect(study)
    timings = study.store.timings()
    head = [
        "# warnframe report",
        "",
        f"Study preset `{cfg.preset}`, base model `{cfg.model.source}`, seeds {cfg.seeds}, "
        f"{cfg.sampling.samples_per_prompt} samples per prompt per seed, device `{study._device()}`. "
        f"Total stage time {sum(v or 0 for v in timings.values()):.0f} s.",
        "",
        "These are the numbers this run produced, beside the paper's. Nothing is tuned toward the paper. "
        "Rates carry n and a Wilson 95% interval, means a 95% t interval, AUCs and ratios a bootstrap 95% interval.",
        "",
        "## Verdicts",
        "",
        f"{len(verdicts)} claims: {_tally(verdicts)}.",
        "",
        verdict_table(verdicts),
        "",
    ]
    text = "\n".join(head + [s + "\n" for s in sections])
    text += "\n" + figure_index(study.store.path(), text) + "\n"
    text += "\n## Configuration\n\n```json\n" + json.dumps(cfg.model_dump(mode="json"), indent=2) + "\n```\n"
    atomic_write_text(study.store.path("report.md"), text)
    write_html(study.store.path("report.html"), text, study.store.path(), title=f"warnframe report ({cfg.preset})")


# ---------------------------------------------------------------- markdown -> self-contained HTML

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; line-height: 1.45; color: #222; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.88em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .3em .55em; vertical-align: top; } th { background: #f3f3f3; }
code { background: #f4f4f4; padding: 0 .2em; border-radius: 3px; font-size: 0.92em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 0.85em; } pre code { background: none; padding: 0; }
figure { margin: 1em 0; } img { max-width: 100%; } figcaption { color: #666; font-size: .85em; }
"""

_IMG_LINE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)\s*$")
_IMG = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_EM = re.compile(r"(?<![\w*\\])\*(?![\s*])([^*\n]+?)(?<![\s\\])\*(?![\w*])")
_URL = re.compile(r"(?<![\"'=(>])\bhttps?://[^\s<|)]+")
_HEAD = re.compile(r"^(#{1,6})\s+(.*)$")
_FENCE = re.compile(r"^\s*```(.*)$")
_UL = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_OL = re.compile(r"^(\s*)\d+[.)]\s+(.*)$")
_TABLE_SEP = re.compile(r"^\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$")


def data_uri(path: Path) -> str | None:
    """``data:image/png;base64,...`` for an image file, None when it is not there."""
    if not path.is_file():
        return None
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml", ".gif": "image/gif"}
    kind = mime.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _img(alt: str, src: str, root: Path, block: bool) -> str:
    uri = data_uri(root / src) if not src.startswith(("http://", "https://", "data:")) else None
    if uri is None:
        return f'<em class="missing">[{html.escape(alt)}: {html.escape(src)} not found]</em>'
    tag = f'<img src="{uri}" alt="{html.escape(alt, quote=True)}">'
    return f"<figure>{tag}<figcaption>{html.escape(alt)}</figcaption></figure>" if block else tag


def inline(text: str, root: Path) -> str:
    """Inline markdown to HTML: code spans, images (embedded), links, bare URLs, bold, italics."""
    keep: list[str] = []

    def stash(s: str) -> str:
        keep.append(s)
        return f"\x00{len(keep) - 1}\x00"

    text = _CODE.sub(lambda m: stash(f"<code>{html.escape(m.group(1))}</code>"), text)
    text = _IMG.sub(lambda m: stash(_img(m.group(1), m.group(2), root, block=False)), text)
    text = _LINK.sub(lambda m: stash(f'<a href="{html.escape(m.group(2), quote=True)}">{html.escape(m.group(1))}</a>'), text)
    text = _URL.sub(lambda m: stash(f'<a href="{html.escape(m.group(0), quote=True)}">{html.escape(m.group(0))}</a>'), text)
    text = html.escape(text, quote=False)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    text = _EM.sub(r"<em>\1</em>", text)
    return re.sub(r"\x00(\d+)\x00", lambda m: keep[int(m.group(1))], text)


def _cells(line: str) -> list[str]:
    s = line.strip()
    if s.startswith("|"):
        s = s[1:]
    if s.endswith("|") and not s.endswith("\\|"):
        s = s[:-1]
    # split on pipes that are not inside a code span
    out, cur, in_code = [], "", False
    for ch in s:
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def _table(lines: list[str], root: Path) -> str:
    head = _cells(lines[0])
    aligns = []
    for c in _cells(lines[1]):
        c = c.strip()
        aligns.append("right" if c.endswith(":") and not c.startswith(":") else "center" if c.startswith(":") and c.endswith(":") else None)
    def row(cells, tag):
        tds = []
        for i, c in enumerate(cells):
            al = aligns[i] if i < len(aligns) and aligns[i] else None
            style = f' style="text-align:{al}"' if al else ""
            tds.append(f"<{tag}{style}>{inline(c, root)}</{tag}>")
        return "<tr>" + "".join(tds) + "</tr>"
    body = [row(_cells(ln), "td") for ln in lines[2:]]
    return "<table><thead>" + row(head, "th") + "</thead><tbody>" + "".join(body) + "</tbody></table>"


def _list(lines: list[str], root: Path) -> str:
    """A (possibly nested by indentation) list; continuation lines join the item before."""
    def parse(i: int, indent: int) -> tuple[str, int]:
        ordered = bool(_OL.match(lines[i]))
        items: list[str] = []
        while i < len(lines):
            m = _UL.match(lines[i]) or _OL.match(lines[i])
            if m:
                ind = len(m.group(1))
                if ind < indent:
                    break
                if ind > indent and items:
                    sub, i = parse(i, ind)
                    items[-1] += sub
                    continue
                items.append(inline(m.group(2), root))
            else:
                items[-1] += " " + inline(lines[i].strip(), root)
            i += 1
        tag = "ol" if ordered else "ul"
        return f"<{tag}>" + "".join(f"<li>{x}</li>" for x in items) + f"</{tag}>", i

    out, i = [], 0
    while i < len(lines):
        m = _UL.match(lines[i]) or _OL.match(lines[i])
        s, i = parse(i, len(m.group(1)) if m else 0)
        out.append(s)
    return "".join(out)


def markdown_to_html(md: str, root: Path) -> str:
    """The body HTML of ``md``; images relative to ``root`` are embedded as data URIs."""
    lines = md.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        f = _FENCE.match(line)
        if f:
            lang = f.group(1).strip()
            j = i + 1
            while j < len(lines) and not _FENCE.match(lines[j]):
                j += 1
            cls = f' class="language-{html.escape(lang, quote=True)}"' if lang else ""
            out.append(f"<pre><code{cls}>" + html.escape("\n".join(lines[i + 1: j])) + "</code></pre>")
            i = j + 1
            continue
        h = _HEAD.match(line)
        if h:
            n = len(h.group(1))
            out.append(f"<h{n}>{inline(h.group(2).strip(), root)}</h{n}>")
            i += 1
            continue
        im = _IMG_LINE.match(line.strip())
        if im:
            out.append(_img(im.group(1), im.group(2), root, block=True))
            i += 1
            continue
        if line.lstrip().startswith("|") and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1].strip()):
            j = i + 2
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            out.append(_table(lines[i:j], root))
            i = j
            continue
        if _UL.match(line) or _OL.match(line):
            j = i + 1
            while j < len(lines) and lines[j].strip() and not _HEAD.match(lines[j]) and not _FENCE.match(lines[j]) and (
                    _UL.match(lines[j]) or _OL.match(lines[j]) or lines[j].startswith((" ", "\t"))):
                j += 1
            out.append(_list(lines[i:j], root))
            i = j
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() and not (
                _HEAD.match(lines[j]) or _FENCE.match(lines[j]) or _IMG_LINE.match(lines[j].strip()) or _UL.match(lines[j])
                or _OL.match(lines[j]) or lines[j].lstrip().startswith("|")):
            j += 1
        out.append("<p>" + inline(" ".join(x.strip() for x in lines[i:j]), root) + "</p>")
        i = j
    return "\n".join(out)


def render_html(md: str, root: Path, title: str = "warnframe report") -> str:
    """A complete, self-contained HTML document for ``md``."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n{markdown_to_html(md, root)}\n</body>\n</html>\n")


def write_html(path: Path, md: str, root: Path, title: str = "warnframe report") -> None:
    atomic_write_text(Path(path), render_html(md, Path(root), title))
