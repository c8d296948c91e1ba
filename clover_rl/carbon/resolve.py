"""Turn whatever a user passes as "the carbon trace" into a CarbonTrace at the control interval.

One spec everywhere a trace is named (``--carbon-trace``, ``traces show``, a scenario's
``carbon:`` block, training ``env_kwargs``, ``env.reset(options={"trace": ...})`` and the
``file:`` deploy source)::

    NAME[:PERIOD] | PATH [,column=NAME] [,time_column=NAME] [,unit=UNIT]

e.g. ``em_DE_2023_hourly.csv,column=direct`` or ``moer.csv.gz,unit=kg/kWh``. ``column`` is
a header name or a layout's choice (``lca``/``direct`` for Electricity Maps, ``forecast`` for
GB); ``unit`` one of g/kWh, kg/kWh, t/MWh, lbs/MWh. Mappings with the same keys (plus
``trace`` or ``path``) are accepted where YAML or Python passes structures, so the same words
work in every place. Commas not followed by ``key=`` stay in the path.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from clover_rl.carbon.base import CarbonTrace
from clover_rl.errors import ConfigError, TraceError

#: spec key -> TraceSpec field (aliases accepted for the words other inputs use)
KEYS = {"column": "column", "value_column": "column", "time_column": "time_column",
        "time-column": "time_column", "unit": "unit", "units": "unit"}
_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)\s*=(.*)$")


@dataclass(frozen=True)
class TraceSpec:
    """A trace reference: shipped name or path, plus how to read a file."""

    source: str
    column: str | None = None
    time_column: str | None = None
    unit: str | None = None

    def __str__(self) -> str:
        opts = [f"{k}={v}" for k, v in (("column", self.column), ("time_column", self.time_column),
                                        ("unit", self.unit)) if v]
        return ",".join([self.source, *opts])

    def load_kwargs(self) -> dict[str, str]:
        """Keyword arguments of :func:`~clover_rl.carbon.trace.load_trace`."""
        return {k: v for k, v in (("value_column", self.column), ("time_column", self.time_column),
                                  ("units", self.unit)) if v}


def split_options(text: str, where: str) -> tuple[str, dict[str, object]]:
    """``PATH,k=v,...`` -> (PATH, {k: v}); commas not followed by ``k=`` stay in PATH."""
    parts = text.split(",")
    head = [parts[0]]
    opts: dict[str, object] = {}
    for part in parts[1:]:
        m = _OPTION.match(part)
        if m:
            opts[m.group(1).lower()] = m.group(2).strip()
        elif opts:
            raise ConfigError(f"{where} {text!r}: expected key=value after the path, got {part!r}")
        else:
            head.append(part)
    return ",".join(head).strip(), opts


def parse_trace_spec(spec: str | Path | Mapping | TraceSpec, where: str = "carbon trace") -> TraceSpec:
    """A :class:`TraceSpec` from a spec string, a path, a mapping, or itself.

    Raises :class:`ConfigError` naming an unknown key (with the valid ones) or a missing path.
    """
    if isinstance(spec, TraceSpec):
        return spec
    if isinstance(spec, Path):
        return TraceSpec(str(spec))
    if isinstance(spec, Mapping):
        fields = dict(spec)
        src = fields.pop("trace", None) or fields.pop("path", None)
        if not isinstance(src, (str, Path)) or not str(src).strip():
            raise ConfigError(f"{where}: needs 'trace' (a shipped name or a file path), got {spec!r}")
        text, opts = str(src), {}
        if isinstance(src, str) and not Path(src).expanduser().exists():
            text, opts = split_options(src, where)  # "x.csv,unit=kg/kWh" inside a mapping too
        opts.update({str(k).lower(): v for k, v in fields.items() if v is not None})
    elif isinstance(spec, str):
        if not spec.strip():
            raise ConfigError(f"{where}: empty; expected a shipped name or a file path")
        if Path(spec).expanduser().exists():
            return TraceSpec(spec)  # a path that happens to contain ",k=v"
        text, opts = split_options(spec, where)
    else:
        raise ConfigError(f"{where}: expected a trace name, path or mapping, got {type(spec).__name__}")
    out: dict[str, str] = {}
    for k, v in opts.items():
        if k not in KEYS:
            raise ConfigError(f"{where} {text!r}: unknown option {k!r} (valid: column, time_column, unit)")
        if not isinstance(v, str) or not v.strip():
            raise ConfigError(f"{where} {text!r}: {k} must be a non-empty string, got {v!r}")
        out[KEYS[k]] = v.strip()
    if "unit" in out:
        from clover_rl.carbon.trace import canonical_units

        try:
            out["unit"] = canonical_units(out["unit"])
        except ConfigError as e:
            raise ConfigError(f"{where} {text!r}: {e}") from None
    return TraceSpec(text, **out)


def resolve_trace(spec: str | Path | Mapping | TraceSpec | CarbonTrace, period: str = "all",
                  interval_s: float | None = None) -> CarbonTrace:
    """A CarbonTrace from a trace, a spec (module doc) or mapping, at ``interval_s``.

    A shipped name takes ``period`` (or its own ``:PERIOD``); a file is used whole.
    """
    from clover_rl.carbon.shipped import list_shipped, load_shipped
    from clover_rl.carbon.trace import load_trace, resample

    if isinstance(spec, CarbonTrace):
        trace = spec
    else:
        ts = parse_trace_spec(spec)
        base, _, per = ts.source.partition(":")
        p = Path(ts.source).expanduser()
        shipped = list_shipped()
        if not p.exists() and base in shipped:
            if ts.load_kwargs():
                raise ConfigError(f"carbon trace {ts.source!r}: column/time_column/unit apply to "
                                  "files, not shipped traces")
            trace = load_shipped(base, per or period)  # type: ignore[arg-type]
        elif not p.exists():
            raise TraceError(f"carbon trace not found: {ts.source} (shipped: {', '.join(shipped)}; "
                             "or a file path)")
        else:
            trace = load_trace(p, **ts.load_kwargs())  # type: ignore[arg-type]
    if interval_s is not None and abs(trace.resolution_s - interval_s) > 1e-6:
        trace = resample(trace, interval_s)
    if len(trace) < 1:
        raise TraceError(f"carbon trace {trace.name} is empty")
    return trace
