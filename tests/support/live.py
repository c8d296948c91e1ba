"""Helpers for the live serving plane tests: services whose variants are cheap to spawn.

Most process tests use ``noop`` variants (no torch import in the worker, so a worker starts in
about a second); real-model tests use efficientnet-b1 at low resolution and a tiny ALBERT.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from clover_rl.mig.catalog import get_gpu
from clover_rl.services import ServiceSpec, load_service

if TYPE_CHECKING:
    from clover_rl.serving.live.backend import LiveBackend

GPU = get_gpu("a100-40gb")
TINY_ALBERT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
               "intermediate_size": 64, "embedding_size": 16, "vocab_size": 1000}


def noop_service(delay_ms: float = 0.0, name: str = "efficientnet") -> ServiceSpec:
    """A shipped service with every variant replaced by a noop model (optionally slow)."""
    d = load_service(name).model_dump()
    for v in d["variants"]:
        v["source"] = {"kind": "noop", "name": "noop", "kwargs": {"delay_ms": delay_ms}}
    return ServiceSpec.model_validate(d)


@contextmanager
def noop_backend(config: str, delay_ms: float = 0.0, **kwargs: Any) -> Iterator[LiveBackend]:
    """A started LiveBackend (CPU, one GPU, seed 3; ``kwargs`` override) over :func:`noop_service`
    variants with ``config`` (e.g. ``"7g:b1"``) applied and checked; closed on exit."""
    from clover_rl.mig.config import parse_configuration
    from clover_rl.serving.live.backend import LiveBackend

    svc = noop_service(delay_ms=delay_ms)
    with LiveBackend(svc, GPU, **{"n_gpus": 1, "device": "cpu", "seed": 3, **kwargs}) as b:
        assert b.apply(parse_configuration(config, GPU, svc.variant_names)).ok
        yield b


def tiny_albert() -> ServiceSpec:
    d = load_service("albert").model_dump()
    d["request"]["max_seq_len"] = 32
    for v in d["variants"]:
        v["source"]["kwargs"] = dict(TINY_ALBERT)
    return ServiceSpec.model_validate(d)





class SumServable:
    """Answers each image's pixel sum: proves inputs reach the worker intact."""

    def infer(self, inputs: dict) -> dict:
        x = inputs["INPUT__0"]
        return {"OUTPUT__0": x.reshape(x.shape[0], -1).sum(1, dtype=np.float64).astype(np.float32)[:, None]}


def make_sum() -> SumServable:
    """``python`` model source entry point (``tests.support.live:make_sum``)."""
    return SumServable()


def sum_service() -> ServiceSpec:
    d = load_service("efficientnet").model_dump()
    for v in d["variants"]:
        v["source"] = {"kind": "python", "name": "tests.support.live:make_sum"}
    return ServiceSpec.model_validate(d)
