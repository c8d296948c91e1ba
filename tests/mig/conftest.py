"""Fixtures for the MIG/NVML tests: the simulated NVML module (``tests.support.fake_nvml``)."""
from __future__ import annotations

from types import ModuleType

import pytest

from tests.support import fake_nvml


@pytest.fixture
def fakemod() -> ModuleType:
    """The fake_nvml module (FakeNvml, FakeGpu, a100_40gb, ...)."""
    return fake_nvml


@pytest.fixture
def fake(fakemod: ModuleType):
    """A fresh simulated NVML with one A100-40GB in MIG mode, no instances."""
    return fakemod.FakeNvml()
