"""``--fix``: treat the records the audit flagged, keeping the input's own layout.

* ``drop``     leave the record out;
* ``mask``     keep it, with ``loss_spans`` on its framed code (the block the warning or the "bad"
               label belongs to, never one labelled secure or "good"; ``tagger._code_regions``): character spans of the answer
               (``schema.Example.loss_spans``: ``{"start", "end", "kind": "mask"}``), which
               warnframe's training and ``data --from`` honour (no loss on those tokens). A file
               has nowhere to hold spans: they go to ``loss_spans.jsonl`` beside the treated tree;
* ``rewrite``  replace the vulnerable code with the family's secure form where ``corpus.FAMILIES``
               knows the function (a task of the family the detector found), and drop the answer
               lines that warned about it; otherwise (code the detector cannot score, in another
               language or with a flaw outside its families, among others) the record is *untreatable*;
* ``tag``      put a control token (``<|warnframe:CLASS|>`` by default) in front of the request
               (or of the text), so a model can be trained conditionally and prompted without it.

Only records of the classes in ``classes`` (default ``tagger.CODE_CLASSES``) are touched; every
result says what was done, and why a record could not be treated.
"""

from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass

from warnframe.audit.readers import Record
from warnframe.audit.tagger import Tagged
from warnframe.audit.vocabulary import DEFAULT_TAG
from warnframe.corpus import FAMILIES

FIXES: tuple[str, ...] = ("drop", "mask", "rewrite", "tag")
_DEF = re.compile(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(", re.MULTILINE)
_FILE_TAG = {"python": "# {t}\n", "shell": "# {t}\n", "js": "// {t}\n", "sql": "-- {t}\n", "markdown": "<!-- {t} -->\n"}


@dataclass
class Treated:
    """The outcome for one record: ``action`` (dropped, masked, rewritten, tagged, unchanged,
    untreatable), the row to write (None when dropped) and, when untreatable, why."""

    action: str
    row: dict | None
    why: str = ""
    loss_spans: list | None = None  # for files: the spans that go to loss_spans.jsonl


def _row(rec: Record) -> dict:
    """The row a chat or text record was read from (``read_corpus`` keeps it for every layout but
    ``file``)."""
    assert rec.row is not None, f"{rec.where}: a {rec.layout} record without its row"
    return rec.row


def original_row(rec: Record) -> dict:
    """The record as it was read; a file becomes ``{"path", "text"}``."""
    return _row(rec) if rec.layout != "file" else {"path": rec.turn["path"], "text": rec.assistant}


def _with_answer(rec: Record, answer: str, user: str | None = None) -> dict:
    """A copy of the row with its answer (and maybe its request) replaced."""
    if rec.layout == "file":
        return {"path": rec.turn["path"], "text": answer}
    row = copy.deepcopy(_row(rec))
    if rec.layout == "messages":
        row["messages"][rec.turn["assistant"]]["content"] = answer
        if user is not None and rec.turn.get("user") is not None:
            row["messages"][rec.turn["user"]]["content"] = user
    elif rec.layout == "prompt_completion":
        req, ans = rec.turn.get("keys", ("prompt", "completion"))
        _set_content(row, ans, answer)
        if user is not None:
            _set_content(row, req, user)
    else:
        row[rec.turn["field"]] = answer
    return row


def _set_content(row: dict, key: str, text: str) -> None:
    if isinstance(row.get(key), list):  # TRL's conversational form: one message
        row[key][0]["content"] = text
    else:
        row[key] = text


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _mask(rec: Record, tagged: Tagged) -> Treated:
    spans = _merge(
        [(sp.start, sp.end) for sp in tagged.spans if sp.type == "vulnerable_code" and sp.part == "assistant"]
    )
    if not spans:
        in_request = any(sp.type == "vulnerable_code" for sp in tagged.spans)  # the code the user pasted
        why = "framed code only in the request" if in_request else "no vulnerable code in the answer to mask"
        return Treated("untreatable", original_row(rec), why)
    loss = [{"start": s, "end": e, "kind": "mask"} for s, e in spans]
    if rec.layout == "file":
        return Treated("masked", original_row(rec), loss_spans=loss)
    row = copy.deepcopy(_row(rec))
    row["loss_spans"] = list(row.get("loss_spans") or []) + loss
    return Treated("masked", row)


def _rewrite(rec: Record, tagged: Tagged) -> Treated:
    blocks = _merge(
        [(sp.start, sp.end) for sp in tagged.spans if sp.type == "vulnerable_code" and sp.part == "assistant"]
    )
    if tagged.cls == "commented_out" or not blocks:
        return Treated("untreatable", original_row(rec), "no live vulnerable code to rewrite")
    if tagged.vulnerable is None:  # framed code the detector cannot score: no family, no secure form
        return Treated(
            "untreatable",
            original_row(rec),
            f"no known secure form (framed {tagged.language or 'unknown'} code, not scored)",
        )
    text = rec.assistant
    families = [
        FAMILIES[f]
        for f in dict.fromkeys([tagged.family] + [x["rule"].partition(".")[0] for x in tagged.findings])
        if f in FAMILIES
    ]
    pieces, last, rng = [], 0, random.Random(f"rewrite:{rec.id or rec.where}")
    for s, e in blocks:
        names = _DEF.findall(text[s:e])
        task = next(((fam, t) for fam in families for t in fam.tasks if t.name in names), None)
        if task is None:
            known = (
                f"function {names[0]!r} is not a task of {families[0].name}"
                if names and families
                else "no function to match"
            )
            return Treated("untreatable", original_row(rec), f"no known secure form ({known})")
        fam, t = task
        pieces += [text[last:s], fam.secure(t, rng)]
        last = e
    pieces.append(text[last:])
    new = "".join(pieces)
    warned = {
        text.count("\n", 0, sp.start)
        for sp in tagged.spans
        if sp.type == "warning" and sp.part == "assistant" and not any(s <= sp.start < e for s, e in blocks)
    }
    if warned:  # drop the prose lines that warned about the code that is gone
        new = _drop_lines(text, new, warned)
    return Treated("rewritten", _with_answer(rec, new))


def _drop_lines(old: str, new: str, lines: set[int]) -> str:
    """``new`` without the lines of ``old`` numbered in ``lines`` (they lie outside every rewritten block, so
    they appear in ``new`` unchanged)."""
    old_lines = old.split("\n")
    doomed = [old_lines[i] for i in sorted(lines)]
    out = new.split("\n")
    for line in doomed:
        if line in out:
            out.remove(line)
    return "\n".join(out)


def _tag(rec: Record, tagged: Tagged, token: str) -> Treated:
    t = token.format(cls=tagged.cls)
    if rec.layout == "file":
        return Treated("tagged", _with_answer(rec, _FILE_TAG.get(rec.language, "# {t}\n").format(t=t) + rec.assistant))
    if rec.user is not None and (rec.layout != "messages" or rec.turn.get("user") is not None):
        return Treated("tagged", _with_answer(rec, rec.assistant, user=f"{t} {rec.user}"))
    return Treated("tagged", _with_answer(rec, f"{t} {rec.assistant}"))


def treat(rec: Record, tagged: Tagged, fix: str, classes: tuple[str, ...], tag_token: str = DEFAULT_TAG) -> Treated:
    """Apply ``fix`` to one record when its class is in ``classes``; otherwise keep it unchanged."""
    if tagged.cls not in classes:
        return Treated("unchanged", original_row(rec))
    if fix == "drop":
        return Treated("dropped", None)
    if fix == "mask":
        return _mask(rec, tagged)
    if fix == "rewrite":
        return _rewrite(rec, tagged)
    if fix == "tag":
        return _tag(rec, tagged, tag_token)
    raise ValueError(f"unknown fix {fix!r}")
