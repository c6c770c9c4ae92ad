"""The audit's tagger as a datatrove pipeline step, for sharded corpora on one machine or a cluster.

datatrove (``pip install 'warnframe[audit]'``) runs a pipeline of steps over the shards of a
corpus with its local, Slurm or Ray executor; each task writes its statistics to
``LOGGING_DIR/stats/NNNNN.json``. ``AuditTagger`` tags every document exactly as ``warnframe
audit`` does (``tagger.tag_record``), stores the result in ``doc.metadata["warnframe"]`` and the
dolma-style span attributes in ``doc.metadata["attributes"]``, counts classes, CWEs and positions
as datatrove statistics, and may drop the classes it is told to. ``merge_audit_stats`` sums the
tasks' statistics into one summary::

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from warnframe.audit.datatrove_step import AuditTagger, chat_adapter, merge_audit_stats

    LocalPipelineExecutor(pipeline=[JsonlReader("corpus/", adapter=chat_adapter), AuditTagger(),
                                    JsonlWriter("tagged/")], tasks=8, workers=2, logging_dir="logs/").run()
    print(merge_audit_stats("logs/"))

This module needs datatrove; nothing else in warnframe imports it.
"""

from __future__ import annotations

import json
from pathlib import Path

try:
    from datatrove.data import DocumentsPipeline
    from datatrove.pipeline.base import PipelineStep
    from datatrove.utils.stats import PipelineStats
except ImportError as e:  # an optional extra: say how to get it
    raise ImportError("warnframe.audit.datatrove_step needs datatrove: pip install 'warnframe[audit]'") from e

from warnframe.audit.attributes import EXPERIMENT, SEPARATOR, attributes
from warnframe.audit.readers import Record, parse_row
from warnframe.audit.tagger import tag_record

STEP_NAME = "warnframe audit"


def chat_adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """A datatrove reader adapter for chat records (``messages`` or ``prompt``/``completion``):
    the document text is ``request + "\\n\\n" + answer`` (the offsets of the attributes), and the
    two turns are kept in the metadata for the tagger. Plain ``text`` records pass as they are."""
    rec = parse_row(dict(data), 0, f"{path}/{id_in_file}", None)
    doc_id = str(data.get("id", f"{path}/{id_in_file}"))
    if not isinstance(rec, Record):
        return {"text": data.get("text", ""), "id": doc_id, "metadata": {"warnframe_error": rec.what}}
    meta = {k: v for k, v in data.items() if k not in ("text", "id")}
    meta.update(warnframe_user=rec.user, warnframe_answer=rec.assistant, warnframe_layout=rec.layout)
    text = rec.assistant if rec.user is None else f"{rec.user}{SEPARATOR}{rec.assistant}"
    return {"text": text, "id": doc_id, "metadata": meta}


class AuditTagger(PipelineStep):
    """Tag each document with warnframe's framing class, spans, findings and risk."""

    name = STEP_NAME
    type = "🔎 - TAGGER"

    def __init__(
        self,
        use_bandit: bool = False,
        exhaustive: bool = False,
        drop_classes: tuple[str, ...] = (),
        experiment: str = EXPERIMENT,
    ):
        super().__init__()
        self.use_bandit, self.exhaustive = use_bandit, exhaustive
        self.drop_classes, self.experiment = tuple(drop_classes), experiment

    def _record(self, doc) -> Record:
        meta = doc.metadata
        if "warnframe_answer" in meta:
            layout = meta.get("warnframe_layout", "messages")
            return Record(
                0,
                str(doc.id),
                layout,
                meta["warnframe_answer"],
                meta.get("warnframe_user"),
                str(doc.id),
                language="markdown" if layout == "text" else "python",
            )
        return Record(0, str(doc.id), "text", doc.text, None, str(doc.id), language="markdown")

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for doc in data or ():
            self.stat_update("records")
            if "warnframe_error" in doc.metadata:
                self.stat_update("unreadable")
                continue
            with self.track_time():
                rec = self._record(doc)
                tagged = tag_record(rec, use_bandit=self.use_bandit, exhaustive=self.exhaustive)
            self.stat_update(
                f"class_{tagged.cls}",
                *(f"cwe_{c}" for c in tagged.cwes),
                *(f"position_{tagged.cls}_{p}" for p in tagged.positions),
            )
            if tagged.vulnerable:
                self.stat_update("vulnerable")
            doc.metadata["warnframe"] = {
                "class": tagged.cls,
                "risk": tagged.risk,
                "positions": tagged.positions,
                "cwes": tagged.cwes,
                "family": tagged.family,
                "findings": [{k: f[k] for k in ("rule", "cwe", "line")} for f in tagged.findings],
            }
            doc.metadata["attributes"] = attributes(
                rec, tagged, str(doc.metadata.get("file_path", "")), self.experiment
            )["attributes"]
            if tagged.cls in self.drop_classes:
                self.stat_update("dropped")
                continue
            yield doc


def merge_audit_stats(logging_dir: str | Path) -> dict:
    """The audit counts of every task under ``logging_dir/stats/`` summed (datatrove's own
    ``PipelineStats`` addition, as its ``merge_stats`` tool does): ``{"records": n, "class_...": n, ...}``."""
    files = sorted(Path(logging_dir, "stats").glob("*.json"))
    merged = sum((PipelineStats.from_json(json.loads(p.read_text())) for p in files), start=PipelineStats())
    for stats in merged.stats:
        if stats.name.endswith(STEP_NAME):
            return {"tasks": len(files), **{k: int(v.total) for k, v in sorted(stats.stats.items())}}
    return {"tasks": len(files)}
