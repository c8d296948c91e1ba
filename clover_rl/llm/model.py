"""Build the replay model of an LLM scenario (what ``ServiceModel`` and the env use).

The common requests and the per-(slice, variant) steady states are shared by every backend
of one scenario setup in the process (an evaluation builds one env per policy)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from clover_rl.llm.replay import LLMReplayBackend
from clover_rl.llm.service import LLMService
from clover_rl.llm.steady import Requests, SliceModel

_REQUESTS: dict[tuple, Requests] = {}
_MODELS: dict[tuple, dict[tuple[str, str], SliceModel]] = {}


def llm_replay(scenario: Any, *, reconfiguration: bool | None = None) -> LLMReplayBackend:
    """A fresh ``LLMReplayBackend`` for ``scenario`` (a ``Scenario`` of a ``kind: llm`` service)."""
    service: LLMService = scenario.service_spec()
    llm = service.llm
    base = Path(scenario.source_path).parent if scenario.source_path else None
    rkey = (llm.lengths, str(base), llm.steady_requests)
    if rkey not in _REQUESTS:
        _REQUESTS[rkey] = Requests.draw(llm.token_lengths(base), llm.steady_requests)
    backend = LLMReplayBackend(service, scenario.gpu_model(), scenario.gpus, _REQUESTS[rkey],
                               timeout_s=scenario.timeout_s,
                               reconfiguration=scenario.reconfiguration if reconfiguration is None else reconfiguration,
                               ttft_sla_ms=scenario.sla_ms, tpot_sla_ms=llm.tpot_sla_ms)
    backend._models = _MODELS.setdefault((rkey, scenario.gpu, service.name, llm.max_batch), {})
    return backend
