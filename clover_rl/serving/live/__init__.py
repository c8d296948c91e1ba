"""The live serving plane: worker processes per MIG slice (or emulated CPU slice), one FIFO
dispatcher, a KServe v2 front end, energy meters, a load generator and ``LiveBackend``.

Modules (each imports its heavy dependencies itself, so importing this package is cheap):

- ``models``: build a variant's real model from its ``ModelSource`` (random weights unless a
  local file is given), request tensors and input checks;
- ``worker``: one process per slice, the CPU duty-cycle throttle, the pipe protocol;
- ``placement``: slice -> device string (``CpuPlacement``, ``MigPlacement``, ``WholeGpuPlacement``);
- ``pool``: ``WorkerPool`` — central FIFO queue, crash recovery, ``reconfigure``;
- ``codec`` / ``server``: KServe v2 JSON + binary tensors, FastAPI app, Prometheus ``/metrics``;
- ``energy``: NVML / RAPL / labelled CPU estimate meters;
- ``loadgen``: open-loop Poisson or rate-trace HTTP load;
- ``backend``: ``LiveBackend`` (the Backend protocol); ``profiler``: ``measure_profile``.
"""
