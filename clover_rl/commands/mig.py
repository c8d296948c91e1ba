"""`clover-rl mig ...`: MIG geometry queries (no GPU needed)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from clover_rl.mig.catalog import GPUS, get_gpu
from clover_rl.mig.config import enumerate_configurations, parse_configuration
from clover_rl.mig.migparted import as_configuration, from_mig_parted, to_mig_parted
from clover_rl.mig.partition import enumerate_partitions, slice_multisets
from clover_rl.services import load_service

mig_app = typer.Typer(help="MIG geometry: partitions, configurations, mig-parted export/import.",
                      no_args_is_help=True)
_GPU_HELP = f"GPU model ({', '.join(GPUS)})"


@mig_app.command("partitions")
def partitions(
    gpu: str = typer.Option("a100-40gb", help=_GPU_HELP),
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


@mig_app.command("import")
def import_(
    file: Path = typer.Argument(..., help="NVIDIA mig-parted config YAML (e.g. its config-default.yaml)"),
    name: str | None = typer.Option(None, "--name", help="one config of the file (default: all)"),
    gpu: str = typer.Option("a100-40gb", help=_GPU_HELP),
    variant: str | None = typer.Option(None, help="print each layout as a configuration with "
                                                  "this variant on every slice"),
    service: str = typer.Option("efficientnet", help="service whose variants --variant names"),
    as_json: bool = typer.Option(False, "--json", help="print JSON (the allowed set)"),
) -> None:
    """Read mig-parted layouts as partitions of one GPU, checked against its MIG rules."""
    g = get_gpu(gpu)
    layouts = from_mig_parted(file, g, name)
    if variant is not None:
        variants = load_service(service).variant_names
        if variant not in variants:
            from clover_rl.errors import ConfigError

            raise ConfigError(f"--variant: unknown variant {variant!r} of {service} "
                              f"(known: {', '.join(variants)})")
    rows = []
    for lay in layouts:
        row = {"name": lay.name, "gpu": g.name, "devices": lay.devices,
               "profiles": list(lay.profiles),
               "placements": [f"{s.profile}@{s.start}" for s in lay.partition.slices]}
        if variant is not None:
            row["configuration"] = as_configuration(lay, g, variant).label()
        rows.append(row)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        conf = f"  -> {r['configuration']}" if "configuration" in r else ""
        print(f"{r['name']}: {'+'.join(r['profiles'])}  ({' '.join(r['placements'])}){conf}")


def register(app: typer.Typer) -> None:
    app.add_typer(mig_app, name="mig")
