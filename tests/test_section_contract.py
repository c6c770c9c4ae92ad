"""The section contract: a section sees only the config it declares, and its resume key covers
exactly that, so changing a field reruns exactly the sections that read it."""

from __future__ import annotations

import shutil

import pytest
from pydantic import BaseModel

from warnframe.config import ALWAYS_READABLE, RUNTIME_FIELDS, StudyConfig, UndeclaredConfigError, load_config
from warnframe.sections import SECTIONS, UPSTREAM


def _bumped(cfg: StudyConfig, section: str) -> tuple[StudyConfig, str]:
    """``cfg`` with the first numeric, boolean or list field of ``section`` changed (and that field's name)."""
    sub = getattr(cfg, section)
    if not isinstance(sub, BaseModel):  # seeds, conditions: top-level lists
        return cfg.model_copy(update={section: list(sub)[:-1] or list(sub) * 2}), section
    for name, value in sub.model_dump().items():
        if (section, name) in RUNTIME_FIELDS:
            continue
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, int | float):
            new = value / 2 if isinstance(value, float) else value + 1
        elif isinstance(value, list) and len(value) > 1:
            new = value[:-1]
        else:
            continue
        return cfg.model_copy(update={section: sub.model_copy(update={name: new})}), f"{section}.{name}"
    raise AssertionError(f"no field to change in {section}")


@pytest.mark.parametrize("section", [n for n in StudyConfig.model_fields if n not in ALWAYS_READABLE])
def test_a_change_moves_exactly_the_keys_of_the_sections_that_declare_it(section):
    cfg = load_config("smoke")
    changed, field = _bumped(cfg, section)
    moved = {n for n, s in SECTIONS.items() if s.key(cfg) != s.key(changed)}
    assert moved == {n for n, s in SECTIONS.items() if section in s.declared()}, field


def test_runtime_fields_move_no_key():
    cfg = load_config("smoke")
    for sec, name in RUNTIME_FIELDS:
        changed = cfg.model_copy(update={sec: getattr(cfg, sec).model_copy(update={name: 7})})
        assert all(s.key(cfg) == s.key(changed) for s in SECTIONS.values()), (sec, name)


def test_a_section_reading_undeclared_config_fails_loudly():
    cfg = load_config("smoke")
    scoped = cfg.scoped("behavior", SECTIONS["behavior"].declared())
    assert scoped.analysis.renders == cfg.analysis.renders and scoped.seeds == cfg.seeds
    with pytest.raises(UndeclaredConfigError, match=r"section 'behavior' reads config tracing\.max_prompts.*sections\.py"):
        _ = scoped.tracing.max_prompts
    with pytest.raises(UndeclaredConfigError):
        scoped.digest("mech")
    assert scoped.digest(*UPSTREAM) == cfg.digest(*UPSTREAM)


def test_upstream_reads_are_always_declared():
    for s in SECTIONS.values():
        assert set(UPSTREAM) <= set(s.declared())
        assert set(s.config_sections()) <= set(StudyConfig.model_fields), s.name


@pytest.mark.parametrize("override,reruns", [("tracing.max_prompts=3", {"tracing"}),
                                             ("detection.train_fraction=0.6", {"detection"})])
def test_changing_a_field_reruns_exactly_its_sections(smoke_study, tmp_path, override, reruns):
    from warnframe.study import Study

    run = tmp_path / "run"
    shutil.copytree(smoke_study.store.root, run)  # keys hash contents: a copy is intact
    marks = {p.name: p.read_text() for p in (run / "stages").glob("*.json")}
    cfg = load_config("smoke", overrides=[override])
    Study(cfg, run).run()
    after = {p.name: p.read_text() for p in (run / "stages").glob("*.json")}
    changed = {n for n in after if marks.get(n) != after[n]}
    assert {n.removeprefix("analyse.").removesuffix(".json") for n in changed if n.startswith("analyse.")} == reruns
    assert not {n for n in changed if n.split(".")[0] in ("pretrain", "data", "finetune", "sample", "score")}


def test_one_bootstrap_knob_reaches_every_interval():
    """Inside ``settings`` (how the study runs each section) the cluster bootstrap draws
    ``analysis.bootstrap`` replicates from ``analysis.seed``; an explicit argument still wins."""
    from warnframe.stats.clustered import cluster_mean_diff, cluster_rate, settings

    rows = [{"seed": s, "prompt_id": f"p{p}", "vulnerable": (s + p + i) % 3 == 0, "delta": float((s * p + i) % 5)}
            for s in range(3) for p in range(8) for i in range(2)]
    other = [{**r, "delta": r["delta"] + 1.0} for r in rows]
    with settings(300, 7):
        inside = cluster_rate(rows), cluster_mean_diff(rows, other)
        explicit = cluster_rate(rows, replicates=4000, seed=0)
    assert inside == (cluster_rate(rows, replicates=300, seed=7), cluster_mean_diff(rows, other, seed=7, replicates=300))
    assert explicit == cluster_rate(rows) and inside[0] != cluster_rate(rows)


def test_a_changed_detector_rescores_and_retrains_nothing(smoke_study, tmp_path, monkeypatch):
    """The detector (its rules, the families', bandit's version) is in the score stage's key: a run
    scored by another detector is rescored, and nothing upstream is redone."""
    import warnframe.detector
    from warnframe.study import Study

    run = tmp_path / "run"
    shutil.copytree(smoke_study.store.root, run)
    marks = {p.name: p.read_text() for p in (run / "stages").glob("*.json")}
    monkeypatch.setattr(warnframe.detector, "fingerprint", lambda: "another detector")
    Study(load_config("smoke"), run).run(until="score")
    after = {p.name: p.read_text() for p in (run / "stages").glob("*.json")}
    changed = {n.removesuffix(".json") for n in after if marks.get(n) != after[n]}
    assert changed == {n.removesuffix(".json") for n in marks if n.startswith("score.")}
