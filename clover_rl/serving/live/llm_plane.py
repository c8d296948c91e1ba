"""``LLMPlane``: LLM worker processes per (emulated) MIG slice behind the OpenAI + KServe v2
generate front end, with an energy meter -- what ``clover-rl serve --service llm`` runs.

Engines: ``tiny`` on ``device="cpu"`` (random-weight stand-ins that really generate byte
tokens, :mod:`.llm_engine`) and ``vllm`` on ``device="cuda"`` (one vLLM engine per MIG slice,
:mod:`.llm_vllm`; the optional ``vllm`` extra).
"""
from __future__ import annotations

import importlib.util
from typing import Any

from clover_rl.config_io import load_yaml_mapping
from clover_rl.errors import BackendError, ConfigError
from clover_rl.llm.catalog import LLMServiceSpec, load_llm_service
from clover_rl.mig.catalog import GpuModel, get_gpu
from clover_rl.mig.config import Configuration
from clover_rl.paths import resolve_named
from clover_rl.serving.backend import ReconfigReport
from clover_rl.serving.live.energy import EnergyMeter
from clover_rl.serving.live.llm_dispatch import LLMWorkerPool
from clover_rl.serving.live.llm_server import create_llm_app
from clover_rl.serving.live.placement import PlacementProvider, check_device, default_placement
from clover_rl.serving.live.realtime import apply_or_restore, start_front_end, stop_front_end

VLLM_MISSING = "vLLM is not installed: pip install 'clover-rl[vllm]' (needs NVIDIA GPUs)"


def is_llm_service(name_or_path: str) -> bool:
    """Whether a service name/path is an LLM service (``kind: llm``); False if it does not exist."""
    path = resolve_named("services", str(name_or_path))
    return path.exists() and load_yaml_mapping(path).get("kind") == "llm"


def default_engine(device: str) -> str:
    return "tiny" if device == "cpu" else "vllm"


def check_engine(engine: str, device: str) -> None:
    """ConfigError/BackendError (one line) for an engine that cannot run on ``device``."""
    if engine == "tiny" and device != "cpu":
        raise ConfigError("--engine tiny runs on the CPU only; use --engine vllm with --device cuda")
    if engine == "vllm":
        if device != "cuda":
            raise ConfigError("--engine vllm needs --device cuda (NVIDIA GPUs)")
        if importlib.util.find_spec("vllm") is None:
            raise BackendError(VLLM_MISSING)


class LLMPlane:
    """Real LLM serving: worker pool + front end + meter (see the module docstring).
    Extra keyword arguments go to :class:`~.pool.WorkerPool` (timeouts, deadline, queue)."""

    def __init__(self, service: LLMServiceSpec | str, gpu: GpuModel | str, n_gpus: int = 1, device: str = "cpu",
                 port: int = 0, *, host: str = "127.0.0.1", cpu_scale: float = 1.0, cpu_threads: int = 1,
                 max_batch: int = 8, engine: str | None = None, model_path: str | None = None,
                 placement: PlacementProvider | None = None, meter: EnergyMeter | None = None,
                 **pool_options: Any):
        check_device(device)
        if not (isinstance(cpu_scale, (int, float)) and cpu_scale > 0):
            raise ConfigError(f"--cpu-scale must be > 0, got {cpu_scale!r}")
        engine = engine or default_engine(device)
        check_engine(engine, device)
        if model_path is not None and engine != "vllm":
            raise ConfigError("--model-path applies to --engine vllm only (the tiny engine has random weights)")
        self.service = load_llm_service(service) if isinstance(service, str) else service
        self.gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
        self.device = device
        self.pool = LLMWorkerPool(self.service, self.gpu, n_gpus, placement or default_placement(device, self.gpu),
                                  input_scale=cpu_scale, cpu_threads=cpu_threads, max_batch=max_batch, engine=engine,
                                  model_path=model_path, **pool_options)
        self.meter, self.frontend = start_front_end(
            self.pool, lambda m: create_llm_app(self.pool, m, device=device), meter, device, n_gpus, host, port)

    @property
    def url(self) -> str:
        return self.frontend.url

    @property
    def configuration(self) -> Configuration | None:
        return self.pool.configuration

    def apply(self, configuration: Configuration) -> ReconfigReport:
        """Serve ``configuration`` (blocks until new workers are warm). The Backend contract, as
        ``LiveBackend.apply``: faults are reported, never raised, and the previous configuration
        is restored here on failure."""
        return apply_or_restore(self.pool, configuration)

    def close(self, drain_s: float = 0.0) -> int:
        """Stop: let accepted requests finish for up to ``drain_s``; returns how many were left."""
        left = self.pool.drain(drain_s) if drain_s > 0 else 0
        stop_front_end(self.frontend, self.pool, self.meter)
        return left

    def __enter__(self) -> LLMPlane:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
