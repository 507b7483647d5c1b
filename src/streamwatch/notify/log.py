"""EventLog: the recent alert events, in emission order, for resumes and late subscribers.

Every output reads from here: a websocket client that reconnects with `since=<last event id>` is
sent exactly what it missed, without duplicates, as long as that is still in the buffer; when it
is not, the log says so (`Gap`) and the client starts again from a snapshot. Events are kept as
dicts and as their JSON bytes, encoded once for all clients.
"""
from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streamwatch.events import AlertEvent

__all__ = ["EventLog", "LoggedEvent", "Gap"]


class Gap(Exception):
    """The requested resume point is older than what the log still holds."""


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: str
    data: dict[str, Any]
    json: bytes                  # the feed message: the event plus "type": "alert"


class EventLog:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._items: deque[LoggedEvent] = deque(maxlen=capacity)
        self._ids: deque[str] = deque(maxlen=capacity)
        self.dropped = 0             # events pushed out of the buffer so far

    def append(self, events: list[AlertEvent],
               extra: Mapping[str, Mapping[str, Any]] | None = None) -> list[LoggedEvent]:
        """`extra`: additive fields by event id that the service adds on the way out (e.g.
        `"silenced": true`), part of the event for every output from here on."""
        out = []
        for e in events:
            data = e.model_dump()
            if extra and e.id in extra:
                data.update(extra[e.id])
            item = LoggedEvent(e.id, data, orjson.dumps({"type": "alert", **data}))
            if len(self._items) == self.capacity:
                self.dropped += 1
            self._items.append(item)
            self._ids.append(e.id)
            out.append(item)
        return out

    @property
    def last_id(self) -> str | None:
        return self._ids[-1] if self._ids else None

    def since(self, event_id: str | None) -> list[LoggedEvent]:
        """Events after `event_id` (all held ones for None); Gap if that point was evicted."""
        if event_id is None:
            return list(self._items)
        ids = list(self._ids)
        if self.dropped and ids and event_id < ids[0]:
            raise Gap(f"event {event_id} is older than the {len(ids)} events still held "
                      f"(oldest {ids[0]})")
        k = bisect_right(ids, event_id)   # ids are zero-padded: string order = emission order
        return list(self._items)[k:]

    def __len__(self) -> int:
        return len(self._items)
