"""Access control (CONTRACTS §5): bearer tokens, roles, and the count of refused attempts.

Why it is built this way:
- Only SHA-256 digests of tokens are held (config/ stores them; env tokens are hashed at load).
  A presented token is hashed once and compared with *every* stored digest by
  `hmac.compare_digest`, without stopping at a match: neither the comparison nor the loop
  tells an attacker how close a guess was. Hashing first also makes the comparison length-fixed.
- Roles: `ingest` pushes samples; `viewer` reads; `operator` = viewer + ack/resolve/note/
  silences; `admin` = everything. A token listed under several roles has them all.
- No or unknown token -> 401 (with `WWW-Authenticate: Bearer`); a known token without the role
  -> 403. Each refusal is counted by reason (`missing`, `unknown`, `forbidden`) for /metrics and
  logged without the token (reason, method, path without its query, client address).
- The route checks are FastAPI dependencies, `require("viewer")` etc. (declared as an HTTP
  Bearer scheme, so /docs has an "Authorize" button); the principal is kept on
  `request.state.principal`, so a router-level and a route-level check cost one lookup.
- The websocket takes the token from `Authorization: Bearer` or, for browsers (which cannot set
  headers on a websocket), the `token=` query parameter. A refusal accepts and then closes,
  so the client sees a code and reason rather than a failed handshake: 4401 (no or unknown
  token) and 4403 (role missing), mirroring the HTTP statuses; 1008 stays "bad parameters".
- uvicorn logs a websocket's path *with its query* ("WebSocket /v1/alerts/stream?token=...");
  `install_log_redaction` rewrites `token=` values in uvicorn's records before any handler sees
  them.
- Without tokens and with `auth.insecure_no_auth`, every check passes as "anonymous" (the CLI
  refuses to get there silently). With tokens configured, tokens are always enforced.
"""
from __future__ import annotations

import hmac
import logging
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import HTTPException, Request, Security, WebSocket
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from streamwatch.config.schema import AuthSettings, token_digest

__all__ = ["Principal", "Authenticator", "AuthFailure", "require", "authorize_websocket",
           "Denied", "AUTH_RESPONSES",
           "get_authenticator", "install_log_redaction", "RedactTokens", "REASONS",
           "CLOSE_UNAUTHORIZED", "CLOSE_FORBIDDEN", "ANONYMOUS"]

log = logging.getLogger("streamwatch.api.auth")

Reason = Literal["missing", "unknown", "forbidden"]
REASONS: tuple[Reason, ...] = ("missing", "unknown", "forbidden")
CLOSE_UNAUTHORIZED = 4401     # websocket: no or unknown token (HTTP 401)
CLOSE_FORBIDDEN = 4403        # websocket: the token lacks the role (HTTP 403)

# which held roles grant a required one
_GRANTED_BY: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest", "admin"}),
    "viewer": frozenset({"viewer", "operator", "admin"}),
    "operator": frozenset({"operator", "admin"}),
    "admin": frozenset({"admin"}),
}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts as: a name (for timelines, `acked_by`) and the roles it holds."""
    name: str
    roles: frozenset[str]

    def allows(self, role: str) -> bool:
        return bool(self.roles & _GRANTED_BY[role])


ANONYMOUS = Principal("anonymous", frozenset({"admin"}))


class AuthFailure(Exception):
    """A refused attempt: its reason (the metric label) and what the client is told."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status(self) -> int:
        return 403 if self.reason == "forbidden" else 401

    @property
    def ws_code(self) -> int:
        return CLOSE_FORBIDDEN if self.reason == "forbidden" else CLOSE_UNAUTHORIZED


class Authenticator:
    """The app's token store (digests only) and its refusal counter (`failures[reason]`)."""

    def __init__(self, settings: AuthSettings) -> None:
        by_digest: dict[str, tuple[str, set[str]]] = {}
        for i, entry in enumerate(settings.tokens, start=1):
            name, roles = by_digest.setdefault(
                entry.sha256, (entry.name or f"{entry.role}:config#{i}", set()))
            roles.add(entry.role)
        self._entries: tuple[tuple[bytes, Principal], ...] = tuple(
            (bytes.fromhex(digest), Principal(name, frozenset(roles)))
            for digest, (name, roles) in by_digest.items())
        self.open = not self._entries and settings.insecure_no_auth
        self.failures: Counter[str] = Counter({r: 0 for r in REASONS})

    @property
    def token_count(self) -> int:
        return len(self._entries)

    def identify(self, token: str | None) -> Principal:
        """The principal holding `token`; AuthFailure (missing/unknown) otherwise."""
        if self.open:
            return ANONYMOUS
        if not token:
            raise AuthFailure("missing", "a bearer token is required "
                                         "(Authorization: Bearer TOKEN)")
        presented = bytes.fromhex(token_digest(token))
        found: Principal | None = None
        for digest, principal in self._entries:      # no early exit: constant in the match
            if hmac.compare_digest(presented, digest) and found is None:
                found = principal
        if found is None:
            raise AuthFailure("unknown", "unknown token")
        return found

    def authorize(self, token: str | None, role: str) -> Principal:
        """The principal if it may act as `role`; AuthFailure otherwise (not yet counted)."""
        return self.check(self.identify(token), role)

    @staticmethod
    def check(principal: Principal, role: str) -> Principal:
        if not principal.allows(role):
            held = ", ".join(sorted(principal.roles))
            raise AuthFailure("forbidden", f"this token's role ({held}) does not allow this: "
                                           f"it needs {role}")
        return principal

    def refused(self, failure: AuthFailure, method: str, path: str, client: Any) -> None:
        """Count and log a refusal; the token is never part of what is logged."""
        self.failures[failure.reason] += 1
        log.info("access refused", extra={"reason": failure.reason, "method": method,
                                          "path": path, "client": _addr(client)})


def _addr(client: Any) -> str | None:
    return f"{client.host}:{client.port}" if client is not None else None


class Denied(BaseModel):
    """The body of a 401 or 403: why (never the token)."""
    detail: str


# the OpenAPI `responses` of every route behind `require(...)`, so clients (and the schema
# fuzzing of tests/api/test_fuzz.py) know a refusal is part of the interface
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Denied, "description": "no or unknown token (`WWW-Authenticate: Bearer`)"},
    403: {"model": Denied, "description": "the token's role does not allow this"},
}


_bearer = HTTPBearer(auto_error=False, description="an API token (role: ingest, viewer, "
                                                    "operator or admin)")


def get_authenticator(app: Any) -> Authenticator:
    auth = getattr(app.state, "auth", None)
    if auth is None:                       # an app built without create_app: fail closed
        auth = app.state.auth = Authenticator(AuthSettings())
    return auth  # type: ignore[no-any-return]


def require(role: str) -> Any:
    """A FastAPI dependency (use as `Depends(require("viewer"))` or in `dependencies=[...]`):
    401/403 unless the request's bearer token holds `role`; returns the Principal."""
    if role not in _GRANTED_BY:
        raise ValueError(f"unknown role {role!r}")

    async def dependency(request: Request, credentials: HTTPAuthorizationCredentials | None
                         = Security(_bearer)) -> Principal:
        auth = get_authenticator(request.app)
        try:
            principal = getattr(request.state, "principal", None)
            if not isinstance(principal, Principal):
                principal = auth.identify(credentials.credentials if credentials else None)
                request.state.principal = principal
            return auth.check(principal, role)
        except AuthFailure as failure:
            auth.refused(failure, request.method, request.url.path, request.client)
            headers = None
            if failure.status == 401:
                err = ' error="invalid_token"' if failure.reason == "unknown" else ""
                headers = {"WWW-Authenticate": f'Bearer realm="streamwatch"{err}'}
            raise HTTPException(failure.status, failure.detail, headers=headers) from None

    dependency.__name__ = f"require_{role}"
    return dependency


async def authorize_websocket(websocket: WebSocket, role: str) -> Principal | None:
    """The principal of a websocket (token from the Authorization header, else `?token=`), or
    None after accepting and closing it with 4401/4403 and a reason (counted, logged)."""
    auth = get_authenticator(websocket.app)
    header = websocket.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    token = credentials.strip() if scheme.lower() == "bearer" else ""
    token = token or websocket.query_params.get("token", "")
    try:
        principal = auth.authorize(token or None, role)
    except AuthFailure as failure:
        auth.refused(failure, "WEBSOCKET", websocket.url.path, websocket.client)
        await websocket.accept()
        await websocket.close(failure.ws_code, failure.detail[:123])
        return None
    websocket.state.principal = principal
    return principal


_SECRETS = (re.compile(r"(?i)((?:\?|&|%3F|%26)token=)[^&\s\"']*"),
            re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',]+"))


class RedactTokens(logging.Filter):
    """Rewrites `token=VALUE` (a URL's query) and `authorization: Bearer VALUE` (uvicorn's DEBUG
    dump of websocket headers) in a record's message to `[redacted]`; keeps the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:                  # a broken record is the handler's business
            return True
        lowered = message.lower()
        if "token=" in lowered or "authorization" in lowered:
            for pattern in _SECRETS:
                message = pattern.sub(r"\1[redacted]", message)
            record.msg = message
            record.args = None
        return True


def install_log_redaction(names: tuple[str, ...] = ("uvicorn.error", "uvicorn.access")) -> None:
    """Put one RedactTokens filter on each of uvicorn's loggers (idempotent)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
