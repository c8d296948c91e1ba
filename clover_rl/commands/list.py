"""`clover-rl list scenarios|services|traces|policies|gpus`: what ships, as a table or JSON."""
from __future__ import annotations

import json

import typer


def list_cmd(
    kind: str = typer.Argument(..., metavar="KIND", help="scenarios, services, traces, policies or gpus"),
    as_json: bool = typer.Option(False, "--json", help="print a JSON list instead of the table"),
) -> None:
    """List what ships: scenarios, services, carbon traces, policies, GPU models."""
    from clover_rl.listing import listing
    from clover_rl.telemetry.table import print_table

    rows, cols = listing(kind.strip().lower())
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows, cols, more="--json for all fields")


def register(app: typer.Typer) -> None:
    app.command("list")(list_cmd)
