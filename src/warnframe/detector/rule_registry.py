"""The detector's view of the vulnerability-family registry: every rule, CWE and kept bandit test.

The rules themselves live with their family (``corpus.families.<name>``: its ``Detector`` holds
the AST hooks and their text twins); this module collects them, in registry order, for the two
rule engines (``ast_rules``, ``text_rules``), the bandit adapter and ``detector.score``:

- ``detectors()``: ``(family, Detector)`` pairs; ``hooks(name)``: every family's hook of that name.
- ``RULES`` (rule id -> why), ``CWE`` (family -> CWE), ``BANDIT_TESTS`` (bandit test id -> family):
  read-only mappings built on first use.

- ``RULE_CWE`` (rule id -> CWE where it is not its family's), ``cwe_of(rule)``.

All are built once and cached: code that changes the family registry at run time (a test's toy
family) calls ``detectors.cache_clear()`` and ``hooks.cache_clear()`` and sets each mapping's
``_data`` to None.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from warnframe.families.base import Detector


class _Registry(Mapping):
    """A read-only mapping built from the family registry on first use (the registry imports
    nothing from scoring, but is only needed once a rule runs)."""

    def __init__(self, build):
        self._build, self._data = build, None

    def _get(self) -> dict:
        if self._data is None:
            self._data = self._build()
        return self._data

    def __getitem__(self, key):
        return self._get()[key]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


def _families():
    from warnframe.families import FAMILIES

    return FAMILIES.values()


@cache
def detectors() -> tuple[tuple[str, Detector], ...]:
    """``(family, Detector)`` of every registered family, in registry order."""
    return tuple((fam.name, fam.detector) for fam in _families() if fam.detector is not None)


@cache
def hooks(name: str) -> tuple:
    """Every family's ``name`` hook that is set."""
    return tuple(hook for _, d in detectors() if (hook := getattr(d, name)) is not None)


#: Every rule the detector has: id ``<family>.<name>`` -> why a match is a finding (each family's
#: ``Detector.rules``, in registry order).
RULES: Mapping[str, str] = _Registry(lambda: {f"{fam}.{name}": why for fam, d in detectors()
                                              for name, why in d.rules.items()})


#: Family -> CWE, from the registry.
CWE: Mapping[str, str] = _Registry(lambda: {fam.name: fam.cwe for fam in _families()})

#: Rule id -> CWE, for the rules whose CWE is not their family's (``Detector.cwe``: weak ciphers are
#: scored in the weak_hash family and reported as CWE-327).
RULE_CWE: Mapping[str, str] = _Registry(lambda: {f"{fam}.{name}": cwe for fam, d in detectors()
                                                 for name, cwe in d.cwe.items()})


def cwe_of(rule: str) -> str:
    """The CWE a finding of ``rule`` carries."""
    return RULE_CWE.get(rule) or CWE[rule.partition(".")[0]]

#: Bandit tests kept: test id -> family (each family's ``Detector.bandit``). A test is kept only
#: where it adds recall without a false positive on labelled safe code (BenchmarkPython's safe
#: cases, the development set's fixed functions, the families' secure renders:
#: ``benchmarks/detector_owasp.py``, table in docs/detector_rules.md). Today that is B609
#: (wildcards in a shell command); every other test of our CWEs either finds nothing the rules
#: miss or flags safe code (B608 on parameterised queries that format a constant table name,
#: B602/B605 on commands the dataflow knows are fixed, B301/B506/B307/B102 on constant payloads).
BANDIT_TESTS: Mapping[str, str] = _Registry(lambda: {test: fam for fam, d in detectors() for test in d.bandit})
