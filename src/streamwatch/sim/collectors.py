"""Collectors: which metrics travel together, how often, and exactly when each sample is taken.

A real deployment scrapes each family of metrics with its own agent (the player SDK for stream
health, the platform API for audience, the shop backend for sales ...), each on its own cadence.
We model that as a *collector*: a fixed metric group sampled on a grid ``start + phase + k*cadence``
plus a small jitter.  The jitter is a pure function of (collector key, k) - a counter-based hash,
not a stateful RNG - so the scenario can name the exact timestamp of, say, the 417th sample
(to label it late or duplicated) at construction time, and the generator reproduces it later
regardless of how the session is chunked.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamwatch.types import Floats, Ints

__all__ = [
    "CollectorSpec", "Grid", "ROOM_COLLECTORS", "SERVICE_COLLECTOR", "COUNTER_COLLECTORS",
    "METRICS", "METRIC_INDEX", "hash_uniform", "absolute_ts",
]


@dataclass(frozen=True, slots=True)
class CollectorSpec:
    """A metric family scraped together; cadence drawn per stream from ``cadence_range`` (s)."""
    name: str
    metrics: tuple[str, ...]
    cadence_range: tuple[int, int]


ROOM_COLLECTORS: tuple[CollectorSpec, ...] = (
    CollectorSpec("health", ("bitrate_kbps", "fps", "dropped_frames_ratio", "rebuffer_ratio"),
                  (1, 5)),
    CollectorSpec("audience", ("viewers", "entries_total"), (2, 10)),
    CollectorSpec("interaction", ("comments_total", "likes_total", "shares_total", "follows_total"),
                  (5, 15)),
    CollectorSpec("sales", ("product_clicks_total", "orders_total", "gmv_total"), (5, 30)),
    CollectorSpec("feedback", ("complaints_total", "refunds_total"), (30, 60)),
    CollectorSpec("lifecycle", ("live",), (25, 35)),
)
SERVICE_COLLECTOR = CollectorSpec("service", ("cpu_utilization", "latency_p99_ms", "error_ratio"),
                                  (5, 15))
COUNTER_COLLECTORS = frozenset({"audience", "interaction", "sales", "feedback"})

METRICS: tuple[str, ...] = tuple(
    m for spec in (*ROOM_COLLECTORS, SERVICE_COLLECTOR) for m in spec.metrics)
METRIC_INDEX: dict[str, int] = {m: i for i, m in enumerate(METRICS)}

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def hash_uniform(key: int, ks: Ints) -> Floats:
    """Uniform [0, 1) numbers as a pure function of (key, k): splitmix64 finaliser on arrays.

    Array-only uint64 arithmetic wraps silently; numpy *scalar* arithmetic would warn on overflow,
    hence the explicit array conversion.
    """
    x = np.asarray(ks, dtype=np.int64).astype(np.uint64) * _GOLDEN + np.uint64(key)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def absolute_ts(start_ts: float, rel: Floats) -> Floats:
    """Session-relative seconds to unix seconds rounded to ms - the one rounding used for both
    samples and labels, so a label's ts matches its sample's ts exactly."""
    return np.round(start_ts + np.asarray(rel, dtype=np.float64), 3)


@dataclass(frozen=True, slots=True)
class Grid:
    """Sample times of one collector of one stream, in session-relative seconds.

    ``ts(k) = origin + k*cadence + jitter(k)``, jitter within ±min(0.2*cadence, 1 s) so that
    timestamps of one series stay strictly increasing.  ``exact_first`` pins k=0 to the origin
    (the ``live`` flag is reported the moment a stream goes on air).
    """
    origin: float
    cadence: float
    key: int
    exact_first: bool = False

    @property
    def jitter(self) -> float:
        return min(0.2 * self.cadence, 1.0)

    def ts(self, ks: Ints) -> Floats:
        j = (2.0 * hash_uniform(self.key, ks) - 1.0) * self.jitter
        if self.exact_first:
            j = np.where(ks == 0, 0.0, j)
        return self.origin + ks * self.cadence + j

    def ks_between(self, a: float, b: float) -> Ints:
        """All k >= 0 whose (jittered) time falls in [a, b)."""
        lo = max(0, int(np.floor((a - self.origin - self.jitter) / self.cadence)))
        hi = int(np.ceil((b - self.origin + self.jitter) / self.cadence)) + 1
        if hi <= lo:
            return np.empty(0, dtype=np.int64)
        ks = np.arange(lo, hi, dtype=np.int64)
        t = self.ts(ks)
        return ks[(t >= a) & (t < b)]

    def k_at_or_after(self, t: float) -> int:
        """The first k whose time is >= t (used to pin artifacts on real samples)."""
        k = max(0, int(np.floor((t - self.origin - self.jitter) / self.cadence)))
        while float(self.ts(np.array([k]))[0]) < t:
            k += 1
        return k
