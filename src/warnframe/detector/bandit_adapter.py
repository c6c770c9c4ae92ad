"""Bandit run in-process on the code that parses, keeping only the tests that map to a family.

Which tests are kept (``rule_registry.BANDIT_TESTS``) is each family's ``Detector.bandit``: only
those that add recall without false positives on labelled safe code (docs/detector_rules.md).
``bandit_issues(code)`` reuses one bandit manager for every sample (building it costs far more
than a scan) and drops LOW-severity shell findings on a literal command (``_BANDIT_MIN_MEDIUM``).
It can raise RecursionError or MemoryError on absurdly nested code; ``detector.score`` handles them.
"""

from __future__ import annotations

import io
import logging
import warnings
from functools import cache

from warnframe.detector.rule_registry import BANDIT_TESTS

#: Bandit rates shell calls on a literal command LOW ("seems safe"); like our rules, a literal
#: command is not an injection, so these tests need at least MEDIUM severity.
_BANDIT_MIN_MEDIUM = {"B602", "B604", "B605"}


class _Bandit:
    """One bandit manager, reused for every sample (building it costs far more than a scan)."""

    def __init__(self):
        logging.getLogger("bandit").setLevel(logging.CRITICAL + 1)
        with warnings.catch_warnings():  # bandit's plugin loader calls stevedore with a deprecated argument
            warnings.simplefilter("ignore", DeprecationWarning)
            from bandit.core import config, manager

        profile = {"include": set(BANDIT_TESTS)}  # run only the tests that are kept
        self.manager = manager.BanditManager(config.BanditConfig(), "file", quiet=True, profile=profile)

    def issues(self, code: str) -> list:
        m = self.manager
        m.results, m.skipped = [], []
        # The same call bandit makes for code read from stdin.
        m._parse_file("<sample>", io.BytesIO(code.encode()), ["<sample>"])
        return [i for i in m.results if not (i.test_id in _BANDIT_MIN_MEDIUM and i.severity == "LOW")]


@cache
def _bandit() -> _Bandit:
    return _Bandit()


def bandit_issues(code: str) -> list:
    """Bandit's issues in ``code`` from the kept tests (bandit ``Issue`` objects); none when no
    test is kept (bandit's profile would read an empty include list as "every test")."""
    return _bandit().issues(code) if BANDIT_TESTS else []
