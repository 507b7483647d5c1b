"""Shared vocabulary: levels, teams, statuses, incident types and array aliases. No logic."""
from __future__ import annotations

from enum import IntEnum, StrEnum

import numpy as np
import numpy.typing as npt

__all__ = [
    "Level", "Team", "Status", "IncidentType", "Floats", "Ints", "Bools",
    "TEAM_OF_TYPE", "BASE_LEVEL_OF_TYPE", "CATALOGUE",
]

# CONTRACTS.md §1: the metrics streamwatch knows. Anything else is watched by the generic profile.
CATALOGUE = frozenset({
    "viewers", "entries_total", "comments_total", "likes_total", "shares_total", "follows_total",
    "product_clicks_total", "orders_total", "gmv_total", "complaints_total", "refunds_total",
    "bitrate_kbps", "fps", "dropped_frames_ratio", "rebuffer_ratio", "cpu_utilization",
    "latency_p99_ms", "error_ratio", "live",
})

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


class Level(IntEnum):
    """Response levels of the emergency plan (一级..四级): 1 is the most severe."""
    CRITICAL = 1
    MAJOR = 2
    MINOR = 3
    NOTICE = 4


class Team(StrEnum):
    LIVE_OPS = "live_ops"
    TECH = "tech"
    CUSTOMER_SERVICE = "customer_service"
    LOGISTICS = "logistics"
    COMMAND = "command"


class Status(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class IncidentType(StrEnum):
    STREAM_OUTAGE = "stream_outage"
    CHECKOUT_BROKEN = "checkout_broken"
    PLATFORM_THROTTLE = "platform_throttle"
    HOST_ABSENT = "host_absent"
    COMPLAINT_SURGE = "complaint_surge"
    BOT_TRAFFIC = "bot_traffic"
    SERVICE_DEGRADATION = "service_degradation"
    NORMAL_EVENT = "normal_event"      # level-4 notices: flash sale, lottery, ramp-up ...
    UNKNOWN = "unknown"


# DOMAIN.md's table: who handles each incident type, and its usual level before impact grading.
TEAM_OF_TYPE: dict[IncidentType, Team] = {
    IncidentType.STREAM_OUTAGE: Team.TECH,
    IncidentType.CHECKOUT_BROKEN: Team.TECH,
    IncidentType.PLATFORM_THROTTLE: Team.LIVE_OPS,
    IncidentType.HOST_ABSENT: Team.LIVE_OPS,
    IncidentType.COMPLAINT_SURGE: Team.CUSTOMER_SERVICE,
    IncidentType.BOT_TRAFFIC: Team.LIVE_OPS,
    IncidentType.SERVICE_DEGRADATION: Team.TECH,
    IncidentType.NORMAL_EVENT: Team.LIVE_OPS,
    IncidentType.UNKNOWN: Team.LIVE_OPS,
}

BASE_LEVEL_OF_TYPE: dict[IncidentType, Level] = {
    IncidentType.STREAM_OUTAGE: Level.CRITICAL,
    IncidentType.CHECKOUT_BROKEN: Level.CRITICAL,
    IncidentType.PLATFORM_THROTTLE: Level.MAJOR,
    IncidentType.HOST_ABSENT: Level.MAJOR,
    IncidentType.COMPLAINT_SURGE: Level.MAJOR,
    IncidentType.BOT_TRAFFIC: Level.MINOR,
    IncidentType.SERVICE_DEGRADATION: Level.MINOR,   # MAJOR when errors rise (assess/grade.py)
    IncidentType.NORMAL_EVENT: Level.NOTICE,
    IncidentType.UNKNOWN: Level.MINOR,
}
