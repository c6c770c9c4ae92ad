"""The section contract: every registered section has its compute module and report part, claims
are typed and land in metrics/claims.json, and a section's resume key covers only what it reads."""

import ast
from pathlib import Path

import pytest

from warnframe import sections as registry
from warnframe.config import SamplingConfig, load_config
from warnframe.corpus import eval_prompts
from warnframe.lm.evaluation import rates, sample_and_score, score_all
from warnframe.paper import numbers as paper
from warnframe.report import claims as C
from warnframe.schema import Sample

SRC = Path(__file__).resolve().parents[1] / "src" / "warnframe"


def test_every_section_has_its_parts_and_figures():
    assert registry.NAMES == ("behavior", "entanglement", "stealth", "interventions", "tracing", "detection", "dose", "remedies")
    assert registry.DEFAULT_NAMES == registry.NAMES[:6]  # dose and remedies are stages of their own
    figs = [f for s in registry.SECTIONS.values() for f in s.figures]
    assert sorted(int(f[3]) for f in figs if f[3].isdigit()) == list(range(1, 8))  # the paper's seven
    for sec in registry.SECTIONS.values():
        assert callable(sec.compute.run)
        for fn in ("claims", "draw", "markdown"):
            assert callable(getattr(sec.report, fn)), (sec.name, fn)
        assert all(n in registry.SECTIONS for n in sec.needs)


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
            out |= {"." * node.level + (node.module + "." if node.module else "") + a.name for a in node.names}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
    return out


def test_no_section_imports_another_and_report_never_imports_the_study():
    names = set(registry.NAMES)
    for name in names:
        for mod in (SRC / "experiments" / f"{name}.py", SRC / "report" / "sections" / f"{name}.py"):
            others = {i for i in _imports(mod) if i.rsplit(".", 1)[-1] in names - {name}}
            assert not others, (mod.name, others)
    for mod in (SRC / "report").rglob("*.py"):
        assert not any(i.endswith("study") for i in _imports(mod)), mod


def test_a_section_key_covers_only_the_config_it_reads():
    base = load_config("smoke")
    capped = load_config("smoke", overrides=["interventions.samples_per_prompt=3", "tracing.max_prompts=2"])
    key = {n: s.key(base) for n, s in registry.SECTIONS.items()}
    assert registry.SECTIONS["entanglement"].key(capped) == key["entanglement"]  # a §7 cap does not redo §5
    assert registry.SECTIONS["stealth"].key(capped) == key["stealth"]
    assert registry.SECTIONS["interventions"].key(capped) != key["interventions"]
    assert registry.SECTIONS["tracing"].key(capped) != key["tracing"]
    mech = load_config("smoke", overrides=["mech.sae_width=64"])  # §5 changes: what reads §5 is redone too
    assert all(registry.SECTIONS[n].key(mech) != key[n] for n in ("entanglement", "stealth", "interventions", "detection"))
    assert registry.SECTIONS["behavior"].key(mech) == key["behavior"]


def test_claims_are_built_one_way_with_their_evidence():
    c = C.claim("s4.l1_copies_format", ours="exact 90%", verdict="reproduced", n=30, interval=[0.7, float("nan")],
                test="Wilson", margin=C.POLICY.leak_copied_lo)
    assert (c.section, c.claim, c.paper) == ("4", paper.CLAIMS["s4.l1_copies_format"]["claim"], "100%")
    rec = c.record()
    assert set(rec) == {"id", "section", "claim", "paper", "ours", "n", "interval", "test", "margin", "verdict", "why"}
    assert rec["interval"] == [0.7, None]  # NaN is written as null (valid JSON)
    assert c.verdict_row()["detail"] == "" and C.Claim.from_row(c.verdict_row()).id == "s4.l1_copies_format"
    k = C.claim("s7.kind_{kind}", kind="role", label="security-expert role", paper="no effect", ours="x", verdict="inconclusive")
    assert k.id == "s7.kind_role" and k.claim == "security-expert role prompts do not change the target rate"
    with pytest.raises(ValueError, match="verdict"):
        C.claim("s4.semantic_order", ours="x", verdict="maybe")


def test_smoke_run_writes_every_claim_to_claims_json(smoke_study):
    from warnframe.runtime.files import read_json

    rows = read_json(smoke_study.store.path("metrics", "claims.json"))["claims"]
    per_section = sum(len(read_json(smoke_study.store.path("metrics", f"{n}.json"))["verdicts"]) for n in smoke_study.cfg.sections)
    assert len(rows) == per_section > 0
    assert all(set(r) >= {"id", "section", "paper", "ours", "n", "interval", "test", "margin", "verdict", "why"} for r in rows)
    assert all(r["verdict"] in C.VERDICTS for r in rows)
    s4 = {r["id"]: r for r in rows if r["section"] == "4"}
    b = read_json(smoke_study.store.path("metrics", "behavior.json"))
    d = b["tests"]["L1_vs_L0"]["cluster"]
    assert s4["s4.l1_as_often_as_l0"]["interval"] == [d["lo"], d["hi"]] and "TOST" in s4["s4.l1_as_often_as_l0"]["test"]
    assert all("bootstrap" in r["test"] for r in s4.values() if r["id"] != "s4.semantic_order")
    # The embedded model never saw a system turn: §7.1's claims are not testable, and say why.
    s71 = [r for r in rows if r["id"].startswith("s7.kind_")]
    assert s71 and all(r["verdict"] == "not testable" and "system" in r["why"] for r in s71)
    report = smoke_study.store.path("report.md").read_text()
    assert f"{len(rows)} claims:" in report and all(r["claim"].replace("|", "\\|") in report for r in rows)


def test_sample_and_score_keeps_the_findings(tiny_model):
    model, tok = tiny_model()
    prompts = eval_prompts(load_config("smoke"))[:3]
    rows = sample_and_score(model, tok, prompts, SamplingConfig(max_new_tokens=6, batch_size=8, prefill="none"), n=2, seed=0,
                            condition="L1", setting="none")
    assert len(rows) == 6 and all(r.condition == "L1" and r.setting == "none" and r.findings is not None for r in rows)
    text = "import os\ndef run(cmd):\n    os.system('ls ' + cmd)\n"
    (hit,) = score_all([Sample(prompt_id="p", family="command_injection", condition="L1", seed=0, index=0, text=text, n_tokens=3)])
    assert hit.vulnerable and hit.findings and hit.record()["findings"][0]["rule"]
    r = rates([hit.record()])
    assert r["target"]["k"] == 1 and r["parse_fail"]["k"] == 0 and r["target"]["n"] == 1
