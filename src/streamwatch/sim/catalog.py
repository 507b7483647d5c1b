"""The event catalogue: for each incident and normal-event type, how long it lasts and how hard
it hits, drawn at random from the ranges DOMAIN.md and the simulator brief describe.

Separate from placement (scenario.py) so the numbers that define "what a platform throttle is"
live in one table-like file, and separate from effects.py, which says how those numbers bend
the data.  Every draw takes the scenario RNG explicitly: same seed, same catalogue entries.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OnsetContext", "Draw", "draw_incident", "draw_normal", "draw_service_incident",
           "ROOM_INCIDENT_TYPES", "INCIDENT_WEIGHTS", "MAX_CHECKOUT_S"]

ROOM_INCIDENT_TYPES = ("checkout_broken", "stream_outage", "platform_throttle", "host_absent",
                       "complaint_surge", "bot_traffic")
INCIDENT_WEIGHTS = (0.12, 0.22, 0.15, 0.15, 0.16, 0.20)
MAX_CHECKOUT_S = 20 * 60.0


@dataclass(frozen=True, slots=True)
class OnsetContext:
    """What the room looks like at the proposed onset (noise-free baseline)."""
    orders_pm: float
    complaints_pm: float


@dataclass(frozen=True, slots=True)
class Draw:
    duration: float
    params: dict[str, float]
    tail: float = 0.0


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def draw_incident(rng: np.random.Generator, kind: str, ctx: OnsetContext) -> Draw | None:
    """Duration and parameters of a room incident; None if this room cannot host it now.

    ``magnitude`` is the headline number written to labels: the fraction of viewers lost
    (outage), of orders lost (checkout), of entries lost (throttle), of comments lost (host
    absent), the complaint-rate multiplier (surge) and the viewer multiplier (bots).
    """
    if kind == "stream_outage":
        tau_rec = _u(rng, 40, 150)
        return Draw(_u(rng, 60, 480), {
            "magnitude": _u(rng, 0.4, 0.9), "bitrate_level": _u(rng, 0.0, 0.2),
            "fps_level": _u(rng, 0.0, 0.2), "drop_add": _u(rng, 0.2, 0.8),
            "rebuf_add": _u(rng, 0.3, 0.9), "tau_drop": _u(rng, 10, 30), "tau_rec": tau_rec,
            "entries_level": _u(rng, 0.2, 0.6), "interact_level": _u(rng, 0.2, 0.6),
            "rise": _u(rng, 2, 10), "fall": _u(rng, 5, 20),
            "silent": float(rng.uniform() < 1 / 3)}, tail=4 * tau_rec)
    if kind == "checkout_broken":
        if ctx.orders_pm <= 0:
            return None
        needed = max(180.0, 15.0 / ctx.orders_pm * 60.0)
        if needed > MAX_CHECKOUT_S:
            return None
        conv = _u(rng, 0.0, 0.03)
        return Draw(min(MAX_CHECKOUT_S, needed * _u(rng, 1.0, 1.6)), {
            "magnitude": 1.0 - conv, "conv_level": conv, "complaint_level": _u(rng, 1.2, 2.0),
            "rise": _u(rng, 0, 30), "fall": _u(rng, 0, 30)})
    if kind == "platform_throttle":
        tau_rec = _u(rng, 60, 180)
        return Draw(_u(rng, 180, 900), {
            "magnitude": _u(rng, 0.6, 0.95), "viewer_level": _u(rng, 0.3, 0.6),
            "tau_decay": _u(rng, 60, 240), "tau_rec": tau_rec,
            "rise": _u(rng, 10, 60), "fall": _u(rng, 30, 120)}, tail=4 * tau_rec)
    if kind == "host_absent":
        tau_rec = _u(rng, 60, 180)
        return Draw(_u(rng, 120, 600), {
            "magnitude": _u(rng, 0.8, 1.0), "click_drop": _u(rng, 0.8, 1.0),
            "like_level": _u(rng, 0.2, 0.6), "entries_level": _u(rng, 0.6, 0.9),
            "viewer_level": _u(rng, 0.5, 0.8), "tau_decay": _u(rng, 150, 400),
            "tau_rec": tau_rec, "rise": _u(rng, 5, 30), "fall": _u(rng, 10, 40)},
            tail=4 * tau_rec)
    if kind == "complaint_surge":
        dur = _u(rng, 300, 900)
        rise = _u(rng, 30, 120)
        mult = _u(rng, 4, 15)
        # "several-fold AND several events": small rooms get a larger factor so the surge adds
        # at least ~10-18 extra complaints in expectation over its effective duration.
        extra = _u(rng, 10, 18)
        base = max(ctx.complaints_pm, 1e-6) * (dur - rise / 2) / 60.0
        mult = max(mult, 1.0 + extra / base)
        return Draw(dur, {
            "magnitude": mult, "refund_level": 1.0 + (mult - 1.0) * _u(rng, 0.4, 1.0),
            "refund_delay": _u(rng, 0, 120), "rise": rise, "fall": _u(rng, 60, 180)})
    if kind == "bot_traffic":
        return Draw(_u(rng, 180, 900), {
            "magnitude": _u(rng, 1.5, 5.0), "rise": _u(rng, 20, 120), "fall": _u(rng, 10, 60)})
    raise ValueError(f"unknown incident type {kind!r}")


def draw_service_incident(rng: np.random.Generator, kind: str, errors_allowed: bool) -> Draw:
    """Shared payment outage (``checkout_broken`` on svc:payment) or a service degradation."""
    if kind == "checkout_broken":
        return Draw(_u(rng, 120, 600), {
            "magnitude": _u(rng, 0.3, 1.0), "latency_level": _u(rng, 3, 10),
            "cpu_level": _u(rng, 0.5, 0.8), "conv_level": _u(rng, 0.0, 0.05),
            "complaint_level": _u(rng, 1.3, 2.5), "rise": _u(rng, 5, 30), "fall": _u(rng, 10, 60)})
    errors = errors_allowed and rng.uniform() < 0.4
    return Draw(_u(rng, 180, 900), {
        "magnitude": _u(rng, 3, 10), "cpu_level": _u(rng, 0.85, 1.0),
        "error_level": _u(rng, 0.06, 0.3) if errors else 0.0,
        "rise": _u(rng, 30, 180), "fall": _u(rng, 30, 120)})


def draw_normal(rng: np.random.Generator, kind: str) -> Draw:
    """Normal-but-scary events: they move numbers a lot and must not page anyone."""
    if kind == "flash_sale":
        return Draw(_u(rng, 60, 300), {
            "magnitude": _u(rng, 3, 10), "conv_level": _u(rng, 1.0, 1.5),
            "price_level": _u(rng, 0.5, 0.9), "viewer_level": _u(rng, 1.0, 1.15),
            "entries_level": _u(rng, 1.0, 1.3), "comment_level": _u(rng, 1.0, 2.0),
            "rise": _u(rng, 5, 20), "fall": _u(rng, 10, 30)})
    if kind == "lottery":
        return Draw(_u(rng, 60, 180), {
            "magnitude": _u(rng, 5, 20), "like_level": _u(rng, 1.5, 3.0),
            "share_level": _u(rng, 1.0, 2.0), "follow_level": _u(rng, 2.0, 5.0),
            "entries_level": _u(rng, 1.1, 1.5), "viewer_level": _u(rng, 1.1, 1.3),
            "rise": _u(rng, 5, 20), "fall": _u(rng, 10, 40)})
    if kind == "product_switch":
        return Draw(_u(rng, 30, 120), {
            "magnitude": _u(rng, 0.6, 0.9), "conv_level": _u(rng, 0.5, 1.0),
            "rise": _u(rng, 3, 10), "fall": _u(rng, 5, 15)})
    if kind == "goodbye":
        return Draw(_u(rng, 120, 300), {
            "floor": _u(rng, 0.05, 0.2), "click_floor": _u(rng, 0.1, 0.3),
            "comment_level": _u(rng, 0.8, 1.2)})
    if kind == "ramp_up":
        return Draw(_u(rng, 120, 600), {})
    if kind == "stutter":
        return Draw(_u(rng, 3, 12), {
            "bitrate_level": _u(rng, 0.3, 0.7), "drop_add": _u(rng, 0.01, 0.08),
            "rebuf_add": _u(rng, 0.0, 0.05)})
    raise ValueError(f"unknown normal event type {kind!r}")
