"""Command line: ``warnframe run`` (the whole study) and one command per stage.

Every command takes the same config options (``--preset``, ``--config``, ``--set key=value``,
``--model``, ``--analysis-model``, ``--sae``) and a run directory (``--out``). A stage command runs
the stages it needs first, skipping those already complete for the same config, so a killed run
resumes where it stopped. ``data --from FILE`` builds the conditions from a user corpus;
``evaluate`` runs external prompt sets; ``grid`` fans the condition × seed grid out as jobs;
``audit CORPUS`` finds negative-example framings in a training corpus (docs/audit.md); ``audit-model
MODEL`` tells whether a checkpoint learned from them (docs/audit_model.md); ``dose`` and ``remedies``
are stages of their own.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from warnframe.runtime.errors import UserError
from warnframe.schema import CONDITIONS

app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__, pretty_exceptions_enable=False)

Preset = Annotated[str, typer.Option("--preset", "-p", help="smoke | tiny | paper")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="YAML/JSON config file")]
Sets = Annotated[list[str] | None, typer.Option("--set", "-s", help="override: section.field=value (repeatable)")]
Out = Annotated[Path | None, typer.Option("--out", "-o", help="run directory (default runs/<preset>-<time>)")]
Conds = Annotated[list[str] | None, typer.Option("--condition", help="only this condition (repeatable)")]
Seeds = Annotated[list[int] | None, typer.Option("--seed", help="only this seed (repeatable)")]
Model = Annotated[str | None, typer.Option("--model", help="behaviour model: hub id or local path (model.source)")]
AnalysisModel = Annotated[str | None, typer.Option("--analysis-model", help="model for the mechanistic sections (mech.analysis_model)")]
Sae = Annotated[str | None, typer.Option("--sae", help="SAE: params.npz path, hf://repo/path or saelens://release/id (mech.sae)")]
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
    text = " ".join(str(err).split())  # one line, whatever the message held
    typer.echo(f"warnframe: error: {text}", err=True)
    raise typer.Exit(err.exit_code)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def _input_files(kwargs: dict) -> list[Path]:
    """The text files a command reads that the user named (to locate a line that is not UTF-8)."""
    files = [kwargs.get(k) for k in ("input", "prompts", "config")]
    for part in str(kwargs.get("source") or "").split(","):
        path = Path(part.split("=", 1)[-1].strip()) if part.strip() else None
        if path is not None and path.is_dir():
            files += sorted(x for x in path.rglob("*") if x.suffix in (".jsonl", ".json"))
        else:
            files.append(path)
    return [Path(f) for f in files if f is not None and Path(f).is_file()]


def _locate_decode_error(kwargs: dict, err: UnicodeDecodeError) -> UserError:
    from warnframe.runtime.files import iter_lines

    for f in _input_files(kwargs):
        try:
            for _ in iter_lines(f):
                pass
        except UserError as located:
            return located
    return UserError(f"an input is not UTF-8 text ({err.reason} at byte {err.start})", None,
                     "convert the input files to UTF-8 (e.g. `iconv -f latin1 -t utf-8`)")


def _errors(fn):
    """Run a command body: every user-facing failure becomes one line on stderr and exit code 2
    (a UserError; an OSError from a full, read-only or size-limited disk; an input that is not
    UTF-8), never a traceback. Other exceptions are bugs and keep their traceback."""
    from warnframe.runtime.files import read_error, write_error

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            _fail(e)
        except UnicodeDecodeError as e:
            _fail(_locate_decode_error(kwargs, e))
        except OSError as e:
            where = e.filename2 or e.filename or kwargs.get("out") or "?"  # filename2: a copy's destination
            _fail(write_error(where, e) if e.errno in _WRITE_ERRNOS else read_error(where, e))

    return wrapper


def _check_out_dir(out: Path, option: str = "--out") -> None:
    """``--out`` must be a directory or not exist yet, and lie under directories."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out} is a file, not a run directory", option, "pass a directory (new or a run's)")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option} {out} lies under {parent}, which is a file", option, "pass a path under a directory")
            break


def _check_out_file(out: Path, option: str = "--out") -> None:
    """An output *file* must not be a directory nor lie under a file."""
    if out.is_dir():
        raise UserError(f"{option} {out} is a directory", option, "pass a file path, e.g. --out detected.jsonl")
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{option} {out} lies under {parent}, which is a file", option, "pass a path under a directory")
            break


def _locked(root: Path):
    """The run-directory lock, taken by the main process only (under ``accelerate launch`` the
    other processes of the same command share the directory with it)."""
    from warnframe.lm.training import is_main_process
    from warnframe.runtime.locks import run_lock

    return run_lock(root) if is_main_process() else nullcontext()


def _study(preset, config, sets, out, conditions):
    from warnframe.config import load_config
    from warnframe.study import Study

    cfg = load_config(preset, config, sets)
    for c in conditions or []:
        if c not in CONDITIONS:
            raise UserError(f"unknown condition {c!r}", "--condition", f"choose from {', '.join(CONDITIONS)}")
    out = out or Path("runs") / f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    _check_out_dir(out)
    return Study(cfg, out)


def _stage(until: str, preset, config, sets, out, conditions=None, seeds=None):
    study = _study(preset, config, sets, out, conditions)
    with _locked(study.store.root):
        report = study.run(until=until, conditions=conditions, seeds=seeds)
    return study, report


@app.command()
@_errors
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
    from warnframe.report.render import collect

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
    app.command(name=name)(_errors(cmd))


for _name, _doc in [
    ("pretrain", "Build (or reuse from the cache) the embedded base model."),
    ("finetune", "Fine-tune one model per condition and seed."),
    ("sample", "Generate samples from every condition's model."),
    ("score", "Score every sample (static detector + bandit, format leakage)."),
    ("report", "Compute the statistics, figures and report.md."),
]:
    _make(_name, _doc)


def _make_section(name: str, doc: str):
    """A command for a section that is not in the default study (``Section.default`` False): the
    study with that section added, through the report (what is done already is not redone)."""
    def cmd(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
            condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None,
            sae: Sae = None):
        from warnframe.sections import NAMES

        study = _study(preset, config, _overrides(set, model, analysis_model, sae), out, condition)
        study.cfg.sections = [n for n in NAMES if n in study.cfg.sections or n == name]
        with _locked(study.store.root):
            report = study.run(until="report", conditions=condition, seeds=seed)
        typer.echo(str(report))

    cmd.__doc__ = doc
    app.command(name=name)(_errors(cmd))


for _name, _doc in [
    ("dose", "Dose-response: L0 and L1 at several condition fractions (dose.*), added to the run's report."),
    ("remedies", "Remedies for warning-framed data, each arm against L1, L0 and neutral (remedies.*), added to the report."),
]:
    _make_section(_name, _doc)


@app.command()
@_errors
def data(
    preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
    condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None, sae: Sae = None,
    source: Annotated[str | None, typer.Option("--from", help="user corpus: JSONL (messages or prompt/completion), dataset dir or hub dataset id; label=PATH declares a file, commas join several")] = None,
    on_error: Annotated[str | None, typer.Option("--on-error", help="malformed corpus records: stop or skip (default: corpus.on_error, which is stop)")] = None,
    check: Annotated[bool, typer.Option("--check", help="only read and label the corpus, build nothing")] = False,
    remedy: Annotated[list[str] | None, typer.Option("--remedy", help="also write the L1 set treated by this remedy (drop, mask, unlikelihood, conditional, inoculation, rewrite; repeatable) as data/remedy.<name>.s<seed>.jsonl")] = None,
):
    """Build the fine-tuning sets (every condition and seed) and the held-out evaluation prompts.

    With --from, L0 / L1 / control come from your corpus of vulnerable and secure code (the
    detector labels every record), L2 / L3 from warnframe's own texts unless the corpus has
    records labelled doc / indirect."""
    if on_error not in (None, "stop", "skip"):
        raise UserError(f"unknown --on-error {on_error!r}", "--on-error", "choose stop or skip")

    if remedy:
        from warnframe.corpus.remedies import TRANSFORMS

        bad = [r for r in remedy if r not in TRANSFORMS]
        if bad:
            raise UserError(f"unknown remedy {bad[0]!r}", "--remedy", f"choose from {', '.join(TRANSFORMS)}")
    sets = _overrides(set, model, analysis_model, sae, source)
    if on_error is not None:  # only when given, so a --config error is not blamed on an override
        sets.append(f"corpus.on_error={on_error}")
    study = _study(preset, config, sets, out, condition)
    if study.cfg.corpus.source:
        from warnframe.corpus.sources import describe, load_corpus

        typer.echo(f"corpus {study.cfg.corpus.source}: {describe(load_corpus(study.cfg.corpus.source, study.cfg.corpus.on_error))}")
    if check:
        return
    with _locked(study.store.root):
        study.run(until="data", conditions=condition, seeds=seed)
        if remedy:
            from warnframe.experiments.remedies import write_sets

            for path in write_sets(study, remedy, seed or study.cfg.seeds):
                typer.echo(str(path))
    typer.echo(str(study.store.root))


def _trusted_sources(study, conds: list[str], seeds: list[int], model: str | None) -> None:
    """Refuse a model that the run directory (not the command line) would fetch from a hub: the
    base model its config.json names and the base of every LoRA adapter under RUN/models."""
    cfg_path = study.store.path("config.json")
    src = study.cfg.model.source
    if model is None and src != "embedded" and not Path(src).expanduser().is_dir():
        raise UserError(f"the run's config names the hub model {src!r}; a run directory cannot choose what is downloaded",
                        str(cfg_path), f"pass --model {src} if you mean it")
    for c in conds:
        for s in seeds:
            adapter = study.model_path(c, s) / "adapter_config.json"
            if c == "baseline" or not adapter.is_file():
                continue
            from warnframe.runtime.files import read_json

            base = str(read_json(adapter).get("base_model_name_or_path") or "")
            if base and not Path(base).expanduser().is_dir() and base not in (model, study.cfg.model.source):
                raise UserError(f"the adapter of {c} seed {s} names the hub model {base!r} as its base", str(adapter),
                                f"pass --model {base} if you mean it")


@app.command()
@_errors
def evaluate(
    prompts: Annotated[Path, typer.Option("--prompts", help="CyberSecEval instruct (JSON/JSONL), Emergent Misalignment {task, code_template} JSONL, or chat/prompt JSONL")],
    out: Annotated[Path, typer.Option("--out", "-o", help="an existing run directory")],
    condition: Conds = None, seed: Seeds = None,
    name: Annotated[str | None, typer.Option("--name", help="result folder under RUN/external (default: the file's stem)")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="only the first N prompts")] = None,
    samples_per_prompt: Annotated[int, typer.Option("--samples-per-prompt", help="samples per prompt, per seed")] = 1,
    max_new_tokens: Annotated[int | None, typer.Option("--max-new-tokens", help="longest answer (default: sampling.max_new_tokens)")] = None,
    model: Annotated[str | None, typer.Option("--model", help="the run's base model (hub id or path) when it is not embedded; never taken from RUN's config alone")] = None,
    trust_remote_code: Annotated[bool, typer.Option("--trust-remote-code", help="let the model repo run its own code (never taken from RUN's config)")] = False,
):
    """Evaluate conditions' models on external prompts with the study's sampling and scoring.

    RUN's config.json is not trusted: only --trust-remote-code turns remote code on, only --model picks a hub model."""
    from warnframe.config import StudyConfig
    from warnframe.evals.eval_sets import evaluate as run_eval
    from warnframe.evals.eval_sets import load_prompts
    from warnframe.runtime.files import read_json
    from warnframe.study import Study

    _check_out_dir(out)
    cfg_path = out / "config.json"
    if not cfg_path.is_file():
        raise UserError(f"not a run directory: {out}", "--out", "pass the --out of a finished `warnframe finetune` or `run`")
    fix = "rerun `warnframe run --out` with the current warnframe to rewrite it"
    from pydantic import ValidationError

    try:
        cfg = StudyConfig.model_validate(read_json(cfg_path, fix=fix))  # damaged JSON: read_json's one line
    except ValidationError as err:
        raise UserError(f"unreadable run config: {str(err).splitlines()[0]}", str(cfg_path), fix) from None
    cfg.model.trust_remote_code = trust_remote_code  # only the command line turns it on
    for c in condition or []:
        if c not in CONDITIONS:
            raise UserError(f"unknown condition {c!r}", "--condition", f"choose from {', '.join(CONDITIONS)}")
    study = Study(cfg, out)
    conds = condition or [c for c in cfg.conditions
                          if c == "baseline" or any(study.model_path(c, s).is_dir() for s in (seed or cfg.seeds))]
    _trusted_sources(study, conds, seed or cfg.seeds, model)
    if model is not None:
        cfg.model.source = model
    items = load_prompts(prompts, limit)
    with _locked(study.store.root):
        summary = run_eval(study, items, name or prompts.stem.replace(".", "_"), conds, seed or cfg.seeds,
                           samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens)
    from warnframe.stats.rates import fmt_rate

    typer.echo(f"{summary['prompts']} prompts from {prompts}")
    for c, r in summary["conditions"].items():
        typer.echo(f"  {c:9s} vulnerable {fmt_rate(r['vulnerable'])}  parse failures {r['parse_failed']}")
    typer.echo(str(study.store.path("external", name or prompts.stem.replace(".", "_"), "summary.json")))


@app.command()
@_errors
def grid(
    preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None, out: Out = None,
    condition: Conds = None, seed: Seeds = None, model: Model = None, analysis_model: AnalysisModel = None, sae: Sae = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this machine) | slurm | debug (in this process)")] = "local",
    until: Until = "report",
    partition: Annotated[str | None, typer.Option("--partition", help="SLURM partition")] = None,
    gpus_per_job: Annotated[int, typer.Option("--gpus-per-job", help="GPUs per job")] = 0,
    cpus_per_job: Annotated[int | None, typer.Option("--cpus-per-job", help="CPUs per job (SLURM)")] = None,
    mem_gb: Annotated[int | None, typer.Option("--mem-gb", help="memory per job in GB (SLURM)")] = None,
    timeout_min: Annotated[int, typer.Option("--timeout-min", help="wall-clock limit per job, minutes")] = 240,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel", help="jobs at once")] = None,
    slurm_arg: Annotated[list[str] | None, typer.Option("--slurm-arg", help="extra sbatch option key=value (repeatable)")] = None,
):
    """Fan the condition × seed grid out as jobs (submitit), all writing into one run directory."""
    from warnframe.grid import run_grid

    study = _study(preset, config, _overrides(set, model, analysis_model, sae), out, condition)
    extra = {}
    for item in slurm_arg or []:
        k, sep, v = item.partition("=")
        if not sep:
            raise UserError(f"--slurm-arg {item!r} is not key=value", "--slurm-arg", "write e.g. --slurm-arg account=myproj")
        extra[k] = v
    with _locked(study.store.root):  # the jobs write under the driver's lock; they take none themselves
        run_grid(study.cfg, study.store.root, executor=executor, until=until, conditions=condition, seeds=seed,
                 partition=partition, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, mem_gb=mem_gb,
                 timeout_min=timeout_min, max_parallel=max_parallel, slurm_args=extra, log=typer.echo)
    typer.echo(str(study.store.root))


@app.command()
@_errors
def detect(
    input: Annotated[Path, typer.Argument(help="JSONL file of records")],
    field: Annotated[str, typer.Option("--field", help="record field holding the code")] = "code",
    out: Annotated[Path, typer.Option("--out", "-o", help="output JSONL")] = Path("detected.jsonl"),
    no_bandit: Annotated[bool, typer.Option("--no-bandit", help="rules only (faster)")] = False,
):
    """Score any JSONL of code: each output line is the record plus vulnerable, findings, parse_ok, leak."""
    if not input.is_file():
        raise UserError(f"input not found: {input}" if not input.exists() else f"input {input} is not a file", "INPUT",
                        "pass a JSONL file of records")
    _check_out_file(out)
    from warnframe.detector import score_jsonl

    counts = score_jsonl(input, field, out, use_bandit=not no_bandit)
    typer.echo(f"{out}: {counts}")


@app.command()
@_errors
def config(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None):
    """Print the resolved configuration as JSON."""
    from warnframe.config import load_config

    cfg = load_config(preset, config, set)
    typer.echo(cfg.model_dump_json(indent=2))


from warnframe.audit.command import audit as _audit  # noqa: E402 - the heavy parts load when the command runs

app.command(name="audit")(_errors(_audit))
from warnframe.audit.model import audit_model as _audit_model  # noqa: E402

app.command(name="audit-model")(_errors(_audit_model))


def main() -> None:
    try:
        app()
    except UserError as e:  # raised outside a command body
        print(f"warnframe: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
