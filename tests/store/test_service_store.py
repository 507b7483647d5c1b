"""The service around a store that fails: it keeps detecting and publishing, says why, answers
operator actions 503 rather than a 2xx it could not keep, and catches up once it can write."""
from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from streamwatch.service import Service
from streamwatch.store import DB_FILE
from tests.api.conftest import LiveServer, live_server, make_config, wait_until  # noqa: F401 (fixture)
from tests.store.helpers import NDJSON, outage_chunks


def _push(srv: LiveServer) -> str:
    for body in outage_chunks():
        r = httpx.post(f"{srv.url}/v1/samples", content=body, headers=NDJSON)
        assert r.status_code == 200, r.text
    inc = wait_until(lambda: [i for i in srv.service.incidents.open() if i["stream"] == "room-a"],
                     what="room-a's outage incident (detection goes on)")
    return str(inc[0]["id"])


def test_corrupt_store_at_start_keeps_detecting(live_server: Callable[..., LiveServer],
                                                tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / DB_FILE).write_bytes(b"garbage " * 1000)
    with caplog.at_level(logging.ERROR, logger="streamwatch.service"):
        srv = live_server(service=Service(make_config(), data_dir=tmp_path))
    assert any("running WITHOUT durable state" in r.getMessage()
               and "corrupt" in str(getattr(r, "error", "")) for r in caplog.records)
    iid = _push(srv)
    r = httpx.get(f"{srv.url}/v1/alerts").json()["items"]
    assert r and r[0]["incident_id"] == iid                   # published all the same
    r = httpx.post(f"{srv.url}/v1/incidents/{iid}/ack")
    assert r.status_code == 503 and "corrupt" in r.json()["detail"], r.text
    assert httpx.get(f"{srv.url}/v1/incidents/{iid}").json()["acked_at"] is None
    assert (tmp_path / DB_FILE).read_bytes() == b"garbage " * 1000   # never overwritten


def test_locked_store_keeps_detecting_and_catches_up(live_server: Callable[..., LiveServer],
                                                     tmp_path: Path) -> None:
    srv = live_server(service=Service(make_config(), data_dir=tmp_path))
    other = sqlite3.connect(tmp_path / DB_FILE, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")                     # someone else holds the write lock
        iid = _push(srv)
        svc = srv.service
        wait_until(lambda: svc.stats.store_errors >= 1, what="the failed write")
        assert svc.store_pending >= 1
        assert "locked" in (svc.store_error or "")
        store = httpx.get(f"{srv.url}/readyz").json()["store"]       # said where it shows
        assert store["state"] == "failing" and "locked" in store["error"], store
        assert "streamwatch_store_up 0.0" in httpx.get(f"{srv.url}/metrics").text
        r = httpx.post(f"{srv.url}/v1/incidents/{iid}/ack")
        assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
        assert "locked" in r.json()["detail"]
        assert httpx.get(f"{srv.url}/v1/incidents/{iid}").json()["acked_at"] is None
        other.execute("ROLLBACK")
        wait_until(lambda: svc.store_pending == 0 and svc.store_error is None,
                   what="the pending events written once the lock is gone")
        stored = other.execute("SELECT count(*) FROM events").fetchone()[0]
        assert stored == len(svc.log)
        assert other.execute("SELECT status FROM incidents WHERE id = ?",
                             (iid,)).fetchone() == ("open",)
        assert httpx.post(f"{srv.url}/v1/incidents/{iid}/ack").status_code == 200
    finally:
        other.close()
