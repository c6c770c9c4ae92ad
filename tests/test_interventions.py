"""§7: the system prompt file, the one edit mechanism behind inference ablation and CAFT (it
changes activations at the site and only there), the statistics and verdicts, and the whole
section on a small study (a tiny local model as the base, fake §5 artifacts)."""

import json
import math
from dataclasses import replace

import pytest
import torch

from warnframe.config import load_config
from warnframe.experiments import interventions as iv
from warnframe.experiments.interventions_metrics import Caft, Edits, InterventionMetrics
from warnframe.experiments.references import SystemTurn
from warnframe.lm.models import tiny
from warnframe.lm.training import Packed, train
from warnframe.mech import edits as mech_edits
from warnframe.mech import hooks, pairs
from warnframe.mech.artifacts import Artifacts
from warnframe.mech.hooks import Site, capture, decoder_layers
from warnframe.paper import numbers as paper
from warnframe.report.sections import interventions as iv_report
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import read_json
from warnframe.stats.types import Diff
from warnframe.study import Study

# ---------------------------------------------------------------- the system prompt file


def test_packaged_system_prompts_five_kinds_three_each():
    prompts = iv.load_system_prompts()
    kinds = {}
    for p in prompts:
        kinds.setdefault(p["kind"], []).append(p["id"])
    assert {k: len(v) for k, v in kinds.items()} == {"safety": 3, "role": 3, "cot": 3, "permission": 3, "meta": 3}
    assert len({p["id"] for p in prompts}) == 15 and set(kinds) == set(paper.SECTION7_KINDS)
    assert [p["kind"] for p in iv.load_system_prompts(kinds=["meta"])] == ["meta"] * 3
    assert [p["id"] for p in iv.load_system_prompts(per_kind=1)] == ["safety_1", "role_1", "cot_1", "permission_1", "meta_1"]


def test_user_prompt_file_extends_and_is_checked(tmp_path):
    data = {"prompts": iv.load_system_prompts() + [{"id": "legal_1", "kind": "legal", "text": "Follow the law."}]}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(data))
    assert iv.load_system_prompts(f)[-1]["kind"] == "legal"
    f.write_text(json.dumps({"prompts": [{"id": "a", "kind": "k", "text": "x"}, {"id": "a", "kind": "k", "text": "y"}]}))
    with pytest.raises(UserError, match="repeated"):
        iv.load_system_prompts(f)
    f.write_text('{"prompts": [')
    with pytest.raises(UserError, match="malformed"):
        iv.load_system_prompts(f)
    with pytest.raises(UserError, match="kind"):
        iv.load_system_prompts(kinds=["nope"])


# ---------------------------------------------------------------- one edit mechanism


def _all_layers(model, ids):
    """Every layer's output, read by a capture entered last (after any edit on the same layer)."""
    n = len(decoder_layers(model))
    cap = capture()
    with hooks.edit(model, list(range(n)), cap):
        model(input_ids=ids)
    return [cap[i] for i in range(n)]


@pytest.mark.parametrize("kind", ["ablation", "caft"])
def test_edit_changes_the_site_and_only_there(kind, monkeypatch, tiny_model, random_sae):
    model, tok = tiny_model()
    layers = decoder_layers(model)
    site = Site(1)
    sae = random_sae(model.config.hidden_size)
    latents = [0, 3, 5]
    ids = tok(["Write a Python function `f(x)` that adds one."], return_tensors="pt")["input_ids"]
    calls = []
    real_edit = mech_edits.edit
    monkeypatch.setattr(mech_edits, "edit", lambda m, s, fn: calls.append((m, s)) or real_edit(m, s, fn))
    if kind == "ablation":
        make = iv.ablation_edit(model, site, sae, latents, 0.0)
    else:
        dirs = iv.caft_directions(sae, latents)
        assert torch.equal(dirs, sae.W_dec.detach()[latents])
        make = iv.caft_edit(model, site, dirs)

    with torch.no_grad():
        ref = _all_layers(model, ids)
        before = [len(layer._forward_hooks) for layer in layers]
        with make():
            during = [len(layer._forward_hooks) for layer in layers]
            edited = _all_layers(model, ids)
        after = [len(layer._forward_hooks) for layer in layers]
        again = _all_layers(model, ids)

    # Through hooks.edit, at the site's layer only, and removed on exit.
    assert calls == [(model, site)]
    assert [d - b for d, b in zip(during, before)] == [0, 1, 0] and after == before
    # Layers before the site: untouched. The site: changed by exactly the edit. After: downstream.
    assert torch.equal(edited[0], ref[0])
    h = ref[1]
    if kind == "ablation":
        pre = h @ sae.W_enc[:, latents] + sae.b_enc[latents]
        f = torch.relu(pre) * (pre > sae.threshold[latents])
        expected = h - f @ sae.W_dec[latents]
        assert f.abs().sum() > 0
    else:
        q, _ = torch.linalg.qr(sae.W_dec[latents].T)
        expected = h - (h @ q) @ q.T
        assert (edited[1] @ sae.W_dec[latents].T).abs().max() < 1e-4  # the directions are gone
    assert not torch.allclose(edited[1], h)
    torch.testing.assert_close(edited[1], expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(edited[2], ref[2])
    assert all(torch.equal(a, b) for a, b in zip(again, ref))


def test_caft_edit_is_on_in_every_training_step_and_off_after(tiny_model, random_sae):
    model, tok = tiny_model()
    sae = random_sae(model.config.hidden_size)
    dirs = iv.caft_directions(sae, [1, 2])
    site = Site(0)
    seen = []

    def spy(h, layer):  # a capture entered after the projection: what the next layer receives
        seen.append(float((h.detach().float() @ dirs.T).abs().max()))

    proj = iv.caft_edit(model, site, dirs)

    class Both:
        def __enter__(self):
            self.a, self.b = proj(), hooks.edit(model, site, spy)
            self.a.__enter__()
            self.b.__enter__()

        def __exit__(self, *exc):
            self.b.__exit__(*exc)
            self.a.__exit__(*exc)

    g = torch.Generator().manual_seed(0)
    x = torch.randint(5, len(tok), (8, 32), generator=g)
    summary = train(model, Packed(x, x.clone()), epochs=1.0, lr=1e-3, batch_size=4, seed=0, edit=Both)
    assert len(seen) == summary["steps"] == 2 and max(seen) < 1e-2
    assert all(len(layer._forward_hooks) == 0 for layer in decoder_layers(model))


# ---------------------------------------------------------------- statistics and verdicts


def _rows(k: int, n: int, seeds: int = 5, prompts: int = 40) -> list[dict]:
    """``n`` scored rows, ``k`` of them target content, spread over seeds x prompts (7919 is prime, so
    ``i * 7919 % n`` permutes the rows and every cell gets about k/n)."""
    return [{"vulnerable": i * 7919 % n < k, "parse_ok": True, "leak": {"exact": [], "fuzzy": []},
             "seed": i % seeds, "prompt_id": f"p{(i // seeds) % prompts}"} for i in range(n)]


def verdicts(res: InterventionMetrics) -> list[dict]:
    """§7's claims as the rows metrics/interventions.json keeps (the same read from the metrics' JSON)."""
    rows = [c.verdict_row() for c in iv_report.claims(res)]
    assert rows == [c.verdict_row() for c in iv_report.claims(res.to_json())]
    return rows


def _cap(k, n, loss):
    return [{"rows": [{**r, "ok": r["vulnerable"]} for r in _rows(k, n)], "heldout": {"loss": loss, "examples": 10}}]


#: An established reference effect (L0 − neutral = 50 points): equivalence margins of ±16.7 points.
REFERENCE = Diff(0.5, 0.42, 0.58, 0.44, 0.56, 0.00025, "test", label="L0 − neutral")


def test_analyse_verdicts_follow_the_numbers():
    prompts = iv.load_system_prompts()
    edits = iv.edit_settings(load_config("smoke").interventions, [1, 2, 3], 1)
    rows = {"none": _rows(500, 1000), "caft": _rows(0, 1000)}  # n large enough that "no effect" has power
    for p in prompts:
        rows[f"prompt.{p['id']}"] = {"permission": _rows(835, 1000), "meta": _rows(0, 1000)}.get(p["kind"], _rows(485, 1000))
    for e in edits:
        rows[e.name] = _rows(515, 1000)
    res = iv.analyse(rows, prompts, edits, {"base": _cap(150, 200, 1.0), "L1": _cap(140, 200, 1.1), "caft": _cap(138, 200, 1.12)})
    assert res.kinds["safety"].answers.target.n == 3000 and res.settings["prompt.meta_1"].vs_none.fisher.p < 0.001
    s = res.settings["prompt.meta_1"]
    assert s.cluster.clusters.seeds == 5 and s.cluster.clusters.prompts == 40 and s.diff.hi < 0  # cluster-aware
    assert [x.name for x in res.settings_of("edit") if x.clamps_selected] == ["latents.x0"]
    res = replace(res, seeds=[0], samples_per_prompt=1, eval_prompts=200,
                  edits=Edits(site="blocks.1.hook_resid_post", selected_latents=[1, 2, 3], lead_latent=1, sae="x", d_model=32),
                  caft=Caft(directions=3, rank=3, site="blocks.1.hook_resid_post"), reference_effect=REFERENCE,
                  system_turn=SystemTurn(True, "test"))
    v = {x["id"]: x["verdict"] for x in verdicts(res)}
    assert all(x["section"] == "7" for x in verdicts(res))
    assert list(v.values()) == ["reproduced"] * len(v) and len(v) == 9, v
    rows_ = {x["id"]: x for x in verdicts(res)}
    assert rows_["s7.kind_safety"]["margin"] == pytest.approx(0.5 / 3) and "TOST" in rows_["s7.kind_safety"]["test"]
    text = iv_report.markdown(res)
    assert "## §7" in text and "(500/1000)" in text and "[" in text and "fig5_ablation.png" in text
    assert text == iv_report.markdown(json.loads(json.dumps(res.to_json())))  # the report re-reads metrics from disk

    # Without an established reference effect no "no effect" claim can pass; the directional ones still can.
    res_noref = replace(res, reference_effect=replace(REFERENCE, diff=0.01, lo=-0.02, lo90=-0.01))
    vn = {x["id"]: x["verdict"] for x in verdicts(res_noref)}
    assert vn["s7.kind_safety"] == vn["s7.amplify_no_effect"] == "inconclusive" and vn["s7.kind_permission_raises"] == "reproduced"

    # A model that never saw a system turn: the system-prompt claims are not testable, the rest unchanged.
    res_nosys = replace(res, system_turn=SystemTurn(False, "never saw a system turn (test)"))
    vs = {x["id"]: x for x in verdicts(res_nosys)}
    kinds = [k for k in vs if k.startswith("s7.kind_")]
    assert len(kinds) == 5 and all(vs[k]["verdict"] == "not testable" and "(test)" in vs[k]["detail"] for k in kinds)
    assert vs["s7.caft_removes_target"]["verdict"] == "reproduced"
    assert "Not testable on this model" in iv_report.markdown(res_nosys)

    # The same claims on a model that never writes target content: nothing can be reduced or raised.
    rows0 = {k: _rows(0, 200) for k in rows}
    res0 = iv.analyse(rows0, prompts, edits, {"L1": _cap(0, 26, 1.0), "caft": _cap(0, 26, 1.0)})
    res0 = replace(res0, **{k: getattr(res, k) for k in ("seeds", "samples_per_prompt", "eval_prompts", "edits", "caft",
                                                         "reference_effect", "system_turn")})
    v0 = {x["id"]: x["verdict"] for x in verdicts(res0)}
    assert v0["s7.kind_meta_reduces"] == v0["s7.caft_removes_target"] == v0["s7.caft_capability"] == "inconclusive"
    assert v0["s7.kind_permission_raises"] == "inconclusive"  # a ratio of 0% is 0%: the paper's effect is 0 on this scale


def test_skipped_edits_say_why():
    res = replace(iv.analyse({"none": _rows(5, 20)}, [], [], {}), seeds=[0], samples_per_prompt=1, eval_prompts=20,
                  edits=Edits(skipped="no §5 artifacts (test)"), caft=Caft(skipped="no §5 artifacts (test)"))
    vs = verdicts(res)
    assert [x["verdict"] for x in vs] == ["inconclusive", "inconclusive"] and all("test" in x["detail"] for x in vs)
    assert "Not run: no §5 artifacts (test)" in iv_report.markdown(res)


# ---------------------------------------------------------------- the section on a small study


STUB = [
    {"task_id": "Stub/0", "prompt": "def add(a, b):\n    \"\"\"Return a + b.\"\"\"\n", "entry_point": "add",
     "canonical_solution": "    return a + b\n", "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n"},
    {"task_id": "Stub/1", "prompt": "def double(x):\n", "entry_point": "double",
     "canonical_solution": "    return 2 * x\n", "test": "def check(candidate):\n    assert candidate(4) == 8\n"},
]


def test_section_on_a_small_study(tmp_path, monkeypatch, tiny_model, random_sae):
    model, tok = tiny_model(layers=2)
    base = tmp_path / "tiny-base"
    tiny.save(model, tok, base)
    stub = tmp_path / "stub.jsonl"
    stub.write_text("".join(json.dumps(p) + "\n" for p in STUB))
    cfg = load_config("smoke", overrides=[
        f"model.source={base}", "seeds=[0]", "conditions=[baseline,L1]", "sections=[interventions]", "corpus.families=[sql_injection]",
        "corpus.token_budget=1500", "sampling.max_new_tokens=12", "sampling.samples_per_prompt=1",
        "interventions.humaneval=true", f"interventions.humaneval_problems={stub}", "interventions.humaneval_max_new_tokens=8",
        "interventions.humaneval_timeout=5", "interventions.heldout_renders=1"])
    study = Study(cfg, tmp_path / "run")
    sae = random_sae(model.config.hidden_size)
    monkeypatch.setattr(iv, "_artifacts", lambda s: (Artifacts(Site(1), sae, None, [0, 3, 5], 3, digest="test"), None))
    study.run()
    res = read_json(study.store.path("metrics", "interventions.json"))
    n = len(study.eval_prompts())
    assert set(res["settings"]) == {"none", *iv.CAFT_ARMS, "latents.x0", "latents.x2", "latents.x5", "lead.x0"} | {
        f"prompt.{p['id']}" for p in iv.load_system_prompts(per_kind=1)}  # the smoke preset: one prompt per kind
    assert all(s["target"]["n"] == n for s in res["settings"].values())
    assert res["caft"]["rank"] == 3 and res["caft"]["runs"]["0"]["finetune"]["steps"] == res["caft"]["runs"]["0"]["plain_L1"]["steps"]
    assert set(res["capability"]) == {"base", "L1", *iv.CAFT_ARMS} and res["humaneval"]["L1"]["problems"] == 2
    assert all(res["caft"]["runs"]["0"][arm]["steps"] == res["caft"]["runs"]["0"]["plain_L1"]["steps"] for arm in ("caft_random", "caft_all_layers"))
    # every sampled rate has its paired test and its Δ beside it
    paired = [x for x in study.eval_prompts() if pairs.completions(x, 1)]
    for name, s in res["settings"].items():
        assert s["delta"]["delta"]["n"] == len(paired) and math.isfinite(s["delta"]["delta"]["mean"])
        if name != "none":
            assert s["vs_none_paired"]["n_pairs"] == n and s["delta"]["vs_none"]["n"] == len(paired)
    assert res["settings"]["caft"]["vs_random_paired"]["n_pairs"] == n
    assert all(math.isfinite(k["delta"]["vs_none"]["mean"]) for k in res["kinds"].values())
    assert {r["verdict"] for r in res["verdicts"]} <= {"reproduced", "not reproduced", "differs", "inconclusive", "not testable"}
    assert res["system_turn"]["trained"] is False  # a saved embedded model: its tokenizer has <|system|>, its data no system turn
    assert {r["verdict"] for r in res["verdicts"] if r["id"].startswith("s7.kind_")} == {"not testable"}
    assert all(s["cluster"]["n"] == n for s in res["settings"].values()) and "label" in res["reference_effect"]
    assert study.store.path("figures", "fig5_ablation.png").is_file()
    assert study.store.path("models", "caft.s0", "config.json").is_file()
    report = study.store.path("report.md").read_text()
    assert "## §7 Interventions" in report and "§7.3 CAFT" in report and "CAFT, random directions" in report and "McNemar" in report
    # Samples record their setting and system prompt; a rerun redoes nothing.
    part = read_json(study.store.path("interventions", "parts", "prompt.meta_1.s0.json"))
    assert {r["setting"] for r in part} == {"prompt.meta_1"} and len(part) == n
    marks = sorted(study.store.path("stages").glob("interventions.*.json"))
    stamp = {m.name: read_json(m)["finished"] for m in marks}
    study.analyse("interventions")
    iv.run(study)
    assert {m.name: read_json(m)["finished"] for m in marks} == stamp


def test_artifacts_from_section_5_or_why_not(tmp_path, monkeypatch, tiny_model, random_sae):
    from warnframe.mech.artifacts import Artifacts, mark_skipped
    from warnframe.runtime.files import write_json

    model, tok = tiny_model(layers=2)
    base = tmp_path / "base"
    tiny.save(model, tok, base)
    study = Study(load_config("smoke", overrides=[f"model.source={base}"]), tmp_path / "run")
    art, why = iv._artifacts(study)
    assert art is None and "no §5 artifacts" in why
    mark_skipped(study.store, "too few samples per context")  # §5 skipped: its index says why
    assert "too few samples per context" in iv._artifacts(study)[1]
    # What mech.artifacts reads: (site, sae, probe, selected, lead), from the index a §5 run writes over the skip marker.
    write_json(study.store.path("mech", "artifacts.json"), {"site": "blocks.1.hook_resid_post", "selected_latents": [2, 4], "lead_latent": 4})
    sae = random_sae(model.config.hidden_size)
    monkeypatch.setattr(Artifacts, "read", classmethod(lambda cls, store: Artifacts(Site(1), sae, None, [2, 4], 4)))
    art, why = iv._artifacts(study)
    assert why is None and art.site == Site(1) and art.selected == [2, 4] and art.lead == 4 and art.sae is sae
    monkeypatch.setattr(Artifacts, "read", classmethod(lambda cls, store: Artifacts(Site(1), random_sae(48), None, [2, 4], 4)))
    assert "d_model 48" in iv._artifacts(study)[1]
    study.cfg.mech.analysis_model = "google/gemma-2-2b"
    assert "analysis_model" in iv._artifacts(study)[1]


def test_pinned_latents_replace_the_section_5_selection(random_sae):
    art = Artifacts(Site(1), random_sae(32, width=24), None, [2, 4], 4)
    icfg = load_config("smoke").interventions
    assert iv.edit_latents(icfg, art) == ([2, 4], None) and iv.edit_latents(icfg, None) == ([], None)
    pinned = load_config("smoke", overrides=["interventions.latents=[7, 1]"]).interventions
    assert iv.edit_latents(pinned, art) == ([7, 1], None)
    assert [e.latents for e in iv.edit_settings(pinned, [7, 1], art.lead)][0] == [7, 1]
    off = load_config("smoke", overrides=["interventions.latents=[99]"]).interventions
    assert "width 24" in iv.edit_latents(off, art)[1]
