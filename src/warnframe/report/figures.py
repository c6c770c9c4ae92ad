"""Shared figure helpers: the Agg backend, saving, and a placeholder panel for a skipped section."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: str | Path, dpi: int = 120) -> None:
    """Lay out, write and close a figure (every figure of the report goes through here)."""
    import io

    from warnframe.runtime.files import atomic_write_bytes

    path = Path(path)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())  # atomic, and recorded as an output of the running stage


def placeholder(path: str | Path, title: str, reason: str) -> None:
    """A figure that says why it is empty, so every report has all its figures."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, f"not measured in this run:\n{reason}", ha="center", va="center", wrap=True, fontsize=9)
    save(fig, path, dpi=100)
