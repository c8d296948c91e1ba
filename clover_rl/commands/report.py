"""`clover-rl report`: summarise a deployment from its state folder (table, CSV/JSON, PNG)."""
from __future__ import annotations

from pathlib import Path

import typer


def report(
    state: Path = typer.Option(..., "--state", help="the deployment's state folder (clover-rl deploy --state)"),
    out: Path | None = typer.Option(
        None, "--out", help="write intervals.csv, summary.json, deployment.png here (default: the state folder)"),
    rows: int = typer.Option(48, "--rows", help="intervals shown in the table (the most recent)"),
) -> None:
    """Summarise a deployment: totals, the last intervals, and a plot over time."""
    from clover_rl.controller.report import format_report, load_report, write_outputs
    from clover_rl.errors import ConfigError

    if rows < 1:
        raise ConfigError(f"--rows must be >= 1, got {rows}")
    rep = load_report(state)
    print(format_report(rep, rows))
    paths = write_outputs(rep, out if out is not None else state)
    print(f"wrote {', '.join(str(p) for p in paths.values())}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
