"""`clover-rl deploy`: serve a scenario's service and control it live with a policy."""
from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import typer

from clover_rl.commands.options import CpuScale, CpuThreads, Device


def deploy(
    scenario: str = typer.Option(..., "--scenario", help="shipped scenario name or YAML path"),
    policy: str = typer.Option(..., "--policy", help="a run folder / model.zip (trained policy), or clover, base, "
                                                     "greedy-carbon, oracle, random"),
    carbon: str = typer.Option(..., "--carbon", help="carbon source: electricitymaps:ZONE, watttime:REGION, "
                                                     "ukgrid[:REGION], file:PATH[,speed=N]"),
    device: Device = "cpu",
    interval: str = typer.Option("1h", "--interval", help="control interval, e.g. 1h, 10m, 30s"),
    duration: str | None = typer.Option(None, "--duration", help="stop after this long (default: until Ctrl-C)"),
    port: int = typer.Option(8000, "--port", help="KServe v2 front end port (0 = any free port)"),
    host: str = typer.Option("127.0.0.1", "--host", help="address the front end listens on"),
    state: Path | None = typer.Option(None, "--state", help="state folder (default: ./deploy_state/<scenario>)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and log, never reconfigure after start-up"),
    learn: bool = typer.Option(False, "--learn", help="fine-tune the MaskablePPO policy online"),
    learn_every: int = typer.Option(8, "--learn-every", help="live transitions per PPO update"),
    safe_config: str = typer.Option("base", "--safe-config", help="the SLA guard's safe configuration"),
    guard_windows: int = typer.Option(3, "--guard-windows", help="consecutive SLA-violating windows that trigger the guard"),
    guard_window: str | None = typer.Option(None, "--guard-window", help="measurement window (default: interval/4, <= 60s)"),
    guard_recover: int | None = typer.Option(None, "--guard-recover", help="good windows before the guard releases"),
    probe: str | None = typer.Option(None, "--probe", help="probe window of online optimizers (default: scenario's)"),
    gpus: int | None = typer.Option(None, "--gpus", help="GPU count (default: the scenario's)"),
    models: str = typer.Option("real", "--models", help="real, or emulated (profiled delays; no model compute)"),
    load: str | None = typer.Option(None, "--load", metavar="RPS|scenario",
                                    help="also offer load: Poisson at RPS req/s, or the scenario's workload"),
    mig: bool = typer.Option(True, "--mig/--no-mig", help="cuda: MIG slices, or whole GPUs only (MIG mode untouched)"),
    cpu_scale: CpuScale = 1.0,
    cpu_threads: CpuThreads = 1,
    deadline: str = typer.Option("2x", "--deadline", help="default request deadline: a multiple of the SLA (2x) "
                                 "or a duration (800ms); overloaded requests are refused with 503 at once"),
    drain_grace: str = typer.Option("30s", "--drain-grace", help="on SIGTERM: time accepted requests get to finish"),
    seed: int = typer.Option(0, "--seed", min=0, help="seed of policies, learner and load generator"),
    fresh: bool = typer.Option(False, "--fresh", help="start a new deployment: move an existing --state folder "
                                                      "aside to STATE.<UTC time> instead of resuming it"),
    verbose: bool = typer.Option(False, "--verbose", help="serving-plane log lines (workers starting, ...)"),
    ray: str | None = typer.Option(None, "--ray", metavar="auto|ADDRESS",
                                   help="serve on a Ray fleet: join this cluster (auto: the local one); needs "
                                        "the 'ray' extra (docs/ray.md)"),
    max_down: float = typer.Option(0.25, "--max-down", help="--ray or a fleet scenario: largest share of the "
                                   "fleet's GPUs reconfiguring at once (at least one)"),
    mig_backend: str = typer.Option("nvml", "--mig-backend", metavar="nvml|gpu-operator",
                                    help="--ray --device cuda: who changes MIG on the nodes: NVML, or the "
                                         "Kubernetes GPU operator's MIG manager (whole node, minutes; docs/ray.md)"),
) -> None:
    """Start the KServe v2 front end and a control loop that reconfigures it every interval."""
    from clover_rl.controller.deployment import Deployment, DeploySettings
    from clover_rl.controller.durations import parse_duration
    from clover_rl.controller.loop import ControllerOptions
    from clover_rl.errors import CloverError, ConfigError

    interval_s = parse_duration(interval, "--interval")
    duration_s = parse_duration(duration, "--duration") if duration is not None else None
    window_s = parse_duration(guard_window, "--guard-window") if guard_window is not None else None
    probe_s = parse_duration(probe, "--probe") if probe is not None else None
    if mig_backend != "nvml" and ray is None:
        raise ConfigError(f"--mig-backend {mig_backend}: only with --ray (the node agents own MIG)")
    if learn_every < 2:
        raise ConfigError(f"--learn-every must be >= 2, got {learn_every}")
    load_rps = None
    if load is not None and load.strip().lower() != "scenario":
        try:
            load_rps = float(load)
        except ValueError:
            raise ConfigError(f"--load must be a request rate (req/s) or 'scenario', got {load!r}") from None
        if not load_rps > 0:
            raise ConfigError(f"--load must be a positive request rate, got {load}")
    state_dir = state if state is not None else Path("deploy_state") / Path(scenario).stem
    _fresh_or_resume(Path(state_dir).expanduser(), fresh)
    opts = ControllerOptions(interval_s=interval_s, duration_s=duration_s, dry_run=dry_run,
                             guard_windows=guard_windows, guard_window_s=window_s, guard_recover=guard_recover,
                             safe_config=safe_config, probe_s=probe_s, seed=seed, learn=learn,
                             learn_every=learn_every)
    settings = DeploySettings(scenario=scenario, policy=policy, carbon=carbon, state_dir=str(state_dir), device=device,
                              port=port, host=host, models=models, gpus=gpus, load_rps=load_rps,
                              load_workload=load is not None and load_rps is None, cpu_scale=cpu_scale,
                              cpu_threads=cpu_threads, mig=mig, options=opts,
                              load_image_size=32 if models == "emulated" else None, deadline=deadline,
                              drain_grace_s=parse_duration(drain_grace, "--drain-grace", allow_zero=True),
                              max_down=max_down)
    if load_rps is not None:
        _warn_capacity(scenario, load_rps, gpus)
    if ray is not None:
        from clover_rl.serving.ray import require_ray

        require_ray()  # the one-line error naming the extra, before anything starts
        from clover_rl.serving.ray.deploy import RayDeployment, RaySettings

        dep: Deployment = RayDeployment(settings, RaySettings(address=ray, max_down_fraction=max_down,
                                                              mig_backend=mig_backend),
                                        echo=lambda t: print(t, flush=True))
    else:
        dep = Deployment(settings, echo=lambda t: print(t, flush=True))
    _setup_logging(verbose)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        dep.run(stop)
    finally:
        dep.close()
        for sig, h in previous.items():
            signal.signal(sig, h)
    if dep.load_totals is not None:
        print(f"load generator: {dep.load_totals.line()} (every request, in intervals or not)", flush=True)
    try:
        from clover_rl.controller.report import closing_line, load_report

        print(closing_line(load_report(state_dir)), flush=True)
    except CloverError:
        pass  # nothing logged yet (stopped during start-up)
    print(f"state: {state_dir} (clover-rl report --state {state_dir}; "
          f"tensorboard --logdir {state_dir}/tb)", file=sys.stdout, flush=True)


def _warn_capacity(scenario: str, load: float, gpus: int | None) -> None:
    """Warn when --load is beyond what the start/safe configuration (BASE) can serve."""
    from clover_rl.mig.config import base_configuration
    from clover_rl.scenario import load_scenario
    from clover_rl.serving.capacity import capacity_rps, capacity_warning

    sc = load_scenario(scenario)
    if sc.is_llm:
        return  # capacity in tokens: no request-service profile to check against
    svc, gpu = sc.service_spec(), sc.gpu_model()
    n = gpus or sc.gpus
    base = base_configuration(gpu, svc.variant_names)
    warn = capacity_warning(load, capacity_rps(base, sc.load_profile(), svc, n),
                            f"BASE ({base.label()} x{n}, the start and SLA-guard configuration)")
    if warn:
        print(warn, file=sys.stderr, flush=True)


def _fresh_or_resume(state_dir: Path, fresh: bool) -> None:
    """Say that an existing state folder is resumed (the default), or move it aside (--fresh)."""
    from clover_rl.controller.state import LOG_FILE, STATE_FILE, read_log
    from clover_rl.errors import ConfigError

    if not ((state_dir / STATE_FILE).exists() or (state_dir / LOG_FILE).exists()):
        return
    if fresh:
        from datetime import datetime, timezone

        aside = state_dir.with_name(f"{state_dir.name}.{datetime.now(timezone.utc):%Y%m%d-%H%M%S}")
        try:
            state_dir.rename(aside)
        except OSError as e:
            raise ConfigError(f"--fresh: cannot move {state_dir} aside to {aside} ({e.strerror})") from None
        print(f"--fresh: moved the previous deployment's state to {aside}", flush=True)
        return
    log = state_dir / LOG_FILE
    done = len({r.get("index") for r in read_log(log, "interval")}) if log.exists() else 0
    print(f"resuming the deployment in {state_dir} ({done} interval(s) so far: configuration, carbon "
          f"trace position and counters continue); --fresh starts a new one", flush=True)


def _setup_logging(verbose: bool) -> None:
    """Serving-plane warnings (INFO with --verbose: workers starting, reconfigurations)."""
    import logging

    live = logging.INFO if verbose else logging.WARNING
    for name, level in (("clover_rl.serving.live", live), ("clover_rl.controller", logging.WARNING)):
        lg = logging.getLogger(name)
        if not lg.handlers:
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
            lg.addHandler(h)
            lg.setLevel(level)
            lg.propagate = False


def register(app: typer.Typer) -> None:
    app.command("deploy")(deploy)
