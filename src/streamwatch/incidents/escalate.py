"""Escalation: an incident nobody acknowledges is pushed up, step by step, to someone who will.

Why it works this way:
- Policy per team in config (`[[escalation]]` team, after, notify; config/schema.py): a team's
  steps fire in order of `after`, counted from the incident's first alert as the service saw it
  (wall clock, `clock`), not from event time - a replay of old samples must not escalate at once.
- Level 1 (critical) notifies the command center ("command") at once, whatever the policy -
  also when a watched incident is graded up to level 1 later.
- An ack or resolve stops it (`status_of` reads the incident index). A silenced first alert
  (incidents/silence.py) is not escalated either: silencing means "nobody is to be paged".
- Timers are not asyncio timers: `tick()` compares the clock with what is due, so tests drive a
  fake clock (no sleeps) and a restart loses nothing - each watched incident (when it was first
  alerted, which steps were notified) is written through the store and reloaded by `attach`.
  A step is stored as notified right after it is queued, so a crash in between may notify it
  twice (same Idempotency-Key at a webhook), never zero times.
- Notifying is the caller's `send(target, payload)` (the webhook dispatcher's `send`).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from streamwatch.config.schema import EscalationStep
from streamwatch.incidents.ticker import tick_forever
from streamwatch.notify.log import LoggedEvent
from streamwatch.store.base import Store, StoreError

__all__ = ["Escalator", "COMMAND", "IMMEDIATE"]

log = logging.getLogger("streamwatch.escalate")

COMMAND = "command"
IMMEDIATE = "level1"        # the step name of the level-1 notification


class Escalator:
    """Watches unacknowledged incidents; `observe` is a Service subscriber, `tick` is driven by
    a loop (`run`) or by tests. Runs on the event loop thread."""

    def __init__(self, steps: Sequence[EscalationStep],
                 send: Callable[[str, dict[str, Any]], int],
                 status_of: Callable[[str], str | None],
                 clock: Callable[[], float] = time.time,
                 record: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.policy: dict[str, list[EscalationStep]] = {}
        for step in sorted(steps, key=lambda s: s.after):
            self.policy.setdefault(step.team, []).append(step)
        self.send = send
        self.status_of = status_of
        self.clock = clock
        self.watched: dict[str, dict[str, Any]] = {}
        self.sent = 0                       # notifications queued
        self.record = record                # adds a timeline entry to the incident
        self.steps: Counter[tuple[str, int, str]] = Counter()   # (team, level, step) fired
        self._store: Store | None = None

    def attach(self, store: Store | None) -> None:
        """Write through `store` and resume the incidents it was watching."""
        self._store = store
        if store is not None:
            self.watched = {d["incident_id"]: d for d in store.load_escalations()}

    def observe(self, logged: list[LoggedEvent]) -> None:
        """Start watching each new incident's first firing event; level 1 notifies at once."""
        for item in logged:
            e = item.data
            iid = e["incident_id"]
            if e["status"] == "resolved":
                self._drop(iid)
                continue
            if iid in self.watched:
                doc = self.watched[iid]
                if e["level"] == 1 and IMMEDIATE not in doc["notified"]:  # graded up to 1
                    doc["level"] = 1
                    self._notify(doc, IMMEDIATE, COMMAND, 0.0)
                    self._save(doc)
                continue
            if e.get("silenced"):
                continue
            doc = {"incident_id": iid, "team": e["team"], "level": e["level"],
                   "stream": e["stream"], "incident_type": e["incident_type"],
                   "summary": e["summary"], "opened_at": self.clock(), "notified": []}
            if not self.policy.get(doc["team"]) and doc["level"] != 1:
                continue
            self.watched[iid] = doc
            if doc["level"] == 1:
                self._notify(doc, IMMEDIATE, COMMAND, 0.0)
            self._save(doc)

    def tick(self) -> int:
        """Notify every step now due; stop watching acked or resolved incidents. How many
        notifications were queued."""
        now, n = self.clock(), 0
        for iid, doc in list(self.watched.items()):
            if self.status_of(iid) in (None, "acked", "resolved"):
                self._drop(iid)
                continue
            changed = False
            for k, step in enumerate(self.policy.get(doc["team"], [])):
                name = f"step{k + 1}"
                if name in doc["notified"] or now < doc["opened_at"] + step.after:
                    continue
                n += self._notify(doc, name, step.notify, step.after)
                changed = True
            if changed:
                self._save(doc)
        return n

    def _notify(self, doc: dict[str, Any], name: str, target: str, after: float) -> int:
        payload = {"type": "escalation", "id": f"esc-{doc['incident_id']}-{name}",
                   "ts": round(self.clock(), 3), "step": name, "notify": target,
                   "after_s": after, **{k: doc[k] for k in ("incident_id", "team", "level",
                                                            "stream", "incident_type",
                                                            "summary", "opened_at")}}
        doc["notified"].append(name)
        queued = self.send(target, payload)
        if queued:
            self.steps[(doc["team"], int(doc["level"]), name)] += 1
        if self.record is not None and queued:   # nobody to notify: logged, not a step taken
            self.record(doc["incident_id"], {
                "ts": payload["ts"], "action": "escalated", "by": "streamwatch", "step": name,
                "notify": target, "note": (
                    f"level 1: {target} notified at once ({queued} receiver(s))"
                    if name == IMMEDIATE else f"not acknowledged after {after:g} s: notified "
                                              f"{target} ({queued} receiver(s))")})
        if not queued:
            log.warning("escalation has no receiver", extra={"notify": target,
                                                             "incident": doc["incident_id"]})
        self.sent += queued
        return queued

    def _save(self, doc: dict[str, Any]) -> None:
        if self._store is not None:
            try:
                self._store.save_escalation(doc)
            except StoreError as exc:           # keep escalating from memory
                log.error("escalation state not stored", extra={"error": str(exc)})

    def _drop(self, incident_id: str) -> None:
        if self.watched.pop(incident_id, None) is not None and self._store is not None:
            try:
                self._store.delete_escalation(incident_id)
            except StoreError as exc:
                log.error("escalation state not stored", extra={"error": str(exc)})

    async def run(self, interval: float = 1.0) -> None:
        """Tick forever (the app's lifespan spawns it on the service)."""
        await tick_forever(self.tick, log, "escalation", interval)
