"""/v1/webhooks over real HTTP, delivering to a real local receiver on 127.0.0.1.

The receiver verifies each signature, dedups on Idempotency-Key and can be down (its port bound
but not listening: connections refused), answer 503 or answer too slowly; the service is fed
recorded samples that raise and then resolve an incident.
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from streamwatch.api.webhooks import _check_url, host_allowed
from streamwatch.config.load import load_config
from streamwatch.notify.webhook import SIGNATURE_HEADER, verify_signature
from streamwatch.service import Service
from tests.api.conftest import REPO, LiveServer, bearer, live_server, wait_until, with_tokens
from tests.pipeline.scenario import Effect, Room, samples

__all__: list[str] = []

_FIXTURES = (live_server,)
ADMIN, VIEWER, OPERATOR, INGEST = ("admin-token-0123456789ab", "viewer-token-0123456789a",
                                   "operator-token-012345678", "ingest-token-0123456789a")
SECRET = "receiver-secret-0123456789"


class Receiver:
    """A webhook receiver as a deployment would write one: checks the signature (401 when it
    does not verify), dedups on Idempotency-Key, answers 2xx once it has the event."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.lock = threading.Lock()
        self.raw: list[tuple[str, bytes]] = []          # every request (key, body)
        self.events: dict[str, dict[str, Any]] = {}     # key -> event, once per key
        self.bad_signatures = 0
        self.unavailable = 0                            # answer 503 this many more times
        self.slow_first = 0.0                           # first good request answers late
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:                  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                key = self.headers["Idempotency-Key"]
                ok = verify_signature(outer.secret, self.headers[SIGNATURE_HEADER], body,
                                      now=time.time())
                with outer.lock:
                    outer.raw.append((key, body))
                    if not ok:
                        outer.bad_signatures += 1
                        status = 401
                    elif outer.unavailable > 0:
                        outer.unavailable -= 1
                        status = 503
                    else:
                        first = not outer.events
                        outer.events.setdefault(key, orjson.loads(body))
                        status = 200
                        delay = outer.slow_first if first else 0.0
                if status == 200 and delay:
                    time.sleep(delay)                   # the sender gives up: a duplicate
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.server_bind()                        # bound, not listening: "down"
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread: threading.Thread | None = None

    def up(self) -> None:
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.thread is not None:
            self.server.shutdown()
            self.thread.join(5)
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[[str], Receiver]]:
    made: list[Receiver] = []

    def make(secret: str = SECRET) -> Receiver:
        made.append(Receiver(secret))
        return made[-1]
    yield make
    for r in made:
        r.close()


def server(live_server: Callable[..., LiveServer], **hooks: Any) -> LiveServer:
    return live_server(auth=with_tokens(admin=ADMIN, viewer=VIEWER, operator=OPERATOR,
                                        ingest=INGEST),
                       webhooks={"allowed_hosts": ["127.0.0.1"], "backoff_base": 0.05,
                                 "backoff_max": 0.2, "timeout": 0.4, "max_attempts": 100,
                                 **hooks})


def outage() -> list[bytes]:
    """A room whose stream collapses at minute 20 for 5 minutes: a tech incident, resolved."""
    at = 20 * 60.0
    b = samples([Room("room-a", minutes=30, effects=[Effect("bitrate_kbps", at, at + 300, 0.1),
                                                     Effect("fps", at, at + 300, 0.2)])])
    lines = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
             for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())]
    return [b"\n".join(lines[i:i + 5000]) for i in range(0, len(lines), 5000)]


def feed(srv: LiveServer) -> list[dict[str, Any]]:
    """Push the outage; the alert events it raised (once the queue is drained)."""
    for body in outage():
        r = httpx.post(f"{srv.url}/v1/samples", content=body, headers=bearer(INGEST))
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
    wait_until(lambda: srv.service.queued == 0, what="the queue to drain")
    r = httpx.get(f"{srv.url}/v1/alerts", params={"limit": 1000}, headers=bearer(VIEWER))
    events = r.json()["items"]
    assert {e["status"] for e in events} == {"firing", "resolved"}, events
    return events


def add(srv: LiveServer, token: str = ADMIN, **body: Any) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/webhooks", json=body, headers=bearer(token))


def metric(srv: LiveServer, name: str) -> float:
    for line in httpx.get(f"{srv.url}/metrics").text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exposed")


# -- access and validation ----------------------------------------------------------------
def test_only_admins_manage_webhooks_and_targets_must_be_allowed(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver]) -> None:
    srv, rcv = server(live_server), receiver(SECRET)
    assert httpx.post(f"{srv.url}/v1/webhooks", json={"url": rcv.url}).status_code == 401
    for token in (VIEWER, OPERATOR, INGEST):
        r = add(srv, token, url=rcv.url)
        assert r.status_code == 403 and "admin" in r.json()["detail"], r.text
        assert httpx.get(f"{srv.url}/v1/webhooks/dead-letters",
                         headers=bearer(token)).status_code == 403
    refused = {"http://localhost:9/x": "not on the webhook allow-list",
               "http://10.0.0.1/x": "'10.0.0.1' is not on the webhook allow-list",
               "ftp://127.0.0.1/x": "http:// or https://",
               "http://user:pw@127.0.0.1/x": "credentials",
               "http://127.0.0.1:99999/x": "not a valid URL",
               "/relative": "absolute"}
    for url, why in refused.items():
        r = add(srv, url=url)
        assert r.status_code == 422 and why in r.text, (url, r.text)
    for bad in ({"url": rcv.url, "format": "slack"}, {"url": rcv.url, "min_level": 5},
                {"url": rcv.url, "teams": ["sales"]}, {"url": rcv.url, "secret": "short"},
                {"url": rcv.url, "extra": 1}, {"format": "streamwatch"}):
        assert add(srv, **bad).status_code == 422, bad
    assert httpx.get(f"{srv.url}/v1/webhooks", headers=bearer(ADMIN)).json() == {"items": []}
    r = add(srv, url=rcv.url, format="alertmanager", min_level=2, teams=["tech"])
    assert r.status_code == 201, r.text
    created = r.json()
    assert len(created["secret"]) >= 32                      # generated, shown this once
    listed = httpx.get(f"{srv.url}/v1/webhooks", headers=bearer(ADMIN)).json()["items"]
    assert [(h["id"], h["format"], h["teams"], h["min_level"]) for h in listed] == [
        (created["id"], "alertmanager", ["tech"], 2)]
    assert "secret" not in json.dumps(listed)
    r = httpx.delete(f"{srv.url}/v1/webhooks/{created['id']}", headers=bearer(ADMIN))
    assert r.status_code == 200 and r.json()["deleted"] is True
    r = httpx.delete(f"{srv.url}/v1/webhooks/{created['id']}", headers=bearer(ADMIN))
    assert r.status_code == 404 and created["id"] in r.text


def test_allow_list_comes_from_config_or_env() -> None:
    cfg = load_config(REPO / "config", REPO / "detectors",
                      env={"STREAMWATCH_WEBHOOK_ALLOWED_HOSTS": " Hooks.Example.com, 10.1.2.3,,"})
    assert cfg.service.webhooks.allowed_hosts == ["hooks.example.com", "10.1.2.3"]
    assert host_allowed("HOOKS.example.com", ["hooks.example.com"])
    assert host_allowed("a.hooks.example.com", ["*.hooks.example.com"])
    assert not host_allowed("hooks.example.com", ["*.hooks.example.com"])
    assert not host_allowed("evilhooks.example.com", ["*.hooks.example.com", "example.com"])
    with pytest.raises(Exception, match="STREAMWATCH_WEBHOOK_ALLOWED_HOSTS"):
        _check_url("http://hooks.example.com/x", [])


# -- delivery -----------------------------------------------------------------------------
def test_receiver_down_then_up_gets_every_event_once_by_key(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver]) -> None:
    srv, rcv = server(live_server), receiver(SECRET)
    rcv.unavailable, rcv.slow_first = 3, 0.8         # then 503 x3, then one answer too late
    hook = add(srv, url=rcv.url, secret=SECRET).json()
    am_rcv = receiver(SECRET)
    am_rcv.up()
    am = add(srv, url=am_rcv.url, secret=SECRET, format="alertmanager").json()
    events = feed(srv)
    wait_until(lambda: metric(srv, 'streamwatch_webhook_deliveries_total{result="retry"}') >= 3,
               what="retries against the refusing port")
    assert not rcv.raw and metric(srv, "streamwatch_webhook_pending") >= 1
    rcv.up()
    wait_until(lambda: len(rcv.events) == len(events), what="every event at the receiver")
    assert sorted(rcv.events) == sorted(f"{hook['id']}:{e['id']}" for e in events)
    for key, got in rcv.events.items():
        assert got["id"] == key.split(":")[1] and got["status"] in ("firing", "resolved")
    keys = [k for k, _ in rcv.raw]
    assert len(keys) > len(set(keys))               # retried after the lost answer: duplicates
    assert rcv.bad_signatures == 0
    # order is kept: firing before resolved, in event id order
    first_seen = list(dict.fromkeys(keys))
    assert first_seen == [f"{hook['id']}:{e['id']}" for e in events]
    # the Alertmanager receiver got the same events in its format
    wait_until(lambda: len(am_rcv.events) == len(events), what="the alertmanager deliveries")
    payloads = [am_rcv.events[f"{am['id']}:{e['id']}"] for e in events]
    assert [p["status"] for p in payloads] == [e["status"] for e in events]
    assert all(p["version"] == "4" and p["alerts"][0]["labels"]["incident_id"]
               == e["incident_id"] for p, e in zip(payloads, events))
    resolved = [p for p in payloads if p["status"] == "resolved"]
    assert resolved and all(p["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
                            for p in resolved)
    wait_until(lambda: metric(srv, "streamwatch_webhook_pending") == 0, what="nothing pending")


def test_bad_signature_is_refused_by_the_receiver_and_dead_lettered(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver]) -> None:
    srv, rcv = server(live_server), receiver(SECRET)
    rcv.up()
    wrong = add(srv, url=rcv.url, secret="not-the-receivers-secret").json()
    filtered = add(srv, url=rcv.url, secret=SECRET, teams=["logistics"]).json()
    events = feed(srv)
    assert all(e["team"] != "logistics" for e in events)
    wait_until(lambda: metric(srv, "streamwatch_webhook_dead_letters") == len(events),
               what="dead letters in /metrics")
    assert rcv.bad_signatures == len(events) and not rcv.events   # detected, nothing taken
    r = httpx.get(f"{srv.url}/v1/webhooks/dead-letters", headers=bearer(ADMIN))
    dead = r.json()["items"]
    assert [d["event_id"] for d in dead] == [e["id"] for e in events]
    assert {d["webhook_id"] for d in dead} == {wrong["id"]} and filtered["id"] not in r.text
    assert all(d["error"] == "HTTP 401" and d["attempts"] == 1 for d in dead)
    assert metric(srv, 'streamwatch_webhook_deliveries_total{result="dead"}') == len(events)
    listed = httpx.get(f"{srv.url}/v1/webhooks", headers=bearer(ADMIN)).json()["items"]
    assert {h["id"]: h["last_error"] for h in listed} == {wrong["id"]: "HTTP 401",
                                                          filtered["id"]: None}


def test_webhooks_pending_deliveries_and_dead_letters_survive_a_restart(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver],
        tmp_path: Path) -> None:
    rcv = receiver(SECRET)                                 # down for the whole first run
    cfg = server(live_server).config                       # (a throwaway, for its config)

    def run() -> LiveServer:
        return live_server(service=Service(cfg, data_dir=tmp_path))
    first = run()
    hook = add(first, url=rcv.url, secret=SECRET).json()
    wrong = add(first, url=rcv.url, secret="not-the-receivers-secret").json()
    events = feed(first)
    wait_until(lambda: metric(first, 'streamwatch_webhook_deliveries_total{result="retry"}')
               >= 1, what="a failed attempt")
    assert metric(first, "streamwatch_webhook_pending") == 2 * len(events)
    first.stop()
    second = run()
    listed = httpx.get(f"{second.url}/v1/webhooks", headers=bearer(ADMIN)).json()["items"]
    assert {h["id"]: h["pending"] for h in listed} == {hook["id"]: len(events),
                                                       wrong["id"]: len(events)}
    rcv.up()
    wait_until(lambda: len(rcv.events) == len(events), what="the deliveries after the restart")
    assert sorted(rcv.events) == sorted(f"{hook['id']}:{e['id']}" for e in events)
    wait_until(lambda: metric(second, "streamwatch_webhook_dead_letters") == len(events),
               what="the wrongly signed ones dead-lettered")
    wait_until(lambda: metric(second, "streamwatch_webhook_pending") == 0, what="none pending")
    second.stop()
    third = run()                                          # nothing is sent twice
    dead = httpx.get(f"{third.url}/v1/webhooks/dead-letters", headers=bearer(ADMIN)).json()
    assert [d["event_id"] for d in dead["items"]] == [e["id"] for e in events]
    assert metric(third, "streamwatch_webhook_pending") == 0
    r = httpx.delete(f"{third.url}/v1/webhooks/{hook['id']}", headers=bearer(ADMIN))
    assert r.status_code == 200
    third.stop()
    fourth = run()
    listed = httpx.get(f"{fourth.url}/v1/webhooks", headers=bearer(ADMIN)).json()["items"]
    assert [h["id"] for h in listed] == [wrong["id"]]
