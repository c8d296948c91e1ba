"""``parse_source``: carbon-source spec strings (scenario files, CLI flags) to sources.

Grammar: ``KIND[:ARG][,key=value...]``, e.g. ``electricitymaps:DE``,
``watttime:CAISO_NORTH,ttl=120``, ``ukgrid``, ``ukgrid:13``,
``file:traces/ciso.csv,speed=60,end=hold``, ``file:moer.csv.gz,unit=kg/kWh,speed=60``, ``trace,speed=3600`` (with ``trace=`` given
as an override). Options in the string are strings converted per key; keyword overrides
are passed to the constructor as-is and win over string options, which is how tests and
programs inject ``transport``, ``sleep``, ``clock``, ``token`` or an in-memory trace.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from clover_rl.carbon.base import CarbonSource
from clover_rl.errors import ConfigError

Factory = Callable[[str, dict[str, Any]], CarbonSource]

# string option -> (constructor keyword, converter)
_HTTP_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "timeout": ("timeout_s", float),
    "ttl": ("cache_ttl_s", float),
    "failure_ttl": ("failure_ttl_s", float),
    "retries": ("retries", int),
    "base_url": ("base_url", str),
}
_REPLAY_OPTIONS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "speed": ("speed", str),  # validated by the source, to name the bad value verbatim
    "end": ("end", str),
}
# a file replay reads its trace like every other trace spec (clover_rl.carbon.resolve)
_FILE_OPTIONS = {**_REPLAY_OPTIONS, "column": ("column", str),
                 "time_column": ("time_column", str), "unit": ("unit", str)}


def _electricitymaps(arg: str, kw: dict[str, Any]) -> CarbonSource:
    from clover_rl.carbon.providers.electricitymaps import ElectricityMapsSource

    return ElectricityMapsSource(arg, **kw)


def _watttime(arg: str, kw: dict[str, Any]) -> CarbonSource:
    from clover_rl.carbon.providers.watttime import WattTimeSource

    return WattTimeSource(arg, **kw)


def _ukgrid(arg: str, kw: dict[str, Any]) -> CarbonSource:
    from clover_rl.carbon.providers.ukgrid import UkGridSource

    return UkGridSource(arg or None, **kw)


def _file(arg: str, kw: dict[str, Any]) -> CarbonSource:
    from clover_rl.carbon.providers.file import FileSource

    return FileSource(arg, **kw)


def _trace(arg: str, kw: dict[str, Any]) -> CarbonSource:
    from clover_rl.carbon.providers.file import TraceSource

    trace = kw.pop("trace", None)
    if trace is None:
        raise ConfigError("trace: needs an in-memory trace: parse_source('trace', trace=...)")
    if arg and "name" not in kw:
        kw["name"] = f"trace:{arg}"
    return TraceSource(trace, **kw)


_KINDS: dict[str, tuple[Factory, dict[str, tuple[str, Callable[[str], Any]]], bool]] = {
    # kind: (factory, string options, argument required)
    "electricitymaps": (_electricitymaps, _HTTP_OPTIONS, True),
    "watttime": (_watttime, _HTTP_OPTIONS, True),
    "ukgrid": (_ukgrid, _HTTP_OPTIONS, False),
    "file": (_file, _FILE_OPTIONS, True),
    "trace": (_trace, _REPLAY_OPTIONS, False),
}
_ARG_HINT = {
    "electricitymaps": "a zone, e.g. electricitymaps:DE",
    "watttime": "a region, e.g. watttime:CAISO_NORTH",
    "file": "a path, e.g. file:trace.csv,speed=60",
}


def kinds() -> tuple[str, ...]:
    """The spec kinds :func:`parse_source` understands."""
    return tuple(_KINDS)


def register_kind(kind: str, factory: Factory,
                  options: dict[str, tuple[str, Callable[[str], Any]]] | None = None,
                  needs_arg: bool = False) -> None:
    """Add a source kind (plugins, tests). ``factory(arg, kwargs) -> CarbonSource``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", kind):
        raise ValueError(f"bad carbon source kind {kind!r}")
    _KINDS[kind] = (factory, dict(options or {}), needs_arg)


_OPTION = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def _split(spec: str) -> tuple[str, str, list[tuple[str, str]]]:
    """``KIND[:ARG][,k=v...]`` -> (kind, arg, options). Commas not followed by ``k=`` stay
    in the argument, so paths with commas survive."""
    m = re.match(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*(.*)$", spec, re.DOTALL)
    if not m:
        raise ConfigError(f"carbon source {spec!r}: expected KIND[:ARG][,key=value...], "
                          f"KIND one of {', '.join(_KINDS)}")
    kind, rest = m.group(1).lower(), m.group(2)
    if rest.startswith(":"):
        rest = rest[1:]
    elif rest and not rest.startswith(","):
        raise ConfigError(f"carbon source {spec!r}: expected ':' or ',' after {kind!r}")
    parts = rest.split(",")
    arg_parts = [parts[0]]
    options: list[tuple[str, str]] = []
    for part in parts[1:]:
        om = _OPTION.match(part)
        if om:
            options.append((om.group(1).lower(), om.group(2).strip()))
        elif options:
            raise ConfigError(f"carbon source {spec!r}: expected key=value, got {part!r}")
        else:
            arg_parts.append(part)
    return kind, ",".join(arg_parts).strip(), options


def parse_source(spec: str, **overrides: Any) -> CarbonSource:
    """Build the carbon source a spec string names; :class:`ConfigError` if it cannot."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"carbon source: empty spec; expected one of "
                          f"{', '.join(k + ':...' for k in _KINDS)}")
    kind, arg, options = _split(spec)
    if kind not in _KINDS:
        raise ConfigError(f"carbon source {spec!r}: unknown kind {kind!r}; expected one of "
                          f"{', '.join(_KINDS)}")
    factory, known, needs_arg = _KINDS[kind]
    if needs_arg and not arg:
        raise ConfigError(f"carbon source {spec!r}: {kind} needs "
                          f"{_ARG_HINT.get(kind, 'an argument')}")
    kwargs: dict[str, Any] = {}
    for key, raw in options:
        if key not in known:
            valid = ", ".join(known) or "none"
            raise ConfigError(f"carbon source {spec!r}: unknown option {key!r} for {kind} "
                              f"(valid: {valid})")
        target, convert = known[key]
        try:
            kwargs[target] = convert(raw)
        except ValueError:
            raise ConfigError(f"carbon source {spec!r}: bad value for {key}: {raw!r}") from None
    kwargs.update(overrides)
    return factory(arg, kwargs)
