"""Liveness and readiness (CONTRACTS §5): no token, no work, answer fast."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from streamwatch.api.deps import ServiceDep
from streamwatch.service import Service

__all__ = ["router", "store_health"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 once the service accepts samples; 503 while starting or draining. `store` says
    whether alert events are being stored: a failing store (full, locked) does not make the
    service unready - it keeps detecting and publishing, holds the events and retries - so it
    is reported here (and on /metrics, `streamwatch_store_up`), not turned into a 503."""
    if service.ready:
        return JSONResponse({"status": "ready", "queued_samples": service.queued,
                             "store": store_health(service)})
    return JSONResponse({"status": "not ready"}, status_code=503)


def store_health(service: Service) -> dict[str, object]:
    """`state`: ok | failing (writes fail: `error` says why; `pending` events and actions wait
    in memory and are retried) | unavailable (could not be opened at start: running without
    durability). `dropped_events`: never stored, the store stayed down past the in-memory bound."""
    if service.store is None:
        state = "unavailable"
    else:
        state = "failing" if service.store_error is not None else "ok"
    return {"state": state, "error": service.store_error,
            "pending": service.store_pending,
            "dropped_events": service.stats.store_dropped}
