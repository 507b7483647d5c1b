"""Delivery artifacts: counter resets, duplicated and late samples, short collector gaps.

These are the "must not page" quirks of real telemetry (CONTRACTS.md §2).  They are pinned to
exact samples at construction time - the collector grid makes every sample time computable - so
labels can name each affected (stream, metric, ts) and the generator only has to look them up.
Silences of whole rooms (the silent variant of a stream outage) live here too, because the
generator needs one place to ask "does this collector report at time t?".
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamwatch.sim.collectors import (COUNTER_COLLECTORS, ROOM_COLLECTORS, SERVICE_COLLECTOR,
                                        CollectorSpec, Grid)
from streamwatch.sim.scenario import Scenario

__all__ = ["CollectorPlan", "ArtifactPlan", "ArtifactLabel", "plan_artifacts"]


@dataclass(slots=True)
class CollectorPlan:
    """Artifacts of one collector of one stream (times session-relative)."""
    late: dict[int, float] = field(default_factory=dict)    # k -> extra delay (s)
    dup: dict[int, float] = field(default_factory=dict)     # k -> re-send delay after original
    resets: list[float] = field(default_factory=list)
    gaps: list[tuple[float, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ArtifactLabel:
    type: str
    stream: str
    metric: str
    ts: float                         # session-relative
    extra: tuple[tuple[str, float], ...] = ()


@dataclass(slots=True)
class ArtifactPlan:
    plans: dict[tuple[str, str], CollectorPlan] = field(default_factory=dict)
    silences: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    labels: list[ArtifactLabel] = field(default_factory=list)

    def plan(self, stream: str, collector: str) -> CollectorPlan:
        return self.plans.setdefault((stream, collector), CollectorPlan())


def _inside(t: float, spans: list[tuple[float, float]]) -> bool:
    return any(s <= t < e for s, e in spans)


def _pin(rng: np.random.Generator, plan: ArtifactPlan, stream: str, spec: CollectorSpec,
         grid: Grid, span: tuple[float, float], rate_h: float) -> None:
    """Late and duplicated deliveries of whole collector batches at random on-air times."""
    cp = plan.plan(stream, spec.name)
    lo, hi = span
    quiet = plan.silences.get(stream, []) + cp.gaps
    for kind in ("late", "duplicate"):
        for _ in range(int(rng.poisson(rate_h * (hi - lo) / 3600.0))):
            k = grid.k_at_or_after(float(rng.uniform(lo, hi)))
            ts = float(grid.ts(np.array([k]))[0])
            if ts >= hi or _inside(ts, quiet) or k in cp.late or k in cp.dup:
                continue
            if kind == "late":
                delay = float(rng.uniform(1.0, 30.0) if rng.uniform() < 0.85
                              else rng.uniform(30.0, 150.0))
                cp.late[k] = delay
                extra: tuple[tuple[str, float], ...] = (("delay_s", round(delay, 3)),)
            else:
                cp.dup[k] = float(rng.uniform(0.05, 10.0))
                extra = ()
            plan.labels.extend(ArtifactLabel(kind, stream, m, ts, extra) for m in spec.metrics)


def plan_artifacts(rng: np.random.Generator, sc: Scenario) -> ArtifactPlan:
    plan = ArtifactPlan()
    for ev in sc.events:
        if ev.type == "stream_outage" and ev.params.get("silent"):
            plan.silences.setdefault(ev.stream, []).append((ev.start, ev.end))
    events = sc.by_stream()
    for room in sc.rooms:
        hours = (room.end - room.start) / 3600.0
        troubled = [(e.start - 60.0, e.reach + 60.0) for e in events.get(room.stream, [])
                    if e.category in ("incident", "internal")]
        data = [s for s in ROOM_COLLECTORS if s.name != "lifecycle"]
        for _ in range(int(rng.poisson(hours * 0.7))):
            spec = data[int(rng.integers(len(data)))]
            d = float(rng.uniform(30.0, 90.0))
            if room.end - room.start < d + 240.0:
                break
            s = float(rng.uniform(room.start + 120.0, room.end - d - 120.0))
            if _inside(s, troubled) or _inside(s + d, troubled):
                continue
            plan.plan(room.stream, spec.name).gaps.append((s, s + d))
            plan.labels.extend(ArtifactLabel("gap", room.stream, m, s, (("end_ts", s + d),))
                               for m in spec.metrics)
        counters = [s for s in ROOM_COLLECTORS if s.name in COUNTER_COLLECTORS]
        for _ in range(int(rng.poisson(hours * 0.5))):
            spec = counters[int(rng.integers(len(counters)))]
            if room.end - room.start < 240.0:
                break
            t = float(rng.uniform(room.start + 120.0, room.end - 120.0))
            plan.plan(room.stream, spec.name).resets.append(t)
            plan.labels.extend(ArtifactLabel("counter_reset", room.stream, m, t)
                               for m in spec.metrics if m.endswith("_total"))
        for spec in ROOM_COLLECTORS:
            hi = sc.session_s if spec.name == "lifecycle" else room.end
            _pin(rng, plan, room.stream, spec, room.grids[spec.name], (room.start, hi),
                 rng.uniform(0.5, 2.0))
    for svc in sc.services:
        _pin(rng, plan, svc.stream, SERVICE_COLLECTOR, svc.grid, (0.0, sc.session_s),
             rng.uniform(1.0, 4.0))
    for cp in plan.plans.values():
        cp.resets.sort()
    plan.labels.sort(key=lambda a: (a.ts, a.stream, a.metric, a.type))
    return plan
