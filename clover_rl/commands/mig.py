"""`clover-rl mig ...`: MIG geometry queries (no GPU needed)."""
from __future__ import annotations

import json

import typer

from clover_rl.mig.catalog import get_gpu
from clover_rl.mig.config import enumerate_configurations, parse_configuration, to_mig_parted
from clover_rl.mig.partition import enumerate_partitions, slice_multisets
from clover_rl.services import load_service

mig_app = typer.Typer(help="MIG geometry: partitions, configurations, mig-parted export.", no_args_is_help=True)


@mig_app.command("partitions")
def partitions(
    gpu: str = typer.Option("a100-40gb", help="GPU model (a100-40gb, a100-80gb, h100-80gb, h200-141gb)"),
    extended: bool = typer.Option(False, help="include +me and double-memory 1g profiles"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """List the valid maximal partitions with their placements."""
    g = get_gpu(gpu)
    parts = enumerate_partitions(g, extended)
    if as_json:
        out = {
            "gpu": g.name,
            "partitions": [
                [{"profile": s.profile, "start": s.start, "size": s.size} for s in p.slices] for p in parts
            ],
            "multisets": [list(m) for m in slice_multisets(g, extended)],
        }
        print(json.dumps(out, indent=2))
        return
    print(f"{g.name}: {len(parts)} placement-distinct maximal partitions, "
          f"{len(slice_multisets(g, extended))} distinct slice multisets")
    for i, p in enumerate(parts):
        print(f"{i:3d}  " + "  ".join(f"{s.profile}@{s.start}" for s in p.slices))


@mig_app.command("configs")
def configs(
    gpu: str = typer.Option("a100-40gb"),
    service: str = typer.Option(..., help="service name or YAML path"),
    count: bool = typer.Option(False, "--count", help="print only the number of unique configurations"),
) -> None:
    """Unique configurations (partition + variant per slice, canonical graph form)."""
    g = get_gpu(gpu)
    svc = load_service(service)
    cfgs = enumerate_configurations(g, svc.variant_names)
    if count:
        print(len(cfgs))
        return
    for i, c in enumerate(cfgs):
        print(f"{i:5d}  {c.label()}")


@mig_app.command("export")
def export(
    config: str = typer.Option(..., help="slices of one GPU as PROFILE:VARIANT pairs, e.g. 4g:b7,3g:b5"),
    gpu: str = typer.Option("a100-40gb"),
    service: str = typer.Option("efficientnet", help="service whose variants the config names"),
    name: str = typer.Option("clover", help="mig-parted config name"),
) -> None:
    """Print an NVIDIA mig-parted config (YAML) for a configuration."""
    g = get_gpu(gpu)
    cfg = parse_configuration(config, g, load_service(service).variant_names)
    print(to_mig_parted({name: cfg}, g), end="")


def register(app: typer.Typer) -> None:
    app.add_typer(mig_app, name="mig")
