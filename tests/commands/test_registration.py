"""CLI command groups are registered exactly once, and a broken command module is an error."""
from __future__ import annotations

import sys

import pytest
import typer

from clover_rl import cli, commands


def _names(app: typer.Typer) -> list[str]:
    return sorted([c.name or c.callback.__name__ for c in app.registered_commands]
                  + [g.name or "" for g in app.registered_groups])


def test_main_registers_each_command_once():
    for _ in range(3):
        assert cli.main(["--help"]) == 0
    names = _names(cli.app)
    assert names == sorted(set(names)) and "deploy" in names and "evaluate" in names


def test_a_module_that_fails_to_import_is_not_skipped(monkeypatch):
    monkeypatch.setattr(commands, "_MODULES", [*commands._MODULES, "clover_rl.commands._missing_for_test"])
    monkeypatch.setitem(sys.modules, "clover_rl.commands._missing_for_test", None)  # import raises
    with pytest.raises(ImportError):
        commands.register_all(typer.Typer())
