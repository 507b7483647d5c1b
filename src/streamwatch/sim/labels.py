"""Ground truth for a simulated session: the labels.json document and the level rule.

Benchmarks score detectors against this file, so it states only what the simulator actually
did: each incident's window, team, level and affected streams, the normal-but-scary events that
must not page, and every delivery artifact pinned to its sample.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from streamwatch.sim.artifacts import ArtifactPlan
from streamwatch.sim.collectors import absolute_ts
from streamwatch.sim.scenario import Impact, Scenario
from streamwatch.types import BASE_LEVEL_OF_TYPE, TEAM_OF_TYPE, IncidentType

__all__ = ["grade_level", "build_labels", "TINY_VIEWERS", "TINY_GMV_PER_MIN", "LARGE_SHARE"]

TINY_VIEWERS = 100.0
TINY_GMV_PER_MIN = 100.0
LARGE_SHARE = 0.30


def grade_level(base: int, impact: Impact) -> int:
    """Grade an incident the way DOMAIN.md ("Grading: four response levels") asks.

    The incident type gives the usual level; impact moves it by one *only at the extremes*:
    a tiny room (viewers < 100 AND GMV < 100 per minute at onset) is one level less severe
    (at most 4, notice); a room carrying >= 30 % of all live rooms' viewers or of their GMV per
    minute is one level more severe (at least 1, critical).  The tiny test comes first: a room
    that small cannot be a large business impact even when few rooms are on air.
    """
    if impact.viewers < TINY_VIEWERS and impact.gmv_per_min < TINY_GMV_PER_MIN:
        return min(4, base + 1)
    big_v = impact.total_viewers > 0 and impact.viewers >= LARGE_SHARE * impact.total_viewers
    big_g = (impact.total_gmv_per_min > 0
             and impact.gmv_per_min >= LARGE_SHARE * impact.total_gmv_per_min)
    if big_v or big_g:
        return max(1, base - 1)
    return base


def _level(sc: Scenario, ev_id: int, kind: str, stream: str, params: dict[str, float]) -> int:
    if stream.startswith("svc:"):
        if kind == "checkout_broken":      # a shared-service failure hitting every room
            return 1
        return 2 if params.get("error_level", 0.0) > 0.05 else 3
    return grade_level(int(BASE_LEVEL_OF_TYPE[IncidentType(kind)]), sc.impacts[ev_id])


def build_labels(sc: Scenario, plan: ArtifactPlan, *, seed: int, rooms: int, minutes: float,
                 start_ts: float) -> dict[str, Any]:
    def ab(t: float) -> float:
        return float(absolute_ts(start_ts, np.array([t]))[0])

    streams: list[dict[str, Any]] = [
        {"stream": r.stream, "kind": "room", "platform": r.platform, "start_ts": ab(r.start),
         "end_ts": ab(r.end), "peak_viewers": round(float(r.peak), 1)} for r in sc.rooms]
    streams += [{"stream": s.stream, "kind": "service", "start_ts": ab(0.0),
                 "end_ts": ab(sc.session_s)} for s in sc.services]
    incidents: list[dict[str, Any]] = []
    counts: dict[tuple[str, str], int] = {}
    for ev in sc.incidents():
        n = counts[(ev.stream, ev.type)] = counts.get((ev.stream, ev.type), 0) + 1
        imp = sc.impacts[id(ev)]
        incidents.append({
            "id": f"{ev.stream}/{ev.type}/{n}", "type": ev.type, "stream": ev.stream,
            "start_ts": ab(ev.start), "end_ts": ab(ev.end),
            "team": str(TEAM_OF_TYPE[IncidentType(ev.type)]),
            "level": _level(sc, id(ev), ev.type, ev.stream, ev.params),
            "affected_streams": list(sc.affected[id(ev)]),
            "magnitude": round(float(ev.params["magnitude"]), 4),
            "silent": bool(ev.params.get("silent", 0.0)),
            "impact": {"viewers": round(float(imp.viewers), 1),
                       "gmv_per_min": round(float(imp.gmv_per_min), 2)},
        })
    normal = [{"type": e.type, "stream": e.stream, "start_ts": ab(e.start), "end_ts": ab(e.end)}
              for e in sorted(sc.events, key=lambda e: (e.start, e.stream))
              if e.category == "normal"]
    artifacts: list[dict[str, Any]] = []
    for a in plan.labels:
        item: dict[str, Any] = {"type": a.type, "stream": a.stream, "metric": a.metric,
                                "ts": ab(a.ts)}
        for k, v in a.extra:
            item[k] = ab(v) if k.endswith("_ts") else float(v)
        artifacts.append(item)
    return {"seed": seed, "rooms": rooms, "minutes": minutes, "start_ts": start_ts,
            "end_ts": ab(sc.session_s), "streams": streams, "incidents": incidents,
            "normal_events": normal, "artifacts": artifacts}
