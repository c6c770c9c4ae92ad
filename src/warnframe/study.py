"""The study as stages in order, each resumable: a stage whose marker holds the same config key is
skipped, so a rerun of a finished or killed run redoes nothing that is complete.

Stages: ``pretrain`` (embedded base model, cached across runs) → ``data`` (fine-tuning sets and
evaluation prompts) → ``finetune`` (one model per condition and seed) → ``sample`` → ``score`` →
``behavior`` (§4) → later sections (``experiments.registry``) → ``report``. ``until`` stops after a
stage; ``conditions`` and ``seeds`` restrict the grid (one job of a cluster fan-out). Every stage
and section runs through :meth:`Study.stage`.
"""

from __future__ import annotations

import copy
import os
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from warnframe import __version__
from warnframe.config import SECTION_NAMES, StudyConfig
from warnframe.runtime import keys
from warnframe.runtime.cache import SEAL, cache_root, ensure, seal_damage
from warnframe.runtime.cache import seal as _seal
from warnframe.runtime.dirs import atomic_dir, reading
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import atomic_copy, read_json, read_jsonl, write_json, write_jsonl
from warnframe.runtime.locks import file_lock
from warnframe.runtime.progress import console, task
from warnframe.runtime.store import Store
from warnframe.schema import Example, Prompt

hf_logging.disable_progress_bar()

STAGES = ("pretrain", "data", "finetune", "sample", "score", *SECTION_NAMES, "report")


#: What ``scores/<condition>.jsonl`` keeps of each scored sample (the text stays in ``samples/``).
SCORE_RECORD = {"prompt_id", "family", "condition", "seed", "index", "n_tokens", "vulnerable", "findings", "parse_ok", "leak"}


def _cache_damage(folder: Path) -> str:
    """What is wrong with a cached base model ('' when nothing): a file missing or changed since it was
    sealed. A cache from before seals existed is checked by reading its weights whole, then sealed."""
    damage = seal_damage(folder)
    if damage is not None:
        return damage
    from safetensors import safe_open

    try:
        with safe_open(str(folder / "model.safetensors"), "pt") as w:
            for name in w.keys():
                w.get_tensor(name)
    except Exception as e:  # noqa: BLE001 - any failure to read the weights means: damaged
        return f"model.safetensors unreadable ({type(e).__name__})"
    if not (folder / "pretrain.json").is_file() or not (folder / "pretrain.jsonl").is_file():
        return "pretrain.json(l) missing"
    _seal(folder)
    return ""


def _unit(cond: str, seed: int) -> str:
    return f"{cond}.s{seed}"


class Study:
    def __init__(self, cfg: StudyConfig, out: str | Path):
        self.cfg = cfg
        self.store = Store(out)
        self._resolved_device: str | None = None

    def for_section(self, name: str, declared: tuple[str, ...]) -> Study:
        """This study as section ``name`` sees it: the same run directory and device, with a config
        in which every section outside ``declared`` raises on use (:meth:`StudyConfig.scoped`)."""
        clone = copy.copy(self)
        clone.cfg = self.cfg.scoped(name, declared)
        return clone

    # ---- helpers -------------------------------------------------------------------------
    @property
    def device(self) -> str:
        """The device models load on: ``cfg.device`` resolved once (``auto`` → cuda when present)."""
        if self._resolved_device is None:
            from warnframe.lm.models.hf import resolve_device

            self._resolved_device = resolve_device(self.cfg.device)
        return self._resolved_device

    @device.setter
    def device(self, value: str) -> None:
        self._resolved_device = value

    @property
    def base_source(self) -> str:
        if self.cfg.model.source == "embedded":
            return str(self.store.path("models", "base"))
        return self.cfg.model.source

    def load(self, source: str | Path):
        from warnframe.lm.models.hf import load_model

        m = self.cfg.model
        return load_model(source, device=self.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code)

    def model_path(self, cond: str, seed: int) -> Path:
        return self.store.path("models", _unit(cond, seed))

    def condition_model(self, cond: str, seed: int) -> str:
        return self.base_source if cond == "baseline" else str(self.model_path(cond, seed))

    def eval_prompts(self) -> list[Prompt]:
        return [Prompt(**r) for r in read_jsonl(self.store.path("data", "eval_prompts.jsonl"))]

    def stage(self, name: str, key: str, fn, **info) -> None:
        """The one entry point of every stage and section: run ``fn()`` unless stage ``name`` is done
        with ``key`` and every file it wrote is intact (size and SHA-256 in its marker), then mark it
        done with its time, outputs, ``info`` and what ``fn`` returned (:meth:`Store.run_stage`)."""
        from warnframe.lm.training import is_main_process

        self.store.run_stage(name, key, fn, mark=is_main_process(), log=console.log, **info)

    # ---- stages --------------------------------------------------------------------------
    def pretrain(self) -> None:
        """The embedded base model: corpus → tokenizer → Llama → pretraining; cached by config."""
        if self.cfg.model.source != "embedded":
            return
        key = self.pretrain_key()
        dest = self.store.path("models", "base")

        def run():
            cached = cache_root() / "base" / key
            ensure(cached, self._pretrain_into,
                   lambda f: _cache_damage(f) if (f / "config.json").is_file() else "config.json missing")
            with atomic_dir(dest) as tmp, reading(cached) as src:  # one whole version of the shared cache
                for f in src.iterdir():
                    if f.name not in ("pretrain.jsonl", SEAL):
                        shutil.copy2(f, tmp / f.name)
                atomic_copy(src / "pretrain.jsonl", self.store.path("data", "pretrain.jsonl"))  # recorded as an output
            return {"summary": read_json(cached / "pretrain.json")}

        self.stage("pretrain", key, run)

    def pretrain_key(self) -> str:
        """The base model depends on the model, pretraining and pretraining-corpus settings only;
        fine-tuning-set fields (budget, fraction, L1 placement, user corpus) do not retrain it."""
        skip = {"token_budget", "condition_fraction", "l1_placement", "l1_warnings", "source", "on_error"}
        corpus = {k: v for k, v in self.cfg.corpus.model_dump(mode="json").items() if k not in skip}
        return keys.key(corpus, self.cfg.digest("model", "pretrain"))

    def _pretrain_into(self, cached: Path) -> None:
        from warnframe.corpus import build_pretrain_corpus
        from warnframe.lm.models import tiny
        from warnframe.lm.training import pack, train

        cfg = self.cfg
        torch.manual_seed(cfg.pretrain.seed)
        docs = build_pretrain_corpus(cfg, cfg.pretrain.seed)
        tok = tiny.train_tokenizer(((d.user or "") + "\n" + d.assistant for d in docs), cfg.model.vocab_size)
        # transformers wraps PreTrainedModel.to in functools.wraps, whose type does not bind self
        model = tiny.build_model(cfg.model, tok).to(self.device)  # type: ignore[arg-type]
        data = pack(tok, docs, cfg.model.context, completion_only=False)
        with task("pretrain base model", 1) as adv:
            steps = {"n": 0}

            def prog(i, total, loss):
                if steps["n"] == 0:
                    adv(0)
                steps["n"] = i
                adv(1 / total, info=f"loss {loss:.3f}")

            summary = train(model, data, epochs=cfg.pretrain.epochs, lr=cfg.pretrain.lr,
                            batch_size=cfg.pretrain.batch_size, seed=cfg.pretrain.seed, progress=prog,
                            precision=self.precision("pretrain", model, data, cfg.pretrain.batch_size))
        summary.update(documents=len(docs), parameters=sum(p.numel() for p in model.parameters()))
        with atomic_dir(cached) as tmp:
            tiny.save(model, tok, tmp)
            write_json(tmp / "pretrain.json", summary)
            write_jsonl(tmp / "pretrain.jsonl", (d.__dict__ for d in docs))
            _seal(tmp)

    def data(self) -> None:
        """Fine-tuning sets (one per condition and seed, same token budget) and eval prompts."""
        from warnframe.corpus import eval_prompts
        from warnframe.corpus.sources import build_finetune_set_from_source
        from warnframe.lm.models.hf import load_tokenizer
        from warnframe.lm.training import count_tokens

        key = self.cfg.digest("corpus", "model", "pretrain")

        def prompts():
            write_jsonl(self.store.path("data", "eval_prompts.jsonl"), (p.__dict__ for p in eval_prompts(self.cfg)))

        self.stage("data.prompts", key, prompts)
        tok = None
        for cond in self.cfg.finetune_conditions + (["L1"] if "L1" not in self.cfg.finetune_conditions else []):
            for seed in self.cfg.seeds:
                def build(cond=cond, seed=seed):
                    nonlocal tok
                    tok = tok or load_tokenizer(self.base_source, self.cfg.model.trust_remote_code)
                    examples, stats = build_finetune_set_from_source(cond, self.cfg, seed, count_tokens(tok), self.cfg.corpus.source)
                    if not examples:
                        raise UserError(f"the {cond} fine-tuning set of seed {seed} is empty: corpus.token_budget "
                                        f"({self.cfg.corpus.token_budget} tokens) holds no whole example",
                                        "corpus.token_budget", "raise it (the presets use 6,000 and more)")
                    write_jsonl(self.store.path("data", f"{_unit(cond, seed)}.jsonl"), (e.__dict__ for e in examples))
                    return {"stats": stats}

                self.stage(f"data.{_unit(cond, seed)}", keys.key(key, seed), build)

    def dataset(self, cond: str, seed: int) -> list[Example]:
        return [Example(**r) for r in read_jsonl(self.store.path("data", f"{_unit(cond, seed)}.jsonl"))]

    def precision(self, kind: str, model, data, batch_size: int) -> str:
        """The training precision of ``kind`` (``pretrain`` or ``finetune``) in this run: the config's
        (``<kind>.precision``), or for ``auto`` the one :mod:`warnframe.lm.precision` decides, recorded
        in ``precision/<kind>.json`` of the run directory: every later fine-tune of the run, and a
        resumed run, reads it back. The decision is also kept in the shared cache per machine kind
        (CPU model and bf16 flags, threads, torch, the model's and batch's shape), so every run on one
        kind of machine trains alike, whatever load a measurement would have met."""
        from warnframe.lm.precision import choose, machine_kind
        from warnframe.lm.training import is_main_process

        requested = getattr(getattr(self.cfg, kind), "precision", "auto")
        if requested != "auto":
            return requested
        path = self.store.path("precision", f"{kind}.json")  # one file per kind: one stage writes each
        if not path.is_file():
            device = next(model.parameters()).device
            batch = data.input_ids[:batch_size].to(device)
            shared = cache_root() / "precision" / f"{machine_kind(model, batch)}.json"
            shared.parent.mkdir(parents=True, exist_ok=True)
            with file_lock(shared.parent / f".{shared.stem}.lock"):
                try:
                    chosen = read_json(shared) if shared.is_file() else None
                except (OSError, ValueError):
                    chosen = None
                if not isinstance(chosen, dict) or chosen.get("dtype") not in ("float32", "bfloat16"):
                    chosen = choose(model, batch, "auto").as_dict()
                    write_json(shared, chosen)
            if not is_main_process():
                return chosen["dtype"]
            write_json(path, chosen)
        return read_json(path)["dtype"]

    def finetune_one(self, cond: str, seed: int, *, edit_factory=None, dest: Path | None = None, stage: str | None = None,
                     extra_key: str = "", examples: list[Example] | None = None, unlikelihood_weight: float = 0.0) -> None:
        """Fine-tune the base on ``cond``'s set, with the study's fine-tuning settings. The one
        trainer of every arm: CAFT passes an edit (``edit_factory(model)``); a dose or a remedy
        passes its own ``examples`` (their ``loss_spans`` masked or pushed down with
        ``unlikelihood_weight``), saved to ``dest`` under stage name ``stage``."""
        from warnframe.lm.training import is_main_process, pack, train, wait_for_everyone

        ft = self.cfg.finetune
        # the set itself is part of the key when given: a changed remedy retrains
        trained_on = None if examples is None else [[e.__dict__ for e in examples], unlikelihood_weight]
        stage_key = keys.key(self.cfg.digest("corpus", "model", "pretrain", "finetune"), seed, extra_key, trained_on)
        dest = dest or self.model_path(cond, seed)
        stage = stage or f"finetune.{_unit(cond, seed)}"

        def run():
            torch.manual_seed(seed)
            model, tok = self.load(self.base_source)
            if ft.method == "lora":
                from peft import LoraConfig, get_peft_model

                model = get_peft_model(model, LoraConfig(r=ft.lora_r, lora_alpha=ft.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM"))
            data = pack(tok, examples if examples is not None else self.dataset(cond, seed), self.cfg.model.context,
                        completion_only=ft.completion_only)
            edit = edit_factory(model) if edit_factory else None
            with task(f"finetune {cond} seed {seed}", 1) as adv:
                summary = train(model, data, epochs=ft.epochs, lr=ft.lr, batch_size=ft.batch_size, seed=seed, edit=edit,
                                unlikelihood_weight=unlikelihood_weight,
                                progress=lambda i, n, loss: adv(1 / n, info=f"loss {loss:.3f}"),
                                precision=self.precision("finetune", model, data, ft.batch_size))
            if is_main_process():  # under `accelerate launch` one process saves
                with atomic_dir(dest) as tmp:
                    model.save_pretrained(tmp, safe_serialization=True)
                    tok.save_pretrained(tmp)
                    # wall-clock figures stay in the stage marker: a redone fine-tune writes the same file
                    write_json(tmp / "finetune.json", {k: v for k, v in summary.items()
                                                       if k not in ("seconds", "tokens_per_second")})
            wait_for_everyone()
            return {"summary": summary}

        self.stage(stage, stage_key, run)

    def finetune(self, conditions, seeds) -> None:
        for cond in conditions:
            if cond == "baseline":
                continue
            for seed in seeds:
                self.finetune_one(cond, seed)

    def sample_one(self, cond: str, seed: int) -> None:
        from warnframe.lm.sampling import generate

        s = self.cfg.sampling
        key = keys.key(self.cfg.digest("corpus", "model", "pretrain", "finetune", "sampling"), seed)
        part = self.store.path("samples", "parts", f"{_unit(cond, seed)}.jsonl")

        def run():
            prompts = self.eval_prompts()
            model, tok = self.load(self.condition_model(cond, seed))
            t0 = time.perf_counter()
            with task(f"sample {cond} seed {seed}", len(prompts) * s.samples_per_prompt) as adv:
                samples = generate(model, tok, prompts, s, seed=seed, condition=cond, progress=adv)
            secs = time.perf_counter() - t0
            write_jsonl(part, samples)
            toks = sum(x.n_tokens for x in samples)
            return {"samples": len(samples), "tokens": toks, "tokens_per_second": round(toks / max(secs, 1e-9))}

        self.stage(f"sample.{_unit(cond, seed)}", key, run)

    def sample(self, conditions, seeds) -> None:
        for cond in conditions:
            for seed in seeds:
                self.sample_one(cond, seed)

    def _parts(self, cond: str) -> list[Path]:
        """The sample files of ``cond`` for the configured seeds that exist (a restricted or
        grid run may have made only some)."""
        parts = [self.store.path("samples", "parts", f"{_unit(cond, s)}.jsonl") for s in self.cfg.seeds]
        return [p for p in parts if p.is_file()]

    def _merge(self, cond: str) -> None:
        write_jsonl(self.store.path("samples", f"{cond}.jsonl"), (r for p in self._parts(cond) for r in read_jsonl(p)))

    def score(self, conditions) -> None:
        from warnframe.detector import fingerprint
        from warnframe.lm.evaluation import score_all

        # the detector is part of the key: a changed detector (rules, families, bandit) rescores
        base = keys.key(self.cfg.digest("corpus", "model", "pretrain", "finetune", "sampling"), fingerprint())
        for cond in conditions:
            key = keys.key(base, keys.fingerprint(self._parts(cond)))  # rescored when seeds are added

            def run(cond=cond):
                self._merge(cond)  # seed jobs of one condition may have run in parallel (grid)
                rows = list(read_jsonl(self.store.path("samples", f"{cond}.jsonl")))
                with task(f"score {cond}", len(rows)) as adv:
                    out = [r.model_dump(mode="json", include=SCORE_RECORD) for r in score_all(rows, adv)]
                write_jsonl(self.store.path("scores", f"{cond}.jsonl"), out)
                return {"samples": len(out), "vulnerable": sum(r["vulnerable"] for r in out)}

            self.stage(f"score.{cond}", key, run)

    def _scored_paths(self, cond: str) -> tuple[Path, Path] | None:
        """``(samples, scores)`` files of ``cond``; None when it was not run. A *configured*
        condition without them is an error (its row would silently be missing from every table),
        a condition the config does not list is simply absent."""
        sp, cp = self.store.path("samples", f"{cond}.jsonl"), self.store.path("scores", f"{cond}.jsonl")
        if sp.is_file() and cp.is_file():
            return sp, cp
        if cond in self.cfg.conditions:
            raise UserError(f"no scores for configured condition {cond!r}", str(cp),
                            f"run `warnframe score --condition {cond} --out {self.store.root}`, or leave it out of "
                            "`conditions`")
        return None

    def outputs(self, cond: str) -> list[dict]:
        """Samples of ``cond`` joined with their verdicts (``vulnerable``, ``parse_ok``, ``leak``, ``findings``);
        empty when ``cond`` is not a configured condition and was not run."""
        paths = self._scored_paths(cond)
        if paths is None:
            return []
        sp, cp = paths

        def key(r):
            return (r["seed"], r["prompt_id"], r["index"])

        texts = {key(r): r for r in read_jsonl(sp)}
        return [{**texts[key(r)], "vulnerable": bool(r["vulnerable"]), "parse_ok": bool(r["parse_ok"]), "leak": r.get("leak", {}),
                 "findings": r.get("findings", [])}
                for r in read_jsonl(cp) if key(r) in texts]

    def scored(self, conditions=None) -> list[dict]:
        """The score rows of ``conditions`` (default: every configured condition, each required)."""
        rows = []
        for cond in conditions or self.cfg.conditions:
            paths = self._scored_paths(cond)
            if paths is not None:
                rows += list(read_jsonl(paths[1]))
        return rows

    def analyse(self, name: str) -> dict:
        """Run one analysis section (``sections.py``), resumable, and save its metrics and claims as
        ``metrics/<name>.json``. Its resume key covers the config it declares and the scores. Every
        interval it draws uses ``analysis.bootstrap`` replicates from ``analysis.seed`` when it
        declares ``analysis`` (:func:`warnframe.stats.clustered.settings`), the defaults otherwise."""
        from contextlib import nullcontext

        from warnframe import sections as registry
        from warnframe.stats.clustered import settings

        sec = registry.SECTIONS[name]
        key = keys.key(sec.key(self.cfg), keys.fingerprint(self.store.path("scores").glob("*.jsonl")))
        path = self.store.path("metrics", f"{name}.json")
        an = self.cfg.analysis if "analysis" in sec.declared() else None

        def run():
            with settings(an.bootstrap, an.seed) if an else nullcontext():
                write_json(path, registry.run(self, name).record())

        self.stage(f"analyse.{name}", key, run)
        return read_json(path)

    def manifest(self) -> None:
        import transformers

        write_json(self.store.path("manifest.json"), {
            "warnframe": __version__,
            "config": self.cfg.model_dump(mode="json"),
            "seeds": self.cfg.seeds,
            "base_model": self.base_source,
            "device": self.device,
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()},
            "stage_seconds": self.store.timings(),
            "precision": {p.stem: read_json(p) for p in sorted(self.store.path("precision").glob("*.json"))},
        })

    # ---- the whole study -----------------------------------------------------------------
    def run(self, until: str = "report", conditions: list[str] | None = None, seeds: list[int] | None = None) -> Path:
        if until not in STAGES:
            raise UserError(f"unknown stage {until!r}", "--until", f"choose one of {', '.join(STAGES)}")
        conds = conditions or self.cfg.conditions
        seeds = seeds or self.cfg.seeds
        write_json(self.store.path("config.json"), self.cfg.model_dump(mode="json"))
        self._check_sections()
        steps: list[tuple[str, Callable[[], object]]] = [
            ("pretrain", self.pretrain),
            ("data", self.data),
            ("finetune", lambda: self.finetune(conds, seeds)),
            ("sample", lambda: self.sample(conds, seeds)),
            ("score", lambda: self.score(conds)),
            *[(name, lambda name=name: self.analyse(name)) for name in self.cfg.sections],
            ("report", self.report),
        ]
        for name, fn in steps:
            console.log(f"stage [bold]{name}[/]")
            fn()
            self.manifest()
            if name == until:
                break
        return self.store.path("report.md")

    def _check_sections(self) -> None:
        """Say which configured section lacks a section or condition it reads (it then runs and
        reports what it could not measure)."""
        from warnframe.sections import SECTIONS as REGISTRY

        for name in self.cfg.sections:
            sec = REGISTRY[name]
            missing = [n for n in sec.needs if n not in self.cfg.sections]
            absent = [c for c in sec.conditions(self.cfg) if c not in self.cfg.conditions]
            if missing or absent:
                console.log(f"note: section {name} reads {', '.join(missing + absent)}, which this run does not have; "
                            "it reports what it could not measure")

    def report(self) -> None:
        from warnframe.report.render import write_report

        write_report(self)
