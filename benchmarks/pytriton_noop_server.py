"""A no-op model on Triton Inference Server through ``nvidia-pytriton``, for
``frontend_overhead.py`` to compare with: ``python benchmarks/pytriton_noop_server.py --port 8091``.

Runs in an environment that has ``nvidia-pytriton`` (it ships its own Triton binary and pins its
own dependencies). The model is named like the service the benchmark sends (``efficientnet``),
takes ``INPUT__0`` (UINT8, [N, H, W, 3]) and answers ``OUTPUT__0`` (FP32, one zero per image).
Imports only pytriton and numpy (not clover_rl).
"""
from __future__ import annotations

import socket
import sys

import numpy as np
from pytriton.model_config import ModelConfig, Tensor
from pytriton.triton import Triton, TritonConfig


def infer(requests: list) -> list:
    return [{"OUTPUT__0": np.zeros((r["INPUT__0"].shape[0], 1), np.float32)} for r in requests]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    port = int(sys.argv[sys.argv.index("--port") + 1]) if "--port" in sys.argv else 8000
    cfg = TritonConfig(http_port=port, grpc_port=_free_port(), metrics_port=_free_port(), log_verbose=0)
    with Triton(config=cfg) as triton:
        triton.bind(model_name="efficientnet", infer_func=infer,
                    inputs=[Tensor(name="INPUT__0", dtype=np.uint8, shape=(-1, -1, -1, 3))],
                    outputs=[Tensor(name="OUTPUT__0", dtype=np.float32, shape=(-1, 1))],
                    config=ModelConfig(batching=False))
        triton.serve()
