"""The two simulator kernels (linear scans, heaps) give bit-identical results."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.serving import kernel
from clover_rl.serving.simulator import LEVELS, service_draws


def _run(fn, arr, u, q, avail, timeout):  # type: ignore[no-untyped-def]
    n, s = arr.shape[0], q.shape[0]
    lat, srv = np.empty(n), np.empty(n, dtype=np.int64)
    busy, count = np.zeros(s), np.zeros(s, dtype=np.int64)
    last = fn(arr, *service_draws(u), q, avail, timeout, lat, srv, busy, count)
    return last, lat, srv, busy, count


@pytest.mark.parametrize("n_servers", [1, 3, 7, 14, 40])
@pytest.mark.parametrize("rho", [0.3, 0.9, 1.6])
def test_scan_and_heap_kernels_agree(n_servers: int, rho: float) -> None:
    rng = np.random.default_rng(n_servers * 100 + int(rho * 10))
    base = np.sort(rng.uniform(0.01, 0.5, n_servers))
    base[n_servers // 2:] = base[0]  # equal means: the tie rule decides
    q = base[:, None] * np.linspace(0.5, 2.0, LEVELS.shape[0])[None, :]
    cap = float(np.sum(1.0 / q.mean(axis=1)))
    arr = np.cumsum(rng.exponential(1.0 / (rho * cap), 3000))
    arr[100:110] = arr[100]  # simultaneous arrivals
    u = rng.random(arr.shape[0])
    avail = np.where(rng.random(n_servers) < 0.4, rng.uniform(0, 5.0, n_servers), 0.0)
    a = _run(kernel._scan_kernel, arr, u, q, avail, 0.3)
    b = _run(kernel._heap_kernel, arr, u, q, avail, 0.3)
    assert a[0] == b[0]
    for x, y in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(x, y)
    if rho > 1:
        assert (a[2] < 0).any()  # timeouts exercised
