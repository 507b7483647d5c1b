"""A fixed-bucket histogram the exporter reads at scrape time (Prometheus histogram semantics):
cheap to observe on the hot path, no registry, no locks (one writer: the event loop's thread,
or a worker thread whose observations the loop reads racily but harmlessly)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Histogram", "LATENCY_BUCKETS"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Histogram:
    """Fixed buckets, read by the exporter at scrape time (prometheus histogram semantics)."""
    buckets: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, v: float, times: int = 1) -> None:
        k = int(np.searchsorted(self.buckets, v, side="left"))
        self.counts[k] += times
        self.total += v * times
        self.n += times
