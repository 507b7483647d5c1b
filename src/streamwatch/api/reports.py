"""`GET /v1/reports/review?from=&to=` (CONTRACTS §5): the response-speed review.

The numbers and their definitions live in incidents/review.py; this module parses the window
and picks the incidents. `from`/`to` are unix seconds or RFC 3339 (with an offset or `Z`; a
time without one is refused rather than guessed); default the last 24 h of the wall clock,
either bound alone extends 24 h from the other. The window is on incidents' `started_at`,
i.e. event time. Incidents come from the durable store (all of them, not only the ones the
in-memory index still holds); without a store, from the index. A bad bound is 422 in FastAPI's
own shape, naming the parameter; a store that cannot be read is 503.

The store query scans the incidents table (measured: 20,000 incidents, 24 h window: ~0.4 s
query + ~0.25 s computation). That must not stall the event loop that ingests samples, so for a
store file the route opens its own read connection in a worker thread (WAL: readers never block
the writer, and the service's connection stays on the loop thread); an in-memory store (tests,
demo) can only be read on the loop.
"""
from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from streamwatch.api.deps import ServiceDep
from streamwatch.incidents.review import BadBound, review, window
from streamwatch.store import SqliteStore, StoreError

__all__ = ["router", "ReviewReport", "ReviewRow", "Durations"]

router = APIRouter(prefix="/v1/reports", tags=["reports"])


class Durations(BaseModel):
    n: int
    median: float | None
    p90: float | None


class ReviewRow(BaseModel):
    team: str | None
    level: int | None
    incidents: int
    open: int
    acked: int
    resolved: int
    false_alarms: int
    escalations: int
    escalated: int = Field(description="incidents with at least one escalation step")
    time_to_detect_s: Durations
    time_to_ack_s: Durations
    time_to_resolve_s: Durations
    clock_skipped: int


class ReviewReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: float = Field(alias="from")
    to: float
    rows: list[ReviewRow]
    teams: list[ReviewRow]
    total: ReviewRow
    escalations_tracked: bool
    notes: dict[str, str]


def _window(start: str | None, end: str | None, now: float) -> tuple[float, float]:
    try:
        return window(start, end, now)
    except BadBound as exc:
        raise RequestValidationError([{
            "type": "value_error", "loc": ("query", exc.name),
            "msg": f"query parameter {exc.name!r}: {exc.message}", "input": exc.value}]) from None


@router.get("/review", response_model=ReviewReport,
            responses={503: {"description": "the store could not be read"}})
async def get_review(
    service: ServiceDep,
    from_: Annotated[str | None, Query(alias="from", max_length=64, description=(
        "window start: unix seconds or RFC 3339 (default: `to` - 24 h)"))] = None,
    to: Annotated[str | None, Query(max_length=64, description=(
        "window end, exclusive (default: now, or `from` + 24 h)"))] = None,
) -> dict[str, Any]:
    """Response-speed review per team and level of the incidents started in [from, to)."""
    t0, t1 = _window(from_, to, service.clock())
    store = service.store
    try:
        if isinstance(store, SqliteStore) and store.path != ":memory:":
            return await asyncio.to_thread(_from_file, store.path, t0, t1)
        if store is not None:
            docs = [r.doc for r in store.load_incidents_started(t0, t1)]
        else:
            docs = list(service.incidents.query())
    except StoreError as exc:
        raise HTTPException(503, f"review unavailable: {exc}",
                            headers={"Retry-After": "5"}) from None
    return review(docs, t0, t1)


def _from_file(path: str, t0: float, t1: float) -> dict[str, Any]:
    """The review from a connection of its own to the store file (worker thread)."""
    reader = SqliteStore(path, busy_timeout=2.0)
    try:
        return review([r.doc for r in reader.load_incidents_started(t0, t1)], t0, t1)
    finally:
        reader.close()
