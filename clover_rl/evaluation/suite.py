"""The benchmark suite: fixed, versioned cases (scenario x grid x period x load x objective).

Every case is a window that training and model selection never see: a held-out grid (``se``,
``dk``, ``gb``, ``gr``: whole traces never trained on), the ``eval`` period (last year) of a
training grid, or a synthetic shape with a seed that training does not draw (training draws
``synthesize`` seeds from its own generator; the suite's seeds sit above ``2**31``). The
windows are 48 hourly intervals, enough for two daily cycles and cheap enough that the whole
suite runs in minutes on two cores.

Changing a case changes the suite: bump :data:`SUITE_VERSION`, so results of different
versions are never compared silently.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import ConfigError

SUITE_VERSION = "v4"  # v2: v1's 18 cases unchanged + 3 LLM (A100) cases; v3: + 2 LLM H100 cases;
#                      v4: + 2 fleet cases (efficientnet-fleet: 8 GPUs, 2 nodes, a configuration per GPU)
Load = Literal["constant", "diurnal"]
DIURNAL_AMPLITUDE = 0.3  # +-30% around the scenario's nominal rate, peak at 14:00 UTC
SYNTH_SEED0 = 2**31 + 1000  # above any seed training draws for synthetic traces


@dataclass(frozen=True)
class Case:
    """One suite case. ``grid``: a shipped grid name or ``synth:<shape>:<seed>``; ``period``:
    the shipped period (``eval`` always: held-out grids' eval period is the whole trace);
    ``start``: the first interval (UTC date); ``load``: the request-rate pattern."""

    name: str
    scenario: str
    grid: str
    start: str
    load: Load = "constant"
    period: str = "eval"
    hours: int = 48

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _c(scenario: str, grid: str, start: str, load: Load = "constant") -> Case:
    g = grid.split(":")[1] if grid.startswith("synth:") else grid
    return Case(f"{scenario}/{g}/{load}", scenario, grid, start, load)


SUITE: tuple[Case, ...] = (
    _c("efficientnet", "se", "2018-06-11"),           # hydro/nuclear ~50 g/kWh: accuracy is cheap
    _c("efficientnet", "dk", "2019-11-04"),           # wind-driven swings
    _c("efficientnet", "gr", "2018-05-14"),           # lignite with a solar midday dip
    _c("efficientnet", "caiso_pge", "2021-04-05"),    # marginal, curtailment zeros (eval year)
    _c("efficientnet", "dk", "2019-03-11", "diurnal"),
    _c("efficientnet", "gb", "2019-02-11", "diurnal"),
    _c("efficientnet", f"synth:wind:{SYNTH_SEED0 + 1}", "2023-01-02"),
    _c("yolo", "se", "2018-06-11"),
    _c("yolo", "dk", "2019-11-04"),
    _c("yolo", "gr", "2018-05-14", "diurnal"),
    _c("albert", "se", "2018-06-11"),
    _c("albert", "dk", "2019-11-04"),
    _c("albert", "pl", "2020-01-20", "diurnal"),      # coal ~700 g/kWh (eval year)
    _c("albert", f"synth:solar:{SYNTH_SEED0 + 2}", "2023-01-02"),
    _c("efficientnet-budget", "dk", "2019-11-04", "diurnal"),
    _c("efficientnet-budget", "gr", "2018-05-14", "diurnal"),
    _c("efficientnet-floor", "se", "2018-06-11", "diurnal"),
    _c("efficientnet-floor", "pl", "2020-01-20", "diurnal"),
    # LLM services (Llama 3.x x precision; tokens as the unit of work, TTFT and TPOT SLAs)
    _c("llm", "se", "2018-06-11"),
    _c("llm", "dk", "2019-11-04", "diurnal"),
    _c("llm", "caiso_pge", "2021-04-05"),
    _c("llm-h100", "gr", "2018-05-14", "diurnal"),   # v3
    _c("llm-h100", "pl", "2020-01-20", "diurnal"),   # v3
    # a fleet: 8 GPUs on 2 nodes with a configuration per GPU (clover_rl.fleet), v4
    _c("efficientnet-fleet", "dk", "2019-11-04"),
    _c("efficientnet-fleet", "gr", "2018-05-14", "diurnal"),
)


def select_cases(patterns: list[str] | None) -> list[Case]:
    """Cases whose name contains any of ``patterns`` (all without); ConfigError if none match."""
    if not patterns:
        return list(SUITE)
    out = [c for c in SUITE if any(p in c.name for p in patterns)]
    if not out:
        raise ConfigError(f"--case {', '.join(patterns)}: matches no case (see clover-rl benchmark --list)")
    return out


def case_trace(case: Case) -> CarbonTrace:
    """The case's carbon trace (whole ``period``; the window is cut by :func:`case_start`)."""
    if case.grid.startswith("synth:"):
        from clover_rl.carbon.synth import synthesize

        _, shape, seed = case.grid.split(":")
        return synthesize(shape, case.hours // 24 + 3, int(seed), start=case.start)  # type: ignore[arg-type]
    from clover_rl.carbon.shipped import load_shipped

    return load_shipped(case.grid, case.period)  # type: ignore[arg-type]


def case_start(case: Case, trace: CarbonTrace) -> int:
    """Index of the case's first interval in ``trace``; ConfigError when the window is outside."""
    i = int(np.searchsorted(trace.times, np.datetime64(case.start)))
    if i + case.hours > len(trace) or i >= len(trace) or trace.times[i] != np.datetime64(case.start):
        raise ConfigError(f"case {case.name}: window {case.start} + {case.hours} h is outside "
                          f"{trace.name} ({trace.times[0]} .. {trace.times[-1]})")
    return i


def case_workload(case: Case, nominal_rps: float) -> dict[str, Any]:
    """The scenario workload override of the case's load pattern around ``nominal_rps``."""
    if case.load == "constant":
        return {"kind": "constant", "rate_rps": nominal_rps}
    if case.load == "diurnal":
        return {"kind": "diurnal", "mean_rps": nominal_rps, "amplitude": DIURNAL_AMPLITUDE, "peak_hour": 14.0}
    raise ConfigError(f"case {case.name}: unknown load pattern {case.load!r}")
