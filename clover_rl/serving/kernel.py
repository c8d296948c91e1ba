"""The numba kernels of the replay simulator: one FCFS multi-server queue, request by request.

Semantics (documented in :mod:`clover_rl.serving.simulator`): one central FIFO; an arriving
request takes the idle server of lowest index (servers are in dispatch-priority order), else
waits for the server that frees first (lower index on equal times), unless that wait exceeds
the timeout (then it is dropped). Two implementations with identical results: linear scans
over the servers' free times (few servers: the common case, ~2x faster) and two binary heaps
(O(log servers) per request, for many GPUs).
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _serve(i: int, s: int, t: float, start: float, k: int, frac: float, quantiles: np.ndarray,
           latency: np.ndarray, server: np.ndarray, busy: np.ndarray, count: np.ndarray) -> float:
    """Request ``i`` (arrived at ``t``) served by server ``s`` from ``start``, its service time
    on segment ``k`` of the server's quantiles; recorded, returns its completion time."""
    svc = quantiles[s, k] + frac * (quantiles[s, k + 1] - quantiles[s, k])
    end = start + svc
    latency[i] = end - t
    server[i] = s
    busy[s] += svc
    count[s] += 1
    return end


@njit(cache=True, inline="always")
def _drop(i: int, latency: np.ndarray, server: np.ndarray) -> None:
    latency[i] = np.nan
    server[i] = -1


@njit(cache=True, inline="always")
def _busy_less(bt: np.ndarray, bs: np.ndarray, i: int, j: int) -> bool:
    return bt[i] < bt[j] or (bt[i] == bt[j] and bs[i] < bs[j])


@njit(cache=True)
def _busy_sift_down(bt: np.ndarray, bs: np.ndarray, n: int, i: int) -> None:
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and _busy_less(bt, bs, c + 1, c):
            c += 1
        if _busy_less(bt, bs, c, i):
            bt[i], bt[c] = bt[c], bt[i]
            bs[i], bs[c] = bs[c], bs[i]
            i = c
        else:
            return


@njit(cache=True)
def _busy_push(bt: np.ndarray, bs: np.ndarray, n: int, t: float, s: int) -> None:
    i = n
    bt[i] = t
    bs[i] = s
    while i > 0:
        p = (i - 1) // 2
        if _busy_less(bt, bs, i, p):
            bt[i], bt[p] = bt[p], bt[i]
            bs[i], bs[p] = bs[p], bs[i]
            i = p
        else:
            return


@njit(cache=True)
def _idle_push(h: np.ndarray, n: int, s: int) -> None:
    i = n
    h[i] = s
    while i > 0:
        p = (i - 1) // 2
        if h[i] < h[p]:
            h[i], h[p] = h[p], h[i]
            i = p
        else:
            return


@njit(cache=True)
def _idle_pop(h: np.ndarray, n: int) -> int:
    top = h[0]
    n -= 1
    h[0] = h[n]
    i = 0
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        if c + 1 < n and h[c + 1] < h[c]:
            c += 1
        if h[c] < h[i]:
            h[i], h[c] = h[c], h[i]
            i = c
        else:
            break
    return top


# Up to this many servers a linear scan over free times beats the two heaps (same results).
_SCAN_MAX_SERVERS = 32


@njit(cache=True)
def _scan_kernel(
    arrivals: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    quantiles: np.ndarray,
    available_at: np.ndarray,
    timeout_s: float,
    latency: np.ndarray,
    server: np.ndarray,
    busy: np.ndarray,
    count: np.ndarray,
) -> float:
    """:func:`simulate_kernel` for few servers, by linear scans over the servers' free times:
    the idle server of lowest index (priority order) takes a request, else the one that frees
    first (lower index on equal times) -- the heaps' rules, so the results are identical."""
    n = arrivals.shape[0]
    S = quantiles.shape[0]
    free = available_at.copy()
    last = 0.0
    for i in range(n):
        t = arrivals[i]
        k, f = seg[i], frac[i]
        s = -1
        best = 0
        for j in range(S):
            fj = free[j]
            if fj <= t:
                s = j
                break
            if fj < free[best]:
                best = j
        if s >= 0:
            start = t
        else:
            s = best
            start = free[s]
            if start - t > timeout_s:
                _drop(i, latency, server)
                continue
        end = _serve(i, s, t, start, k, f, quantiles, latency, server, busy, count)
        free[s] = end
        last = max(last, end)
    return last


@njit(cache=True)
def _heap_kernel(
    arrivals: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    quantiles: np.ndarray,
    available_at: np.ndarray,
    timeout_s: float,
    latency: np.ndarray,
    server: np.ndarray,
    busy: np.ndarray,
    count: np.ndarray,
) -> float:
    """:func:`simulate_kernel` with two heaps: O(log servers) per request."""
    n = arrivals.shape[0]
    S = quantiles.shape[0]
    bt = np.empty(S)
    bs = np.empty(S, dtype=np.int64)
    idle = np.empty(S, dtype=np.int64)
    nb = 0
    ni = 0
    for s in range(S):
        _busy_push(bt, bs, nb, available_at[s], s)
        nb += 1
    last = 0.0
    for i in range(n):
        t = arrivals[i]
        while nb > 0 and bt[0] <= t:  # servers free by now become idle
            _idle_push(idle, ni, bs[0])
            ni += 1
            nb -= 1
            bt[0] = bt[nb]
            bs[0] = bs[nb]
            _busy_sift_down(bt, bs, nb, 0)
        k, f = seg[i], frac[i]
        if ni > 0:
            s = _idle_pop(idle, ni)
            ni -= 1
            end = _serve(i, s, t, t, k, f, quantiles, latency, server, busy, count)
            _busy_push(bt, bs, nb, end, s)
            nb += 1
        else:
            if bt[0] - t > timeout_s:
                _drop(i, latency, server)
                continue
            end = _serve(i, bs[0], t, bt[0], k, f, quantiles, latency, server, busy, count)
            bt[0] = end  # replace-top: the server stays busy with a later free time
            _busy_sift_down(bt, bs, nb, 0)
        last = max(last, end)
    return last


@njit(cache=True)
def simulate_kernel(
    arrivals: np.ndarray,
    seg: np.ndarray,
    frac: np.ndarray,
    quantiles: np.ndarray,
    available_at: np.ndarray,
    timeout_s: float,
    latency: np.ndarray,
    server: np.ndarray,
    busy: np.ndarray,
    count: np.ndarray,
) -> float:
    """FCFS multi-server queue; fills per-request ``latency`` (s, NaN if dropped) and
    ``server`` (-1 if dropped), adds per-server ``busy`` seconds and ``count``; returns the
    last completion time (0 if nothing served). Servers are indexed in priority order.
    ``seg``/``frac``: each request's service-time draw as its segment of the quantile table and
    position in it (:func:`clover_rl.serving.simulator.service_draws`; the same for every
    server, so found once per workload, not once per request and configuration)."""
    if quantiles.shape[0] <= _SCAN_MAX_SERVERS:
        return _scan_kernel(arrivals, seg, frac, quantiles, available_at, timeout_s, latency, server, busy, count)
    return _heap_kernel(arrivals, seg, frac, quantiles, available_at, timeout_s, latency, server, busy, count)


@njit(cache=True)
def served_latencies(latency: np.ndarray, server: np.ndarray, skip: int, out: np.ndarray) -> int:
    """Copy the latencies of the served requests (``server >= 0``) after the first ``skip`` into
    ``out`` (length >= their number), in request order; returns how many."""
    k = 0
    for i in range(skip, latency.shape[0]):
        if server[i] >= 0:
            out[k] = latency[i]
            k += 1
    return k
