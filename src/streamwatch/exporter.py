"""PLACEHOLDER (being written this session): the Prometheus face, /metrics."""
from __future__ import annotations

from typing import Any

__all__ = ["mount_metrics"]


def mount_metrics(app: Any, service: Any) -> None:
    """Mount /metrics (placeholder: nothing yet)."""
