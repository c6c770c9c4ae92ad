"""report.md and report.html: the verdicts first, then one section per paper section, each beside
the paper, then the figure index and the configuration.

report.html is self-contained: the figures are embedded as base64 ``data:`` URIs and the
stylesheet is inline, so the one file can be mailed or archived. It is converted from report.md
with Python-Markdown (tables, fenced code) by :func:`markdown_to_html`.
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

_IMG_TAG = re.compile(r'<img alt="([^"]*)" src="([^"]+)" ?/?>')


def data_uri(path: Path) -> str | None:
    """``data:image/png;base64,...`` for an image file, None when it is not there."""
    if not path.is_file():
        return None
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml", ".gif": "image/gif"}
    kind = mime.get(path.suffix.lower(), "application/octet-stream")
    return f"data:{kind};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def markdown_to_html(md: str, root: Path) -> str:
    """HTML for report markdown (Python-Markdown with tables and fenced code), every local image
    embedded as a data URI so the page stands alone; a missing image becomes a visible note."""
    import markdown

    body = markdown.markdown(md, extensions=["tables", "fenced_code", "sane_lists"])

    def embed(m: re.Match) -> str:
        alt, src = html.unescape(m.group(1)), html.unescape(m.group(2))
        uri = None if src.startswith(("http://", "https://", "data:")) else data_uri(Path(root) / src)
        if uri is None:
            return f'<em class="missing">[{html.escape(alt)}: {html.escape(src)} not found]</em>'
        return f'<figure><img src="{uri}" alt="{html.escape(alt, quote=True)}"><figcaption>{html.escape(alt)}</figcaption></figure>'

    return _IMG_TAG.sub(embed, body)


def render_html(md: str, root: Path, title: str = "warnframe report") -> str:
    """A complete, self-contained HTML document for ``md``."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{html.escape(title)}</title>\n"
            f"<style>{CSS}</style>\n</head>\n<body>\n{markdown_to_html(md, root)}\n</body>\n</html>\n")


def write_html(path: Path, md: str, root: Path, title: str = "warnframe report") -> None:
    atomic_write_text(Path(path), render_html(md, Path(root), title))
