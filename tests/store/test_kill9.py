"""Crash recovery end to end: `streamwatch serve --data-dir` as a real process, an incident
opened and acked, `kill -9`, a restart on the same data dir - the incident is back, still acked,
with its timeline; ids continue; a websocket resuming from an event id gets exactly what follows."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.api.conftest import REPO, wait_until
from tests.store.helpers import NDJSON, outage_chunks

TOKEN = "kill9-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HEADERS = {**NDJSON, **AUTH}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Proc:
    def __init__(self, data: Path, log: Path, **env_extra: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMWATCH_")}
        env["STREAMWATCH_API_TOKENS"] = f"admin:{TOKEN}"
        env.update(env_extra)
        self.out = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamwatch", "serve", "--port", str(self.port),
             "--config", str(REPO / "config"), "--detectors", str(REPO / "detectors"),
             "--data-dir", str(data)], stdout=self.out, stderr=subprocess.STDOUT, env=env,
            cwd=data.parent)

        def ready() -> bool:
            assert self.proc.poll() is None, log.read_text()[-2000:]
            try:
                return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False
        wait_until(ready, 30, "streamwatch serve's /readyz")

    def kill9(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.out.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[list[_Proc]]:
    started: list[_Proc] = []
    yield started
    for p in started:
        p.kill9()


async def _resume(url: str, since: str, n: int) -> tuple[dict, list[dict]]:
    ws_url = "ws" + url[len("http"):] + f"/v1/alerts/stream?since={since}&token={TOKEN}"
    async with websockets.connect(ws_url) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
        got = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(n)]
    return snapshot, got


def test_kill9_restores_incidents_acks_ids_and_resume(procs: list[_Proc],
                                                      tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "serve.log"
    chunks = outage_chunks(minutes=26.0, earlier=True)
    first = _Proc(data, log)
    procs.append(first)
    for body in chunks[: len(chunks) * 23 // 26]:
        assert httpx.post(f"{first.url}/v1/samples", content=body,
                          headers=HEADERS).status_code == 200
    inc = wait_until(lambda: httpx.get(f"{first.url}/v1/incidents",
                                       params={"stream": "room-a", "status": "open"},
                                       headers=AUTH).json()["items"], what="room-a's incident")[0]
    iid = inc["id"]
    assert httpx.post(f"{first.url}/v1/incidents/{iid}/ack",
                      json={"note": "on it"}, headers=AUTH).status_code == 200
    before = httpx.get(f"{first.url}/v1/incidents/{iid}", headers=AUTH).json()
    events = httpx.get(f"{first.url}/v1/alerts", headers=AUTH).json()["items"]
    assert [e["status"] for e in events] == ["firing", "resolved", "firing"]   # room-b, room-a
    first.kill9()                                         # no shutdown, no flush: SIGKILL

    second = _Proc(data, log)
    procs.append(second)
    after = httpx.get(f"{second.url}/v1/incidents/{iid}", headers=AUTH).json()
    assert after == before                        # still acked, same timeline, who and when
    assert after["status"] == "acked" and after["timeline"][-1]["note"] == "on it"
    assert httpx.get(f"{second.url}/v1/alerts", headers=AUTH).json()["items"] == events
    # a client that saw up to the first event resumes with exactly the ones after it
    snapshot, got = asyncio.run(_resume(second.url, events[0]["id"], len(events) - 1))
    assert [e["id"] for e in got] == [e["id"] for e in events[1:]]
    assert iid in [i["id"] for i in snapshot["incidents"]]
    # new data: ids continue after the old ones, never repeat them
    for body in chunks[len(chunks) * 23 // 26:]:
        assert httpx.post(f"{second.url}/v1/samples", content=body,
                          headers=HEADERS).status_code == 200
    bye = httpx.post(f"{second.url}/v1/samples", content=b'{"stream":"room-a","metric":"live",'
               b'"ts":%.1f,"value":0}' % (1767225600.0 + 26 * 60 + 5),
               headers=HEADERS)                    # goodbye: whatever is open resolves
    assert bye.status_code == 200 and bye.json()["accepted"] == 1, bye.text
    new = wait_until(lambda: [e for e in httpx.get(f"{second.url}/v1/alerts",
                                                   params={"since": events[-1]["id"]},
                                                   headers=AUTH).json()["items"]
                              if e["incident_id"] == iid], what="the incident resolved")
    ids = [e["id"] for e in httpx.get(f"{second.url}/v1/alerts",
                                      params={"limit": 1000}, headers=AUTH).json()["items"]]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert new[-1]["status"] == "resolved" and new[-1]["id"] > events[-1]["id"]
    room_a = httpx.get(f"{second.url}/v1/incidents", params={"stream": "room-a"},
                       headers=AUTH).json()
    assert [i["id"] for i in room_a["items"] if i["type"] == "stream_outage"] == [iid]


def _replay_alerts(tmp_path: Path, body: bytes) -> list[dict]:
    """What `streamwatch replay` makes of exactly these samples: the uninterrupted truth."""
    src, out = tmp_path / "acked.ndjson", tmp_path / "replayed.ndjson"
    src.write_bytes(body)
    subprocess.run([sys.executable, "-m", "streamwatch", "replay", str(src), "--output", str(out),
                    "--config", str(REPO / "config"), "--detectors", str(REPO / "detectors")],
                   check=True, capture_output=True, cwd=tmp_path)
    return [json.loads(x) for x in out.read_text().splitlines() if x.strip()]


def _metric(url: str, name: str) -> float:
    for row in httpx.get(f"{url}/metrics").text.splitlines():
        if row.startswith(name + " "):
            return float(row.split()[1])
    raise AssertionError(f"{name} not on /metrics")


_SAME = ("id", "ts", "stream", "metric", "status", "level", "team", "incident_id",
         "incident_type")


def test_kill9_right_after_202_loses_no_acknowledged_sample(procs: list[_Proc],
                                                            tmp_path: Path) -> None:
    """Every body answered 200 is in the journal: killed before it was processed or its events
    stored, the restarted service replays it on top of the last checkpoint and ends with exactly
    the alert events (same ids, same event times) of an uninterrupted replay of those samples."""
    data, log = tmp_path / "data", tmp_path / "serve.log"
    chunks = outage_chunks(minutes=26.0, earlier=True)
    first = _Proc(data, log, STREAMWATCH_STORAGE__CHECKPOINT_INTERVAL="0.2s")
    procs.append(first)
    half = len(chunks) // 2
    for body in chunks[:half]:
        assert httpx.post(f"{first.url}/v1/samples", content=body,
                          headers=HEADERS).status_code == 200
    # a checkpoint in the middle, so the restart replays only the log after it
    # (the first checkpoint is the one taken at start; any later one covers pushed samples -
    # maybe taken while the first half was still arriving, which is as good)
    wait_until(lambda: _metric(first.url, "streamwatch_journal_checkpoints_total") >= 2,
               what="a checkpoint of pushed samples")
    for body in chunks[half:]:
        assert httpx.post(f"{first.url}/v1/samples", content=body,
                          headers=HEADERS).status_code == 200
    first.kill9()                     # at once: the last bodies are journaled, maybe no more

    second = _Proc(data, log)
    procs.append(second)
    want = _replay_alerts(tmp_path, b"\n".join(chunks))
    assert [e["status"] for e in want] == ["firing", "resolved", "firing"]
    got = httpx.get(f"{second.url}/v1/alerts", params={"limit": 1000}, headers=AUTH).json()
    assert [{k: e[k] for k in _SAME} for e in got["items"]] == \
        [{k: e[k] for k in _SAME} for e in want]


def test_kill9_mid_delivery_loses_no_webhook_notification(procs: list[_Proc],
                                                         tmp_path: Path) -> None:
    """A webhook receiver failing (503) while alerts are delivered; the service is killed with
    deliveries pending; after the restart the receiver - now answering - has every alert event,
    each exactly once by Idempotency-Key, and every signature verified."""
    from tests.api.test_webhooks import SECRET, Receiver
    rcv = Receiver(SECRET)
    rcv.unavailable = 10**6                      # answers 503 until told otherwise
    rcv.up()
    env = {"STREAMWATCH_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
           "STREAMWATCH_WEBHOOKS__BACKOFF_BASE": "0.05", "STREAMWATCH_WEBHOOKS__BACKOFF_MAX": "0.2",
           "STREAMWATCH_WEBHOOKS__MAX_ATTEMPTS": "100"}
    try:
        data, log = tmp_path / "data", tmp_path / "serve.log"
        first = _Proc(data, log, **env)
        procs.append(first)
        hook = httpx.post(f"{first.url}/v1/webhooks", json={"url": rcv.url, "secret": SECRET},
                          headers=AUTH).json()
        for body in outage_chunks(minutes=26.0, earlier=True):
            assert httpx.post(f"{first.url}/v1/samples", content=body,
                              headers=HEADERS).status_code == 200
        events = wait_until(lambda: (lambda items: items if len(items) == 3 else None)(
            httpx.get(f"{first.url}/v1/alerts", headers=AUTH).json()["items"]),
            what="the three alert events")
        wait_until(lambda: len(rcv.raw) >= 3, what="deliveries being attempted (and refused)")
        first.kill9()                            # with every delivery still pending
        assert rcv.events == {}
        rcv.unavailable = 0                      # the receiver recovers

        second = _Proc(data, log, **env)
        procs.append(second)
        want = {f"{hook['id']}:{e['id']}" for e in events}
        wait_until(lambda: set(rcv.events) == want, what="every event at the receiver")
        assert rcv.bad_signatures == 0
        assert [rcv.events[f"{hook['id']}:{e['id']}"]["id"] for e in events] == \
            [e["id"] for e in events]
    finally:
        rcv.close()
