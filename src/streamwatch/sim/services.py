"""Shared backend services (``svc:payment``, ``svc:api``): CPU, p99 latency and error ratio.

A service's load is the sum of what the rooms do - payment CPU follows total orders per second,
API CPU follows the total audience - smoothed over about a minute, so a big flash sale nudges
payment CPU without being an incident.  Incidents pull CPU and errors toward a level and scale
latency (effects.py); the room side of a payment outage is applied in the rooms themselves.
"""
from __future__ import annotations

import numpy as np

from streamwatch.sim.artifacts import ArtifactPlan
from streamwatch.sim.collectors import SERVICE_COLLECTOR
from streamwatch.sim.effects import SERVICE_EFFECTS, ActiveEvents, Event, ServiceEffects
from streamwatch.sim.profiles import ServiceProfile
from streamwatch.sim.rooms import Batch, collect, deliver
from streamwatch.types import Floats

__all__ = ["ServiceRuntime"]

_SMOOTH_S = 60.0


class ServiceRuntime:
    """Generates one service chunk by chunk from the rooms' load; deterministic given its RNG."""

    def __init__(self, svc: ServiceProfile, events: list[Event], plan: ArtifactPlan,
                 rng: np.random.Generator, session_s: float, typical_load: float) -> None:
        self.svc, self.rng, self.session_s = svc, rng, session_s
        self.events = ActiveEvents([e for e in events if e.stream == svc.stream])
        self.cp = plan.plans.get((svc.stream, SERVICE_COLLECTOR.name))
        self.typical = max(typical_load, 1e-9)
        self.level: float | None = None

    def _smoothed(self, load: Floats) -> Floats:
        gain = 1.0 - float(np.exp(-1.0 / _SMOOTH_S))
        lv = float(load[0]) if self.level is None else self.level
        out = [0.0] * load.size
        for i, x in enumerate(load.tolist()):
            lv += (x - lv) * gain
            out[i] = lv
        self.level = lv
        return np.array(out)

    def chunk(self, a: int, b: int, orders: Floats, audience: Floats) -> list[Batch]:
        svc, rng = self.svc, self.rng
        n = b - a
        t = a + np.arange(n) + 0.5
        fx = ServiceEffects(n)
        for ev in self.events.window(a, b):
            if ev.start < b and ev.reach > a:
                SERVICE_EFFECTS[ev.type](fx, t, ev)
        rel = self._smoothed(orders if svc.load == "orders" else audience) / self.typical
        ks, ts = collect(svc.grid, self.cp, a, b, 0.0, self.session_s, [])
        if ts.size == 0:
            return []
        i = np.floor(ts).astype(np.int64) - a
        m = i.size
        load = np.clip(rel[i], 0.0, 3.0)
        cpu = svc.cpu_base * (0.6 + 0.4 * load) * rng.lognormal(0, svc.cpu_sd, m)
        w = fx.cpu_weight[i]
        cpu = (1 - w) * cpu + w * fx.cpu_target[i] * rng.normal(1.0, 0.02, m)
        latency = (svc.latency_base_ms * (1.0 + 0.3 * (load - 1.0).clip(-0.5, 2.0))
                   * fx.lat_mult[i] * rng.lognormal(0, svc.latency_sd, m))
        err = svc.error_base * rng.lognormal(0, 0.7, m)
        w = fx.err_weight[i]
        err = (1 - w) * err + w * fx.err_target[i] * rng.uniform(0.85, 1.15, m)
        values = [np.round(np.clip(cpu, 0.0, 1.0), 4), np.round(latency, 1),
                  np.round(np.clip(err, 0.0, 1.0), 5)]
        return [deliver(rng, self.cp, ks, ts, values, SERVICE_COLLECTOR.metrics, svc.net_delay_s)]
