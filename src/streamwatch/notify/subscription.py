"""A webhook subscription: where it posts, in which format, which events it hears, and its views.

The dispatcher (notify/webhook.py) keeps one per registered webhook or config/routing.toml
receiver; this is what is stored (`stored`/`from_stored`, secret included: the HMAC needs it) and
what the API lists (`public`, never the secret), kept apart from delivery so either can change
without the other.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Webhook", "FORMATS"]

FORMATS = ("streamwatch", "alertmanager")
_HOOK_FIELDS = ("id", "url", "format", "secret", "min_level", "teams", "created_at")


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
