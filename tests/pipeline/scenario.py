"""A tiny, explicit room generator for pipeline tests: steady Poisson traffic plus named effects.

Unlike the simulator (random schedules), every test here says exactly what happens when, so a
failing assertion points at one behaviour. Effects are multipliers over [start, end) seconds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamwatch.ingest.parse import Batch

T0 = 1767225600.0
COUNTERS = {  # per viewer per minute
    "entries_total": 0.05, "comments_total": 0.04, "likes_total": 0.3,
    "product_clicks_total": 0.02, "orders_total": 0.002, "gmv_total": 0.002 * 80,
    "complaints_total": 0.00002, "refunds_total": 0.00001,
}


@dataclass
class Effect:
    metric: str
    start: float
    end: float
    factor: float


@dataclass
class Room:
    stream: str
    viewers: float = 5000.0
    minutes: float = 45.0
    effects: list[Effect] = field(default_factory=list)
    silent: tuple[float, float] | None = None    # no samples at all in [start, end)
    end_live: bool = False                        # say goodbye (live = 0) at the end

    def factor(self, metric: str, t: float) -> float:
        f = 1.0
        for e in self.effects:
            if e.metric == metric and e.start <= t < e.end:
                f *= e.factor
        return f


def samples(rooms: list[Room], seed: int = 0, cadence: float = 5.0,
            services: dict[str, dict[str, float]] | None = None,
            service_effects: list[tuple[str, Effect]] | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    streams: list[str] = []
    metrics: list[str] = []
    ts: list[float] = []
    values: list[float] = []
    minutes = max(r.minutes for r in rooms)
    totals = {(r.stream, m): 0.0 for r in rooms for m in COUNTERS}
    for k in range(int(minutes * 60 / cadence)):
        t = k * cadence
        for r in rooms:
            if t >= r.minutes * 60 or (r.silent and r.silent[0] <= t < r.silent[1]):
                continue
            v = r.viewers * r.factor("viewers", t) * rng.normal(1, 0.01)
            row = [("live", 1.0), ("viewers", round(v)),
                   ("bitrate_kbps", 3000 * r.factor("bitrate_kbps", t) * rng.normal(1, 0.03)),
                   ("fps", 30 * r.factor("fps", t) * rng.normal(1, 0.01)),
                   ("dropped_frames_ratio", min(1.0, 0.01 * r.factor("dropped_frames_ratio", t)))]
            for m, per_viewer in COUNTERS.items():
                lam = per_viewer * v * r.factor(m, t) * cadence / 60
                totals[(r.stream, m)] += float(rng.poisson(lam))
                row.append((m, totals[(r.stream, m)]))
            for m, val in row:
                streams.append(r.stream); metrics.append(m); ts.append(T0 + t); values.append(val)
        for name, base in (services or {}).items():
            for m, val in base.items():
                f = 1.0
                for svc, e in service_effects or []:
                    if svc == name and e.metric == m and e.start <= t < e.end:
                        f *= e.factor
                streams.append(name); metrics.append(m); ts.append(T0 + t)
                values.append(min(1.0, val * f) if m.endswith("ratio") or m.startswith("cpu")
                              else val * f * rng.normal(1, 0.02))
    for r in rooms:
        if r.end_live:
            streams.append(r.stream); metrics.append("live"); ts.append(T0 + r.minutes * 60)
            values.append(0.0)
    n = len(streams)
    order = np.argsort(np.array(ts), kind="stable")
    return Batch([streams[i] for i in order], [metrics[i] for i in order],
                 np.array(ts)[order], np.array(values, float)[order], [None] * n,
                 np.arange(n, dtype=np.int64))
