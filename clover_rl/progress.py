"""The one progress bar of the CLI's long runs (train's imitation warm start, evaluate, benchmark).

Why one: the bar goes to stderr so stdout stays a clean table/JSON stream, and it switches itself
off when stderr is not a terminal (CI logs, pipes, tests) -- three hand-made copies had to agree on
that. ``rich`` is imported on construction, not at module import, to keep CLI start-up lean.
"""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A transient rich bar on stderr: ``[label] bar done/total [unit] elapsed [ETA] [name]``.

    ``enabled`` False, or stderr not a terminal, makes every call a no-op except :meth:`print`,
    which then writes plain lines to stdout. With ``label`` the columns start with it and end with
    the current task's name (set by ``advance(name=...)``); without it each task's name leads its
    row (one row per :meth:`add_task`). ``total`` adds one task that :meth:`advance` moves by
    default. ``unit`` names the counted things; ``eta`` adds the time remaining.
    """

    def __init__(self, enabled: bool, label: str | None = None, *, total: int | None = None,
                 unit: str | None = None, eta: bool = False) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        console = Console(stderr=True)
        self.on = bool(enabled and console.is_terminal)
        cols: list[ProgressColumn] = [TextColumn(f"[bold]{label}" if label else "[bold]{task.description}"),
                                      BarColumn(), MofNCompleteColumn()]
        if unit:
            cols.append(TextColumn(unit))
        cols.append(TimeElapsedColumn())
        if eta:
            cols += [TextColumn("ETA"), TimeRemainingColumn()]
        if label:
            cols.append(TextColumn("{task.description}"))
        self.bar = Progress(*cols, console=console, transient=True, disable=not self.on)
        self.task: Any = None if total is None else self.bar.add_task("", total=total)

    def __enter__(self) -> ProgressBar:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.__exit__(*exc)

    def add_task(self, name: str, total: int) -> Any:
        """A new row (or counter) of ``total`` steps; returns its id for :meth:`advance`."""
        return self.bar.add_task(name, total=total)

    def advance(self, n: int = 1, *, task: Any = None, name: str | None = None) -> None:
        """Move ``task`` (default: the one made from ``total``) by ``n``; ``name`` replaces its shown name."""
        t = self.task if task is None else task
        if name is None:
            self.bar.advance(t, n)
        else:
            self.bar.update(t, advance=n, description=name)

    def print(self, text: str) -> None:
        """Print ``text`` above the bar when it is shown, else as a plain stdout line (flushed)."""
        if self.on:
            self.bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, flush=True)
