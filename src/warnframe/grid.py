"""Fan the condition × seed grid out as jobs through submitit: SLURM on a cluster, its local
executor on one machine. Every job writes into the same run directory.

The grid runs in phases; the driver waits for one phase before submitting the next:

1. ``prepare``  one job: the base model and every fine-tuning set (``until="data"``);
2. ``finetune`` one job per fine-tuned condition and seed;
3. ``sample``   one job per condition and seed (baseline included);
4. ``gather``   one job over the whole grid: merges the per-seed sample parts, scores, runs the
                analysis sections and the report (``until`` as asked).

Each job is ``Study(cfg, out).run(until=stage, conditions=[c], seeds=[s])``: earlier stages are
found complete by their markers and skipped. Unit stages write per-unit files (``models/<c>.s<n>``,
``samples/parts/<c>.s<n>.jsonl``, ``stages/<stage>.<c>.s<n>.json``), so concurrent jobs never
write the same artifact; the shared ones (``samples/<c>.jsonl``, scores, metrics) are written by
the single gather job. Jobs receive the config as JSON (submitit itself pickles the call).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from warnframe.config import StudyConfig
from warnframe.runtime.errors import UserError
from warnframe.runtime.files import write_json

EXECUTORS = ("local", "slurm", "debug")


def _job(cfg_json: str, out: str, until: str, conditions: list[str] | None, seeds: list[int] | None) -> dict:
    """One job, in its own process: run the study up to ``until`` for the given units."""
    from warnframe.study import Study

    cfg = StudyConfig.model_validate(json.loads(cfg_json))
    t0 = time.perf_counter()
    Study(cfg, out).run(until=until, conditions=conditions, seeds=seeds)
    return {"until": until, "conditions": conditions, "seeds": seeds, "seconds": round(time.perf_counter() - t0, 2)}


#: One job: ``(until, conditions, seeds)`` (None: the study's own).
Unit = tuple[str, list[str] | None, list[int] | None]


def plan(cfg: StudyConfig, until: str = "report", conditions: list[str] | None = None,
         seeds: list[int] | None = None) -> list[tuple[str, list[Unit]]]:
    """The phases: ``[(phase, [(until, conditions, seeds), ...]), ...]``."""
    from warnframe.study import STAGES

    if until not in STAGES:
        raise UserError(f"unknown stage {until!r}", "--until", f"choose one of {', '.join(STAGES)}")
    conds = conditions or cfg.conditions
    seeds = seeds or cfg.seeds
    reach = STAGES.index(until)
    phases: list[tuple[str, list[Unit]]] = [("prepare", [(min(until, "data", key=STAGES.index), None, None)])]
    if reach >= STAGES.index("finetune"):
        ft: list[Unit] = [("finetune", [c], [s]) for c in conds if c != "baseline" for s in seeds]
        if ft:
            phases.append(("finetune", ft))
    if reach >= STAGES.index("sample"):
        phases.append(("sample", [("sample", [c], [s]) for c in conds for s in seeds]))
        phases.append(("gather", [(until, conds, seeds)]))
    return phases


def make_executor(kind: str, folder: Path, *, timeout_min: int = 240, gpus_per_job: int = 0, cpus_per_job: int | None = None,
                  mem_gb: int | None = None, partition: str | None = None, max_parallel: int | None = None,
                  slurm_args: dict | None = None):
    import submitit

    if kind not in EXECUTORS:
        raise UserError(f"unknown executor {kind!r}", "--executor", f"choose one of {', '.join(EXECUTORS)}")
    ex = submitit.AutoExecutor(folder=str(folder), cluster=kind)
    params: dict = {"timeout_min": timeout_min, "name": "warnframe"}
    if gpus_per_job:
        params["gpus_per_node"] = gpus_per_job
    if kind == "slurm":
        params.update(tasks_per_node=1, nodes=1)
        if cpus_per_job:
            params["cpus_per_task"] = cpus_per_job
        if mem_gb:
            params["mem_gb"] = mem_gb
        if partition:
            params["slurm_partition"] = partition
        if max_parallel:
            params["slurm_array_parallelism"] = max_parallel
        if slurm_args:
            params["slurm_additional_parameters"] = dict(slurm_args)
    ex.update_parameters(**params)
    return ex


def run_grid(cfg: StudyConfig, out: str | Path, *, executor: str = "local", until: str = "report",
             conditions: list[str] | None = None, seeds: list[int] | None = None, folder: str | Path | None = None,
             max_parallel: int | None = None, log=print, **executor_args) -> Path:
    """Run the study as phased jobs; returns the run directory. A failed job stops the grid with
    the path of its log; rerunning resumes (finished units are skipped by their markers)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(folder) if folder else out / "grid" / "logs"
    ex = make_executor(executor, folder, max_parallel=max_parallel, **executor_args)
    cfg_json = cfg.model_dump_json()
    record: dict[str, Any] = {"executor": executor, "until": until, "phases": []}
    chunk = max_parallel if max_parallel and executor != "slurm" else None  # SLURM throttles arrays itself
    for phase, units in plan(cfg, until, conditions, seeds):
        t0 = time.perf_counter()
        log(f"grid: {phase}: {len(units)} job(s)")
        done = []
        for start in range(0, len(units), chunk or len(units)):
            part = units[start:start + (chunk or len(units))]
            jobs = ex.map_array(_job, [cfg_json] * len(part), [str(out)] * len(part),
                                [u[0] for u in part], [u[1] for u in part], [u[2] for u in part])
            for job, unit in zip(jobs, part):
                try:
                    done.append({"job": str(job.job_id), **job.result()})
                except Exception as e:  # submitit re-raises the job's error (FailedJobError, UncompletedJobError)
                    first = str(e).strip().splitlines()
                    err = next((ln for ln in reversed(first) if "Error" in ln), first[-1] if first else type(e).__name__)
                    raise UserError(f"grid job {phase} {unit} failed: {err.strip()[:300]}", str(job.paths.stderr),
                                    "read that log; fix and rerun the same command (finished units are skipped)") from None
        record["phases"].append({"phase": phase, "seconds": round(time.perf_counter() - t0, 2), "jobs": done})
        write_json(out / "grid" / "jobs.json", record)
    return out
