"""Capacity warnings: a requested load beyond what a configuration can serve is said, not hidden."""
from __future__ import annotations

import json

import pytest

from clover_rl.cli import main
from clover_rl.serving.capacity import capacity_warning


def test_warning_thresholds():
    assert capacity_warning(1.0, 2.5, "x") is None
    near = capacity_warning(2.4, 2.5, "x")
    assert near is not None and "96% of what x can serve" in near
    over = capacity_warning(5.0, 2.5, "7g:b7 x1")
    assert over is not None and "2.00x what 7g:b7 x1 can serve (2.5 req/s" in over


@pytest.mark.parametrize("rate, warned", [(1.0, False), (5.0, True)])
def test_simulate_warns_beyond_capacity(capsys, rate, warned):
    argv = ["simulate", "--service", "efficientnet", "--config", "7g:b7", "--rate", str(rate),
            "--duration", "20", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr()
    cap = json.loads(out.out)["capacity_rps"]
    assert cap == pytest.approx(2.5, rel=0.05)
    assert ("warning: load" in out.err) is warned


def test_profiler_flags_levels_beyond_measured_capacity():
    from types import SimpleNamespace

    from clover_rl.serving.live.profiler import _beyond_capacity

    ok = [SimpleNamespace(service_s=0.5)] * 4  # one slice: ~2 req/s
    assert _beyond_capacity(1.0, ok, 1) == ""
    assert "BEYOND CAPACITY: ~2 req/s" in _beyond_capacity(2.0, ok, 1)
    assert _beyond_capacity(2.0, ok, 2) == ""  # two slices serve ~4 req/s
    assert "NOTHING ANSWERED" in _beyond_capacity(2.0, [], 1)
