"""/v1/silences over real HTTP: silenced events are recorded and shown (REST, websocket feed)
but not delivered to a real local webhook receiver; expiring pages again; roles, bad bodies,
and a restart on the same data dir."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import connect

from streamwatch.service import Service
from tests.api.conftest import LiveServer, bearer, live_server, make_config, wait_until, \
    with_tokens
from tests.api.test_webhooks import ADMIN, INGEST, OPERATOR, SECRET, VIEWER, Receiver, receiver
from tests.pipeline.scenario import T0, Effect, Room, samples

__all__: list[str] = []

_FIXTURES = (live_server, receiver)
SPLIT = T0 + 35 * 60.0          # phase 1: samples before; phase 2: after (the second outage)


def config() -> Any:
    return make_config(auth=with_tokens(admin=ADMIN, viewer=VIEWER, operator=OPERATOR,
                                        ingest=INGEST),
                       webhooks={"allowed_hosts": ["127.0.0.1"], "backoff_base": 0.05,
                                 "backoff_max": 0.2, "timeout": 1.0, "max_attempts": 100})


def bodies(phase: int) -> list[bytes]:
    """room-a: outages at minutes 20 and 45; shop-b: one at minute 20."""
    def out(at: float) -> list[Effect]:
        return [Effect("bitrate_kbps", at, at + 300, 0.1), Effect("fps", at, at + 300, 0.2)]
    b = samples([Room("room-a", minutes=60, effects=out(20 * 60.0) + out(45 * 60.0)),
                 Room("shop-b", minutes=60, effects=out(20 * 60.0))])
    lines = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
             for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())
             if (t < SPLIT) == (phase == 1)]
    return [b"\n".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]


def push(srv: LiveServer, phase: int) -> None:
    for body in bodies(phase):
        r = httpx.post(f"{srv.url}/v1/samples", content=body, headers=bearer(INGEST))
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    wait_until(lambda: srv.service.queued == 0, what="the queue to drain")


def alerts(srv: LiveServer) -> list[dict[str, Any]]:
    r = httpx.get(f"{srv.url}/v1/alerts", params={"limit": 1000}, headers=bearer(VIEWER))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def create(srv: LiveServer, token: str = OPERATOR, **body: Any) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/silences", json=body, headers=bearer(token))


def metric(srv: LiveServer, name: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics", headers=bearer(ADMIN)).text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


def test_roles_and_bad_bodies(live_server: Callable[..., LiveServer]) -> None:
    srv = live_server(config=config())
    end = time.time() + 600
    assert httpx.post(f"{srv.url}/v1/silences", json={"team": "tech", "ends_at": end}
                      ).status_code == 401
    assert httpx.get(f"{srv.url}/v1/silences").status_code == 401
    for token in (VIEWER, INGEST):
        r = create(srv, token, team="tech", ends_at=end)
        assert r.status_code == 403 and "needs" in r.json()["detail"], r.text
    assert httpx.get(f"{srv.url}/v1/silences", headers=bearer(INGEST)).status_code == 403
    now = time.time()
    bad = {"matcher": {"ends_at": end, "comment": "everything"},
           "matcher ": {"stream": None, "team": None, "ends_at": end},
           "at least 1 character": {"stream": "", "ends_at": end},
           "ends_at": {"team": "tech", "starts_at": now + 100, "ends_at": now + 50},
           "past": {"team": "tech", "starts_at": now - 100, "ends_at": now - 50},
           "exactly one": {"team": "tech"},
           "exactly one ": {"team": "tech", "ends_at": end, "duration_s": 60},
           "team": {"team": "sales", "ends_at": end},
           "incident_type": {"incident_type": "meteor", "ends_at": end},
           "extra": {"team": "tech", "ends_at": end, "room": "x"},
           "less than or equal": {"team": "tech", "duration_s": 10 * 365 * 86400.0}}
    for why, body in bad.items():
        r = create(srv, **body)
        assert r.status_code == 422 and why.strip() in r.text, (body, r.text)
    assert httpx.get(f"{srv.url}/v1/silences", headers=bearer(VIEWER)).json() == {"items": []}
    r = create(srv, ADMIN, incident_type="stream_outage", duration_s=60, comment="deploy")
    assert r.status_code == 201, r.text
    s = r.json()
    assert s["created_by"] == "test-admin" and s["active"] is True
    assert s["ends_at"] - s["starts_at"] == 60 and s["incident_type"] == "stream_outage"
    assert httpx.delete(f"{srv.url}/v1/silences/{s['id']}", headers=bearer(VIEWER)
                        ).status_code == 403
    r = httpx.delete(f"{srv.url}/v1/silences/sil-nope", headers=bearer(OPERATOR))
    assert r.status_code == 404 and "sil-nope" in r.text


def test_silenced_events_are_recorded_and_shown_but_not_paged(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver],
        tmp_path: Path) -> None:
    cfg = config()
    srv = live_server(service=Service(cfg, data_dir=tmp_path))
    rcv = receiver(SECRET)
    rcv.up()
    r = httpx.post(f"{srv.url}/v1/webhooks", json={"url": rcv.url, "secret": SECRET},
                   headers=bearer(ADMIN))
    assert r.status_code == 201, r.text
    hook = r.json()["id"]
    r = create(srv, stream="room-*", team="tech", duration_s=3600, comment="encoder swap")
    assert r.status_code == 201, r.text
    sil = r.json()

    push(srv, 1)
    events = alerts(srv)
    silenced = [e for e in events if e["silenced"]]
    paged = [e for e in events if not e["silenced"]]
    assert silenced and {e["stream"] for e in silenced} == {"room-a"}
    assert paged and {e["stream"] for e in paged} == {"shop-b"}
    assert {e["status"] for e in silenced} == {"firing", "resolved"}
    wait_until(lambda: len(rcv.events) == len(paged), what="the unsilenced events delivered")
    assert sorted(rcv.events) == sorted(f"{hook}:{e['id']}" for e in paged)
    assert metric(srv, "streamwatch_silenced_events_total") == len(silenced)
    # the incident of a silenced event is indexed and shown like any other
    r = httpx.get(f"{srv.url}/v1/incidents/{silenced[0]['incident_id']}",
                  headers=bearer(VIEWER))
    assert r.status_code == 200 and r.json()["stream"] == "room-a"
    # the websocket feed carries them, flagged
    with connect(f"{srv.ws_url}/v1/alerts/stream?since=0&token={VIEWER}") as ws:
        got: dict[str, Any] = {}
        while len(got) < len(events):
            msg = orjson.loads(ws.recv(timeout=10))
            if msg["type"] == "alert":
                got[msg["id"]] = msg.get("silenced", False)
    assert got == {e["id"]: e["silenced"] for e in events}

    # expire: room-a's second outage is paged again
    r = httpx.delete(f"{srv.url}/v1/silences/{sil['id']}", headers=bearer(OPERATOR))
    assert r.status_code == 200 and r.json()["active"] is False
    assert r.json()["expired_by"] == "test-operator"
    push(srv, 2)
    later = [e for e in alerts(srv) if e["id"] > events[-1]["id"]]
    assert any(e["stream"] == "room-a" for e in later), later
    assert not any(e["silenced"] for e in later)
    wait_until(lambda: len(rcv.events) == len(paged) + len(later),
               what="the events after the expiry delivered")
    assert not any(f"{hook}:{e['id']}" in rcv.events for e in silenced)
    srv.stop()

    # a restart on the same data dir: the silence and the flags are still there
    again = live_server(service=Service(cfg, data_dir=tmp_path))
    listed = httpx.get(f"{again.url}/v1/silences", headers=bearer(VIEWER)).json()["items"]
    assert [(s["id"], s["active"], s["comment"]) for s in listed] == [
        (sil["id"], False, "encoder swap")]
    restored = {e["id"]: e["silenced"] for e in alerts(again)}
    assert all(restored[e["id"]] for e in silenced)
    assert not any(restored[e["id"]] for e in paged + later)


def test_an_active_silence_survives_a_restart(live_server: Callable[..., LiveServer],
                                              tmp_path: Path) -> None:
    cfg = config()
    srv = live_server(service=Service(cfg, data_dir=tmp_path))
    sil = create(srv, stream="shop-b", duration_s=3600).json()
    srv.stop()
    again = live_server(service=Service(cfg, data_dir=tmp_path))
    listed = httpx.get(f"{again.url}/v1/silences", headers=bearer(VIEWER)).json()["items"]
    assert [(s["id"], s["active"]) for s in listed] == [(sil["id"], True)]
    push(again, 1)
    flags = {(e["stream"], e["silenced"]) for e in alerts(again)}
    assert flags == {("room-a", False), ("shop-b", True)}
