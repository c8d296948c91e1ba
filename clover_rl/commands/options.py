"""Options several commands share (``serve``, ``profile``, ``deploy``), declared once with their help and checks."""
from __future__ import annotations

from typing import Annotated

import typer

from clover_rl.serving.live.placement import check_device

__all__ = ["CpuScale", "CpuThreads", "Device", "check_device"]

Device = Annotated[str, typer.Option(help="cpu (emulated slices) or cuda (MIG slices through NVML)")]
CpuScale = Annotated[float, typer.Option(help="CPU mode: scale inputs (resolution / sequence length) by this")]
CpuThreads = Annotated[int, typer.Option(help="CPU mode: torch threads per worker")]

