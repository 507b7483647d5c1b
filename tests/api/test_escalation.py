"""Escalation end to end: an open tech incident nobody acks is sent, as an escalation, to a real
local webhook receiver subscribed to the command team; acking stops the next step. (The timing
rules themselves are tested on a fake clock in tests/incidents/test_escalate.py.)"""
from __future__ import annotations

from collections.abc import Callable

import httpx
import orjson

from tests.api.conftest import LiveServer, bearer, live_server, wait_until, with_tokens
from tests.api.test_webhooks import ADMIN, INGEST, OPERATOR, SECRET, VIEWER, Receiver, receiver
from tests.pipeline.scenario import T0, Effect, Room, samples

__all__: list[str] = []

_FIXTURES = (live_server, receiver)


def ongoing() -> bytes:
    """room-a's stream collapses at minute 20 and is still down when the samples stop."""
    at = 20 * 60.0
    b = samples([Room("room-a", minutes=30, effects=[Effect("bitrate_kbps", at, at + 600, 0.1),
                                                     Effect("fps", at, at + 600, 0.2)])])
    return b"\n".join(orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
                      for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(),
                                            b.values.tolist()) if t < T0 + 23 * 60)


def test_unacked_incident_escalates_to_the_command_center(
        live_server: Callable[..., LiveServer], receiver: Callable[[str], Receiver]) -> None:
    srv = live_server(auth=with_tokens(admin=ADMIN, viewer=VIEWER, operator=OPERATOR,
                                       ingest=INGEST),
                      webhooks={"allowed_hosts": ["127.0.0.1"], "backoff_base": 0.05},
                      escalation=[{"team": "tech", "after": 0.2, "notify": "command"},
                                  {"team": "tech", "after": 600, "notify": "command"}])
    rcv = receiver(SECRET)
    rcv.up()
    r = httpx.post(f"{srv.url}/v1/webhooks", headers=bearer(ADMIN),
                   json={"url": rcv.url, "secret": SECRET, "teams": ["command"]})
    assert r.status_code == 201, r.text
    r = httpx.post(f"{srv.url}/v1/samples", content=ongoing(), headers=bearer(INGEST))
    assert r.status_code == 200, r.text
    wait_until(lambda: srv.service.queued == 0, what="the queue to drain")
    open_ = httpx.get(f"{srv.url}/v1/incidents", params={"status": "open"},
                      headers=bearer(VIEWER)).json()["items"]
    tech = [i for i in open_ if i["team"] == "tech"]
    assert tech, open_
    got = wait_until(lambda: [e for e in list(rcv.events.values())
                              if e.get("type") == "escalation"], what="an escalation")
    assert {e["incident_id"] for e in got} <= {i["id"] for i in tech}
    assert {e["step"] for e in got} <= {"step1", "level1"} and got[0]["notify"] == "command"
    assert not [e for e in rcv.events.values() if e.get("type") != "escalation"]  # teams filter
    for inc in tech:
        r = httpx.post(f"{srv.url}/v1/incidents/{inc['id']}/ack", headers=bearer(OPERATOR))
        assert r.status_code == 200, r.text
    esc = srv.app.state.escalator
    wait_until(lambda: not esc.watched, what="acked incidents no longer watched")
