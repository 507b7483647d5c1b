"""Webhook delivery on a fake clock: signature, back-off with jitter, budget, dead letters,
idempotency keys, filters; and the Alertmanager payload against Alertmanager's documented
fields. The receiver here is an in-process httpx transport (the dispatcher's real client and
code path); tests/api/test_webhooks.py covers the same over real HTTP."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from streamwatch.config.schema import WebhookSettings
from streamwatch.events import AlertEvent
from streamwatch.notify.alertmanager import (ALERT_FIELDS, PAYLOAD_FIELDS, ZERO_TIME,
                                             build_payload)
from streamwatch.notify.log import EventLog, LoggedEvent
from streamwatch.notify.webhook import (SIGNATURE_HEADER, WebhookDispatcher, backoff_delay, sign,
                                        verify_signature)
from streamwatch.store import SqliteStore, StoreError

__all__: list[str] = []

SECRET = "s3cret-s3cret-s3cret"
T0 = 1_750_000_000.0


def event(n: int, *, status: str = "firing", level: int = 2, team: str = "live_ops",
          incident: str = "inc-000001") -> dict[str, Any]:
    return {"id": f"{n:012d}", "ts": T0 + n, "stream": "room-1", "metric": "viewers",
            "level": level, "team": team, "status": status, "incident_id": incident,
            "incident_type": "viewer_drop", "kind": "drop", "score": 0.9, "observed": 10.0,
            "expected": 100.0, "summary": "viewers fell 90%", "runbook": "https://rb/x",
            "impact": {"viewers": 100.0, "gmv_per_min": 50.0}}


def logged(*events: dict[str, Any]) -> list[LoggedEvent]:
    return EventLog(1000).append([AlertEvent.model_validate(e) for e in events])


class FakeTime:
    """A wall clock that only moves when the dispatcher sleeps (records every wait)."""

    def __init__(self) -> None:
        self.now = T0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s
        await asyncio.sleep(0)


Handler = Callable[[httpx.Request], Awaitable[httpx.Response]]


async def dispatcher(handler: Handler, ft: FakeTime, rand: float = 0.0,
                     store: SqliteStore | None = None, **settings: Any) -> WebhookDispatcher:
    s = WebhookSettings(**{"max_attempts": 5, "backoff_base": 1.0, "backoff_max": 4.0,
                           **settings})
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    d = WebhookDispatcher(s, clock=ft.clock, sleep=ft.sleep, rand=lambda: rand, client=client)
    d.attach(store)
    await d.start()
    return d


async def until(cond: Callable[[], Any], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.001)


async def close(d: WebhookDispatcher) -> None:
    await d.stop(grace=0)
    assert d._client is not None
    await d._client.aclose()


# -- signature ----------------------------------------------------------------------------
def test_signature_verifies_and_detects_tampering() -> None:
    body = b'{"a":1}'
    header = sign(SECRET, body, int(T0))
    assert header.startswith(f"t={int(T0)},v1=") and len(header.split("v1=")[1]) == 64
    assert verify_signature(SECRET, header, body, now=T0 + 10)
    assert not verify_signature(SECRET, header, b'{"a":2}', now=T0)           # body changed
    assert not verify_signature("another-secret-xx", header, body, now=T0)    # wrong secret
    assert not verify_signature(SECRET, header, body, now=T0 + 301)           # too old
    assert not verify_signature(SECRET, header.replace(f"t={int(T0)}", f"t={int(T0) + 1}"),
                                body, now=T0)                                  # t changed
    for bad in (None, "", "v1=abc", "t=x,v1=abc", "garbage"):
        assert not verify_signature(SECRET, bad, body, now=T0)


def test_backoff_grows_doubles_to_the_cap_with_jitter_in_range() -> None:
    assert [backoff_delay(n, 1.0, 8.0, 0.0) for n in range(1, 7)] == [0.5, 1, 2, 4, 4, 4]
    assert [backoff_delay(n, 1.0, 8.0, 0.999) for n in range(1, 6)] == pytest.approx(
        [1, 2, 4, 8, 8], rel=1e-3)


# -- delivery -----------------------------------------------------------------------------
async def test_retries_back_off_then_dead_letter_with_one_key_and_fresh_signatures() -> None:
    ft, seen = FakeTime(), []

    async def down(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(503)

    d = await dispatcher(down, ft)
    hook = d.add("http://hooks.test/x", secret=SECRET)
    d(logged(event(1)))
    await until(lambda: d.dead_letters, "a dead letter")
    await close(d)
    assert len(seen) == 5                                          # the budget, no more
    assert ft.sleeps == [0.5, 1.0, 2.0, 2.0]                # doubling, jitter x0.5, cap 4 s
    assert {r.headers["idempotency-key"] for r in seen} == {f"{hook.id}:000000000001"}
    stamps = [int(r.headers[SIGNATURE_HEADER].split(",")[0][2:]) for r in seen]
    assert stamps == [int(T0), int(T0 + 0.5), int(T0 + 1.5), int(T0 + 3.5), int(T0 + 5.5)]
    assert all(verify_signature(SECRET, r.headers[SIGNATURE_HEADER], r.content, now=t)
               for r, t in zip(seen, stamps))
    dead = d.dead_letters[0]
    assert dead["event_id"] == "000000000001" and dead["attempts"] == 5
    assert "HTTP 503" in dead["error"] and dead["webhook_id"] == hook.id
    assert (d.stats.delivered, d.stats.retried, d.stats.dead, d.pending) == (0, 4, 1, 0)


async def test_recovering_receiver_gets_each_event_once_in_order() -> None:
    ft, got, calls = FakeTime(), [], [0]

    async def flaky(req: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] <= 3:
            return httpx.Response(500)
        got.append((req.headers["idempotency-key"], orjson.loads(req.content)))
        return httpx.Response(204)

    d = await dispatcher(flaky, ft, rand=0.5)
    d.add("http://hooks.test/x", secret=SECRET)
    d(logged(event(1), event(2, status="resolved")))
    await until(lambda: len(got) == 2, "both deliveries")
    await close(d)
    assert [e["id"] for _, e in got] == ["000000000001", "000000000002"]
    assert [e["status"] for _, e in got] == ["firing", "resolved"]       # never reordered
    assert got[0][1].items() >= event(1).items()                         # the §3 event as is
    assert ft.sleeps == [0.75, 1.5, 3.0] and not d.dead_letters


async def test_client_errors_are_permanent_but_429_honours_retry_after() -> None:
    ft, answers = FakeTime(), [httpx.Response(429, headers={"Retry-After": "3"}),
                               httpx.Response(200), httpx.Response(401)]

    async def receiver(req: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    d = await dispatcher(receiver, ft, max_attempts=10)
    d.add("http://hooks.test/x")
    d(logged(event(1), event(2)))
    await until(lambda: d.dead_letters, "the refused delivery")
    await close(d)
    assert ft.sleeps == [3.0]                          # Retry-After over the 0.5 s back-off
    assert d.stats.delivered == 1 and d.dead_letters[0]["attempts"] == 1
    assert d.dead_letters[0]["error"] == "HTTP 401"


async def test_transport_errors_and_timeouts_are_retried() -> None:
    ft, calls = FakeTime(), [0]

    async def receiver(req: httpx.Request) -> httpx.Response:
        calls[0] += 1
        if calls[0] == 1:
            raise httpx.ConnectError("refused", request=req)
        if calls[0] == 2:
            await asyncio.sleep(1.0)                   # longer than the per-attempt timeout
        return httpx.Response(200)

    d = await dispatcher(receiver, ft, timeout=0.05)
    hook = d.add("http://hooks.test/x")
    d(logged(event(1)))
    await until(lambda: d.stats.delivered == 1, "the delivery")
    await close(d)
    assert calls[0] == 3 and d.stats.retried == 2 and hook.last_error is not None
    assert "timed out" in hook.last_error


async def test_filters_and_queue_bound() -> None:
    ft, got = FakeTime(), []
    gate = asyncio.Event()

    async def receiver(req: httpx.Request) -> httpx.Response:
        await gate.wait()
        got.append(orjson.loads(req.content)["id"])
        return httpx.Response(200)

    d = await dispatcher(receiver, ft, max_pending=2)
    d.add("http://hooks.test/a", min_level=2, teams=["tech", "live_ops"])
    d(logged(event(1, level=3), event(2, level=1, team="logistics"),
             event(3, level=2, team="tech"), event(4, level=1), event(5, level=1)))
    assert d.pending == 2 and len(d.dead_letters) == 1            # 3 matched, bound is 2
    assert "queue full" in d.dead_letters[0]["error"]
    gate.set()
    await until(lambda: len(got) == 2, "the queued deliveries")
    await close(d)
    assert got == ["000000000003", "000000000004"]


async def test_deleted_webhook_gets_nothing_more() -> None:
    ft, got = FakeTime(), []

    async def receiver(req: httpx.Request) -> httpx.Response:
        got.append(req.url.path)
        return httpx.Response(200)

    d = await dispatcher(receiver, ft)
    a, b = d.add("http://hooks.test/a"), d.add("http://hooks.test/b")
    assert d.remove(a.id) and not d.remove(a.id)
    d(logged(event(1)))
    await until(lambda: got, "a delivery")
    await close(d)
    assert got == ["/b"] and [h["id"] for h in d.webhooks()] == [b.id]
    assert "secret" not in d.webhooks()[0]


# -- Alertmanager -------------------------------------------------------------------------
def test_alertmanager_payload_has_every_documented_field() -> None:
    firing = build_payload(event(1), receiver="r", external_url="https://sw.example/")
    resolved = build_payload(event(9, status="resolved"), receiver="r",
                             external_url="https://sw.example/", started_at=T0 + 1)
    for p, status in ((firing, "firing"), (resolved, "resolved")):
        assert set(p) == set(PAYLOAD_FIELDS) and p["version"] == "4"
        assert p["status"] == status and p["receiver"] == "r" and p["truncatedAlerts"] == 0
        assert p["externalURL"] == "https://sw.example" and isinstance(p["groupKey"], str)
        assert p["groupLabels"] == {"incident_id": "inc-000001"}
        (alert,) = p["alerts"]
        assert set(alert) == set(ALERT_FIELDS) and alert["status"] == status
        for part in ("labels", "annotations"):
            assert all(isinstance(v, str) for v in alert[part].values()), part
        assert alert["labels"]["alertname"] == "viewer_drop"
        assert alert["labels"]["severity"] == "major"
        assert alert["annotations"]["summary"] == "viewers fell 90%"
        assert alert["annotations"]["runbook_url"] == "https://rb/x"
        assert alert["generatorURL"] == "https://sw.example/v1/incidents/inc-000001"
        assert len(alert["fingerprint"]) == 16
        assert p["commonLabels"] == alert["labels"]
    assert firing["alerts"][0]["startsAt"] == "2025-06-15T15:06:41.000Z"
    assert firing["alerts"][0]["endsAt"] == ZERO_TIME
    assert resolved["alerts"][0]["startsAt"] == firing["alerts"][0]["startsAt"]
    assert resolved["alerts"][0]["endsAt"] == "2025-06-15T15:06:49.000Z"
    # the same incident keeps its fingerprint from firing to resolved
    assert resolved["alerts"][0]["fingerprint"] == firing["alerts"][0]["fingerprint"]


async def test_alertmanager_format_is_what_gets_sent() -> None:
    ft, got = FakeTime(), []

    async def receiver(req: httpx.Request) -> httpx.Response:
        got.append(orjson.loads(req.content))
        return httpx.Response(200)

    d = await dispatcher(receiver, ft)
    hook = d.add("http://hooks.test/am", format="alertmanager")
    d(logged(event(1)))
    await until(lambda: got, "a delivery")
    await close(d)
    assert got[0]["version"] == "4" and got[0]["receiver"] == f"streamwatch-{hook.id}"
    with pytest.raises(ValueError, match="unknown format"):
        d.add("http://hooks.test/x", format="slack")


# -- durability ---------------------------------------------------------------------------
async def test_state_is_restored_from_the_store_in_order() -> None:
    ft, got = FakeTime(), []
    store = SqliteStore(":memory:")

    async def receiver(req: httpx.Request) -> httpx.Response:
        got.append(req.headers["idempotency-key"])
        return httpx.Response(200 if len(got) > 1 else 400)

    d = WebhookDispatcher(WebhookSettings(), clock=ft.clock, sleep=ft.sleep)
    d.attach(store)
    hook = d.add("http://hooks.test/a", secret=SECRET, teams=["live_ops"])
    d(logged(event(1), event(2), event(3)))                  # queued, never started
    assert [k for k, _, _ in store.load_deliveries(False)] == [
        f"{hook.id}:00000000000{n}" for n in (1, 2, 3)]
    again = await dispatcher(receiver, ft, store=store)
    assert again.get(hook.id) == hook and again.pending == 3
    await until(lambda: len(got) == 3, "the restored deliveries")
    await close(again)
    assert got == [f"{hook.id}:00000000000{n}" for n in (1, 2, 3)]
    assert store.load_deliveries(False) == []                 # delivered ones removed
    (dead,) = store.load_deliveries(True)
    assert dead[0] == got[0] and dead[2]["error"] == "HTTP 400"


async def test_a_failing_store_does_not_stop_delivery() -> None:
    ft, got = FakeTime(), []

    class Broken(SqliteStore):
        def update_deliveries(self, *args: Any, **kwargs: Any) -> None:
            raise StoreError("store x: disk full")

    async def receiver(req: httpx.Request) -> httpx.Response:
        got.append(req.headers["idempotency-key"])
        return httpx.Response(200)

    d = await dispatcher(receiver, ft, store=Broken(":memory:"))
    d.add("http://hooks.test/a")
    d(logged(event(1)))
    await until(lambda: got, "the delivery")
    await close(d)
    assert d.stats.store_errors >= 1 and d.stats.delivered == 1
