"""The vLLM engine without a GPU: the engine arguments and the slice environment a worker gets,
and the one-line error when the extra is missing; the real engine runs in a `gpu` test."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from clover_rl.errors import BackendError, ConfigError
from clover_rl.llm.catalog import load_llm_service
from clover_rl.serving.live.llm_plane import VLLM_MISSING, check_engine, default_engine
from clover_rl.serving.live.llm_vllm import engine_args
from clover_rl.serving.live.llm_worker import LLMWorkerSpec

SVC = load_llm_service("llm")
MIG = "MIG-4f1c2a3b-0000-5e6f-8a9b-0123456789ab"


def _spec(variant: str, **kw) -> LLMWorkerSpec:
    return LLMWorkerSpec(slot_id="gpu0/3g.20gb@4", service=SVC, variant=variant, device=f"cuda:{MIG}",
                         compute_slices=3, total_slices=7, engine="vllm", max_batch=16, **kw)


def test_engine_args_name_the_published_checkpoint_and_the_slice_seats() -> None:
    a = engine_args(_spec("llama-3.1-8b-int4"))
    assert a["model"] == "RedHatAI/Meta-Llama-3.1-8B-Instruct-quantized.w4a16"
    assert a["max_num_seqs"] == 7 and a["gpu_memory_utilization"] == 0.9  # ceil(16 x 3/7)
    assert engine_args(_spec("llama-3.2-1b-bf16"))["model"] == "meta-llama/Llama-3.2-1B-Instruct"
    assert engine_args(_spec("llama-3.2-1b-int4", model_path="/models/x"))["model"] == "/models/x"
    with pytest.raises(ConfigError, match="no published checkpoint"):
        engine_args(_spec("llama-3.2-1b-int4"))


def test_the_worker_sees_only_its_mig_slice() -> None:
    code = ("import os, sys; from clover_rl.serving.live.worker import child_setup; import pickle; "
            "spec = pickle.loads(sys.stdin.buffer.read()); print(child_setup(spec), os.environ['CUDA_VISIBLE_DEVICES'])")
    import pickle

    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(_spec("llama-3.1-8b-bf16")),
                         capture_output=True, env={**os.environ, "CUDA_VISIBLE_DEVICES": "0,1"}, check=True)
    assert out.stdout.decode().split() == ["cuda", MIG]


def test_engine_choice_and_missing_extra() -> None:
    assert default_engine("cpu") == "tiny" and default_engine("cuda") == "vllm"
    with pytest.raises(ConfigError, match="CPU only"):
        check_engine("tiny", "cuda")
    with pytest.raises(ConfigError, match="needs --device cuda"):
        check_engine("vllm", "cpu")
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(BackendError) as ei:
            check_engine("vllm", "cuda")
        assert str(ei.value) == VLLM_MISSING and "clover-rl[vllm]" in str(ei.value) and "\n" not in str(ei.value)


@pytest.mark.gpu
@pytest.mark.live
def test_vllm_generates_on_a_gpu() -> None:
    pytest.importorskip("vllm")
    from clover_rl.mig.catalog import get_gpu
    from clover_rl.mig.config import parse_configuration
    from clover_rl.serving.live.llm_plane import LLMPlane
    from clover_rl.serving.live.placement import WholeGpuPlacement

    gpu = get_gpu(os.environ.get("CLOVER_TEST_GPU", "a100-40gb"))
    with LLMPlane(SVC, gpu, device="cuda", placement=WholeGpuPlacement(gpu), start_timeout_s=900) as plane:
        assert plane.apply(parse_configuration("7g:llama-3.2-1b-bf16", gpu, SVC.variant_names)).ok
        from openai import OpenAI

        r = OpenAI(base_url=plane.url + "/v1", api_key="x", max_retries=0).completions.create(
            model="llm", prompt="The capital of France is", max_tokens=5, temperature=0)
        assert r.usage.completion_tokens <= 5 and r.choices[0].text
