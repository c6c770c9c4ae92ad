"""``warnframe audit``: find negative-example framings in a training corpus, report them, treat them;
``warnframe audit-model``: tell whether a checkpoint learned from them.

    readers         stream records from JSONL, Parquet, a saved Hugging Face dataset or a directory of files
    tagger          one record -> framing class, where the framing sits, spans, detector findings, risk
    attributes      dolma-style span attributes (one JSON line per record)
    fix             --fix drop | mask | rewrite | tag, in the input's own layout
    report          summary.json, report.md and a self-contained report.html
    run             the scan itself: worker pool, resumable shard checkpoints, the merge
    datatrove_step  the same tagger as a datatrove PipelineStep (optional extra ``audit``)
    command         the typer command function ``audit`` (registered in ``warnframe.cli``) and ``run_audit``
    vocabulary      the class and position names, importable without the tagger
    model           ``warnframe audit-model``: did a checkpoint learn from negative examples? (its answers'
                    format leakage and target rate against a reference model, a fixed decision rule)

Nothing here executes the code it reads: the detector parses, it never runs.
"""

from warnframe.audit.vocabulary import CLASSES, CODE_CLASSES, POSITIONS

__all__ = ["CLASSES", "CODE_CLASSES", "POSITIONS"]
