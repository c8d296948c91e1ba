"""Published carbon-intensity file layouts, their units, and unit plausibility.

Recognised from the header (CSV) or the record fields (JSON):

* **Electricity Maps** portal export (2023-): ``Datetime (UTC)``, ..., ``Carbon Intensity
  gCO₂eq/kWh (direct)``, ``Carbon Intensity gCO₂eq/kWh (LCA)``, ... in g/kWh. Life-cycle
  (LCA) is read by default, as the Electricity Maps API does by default
  (``emissionFactorType=lifecycle``); ``column=direct`` picks direct emissions. ASCII
  ``gCO2eq`` spellings are accepted.
* **Electricity Maps** older dumps: ``datetime``, ..., ``carbon_intensity_avg`` (g/kWh).
* **WattTime** historical MOER (v2 CSV and v3 JSON): ``point_time``, ``value`` in lbs/MWh.
* **SGIP** MOER signal files: ``time``/``timestamp``, ``moer``, ``f1`` .. ``f36`` (the 5-min
  forecasts) in kg CO2/kWh.
* **GB carbonintensity.org.uk** API JSON (``data[].from/to/intensity.forecast/actual``) and
  its CSV flattening (``from``, ``to``, ``forecast``, ``actual``, ``index``): ``actual`` by
  default, ``forecast`` where no actual is published yet; ``column=forecast`` picks forecasts.

Plausibility: a grid's hourly intensity peaks somewhere between a few and ~1,500 g/kWh
(coal plants emit ~1,000 g/kWh; Electricity Maps' dirtiest zones stay under 1,200). A file
whose maximum, read in the given or assumed unit, is <= :data:`MIN_PLAUSIBLE_MAX` or above
:data:`MAX_PLAUSIBLE_MAX` g/kWh is refused with the unit it most likely is in.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from clover_rl.errors import TraceError

MIN_PLAUSIBLE_MAX = 2.0  # g/kWh: a maximum at or below this is kg/kWh or t/MWh read as grams
MAX_PLAUSIBLE_MAX = 2500.0  # g/kWh: above any grid's hourly intensity (lbs/MWh read as grams)


@dataclass(frozen=True)
class Layout:
    """A recognised published layout: which columns to read, in which unit."""

    name: str  # "Electricity Maps export"
    time_column: str
    value_column: str  # the default pick
    unit: str  # the publisher's unit (a key of trace.UNIT_FACTORS)
    choices: dict[str, str] = field(default_factory=dict)  # column=<key> -> header name
    fallback_column: str | None = None  # fills rows whose value is empty
    note: str = ""  # why the default, and how to choose another

    def column_for(self, wanted: str | None) -> str:
        """The header name for ``column=<wanted>`` (a choice key or a header name)."""
        if wanted is None:
            return self.value_column
        return self.choices.get(wanted.strip().lower(), wanted)

    def describe(self, column: str) -> str:
        """One clause for provenance and output: layout, column read, how to choose."""
        key = next((k for k, v in self.choices.items() if v == column), None)
        others = [f"column={k} for {k}" for k, v in self.choices.items()
                  if v != column and k not in _ALIASES]
        why = "; ".join(([f"{key}{' by default' if column == self.value_column else ''}"]
                         if key else []) + others)
        return f"{self.name}, column {column!r}" + (f" ({why})" if why else "")


_ALIASES = {"lifecycle", "life-cycle"}


def _key(h: str) -> str:
    return " ".join(h.replace("₂", "2").strip().lower().split())


def _find(header: list[str], pattern: str) -> str | None:
    rx = re.compile(pattern)
    return next((h for h in header if rx.search(_key(h))), None)


def detect_layout(header: list[str]) -> Layout | None:
    """The published layout a header belongs to, or None (then generic column rules apply)."""
    keys = {_key(h): h for h in header}
    lca = _find(header, r"carbon.?intensity.*\b(lca|life.?cycle)\b")
    direct = _find(header, r"carbon.?intensity.*\bdirect\b")
    t_em = keys.get("datetime (utc)") or keys.get("datetime") or keys.get("datetime_utc")
    if t_em and (lca or direct):
        choices = {k: v for k, v in (("lca", lca), ("lifecycle", lca), ("life-cycle", lca),
                                     ("direct", direct)) if v}
        default = lca or direct
        assert default is not None
        return Layout("Electricity Maps export", t_em, default, "g/kWh", choices)
    if "carbon_intensity_avg" in keys and (t_em or "timestamp" in keys):
        return Layout("Electricity Maps export (older)", t_em or keys["timestamp"],
                      keys["carbon_intensity_avg"], "g/kWh", {"avg": keys["carbon_intensity_avg"]})
    if "point_time" in keys and "value" in keys:
        return Layout("WattTime MOER", keys["point_time"], keys["value"], "lbs/MWh",
                      {"value": keys["value"]})
    t_sgip = keys.get("time") or keys.get("timestamp")
    if "moer" in keys and "f1" in keys and t_sgip:
        return Layout("SGIP MOER", t_sgip, keys["moer"], "kg/kWh", {"moer": keys["moer"]})
    actual = keys.get("intensity.actual") or keys.get("actual")
    forecast = keys.get("intensity.forecast") or keys.get("forecast")
    if "from" in keys and (actual or forecast):
        choices = {k: v for k, v in (("actual", actual), ("forecast", forecast)) if v}
        default = actual or forecast
        assert default is not None
        return Layout("GB carbonintensity.org.uk", keys["from"], default, "g/kWh", choices,
                      fallback_column=forecast if default == actual else None)
    return None


def check_plausible(path: object, max_raw: float, unit: str, factor: float, given: bool,
                    factors: dict[str, float]) -> None:
    """Refuse a file whose maximum is implausible as g/kWh after reading it in ``unit``.

    ``max_raw`` is in file units; ``factors`` maps units to their g/kWh factor. The message
    names the unit the values most likely are in and the spec key that sets it.
    """
    g = max_raw * factor
    if MIN_PLAUSIBLE_MAX < g <= MAX_PLAUSIBLE_MAX:
        return
    fits = [u for u, f in factors.items()
            if u != unit and MIN_PLAUSIBLE_MAX < max_raw * f <= MAX_PLAUSIBLE_MAX]
    how = "given" if given else "assumed"
    likely = next((u for u in ("kg/kWh", "g/kWh", "lbs/MWh", "t/MWh") if u in fits), None)
    side = "all <=" if g <= MIN_PLAUSIBLE_MAX else "up to"
    edge = f"{MIN_PLAUSIBLE_MAX:g} g/kWh" if g <= MIN_PLAUSIBLE_MAX else f"{g:.4g} g/kWh"
    fix = (f"; they look like {likely}: add ',unit={likely}' to the trace "
           f"(e.g. --carbon-trace 'FILE,unit={likely}')") if likely else ""
    raise TraceError(f"{path}: values are {side} {edge} when read as {unit} ({how}; max "
                     f"{max_raw:g}), implausible for grid intensity{fix}")
