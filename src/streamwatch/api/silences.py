"""`/v1/silences`: maintenance windows - matching alert events are recorded but not paged.

- `POST /v1/silences` (operator) `{"stream"?, "metric"?, "incident_type"?, "team"?,
  "starts_at"?, "ends_at" | "duration_s", "comment"?}` -> 201 with the silence. At least one
  matcher; `stream` is exact or a glob (`shop-*`); `team` and `incident_type` must be known
  values; times are unix seconds, wall clock (`starts_at` defaults to now); the window must end
  after it starts and after now (a silence already over silences nothing). 422 otherwise.
  Stored (store/) before the answer: 503 when the store cannot take it.
- `GET /v1/silences` (viewer): every silence, newest first, each with `active` (now).
- `DELETE /v1/silences/{id}` (operator): expire now (the record stays listed, with
  `expired_by`); 404 unknown id.

What a silence does is the Service's (service.py `_publish`, incidents/silence.py): the event is
still logged, stored, indexed and on every feed, flagged `"silenced": true`; webhooks skip it.
The viewer role is required by app.py on the whole router; writes add operator here.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from streamwatch.api.auth import require
from streamwatch.api.deps import ServiceDep
from streamwatch.events import AlertEvent
from streamwatch.store.base import StoreError
from streamwatch.types import IncidentType

__all__ = ["router", "SilenceIn", "MAX_WINDOW_S"]

router = APIRouter(prefix="/v1/silences", tags=["silences"])

MAX_WINDOW_S = 30 * 86400.0          # a month: longer is a config change, not maintenance
Team = Literal[get_args(AlertEvent.model_fields["team"].annotation)]  # type: ignore[misc]
Type = Literal[tuple(t.value for t in IncidentType)]                  # type: ignore[misc]
_OPERATOR = [Depends(require("operator"))]
_STORE_DOWN = {503: {"description": "the store cannot take it"}}


class SilenceIn(BaseModel):
    """A silence to create; every matcher given must match the event."""
    model_config = ConfigDict(extra="forbid")
    stream: str | None = Field(default=None, min_length=1, max_length=512,
                               description="exact stream id or a glob (`*`, `?`, `[..]`)")
    metric: str | None = Field(default=None, min_length=1, max_length=256)
    incident_type: Type | None = None     # type: ignore[valid-type]
    team: Team | None = None              # type: ignore[valid-type]
    starts_at: float | None = Field(default=None, ge=0, description="unix s; default now")
    ends_at: float | None = Field(default=None, ge=0, description="unix s")
    duration_s: float | None = Field(default=None, gt=0, le=MAX_WINDOW_S,
                                     description="instead of ends_at: length from starts_at")
    comment: str = Field(default="", max_length=1000)

    @model_validator(mode="after")
    def _check(self) -> SilenceIn:
        if not any((self.stream, self.metric, self.incident_type, self.team)):
            raise ValueError("at least one matcher is required: stream, metric, incident_type "
                             "or team (a silence of everything is not allowed)")
        if (self.ends_at is None) == (self.duration_s is None):
            raise ValueError("give exactly one of ends_at and duration_s")
        if self.ends_at is not None and self.starts_at is not None:
            if self.ends_at <= self.starts_at:
                raise ValueError(f"ends_at ({self.ends_at}) must be after starts_at "
                                 f"({self.starts_at})")
            if self.ends_at - self.starts_at > MAX_WINDOW_S:
                raise ValueError(f"a silence lasts at most {MAX_WINDOW_S:.0f} s")
        return self


def _principal(request: Request) -> str:
    p = getattr(request.state, "principal", None)
    return str(getattr(p, "name", None) or "anonymous")


def _refuse(msg: str) -> HTTPException:
    return HTTPException(422, [{"type": "value_error", "loc": ["body"], "msg": msg}])


@router.post("", status_code=201, dependencies=_OPERATOR,
             responses={400: {"description": "the body is not JSON"},
                        422: {"description": "no matcher, bad window, unknown team or type"},
                        **_STORE_DOWN})
async def create_silence(body: SilenceIn, request: Request, service: ServiceDep
                         ) -> dict[str, Any]:
    """Silence matching alert events from `starts_at` to `ends_at` (wall clock)."""
    now = service.clock()
    start = now if body.starts_at is None else body.starts_at
    end = body.ends_at if body.ends_at is not None else start + float(body.duration_s or 0)
    if end <= start:
        raise _refuse(f"ends_at ({end}) must be after starts_at ({start})")
    if end <= now:
        raise _refuse(f"ends_at ({end}) is already past (now {now:.3f})")
    if end - start > MAX_WINDOW_S:
        raise _refuse(f"a silence lasts at most {MAX_WINDOW_S:.0f} s")
    try:
        s = service.silences.add(created_by=_principal(request), starts_at=start, ends_at=end,
                                 comment=body.comment, stream=body.stream, metric=body.metric,
                                 incident_type=body.incident_type, team=body.team)
    except StoreError as exc:
        raise HTTPException(503, f"the silence could not be stored: {exc}",
                            headers={"Retry-After": "1"}) from None
    return s.public(now)


@router.get("")
async def list_silences(service: ServiceDep) -> dict[str, Any]:
    """Every silence, newest first, with `active` as of now."""
    now = service.clock()
    return {"items": [s.public(now) for s in service.silences.all()]}


@router.delete("/{silence_id}", dependencies=_OPERATOR,
               responses={404: {"description": "no such silence"}, **_STORE_DOWN})
async def expire_silence(request: Request, service: ServiceDep,
                         silence_id: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
    """Expire a silence now: events from here on are paged again."""
    try:
        s = service.silences.expire(silence_id, _principal(request))
    except StoreError as exc:
        raise HTTPException(503, f"the silence could not be stored: {exc}",
                            headers={"Retry-After": "1"}) from None
    if s is None:
        raise HTTPException(404, f"silence {silence_id!r} not found")
    return s.public(service.clock())
