"""The session plan: when rooms go on air, and where incidents and normal events fall.

Everything is decided up front from the seed, before any sample exists, so ground truth can be
written first and the generator can stream for hours with bounded memory.  Placement rules:
incidents in one room never overlap and keep a few minutes of clean data around them (so a
detector has a baseline and a recovery to see); they avoid the ramp-up and the goodbye; normal
events avoid incidents (a flash sale during a checkout failure would make the label ambiguous).
The impact at onset (baseline viewers, GMV per minute, and the totals over all live rooms) is
computed from the noise-free baseline, which is what a grader would reasonably call "the room's
audience" at that moment.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from streamwatch.sim.catalog import (INCIDENT_WEIGHTS, ROOM_INCIDENT_TYPES, OnsetContext,
                                     draw_incident, draw_normal, draw_service_incident)
from streamwatch.sim.effects import Event, goodbye_factor, ramp_factor
from streamwatch.sim.profiles import RoomProfile, ServiceProfile, draw_rooms, draw_services

__all__ = ["Scenario", "Impact", "plan_scenario"]

GAP_S = 300.0           # clean data kept between two incidents of one room
LEAD_S = 300.0          # clean data before an incident: no normal event ends closer to its onset
TRAIL_S = 120.0         # ... and none starts sooner after its recovery


@dataclass(frozen=True, slots=True)
class Impact:
    viewers: float
    gmv_per_min: float
    total_viewers: float
    total_gmv_per_min: float


@dataclass(slots=True)
class Scenario:
    session_s: float
    rooms: list[RoomProfile]
    services: list[ServiceProfile]
    events: list[Event] = field(default_factory=list)
    affected: dict[int, list[str]] = field(default_factory=dict)   # id(event) -> streams
    impacts: dict[int, Impact] = field(default_factory=dict)
    ramps: dict[str, tuple[float, float]] = field(default_factory=dict)
    goodbyes: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def incidents(self) -> list[Event]:
        return sorted((e for e in self.events if e.category == "incident"),
                      key=lambda e: (e.start, e.stream))

    def by_stream(self) -> dict[str, list[Event]]:
        """Every stream's events sorted by start (one pass, for per-stream consumers)."""
        out: dict[str, list[Event]] = {}
        for e in sorted(self.events, key=lambda e: (e.start, e.type)):
            out.setdefault(e.stream, []).append(e)
        return out

    # --- noise-free baseline ---------------------------------------------------------------
    def _lifecycle(self, room: RoomProfile, t: float) -> float:
        f = 1.0
        ta = np.array([t])
        if (ramp := self.ramps.get(room.stream)) and t < ramp[1]:
            f *= float(ramp_factor(ta, ramp[0], ramp[1])[0])
        if bye := self.goodbyes.get(room.stream):
            f *= float(goodbye_factor(ta, *bye)[0])
        return f

    def viewers(self, room: RoomProfile, t: float) -> float:
        if not room.start <= t < room.end:
            return 0.0
        return room.peak * float(room.wander(np.array([t]))[0]) * self._lifecycle(room, t)

    def orders_pm(self, room: RoomProfile, t: float) -> float:
        eng = float(room.engagement(np.array([t]))[0])
        return self.viewers(room, t) * room.click_pm * eng * room.conversion

    def gmv_pm(self, room: RoomProfile, t: float) -> float:
        return self.orders_pm(room, t) * float(room.price(np.array([t]))[0])

    def complaints_pm(self, room: RoomProfile, t: float) -> float:
        return room.complaint_floor_pm + room.complaint_per_order * self.orders_pm(room, t)


def _free(busy: list[tuple[float, float]], s: float, e: float, gap: float,
          after: float | None = None) -> bool:
    """[s, e) keeps `gap` s before every busy span and `after` (default `gap`) s after it."""
    after = gap if after is None else after
    return all(e + gap <= bs or s >= be + after for bs, be in busy)


def _lifecycle_events(rng: np.random.Generator, sc: Scenario) -> dict[str, tuple[float, float]]:
    """Ramp-up and goodbye per room; returns each room's window open to incidents."""
    windows: dict[str, tuple[float, float]] = {}
    for room in sc.rooms:
        lo = room.start + 300.0
        if not room.preexisting:
            d = draw_normal(rng, "ramp_up")
            dur = min(d.duration, 0.3 * (room.end - room.start))
            sc.events.append(Event("normal", "ramp_up", room.stream, room.start, room.start + dur))
            sc.ramps[room.stream] = (room.start, room.start + dur)
            lo = room.start + dur + LEAD_S
        hi = room.end - 60.0
        if room.ends_in_session:
            d = draw_normal(rng, "goodbye")
            sc.events.append(Event("normal", "goodbye", room.stream, room.end - d.duration,
                                   room.end, d.params))
            sc.goodbyes[room.stream] = (room.end - d.duration, room.end, d.params["floor"])
            hi = room.end - d.duration - 60.0
        windows[room.stream] = (lo, hi)
    return windows


def _shared_outage(rng: np.random.Generator, sc: Scenario, force: bool,
                   busy: dict[str, list[tuple[float, float]]]) -> None:
    S = sc.session_s
    if not force and (S < 20 * 60 or rng.uniform() > 0.3):
        return
    d = draw_service_incident(rng, "checkout_broken", errors_allowed=True)
    if 0.85 * S - d.duration <= 0.15 * S:
        return
    s = float(rng.uniform(0.15 * S, 0.85 * S - d.duration))
    e = s + d.duration
    affected = [r for r in sc.rooms if r.start < e and r.end > s]
    ev = Event("incident", "checkout_broken", "svc:payment", s, e, d.params)
    sc.events.append(ev)
    sc.affected[id(ev)] = [r.stream for r in affected]
    for r in affected:
        sc.events.append(Event("internal", "payment_failure", r.stream, s, e, d.params))
    for room in sc.rooms:
        busy[room.stream].append((s - 60.0, e + 60.0))
    busy["svc:payment"].append((s, e))


def _room_incidents(rng: np.random.Generator, sc: Scenario, force: bool,
                    windows: dict[str, tuple[float, float]],
                    busy: dict[str, list[tuple[float, float]]]) -> None:
    onair_min = sum(r.end - r.start for r in sc.rooms) / 60.0
    n = int(round(onair_min * rng.uniform(0.016, 0.026)))
    # a benchmark session covers every type, and both outage variants (silent and not)
    kinds = list(ROOM_INCIDENT_TYPES) + ["stream_outage"] if force else []
    extra = rng.choice(len(ROOM_INCIDENT_TYPES), size=max(0, n - len(kinds)),
                       p=np.array(INCIDENT_WEIGHTS) / sum(INCIDENT_WEIGHTS))
    kinds += [ROOM_INCIDENT_TYPES[int(i)] for i in extra]
    rooms = [r for r in sc.rooms if windows[r.stream][1] - windows[r.stream][0] > 300.0]
    if not rooms:
        return
    weights = np.array([windows[r.stream][1] - windows[r.stream][0] for r in rooms])
    for kind in kinds:
        for _ in range(80):
            room = rooms[int(rng.choice(len(rooms), p=weights / weights.sum()))]
            lo, hi = windows[room.stream]
            s = float(rng.uniform(lo, hi))
            ctx = OnsetContext(sc.orders_pm(room, s), sc.complaints_pm(room, s))
            d = draw_incident(rng, kind, ctx)
            if d is None or s + d.duration > hi:
                continue
            if not _free(busy[room.stream], s, s + d.duration + d.tail, GAP_S):
                continue
            ev = Event("incident", kind, room.stream, s, s + d.duration, d.params, d.tail)
            sc.events.append(ev)
            sc.affected[id(ev)] = [room.stream]
            busy[room.stream].append((s, ev.reach))
            break
    outages = [e for e in sc.events if e.type == "stream_outage"]
    if force and len(outages) >= 2 and len({e.params["silent"] for e in outages}) == 1:
        outages[0].params["silent"] = 1.0 - outages[0].params["silent"]


def _service_incidents(rng: np.random.Generator, sc: Scenario, force: bool,
                       busy: dict[str, list[tuple[float, float]]]) -> None:
    S = sc.session_s
    n = max(int(rng.poisson(S / 3600.0)), 1 if force else 0)
    for _ in range(n):
        stream = "svc:api" if rng.uniform() < 0.75 else "svc:payment"
        d = draw_service_incident(rng, "service_degradation",
                                  errors_allowed=stream == "svc:api")
        for _ in range(30):
            if S - d.duration - 60.0 <= 300.0:
                break
            s = float(rng.uniform(300.0, S - d.duration - 60.0))
            if _free(busy[stream], s, s + d.duration, 300.0):
                ev = Event("incident", "service_degradation", stream, s, s + d.duration, d.params)
                sc.events.append(ev)
                sc.affected[id(ev)] = [stream]
                busy[stream].append((s, s + d.duration))
                break


def _normal_events(rng: np.random.Generator, sc: Scenario,
                   windows: dict[str, tuple[float, float]],
                   busy: dict[str, list[tuple[float, float]]]) -> None:
    """Product switches (which set the price schedule), flash sales, lotteries, stutters."""
    for room in sc.rooms:
        lo, hi = windows[room.stream]
        lo = max(lo - 120.0, room.start + 60.0)
        taken: list[tuple[float, float]] = []
        times, prices = [room.start], [room.price_center * float(rng.lognormal(0.0, 0.45))]
        t = lo + float(rng.uniform(120.0, 600.0))
        while t < hi:
            d = draw_normal(rng, "product_switch")
            if t + d.duration < hi and _free(busy[room.stream], t, t + d.duration, LEAD_S, TRAIL_S):
                sc.events.append(Event("normal", "product_switch", room.stream, t,
                                       t + d.duration, d.params))
                taken.append((t, t + d.duration))
                times.append(t + d.duration)
                prices.append(room.price_center * float(rng.lognormal(0.0, 0.45)))
            t += float(rng.uniform(300.0, 900.0))
        room.price_times, room.prices = np.array(times), np.array(prices)
        hours = max(hi - lo, 0.0) / 3600.0
        for kind, rate in (("flash_sale", 1.5), ("lottery", 2.0)):
            for _ in range(int(rng.poisson(hours * rate))):
                d = draw_normal(rng, kind)
                for _ in range(20):
                    if hi - lo - d.duration <= 0:
                        break
                    s = float(rng.uniform(lo, hi - d.duration))
                    e = s + d.duration
                    if _free(taken, s, e, 60.0) and _free(busy[room.stream], s, e, LEAD_S, TRAIL_S):
                        sc.events.append(Event("normal", kind, room.stream, s, e, d.params))
                        taken.append((s, e))
                        break
        span = room.end - room.start
        for _ in range(int(rng.poisson(span / 3600.0))):
            d = draw_normal(rng, "stutter")
            s = float(rng.uniform(room.start + 60.0, max(room.end - 60.0, room.start + 61.0)))
            if _free(busy[room.stream], s, s + d.duration, LEAD_S, TRAIL_S):
                sc.events.append(Event("noise", "stutter", room.stream, s, s + d.duration,
                                       d.params))


def _impacts(sc: Scenario) -> None:
    for ev in sc.incidents():
        t = ev.start
        tv = sum(sc.viewers(r, t) for r in sc.rooms)
        tg = sum(sc.gmv_pm(r, t) for r in sc.rooms)
        streams = set(sc.affected[id(ev)])
        v = sum(sc.viewers(r, t) for r in sc.rooms if r.stream in streams)
        g = sum(sc.gmv_pm(r, t) for r in sc.rooms if r.stream in streams)
        sc.impacts[id(ev)] = Impact(v, g, tv, tg)


def plan_scenario(rng: np.random.Generator, rooms: int, minutes: float) -> Scenario:
    """Decide the whole session.  With >= 8 rooms and >= 60 minutes every incident type (and
    one shared payment outage) is guaranteed, so a benchmark session covers the catalogue."""
    S = float(minutes) * 60.0
    sc = Scenario(S, draw_rooms(rng, rooms, S), draw_services(rng))
    force = rooms >= 8 and minutes >= 60
    busy: dict[str, list[tuple[float, float]]] = {r.stream: [] for r in sc.rooms}
    busy.update({s.stream: [] for s in sc.services})
    windows = _lifecycle_events(rng, sc)
    _shared_outage(rng, sc, force, busy)
    _room_incidents(rng, sc, force, windows, busy)
    _service_incidents(rng, sc, force, busy)
    _normal_events(rng, sc, windows, busy)
    _impacts(sc)
    return sc
