"""The REST read side of incidents and alert events (CONTRACTS §5).

- `GET /v1/incidents`: newest first, filtered, paged by an opaque `next` cursor. Incident ids are
  zero-padded sequence numbers, so the cursor is simply "the last id you got" and a page after it
  holds the older ones; it stays valid when incidents are resolved or evicted meanwhile.
- `GET /v1/incidents/{id}`: one incident with its timeline; 404 naming the id.
- `GET /v1/alerts`: alert events (CONTRACTS §3) still held by the event log, oldest first.
  With `since` it pages forward from that event (the first `limit` after it); without, it gives
  the newest `limit`. `next` is the id to pass as `since` to continue (null when nothing was held
  at all), so polling `since=next` sees every event once. A `since` older than what the log
  holds is 410 Gone: events were lost to the client, it must start again from the incidents.

Operator actions (CONTRACTS §5), each answered with the incident as it is afterwards:
- `POST /v1/incidents/{id}/ack`, `/resolve` (manual), `/note`; optional body `{"note": str}`
  (on all three; for `/note` it is the point). Each adds a timeline entry `{"ts", "action", "by",
  "note"?}` - `ts` the wall clock of the action, `by` the caller's principal ("anonymous" without
  auth) - and is stored durably (store/, fsync'ed) before the 2xx. 404 unknown id; 503 when the
  store cannot take it (nothing was answered 2xx that is not stored). Acking a resolved incident
  is recorded (200: a late ack is still a response the review should see; `acked_at` is set if it
  was never acked); resolving a resolved one is 409. A manual resolve emits a resolved alert
  event like any other, so the feed and every output see it.

Routes are `async def` on purpose: they run on the loop thread that mutates the index, and copy
what they return before any await, so an answer is one consistent moment.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from streamwatch.api.auth import require
from streamwatch.api.deps import ServiceDep
from streamwatch.events import AlertEvent, ImpactModel
from streamwatch.notify.log import Gap
from streamwatch.service import ActionError

__all__ = ["router", "Incident", "IncidentPage", "TimelineEntry", "AlertPage", "MAX_LIMIT",
           "ActionBody", "MAX_NOTE", "LoggedAlert"]

router = APIRouter(prefix="/v1", tags=["incidents"])

MAX_LIMIT = 1000
MAX_NOTE = 4000
_CURSOR = re.compile(r"inc-\d{1,20}")
_EVENT_ID = re.compile(r"\d{1,30}")

Team = Literal["live_ops", "tech", "customer_service", "logistics", "command"]
Status = Literal["open", "acked", "resolved"]
Level = Annotated[int | None, Query(ge=1, le=4, description=(
    "keep levels 1..N (N and more severe; 1 is critical)"))]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="page size")]
StreamQ = Annotated[str | None, Query(min_length=1, max_length=512,
                                      description="exact stream id")]
TeamQ = Annotated[Team | None, Query()]


class TimelineEntry(BaseModel):
    """One step of an incident's life: firing (and level changes), resolved, ack, note..."""
    model_config = ConfigDict(extra="allow")
    ts: float
    action: str
    by: str | None = None
    note: str | None = None


class Incident(BaseModel):
    model_config = ConfigDict(extra="allow")      # later fields (notes, escalation) pass through
    id: str
    status: Status
    type: str
    stream: str
    team: Team
    level: int = Field(ge=1, le=4)
    started_at: float
    acked_at: float | None = None
    acked_by: str | None = None
    resolved_at: float | None = None
    summary: str | None = None
    runbook: str | None = None
    impact: ImpactModel | None = None
    timeline: list[TimelineEntry]


class IncidentPage(BaseModel):
    items: list[Incident]
    next: str | None = Field(description="pass as `cursor` for the next (older) page")


class LoggedAlert(AlertEvent):
    """An alert event as the service published it: additive fields the service sets."""
    silenced: bool = Field(default=False, description="matched an active silence: recorded, "
                                                     "not paged (api/silences.py)")


class AlertPage(BaseModel):
    items: list[LoggedAlert]
    next: str | None = Field(description="pass as `since` to get what follows")


@router.get("/incidents", response_model=IncidentPage)
async def list_incidents(
    service: ServiceDep,
    status: Annotated[Status | None, Query()] = None,
    team: TeamQ = None,
    min_level: Level = None,
    stream: StreamQ = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(description="the `next` of the previous page")] = None,
) -> IncidentPage:
    """Incidents, newest first (all statuses unless `status` is given)."""
    if cursor is not None and not _CURSOR.fullmatch(cursor):
        raise _bad_query("cursor", cursor, f"{cursor[:60]!r} is not a cursor this API gave out "
                                   "(expected the `next` of a previous page)")
    found = service.incidents.query(status=status, team=team, min_level=min_level,
                                    stream=stream)
    if cursor is not None:
        key = _order(cursor)
        found = [i for i in found if _order(i["id"]) < key]
    page = [Incident.model_validate(i) for i in found[:limit]]   # copies: a consistent moment
    return IncidentPage(items=page, next=page[-1].id if len(found) > limit else None)


@router.get("/incidents/{incident_id}", response_model=Incident,
            responses={404: {"description": "no such incident (named in the message)"}})
async def get_incident(service: ServiceDep,
                       incident_id: Annotated[str, Path(max_length=200)]) -> Incident:
    """One incident with its full timeline."""
    inc = service.incidents.get(incident_id)
    if inc is None:
        raise HTTPException(404, f"incident {incident_id!r} not found (unknown, or resolved "
                                 "long enough ago to be evicted)")
    return Incident.model_validate(inc)


@router.get("/alerts", response_model=AlertPage,
            responses={410: {"description": "`since` is older than the events still held"}})
async def list_alerts(
    service: ServiceDep,
    since: Annotated[str | None, Query(description="an event id: only events after it")] = None,
    team: TeamQ = None,
    min_level: Level = None,
    stream: StreamQ = None,
    limit: Limit = 100,
) -> AlertPage:
    """Recent alert events, oldest first (see the module notes for paging)."""
    if since is not None and not _EVENT_ID.fullmatch(since):
        raise _bad_query("since", since, f"{since[:60]!r} is not an event id")
    try:
        held = service.log.since(since)
    except Gap as gap:
        raise HTTPException(410, f"query parameter 'since': {gap}") from None
    picked = [e.data for e in held if _keep(e.data, team, min_level, stream)]
    chunk = picked[:limit] if since is not None else picked[-limit:]
    items = [LoggedAlert.model_validate(d) for d in chunk]
    if since is not None and len(picked) > limit:
        nxt = chunk[-1]["id"]                      # more to come: continue after this page
    else:
        nxt = held[-1].id if held else since      # all seen: skip past the filtered-out ones
    return AlertPage(items=items, next=nxt)


class ActionBody(BaseModel):
    """Optional body of an operator action."""
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    false_alarm: bool | None = Field(default=None, description=(
        "mark the incident a false alarm (true) or take the mark back (false); counted by the "
        "review report"))


IncidentId = Annotated[str, Path(max_length=200)]
OptionalBody = Annotated[ActionBody | None, Body()]
_ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body is not JSON"},
    404: {"description": "no such incident (named in the message)"},
    503: {"description": "the store could not take the action; nothing was changed, retry"}}
# reading needs `viewer` (the router's, set in app.py); acting needs `operator`
_OPERATOR = [Depends(require("operator"))]


def _principal(request: Request) -> str:
    """Who acts: the authenticated principal (auth sets `request.state.principal`), else
    "anonymous"."""
    p = getattr(request.state, "principal", None)
    if p is None:
        return "anonymous"
    name = p if isinstance(p, str) else getattr(p, "name", None) or getattr(p, "id", None)
    return str(name or p)


async def _act(request: Request, service: Any, incident_id: str, action: str,
               body: ActionBody | None) -> Incident:
    try:
        inc = await service.act(incident_id, action, _principal(request),
                                body.note if body is not None else None,
                                false_alarm=body.false_alarm if body is not None else None)
    except ActionError as exc:
        raise HTTPException(exc.status, str(exc),
                            headers={"Retry-After": "1"} if exc.status == 503 else None
                            ) from None
    return Incident.model_validate(inc)


@router.post("/incidents/{incident_id}/ack", response_model=Incident,
             responses=_ACTION_RESPONSES, dependencies=_OPERATOR)
async def ack_incident(request: Request, service: ServiceDep, incident_id: IncidentId,
                       body: OptionalBody = None) -> Incident:
    """Acknowledge: sets `acked_at`/`acked_by` (first ack) and adds an `ack` timeline entry."""
    return await _act(request, service, incident_id, "ack", body)


@router.post("/incidents/{incident_id}/resolve", response_model=Incident,
             responses={**_ACTION_RESPONSES, 409: {"description": "already resolved"}},
             dependencies=_OPERATOR)
async def resolve_incident(request: Request, service: ServiceDep, incident_id: IncidentId,
                           body: OptionalBody = None) -> Incident:
    """Resolve by hand: closes the incident and emits its resolved alert event."""
    return await _act(request, service, incident_id, "resolve", body)


@router.post("/incidents/{incident_id}/note", response_model=Incident,
             responses=_ACTION_RESPONSES, dependencies=_OPERATOR)
async def note_incident(request: Request, service: ServiceDep, incident_id: IncidentId,
                        body: OptionalBody = None) -> Incident:
    """Add a note (`{"note": str}`) to the incident's timeline."""
    return await _act(request, service, incident_id, "note", body)


def _bad_query(name: str, value: str, msg: str) -> RequestValidationError:
    """422 in FastAPI's own shape (`detail[].loc` names the parameter), like its built-in
    checks of types and ranges."""
    return RequestValidationError([{"type": "value_error", "loc": ("query", name),
                                    "msg": f"query parameter {name!r}: {msg}", "input": value}])


def _keep(d: dict[str, Any], team: str | None, min_level: int | None,
          stream: str | None) -> bool:
    return ((team is None or d["team"] == team)
            and (min_level is None or d["level"] <= min_level)
            and (stream is None or d["stream"] == stream))


def _order(incident_id: str) -> int:
    """Sequence number of an `inc-NNNNNNNN` id (numeric, so more than 8 digits still sorts)."""
    tail = incident_id.rpartition("-")[2]
    return int(tail) if tail.isdigit() else -1
