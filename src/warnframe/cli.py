"""Command line: ``warnframe run`` (the whole study) and one command per stage.

Every command takes the same config options (``--preset``, ``--config``, ``--set key=value``,
``--model``, ``--analysis-model``, ``--sae``) and a run directory (``--out``). A stage command runs
the stages it needs first, skipping those already complete for the same config, so a killed run
resumes where it stopped. ``data --from FILE`` builds the conditions from a user corpus;
``evaluate`` runs external prompt sets; ``grid`` fans the condition × seed grid out as jobs.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .errors import UserError
from .schema import CONDITIONS

app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__, pretty_exceptions_enable=False)

Preset = Annotated[str, typer.Option("--preset", "-p", help="smoke | tiny | paper")]
ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML/JSON config file")]
Sets = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="override: section.field=value (repeatable)")]
Out = Annotated[Optional[Path], typer.Option("--out", "-o", help="run directory (default runs/<preset>-<time>)")]
Conds = Annotated[Optional[list[str]], typer.Option("--condition", help="only this condition (repeatable)")]
Seeds = Annotated[Optional[list[int]], typer.Option("--seed", help="only this seed (repeatable)")]
Model = Annotated[Optional[str], typer.Option("--model", help="behaviour model: hub id or local path (model.source)")]
AnalysisModel = Annotated[Optional[str], typer.Option("--analysis-model", help="model for the mechanistic sections (mech.analysis_model)")]
Sae = Annotated[Optional[str], typer.Option("--sae", help="SAE: params.npz path, hf://repo/path or saelens://release/id (mech.sae)")]
Until = Annotated[str, typer.Option("--until", help="last stage to run")]


def _overrides(sets, model=None, analysis_model=None, sae=None, source=None) -> list[str]:
    """--set items plus the named flags (JSON-quoted so any path or id stays a string)."""
    out = list(sets or [])
    for key, value in (("model.source", model), ("mech.analysis_model", analysis_model), ("mech.sae", sae),
                       ("corpus.source", source)):
        if value is not None:
            out.append(f"{key}={json.dumps(value)}")
    return out


def _fail(err: UserError) -> None:
    typer.echo(f"warnframe: error: {err}", err=True)
    raise typer.Exit(err.exit_code)


def _study(preset, config, sets, out, conditions):
    from .config import load_config
    from .study import Study

    cfg = load_config(preset, config, sets)
    for c in conditions or []:
        if c not in CONDITIONS:
            raise UserError(f"unknown condition {c!r}", "--condition", f"choose from {', '.join(CONDITIONS)}")
    out = out or Path("runs") / f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Study(cfg, out)


def _stage(until: str, preset, config, sets, out, conditions=None, seeds=None):
    try:
        study = _study(preset, config, sets, out, conditions)
        report = study.run(until=until, conditions=conditions, seeds=seeds)
    except UserError as e:
        _fail(e)
    return study, report


@app.command()
def run(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
        condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None,
        sae: Sae = None):
    """Run the whole study (default: the embedded model on the CPU, no downloads)."""
    study, report = _stage("report", preset, config, _overrides(set, model, analysis_model, sae), out, condition, seed)
    from rich.console import Console

    con = Console()
    table = study.store.path("tables", "table1.md")
    if table.is_file():
        con.print("\n[bold]Table 1[/] (ours; paper beside)\n")
        con.print(table.read_text())
    from .report.render import collect

    verdicts, _ = collect(study)
    if verdicts:
        con.print("[bold]Verdicts[/] (paper claim: ours)")
        for v in verdicts:
            con.print(f"  §{v['section']} {v['claim']}: [bold]{v['verdict']}[/] — {v['ours']}")
    con.print(f"\nreport: {report}")


def _make(name: str, doc: str):
    def cmd(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
            condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None,
            sae: Sae = None):
        study, _ = _stage(name, preset, config, _overrides(set, model, analysis_model, sae), out, condition, seed)
        typer.echo(str(study.store.root))

    cmd.__doc__ = doc
    app.command(name=name)(cmd)


for _name, _doc in [
    ("pretrain", "Build (or reuse from the cache) the embedded base model."),
    ("finetune", "Fine-tune one model per condition and seed."),
    ("sample", "Generate samples from every condition's model."),
    ("score", "Score every sample (static detector + bandit, format leakage)."),
    ("report", "Compute the statistics, figures and report.md."),
]:
    _make(_name, _doc)


@app.command()
def data(
    preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
    condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None, sae: Sae = None,
    source: Annotated[Optional[str], typer.Option("--from", help="user corpus: JSONL (messages or prompt/completion), dataset dir or hub dataset id; label=PATH declares a file, commas join several")] = None,
    on_error: Annotated[str, typer.Option("--on-error", help="malformed corpus records: stop (default) or skip")] = "stop",
    check: Annotated[bool, typer.Option("--check", help="only read and label the corpus, build nothing")] = False,
):
    """Build the fine-tuning sets (every condition and seed) and the held-out evaluation prompts.

    With --from, L0 / L1 / control come from your corpus of vulnerable and secure code (the
    detector labels every record), L2 / L3 from warnframe's own texts unless the corpus has
    records labelled doc / indirect."""
    try:
        if on_error not in ("stop", "skip"):
            raise UserError(f"unknown --on-error {on_error!r}", "--on-error", "choose stop or skip")

        sets = _overrides(set, model, analysis_model, sae, source)
        sets.append(f"corpus.on_error={on_error}")
        study = _study(preset, config, sets, out, condition)
        if study.cfg.corpus.source:
            from .corpus.sources import describe, load_corpus

            typer.echo(f"corpus {study.cfg.corpus.source}: {describe(load_corpus(study.cfg.corpus.source, on_error))}")
        if check:
            return
        study.run(until="data", conditions=condition, seeds=seed)
    except UserError as e:
        _fail(e)
    typer.echo(str(study.store.root))


@app.command()
def evaluate(
    prompts: Annotated[Path, typer.Option("--prompts", help="CyberSecEval instruct (JSON/JSONL), Emergent Misalignment {task, code_template} JSONL, or chat/prompt JSONL")],
    out: Annotated[Path, typer.Option("--out", "-o", help="an existing run directory")],
    condition: Conds = None, seed: Seeds = None,
    name: Annotated[Optional[str], typer.Option("--name", help="result folder under RUN/external (default: the file's stem)")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="only the first N prompts")] = None,
    samples_per_prompt: Annotated[int, typer.Option("--samples-per-prompt", help="samples per prompt, per seed")] = 1,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", help="longest answer (default: sampling.max_new_tokens)")] = None,
):
    """Evaluate conditions' models on external prompts with the study's sampling and scoring."""
    from .config import StudyConfig
    from .eval_sets import evaluate as run_eval
    from .eval_sets import load_prompts
    from .store import read_json
    from .study import Study

    try:
        cfg_path = out / "config.json"
        if not cfg_path.is_file():
            raise UserError(f"not a run directory: {out}", "--out", "pass the --out of a finished `warnframe finetune` or `run`")
        try:
            cfg = StudyConfig.model_validate(read_json(cfg_path))
        except (ValueError, OSError) as err:  # JSONDecodeError and ValidationError are ValueErrors
            raise UserError(f"unreadable run config: {str(err).splitlines()[0]}", str(cfg_path),
                            "rerun `warnframe run --out` with the current warnframe to rewrite it") from None
        for c in condition or []:
            if c not in CONDITIONS:
                raise UserError(f"unknown condition {c!r}", "--condition", f"choose from {', '.join(CONDITIONS)}")
        study = Study(cfg, out)
        conds = condition or [c for c in cfg.conditions
                              if c == "baseline" or any(study.model_path(c, s).is_dir() for s in (seed or cfg.seeds))]
        items = load_prompts(prompts, limit)
        summary = run_eval(study, items, name or prompts.stem.replace(".", "_"), conds, seed or cfg.seeds,
                           samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens)
    except UserError as e:
        _fail(e)
    from .scoring.stats import fmt_rate

    typer.echo(f"{summary['prompts']} prompts from {prompts}")
    for c, r in summary["conditions"].items():
        typer.echo(f"  {c:9s} vulnerable {fmt_rate(r['vulnerable'])}  parse failures {r['parse_failed']}")
    typer.echo(str(study.store.path("external", name or prompts.stem.replace(".", "_"), "summary.json")))


@app.command()
def grid(
    preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
    condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None, sae: Sae = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this machine) | slurm | debug (in this process)")] = "local",
    until: Until = "report",
    partition: Annotated[Optional[str], typer.Option("--partition", help="SLURM partition")] = None,
    gpus_per_job: Annotated[int, typer.Option("--gpus-per-job", help="GPUs per job")] = 0,
    cpus_per_job: Annotated[Optional[int], typer.Option("--cpus-per-job", help="CPUs per job (SLURM)")] = None,
    mem_gb: Annotated[Optional[int], typer.Option("--mem-gb", help="memory per job in GB (SLURM)")] = None,
    timeout_min: Annotated[int, typer.Option("--timeout-min", help="wall-clock limit per job, minutes")] = 240,
    max_parallel: Annotated[Optional[int], typer.Option("--max-parallel", help="jobs at once")] = None,
    slurm_arg: Annotated[Optional[list[str]], typer.Option("--slurm-arg", help="extra sbatch option key=value (repeatable)")] = None,
):
    """Fan the condition × seed grid out as jobs (submitit), all writing into one run directory."""
    from .grid import run_grid

    try:
        study = _study(preset, config, _overrides(set, model, analysis_model, sae), out, condition)
        extra = {}
        for item in slurm_arg or []:
            k, sep, v = item.partition("=")
            if not sep:
                raise UserError(f"--slurm-arg {item!r} is not key=value", "--slurm-arg", "write e.g. --slurm-arg account=myproj")
            extra[k] = v
        run_grid(study.cfg, study.store.root, executor=executor, until=until, conditions=condition, seeds=seed,
                 partition=partition, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, mem_gb=mem_gb,
                 timeout_min=timeout_min, max_parallel=max_parallel, slurm_args=extra, log=typer.echo)
    except UserError as e:
        _fail(e)
    typer.echo(str(study.store.root))


@app.command()
def detect(
    input: Annotated[Path, typer.Argument(help="JSONL file of records")],
    field: Annotated[str, typer.Option("--field", help="record field holding the code")] = "code",
    out: Annotated[Path, typer.Option("--out", "-o", help="output JSONL")] = Path("detected.jsonl"),
    no_bandit: Annotated[bool, typer.Option("--no-bandit", help="rules only (faster)")] = False,
):
    """Score any JSONL of code: each output line is the record plus vulnerable, findings, parse_ok, leak."""
    from .scoring import score_jsonl

    try:
        counts = score_jsonl(input, field, out, use_bandit=not no_bandit)
    except UserError as e:
        _fail(e)
    typer.echo(f"{out}: {counts}")


@app.command()
def config(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None):
    """Print the resolved configuration as JSON."""
    from .config import load_config

    try:
        cfg = load_config(preset, config, set)
    except UserError as e:
        _fail(e)
    typer.echo(cfg.model_dump_json(indent=2))


def main() -> None:
    try:
        app()
    except UserError as e:  # raised outside a command body
        print(f"warnframe: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
