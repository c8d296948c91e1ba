"""`clover-rl serve`: run the live serving plane (KServe v2 front end + workers) until stopped."""
from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import typer

from clover_rl.commands.options import CpuScale, CpuThreads, Device, check_device
from clover_rl.errors import BackendError, ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import Configuration, base_configuration, parse_configuration
from clover_rl.scenario import load_scenario
from clover_rl.services import load_service


def setup_logging() -> None:
    """Show the live plane's INFO lines (worker start-up, random weights, reconfigurations)."""
    lg = logging.getLogger("clover_rl.serving.live")
    if not lg.handlers:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        lg.addHandler(h)
        lg.setLevel(logging.INFO)
        lg.propagate = False


def _scenario_defaults(scenario: str | None) -> dict[str, Any]:
    if scenario is None:
        return {}
    s = load_scenario(scenario)
    return {"service": s.service, "gpu": s.gpu, "gpus": s.gpus, "timeout": s.timeout_s}


def serve(
    scenario: str | None = typer.Option(None, help="scenario name or YAML (service, GPU model and count)"),
    service: str | None = typer.Option(None, help="service name or YAML path (overrides the scenario's)"),
    gpu: str | None = typer.Option(None, help="GPU model (default: the scenario's, else a100-40gb)"),
    gpus: int | None = typer.Option(None, help="number of GPUs, each serving the configuration"),
    device: Device = "cpu",
    config: str | None = typer.Option(None, help="slices of one GPU, e.g. 4g:b1,3g:b3 (default: BASE)"),
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="HTTP port (0 = any free port)"),
    cpu_scale: CpuScale = 1.0,
    cpu_threads: CpuThreads = 1,
    max_batch: int = typer.Option(8, help="LLM services: continuous-batch seats per whole GPU"),
    engine: str | None = typer.Option(None, help="LLM services: tiny (CPU stand-in) or vllm (default: by --device)"),
    model_path: str | None = typer.Option(None, help="LLM services with vllm: model path/repo instead of the variant's"),
) -> None:
    """Serve a configuration over KServe v2 HTTP (metrics at /metrics) until SIGINT/SIGTERM.

    LLM services (--service llm) answer the OpenAI API at /v1 and KServe v2 generate."""
    from clover_rl.serving.live.llm_plane import is_llm_service

    check_device(device)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be 0..65535, got {port}")
    d = _scenario_defaults(scenario)
    svc_name = service or d.get("service")
    if svc_name is None:
        raise ConfigError("give --service or --scenario")
    llm = is_llm_service(svc_name)
    if llm:
        from clover_rl.llm.catalog import load_llm_service

        svc: Any = load_llm_service(svc_name)
    else:
        svc = load_service(svc_name)
    gpu_model = get_gpu(gpu or d.get("gpu") or "a100-40gb")
    n = gpus if gpus is not None else int(d.get("gpus") or 1)
    if n < 1:
        raise ConfigError(f"--gpus must be >= 1, got {n}")
    cfg = (parse_configuration(config, gpu_model, svc.variant_names) if config
           else base_configuration(gpu_model, svc.variant_names))
    setup_logging()
    common: dict[str, Any] = {"host": host, "cpu_scale": cpu_scale, "cpu_threads": cpu_threads}
    if d.get("timeout"):
        common["max_queue_wait_s"] = d["timeout"]

    def start() -> Any:
        if llm:
            from clover_rl.serving.live.llm_plane import LLMPlane

            return LLMPlane(svc, gpu_model, n, device, port, max_batch=max_batch, engine=engine,
                            model_path=model_path, **common)
        from clover_rl.serving.live.backend import LiveBackend

        return LiveBackend(svc, gpu_model, n, device, port, **common)

    def banner(url: str) -> str:
        apis = (f"OpenAI API at {url}/v1, model {svc.name!r}; KServe v2 generate at {url}/v2/models/{svc.name}/generate"
                if llm else "KServe v2")
        return (f"serving {svc.name} as {cfg.label()} on {n} x {gpu_model.name} ({device}) at {url} "
                f"({apis}; metrics at {url}/metrics); Ctrl-C to stop")

    _serve_until_stopped(start, cfg, banner)


def _serve_until_stopped(start: Callable[[], Any], cfg: Configuration, banner: Callable[[str], str]) -> None:
    """Start a plane (vision ``LiveBackend`` or ``LLMPlane``), serve ``cfg`` until SIGINT/SIGTERM,
    then let accepted requests finish (up to 30 s) and stop the workers."""
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    plane = None
    try:
        plane = start()
        rep = plane.apply(cfg)
        if not rep.ok:
            raise BackendError(f"cannot serve {cfg.label()}: {rep.message}")
        print(banner(plane.url), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        if plane is not None:
            left = plane.pool.drain(30.0)  # readiness false, accepted requests finish
            plane.close()
            print("stopped: workers shut down" + (f" ({left} requests unanswered after 30 s)" if left else ""),
                  flush=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
