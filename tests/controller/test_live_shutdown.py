"""`clover-rl deploy` as an operator's process manager sees it: SIGTERM drains (readiness false,
every accepted request answered, exit 0), a restart resumes the saved state, and a SIGKILL of
the front-end process gives clients connection errors at once and leaves no process behind.
(Worker and controller kills under load: ``test_live.py``'s fault-injection run.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from clover_rl.serving.live.codec import HEADER, encode_request

pytestmark = [pytest.mark.live, pytest.mark.timeout(300)]

BODY, HL = encode_request({"INPUT__0": np.zeros((1, 32, 32, 3), np.uint8)})


def _deploy(state: Path, cwd: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "clover_rl.cli", "deploy", "--scenario", "efficientnet", "--policy", "base",
           "--carbon", "file:caiso_pge:eval,speed=900", "--interval", "4s", "--port", "0", "--state", str(state),
           "--models", "emulated", "--drain-grace", "20s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if "KServe v2 front end on " in line:
            url = line.split("KServe v2 front end on ", 1)[1].split()[0]
    assert url, "deploy did not start its front end"
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    threading.Thread(target=lambda: p.stdout.read(), daemon=True).start()  # keep the pipe drained
    return p, url


class Load:
    """Open-loop requests every ``gap_s`` until stopped; each ends as (sent, status|error, done)."""

    def __init__(self, url: str, gap_s: float = 0.25) -> None:
        self.url, self.gap_s = url, gap_s
        self.results: list[tuple[float, object, float]] = []
        self.stop = threading.Event()
        self.pool = ThreadPoolExecutor(32)
        self.client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=64))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _one(self) -> None:
        t0 = time.monotonic()
        try:
            r = self.client.post(f"{self.url}/v2/models/efficientnet/infer", content=BODY,
                                 headers={HEADER: str(HL), "Content-Type": "application/octet-stream"})
            out: object = r.status_code
        except httpx.HTTPError as e:
            out = type(e).__name__
        self.results.append((t0, out, time.monotonic()))

    def _run(self) -> None:
        while not self.stop.wait(self.gap_s):
            self.pool.submit(self._one)

    def finish(self) -> list[tuple[float, object, float]]:
        self.stop.set()
        self.thread.join()
        self.pool.shutdown(wait=True)
        self.client.close()
        return self.results


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except OSError:
                pass
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_drains_restart_resumes_and_sigkill_fails_fast(tmp_path: Path) -> None:
    state = tmp_path / "state"
    p, url = _deploy(state, tmp_path)
    try:
        load = Load(url)
        time.sleep(4.0)
        t_term = time.monotonic()
        p.send_signal(signal.SIGTERM)
        ready = []
        while p.poll() is None and time.monotonic() - t_term < 30:
            try:
                ready.append((time.monotonic() - t_term, httpx.get(f"{url}/v2/health/ready", timeout=1).status_code))
                assert httpx.get(f"{url}/v2/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                break
            time.sleep(0.05)
        assert p.wait(60) == 0
        results = load.finish()
    finally:
        if p.poll() is None:
            p.kill()
    first = next((i for i, (_, code) in enumerate(ready) if code == 503), None)
    assert first is not None and ready[first][0] < 1.0, ready  # readiness false at once (0.2 s polling)
    assert all(code == 503 for _, code in ready[first:]), ready  # and for good
    before = [out for t0, out, _ in results if t0 < t_term - 0.5]
    assert len(before) >= 8 and all(out == 200 for out in before), before  # accepted before SIGTERM: answered
    assert all(out in (200, 503) or isinstance(out, str) for _, out, _ in results)

    p, url = _deploy(state, tmp_path)  # restart with the same state folder
    try:
        def kinds() -> list[str]:
            return [json.loads(x)["kind"] for x in (state / "decisions.jsonl").read_text().splitlines()]

        deadline = time.monotonic() + 60
        while "resume" not in kinds() and time.monotonic() < deadline:  # logged once the controller is up
            time.sleep(0.2)
        assert "resume" in kinds()
        kids = _children(p.pid)
        assert len(kids) >= 2  # workers + the controller
        load = Load(url, gap_s=0.1)
        time.sleep(2.0)
        t_kill = time.monotonic()
        p.kill()
        p.wait(10)
        time.sleep(1.5)
        results = load.finish()
    finally:
        if p.poll() is None:
            p.kill()
    after = [(t0, out, t1) for t0, out, t1 in results if t1 > t_kill]
    assert any(t0 > t_kill for t0, _, _ in after)
    assert all(isinstance(out, str) for t0, out, _ in after if t0 > t_kill)  # connection errors, not answers
    assert all(t1 - max(t0, t_kill) < 3.0 for t0, _, t1 in after), after  # at once, no hang
    deadline = time.monotonic() + 30
    while any(_alive(k) for k in kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(k) for k in kids), "worker or controller processes outlived the front end"
