"""Vulnerability families: the registry, and what a family is (``base``).

Each family is one module here (``sql_injection.py``, ...): its tasks, secure and vulnerable
renderers, prose, CWE and detector rules (see ``base.Family``). ``FAMILIES`` lists them in a
fixed order, which is part of the study's data (train/eval splits, cycling, the default
selection): adding a family is its module plus one line in ``_MODULES``, and tests.

Vulnerable renders use the canonical vulnerable APIs (``cursor.execute(f"...")``, ``shell=True``,
``open(os.path.join(base, name))``, ``pickle.loads``, ``hashlib.md5``, ``eval``, secret literals,
``verify=False``); secure renders use the canonical fixes. The detector (``warnframe.detector``)
runs each family's rules, so it flags exactly the vulnerable renders. Tasks split
deterministically into train and held-out eval tasks (:meth:`Family.split`); only train tasks
ever reach training text.
"""

from __future__ import annotations

from warnframe.families import (
    code_injection,
    command_injection,
    deserialization,
    hardcoded_secret,
    path_traversal,
    sql_injection,
    tls_verify_off,
    weak_hash,
)
from warnframe.families.base import IND, PROSE_KEYS, Detector, Family, Task, add_comment, render_function

#: The registry, in the study's fixed order.
_MODULES = (sql_injection, command_injection, path_traversal, deserialization, weak_hash, code_injection,
            hardcoded_secret, tls_verify_off)

FAMILIES: dict[str, Family] = {m.FAMILY.name: m.FAMILY for m in _MODULES}
#: Each family's CWE, read off the families (each states its own ``cwe``).
FAMILY_CWE: dict[str, str] = {name: f.cwe for name, f in FAMILIES.items()}


def selected(names: list[str]) -> list[Family]:
    """The families a config names (all when ``names`` is empty), in a fixed order."""
    unknown = [n for n in names if n not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    return [FAMILIES[n] for n in (names or list(FAMILIES))]


__all__ = ["FAMILIES", "FAMILY_CWE", "IND", "PROSE_KEYS", "Detector", "Family", "Task", "add_comment", "render_function", "selected"]
