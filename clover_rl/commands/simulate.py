"""`clover-rl simulate`: serve one configuration on the replay backend and print its figures."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import typer

from clover_rl.errors import ConfigError
from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import parse_configuration
from clover_rl.scoring import carbon_g
from clover_rl.services import load_service
from clover_rl.serving.profile import load_default_profile, load_profile
from clover_rl.serving.simulator import simulate as run_simulation


def _positive(name: str, value: float) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--{name} must be positive, got {value}")
    return value


def simulate(
    service: str = typer.Option(..., help="service name or YAML path"),
    config: str = typer.Option(..., help="slices of one GPU as PROFILE:VARIANT pairs, applied to every GPU"),
    rate: float = typer.Option(..., help="mean Poisson arrival rate, requests/s"),
    duration: float = typer.Option(600.0, help="simulated seconds"),
    gpu: str | None = typer.Option(None, help="GPU model (default: the profile's, else a100-40gb)"),
    gpus: int = typer.Option(1, help="number of GPUs (each runs the configuration)"),
    seed: int = typer.Option(0, min=0),
    profile: Path | None = typer.Option(None, help="profile file (default: the shipped estimate)"),
    carbon_intensity: float | None = typer.Option(None, help="g CO2/kWh, to report carbon"),
    pue: float = typer.Option(1.0, help="power usage effectiveness multiplier"),
    timeout: float = typer.Option(30.0, help="queued requests are dropped after this wait (s)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Simulate a configuration under Poisson load: latency, energy, accuracy (and carbon)."""
    _positive("rate", rate)
    _positive("duration", duration)
    if gpus < 1:
        raise ConfigError(f"--gpus must be >= 1, got {gpus}")
    if pue < 1:
        raise ConfigError(f"--pue must be >= 1, got {pue}")
    if carbon_intensity is not None and (carbon_intensity < 0 or not math.isfinite(carbon_intensity)):
        raise ConfigError(f"--carbon-intensity must be non-negative, got {carbon_intensity}")
    svc = load_service(service)
    if profile is not None:
        prof = load_profile(profile)
        gpu_model = get_gpu(gpu or prof.gpu)
        if prof.gpu != gpu_model.name:
            raise ConfigError(f"profile {profile} is for {prof.gpu}, not {gpu_model.name}")
        if prof.service != svc.name:
            raise ConfigError(f"profile {profile} is for service {prof.service}, not {svc.name}")
    else:
        gpu_model = get_gpu(gpu or "a100-40gb")
        prof = load_default_profile(svc.name, gpu_model.name)
    cfg = parse_configuration(config, gpu_model, svc.variant_names)
    from clover_rl.serving.capacity import capacity_rps, capacity_warning

    cap = capacity_rps(cfg, prof, svc, gpus)
    warn = capacity_warning(rate, cap, f"{cfg.label()} x{gpus} on {gpu_model.name}")
    if warn:
        print(warn, file=sys.stderr)
    m = run_simulation(cfg, prof, svc, gpus, rate, duration, seed, timeout_s=timeout)
    out = {
        "service": svc.name,
        "gpu": gpu_model.name,
        "gpus": gpus,
        "config": cfg.label(),
        "rate_rps": rate,
        "duration_s": duration,
        "p50_ms": m.p50_ms,
        "p95_ms": m.p95_ms,
        "p99_ms": m.p99_ms,
        "served": m.served,
        "dropped": m.dropped,
        "throughput_rps": m.throughput_rps,
        "energy_j": m.energy_j,
        "energy_per_request_j": m.energy_per_request_j,
        "accuracy": m.accuracy,
        "utilization": m.utilization,
        "capacity_rps": cap,
        "profile": prof.label(),
        "figures": prof.figures(),  # latency / energy: measured or estimated
    }
    if carbon_intensity is not None:
        c = carbon_g(m.energy_j, carbon_intensity, pue)
        out["carbon_g"] = c
        out["carbon_per_request_g"] = c / m.served if m.served else None
    if as_json:
        print(json.dumps(out, indent=2))
        return
    print(f"{svc.name} {cfg.label()} x{gpus} {gpu_model.name} @ {rate:g} req/s for {duration:g} s "
          f"(profile: {prof.label()})")
    figs = prof.figures()
    kind = {"p50_ms": "latency", "p95_ms": "latency", "p99_ms": "latency", "energy_j": "energy",
            "energy_per_request_j": "energy", "carbon_g": "energy", "carbon_per_request_g": "energy"}
    for k in ("p50_ms", "p95_ms", "p99_ms", "served", "dropped", "throughput_rps", "energy_j",
              "energy_per_request_j", "accuracy", "carbon_g", "carbon_per_request_g"):
        if k in out:
            v = out[k]
            text = f"{v:.4g}" if isinstance(v, float) else f"{v}"
            how = figs.get(kind.get(k, ""), "")
            print(f"  {k:22s} {text}" + (f"  ({how})" if how else ""))
    print("  utilization            " + ", ".join(f"{k}={u:.2f}" for k, u in m.utilization.items()))


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
