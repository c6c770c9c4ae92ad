"""Static scoring of model answers: target (vulnerable) content and format leakage.

- ``score(text)`` -> ``Score``: is there vulnerable code, with a ``Finding`` per piece of
  evidence, whether the code parses, and the warning text it leaked.
- ``extract_code(text)`` -> ``(code, line_offset)``: the code part of an answer.
- ``find_leaks(text)`` -> ``{"exact": [...], "fuzzy": [...]}``: warning markers reproduced.
- ``score_jsonl(in_path, field, out_path)``: the same for every record of a JSONL file;
  ``describe_counts(counts)`` its counts as one line for people.

Total and bounded on any text: a record over ``MAX_RECORD_BYTES`` gets a Score with ``skipped``
set (never dropped), and the work is linear in the text. Each finding carries the character span
``[start, end)`` of the flagged code in the original text; there is one finding per line and
family, naming every rule and engine that agreed. The rules themselves live with their
vulnerability family (``corpus.families``) and see an intra-procedural dataflow
(``dataflow``, ``expressions``, ``ast_rules``); ``docs/detector_rules.md`` maps them to bandit,
semgrep and CodeQL and gives the measured precision and recall.

``fingerprint()`` identifies the detector that scored a result (its source, its families' rules,
bandit's version): the study's score stage keys on it, so a changed detector rescores a run.
"""

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from warnframe.detector.extraction import extract_code
from warnframe.detector.leakage import find_leaks
from warnframe.detector.parsing import parse
from warnframe.detector.rule_registry import BANDIT_TESTS, RULES
from warnframe.detector.scorer import MAX_RECORD_BYTES, describe_counts, score, score_jsonl
from warnframe.schema import Finding, Score

__all__ = ["BANDIT_TESTS", "MAX_RECORD_BYTES", "RULES", "Finding", "Score", "describe_counts", "extract_code",
           "find_leaks", "fingerprint", "parse", "score", "score_jsonl"]


@functools.cache
def fingerprint() -> str:
    """SHA-256 digest of the detector's and the families' source files and bandit's version."""
    from warnframe.runtime.keys import digest

    here = Path(__file__).parent
    files = sorted([*here.glob("*.py"), *(here.parent / "families").glob("*.py")])
    try:
        bandit = version("bandit")
    except PackageNotFoundError:
        bandit = None
    return digest([[f.name, hashlib.sha256(f.read_bytes()).hexdigest()] for f in files] + [bandit])
