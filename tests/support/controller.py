"""The replay deployment rig: a controllable policy and a controller factory that runs the real
loop over the ReplayBackend under a fake clock (no wall time)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clover_rl.controller.clock import FakeClock
from clover_rl.controller.faults import FlakyBackend
from clover_rl.controller.loop import Controller, ControllerOptions
from clover_rl.controller.plane import ReplayPlane
from clover_rl.controller.supervisor import make_carbon_source

BAD = "3g:b7,2g:b7,2g:b7"  # p95 ~1.7x the SLA at the scenario's load (replay model)


class FixedPolicy:
    """Always the same configuration (or whatever ``choose`` says): a controllable policy."""

    name = "fixed"

    def __init__(self, action: int | None = None) -> None:
        self.action = action
        self.calls = 0
        self.fail = False
        self.last_decision: dict[str, Any] = {}

    def reset(self) -> None:
        pass

    def bind(self, env: Any) -> None:
        self.env = env

    def act(self, obs: np.ndarray, info: dict) -> int:
        self.calls += 1
        if self.fail:
            raise RuntimeError("policy exploded")
        a = self.env.catalog.base_index if self.action is None else self.action
        self.last_decision = {"reason": f"fixed choice #{self.calls}"}
        return a


class Rig:
    """A replay deployment: flaky backend (counts applies), plane, fake clock, file carbon."""

    def __init__(self, env: Any, clock: FakeClock, state: Path, carbon: Any = None) -> None:
        from clover_rl.serving.replay import ReplayBackend

        sc = env.scenario
        self.env = env
        self.clock = clock
        self.state = state
        m = env.model
        self.backend = FlakyBackend(ReplayBackend(m.service, m.profile, m.gpu, sc.gpus, seed=0,
                                                  timeout_s=sc.timeout_s))
        self.plane = ReplayPlane(self.backend, clock, env.mean_rate)
        self.carbon = carbon or make_carbon_source("file:caiso_pge:eval", start=clock.time(), clock=clock)
        self.lines: list[str] = []

    def controller(self, policy: Any = None, spec: str | None = None, **opts: Any) -> Controller:
        """A controller over this rig: ``spec`` is a registry name, else ``policy`` (default FixedPolicy)."""
        o = ControllerOptions(interval_s=3600, guard_window_s=900, echo=self.lines.append, **opts)
        obj = None if spec is not None else (policy if policy is not None else FixedPolicy())
        return Controller(self.env.scenario, spec or "fixed", self.plane, self.carbon, self.state, o,
                          clock=self.clock, model=self.env.model, policy_obj=obj)

    def records(self, kind: str | None = None) -> list[dict]:
        from clover_rl.controller.state import read_log

        return list(read_log(self.state / "decisions.jsonl", kind))
