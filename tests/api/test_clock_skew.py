"""Clock skew over real HTTP: samples further ahead of the server clock than `ingest.future_skew`
are refused one by one, each named by line and field with how far ahead it was; the samples of
the same body within the allowance (a little ahead included) are accepted and processed."""
from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import orjson

from tests.api.conftest import LiveServer, live_server, wait_until  # noqa: F401 (fixture)


def test_samples_beyond_future_skew_are_refused_per_sample(
        live_server: Callable[..., LiveServer]) -> None:
    srv = live_server(ingest={"future_skew": "30s"})
    now = time.time()
    iso_ahead = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 86400))
    rows = [{"ts": now - 5, "value": 100},                  # 1 good
            {"ts": now + 120, "value": 101},                # 2 two minutes ahead: refused
            {"ts": now + 10, "value": 102},                 # 3 a little ahead: within 30 s
            {"ts": iso_ahead, "value": 103},                # 4 a day ahead, RFC 3339: refused
            {"ts": now - 4, "value": 104, "metric": "fps"}]  # 5 good
    body = b"\n".join(orjson.dumps({"stream": "room-skew", "metric": "viewers", **r})
                      for r in rows)
    r = httpx.post(f"{srv.url}/v1/samples", content=body,
                   headers={"Content-Type": "application/x-ndjson"})
    assert r.status_code // 100 == 2, r.text
    got = r.json()
    assert (got["accepted"], got["rejected"]) == (3, 2)
    assert [(e["line"], e["field"], e["reason"]) for e in got["errors"]] == [
        (2, "ts", "absurd_timestamp"), (4, "ts", "absurd_timestamp")]
    first, second = (e["detail"] for e in got["errors"])
    assert first.endswith("s ahead of the server clock (at most 30 s allowed)"), first
    assert int(first.split(" is ")[1].split(" s ")[0]) in range(115, 125)
    assert int(second.split(" is ")[1].split(" s ")[0]) in range(86395, 86405)
    assert srv.service.stats.samples_rejected["absurd_timestamp"] == 2
    view = wait_until(lambda: [v for v in httpx.get(f"{srv.url}/v1/streams").json()["items"]
                               if v["stream"] == "room-skew" and "fps" in v["metrics"]],
                      what="the good samples processed")[0]
    assert view["metrics"]["viewers"] == 102.0 and view["last_ts"] == now + 10
    exposition = httpx.get(f"{srv.url}/metrics").text
    assert 'streamwatch_samples_rejected_total{reason="absurd_timestamp"} 2.0' in exposition
