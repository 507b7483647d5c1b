"""The loop behind wall-clock timers (escalation, routing repeats): call `tick` every interval.

Timers are not asyncio timers on purpose: each owner's `tick()` compares its clock with what is
due, so tests drive a fake clock without sleeping, and a restart loses nothing.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["tick_forever"]


async def tick_forever(tick: Callable[[], Any], log: logging.Logger, what: str,
                       interval: float = 1.0) -> None:
    """Run `tick` every `interval` seconds until cancelled; a failing tick is logged, never
    the end of the loop."""
    while True:
        await asyncio.sleep(interval)
        try:
            tick()
        except Exception:
            log.exception("%s tick failed", what)
