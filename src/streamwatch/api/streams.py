"""What is being watched right now: streams (`GET /v1/streams`) and pull sources
(`GET /v1/sources`).

`/v1/streams` answers from `Service.streams_view()`: per stream its newest values (gauges as
sent, counters as a rate per minute, the same numbers the detectors judge), whether it is on air,
silent, its newest event time and its open incidents. `/v1/sources` reports each configured pull
source's health (`ingest/pull.py` `SourceState`); push-only deployments have none, an empty list.
Both are `async def`: they read state owned by the event loop thread.
"""
from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from streamwatch.api.deps import ServiceDep

__all__ = ["router", "StreamView", "StreamList", "SourceView", "SourceList"]

router = APIRouter(prefix="/v1", tags=["streams"])


class StreamView(BaseModel):
    model_config = ConfigDict(extra="allow")
    stream: str
    live: bool | None = Field(description="on air (true), ended (false), unknown (null)")
    last_ts: float | None = Field(description="newest event time seen for the stream")
    silent: bool = Field(description="a live room whose collectors all stopped reporting")
    open_incidents: list[str]
    metrics: dict[str, float] = Field(
        description="newest value per metric: gauges as sent, counters as a rate per minute")


class StreamList(BaseModel):
    items: list[StreamView]


class SourceView(BaseModel):
    model_config = ConfigDict(extra="allow")        # whatever else the pull side tracks
    name: str
    kind: str
    state: str = Field(description="starting | ok | failing")
    last_success: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    polls: int = 0
    samples: int = 0
    lag_s: float | None = None


class SourceList(BaseModel):
    items: list[SourceView]


@router.get("/streams", response_model=StreamList)
async def list_streams(
    service: ServiceDep,
    stream: Annotated[str | None, Query(min_length=1, max_length=512,
                                        description="only this stream (exact id)")] = None,
) -> StreamList:
    """Each tracked stream's newest values and health."""
    # a name the parser interned for a body that was then refused (400/413/429), or whose every
    # sample was rejected, has no admitted sample: not a tracked stream
    view = [v for v in service.streams_view()
            if (v["last_ts"] is not None or v["metrics"] or v["open_incidents"])
            and (stream is None or v["stream"] == stream)]
    return StreamList(items=[StreamView.model_validate(v) for v in view])


@router.get("/sources", response_model=SourceList)
async def list_sources(service: ServiceDep) -> SourceList:
    """Health of the pull sources (empty when none is configured)."""
    return SourceList(items=[SourceView.model_validate(
        dataclasses.asdict(s) if dataclasses.is_dataclass(s) else vars(s))
        for s in service.sources])
