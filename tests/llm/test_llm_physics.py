"""Roofline profiles: calibration point, slice scaling, precision effects."""
from __future__ import annotations

import pytest

from clover_rl.errors import ConfigError
from clover_rl.llm.catalog import load_llm_service
from clover_rl.llm.physics import service_profiles, slice_profile
from clover_rl.mig.catalog import get_gpu


def test_reproduces_the_calibration_figure():
    # vLLM, Llama-3.1-8B bf16, whole A100-40GB, 1024-token prompt, 128 outputs: ~75 tok/s decode.
    svc, g = load_llm_service(), get_gpu("a100-40gb")
    p = slice_profile(svc.variant("llama-3.1-8b-bf16"), g, g.whole)
    assert 1.0 / p.decode_s(1, 1024 + 64) == pytest.approx(75.0, rel=0.01)
    assert p.estimated
    # second public point (not fitted): H100-80GB, TPOT p50 6.48 ms at concurrency 1, short prompts
    h = get_gpu("h100-80gb")
    ph = slice_profile(svc.variant("llama-3.1-8b-bf16"), h, h.whole)
    assert ph.decode_s(1, 300) * 1000 == pytest.approx(6.48, rel=0.08)


def test_slices_scale_by_share_and_precision():
    svc, g = load_llm_service(), get_gpu("h100-80gb")
    v = svc.variant("llama-3.2-3b-bf16")
    full, third = slice_profile(v, g, g.whole), slice_profile(v, g, g.profile("3g"))
    assert third.weights_read_s == pytest.approx(2 * full.weights_read_s)  # 4 of 8 memory slices
    assert third.prefill_s_per_token == pytest.approx(full.prefill_s_per_token * 132 / 60)
    assert third.prefill_power_w == pytest.approx(full.prefill_power_w * 60 / 132)
    # int8 (W8A8) halves weight traffic and doubles prefill peak; int4 (W4A16) keeps bf16 prefill
    i8, i4 = (slice_profile(svc.variant(f"llama-3.2-3b-{q}"), g, g.whole) for q in ("int8", "int4"))
    assert i8.prefill_s_per_token == pytest.approx(full.prefill_s_per_token / 2)
    assert i4.prefill_s_per_token == pytest.approx(full.prefill_s_per_token)
    assert i4.weights_read_s < i8.weights_read_s < full.weights_read_s
    # roofline: a one-token prefill costs at least one weight pass; a huge batch is compute bound
    assert full.prefill_s(1) == full.weights_read_s
    assert full.decode_s(10_000, 0) == pytest.approx(10_000 * full.prefill_s_per_token)


def test_every_pair_and_unknown_gpu():
    svc = load_llm_service()
    profs = service_profiles(svc, get_gpu("a100-40gb"))
    assert len(profs) == 5 * 9
    assert profs[("1g.5gb", "llama-3.1-8b-bf16")].kv_capacity_tokens == 0
    from dataclasses import replace
    other = replace(get_gpu("a100-40gb"), name="t4")
    with pytest.raises(ConfigError, match="t4"):
        slice_profile(svc.variants[0], other, other.whole)
