"""report.md and the self-contained report.html: markdown constructs, embedded figures, the
figure index, and `collect` as the CLI uses it."""

import base64
import re

import pytest

from warnframe.config import load_config
from warnframe.report import render
from warnframe.runtime.files import write_json
from warnframe.study import Study

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_markdown_constructs(tmp_path):
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "a.png").write_bytes(PNG)
    md = "\n".join([
        "# Title", "", "Some **bold**, `x < y | z`, *italic*, a [link](https://example.org) and 2 × 3 * 4.", "continued line.", "",
        "| A | B |", "|---|---:|", "| 1 | `p|q` |", "| <b> | 2 |", "",
        "- one", "- two", "  more of two", "  - nested", "", "1. first", "2. second", "",
        "![Figure X](figures/a.png)", "", "![Gone](figures/missing.png)", "",
        "```json", '{"a": "<tag>"}', "```", "", "## Sub", "text",
    ])
    h = render.markdown_to_html(md, tmp_path)
    assert "<h1>Title</h1>" in h and "<h2>Sub</h2>" in h
    assert "<strong>bold</strong>" in h and "<code>x &lt; y | z</code>" in h and "<em>italic</em>" in h
    assert '<a href="https://example.org">link</a>' in h
    assert "<table>" in h and "<th>A</th>" in h and 'text-align: right' in h
    assert "<li>one</li>" in h and "<li>nested</li>" in h and "<ol>" in h
    assert h.count('<img src="data:image/png;base64,') == 1 and "<figcaption>Figure X</figcaption>" in h
    assert "figures/missing.png not found" in h and "figures/a.png" not in h
    assert "&quot;a&quot;: &quot;&lt;tag&gt;&quot;" in h and "<pre><code" in h


def _fig(path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, 1], [0, 1])
    fig.savefig(path)
    plt.close(fig)


@pytest.fixture
def run_dir(tmp_path):
    cfg = load_config("smoke", overrides=["sections=[behavior,entanglement,stealth,tracing,detection]"])
    study = Study(cfg, tmp_path)
    study.device = "cpu"
    for name in ("stealth", "tracing", "detection"):
        write_json(study.store.path("metrics", f"{name}.json"), {"skipped": f"{name} had nothing to read", "verdicts": [
            {"section": "x", "claim": f"{name} claim", "paper": "1", "ours": "2", "verdict": "inconclusive", "detail": ""}]})
    return study


def test_report_html_is_self_contained_with_seven_figures(run_dir):
    names = ["target_rates", "feature_activations", "target_direction", "entropy", "ablation", "causal_tracing", "detection"]
    for (n, _), name in zip(render.FIGURES, names):
        _fig(run_dir.store.path("figures", f"fig{n}_{name}.png"))
    run_dir.report()
    md = run_dir.store.path("report.md").read_text()
    h = run_dir.store.path("report.html").read_text()
    assert h.startswith("<!DOCTYPE html>") and "</html>" in h
    imgs = re.findall(r'<img src="([^"]+)"', h)
    assert len(imgs) == 7 and all(s.startswith("data:image/png;base64,") for s in imgs)
    for s in imgs:
        assert base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG"
    assert not re.search(r'(src|href)="(?!data:|https?://|#)', h)  # nothing to fetch from disk
    assert "<link" not in h and "<script" not in h
    files = render.figure_files(run_dir.store.path())
    assert all(files.values())
    for n, rel in files.items():  # each figure once: in its section or in the index
        assert md.count(f"({rel})") == 1, n
    assert "3 claims: inconclusive 3." in md and "<table>" in h


def test_missing_figures_are_listed_not_embedded(run_dir):
    _fig(run_dir.store.path("figures", "fig1_target_rates.png"))
    run_dir.report()
    md = run_dir.store.path("report.md").read_text()
    assert "| Figure 5 | not drawn | interventions (section not run, or skipped before drawing) |" in md
    h = run_dir.store.path("report.html").read_text()
    assert h.count('<img src="data:image/png;base64,') == 1
    assert h.count("not found]") == 3  # figures 4, 6, 7 named by their (skipped) sections


def test_collect_returns_verdicts_and_sections(run_dir):
    verdicts, sections = render.collect(run_dir)
    assert [v["claim"] for v in verdicts] == ["stealth claim", "tracing claim", "detection claim"]
    assert len(sections) == 3 and all("Skipped" in s for s in sections)


def test_raw_html_in_report_text_is_shown_not_rendered(tmp_path):
    hostile = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    md = "\n".join(["# T", "", "| Prompt | System prompt |", "|---|---|", f"| p1 | {render.cell(hostile + ' | x')} |", "",
                    f"<div onclick=\"steal()\">{hostile}</div>", "", f"inline {hostile} text"])
    h = render.markdown_to_html(md, tmp_path)
    assert "<script" not in h and "<img" not in h and "<div" not in h  # every tag arrives as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in h
    assert h.count("<td>") == 2  # the pipe inside the cell did not open a column


def test_only_the_runs_own_figures_are_embedded(tmp_path):
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "figures" / "ok.png").write_bytes(PNG)
    (tmp_path / "secret.png").write_bytes(PNG)
    md = "\n\n".join(["![ok](figures/ok.png)", f"![abs]({tmp_path / 'secret.png'})", "![up](../secret.png)",
                      "![up2](figures/../../secret.png)", "![remote](https://example.org/x.png)"])
    h = render.markdown_to_html(md, run)
    assert h.count('<img src="data:image/png;base64,') == 1
    assert h.count("not embedded: outside the run directory") == 4
