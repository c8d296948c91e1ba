"""Options several commands share (``serve``, ``profile``), declared once with their help and checks."""
from __future__ import annotations

from typing import Annotated

import typer

from clover_rl.errors import ConfigError

Device = Annotated[str, typer.Option(help="cpu (emulated slices) or cuda (MIG slices through NVML)")]
CpuScale = Annotated[float, typer.Option(help="CPU mode: scale inputs (resolution / sequence length) by this")]
CpuThreads = Annotated[int, typer.Option(help="CPU mode: torch threads per worker")]


def check_device(device: str) -> None:
    """ConfigError unless ``--device`` is cpu or cuda (before anything starts)."""
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be cpu or cuda, got {device!r}")
