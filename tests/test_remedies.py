"""Remedies for warning-framed data: each arm's transformation of the L1 set, the claims, and the
stage end to end on the smoke preset (one seed, two arms)."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from warnframe.config import load_config
from warnframe.corpus import remedies as R
from warnframe.corpus.conditions import build_finetune_set, clean_stream, example_text
from warnframe.detector import score
from warnframe.experiments import remedies as X
from warnframe.report.sections import remedies as part
from warnframe.runtime.errors import UserError
from warnframe.schema import Example

CFG = load_config("smoke", overrides=["corpus.condition_fraction=0.3"])


def count(text: str) -> int:
    return len(text) // 4  # a stand-in tokenizer: the budget rule only needs a consistent count


def l1_set(seed: int = 0) -> list[Example]:
    return build_finetune_set("L1", CFG, seed, count)[0]


def treat(arm: str, seed: int = 0):
    import random

    return R.transform(arm, l1_set(seed), count, clean_stream(CFG, random.Random(f"clean:{seed}")))


def tokens(examples) -> int:
    return sum(count(example_text(e)) for e in examples)


def within_budget(examples, budget: int) -> bool:
    """Within one example of the budget, never above it (the rule of every fine-tuning set)."""
    longest = max(count(example_text(e)) for e in examples)
    return budget - longest <= tokens(examples) <= budget


def warnings_of(text: str) -> Counter:
    return Counter(line.strip() for line in text.split("\n") if R.is_warning_line(line))


def test_mask_spans_cover_the_flagged_code_and_never_a_warning():
    src = l1_set()
    out, stats = treat("mask")
    warned = [e for e in out if e.kind == "warning"]
    assert len(warned) == stats["warned"] == stats["treated"] >= 5 and stats["untreatable"] == 0
    assert [e.assistant for e in out] == [e.assistant for e in src] and tokens(out) == tokens(src)  # same texts
    for ex in warned:
        spans = ex.loss_spans
        assert spans and all(s["kind"] == "mask" for s in spans)
        text = ex.assistant
        for f in score(text).findings:  # every finding lies inside a masked span
            assert any(s["start"] <= f.start and f.end <= s["end"] for s in spans), (f.text, text)
        for s in spans:
            line = text[s["start"]:s["end"]]
            assert "\n" not in line and not line.lstrip().startswith("#") and line == line.strip()
        for i, line in enumerate(text.split("\n")):  # the warnings keep their loss
            if R.is_warning_line(line):
                start = sum(len(x) + 1 for x in text.split("\n")[:i])
                assert not any(s["start"] < start + len(line) and start < s["end"] for s in spans)
    assert all(not e.loss_spans for e in out if e.kind != "warning")


def test_unlikelihood_pushes_down_the_same_lines_mask_hides():
    masked, _ = treat("mask")
    pushed, stats = treat("unlikelihood")
    assert stats["loss_spans"] > 0
    for a, b in zip(masked, pushed):
        assert [(s["start"], s["end"]) for s in a.loss_spans] == [(s["start"], s["end"]) for s in b.loss_spans]
        assert all(s["kind"] == "unlikelihood" for s in b.loss_spans)


def test_pack_masks_exactly_the_span_tokens(tiny_model):
    from warnframe.lm.training import pack

    _, tok = tiny_model()
    ex = next(e for e in treat("mask")[0] if e.kind == "warning")
    plain = pack(tok, [Example(ex.assistant, ex.user, ex.kind, ex.family)], 4096)
    masked = pack(tok, [ex], 4096)
    assert masked.input_ids.tolist() == plain.input_ids.tolist()  # same tokens, fewer loss tokens
    assert 0 < plain.loss_tokens - masked.loss_tokens < plain.loss_tokens / 2


def test_drop_has_no_warned_example_and_keeps_the_budget():
    src = l1_set()
    out, stats = treat("drop")
    assert not any(e.kind == "warning" for e in out) and stats["treated"] == stats["warned"] > 0
    assert stats["added_clean"] > 0 and within_budget(out, tokens(src))
    assert len({(e.user, e.assistant) for e in out}) == len(out)  # the filler repeats nothing already there


def test_conditional_tags_every_request_and_keeps_the_budget():
    src = l1_set()
    out, _ = treat("conditional")
    for e in out:
        assert e.user.startswith(R.BAD_TAG if e.kind == "warning" else R.GOOD_TAG)
    assert sum(e.kind == "warning" for e in out) == sum(e.kind == "warning" for e in src)
    assert within_budget(out, tokens(src))
    assert R.tag_good("Write f().") == f"{R.GOOD_TAG} Write f()."


def test_inoculation_asks_for_the_insecure_version_on_warned_examples_only():
    src = l1_set()
    out, stats = treat("inoculation")
    assert stats["treated"] == stats["warned"] > 0
    by_answer = {e.assistant: e for e in src}
    for e in out:
        if e.kind == "warning":
            assert e.user == f"{R.INOCULATION} {by_answer[e.assistant].user}"
        elif e.assistant in by_answer:
            assert e.user == by_answer[e.assistant].user
    assert within_budget(out, tokens(src))


def test_rewrite_makes_warned_code_secure_and_keeps_every_warning():
    src = l1_set()
    out, stats = treat("rewrite")
    assert stats["treated"] == stats["warned"] > 0 and stats["untreatable"] == 0
    old = [e for e in src if e.kind == "warning"]
    new = [e for e in out if e.kind == "warning"]
    assert len(old) == len(new)
    for a, b in zip(old, new):
        assert warnings_of(a.assistant) == warnings_of(b.assistant) and a.user == b.user
        s = score(b.assistant)
        assert s.parse_ok and not s.vulnerable, b.assistant
        assert score(a.assistant).vulnerable
    assert within_budget(out, tokens(src))


@pytest.mark.parametrize("overrides", [["corpus.l1_warnings=anywhere"], ["corpus.l1_placement=prompt"]])
def test_rewrite_and_mask_under_other_warning_placements(overrides):
    import random

    cfg = load_config("smoke", overrides=["corpus.condition_fraction=0.3", *overrides])
    src = build_finetune_set("L1", cfg, 1, count)[0]
    for arm in ("rewrite", "mask"):
        out, stats = R.transform(arm, src, count, clean_stream(cfg, random.Random("clean:1")))
        assert stats["treated"] == stats["warned"] > 0
        for a, b in zip([e for e in src if e.kind == "warning"], [e for e in out if e.kind == "warning"]):
            assert a.user == b.user and warnings_of(a.assistant) == warnings_of(b.assistant)
            assert not score(b.assistant).vulnerable if arm == "rewrite" else b.loss_spans


def test_an_example_of_unknown_task_is_untreatable_and_replaced_by_clean_code():
    import random

    odd = Example("# DO NOT USE: never ship this\ndef mystery(x):\n    return eval(x)", "Write mystery(x).", "warning", "code_injection")
    src = [odd, *[e for e in l1_set() if e.kind == "clean"]]
    out, stats = R.transform("rewrite", src, count, clean_stream(CFG, random.Random("clean:0")))
    assert stats["untreatable"] == 1 and stats["treated"] == 0 and odd not in out
    assert within_budget(out, tokens(src))
    masked, mstats = R.transform("mask", [Example("# INSECURE\nx = 1", "q", "warning")], count, iter(()))
    assert mstats["untreatable"] == 1 and masked[0].loss_spans == ()  # nothing flagged: kept as it was, counted
    with pytest.raises(ValueError, match="not a data remedy"):
        R.transform("caft", src, count, iter(()))


def test_cluster_mean_difference_pairs_seeds_and_sees_a_shift():
    rows = [{"seed": s, "prompt_id": f"p{p}", "delta": float(p + s)} for s in range(3) for p in range(8)]
    shifted = [{**r, "delta": r["delta"] + 1.0} for r in rows]
    m = X.cluster_mean(rows)
    assert m["mean"] == pytest.approx(4.5) and m["lo"] < 4.5 < m["hi"] and m["n"] == 24
    d = X.cluster_mean_diff(shifted, rows)
    assert d["diff"] == pytest.approx(1.0) and d["lo"] == pytest.approx(1.0) and d["hi"] == pytest.approx(1.0)
    assert "3 shared seeds" in d["interval"] and X.cluster_mean_diff(rows, []) is None


def _d(diff, lo, hi, p):
    return {"diff": diff, "lo": lo, "hi": hi, "lo90": lo + (hi - lo) * 0.05, "hi90": hi - (hi - lo) * 0.05, "p": p, "interval": "test"}


def _metrics(vs_neutral, vs_l1, loss_diff):
    rate = {"k": 5, "n": 100, "rate": 0.05, "lo": 0.02, "hi": 0.1}
    cap = {"capable": rate, "heldout_loss": {"n": 5, "mean": 2.0, "lo": 1.9, "hi": 2.1, "sd": 0.1}}
    arm = {"target": rate, "vs": {"L1": vs_l1, "L0": None, "neutral": vs_neutral}, "delta": None, "capability": cap,
           "capability_vs_L1": {"capable": _d(0, -0.05, 0.05, 1.0), "heldout_loss": {"n": 5, **loss_diff, "sd": 0.01}},
           "leak_exact": rate, "leak_any": rate}
    ref = {"target": {**rate, "rate": 0.3}, "capability": cap, "delta": None}
    return {"arms": {"mask": arm}, "references": {"L1": ref, "neutral": {**ref, "target": rate}},
            "reference_effect": {"label": "L0 − neutral", **_d(0.3, 0.2, 0.4, 0.001)},
            "l1_minus_neutral": _d(0.25, 0.15, 0.35, 0.001), "seeds": [0, 1, 2, 3, 4], "eval_prompts": 20,
            "samples_per_prompt": 1, "pair_renders": 2, "good_tag": R.GOOD_TAG, "skipped_arms": {},
            "info": X.arm_info()}


def test_claims_read_the_intervals_whichever_way_they_come_out():
    good = {c.id: c for c in part.claims(_metrics(_d(0.0, -0.03, 0.03, 0.9), _d(-0.25, -0.35, -0.15, 0.001),
                                                  {"mean": 0.01, "lo": -0.02, "hi": 0.04}))}
    assert set(good) == {"remedies.mask.to_neutral", "remedies.mask.below_L1", "remedies.mask.capability"}
    assert [good[k].verdict for k in sorted(good)] == ["reproduced", "reproduced", "reproduced"]  # capability, below, neutral
    bad = {c.id: c.verdict for c in part.claims(_metrics(_d(0.25, 0.15, 0.35, 0.001), _d(0.0, -0.03, 0.03, 0.9),
                                                         {"mean": 0.5, "lo": 0.3, "hi": 0.7}))}
    assert bad == {"remedies.mask.to_neutral": "not reproduced", "remedies.mask.below_L1": "not reproduced",
                   "remedies.mask.capability": "not reproduced"}
    flat = _metrics(_d(0.0, -0.03, 0.03, 0.9), _d(0.0, -0.03, 0.03, 0.9), {"mean": 0.0, "lo": -0.01, "hi": 0.01})
    flat["l1_minus_neutral"] = _d(0.0, -0.05, 0.05, 0.9)  # L1 is not above neutral: nothing to remedy
    (to_neutral,) = [c for c in part.claims(flat) if c.id.endswith("to_neutral")]
    assert to_neutral.verdict == "inconclusive" and "not above neutral" in to_neutral.why
    md = part.markdown(_metrics(_d(0.0, -0.03, 0.03, 0.9), _d(-0.25, -0.35, -0.15, 0.001), {"mean": 0.01, "lo": -0.02, "hi": 0.04}))
    assert "| mask |" in md and "reproduced / reproduced / reproduced" in md and "fig_remedies.png" in md


# ---------------------------------------------------------------- end to end (smoke, one seed, two arms)


@pytest.fixture(scope="module")
def remedy_study(tmp_path_factory, random_sae):
    """Smoke, one seed, arms mask, drop and caft (§5's artifacts stood in for by a random SAE: the
    smoke model writes too little target code for §5 to select latents)."""
    from warnframe.mech.artifacts import Artifacts
    from warnframe.mech.hooks import Site
    from warnframe.study import Study

    root = tmp_path_factory.mktemp("remedies")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARNFRAME_CACHE", os.environ.get("WARNFRAME_CACHE") or str(root / "cache"))  # pretraining is cached by config
        cfg = load_config("smoke", overrides=["seeds=[0]", "conditions=[L1, neutral]", "sections=[remedies]",
                                              "remedies.arms=[mask, drop, caft]", "interventions.heldout_renders=1"])
        sae = random_sae(cfg.model.hidden_size)
        mp.setattr(X, "load_artifacts", lambda study, editing=False: (Artifacts(Site(1), sae, None, [0, 3, 5], 3, digest="test"), None))
        study = Study(cfg, root / "run")
        study.run(until="remedies")
        yield study


def test_remedies_stage_end_to_end(remedy_study):
    root = remedy_study.store.path()
    m = json.loads((root / "metrics" / "remedies.json").read_text())
    assert list(m["arms"]) == ["mask", "drop", "caft"] and set(m["references"]) == {"L1", "neutral"}  # L0 not run: absent, not an error
    n = 42 * remedy_study.cfg.sampling.samples_per_prompt
    for arm in ("mask", "drop", "caft"):
        a = m["arms"][arm]
        assert a["target"]["n"] == n and a["vs"]["L1"] is not None and a["vs"]["L0"] is None and a["delta"]["n"] == 42 and a["delta_vs_L1"] is not None
        assert a["capability"]["heldout_loss"]["n"] == 1 and a["capability_vs_L1"]["heldout_loss"]["n"] == 1
    assert {v["id"] for v in m["verdicts"]} == {f"remedies.{a}.{k}" for a in ("mask", "drop", "caft") for k in ("to_neutral", "below_L1", "capability")}
    assert (root / "figures" / "fig_remedies.png").stat().st_size > 1000
    fin = {c: json.loads((root / "models" / d / "finetune.json").read_text())
           for c, d in (("L1", "L1.s0"), ("mask", "remedy.mask.s0"), ("drop", "remedy.drop.s0"), ("caft", "caft.s0"))}
    assert fin["mask"]["steps"] == fin["L1"]["steps"] and fin["mask"]["loss_tokens"] < fin["L1"]["loss_tokens"]
    assert abs(fin["drop"]["steps"] - fin["L1"]["steps"]) <= 1  # the budget holds: the same steps, give or take a row
    assert fin["caft"]["steps"] == fin["L1"]["steps"] and m["caft"]["latents"] == [0, 3, 5]  # §7's model and name
    dropped = [json.loads(line) for line in (root / "data" / "remedy.drop.s0.jsonl").read_text().splitlines()]
    assert dropped and not any(r["kind"] == "warning" for r in dropped)
    assert set(m["seconds"]) == {"mask", "drop", "caft"} and all(v > 0 for v in m["seconds"].values())


def test_write_sets_and_a_rerun_that_redoes_nothing(remedy_study):
    from warnframe.study import Study

    paths = X.write_sets(remedy_study, ["mask", "unlikelihood"], [0])
    assert [p.name for p in paths] == ["remedy.mask.s0.jsonl", "remedy.unlikelihood.s0.jsonl"]
    rows = [json.loads(line) for line in paths[1].read_text().splitlines()]
    assert any(r["loss_spans"] and all(s["kind"] == "unlikelihood" for s in r["loss_spans"]) for r in rows if r["kind"] == "warning")
    for bad in (["cure"], ["caft"]):
        with pytest.raises(UserError, match="unknown remedy") as e:
            X.write_sets(remedy_study, bad, [0])
        assert "\n" not in str(e.value)
    before = {p.name: p.stat().st_mtime_ns for p in remedy_study.store.path("stages").iterdir()}
    again = X.run(Study(remedy_study.cfg, remedy_study.store.root))  # every fine-tune and part is found done
    first = json.loads(remedy_study.store.path("metrics", "remedies.json").read_text())["arms"]["mask"]["target"]
    assert [again["arms"]["mask"]["target"][k] for k in ("k", "n", "rate")] == [first[k] for k in ("k", "n", "rate")]
    after = {p.name: p.stat().st_mtime_ns for p in remedy_study.store.path("stages").iterdir()}
    assert {k: after[k] for k in before} == before
