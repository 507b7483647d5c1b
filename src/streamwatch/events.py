"""Wire models of CONTRACTS.md §3: the alert event every output carries."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["AlertEvent", "ImpactModel"]


class ImpactModel(BaseModel):
    model_config = ConfigDict(frozen=True)
    viewers: float
    gmv_per_min: float


class AlertEvent(BaseModel):
    """One alert state change. `ts` is the event time of the sample that caused it."""
    model_config = ConfigDict(frozen=True)

    id: str
    ts: float
    stream: str
    metric: str
    level: Literal[1, 2, 3, 4]
    team: Literal["live_ops", "tech", "customer_service", "logistics", "command"]
    status: Literal["firing", "resolved"]
    incident_id: str
    incident_type: str
    kind: str
    score: float
    observed: float | None
    expected: float | None
    summary: str
    runbook: str | None = None
    impact: ImpactModel | None = None
    # additive (CONTRACTS §3 says "at least"): when the incident's anomaly began, event time -
    # the earliest `since` of the signals it first fired on; the review's time-to-detect
    anomaly_started_at: float | None = None
