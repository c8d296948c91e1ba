"""CLI command groups. Each module exposes ``register(app)``; add yours to ``_MODULES``."""
from __future__ import annotations

import importlib

import typer

_MODULES = [
    "clover_rl.commands.benchmark",
    "clover_rl.commands.deploy",
    "clover_rl.commands.gpu",
    "clover_rl.commands.list",
    "clover_rl.commands.evaluate",
    "clover_rl.commands.mig",
    "clover_rl.commands.report",
    "clover_rl.commands.profile",
    "clover_rl.commands.serve",
    "clover_rl.commands.simulate",
    "clover_rl.commands.traces",
    "clover_rl.commands.train",
]


def register_all(app: typer.Typer) -> None:
    for name in _MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # command group not written yet
                continue
            raise
        mod.register(app)
