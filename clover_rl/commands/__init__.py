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
    "clover_rl.commands.store",
    "clover_rl.commands.traces",
    "clover_rl.commands.train",
]


_registered: set[int] = set()


def register_all(app: typer.Typer) -> None:
    """Register every command group on ``app``, once per app (calling ``main()`` again must not
    add commands twice). A module that fails to import is a bug and raises."""
    if id(app) in _registered:
        return
    for name in _MODULES:
        importlib.import_module(name).register(app)
    _registered.add(id(app))
