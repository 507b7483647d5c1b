"""One webhook delivery: the POST of one attempt, how its answer is judged, and when to retry.

The dispatcher's worker (notify/webhook.py) owns the queue, the order and the bookkeeping; this
module is the policy it applies to each attempt, kept apart so the rules below read in one place:
- Delivery semantics: at-least-once. Each delivery carries `Idempotency-Key:
  "{webhook id}:{event id}"`, identical on every retry, so a receiver that dedups on it sees each
  event exactly once even when an answer was lost and the body sent again.
- Retries: any transport error, timeout (`timeout`, the whole attempt), 3xx (redirects are not
  followed: the allow-list checked the first host only), 408, 425, 429 and 5xx are retried after
  `min(backoff_max, backoff_base * 2**(n-1))` scaled by a jitter factor in [0.5, 1) ("equal
  jitter": never zero, never in lock-step with other senders); a `Retry-After` in seconds
  lengthens the wait (capped at `backoff_max`). Other 4xx are permanent (the receiver refuses
  this body; sending it again will not help), like Alertmanager does.
- Every attempt is signed afresh (notify/signing.py), with the wall clock of that attempt.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx

from streamwatch import __version__
from streamwatch.notify.signing import SIGNATURE_HEADER, sign
from streamwatch.notify.subscription import Webhook

__all__ = ["Delivery", "Outcome", "post", "backoff_delay", "retry_wait"]

_RETRYABLE_4XX = (408, 425, 429)


@dataclass
class Delivery:
    key: str                      # Idempotency-Key: the same on every attempt
    webhook_id: str
    event: dict[str, Any]
    body: bytes
    attempts: int = 0
    first_at: float | None = None
    next_at: float | None = None
    last_error: str | None = None


class Outcome(NamedTuple):
    """What one attempt came to."""
    ok: bool                      # the receiver accepted it (2xx)
    permanent: bool               # refused for good: do not retry
    error: str | None
    retry_after: float | None     # the receiver's Retry-After, in seconds


def backoff_delay(attempt: int, base: float, cap: float, rand: float) -> float:
    """Wait after failed attempt number `attempt` (1-based); `rand` in [0, 1)."""
    full = min(cap, base * 2.0 ** (attempt - 1))
    return full * (0.5 + 0.5 * rand)


def retry_wait(attempt: int, retry_after: float | None, base: float, cap: float,
               rand: float) -> float:
    """The wait before retrying after failed attempt `attempt`: the back-off, lengthened to a
    receiver's `Retry-After` but never past `cap`."""
    delay = backoff_delay(attempt, base, cap, rand)
    if retry_after is not None:
        delay = min(cap, max(delay, retry_after))
    return delay


async def post(client: httpx.AsyncClient, hook: Webhook, d: Delivery, t: int,
               timeout: float) -> Outcome:
    """One POST of `d` to `hook`, signed at unix time `t`, `timeout` for the whole attempt."""
    headers = {"Content-Type": "application/json", "Idempotency-Key": d.key,
               "User-Agent": f"streamwatch/{__version__}",
               SIGNATURE_HEADER: sign(hook.secret, d.body, t)}
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
        # arrives as the POST completes, and `stop()` then waited forever for this worker
        async with asyncio.timeout(timeout):
            r = await client.post(hook.url, content=d.body, headers=headers)
    except (TimeoutError, httpx.TimeoutException):
        return Outcome(False, False, f"timed out after {timeout:g} s", None)
    except httpx.HTTPError as exc:
        return Outcome(False, False, f"{type(exc).__name__}: {exc}"[:300], None)
    code = r.status_code
    if 200 <= code < 300:
        return Outcome(True, False, None, None)
    permanent = 400 <= code < 500 and code not in _RETRYABLE_4XX
    retry_after = None
    try:
        retry_after = float(r.headers["retry-after"])
    except (KeyError, ValueError):
        pass
    return Outcome(False, permanent, f"HTTP {code}", retry_after)
