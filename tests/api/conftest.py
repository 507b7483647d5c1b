"""`live_server`: the real app on a real uvicorn server on 127.0.0.1, for tests over real HTTP.

Usage (the fixture is a factory; every server it started is shut down after the test):

    def test_x(live_server):
        srv = live_server(server={"max_body_bytes": 4096})      # ServiceConfig section overrides
        httpx.get(f"{srv.url}/v1/streams")
        srv.service.stats ...                                    # the Service behind it

    live_server()                                   # repo config/ + detectors/, no overrides
    live_server(config=cfg)                         # a whole Config of your own
    live_server(config_overrides={"server": {...}, "feed": FeedSettings(...)})
    live_server(service=MyService(cfg))             # a Service (subclass) you built
    live_server_module(...)                         # same, one server shared by a module
    live_server(auth=with_tokens(viewer=V, ingest=I))   # access control on (api/auth.py)
    httpx.get(url, headers=bearer(V))

Access control is off in these servers (`auth.insecure_no_auth = True`, no tokens) unless the
test gives an `auth` section: tests of other faces need no tokens.

Each server runs in its own thread with its own event loop, on a socket bound here (port chosen
by the OS, so no race for a free port); the call returns once /readyz answers 200. Shutdown is
uvicorn's graceful one: the lifespan drains the Service's queue before the thread ends. Keep the
Service's state read-only from the test thread (it belongs to the server's loop) and poll
with `wait_until` rather than sleeping.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from streamwatch.api.app import create_app
from streamwatch.config.load import Config, load_config
from streamwatch.config.schema import token_digest
from streamwatch.service import Service

__all__ = ["LiveServer", "live_server", "live_server_module", "make_config", "wait_until", "REPO",
           "with_tokens", "bearer"]

REPO = Path(__file__).resolve().parents[2]
_START_TIMEOUT = 10.0


Section = Mapping[str, Any] | BaseModel | list[Any]


def with_tokens(**role_tokens: str) -> dict[str, Any]:
    """An `auth` section holding one token per role given (`viewer="..."`), access control on."""
    return {"insecure_no_auth": False,
            "tokens": [{"role": role, "sha256": token_digest(token), "name": f"test-{role}"}
                       for role, token in role_tokens.items()]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_config(config: Config | None = None,
                config_overrides: Mapping[str, Section] | None = None,
                **sections: Section) -> Config:
    """`config` (default: the repo's config/ and detectors/) with ServiceConfig sections
    overridden: a mapping updates some keys of a section, a model or list replaces it.
    Without an `auth` override, access control is off (`insecure_no_auth`, tokens kept)."""
    cfg = config or load_config(REPO / "config", REPO / "detectors", env={})
    changes = {**(config_overrides or {}), **sections}
    if "auth" not in changes:
        changes["auth"] = {"insecure_no_auth": True}
    data = cfg.service.model_dump()
    for name, value in changes.items():
        if name not in data:
            raise KeyError(f"ServiceConfig has no section {name!r}")
        if isinstance(value, BaseModel):
            value = value.model_dump()
        elif isinstance(value, list):
            value = [x.model_dump() if isinstance(x, BaseModel) else x for x in value]
        elif isinstance(value, Mapping) and isinstance(data[name], dict):
            value = {**data[name], **value}
        data[name] = value
    return replace(cfg, service=type(cfg.service).model_validate(data))


def wait_until(condition: Callable[[], Any], timeout: float = 10.0, what: str = "condition",
               interval: float = 0.02) -> Any:
    """Poll `condition` until it returns something truthy (returned), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


@dataclass
class LiveServer:
    url: str                   # http://127.0.0.1:PORT (no trailing slash)
    service: Service
    app: FastAPI
    config: Config
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def ws_url(self) -> str:
        return "ws" + self.url[len("http"):]

    def stop(self, timeout: float = 15.0) -> None:
        """Graceful shutdown (drains the queue); idempotent."""
        if not self.thread.is_alive():
            return
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():           # stuck: cut connections, then give up loudly
            self.server.force_exit = True
            self.thread.join(5.0)
            raise AssertionError("live server did not shut down in time")


def _start(config: Config | None, config_overrides: Mapping[str, Any] | None,
           service: Service | None, sections: Mapping[str, Any]) -> LiveServer:
    if service is not None and (config is not None or config_overrides or sections):
        raise TypeError("pass either a service or a config (with overrides), not both")
    cfg = service.config if service is not None else make_config(config, config_overrides,
                                                                 **sections)
    app = create_app(cfg, service)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=10))
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:          # surfaced to the test below, not lost in a thread
            failure.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=run, name=f"live-server-{port}", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", app.state.service, app, cfg, server, thread)

    def ready() -> bool:
        if failure or not thread.is_alive():
            raise AssertionError(f"live server failed to start: {failure or 'thread ended'}")
        try:
            return httpx.get(f"{live.url}/readyz", timeout=1.0).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, _START_TIMEOUT, "the live server's /readyz")
    except BaseException:
        live.stop()
        raise
    return live


class _Servers:
    """The servers one fixture instance started; all stopped at its teardown."""

    def __init__(self) -> None:
        self.started: list[LiveServer] = []

    def __call__(self, config: Config | None = None,
                 config_overrides: Mapping[str, Any] | None = None,
                 service: Service | None = None, **sections: Any) -> LiveServer:
        live = _start(config, config_overrides, service, sections)
        self.started.append(live)
        return live

    def stop_all(self) -> None:
        errors = []
        for live in reversed(self.started):
            try:
                live.stop()
            except AssertionError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: `live_server(config=None, config_overrides=None, service=None, **sections)`."""
    servers = _Servers()
    yield servers
    servers.stop_all()


@pytest.fixture(scope="module")
def live_server_module() -> Iterator[Callable[..., LiveServer]]:
    """The same factory, for servers shared by a module's tests (e.g. loaded once with data)."""
    servers = _Servers()
    yield servers
    servers.stop_all()
