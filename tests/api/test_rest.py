"""The REST read side over real HTTP, on a server fed a recorded scenario through POST /v1/samples.

Four equal rooms, 28 minutes of event time at a 5 s cadence (past the detectors' warm-up), with
incidents starting 20 minutes in: room-a's stream collapses (bitrate and fps), room-b gets a
complaint surge, room-c is throttled by the platform, room-d stays normal.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamwatch.events import AlertEvent
from streamwatch.service import Service
from tests.api.conftest import LiveServer, make_config, wait_until
from tests.pipeline.scenario import T0, Effect, Room, samples

__all__: list[str] = []

AT, END = 20 * 60.0, 26 * 60.0
ROOMS = [
    Room("room-a", minutes=28, effects=[Effect("bitrate_kbps", AT, END, 0.1),
                                        Effect("fps", AT, END, 0.2),
                                        Effect("viewers", AT + 20, END, 0.4)]),
    Room("room-b", minutes=28, effects=[Effect("complaints_total", AT, END, 40.0),
                                        Effect("refunds_total", AT, END, 40.0)]),
    Room("room-c", minutes=28, effects=[Effect("entries_total", AT, END, 0.1)]),
    Room("room-d", minutes=28),
]


def scenario_bodies(rooms: list[Room], per_body: int = 5000) -> list[bytes]:
    b = samples(rooms)
    rows = [orjson.dumps({"stream": s, "metric": m, "ts": t, "value": v})
            for s, m, t, v in zip(b.streams, b.metrics, b.ts.tolist(), b.values.tolist())]
    return [b"\n".join(rows[k:k + per_body]) + b"\n" for k in range(0, len(rows), per_body)]


@pytest.fixture(scope="module")
def fed(live_server_module: Callable[..., LiveServer]) -> LiveServer:
    """One server, fed the whole scenario and drained."""
    srv = live_server_module()
    total = 0
    for body in scenario_bodies(ROOMS):
        r = httpx.post(f"{srv.url}/v1/samples", content=body, timeout=30.0)
        assert r.status_code == 200 and r.json()["rejected"] == 0, r.text
        total += r.json()["accepted"]
    wait_until(lambda: srv.service.queued == 0 and srv.service.stats.batches > 0,
               timeout=20.0, what="the scenario to be processed")
    assert srv.service.stats.samples_accepted == total
    return srv


def get(srv: LiveServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{srv.url}{path}", params=params, timeout=10.0)


def incidents(srv: LiveServer, **params: Any) -> list[dict[str, Any]]:
    r = get(srv, "/v1/incidents", **params)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_outage_scenario_end_to_end(fed: LiveServer) -> None:
    outage = [i for i in incidents(fed) if i["stream"] == "room-a"
              and i["type"] == "stream_outage"]
    assert len(outage) == 1, incidents(fed)
    inc = outage[0]
    assert (inc["team"], inc["level"]) == ("tech", 1)
    assert AT <= inc["started_at"] - T0 <= AT + 30, "caught within 30 s of event time"
    assert inc["status"] == "resolved" and inc["resolved_at"] - T0 >= END - 5
    assert inc["runbook"] and inc["summary"].startswith("room-a: ")
    # the same story on /metrics
    text = httpx.get(f"{fed.url}/metrics").text
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    events = {(s.labels["level"], s.labels["team"], s.labels["status"]): s.value
              for s in fams["streamwatch_alert_events"].samples if s.name.endswith("_total")}
    assert events[("1", "tech", "firing")] >= 1 and events[("1", "tech", "resolved")] >= 1
    assert sum(events.values()) == len(get(fed, "/v1/alerts", limit=1000).json()["items"])
    opened = {(s.labels["level"], s.labels["team"]): s.value
              for s in fams["streamwatch_open_incidents"].samples}
    assert opened[("1", "tech")] == 0 and opened[("2", "customer_service")] == 1
    latency = {s.name: s.value for s in fams["streamwatch_detector_latency_seconds"].samples
               if not s.labels or s.labels.get("le") == "+Inf"}
    assert latency["streamwatch_detector_latency_seconds_count"] == sum(events.values())
    assert latency["streamwatch_detector_latency_seconds_bucket"] == sum(events.values())


def test_incident_filters(fed: LiveServer) -> None:
    every = incidents(fed)
    assert {(i["stream"], i["type"], i["team"], i["level"]) for i in every} >= {
        ("room-a", "stream_outage", "tech", 1),
        ("room-b", "complaint_surge", "customer_service", 2),
        ("room-c", "platform_throttle", "live_ops", 2)}
    assert not [i for i in every if i["stream"] == "room-d" and i["level"] <= 3]
    ids = [i["id"] for i in every]
    assert ids == sorted(ids, reverse=True), "newest first"
    assert [i["stream"] for i in incidents(fed, team="tech")] == ["room-a"]
    assert {i["level"] for i in incidents(fed, min_level=1)} == {1}
    assert {i["level"] for i in incidents(fed, min_level=2)} == {1, 2}
    assert [i["type"] for i in incidents(fed, status="open")] == ["complaint_surge"]
    assert [i["type"] for i in incidents(fed, stream="room-c")] == ["platform_throttle"]
    assert incidents(fed, stream="room-c", team="tech") == []
    assert incidents(fed, status="acked") == []
    for params in ({"team": "live_ops"}, {"min_level": 3}, {"status": "resolved"},
                   {"stream": "room-a", "min_level": 2}):
        want = [i["id"] for i in every if all(
            i["level"] <= v if k == "min_level" else i[k] == v for k, v in params.items())]
        assert [i["id"] for i in incidents(fed, **params)] == want, params


def test_incident_pages_follow_the_cursor(fed: LiveServer) -> None:
    every = [i["id"] for i in incidents(fed)]
    assert len(every) >= 3
    seen: list[str] = []
    cursor = None
    for _ in range(len(every) + 1):
        page = get(fed, "/v1/incidents", limit=1, **({"cursor": cursor} if cursor else {})).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == every, "each incident once, in the same order"
    page = get(fed, "/v1/incidents", limit=2, team="live_ops").json()
    assert all(i["team"] == "live_ops" for i in page["items"])


def test_incident_detail_has_its_timeline_and_404_names_the_id(fed: LiveServer) -> None:
    inc_id = next(i["id"] for i in incidents(fed, stream="room-a", team="tech"))
    r = get(fed, f"/v1/incidents/{inc_id}")
    assert r.status_code == 200
    inc = r.json()
    assert inc["id"] == inc_id and inc["type"] == "stream_outage"
    actions = [e["action"] for e in inc["timeline"]]
    assert actions[0] == "firing" and actions[-1] == "resolved"
    assert inc["timeline"][0]["ts"] == inc["started_at"]
    assert inc["timeline"][-1]["ts"] == inc["resolved_at"]
    r = get(fed, "/v1/incidents/inc-99999999")
    assert r.status_code == 404 and "inc-99999999" in r.json()["detail"]


def test_alerts_resume_and_filter(fed: LiveServer) -> None:
    every = get(fed, "/v1/alerts", limit=1000).json()
    ids = [e["id"] for e in every["items"]]
    assert ids == sorted(ids) and len(ids) >= 6, "oldest first"
    assert every["next"] == ids[-1]
    assert all(AlertEvent.model_validate(e) for e in every["items"])   # CONTRACTS §3 shape
    # without since: the newest `limit`; with since: forward pages that join up exactly
    assert [e["id"] for e in get(fed, "/v1/alerts", limit=2).json()["items"]] == ids[-2:]
    seen, since = [], ids[0]
    for _ in range(len(ids)):
        page = get(fed, "/v1/alerts", since=since, limit=2).json()
        seen += [e["id"] for e in page["items"]]
        if page["next"] == since:
            break
        since = page["next"]
    assert seen == ids[1:]
    last = get(fed, "/v1/alerts", since=ids[-1]).json()
    assert last == {"items": [], "next": ids[-1]}
    tech = get(fed, "/v1/alerts", team="tech", limit=1000).json()["items"]
    assert tech and all(e["team"] == "tech" and e["stream"] == "room-a" for e in tech)
    assert [e["id"] for e in get(fed, "/v1/alerts", min_level=1, limit=1000).json()["items"]] \
        == [e["id"] for e in every["items"] if e["level"] == 1]
    room_c = get(fed, "/v1/alerts", stream="room-c", limit=1000).json()["items"]
    assert {e["incident_type"] for e in room_c} == {"platform_throttle"}


def test_streams_show_latest_values_and_health(fed: LiveServer) -> None:
    r = get(fed, "/v1/streams")
    assert r.status_code == 200
    rooms = {s["stream"]: s for s in r.json()["items"]}
    assert set(rooms) == {"room-a", "room-b", "room-c", "room-d"}
    a = rooms["room-a"]
    assert a["live"] is True and a["silent"] is False
    assert a["last_ts"] == pytest.approx(T0 + 28 * 60 - 5)
    assert 2000 < a["metrics"]["bitrate_kbps"] < 4000, "recovered after the outage"
    assert a["metrics"]["viewers"] > 1000 and "comments_total" in a["metrics"]
    open_b = [i["id"] for i in incidents(fed, stream="room-b", status="open")]
    assert rooms["room-b"]["open_incidents"] == open_b and open_b
    only = get(fed, "/v1/streams", stream="room-c").json()["items"]
    assert [s["stream"] for s in only] == ["room-c"]
    assert get(fed, "/v1/streams", stream="room-zzz").json() == {"items": []}


def test_sources_of_a_push_only_service_are_empty(fed: LiveServer) -> None:
    r = get(fed, "/v1/sources")
    assert r.status_code == 200 and r.json() == {"items": []}


@pytest.mark.parametrize("path,params,name", [
    ("/v1/incidents", {"min_level": "0"}, "min_level"),
    ("/v1/incidents", {"min_level": "5"}, "min_level"),
    ("/v1/incidents", {"min_level": "high"}, "min_level"),
    ("/v1/incidents", {"status": "closed"}, "status"),
    ("/v1/incidents", {"team": "marketing"}, "team"),
    ("/v1/incidents", {"limit": "0"}, "limit"),
    ("/v1/incidents", {"limit": "100000"}, "limit"),
    ("/v1/incidents", {"cursor": "page-2"}, "cursor"),
    ("/v1/incidents", {"stream": ""}, "stream"),
    ("/v1/alerts", {"since": "yesterday"}, "since"),
    ("/v1/alerts", {"min_level": "-1"}, "min_level"),
    ("/v1/alerts", {"team": "TECH"}, "team"),
    ("/v1/alerts", {"limit": "x"}, "limit"),
    ("/v1/streams", {"stream": ""}, "stream"),
])
def test_bad_query_values_are_422_naming_the_parameter(fed: LiveServer, path: str,
                                                      params: dict[str, str], name: str) -> None:
    r = get(fed, path, **params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert [d["loc"] for d in detail] == [["query", name]], detail


def _event(k: int) -> AlertEvent:
    return AlertEvent(id=f"{k:012d}", ts=T0 + k, stream="room-x", metric="fps", level=3,
                      team="tech", status="firing", incident_id=f"inc-{k:08d}",
                      incident_type="stream_outage", kind="drop", score=1.0, observed=1.0,
                      expected=30.0, summary=f"room-x: event {k}")


def test_alerts_since_an_evicted_event_is_410(live_server: Callable[..., LiveServer]) -> None:
    service = Service(make_config(feed={"replay_buffer": 100}))
    service.log.append([_event(k) for k in range(1, 151)])   # before the server runs: no race
    srv = live_server(service=service)
    r = get(srv, "/v1/alerts", since=f"{1:012d}")
    assert r.status_code == 410 and "000000000001" in r.json()["detail"], r.text
    page = get(srv, "/v1/alerts", since=f"{51:012d}", limit=5).json()
    assert [e["id"] for e in page["items"]] == [f"{k:012d}" for k in range(52, 57)]
    assert page["next"] == f"{56:012d}"
