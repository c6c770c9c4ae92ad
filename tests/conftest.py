"""Shared fixtures: one smoke study per test session, reused by every end-to-end test."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def smoke_study(tmp_path_factory):
    """A finished smoke-preset study (every section of the default study), run once per session.

    The embedded base model is cached under a session temp dir, so the suite never depends on
    what an earlier run left in ``~/.cache``.
    """
    from warnframe.config import load_config
    from warnframe.study import Study

    root = tmp_path_factory.mktemp("smoke")
    os.environ["WARNFRAME_CACHE"] = str(root / "cache")
    cfg = load_config("smoke")  # dose and remedies, stages of their own, have their own tests
    study = Study(cfg, root / "run")
    study.run()
    return study
