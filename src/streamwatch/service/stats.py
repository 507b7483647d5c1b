"""What the service counts, read by the exporter at scrape time (exporter.py)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Histogram", "ServiceStats", "LATENCY_BUCKETS"]

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


@dataclass
class ServiceStats:
    samples_accepted: int = 0
    samples_rejected: Counter[str] = field(default_factory=Counter)   # by reason
    requests_refused: Counter[str] = field(default_factory=Counter)   # by cause (full, too_large..)
    batches: int = 0
    submits_refused: int = 0                                            # queue full
    events: Counter[tuple[int, str, str]] = field(default_factory=Counter)  # (level, team, status)
    alert_latency: Histogram = field(default_factory=Histogram)     # accepted -> event emitted
    batch_latency: Histogram = field(default_factory=Histogram)     # accepted -> processed
    store_commits: int = 0                                          # transactions written
    store_errors: int = 0                                           # failed store writes
    store_dropped: int = 0                  # events never stored (store down too long)
    silenced_events: int = 0                # events published flagged "silenced" (not paged)
