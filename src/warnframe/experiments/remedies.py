"""Placeholder while the remedies stage is built."""

from __future__ import annotations


def run(study) -> dict:
    return {"skipped": "the remedies stage is not built yet"}
def write_sets(study, arms, seeds):
    raise NotImplementedError
