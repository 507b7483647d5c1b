"""Signal: one rule's anomaly currently active on one stream - the unit assessment reasons about."""
from __future__ import annotations

from dataclasses import dataclass

from streamwatch.config.rules import Rule

__all__ = ["Signal"]


@dataclass(slots=True)
class Signal:
    rule: Rule
    metric: str
    direction: str           # "up" | "down" (a "both" rule reports the side it saw)
    level: int
    since: float
    score: float
    observed: float
    expected: float

    @property
    def key(self) -> str:
        return f"{self.metric}:{self.direction}"

    @property
    def relative(self) -> float:
        """observed / expected (1.0 when unknown)."""
        if self.expected and self.expected == self.expected and self.observed == self.observed:
            return self.observed / self.expected if self.expected != 0 else float("inf")
        return 1.0
