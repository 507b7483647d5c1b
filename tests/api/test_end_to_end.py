"""The whole live path once, over real HTTP and a real websocket on 127.0.0.1:

samples pushed -> incident on the websocket with the contract's fields -> the same incident via
REST -> the counters on /metrics.
"""
from __future__ import annotations

import asyncio
import json

import httpx
import orjson
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import LiveServer
from tests.pipeline.scenario import T0, Effect, Room, samples

AT = 20 * 60.0
FIELDS = {"id", "ts", "stream", "metric", "level", "team", "status", "incident_id",
          "incident_type", "kind", "score", "observed", "expected", "summary", "runbook",
          "impact", "type"}


def _ndjson_chunks(chunk: int = 4000) -> list[bytes]:
    outage = [Effect("bitrate_kbps", AT, AT + 300, 0.1), Effect("fps", AT, AT + 300, 0.2)]
    b = samples([Room("room-a", effects=outage)] + [Room(f"room-{k}") for k in "bcd"])
    lines = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
             for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())]
    return [b"\n".join(lines[i:i + chunk]) for i in range(0, len(lines), chunk)]


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def test_push_to_websocket_to_rest_to_metrics(live_server) -> None:  # type: ignore[no-untyped-def]
    srv: LiveServer = live_server()
    async with websockets.connect(f"{srv.ws_url}/v1/alerts/stream?min_level=1") as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert snapshot["type"] == "snapshot" and snapshot["incidents"] == []
        async with httpx.AsyncClient(base_url=srv.url) as http:
            for body in _ndjson_chunks():
                r = await http.post("/v1/samples", content=body,
                                    headers={"Content-Type": "application/x-ndjson"})
                assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
            alert = json.loads(await asyncio.wait_for(ws.recv(), 20))
            # the contract's fields, typed and graded as DOMAIN.md says, on event time
            assert FIELDS <= set(alert), set(alert) ^ FIELDS
            assert (alert["type"], alert["stream"], alert["status"]) == ("alert", "room-a", "firing")
            assert (alert["incident_type"], alert["team"], alert["level"]) == ("stream_outage",
                                                                                "tech", 1)
            assert T0 + AT <= alert["ts"] <= T0 + AT + 30
            assert alert["summary"].startswith("room-a: ") and alert["runbook"]
            inc = (await http.get(f"/v1/incidents/{alert['incident_id']}")).json()
            assert (inc["id"], inc["type"], inc["level"], inc["team"]) == (
                alert["incident_id"], "stream_outage", 1, "tech")
            # the whole scenario was pushed, so the outage may already be over
            assert inc["timeline"][0]["event_id"] == alert["id"]
            assert inc["timeline"][0]["action"] == "firing" and inc["started_at"] == alert["ts"]
            assert inc["status"] == ("resolved" if inc["resolved_at"] else "open")
            listed = (await http.get("/v1/incidents", params={"team": "tech"})).json()["items"]
            assert alert["incident_id"] in [i["id"] for i in listed]
            text = (await http.get("/metrics")).text
    assert _metric(text, "streamwatch_samples_ingested_total") == srv.service.stats.samples_accepted
    assert _metric(text, "streamwatch_samples_ingested_total") > 20_000
    assert _metric(text, "streamwatch_alert_events_total", level="1", team="tech",
                   status="firing") >= 1
    open_l1 = [i for i in srv.service.incidents.open() if (i["level"], i["team"]) == (1, "tech")]
    assert _metric(text, "streamwatch_open_incidents", level="1", team="tech") == len(open_l1)
    assert _metric(text, "streamwatch_detector_latency_seconds_count") >= 1
