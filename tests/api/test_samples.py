"""POST /v1/samples over real HTTP: per-sample rejections, whole-body refusals, back-pressure."""
from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from streamwatch.api.samples import _SLICE
from streamwatch.service import Service
from tests.api.conftest import LiveServer, make_config, wait_until

__all__: list[str] = []

NOW = time.time()


def line(stream: str = "room-ok", metric: str = "viewers", value: object = 100.0,
         ts: object = None, **extra: object) -> dict[str, object]:
    return {"stream": stream, "metric": metric, "ts": NOW - 60 if ts is None else ts,
            "value": value, **extra}


def ndjson(rows: list[dict[str, object] | str]) -> bytes:
    """Rows as NDJSON; a str row is written verbatim (for what a JSON encoder cannot write)."""
    return b"".join((r.encode() if isinstance(r, str) else orjson.dumps(r)) + b"\n"
                    for r in rows)


def push(srv: LiveServer, body: bytes | Iterator[bytes],
         headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{srv.url}/v1/samples", content=body, headers=headers, timeout=10.0)


def stream_view(srv: LiveServer, stream: str) -> dict[str, object] | None:
    items = httpx.get(f"{srv.url}/v1/streams", params={"stream": stream}).json()["items"]
    return items[0] if items else None


def processed(srv: LiveServer, stream: str, metrics: set[str]) -> dict[str, object] | None:
    view = stream_view(srv, stream)
    return view if view and metrics <= set(view["metrics"]) else None  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def srv(live_server_module: Callable[..., LiveServer]) -> LiveServer:
    return live_server_module()


T = f"{NOW - 60:.3f}"
BAD_LINES: list[tuple[str, str | None, str]] = [   # (raw sample, field, reason)
    ('{"stream":"room-ok","metric":"viewers","ts":%s,"value":NaN}' % T, "value", "non_finite"),
    ('{"stream":"room-ok","metric":"viewers","ts":%s,"value":"NaN"}' % T, "value", "non_finite"),
    ('{"stream":"room-ok","metric":"viewers","ts":%s,"value":1e999}' % T, "value", "non_finite"),
    ('{"stream":"room-ok","metric":"likes_total","ts":%s,"value":-5}' % T, "value",
     "negative_count"),
    ('{"stream":"room-ok","metric":"viewers","ts":946684799,"value":1}', "ts",
     "absurd_timestamp"),
    ('{"stream":"room-ok","metric":"viewers","ts":%.3f,"value":1}' % (NOW + 600), "ts",
     "absurd_timestamp"),
    ('{"stream":"room-ok","metric":"viewers","ts":%s}' % T, "value", "missing_field"),
    ('{"stream":"room-ok","metric":"viewers","ts":%s,"value":"abc"}' % T, "value",
     "wrong_type"),
    ('{"stream":"room-ok","metric":"viewers","ts":%s,"value":true}' % T, "value", "wrong_type"),
    ('{"stream":5,"metric":"viewers","ts":%s,"value":1}' % T, "stream", "wrong_type"),
    (orjson.dumps(line(labels={f"k{i}": "v" for i in range(17)})).decode(), "labels",
     "oversized_labels"),
    (orjson.dumps(line(labels={"k": "v" * 129})).decode(), "labels", "oversized_labels"),
    ("42", None, "malformed"),                      # valid JSON, but not a sample object
]
GOOD = [line(metric="viewers", value=100.0), line(metric="fps", value=30.0),
        line(metric="bitrate_kbps", value=2500.0, ts=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 50)), labels={"cdn": "a"})]


def test_ndjson_bad_samples_rejected_one_by_one_good_ones_kept(srv: LiveServer) -> None:
    rows: list[dict[str, object] | str] = [GOOD[0]]
    rows += [raw for raw, _, _ in BAD_LINES[:6]] + [GOOD[1], ""]     # a blank line is no sample
    rows += [raw for raw, _, _ in BAD_LINES[6:]] + [GOOD[2]]
    body = ndjson(rows)
    before = dict(srv.service.stats.samples_rejected)
    r = push(srv, body, headers={"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["accepted"], got["rejected"], got["errors_omitted"]) == (3, len(BAD_LINES), 0)
    # lines are 1-based: good line 1, six bad, good line 8, blank 9, the rest bad, good last
    want_lines = [2, 3, 4, 5, 6, 7] + list(range(10, 10 + len(BAD_LINES) - 6))
    assert [e["line"] for e in got["errors"]] == want_lines
    assert [(e["field"], e["reason"]) for e in got["errors"]] == [(f, why) for _, f, why
                                                                 in BAD_LINES]
    assert all("index" not in e and e["detail"] for e in got["errors"])
    # the good samples reach the pipeline; rejections were counted by reason
    view = wait_until(lambda: processed(srv, "room-ok", {"viewers", "fps", "bitrate_kbps"}),
                      what="room-ok's good samples in /v1/streams")
    assert view["metrics"] == {"viewers": 100.0, "fps": 30.0, "bitrate_kbps": 2500.0}
    after = srv.service.stats.samples_rejected
    assert after["non_finite"] - before.get("non_finite", 0) == 3
    assert after["wrong_type"] - before.get("wrong_type", 0) == 3


def test_json_array_rejections_name_the_index(srv: LiveServer) -> None:
    raw = [raw for raw, _, _ in BAD_LINES]
    body = ("[" + ",\n".join([orjson.dumps(line(stream="room-arr")).decode()] + raw +
                             [orjson.dumps(line(stream="room-arr", metric="fps", value=25)
                                           ).decode()]) + "]").encode()
    r = push(srv, body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["accepted"], got["rejected"]) == (2, len(BAD_LINES))
    assert [e["index"] for e in got["errors"]] == list(range(1, len(BAD_LINES) + 1))
    assert [(e["field"], e["reason"]) for e in got["errors"]] == [(f, why) for _, f, why
                                                                 in BAD_LINES]
    assert all("line" not in e for e in got["errors"])
    view = wait_until(lambda: processed(srv, "room-arr", {"viewers", "fps"}), what="room-arr")
    assert view["metrics"] == {"viewers": 100.0, "fps": 25.0}


def test_malformed_json_array_is_refused_naming_line_and_field(srv: LiveServer) -> None:
    accepted = srv.service.stats.samples_accepted
    refused = srv.service.stats.requests_refused["400_malformed"]
    body = ('[\n' + orjson.dumps(line(stream="room-broken")).decode() + ',\n'
            '{"stream":"room-broken","metric":"viewers","ts":%s,"value":}\n]' % T).encode()
    r = push(srv, body)
    assert r.status_code == 400, r.text
    got = r.json()
    assert (got["error"], got["line"], got["field"]) == ("malformed", 3, "value")
    assert "line 3" in got["detail"]
    assert srv.service.stats.samples_accepted == accepted, "nothing of the body was accepted"
    assert srv.service.stats.requests_refused["400_malformed"] == refused + 1


@pytest.mark.parametrize("garbage", ["hello", '{"stream":"room-ghost","metric":"viewers"',
                                     "\xff\xfe"])
def test_ndjson_line_that_is_not_json_refuses_the_body(srv: LiveServer, garbage: str) -> None:
    accepted = srv.service.stats.samples_accepted
    body = ndjson([line(stream="room-ghost"), line(stream="room-ghost", metric="fps")])
    body += garbage.encode("latin-1") + b"\n" + ndjson([line(stream="room-ghost")])
    r = push(srv, body)
    assert r.status_code == 400, r.text
    assert r.json()["line"] == 3 and "line 3" in r.json()["detail"]
    assert srv.service.stats.samples_accepted == accepted
    # a later good body is processed, and the refused body's stream never shows up
    stamp = f"room-after-{len(garbage)}"
    assert push(srv, ndjson([line(stream=stamp)])).status_code == 200
    wait_until(lambda: stream_view(srv, stamp), what=f"{stamp} in /v1/streams")
    assert stream_view(srv, "room-ghost") is None


def test_line_numbers_hold_across_parse_slices(srv: LiveServer) -> None:
    # parsed in several slices: line numbers must continue across them
    rows: list[dict[str, object] | str] = [line(stream="room-big", value=float(i))
                                           for i in range(20000)]
    rows[14999] = BAD_LINES[0][0]
    body = ndjson(rows)
    assert len(body) > 2 * _SLICE and len(ndjson(rows[:14999])) > 2 * _SLICE
    got = push(srv, body).json()
    assert (got["accepted"], got["rejected"]) == (19999, 1)
    assert got["errors"][0]["line"] == 15000
    rows[16999] = "not json"
    r = push(srv, ndjson(rows))
    assert r.status_code == 400 and r.json()["line"] == 17000


def test_error_list_is_capped_and_says_how_many_were_left_out(srv: LiveServer) -> None:
    body = ndjson([BAD_LINES[0][0]] * 150 + [line(stream="room-cap")])
    got = push(srv, body).json()
    assert (got["accepted"], got["rejected"]) == (1, 150)
    assert len(got["errors"]) == 100 and got["errors_omitted"] == 50
    assert got["errors"][-1]["line"] == 100


def test_empty_body_is_an_empty_batch(srv: LiveServer) -> None:
    for body in (b"", b"\n\n  \n", b"[]"):
        r = push(srv, body)
        assert r.status_code == 200, (body, r.text)
        assert r.json() == {"accepted": 0, "rejected": 0, "errors": [], "errors_omitted": 0}


def test_compressed_body_is_refused_with_415(srv: LiveServer) -> None:
    r = push(srv, ndjson([line()]), headers={"content-encoding": "gzip"})
    assert r.status_code == 415 and "gzip" in r.json()["detail"]


def test_bodies_over_the_limits_get_413(live_server: Callable[..., LiveServer]) -> None:
    srv = live_server(server={"max_body_bytes": 4096, "max_samples_per_request": 5})
    big = ndjson([line(stream="room-413", value=float(i)) for i in range(60)])
    assert len(big) > 4096
    r = push(srv, big)                                   # Content-Length says it at once
    assert r.status_code == 413 and r.json()["error"] == "body_too_large", r.text

    def chunks() -> Iterator[bytes]:                     # no Content-Length: chunked upload
        for k in range(0, len(big), 1000):
            yield big[k:k + 1000]
    r = push(srv, chunks())
    assert r.status_code == 413 and r.json()["error"] == "body_too_large", r.text
    six = [line(stream="room-413", value=float(i)) for i in range(6)]
    for body in (ndjson(six), orjson.dumps(six)):
        r = push(srv, body)
        assert r.status_code == 413 and r.json()["error"] == "too_many_samples", r.text
    assert srv.service.stats.samples_accepted == 0
    assert push(srv, ndjson(six[:5])).json()["accepted"] == 5    # at the limit: fine
    refused = srv.service.stats.requests_refused
    assert (refused["413_body"], refused["413_samples"]) == (2, 2)
    wait_until(lambda: processed(srv, "room-413", {"viewers"}), what="room-413")


class GatedService(Service):
    """A real Service whose consumer does not start draining until `gate` is set: the honest way
    to hold a queue full (a burst would race the consumer). Stopping opens the gate, so the
    accepted samples are still drained."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.gate = threading.Event()

    async def _consume(self) -> None:
        while not self.gate.is_set():
            await asyncio.sleep(0.005)
        await super()._consume()

    async def stop(self) -> None:
        self.gate.set()
        await super().stop()


def test_full_queue_answers_429_and_keeps_nothing_of_the_body(
        live_server: Callable[..., LiveServer]) -> None:
    cfg = make_config(server={"queue_max_samples": 1000, "retry_after_s": 3})
    srv = live_server(service=GatedService(cfg))
    svc = srv.service
    fill = ndjson([line(stream="room-fill", ts=NOW - 100 + i * 0.05) for i in range(990)])
    assert push(srv, fill).json()["accepted"] == 990
    late = ndjson([line(stream="room-late", ts=NOW - 60 + i) for i in range(20)])
    r = push(srv, late)                                  # parsed, then refused by submit
    assert r.status_code == 429 and r.headers["retry-after"] == "3", r.text
    assert r.json()["error"] == "queue_full"
    assert push(srv, ndjson([line(stream="room-fill", metric="fps")] * 10)).status_code == 200
    r = push(srv, ndjson([line(stream="room-late")]))   # full already: refused before parsing
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    assert svc.stats.samples_accepted == 1000 and svc.queued == 1000
    assert svc.stats.requests_refused["429_full"] == 2
    assert svc.stats.batches == 0
    svc.gate.set()                                       # the consumer drains what it accepted
    wait_until(lambda: svc.queued == 0 and svc.stats.batches >= 1, what="the queue to drain")
    assert stream_view(srv, "room-late") is None, "nothing of a refused body was kept"
    assert processed(srv, "room-fill", {"viewers", "fps"})
    r = push(srv, late)                                  # the sender resends the same body
    assert r.status_code == 200 and r.json()["accepted"] == 20
    wait_until(lambda: processed(srv, "room-late", {"viewers"}), what="room-late")
    assert svc.stats.samples_accepted == 1020


def test_openapi_documents_the_push(srv: LiveServer) -> None:
    spec = httpx.get(f"{srv.url}/openapi.json").json()
    op = spec["paths"]["/v1/samples"]["post"]
    assert set(op["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "400", "413", "429"} <= set(op["responses"])
    report = spec["components"]["schemas"]["IngestReport"]
    assert {"accepted", "rejected", "errors"} <= set(report["required"])


# -- regressions found by tests/api/test_fuzz.py: each of these bodies was a 500 --------------
def _errors(r: httpx.Response) -> list[tuple[object, object, object]]:
    return [(e.get("line", e.get("index")), e["field"], e["reason"]) for e in r.json()["errors"]]


@pytest.mark.parametrize("field", ["value", "ts"])
def test_a_number_too_long_to_convert_is_rejected_alone(srv: LiveServer, field: str) -> None:
    """5000 digits: Python refuses to convert more than 4300 (ValueError escaped the parser)."""
    huge = '{"stream":"room-big","metric":"viewers","ts":%s,"value":%s}' % (
        ("9" * 5000, "1") if field == "ts" else (T, "9" * 5000))
    good = orjson.dumps(line(stream="room-big-ok")).decode()
    r = push(srv, f"{good}\n{huge}\n".encode())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and _errors(r) == [(2, field, "non_finite")]
    r = push(srv, f"[{good}, {huge}]".encode())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and _errors(r) == [(1, field, "non_finite")]


def test_nesting_too_deep_to_read_refuses_the_body_naming_the_line(srv: LiveServer) -> None:
    """Past the recursion limit (RecursionError escaped msgspec and the stdlib json)."""
    deep = "[" * 100_000 + "]" * 100_000
    good = orjson.dumps(line(stream="room-deep")).decode()
    for body, where in ((f'{good}\n{{"labels": {deep}}}\n', 2), (f"[{good}, {deep}]", 1),
                        (f"{good}\n{deep}\n", 2)):
        r = push(srv, body.encode())
        assert r.status_code == 400, r.text
        assert r.json()["line"] == where and "nested too deeply" in r.json()["detail"]


def test_bytes_that_are_not_utf8_inside_a_string_refuse_the_body(srv: LiveServer) -> None:
    """msgspec raised UnicodeDecodeError (not one of its own errors) for these; a label on a
    line the fast scanner took was only decoded later, when a slow line was merged in."""
    good = orjson.dumps(line(stream="room-utf8"))
    bad_name = b'{"stream":"\xff\xfe","metric":"viewers","ts":%s,"value":1}' % T.encode()
    bad_label = good[:-1] + b',"labels":{"cdn":"\xc3"}}'
    nan = b'{"stream":"room-utf8","metric":"fps","ts":%s,"value":NaN}' % T.encode()
    for body, where in ((good + b"\n" + bad_name + b"\n" + good, 2),
                        (bad_label + b"\n" + nan, 1), (b"[" + good + b"," + bad_name + b"]", 1)):
        r = push(srv, body)
        assert r.status_code == 400, r.text
        assert r.json()["line"] == where and "not UTF-8" in r.json()["detail"]
    assert stream_view(srv, "room-utf8") is None          # nothing of a refused body is kept


def test_lone_surrogate_escapes_are_rejected_alone_and_good_neighbours_kept(
        srv: LiveServer) -> None:
    """`"\\ud800"` is valid JSON but no text: interning its UTF-8 bytes raised (a 500 for NDJSON;
    for a JSON array the consumer dropped the whole batch, good samples included)."""
    rows: list[dict[str, object] | str] = [
        line(stream="room-sur"),
        '{"stream":"room-\\ud800","metric":"viewers","ts":%s,"value":1}' % T,
        '{"stream":"room-sur","metric":"\\udc00x","ts":%s,"value":1}' % T,
        '{"stream":"room-sur","metric":"fps","ts":%s,"value":1,"labels":{"k":"\\udfff"}}' % T,
        '{"stream":"room-sur-\\ud83d\\ude00","metric":"viewers","ts":%s,"value":1}' % T,  # a pair
    ]
    expected = [("stream", "wrong_type"), ("metric", "wrong_type"), ("labels", "wrong_type")]
    r = push(srv, ndjson(rows))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and _errors(r) == [(i + 2, *e) for i, e in
                                                        enumerate(expected)]
    array = "[" + ",".join(x if isinstance(x, str) else orjson.dumps(x).decode()
                           for x in rows) + "]"
    r = push(srv, array.replace("room-sur", "room-sur-a").encode())
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and _errors(r) == [(i + 1, *e) for i, e in
                                                        enumerate(expected)]
    for stream in ("room-sur", "room-sur-\U0001f600", "room-sur-a", "room-sur-a-\U0001f600"):
        wait_until(lambda s=stream: processed(srv, s, {"viewers"}), what=stream)
