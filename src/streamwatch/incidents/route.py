"""Routing: which receivers hear of an incident, how often - Alertmanager's route/group/repeat.

Why it works this way:
- The tree (config/routing.py) picks receivers per alert event; the first matching child wins
  unless it says `continue`; unset settings are inherited from the parent.
- Grouping is per incident, not per metric or per event: a receiver hears of an incident when it
  first fires, when its level changes (graded up or down), and when it resolves (unless
  `send_resolved = false`). Further events of the same incident at the same level - another
  metric of the same outage, "worse" at the same level - are folded (counted, not sent). This is
  the dedup an ops room needs: one page per incident, a new one only when it matters more/less.
- `repeat_interval`: an incident still open and not acknowledged is sent again that often
  (wall clock, `tick`, like escalation: tests drive a fake clock), so a page lost in a noisy
  channel comes back until someone takes it.
- Silenced events (incidents/silence.py) are not routed. Inhibition (room echoes of a shared
  payment outage) happens before, in assess/correlate.py: the echoes never become incidents.
- What was sent is kept in memory: after a restart an open incident's next event is sent again
  (at-least-once, never silently dropped); the deliveries themselves are durable webhook
  deliveries (notify/webhook.py) with idempotency keys.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from streamwatch.config.routing import Route, RoutingSettings
from streamwatch.incidents.ticker import tick_forever
from streamwatch.notify.log import LoggedEvent

__all__ = ["Router", "Resolved"]

log = logging.getLogger("streamwatch.route")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A route as it applies to one event: its receivers and inherited settings."""
    receivers: tuple[str, ...]
    repeat_interval: float | None
    send_resolved: bool


@dataclass(slots=True)
class _Sent:
    level: int
    event: dict[str, Any]
    at: float
    repeat_interval: float | None
    repeats: int = 0


def resolve(route: Route, event: dict[str, Any],
            inherited: Resolved = Resolved((), None, True),
            labels: dict[str, str] | None = None) -> list[Resolved]:
    """The routes `event` lands on under `route` (which is known to match it)."""
    here = Resolved(tuple(route.receivers) if route.receivers is not None
                    else inherited.receivers,
                    route.repeat_interval if route.repeat_interval is not None
                    else inherited.repeat_interval,
                    route.send_resolved if route.send_resolved is not None
                    else inherited.send_resolved)
    out: list[Resolved] = []
    for child in route.routes:
        if child.match.matches(event, labels):
            out += resolve(child, event, here, labels)
            if not child.continue_:
                break
    return out or [here]


class Router:
    """A Service subscriber (`observe`) plus a `tick` for repeats. `deliver(receiver, event,
    key)` queues one notification (the webhook dispatcher's `deliver`); how many it queued."""

    def __init__(self, settings: RoutingSettings,
                 deliver: Callable[[str, dict[str, Any], str], int],
                 status_of: Callable[[str], str | None],
                 clock: Callable[[], float] = time.time,
                 labels_of: Callable[[str], dict[str, str] | None] = lambda _s: None) -> None:
        self.settings = settings
        self.labels_of = labels_of
        self.deliver = deliver
        self.status_of = status_of
        self.clock = clock
        self.sent: dict[tuple[str, str], _Sent] = {}     # (incident id, receiver)
        self.stats: Counter[tuple[str, str]] = Counter()  # (receiver, kind) notifications
        self.folded = 0                                   # events not sent: same incident+level

    @property
    def active(self) -> bool:
        return bool(self.settings.receivers) or bool(self.settings.route.routes) \
            or bool(self.settings.route.receivers)

    def observe(self, logged: list[LoggedEvent]) -> None:
        for item in logged:
            e = item.data
            if e.get("silenced"):
                continue
            targets: dict[str, Resolved] = {}
            for r in resolve(self.settings.route, e, labels=self.labels_of(e["stream"])):
                for name in r.receivers:
                    targets.setdefault(name, r)
            for name, r in targets.items():
                self._route(e, name, r)

    def _route(self, e: dict[str, Any], name: str, r: Resolved) -> None:
        key = (e["incident_id"], name)
        prev = self.sent.get(key)
        if e["status"] == "resolved":
            self.sent.pop(key, None)
            if prev is not None and r.send_resolved:
                self._send(name, e, e["id"], "resolved")
            return
        if prev is not None and prev.level == e["level"]:
            self.folded += 1
            prev.event = e
            return
        self._send(name, e, e["id"], "first" if prev is None else "regraded")
        self.sent[key] = _Sent(e["level"], e, self.clock(), r.repeat_interval)

    def tick(self) -> int:
        """Re-send what is due; forget incidents that were resolved or acknowledged."""
        now, n = self.clock(), 0
        for key, s in list(self.sent.items()):
            status = self.status_of(key[0])
            if status in (None, "resolved"):
                del self.sent[key]
                continue
            if status == "acked" or s.repeat_interval is None \
                    or now < s.at + s.repeat_interval:
                continue
            s.repeats += 1
            s.at = now
            n += self._send(key[1], {**s.event, "repeat": s.repeats},
                            f"{s.event['id']}-repeat{s.repeats}", "repeat")
        return n

    def _send(self, receiver: str, event: dict[str, Any], key: str, kind: str) -> int:
        queued = self.deliver(receiver, event, key)
        if queued:
            self.stats[(receiver, kind)] += 1
        else:
            log.warning("route has no receiver", extra={"receiver": receiver,
                                                        "incident": event["incident_id"]})
        return queued

    async def run(self, interval: float = 1.0) -> None:
        """Tick forever (the app's lifespan spawns it on the service)."""
        await tick_forever(self.tick, log, "routing", interval)
