"""`clover-rl serve --service llm`: the LLM serving plane (OpenAI + KServe v2 generate) until stopped."""
from __future__ import annotations

import signal
import threading

from clover_rl.errors import BackendError, ConfigError


def serve_llm(service: str, gpu: str, gpus: int, device: str, config: str | None, host: str, port: int,
              cpu_scale: float, cpu_threads: int, max_batch: int, engine: str | None, model_path: str | None) -> None:
    """Start an :class:`~clover_rl.serving.live.llm_plane.LLMPlane` serving ``config`` (default:
    BASE, the largest variant on whole GPUs) and block until SIGINT/SIGTERM."""
    from clover_rl.llm.catalog import load_llm_service
    from clover_rl.mig.catalog import get_gpu
    from clover_rl.mig.config import base_configuration, parse_configuration
    from clover_rl.serving.live.llm_plane import LLMPlane

    if gpus < 1:
        raise ConfigError(f"--gpus must be >= 1, got {gpus}")
    svc = load_llm_service(service)
    gpu_model = get_gpu(gpu)
    cfg = (parse_configuration(config, gpu_model, svc.variant_names) if config
           else base_configuration(gpu_model, svc.variant_names))
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    plane = None
    try:
        plane = LLMPlane(svc, gpu_model, gpus, device, port, host=host, cpu_scale=cpu_scale, cpu_threads=cpu_threads,
                         max_batch=max_batch, engine=engine, model_path=model_path)
        rep = plane.apply(cfg)
        if not rep.ok:
            raise BackendError(f"cannot serve {cfg.label()}: {rep.message}")
        print(f"serving {svc.name} as {cfg.label()} on {gpus} x {gpu_model.name} ({device}) at {plane.url} "
              f"(OpenAI API at {plane.url}/v1, model {svc.name!r}; KServe v2 generate at "
              f"{plane.url}/v2/models/{svc.name}/generate; metrics at {plane.url}/metrics); Ctrl-C to stop", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for sig, h in handlers.items():
            signal.signal(sig, h)
        if plane is not None:
            left = plane.close(drain_s=30.0)
            print("stopped: workers shut down" + (f" ({left} requests unanswered after 30 s)" if left else ""),
                  flush=True)
