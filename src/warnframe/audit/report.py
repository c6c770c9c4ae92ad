"""The audit's report: ``summary.json``, ``report.md`` and a self-contained ``report.html``.

Counts by class, class x CWE and class x position; each class's share of the corpus with a
Wilson 95% interval over the records read; what ``--fix`` did; the unreadable records with file
and line; example records with their spans highlighted (all record text HTML-escaped); two figures,
written to ``figures/`` and embedded in the HTML as data URIs.
"""

from __future__ import annotations

import html
import itertools
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from warnframe.audit.run import ERRORS_SHOWN, TOO_LARGE, AuditStats
from warnframe.audit.tagger import CLASSES, POSITIONS
from warnframe.report.figures import pyplot, save
from warnframe.report.render import data_uri
from warnframe.runtime.files import atomic_write_text, write_json
from warnframe.stats.rates import fmt_rate, rate

_SPAN_CSS = {"warning": "w", "pair_good": "g", "vulnerable_code": "v", "finding": "f", "mention": "m"}
CSS = """body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th:first-child,td:first-child{text-align:left}pre{background:#f7f7f7;padding:.8em;overflow-x:auto;white-space:pre-wrap}
mark.w{background:#ffd27f}mark.g{background:#b8f0b8}mark.v{background:#ffe4e4}mark.f{background:#ff9d9d}
mark.m{background:#cfe3ff}img{max-width:100%}.legend mark{padding:0 .4em}"""


def summarise(
    stats: AuditStats,
    corpus: Path,
    layout: str,
    seconds: float,
    workers: int,
    opts,
    treated: Path | None,
    skipped_inputs: Sequence[tuple[Path, str]] = (),
) -> dict:
    """The summary dict written to summary.json (shares with n and Wilson intervals). Records too
    large for the detector are read but classified in no class: the shares are of the others
    (``classified``). ``skipped_inputs``: the folder entries not read (``readers.skipped_entries``)."""
    c = stats.counts
    n = c.records
    too_large = c.detector_skipped.get(TOO_LARGE, 0)
    classified = n - too_large
    classes = {k: rate(c.classes.get(k, 0), classified) for k in CLASSES}
    table: dict[str, dict[str, int]] = {}
    for (cls, cwe), count in c.class_cwe.items():
        table.setdefault(cls, {})[cwe] = count
    positions: dict[str, dict[str, int]] = {}
    for (cls, pos), count in c.class_position.items():
        positions.setdefault(cls, {})[pos] = count
    languages: dict[str, dict[str, int]] = {}
    for (cls, lang), count in c.class_language.items():
        languages.setdefault(cls, {})[lang] = count
    return {
        "corpus": str(corpus),
        "layout": layout,
        "records": n,
        "unreadable": stats.n_errors,
        "unreadable_first": stats.first_errors[:ERRORS_SHOWN],
        "classes": classes,
        "classified": classified,
        "flagged": rate(sum(c.classes.get(k, 0) for k in CLASSES if k != "none"), classified),
        "vulnerable_unframed": rate(c.vulnerable_by_class.get("none", 0), classified),
        "vulnerable": rate(c.vulnerable, classified),
        "vulnerable_unknown": rate(sum(c.vulnerable_unknown_by_class.values()), classified),
        "vulnerable_unknown_by_class": dict(c.vulnerable_unknown_by_class),
        "class_language": languages,
        "class_cwe": table,
        "class_position": positions,
        "parse_failed": c.parse_failed,
        "detector_skipped": dict(c.detector_skipped),
        "skipped_inputs": {
            "count": len(skipped_inputs),
            "by_kind": dict(Counter(kind for _p, kind in skipped_inputs)),
            "first": [{"where": str(p), "what": kind} for p, kind in skipped_inputs[:ERRORS_SHOWN]],
        },
        "class_cwe_position": [
            {"class": cls, "cwe": cwe, "position": pos, "records": count}
            for (cls, cwe, pos), count in sorted(c.class_cwe_position.items(), key=lambda kv: -kv[1])
        ],
        "findings_by_source": dict(c.sources),
        "risk_histogram": {f"{b / 10:.1f}": c.risk_bins.get(b, 0) for b in range(10)},
        "fix": None
        if not opts.fix
        else {
            "mode": opts.fix,
            "classes": list(opts.fix_classes),
            "actions": dict(c.actions),
            "untreatable": dict(c.untreatable),
            "treated": str(treated) if treated else None,
        },
        "timing": {
            "seconds": round(seconds, 2),
            "workers": workers,
            "records_per_second": round(n / seconds, 1) if seconds else None,
            "tag_seconds": round(stats.tag_seconds, 2),
        },
        "chunks": stats.chunks,
        "resumed_chunks": stats.resumed_chunks,
        "options": {
            "use_bandit": opts.use_bandit,
            "exhaustive": opts.exhaustive,
            "field": opts.field,
            "on_error": opts.on_error,
        },
    }


# ---------------------------------------------------------------- figures


def _figures(summary: dict, fig_dir: Path) -> list[tuple[str, Path]]:
    plt = pyplot()
    out = []
    counts = [summary["classes"][c]["k"] for c in CLASSES]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.barh(list(CLASSES)[::-1], counts[::-1], color="#d9822b")
    ax.set_xlabel(f"records (of {summary['records']})")
    ax.set_title("Framing classes")
    for i, v in enumerate(counts[::-1]):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    path = fig_dir / "classes.png"
    save(fig, path)
    out.append(("Records per framing class", path))
    cwes = sorted({cwe for row in summary["class_cwe"].values() for cwe in row if cwe != "-"})
    rows = [c for c in CLASSES if c in summary["class_cwe"] and any(k != "-" for k in summary["class_cwe"][c])]
    if cwes and rows:
        fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(cwes), 0.9 + 0.45 * len(rows)))
        grid = [[summary["class_cwe"][r].get(c, 0) for c in cwes] for r in rows]
        ax.imshow(grid, cmap="Oranges", aspect="auto")
        ax.set_xticks(range(len(cwes)), cwes, rotation=45, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        for i, line in enumerate(grid):
            for j, v in enumerate(line):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=8)
        ax.set_title("Class x CWE (records)")
        path = fig_dir / "class_cwe.png"
        save(fig, path)
        out.append(("Records by class and CWE", path))
    return out


# ---------------------------------------------------------------- markdown
# Record text, ids, paths and error messages are untrusted: in report.md they are either inside a
# code span or an indented code block that nothing in them can close, or escaped, so that no renderer
# (CommonMark, GitHub's, Python-Markdown) turns them into HTML, links or images.

_LINE_BREAKS = re.compile(r"\r\n?|\n|[\x00\x0b\x0c\x85\u2028\u2029]")
_PUNCT = re.compile(r"([\\`*_{}\[\]()#+\-.!~])")  # what can start Markdown syntax


def md_text(text) -> str:
    """``text`` as inert Markdown on one line: ``&``, ``<`` and ``>`` as entities (some renderers
    do not take a backslash before ``<``), other Markdown punctuation backslash-escaped, line
    breaks as spaces."""
    flat = _LINE_BREAKS.sub(" ", str(text))
    return _PUNCT.sub(r"\\\1", html.escape(flat, quote=False))


def md_code(text) -> str:
    """``text`` as an inline code span that nothing inside can close: delimited by more backticks
    than its longest run, padded with a space (which CommonMark strips), on one line."""
    flat = _LINE_BREAKS.sub(" ", str(text))
    ticks = "`" * (1 + max((len(m) for m in re.findall(r"`+", flat)), default=0))
    return f"{ticks} {flat} {ticks}"


def md_block(text: str) -> list[str]:
    """``text`` as the lines of an indented code block: every line (split wherever a renderer ends
    one: CR, LF, CRLF) indented four spaces, so that no line of it can end the block, whatever it
    holds (```` ``` ````, ``~~~~``, HTML), in CommonMark and in dialects without fences alike."""
    return ["    " + line for line in re.split(r"\r\n|\r|\n", text)]


def _crosstab(title: str, table: dict[str, dict[str, int]], cols: list[str]) -> list[str]:
    """A markdown table of counts: one row per class present in ``table``, one column per ``cols``."""
    return ["", title, "", "| Class | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols),
            *[f"| {c} | " + " | ".join(str(table[c].get(w, 0)) for w in cols) + " |" for c in CLASSES if c in table]]

def _md_tables(summary: dict) -> list[str]:
    n = summary["records"]
    lines = [
        (
            f"Records read: **{n}**; unreadable: **{summary['unreadable']}**; flagged (any class but none): "
            f"{fmt_rate(summary['flagged'])}; vulnerable code with no framing (L0-like, class none): "
            f"{fmt_rate(summary['vulnerable_unframed'])}; framed code the detector cannot score (vulnerable: "
            f"unknown): {fmt_rate(summary['vulnerable_unknown'])}. Shares are of the records read, with Wilson 95% "
            "intervals."
        ),
        "",
        "| Class | Records | Share [95% CI] |",
        "|---|---:|---|",
    ]
    skipped = dict(summary["detector_skipped"])
    too_large = skipped.pop(TOO_LARGE, 0)
    if skipped:
        why = ", ".join(f"{k}: {v}" for k, v in skipped.items())
        lines[1:1] = [
            "",
            f"Not analysed by the detector ({why}): their Python findings are missing; the framing "
            "lexicons and the other languages' patterns still ran.",
        ]
    if too_large:
        lines[1:1] = [
            "",
            f"Not analysed by the detector ({TOO_LARGE}: {too_large}): read, listed in records.jsonl, but "
            f"counted in no class; the shares are of the other {summary['classified']} records.",
        ]
    ignored = summary["skipped_inputs"]
    if ignored["count"]:
        kinds = ", ".join(f"{k} {v}" for k, v in ignored["by_kind"].items())
        lines[1:1] = [
            "",
            f"Folder entries skipped, not read ({kinds}; only regular files are read, links are not followed): "
            + ", ".join(md_code(e["where"]) for e in ignored["first"])
            + (" ..." if ignored["count"] > len(ignored["first"]) else ""),
        ]
    lines += [f"| {c} | {summary['classes'][c]['k']} | {fmt_rate(summary['classes'][c])} |" for c in CLASSES]
    cwes = sorted({cwe for row in summary["class_cwe"].values() for cwe in row})
    lines += _crosstab("Class x CWE (a record counts once per CWE it has; `-`: no finding):", summary["class_cwe"], cwes)
    lines += _crosstab("Class x position of the framing (a record counts once per position; `-`: none):",
                       summary["class_position"], [*POSITIONS, "-"])
    langs = sorted({lang for row in summary["class_language"].values() for lang in row})
    if langs:
        lines += _crosstab("Class x language of the framed code:", summary["class_language"], langs)
    rows3 = [r for r in summary["class_cwe_position"] if r["class"] != "none"]
    if rows3:
        lines += [
            "",
            "Class x CWE x position (flagged records; a record counts once per CWE and position):",
            "",
            "| Class | CWE | Position | Records |",
            "|---|---|---|---:|",
        ]
        lines += [f"| {r['class']} | {r['cwe']} | {r['position']} | {r['records']} |" for r in rows3]
    if summary["fix"]:
        f = summary["fix"]
        lines += [
            "",
            f"Fix {md_code(f['mode'])} on classes {md_text(', '.join(f['classes']))}: "
            + ", ".join(f"{md_text(k)} {v}" for k, v in sorted(f["actions"].items()))
            + f". Treated corpus: {md_code(f['treated'])}.",
        ]
        if f["untreatable"]:
            lines += ["", "Untreatable, by reason:", ""] + [
                f"- {md_text(why)}: {k}" for why, k in sorted(f["untreatable"].items(), key=lambda x: -x[1])
            ]
    if summary["unreadable"]:
        lines += [
            "",
            (
                f"Unreadable records (first {min(ERRORS_SHOWN, summary['unreadable'])} of {summary['unreadable']}; "
                "all in errors.jsonl):"
            ),
            "",
        ]
        lines += [f"- {md_code(e['where'])}: {md_text(e['what'])}" for e in summary["unreadable_first"]]
    t = summary["timing"]
    lines += [
        "",
        (
            f"Scanned in {t['seconds']} s with {t['workers']} worker(s): {t['records_per_second']} records/s "
            f"(bandit {'on' if summary['options']['use_bandit'] else 'off'}; {summary['chunks']} chunks, "
            f"{summary['resumed_chunks']} resumed)."
        ),
    ]
    return lines


def _md_example(ex: dict) -> list[str]:
    text = ex["text"][:1500]
    head = (f"**{ex['class']}** {md_code(ex['id'])} (risk {ex['risk']}, positions: {', '.join(ex['positions']) or '-'}, "
            f"vulnerable {ex.get('vulnerable')}, {md_text(ex.get('language') or '-')})")
    warn = [ex["text"][s["start"] : s["end"]] for s in ex["spans"] if s["type"] == "warning" and s["part"] == "assistant"]
    req = [(ex["user"] or "")[s["start"] : s["end"]] for s in ex["spans"] if s["part"] == "user" and s["type"] == "warning"]
    found = [md_text(f"{f['rule']} ({f['cwe']}, line {f['line']})") for f in ex["findings"]]
    lines = [head, ""]
    if req:
        lines.append("Framing in the request: " + "; ".join(md_code(r) for r in req))
    if warn:
        lines.append("Framing in the answer: " + "; ".join(md_code(w.strip()[:80]) for w in warn[:6]))
    if found:
        lines.append("Findings: " + "; ".join(found[:6]))
    return lines + ["", *md_block(text), ""]


def markdown(summary: dict, examples: dict, figures: list[tuple[str, Path]], root: Path) -> str:
    lines = [f"# warnframe audit: {md_text(Path(summary['corpus']).name)}", "", *_md_tables(summary), ""]
    lines += [f"![{title}]({p.relative_to(root)})" for title, p in figures]
    lines += ["", "## Examples", ""]
    for cls in CLASSES:
        for ex in examples.get(cls, []):
            lines += _md_example(ex)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- html

_PRIORITY = ("finding", "warning", "pair_good", "mention", "vulnerable_code")


def highlight(text: str, spans: list[dict]) -> str:
    """``text`` HTML-escaped, each stretch covered by spans in one ``<mark>`` (classed by the most
    specific span over it: finding, framing, good label, mention, vulnerable code); never nested."""
    cuts = sorted(
        {0, len(text), *(min(max(s["start"], 0), len(text)) for s in spans), *(min(s["end"], len(text)) for s in spans)}
    )
    out = []
    for a, b in itertools.pairwise(cuts):
        over = [s for s in spans if s["start"] <= a and s["end"] >= b and s["end"] > s["start"]]
        piece = html.escape(text[a:b])
        if not over:
            out.append(piece)
            continue
        top = min(over, key=lambda s: _PRIORITY.index(s["type"]) if s["type"] in _PRIORITY else len(_PRIORITY))
        title = html.escape(
            "; ".join(f"{s['type']} {s.get('label') or ''} {s.get('position') or ''}".strip() for s in over), quote=True
        )
        out.append(f'<mark class="{_SPAN_CSS.get(top["type"], "m")}" title="{title}">{piece}</mark>')
    return "".join(out)


def _html_table(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(summary: dict, examples: dict, figures: list[tuple[str, Path]]) -> str:
    e = html.escape
    parts = [f"<h1>warnframe audit: {e(Path(summary['corpus']).name)}</h1>"]
    n = summary["records"]
    parts.append(
        f"<p>Records read: <b>{n}</b>; unreadable: <b>{summary['unreadable']}</b>; flagged: "
        f"{e(fmt_rate(summary['flagged']))}; vulnerable code with no framing: "
        f"{e(fmt_rate(summary['vulnerable_unframed']))}. "
        "Shares of the records read, Wilson 95% intervals.</p>"
    )
    too_large = summary["detector_skipped"].get(TOO_LARGE, 0)
    if too_large:
        parts.append(
            f"<p>Too large for the detector: <b>{too_large}</b> records, counted in no class; the shares are "
            f"of the other {summary['classified']} records.</p>"
        )
    ignored = summary["skipped_inputs"]
    if ignored["count"]:
        kinds = ", ".join(f"{k} {v}" for k, v in ignored["by_kind"].items())
        parts.append(
            f"<h2>Folder entries skipped ({e(kinds)})</h2>"
            + _html_table(["Where", "What"], [[x["where"], x["what"]] for x in ignored["first"]])
        )
    parts.append(
        _html_table(
            ["Class", "Records", "Share [95% CI]"],
            [[c, summary["classes"][c]["k"], fmt_rate(summary["classes"][c])] for c in CLASSES],
        )
    )
    cwes = sorted({cwe for row in summary["class_cwe"].values() for cwe in row})
    parts.append(
        "<h2>Class &times; CWE</h2>"
        + _html_table(
            ["Class", *cwes],
            [[c, *(summary["class_cwe"][c].get(w, 0) for w in cwes)] for c in CLASSES if c in summary["class_cwe"]],
        )
    )
    pos = list(POSITIONS) + ["-"]
    parts.append(
        "<h2>Class &times; position</h2>"
        + _html_table(
            ["Class", *pos],
            [
                [c, *(summary["class_position"][c].get(p, 0) for p in pos)]
                for c in CLASSES
                if c in summary["class_position"]
            ],
        )
    )
    rows3 = [
        [r["class"], r["cwe"], r["position"], r["records"]]
        for r in summary["class_cwe_position"]
        if r["class"] != "none"
    ]
    if rows3:
        parts.append(
            "<h2>Class &times; CWE &times; position</h2>" + _html_table(["Class", "CWE", "Position", "Records"], rows3)
        )
    if summary["fix"]:
        f = summary["fix"]
        parts.append(f"<h2>Fix: {e(f['mode'])}</h2>" + _html_table(["Action", "Records"], sorted(f["actions"].items())))
        if f["untreatable"]:
            parts.append(
                _html_table(["Untreatable because", "Records"], sorted(f["untreatable"].items(), key=lambda x: -x[1]))
            )
    if summary["unreadable"]:
        parts.append(
            "<h2>Unreadable records</h2>"
            + _html_table(["Where", "What"], [[x["where"], x["what"]] for x in summary["unreadable_first"]])
        )
    for title, p in figures:
        uri = data_uri(p)
        if uri:
            parts.append(
                f'<figure><img src="{uri}" alt="{e(title, quote=True)}"><figcaption>{e(title)}</figcaption></figure>'
            )
    parts.append(
        '<h2>Examples</h2><p class="legend"><mark class="w">framing</mark> <mark class="g">good label</mark> '
        '<mark class="v">vulnerable code</mark> <mark class="f">finding line</mark> <mark class="m">mention</mark></p>'
    )
    for cls in CLASSES:
        for ex in examples.get(cls, []):
            user_spans = [s for s in ex["spans"] if s["part"] == "user"]
            ans_spans = [s for s in ex["spans"] if s["part"] == "assistant"]
            found = "; ".join(f"{f['rule']} ({f['cwe']}, line {f['line']})" for f in ex["findings"][:6])
            parts.append(
                f"<h3>{e(cls)} <code>{e(str(ex['id']))}</code></h3><p>risk {ex['risk']}; positions: "
                f"{e(', '.join(ex['positions']) or '-')}; findings: {e(found or '-')}</p>"
            )
            if ex["user"] is not None:
                parts.append(f"<pre>{highlight(ex['user'], user_spans)}</pre>")
            parts.append(f"<pre>{highlight(ex['text'][:4000], [s for s in ans_spans if s['start'] < 4000])}</pre>")
    t = summary["timing"]
    parts.append(
        f"<p>Scanned in {t['seconds']} s with {t['workers']} worker(s): {t['records_per_second']} records/s.</p>"
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>warnframe audit</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n"
    )


def write_report(out: Path, summary: dict, examples: dict) -> None:
    figures = _figures(summary, out / "figures")
    write_json(out / "summary.json", summary)
    atomic_write_text(out / "report.md", markdown(summary, examples, figures, out))
    atomic_write_text(out / "report.html", render_html(summary, examples, figures))
