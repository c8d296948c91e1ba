"""LLM profiles per MIG slice from physics (roofline), labelled *estimated*.

Peak figures (dense, no sparsity) from NVIDIA's datasheets:

- A100 SXM4 40GB / 80GB: bf16 tensor 312 TFLOPS, int8 tensor 624 TOPS, HBM 1,555 / 2,039 GB/s
  (NVIDIA A100 Tensor Core GPU datasheet, https://www.nvidia.com/en-us/data-center/a100/).
- H100 SXM5 80GB: bf16 tensor 989.5 TFLOPS, int8 1,979 TOPS, HBM3 3.35 TB/s; H200 SXM: same
  compute, 4.8 TB/s (NVIDIA H100 / H200 datasheets, https://www.nvidia.com/en-us/data-center/h100/).
  The datasheets print the sparse figures (2x); the dense halves are used here.

Model (per slice ``s`` of GPU ``g``, variant ``v``):

- compute share = SMs(s) / SMs(whole GPU); bandwidth share = memory slices(s) / 8 (MIG splits
  the memory system, L2 and HBM controllers, by memory slice).
- prefill of ``n`` prompt tokens: ``max(2 x params x n / (peak_flops x compute share x eta_c),
  decode_weight_bytes / (bw x bandwidth share x eta_m))`` (compute bound unless tiny).
- decode iteration over a batch holding ``k`` KV tokens with ``b`` sequences:
  ``max((weight bytes read + k x kv_bytes_per_token) / (bw x share x eta_m),
  2 x params x b / (peak_flops x compute share x eta_c))``.
- attention FLOPs and the prefill's KV writes are neglected (small next to the GEMMs at these
  context lengths).

Efficiencies (calibrated, see ``docs/llm.md``):

- ``eta_m = 0.73``: vLLM 0.23, Llama-3.1-8B-Instruct bf16 on one A100-SXM4-40GB, one request at a
  time (1024-token prompts, 128 outputs, --ignore-eos), decodes about 75 tokens/s (J. Musgrave,
  "vLLM throughput-latency sweep on NVIDIA A100", https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on).
  Bytes per iteration in this model: 15.01 GB weights read + 1,088 tokens (mean context) x 128 KiB
  KV = 15.15 GB; x 75 /s = 1.136 TB/s = 0.73 x 1,555 GB/s. Check against a second figure: vLLM
  0.21 on H100-80GB, TPOT p50 6.48 ms at concurrency 1 (short chat prompts,
  https://yobitelcomm.github.io/bench/recipes/concurrency-sweep/) gives 0.69: the model is about
  5% optimistic there.
- ``eta_c = 0.5``: *assumed* (no measured prefill time with a known prompt length was found);
  typical of large-GEMM model-FLOPs utilisation in prefill.

Active power (above the GPU's idle power), *assumed, not calibrated*: a slice draws its compute
share of (TDP - idle) in compute-bound prefill and ``DECODE_POWER_FRACTION`` of that in
memory-bound decode. Idle power is the GPU's (clover_rl.mig.catalog), shared by compute share.
"""
from __future__ import annotations

from dataclasses import dataclass

from clover_rl.errors import ConfigError
from clover_rl.llm.catalog import LLMServiceSpec, LLMVariant
from clover_rl.mig.catalog import GpuModel, MigProfile


@dataclass(frozen=True)
class GpuPeaks:
    bf16_flops: float  # dense tensor-core FLOP/s
    int8_ops: float  # dense tensor-core OP/s
    memory_bw: float  # bytes/s
    source: str


PEAKS: dict[str, GpuPeaks] = {
    "a100-40gb": GpuPeaks(312e12, 624e12, 1555e9, "NVIDIA A100 datasheet (SXM4 40GB)"),
    "a100-80gb": GpuPeaks(312e12, 624e12, 2039e9, "NVIDIA A100 datasheet (SXM4 80GB)"),
    "h100-80gb": GpuPeaks(989.5e12, 1979e12, 3.35e12, "NVIDIA H100 datasheet (SXM5)"),
    "h200-141gb": GpuPeaks(989.5e12, 1979e12, 4.8e12, "NVIDIA H200 datasheet (SXM)"),
}
ETA_MEMORY = 0.73  # calibrated, see module docstring
ETA_COMPUTE = 0.5  # assumed
DECODE_POWER_FRACTION = 0.6  # assumed
MEMORY_UTILISATION = 0.9  # vLLM's default gpu_memory_utilization
ACTIVATION_RESERVE_BYTES = 0.5e9  # activations / CUDA graphs / allocator slack per slice (assumed)


def gpu_peaks(gpu: GpuModel) -> GpuPeaks:
    if gpu.name not in PEAKS:
        raise ConfigError(f"no peak figures for GPU {gpu.name!r} (known: {', '.join(PEAKS)})")
    return PEAKS[gpu.name]


@dataclass(frozen=True)
class LLMSliceProfile:
    """Estimated costs of one variant on one MIG slice (seconds, bytes, watts)."""

    gpu: str
    slice: str
    variant: str
    prefill_s_per_token: float  # compute-bound prefill time per prompt token
    weights_read_s: float  # time to stream the decode weights once (decode floor)
    kv_read_s_per_token: float  # added decode-iteration time per KV token in the batch
    kv_capacity_tokens: int  # KV tokens that fit beside the weights (0: the variant does not fit)
    prefill_power_w: float  # active power above idle while prefilling
    decode_power_w: float  # active power above idle while decoding
    idle_power_w: float  # the slice's share of the GPU's idle power
    quality: float
    estimated: bool = True

    def prefill_s(self, tokens: int) -> float:
        return max(tokens * self.prefill_s_per_token, self.weights_read_s)

    def decode_s(self, batch: int, kv_tokens: int) -> float:
        return max(self.weights_read_s + kv_tokens * self.kv_read_s_per_token, batch * self.prefill_s_per_token)


def slice_memory_bytes(profile: MigProfile) -> float:
    return profile.memory_mb * 1024.0 * 1024.0


def kv_capacity_tokens(variant: LLMVariant, profile: MigProfile) -> int:
    """KV-cache tokens that fit on the slice beside the weights (0 if the weights do not fit)."""
    free = slice_memory_bytes(profile) * MEMORY_UTILISATION - variant.weight_bytes - ACTIVATION_RESERVE_BYTES
    return max(0, int(free // variant.kv_bytes_per_token))


def fits(variant: LLMVariant, profile: MigProfile, batch: int, context_tokens: int) -> bool:
    """Whether weights + a KV budget of ``batch`` sequences x ``context_tokens`` fit the slice."""
    if batch < 1 or context_tokens < 1:
        raise ConfigError(f"batch and context_tokens must be >= 1, got {batch}, {context_tokens}")
    return kv_capacity_tokens(variant, profile) >= batch * context_tokens


def fit_table(service: LLMServiceSpec, gpu: GpuModel, batch: int, context_tokens: int) -> dict[str, list[str]]:
    """MIG profile name -> the variants that fit it (``fits``), base profiles of ``gpu``."""
    return {p.name: [v.name for v in service.variants if fits(v, p, batch, context_tokens)]
            for p in gpu.base_profiles()}


def slice_profile(variant: LLMVariant, gpu: GpuModel, profile: MigProfile) -> LLMSliceProfile:
    peaks = gpu_peaks(gpu)
    c_share = profile.sm_count / gpu.whole.sm_count
    m_share = profile.memory_slices / gpu.memory_slices
    peak = peaks.int8_ops if variant.precision.compute == "int8" else peaks.bf16_flops
    flops = peak * c_share * ETA_COMPUTE
    bw = peaks.memory_bw * m_share * ETA_MEMORY
    dyn = (gpu.tdp_w - gpu.idle_w) * c_share
    return LLMSliceProfile(
        gpu=gpu.name, slice=profile.name, variant=variant.name,
        prefill_s_per_token=2.0 * variant.params / flops,
        weights_read_s=variant.decode_weight_bytes / bw,
        kv_read_s_per_token=variant.kv_bytes_per_token / bw,
        kv_capacity_tokens=kv_capacity_tokens(variant, profile),
        prefill_power_w=dyn, decode_power_w=dyn * DECODE_POWER_FRACTION,
        idle_power_w=gpu.idle_w * c_share, quality=variant.quality,
    )


def service_profiles(service: LLMServiceSpec, gpu: GpuModel) -> dict[tuple[str, str], LLMSliceProfile]:
    """(slice profile name, variant name) -> estimated profile, for every base profile of ``gpu``."""
    return {(p.name, v.name): slice_profile(v, gpu, p) for p in gpu.base_profiles() for v in service.variants}
