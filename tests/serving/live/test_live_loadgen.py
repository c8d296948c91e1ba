"""Load generator arrivals (no processes): seeded Poisson and rate-trace thinning."""
from __future__ import annotations

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.services import load_service
from clover_rl.serving.live.codec import decode_request
from clover_rl.serving.live.loadgen import build_bodies, trace_arrivals
from clover_rl.serving.live.models import check_inputs
from clover_rl.workload.arrivals import poisson_arrivals
from tests.support.live import tiny_albert


def test_poisson_arrivals_are_seeded_and_sized() -> None:
    a = poisson_arrivals(200.0, 10.0, np.random.default_rng(0))
    b = poisson_arrivals(200.0, 10.0, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert abs(a.size - 2000) < 200 and np.all(np.diff(a) >= 0) and a.max() < 10.0
    assert poisson_arrivals(0.0, 10.0, np.random.default_rng(0)).size == 0


def test_trace_arrivals_follow_the_rate_steps() -> None:
    a = trace_arrivals([(0.0, 100.0), (5.0, 0.0), (8.0, 300.0)], 10.0, np.random.default_rng(1))
    assert abs(np.sum(a < 5) - 500) < 100 and np.sum((a >= 5) & (a < 8)) == 0
    assert abs(np.sum(a >= 8) - 600) < 120
    with pytest.raises(ConfigError, match="start at t=0"):
        trace_arrivals([(1.0, 5.0)], 10.0, np.random.default_rng(0))


@pytest.mark.parametrize("service", ["efficientnet", "albert"])
def test_synthetic_bodies_are_valid_requests(service: str) -> None:
    svc = load_service(service) if service == "efficientnet" else tiny_albert()
    for body, headers in build_bodies(svc, seed=0, n=2):
        hl = headers.get("Inference-Header-Content-Length")
        req = decode_request(body, hl)
        check_inputs(svc, req.inputs)
        if service == "efficientnet":
            assert req.inputs["INPUT__0"].shape == (8, 224, 224, 3)  # the paper's request: 8 images
        else:
            assert req.inputs["question"].shape == (1,)
