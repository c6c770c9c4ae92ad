"""Placeholder while the dose stage is built."""

from __future__ import annotations


def claims(metrics: dict) -> list:
    return []


def draw(metrics: dict, root) -> None:
    return None


def markdown(metrics: dict) -> str:
    return ""
