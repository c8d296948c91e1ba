"""Request-rate trace files: formats and the same one-line validation as carbon traces."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError, TraceError
from clover_rl.workload.rate_trace import load_rate_trace


def test_timestamped_and_single_column(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("timestamp,rate_rps\n2021-03-01T00:00Z,1.5\n2021-03-01T00:15Z,2\n")
    tr = load_rate_trace(p)
    assert list(tr.values) == [1.5, 2.0] and tr.resolution_s == 900.0 and tr.name == "r"
    q = tmp_path / "q.csv"
    q.write_text("requests\n60\n120\n")
    tr = load_rate_trace(q, units="rpm", interval_s=60)
    np.testing.assert_allclose(tr.values, [1.0, 2.0])
    assert tr.resolution_s == 60.0


@pytest.mark.parametrize("body,match", [
    ("rate_rps\n1\n\n3\n", "line 3: empty request rate"),
    ("rate_rps\n1\nnan\n", "line 3: NaN request rate"),
    ("rate_rps\n1\n-3\n", "line 3: negative request rate -3"),
    ("rate_rps\n1\nlots\n", "line 3: non-numeric request rate 'lots'"),
    ("timestamp,rate_rps\n2021-03-01T01:00Z,1\n2021-03-01T00:00Z,1\n", "line 3: .* rows must be sorted"),
    ("timestamp,rate_rps\n2021-03-01T01:00Z,1\n2021-03-01T01:00Z,1\n", "line 3: duplicate timestamp"),
    ("timestamp,rate_rps\n2021-03-01T00:00Z,1\n2021-03-01T01:00Z,1\n2021-03-02T00:00Z,1\n",
     "line 4: gap of 22 missing steps"),
    ("", "empty file"),
])
def test_bad_rate_files(tmp_path, body, match):
    p = tmp_path / "r.csv"
    p.write_text(body)
    with pytest.raises(TraceError, match=match) as e:
        load_rate_trace(p)
    assert str(p) in str(e.value)


def test_missing_file_and_bad_units(tmp_path):
    with pytest.raises(TraceError, match="file not found"):
        load_rate_trace(tmp_path / "none.csv")
    with pytest.raises(ConfigError, match="units: expected a rate unit rps, rpm or rph"):
        load_rate_trace(tmp_path / "none.csv", units="rpd")
