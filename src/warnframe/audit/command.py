"""``warnframe audit CORPUS``: the command, and ``run_audit``, the same from Python.

Registered in ``warnframe.cli`` (``app.command(name="audit")(audit)``). Bad input is one line on
stderr and exit code 2 (``errors.UserError``), never a traceback.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from warnframe.audit.vocabulary import CLASSES, CODE_CLASSES, DEFAULT_TAG
from warnframe.runtime.errors import UserError

#: Files and folders that only a study's run directory holds (``Study.run`` writes them); an audit
#: refuses such a directory rather than overwrite its report.
STUDY_MARKS = ("stages", "manifest.json", "config.json")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as a container or ``taskset`` sets it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def check_workers(workers: int) -> int:
    """``--workers`` as the audit uses it: at least 1, and no more than the usable CPUs (more only
    slows the scan down and costs memory; a note says so)."""
    if workers < 1:
        raise UserError(f"--workers must be at least 1, not {workers}", "--workers", "pass 1 or more")
    cpus = usable_cpus()
    if workers > cpus:
        print(f"warnframe: note: --workers {workers} is more than the {cpus} CPU(s) this process may use; using {cpus}",
              file=sys.stderr)
        return cpus
    return workers


def check_out(out: Path) -> None:
    """The audit's ``--out``: a directory (new or an audit's), never a file nor a study's run directory."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, not a directory", "--out", "pass a directory (new or an audit's)")
    for mark in STUDY_MARKS:
        if (out / mark).exists():
            raise UserError(f"--out {out} is a study's run directory (it holds {mark}); the audit would overwrite "
                            "its report", "--out", "pass a directory of the audit's own, e.g. runs/audit-<corpus name>")


def run_audit(corpus: str | Path, out: str | Path, opts=None, workers: int = 1) -> dict:
    """Audit ``corpus`` into ``out`` (resuming an interrupted audit there) with ``opts`` (a
    ``run.Options``); return the summary. ``out`` is locked while the audit runs (the study's run
    lock): a second audit, or a study, on it is refused with one line."""
    # imported here, not at the top: the CLI imports this module at start-up for every command
    from warnframe.audit.readers import detect_layout, skipped_entries
    from warnframe.audit.report import summarise, write_report
    from warnframe.audit.run import Options, merge_stats, scan, write_outputs, write_treated
    from warnframe.runtime.locks import run_lock

    corpus, out, opts = Path(corpus).expanduser(), Path(out), opts or Options()
    workers = check_workers(workers)
    bad = [c for c in opts.fix_classes if c not in CLASSES]
    if bad:
        raise UserError(f"unknown class {bad[0]!r}", "--fix-class", f"choose from {', '.join(CLASSES)}")
    opts.validate()
    layout = detect_layout(corpus)
    check_out(out)
    with run_lock(out, "audit directory"):
        check_out(out)  # a study may have started there before the lock was ours
        t0 = time.perf_counter()
        chunks, resumed = scan(corpus, out, opts, workers)
        seconds = time.perf_counter() - t0
        merged = merge_stats(chunks, opts.examples_per_class)
        merged.resumed_chunks = resumed
        write_outputs(corpus, out, chunks)
        treated = write_treated(corpus, out, chunks, opts) if opts.fix else None
        skipped = skipped_entries(corpus) if layout == "files" else []  # links, FIFOs... in a folder: not read
        summary = summarise(merged, corpus, layout, seconds, workers, opts, treated, skipped)
        # the speed of this audit: the records it tagged, not those an interrupted one had done
        summary["timing"]["records_tagged"] = merged.fresh_records
        summary["timing"]["records_per_second"] = round(merged.fresh_records / seconds, 1) if seconds else None
        write_report(out, summary, merged.examples)
    return summary


def audit(
    corpus: Annotated[
        Path,
        typer.Argument(
            help="JSONL or Parquet file, a saved Hugging Face dataset directory, "
            "or a folder of source and Markdown files"
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="output directory (default runs/audit-<corpus name>; an interrupted audit there resumes)",
        ),
    ] = None,
    field: Annotated[
        str | None, typer.Option("--field", help="read this text field instead of messages / prompt+completion / text")
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="worker processes")] = 1,
    fix: Annotated[str | None, typer.Option("--fix", help="treat flagged records: drop | mask | rewrite | tag")] = None,
    fix_class: Annotated[
        list[str] | None,
        typer.Option("--fix-class", help=f"class to treat (repeatable; default {', '.join(CODE_CLASSES)})"),
    ] = None,
    on_error: Annotated[
        str,
        typer.Option("--on-error", help="unreadable records: stop (default) or skip (counted, listed in errors.jsonl)"),
    ] = "stop",
    use_bandit: Annotated[
        bool, typer.Option("--bandit/--no-bandit", help="also run bandit inside the detector (slower)")
    ] = False,
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="parse every record, even those with no sink name")
    ] = False,
    chunk: Annotated[int, typer.Option("--chunk", help="records per checkpointed chunk")] = 500,
    tag_token: Annotated[
        str, typer.Option("--tag-token", help="control token for --fix tag ({cls} is the class)")
    ] = DEFAULT_TAG,
):
    """Find negative-example framings (warning-framed, educational, commented-out, bad/good pairs,
    documentation, indirect mentions) in a training corpus; write span attributes, a report and,
    with --fix, the treated corpus in the input's layout."""
    from warnframe.audit.run import Options

    try:
        opts = Options(
            field=field,
            fix=fix,
            fix_classes=tuple(fix_class or CODE_CLASSES),
            on_error=on_error,
            use_bandit=use_bandit,
            exhaustive=exhaustive,
            chunk=chunk,
            tag_token=tag_token,
        )
        out = out or Path("runs") / f"audit-{corpus.name}"
        s = run_audit(corpus, out, opts, workers)
    except UserError as e:
        typer.echo(f"warnframe: error: {e}", err=True)
        raise typer.Exit(e.exit_code) from None
    flagged = ", ".join(f"{c} {s['classes'][c]['k']}" for c in CLASSES if c != "none" and s["classes"][c]["k"])
    ignored = s["skipped_inputs"]
    ignored_note = (
        f", {ignored['count']} folder entries not read: " + ", ".join(f"{k} {v}" for k, v in ignored["by_kind"].items())
        if ignored["count"]
        else ""
    )
    typer.echo(
        f"{s['records']} records ({s['unreadable']} unreadable{ignored_note}): {flagged or 'nothing flagged'}; "
        f"{s['timing']['records_per_second']} records/s"
        + (f" ({s['resumed_chunks']} of {s['chunks']} chunks resumed)" if s["resumed_chunks"] else "")
    )
    if s["fix"]:
        typer.echo(
            "fix " + s["fix"]["mode"] + ": " + ", ".join(f"{k} {v}" for k, v in sorted(s["fix"]["actions"].items()))
        )
    typer.echo(str(out))
