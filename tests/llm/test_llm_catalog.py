"""The llm service kind: derived bytes, quality, sources, memory fit."""
from __future__ import annotations

import pytest
import yaml

from clover_rl.errors import ConfigError
from clover_rl.llm.catalog import load_llm_service
from clover_rl.llm.physics import fit_table, fits, kv_capacity_tokens
from clover_rl.mig.catalog import get_gpu
from clover_rl.paths import configs_dir
from clover_rl.services import list_services, load_service


def test_variants_are_models_times_precisions_with_derived_figures():
    svc = load_llm_service("llm")
    assert len(svc.variants) == 9
    v8 = svc.variant("llama-3.1-8b-bf16")
    # 2 (K,V) x 32 layers x 8 KV heads x 128 head dim x 2 bytes
    assert v8.kv_bytes_per_token == 131072
    assert svc.variant("llama-3.2-1b-bf16").kv_bytes_per_token == 2 * 16 * 8 * 64 * 2
    assert svc.variant("llama-3.2-3b-bf16").kv_bytes_per_token == 2 * 28 * 8 * 128 * 2
    assert v8.weight_bytes == pytest.approx(8030261248 * 2)  # all bf16
    int4 = svc.variant("llama-3.1-8b-int4")
    emb = 2 * 128256 * 4096  # untied embedding + lm_head stay bf16
    assert int4.weight_bytes == pytest.approx((8030261248 - emb) * 0.515625 + emb * 2)
    assert int4.quality == pytest.approx(69.4 * 0.989, abs=0.01)
    assert svc.variants[-1].name == "llama-3.1-8b-bf16"  # BASE: best quality, full precision
    assert int4.source == "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16"
    assert "quantised with W4A16" in svc.variant("llama-3.2-1b-int4").source


def test_llm_file_kept_apart_from_request_services():
    assert "llm" not in list_services()
    assert list_services("llm") == ["llm"]
    with pytest.raises(ConfigError, match="kind: llm"):
        load_service("llm")


def test_bad_llm_yaml_names_field(tmp_path):
    d = yaml.safe_load((configs_dir() / "services" / "llm.yaml").read_text())
    d["models"][0]["kv_heads"] = 0
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="kv_heads"):
        load_llm_service(p)
    d["models"][0]["kv_heads"] = 8
    d["models"][0]["quantized"] = {"fp8": "x/y"}
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ConfigError, match="fp8"):
        load_llm_service(p)


def test_memory_fit_by_slice():
    svc, a100 = load_llm_service(), get_gpu("a100-40gb")
    table = fit_table(svc, a100, batch=8, context_tokens=2048)
    # 16 GB of bf16 8B weights cannot sit in a 10 GB slice; its 4-bit variant (5.7 GB) can.
    assert "llama-3.1-8b-bf16" not in table["2g.10gb"] and "llama-3.1-8b-int4" in table["2g.10gb"]
    assert "llama-3.1-8b-bf16" in table["3g.20gb"]
    assert set(table["1g.5gb"]) == {"llama-3.2-1b-int4", "llama-3.2-1b-int8", "llama-3.2-1b-bf16"}
    assert table["7g.40gb"] == list(svc.variant_names)
    # bigger batches need more KV: the fit shrinks monotonically
    v, p = svc.variant("llama-3.2-3b-bf16"), a100.profile("2g")
    cap = kv_capacity_tokens(v, p)
    assert fits(v, p, 1, cap) and not fits(v, p, 1, cap + 1)
    with pytest.raises(ConfigError):
        fits(v, p, 0, 10)
