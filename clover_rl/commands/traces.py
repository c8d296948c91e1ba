"""`clover-rl traces ...`: inspect carbon-intensity traces (files or shipped) and synthesise."""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import typer

from clover_rl.carbon.shipped import PERIODS
from clover_rl.carbon.synth import SHAPES, synthesize
from clover_rl.carbon.trace import save_trace, summarize
from clover_rl.errors import ConfigError

traces_app = typer.Typer(help="Carbon-intensity traces: inspect, list shipped, synthesise.",
                         no_args_is_help=True)


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)


def _human(d: dict) -> str:
    def num(x: float | None) -> str:
        return "-" if x is None else f"{x:.1f}"

    res = d["resolution_s"]
    res_s = f"{res / 3600:g} h" if res >= 3600 and res % 3600 == 0 else f"{res:g} s"
    lines = [
        f"name:        {d['name']}{'  (synthetic)' if d['synthetic'] else ''}",
        f"span:        {d['start']} .. {d['end']}  ({d['n']} samples, {d['duration_h']:g} h)",
        f"resolution:  {res_s}",
        (f"g/kWh:       min {num(d['min'])}  mean {num(d['mean'])}  max {num(d['max'])}  "
         f"std {num(d['std'])}"),
        f"gaps:        {d['gaps']} missing, {d['interpolated_steps']} interpolated",
        f"provenance:  {d['provenance'] or '-'}",
    ]
    return "\n".join(lines)


@traces_app.command("show")
def show(
    source: str = typer.Argument(..., metavar="SOURCE",
                                 help="shipped name (caiso_pge, caiso_pge:eval) or a file, optionally "
                                      "FILE,column=C,time_column=T,unit=U as everywhere a trace is named"),
    period: str = typer.Option("all", help="train, eval or all (per grid: `traces list`); shipped traces only"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Summarise a trace: span, resolution, min/mean/max, gaps, provenance (layout and unit read)."""
    from clover_rl.carbon.resolve import resolve_trace

    if period not in PERIODS:
        raise ConfigError(f"--period: expected one of {', '.join(PERIODS)} (got {period!r})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trace = resolve_trace(source, period)
    _print_warnings(caught)
    d = summarize(trace)
    print(json.dumps(d, indent=2) if as_json else _human(d))


@traces_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """Shipped traces (real data; see clover_rl/carbon/data/ATTRIBUTION.md); = `clover-rl list traces`."""
    from clover_rl.commands.list import list_cmd as list_any

    list_any("traces", as_json)


@traces_app.command("synth")
def synth(
    shape: str = typer.Option("solar", help=f"one of {', '.join(SHAPES)}"),
    days: int = typer.Option(7, help="length in days (hourly samples)"),
    seed: int = typer.Option(0, help="random seed"),
    out: Path = typer.Option(..., "--out", help="CSV to write (.gz compresses)"),
    mean: float | None = typer.Option(
        None, help="the shape's base level, g/kWh (the realised mean differs by the shape's skew)"),
    amplitude: float | None = typer.Option(None, help="size of the daily/weather swings, g/kWh"),
    noise: float | None = typer.Option(None, help="hourly noise std, g/kWh"),
    start: str = typer.Option("2021-01-01T00:00:00Z", help="first timestamp (UTC)"),
) -> None:
    """Write a seeded synthetic trace (marked synthetic in the file)."""
    trace = synthesize(shape, days, seed, mean=mean, amplitude=amplitude, noise=noise,  # type: ignore[arg-type]
                       start=start)
    path = save_trace(trace, out)
    d = summarize(trace)
    # The file's provenance names the parameters (mean= is the base level); say which is which.
    print(f"wrote {path}: {d['n']} hourly samples, {d['start']} .. {d['end']}\n"
          f"  realised g/kWh: min {d['min']:.1f}, mean {d['mean']:.1f}, max {d['max']:.1f}\n"
          f"  {trace.provenance} (mean= is the base level the shape is built around)")


def register(app: typer.Typer) -> None:
    if any(getattr(g, "name", None) == "traces" for g in getattr(app, "registered_groups", [])):
        return  # main() may be called repeatedly in one process (tests)
    app.add_typer(traces_app, name="traces")
