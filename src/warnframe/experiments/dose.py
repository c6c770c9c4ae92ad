"""Placeholder while the dose stage is built."""

from __future__ import annotations


def run(study) -> dict:
    return {"skipped": "the dose stage is not built yet"}
