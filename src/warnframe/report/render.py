"""report.md and report.html: the claims first (drawn from ``metrics/claims.json``), then one
section per paper section (each section's report part, ``report.sections.<name>``), each beside
the paper, then the figure index and the configuration. The sections come from
``experiments.registry``; nothing here imports the study.

report.html is self-contained: the figures are embedded as base64 ``data:`` URIs and the
stylesheet is inline, so the one file can be mailed or archived. It is converted from report.md
with Python-Markdown (tables, fenced code) by :func:`markdown_to_html`.
"""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from warnframe.report.claims import Claim
from warnframe.runtime.files import atomic_write_text, read_json, write_json
from warnframe.sections import SECTIONS

#: The paper's seven figures: number, the section that draws it (as ``figures/fig<N>_*.png``); the
#: figures of warnframe's own stages (``fig_dose_response.png``, ...) are listed after them.
FIGURES = tuple((int(f[3]), sec.name) for sec in SECTIONS.values() for f in sec.figures if f[3].isdigit())


def figure_files(root: Path) -> dict[int, str | None]:
    """Figure number -> its file relative to the run directory (None when not drawn)."""
    out = {}
    for n, _ in FIGURES:
        found = sorted((root / "figures").glob(f"fig{n}_*.png"))
        out[n] = f"figures/{found[0].name}" if found else None
    return out


def cell(text) -> str:
    """Text for one markdown table cell: pipes escaped, line breaks flattened (raw HTML is never
    rendered anyway, see :func:`markdown_to_html`)."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def heading(name: str) -> str:
    """A section's markdown heading, from its registry title."""
    return f"## {SECTIONS[name].title}"


def skipped(name: str, reason: str) -> str:
    """The markdown of a section that was skipped: why, and its figures (which say why too)."""
    figs = [f"![Figure {f[3]}](figures/{f})" for f in SECTIONS[name].figures]
    return "\n".join([heading(name), "", f"Skipped: {reason}.", "", *[x + "\n" for x in figs]])


def verdict_table(claims: list[Claim]) -> str:
    """The report's verdict table, one row per claim (from ``metrics/claims.json``)."""
    lines = ["| § | Claim | Paper | Ours | Verdict |", "|---|---|---|---|---|"]
    for c in claims:
        detail = f" — {c.why}" if c.why else ""
        lines.append(f"| {cell(c.section)} | {cell(c.claim)} | {cell(c.paper)} | {cell(c.ours)}{cell(detail)} | **{c.verdict}** |")
    return "\n".join(lines)


def gather(study) -> tuple[list[Claim], list[str]]:
    """Claims and markdown of the configured sections whose metrics exist, in report order."""
    claims, sections = [], []
    for name, sec in SECTIONS.items():
        p = study.store.path("metrics", f"{name}.json")
        if name not in study.cfg.sections or not p.is_file():
            continue
        res = read_json(p)
        claims += [Claim.from_row(v, i) for i, v in enumerate(res.get("verdicts", []))]
        sections.append(sec.report.markdown(res))
    return claims, sections


def collect(study) -> tuple[list[dict], list[str]]:
    """Verdict rows (``section, claim, paper, ours, verdict, detail``) and section texts, as the CLI
    prints them."""
    claims, sections = gather(study)
    return [c.verdict_row() for c in claims], sections


def write_claims(study, claims: list[Claim]) -> Path:
    """``metrics/claims.json``: every claim of the run (id, section, paper, ours, n, interval, test,
    margin, verdict, why), the file the report's verdict table is drawn from."""
    path = study.store.path("metrics", "claims.json")
    write_json(path, {"claims": [c.record() for c in claims]})
    return path


def _tally(claims: list[Claim]) -> str:
    counts: dict[str, int] = {}
    for c in claims:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
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
    claims, sections = gather(study)
    path = write_claims(study, claims)
    claims = [Claim.from_row(r) for r in read_json(path)["claims"]]
    timings = study.store.timings()
    head = [
        "# warnframe report",
        "",
        f"Study preset `{cfg.preset}`, base model `{cfg.model.source}`, seeds {cfg.seeds}, "
        f"{cfg.sampling.samples_per_prompt} samples per prompt per seed, device `{study.device}`. "
        f"Total stage time {sum(v or 0 for v in timings.values()):.0f} s.",
        "",
        "These are the numbers this run produced, beside the paper's. Nothing is tuned toward the paper. "
        "Rates carry n and a Wilson 95% interval, means a 95% t interval, AUCs and ratios a bootstrap 95% interval.",
        "",
        "## Verdicts",
        "",
        f"{len(claims)} claims: {_tally(claims)}.",
        "",
        verdict_table(claims),
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

#: The images a report embeds: suffix -> (MIME type, the file's first bytes). SVG is left out on
#: purpose (it can hold script); anything else is shown as a note, never embedded.
IMAGE_TYPES = {".png": ("image/png", (b"\x89PNG\r\n\x1a\n",)), ".jpg": ("image/jpeg", (b"\xff\xd8\xff",)),
               ".jpeg": ("image/jpeg", (b"\xff\xd8\xff",)), ".gif": ("image/gif", (b"GIF87a", b"GIF89a")),
               ".webp": ("image/webp", (b"RIFF",))}


def data_uri(path: Path) -> str | None:
    """``data:image/png;base64,...`` for an image file (PNG, JPEG, GIF or WebP, by suffix and by
    its first bytes), None when it is not there or is not such an image."""
    kind = IMAGE_TYPES.get(path.suffix.lower())
    if kind is None or not path.is_file():
        return None
    data = path.read_bytes()
    if not data.startswith(kind[1]) or (path.suffix.lower() == ".webp" and data[8:12] != b"WEBP"):
        return None
    return f"data:{kind[0]};base64," + base64.b64encode(data).decode("ascii")


_IGNORED = re.compile(r"[\x00-\x20\x7f]")  # browsers drop these from a URL (tab, newline) or around it
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")


def _local_path(url: str, base: Path) -> Path | None:
    """The file a relative URL names inside ``base`` (query and fragment dropped, %-escapes and
    backslashes read as a browser reads them); None for an absolute path, another scheme, or a
    path (``..``, a symlink) that leads out of ``base``."""
    if _SCHEME.match(url) or url.startswith(("/", "\\")):
        return None
    path = unquote(url.split("#", 1)[0].split("?", 1)[0]).replace("\\", "/")
    if not path or path.startswith("/") or "\x00" in path:
        return None
    target = (base / path).resolve()
    return target if target.is_relative_to(base) else None


def safe_href(url: str, base: Path) -> str | None:
    """The link target as it may stand in the report, or None: only ``http(s)`` addresses, a
    fragment, or a relative path to a file inside the run directory ``base`` (no ``javascript:``,
    ``data:``, ``file:`` or any other scheme, however its letters are written; no absolute path;
    no ``..`` out of the run)."""
    clean = _IGNORED.sub("", url)
    scheme = _SCHEME.match(clean)
    if scheme:
        return clean if scheme.group(1).lower() in ("http", "https") else None
    if clean.startswith("#"):
        return clean
    return clean if _local_path(clean, base) is not None else None


class _Sanitizer(HTMLParser):
    """Rebuilds HTML from an allowlist: the tags Markdown makes (headings, paragraphs, lists,
    tables, code, emphasis, links, images), each with only the attributes below; links through
    :func:`safe_href`; images embedded as data URIs only when they are image files inside the run
    directory, otherwise a visible note. Everything else (other tags, attributes, comments,
    declarations) is dropped, its text kept and escaped."""

    TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "br", "hr", "strong", "em", "b", "i", "code", "pre",
            "blockquote", "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a", "del", "sup", "sub"}
    VOID = {"br", "hr", "img"}
    ALIGN = re.compile(r"text-align:\s*(left|right|center);?")
    LANG = re.compile(r"language-[\w+.\-]{1,40}")

    def __init__(self, base: Path):
        super().__init__(convert_charrefs=True)
        self.base = base
        self.out: list[str] = []
        self.open: list[tuple[str, bool]] = []  # tags seen, and whether each was written

    def attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> str | None:
        """The attributes kept for ``tag`` (escaped), or None to drop the tag itself."""
        keep = []
        for name, value in attrs:
            value = value or ""
            if tag == "a" and name == "href":
                href = safe_href(value, self.base)
                if href is None:
                    return None
                keep.append(("href", href))
            elif tag == "a" and name == "title":
                keep.append(("title", value))
            elif tag in ("th", "td") and name == "style" and self.ALIGN.fullmatch(value.strip()):
                keep.append(("style", value.strip()))
            elif tag in ("th", "td") and name == "align" and value in ("left", "right", "center"):
                keep.append(("align", value))
            elif tag == "code" and name == "class" and self.LANG.fullmatch(value):
                keep.append(("class", value))
            elif tag == "ol" and name == "start" and value.isdigit() and len(value) < 10:
                keep.append(("start", value))
        if tag == "a" and not any(n == "href" for n, _ in keep):
            return None
        return "".join(f' {n}="{html.escape(v, quote=True)}"' for n, v in keep)

    def image(self, attrs: list[tuple[str, str | None]]) -> None:
        got = dict(attrs)
        alt, src = got.get("alt") or "", got.get("src") or ""
        clean = _IGNORED.sub("", src)
        target = _local_path(clean, self.base)
        uri = data_uri(target) if target is not None else None
        if uri is None:
            why = ("not embedded: outside the run directory" if target is None else
                   "not found" if not target.is_file() else "not embedded: not a PNG, JPEG, GIF or WebP image")
            self.out.append(f'<em class="missing">[{html.escape(alt)}: {html.escape(src)} {why}]</em>')
            return
        self.out.append(f'<figure><img src="{uri}" alt="{html.escape(alt, quote=True)}">'
                        f"<figcaption>{html.escape(alt)}</figcaption></figure>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.image(attrs)
            return
        kept = self.attrs(tag, attrs) if tag in self.TAGS else None
        if tag in self.VOID:
            if kept is not None:
                self.out.append(f"<{tag}{kept}>")
            return
        self.open.append((tag, kept is not None))
        if kept is not None:
            self.out.append(f"<{tag}{kept}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID or all(t != tag for t, _ in self.open):
            return
        while self.open:
            name, shown = self.open.pop()
            if shown:
                self.out.append(f"</{name}>")
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data))

    def result(self) -> str:
        self.close()
        self.out += [f"</{name}>" for name, shown in reversed(self.open) if shown]
        self.open = []
        return "".join(self.out)


def sanitize_html(body: str, root: Path) -> str:
    """``body`` rebuilt by :class:`_Sanitizer` for the run directory ``root``: no script, no event
    handler, no style but table alignment, links only to http(s) or run-local files, images only the
    run's own image files, embedded."""
    parser = _Sanitizer(Path(root).resolve())
    parser.feed(body)
    return parser.result()


def markdown_to_html(md: str, root: Path) -> str:
    """HTML for report markdown (Python-Markdown with tables and fenced code), every image of the
    run embedded as a data URI so the page stands alone.

    Report text carries untrusted strings (system prompts, model outputs, corpus names), so raw
    HTML in the markdown is shown as text, never rendered, and the HTML Markdown makes is then
    rebuilt from an allowlist (:func:`sanitize_html`), whatever syntax produced it (inline or
    reference links, autolinks, titles, entities): links only to ``http(s)`` or to files inside
    ``root``; images only image files inside ``root`` (embedded), anything else (a remote address,
    an absolute or ``..`` path, a missing or non-image file) a visible note instead.
    """
    import markdown

    conv = markdown.Markdown(extensions=["tables", "fenced_code", "sane_lists"])
    conv.preprocessors.deregister("html_block")  # raw HTML blocks: escaped as text
    conv.inlinePatterns.deregister("html")  # inline tags: escaped as text
    return sanitize_html(conv.convert(md), root)


def render_html(md: str, root: Path, title: str = "warnframe report") -> str:
    """A complete, self-contained HTML document for ``md``."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n{markdown_to_html(md, root)}\n</body>\n</html>\n")


def write_html(path: Path, md: str, root: Path, title: str = "warnframe report") -> None:
    atomic_write_text(Path(path), render_html(md, Path(root), title))
