"""A no-op model on the KServe Python model server, for ``frontend_overhead.py`` to compare with.

Runs in an environment that has ``kserve`` (kept out of clover-rl's own dependencies: it pins
its own FastAPI/uvicorn): ``python benchmarks/kserve_noop_server.py --http_port 8090``.
The model is named like the service the benchmark sends (``efficientnet``), takes the same
``INPUT__0`` and answers ``OUTPUT__0`` (FP32, one zero per image), in binary when asked.
Imports only kserve and numpy (not clover_rl).
"""
from __future__ import annotations

import sys

# No per-request log lines (clover-rl's front end writes none either); kserve reads sys.argv
# when imported. Given before the caller's flags, which win.
sys.argv[1:1] = ["--enable_latency_logging", "false", "--configure_logging", "false"]

import numpy as np  # noqa: E402
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer  # noqa: E402


class Noop(Model):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.ready = True

    async def predict(self, payload: InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        x = payload.inputs[0].as_numpy()
        out = InferOutput(name="OUTPUT__0", shape=[int(x.shape[0]), 1], datatype="FP32")
        out.set_data_from_numpy(np.zeros((x.shape[0], 1), np.float32), binary_data=payload.use_binary_outputs)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or "")


if __name__ == "__main__":
    ModelServer(workers=1, enable_grpc=False).start([Noop("efficientnet")])
