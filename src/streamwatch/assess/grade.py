"""Grading: a finding's response level from its type and its impact (DOMAIN.md, four levels).

The type gives the usual level (types.BASE_LEVEL_OF_TYPE). Impact moves it by one, and only at
the extremes: a room with a tiny audience and tiny sales is one level less severe; a room carrying
a large share of all viewers or of all GMV is one level more severe. A shared service (`svc:*`)
failing hard, or hurting several rooms at once, is level 1 whatever else holds.
"""
from __future__ import annotations

from dataclasses import dataclass

from streamwatch.types import BASE_LEVEL_OF_TYPE, IncidentType, Level

__all__ = ["Impact", "GradePolicy", "grade"]


@dataclass(frozen=True, slots=True)
class Impact:
    viewers: float            # the room's usual audience (baseline) when the finding started
    gmv_per_min: float        # the room's usual GMV per minute
    viewers_share: float      # of all live rooms' viewers
    gmv_share: float          # of all live rooms' GMV per minute
    rooms_affected: int = 1   # for shared services: rooms showing the echo now


@dataclass(frozen=True, slots=True)
class GradePolicy:
    tiny_viewers: float = 100.0
    tiny_gmv_per_min: float = 100.0
    large_share: float = 0.30
    shared_rooms_level1: int = 2


def grade(type_: IncidentType, impact: Impact, *, is_service: bool, level_hint: int = 0,
          policy: GradePolicy = GradePolicy()) -> Level:
    if type_ in (IncidentType.NORMAL_EVENT,):
        return Level.NOTICE
    if type_ is IncidentType.UNKNOWN:
        return Level(level_hint or Level.NOTICE)
    base = int(BASE_LEVEL_OF_TYPE[type_])
    if is_service:
        if level_hint == 1 or impact.rooms_affected >= policy.shared_rooms_level1:
            return Level.CRITICAL
        if type_ is IncidentType.SERVICE_DEGRADATION and level_hint == 2:
            return Level.MAJOR
        return Level(base)
    level = base
    if impact.viewers < policy.tiny_viewers and impact.gmv_per_min < policy.tiny_gmv_per_min:
        level = min(4, level + 1)
    elif impact.viewers_share >= policy.large_share or impact.gmv_share >= policy.large_share:
        level = max(1, level - 1)
    return Level(level)
