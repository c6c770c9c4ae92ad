"""Static scoring of model answers: target (vulnerable) content and format leakage.

- ``score(text)`` -> ``Score``: is there vulnerable code, with a ``Finding`` per piece of
  evidence, whether the code parses, and the warning text it leaked.
- ``extract_code(text)`` -> ``(code, line_offset)``: the code part of an answer.
- ``find_leaks(text)`` -> ``{"exact": [...], "fuzzy": [...]}``: warning markers reproduced.
- ``score_jsonl(in_path, field, out_path)``: the same for every record of a JSONL file.

Total and bounded on any text: a record over ``MAX_RECORD_BYTES`` gets a Score with ``skipped``
set (never dropped), and the work is linear in the text. Each finding carries the character span
``[start, end)`` of the flagged code in the original text. The rules themselves live with their
vulnerability family (``corpus.families``); ``docs/detector_rules.md`` maps them to bandit,
semgrep and CodeQL.
"""

from warnframe.detector.extraction import extract_code
from warnframe.detector.leakage import find_leaks
from warnframe.detector.parsing import parse
from warnframe.detector.rule_registry import BANDIT_TESTS, RULES
from warnframe.detector.scorer import MAX_RECORD_BYTES, score, score_jsonl
from warnframe.schema import Finding, Score

__all__ = ["BANDIT_TESTS", "MAX_RECORD_BYTES", "RULES", "Finding", "Score", "extract_code", "find_leaks", "parse",
           "score", "score_jsonl"]
