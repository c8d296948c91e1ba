"""`clover-rl profile` writes a profile the replay backend can load; `clover-rl serve` serves
until SIGINT and shuts its workers down."""
from __future__ import annotations

import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from clover_rl.cli import main
from clover_rl.serving.profile import QUANTILE_LEVELS, load_profile
from tests.support.live import noop_service

pytestmark = [pytest.mark.live, pytest.mark.timeout(90)]


@pytest.fixture
def restore_logging():
    lg = logging.getLogger("clover_rl.serving.live")
    handlers, level, prop = list(lg.handlers), lg.level, lg.propagate
    yield
    lg.handlers[:], lg.level, lg.propagate = handlers, level, prop


@pytest.mark.timeout(300)  # two real EfficientNet workers start: ~10 s each, minutes on a loaded host
def test_profile_command_output_loads(tmp_path: Path, capsys, restore_logging) -> None:
    out = tmp_path / "prof.yaml"
    rc = main(["profile", "--service", "efficientnet", "--variants", "b1", "--slices", "1g,7g",
               "--rates", "3", "--duration", "1.2", "--idle", "0.3", "--cpu-scale", "0.15", "--no-restart",
               "--out", str(out)])
    assert rc == 0
    p = load_profile(out)
    assert p.service == "efficientnet" and p.gpu == "a100-40gb" and not p.estimated
    assert set(p.entries) == {("1g.5gb", "b1"), ("7g.40gb", "b1")}
    assert "ESTIMATED" in p.method and "cpu" in p.method  # energy on this host is the CPU model
    e1, e7 = p.entry("1g.5gb", "b1"), p.entry("7g.40gb", "b1")
    assert len(e1.service_ms) == len(QUANTILE_LEVELS) and e1.samples > 0
    assert e1.mean_ms > 2 * e7.mean_ms  # 1g emulates 1/7 of the host, 7g all of it
    assert p.idle_power_w > 0 and p.model_load_s["b1"] > 0
    assert p.overhead is not None and p.overhead.points[0].samples > 0 and p.downtime.make_before_break
    printed = capsys.readouterr().out
    assert "wrote" in printed and "overhead at" in printed and "reconfiguration: make-before-break true" in printed


def test_profile_command_bad_input(capsys) -> None:
    assert main(["profile", "--service", "efficientnet", "--rates", "1,x", "--out", "/tmp/x.yaml"]) == 2
    assert "--rates: expected comma-separated numbers" in capsys.readouterr().err
    assert main(["serve", "--service", "efficientnet", "--device", "tpu"]) == 2
    assert "--device must be cpu or cuda" in capsys.readouterr().err


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] == "Z"


def test_serve_until_sigint(tmp_path: Path) -> None:
    svc = tmp_path / "noop.yaml"
    svc.write_text(yaml.safe_dump(noop_service().model_dump(mode="json")))
    p = subprocess.Popen([sys.executable, "-m", "clover_rl.cli", "serve", "--service", str(svc),
                          "--config", "4g:b1,3g:b3", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        m = re.search(r"at (http://\S+) ", line)
        assert m, line + p.stderr.read()
        url = m.group(1)
        assert httpx.get(f"{url}/v2/health/ready").status_code == 200
        body = {"inputs": [{"name": "INPUT__0", "shape": [1, 1, 1, 3], "datatype": "UINT8", "data": [1, 2, 3]}]}
        assert httpx.post(f"{url}/v2/models/efficientnet/infer", json=body).status_code == 200
        workers = [c for c in _children(p.pid) if not _gone(c)]
        assert len(workers) >= 2  # two slices (plus multiprocessing's resource tracker, maybe)
        p.send_signal(signal.SIGINT)
        assert p.wait(30) == 0
        assert "stopped: workers shut down" in p.stdout.read()
        deadline = time.monotonic() + 5
        while not all(_gone(c) for c in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(c) for c in workers)
    finally:
        if p.poll() is None:
            p.kill()
