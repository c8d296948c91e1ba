"""The live control loop: every interval read the carbon intensity, observe the service, ask the
policy, apply its configuration safely, and log why.

One interval, one module each (mixins of :class:`Controller`)::

    decide       (decide.py)       carbon reading (+ forecast) -> observation (exactly the env's)
                                   -> policy (masked) -> SLA guard override? -> reconfigure -> log
    reconfigure  (reconfigure.py)  plane.apply; on failure (the backend has rolled back: the
                                   plane contract) quarantine the target, log it once
    account      (account.py)      measurement windows (the SLA guard watches each) -> the interval's
                                   metrics -> ServiceModel.outcome (the env's reward) -> log,
                                   TensorBoard, Prometheus, online learner

This module holds the options, start/resume, the main loop and the typed state it persists
(``state.py``). Everything external is injected -- the plane (replay or live), the carbon source,
the clock, the state folder -- so the same loop runs instantly under a fake clock in unit tests
and in real time against the live serving plane.
"""
from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timezone
from typing import Any

from clover_rl.carbon.base import CarbonReading, CarbonSource
from clover_rl.carbon.forecast import OnlineForecaster
from clover_rl.controller.account import AccountMixin
from clover_rl.controller.clock import Clock, SystemClock
from clover_rl.controller.core import ControllerOptions
from clover_rl.controller.decide import DecideMixin
from clover_rl.controller.durations import format_duration
from clover_rl.controller.guard import SlaGuard
from clover_rl.controller.learn import training_penalties
from clover_rl.controller.plane import ServicePlane
from clover_rl.controller.reconfigure import ReconfigureMixin
from clover_rl.controller.state import (
    ControllerState,
    StateStore,
)
from clover_rl.errors import BackendError, ConfigError
from clover_rl.service_model import ServiceModel

log = logging.getLogger("clover_rl.controller")


class Controller(DecideMixin, ReconfigureMixin, AccountMixin):
    """Drives one deployment; see the module docstring. Use :meth:`run`, or :meth:`start` +
    :meth:`run_interval` to step it (tests).

    It stands on a :class:`ServiceModel` (built from ``scenario`` and the overrides unless
    ``model`` is given) and is the policy's :class:`~clover_rl.contracts.ControlContext`.
    """

    def __init__(
        self,
        scenario: Any,
        policy: str,
        plane: ServicePlane,
        carbon: CarbonSource,
        state_dir: str | os.PathLike | StateStore,
        options: ControllerOptions | None = None,
        *,
        clock: Clock | None = None,
        model: ServiceModel | None = None,
        policy_obj: Any = None,
        **scenario_overrides: Any,
    ) -> None:
        self.options = opts = options or ControllerOptions()
        if opts.interval_s <= 0:
            raise ConfigError(f"--interval must be positive, got {opts.interval_s} s")
        self.clock = clock or SystemClock()
        self.plane = plane
        self.carbon = carbon
        self.store = state_dir if isinstance(state_dir, StateStore) else StateStore(state_dir)
        if model is None:
            overrides = dict(scenario_overrides)
            if opts.probe_s is not None:
                overrides["probe_s"] = opts.probe_s
            model = ServiceModel.from_scenario(scenario, control_interval_s=opts.interval_s, **overrides)
        self._init_context(model)
        self.policy_spec = str(policy)
        self.safe_index = self._safe_index(opts.safe_config)
        self.guard = SlaGuard(model.sla_ms, opts.guard_windows, opts.guard_recover,
                              min_requests=opts.min_window_requests)
        self.stop_event = threading.Event()
        self.reading: CarbonReading | None = None
        self._forecaster = OnlineForecaster()  # completes readings without (enough) forecast
        self.measured_rate: float | None = None
        self.current = self.catalog.base_index
        self.state: ControllerState | None = None
        self._measuring = False
        self._window_p95 = float("nan")
        self._last_outcome = None
        self._last_metrics = None
        self.telemetry: Any = None
        self.learner: Any = None
        if policy_obj is not None:
            self.policy = policy_obj
            if hasattr(policy_obj, "bind"):
                policy_obj.bind(self)
        else:
            from clover_rl.agents.registry import make_policy

            self.policy = make_policy(self.policy_spec, self, seed=opts.seed)
        self.penalties = training_penalties(self.policy, self.scenario.penalties)
        if opts.learn:
            from clover_rl.controller.learn import OnlineLearner

            self.learner = OnlineLearner.for_policy(self.policy, self.store.checkpoints_dir, self,
                                                    every=opts.learn_every, good_after=opts.learn_good_after,
                                                    learning_rate=opts.learn_rate, seed=opts.seed)

    # ------------------------------------------------------------------ helpers
    def _safe_index(self, spec: str) -> int:
        if str(spec).strip().lower() == "base":
            return self.catalog.base_index
        try:
            i = self.catalog.lookup(str(spec))
        except (ConfigError, ValueError) as e:
            raise ConfigError(f"--safe-config {spec!r}: {e}") from None
        if not self.catalog.feasible[i]:
            raise ConfigError(f"--safe-config {spec!r}: infeasible ({self.catalog.why_infeasible(i)})")
        return i

    def _resized_fleet(self, st: ControllerState) -> bool:
        """A fleet deployment restarted on another number of GPUs (a Ray node lost or back: the
        fleet action space depends on the GPU count) continues from the fleet of the new space
        nearest to what the plane serves (fewest GPUs to change). False if it is not that."""
        from clover_rl.fleet.configuration import FleetConfiguration

        if self.scenario.fleet is None or st.scenario != self.scenario.name:
            return False
        served = self.plane.configuration
        ok = isinstance(served, FleetConfiguration) and served.n_gpus == self.scenario.gpus
        idx = self.catalog.nearest(served) if ok else self.catalog.base_index  # type: ignore[attr-defined]
        st.catalog_signature, st.config_index, st.config = self.catalog.signature, idx, self.label(idx)
        st.pending, st.quarantine = None, {}
        self._event("fleet_resized", gpus=self.scenario.gpus, serving=served.label() if served else None,
                    config=self.label(idx))
        return True

    # ------------------------------------------------------------------ start / resume
    def start(self) -> None:
        """Take the state folder, resume or initialise, bring the service up (no needless change)."""
        self.store.lock()
        st = self.store.load()
        resumed = st is not None
        if st is None:
            st = ControllerState(scenario=self.scenario.name, catalog_signature=self.catalog.signature,
                                 policy=self.policy_spec, created_at=self.clock.time())
        elif st.catalog_signature != self.catalog.signature and not self._resized_fleet(st):
            self.store.unlock()
            raise ConfigError(f"--state {self.store.dir}: holds a deployment of scenario {st.scenario!r} "
                              f"with another configuration catalog; use a new --state folder")
        self.state = st
        if resumed:
            st.count("restarts")
            self.guard.load(st.guard)
            if st.policy != self.policy_spec:
                self._event("policy_changed", previous=st.policy, policy=self.policy_spec)
                st.policy = self.policy_spec
            if st.last.rate_rps is not None:
                self.measured_rate = float(st.last.rate_rps)
            if st.budget:  # the carbon the budget window has spent so far
                self.objective.restore(st.budget.window, st.budget.spent_g)
            if st.carbon:
                c = st.carbon
                self.reading = CarbonReading(float(c.value), _parse_time(c.time), c.source, c.stale,
                                             tuple(c.forecast or ()), c.message)
        st.dry_run = self.options.dry_run
        target = st.config_index if (resumed and st.config_index is not None) else self.catalog.base_index
        why = "resume" if resumed else "start"
        if st.pending:
            p = st.pending
            self._event("pending", action=p.action, config=p.config,
                        note="a reconfiguration was in progress when the controller stopped")
            target = int(p.action)
        if not 0 <= int(target) < len(self.catalog):
            target = self.catalog.base_index
        if self.learner is not None and st.learner:
            self.learner.load_state(st.learner)
        self.current = int(target)
        served = self.plane.configuration
        want = self.catalog.configs[self.current]
        if served == want:
            note = f"live layout already serves {want.label()}; not reconfiguring"
        else:
            rep = self._safe_apply(want)
            if not rep.ok and self.current != self.safe_index:
                note = f"could not bring up {want.label()} ({rep.message}); falling back to the safe configuration"
                self.current = self.safe_index
                rep = self._safe_apply(self.catalog.configs[self.current])
            if not rep.ok:
                raise BackendError(f"cannot bring the service up with {self.label(self.current)}: {rep.message}")
            note = (f"brought the service up with {want.label()}" if served is None
                    else f"reconfigured {served.label() if served else '-'} -> {want.label()}")
            if served is not None:
                st.count("reconfigurations")
        st.pending = None
        self._save()
        self._event(why, policy=self.policy_spec, config=self.label(self.current), action=self.current,
                    note=note, scenario=self.scenario.name, dry_run=self.options.dry_run,
                    interval_s=self.options.interval_s, sla_ms=self.sla_ms, pid=os.getpid(),
                    penalties=self.penalties.model_dump() if hasattr(self.penalties, "model_dump") else None,
                    plane=getattr(self.plane, "name", "?"), carbon_source=getattr(self.carbon, "name", "?"))
        self._echo(f"[{self._time_str()}] {why}: {note}; policy {self.policy_spec}, interval "
                   f"{format_duration(self.options.interval_s)}, SLA p95 {self.sla_ms:.0f} ms, safe "
                   f"{self.label(self.safe_index)}" + (" (dry run)" if self.options.dry_run else ""))
        if self.options.tensorboard and self.telemetry is None:
            from clover_rl.controller.telemetry import TensorBoardLog

            self.telemetry = TensorBoardLog(self.store.tb_dir)
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        self._publish()

    # ------------------------------------------------------------------ main loop
    def run_interval(self, deadline: float | None = None) -> None:
        """Decide (or resume the interval in progress), serve it, finish it."""
        st = self.state
        assert st is not None
        iv = st.interval
        now = self.clock.time()
        if iv is not None and not self._measuring:
            if now < iv.ends_at:  # resumed mid-interval: keep its decision
                self.plane.begin_interval()
                self._measuring = True
                self._event("resume_interval", index=iv.index, config=self.label(self.current),
                            remaining_s=iv.ends_at - now)
            else:  # ended while the controller was down
                self._event("interval_lost", index=iv.index, note="the controller was down when it ended")
        if st.interval is None or not self._measuring:
            self.decide()
        assert st.interval is not None
        end = st.interval.ends_at
        until = min(end, deadline) if deadline is not None else end
        self.serve(until)
        self.finish_interval(partial=self.clock.time() < end - 1e-6)

    def run(self, stop: threading.Event | None = None) -> None:
        """Run until ``duration_s`` has passed or ``stop`` is set; always leaves a consistent state."""
        if stop is not None:
            self.stop_event = stop
        if self.state is None:
            self.start()
        deadline = self.clock.time() + self.options.duration_s if self.options.duration_s else None
        try:
            while not self.stop_event.is_set():
                if deadline is not None and self.clock.time() >= deadline - 1e-6:
                    break
                self.run_interval(deadline)
        finally:
            self.close()

    def request_stop(self) -> None:
        self.stop_event.set()

    def close(self) -> None:
        if self.state is not None:
            try:
                self._save()
                self._event("stop", counters=dict(self.state.counters), config=self.label(self.current))
            except OSError:
                pass
        if self.telemetry is not None:
            self.telemetry.close()
            self.telemetry = None
        self.store.unlock()

def _parse_time(s: Any) -> datetime:
    if isinstance(s, str):
        try:
            t = datetime.fromisoformat(s)
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc)
