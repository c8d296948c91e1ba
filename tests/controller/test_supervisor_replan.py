"""``Supervisor.replan``: the controller process is stopped cleanly and started again with the new
scenario overrides (the Ray fleet uses it when GPUs are lost or come back); a clean exit that was
not asked for still ends the supervision."""
from __future__ import annotations

import signal
import threading
import time
from typing import Any

import pytest

from clover_rl.controller.supervisor import ControllerSpec, Supervisor

pytestmark = pytest.mark.live


def _sleeper(ready: Any) -> None:  # a stand-in controller process: runs until SIGTERM, then exits 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    ready.set()
    stop.wait(60)


class _Sup(Supervisor):
    def __init__(self) -> None:
        super().__init__(ControllerSpec("efficientnet", "base", "file:caiso_pge:eval", "unused", overrides={"gpus": 4}),
                         plane=None, echo=self.lines.append)
        self.spawned: list[dict[str, Any]] = []
        self.ready: Any = None

    lines: list[str] = []

    def _spawn(self) -> None:
        self.spawned.append(dict(self.spec.overrides))
        self._host_thread = threading.Thread(target=lambda: None)
        self._host_thread.start()
        self.ready = self.ctx.Event()
        self.proc = self.ctx.Process(target=_sleeper, args=(self.ready,), daemon=True)
        self.proc.start()


def test_replan_restarts_with_new_overrides() -> None:
    sup = _Sup()
    stop = threading.Event()
    result: dict[str, int] = {}
    t = threading.Thread(target=lambda: result.update(code=sup.run(stop)), daemon=True)
    t.start()
    deadline = time.time() + 60
    while sup.ready is None and time.time() < deadline:
        time.sleep(0.05)
    assert sup.ready.wait(60)
    first = sup.proc.pid
    sup.replan("the fleet now serves on 2 of 4 GPU(s)", {"gpus": 2})
    # _spawn records the overrides before it starts the process: wait for the new process too
    while (len(sup.spawned) < 2 or sup.proc.pid == first) and time.time() < deadline:
        time.sleep(0.05)
    assert sup.spawned == [{"gpus": 4}, {"gpus": 2}]
    assert sup.proc.pid != first and sup.restarts == 0  # a replan is not counted as a crash
    assert any("controller restarted: the fleet now serves on 2 of 4 GPU(s)" in line for line in sup.lines)
    # a clean exit nobody asked for ends the supervision (code 0), as before
    assert sup.ready.wait(60)
    sup.proc.terminate()
    t.join(30)
    assert result == {"code": 0} and len(sup.spawned) == 2
