"""What the service counts, read by the exporter at scrape time (exporter.py)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from streamwatch.histogram import LATENCY_BUCKETS, Histogram

__all__ = ["Histogram", "ServiceStats", "LATENCY_BUCKETS"]

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
    store_commit_seconds: Histogram = field(default_factory=Histogram)  # each, on the loop
    store_errors: int = 0                                           # failed store writes
    store_dropped: int = 0                  # events never stored (store down too long)
    silenced_events: int = 0                # events published flagged "silenced" (not paged)
