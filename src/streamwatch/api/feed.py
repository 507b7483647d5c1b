"""WS /v1/alerts/stream: the alert feed of CONTRACTS §5, over the FeedHub (notify/feed.py).

A client connects with optional filters and gets one `{"type": "snapshot", "incidents": [...],
"last_id": ID}` message (unresolved incidents matching the filters; `last_id` is the newest
event the snapshot reflects), then every matching alert event (§3 plus `"type": "alert"`), one
JSON text message each. `since=ID` resumes after a reconnect: the snapshot first, then exactly
the events after ID, then live ones. Other messages: `{"type": "gap", "since", "reason"}` (ID is
no longer held: the snapshot that follows is the way to catch up) and `{"type": "lagging",
"last_id", "reason"}` (this client fell too far behind; close code 4008 follows, resume with
`since=last_id`).

Query parameters: `team` and `stream` may be repeated or comma-separated; `min_level=N` keeps
levels 1..N; an empty value means "no filter" (so `?team=&min_level=` is the same as none);
`since` and `min_level` may be given once; `token` is the bearer token for browsers (see
api/auth.py; `Authorization: Bearer` works too, role `viewer`); unknown parameters are ignored.
Close codes: 4401 no or unknown token, 4403 the token lacks the `viewer` role, 1008 bad
parameters (the reason names the parameter), 1013 too many clients (try again later), 4008 too
far behind, 1001 the feed is closing. The connection is accepted before any of these closes, so
a browser sees the code and the reason rather than a failed handshake. Messages the client sends are read and ignored.

`install(app, service)` creates the hub, subscribes it to the service, stores it on
`app.state.feed_hub` (read by /metrics as `client_count`) and closes it (1001) after the app's
lifespan has stopped the service. Under uvicorn, a server shutdown closes websockets itself
(1012, "service restart") before the lifespan ends: clients see 1012 then, and reconnect.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, get_args

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, \
    field_validator
from starlette.datastructures import QueryParams

from streamwatch.api.auth import authorize_websocket
from streamwatch.events import AlertEvent
from streamwatch.notify.feed import CLOSE_GOING_AWAY, CLOSE_POLICY, CLOSE_TRY_LATER, FeedClosed, \
    FeedFilter, FeedFull, FeedHub

__all__ = ["router", "install", "get_hub", "FeedQuery", "TEAMS", "MAX_STREAMS"]

log = logging.getLogger("streamwatch.api.feed")

router = APIRouter(tags=["feed"])

TEAMS = frozenset(get_args(AlertEvent.model_fields["team"].annotation))
MAX_STREAMS = 1000            # stream filters per connection
_REASON_BYTES = 123           # the most a websocket close reason may carry

StreamName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class FeedQuery(BaseModel):
    """The feed's query parameters, validated at the edge."""
    model_config = ConfigDict(frozen=True, extra="forbid")

    team: frozenset[str] = frozenset()
    stream: frozenset[StreamName] = Field(default=frozenset(), max_length=MAX_STREAMS)
    min_level: int | None = Field(default=None, ge=1, le=4)
    since: str | None = Field(default=None, min_length=1, max_length=64,
                              pattern=r"^[0-9A-Za-z_.:-]+$")

    @field_validator("team")
    @classmethod
    def _known_teams(cls, v: frozenset[str]) -> frozenset[str]:
        unknown = sorted(v - TEAMS)
        if unknown:
            raise ValueError(f"unknown team {unknown[0]!r} (known: {', '.join(sorted(TEAMS))})")
        return v

    @field_validator("min_level", "since", mode="before")
    @classmethod
    def _once(cls, v: object) -> object:
        if isinstance(v, list):
            raise ValueError("may be given only once")
        return v

    @classmethod
    def from_params(cls, params: QueryParams) -> FeedQuery:
        data: dict[str, Any] = {}
        for name in ("team", "stream"):
            values = [p.strip() for v in params.getlist(name) for p in v.split(",")]
            data[name] = frozenset(v for v in values if v)
        for name in ("min_level", "since"):
            values = [v.strip() for v in params.getlist(name) if v.strip()]
            if len(values) > 1:
                data[name] = values          # refused by the model: one value only
            elif values:
                data[name] = values[0]
        return cls.model_validate(data)

    def filter(self) -> FeedFilter:
        return FeedFilter(self.team, self.stream, self.min_level)


def _reason(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"][:1]) or "query"
    msg = err["msg"].removeprefix("Value error, ")
    text = f"bad {where}: {msg}"
    return text.encode()[:_REASON_BYTES].decode(errors="ignore")


def install(app: FastAPI, service: Any) -> FeedHub:
    """Create the app's feed hub over `service`; close it once the lifespan has stopped."""
    hub = FeedHub.for_service(service)
    app.state.feed_hub = hub
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        try:
            async with inner(a) as state:
                yield state
        finally:
            await hub.close()          # after the service drained: clients got everything

    app.router.lifespan_context = lifespan
    return hub


def get_hub(app: Any) -> FeedHub:
    """The app's hub; created at first use when `install` was not called."""
    hub = getattr(app.state, "feed_hub", None)
    if hub is None:
        hub = app.state.feed_hub = FeedHub.for_service(app.state.service)
    return hub  # type: ignore[no-any-return]


async def _listen(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, until it goes away."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


@router.websocket("/v1/alerts/stream")
async def alerts_stream(websocket: WebSocket) -> None:
    """The alert feed; see the module notes for the messages and close codes."""
    if await authorize_websocket(websocket, "viewer") is None:
        return                              # refused: accepted, closed 4401/4403, counted
    await websocket.accept()
    try:
        query = FeedQuery.from_params(websocket.query_params)
    except ValidationError as exc:
        await websocket.close(CLOSE_POLICY, _reason(exc))
        return
    hub = get_hub(websocket.app)
    try:
        client = hub.connect(query.filter(), query.since)
    except FeedFull:
        await websocket.close(CLOSE_TRY_LATER, "too many feed clients; try again later")
        return
    except FeedClosed:
        await websocket.close(CLOSE_GOING_AWAY, "service stopping")
        return
    pump = asyncio.create_task(hub.run(client, websocket), name="feed-send")
    listen = asyncio.create_task(_listen(websocket), name="feed-listen")
    try:
        await asyncio.wait((pump, listen), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pump, listen):
            task.cancel()
        results = await asyncio.gather(pump, listen, return_exceptions=True)
        hub.disconnect(client)
        for result in results:
            if isinstance(result, (WebSocketDisconnect, OSError)):
                log.debug("feed client went away while being sent to")
            elif isinstance(result, Exception):
                log.error("feed connection failed", exc_info=result)
