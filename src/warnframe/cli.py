"""Reproduce the warning-framing study, and audit training corpora and checkpoints for its effect.

The run command does the whole study; the stage commands pretrain, data, finetune, sample, score
and report run it up to that stage. A stage command first runs the stages it needs, skipping those
already complete for the same config, so a killed run resumes where it stopped.

Every study command (run, the stages, dose, remedies, data, grid) takes the same options: the config
(--preset, --config, --set section.field=value, --model, --analysis-model, --sae), the run directory
(--out) and the part of the condition × seed grid to run (--condition, --seed).

Guides: docs/audit.md (audit), docs/audit_model.md (audit-model), docs/remedies.md (remedies).
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import inspect
import json
import sys
import time
import typing
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer

from warnframe.runtime.errors import UserError
from warnframe.schema import CONDITIONS

# Plain text help (no rich panels, no markup): click rewraps every paragraph of a docstring or
# option help to the terminal, up to 100 columns.
app = typer.Typer(add_completion=False, no_args_is_help=False, help=__doc__, pretty_exceptions_enable=False,
                  rich_markup_mode=None, context_settings={"max_content_width": 100})


def _fail(err: UserError) -> None:
    text = " ".join(str(err).split())  # one line, whatever the message held
    typer.echo(f"warnframe: error: {text}", err=True)
    raise typer.Exit(err.exit_code)


def _check_conditions(value: list[str] | None) -> list[str] | None:
    """The one check of --condition, for every command that takes it: each name must be one of
    warnframe.schema.CONDITIONS (the list the config's ``conditions`` is checked against too)."""
    for c in value or []:
        if c not in CONDITIONS:
            _fail(UserError(f"unknown condition {c!r}", "--condition", f"choose from {', '.join(CONDITIONS)}"))
    return value


# ---- options shared by several commands, defined once ---------------------------------------------
Preset = Annotated[str, typer.Option("--preset", "-p", metavar="NAME", help="Config preset: smoke, tiny, small (SmolLM2-135M-Instruct) or paper.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", metavar="FILE",
                                                 help="YAML or JSON config file, applied over the preset.")]
Sets = Annotated[list[str] | None, typer.Option("--set", "-s", metavar="KEY=VALUE",
                                                help="Override one config field, e.g. finetune.lr=1e-4 (repeatable).")]
Out = Annotated[Path | None, typer.Option(
    "--out", "-o", metavar="DIR", help="Run directory, new or a run's to resume (default: runs/<preset>-<time>).")]
Conds = Annotated[list[str] | None, typer.Option("--condition", metavar="NAME", callback=_check_conditions,
                                                 help=f"Only this condition (repeatable): {', '.join(CONDITIONS)}.")]
Seeds = Annotated[list[int] | None, typer.Option("--seed", metavar="N", help="Only this seed (repeatable).")]
Model = Annotated[str | None, typer.Option("--model", metavar="ID|PATH",
                                           help="Behaviour model: a hub id or a local path (sets model.source).")]
AnalysisModel = Annotated[str | None, typer.Option(
    "--analysis-model", metavar="ID|PATH",
    help="Model that reads the texts in the mechanistic sections (sets mech.analysis_model).")]
Sae = Annotated[str | None, typer.Option(
    "--sae", metavar="SOURCE",
    help="SAE: a params.npz path, hf://repo/path or saelens://release/id (sets mech.sae).")]


@dataclasses.dataclass
class StudyOptions:
    """The options of every study command: the config, the run directory and the part of the grid."""

    preset: Preset = "tiny"
    config: ConfigFile = None
    set: Sets = None
    out: Out = None
    condition: Conds = None
    seed: Seeds = None
    model: Model = None
    analysis_model: AnalysisModel = None
    sae: Sae = None

    def overrides(self, source: str | None = None) -> list[str]:
        """--set items plus the named flags (JSON-quoted so any path or id stays a string)."""
        out = list(self.set or [])
        for key, value in (("model.source", self.model), ("mech.analysis_model", self.analysis_model),
                           ("mech.sae", self.sae), ("corpus.source", source)):
            if value is not None:
                out.append(f"{key}={json.dumps(value)}")
        return out

    def study_config(self, overrides: list[str] | None = None):
        """The configured StudyConfig (no run directory made or touched)."""
        from warnframe.config import load_config

        return load_config(self.preset, self.config, self.overrides() if overrides is None else overrides)

    def study(self, overrides: list[str] | None = None):
        """The configured Study in its run directory (``--out`` checked, or a new one named)."""
        from warnframe.study import Study

        cfg = self.study_config(overrides)
        out = self.out or Path("runs") / f"{cfg.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
        _check_out_dir(out)
        return Study(cfg, out)

    def run(self, until: str, study=None):
        """Run ``study`` (default: :meth:`study`) through ``until`` on the chosen conditions and seeds."""
        study = self.study() if study is None else study
        with _locked(study.store.root):
            report = study.run(until=until, conditions=self.condition, seeds=self.seed)
        return study, report


_STUDY_FIELDS = [f.name for f in dataclasses.fields(StudyOptions)]


def _study_command(fn):
    """``fn(opts: StudyOptions, **own)`` as a command whose options are the study options, then fn's own."""
    hints = typing.get_type_hints(StudyOptions, include_extras=True)
    shared = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=hints[f.name])
              for f in dataclasses.fields(StudyOptions)]
    own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for p in list(inspect.signature(fn, eval_str=True).parameters.values())[1:]]

    @functools.wraps(fn)
    def command(**kwargs):
        opts = StudyOptions(**{name: kwargs.pop(name) for name in _STUDY_FIELDS})
        return fn(opts, **kwargs)

    params = shared + own
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    return command


def _summary(doc: str) -> str:
    """A docstring's first paragraph on one line: the command's line in ``warnframe --help``."""
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _command(fn, name: str | None = None, doc: str | None = None, summary: str | None = None):
    """Register ``fn`` as a command: errors become one line, the help is ``doc`` (default: fn's docstring)."""
    doc = doc or fn.__doc__ or ""
    app.command(name=name, help=doc, short_help=summary or _summary(doc))(_errors(fn))
    return fn


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
    """``--out`` must be a directory or not exist yet, lie under directories, and not hold an audit
    (``warnframe audit``'s ``parts/manifest.json``: the study would overwrite its report)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{option} {out} is a file, not a run directory", option, "pass a directory (new or a run's)")
    if (out / "parts" / "manifest.json").is_file() and not (out / "stages").is_dir():
        raise UserError(f"{option} {out} holds an audit (warnframe audit), not a study run", str(out / "parts"),
                        "pass another --out for the study")
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


# ---- the study: the whole, one stage, one extra section ---------------------------------------------
@_study_command
def run(opts: StudyOptions):
    """Run the whole study, then print Table 1 and one verdict per claim of the paper.

    By default the study trains the embedded model on the CPU and downloads nothing."""
    study, report = opts.run("report")
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


_command(run)

_RESUMES = ("Runs the stages before it first, skipping those already complete for the same config, and "
            "prints the run directory.")


def _stage_command(name: str, summary: str) -> None:
    """The command that runs the study up to stage ``name``."""
    def cmd(opts: StudyOptions):
        study, _ = opts.run(name)
        typer.echo(str(study.store.root))

    _command(_study_command(cmd), name=name, doc=f"{summary}\n\n{_RESUMES}")


for _name, _summary_line in [
    ("pretrain", "Build (or reuse from the cache) the embedded base model."),
    ("finetune", "Fine-tune one model per condition and seed."),
    ("sample", "Generate samples from every condition's model."),
    ("score", "Score every sample: static detector, bandit and format leakage."),
    ("report", "Compute the statistics, figures and report.md."),
]:
    _stage_command(_name, _summary_line)


def _section_command(name: str, summary: str) -> None:
    """The command for a section that is not in the default study (Section.default False): the
    study with that section added, through the report (what is done already is not redone)."""
    def cmd(opts: StudyOptions):
        from warnframe.sections import NAMES as SECTION_NAMES

        study = opts.study()
        study.cfg.sections = [n for n in SECTION_NAMES if n in study.cfg.sections or n == name]
        _, report = opts.run("report", study)
        typer.echo(str(report))

    doc = (f"{summary}\n\nRuns the study with the {name} section added (its settings: --set {name}.field=value) "
           "through the report, skipping what is already done, and prints the report's path.")
    _command(_study_command(cmd), name=name, doc=doc)


for _name, _summary_line in [
    ("dose", "Dose-response: L0 and L1 at several condition fractions, added to the run's report."),
    ("remedies", "Remedies for warning-framed data, each arm against L1, L0 and neutral, added to the run's "
                 "report (docs/remedies.md)."),
]:
    _section_command(_name, _summary_line)


@_study_command
def data(
    opts: StudyOptions,
    source: Annotated[str | None, typer.Option(
        "--from", metavar="CORPUS",
        help="Your corpus: a JSONL file (messages or prompt/completion), a dataset directory or a hub dataset "
             "id; label=PATH declares a file's label, commas join several.")] = None,
    on_error: Annotated[str | None, typer.Option(
        "--on-error", metavar="stop|skip",
        help="What to do with a malformed corpus record (default: corpus.on_error, which is stop).")] = None,
    check: Annotated[bool, typer.Option("--check", help="Only read and label the corpus; build nothing.")] = False,
    remedy: Annotated[list[str] | None, typer.Option(
        "--remedy", metavar="NAME",
        help="Also write the L1 set treated by this remedy (repeatable): drop, mask, unlikelihood, conditional, "
             "inoculation or rewrite; one file per seed, e.g. data/remedy.mask.s0.jsonl.")] = None,
):
    """Build the fine-tuning sets (every condition and seed) and the held-out evaluation prompts.

    With --from, L0, L1 and control come from your corpus of vulnerable and secure code (the
    detector labels every record); L2 and L3 come from warnframe's own texts unless the corpus has
    records labelled doc or indirect."""
    if on_error not in (None, "stop", "skip"):
        raise UserError(f"unknown --on-error {on_error!r}", "--on-error", "choose stop or skip")

    if remedy:
        from warnframe.corpus.remedies import TRANSFORMS

        bad = [r for r in remedy if r not in TRANSFORMS]
        if bad:
            raise UserError(f"unknown remedy {bad[0]!r}", "--remedy", f"choose from {', '.join(TRANSFORMS)}")
    sets = opts.overrides(source)
    if on_error is not None:  # only when given, so a --config error is not blamed on an override
        sets.append(f"corpus.on_error={on_error}")
    if check:  # read and label only: no run directory is made (nor locked)
        cfg = opts.study_config(sets)
        if cfg.corpus.source:
            _describe_corpus(cfg)
        else:
            typer.echo("the config is valid; no corpus to check (pass --from CORPUS)")
        return
    study = opts.study(sets)
    if study.cfg.corpus.source:
        _describe_corpus(study.cfg)
    with _locked(study.store.root):
        study.run(until="data", conditions=opts.condition, seeds=opts.seed)
        if remedy:
            from warnframe.experiments.remedies import write_sets

            for path in write_sets(study, remedy, opts.seed or study.cfg.seeds):
                typer.echo(str(path))
    typer.echo(str(study.store.root))


def _describe_corpus(cfg) -> None:
    from warnframe.corpus.sources import describe, load_corpus

    typer.echo(f"corpus {cfg.corpus.source}: {describe(load_corpus(cfg.corpus.source, cfg.corpus.on_error))}")


_command(data)


@_study_command
def grid(
    opts: StudyOptions,
    executor: Annotated[str, typer.Option(
        "--executor", metavar="local|slurm|debug",
        help="Where the jobs run: local (this machine), slurm, or debug (in this process).")] = "local",
    until: Annotated[str, typer.Option("--until", metavar="STAGE", help="Last stage to run.")] = "report",
    partition: Annotated[str | None, typer.Option("--partition", metavar="NAME", help="SLURM partition.")] = None,
    gpus_per_job: Annotated[int, typer.Option("--gpus-per-job", metavar="N", help="GPUs per job.")] = 0,
    cpus_per_job: Annotated[int | None, typer.Option(
        "--cpus-per-job", metavar="N", help="CPUs per job (SLURM).")] = None,
    mem_gb: Annotated[int | None, typer.Option("--mem-gb", metavar="GB", help="Memory per job in GB (SLURM).")] = None,
    timeout_min: Annotated[int, typer.Option(
        "--timeout-min", metavar="MIN", help="Wall-clock limit per job, in minutes.")] = 240,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel", metavar="N", help="Jobs at once.")] = None,
    slurm_arg: Annotated[list[str] | None, typer.Option(
        "--slurm-arg", metavar="KEY=VALUE", help="Extra sbatch option, e.g. account=myproj (repeatable).")] = None,
):
    """Fan the condition × seed grid out as jobs (submitit), all writing into one run directory."""
    from warnframe.grid import run_grid

    extra = {}
    for item in slurm_arg or []:
        k, sep, v = item.partition("=")
        if not sep:
            raise UserError(f"--slurm-arg {item!r} is not key=value", "--slurm-arg", "write e.g. --slurm-arg account=myproj")
        extra[k] = v
    study = opts.study()
    with _locked(study.store.root):  # the jobs write under the driver's lock; they take none themselves
        run_grid(study.cfg, study.store.root, executor=executor, until=until, conditions=opts.condition,
                 seeds=opts.seed, partition=partition, gpus_per_job=gpus_per_job, cpus_per_job=cpus_per_job, mem_gb=mem_gb,
                 timeout_min=timeout_min, max_parallel=max_parallel, slurm_args=extra, log=typer.echo)
    typer.echo(str(study.store.root))


_command(grid)


# ---- a finished run's models on other prompts ---------------------------------------------------------
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


def evaluate(
    prompts: Annotated[Path, typer.Option(
        "--prompts", metavar="FILE",
        help="CyberSecEval instruct (JSON or JSONL), Emergent Misalignment {task, code_template} JSONL, or "
             "chat or prompt JSONL.")],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="An existing run directory.")],
    condition: Conds = None,
    seed: Seeds = None,
    name: Annotated[str | None, typer.Option(
        "--name", metavar="NAME", help="Result folder under RUN/external (default: the prompt file's stem).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", metavar="N", help="Only the first N prompts.")] = None,
    samples_per_prompt: Annotated[int, typer.Option(
        "--samples-per-prompt", metavar="N", help="Samples per prompt, per seed.")] = 1,
    max_new_tokens: Annotated[int | None, typer.Option(
        "--max-new-tokens", metavar="N", help="Longest answer in tokens (default: sampling.max_new_tokens).")] = None,
    model: Annotated[str | None, typer.Option(
        "--model", metavar="ID|PATH",
        help="The run's base model (a hub id or a path) when it is not embedded; never taken from the run's "
             "config alone.")] = None,
    trust_remote_code: Annotated[bool, typer.Option(
        "--trust-remote-code",
        help="Let the model repository run its own code (never taken from the run's config).")] = False,
):
    """Evaluate the conditions' models of a run on external prompts, with the study's sampling and scoring.

    The run's config.json is not trusted: the model runs remote code only with --trust-remote-code,
    and only --model picks a hub model."""
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
    study = Study(cfg, out)
    conds = condition or [c for c in cfg.conditions
                          if c == "baseline" or any(study.model_path(c, s).is_dir() for s in (seed or cfg.seeds))]
    _trusted_sources(study, conds, seed or cfg.seeds, model)
    if model is not None:
        cfg.model.source = model
    items = load_prompts(prompts, limit)
    with _locked(study.store.root):
        try:
            summary = run_eval(study, items, name or prompts.stem.replace(".", "_"), conds, seed or cfg.seeds,
                               samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens)
        except UserError as e:  # the loader's advice names the config field, which evaluate ignores
            from warnframe.audit.model import TRUST_SETTING

            raise e.refixed(TRUST_SETTING, "pass --trust-remote-code") from None
    from warnframe.stats.rates import fmt_rate

    typer.echo(f"{summary['prompts']} prompts from {prompts}")
    for c, r in summary["conditions"].items():
        typer.echo(f"  {c:9s} vulnerable {fmt_rate(r['vulnerable'])}  parse failures {r['parse_failed']}")
    typer.echo(str(study.store.path("external", name or prompts.stem.replace(".", "_"), "summary.json")))


_command(evaluate)


# ---- tools that need no study ---------------------------------------------------------------------------
def detect(
    input: Annotated[Path, typer.Argument(metavar="INPUT", help="JSONL file of records.")],
    field: Annotated[str, typer.Option("--field", metavar="NAME", help="Record field holding the code.")] = "code",
    out: Annotated[Path, typer.Option(
        "--out", "-o", metavar="FILE", help="Output JSONL file.")] = Path("detected.jsonl"),
    no_bandit: Annotated[bool, typer.Option("--no-bandit", help=(
        "Rules only: skip bandit's one kept test (B609, wildcards in a shell command; the others added false "
        "positives on labelled safe code, docs/detector_rules.md)."))] = False,
):
    """Score any JSONL of code for vulnerabilities and copied warnings.

    Each output line is the input record plus vulnerable, findings, parse_ok and leak."""
    if not input.is_file():
        raise UserError(f"input not found: {input}" if not input.exists() else f"input {input} is not a file", "INPUT",
                        "pass a JSONL file of records")
    _check_out_file(out)
    from warnframe.detector import describe_counts, score_jsonl

    counts = score_jsonl(input, field, out, use_bandit=not no_bandit)
    typer.echo(f"{out}: {describe_counts(counts)}")


_command(detect)


def config(preset: Preset = "tiny", config: ConfigFile = None, set: Sets = None):
    """Print the resolved configuration as JSON."""
    from warnframe.config import load_config

    cfg = load_config(preset, config, set)
    typer.echo(cfg.model_dump_json(indent=2))


_command(config)

from warnframe.audit.command import audit as _audit  # noqa: E402 - the heavy parts load when the command runs
from warnframe.audit.model import audit_model as _audit_model  # noqa: E402

_command(_audit, name="audit", summary="Find negative-example framings in a training corpus, and treat them with --fix "
                                       "(docs/audit.md).")
_command(_audit_model, name="audit-model", summary="Tell whether a checkpoint learned from warning-framed data "
                                                   "(docs/audit_model.md).")


def main() -> None:
    try:
        app()
    except UserError as e:  # raised outside a command body
        print(f"warnframe: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
