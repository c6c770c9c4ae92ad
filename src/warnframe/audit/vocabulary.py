"""The audit's names, importable without the tagger (the CLI registers ``audit`` at start-up)."""

from __future__ import annotations

#: Framing classes, in the order the tagger decides them (see ``tagger``).
CLASSES: tuple[str, ...] = (
    "warning_framed",
    "educational_request",
    "commented_out",
    "bad_good_pair",
    "documentation",
    "indirect",
    "none",
)
#: Classes whose vulnerable code ``--fix`` treats by default.
CODE_CLASSES: tuple[str, ...] = ("warning_framed", "educational_request", "commented_out", "bad_good_pair")
#: Where a framing sits.
POSITIONS: tuple[str, ...] = ("request", "answer", "code_comment", "docstring", "prose")
#: What ``records.jsonl`` says of ``vulnerable`` for framed code the detector cannot score (code in
#: another language, or a flaw outside its families): neither true nor false.
VULNERABLE_UNKNOWN = "unknown"
#: The control token ``--fix tag`` adds; ``{cls}`` is the record's class.
DEFAULT_TAG = "<|warnframe:{cls}|>"
