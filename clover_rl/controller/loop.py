"""The live control loop: every interval read the carbon intensity, observe the service, ask the
policy, apply its configuration safely, and log why.

One interval::

    decide   carbon reading (+ forecast) -> observation (exactly the env's) -> policy (masked)
             -> SLA guard override? -> apply (rolled back on failure) -> log + persist
    serve    measurement windows until the interval ends; the SLA guard checks each window
             and switches to the safe configuration after k consecutive violations
    finish   the interval's measured metrics -> carbon, the env's reward -> log, TensorBoard,
             Prometheus, online learner

Everything external is injected -- the plane (replay or live), the carbon source, the clock,
the state folder -- so the same loop runs instantly under a fake clock in unit tests and in
real time against the live serving plane.
"""
from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np

from clover_rl.carbon.base import CarbonReading, CarbonSource
from clover_rl.carbon.forecast import OnlineForecaster
from clover_rl.contracts import ProbeResult
from clover_rl.controller.clock import Clock, SystemClock
from clover_rl.controller.context import DeploymentContext
from clover_rl.controller.durations import format_duration
from clover_rl.controller.guard import SlaGuard
from clover_rl.controller.learn import training_penalties
from clover_rl.controller.plane import ServicePlane
from clover_rl.controller.state import ControllerState, StateStore
from clover_rl.errors import BackendError, CloverError, ConfigError
from clover_rl.mig.config import Configuration
from clover_rl.objective import IntervalOutcome
from clover_rl.service_model import LastRatios, ServiceModel
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.metrics import IntervalMetrics

log = logging.getLogger("clover_rl.controller")


@dataclass
class ControllerOptions:
    """How the loop runs (the ``clover-rl deploy`` flags)."""

    interval_s: float = 3600.0
    """Control interval: one decision per interval."""
    duration_s: float | None = None
    """Stop after this long (None: until stopped)."""
    dry_run: bool = False
    """Decide and log, never reconfigure after start-up."""
    guard_windows: int = 3
    """SLA guard: consecutive violating measurement windows that trigger the safe configuration."""
    guard_window_s: float | None = None
    """Length of a measurement window (default: interval / 4, at most 60 s)."""
    guard_recover: int | None = None
    """Consecutive good windows before the guard hands control back (default: guard_windows)."""
    safe_config: str = "base"
    """The guard's safe configuration: ``base`` or a label such as ``7g:b5``."""
    min_window_requests: int = 5
    """Windows with fewer answered requests cannot tell a p95 and are ignored by the guard."""
    quarantine_intervals: int = 3
    """A configuration that failed to apply is masked for this many intervals."""
    probe_s: float | None = None
    """Measurement window of an online optimizer's probe (default: the scenario's probe_s)."""
    seed: int = 0
    learn: bool = False
    """Fine-tune a MaskablePPO policy online (see ``clover_rl.controller.learn``)."""
    learn_every: int = 8
    """Live transitions per PPO update."""
    learn_good_after: int = 4
    """Intervals an updated policy must run without an SLA-guard trigger to count as good."""
    learn_rate: float = 1e-4
    """Fine-tuning learning rate (constant)."""
    whole_gpu_only: bool = False
    """Mask every configuration but whole GPUs (CUDA without MIG mode)."""
    echo: Callable[[str], None] | None = print
    """Console lines (None: quiet)."""
    tensorboard: bool = True

    def window_s(self) -> float:
        if self.guard_window_s is not None:
            return min(self.guard_window_s, self.interval_s)
        return min(60.0, self.interval_s / 4.0)


@dataclass
class Decision:
    index: int
    action: int
    source: str  # policy | guard | fallback | resume
    reasons: list[str] = field(default_factory=list)
    policy_action: int | None = None
    refused: bool = False


class Controller(DeploymentContext):
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

    def label(self, i: int) -> str:
        return self.catalog.configs[i].label()

    def _echo(self, text: str) -> None:
        if self.options.echo is not None:
            self.options.echo(text)
        log.info("%s", text)

    def _time_str(self, t: float | None = None) -> str:
        t = self.clock.time() if t is None else t
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        rec = {"kind": kind, "time": self.clock.time(), "at": self._time_str(), **fields}
        self.store.append(rec)
        return rec

    def _save(self) -> None:
        assert self.state is not None
        self.state.config_index = self.current
        self.state.config = self.label(self.current)
        self.state.guard = self.guard.state()
        self.state.updated_at = self.clock.time()
        if self.learner is not None:
            self.state.learner = self.learner.state()
        self.store.save(self.state)

    def mask(self) -> np.ndarray:
        """Feasible configurations, minus those quarantined after a failed reconfiguration."""
        m = self.catalog.feasible.copy()
        if self.options.whole_gpu_only:
            whole = self.model.gpu.whole.name
            m &= np.array([all(p == whole for p, _ in c.pairs) for c in self.catalog.configs])
        if self.state is not None:
            idx = self._next_index()
            for a, until in self.state.quarantine.items():
                if idx <= int(until):
                    m[int(a)] = False
        m[self.current] = True  # staying put is always allowed
        return m

    def _next_index(self) -> int:
        iv = self.state.interval if self.state else None
        return int(iv["index"]) if iv else int(self.state.counters.get("decisions", 0)) if self.state else 0

    # ------------------------------------------------------------------ start / resume
    def start(self) -> None:
        """Take the state folder, resume or initialise, bring the service up (no needless change)."""
        self.store.lock()
        st = self.store.load()
        resumed = st is not None
        if st is None:
            st = ControllerState(scenario=self.scenario.name, catalog_signature=self.catalog.signature,
                                 policy=self.policy_spec, created_at=self.clock.time())
        elif st.catalog_signature != self.catalog.signature:
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
            if st.last.get("rate_rps") is not None:
                self.measured_rate = float(st.last["rate_rps"])
            if st.carbon:
                self.reading = CarbonReading(float(st.carbon["value"]), _parse_time(st.carbon.get("time")),
                                             str(st.carbon.get("source", "")), bool(st.carbon.get("stale")),
                                             tuple(st.carbon.get("forecast") or ()), str(st.carbon.get("message", "")))
        st.dry_run = self.options.dry_run
        target = st.config_index if (resumed and st.config_index is not None) else self.catalog.base_index
        why = "resume" if resumed else "start"
        if st.pending:
            p = st.pending
            self._event("pending", action=p.get("action"), config=p.get("config"),
                        note="a reconfiguration was in progress when the controller stopped")
            target = int(p["action"])
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

    # ------------------------------------------------------------------ carbon + observation
    def _read_carbon(self) -> CarbonReading:
        st = self.state
        assert st is not None
        now = self.clock.now()
        horizon = self.scenario.carbon.forecast_hours
        try:
            r = self.carbon.read(now, horizon)
            if not (isinstance(r.value, (int, float)) and math.isfinite(r.value) and r.value >= 0):
                raise BackendError(f"{getattr(self.carbon, 'name', 'carbon source')}: unusable value {r.value!r}")
            r = self._forecaster.complete(r, horizon)
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            last = self.reading
            if last is not None:
                r = CarbonReading(last.value, last.time, last.source or getattr(self.carbon, "name", "?"), True,
                                  last.forecast, f"carbon source failed ({msg}); holding the last value")
            else:
                ref = float(self.scenario.objective.reference_intensity)
                r = CarbonReading(ref, now, getattr(self.carbon, "name", "?"), True, (),
                                  f"carbon source failed before any good value ({msg}); using the reference "
                                  f"{ref:g} g/kWh")
            st.count("carbon_errors")
        if r.stale:
            st.count("stale_readings")
        self.reading = r
        st.carbon = {"value": r.value, "time": r.time.isoformat() if r.time else None, "source": r.source,
                     "stale": r.stale, "forecast": list(r.forecast), "message": r.message,
                     "read_at": self.clock.time()}
        return r

    def observation(self, r: CarbonReading) -> np.ndarray:
        """The env's observation for the coming interval, from live readings."""
        last = self.state.last if self.state else {}
        t = r.time if r.time is not None else self.clock.now()
        rate = self.measured_rate if self.measured_rate is not None else self.model.mean_rate
        ratios = LastRatios(float(last.get("p95_over_sla", 1.0)), float(last.get("accuracy_over_base", 1.0)),
                            float(last.get("energy_over_base", 1.0)))
        return self.model.observe(ci_now=r.value, forecast=r.forecast, rate_rps=rate, last=ratios,
                                  config_index=self.current, hour_of_day=t.hour + t.minute / 60.0 + t.second / 3600.0)

    # ------------------------------------------------------------------ reconfiguration
    def _safe_apply(self, cfg: Configuration) -> ReconfigReport:
        """``plane.apply`` that never raises for a backend fault."""
        previous = self.plane.configuration
        try:
            return self.plane.apply(cfg)
        except CloverError as e:
            return ReconfigReport(True, previous, previous or cfg, ok=False, message=str(e))
        except Exception as e:
            return ReconfigReport(True, previous, previous or cfg, ok=False,
                                  message=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")

    def reconfigure(self, target: int, why: str) -> tuple[bool, str]:
        """Apply ``target``; on failure roll back to the previous configuration and quarantine it."""
        st = self.state
        assert st is not None
        previous = self.current
        if target == previous and self.plane.configuration == self.catalog.configs[target]:
            return True, "unchanged"
        st.pending = {"action": int(target), "config": self.label(target), "previous": previous,
                      "since": self.clock.time(), "why": why}
        self._save()
        rep = self._safe_apply(self.catalog.configs[target])
        now_cfg = self.plane.configuration
        if rep.ok and now_cfg == self.catalog.configs[target]:
            self.current = int(target)
            st.count("reconfigurations")
            self.guard.reset()
            msg = rep.message or "applied"
            ok = True
        else:
            ok = False
            st.count("failed_reconfigurations")
            until = self._next_index() + self.options.quarantine_intervals
            st.quarantine[str(int(target))] = until
            prev_cfg = self.catalog.configs[previous]
            rolled = ""
            if now_cfg != prev_cfg:  # the plane did not keep the previous configuration: restore it
                back = self._safe_apply(prev_cfg)
                rolled = "restored" if back.ok else f"restore failed ({back.message})"
                now_cfg = self.plane.configuration
            st.count("rollbacks")
            if now_cfg is not None and now_cfg in self.catalog.index:
                self.current = self.catalog.index[now_cfg]
            msg = (f"reconfiguration to {self.label(target)} failed ({rep.message}); serving "
                   f"{self.label(self.current)}" + (f", {rolled}" if rolled else "") +
                   f"; {self.label(target)} masked for {self.options.quarantine_intervals} interval(s)")
            self._event("rollback", target=int(target), target_config=self.label(target), why=why,
                        message=rep.message, serving=self.label(self.current), quarantined_until=until)
            self._echo(f"[{self._time_str()}] ROLLBACK: {msg}")
        st.pending = None
        self._save()
        return ok, msg

    # ------------------------------------------------------------------ probes (online optimizers)
    def probe(self, action: Any) -> ProbeResult:
        """An optimizer's measurement: serve ``action`` for ``probe_s`` and score it.

        Paid for in the interval like in the env. In a dry run nothing is reconfigured: the
        replay model's steady-state estimate stands in for the measurement (``estimated``).
        """
        idx = self.catalog.lookup(action)
        if not self.mask()[idx]:
            raise ConfigError(f"cannot probe {self.label(idx)}: masked ({self.catalog.why_infeasible(idx) or 'quarantined'})")
        probe_s = float(self.scenario.probe_s)
        rate = self.rate()
        if self.options.dry_run:
            m = self.model.steady_state(rate, self.catalog.configs[idx]).interval(probe_s)
        else:
            change = idx != self.current
            ok = self.reconfigure(idx, "probe")[0] if change else True
            if ok:
                m = self.plane.window(probe_s, self.stop_event)
            else:  # could not serve the candidate: it scores as serving nothing (an outage)
                m = IntervalMetrics.nothing_served(probe_s, round(rate * probe_s), timeout_s=self.scenario.timeout_s,
                                                   backend=self.plane.name)
            if change and ok and self.state is not None and self.state.interval is not None:
                self.state.interval["reconfigurations"] = int(self.state.interval.get("reconfigurations", 0)) + 1
        return {"metrics": m, "score": self.model.score(m, self.intensity()), "config": self.label(idx), "action": idx}

    # ------------------------------------------------------------------ one interval
    def decide(self) -> Decision:
        """Read carbon, observe, ask the policy (masked), apply, log, persist."""
        st = self.state
        assert st is not None
        now = self.clock.time()
        prev = st.interval
        index = int(prev["index"]) + 1 if prev else int(st.counters.get("decisions", 0))
        start = float(prev["ends_at"]) if prev and 0 <= now - float(prev["ends_at"]) < self.options.interval_s else now
        start_cfg = self.current
        st.interval = {"index": index, "started_at": start, "ends_at": start + self.options.interval_s}
        self.plane.begin_interval()  # probes made while deciding count in this interval, as in the env
        self._measuring = True
        # expired quarantines
        st.quarantine = {a: u for a, u in st.quarantine.items() if int(u) >= index}
        r = self._read_carbon()
        obs = self.observation(r)
        if self.learner is not None:
            note = self.learner.before_decision(obs)
            if note:
                st.count("learner_updates")
                self._event("learner_update", index=index, note=note)
                self._echo(f"[{self._time_str()}] LEARNER: {note}")
        mask = self.mask()
        d = Decision(index, self.current, "policy")
        extra: dict[str, Any] = {}
        if self.guard.active:
            d.source = "guard"
            d.action = self.safe_index
            d.reasons.append(f"SLA guard holds the safe configuration ({self.guard.reason})")
        else:
            info = {"action_mask": mask, "ci": r.value, "stale": r.stale, "time": r.time.isoformat() if r.time else None,
                    "rate_rps": self.rate(), "sla_ms": self.sla_ms, "config": self.label(self.current)}
            try:
                if self.learner is not None and self.learner.active:
                    a = int(self.learner.act(obs, mask))
                else:
                    a = int(self.policy.act(obs, info))
                d.policy_action = a
                if not 0 <= a < len(self.catalog) or not mask[a]:
                    why = (self.catalog.why_infeasible(a) if 0 <= a < len(self.catalog) else "out of range") or "quarantined"
                    d.refused = True
                    d.source = "refused"
                    d.reasons.append(f"policy chose {self.label(a) if 0 <= a < len(self.catalog) else a}: masked ({why}); "
                                     "keeping the current configuration")
                    st.count("refused_actions")
                else:
                    d.action = a
            except Exception as e:
                d.source = "fallback"
                d.reasons.append(f"policy failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                                 "keeping the current configuration")
                st.count("policy_errors")
            ld = getattr(self.policy, "last_decision", None)
            if isinstance(ld, dict) and ld:
                extra = {k: v for k, v in ld.items() if isinstance(v, (str, int, float, bool)) or v is None}
                if ld.get("reason"):
                    d.reasons.append(str(ld["reason"]))
            if d.source == "policy" and not d.reasons:
                d.reasons.append(self._policy_note(obs, d.action, mask))
        if r.stale:
            d.reasons.append(f"carbon reading stale: {r.message}")
        elif r.message:
            d.reasons.append(r.message)
        previous = start_cfg
        reconfigs = int(st.interval.get("reconfigurations", 0))
        applied, msg = False, "unchanged"
        if d.action != self.current:
            if self.options.dry_run:
                msg = f"dry run: would reconfigure {self.label(self.current)} -> {self.label(d.action)}"
            else:
                applied, msg = self.reconfigure(d.action, d.source)
                reconfigs += int(applied)
        if self.learner is not None:
            self.learner.after_decision(executed=self.current, chosen=d.policy_action, source=d.source)
        st.count("decisions")
        st.interval.update({"ci": r.value, "stale": r.stale, "forecast": list(r.forecast),
                            "action": self.current, "config": self.label(self.current), "decided": d.action,
                            "policy_action": d.policy_action, "source": d.source, "refused": d.refused,
                            "reconfigurations": reconfigs})
        self._save()
        rec = self._event(
            "decision", index=index, ci=r.value, stale=r.stale, carbon_source=r.source,
            carbon_time=r.time.isoformat() if r.time else None, carbon_message=r.message, forecast=list(r.forecast),
            previous=self.label(previous), config=self.label(self.current), action=self.current,
            decided=self.label(d.action), policy_action=d.policy_action, source=d.source, refused=d.refused,
            applied=applied, dry_run=self.options.dry_run, message=msg, reasons=d.reasons,
            rate_rps=self.rate(), observation=[round(float(x), 5) for x in obs], policy=extra,
            ends_at=st.interval["ends_at"])
        change = (f"{self.label(previous)} -> {self.label(self.current)}" if self.current != previous
                  else f"keep {self.label(self.current)}")
        if self.options.dry_run and d.action != previous:
            change = f"keep {self.label(previous)} (dry run; policy: {self.label(d.action)})"
        self._echo(f"[{rec['at']}] #{index} CI {r.value:.0f} g/kWh{' (STALE)' if r.stale else ''} -> {change} "
                   f"[{d.source}] {'; '.join(d.reasons[:2])}")
        self._publish()
        return d

    def _policy_note(self, obs: np.ndarray, action: int, mask: np.ndarray) -> str:
        """Why, for policies that do not say: a trained policy's probability of its choice."""
        name = getattr(self.policy, "name", self.policy_spec)
        if self.learner is not None and self.learner.active:
            return f"{name}: sampled by the online learner"
        model = getattr(self.policy, "model", None)
        if model is None:
            return f"{name}: its choice"
        try:
            from clover_rl.agents.sb3 import MaskedPredictor

            o = self.policy.normalize(obs) if hasattr(self.policy, "normalize") else obs
            pred = MaskedPredictor(model)
            sc = pred.scores(np.asarray(o, dtype=np.float32)[None])
            if sc is None or pred.algo == "dqn":
                return f"{name}: greedy masked choice"
            z = np.where(mask, sc[0], -np.inf)
            p = np.exp(z - z.max())
            return f"{name}: greedy masked choice (probability {p[action] / p.sum():.2f})"
        except Exception:
            return f"{name}: greedy masked choice"

    def _on_window(self, m: IntervalMetrics) -> None:
        st = self.state
        assert st is not None
        if m.served:
            self._window_p95 = m.p95_ms
        ev = self.guard.observe(m)
        if ev is None:
            self._save()  # the guard's counts must survive a restart; the state file is small
            return
        if ev.kind == "trigger":
            st.count("guard_triggers")
            action = "none"
            if self.learner is not None:
                note = self.learner.on_guard_trigger()
                if note:
                    st.count("learner_rollbacks")
                    self._event("learner_rollback", note=note)
                    self._echo(f"[{self._time_str()}] LEARNER: {note}")
            if self.current == self.safe_index:
                action = "already serving the safe configuration; nothing safer to switch to"
            elif self.options.dry_run:
                action = f"dry run: would switch to {self.label(self.safe_index)}"
            else:
                ok, msg = self.reconfigure(self.safe_index, "guard")
                action = f"switched to {self.label(self.safe_index)}" if ok else msg
                if ok and st.interval is not None:
                    st.interval["reconfigurations"] = int(st.interval.get("reconfigurations", 0)) + 1
                    st.interval["action"] = self.current
                    st.interval["config"] = self.label(self.current)
            self._event("guard", event="trigger", reason=ev.reason, action=action, config=self.label(self.current),
                        p95_ms=m.p95_ms, sla_ms=self.sla_ms)
            self._echo(f"[{self._time_str()}] SLA GUARD: {ev.reason}; {action}")
        else:
            st.count("guard_releases")
            self._event("guard", event="release", reason=ev.reason, config=self.label(self.current),
                        p95_ms=m.p95_ms, sla_ms=self.sla_ms)
            self._echo(f"[{self._time_str()}] SLA GUARD released: {ev.reason}; the policy decides again next interval")
        self._save()
        self._publish()

    def serve(self, until: float) -> None:
        """Measurement windows until ``until`` (epoch s), the SLA guard watching each."""
        w = self.options.window_s()
        while not self.stop_event.is_set():
            remaining = until - self.clock.time()
            if remaining <= 1e-6:
                return
            m = self.plane.window(min(w, remaining), self.stop_event)
            self._on_window(m)

    def finish_interval(self, partial: bool = False) -> IntervalOutcome | None:
        """Measure the interval, score it as the env does, log, TensorBoard, learn."""
        st = self.state
        assert st is not None and st.interval is not None
        iv = st.interval
        m = self.plane.interval()
        self._measuring = False
        ci = float(iv.get("ci", self.reading.value if self.reading else 0.0))
        out = self.model.outcome(m, ci, refused=bool(iv.get("refused")),
                                 reconfigurations=int(iv.get("reconfigurations", 0)), penalties=self.penalties)
        if m.arrived or m.served:
            st.last = {"p95_over_sla": out.p95_over_sla, "accuracy_over_base": out.accuracy_over_base,
                       "energy_over_base": out.energy_over_base, "rate_rps": m.arrived / m.duration_s}
            self.measured_rate = st.last["rate_rps"]
        else:  # no traffic: nothing was measured; keep the previous ratios, rate is zero
            st.last = {**st.last, "rate_rps": 0.0}
            self.measured_rate = 0.0
        if not partial:
            st.count("intervals")
        rec = self._event(
            "interval", index=int(iv["index"]), started_at=iv["started_at"], ends_at=iv["ends_at"], partial=partial,
            config=self.label(self.current), action=self.current, ci=ci, stale=bool(iv.get("stale")),
            source=iv.get("source"), metrics=m.to_dict(), outcome=out.to_dict(), sla_ms=self.sla_ms,
            guard_active=self.guard.active)
        if self.telemetry is not None:
            self.telemetry.interval(int(iv["index"]), ci=ci, metrics=m, outcome=out, sla_ms=self.sla_ms,
                                    config_index=self.current, stale=bool(iv.get("stale")),
                                    guard_active=self.guard.active, wall_time=self.clock.time())
        if self.learner is not None and not partial:
            self.learner.after_interval(out.reward)
        self._last_outcome = out
        self._last_metrics = m
        p95 = f"{m.p95_ms:.0f}" if m.served else "-"
        self._echo(f"[{rec['at']}] #{iv['index']} served {m.served}/{m.arrived} on {self.label(self.current)}: "
                   f"p95 {p95}/{self.sla_ms:.0f} ms, acc {m.accuracy:.2f}, {m.energy_j:.0f} J, "
                   f"{out.carbon_g:.3g} gCO2, reward {out.reward:+.4f}" + (" (partial)" if partial else "")
                   + (" [estimated energy]" if m.estimated else ""))
        if not partial:
            st.interval = None
        else:
            iv["partial_logged"] = True
        self._save()
        self._publish()
        return out

    # ------------------------------------------------------------------ main loop
    def run_interval(self, deadline: float | None = None) -> None:
        """Decide (or resume the interval in progress), serve it, finish it."""
        st = self.state
        assert st is not None
        iv = st.interval
        now = self.clock.time()
        if iv is not None and not self._measuring:
            if now < float(iv["ends_at"]):  # resumed mid-interval: keep its decision
                self.plane.begin_interval()
                self._measuring = True
                self._event("resume_interval", index=int(iv["index"]), config=self.label(self.current),
                            remaining_s=float(iv["ends_at"]) - now)
            else:  # ended while the controller was down
                self._event("interval_lost", index=int(iv["index"]), note="the controller was down when it ended")
        if st.interval is None or not self._measuring:
            self.decide()
        assert st.interval is not None
        end = float(st.interval["ends_at"])
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

    # ------------------------------------------------------------------ metrics for /metrics
    def _publish(self) -> None:
        st = self.state
        if st is None:
            return
        out = getattr(self, "_last_outcome", None)
        m = getattr(self, "_last_metrics", None)
        r = self.reading
        values = {
            "carbon_intensity": r.value if r else float("nan"),
            "carbon_stale": float(bool(r and r.stale)),
            "configuration_index": float(self.current),
            "configuration": self.label(self.current),
            "policy": self.policy_spec,
            "sla_ms": self.sla_ms,
            "window_p95_ms": self._window_p95,
            "interval_p95_ms": m.p95_ms if m is not None else float("nan"),
            "interval_accuracy": m.accuracy if m is not None else float("nan"),
            "interval_energy_j": m.energy_j if m is not None else float("nan"),
            "interval_carbon_g": out.carbon_g if out is not None else float("nan"),
            "interval_reward": out.reward if out is not None else float("nan"),
            "guard_active": float(self.guard.active),
            "dry_run": float(self.options.dry_run),
            "updated": self.clock.time(),
            "counters": dict(st.counters),
        }
        try:
            self.plane.publish(values)
        except Exception as e:
            log.debug("publish failed: %s", e)


def _parse_time(s: Any) -> datetime:
    if isinstance(s, str):
        try:
            t = datetime.fromisoformat(s)
            return t if t.tzinfo else t.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.now(timezone.utc)
