"""Static scoring of model answers: target (vulnerable) content and format leakage.

- ``score(text)`` -> ``Score``: is there vulnerable code, with a ``Finding`` per piece of
  evidence, whether the code parses, and the warning text it leaked.
- ``extract_code(text)`` -> ``(code, line_offset)``: the code part of an answer.
- ``find_leaks(text)`` -> ``{"exact": [...], "fuzzy": [...]}``: warning markers reproduced.
- ``score_jsonl(in_path, field, out_path)``: the same for every record of a JSONL file.
"""

from .detector import BANDIT_TESTS, RULES, extract_code, score, score_jsonl
from .leakage import find_leaks

__all__ = ["BANDIT_TESTS", "RULES", "extract_code", "find_leaks", "score", "score_jsonl"]
