"""Outgoing webhooks: every alert event, signed, delivered at least once, or a dead letter.

The Service calls the dispatcher (a subscriber) synchronously with each batch of logged events;
the dispatcher only queues there - one queue per webhook - and one worker task per webhook
delivers its queue in order over a shared `httpx.AsyncClient`. In order on purpose: a receiver
must never see an incident resolved before it saw it firing, so a failing head delivery holds
the ones behind it while it is retried.

This module is that dispatcher: the registry of webhooks (notify/subscription.py), intake,
the body in each format, the per-webhook workers, write-through and dead letters. What one
attempt is - at-least-once with a stable Idempotency-Key, which answers are retried and after how
long - is notify/delivery.py's; the signature is notify/signing.py's. Their names are re-exported
here, where the rest of the code and the docs import them from. After `max_attempts` (or a
permanent refusal, or a full queue) a delivery becomes a dead letter: kept (the newest
`dead_letters`), listed by the API, counted in /metrics.

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

from streamwatch.config.routing import Receiver
from streamwatch.config.schema import WebhookSettings
from streamwatch.notify.alertmanager import build_payload
from streamwatch.notify.delivery import Delivery, backoff_delay, post, retry_wait
from streamwatch.notify.log import LoggedEvent
from streamwatch.notify.signing import SIGNATURE_HEADER, TOLERANCE_S, sign, verify_signature
from streamwatch.notify.subscription import FORMATS, Webhook
from streamwatch.store.base import Store, StoreError

__all__ = ["Webhook", "Delivery", "WebhookDispatcher", "WebhookStats", "sign", "verify_signature",
           "backoff_delay", "SIGNATURE_HEADER", "TOLERANCE_S", "FORMATS"]

log = logging.getLogger("streamwatch.webhook")

_DONE_BATCH = 256


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
                assert self._client is not None
                ok, permanent, error, retry_after = await post(
                    self._client, hook, d, int(self.clock()), s.timeout)
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
            delay = retry_wait(d.attempts, retry_after, s.backoff_base, s.backoff_max,
                               self._rand())
            d.next_at = self.clock() + delay
            await self._sleep(delay)

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
