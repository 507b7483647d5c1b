"""Webhook signatures: how a delivery proves it came from this service, and how a receiver checks.

`X-Streamwatch-Signature: t=UNIX,v1=HEX`, HMAC-SHA256 over `"{t}." + body` with the webhook's
secret, `t` the wall clock of that attempt (a retry is signed afresh). Signing the time with the
body lets a receiver refuse a replayed request: `verify_signature` is the receiver's side (the
check docs/API.md spells out, re-exported as `streamwatch.notify.webhook.verify_signature`), and
refuses more than 5 minutes of skew.
"""
from __future__ import annotations

import hashlib
import hmac

__all__ = ["sign", "verify_signature", "SIGNATURE_HEADER", "TOLERANCE_S"]

SIGNATURE_HEADER = "X-Streamwatch-Signature"
TOLERANCE_S = 300.0


def sign(secret: str, body: bytes, t: int) -> str:
    """The signature header value for `body` sent at unix time `t`."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(secret: str, header: str | None, body: bytes, now: float,
                     tolerance: float = TOLERANCE_S) -> bool:
    """The receiver's check: a well-formed header, `t` within `tolerance` of `now`, and a
    matching HMAC (compared in constant time)."""
    if not header:
        return False
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - t) > tolerance:
        return False
    want = sign(secret, body, t).partition(",v1=")[2]
    return hmac.compare_digest(want, parts.get("v1", ""))
