"""A store that is full: SQLite's own "database or disk is full" (SQLITE_FULL), reached through
`SqliteStore.limit_pages` (PRAGMA max_page_count) on the real store file of a real service.

While it is full the service keeps detecting and the websocket keeps getting every alert event;
/readyz and /metrics say the store is failing and why; acks answer 503. Once space is back the
events held in memory are written (nothing lost, no duplicate), and a restart on the same data
dir restores all of it. (A lock held by another process: test_service_store.py.)
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

from streamwatch.service import Service
from streamwatch.store import DB_FILE
from tests.api.conftest import LiveServer, live_server, make_config, wait_until  # noqa: F401
from tests.store.helpers import NDJSON, outage_chunks


def on_loop(srv: LiveServer, fn: Callable[[], Any]) -> Any:
    """Run `fn` on the server's event loop thread (the store's connection belongs to it)."""
    async def call() -> Any:
        return fn()
    loop = srv.service._consumer.get_loop()          # type: ignore[union-attr]
    return asyncio.run_coroutine_threadsafe(call(), loop).result(10)


def metrics(srv: LiveServer) -> dict[str, float]:
    return {k: float(v) for k, _, v in (line.rpartition(" ") for line in
                                         httpx.get(f"{srv.url}/metrics").text.splitlines()
                                         if line.startswith("streamwatch_store"))}


def stored_ids(db: Path) -> list[str]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
        return [r[0] for r in c.execute("SELECT id FROM events ORDER BY id")]


def test_full_store_keeps_detecting_and_feeding_then_catches_up_and_restores(
        live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    srv = live_server(service=Service(make_config(), data_dir=tmp_path))
    svc = srv.service
    assert on_loop(srv, lambda: svc.store.limit_pages(0)) > 0      # type: ignore[union-attr]
    with connect(f"{srv.ws_url}/v1/alerts/stream", open_timeout=5) as ws:
        assert json.loads(ws.recv(5))["type"] == "snapshot"
        for body in outage_chunks(earlier=True):
            r = httpx.post(f"{srv.url}/v1/samples", content=body, headers=NDJSON)
            assert r.status_code // 100 == 2 and r.json()["rejected"] == 0, r.text
        # room-b's short outage (firing, resolved) and room-a's (firing): all on the feed
        feed = [json.loads(ws.recv(10)) for _ in range(3)]
    assert [(e["stream"], e["status"]) for e in feed] == [
        ("room-b", "firing"), ("room-b", "resolved"), ("room-a", "firing")]
    wait_until(lambda: svc.stats.store_errors >= 1, what="a write refused by the full store")
    assert stored_ids(tmp_path / DB_FILE) == []                    # nothing got in
    ready = httpx.get(f"{srv.url}/readyz")
    assert ready.status_code == 200, ready.text                    # still takes samples
    store = ready.json()["store"]
    assert store["state"] == "failing" and "full" in store["error"], store
    assert store["pending"] >= 3 and store["dropped_events"] == 0
    m = metrics(srv)
    assert m["streamwatch_store_up"] == 0 and m["streamwatch_store_errors_total"] >= 1
    assert m["streamwatch_store_pending"] >= 3
    assert m["streamwatch_store_dropped_events_total"] == 0
    iid = feed[-1]["incident_id"]
    r = httpx.post(f"{srv.url}/v1/incidents/{iid}/ack")
    assert r.status_code == 503 and "full" in r.json()["detail"], r.text

    on_loop(srv, lambda: svc.store.limit_pages(None))              # type: ignore[union-attr]
    wait_until(lambda: httpx.get(f"{srv.url}/readyz").json()["store"]["state"] == "ok",
               timeout=15, what="the held events written once there is space")
    assert stored_ids(tmp_path / DB_FILE) == [e["id"] for e in feed]   # all, once each
    m = metrics(srv)
    assert (m["streamwatch_store_up"], m["streamwatch_store_pending"]) == (1, 0)
    assert httpx.post(f"{srv.url}/v1/incidents/{iid}/ack").status_code == 200
    incidents = httpx.get(f"{srv.url}/v1/incidents").json()["items"]
    srv.stop()

    again = live_server(service=Service(make_config(), data_dir=tmp_path))
    alerts = httpx.get(f"{again.url}/v1/alerts", params={"limit": 1000}).json()["items"]
    assert [e["id"] for e in alerts] == [e["id"] for e in feed]
    assert httpx.get(f"{again.url}/v1/incidents").json()["items"] == incidents
    assert httpx.get(f"{again.url}/v1/incidents/{iid}").json()["status"] == "acked"
