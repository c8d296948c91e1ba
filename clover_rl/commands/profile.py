"""`clover-rl profile`: measure a profile file on live workers (CPU emulation or MIG GPUs)."""
from __future__ import annotations

from pathlib import Path

import typer

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.services import load_service


def _floats(name: str, text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--{name}: expected comma-separated numbers, got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise ConfigError(f"--{name}: expected positive numbers, got {text!r}")
    return vals


def _names(text: str | None) -> list[str] | None:
    return [x.strip() for x in text.split(",") if x.strip()] if text else None


def profile(
    service: str = typer.Option(..., help="service name or YAML path"),
    out: Path = typer.Option(..., "--out", help="profile YAML to write"),
    device: str = typer.Option("cpu", help="cpu (emulated slices) or cuda (MIG slices through NVML)"),
    gpu: str = typer.Option("a100-40gb", help="GPU model (its MIG geometry; on cuda, the real board)"),
    variants: str | None = typer.Option(None, help="comma-separated variants (default: all)"),
    slices: str | None = typer.Option(None, help="comma-separated slice profiles, e.g. 1g,7g (default: all)"),
    rates: str = typer.Option("1,2,4", help="comma-separated offered loads, requests/s"),
    duration: float = typer.Option(10.0, help="seconds per load level"),
    idle: float = typer.Option(2.0, help="seconds of idle metering for the idle power"),
    cpu_scale: float = typer.Option(1.0, help="CPU mode: scale inputs (resolution / sequence length) by this"),
    cpu_threads: int = typer.Option(1, help="CPU mode: torch threads per worker"),
    seed: int = typer.Option(0),
) -> None:
    """Sweep variants x slice profiles x loads on live workers and write a profile file."""
    from clover_rl.commands.serve import setup_logging
    from clover_rl.serving.live.profiler import measure_profile

    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
    if duration <= 0:
        raise ConfigError(f"--duration must be positive, got {duration}")
    svc = load_service(service)
    gpu_model = get_gpu(gpu)
    setup_logging()
    prof = measure_profile(
        svc, gpu_model, device=device, variants=_names(variants), slices=_names(slices),
        rates=_floats("rates", rates), duration_s=duration, idle_s=idle, cpu_scale=cpu_scale,
        cpu_threads=cpu_threads, seed=seed, progress=lambda m: print(m, flush=True),
    )
    path = prof.save(out)
    print(f"wrote {path}: {len(prof.entries)} entries, idle {prof.idle_power_w:.1f} W; {prof.method}")


def register(app: typer.Typer) -> None:
    if any(c.name == "profile" for c in app.registered_commands):
        return  # main() may be called repeatedly in one process (tests)
    app.command("profile")(profile)
