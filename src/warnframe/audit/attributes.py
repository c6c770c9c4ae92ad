"""Span attributes in dolma's format, so other corpus pipelines can filter and mix on them.

One JSON line per record, as dolma's taggers write them (``dolma.core.data_types.OutputSpec``)::

    {"id": "...", "source": "...", "attributes": {"warnframe__audit__warning_framed": [[0, 812, 0.921]],
                                                   "warnframe__audit__warning_code_comment": [[103, 140, 1.0]],
                                                   "warnframe__audit__vulnerable_code": [[90, 470, 1.0]],
                                                   "warnframe__audit__cwe_89": [[301, 352, 1.0]],
                                                   "warnframe__audit__risk": [[0, 812, 0.921]]}}

Names are ``<experiment>__<tagger>__<type>``, the three parts dolma's ``Span.from_spec`` splits
on; each value is a list of ``[start, end, score]``. Document-level attributes (the class, the
risk) span the whole document, as dolma's classifiers do. Offsets are characters of the document
text: a plain text or file as it is; a chat record as ``request + "\\n\\n" + answer`` (the text
warnframe's token budgets count, ``corpus.example_text``), so answer offsets are shifted by the
request length plus two.
"""

from __future__ import annotations

from warnframe.audit.readers import Record
from warnframe.audit.tagger import Tagged

EXPERIMENT = "warnframe"
TAGGER = "audit"
SEPARATOR = "\n\n"


def document_text(rec: Record) -> str:
    """The text the attribute offsets index into."""
    return rec.assistant if rec.user is None else f"{rec.user}{SEPARATOR}{rec.assistant}"


def _shift(rec: Record, part: str) -> int:
    return 0 if part == "user" or rec.user is None else len(rec.user) + len(SEPARATOR)


def attribute_name(kind: str, experiment: str = EXPERIMENT) -> str:
    return f"{experiment}__{TAGGER}__{kind}"


def attributes(rec: Record, tagged: Tagged, source: str, experiment: str = EXPERIMENT) -> dict:
    """The dolma attribute record of one tagged record; ``source`` names the corpus (dolma's source field)."""
    n = len(document_text(rec))
    attrs: dict[str, list] = {
        attribute_name(tagged.cls, experiment): [[0, n, round(max(tagged.risk, 0.0), 4)]],
        attribute_name("risk", experiment): [[0, n, round(tagged.risk, 4)]],
    }
    for sp in tagged.spans:
        shift = _shift(rec, sp.part)
        if sp.type in ("warning", "pair_good", "mention"):
            kind = f"{'warning' if sp.type != 'mention' else 'mention'}_{sp.position or 'unknown'}"
        elif sp.type == "vulnerable_code":
            kind = "vulnerable_code"
        else:  # a finding line, named by its CWE
            cwe = next((f["cwe"] for f in tagged.findings if f["rule"] == sp.label), "unknown")
            kind = cwe.lower().replace("-", "_")
        attrs.setdefault(attribute_name(kind, experiment), []).append(
            [sp.start + shift, sp.end + shift, round(sp.score, 4)]
        )
    for values in attrs.values():
        values.sort()
    return {"id": rec.id or rec.where, "source": source, "attributes": attrs}
