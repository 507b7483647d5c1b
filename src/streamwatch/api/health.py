"""Liveness and readiness (CONTRACTS §5): no token, no work, answer fast."""
from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from streamwatch.api.deps import ServiceDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and its event loop answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(service: ServiceDep) -> JSONResponse:
    """200 once the service accepts samples; 503 while starting or draining."""
    if service.ready:
        return JSONResponse({"status": "ready", "queued_samples": service.queued})
    return JSONResponse({"status": "not ready"}, status_code=503)
