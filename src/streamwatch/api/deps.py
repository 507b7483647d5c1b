"""Request dependencies: the Service behind every route, taken from the app state."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, WebSocket

from streamwatch.service import Service

__all__ = ["ServiceDep", "get_service", "get_service_ws"]


def get_service(request: Request) -> Service:
    return request.app.state.service  # type: ignore[no-any-return]


def get_service_ws(websocket: WebSocket) -> Service:
    return websocket.app.state.service  # type: ignore[no-any-return]


ServiceDep = Annotated[Service, Depends(get_service)]
