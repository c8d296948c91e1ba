"""`clover-rl profile`: measure a profile file on live workers (CPU emulation or MIG GPUs)."""
from __future__ import annotations

from pathlib import Path

import typer

from clover_rl.commands.options import CpuScale, CpuThreads, Device, check_device
from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
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
    device: Device = "cpu",
    gpu: str = typer.Option("a100-40gb", help="GPU model (its MIG geometry; on cuda, the real board)"),
    variants: str | None = typer.Option(None, help="comma-separated variants (default: all)"),
    slices: str | None = typer.Option(None, help="comma-separated slice profiles, e.g. 1g,7g (default: all)"),
    configurations: str | None = typer.Option(
        None, help="semicolon-separated configurations to serve whole instead of one slice at a time, "
                   "e.g. '4g:b1,3g:b3;7g:b1' (slices sharing a CPU host are then measured with their contention)"),
    rates: str = typer.Option("1,2,4", help="comma-separated offered loads, requests/s"),
    duration: float = typer.Option(10.0, help="seconds per load level"),
    idle: float = typer.Option(2.0, help="seconds of idle metering for the idle power"),
    cpu_scale: CpuScale = 1.0,
    cpu_threads: CpuThreads = 1,
    image_size: int | None = typer.Option(None, help="image services: side of the images sent (default: the service's)"),
    overhead_sizes: str | None = typer.Option(
        None, help="image services: extra comma-separated image sides at which to measure the per-request overhead"),
    restart: bool = typer.Option(True, help="measure a worker restart (kills one worker once)"),
    seed: int = typer.Option(0, min=0),
) -> None:
    """Sweep variants x slice profiles x loads on live workers and write a profile file."""
    from clover_rl.commands.serve import setup_logging
    from clover_rl.serving.live.profiler import measure_profile

    check_device(device)
    if duration <= 0:
        raise ConfigError(f"--duration must be positive, got {duration}")
    from clover_rl.paths import writable_dir

    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give the profile file to write")
    writable_dir(out.parent, "--out")  # before the sweep, so no measurement is lost
    svc = load_service(service)
    gpu_model = get_gpu(gpu)
    configs = ([parse_configuration(c.strip(), gpu_model, svc.variant_names) for c in configurations.split(";")
                if c.strip()] if configurations else None)
    sizes = [int(x) for x in _floats("overhead-sizes", overhead_sizes)] if overhead_sizes else []
    setup_logging()
    opts = {"image_size": image_size} if image_size else {}
    prof = measure_profile(
        svc, gpu_model, device=device, variants=_names(variants), slices=_names(slices), configurations=configs,
        rates=_floats("rates", rates), duration_s=duration, idle_s=idle, cpu_scale=cpu_scale,
        cpu_threads=cpu_threads, overhead_image_sizes=sizes, measure_restart=restart, seed=seed,
        progress=lambda m: print(m, flush=True), **opts,
    )
    path = prof.save(out)
    print(f"wrote {path}: {len(prof.entries)} entries, idle {prof.idle_power_w:.1f} W; {prof.method}")
    for p in prof.overhead.points if prof.overhead else ():
        print(f"overhead at {p.payload_bytes} B: front end mean {p.frontend.mean_ms:.2f} ms, dispatch mean "
              f"{p.dispatch.mean_ms:.2f} ms, client extra mean {p.client.mean_ms:.2f} ms (n={p.samples}, measured)")
    if prof.downtime:
        d = prof.downtime
        print(f"reconfiguration: make-before-break {str(d.make_before_break).lower()}, switch downtime "
              f"{d.switch_s:.2f} s, worker restart {d.worker_restart_s:.2f} s, model load "
              f"{', '.join(f'{v} {s:.1f} s' for v, s in prof.model_load_s.items())} "
              f"({'estimated' if d.estimated else 'measured'})")


def register(app: typer.Typer) -> None:
    app.command("profile")(profile)
