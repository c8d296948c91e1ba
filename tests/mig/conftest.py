"""Fixtures for the MIG/NVML tests: the simulated NVML module (tests/ is not a package)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def load_fake_nvml() -> ModuleType:
    name = "clover_rl_tests_fake_nvml"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("fake_nvml.py"))
        assert spec and spec.loader
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture
def fakemod() -> ModuleType:
    """The fake_nvml module (FakeNvml, FakeGpu, a100_40gb, ...)."""
    return load_fake_nvml()


@pytest.fixture
def fake(fakemod: ModuleType):
    """A fresh simulated NVML with one A100-40GB in MIG mode, no instances."""
    return fakemod.FakeNvml()
