"""Exceptions whose message is a complete one-line explanation for the user.

The CLI prints ``str(err)`` and exits non-zero for any :class:`CloverError`, so every
raise site must name the file/field/value at fault.
"""
from __future__ import annotations


class CloverError(Exception):
    """Base class: a user-facing, one-line error."""


class ConfigError(CloverError, ValueError):
    """Bad configuration, scenario, service or profile file, or a bad CLI value."""


class TraceError(CloverError, ValueError):
    """A carbon-intensity or request-rate trace that cannot be used as given."""


class CheckpointError(CloverError, ValueError):
    """A checkpoint that is missing, corrupt, or does not match the environment."""


class BackendError(CloverError, RuntimeError):
    """A serving backend failed (reconfiguration, worker, NVML)."""


def positive_number(label: str, x: object) -> float:
    """A finite positive float, or a ConfigError ``<label> must be a positive number, got <x>``."""
    import math

    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{label} must be a positive number, got {x!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ConfigError(f"{label} must be a positive number, got {x!r}")
    return v
