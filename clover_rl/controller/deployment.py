"""A whole deployment: the live serving plane, the supervised controller and optional load.

Used by ``clover-rl deploy``, the live tests and ``benchmarks/fault_injection.py`` so all three
run exactly the same assembly:

    LiveBackend (KServe v2 front end on --port, worker pool, meter)
      -> LivePlane (measures what the service served; profile energy when emulated)
      -> PlaneHost  <== RPC ==>  controller process (Controller over RemotePlane)
    + ControllerCollector on the front end's Prometheus registry
    + SteadyLoad (--load RPS), started once the service is up
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clover_rl.controller.load import LoadTotals, SteadyLoad
from clover_rl.controller.loop import ControllerOptions
from clover_rl.controller.supervisor import (
    ControllerSpec,
    Supervisor,
    echo_flush,
    make_carbon_source,
)
from clover_rl.errors import CloverError, ConfigError
from clover_rl.serving.live.placement import check_device

log = logging.getLogger("clover_rl.controller")

MODELS = ("real", "emulated")


@dataclass
class DeploySettings:
    scenario: str
    policy: str
    carbon: str
    state_dir: str
    device: str = "cpu"
    port: int = 8000
    host: str = "127.0.0.1"
    models: str = "real"
    gpus: int | None = None
    load_rps: float | None = None
    load_workload: bool = False  # offer the scenario's workload (deploy --load scenario)
    load_image_size: int | None = None
    cpu_scale: float = 1.0
    cpu_threads: int = 1
    mig: bool = True  # CUDA: MIG slices (False: whole GPUs only, MIG mode left alone)
    options: ControllerOptions = field(default_factory=ControllerOptions)
    pool_options: dict[str, Any] = field(default_factory=dict)
    deadline: str = "2x"  # requests' default deadline: a multiple of the SLA ("2x") or a duration ("1.5s")
    drain_grace_s: float = 30.0  # SIGTERM: time accepted requests get to finish before exit
    max_down: float = 0.25  # fleet scenarios / Ray: largest share of the GPUs reconfiguring at once


def parse_deadline(text: str) -> tuple[float | None, float | None]:
    """``--deadline``: ``(sla_factor, None)`` for ``"2x"`` (twice the SLA), ``(None, seconds)``
    for a duration such as ``"800ms"`` or ``"1.5s"``; ConfigError otherwise."""
    from clover_rl.controller.durations import parse_duration

    t = str(text).strip().lower()
    if t.endswith("x"):
        try:
            f = float(t[:-1])
        except ValueError:
            f = float("nan")
        if not f > 0:
            raise ConfigError(f"--deadline: expected a multiple of the SLA like 2x, or a duration like 1.5s, got {text!r}")
        return f, None
    return None, parse_duration(text, "--deadline")


def check_policy_spec(policy: str, learn: bool) -> str:
    """Cheap checks before anything starts (the controller process loads the policy itself);
    returns the spec to use (a shipped checkpoint name resolved to its folder)."""
    from clover_rl.agents.registry import POLICY_NAMES
    from clover_rl.agents.sb3 import resolve_checkpoint

    key = policy.strip()
    if key.lower() in POLICY_NAMES:
        if learn:
            raise ConfigError(f"--learn needs a MaskablePPO run folder as --policy (got {key})")
        return key
    if "/" in key or "\\" in key or key.endswith(".zip") or Path(key).exists():
        run_dir, model = resolve_checkpoint(key)  # CheckpointError: missing folder / model.zip
    else:
        try:
            run_dir, model = resolve_checkpoint(key)  # a shipped checkpoints/<name>
        except CloverError:
            raise ConfigError(f"unknown policy {key!r} (known: {', '.join(POLICY_NAMES)}; or a run folder / "
                              "model.zip path)") from None
    # absolute: the controller process must find it whatever its working directory
    return str((model if key.endswith(".zip") else run_dir).resolve())


class Deployment:
    """Assemble, run and tear down one deployment (see the module docstring)."""

    def __init__(self, settings: DeploySettings, *, echo: Callable[[str], None] | None = print,
                 placement_wrapper: Callable[[Any], Any] | None = None) -> None:
        s = settings
        check_device(s.device)
        if s.models not in MODELS:
            raise ConfigError(f"--models must be one of {', '.join(MODELS)}, got {s.models!r}")
        if not 0 <= s.port <= 65535:
            raise ConfigError(f"--port must be 0..65535, got {s.port}")
        if s.gpus is not None and s.gpus < 1:
            raise ConfigError(f"--gpus must be >= 1, got {s.gpus}")
        self.deadline_factor, self.deadline_s = parse_deadline(s.deadline)
        if not s.drain_grace_s >= 0:
            raise ConfigError(f"--drain-grace must be >= 0 s, got {s.drain_grace_s}")
        self.settings = s
        self.echo = echo or (lambda _t: None)
        self.placement_wrapper = placement_wrapper
        from clover_rl.fleet.layout import resize_overrides
        from clover_rl.scenario import load_scenario

        base = load_scenario(s.scenario)  # --gpus on a fleet scenario: its fleet on one node of that many
        overrides = resize_overrides(base, [("local", s.gpus)]) if s.gpus not in (None, base.gpus) else {}
        self.scenario = load_scenario(base, **overrides)
        self.overrides = overrides
        make_carbon_source(s.carbon)  # a bad --carbon fails here, before anything starts
        self.policy = check_policy_spec(s.policy, s.options.learn)
        Path(s.state_dir).expanduser().mkdir(parents=True, exist_ok=True)
        self.backend: Any = None
        self.plane: Any = None
        self.placement: Any = None
        self.supervisor: Supervisor | None = None
        self.load: SteadyLoad | None = None
        self.load_totals: LoadTotals | None = None

    @property
    def url(self) -> str:
        return self.backend.url

    def start_serving(self) -> None:
        """Front end + worker pool (no configuration yet: the controller brings it up)."""
        from clover_rl.controller.emulate import ProfileEnergyModel, emulated_service
        from clover_rl.controller.plane import LivePlane
        from clover_rl.controller.telemetry import register_collector
        from clover_rl.serving.live.backend import LiveBackend
        from clover_rl.serving.live.placement import default_placement

        s, sc = self.settings, self.scenario
        service = sc.service_spec()
        gpu = sc.gpu_model()
        energy = None
        if s.models == "emulated" and not sc.is_llm:  # LLM services: refused in llm_serving
            profile = sc.load_profile()
            service = emulated_service(service, profile, gpu)
            energy = ProfileEnergyModel(profile, sc.gpus)
        self.service = service
        placement = default_placement(s.device, gpu, mig=s.mig)
        if self.placement_wrapper is not None:
            placement = self.placement_wrapper(placement)
        self.placement = placement
        pool = {"max_queue_wait_s": sc.timeout_s, "deadline_s": self.deadline_s, **s.pool_options}
        if sc.is_llm:  # OpenAI + KServe v2 generate front end, token metrics
            from clover_rl.controller.llm_live import llm_serving

            self.backend, self.plane = llm_serving(sc, s, gpu, placement, pool, self.deadline_factor)
        else:
            if sc.fleet is not None:  # a configuration per GPU, changed a few GPUs at a time
                from clover_rl.fleet.rolling import rolling_pool_class

                pool["pool_class"] = rolling_pool_class(sc, s.max_down)
            self.backend = LiveBackend(service, gpu, sc.gpus, s.device, s.port, host=s.host, cpu_scale=s.cpu_scale,
                                       cpu_threads=s.cpu_threads, placement=placement, **pool)
            # a deadline as a multiple of the SLA is set once the controller publishes the SLA
            self.plane = LivePlane(self.backend, energy_model=energy, timeout_s=sc.timeout_s,
                                   deadline_factor=self.deadline_factor)
        register_collector(self.backend.frontend.app.state.registry, lambda: self.plane.published)
        self.echo(f"KServe v2 front end on {self.backend.url} (model {service.name!r}; metrics at "
                  f"{self.backend.url}/metrics); {sc.gpus} x {gpu.name} on {s.device}"
                  + (", emulated models (profiled delays, profile energy: estimated)" if energy else ""))

    def start_controller(self) -> Supervisor:
        s = self.settings
        opts = s.options
        if s.device == "cuda" and not s.mig:
            opts = replace(opts, whole_gpu_only=True)
        # the builtin print (also once Ray's tqdm has replaced builtins.print: then the default
        # echo no longer pickles by name into the controller process)
        if opts.echo is print or (getattr(opts.echo, "__module__", None), getattr(opts.echo, "__qualname__", None)) \
                == ("builtins", "print"):
            opts = replace(opts, echo=echo_flush)
        spec = ControllerSpec(s.scenario, self.policy, s.carbon, str(Path(s.state_dir).expanduser()), opts,
                              carbon_start=self._carbon_origin(), overrides=self.overrides)
        self.supervisor = Supervisor(spec, self.plane, echo=self.echo)
        return self.supervisor

    def _carbon_origin(self) -> float:
        """When a replayed trace started: kept in the state folder so a restarted deployment
        continues the trace where it was instead of replaying it from its first sample."""
        import json

        path = Path(self.settings.state_dir).expanduser() / "carbon_origin.json"
        try:
            d = json.loads(path.read_text())
            if d.get("carbon") == self.settings.carbon:
                return float(d["start"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        t = time.time()
        from clover_rl.controller.state import atomic_write_text

        atomic_write_text(path, json.dumps({"carbon": self.settings.carbon, "start": t}) + "\n")
        return t

    def wait_until_serving(self, stop: threading.Event, timeout_s: float = 600.0) -> bool:
        """Until the controller has brought the service up (some configuration, a ready worker)."""
        deadline = time.time() + timeout_s
        while not stop.is_set() and time.time() < deadline:
            if self.backend.pool.configuration is not None and self.backend.pool.ready_count > 0:
                return True
            if self.supervisor is not None and self.supervisor.proc is not None and not self.supervisor.proc.is_alive():
                return False
            stop.wait(0.2)
        return False

    def start_load(self) -> None:
        s = self.settings
        if s.load_workload:
            from clover_rl.scenario import load_scenario

            w = load_scenario(s.scenario).build_workload()
            self.load = self._steady_load(w).start()
            self.echo(f"load generator: scenario workload ({w.describe()}) against {self.backend.url}")
        elif s.load_rps:
            self.load = self._steady_load(s.load_rps).start()
            self.echo(f"load generator: Poisson {s.load_rps:g} req/s against {self.backend.url}")

    def _steady_load(self, rate: Any) -> SteadyLoad:
        s, sc = self.settings, self.scenario
        if sc.is_llm:
            from clover_rl.controller.llm_live import LLMSteadyLoad

            return LLMSteadyLoad(self.backend.url, self.service, rate, self.backend.lengths, seed=s.options.seed)
        return SteadyLoad(self.backend.url, self.service, rate, seed=s.options.seed, image_size=s.load_image_size)

    def run(self, stop: threading.Event) -> int:
        """Serve and control until the duration ends or ``stop``; returns 0 on a clean end."""
        self.start_serving()
        sup = self.start_controller()
        result: dict[str, Any] = {}

        def supervise() -> None:
            try:
                result["code"] = sup.run(stop)
            except BaseException as e:
                result["error"] = e

        t = threading.Thread(target=supervise, name="clover-supervisor", daemon=True)
        t.start()
        if self.wait_until_serving(stop):
            self.start_load()
        while t.is_alive():
            t.join(0.2)
            if stop.is_set():  # SIGTERM: readiness false and no new requests at once, not after
                self._stop_load()  # the controller has saved its state; our own load first:
                self.backend.pool.begin_drain()  # its last requests are answered, not refused
        if "error" in result:
            raise result["error"]
        return int(result.get("code", 0))

    def _stop_load(self, drain_timeout_s: float = 120.0) -> None:
        if self.load is not None:
            self.load_totals = self.load.stop(drain_timeout_s)
            self.load = None

    def close(self, drain_timeout_s: float = 120.0) -> None:
        """Graceful stop (SIGTERM): our own load generator stops and its requests are answered;
        the pool stops admitting (readiness false, new requests 503) and every accepted request
        is answered within ``drain_grace_s``; the controller saves its state; then exit."""
        self._stop_load(drain_timeout_s)
        left = 0
        if self.backend is not None:
            left = self.backend.pool.drain(self.settings.drain_grace_s)
        if self.supervisor is not None:
            self.supervisor.terminate()
        if self.backend is not None:
            self.backend.close()
            self.backend = None
        if left:
            self.echo(f"drain: {left} accepted requests were still unanswered after {self.settings.drain_grace_s:g} s "
                      "(answered 503)")
