"""Suite-wide hooks: ``gpu``-marked tests are skipped on machines without an NVIDIA GPU; the
persistent caches (steady-state store) live in a per-session temporary folder, not the user's."""
from __future__ import annotations

import ctypes.util
import functools
import os
import sys
import tempfile

import pytest

os.environ.setdefault("CLOVER_RL_CACHE_DIR", tempfile.mkdtemp(prefix="clover-rl-test-cache-"))


@functools.cache
def gpu_available() -> bool:
    """NVML sees a GPU, or torch has CUDA; torch is only imported when libcuda exists,
    because importing it costs seconds and CUDA cannot work without the driver's libcuda."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            if pynvml.nvmlDeviceGetCount() > 0:
                return True
        finally:
            pynvml.nvmlShutdown()
    except Exception:
        pass
    if "torch" not in sys.modules and not ctypes.util.find_library("cuda"):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords]
    if not gpu_items or gpu_available():
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU (NVML cannot init and torch.cuda is unavailable)")
    for item in gpu_items:
        item.add_marker(skip)
