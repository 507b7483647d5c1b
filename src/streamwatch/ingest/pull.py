"""PLACEHOLDER (being written this session): async pull sources."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SourceState", "start_sources"]


@dataclass
class SourceState:
    """Health of one pull source, read by /metrics and GET /v1/sources."""
    name: str
    kind: str
    state: str = "starting"            # starting | ok | failing
    last_success: float | None = None  # wall clock of the last good poll
    last_error: str | None = None
    consecutive_failures: int = 0
    polls: int = 0
    samples: int = 0
    lag_s: float | None = None         # wall now - newest sample ts of the last good poll


def start_sources(service: Any, sources: list[Any]) -> list[SourceState]:
    """Start one task per configured source (placeholder: none yet)."""
    service.sources = []
    return []
