"""Continuous-batching simulator: exact small cases, limits, agreement with the reference."""
from __future__ import annotations

import math

import numpy as np
import pytest

from clover_rl.errors import ConfigError
from clover_rl.llm.catalog import load_llm_service
from clover_rl.llm.lengths import load_fitted
from clover_rl.llm.metrics import interval_metrics
from clover_rl.llm.physics import slice_profile
from clover_rl.llm.reference import reference_simulate
from clover_rl.llm.simulator import simulate
from clover_rl.mig.catalog import get_gpu


@pytest.fixture(scope="module")
def prof():
    g = get_gpu("a100-40gb")
    return slice_profile(load_llm_service().variant("llama-3.2-3b-bf16"), g, g.profile("3g"))


def _sim(prof, a, p, o, **kw):
    kw.setdefault("max_batch", 8)
    kw.setdefault("interval_s", 10.0)
    kw.setdefault("n_intervals", 1)
    return simulate(prof, np.asarray(a, float), np.asarray(p), np.asarray(o), **kw)


def test_one_request_ttft_is_prefill_and_tpot_is_decode(prof):
    r = _sim(prof, [0.5], [1000], [5])
    assert r.first_token_s[0] - 0.5 == pytest.approx(prof.prefill_s(1000))
    steps = [prof.decode_s(1, 1000 + g) for g in range(1, 5)]  # KV holds prompt + generated
    assert r.finish_s[0] == pytest.approx(r.first_token_s[0] + sum(steps))
    m = interval_metrics(r, prof, 400.0)
    assert m.ttft_p50_ms[0] == pytest.approx(prof.prefill_s(1000) * 1000)
    assert m.tpot_p50_ms[0] == pytest.approx(sum(steps) / 4 * 1000)
    assert m.output_tokens[0] == 5 and m.prompt_tokens[0] == 1000
    e = prof.prefill_s(1000) * prof.prefill_power_w + sum(steps) * prof.decode_power_w + prof.idle_power_w * 10
    assert m.energy_j[0] == pytest.approx(e)
    assert m.carbon_per_1k_tokens_g[0] == pytest.approx(e / 5 * 1000 / 3.6e6 * 400.0)
    assert m.quality[0] == prof.quality


def test_batch_limit_respected(prof):
    # 5 simultaneous requests, batch 2: admitted in waves of two (FCFS)
    r = _sim(prof, [0.0] * 5, [100] * 5, [50] * 5, max_batch=2)
    f = r.first_token_s
    assert f[0] == f[1] < f[2] == f[3] < f[4]
    assert f[2] >= max(r.finish_s[:2])  # the second wave waits for a free seat
    batch = _sim(prof, [0.0] * 5, [100] * 5, [50] * 5, max_batch=5)
    assert np.all(batch.first_token_s == batch.first_token_s[0])


def test_kv_memory_respected_and_oversize_rejected(prof):
    # capacity 1000 KV tokens: two requests of 600 cannot share it; one of 1200 can never run
    r = _sim(prof, [0.0, 0.0, 0.0], [500, 500, 1100], [100, 100, 100], kv_capacity_tokens=1000)
    assert r.first_token_s[1] >= r.finish_s[0]
    assert math.isnan(r.first_token_s[2]) and r.rejected == 1
    assert interval_metrics(r, prof, 100.0).rejected == 1


def test_kernel_agrees_with_reference_on_a_seed(prof):
    rng = np.random.default_rng(7)
    p, o = load_fitted("conv").sample(200, rng)
    a = np.cumsum(rng.exponential(0.2, 200))
    kw = dict(max_batch=16, interval_s=5.0, n_intervals=6, kv_capacity_tokens=40_000)
    r = simulate(prof, a, p, o, **kw)
    ref = reference_simulate(prof, a.tolist(), p.tolist(), o.tolist(), **kw)
    np.testing.assert_allclose(r.first_token_s, ref["first"], rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(r.finish_s, ref["finish"], rtol=1e-12, equal_nan=True)
    assert r.output_tokens.tolist() == ref["output_tokens"]
    assert r.prompt_tokens.tolist() == ref["prompt_tokens"]
    np.testing.assert_allclose(r.active_energy_j, ref["energy"], rtol=1e-9)
    assert r.output_tokens.sum() > 0


def test_bad_inputs(prof):
    with pytest.raises(ConfigError, match="sorted"):
        _sim(prof, [1.0, 0.5], [10, 10], [10, 10])
    with pytest.raises(ConfigError, match=">= 1"):
        _sim(prof, [0.0], [0], [10])
    with pytest.raises(ConfigError, match="max_batch"):
        _sim(prof, [0.0], [10], [10], max_batch=0)
