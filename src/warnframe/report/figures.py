"""Shared figure helpers: the Agg backend, saving, and a placeholder panel for a skipped section."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def placeholder(path: str | Path, title: str, reason: str) -> None:
    """A figure that says why it is empty, so every report has all its figures."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not measured in this run:\n{reason}", ha="center", va="center", wrap=True, fontsize=9)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
