"""Rich progress bars for long work; one helper so every stage looks the same."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)


@contextmanager
def task(description: str, total: int) -> Iterator:
    """Yield ``advance(n=1, **fields)``; shows a bar with count, elapsed and remaining time."""
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=False, disable=not console.is_terminal,
    ) as bar:
        t = bar.add_task(description, total=total, info="")

        state = {"done": 0.0, "logged": -1}

        def advance(n: float = 1, info: str = "") -> None:
            bar.update(t, advance=n, info=info)
            state["done"] += n
            if not console.is_terminal and total:  # a log line every 10% where no bar can be drawn
                decile = int(10 * state["done"] / total)
                if decile > state["logged"]:
                    state["logged"] = decile
                    console.log(f"{description}: {min(100, 10 * decile)}% {info}")

        yield advance
