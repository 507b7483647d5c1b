"""Access control (CONTRACTS §5, api/auth.py) over a real server: 401/403/2xx per route and role,
the websocket's token, the refusal counter on /metrics, no token in any log line, the config and
env forms of tokens, and `serve` refusing to run open unless told so."""
from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

import streamwatch.api.auth as auth_mod
from streamwatch.api.auth import Authenticator
from streamwatch.config.load import TOKENS_ENV, load_config
from streamwatch.config.schema import ROLES, AuthSettings, TokenEntry, token_digest
from streamwatch.exceptions import ConfigError
from tests.api.conftest import REPO, LiveServer, bearer, wait_until, with_tokens

__all__: list[str] = []

TOKENS = {role: f"{role}-test-token-{i}-Zq8vK2mXw4" for i, role in
          enumerate(("ingest", "viewer", "operator", "admin"))}
WRONG = "not-a-known-token-Hx81kPq0Ta"
PUBLIC = {"/", "/static/{name}", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json",
          "/healthz", "/readyz", "/metrics"}
FEED = "/v1/alerts/stream"
SAMPLE = orjson.dumps({"stream": "room-auth", "metric": "viewers", "ts": time.time() - 10,
                       "value": 100.0}) + b"\n"


@pytest.fixture(scope="module")
def srv(live_server_module: Callable[..., LiveServer]) -> LiveServer:
    return live_server_module(auth=with_tokens(**TOKENS))


def failures(live: LiveServer, token: str | None = None) -> dict[str, float]:
    r = httpx.get(f"{live.url}/metrics", headers=bearer(token) if token else None, timeout=10)
    assert r.status_code == 200, r.text
    return {s.labels["reason"]: s.value for fam in text_string_to_metric_families(r.text)
            if fam.name == "streamwatch_auth_failures" for s in fam.samples}


def call(live: LiveServer, method: str, path: str, token: str | None = None,
         **kw: Any) -> httpx.Response:
    return httpx.request(method, f"{live.url}{path}", headers=bearer(token) if token else None,
                         timeout=10, **kw)


async def ws_close(url: str, **kw: Any) -> Close:
    """Connect, and return the close frame the server ends with (a message first fails)."""
    async with connect(url, **kw) as ws:
        with pytest.raises(ConnectionClosed) as info:
            m = await asyncio.wait_for(ws.recv(), 10)
            pytest.fail(f"expected a close, got {m!r}")
    assert info.value.rcvd is not None
    return info.value.rcvd


async def ws_snapshot(url: str, **kw: Any) -> dict[str, Any]:
    async with connect(url, **kw) as ws:
        return orjson.loads(await asyncio.wait_for(ws.recv(), 10))  # type: ignore[no-any-return]


# -- every route -----------------------------------------------------------------------------
def _operations(live: LiveServer) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) of every route the OpenAPI document lists (all but `/` and
    `/static/*`, which are public and kept out of the schema)."""
    doc = call(live, "GET", "/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_every_route_outside_the_public_list_needs_a_token(srv: LiveServer) -> None:
    """Walks the API's own list of routes, so a route added later without a role fails here."""
    protected = [(m, p, op) for m, p, op in _operations(srv) if p not in PUBLIC]
    assert {("POST", "/v1/samples"), ("GET", "/v1/incidents"),
            ("POST", "/v1/incidents/{incident_id}/ack")} <= {(m, p) for m, p, _ in protected}
    for method, path, op in protected:
        assert op.get("security") == [{"HTTPBearer": []}], (method, path)
        url = re.sub(r"\{[^}]+\}", "x", path)
        for token in (None, WRONG):
            r = call(srv, method, url, token)
            assert r.status_code == 401, (method, path, token, r.status_code, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer"), (method, path)


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/docs", "/openapi.json", "/healthz",
                                  "/readyz", "/metrics"])
def test_public_routes_need_no_token(srv: LiveServer, path: str) -> None:
    assert call(srv, "GET", path).status_code == 200


def test_openapi_documents_the_refusals_of_every_route_behind_a_role(srv: LiveServer) -> None:
    """Found by tests/api/test_fuzz.py: 401/403 (and FastAPI's 400 for a body that is not JSON)
    were answered but not in the schema, so a client generated from it did not expect them."""
    for method, path, op in _operations(srv):
        if path in PUBLIC:
            continue
        assert {"401", "403"} <= set(op["responses"]), (method, path)
        detail = op["responses"]["401"]["content"]["application/json"]["schema"]
        assert detail == {"$ref": "#/components/schemas/Denied"}, (method, path)
        if "application/json" in op.get("requestBody", {}).get("content", {}) \
                and path != "/v1/samples":           # the push reads its body itself
            assert "400" in op["responses"], (method, path)


def test_openapi_declares_the_bearer_scheme(srv: LiveServer) -> None:
    doc = call(srv, "GET", "/openapi.json").json()
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert doc["paths"]["/v1/incidents"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in doc["paths"]["/healthz"]["get"]


# -- roles -----------------------------------------------------------------------------------
READS = ["/v1/incidents", "/v1/incidents/inc-00000001", "/v1/alerts", "/v1/streams",
         "/v1/sources"]
ACTIONS = ["/v1/incidents/inc-99999999/ack", "/v1/incidents/inc-99999999/resolve",
           "/v1/incidents/inc-99999999/note"]


def test_roles_grant_what_the_contract_says(srv: LiveServer) -> None:
    expect_read = {"ingest": 403, "viewer": 200, "operator": 200, "admin": 200}
    for role, token in TOKENS.items():
        for path in READS:
            r = call(srv, "GET", path, token)
            want = expect_read[role]
            if want == 200 and path.startswith("/v1/incidents/inc-"):
                want = 404                 # allowed in; the incident does not exist
            assert r.status_code == want, (role, path, r.status_code, r.text)
        for path in ACTIONS:               # unknown incident: 404 means the role was enough
            r = call(srv, "POST", path, token, json={"note": "n"})
            want = 404 if role in ("operator", "admin") else 403
            assert r.status_code == want, (role, path, r.status_code, r.text)
        r = call(srv, "POST", "/v1/samples", token, content=SAMPLE)
        want = 200 if role in ("ingest", "admin") else 403
        assert r.status_code == want, (role, r.status_code, r.text)
        if want == 200:
            assert r.json()["accepted"] == 1


def test_forbidden_says_which_role_is_needed(srv: LiveServer) -> None:
    r = call(srv, "GET", "/v1/incidents", TOKENS["ingest"])
    assert r.status_code == 403 and "viewer" in r.json()["detail"]
    r = call(srv, "POST", "/v1/samples", TOKENS["viewer"], content=SAMPLE)
    assert r.status_code == 403 and "ingest" in r.json()["detail"]


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", TOKENS["admin"],
                                    f"Token {TOKENS['admin']}"])
def test_malformed_authorization_headers_are_401(srv: LiveServer, header: str) -> None:
    r = httpx.get(f"{srv.url}/v1/streams", headers={"Authorization": header}, timeout=10)
    assert r.status_code == 401


def test_token_in_the_query_does_not_open_http_routes(srv: LiveServer) -> None:
    """Only the websocket takes `?token=` (browsers cannot set its headers)."""
    r = httpx.get(f"{srv.url}/v1/streams", params={"token": TOKENS["admin"]}, timeout=10)
    assert r.status_code == 401


# -- the counter -----------------------------------------------------------------------------
def test_refusals_are_counted_by_reason(srv: LiveServer) -> None:
    before = failures(srv)
    call(srv, "GET", "/v1/streams")                              # missing
    call(srv, "GET", "/v1/streams", WRONG)                       # unknown
    call(srv, "POST", "/v1/samples", WRONG, content=SAMPLE)      # unknown
    call(srv, "GET", "/v1/streams", TOKENS["ingest"])            # forbidden
    call(srv, "GET", "/v1/streams", TOKENS["viewer"])            # fine: not counted
    after = failures(srv)
    assert {k: after[k] - before.get(k, 0) for k in after} == {
        "missing": 1, "unknown": 2, "forbidden": 1}


# -- websocket -------------------------------------------------------------------------------
async def test_feed_accepts_the_token_as_query_or_header(srv: LiveServer) -> None:
    url = f"{srv.ws_url}{FEED}"
    for token in (TOKENS["viewer"], TOKENS["operator"], TOKENS["admin"]):
        assert (await ws_snapshot(f"{url}?token={token}"))["type"] == "snapshot"
        assert (await ws_snapshot(url, additional_headers=bearer(token)))["type"] == "snapshot"


async def test_feed_refuses_with_4401_or_4403_and_counts(srv: LiveServer) -> None:
    url = f"{srv.ws_url}{FEED}"
    before = failures(srv)
    missing = await ws_close(url)
    unknown = await ws_close(f"{url}?token={WRONG}&team=tech")
    bad_header = await ws_close(url, additional_headers=bearer(WRONG))
    forbidden = await ws_close(f"{url}?token={TOKENS['ingest']}")
    assert (missing.code, unknown.code, bad_header.code) == (4401, 4401, 4401)
    assert forbidden.code == 4403 and "viewer" in forbidden.reason
    after = failures(srv)
    assert {k: after[k] - before.get(k, 0) for k in after} == {
        "missing": 1, "unknown": 2, "forbidden": 1}


# -- logs ------------------------------------------------------------------------------------
async def test_tokens_never_reach_the_logs(srv: LiveServer, caplog: pytest.LogCaptureFixture
                                           ) -> None:
    caplog.set_level(logging.DEBUG)
    url = f"{srv.ws_url}{FEED}"
    call(srv, "GET", "/v1/incidents", WRONG)
    call(srv, "GET", "/v1/incidents", TOKENS["ingest"])
    assert (await ws_close(f"{url}?token={WRONG}")).code == 4401
    assert (await ws_snapshot(f"{url}?team=tech&token={TOKENS['viewer']}"))["type"] == "snapshot"
    assert (await ws_snapshot(url, additional_headers=bearer(TOKENS["operator"])))["type"] \
        == "snapshot"                  # uvicorn logs a websocket's headers at DEBUG

    def lines() -> list[str]:          # the server's records (the test's own clients excluded)
        return [_line(r) for r in caplog.records if not r.name.startswith(_CLIENT_LOGGERS)]
    # what we look through is really there: the refusals, and uvicorn's line with the query
    wait_until(lambda: sum("access refused" in x for x in lines()) >= 3, what="refusal logs")
    accepted = wait_until(lambda: [x for x in lines() if "[accepted]" in x and "team=tech" in x],
                          what="uvicorn's log line of the websocket")
    assert "?team=tech&token=[redacted]" in accepted[0]
    assert wait_until(lambda: [x for x in lines() if "authorization: Bearer [redacted]" in x],
                      what="uvicorn's DEBUG line of the websocket's headers")
    text = "\n".join(lines())
    for token in (WRONG, *TOKENS.values()):
        assert token not in text


_CLIENT_LOGGERS = ("httpx", "httpcore", "websockets.client")


def _line(record: logging.LogRecord) -> str:
    """The message and every extra field of a record, as a JSON log line would carry them."""
    fields = [record.getMessage()]
    for key, value in vars(record).items():
        try:
            fields.append(f"{key}={value!r}")
        except ReferenceError:          # a weak proxy to a gone object holds no text
            pass
    return " ".join(fields)


@pytest.mark.parametrize(("msg", "args", "want"), [
    ('%s - "WebSocket %s" [accepted]', ("1.2.3.4:5", "/v1/alerts/stream?token=s3cr3t&x=1"),
     '1.2.3.4:5 - "WebSocket /v1/alerts/stream?token=[redacted]&x=1" [accepted]'),
    ("< %s: %s", ("authorization", "Bearer s3cr3t"), "< authorization: Bearer [redacted]"),
    ("< %s: %s", ("Authorization", "s3cr3t"), "< Authorization: [redacted]"),
    ("nothing to hide %d", (1,), "nothing to hide 1"),
])
def test_redaction_keeps_the_rest_of_the_line(msg: str, args: tuple[Any, ...], want: str
                                              ) -> None:
    record = logging.makeLogRecord({"msg": msg, "args": args})
    assert auth_mod.RedactTokens().filter(record)
    assert record.getMessage() == want


# -- /metrics behind a token -----------------------------------------------------------------
def test_metrics_can_require_a_viewer_token(live_server: Callable[..., LiveServer]) -> None:
    live = live_server(auth=with_tokens(**TOKENS), server={"metrics_public": False})
    assert call(live, "GET", "/metrics").status_code == 401
    assert call(live, "GET", "/metrics", TOKENS["ingest"]).status_code == 403
    assert failures(live, TOKENS["viewer"]) == {"missing": 1, "unknown": 0, "forbidden": 1}
    assert call(live, "GET", "/healthz").status_code == 200


# -- the token store -------------------------------------------------------------------------
def test_every_stored_digest_is_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    store = Authenticator(AuthSettings.model_validate(with_tokens(**TOKENS)))
    seen: list[tuple[bytes, bytes]] = []
    real = auth_mod.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)
    monkeypatch.setattr(auth_mod.hmac, "compare_digest", spy)
    assert store.identify(TOKENS["ingest"]).roles == {"ingest"}   # the first entry matches...
    assert len(seen) == 4                                       # ...and all four were compared
    assert all(len(a) == len(b) == 32 for a, b in seen)         # digests, never the token
    assert seen[0][0] == bytes.fromhex(token_digest(TOKENS["ingest"]))


def test_one_token_under_two_roles_holds_both() -> None:
    tok = "shared-token-for-two-roles-81"
    store = Authenticator(AuthSettings(tokens=[
        TokenEntry(role="ingest", sha256=token_digest(tok)),
        TokenEntry(role="viewer", sha256=token_digest(tok).upper())]))
    p = store.identify(tok)
    assert p.roles == {"ingest", "viewer"} and p.allows("viewer") and not p.allows("operator")


def test_insecure_flag_never_opens_a_service_that_has_tokens() -> None:
    settings = with_tokens(viewer=TOKENS["viewer"]) | {"insecure_no_auth": True}
    store = Authenticator(AuthSettings.model_validate(settings))
    assert not store.open
    with pytest.raises(auth_mod.AuthFailure):
        store.identify(None)
    assert Authenticator(AuthSettings(insecure_no_auth=True)).identify(None).name == "anonymous"
    with pytest.raises(auth_mod.AuthFailure):            # no tokens, not told: closed
        Authenticator(AuthSettings()).identify(WRONG)


# -- config and env --------------------------------------------------------------------------
def _config_dir(tmp_path: Path, auth_toml: str) -> Path:
    cfg = tmp_path / "config"
    cfg.mkdir()
    (cfg / "service.toml").write_text(auth_toml, encoding="utf-8")
    return cfg


def test_tokens_from_config_and_env_are_hashed_and_merged(tmp_path: Path) -> None:
    cfg_dir = _config_dir(tmp_path, f'[[auth.tokens]]\nrole = "operator"\nname = "desk"\n'
                                    f'sha256 = "{token_digest(TOKENS["operator"])}"\n')
    cfg = load_config(cfg_dir, REPO / "detectors",
                      env={TOKENS_ENV: f" ingest:{TOKENS['ingest']} ,admin:{TOKENS['admin']},"})
    entries = cfg.service.auth.tokens
    assert [(e.role, e.name) for e in entries] == [
        ("operator", "desk"), ("ingest", "ingest:env#1"), ("admin", "admin:env#2")]
    assert entries[1].sha256 == token_digest(TOKENS["ingest"])
    assert TOKENS["ingest"] not in repr(cfg.service)          # the plaintext is gone
    store = Authenticator(cfg.service.auth)
    assert store.identify(TOKENS["operator"]).name == "desk"


@pytest.mark.parametrize(("value", "message"), [
    ("admin:" + "a" * 20 + ",root:" + "b" * 20, "entry 2: unknown role 'root'"),
    ("viewer", "entry 1: expected role:token"),
    ("viewer:", "entry 1: expected role:token"),
    ("viewer:short", "entry 1: the token has 5 characters; at least 16"),
    ("viewer:" + "é" * 20, "entry 1: the token may hold only printable ASCII"),
    ("Zq8vK2mXw4-Zq8vK2mXw4:admin", "entry 1: unknown role (21 characters)"),
])
def test_bad_env_tokens_are_located_and_never_echoed(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(REPO / "config", REPO / "detectors", env={TOKENS_ENV: value})
    text = "\n".join(info.value.problems)
    assert f"env {TOKENS_ENV}: {message}" in text
    for part in value.split(","):
        secret = part.partition(":")[2]
        if len(secret) >= 5 and secret not in ROLES:
            assert secret not in text
    assert "Zq8vK2mXw4" not in text


@pytest.mark.parametrize(("entry", "message"), [
    ('role = "viewer"\ntoken = "plaintext-secret-123456"', "plaintext tokens are not allowed"),
    ('role = "viewer"\nsha256 = "plaintext-secret-123456"', "sha256 must be the 64 hex digits"),
    ('role = "root"\nsha256 = "' + "0" * 64 + '"', "auth.tokens.0.role"),
    ('role = "viewer"', "sha256 must be the 64 hex digits"),
])
def test_bad_config_tokens_are_located_and_never_echoed(tmp_path: Path, entry: str,
                                                        message: str) -> None:
    cfg_dir = _config_dir(tmp_path, f"[[auth.tokens]]\n{entry}\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg_dir, REPO / "detectors", env={})
    text = "\n".join(info.value.problems)
    assert "config/service.toml: auth.tokens" in text and message in text
    assert "plaintext-secret" not in text


# -- serve -----------------------------------------------------------------------------------
def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
    return subprocess.Popen([sys.executable, "-m", "streamwatch", "serve", "--host", "127.0.0.1",
                             *args], env={**base, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    proc = _serve("--port", str(_free_port()), "--data-dir", str(tmp_path))
    try:
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2
    assert "no API tokens are configured" in err and "--insecure-no-auth" in err


def test_serve_with_insecure_no_auth_starts_open_and_says_so(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve("--port", str(port), "--data-dir", str(tmp_path), "--insecure-no-auth")
    try:
        def ready() -> bool:
            assert proc.poll() is None, proc.communicate()
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_until(ready, 30, "serve --insecure-no-auth to be ready")
        assert httpx.get(f"http://127.0.0.1:{port}/v1/streams", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    warnings = [orjson.loads(x) for x in err.splitlines()
                if x.startswith("{") and "ACCESS CONTROL IS OFF" in x]
    assert warnings and warnings[0]["level"] == "warning"
