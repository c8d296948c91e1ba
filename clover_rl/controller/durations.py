"""Durations on the command line (``--interval 1h``, ``--duration 90s``, ``1h30m``).

Typed as text because an operator thinks in "every hour for two days", not in seconds; a
bare number means seconds. Anything else is a one-line :class:`ConfigError` naming the flag.
"""
from __future__ import annotations

import math
import re

from clover_rl.errors import ConfigError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|min|s|m|h|d)?", re.IGNORECASE)


def parse_duration(text: str | float, what: str = "duration", *, allow_zero: bool = False) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``5m``, ``1.5h``, ``2d``, ``1h30m``."""
    if isinstance(text, bool):
        raise ConfigError(f"{what}: expected a duration like 30s, 5m or 1h, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().lower()
        pos, value, parts = 0, 0.0, 0
        while pos < len(s):
            m = _PART.match(s, pos)
            if not m or (m.group(2) is None and m.end() != len(s)) or (m.group(2) is None and parts):
                raise ConfigError(f"{what}: expected a duration like 30s, 5m, 1h or 1h30m, got {text!r}")
            value += float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]
            parts += 1
            pos = m.end()
            while pos < len(s) and s[pos] == " ":
                pos += 1
        if parts == 0:
            raise ConfigError(f"{what}: expected a duration like 30s, 5m or 1h, got {text!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{what}: must be a positive duration, got {text!r}")
    return value


def format_duration(seconds: float) -> str:
    """Short human form (``1h``, ``90s``, ``2m30s``) for console lines."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    if seconds >= 60:
        m, s = divmod(seconds, 60)
        return f"{int(m)}m{s:g}s"
    return f"{seconds:g}s"
