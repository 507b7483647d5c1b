"""Operator actions over real HTTP on a real server with a real store file: ack, manual resolve
and notes, with who and when in the timeline, stored before the 2xx; bad ids and bodies."""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamwatch.service import Service
from streamwatch.store import DB_FILE
from tests.api.conftest import LiveServer, make_config, wait_until
from tests.store.helpers import NDJSON, outage_chunks


def _open_incident(live_server: Callable[..., LiveServer], data: Path) -> tuple[LiveServer, str]:
    srv = live_server(service=Service(make_config(), data_dir=data))
    for body in outage_chunks():
        r = httpx.post(f"{srv.url}/v1/samples", content=body, headers=NDJSON)
        assert r.status_code == 200, r.text
    inc = wait_until(lambda: [i for i in srv.service.incidents.open() if i["stream"] == "room-a"],
                     what="room-a's outage incident")
    return srv, inc[0]["id"]


def _stored(data: Path, iid: str) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """What another reader of the store file sees right now."""
    db = sqlite3.connect(data / DB_FILE)
    try:
        doc = orjson.loads(db.execute("SELECT doc FROM incidents WHERE id = ?",
                                      (iid,)).fetchone()[0])
        actions = db.execute("SELECT action, by, note FROM actions WHERE incident_id = ? "
                             "ORDER BY seq", (iid,)).fetchall()
    finally:
        db.close()
    return doc, actions


def test_ack_note_resolve_with_who_and_when(live_server: Callable[..., LiveServer],
                                            tmp_path: Path) -> None:
    srv, iid = _open_incident(live_server, tmp_path)
    url = f"{srv.url}/v1/incidents/{iid}"
    before = time.time()
    r = httpx.post(f"{url}/ack")
    after = time.time()
    assert r.status_code == 200, r.text
    inc = r.json()
    assert (inc["status"], inc["acked_by"]) == ("acked", "anonymous")
    assert before - 0.01 <= inc["acked_at"] <= after + 0.01
    assert inc["timeline"][-1] == {"ts": inc["acked_at"], "action": "ack", "by": "anonymous",
                                   "note": None}
    doc, actions = _stored(tmp_path, iid)                 # durable before the 2xx
    assert doc["status"] == "acked" and doc["acked_at"] == inc["acked_at"]
    assert actions == [("ack", "anonymous", None)]

    r = httpx.post(f"{url}/note", json={"note": "switched to the backup CDN"})
    assert r.status_code == 200 and r.json()["timeline"][-1]["note"] == "switched to the backup CDN"
    assert httpx.post(f"{url}/note").status_code == 200               # the body is optional
    r = httpx.post(f"{url}/ack", json={"note": "second pair of eyes"})
    assert r.status_code == 200 and r.json()["acked_at"] == inc["acked_at"]   # first ack stays
    assert _stored(tmp_path, iid)[1][1:] == [("note", "anonymous", "switched to the backup CDN"),
                                             ("note", "anonymous", None),
                                             ("ack", "anonymous", "second pair of eyes")]

    r = httpx.post(f"{url}/resolve", json={"note": "host back on air"})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "resolved" and done["resolved_at"] is not None
    resolve, event = done["timeline"][-2:]
    assert (resolve["action"], resolve["by"], resolve["note"]) == ("resolve", "anonymous",
                                                                   "host back on air")
    assert event["action"] == "resolved" and event["summary"].endswith("(resolved by anonymous)")
    # the manual resolve is an alert event like any other: the feed's log has it, on event time
    alerts = httpx.get(f"{srv.url}/v1/alerts").json()["items"]
    assert alerts[-1]["incident_id"] == iid and alerts[-1]["status"] == "resolved"
    assert alerts[-1]["ts"] == done["resolved_at"] < before
    doc, actions = _stored(tmp_path, iid)
    assert doc["status"] == "resolved" and actions[-1] == ("resolve", "anonymous",
                                                           "host back on air")
    assert httpx.get(url).json() == done
    assert not [i for i in srv.service.incidents.open() if i["id"] == iid]
    assert not srv.service.pipeline.incidents.find(iid)


def test_resolved_incident_conflicts_on_resolve_and_records_late_acks(
        live_server: Callable[..., LiveServer], tmp_path: Path) -> None:
    srv, iid = _open_incident(live_server, tmp_path)
    url = f"{srv.url}/v1/incidents/{iid}"
    assert httpx.post(f"{url}/resolve").status_code == 200
    r = httpx.post(f"{url}/resolve")
    assert r.status_code == 409 and iid in r.json()["detail"] and "already resolved" in r.text
    r = httpx.post(f"{url}/ack")
    assert r.status_code == 200, r.text
    late = r.json()
    assert late["status"] == "resolved" and late["acked_by"] == "anonymous"
    assert late["timeline"][-1]["action"] == "ack"
    assert _stored(tmp_path, iid)[1] == [("resolve", "anonymous", None),
                                         ("ack", "anonymous", None)]


@pytest.mark.parametrize("action", ["ack", "resolve", "note"])
def test_unknown_and_malformed_ids(live_server_module: Callable[..., LiveServer],
                                   action: str) -> None:
    srv = live_server_module()
    r = httpx.post(f"{srv.url}/v1/incidents/inc-99999999/{action}")
    assert r.status_code == 404 and "inc-99999999" in r.json()["detail"]
    r = httpx.post(f"{srv.url}/v1/incidents/{'x' * 201}/{action}")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "incident_id"]


@pytest.mark.parametrize("body", [b'{"note": 5}', b'{"note": "ok", "by": "mallory"}',
                                  b'["note"]', b'"note"', b'{"note": ',
                                  orjson.dumps({"note": "x" * 4001})])
def test_bad_bodies_are_422_and_change_nothing(live_server: Callable[..., LiveServer],
                                               tmp_path: Path, body: bytes) -> None:
    srv, iid = _open_incident(live_server, tmp_path)
    for action in ("ack", "note", "resolve"):
        r = httpx.post(f"{srv.url}/v1/incidents/{iid}/{action}", content=body,
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 422, (action, r.text)
        assert r.json()["detail"][0]["loc"][0] == "body"
    inc = httpx.get(f"{srv.url}/v1/incidents/{iid}").json()
    assert inc["status"] == "open" and inc["acked_at"] is None
    assert [e["action"] for e in inc["timeline"]] == ["firing"]
    assert _stored(tmp_path, iid)[1] == []
