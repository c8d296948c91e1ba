"""vLLM as the engine of an LLM worker on a MIG slice (the optional ``vllm`` extra).

Choice: vLLM's synchronous ``LLMEngine`` inside our worker process, not ``vllm serve`` as a
subprocess. The worker process already owns the slice (``CUDA_VISIBLE_DEVICES=<MIG UUID>`` is set
by :func:`~.worker.child_setup` before CUDA initialises), and ``LLMEngine.step()`` is exactly one
continuous-batching iteration, so the worker loop, the pipe protocol, the dispatcher's admission
control/deadlines/crash recovery and the front end's OpenAI/v2 endpoints and metrics stay one
implementation for both engines; a ``vllm serve`` subprocess would add a second HTTP server,
its own queue and a second place to account tokens. vLLM keeps its own paged KV cache and
scheduler; ``max_num_seqs`` = the worker's seats.

Model: ``--model-path`` if given, else the variant's published checkpoint
(``LLMVariant.source`` when it names a Hugging Face repo; a precision without a published
checkpoint is refused with a one-line error). Prompts are text (vLLM tokenizes with the model's
tokenizer) or token ids of that tokenizer.
"""
from __future__ import annotations

from typing import Any

from clover_rl.errors import BackendError, ConfigError

GPU_MEMORY_UTILIZATION = 0.9  # vLLM's default; the memory-fit model (clover_rl/llm/physics.py) assumes it


def vllm_model(spec: Any) -> str:
    """The model vLLM loads for ``spec``'s variant (see the module docstring)."""
    if spec.model_path:
        return str(spec.model_path)
    v = spec.service.variant(spec.variant)
    src = v.source
    if " " in src:
        raise ConfigError(f"variant {spec.variant}: no published checkpoint ({src}); give --model-path")
    return src


def engine_args(spec: Any) -> dict[str, Any]:
    """Keyword arguments of ``vllm.EngineArgs`` for one worker (pure; tested without vLLM)."""
    return {"model": vllm_model(spec), "max_num_seqs": spec.seats, "gpu_memory_utilization": GPU_MEMORY_UTILIZATION,
            "seed": 0, "disable_log_stats": True}


class VllmGenerator:
    """The :class:`~.llm_worker.Generator` interface over ``vllm.LLMEngine``."""

    def __init__(self, spec: Any):
        try:
            from vllm import EngineArgs, LLMEngine
        except ImportError:
            raise BackendError("vLLM is not installed: pip install 'clover-rl[vllm]' (needs NVIDIA GPUs)") from None
        args = engine_args(spec)
        self.engine = LLMEngine.from_engine_args(EngineArgs(**args))
        self._started: set[int] = set()
        self.detail = f"vLLM {args['model']}, {spec.seats} seats"

    @property
    def busy(self) -> bool:
        return bool(self.engine.has_unfinished_requests())

    def add(self, rid: int, req: Any) -> None:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        p = req.params
        sp = SamplingParams(max_tokens=p.max_tokens, temperature=p.temperature, top_p=p.top_p, seed=p.seed,
                            ignore_eos=p.ignore_eos, output_kind=RequestOutputKind.DELTA)
        prompt = {"prompt_token_ids": list(req.ids)} if req.ids is not None else {"prompt": req.text or ""}
        self.engine.add_request(str(rid), prompt, sp)

    def cancel(self, rid: int) -> None:
        self.engine.abort_request([str(rid)])
        self._started.discard(rid)

    def step(self) -> tuple[str, list]:
        events = []
        for out in self.engine.step():
            rid = int(out.request_id)
            c = out.outputs[0]
            first = None
            if rid not in self._started:
                self._started.add(rid)
                first = len(out.prompt_token_ids or [])
            finish = c.finish_reason if out.finished else None
            if out.finished:
                self._started.discard(rid)
            events.append((rid, list(c.token_ids), c.text, finish, first))
        return "step", events
