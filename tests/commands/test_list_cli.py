"""`clover-rl list KIND`: what ships, from the library's registries, as a table or JSON."""
from __future__ import annotations

import json

import pytest

from clover_rl.carbon.shipped import list_shipped
from clover_rl.cli import main
from clover_rl.mig.catalog import GPUS
from clover_rl.scenario import list_scenarios
from clover_rl.services import list_services


@pytest.mark.parametrize("kind, expected", [
    ("scenarios", list_scenarios), ("services", list_services), ("traces", list_shipped),
    ("gpus", lambda: list(GPUS)),
    ("policies", lambda: ["base", "clover", "oracle", "checkpoints/efficientnet"]),
])
def test_list_table_fits_80_columns_and_names_everything(kind, expected, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["list", kind]) == 0
    text = capsys.readouterr().out
    assert all(len(ln) <= 80 for ln in text.splitlines()), text
    firsts = {ln.split()[0] for ln in text.splitlines() if ln.strip()}
    assert set(expected()) <= firsts
    assert main(["list", kind, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(expected()) <= {r["name"] for r in rows}


def test_every_listed_name_is_accepted_where_it_is_used(capsys):
    assert main(["list", "scenarios", "--json"]) == 0
    scen = json.loads(capsys.readouterr().out)[0]
    assert scen["service"] in list_services() and scen["load_rps"] > 0
    assert main(["list", "traces", "--json"]) == 0
    use_as = json.loads(capsys.readouterr().out)[0]["use_as"].split(", ")[-1]
    assert main(["traces", "show", use_as, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] > 1000


def test_policy_descriptions_are_plain_text_and_name_the_default(capsys):
    assert main(["list", "policies", "--json"]) == 0
    about = {r["name"]: r["about"] for r in json.loads(capsys.readouterr().out)}
    for name, text in about.items():
        assert ":func:" not in text and ":mod:" not in text and "`" not in text, (name, text)
        assert "module docstring" not in text, (name, text)
    assert about["mpc"].endswith("(the default controller)")


def test_unknown_kind_is_one_line_exit_2(capsys):
    assert main(["list", "models"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: list: unknown kind 'models' (one of scenarios, services, traces, policies, gpus)"


def test_piped_output_fits_80_columns_without_columns_set():
    """A pipe has no terminal width: tables fall back to 80 columns, not to a wide layout."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    p = subprocess.run([sys.executable, "-m", "clover_rl.cli", "list", "policies"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert max(len(ln) for ln in p.stdout.splitlines()) <= 80
    assert "what it does" in p.stdout  # the free-text column wraps instead of being dropped
