"""Silences (maintenance windows): alert events that match are recorded but not paged.

Why it works this way:
- A silence changes who is *told*, never what is *known*: a silenced event is still logged,
  stored, indexed and shown on the REST API and the feed, flagged `"silenced": true`; only the
  paging outputs (webhooks) skip it. An operator looking at the screen during maintenance still
  sees everything; nobody is woken up for it.
- Matchers are all optional but at least one is required (a silence of everything is refused:
  it would turn paging off without saying so). `stream` is exact or a shell-style glob
  (`shop-*`, case-sensitive), the others are exact. All given matchers must match.
- The window is wall clock (`starts_at` <= now < `ends_at`), judged when the event is published,
  not the event's own `ts`: a maintenance window is planned in real time, and a replay of old
  samples must not be paged just because its event time lies outside today's window.
- Expiring a silence sets `ends_at` to now (kept and listed, so the record of who silenced what
  stays); nothing is deleted.
"""
from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from streamwatch.store.base import Store

__all__ = ["Silence", "Silences", "MATCHERS", "GLOB_CHARS"]

MATCHERS = ("stream", "metric", "incident_type", "team")
GLOB_CHARS = frozenset("*?[")


class Silence(BaseModel):
    """One silence as stored and listed."""
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    stream: str | None = None
    metric: str | None = None
    incident_type: str | None = None
    team: str | None = None
    starts_at: float
    ends_at: float
    created_by: str
    created_at: float
    comment: str = ""
    expired_by: str | None = Field(default=None, description="who expired it early, if anyone")

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Whether every matcher given matches `event` (an alert event dict); ignores time."""
        if self.stream is not None:
            stream = str(event.get("stream", ""))
            if GLOB_CHARS & set(self.stream):
                if not fnmatchcase(stream, self.stream):
                    return False
            elif stream != self.stream:
                return False
        return ((self.metric is None or event.get("metric") == self.metric)
                and (self.incident_type is None
                     or event.get("incident_type") == self.incident_type)
                and (self.team is None or event.get("team") == self.team))

    def public(self, now: float) -> dict[str, Any]:
        return {**self.model_dump(), "active": self.active(now)}


class Silences:
    """The service's silences, written through the store (when there is one) before they count.

    Runs on the event loop thread, like the Service that consults it for every published event.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._items: dict[str, Silence] = {}
        self.store: Store | None = None

    def attach(self, store: Store | None) -> None:
        """Use `store` from now on and load what it holds."""
        self.store = store
        if store is not None:
            self._items = {d["id"]: Silence.model_validate(d) for d in store.load_silences()}

    def add(self, *, created_by: str, starts_at: float | None = None, ends_at: float,
            comment: str = "", **matchers: str | None) -> Silence:
        """A new silence, stored before it is returned (StoreError when it cannot be).
        ValueError: no matcher, an unknown matcher, or a window that ends before it starts."""
        unknown = set(matchers) - set(MATCHERS)
        if unknown:
            raise ValueError(f"unknown matchers {sorted(unknown)} (known: {', '.join(MATCHERS)})")
        if not any(v for v in matchers.values()):
            raise ValueError(f"at least one matcher is required ({', '.join(MATCHERS)})")
        now = self.clock()
        start = now if starts_at is None else starts_at
        if ends_at <= start:
            raise ValueError(f"ends_at ({ends_at}) must be after starts_at ({start})")
        s = Silence(id=f"sil-{secrets.token_hex(6)}", starts_at=start, ends_at=ends_at,
                    created_by=created_by, created_at=round(now, 3), comment=comment,
                    **{k: v for k, v in matchers.items() if v})
        self._save(s)
        return s

    def expire(self, silence_id: str, by: str) -> Silence | None:
        """End a silence now (None: unknown id). An already ended one is returned unchanged."""
        s = self._items.get(silence_id)
        if s is None:
            return None
        now = self.clock()
        if s.ends_at <= now:
            return s
        ended = s.model_copy(update={"ends_at": max(s.starts_at, now), "expired_by": by})
        self._save(ended)
        return ended

    def _save(self, s: Silence) -> None:
        if self.store is not None:
            self.store.save_silence(s.model_dump())
        self._items[s.id] = s

    def __len__(self) -> int:
        return len(self._items)

    def get(self, silence_id: str) -> Silence | None:
        return self._items.get(silence_id)

    def all(self) -> list[Silence]:
        """Every silence, newest first."""
        return sorted(self._items.values(), key=lambda s: (s.created_at, s.id), reverse=True)

    def silencing(self, event: Mapping[str, Any], now: float | None = None) -> Silence | None:
        """The first active silence matching `event`, if any."""
        t = self.clock() if now is None else now
        for s in self._items.values():
            if s.active(t) and s.matches(event):
                return s
        return None
