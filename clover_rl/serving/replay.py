"""``ReplayBackend``: the Backend protocol served by the profile-driven simulator.

Instant and seeded: the same backend seed and the same call sequence give the same metrics.

Reconfiguration downtime (paid at the start of the next :meth:`ReplayBackend.run`):

* a slice whose (profile, placement) is new pays ``partition_change_s + model_load_s[variant]``;
* a slice whose placement is unchanged but whose variant changed pays ``model_load_s[variant]``;
* with a profile whose measured :class:`~clover_rl.serving.profile.Downtime` says the plane
  makes before it breaks (new workers warm up while the old ones serve: CPU emulation), a
  changed slice pays the observed ``downtime.switch_s`` instead of the two rules above;
* with ``reconfiguration=False`` (the scenario's ``reconfiguration: false``) nothing is paid;
* an unchanged slice pays nothing; neither does the first ``apply`` (the service is assumed
  deployed before the first interval, as in the paper's experiments, where the initial
  deployment is not part of any measured hour).

Variants are assigned to slices so that unchanged placements keep their loaded variant when
the new configuration still uses it there (see :func:`slot_assignment`). Applying twice
without a run adds the downtimes per slice id (the reconfigurations happen one after
another); downtime longer than an interval carries its remainder into the next run.

Modes: ``"steady"`` answers a run without pending downtime from the cached steady state
(microseconds, expected values, no sampling noise) when the load is below
``STEADY_MAX_RHO`` of capacity, and otherwise (after a reconfiguration, or near saturation)
from :mod:`clover_rl.serving.disturbed`: an exactly simulated disturbed head plus the steady
rest, or a whole exact simulation, both cached and seeded per rate grid point (documented
tolerance there); ``"exact"`` always simulates afresh. Exact runs report ``duration_s`` as the drained span (see
:mod:`clover_rl.serving.simulator`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from clover_rl.errors import BackendError, ConfigError, positive_number
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.mig.partition import Slice
from clover_rl.services import ServiceSpec, load_service
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.disturbed import disturbed_interval, warm_up
from clover_rl.serving.metrics import IntervalMetrics
from clover_rl.serving.profile import Profile, load_default_profile, load_profile
from clover_rl.serving.replay_base import ReplayBookkeeping, switch_cost
from clover_rl.serving.simulator import (
    DEFAULT_TIMEOUT_S,
    Servers,
    build_servers,
    simulate,
    slice_id,
    slot_assignment,
)
from clover_rl.serving.steady import (
    STEADY_MAX_RHO,
    STEADY_REQUESTS,
    SteadyState,
    steady_state_servers,
)

Assignment = tuple[tuple[Slice, str], ...]
Transition = tuple[tuple[str, float], ...]  # (slice id, switching downtime s) on every GPU
_TRANSITIONS_MAX = 100_000


class ReplayBackend(ReplayBookkeeping):
    """Profile + simulator backend for ``n_gpus`` identical GPUs sharing one configuration (a
    configuration per GPU: :class:`clover_rl.fleet.replay.FleetReplayBackend`)."""

    def __init__(
        self,
        service: ServiceSpec | str,
        profile: Profile | str | Path | None,
        gpu: GpuModel | str,
        n_gpus: int = 1,
        seed: int | None = 0,
        *,
        mode: Literal["steady", "exact"] = "steady",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        steady_requests: int = STEADY_REQUESTS,
        reconfiguration: bool = True,
    ) -> None:
        self.service = service if isinstance(service, ServiceSpec) else load_service(service)
        self.gpu = gpu if isinstance(gpu, GpuModel) else get_gpu(gpu)
        if profile is None:
            profile = load_default_profile(self.service.name, self.gpu.name)
        elif not isinstance(profile, Profile):
            profile = load_profile(profile)
        self.profile = profile
        if profile.gpu != self.gpu.name:
            raise ConfigError(f"profile is for GPU {profile.gpu!r}, backend for {self.gpu.name!r}")
        if profile.service != self.service.name:
            raise ConfigError(f"profile is for service {profile.service!r}, backend for {self.service.name!r}")
        if isinstance(n_gpus, bool) or not isinstance(n_gpus, (int, np.integer)) or n_gpus < 1:
            raise ConfigError(f"n_gpus must be a positive integer, got {n_gpus!r}")
        if mode not in ("steady", "exact"):
            raise ConfigError(f"replay mode must be 'steady' or 'exact', got {mode!r}")
        self.n_gpus = int(n_gpus)
        self.mode = mode
        self.timeout_s = positive_number("timeout_s", timeout_s)
        if isinstance(steady_requests, bool) or not isinstance(steady_requests, (int, np.integer)) \
                or steady_requests < 1000:
            raise ConfigError(f"steady_requests must be an integer >= 1000, got {steady_requests!r}")
        self.steady_requests = int(steady_requests)
        self.reconfiguration = bool(reconfiguration)  # False: reconfigurations are free (scenario.reconfiguration)
        self._rng = np.random.default_rng(seed)
        self._config: Configuration | None = None
        self._assignment: Assignment = ()
        self._assignment_key: tuple = ()  # (configuration, variants in slice order): hashable stand-in
        self._ids_cache: dict[tuple, tuple[str, ...]] = {}
        self._servers: Servers | None = None
        self._pending: dict[str, float] = {}
        self._servers_cache: dict[Assignment, Servers] = {}
        self._transitions: dict[tuple, tuple[Assignment, Servers, Transition]] = {}
        self._rows: dict[tuple[str, str], tuple] = {}  # build_servers' memo of resolved rows
        self._costs: dict[tuple, float] = {}  # _switch_cost by (old variant, variant, first)
        self._seeds: list[int] = []  # exact mode's sub-seeds (steady mode draws none: its figures are seeded per grid point)
        self._steady_runs: dict[tuple, IntervalMetrics] = {}  # steady intervals by (servers, rate, seconds)
        self._closed = False
        if mode == "steady":
            warm_up()  # compiled kernels loaded here, not in the first step

    # ------------------------------------------------------------------ helpers

    def _servers_for(self, config: Configuration, assignment: Assignment) -> Servers:
        # keyed by the configuration and the variants in slice order (its partition is fixed):
        # cheaper to hash than the slices
        key = (config, tuple(v for _, v in assignment))
        s = self._servers_cache.get(key)
        if s is None:
            s = build_servers(config, self.profile, self.service, self.n_gpus, assignment=assignment,
                              rows=self._rows)
            self._servers_cache[key] = s
        return s

    def _slice_ids(self, assignment: Assignment) -> tuple[str, ...]:
        """Slice ids of ``assignment`` on every GPU, GPU by GPU (cached per placement)."""
        key = tuple((s.profile, s.start) for s, _ in assignment)
        ids = self._ids_cache.get(key)
        if ids is None:
            ids = self._ids_cache[key] = tuple(slice_id(g, s) for g in range(self.n_gpus) for s, _ in assignment)
        return ids

    def _transition(self, configuration: Configuration, first: bool) -> tuple[Assignment, Servers, Transition]:
        """Slot assignment, servers and per-slice-id switching cost from the current assignment
        to ``configuration`` (cached: a policy switches among few configurations)."""
        key = (self._assignment_key, configuration, first)
        hit = self._transitions.get(key)
        if hit is not None:
            return hit
        previous = {(s.profile, s.start): v for s, v in self._assignment}
        assignment = slot_assignment(configuration, self.gpu, previous)
        servers = self._servers_for(configuration, assignment)  # validates (slice, variant)
        switch = self._switch_cost
        cost = [switch(previous.get((slc.profile, slc.start)), variant, first) for slc, variant in assignment]
        costs = tuple(zip(self._slice_ids(assignment), cost * self.n_gpus))
        if len(self._transitions) >= _TRANSITIONS_MAX:
            self._transitions.clear()
        self._transitions[key] = (assignment, servers, costs)
        return assignment, servers, costs

    def _key_of(self, configuration: Configuration, assignment: Assignment) -> tuple:
        """Hashable stand-in of what is served (the transition cache's key)."""
        return (configuration, tuple(v for _, v in assignment))

    def _switch_cost(self, old: str | None, variant: str, first: bool) -> float:
        """Downtime (s) of a slice that served ``old`` (None: a new placement) and now serves
        ``variant`` (the rules in the module docstring; kept per (old, variant, first): the profile's
        figures are read once)."""
        key = (old, variant, first)
        c = self._costs.get(key)
        if c is None:
            dt = self.profile.downtime
            c = self._costs[key] = switch_cost(
                old, variant, first=first, enabled=self.reconfiguration, load_s=self._load_s,
                partition_s=self.profile.partition_change_s,
                make_before_break_s=dt.switch_s if dt is not None and dt.make_before_break else None)
        return c

    def _load_s(self, variant: str) -> float:
        try:
            return float(self.profile.model_load_s[variant])
        except KeyError:
            raise ConfigError(f"profile has no model_load_s for variant {variant!r}") from None

    def _next_seed(self) -> int:
        """Run k gets sub-seed k of the backend's generator (drawn in blocks: cheap)."""
        if not self._seeds:
            self._seeds = self._rng.integers(0, 2**63 - 1, size=256).tolist()[::-1]
        return self._seeds.pop()

    # ------------------------------------------------------------------ protocol

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Switch every GPU to ``configuration``; downtime is charged in the next run."""
        self._alive()
        self._check_config(configuration)
        first = self._config is None
        assignment, servers, costs = self._transition(configuration, first)
        self._assignment, self._servers = assignment, servers
        self._assignment_key = self._key_of(configuration, assignment)
        return self._commit(configuration, costs)

    def run(self, seconds: float, rate_rps: float) -> IntervalMetrics:
        """Serve the current configuration for ``seconds`` at ``rate_rps`` Poisson arrivals."""
        self._alive()
        if self._servers is None:
            raise BackendError("no configuration applied to the replay backend; call apply() first")
        seconds = positive_number("seconds", seconds)
        rate = positive_number("rate_rps", rate_rps)
        if self.mode == "steady":
            servers = self._servers
            if not self._pending and rate < STEADY_MAX_RHO * servers.capacity_rps:
                key = (servers.key_id, rate, seconds)  # the same figures every time: kept
                m = self._steady_runs.get(key)
                if m is None:
                    if len(self._steady_runs) >= _TRANSITIONS_MAX:
                        self._steady_runs.clear()
                    m = self._steady_runs[key] = steady_state_servers(
                        servers, rate, timeout_s=self.timeout_s, n_requests=self.steady_requests).interval(seconds)
                return m
            metrics = disturbed_interval(self._servers, rate, seconds, self._pending, self.timeout_s,
                                         self.steady_requests)
            self._elapse(seconds)
            return metrics
        metrics = simulate(
            self._config, self.profile, self.service, self.n_gpus, rate, seconds, self._next_seed(),  # type: ignore[arg-type]
            downtime_s=self._pending, timeout_s=self.timeout_s, servers=self._servers,
        )
        self._elapse(seconds)
        return metrics

    def reseed(self, seed: int | None) -> None:
        """Restart the run-by-run sub-seed stream (the env calls this on reset)."""
        self._rng = np.random.default_rng(seed)
        self._seeds = []

    def close(self) -> None:
        super().close()
        self._servers_cache.clear()
        self._transitions.clear()
        self._ids_cache.clear()
        self._steady_runs.clear()

    # ------------------------------------------------------------------ extras for env/agents

    def servers(self, configuration: Configuration | None = None) -> Servers:
        """Resolved servers of ``configuration`` (default: the current one)."""
        if configuration is None:
            if self._servers is None:
                raise BackendError("no configuration applied to the replay backend; call apply() first")
            return self._servers
        self._check_config(configuration)
        return self._servers_for(configuration, slot_assignment(configuration, self.gpu))

    def capacity_rps(self, configuration: Configuration | None = None) -> float:
        """Saturation throughput of all GPUs: sum over slices of 1 / mean service time."""
        return self.servers(configuration).capacity_rps

    def steady_state(self, rate_rps: float, configuration: Configuration | None = None) -> SteadyState:
        """Cached long-run behaviour of ``configuration`` (default: current) at ``rate_rps``."""
        return steady_state_servers(self.servers(configuration), rate_rps, timeout_s=self.timeout_s,
                                    n_requests=self.steady_requests)
