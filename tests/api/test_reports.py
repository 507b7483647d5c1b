"""`GET /v1/reports/review` on a real server with a real store: push a scenario (room-b has a
short outage that resolves, room-a's outage stays open), ack and mark incidents, read the report.
The service's clock is a fake one, so the ack delay is exact; event time is the scenario's."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from streamwatch.service import Service
from tests.api.conftest import LiveServer, bearer, make_config, wait_until, with_tokens
from tests.pipeline.scenario import T0
from tests.store.helpers import NDJSON, outage_chunks

V, I, O = "viewer-token-r", "ingest-token-r", "operator-token-r"
NOW = T0 + 23 * 60            # the fake wall clock: the scenario's end


@pytest.fixture
def srv(live_server: Callable[..., LiveServer], tmp_path: Path) -> LiveServer:
    cfg = make_config(auth=with_tokens(viewer=V, ingest=I, operator=O))
    s = live_server(service=Service(cfg, data_dir=tmp_path, clock=lambda: NOW))
    for body in outage_chunks(earlier=True):
        r = httpx.post(f"{s.url}/v1/samples", content=body, headers={**NDJSON, **bearer(I)})
        assert r.status_code == 200, r.text

    def both() -> bool:
        got = {i["stream"]: i["status"] for i in s.service.incidents.query()}
        return got.get("room-a") == "open" and got.get("room-b") == "resolved"
    wait_until(both, what="room-a open and room-b resolved")
    return s


def _incidents(s: LiveServer) -> dict[str, dict[str, Any]]:
    items = httpx.get(f"{s.url}/v1/incidents", headers=bearer(V)).json()["items"]
    return {i["stream"]: i for i in items}


def _review(s: LiveServer, **params: str) -> httpx.Response:
    return httpx.get(f"{s.url}/v1/reports/review", params=params, headers=bearer(V))


def test_review_after_ack_and_false_alarm(srv: LiveServer) -> None:
    incs = _incidents(srv)
    a, b = incs["room-a"], incs["room-b"]
    assert a["anomaly_started_at"] < a["started_at"]          # the pipeline records it
    r = httpx.post(f"{srv.url}/v1/incidents/{a['id']}/ack", headers=bearer(O))
    assert r.status_code == 200, r.text
    r = httpx.post(f"{srv.url}/v1/incidents/{b['id']}/note", headers=bearer(O),
                   json={"note": "planned encoder swap #false-alarm"})
    assert r.status_code == 200, r.text

    r = _review(srv)                                            # default: the last 24 h
    assert r.status_code == 200, r.text
    rep = r.json()
    assert (rep["from"], rep["to"]) == (NOW - 86400, NOW)
    total = rep["total"]
    assert (total["incidents"], total["open"], total["acked"], total["resolved"]) == (2, 0, 1, 1)
    assert total["false_alarms"] == 1 and total["escalations"] == 0
    assert rep["escalations_tracked"] is True
    assert total["time_to_ack_s"] == {"n": 1, "median": round(NOW - a["started_at"], 3),
                                      "p90": round(NOW - a["started_at"], 3)}
    rb = b["resolved_at"] - b["started_at"]
    assert total["time_to_resolve_s"]["n"] == 1
    assert total["time_to_resolve_s"]["median"] == pytest.approx(rb, abs=1e-3)
    detect = sorted(i["started_at"] - i["anomaly_started_at"] for i in (a, b))
    assert total["time_to_detect_s"]["n"] == 2
    assert total["time_to_detect_s"]["median"] == pytest.approx(sum(detect) / 2, abs=1e-3)
    keys = {(row["team"], row["level"]) for row in rep["rows"]}
    assert keys == {(a["team"], a["level"]), (b["team"], b["level"])}

    # the same window in RFC 3339 gives the same report; a window before it, nothing
    same = _review(srv, **{"from": "2025-12-31T00:23:00Z", "to": "2026-01-01T00:23:00+00:00"})
    assert same.status_code == 200 and same.json()["total"] == total
    early = _review(srv, **{"from": str(T0 - 3600), "to": str(b["started_at"])})
    assert early.json()["total"]["incidents"] == 0


@pytest.mark.parametrize("params, name", [
    ({"from": "yesterday"}, "from"), ({"to": "1e999"}, "to"),
    ({"from": "2026-01-01T00:00:00"}, "from"),                   # no offset: not guessed
    ({"from": "200", "to": "100"}, "from"), ({"to": "-5"}, "to")])
def test_bad_bounds_are_422_naming_the_parameter(srv: LiveServer, params: dict[str, str],
                                                 name: str) -> None:
    r = _review(srv, **params)
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["loc"] == ["query", name] and name in err["msg"]


def test_review_needs_the_viewer_role(srv: LiveServer) -> None:
    url = f"{srv.url}/v1/reports/review"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers=bearer(I)).status_code == 403
    assert httpx.get(url, headers=bearer(O)).status_code == 200
