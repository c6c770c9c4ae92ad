"""Command line: ``warnframe run`` (the whole study) and one command per stage.

Every command takes the same config options (``--preset``, ``--config``, ``--set key=value``) and
a run directory (``--out``). A stage command runs the stages it needs first, skipping those already
complete for the same config, so a killed run resumes where it stopped.
"""

from __future__ import annotations

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
        condition: Conds = None, seed: Seeds = None):
    """Run the whole study (default: the embedded model on the CPU, no downloads)."""
    study, report = _stage("report", preset, config, set, out, condition, seed)
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
            condition: Conds = None, seed: Seeds = None):
        study, _ = _stage(name, preset, config, set, out, condition, seed)
        typer.echo(str(study.store.root))

    cmd.__doc__ = doc
    app.command(name=name)(cmd)


for _name, _doc in [
    ("pretrain", "Build (or reuse from the cache) the embedded base model."),
    ("data", "Build the fine-tuning sets (every condition and seed) and the held-out evaluation prompts."),
    ("finetune", "Fine-tune one model per condition and seed."),
    ("sample", "Generate samples from every condition's model."),
    ("score", "Score every sample (static detector + bandit, format leakage)."),
    ("report", "Compute the statistics, figures and report.md."),
]:
    _make(_name, _doc)


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
