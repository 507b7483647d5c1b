"""`/v1/webhooks` (CONTRACTS §5): admin-only management of outgoing webhooks.

- `POST /v1/webhooks` `{"url", "format", "secret"?, "min_level"?, "teams"?}` -> `{"id", ...}`.
  Without a `secret` one is generated and returned in this answer only (it is never listed
  again), so every delivery is signed. The URL must be absolute http(s), without credentials,
  and its host must be on the allow-list (`[webhooks] allowed_hosts` / env
  STREAMWATCH_WEBHOOK_ALLOWED_HOSTS): 422 saying which host and what is allowed.
- `GET /v1/webhooks`: the webhooks (no secrets) with their pending count and last error.
- Webhooks are stored (store/, the service's SQLite file) before the answer: 503 when the store
  cannot take them.
- `DELETE /v1/webhooks/{id}`: 200 `{"id", "deleted": true}`, 404 unknown; its pending deliveries
  are dropped (its dead letters stay listed).
- `GET /v1/webhooks/dead-letters`: deliveries given up on, oldest first.

The admin role is required by app.py on the whole router.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from streamwatch.notify.webhook import WebhookDispatcher
from streamwatch.store.base import StoreError

__all__ = ["router", "WebhookIn", "WebhookCreated", "host_allowed", "get_dispatcher"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Team = Literal["live_ops", "tech", "customer_service", "logistics", "command"]


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=2048)
    format: Literal["streamwatch", "alertmanager"] = "streamwatch"
    secret: str | None = Field(default=None, min_length=16, max_length=256)
    min_level: int | None = Field(default=None, ge=1, le=4)
    teams: list[Team] | None = Field(default=None, min_length=1)


class WebhookCreated(BaseModel):
    id: str
    url: str
    format: str
    min_level: int | None
    teams: list[str] | None
    secret: str | None = Field(default=None, description="the generated secret, shown once "
                                                         "(absent when you gave one)")


def get_dispatcher(request: Request) -> WebhookDispatcher:
    return request.app.state.webhooks  # type: ignore[no-any-return]


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Exact (case-insensitive) host or address; `*.example.com` allows its subdomains."""
    host = host.lower().rstrip(".")
    for entry in allowed:
        if entry.startswith("*.") and host.endswith(entry[1:]) and host != entry[2:]:
            return True
        if host == entry:
            return True
    return False


def _refuse(message: str, url: str) -> RequestValidationError:
    return RequestValidationError([{"type": "value_error", "loc": ("body", "url"),
                                    "msg": message, "input": url[:200]}])


def _check_url(url: str, allowed: list[str]) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port                                     # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise _refuse(f"not a valid URL: {exc}", url) from None
    if parts.scheme not in ("http", "https") or not host:
        raise _refuse("must be an absolute http:// or https:// URL", url)
    if parts.username or parts.password:
        raise _refuse("must not carry credentials (user:password@); use the secret", url)
    if not allowed:
        raise _refuse("no webhook target is allowed: set [webhooks] allowed_hosts in "
                      "config/service.toml or env STREAMWATCH_WEBHOOK_ALLOWED_HOSTS", url)
    if not host_allowed(host, allowed):
        raise _refuse(f"host {host!r} is not on the webhook allow-list "
                      f"({', '.join(allowed)})", url)


@router.post("", response_model=WebhookCreated, status_code=201,
             responses={400: {"description": "the body is not JSON"},
                        422: {"description": "bad URL, host not allowed, bad filters"},
                        503: {"description": "the store cannot take it"}})
async def create_webhook(body: WebhookIn, request: Request) -> WebhookCreated:
    """Register a webhook; every matching alert event (firing and resolved) is sent to it."""
    dispatcher = get_dispatcher(request)
    _check_url(body.url, dispatcher.settings.allowed_hosts)
    try:
        hook = dispatcher.add(body.url, body.format, body.secret, body.min_level, body.teams)
    except StoreError as exc:
        raise HTTPException(503, f"the webhook could not be stored: {exc}") from None
    return WebhookCreated(id=hook.id, url=hook.url, format=hook.format,
                          min_level=hook.min_level,
                          teams=list(hook.teams) if hook.teams else None,
                          secret=None if body.secret else hook.secret)


@router.get("")
async def list_webhooks(request: Request) -> dict[str, Any]:
    """The webhooks (secrets never shown), with pending deliveries and the last error."""
    return {"items": get_dispatcher(request).webhooks()}


@router.get("/dead-letters")
async def dead_letters(request: Request) -> dict[str, Any]:
    """Deliveries given up on (retry budget spent, refused, or queue full), oldest first."""
    return {"items": list(get_dispatcher(request).dead_letters)}


@router.delete("/{webhook_id}", responses={404: {"description": "no such webhook"}})
async def delete_webhook(request: Request,
                         webhook_id: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
    """Stop sending to a webhook; its queued deliveries are dropped."""
    try:
        removed = get_dispatcher(request).remove(webhook_id)
    except StoreError as exc:
        raise HTTPException(503, f"the webhook could not be removed: {exc}") from None
    if not removed:
        raise HTTPException(404, f"webhook {webhook_id!r} not found")
    return {"id": webhook_id, "deleted": True}
