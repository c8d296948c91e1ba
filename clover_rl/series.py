"""A regularly sampled time series: the shared shape of carbon-intensity and request-rate traces."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RegularSeries:
    times: np.ndarray  # datetime64[s], strictly increasing, regular
    values: np.ndarray  # float64
    name: str = "series"
    provenance: str = ""  # where the numbers come from (file, licence, attribution)

    def __post_init__(self) -> None:
        if len(self.times) != len(self.values):
            raise ValueError("times and values differ in length")

    def __len__(self) -> int:
        return len(self.values)

    @property
    def resolution_s(self) -> float:
        """Seconds between samples (an hour for a single sample)."""
        if len(self.times) < 2:
            return 3600.0
        return float((self.times[1] - self.times[0]) / np.timedelta64(1, "s"))
