"""The live controller: deploy a policy against a running service (``clover-rl deploy``).

- :class:`Controller` / :class:`ControllerOptions` (``loop``): the control loop, drivable with a
  fake clock over the replay backend or in real time over the live serving plane.
- Planes (``plane``): :class:`ReplayPlane`, :class:`LivePlane`; ``supervisor.RemotePlane``.
- :class:`SlaGuard` (``guard``), :class:`StateStore` (``state``), :func:`parse_duration`.
- :class:`Deployment` / :class:`DeploySettings` (``deployment``): front end + supervised
  controller process + optional load, as the CLI runs them.
- :class:`OnlineLearner` (``learn``), ``report`` (summaries), ``faults`` (injection hooks).

Names are imported lazily so ``import clover_rl.controller.report`` stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Controller": "loop", "ControllerOptions": "loop", "Decision": "decide",
    "ServicePlane": "plane", "ReplayPlane": "plane", "LivePlane": "plane",
    "SlaGuard": "guard", "GuardEvent": "guard",
    "ControllerState": "state", "StateStore": "state",
    "parse_duration": "durations", "format_duration": "durations",
    "Clock": "clock", "SystemClock": "clock", "FakeClock": "clock",
    "Deployment": "deployment", "DeploySettings": "deployment",
    "Supervisor": "supervisor", "RemotePlane": "supervisor", "PlaneHost": "supervisor",
    "OnlineLearner": "learn", "training_penalties": "learn",
    "SteadyLoad": "load", "DeploymentContext": "context",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"clover_rl.controller.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'clover_rl.controller' has no attribute {name!r}")
