"""Outgoing webhooks: every alert event, signed, delivered at least once, or a dead letter.

The Service calls the dispatcher (a subscriber) synchronously with each batch of logged events;
the dispatcher only queues there - one queue per webhook - and one worker task per webhook
delivers its queue in order over a shared `httpx.AsyncClient`. In order on purpose: a receiver
must never see an incident resolved before it saw it firing, so a failing head delivery holds
the ones behind it while it is retried.

- Delivery semantics: at-least-once. Each delivery carries `Idempotency-Key:
  "{webhook id}:{event id}"`, identical on every retry, so a receiver that dedups on it sees each
  event exactly once even when an answer was lost and the body sent again.
- Retries: any transport error, timeout (`timeout`, the whole attempt), 3xx (redirects are not
  followed: the allow-list checked the first host only), 408, 425, 429 and 5xx are retried after
  `min(backoff_max, backoff_base * 2**(n-1))` scaled by a jitter factor in [0.5, 1) ("equal
  jitter": never zero, never in lock-step with other senders); a `Retry-After` in seconds
  lengthens the wait (capped at `backoff_max`). Other 4xx are permanent (the receiver refuses
  this body; sending it again will not help), like Alertmanager does.
- After `max_attempts` (or a permanent refusal, or a full queue) the delivery becomes a dead
  letter: kept (the newest `dead_letters`), listed by the API, counted in /metrics.
- Signature: `X-Streamwatch-Signature: t=UNIX,v1=HEX`, HMAC-SHA256 over `"{t}." + body` with
  the webhook's secret, `t` the wall clock of that attempt (`verify_signature` is the receiver's
  side, refusing more than 5 minutes of skew).

Durability (`attach(store)`, the Service's store): webhooks, pending deliveries and dead letters
are written through the store - a new delivery before it is first attempted, in one transaction
per batch of events - and restored at start, so a restart resumes where it stopped. Completions
are written in groups (when a webhook's queue empties, or every 256), not one fsync each: after a
crash a few delivered events may be sent again, with the same Idempotency-Key. Without a store
(or when it fails) the state is in memory only. Secrets are stored in the store as given: the
HMAC needs them, so the data dir must be protected like config/.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from streamwatch import __version__
from streamwatch.config.routing import Receiver
from streamwatch.config.schema import WebhookSettings
from streamwatch.notify.alertmanager import build_payload
from streamwatch.notify.log import LoggedEvent
from streamwatch.store.base import Store, StoreError

__all__ = ["Webhook", "Delivery", "WebhookDispatcher", "WebhookStats", "sign", "verify_signature",
           "backoff_delay", "SIGNATURE_HEADER", "TOLERANCE_S", "FORMATS"]

log = logging.getLogger("streamwatch.webhook")

SIGNATURE_HEADER = "X-Streamwatch-Signature"
TOLERANCE_S = 300.0
FORMATS = ("streamwatch", "alertmanager")
_RETRYABLE_4XX = (408, 425, 429)
_DONE_BATCH = 256
_HOOK_FIELDS = ("id", "url", "format", "secret", "min_level", "teams", "created_at")


def sign(secret: str, body: bytes, t: int) -> str:
    """The signature header value for `body` sent at unix time `t`."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes, now: float,
                     tolerance: float = TOLERANCE_S) -> bool:
    """The receiver's check: a well-formed header, `t` within `tolerance` of `now`, and a
    matching HMAC (compared in constant time)."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - t) > tolerance:
        return False
    want = sign(secret, body, t).partition(",v1=")[2]
    return hmac.compare_digest(want, parts.get("v1", ""))


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Wait after failed attempt number `attempt` (1-based); `rand` in [0, 1)."""
    full = min(cap, base * 2.0 ** (attempt - 1))
    return full * (0.5 + 0.5 * rand)


@dataclass
class Webhook:
    id: str
    url: str
    format: str
    secret: str
    min_level: int | None = None
    teams: tuple[str, ...] | None = None
    created_at: float = 0.0
    delivered: int = 0
    last_error: str | None = None
    last_delivered_at: float | None = None
    routed: bool = False          # a config/routing.toml receiver (incidents/route.py)

    def matches(self, event: dict[str, Any]) -> bool:
        if self.routed:                    # hears only what the routing tree sends it
            return False
        if self.min_level is not None and event["level"] > self.min_level:
            return False
        return self.teams is None or event["team"] in self.teams

    def stored(self) -> dict[str, Any]:
        doc = {k: getattr(self, k) for k in _HOOK_FIELDS}
        doc["teams"] = list(self.teams) if self.teams else None
        return doc

    @classmethod
    def from_stored(cls, doc: dict[str, Any]) -> Webhook:
        hook = cls(**{k: doc.get(k) for k in _HOOK_FIELDS})
        hook.teams = tuple(hook.teams) if hook.teams else None
        return hook

    def public(self, pending: int = 0) -> dict[str, Any]:
        """As the API lists it: never the secret."""
        return {"id": self.id, "url": self.url, "format": self.format, "routed": self.routed,
                "min_level": self.min_level, "teams": list(self.teams) if self.teams else None,
                "created_at": self.created_at, "delivered": self.delivered,
                "pending": pending, "last_error": self.last_error,
                "last_delivered_at": self.last_delivered_at}


@dataclass
class Delivery:
    key: str                      # Idempotency-Key: the same on every attempt
    webhook_id: str
    event: dict[str, Any]
    body: bytes
    attempts: int = 0
    first_at: float | None = None
    next_at: float | None = None
    last_error: str | None = None


@dataclass
class WebhookStats:
    delivered: int = 0            # deliveries a receiver accepted (2xx)
    retried: int = 0              # failed attempts followed by another
    dead: int = 0                 # deliveries given up on (dead letters ever made)
    dropped: int = 0              # pending deliveries of a webhook deleted meanwhile
    store_errors: int = 0         # failed writes of webhook state (kept in memory meanwhile)


@dataclass
class _Lane:
    hook: Webhook
    queue: deque[Delivery] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    busy: bool = False


class WebhookDispatcher:
    """Subscriptions, queues and delivery workers (see module notes). Call it with a list of
    LoggedEvent (it is a Service subscriber); `start`/`stop` on the service's loop."""

    def __init__(self, settings: WebhookSettings, *,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 rand: Callable[[], float] = random.random,
                 client: httpx.AsyncClient | None = None,
                 started_at: Callable[[str], float | None] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._sleep = sleep
        self._rand = rand
        self._client = client
        self._own_client = client is None
        self._started_at = started_at or (lambda _id: None)
        self._lanes: dict[str, _Lane] = {}
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=settings.dead_letters)
        self.stats = WebhookStats()
        self._running = False
        self._store: Store | None = None
        self._done: list[str] = []          # delivered keys not yet removed from the store

    def attach(self, store: Store | None) -> None:
        """Restore webhooks, pending deliveries and dead letters from `store` (before `start`)
        and write through it from now on; None: memory only."""
        if store is None:
            return
        try:
            hooks = [Webhook.from_stored(doc) for doc in store.load_webhooks()]
            pending = store.load_deliveries(False)
            dead = store.load_deliveries(True, self.settings.dead_letters)
        except StoreError as exc:
            log.error("webhook state unavailable: webhooks kept in memory only",
                      extra={"error": str(exc)})
            return
        self._store = store
        for hook in hooks:
            self._lanes[hook.id] = _Lane(hook)
        for key, hook_id, ev in pending:
            lane = self._lanes.get(hook_id)
            if lane is not None:
                lane.queue.append(Delivery(key, hook_id, ev, self._body(lane.hook, ev)))
        self.dead_letters.extend(doc for _, _, doc in dead)
        log.info("webhooks restored", extra={"webhooks": len(hooks), "pending": len(pending),
                                             "dead_letters": len(dead)})

    def _write(self, pending: list[tuple[str, str, dict[str, Any]]] | None = None,
               dead: list[tuple[str, str, dict[str, Any]]] | None = None) -> None:
        """Write through the store (with any delivered keys not yet removed); on failure keep
        going in memory: delivery must not stop because the disk is full."""
        if self._store is None:
            return
        done, self._done = self._done, []
        try:
            self._store.update_deliveries(pending or (), done, dead or ())
        except StoreError as exc:
            self.stats.store_errors += 1
            self._done = done + self._done
            log.error("webhook state not stored", extra={"error": str(exc)})

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.settings.timeout,
                                             follow_redirects=False, trust_env=False)
        self._running = True
        for lane in self._lanes.values():
            self._spawn(lane)

    async def stop(self, grace: float = 2.0) -> None:
        """Give in-flight and queued deliveries up to `grace` seconds, then stop the workers
        (what is left stays pending in the store, or is lost without one); close the client.
        Events that arrive afterwards are still queued and stored, not sent."""
        deadline = time.monotonic() + grace
        while self.pending and time.monotonic() < deadline and any(
                lane.busy or (lane.queue and lane.queue[0].attempts == 0)
                for lane in self._lanes.values()):
            await asyncio.sleep(0.02)
        self._running = False
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._write()
        if self.pending and self._store is None:
            log.warning("webhook deliveries lost at shutdown", extra={"pending": self.pending})
        if self._own_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- subscriptions ----------------------------------------------------------------------
    def add(self, url: str, format: str = "streamwatch", secret: str | None = None,
            min_level: int | None = None, teams: list[str] | None = None) -> Webhook:
        if format not in FORMATS:
            raise ValueError(f"unknown format {format!r}")
        hook = Webhook(id=f"wh-{secrets.token_hex(6)}", url=url, format=format,
                       secret=secret or secrets.token_urlsafe(32), min_level=min_level,
                       teams=tuple(teams) if teams else None, created_at=self.clock())
        if self._store is not None:
            self._store.save_webhook(hook.stored())      # StoreError: not added (caller: 503)
        lane = self._lanes[hook.id] = _Lane(hook)
        if self._running:
            self._spawn(lane)
        return hook

    def remove(self, hook_id: str) -> bool:
        """False if unknown; StoreError (still registered) if the store cannot forget it."""
        if hook_id not in self._lanes:
            return False
        if self._store is not None:
            self._store.delete_webhook(hook_id)
        lane = self._lanes.pop(hook_id)
        self.stats.dropped += len(lane.queue)
        if lane.task is not None:
            lane.task.cancel()
        return True

    def webhooks(self) -> list[dict[str, Any]]:
        return [lane.hook.public(len(lane.queue)) for lane in self._lanes.values()]

    def get(self, hook_id: str) -> Webhook | None:
        lane = self._lanes.get(hook_id)
        return lane.hook if lane else None

    @property
    def pending(self) -> int:
        return sum(len(lane.queue) for lane in self._lanes.values())

    # -- intake (Service subscriber: synchronous, never blocks) ------------------------------
    def __call__(self, logged: list[LoggedEvent]) -> None:
        new: list[tuple[str, str, dict[str, Any]]] = []
        dead: list[tuple[str, str, dict[str, Any]]] = []
        for lane in self._lanes.values():
            hook = lane.hook
            for item in logged:
                if item.data.get("silenced") or not hook.matches(item.data):
                    continue              # silenced (incidents/silence.py): recorded, not paged
                self._enqueue(lane, item.id, item.data, new, dead)
            if lane.queue:
                lane.wake.set()
        if new or dead:
            self._write(new, dead)

    def configure(self, receivers: list[Receiver], env: Mapping[str, str]) -> None:
        """The receivers of config/routing.toml as webhooks (id = name) that hear only what the
        routing tree sends them (`deliver`), not every event; before `attach`, so their
        pending deliveries are restored. Not stored: config/ is their source."""
        for r in receivers:
            secret = env.get(r.secret_env, "") if r.secret_env else ""
            hook = Webhook(id=r.name, url=r.url, format=r.format,
                           secret=secret or secrets.token_urlsafe(32),
                           created_at=self.clock(), routed=True)
            self._lanes[hook.id] = _Lane(hook)

    def deliver(self, target: str, event: dict[str, Any], key: str, *,
                bounded: bool = True) -> int:
        """Queue alert `event` for receiver `target` ("command": every webhook subscribed to
        the command team), Idempotency-Key "{target}:{key}"; how many were queued."""
        new: list[tuple[str, str, dict[str, Any]]] = []
        dead: list[tuple[str, str, dict[str, Any]]] = []
        for lane in self._targets(target):
            self._enqueue(lane, key, event, new, dead, bounded)
            lane.wake.set()
        if new or dead:
            self._write(new, dead)
        return len(new)

    def _enqueue(self, lane: _Lane, key: str, event: dict[str, Any],
                 new: list[tuple[str, str, dict[str, Any]]],
                 dead: list[tuple[str, str, dict[str, Any]]], bounded: bool = True) -> None:
        """One delivery on `lane`'s queue (noted in `new` for the store), or, past
        `max_pending` when `bounded`, a dead letter (noted in `dead`)."""
        hook = lane.hook
        d = Delivery(key=f"{hook.id}:{key}", webhook_id=hook.id, event=event,
                     body=self._body(hook, event))
        if bounded and len(lane.queue) >= self.settings.max_pending:
            dead.append(self._dead(hook, d, f"queue full ({self.settings.max_pending} pending)"))
            return
        lane.queue.append(d)
        new.append((d.key, hook.id, d.event))

    def _targets(self, target: str) -> list[_Lane]:
        if target == "command":
            return [ln for ln in self._lanes.values()
                    if ln.hook.teams and "command" in ln.hook.teams]
        return [ln for ln in (self._lanes.get(target),) if ln is not None]

    def send(self, target: str, payload: dict[str, Any]) -> int:
        """Queue a notification that is not an alert event (an escalation, incidents/
        escalate.py: `payload["id"]` makes the Idempotency-Key) to webhook `target`, or to every
        webhook subscribed to the command team for "command"; how many were queued. Not held to
        `max_pending`: an escalation is exactly what must not be dropped from a full queue."""
        return self.deliver(target, payload, str(payload["id"]), bounded=False)

    def _body(self, hook: Webhook, event: dict[str, Any]) -> bytes:
        if event.get("type") == "escalation":          # send(): the same body in every format
            return orjson.dumps(event)
        if hook.format == "alertmanager":
            started = self._started_at(event["incident_id"]) if event["status"] == "resolved" \
                else None
            return orjson.dumps(build_payload(event, receiver=f"streamwatch-{hook.id}",
                                              external_url=self.settings.external_url,
                                              started_at=started))
        return orjson.dumps(event)

    # -- delivery ---------------------------------------------------------------------------
    def _spawn(self, lane: _Lane) -> None:
        lane.task = asyncio.create_task(self._work(lane), name=f"webhook-{lane.hook.id}")

    async def _work(self, lane: _Lane) -> None:
        hook, s = lane.hook, self.settings
        while True:
            while not lane.queue:
                lane.wake.clear()
                await lane.wake.wait()
            d = lane.queue[0]
            d.attempts += 1
            if d.first_at is None:
                d.first_at = self.clock()
            lane.busy = True
            try:
                ok, permanent, error, retry_after = await self._attempt(hook, d)
            finally:
                lane.busy = False
            if ok:
                lane.queue.popleft()
                self.stats.delivered += 1
                hook.delivered += 1
                hook.last_delivered_at = self.clock()
                if self._store is not None:
                    self._done.append(d.key)
                    if not lane.queue or len(self._done) >= _DONE_BATCH:
                        self._write()
                continue
            d.last_error = hook.last_error = error
            if permanent or d.attempts >= s.max_attempts:
                lane.queue.popleft()
                why = error if permanent else f"{d.attempts} attempts failed, last: {error}"
                self._write(dead=[self._dead(hook, d, why)])
                continue
            self.stats.retried += 1
            delay = backoff_delay(d.attempts, s.backoff_base, s.backoff_max, self._rand())
            if retry_after is not None:
                delay = min(s.backoff_max, max(delay, retry_after))
            d.next_at = self.clock() + delay
            await self._sleep(delay)

    async def _attempt(self, hook: Webhook, d: Delivery
                       ) -> tuple[bool, bool, str | None, float | None]:
        """One POST: (accepted, permanent refusal, error, Retry-After seconds)."""
        assert self._client is not None
        t = int(self.clock())
        headers = {"Content-Type": "application/json", "Idempotency-Key": d.key,
                   "User-Agent": f"streamwatch/{__version__}",
                   SIGNATURE_HEADER: sign(hook.secret, d.body, t)}
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # arrives as the POST completes, and `stop()` then waited forever for this worker
            async with asyncio.timeout(self.settings.timeout):
                r = await self._client.post(hook.url, content=d.body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return False, False, f"timed out after {self.settings.timeout:g} s", None
        except httpx.HTTPError as exc:
            return False, False, f"{type(exc).__name__}: {exc}"[:300], None
        code = r.status_code
        if 200 <= code < 300:
            return True, False, None, None
        permanent = 400 <= code < 500 and code not in _RETRYABLE_4XX
        retry_after = None
        try:
            retry_after = float(r.headers["retry-after"])
        except (KeyError, ValueError):
            pass
        return False, permanent, f"HTTP {code}", retry_after

    def _dead(self, hook: Webhook, d: Delivery, why: str | None
              ) -> tuple[str, str, dict[str, Any]]:
        """Record a dead letter; the row to store."""
        self.stats.dead += 1
        record = {"key": d.key, "webhook_id": hook.id, "url": hook.url,
                  "event_id": d.event["id"], "event": d.event, "attempts": d.attempts,
                  "error": why or "unknown", "first_attempt_at": d.first_at,
                  "dead_at": self.clock()}
        self.dead_letters.append(record)
        log.warning("webhook delivery dead-lettered",
                    extra={"webhook": hook.id, "event": d.event["id"], "error": why})
        return d.key, hook.id, record
