"""--interval / --duration parsing: suffixes, compounds, and one-line errors naming the flag."""
from __future__ import annotations

import pytest

from clover_rl.controller.durations import format_duration, parse_duration
from clover_rl.errors import ConfigError


@pytest.mark.parametrize("text,seconds", [
    ("90", 90.0), ("90s", 90.0), ("5m", 300.0), ("1h", 3600.0), ("1.5h", 5400.0), ("2d", 172800.0),
    ("1h30m", 5400.0), ("1h 30m 15s", 5415.0), ("250ms", 0.25), (" 10M ", 600.0), ("10min", 600.0),
    (.5, 0.5), (3600, 3600.0),
])
def test_accepted(text, seconds):
    assert parse_duration(text, "--interval") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "1x", "h", "-5m", "0", "0s", "5m10", "1..2h", "inf", "nan", True])
def test_rejected_with_the_flag_named(text):
    with pytest.raises(ConfigError, match=r"^--duration: ") as e:
        parse_duration(text, "--duration")
    assert "\n" not in str(e.value)


def test_zero_allowed_when_asked():
    assert parse_duration("0s", "x", allow_zero=True) == 0.0


@pytest.mark.parametrize("s,text", [(3600, "1h"), (600, "10m"), (90, "1m30s"), (10, "10s"), (0.5, "0.5s")])
def test_format(s, text):
    assert format_duration(s) == text
