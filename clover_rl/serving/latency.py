"""Latency figures: what each one measures, from where to where (one definition each).

``IntervalMetrics.latency`` names the definition of an interval's ``p50_ms``/``p95_ms``/``p99_ms``/
``mean_ms``. Exact percentiles over the interval's answered requests (:func:`percentiles_ms`).

* :data:`SERVER` -- the service's front end accepts a request -> it sends the response: queueing
  + service + front-end overhead. Replay (the simulator: arrival -> completion plus the profile's
  measured front-end overhead) and ``LiveBackend.run`` (``ServerRecord.latency_s``) report it; the
  environment's SLA check, reward and observation judge it.
* :data:`POOL` -- a request enqueued at the worker pool -> its answer: queueing + service, without
  the front end (``RequestRecord.latency_s``). The controller's ``LivePlane`` measures it: the
  service's own figure for every request real clients sent; the front end adds about a
  millisecond (``benchmarks/frontend_overhead.py``).
* :data:`CLIENT` -- the load generator's *scheduled* send time -> response received: adds the
  network and client queueing (no coordinated omission). Reported beside the service's figure
  (``IntervalMetrics.extra`` ``client_p50_ms``/``client_p95_ms``/``client_p99_ms``), never used for
  control; the figure itself only when no server record exists.

An interval with nothing answered has every latency = the timeout (``IntervalMetrics.nothing_served``).
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np

SERVER = "server"
POOL = "pool"
CLIENT = "client"
KINDS = (SERVER, POOL, CLIENT)


def percentiles_ms(latencies_s: Iterable[float]) -> tuple[float, float, float, float]:
    """(p50, p95, p99, mean) in ms of latencies in seconds; zeros for none."""
    lat = np.asarray(list(latencies_s), dtype=float) * 1000.0
    if not lat.size:
        return 0.0, 0.0, 0.0, 0.0
    p50, p95, p99 = (float(x) for x in np.percentile(lat, [50, 95, 99]))
    return p50, p95, p99, float(lat.mean())
